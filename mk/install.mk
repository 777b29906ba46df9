# make install / make uninstall (included by the Makefile).
#
#   make install                               PREFIX=/usr/local, into the running system
#   make install PREFIX=/usr DESTDIR=/tmp/pkg  staged, for a package
#   make uninstall [PREFIX=... DESTDIR=...]    removes exactly what install put there
#
# Where things go (every directory can be overridden on the command line):
#   $(SBINDIR)        spoa-mtls, certsync (0755)         PREFIX/sbin: daemons and admin tools
#   $(MAN8DIR)        spoa-mtls.8, certsync.8 (0644)     PREFIX/share/man/man8
#   $(EDGETLS_DATADIR)/haproxy/   haproxy/*.cfg, *.conf, *.md          PREFIX/share/edgetls
#   $(EDGETLS_DATADIR)/examples/  certsync.conf, chains/, tsig.secret (placeholder)
#   $(EDGETLS_DATADIR)/deploy/    prometheus/ (rules, rule tests, scrape config),
#                                 grafana/edgetls.json, systemd/ (copies of the units);
#                                 not deploy/compose or deploy/docker (development stacks)
#   $(SYSTEMDUNITDIR) spoa-mtls.service, certsync.service  PREFIX/lib/systemd/system
#                     (systemd reads both /usr/lib/... and /usr/local/lib/systemd/system)
#   $(SYSUSERSDIR)    edgetls.conf (the user edgetls)       PREFIX/lib/sysusers.d
#                     (systemd-sysusers reads /usr/lib/ and /usr/local/lib/sysusers.d)
# The units name /usr/sbin/...; install rewrites that to $(SBINDIR). Nothing is written to
# /etc: copy examples/certsync.conf to /etc/edgetls/certsync.conf. Installing does not
# create the user nor start anything; afterwards, as root:
#   systemd-sysusers && systemctl daemon-reload && systemctl enable --now certsync spoa-mtls

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
MAN8DIR ?= $(MANDIR)/man8
EDGETLS_DATADIR ?= $(PREFIX)/share/edgetls
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL ?= install

INSTALL_UNITS := deploy/systemd/spoa-mtls.service deploy/systemd/certsync.service
INSTALL_MANS := man/spoa-mtls.8 man/certsync.8
INSTALL_HAPROXY := $(sort $(filter-out %~,$(wildcard haproxy/*.cfg haproxy/*.conf haproxy/*.md)))
INSTALL_EXAMPLES := examples/certsync.conf examples/tsig.secret
INSTALL_CHAINS := $(sort $(wildcard examples/chains/*.pem))
INSTALL_PROM := deploy/prometheus/prometheus.yml deploy/prometheus/edgetls.rules.yml \
	deploy/prometheus/edgetls.rules.test.yml
INSTALL_GRAFANA := deploy/grafana/edgetls.json

.PHONY: install uninstall

install: all
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MAN8DIR) \
		$(DESTDIR)$(EDGETLS_DATADIR)/haproxy $(DESTDIR)$(EDGETLS_DATADIR)/examples/chains \
		$(DESTDIR)$(EDGETLS_DATADIR)/deploy/prometheus \
		$(DESTDIR)$(EDGETLS_DATADIR)/deploy/grafana \
		$(DESTDIR)$(EDGETLS_DATADIR)/deploy/systemd \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	$(INSTALL) -m 0755 $(SPOA) $(CERTSYNC) $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 0644 $(INSTALL_MANS) $(DESTDIR)$(MAN8DIR)/
	$(INSTALL) -m 0644 $(INSTALL_HAPROXY) $(DESTDIR)$(EDGETLS_DATADIR)/haproxy/
	$(INSTALL) -m 0644 $(INSTALL_EXAMPLES) $(DESTDIR)$(EDGETLS_DATADIR)/examples/
	$(if $(INSTALL_CHAINS),$(INSTALL) -m 0644 $(INSTALL_CHAINS) \
		$(DESTDIR)$(EDGETLS_DATADIR)/examples/chains/)
	$(INSTALL) -m 0644 $(INSTALL_PROM) $(DESTDIR)$(EDGETLS_DATADIR)/deploy/prometheus/
	$(INSTALL) -m 0644 $(INSTALL_GRAFANA) $(DESTDIR)$(EDGETLS_DATADIR)/deploy/grafana/
	$(INSTALL) -m 0644 $(INSTALL_UNITS) deploy/systemd/edgetls.conf \
		$(DESTDIR)$(EDGETLS_DATADIR)/deploy/systemd/
	for u in $(notdir $(INSTALL_UNITS)); do \
		sed 's#/usr/sbin/#$(SBINDIR)/#g' deploy/systemd/$$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		mv -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m 0644 deploy/systemd/edgetls.conf $(DESTDIR)$(SYSUSERSDIR)/edgetls.conf

# Removes the files install wrote, then the directories of its own (share/edgetls), and
# leaves shared directories (sbin, man8, systemd/system) in place.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/spoa-mtls $(DESTDIR)$(SBINDIR)/certsync
	rm -f $(addprefix $(DESTDIR)$(MAN8DIR)/,$(notdir $(INSTALL_MANS)))
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(notdir $(INSTALL_UNITS)))
	rm -f $(DESTDIR)$(SYSUSERSDIR)/edgetls.conf
	rm -f $(addprefix $(DESTDIR)$(EDGETLS_DATADIR)/haproxy/,$(notdir $(INSTALL_HAPROXY))) \
		$(addprefix $(DESTDIR)$(EDGETLS_DATADIR)/examples/,$(notdir $(INSTALL_EXAMPLES))) \
		$(addprefix $(DESTDIR)$(EDGETLS_DATADIR)/examples/chains/,$(notdir $(INSTALL_CHAINS))) \
		$(addprefix $(DESTDIR)$(EDGETLS_DATADIR)/deploy/prometheus/,$(notdir $(INSTALL_PROM))) \
		$(addprefix $(DESTDIR)$(EDGETLS_DATADIR)/deploy/grafana/,$(notdir $(INSTALL_GRAFANA))) \
		$(addprefix $(DESTDIR)$(EDGETLS_DATADIR)/deploy/systemd/,$(notdir $(INSTALL_UNITS)) \
			edgetls.conf)
	-rmdir $(DESTDIR)$(EDGETLS_DATADIR)/examples/chains $(DESTDIR)$(EDGETLS_DATADIR)/examples \
		$(DESTDIR)$(EDGETLS_DATADIR)/haproxy $(DESTDIR)$(EDGETLS_DATADIR)/deploy/prometheus \
		$(DESTDIR)$(EDGETLS_DATADIR)/deploy/grafana $(DESTDIR)$(EDGETLS_DATADIR)/deploy/systemd \
		$(DESTDIR)$(EDGETLS_DATADIR)/deploy $(DESTDIR)$(EDGETLS_DATADIR) 2>/dev/null

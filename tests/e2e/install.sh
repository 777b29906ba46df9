#!/usr/bin/env bash
# make install / make uninstall (mk/install.mk) into a temporary DESTDIR:
#   - `make install DESTDIR=<tmp> PREFIX=/usr` puts every file where mk/install.mk and the
#     man pages say, with modes 0755 (programs, directories) and 0644 (everything else);
#     the installed programs run (--version)
#   - the installed units name the installed binaries and pass `systemd-analyze verify`
#     (binaries and man pages resolved inside DESTDIR); the sysusers.d file creates the
#     user edgetls (`systemd-sysusers --root`); `systemd-analyze security --offline`
#     rates both units at most 2.0 ("OK")
#   - both man pages render with `groff -man -ww` without a warning, and with `man -l`
#   - a PREFIX other than /usr rewrites the units' ExecStart paths
#   - `make uninstall` with the same variables leaves no file behind
# Uses BUILD (default build) for the binaries: `make BUILD=build/x all` first, or let
# install's dependency on `all` build them.
. "$(dirname "$0")/lib.sh"

need make install groff man
e2e_init
cd "$E2E_ROOT" || die "no repository at $E2E_ROOT"
D=$E2E_TMP/dest
# lib.sh made BUILD absolute; the Makefile's dependency files name relative paths.
MK=(make --no-print-directory -s "BUILD=${BUILD#"$E2E_ROOT"/}")

section "make install DESTDIR=… PREFIX=/usr"
assert_ok "make install" "${MK[@]}" install DESTDIR="$D" PREFIX=/usr

expected_files="0755 usr/sbin/spoa-mtls
0755 usr/sbin/certsync
0644 usr/share/man/man8/spoa-mtls.8
0644 usr/share/man/man8/certsync.8
0644 usr/lib/systemd/system/spoa-mtls.service
0644 usr/lib/systemd/system/certsync.service
0644 usr/lib/sysusers.d/edgetls.conf
0644 usr/share/edgetls/examples/certsync.conf
0644 usr/share/edgetls/examples/tsig.secret
0644 usr/share/edgetls/deploy/prometheus/prometheus.yml
0644 usr/share/edgetls/deploy/prometheus/edgetls.rules.yml
0644 usr/share/edgetls/deploy/prometheus/edgetls.rules.test.yml
0644 usr/share/edgetls/deploy/grafana/edgetls.json
0644 usr/share/edgetls/deploy/systemd/spoa-mtls.service
0644 usr/share/edgetls/deploy/systemd/certsync.service
0644 usr/share/edgetls/deploy/systemd/edgetls.conf"
# haproxy/ and examples/chains/ as they are in the repository.
for f in haproxy/*.cfg haproxy/*.conf haproxy/*.md examples/chains/*.pem; do
	[ -f "$f" ] && expected_files="$expected_files
0644 usr/share/edgetls/$f"
done
got_files=$(cd "$D" && find . -type f -printf '%m %P\n' | sed 's/^\([0-7]\{3\}\) /0\1 /' | sort -k2)
assert_eq "installed files and modes ($(wc -l <<<"$expected_files") files; diff expected got)" "" \
	"$(diff <(sort -k2 <<<"$expected_files") <(printf '%s\n' "$got_files"))"
bad_dirs=$(cd "$D" && find . -mindepth 1 -type d ! -perm 0755 -printf '%m %P\n')
assert_eq "every installed directory is 0755" "" "$bad_dirs"
other=$(cd "$D" && find . -mindepth 1 ! -type f ! -type d -printf '%y %P\n')
assert_eq "nothing but files and directories" "" "$other"
assert_match "installed spoa-mtls runs" "$("$D/usr/sbin/spoa-mtls" --version 2>&1)" '^spoa-mtls '
assert_match "installed certsync runs" "$("$D/usr/sbin/certsync" --version 2>&1)" '^certsync '
assert_eq "installed units are the shipped ones (PREFIX=/usr: no rewrite)" "" \
	"$(diff deploy/systemd/spoa-mtls.service "$D/usr/lib/systemd/system/spoa-mtls.service"
		diff deploy/systemd/certsync.service "$D/usr/lib/systemd/system/certsync.service")"

section "systemd units"
for u in spoa-mtls certsync; do
	assert_eq "$u.service: every ExecStart*/ExecReload names an installed program or /bin/kill" "" \
		"$(grep -E '^Exec[A-Za-z]*=' "$D/usr/lib/systemd/system/$u.service" |
			sed -E 's/^[^=]+=[-@:+!]*//; s/ .*//' | sort -u |
			grep -vx -e "/usr/sbin/$u" -e /bin/kill)"
done
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify needs the programs at the paths the units name: a copy of each unit pointed
	# at DESTDIR; man pages through MANPATH (verify runs `man` for Documentation=man:).
	mkdir -p "$E2E_TMP/units"
	for u in spoa-mtls certsync; do
		sed "s#/usr/sbin/#$D/usr/sbin/#g" "$D/usr/lib/systemd/system/$u.service" \
			>"$E2E_TMP/units/$u.service"
	done
	assert_ok "systemd-analyze verify spoa-mtls.service certsync.service" \
		env MANPATH="$D/usr/share/man" systemd-analyze verify \
		"$E2E_TMP/units/spoa-mtls.service" "$E2E_TMP/units/certsync.service"
	for u in spoa-mtls certsync; do
		score=$(systemd-analyze security --offline=yes "$E2E_TMP/units/$u.service" 2>&1 |
			sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		assert_lt "$u.service: systemd-analyze security exposure (< 2.1)" "${score:-99}" 2.1
	done
	nbad=$E2E_FAILS
	for k in NoNewPrivileges=yes CapabilityBoundingSet= ProtectSystem=strict PrivateTmp=yes \
		ProtectHome=yes 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
		SystemCallFilter=@system-service User=edgetls; do
		for u in spoa-mtls certsync; do
			grep -qxF "$k" "$D/usr/lib/systemd/system/$u.service" ||
				fail_ "$u.service has $k"
		done
	done
	[ "$E2E_FAILS" -eq "$nbad" ] &&
		pass_ "both units: NoNewPrivileges, empty CapabilityBoundingSet, ProtectSystem=strict, PrivateTmp, ProtectHome, RestrictAddressFamilies, @system-service, User=edgetls"
	grep -qx 'StateDirectory=edgetls' "$D/usr/lib/systemd/system/certsync.service" &&
		grep -qx 'SupplementaryGroups=haproxy' "$D/usr/lib/systemd/system/certsync.service" &&
		grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$D/usr/lib/systemd/system/spoa-mtls.service"
	assert_eq "certsync: StateDirectory, group haproxy; spoa-mtls: reload = SIGHUP" 0 $?
else
	log "systemd-analyze not installed: unit checks skipped"
fi
if command -v systemd-sysusers >/dev/null 2>&1; then
	mkdir -p "$E2E_TMP/sysroot/etc" "$E2E_TMP/sysroot/usr/lib/sysusers.d"
	cp "$D/usr/lib/sysusers.d/edgetls.conf" "$E2E_TMP/sysroot/usr/lib/sysusers.d/"
	assert_ok "systemd-sysusers --root accepts edgetls.conf" \
		systemd-sysusers --root="$E2E_TMP/sysroot"
	assert_match "it creates the system user edgetls, home /var/lib/edgetls, no login" \
		"$(cat "$E2E_TMP/sysroot/etc/passwd" 2>/dev/null)" \
		'edgetls:x:[0-9]+:[0-9]+:[^:]*:/var/lib/edgetls:/usr/sbin/nologin'
fi

section "man pages"
for m in spoa-mtls certsync; do
	page=$D/usr/share/man/man8/$m.8
	warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
	assert_eq "groff -man -ww $m.8: no warning" "" "$warn"
	out=$(MANWIDTH=80 man -l "$page" 2>&1)
	assert_match "man -l $m.8 renders" "$out" "^$(tr a-z A-Z <<<"$m")\\(8\\)"
	assert_contains "$m.8 has a SYNOPSIS" "$out" "SYNOPSIS"
done
# Every long option of the --help texts is in the man page.
for m in spoa-mtls certsync; do
	missing=""
	for o in $("$D/usr/sbin/$m" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		man -l "$D/usr/share/man/man8/$m.8" 2>/dev/null | grep -qF -- "$o" || missing="$missing $o"
	done
	assert_eq "$m.8 documents every option of --help" "" "${missing# }"
done
nbad=$E2E_FAILS
for c in $("$D/usr/sbin/certsync" --help | awk '$1 == "certsync" && $2 == "-c" { print $4 } $1 == "certsync" && $2 != "-c" { print $2 }' | sort -u); do
	man -l "$D/usr/share/man/man8/certsync.8" 2>/dev/null | grep -qE "^ +$c( |$)" ||
		fail_ "certsync.8 documents the command $c"
done
[ "$E2E_FAILS" -eq "$nbad" ] && pass_ "certsync.8 has a paragraph per command of certsync --help"

section "make uninstall"
assert_ok "make uninstall" "${MK[@]}" uninstall DESTDIR="$D" PREFIX=/usr
assert_eq "no file left" "" "$(cd "$D" && find . -type f -printf '%P\n')"
assert_eq "share/edgetls removed" no "$([ -e "$D/usr/share/edgetls" ] && echo yes || echo no)"

section "another PREFIX"
D2=$E2E_TMP/dest2
assert_ok "make install PREFIX=/opt/edgetls" "${MK[@]}" install DESTDIR="$D2" PREFIX=/opt/edgetls
assert_eq "ExecStart follows SBINDIR" \
	"ExecStart=/opt/edgetls/sbin/spoa-mtls --listen \${SPOA_MTLS_LISTEN} --metrics \${SPOA_MTLS_METRICS} --policy \${SPOA_MTLS_POLICY} \$SPOA_MTLS_OPTS" \
	"$(grep '^ExecStart=' "$D2/opt/edgetls/lib/systemd/system/spoa-mtls.service")"
assert_eq "certsync's ExecStartPre and ExecStart too" 2 \
	"$(grep -c '^ExecStart[A-Za-z]*=/opt/edgetls/sbin/certsync ' "$D2/opt/edgetls/lib/systemd/system/certsync.service")"
assert_ok "make uninstall PREFIX=/opt/edgetls" "${MK[@]}" uninstall DESTDIR="$D2" PREFIX=/opt/edgetls
assert_eq "no file left" "" "$(cd "$D2" && find . -type f -printf '%P\n')"

e2e_finish

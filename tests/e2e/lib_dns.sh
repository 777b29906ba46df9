# shellcheck shell=bash
# DNS fixtures for end-to-end tests: a Knot authoritative server (the validation zone,
# with a TSIG update ACL, and static customer zones) and an unbound recursive resolver
# with stub zones, on free loopback ports, in a temp dir (research/acme.md §3.7-3.8).
#
# Source lib.sh first (it owns the temp dir, the pid bookkeeping and the assertions):
#
#   . "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/lib_dns.sh"
#   e2e_init
#   dns_init                                  # ports, key, dirs under $E2E_TMP/dns
#   dns_zone customer.test <<'ZONE'           # a static zone: records only (SOA, NS and
#   _acme-challenge  CNAME  abc.acme.validation.test.    #  ns1 A 127.0.0.1 are added)
#   @                CAA    0 issue "letsencrypt.org"
#   ZONE
#   dns_dead_zone broken.test                 # unbound stubs it to a dead port: SERVFAIL
#   dns_start                                 # knotd + unbound, waits until both answer
#   dns_resolve www.customer.test CAA         # through unbound (answer section)
#   dns_auth x.acme.validation.test TXT       # straight from Knot
#   dns_zone customer.test <<<'...'; dns_reload customer.test   # change a zone live
#   dns_flush                                 # empty unbound's cache
#   dns_nsupdate <<<'update add x.acme.validation.test. 60 TXT "v"'   # knsupdate + key
#   (lib.sh's exit trap stops both servers by pid; dns_stop does it earlier)
#
# Set by dns_init (fixed for the whole test):
#   DNS_DIR                 $E2E_TMP/dns (knot.conf, unbound.conf, zone files, secret)
#   DNS_AUTH_PORT           Knot on 127.0.0.1, UDP and TCP
#   DNS_RESOLVER_PORT       unbound on 127.0.0.1, UDP and TCP
#   DNS_AUTH, DNS_RESOLVER  the same as "127.0.0.1:PORT", ready for certsync's dns section
#   DNS_VALIDATION_ZONE     validation.test (set it before dns_init to change it)
#   DNS_VALIDATION_DOMAIN   acme.validation.test: the ACL lets the key change TXT records
#                           strictly below this name and nothing else (settable likewise)
#   DNS_TSIG_NAME           certsync-key          DNS_TSIG_ALG   hmac-sha256
#   DNS_TSIG_SECRET_FILE    the base64 secret alone, mode 0600 (DNS_TSIG_SECRET holds it)
#   KNOT_PID, UNBOUND_PID   after dns_start
# The fake TLD is .test (RFC 6761); Knot also serves the zone "test." itself so that CAA
# climbs can reach the TLD. Zone TTLs and SOA minimum are 60 s; unbound caps its cache at
# 5 s (negative answers: 1 s) and has a control socket for dns_flush.
#
# Executed directly (bash tests/e2e/lib_dns.sh) this file runs a self-test of the fixtures,
# so tests/run.sh, which runs every tests/e2e/*.sh but lib.sh, gets a meaningful check.

DNS_VALIDATION_ZONE=${DNS_VALIDATION_ZONE:-validation.test}
DNS_VALIDATION_DOMAIN=${DNS_VALIDATION_DOMAIN:-acme.$DNS_VALIDATION_ZONE}
DNS_TSIG_NAME=${DNS_TSIG_NAME:-certsync-key}
DNS_TSIG_ALG=${DNS_TSIG_ALG:-hmac-sha256}
DNS_DIR=
DNS_AUTH_PORT=
DNS_RESOLVER_PORT=
DNS_AUTH=
DNS_RESOLVER=
DNS_TSIG_SECRET=
DNS_TSIG_SECRET_FILE=
KNOT_PID=
UNBOUND_PID=
DNS_ZONES=()
DNS_DEAD_ZONES=()

# dns_init: directories, ports (bound all at once, then released), the TSIG key, and the
# two zones always served (test. and the validation zone).
dns_init() {
	need knotd knotc kdig knsupdate unbound unbound-checkconf unbound-control openssl python3
	[ -n "${E2E_TMP:-}" ] || die "dns_init: call e2e_init first"
	DNS_DIR=$E2E_TMP/dns
	mkdir -p "$DNS_DIR/knot/run" "$DNS_DIR/knot/storage" "$DNS_DIR/unbound" || return 1
	read -r DNS_AUTH_PORT DNS_RESOLVER_PORT <<<"$(free_ports 2)"
	# shellcheck disable=SC2034 # for the sourcing test
	DNS_AUTH=127.0.0.1:$DNS_AUTH_PORT
	# shellcheck disable=SC2034
	DNS_RESOLVER=127.0.0.1:$DNS_RESOLVER_PORT
	DNS_TSIG_SECRET=$(openssl rand -base64 32) || return 1
	DNS_TSIG_SECRET_FILE=$DNS_DIR/tsig.secret
	(umask 077 && printf '%s\n' "$DNS_TSIG_SECRET" >"$DNS_TSIG_SECRET_FILE") || return 1
	DNS_ZONES=()
	DNS_DEAD_ZONES=()
	dns_zone test </dev/null || return 1
	dns_zone "$DNS_VALIDATION_ZONE" </dev/null || return 1
}

# dns_zone NAME: a static zone served by Knot and stubbed in unbound; records on stdin,
# names relative to the zone. Call it before dns_start, or follow it by dns_reload NAME.
# Each rewrite bumps the SOA serial.
dns_zone() {
	local zone=$1 file="$DNS_DIR/knot/storage/$1.zone" serial=1 z
	if [ -f "$file" ]; then
		serial=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "SOA") { print $(i + 3) + 1; exit } }' "$file")
	fi
	{
		# shellcheck disable=SC2016 # zone-file directives, not shell expansions
		printf '$ORIGIN %s.\n$TTL 60\n' "$zone"
		printf '@ SOA ns1.%s. hostmaster.%s. %s 3600 600 86400 60\n' "$zone" "$zone" "${serial:-1}"
		printf '@ NS ns1.%s.\nns1 A 127.0.0.1\n' "$zone"
		cat
	} >"$file" || return 1
	for z in "${DNS_ZONES[@]+"${DNS_ZONES[@]}"}"; do
		[ "$z" = "$zone" ] && return 0
	done
	DNS_ZONES+=("$zone")
}

# dns_dead_zone NAME: Knot is configured for NAME but has no zone file for it, so it
# answers SERVFAIL at and under NAME, and unbound (stubbed to it) does too, at once (a
# stub to a dead port would take unbound's whole retry schedule). Before dns_start.
dns_dead_zone() {
	DNS_DEAD_ZONES+=("$1")
}

_dns_knot_conf() {
	local z
	cat <<KNOTCONF
server:
    rundir: "$DNS_DIR/knot/run"
    listen: 127.0.0.1@$DNS_AUTH_PORT

log:
  - target: stderr
    any: info

database:
    storage: "$DNS_DIR/knot/storage"

key:
  - id: $DNS_TSIG_NAME
    algorithm: $DNS_TSIG_ALG
    secret: $DNS_TSIG_SECRET

acl:
  - id: certsync-update
    address: 127.0.0.0/8
    key: $DNS_TSIG_NAME
    action: update
    update-type: [TXT]
    update-owner: name
    update-owner-match: sub
    update-owner-name: [$DNS_VALIDATION_DOMAIN.]

template:
  - id: default
    storage: "$DNS_DIR/knot/storage"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all

zone:
KNOTCONF
	for z in "${DNS_ZONES[@]}"; do
		if [ "$z" = "$DNS_VALIDATION_ZONE" ]; then
			printf '  - domain: %s\n    acl: certsync-update\n' "$z"
		else
			printf '  - domain: %s\n' "$z"
		fi
	done
	for z in "${DNS_DEAD_ZONES[@]+"${DNS_DEAD_ZONES[@]}"}"; do
		printf '  - domain: %s\n    file: "%s/knot/no-such-file-%s.zone"\n' "$z" "$DNS_DIR" "$z"
	done
}

_dns_unbound_conf() {
	local z
	cat <<UNBOUNDCONF
server:
    interface: 127.0.0.1@$DNS_RESOLVER_PORT
    port: $DNS_RESOLVER_PORT
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "$DNS_DIR/unbound"
    pidfile: "$DNS_DIR/unbound/unbound.pid"
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    local-zone: "test." nodefault
    domain-insecure: "test."
    cache-max-ttl: 5
    cache-max-negative-ttl: 1
    qname-minimisation: no
    verbosity: 1
remote-control:
    control-enable: yes
    control-interface: "$DNS_DIR/unbound/control.sock"
    control-use-cert: no
UNBOUNDCONF
	for z in "${DNS_ZONES[@]}"; do
		printf 'stub-zone:\n    name: "%s."\n    stub-addr: 127.0.0.1@%s\n' "$z" "$DNS_AUTH_PORT"
	done
	for z in "${DNS_DEAD_ZONES[@]+"${DNS_DEAD_ZONES[@]}"}"; do
		printf 'stub-zone:\n    name: "%s."\n    stub-addr: 127.0.0.1@%s\n' "$z" "$DNS_AUTH_PORT"
	done
}

# _dns_wait_answer PORT PID NAME: until the server on PORT answers NAME SOA with NOERROR;
# fails early when PID dies.
_dns_wait_answer() {
	local i
	for ((i = 0; i < 100; i++)); do
		kdig @127.0.0.1 -p "$1" +time=1 +retry=0 "$3" SOA 2>/dev/null |
			grep -q 'status: NOERROR' && return 0
		kill -0 "$2" 2>/dev/null || {
			echo "DNS server (pid $2) exited before answering" >&2
			return 1
		}
		sleep 0.1
	done
	echo "no NOERROR answer for $3 SOA on port $1 after 10 s" >&2
	return 1
}

# dns_start: knotd, then unbound, in the foreground of background jobs; logs in
# $E2E_TMP/knot.log and $E2E_TMP/unbound.log; pids recorded for lib.sh's cleanup.
dns_start() {
	_dns_knot_conf >"$DNS_DIR/knot.conf" || return 1
	_dns_unbound_conf >"$DNS_DIR/unbound.conf" || return 1
	knotc -c "$DNS_DIR/knot.conf" conf-check >>"$E2E_TMP/knot.log" 2>&1 ||
		die "knot.conf does not check (see knot.log)"
	unbound-checkconf "$DNS_DIR/unbound.conf" >>"$E2E_TMP/unbound.log" 2>&1 ||
		die "unbound.conf does not check (see unbound.log)"
	knotd -c "$DNS_DIR/knot.conf" >>"$E2E_TMP/knot.log" 2>&1 &
	KNOT_PID=$!
	E2E_PIDS+=("$KNOT_PID")
	_dns_wait_answer "$DNS_AUTH_PORT" "$KNOT_PID" "$DNS_VALIDATION_ZONE" || return 1
	unbound -d -c "$DNS_DIR/unbound.conf" >>"$E2E_TMP/unbound.log" 2>&1 &
	UNBOUND_PID=$!
	E2E_PIDS+=("$UNBOUND_PID")
	_dns_wait_answer "$DNS_RESOLVER_PORT" "$UNBOUND_PID" "$DNS_VALIDATION_ZONE" || return 1
}

dns_stop() {
	stop_pid "$UNBOUND_PID"
	stop_pid "$KNOT_PID"
}

# dns_reload ZONE: Knot re-reads the zone file dns_zone rewrote (blocking until loaded),
# then unbound's cache is flushed.
dns_reload() {
	knotc -c "$DNS_DIR/knot.conf" -b zone-reload "$1" >>"$E2E_TMP/knot.log" 2>&1 || return 1
	dns_flush
}

# dns_flush: unbound forgets what it cached (answers and server state).
dns_flush() {
	local c
	for c in "flush_zone test." "flush_infra all" "flush_requestlist"; do
		# shellcheck disable=SC2086 # the command and its argument are two words
		unbound-control -c "$DNS_DIR/unbound.conf" $c >>"$E2E_TMP/unbound.log" 2>&1
	done
	return 0
}

# dns_resolve NAME TYPE: the answer section through unbound, one record per line.
dns_resolve() {
	kdig @127.0.0.1 -p "$DNS_RESOLVER_PORT" +time=3 +retry=0 +noall +answer "$1" "$2"
}

# dns_auth NAME TYPE: the answer section straight from Knot (RD=0).
dns_auth() {
	kdig @127.0.0.1 -p "$DNS_AUTH_PORT" +time=3 +retry=0 +norecurse +noall +answer "$1" "$2"
}

# dns_nsupdate: knsupdate against Knot with the test key; update commands on stdin
# ("send" is added).
dns_nsupdate() {
	{
		printf 'server 127.0.0.1 %s\nzone %s.\n' "$DNS_AUTH_PORT" "$DNS_VALIDATION_ZONE"
		cat
		printf 'send\nquit\n'
	} | knsupdate -y "$DNS_TSIG_ALG:$DNS_TSIG_NAME:$DNS_TSIG_SECRET"
}

# ---------------------------------------------------------------------------------------
# self-test: bash tests/e2e/lib_dns.sh
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	# shellcheck source=tests/e2e/lib.sh
	. "$(dirname "$0")/lib.sh"
	e2e_init
	dns_init || die "dns_init failed"
	dns_zone customer.test <<'ZONE'
_acme-challenge CNAME x1.acme.validation.test.
@ CAA 0 issue "letsencrypt.org"
ZONE
	dns_dead_zone broken.test
	dns_start || die "dns_start failed"
	section "lib_dns self-test"
	assert_contains "Knot serves the customer zone" "$(dns_auth customer.test CAA)" \
		'issue "letsencrypt.org"'
	assert_ok "a signed update inside the ACL" dns_nsupdate \
		<<<'update add x1.acme.validation.test. 60 TXT "self-test"'
	assert_contains "unbound chases the CNAME into the validation zone" \
		"$(dns_resolve _acme-challenge.customer.test TXT)" '"self-test"'
	assert_contains "a dead zone is SERVFAIL" \
		"$(kdig @127.0.0.1 -p "$DNS_RESOLVER_PORT" +time=10 +retry=0 www.broken.test CAA)" \
		'status: SERVFAIL'
	dns_zone customer.test <<<'@ CAA 0 issue "ca.example"'
	dns_reload customer.test || die "reload failed"
	assert_contains "a rewritten zone is served after dns_reload" \
		"$(dns_resolve customer.test CAA)" 'ca.example'
	dns_stop
	e2e_finish
fi

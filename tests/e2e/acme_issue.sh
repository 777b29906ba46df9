#!/usr/bin/env bash
# End to end: `certsync run` obtains, installs and renews certificates by ACME dns-01
# through CNAME delegation — real Pebble 2.4 (-dnsserver unbound, its 5 % badNonce left on,
# PEBBLE_VA_NOSLEEP=1, certificates valid 120 s), Knot (validation zone with a TSIG update
# ACL, customer zones with _acme-challenge CNAMEs and CAA) and unbound (lib_dns.sh),
# HAProxy 2.6; everything on 127.0.0.1, ports picked at run time.
#
#   1. a.customer.test, customer.test and *.customer.test (wildcard + apex: one order
#      each, their TXT values at one name) are issued and served; the served chain
#      verifies against Pebble's /roots/0; the served serial is the stored one
#   2. delegation missing (www.missing.test) and CAA forbidding (www.denied.test): status
#      says so with the exact record to add, and nothing is ordered for them
#   3. a 120 s certificate is renewed automatically at half its lifetime and the new
#      serial is served by the same HAProxy process (no reload)
#   4. kill -9 of certsync right after an order is created; the restarted daemon resumes
#      that order by URL (no second newOrder for the hostname) and serves the certificate
#   5. the shared layout: a second daemon (own state_dir) with layout "shared" issues
#   6. Knot (the validation zone's server) down: recheck reports the failure, nothing is
#      ordered, status shows it with a backoff; Knot back: recheck issues
#
# Usage: BUILD=build bash tests/e2e/acme_issue.sh   (certsync and dnsdrv from $BUILD)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib_dns.sh"

CERTSYNC=${CERTSYNC:-$BUILD/bin/certsync}
DNSDRV=${DNSDRV:-$BUILD/tests/dnsdrv}
PEBBLE=${PEBBLE:-pebble}
need "$PEBBLE" "$HAPROXY" curl openssl jq python3
[ -x "$CERTSYNC" ] || die "no certsync at $CERTSYNC"
[ -x "$DNSDRV" ] || die "no dnsdrv at $DNSDRV"
e2e_init

PKI=$E2E_TMP/pki
e2e_pki "$PKI" || die "test PKI"
CA=$PKI/server-ca.crt

target() { DNS_VALIDATION_DOMAIN=acme.validation.test "$DNSDRV" target "$1" "${2:-per-host}" | sed -n 's/^target=//p'; }

dns_init || die "dns_init"
T_A=$(target a.customer.test)
T_APEX=$(target customer.test)
T_B=$(target b.customer.test)
T_C=$(target c.customer.test)
T_D=$(target d.customer.test)
dns_zone customer.test <<ZONE
_acme-challenge.a CNAME $T_A.
_acme-challenge CNAME $T_APEX.
_acme-challenge.b CNAME $T_B.
_acme-challenge.c CNAME $T_C.
_acme-challenge.d CNAME $T_D.
_acme-challenge.s CNAME _acme-challenge.acme.validation.test.
@ CAA 0 issue "pebble.test"
ZONE
dns_zone missing.test <<'ZONE'
@ CAA 0 issue "pebble.test"
ZONE
T_DENIED=$(target www.denied.test)
dns_zone denied.test <<ZONE
_acme-challenge.www CNAME $T_DENIED.
@ CAA 0 issue "other-ca.example"
ZONE
dns_start || die "dns_start"
# Pebble gets its own resolver that caches nothing: with one shared cache, certsync's
# delegation check (CNAME -> NXDOMAIN) or the apex's TXT value would be served to Pebble
# from cache moments later; the CA's resolvers are not certsync's.
PEBBLE_DNS_PORT=$(free_port)
mkdir -p "$DNS_DIR/unbound-ca"
sed -e "s/@$DNS_RESOLVER_PORT\$/@$PEBBLE_DNS_PORT/" -e "s/port: $DNS_RESOLVER_PORT\$/port: $PEBBLE_DNS_PORT/" \
	-e "s#$DNS_DIR/unbound#$DNS_DIR/unbound-ca#g" -e 's/cache-max-ttl: 5/cache-max-ttl: 0/' \
	-e 's/cache-max-negative-ttl: 1/cache-max-negative-ttl: 0/' \
	"$DNS_DIR/unbound.conf" >"$DNS_DIR/unbound-ca.conf"
unbound -d -c "$DNS_DIR/unbound-ca.conf" >>"$E2E_TMP/unbound-ca.log" 2>&1 &
E2E_PIDS+=("$!")
_dns_wait_answer "$PEBBLE_DNS_PORT" "$!" validation.test || die "Pebble's unbound"

# --- Pebble ----------------------------------------------------------------------------
read -r P1 P2 P3 P4 FE_PORT M1 M2 <<<"$(free_ports 7)"
cat >"$E2E_TMP/pebble.json" <<EOF
{ "pebble": {
    "listenAddress": "127.0.0.1:$P1",
    "managementListenAddress": "127.0.0.1:$P2",
    "certificate": "$PKI/server.crt",
    "privateKey": "$PKI/server.key",
    "httpPort": $P3, "tlsPort": $P4,
    "ocspResponderURL": "",
    "certificateValidityPeriod": 120
} }
EOF
PEBBLE_VA_NOSLEEP=1 "$PEBBLE" -config "$E2E_TMP/pebble.json" -dnsserver "127.0.0.1:$PEBBLE_DNS_PORT" \
	>>"$E2E_TMP/pebble.log" 2>&1 &
E2E_PIDS+=("$!")
wait_port "$P1" 20 "$!" || die "pebble did not start"
wait_port "$P2" 20 || die "pebble management port"
curl -sS --fail --cacert "$CA" "https://127.0.0.1:$P2/roots/0" >"$E2E_TMP/root0.pem" || die "roots/0"

# newOrders Pebble received (its log has one "POST /order-plz" per newOrder... counted
# from the access lines; the fallback is certsync's own log)
# The newOrders Pebble accepted: its POST /order-plz lines, less those it refused with
# badNonce (5 % of requests, on purpose), which certsync retried and logged with the URL.
pebble_orders() {
	local posts refused
	posts=$(grep -c 'POST /order-plz' "$E2E_TMP/pebble.log")
	refused=$(cat "$E2E_TMP"/certsync*.log 2>/dev/null | grep -c 'event=acme_bad_nonce url=[^ ]*/order-plz')
	echo $((posts - refused))
}

# --- certsync + HAProxy ----------------------------------------------------------------
# write_conf DIR LAYOUT METRICS_PORT HOSTNAMES...
write_conf() {
	local dir=$1 layout=$2 mport=$3 hosts="" h
	shift 3
	for h in "$@"; do hosts+="${hosts:+, }\"$h\""; done
	mkdir -p "$dir"
	cat >"$dir/certsync.conf" <<EOF
state_dir = "$dir/state";
metrics_listen = "127.0.0.1:$mport";
haproxy: { runtime_api = "unix:$E2E_TMP/admin.sock"; };
acme: {
  directory = "https://127.0.0.1:$P1/dir";
  contact = [ "mailto:ops@customer.test" ];
  ca_identities = [ "pebble.test" ];
  server_ca_file = "$CA";
};
dns: {
  resolver = "$DNS_RESOLVER";
  validation_domain = "acme.validation.test";
  layout = "$layout";
  update: { server = "$DNS_AUTH"; tsig_name = "$DNS_TSIG_NAME"; tsig_algorithm = "$DNS_TSIG_ALG";
            tsig_secret_file = "$DNS_TSIG_SECRET_FILE"; };
  authoritative = [ "$DNS_AUTH" ];
};
environments = ( { name = "prod"; auto_certificates = true; hostnames = [ $hosts ]; } );
EOF
}
MAIN=$E2E_TMP/main
write_conf "$MAIN" per-host "$M1" a.customer.test customer.test '*.customer.test' \
	www.missing.test www.denied.test
SHARED=$E2E_TMP/shared
write_conf "$SHARED" shared "$M2" s.customer.test
mkdir -p "$MAIN/state/haproxy" "$SHARED/state/haproxy"
: >"$MAIN/state/haproxy/prod.crt-list"
: >"$SHARED/state/haproxy/prod.crt-list"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=default.invalid -keyout "$E2E_TMP/d.key" -out "$E2E_TMP/d.crt" 2>/dev/null
cat "$E2E_TMP/d.crt" "$E2E_TMP/d.key" >"$E2E_TMP/default.pem"
cat >"$E2E_TMP/haproxy.cfg" <<EOF
global
    stats socket $E2E_TMP/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:$FE_PORT ssl crt $E2E_TMP/default.pem crt-list $MAIN/state/haproxy/prod.crt-list crt-list $SHARED/state/haproxy/prod.crt-list
    http-request return status 200 content-type text/plain string ok
EOF
start_haproxy "$E2E_TMP/haproxy.cfg" "$FE_PORT" || die "haproxy"
HAPROXY_PID0=$HAPROXY_PID

CS_PID=
start_cs() { # DIR LOGNAME
	"$CERTSYNC" -c "$1/certsync.conf" run >>"$E2E_TMP/$2.log" 2>&1 &
	CS_PID=$!
	E2E_PIDS+=("$CS_PID")
}
cs() { "$CERTSYNC" -c "$MAIN/certsync.conf" "$@"; }

served() { # HOST [NAME]: the served leaf's serial when its only SAN is NAME (default HOST)
	local pem
	pem=$(timeout 5 openssl s_client -connect "127.0.0.1:$FE_PORT" -servername "$1" </dev/null \
		2>/dev/null | openssl x509 2>/dev/null)
	if [ "$(openssl x509 -noout -ext subjectAltName <<<"$pem" 2>/dev/null | tail -n +2 |
		tr -d ' ')" = "DNS:${2:-$1}" ]; then
		openssl x509 -noout -serial <<<"$pem" | sed 's/^serial=//'
	else
		openssl x509 -noout -serial <<<"$pem" 2>/dev/null | sed 's/^serial=/other:/'
	fi
}
served_chain_ok() { # HOST: the served chain verifies against Pebble's root
	timeout 5 openssl s_client -connect "127.0.0.1:$FE_PORT" -servername "$1" -showcerts \
		</dev/null 2>/dev/null | awk '/BEGIN CERT/,/END CERT/' >"$E2E_TMP/served.pem"
	openssl verify -CAfile "$E2E_TMP/root0.pem" -untrusted "$E2E_TMP/served.pem" \
		"$E2E_TMP/served.pem" >/dev/null 2>&1 && echo OK
}
default_serial=$(openssl x509 -in "$E2E_TMP/d.crt" -noout -serial | sed 's/^serial=//')
# wait_issued HOST SECS [NOT_SERIAL] [NAME]: until HOST is served a certificate for exactly
# NAME (default HOST) other than NOT_SERIAL; prints its serial
wait_issued() {
	local i s
	for ((i = 0; i < $2 * 4; i++)); do
		s=$(served "$1" "${4:-}")
		[ -n "$s" ] && [ "${s#other:}" = "$s" ] && [ "$s" != "${3:-}" ] && {
			printf '%s' "$s"
			return 0
		}
		sleep 0.25
	done
	printf '%s' "$s"
	return 1
}
status_of() { cs status --json 2>/dev/null | jq -c --arg h "$1" '.[] | select(.hostname == $h)'; }

# ---------------------------------------------------------------------------------------
section "1. issuance: per-host delegation, wildcard + apex"
start_cs "$MAIN" certsync
S_A=$(wait_issued a.customer.test 30)
assert_ne "a.customer.test is served an issued certificate" "$default_serial" "${S_A:-none}"
S_APEX=$(wait_issued customer.test 30)
assert_ne "customer.test (apex) is served" "$default_serial" "${S_APEX:-none}"
S_W=$(wait_issued x.customer.test 30 "" "*.customer.test")
assert_ne "*.customer.test is served for x.customer.test" "$default_serial" "${S_W:-none}"
assert_ne "apex and wildcard have their own certificates" "$S_APEX" "$S_W"
assert_eq "the served chain verifies against Pebble's /roots/0" OK "$(served_chain_ok a.customer.test)"
st=$(status_of a.customer.test)
assert_eq "status: the served serial is the stored one" "$S_A" "$(jq -r .certificate.serial <<<"$st")"
assert_eq "status: delegation ok" ok "$(jq -r .delegation.state <<<"$st")"
assert_eq "status: caa allowed" allowed "$(jq -r .caa.state <<<"$st")"
assert_ne "status: next_renewal set" null "$(jq -r .next_renewal <<<"$st")"
acct_mode=$(stat -c %a "$MAIN/state/acme/account.key")
assert_eq "account key 0600" 600 "$acct_mode"

section "2. failing checks: explained, nothing ordered"
sleep 1
st=$(status_of www.missing.test)
assert_eq "missing delegation reported" missing "$(jq -r .delegation.state <<<"$st")"
assert_eq "... with the exact record to add" \
	"_acme-challenge.www.missing.test. CNAME $(target www.missing.test)." \
	"$(jq -r .delegation.record <<<"$st")"
st=$(status_of www.denied.test)
assert_eq "CAA forbidden reported" forbidden "$(jq -r .caa.state <<<"$st")"
assert_contains "... with the record to add" "$(jq -r .caa.record <<<"$st")" 'issue "pebble.test"'
assert_eq "no order for the failing hostnames" 0 \
	"$(grep -c 'acme_order_created hostname=www\.' "$E2E_TMP/certsync.log")"
ORDERS1=$(pebble_orders)
assert_eq "Pebble saw exactly the three newOrders" 3 "$ORDERS1"
m=$(curl -sS "http://127.0.0.1:$M1/metrics")
assert_contains "metric: dns check failed for www.missing.test" "$m" \
	'certsync_dns_check_ok{hostname="www.missing.test",check="delegation"} 0'
assert_contains "metric: last error class" "$m" \
	'certsync_acme_last_error{hostname="www.denied.test",class="caa"} 1'
assert_contains "metric: orders valid" "$m" 'certsync_acme_orders_total{result="valid"} 3'

section "3. renewal at half of a 120 s lifetime, served without a reload"
S_A2=$(wait_issued a.customer.test 80 "$S_A")
assert_ne "a.customer.test renewed: a new serial is served" "$S_A" "${S_A2:-none}"
assert_eq "same HAProxy process (no reload)" "$HAPROXY_PID0" \
	"$(haproxy_cmd "$E2E_TMP/admin.sock" 'show info' | awk -F': ' '$1 == "Pid" { print $2 }')"
kill -0 "$HAPROXY_PID0" && pass_ "HAProxy still running"

section "4. kill -9 mid-order, restart resumes the order"
stop_pid "$CS_PID"
write_conf "$MAIN" per-host "$M1" a.customer.test customer.test '*.customer.test' \
	www.missing.test www.denied.test b.customer.test
: >"$E2E_TMP/certsync2.log"
start_cs "$MAIN" certsync2
for ((i = 0; i < 400; i++)); do
	grep -q 'acme_order_created hostname=b.customer.test' "$E2E_TMP/certsync2.log" && break
	sleep 0.02
done
kill -9 "$CS_PID"
wait "$CS_PID" 2>/dev/null
assert_contains "the order for b.customer.test was created" "$(cat "$E2E_TMP/certsync2.log")" \
	"acme_order_created hostname=b.customer.test"
ls "$MAIN/state/acme/orders/" >"$E2E_TMP/orders.ls" 2>&1
assert_contains "the order in flight is on disk" "$(cat "$E2E_TMP/orders.ls")" "b.customer.test.json"
assert_eq "its key is 0600" 600 "$(stat -c %a "$MAIN/state/acme/orders/b.customer.test.key" 2>/dev/null)"
# A stale TXT value at a delegation target (as a killed attempt can leave): swept at start.
T_B=$(target b.customer.test)
printf 'update add %s. 60 TXT "stale-value-from-a-killed-attempt"\n' "$T_B" | dns_nsupdate
assert_contains "a stale TXT value planted at $T_B" "$(dns_auth "$T_B" TXT)" "stale-value"
start_cs "$MAIN" certsync3
S_B=$(wait_issued b.customer.test 30)
assert_contains "the restarted daemon swept the stale value" "$(cat "$E2E_TMP/certsync3.log")" \
	"event=txt_swept name=$T_B"
assert_not_contains "the stale value is gone from the validation zone" "$(dns_auth "$T_B" TXT)" \
	"stale-value"
assert_ne "b.customer.test served after the restart" "$default_serial" "${S_B:-none}"
assert_contains "the restarted daemon resumed the order" "$(cat "$E2E_TMP/certsync3.log")" \
	"acme_order_resumed hostname=b.customer.test"
assert_eq "no second newOrder for b.customer.test" 0 \
	"$(grep -c 'acme_order_created hostname=b.customer.test' "$E2E_TMP/certsync3.log")"

section "5. shared layout"
start_cs "$SHARED" certsync-shared
SHARED_PID=$CS_PID
S_S=$(wait_issued s.customer.test 30)
assert_ne "s.customer.test issued through _acme-challenge.acme.validation.test" \
	"$default_serial" "${S_S:-none}"
stop_pid "$SHARED_PID"

section "6. the validation zone's server down, then back"
stop_pid "$KNOT_PID"
dns_flush
ORDERS_BEFORE=$(pebble_orders)
write_conf "$MAIN" per-host "$M1" a.customer.test customer.test '*.customer.test' \
	www.missing.test www.denied.test b.customer.test c.customer.test
# the daemon takes the new hostname at once (configuration reload) and fails its checks
for ((i = 0; i < 60; i++)); do
	[ "$(status_of c.customer.test | jq -r .delegation.state)" = lookup-failed ] && break
	sleep 0.5
done
out=$(cs recheck c.customer.test 2>&1)
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/recheck-down.out"
assert_eq "recheck with Knot down exits 1" 1 "$rc"
assert_contains "recheck says nothing was ordered" "$out" "nothing ordered"
assert_contains "recheck shows the delegation lookup failure" "$out" "lookup-failed"
st=$(status_of c.customer.test)
assert_ne "status: last_error explains" "" "$(jq -r '.last_error // ""' <<<"$st")"
assert_eq "status: delegation lookup-failed" lookup-failed "$(jq -r .delegation.state <<<"$st")"
na=$(jq -r .next_renewal <<<"$st")
assert_lt "status: next attempt backed off (>= 50 s away)" 50 \
	"$(($(date -d "$na" +%s) - $(date +%s)))"
assert_eq "nothing ordered while Knot is down" "$ORDERS_BEFORE" "$(pebble_orders)"
knotd -c "$DNS_DIR/knot.conf" >>"$E2E_TMP/knot.log" 2>&1 &
KNOT_PID=$!
E2E_PIDS+=("$KNOT_PID")
_dns_wait_answer "$DNS_AUTH_PORT" "$KNOT_PID" validation.test || die "knot restart"
dns_flush
out=$(cs recheck c.customer.test 2>&1)
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/recheck-up.out"
assert_eq "recheck with Knot back exits 0" 0 "$rc"
assert_contains "recheck: issued" "$out" "issued"
S_C=$(wait_issued c.customer.test 15)
assert_ne "c.customer.test served" "$default_serial" "${S_C:-none}"

e2e_finish

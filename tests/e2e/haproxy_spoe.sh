#!/usr/bin/env bash
# End to end: the real HAProxy 2.6 with haproxy/haproxy.cfg and haproxy/spoe-mtls.conf in
# front of spoa-mtls, everything on 127.0.0.1 with ports picked at run time.
#
#   (a) `haproxy -c` accepts the shipped example (paths substituted) and the test config
#   (b) TLS requests reach the origin with the agent's variables; client-sent
#       x-ssl-client-* headers never do
#   (c) one NOTIFY per TLS connection: H1 keep-alive and H2, 3 requests each
#   (d) SIGKILL the agent: option spop-check marks it DOWN, requests get the fail
#       behaviour of their mode at once (permissive passes with FAILED:agent-unavailable,
#       required/optional/optional-no-ca get 503, disabled is never sent); restart: UP
#   (e) `promtool check metrics` on the agent's /metrics
#
# The test config is the shipped haproxy.cfg itself with ports and paths rewritten by sed,
# test-only headers inserted before `default_backend` (they expose sess.mtls.* and
# txn.mtls.* to the origin) and an echo origin appended, so the shipped rules are what runs.
# The SPOE file is the shipped one with its map paths pointed at the test's maps.
#
# Usage: BUILD=build bash tests/e2e/haproxy_spoe.sh     (agent at $BUILD/bin/spoa-mtls)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need "$HAPROXY" curl openssl python3 promtool awk sed
e2e_init

EXAMPLE=$E2E_ROOT/haproxy/haproxy.cfg
SPOE_CONF=$E2E_TMP/spoe-mtls.conf
PKI=$E2E_TMP/pki
SOCK=$E2E_TMP/admin.sock
read -r FE_PORT ORIGIN_PORT AGENT_PORT METRICS_PORT <<<"$(free_ports 4)"
[ -n "$METRICS_PORT" ] || die "could not pick free ports"
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
NOTIFY=spoa_mtls_notify_processed_total
log "ports: frontend=$FE_PORT origin=$ORIGIN_PORT agent=$AGENT_PORT metrics=$METRICS_PORT"

e2e_pki "$PKI" || die "test PKI generation failed"
# certsync's files as the example expects them: a default certificate, an (empty)
# environment crt-list and the two maps. localhost is `permissive` (so HAProxy asks the
# agent; the agent, given no policy, answers it as disabled); (d) changes its mode.
mkdir -p "$E2E_TMP/edgetls" && cp "$PKI/server.pem" "$E2E_TMP/default.pem" &&
	: >"$E2E_TMP/edgetls/production.crt-list" &&
	printf '. disabled\nlocalhost p1\n' >"$E2E_TMP/edgetls/policy.map" &&
	printf '. disabled\nlocalhost permissive\n' >"$E2E_TMP/edgetls/mode.map"
MODE_MAP=$E2E_TMP/edgetls/mode.map
sed -e "s#/var/lib/edgetls/haproxy/#$E2E_TMP/edgetls/#g" "$E2E_ROOT/haproxy/spoe-mtls.conf" >"$SPOE_CONF"
assert_contains "SPOE file: map paths substituted" "$(cat "$SPOE_CONF")" "$E2E_TMP/edgetls/mode.map"

# --- helpers -----------------------------------------------------------------------------

# https REQUEST-ARGS...: curl through the frontend, trusting the test server CA
https() {
	curl -sS --max-time 10 --cacert "$PKI/server-ca.crt" \
		--resolve "localhost:$FE_PORT:127.0.0.1" "$@"
}
URL=https://localhost:$FE_PORT

# decode_echo: the echo origin answers base64(req.hdrs) (lf-string would escape CR/LF as
# %0D%0A); turn each such body line back into the header block, keep our @@ lines.
decode_echo() {
	local line
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in
		@@* | "") printf '%s\n' "$line" ;;
		*) printf '%s' "$line" | base64 -d 2>/dev/null | tr -d '\r' || printf 'UNDECODABLE %s\n' "$line" ;;
		esac
	done
}

# hdr BODY NAME: the value of header NAME in an echoed header block (first one; "" if none)
hdr() {
	printf '%s\n' "$1" | tr -d '\r' | awk -v n="$2" '
		{ i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == tolower(n)) {
			v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit } }'
}

# count_lines TEXT ERE: how many lines match (case-insensitive)
count_lines() {
	printf '%s\n' "$1" | tr -d '\r' | grep -ciE -- "$2"
}

# delta BEFORE AFTER: prints AFTER-BEFORE, or "read-failed" (never a silent 0 for a
# failed read: bash arithmetic would take an empty value as 0)
delta() {
	if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]]; then
		echo $(($2 - $1))
	else
		echo "read-failed(before='$1' after='$2')"
	fi
}

# notify_count: spoa_mtls_notify_processed_total once it has stopped moving (the agent
# counts a NOTIFY around the time it writes the ACK; let a late increment land).
notify_count() {
	local a b i
	a=$(metric "$METRICS_URL" "$NOTIFY") || return 1
	for i in 1 2 3 4 5; do
		sleep 0.2
		b=$(metric "$METRICS_URL" "$NOTIFY") || return 1
		[ "$a" = "$b" ] && break
		a=$b
	done
	echo "$a"
}

# wait_status STATE SECONDS: poll `show stat` until the agent server is STATE; prints the
# seconds it took, fails on timeout
wait_status() {
	local want=$1 secs=$2 t0 st i
	t0=$(date +%s.%N)
	for ((i = 0; i < secs * 20; i++)); do
		st=$(server_status "$SOCK" spoa-mtls agent1) || st=
		if [ "${st%% *}" = "$want" ]; then
			awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }'
			return 0
		fi
		sleep 0.05
	done
	echo "last status: '$st'" >&2
	return 1
}

# --- (a) haproxy -c ----------------------------------------------------------------------
section "(a) haproxy -c on the shipped example and on the test config"

# The example with its /etc/haproxy and /run paths pointed at temp files, nothing else.
sed -e "s#/etc/haproxy/default.pem#$E2E_TMP/default.pem#g" \
	-e "s#/var/lib/edgetls/haproxy/#$E2E_TMP/edgetls/#g" \
	-e "s#/etc/haproxy/spoe-mtls.conf#$SPOE_CONF#g" \
	-e "s#/run/haproxy/admin.sock#$E2E_TMP/example-admin.sock#g" \
	"$EXAMPLE" >"$E2E_TMP/example.cfg"
out=$(haproxy_check "$E2E_TMP/example.cfg")
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/check-example.log"
assert_eq "haproxy -c exit status on haproxy/haproxy.cfg" 0 "$rc"
assert_not_contains "haproxy -c on haproxy/haproxy.cfg: no warning" "$out" "WARNING"
assert_not_contains "example: no /etc/haproxy path left unsubstituted" \
	"$(grep -v '^[[:space:]]*#' "$E2E_TMP/example.cfg")" "/etc/haproxy"

# The test config: the same file, listening on our ports, logging to stderr, plus test-only
# headers (before default_backend) and the echo origin.
cat >"$E2E_TMP/test-headers.cfg" <<'EOF'
    # e2e only: expose what SPOE stored, under names the shipped rules never touch
    http-request set-header x-e2e-mtls-verify  %[var(sess.mtls.verify)]  if { var(sess.mtls.verify) -m found }
    http-request set-header x-e2e-mtls-verdict %[var(sess.mtls.verdict)] if { var(sess.mtls.verdict) -m found }
    http-request set-header x-e2e-mtls-seen    %[var(sess.mtls.seen)]    if { var(sess.mtls.seen) -m found }
    http-request set-header x-e2e-mtls-hdr     %[var(sess.mtls.hdr)]     if { var(sess.mtls.hdr) -m found }
    http-request set-header x-e2e-spoe-error   %[var(txn.mtls.error)]    if { var(txn.mtls.error) -m found }
    http-request set-header x-e2e-spoe-ptime   %[var(txn.mtls.ptime)]    if { var(txn.mtls.ptime) -m found }
EOF
sed -e "s#/etc/haproxy/default.pem#$E2E_TMP/default.pem#g" \
	-e "s#/var/lib/edgetls/haproxy/#$E2E_TMP/edgetls/#g" \
	-e "s#/etc/haproxy/spoe-mtls.conf#$SPOE_CONF#g" \
	-e "s#/run/haproxy/admin.sock#$SOCK#g" \
	-e "s#^\([[:space:]]*\)log /dev/log local0#\1log stderr format raw local0 info#" \
	-e "s#^\([[:space:]]*bind \):443 #\1127.0.0.1:$FE_PORT #" \
	-e "s#127\.0\.0\.1:12345#127.0.0.1:$AGENT_PORT#g" \
	-e "s#127\.0\.0\.1:8080#127.0.0.1:$ORIGIN_PORT#g" \
	"$EXAMPLE" | awk -v f="$E2E_TMP/test-headers.cfg" '
		/^[[:space:]]*default_backend origin/ { while ((getline l < f) > 0) print l }
		{ print }' >"$E2E_TMP/test.cfg"
cat >>"$E2E_TMP/test.cfg" <<EOF

# e2e only: the origin answers with the request headers it received, base64-encoded.
listen echo-origin
    bind 127.0.0.1:$ORIGIN_PORT
    http-request return status 200 content-type text/plain lf-string "%[req.hdrs,base64]"
EOF
cfg=$(cat "$E2E_TMP/test.cfg")
# Each substitution must have hit: if the example changes shape, this test must say so
# rather than silently test something else.
assert_contains "test config: frontend bound to the test port" "$cfg" "bind 127.0.0.1:$FE_PORT ssl"
assert_contains "test config: agent server on the test port" "$cfg" "server agent1 127.0.0.1:$AGENT_PORT check"
assert_contains "test config: origin server on the test port" "$cfg" "127.0.0.1:$ORIGIN_PORT"
assert_contains "test config: shipped SPOE file" "$cfg" "config $SPOE_CONF"
assert_contains "test config: stats socket in the temp dir" "$cfg" "stats socket $SOCK "
assert_contains "test config: test headers inserted" "$cfg" "x-e2e-mtls-verify"
out=$(haproxy_check "$E2E_TMP/test.cfg")
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/check-test.log"
assert_eq "haproxy -c exit status on the test config" 0 "$rc"
assert_not_contains "haproxy -c on the test config: no warning" "$out" "WARNING"
[ "$rc" -eq 0 ] || die "the test config does not load; see check-test.log"

# --- start -------------------------------------------------------------------------------
section "start spoa-mtls and HAProxy"
start_agent "$AGENT_PORT" "$METRICS_PORT" || die "spoa-mtls did not start"
log "spoa-mtls pid $AGENT_PID on 127.0.0.1:$AGENT_PORT"
start_haproxy "$E2E_TMP/test.cfg" "$FE_PORT" || die "haproxy did not start"
log "haproxy pid $HAPROXY_PID on 127.0.0.1:$FE_PORT"
t=$(wait_status UP 10) || die "agent server never UP in show stat"
log "agent server UP after ${t}s"
hc=$(metric "$METRICS_URL" spoa_mtls_health_checks_total)
sleep 1.5
hc2=$(metric "$METRICS_URL" spoa_mtls_health_checks_total)
assert_lt "option spop-check health checks answered by the agent (inter 1s: count grows)" \
	"${hc:-x}" "${hc2:-0}"

# --- (b) variables reach the origin, spoofed headers do not -------------------------------
section "(b) agent variables reach the origin; client-sent x-ssl-client-* never does"
n0=$(notify_count)
body=$(https --http1.1 -H 'x-ssl-client-verify: SUCCESS' -H 'X-SSL-Client-S-DN: CN=forged' \
	-H 'X-Ssl-Client-Cert: forged-cert' -H 'x-ssl-client-anything: forged' \
	-w '\n@@status=%{http_code}\n' "$URL/b1" | decode_echo)
n1=$(notify_count)
printf '%s\n' "$body" >"$E2E_TMP/b1-body.log"
assert_contains "H1 request through HAProxy answered by the echo origin" "$body" "@@status=200"
assert_eq "origin sees sess.mtls.verify from the agent" NONE "$(hdr "$body" x-e2e-mtls-verify)"
assert_eq "origin sees sess.mtls.verdict from the agent" allow "$(hdr "$body" x-e2e-mtls-verdict)"
assert_eq "sess.mtls.seen is true" 1 "$(hdr "$body" x-e2e-mtls-seen)"
assert_eq "sess.mtls.hdr is false (disabled policy)" 0 "$(hdr "$body" x-e2e-mtls-hdr)"
assert_eq "no SPOE error (txn.mtls.error unset)" "" "$(hdr "$body" x-e2e-spoe-error)"
assert_match "txn.mtls.ptime is set, in ms" "$(hdr "$body" x-e2e-spoe-ptime)" '^[0-9]+$'
assert_eq "no x-ssl-client-* header reaches the origin (disabled: none set, client's deleted)" \
	0 "$(count_lines "$body" '^x-ssl-client-')"
assert_not_contains "client's 'x-ssl-client-verify: SUCCESS' never reaches the origin" "$body" "SUCCESS"
assert_not_contains "client's mixed-case X-SSL-Client-S-DN never reaches the origin" "$body" "forged"
assert_eq "one NOTIFY for that connection" 1 "$(delta "$n0" "$n1")"

body=$(https --http2 -H 'x-ssl-client-verify: SUCCESS' -H 'x-ssl-client-s-dn: CN=forged' \
	-w '\n@@status=%{http_code} version=%{http_version}\n' "$URL/b2" | decode_echo)
printf '%s\n' "$body" >"$E2E_TMP/b2-body.log"
assert_contains "H2 request answered" "$body" "@@status=200 version=2"
assert_eq "H2: origin sees verify NONE" NONE "$(hdr "$body" x-e2e-mtls-verify)"
assert_eq "H2: no x-ssl-client-* header reaches the origin" 0 "$(count_lines "$body" '^x-ssl-client-')"
assert_not_contains "H2: spoofed values never reach the origin" "$body" "forged"

# --- (c) one NOTIFY per TLS connection ----------------------------------------------------
section "(c) one NOTIFY per TLS connection (H1 keep-alive, H2)"
for proto in http1.1 http2; do
	n0=$(notify_count)
	out=$(https --$proto -w '\n@@ver=%{http_version} connects=%{num_connects} status=%{http_code}\n' \
		"$URL/c1" "$URL/c2" "$URL/c3" | decode_echo)
	n1=$(notify_count)
	printf '%s\n' "$out" >"$E2E_TMP/c-$proto.log"
	want_ver=${proto#http}
	assert_eq "$proto: 3 responses with status 200" 3 "$(count_lines "$out" '^@@.* status=200$')"
	assert_eq "$proto: all 3 on protocol $want_ver" 3 "$(count_lines "$out" "^@@ver=$want_ver ")"
	assert_eq "$proto: curl opened exactly one connection for the 3 requests" 1 \
		"$(printf '%s\n' "$out" | sed -n 's/^@@.*connects=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')"
	assert_eq "$proto: every request carries the connection's verify NONE (sess scope)" 3 \
		"$(count_lines "$out" '^x-e2e-mtls-verify: NONE$')"
	assert_eq "$proto: exactly ONE NOTIFY for the 3 requests on one TLS connection" 1 "$(delta "$n0" "$n1")"
done
# Control: the counter does move once per connection (3 connections, 3 NOTIFYs).
n0=$(notify_count)
for i in 1 2 3; do https -o /dev/null "$URL/sep$i"; done
n1=$(notify_count)
assert_eq "control: 3 separate TLS connections make 3 NOTIFYs" 3 "$(delta "$n0" "$n1")"

# --- (e) promtool (with traffic behind the metrics, so the histogram is populated) ---------
section "(e) promtool check metrics"
curl -sf --max-time 5 "$METRICS_URL" >"$E2E_TMP/metrics.txt"
assert_eq "GET /metrics succeeds" 0 "$?"
assert_ok "promtool check metrics accepts the agent's /metrics" \
	sh -c "promtool check metrics <'$E2E_TMP/metrics.txt'"
mcount=$(metric "$METRICS_URL" spoa_mtls_processing_seconds_count)
assert_eq "processing_seconds_count equals notify_processed_total" \
	"$(metric "$METRICS_URL" "$NOTIFY")" "$mcount"

# --- (d) agent killed ---------------------------------------------------------------------
section "(d) SIGKILL the agent: spop-check marks it DOWN; requests get the fail behaviour"
kill_agent KILL
log "spoa-mtls pid $AGENT_PID killed with SIGKILL"
if t=$(wait_status DOWN 10); then
	log "agent server DOWN after ${t}s (inter 1s fall 1)"
	assert_lt "agent server marked DOWN within 3s" "$t" 3
else
	assert_eq "agent server marked DOWN after SIGKILL" DOWN "$(server_status "$SOCK" spoa-mtls agent1)"
fi

# With the agent down, what a request gets depends on the SNI's mode (DESIGN §3):
# permissive passes, saying FAILED:agent-unavailable; the validating modes fail closed
# (503); disabled is never sent to the agent. None waits for `timeout processing`.
body=$(https --http1.1 -H 'x-ssl-client-verify: SUCCESS' \
	-w '\n@@status=%{http_code} time=%{time_total}\n' "$URL/d1" | decode_echo)
printf '%s\n' "$body" >"$E2E_TMP/d1-body.log"
assert_contains "agent down, permissive: request passes" "$body" "@@status=200"
assert_eq "agent down, permissive: txn.mtls.error is 2 (no agent server up)" 2 "$(hdr "$body" x-e2e-spoe-error)"
assert_eq "agent down, permissive: no verdict variable" "" "$(hdr "$body" x-e2e-mtls-verdict)"
assert_eq "agent down, permissive: the origin is told the agent was unavailable" \
	"FAILED:agent-unavailable" "$(hdr "$body" x-ssl-client-verify)"
assert_eq "agent down, permissive: the client's forged header is gone (one verify header)" 1 \
	"$(count_lines "$body" '^x-ssl-client-verify:')"
ttot=$(printf '%s\n' "$body" | sed -n 's/^@@.*time=\([0-9.]*\).*/\1/p')
assert_lt "agent down: no wait for timeout processing (500ms), seconds" "${ttot:-x}" 0.4
out=$(https --http2 -w '\n@@status=%{http_code}\n' "$URL/d2" "$URL/d3" | decode_echo)
assert_eq "agent down, H2: both requests pass" 2 "$(count_lines "$out" '^@@status=200$')"
assert_eq "agent down, H2: each request of the connection asks SPOE again (error 2 each)" 2 \
	"$(count_lines "$out" '^x-e2e-spoe-error: 2$')"
assert_match "HAProxy log shows the SPOE error in the request log line" \
	"$(grep -a ' /d1 ' "$E2E_TMP/haproxy.log" | tail -n 1)" 'spoe_err=2 '
for mode in required optional optional-no-ca; do
	haproxy_cmd "$SOCK" "set map $MODE_MAP localhost $mode" >/dev/null
	code=$(https -o /dev/null -w '%{http_code}' "$URL/d-$mode")
	assert_eq "agent down, $mode: fails closed (503)" 503 "$code"
done
haproxy_cmd "$SOCK" "set map $MODE_MAP localhost disabled" >/dev/null
body=$(https -w '\n@@status=%{http_code}\n' "$URL/d-disabled" | decode_echo)
assert_contains "agent down, disabled: passes" "$body" "@@status=200"
assert_eq "agent down, disabled: not even asked (no SPOE error)" "" "$(hdr "$body" x-e2e-spoe-error)"
haproxy_cmd "$SOCK" "set map $MODE_MAP localhost permissive" >/dev/null

section "(d') restart the agent: UP again, verdicts again"
start_agent "$AGENT_PORT" "$METRICS_PORT" || die "spoa-mtls did not restart"
if t=$(wait_status UP 10); then
	log "agent server UP after ${t}s (rise 1)"
	pass_ "agent server UP again after restart"
else
	fail_ "agent server UP again after restart" "status: $(server_status "$SOCK" spoa-mtls agent1)"
fi
n0=$(notify_count)
body=$(https "$URL/d4" | decode_echo)
n1=$(notify_count)
assert_eq "after restart: origin sees verify NONE" NONE "$(hdr "$body" x-e2e-mtls-verify)"
assert_eq "after restart: one NOTIFY" 1 "$(delta "$n0" "$n1")"

section "graceful stop"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
assert_eq "spoa-mtls exits 0 on SIGTERM" 0 "$?"
assert_contains "spoa-mtls logs its stop" "$(cat "$E2E_TMP/agent.log")" "event=stopped"

e2e_finish

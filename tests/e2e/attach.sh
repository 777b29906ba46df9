#!/usr/bin/env bash
# haproxy/README.md, executed: the documented steps applied to a plain HAProxy
# configuration, then the real HAProxy 2.6 + spoa-mtls + certsync checked against the demo's
# behaviour.
#
# The steps come from the README's marked code blocks (`<!-- attach:NAME -->` before a
# fence), with only paths and ports rewritten to temp ones; a README change that breaks a
# step breaks this test:
#   attach:run       shell steps, run (install into a temp bin dir, certsync check +
#                    compile, SPOE file install); `make` runs with BUILD=$BUILD
#   attach:state-dir the SPOE map-path edit for a state_dir elsewhere (ours is a temp dir)
#   attach:global    the stats socket line, inserted after `global`
#   attach:bind      appended to the HTTPS bind line, one crt-list per environment
#   attach:rules     the extraction command, run; its output inserted before default_backend
#   attach:backend   appended; also compared with haproxy.cfg's `backend spoa-mtls`
#   attach:units     the ExecStart lines started (agent, certsync run), the `haproxy -c` run
#
# Checks: haproxy -c on the result; `required` without a client certificate fails the TLS
# handshake; with a valid one 200 and x-ssl-client-verify SUCCESS at the origin; `disabled`
# 200 without x-ssl-client-* headers; spoofed x-ssl-client-* never reach the origin; Host of
# another policy -> 421; the uploaded certificate is served; the agent answered.
#
# Usage: BUILD=build bash tests/e2e/attach.sh     (binaries in $BUILD/bin)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need "$HAPROXY" curl openssl python3 sed awk make
e2e_init
cd "$E2E_ROOT" || die "no repository at $E2E_ROOT"

README=$E2E_ROOT/haproxy/README.md
T=$E2E_TMP
PKI=$T/pki
read -r FE_PORT ORIGIN_PORT AGENT_PORT AGENT_METRICS CS_METRICS <<<"$(free_ports 5)"
[ -n "$CS_METRICS" ] || die "could not pick free ports"
log "ports: frontend=$FE_PORT origin=$ORIGIN_PORT agent=$AGENT_PORT metrics=$AGENT_METRICS/$CS_METRICS"
mkdir -p "$T/etc/haproxy" "$T/etc/edgetls" "$T/run" "$T/bin" "$T/systemd" "$T/blocks"
ENVS="secure open"

# --- the README's blocks -----------------------------------------------------------------
python3 - "$README" "$T/blocks" <<'PY' || die "could not read the README's attach blocks"
import re, sys
text = open(sys.argv[1]).read()
n = {}
for m in re.finditer(r"<!--\s*attach:([a-z-]+)\s*-->\s*\n```[^\n]*\n(.*?)\n```", text, re.S):
    name = m.group(1)
    n[name] = n.get(name, 0) + 1
    open(f"{sys.argv[2]}/{name}.{n[name]}", "w").write(m.group(2) + "\n")
print(" ".join(f"{k}x{v}" for k, v in sorted(n.items())))
PY
for b in run.1 run.2 run.3 state-dir.1 global.1 bind.1 rules.1 backend.1 units.1; do
	[ -s "$T/blocks/$b" ] || die "haproxy/README.md has no <!-- attach:${b%.*} --> block number ${b##*.}"
done

# Documented paths and ports -> this test's. (The order matters: longest first.)
map() {
	sed -e "s#/etc/haproxy/#$T/etc/haproxy/#g" -e "s#/etc/edgetls/#$T/etc/edgetls/#g" \
		-e "s#/var/lib/edgetls#$T/state#g" -e "s#/run/haproxy/#$T/run/#g" \
		-e "s#/usr/local/bin/#$T/bin/#g" -e "s#/etc/systemd/system/#$T/systemd/#g" \
		-e "s#/tmp/edgetls-rules.cfg#$T/edgetls-rules.cfg#g" \
		-e "s#\bbuild/bin/#$BUILD/bin/#g" -e "s#^make\$#make BUILD=$BUILD -s all#" \
		-e "s#127\.0\.0\.1:12345#127.0.0.1:$AGENT_PORT#g" \
		-e "s#127\.0\.0\.1:9466#127.0.0.1:$AGENT_METRICS#g" "$1"
}
export PATH="$T/bin:$PATH"

# --- the plain HAProxy configuration we attach to -----------------------------------------
e2e_pki "$PKI" || die "test PKI generation failed"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-keyout "$T/site.key" -out "$T/site.crt" -subj "/CN=existing site default" 2>/dev/null ||
	die "default certificate"
cat "$T/site.crt" "$T/site.key" >"$T/etc/haproxy/site.pem"
CFG=$T/etc/haproxy/haproxy.cfg
cat >"$CFG" <<EOF
global
    log stderr format raw local0 info
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client  30s
    timeout server  30s

frontend www
    bind 127.0.0.1:$FE_PORT ssl crt $T/etc/haproxy/site.pem alpn h2,http/1.1
    http-request set-header x-forwarded-proto https
    default_backend app

backend app
    server app1 127.0.0.1:$ORIGIN_PORT
EOF
cp "$CFG" "$T/plain.cfg"
out=$(haproxy_check "$CFG")
assert_eq "haproxy -c on the plain configuration" 0 "$?"

# certsync's configuration (step 2 shows the shape): one `required` and one `disabled`
# environment; the server certificate is uploaded later.
cat >"$T/etc/edgetls/certsync.conf" <<EOF
state_dir = "$T/state";
haproxy: { runtime_api = "unix:$T/run/admin.sock"; };
agent: { policy_file = "$T/state/policy.pb"; };
metrics_listen = "127.0.0.1:$CS_METRICS";
upload_ca_file = "$PKI/server-ca.crt";
environments = (
  { name = "secure"; hostnames = [ "a.example.test" ];
    mtls: { validation = "required"; depth = 1; send_headers = true;
            chains = ( { hostnames = [ "a.example.test" ]; file = "$PKI/client-ca.crt"; } ); }; },
  { name = "open"; hostnames = [ "b.example.test" ]; mtls: { validation = "disabled"; }; }
);
EOF

# --- steps 1-3: shell --------------------------------------------------------------------
section "README steps 1-3: install, certsync check + compile, SPOE file"
for b in run.1 run.2 run.3; do
	map "$T/blocks/$b" >"$T/$b.sh"
	assert_ok "README block attach:$b runs" bash -euo pipefail "$T/$b.sh"
done
assert_ok "step 1 installed spoa-mtls and certsync" test -x "$T/bin/spoa-mtls" -a -x "$T/bin/certsync"
for e in $ENVS; do
	assert_ok "step 2 wrote the crt-list of $e" test -e "$T/state/haproxy/$e.crt-list"
done
assert_ok "step 2 wrote mode.map, policy.map, policy.pb" \
	test -e "$T/state/haproxy/mode.map" -a -e "$T/state/haproxy/policy.map" -a -e "$T/state/policy.pb"
assert_ok "step 3 installed the SPOE file" cmp -s haproxy/spoe-mtls.conf "$T/etc/haproxy/spoe-mtls.conf"
# Our state_dir is not /var/lib/edgetls: the README's edit for that case, /srv/edgetls -> ours.
sed -e "s#/etc/haproxy/#$T/etc/haproxy/#g" -e "s#/srv/edgetls#$T/state#g" "$T/blocks/state-dir.1" >"$T/state-dir.sh"
assert_ok "README block attach:state-dir runs" bash -euo pipefail "$T/state-dir.sh"
assert_contains "the SPOE file reads our mode.map" "$(cat "$T/etc/haproxy/spoe-mtls.conf")" "$T/state/haproxy/mode.map"

# --- steps 4-7: configuration ------------------------------------------------------------
section "README steps 4-7: global, bind line, frontend rules, agent backend"
map "$T/blocks/global.1" >"$T/global.snip"
lists=""
for e in $ENVS; do lists="$lists crt-list $T/state/haproxy/$e.crt-list"; done
bind_add=$(map "$T/blocks/bind.1" | sed "s#crt-list $T/state/haproxy/production.crt-list#${lists# }#")
assert_contains "the bind block names a crt-list per environment" "$bind_add" "$T/state/haproxy/open.crt-list"
map "$T/blocks/rules.1" >"$T/rules.sh"
assert_ok "README block attach:rules runs" bash -euo pipefail "$T/rules.sh"
rules=$(map "$T/edgetls-rules.cfg")
assert_contains "rules: the SPOE filter" "$rules" "filter spoe engine mtls config $T/etc/haproxy/spoe-mtls.conf"
assert_contains "rules: client x-ssl-client-* deleted" "$rules" "http-request del-header x-ssl-client- -m beg"
assert_contains "rules: 421 on SNI/Host policy mismatch" "$rules" "deny_status 421"
assert_contains "rules: 503 when the agent does not answer" "$rules" "deny_status 503"
printf '%s\n' "$rules" >"$T/rules.snip"
map "$T/blocks/backend.1" >"$T/backend.snip"
# The README's backend is the example's, comments aside.
strip() { sed -e 's/[[:space:]]*#.*$//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]\+/ /g'; }
assert_eq "README backend = haproxy.cfg's backend spoa-mtls" \
	"$(sed -n '/^backend spoa-mtls/,/^$/p' haproxy/haproxy.cfg | strip)" "$(strip <"$T/blocks/backend.1")"

python3 - "$CFG" "$T/global.snip" "$bind_add" "$T/rules.snip" "$T/backend.snip" <<'PY' || die "could not apply the configuration steps"
import sys
cfg, gl, bind_add, rules, backend = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], open(sys.argv[4]).read(), open(sys.argv[5]).read()
out, in_fe, done_rules = [], False, False
for line in open(cfg).read().splitlines():
    s = line.strip()
    if s.startswith("frontend "):
        in_fe = True
    elif s.startswith(("backend ", "defaults", "global", "listen ")):
        in_fe = False
    if in_fe and s.startswith("bind ") and " ssl " in s:
        line = line + " " + bind_add.strip()
    if in_fe and s.startswith(("default_backend", "use_backend")) and not done_rules:
        out.append(rules.rstrip("\n"))
        done_rules = True
    out.append(line)
    if s == "global":
        out.append(gl.rstrip("\n"))
assert done_rules, "no default_backend in the frontend"
out.append("")
out.append(backend.rstrip("\n"))
open(cfg, "w").write("\n".join(out) + "\n")
PY
out=$(haproxy_check "$CFG")
rc=$?
printf '%s\n' "$out" >"$T/check-attached.log"
assert_eq "haproxy -c on the attached configuration" 0 "$rc"
assert_not_contains "haproxy -c on the attached configuration: no warning" "$out" "WARNING"
diff -u "$T/plain.cfg" "$CFG" >"$T/attached.diff"
log "attached configuration: $(grep -c '^+[^+]' "$T/attached.diff") lines added (diff in $T/attached.diff)"

# --- step 8: start ------------------------------------------------------------------------
section "README step 8: agent, HAProxy, certsync run"
python3 "$E2E_ROOT/scripts/echo-origin.py" "$ORIGIN_PORT" >>"$T/origin.log" 2>&1 &
E2E_PIDS+=("$!")
wait_port "$ORIGIN_PORT" 10 "$!" || die "the echo origin did not start"
map "$T/blocks/units.1" >"$T/units.sh"
agent_cmd=$(sed -n 's/^ExecStart=\(.*spoa-mtls .*\)$/\1/p' "$T/units.sh")
cs_cmd=$(sed -n 's/^ExecStart=\(.*certsync .*\)$/\1/p' "$T/units.sh")
hacheck=$(sed -n 's/^\(haproxy -c [^&]*\)&&.*$/\1/p' "$T/units.sh")
if [ -z "$agent_cmd" ] || [ -z "$cs_cmd" ] || [ -z "$hacheck" ]; then
	die "the units block lost its ExecStart or haproxy -c lines"
fi
log "agent:    $agent_cmd"
log "certsync: $cs_cmd"
# shellcheck disable=SC2086
$agent_cmd >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
E2E_PIDS+=("$AGENT_PID")
wait_port "$AGENT_PORT" 10 "$AGENT_PID" || die "the agent did not start"
# shellcheck disable=SC2086
assert_ok "the README's haproxy -c line" $hacheck
start_haproxy "$CFG" "$FE_PORT" || die "HAProxy did not start"
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
# shellcheck disable=SC2086
$cs_cmd >>"$T/certsync.log" 2>&1 &
CS_PID=$!
E2E_PIDS+=("$CS_PID")
for _ in $(seq 100); do [ -S "$T/state/control.sock" ] && break; sleep 0.1; done
[ -S "$T/state/control.sock" ] || die "certsync run did not open its control socket"
st=""
for _ in $(seq 60); do
	st=$(server_status "$T/run/admin.sock" spoa-mtls agent1 2>/dev/null) && [ "${st%% *}" = UP ] && break
	sleep 0.1
done
assert_eq "the agent server is UP (option spop-check)" UP "${st%% *}"

# --- step 9: a certificate, then the demo's behaviour ------------------------------------
section "README step 9: upload, then what a request gets"
assert_ok "certsync upload of the server certificate" \
	"$T/bin/certsync" -c "$T/etc/edgetls/certsync.conf" upload --cert "$PKI/server.crt" \
	--chain "$PKI/server-ca.crt" --key "$PKI/server.key"
serial() { # SNI -> the serial HAProxy serves
	openssl s_client -connect "127.0.0.1:$FE_PORT" -servername "$1" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null
}
for h in a.example.test b.example.test; do
	got=""
	for _ in $(seq 50); do
		got=$(serial "$h")
		[ "$got" = "serial=1001" ] && break
		sleep 0.2
	done
	assert_eq "$h is served the uploaded certificate" "serial=1001" "$got"
done

https() { # HOST curl-args... : through the frontend, SNI HOST
	local h=$1
	shift
	curl -sS --max-time 10 --cacert "$PKI/server-ca.crt" --resolve "$h:$FE_PORT:127.0.0.1" "$@"
}
before=$(metric "http://127.0.0.1:$AGENT_METRICS/metrics" spoa_mtls_notify_processed_total) || before=x

# required, no client certificate: the handshake fails, nothing reaches the origin
hlines=$(wc -l <"$T/haproxy.log")
body=$(https a.example.test -o /dev/null -w '%{http_code}' "https://a.example.test:$FE_PORT/nocert" 2>"$T/curl-nocert.err")
rc=$?
assert_ne "required without a client certificate: curl fails" 0 "$rc"
assert_eq "required without a client certificate: no HTTP response" 000 "$body"
log "curl said: $(cat "$T/curl-nocert.err")"
sleep 0.3
assert_contains "required without a client certificate: HAProxy logs a failed handshake" \
	"$(tail -n +"$((hlines + 1))" "$T/haproxy.log")" "SSL handshake failure"
assert_not_contains "required without a client certificate: the request never got through" \
	"$(tail -n +"$((hlines + 1))" "$T/haproxy.log")" "/nocert"

# required, valid client certificate: 200, SUCCESS at the origin; forged headers dropped
body=$(https a.example.test --cert "$PKI/client.crt" --key "$PKI/client.key" \
	-H 'X-SSL-Client-Verify: FAILED:forged' -H 'x-ssl-client-s-dn: CN=mallory' \
	-w '\n@@%{http_code}' "https://a.example.test:$FE_PORT/cert")
assert_contains "required with a valid client certificate: 200" "$body" "@@200"
assert_contains "required: the origin gets x-ssl-client-verify SUCCESS" "$body" "x-ssl-client-verify: SUCCESS"
assert_eq "required: exactly one x-ssl-client-verify at the origin" 1 "$(printf '%s\n' "$body" | grep -ci '^x-ssl-client-verify:')"
assert_match "required: the origin gets the client's subject DN" "$body" "x-ssl-client-s-dn: [^\n]*CN=client1"
assert_not_contains "required: the forged subject never reaches the origin" "$body" "mallory"
assert_not_contains "required: the forged verdict never reaches the origin" "$body" "FAILED:forged"

# disabled: 200 without any x-ssl-client-* header, even a forged one
body=$(https b.example.test -H 'x-ssl-client-verify: SUCCESS' -w '\n@@%{http_code}' \
	"https://b.example.test:$FE_PORT/open")
assert_contains "disabled: 200" "$body" "@@200"
assert_not_contains "disabled: no x-ssl-client-* header at the origin (a forged one dropped)" \
	"$(printf '%s' "$body" | tr '[:upper:]' '[:lower:]')" "x-ssl-client-"
body=$(https b.example.test --cert "$PKI/client.crt" --key "$PKI/client.key" -w '\n@@%{http_code}' \
	"https://b.example.test:$FE_PORT/open-with-cert")
assert_contains "disabled with a client certificate: 200" "$body" "@@200"
assert_not_contains "disabled with a client certificate: no x-ssl-client-* header" \
	"$(printf '%s' "$body" | tr '[:upper:]' '[:lower:]')" "x-ssl-client-"

# a certificate presented for a.example.test must not open b.example.test
code=$(https a.example.test --cert "$PKI/client.crt" --key "$PKI/client.key" -H 'Host: b.example.test' \
	-o /dev/null -w '%{http_code}' "https://a.example.test:$FE_PORT/other-host")
assert_eq "SNI a.example.test, Host b.example.test: 421" 421 "$code"

after=$(metric "http://127.0.0.1:$AGENT_METRICS/metrics" spoa_mtls_notify_processed_total) || after=x
if [[ $before =~ ^[0-9]+$ && $after =~ ^[0-9]+$ ]]; then
	assert_lt "the agent answered NOTIFYs for the required hostname (before < after)" "$before" "$after"
else
	fail_ "agent metrics readable" "before=$before after=$after"
fi

e2e_finish

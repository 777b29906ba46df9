#!/usr/bin/env bash
# The monitoring files under deploy/ against the real daemons and the real Prometheus:
#   - promtool check config / check rules / test rules (deploy/prometheus/)
#   - prometheus (Debian package) scraping a running spoa-mtls and a running
#     `certsync run` with a copy of deploy/prometheus/prometheus.yml pointed at this
#     test's ports (scrape and evaluation every 1 s): both jobs up, series of both present
#   - every rule loaded and evaluated without error; live alert states that follow from
#     the setup (a hostname without certificate: pending; files only: no HAProxy alert)
#   - every PromQL expression of deploy/grafana/edgetls.json evaluates (status success),
#     every metric it names is exported by one of the daemons
# Needs: prometheus, promtool, curl, python3, openssl; $BUILD/bin/{spoa-mtls,certsync}.
. "$(dirname "$0")/lib.sh"

CERTSYNC=${CERTSYNC:-$BUILD/bin/certsync}
PROMETHEUS=${PROMETHEUS:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
DEPLOY=$E2E_ROOT/deploy
DASH=$DEPLOY/grafana/edgetls.json

need "$PROMETHEUS" "$PROMTOOL" curl python3 openssl
[ -x "$CERTSYNC" ] || die "no certsync binary at $CERTSYNC (build it, or set BUILD)"
e2e_init
SECONDS=0

# --------------------------------------------------------------------------------------
section "promtool on the shipped files"
assert_ok "promtool check config deploy/prometheus/prometheus.yml" \
	"$PROMTOOL" check config "$DEPLOY/prometheus/prometheus.yml"
assert_ok "promtool check rules deploy/prometheus/edgetls.rules.yml" \
	"$PROMTOOL" check rules "$DEPLOY/prometheus/edgetls.rules.yml"
assert_ok "promtool test rules deploy/prometheus/edgetls.rules.test.yml" \
	"$PROMTOOL" test rules "$DEPLOY/prometheus/edgetls.rules.test.yml"
assert_ok "the dashboard is well-formed JSON" python3 -m json.tool "$DASH"
# Every alert of the rules file has at least one unit test.
untested=$(python3 - "$DEPLOY/prometheus/edgetls.rules.yml" "$DEPLOY/prometheus/edgetls.rules.test.yml" <<'PY'
import re, sys
rules = set(re.findall(r'^\s*- alert:\s*(\S+)', open(sys.argv[1]).read(), re.M))
tested = set(re.findall(r'^\s*alertname:\s*(\S+)', open(sys.argv[2]).read(), re.M))
print(" ".join(sorted(rules - tested)))
PY
)
assert_eq "every alert has a unit test" "" "$untested"

# --------------------------------------------------------------------------------------
section "the daemons"
read -r AGENT_PORT AGENT_METRICS CS_METRICS PROM_PORT <<<"$(free_ports 4)"
e2e_pki "$E2E_TMP/pki" || die "test PKI"
mkdir -p "$E2E_TMP/state"
# One environment, files only (no runtime_api): a.example.test gets the uploaded
# certificate (its SANs: localhost, a. and b.example.test), c.example.test stays without.
cat >"$E2E_TMP/certsync.conf" <<EOF
state_dir = "$E2E_TMP/state";
metrics_listen = "127.0.0.1:$CS_METRICS";
upload_ca_file = "$E2E_TMP/pki/server-ca.crt";
admin_group = "$(id -gn)";
environments = (
  { name = "test"; hostnames = [ "a.example.test", "c.example.test" ]; }
);
EOF
assert_ok "certsync check" "$CERTSYNC" -c "$E2E_TMP/certsync.conf" check
"$CERTSYNC" -c "$E2E_TMP/certsync.conf" run >>"$E2E_TMP/certsync.log" 2>&1 &
CS_PID=$!
E2E_PIDS+=("$CS_PID")
wait_port "$CS_METRICS" 10 "$CS_PID" || die "certsync run did not serve metrics"
for _ in $(seq 50); do [ -S "$E2E_TMP/state/control.sock" ] && break; sleep 0.1; done
assert_ok "certsync upload (a.example.test)" "$CERTSYNC" -c "$E2E_TMP/certsync.conf" upload \
	--cert "$E2E_TMP/pki/server.crt" --chain "$E2E_TMP/pki/server-ca.crt" \
	--key "$E2E_TMP/pki/server.key"
[ -s "$E2E_TMP/state/policy.pb" ] || die "certsync wrote no policy.pb"
start_agent "$AGENT_PORT" "$AGENT_METRICS" --policy "$E2E_TMP/state/policy.pb" ||
	die "spoa-mtls did not start"

# --------------------------------------------------------------------------------------
section "prometheus"
mkdir -p "$E2E_TMP/prom"
cp "$DEPLOY/prometheus/edgetls.rules.yml" "$E2E_TMP/prom/"
# The shipped configuration, with this test's ports and a 1 s scrape/evaluation interval.
sed -e "s/127\.0\.0\.1:9466/127.0.0.1:$AGENT_METRICS/" \
	-e "s/127\.0\.0\.1:9465/127.0.0.1:$CS_METRICS/" \
	-e 's/^\(  scrape_interval:\).*/\1 1s/' -e 's/^\(  evaluation_interval:\).*/\1 1s/' \
	"$DEPLOY/prometheus/prometheus.yml" >"$E2E_TMP/prom/prometheus.yml"
assert_contains "test copy scrapes the agent's port" "$(cat "$E2E_TMP/prom/prometheus.yml")" \
	"127.0.0.1:$AGENT_METRICS"
assert_contains "test copy scrapes certsync's port" "$(cat "$E2E_TMP/prom/prometheus.yml")" \
	"127.0.0.1:$CS_METRICS"
assert_ok "promtool check config (test copy)" "$PROMTOOL" check config "$E2E_TMP/prom/prometheus.yml"
"$PROMETHEUS" --config.file="$E2E_TMP/prom/prometheus.yml" \
	--storage.tsdb.path="$E2E_TMP/prom/data" \
	--web.listen-address="127.0.0.1:$PROM_PORT" \
	--web.console.templates="$E2E_TMP/prom" --web.console.libraries="$E2E_TMP/prom" \
	>>"$E2E_TMP/prometheus.log" 2>&1 &
PROM_PID=$!
E2E_PIDS+=("$PROM_PID")
wait_port "$PROM_PORT" 20 "$PROM_PID" || die "prometheus did not listen"
API=http://127.0.0.1:$PROM_PORT/api/v1

# query EXPR: the JSON answer of an instant query
query() {
	curl -sS --max-time 5 -G "$API/query" --data-urlencode "query=$1"
}
# nresults EXPR: how many series an instant query returns ("error: ..." when it failed)
nresults() {
	query "$1" | python3 -c 'import json, sys
try:
    d = json.load(sys.stdin)
except Exception as e:
    print("error: no JSON (%s)" % e); sys.exit()
print(len(d["data"]["result"]) if d.get("status") == "success" else "error: %s" % d.get("error"))'
}
# wait_results EXPR N SECONDS: until EXPR returns N series
wait_results() {
	local i
	for ((i = 0; i < $3 * 4; i++)); do
		[ "$(nresults "$1")" = "$2" ] && return 0
		sleep 0.25
	done
	return 1
}

wait_results 'up{job="edgetls-agent"} == 1' 1 20 || true
wait_results 'up{job="edgetls-certsync"} == 1' 1 10 || true
assert_eq 'up{job="edgetls-agent"} == 1' 1 "$(nresults 'up{job="edgetls-agent"} == 1')"
assert_eq 'up{job="edgetls-certsync"} == 1' 1 "$(nresults 'up{job="edgetls-certsync"} == 1')"
assert_eq "spoa_mtls_connections (agent series)" 1 \
	"$(nresults 'spoa_mtls_connections{job="edgetls-agent"}')"
assert_eq "spoa_mtls_policy_loaded == 1 (the agent loaded certsync's snapshot)" 1 \
	"$(nresults 'spoa_mtls_policy_loaded{job="edgetls-agent"} == 1')"
assert_eq "certsync_hostnames_without_certificate == 1 (c.example.test)" 1 \
	"$(nresults 'certsync_hostnames_without_certificate{job="edgetls-certsync"} == 1')"
assert_eq "certsync_certificate_not_after_seconds for a.example.test, uploaded" 1 \
	"$(nresults 'certsync_certificate_not_after_seconds{job="edgetls-certsync",hostname="a.example.test",source="uploaded"}')"
wait_results 'spoa_mtls_policy_generation == on() certsync_policy_generation' 1 5 || true
assert_eq "agent and certsync policy generations agree" 1 \
	"$(nresults 'spoa_mtls_policy_generation == on() certsync_policy_generation')"

# --------------------------------------------------------------------------------------
section "rules, live"
rules_state() { # "<loaded> <ok> <not ok: name=health:error...>"
	curl -sS --max-time 5 "$API/rules" | python3 -c 'import json, sys
d = json.load(sys.stdin)
rules = [r for g in d["data"]["groups"] for r in g["rules"]]
bad = ["%s=%s:%s" % (r["name"], r["health"], r.get("lastError", "")) for r in rules if r["health"] != "ok"]
print(len(rules), len(rules) - len(bad), " ".join(bad))'
}
nrules=$(grep -c '^ *- alert:' "$DEPLOY/prometheus/edgetls.rules.yml")
for _ in $(seq 40); do
	read -r loaded ok bad <<<"$(rules_state)"
	[ "$loaded" = "$nrules" ] && [ "$ok" = "$nrules" ] && break
	sleep 0.25
done
assert_eq "rules loaded by prometheus" "$nrules" "$loaded"
assert_eq "rules evaluated without error (health ok)" "$nrules" "$ok"
[ -n "$bad" ] && echo "       not ok: $bad"
wait_results 'ALERTS{alertname="EdgetlsHostnamesWithoutCertificate",alertstate="pending"}' 1 10 || true
assert_eq "EdgetlsHostnamesWithoutCertificate pending (c.example.test, for: 10m)" 1 \
	"$(nresults 'ALERTS{alertname="EdgetlsHostnamesWithoutCertificate",alertstate="pending"}')"
assert_eq "no HAProxy alert without a runtime_api (files only)" 0 \
	"$(nresults 'ALERTS{alertname=~"EdgetlsHAProxy.*"}')"
assert_eq "no certificate alert for a 30-day uploaded certificate" 0 \
	"$(nresults 'ALERTS{alertname=~"EdgetlsCertificate.*"}')"
assert_eq "no agent alert (policy loaded, no errors)" 0 \
	"$(nresults 'ALERTS{component="spoa-mtls"}')"

# --------------------------------------------------------------------------------------
section "dashboard expressions"
# Grafana's variables as a dashboard with "All" selected would send them.
mapfile -t exprs < <(python3 - "$DASH" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def walk(ps):
    for p in ps:
        yield p
        yield from walk(p.get("panels", []))
for p in walk(d["panels"]):
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "1m").replace("$agent", ".+").replace("$certsync", ".+")
        print(p["title"] + "\t" + " ".join(e.split()))
for v in d["templating"]["list"]:
    q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
    # label_values(METRIC, LABEL) is Grafana's; Prometheus sees the metric.
    if q.startswith("label_values("):
        print("variable " + v["name"] + "\t" + q[len("label_values("):].split(",")[0])
PY
)
assert_lt "the dashboard has expressions (count > 20)" 20 "${#exprs[@]}"
badexpr=0
for line in "${exprs[@]}"; do
	title=${line%%$'\t'*}
	expr=${line#*$'\t'}
	got=$(nresults "$expr")
	if [[ $got == error* ]]; then
		fail_ "dashboard: $title" "expr: $expr" "$got"
		badexpr=$((badexpr + 1))
	fi
done
[ "$badexpr" -eq 0 ] && pass_ "all ${#exprs[@]} dashboard expressions evaluate (status success)"
# Every metric name the dashboard uses is exported by one of the daemons.
names=$(curl -sS --max-time 5 "$API/label/__name__/values" |
	python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["data"]))')
missing=""
for m in $(grep -oE '(spoa_mtls|certsync)_[a-z_]+' "$DASH" | sort -u); do
	grep -qxE "${m}(_bucket)?" <<<"$names" || missing="$missing $m"
done
assert_eq "every metric the dashboard names is scraped" "" "${missing# }"
# Nothing scraped from the daemons is missing from the dashboard or the rules (informative:
# a new metric should find its panel).
unused=""
for m in $(grep -E '^(spoa_mtls|certsync)_' <<<"$names" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
	grep -q "$m" "$DASH" "$DEPLOY/prometheus/edgetls.rules.yml" || unused="$unused $m"
done
log "metrics in neither the dashboard nor the rules:${unused:- none}"

assert_lt "test time in seconds" "$SECONDS" 60
e2e_finish

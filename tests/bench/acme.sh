#!/usr/bin/env bash
# make bench: certsync's ACME issuance at scale, against real Pebble 2.4 (PEBBLE_VA_NOSLEEP=1),
# Knot and unbound on loopback (tests/e2e/lib_dns.sh), ports picked at run time, a temp dir.
# Figures, not a test: nothing is judged on time; the exit status is non-zero only when a
# component fails to start, dies, or the issuance does not complete within ISSUE_TIMEOUT.
#
#   1. cold start: ISSUE_HOSTS (100) hostnames of customer.test, each with its per-host
#      `_acme-challenge` CNAME into the validation zone (the zone file is generated) and a
#      CAA allowing pebble.test; a fresh state_dir; `certsync run` started (no HAProxy:
#      no haproxy section, certsync writes its files only, so this is the ACME + DNS
#      path alone) until `certsync status --json` shows an ACME certificate for every
#      hostname. Printed: the wall time from the daemon's start, orders per minute, and from
#      certsync's log the TXT updates (acme_txt_added), badNonce retries (acme_bad_nonce),
#      newOrders (acme_order_created) and failed attempts. Pebble's 5 % badNonce rejection
#      is left on (its default) unless BADNONCE says otherwise (PEBBLE_WFE_NONCEREJECT).
#   2. memory: for MEM_HOSTS ("0 1 100 10000") hostnames of missing.test (CAA allows
#      pebble.test, but no `_acme-challenge` CNAME: the delegation check fails, nothing is
#      ordered) in one auto_certificates environment, a fresh state_dir, `certsync run`
#      against the same Pebble, VmRSS and VmHWM from /proc after SETTLE (10) s. Printed
#      with them: how many hostnames the single ACME worker got through in that time
#      (acme_attempt_failed lines: directory, account, delegation and CAA lookups each),
#      the daemon's CPU time, the size of state.json, and how long one GET /metrics and
#      one `certsync status --json` take at that size. certsync wants at least one
#      hostname: the 0 row is one hostname in an environment without auto_certificates
#      (the acme and dns sections present, but no ACME worker, no libcurl).
#
# Usage: BUILD=build tests/bench/acme.sh
# Environment: BUILD (build), ISSUE_HOSTS (100), ISSUE_TIMEOUT (420 s), BADNONCE (unset:
# Pebble's default 5 %; 0 disables), MEM_HOSTS ("0 1 100 10000"), SETTLE (10 s),
# KEEP_TMP=1 keeps the temp dir (logs).

# lib.sh: the temp dir, pid bookkeeping (every process ended by pid at exit), ports, the
# PKI; lib_dns.sh: Knot (the validation zone with its TSIG update ACL, static zones) and
# unbound. Both are test helpers: their assertions are not used here.
# shellcheck source-path=SCRIPTDIR/../e2e
. "$(dirname "$0")/../e2e/lib.sh"
# shellcheck source-path=SCRIPTDIR/../e2e
. "$(dirname "$0")/../e2e/lib_dns.sh"

CERTSYNC=${CERTSYNC:-$BUILD/bin/certsync}
DNSDRV=${DNSDRV:-$BUILD/tests/dnsdrv}
PEBBLE=${PEBBLE:-pebble}
ISSUE_HOSTS=${ISSUE_HOSTS:-100}
ISSUE_TIMEOUT=${ISSUE_TIMEOUT:-420}
MEM_HOSTS=${MEM_HOSTS:-"0 1 100 10000"}
SETTLE=${SETTLE:-10}
need "$PEBBLE" curl openssl jq python3 awk
[ -x "$CERTSYNC" ] || die "no certsync at $CERTSYNC (make BUILD=$BUILD all)"
[ -x "$DNSDRV" ] || die "no dnsdrv at $DNSDRV (make BUILD=$BUILD all)"
# lib.sh's e2e_init, with this bench's own temp dir name (a cleanup of edgetls-e2e.* by
# another test run must not take it away mid-run)
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgetls-acme-bench.XXXXXX") || exit 2
trap e2e_cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
log "temp dir: $E2E_TMP"
T_START=$(date +%s)
BENCH_RC=0

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
count() { grep -c -- "$1" "$2" 2>/dev/null || true; } # PATTERN FILE: matching lines (0 if none)
TICK=$(getconf CLK_TCK)
cpu_s() { # PID: user + system CPU time, all threads, in seconds
	sed 's/.*) //' "/proc/$1/stat" | awk -v t="$TICK" '{ printf "%.2f", ($12 + $13) / t }'
}
# order_secs LOG: mean seconds from acme_order_created to acme_issued per hostname
order_secs() {
	awk '
	function t(s) { split(substr(s, 15, 12), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
	/event=acme_order_created / || /event=acme_issued / {
		for (i = 1; i <= NF; i++) if ($i ~ /^hostname=/) h = substr($i, 10)
		if ($0 ~ /acme_order_created/) c[h] = t($1)
		else if (h in c) { sum += t($1) - c[h]; n++ }
	}
	END { if (n) printf "%.2f", sum / n; else print "-" }' "$1"
}
loop_cpu_s() { # PID: CPU seconds of the main thread alone (the libev loop: ticks, state.json)
	sed 's/.*) //' "/proc/$1/task/$1/stat" | awk -v t="$TICK" '{ printf "%.2f", ($12 + $13) / t }'
}
vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # PID VmRSS|VmHWM

# --- DNS: Knot + unbound (certsync's resolver) + a non-caching unbound for Pebble --------
PKI=$E2E_TMP/pki
e2e_pki "$PKI" || die "test PKI"
CA=$PKI/server-ca.crt

dns_init || die "dns_init"
echo "generating the customer zone: $ISSUE_HOSTS hostnames with per-host _acme-challenge CNAMEs"
ISSUE_NAMES=()
{
	for ((i = 1; i <= ISSUE_HOSTS; i++)); do
		h=$(printf 'h%03d.customer.test' "$i")
		ISSUE_NAMES+=("$h")
		t=$(DNS_VALIDATION_DOMAIN=acme.validation.test "$DNSDRV" target "$h" per-host |
			sed -n 's/^target=//p')
		[ -n "$t" ] || die "dnsdrv target $h"
		printf '_acme-challenge.%s CNAME %s.\n' "${h%.customer.test}" "$t"
	done
	echo '@ CAA 0 issue "pebble.test"'
} >"$E2E_TMP/customer.records"
dns_zone customer.test <"$E2E_TMP/customer.records" || die "customer zone"
dns_zone missing.test <<<'@ CAA 0 issue "pebble.test"' || die "missing zone"
dns_start || die "dns_start"
# Pebble gets its own resolver that caches nothing (as in tests/e2e/acme_issue.sh): with
# one shared cache, certsync's own lookups would be served to Pebble from cache.
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
read -r P1 P2 P3 P4 <<<"$(free_ports 4)"
cat >"$E2E_TMP/pebble.json" <<EOF
{ "pebble": {
    "listenAddress": "127.0.0.1:$P1",
    "managementListenAddress": "127.0.0.1:$P2",
    "certificate": "$PKI/server.crt",
    "privateKey": "$PKI/server.key",
    "httpPort": $P3, "tlsPort": $P4,
    "ocspResponderURL": ""
} }
EOF
pebble_env=(PEBBLE_VA_NOSLEEP=1)
[ -n "${BADNONCE:-}" ] && pebble_env+=("PEBBLE_WFE_NONCEREJECT=$BADNONCE")
env "${pebble_env[@]}" "$PEBBLE" -config "$E2E_TMP/pebble.json" \
	-dnsserver "127.0.0.1:$PEBBLE_DNS_PORT" >>"$E2E_TMP/pebble.log" 2>&1 &
PEBBLE_PID=$!
E2E_PIDS+=("$PEBBLE_PID")
wait_port "$P1" 20 "$PEBBLE_PID" || die "pebble did not start"

# --- certsync ----------------------------------------------------------------------------
# write_conf DIR METRICS_PORT [AUTO]: the hostnames on stdin, one a line; AUTO (true) is the
# environment's auto_certificates
write_conf() {
	local dir=$1 mport=$2 auto=${3:-true}
	mkdir -p "$dir"
	{
		cat <<EOF
state_dir = "$dir/state";
metrics_listen = "127.0.0.1:$mport";
acme: {
  directory = "https://127.0.0.1:$P1/dir";
  contact = [ "mailto:ops@customer.test" ];
  ca_identities = [ "pebble.test" ];
  server_ca_file = "$CA";
};
dns: {
  resolver = "$DNS_RESOLVER";
  validation_domain = "acme.validation.test";
  layout = "per-host";
  update: { server = "$DNS_AUTH"; tsig_name = "$DNS_TSIG_NAME"; tsig_algorithm = "$DNS_TSIG_ALG";
            tsig_secret_file = "$DNS_TSIG_SECRET_FILE"; };
  authoritative = [ "$DNS_AUTH" ];
};
environments = ( { name = "prod"; auto_certificates = $auto; hostnames = [
EOF
		awk 'NR > 1 { printf ",\n" } { printf "    \"%s\"", $0 } END { if (NR) printf "\n" }'
		echo '  ]; } );'
	} >"$dir/certsync.conf"
}

CS_PID=
# start_cs DIR LOG: `certsync run` in the background; waits for its start line
start_cs() {
	local i
	"$CERTSYNC" -c "$1/certsync.conf" run >>"$2" 2>&1 &
	CS_PID=$!
	E2E_PIDS+=("$CS_PID")
	for ((i = 0; i < 600; i++)); do
		grep -q 'event=start ' "$2" && return 0
		kill -0 "$CS_PID" 2>/dev/null || die "certsync exited at start (see $(basename "$2"))"
		sleep 0.05
	done
	die "certsync did not log its start in 30 s"
}
issued_count() { # DIR: hostnames with an ACME certificate (source "auto") per `status --json`
	{ "$CERTSYNC" -c "$1/certsync.conf" status --json 2>/dev/null || true; } |
		jq '[.[] | select(.certificate.source == "auto")] | length' 2>/dev/null || echo 0
}

# ---------------------------------------------------------------------------------------
section "1. $ISSUE_HOSTS hostnames issued from a cold start (Pebble, per-host CNAMEs, no HAProxy)"
echo "pebble: PEBBLE_VA_NOSLEEP=1, badNonce rejection ${BADNONCE:-5 (default)} %"
ISS=$E2E_TMP/issue
ISS_LOG=$E2E_TMP/certsync-issue.log
read -r M1 <<<"$(free_ports 1)"
printf '%s\n' "${ISSUE_NAMES[@]}" | write_conf "$ISS" "$M1"
t0=$(now)
start_cs "$ISS" "$ISS_LOG"
ISS_PID=$CS_PID
t_first='' n=0 last_report=0
deadline=$(($(date +%s) + ISSUE_TIMEOUT))
while :; do
	n=$(issued_count "$ISS")
	n=${n:-0}
	[ -z "$t_first" ] && [ "$n" -gt 0 ] && t_first=$(now)
	[ "$n" -ge "$ISSUE_HOSTS" ] && break
	kill -0 "$ISS_PID" 2>/dev/null || die "certsync died during issuance ($n issued)"
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "INCOMPLETE: only $n of $ISSUE_HOSTS issued after ${ISSUE_TIMEOUT} s" >&2
		BENCH_RC=1
		break
	fi
	if [ $((SECONDS - last_report)) -ge 30 ]; then
		last_report=$SECONDS
		echo "  ... $n issued after $(secs "$t0" "$(now)") s"
	fi
	sleep 0.5
done
t1=$(now)
wall=$(secs "$t0" "$t1")
m_body=$(curl -sS --max-time 5 "http://127.0.0.1:$M1/metrics" 2>/dev/null || true)
upd_ok=$(awk '$1 == "certsync_dns_updates_total{result=\"ok\"}" { print $2 }' <<<"$m_body")
cpu_iss=$(cpu_s "$ISS_PID")
rss_iss=$(vm_kb "$ISS_PID" VmRSS) hwm_iss=$(vm_kb "$ISS_PID" VmHWM)
stop_pid "$ISS_PID"
printf 'issued                 %d of %d (status --json: certificate.source = auto)\n' "$n" "$ISSUE_HOSTS"
printf 'wall time              %s s from starting certsync run to the last one (first after %s s)\n' \
	"$wall" "$([ -n "$t_first" ] && secs "$t0" "$t_first" || echo -)"
printf 'orders per minute      %s\n' "$(awk -v n="$n" -v w="$wall" 'BEGIN { printf "%.1f", n * 60 / w }')"
printf 'seconds per order      %s overall; %s from newOrder to stored certificate (mean, log times)\n' \
	"$(awk -v n="$n" -v w="$wall" 'BEGIN { if (n) printf "%.2f", w / n; else print "-" }')" \
	"$(order_secs "$ISS_LOG")"
printf 'acme_issued in the log %s\n' "$(count 'event=acme_issued ' "$ISS_LOG")"
printf 'newOrders              %s (acme_order_created)\n' "$(count 'event=acme_order_created' "$ISS_LOG")"
printf 'TXT records added      %s (acme_txt_added; each also deleted: RFC 2136 updates ok = %s)\n' \
	"$(count 'event=acme_txt_added' "$ISS_LOG")" "${upd_ok:-?}"
printf 'badNonce retries       %s (acme_bad_nonce)\n' "$(count 'event=acme_bad_nonce' "$ISS_LOG")"
printf 'failed attempts        %s (acme_attempt_failed)\n' "$(count 'event=acme_attempt_failed' "$ISS_LOG")"
printf 'certsync CPU           %s s; VmRSS %s kB, VmHWM %s kB at the end\n' "$cpu_iss" "$rss_iss" "$hwm_iss"

# ---------------------------------------------------------------------------------------
section "2. the daemon's memory by managed hostnames (delegation missing: nothing ordered)"
printf '%-9s %10s %10s %8s %8s %7s %7s %11s %10s %9s\n' hostnames 'VmRSS kB' 'VmHWM kB' \
	checked 'start s' 'CPU s' 'loop s' 'state.json' 'metrics s' 'status s'
for N in $MEM_HOSTS; do
	dir=$E2E_TMP/mem$N
	log=$E2E_TMP/certsync-mem$N.log
	read -r mport <<<"$(free_ports 1)"
	if [ "$N" = 0 ]; then
		# at least one hostname is required: one without auto_certificates (no ACME worker)
		echo unmanaged.missing.test | write_conf "$dir" "$mport" false
	else
		awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++) printf "h%05d.missing.test\n", i }' |
			write_conf "$dir" "$mport"
	fi
	ts=$(now)
	start_cs "$dir" "$log"
	tstart=$(secs "$ts" "$(now)")
	sleep "$SETTLE"
	kill -0 "$CS_PID" 2>/dev/null || die "certsync died with $N hostnames (see $(basename "$log"))"
	rss=$(vm_kb "$CS_PID" VmRSS) hwm=$(vm_kb "$CS_PID" VmHWM) cpu=$(cpu_s "$CS_PID")
	lcpu=$(loop_cpu_s "$CS_PID")
	checked=$(count 'event=acme_attempt_failed' "$log")
	sj=$(stat -c %s "$dir/state/acme/state.json" 2>/dev/null || echo 0)
	tm=$(now)
	curl -sS --max-time 60 -o /dev/null "http://127.0.0.1:$mport/metrics" || echo "GET /metrics failed"
	tm=$(secs "$tm" "$(now)")
	tsj=$(now)
	"$CERTSYNC" -c "$dir/certsync.conf" status --json >"$E2E_TMP/status$N.json" 2>/dev/null
	tsj=$(secs "$tsj" "$(now)")
	printf '%-9s %10s %10s %8s %8s %7s %7s %11s %10s %9s\n' "$N" "$rss" "$hwm" "$checked" \
		"$tstart" "$cpu" "$lcpu" "$sj" "$tm" "$tsj"
	ordered=$(count 'event=acme_order_created' "$log")
	[ "$ordered" = 0 ] || echo "  unexpected: $ordered orders created with $N hostnames"
	stop_pid "$CS_PID"
done
echo "checked: hostnames whose checks ran and failed in the first ${SETTLE} s (one ACME worker);"
echo "start s: from exec to the start log line; CPU s: the daemon's user + system time then,"
echo "all threads; loop s: the main thread's share (ticks, state.json writes, HAProxy sync);"
echo "state.json in bytes; metrics s: one GET /metrics; status s: one \`certsync status --json\`"
echo
echo "total bench time: $(($(date +%s) - T_START)) s"
# lib.sh's exit trap stops every process started here, by pid, and removes the temp dir.
exit "$BENCH_RC"

#!/usr/bin/env bash
# certsync benchmarks (not tests): compile N hostnames across E environments, and apply one
# changed certificate to a real HAProxy 2.6 that already serves all of them.
#   BUILD=build HOSTS=10000 ENVS=10 tests/bench/certsync.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HOSTS=${HOSTS:-10000}
ENVS=${ENVS:-10}
bench=$BUILD/bin/cs-bench
dir=$(mktemp -d /tmp/cs-bench.XXXXXX)
hpid=""
cleanup() {
	[ -n "$hpid" ] && kill "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

echo "== certsync: $HOSTS hostnames (one certificate each) in $ENVS environments"
"$bench" prepare "$dir" "$HOSTS" "$ENVS"
"$bench" compile "$dir"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/k" \
	-out "$dir/c" -days 2 -subj /CN=default 2>/dev/null
cat "$dir/c" "$dir/k" >"$dir/default.pem"
lists=""
for ((e = 0; e < ENVS; e++)); do lists="$lists crt-list $dir/state/haproxy/env$e.crt-list"; done
cat >"$dir/haproxy.cfg" <<CFG
global
    stats socket $dir/admin.sock level admin
    tune.ssl.cachesize 1000
defaults
    mode http
    timeout client 5s
    timeout server 5s
    timeout connect 1s
frontend fe
    bind 127.0.0.1:$port ssl crt $dir/default.pem $lists ca-ignore-err all crt-ignore-err all
    http-request set-var(txn.policy) ssl_fc_sni,map($dir/state/haproxy/policy.map,none)
    http-request set-var(txn.mode) ssl_fc_sni,map($dir/state/haproxy/mode.map,none)
    http-request return status 200
CFG
t0=$(date +%s.%N)
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
hpid=$!
for _ in $(seq 1 600); do
	[ -S "$dir/admin.sock" ] && break
	sleep 0.1
done
[ -S "$dir/admin.sock" ] || { cat "$dir/haproxy.log"; exit 1; }
echo "haproxy_startup_seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
"$bench" apply "$dir"
echo "served for h7.env7.example.com: $(openssl s_client -connect 127.0.0.1:$port \
	-servername h7.env7.example.com </dev/null 2>/dev/null | openssl x509 -noout -serial)"

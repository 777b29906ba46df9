# shellcheck shell=bash
# Shared helpers for the end-to-end tests: source it, call e2e_init, then e2e_finish last.
#
#   . "$(dirname "$0")/lib.sh"
#   e2e_init                     # $E2E_TMP, cleanup trap (kills what we started, by pid)
#   port=$(free_port); read -r p1 p2 <<<"$(free_ports 2)"
#   e2e_pki "$E2E_TMP/pki"       # test CAs, server and client certificates
#   start_agent "$port" "$mport"; start_haproxy "$E2E_TMP/h.cfg" "$fe_port"
#   assert_eq "what" expected "$got"
#   e2e_finish                   # summary; exit 1 when any assertion failed
#
# Every process started here is recorded in E2E_PIDS and ended by pid at exit, whatever
# the exit path (assertion failures, `die`, Ctrl-C). Logs go to $E2E_TMP/*.log and their
# tails are printed when something failed. KEEP_TMP=1 keeps the temp dir.

set -u -o pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$E2E_ROOT/$BUILD ;; esac
SPOA_MTLS=${SPOA_MTLS:-$BUILD/bin/spoa-mtls}
HAPROXY=${HAPROXY:-haproxy}

E2E_TMP=
E2E_PIDS=()
E2E_CHECKS=0
E2E_FAILS=0
AGENT_PID=
HAPROXY_PID=

# ---------------------------------------------------------------------------------------
# lifecycle

log() { printf '%s\n' "$*"; }
section() { printf '\n== %s\n' "$*"; }

e2e_init() {
	E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgetls-e2e.XXXXXX") || exit 2
	trap e2e_cleanup EXIT
	trap 'echo "interrupted" >&2; exit 130' INT TERM
	log "temp dir: $E2E_TMP"
}

# Ends one process we started: TERM, up to 3 s of grace, then KILL. Reaps it.
stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || {
		wait "$pid" 2>/dev/null
		return 0
	}
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

e2e_cleanup() {
	local rc=$? pid f
	for pid in "${E2E_PIDS[@]+"${E2E_PIDS[@]}"}"; do
		stop_pid "$pid"
	done
	if [ -n "$E2E_TMP" ] && [ -d "$E2E_TMP" ]; then
		if [ "$E2E_FAILS" -gt 0 ] || [ "$rc" -ne 0 ]; then
			for f in "$E2E_TMP"/*.log; do
				[ -s "$f" ] || continue
				echo "---- tail of $(basename "$f")"
				tail -n 25 "$f"
			done
		fi
		if [ "${KEEP_TMP:-0}" = 1 ]; then
			echo "kept $E2E_TMP"
		else
			rm -rf "$E2E_TMP"
		fi
	fi
	exit "$rc"
}

die() {
	echo "FATAL: $*" >&2
	E2E_FAILS=$((E2E_FAILS + 1))
	exit 1
}

e2e_finish() {
	echo
	if [ "$E2E_FAILS" -eq 0 ] && [ "$E2E_CHECKS" -gt 0 ]; then
		echo "PASS: all $E2E_CHECKS checks passed"
		exit 0
	fi
	echo "FAIL: $E2E_FAILS of $E2E_CHECKS checks failed"
	exit 1
}

need() { # command... : dies naming the missing tool
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "needs '$c' on PATH"
	done
}

# ---------------------------------------------------------------------------------------
# assertions: each prints what it checks; a failure prints expected vs got and is counted

pass_() {
	E2E_CHECKS=$((E2E_CHECKS + 1))
	printf 'ok   %s\n' "$1"
}

fail_() {
	E2E_CHECKS=$((E2E_CHECKS + 1))
	E2E_FAILS=$((E2E_FAILS + 1))
	printf 'FAIL %s\n' "$1"
	shift
	printf '       %s\n' "$@"
}

assert_eq() { # desc expected got
	if [ "$2" = "$3" ]; then
		pass_ "$1 (= $2)"
	else
		fail_ "$1" "expected: $2" "got:      $3"
	fi
}

assert_ne() { # desc unexpected got
	if [ "$2" != "$3" ]; then
		pass_ "$1 ($3 != $2)"
	else
		fail_ "$1" "expected anything but: $2" "got: $3"
	fi
}

assert_contains() { # desc haystack needle
	if [[ $2 == *"$3"* ]]; then
		pass_ "$1 (contains '$3')"
	else
		fail_ "$1" "expected to contain: $3" "got: $(printf '%s' "$2" | head -c 2000)"
	fi
}

assert_not_contains() { # desc haystack needle
	if [[ $2 != *"$3"* ]]; then
		pass_ "$1 (no '$3')"
	else
		fail_ "$1" "expected NOT to contain: $3" "got: $(printf '%s' "$2" | head -c 2000)"
	fi
}

assert_match() { # desc string ERE
	if [[ $2 =~ $3 ]]; then
		pass_ "$1 (matches /$3/)"
	else
		fail_ "$1" "expected to match: /$3/" "got: $(printf '%s' "$2" | head -c 2000)"
	fi
}

assert_lt() { # desc a b : numeric a < b (decimals allowed)
	if awk -v a="$2" -v b="$3" 'BEGIN { exit !(a ~ /^[0-9.]+$/ && a + 0 < b + 0) }'; then
		pass_ "$1 ($2 < $3)"
	else
		fail_ "$1" "expected: < $3" "got:      $2"
	fi
}

assert_ok() { # desc command... : the command exits 0 (its output goes to the log on failure)
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass_ "$desc"
	else
		fail_ "$desc" "command failed: $*" "$(printf '%s' "$out" | tail -n 15)"
	fi
}

# ---------------------------------------------------------------------------------------
# ports

# A port the kernel just handed out (bound then released). Racy by nature, but the kernel
# rotates ephemeral ports, so a reuse within the test's lifetime is unlikely.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# free_ports N: N distinct ports, all bound at once before any is released.
free_ports() {
	python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

port_open() { # port [host]
	(exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# wait_port PORT [SECONDS] [PID]: until something accepts on 127.0.0.1:PORT; fails early if
# PID (the process expected to listen) dies.
wait_port() {
	local port=$1 secs=${2:-10} pid=${3:-} i
	for ((i = 0; i < secs * 20; i++)); do
		port_open "$port" && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			echo "process $pid died before listening on $port" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "nothing listens on 127.0.0.1:$port after ${secs}s" >&2
	return 1
}

# ---------------------------------------------------------------------------------------
# test PKI: e2e_pki DIR
#   server-ca.crt                 CA that signed the server certificate (curl --cacert)
#   server.crt server.key         EC P-256, SAN localhost, 127.0.0.1, a.example.test,
#   server.pem                    b.example.test; server.pem = cert + key (HAProxy crt)
#   client-ca.crt client-ca.key   CA for client certificates (mTLS tests)
#   client.crt client.key         clientAuth EKU, CN=client1, signed by client-ca
e2e_pki() {
	local d=$1 o="$1/openssl.log"
	mkdir -p "$d" || return 1
	cat >"$d/ext.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, DNS:a.example.test, DNS:b.example.test
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
	(
		set -e
		cd "$d"
		key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
		for ca in server-ca client-ca; do
			key $ca.key
			openssl req -new -x509 -key $ca.key -days 30 -subj "/O=edgetls test/CN=$ca" \
				-config ext.cnf -extensions ca -out $ca.crt
		done
		key server.key
		openssl req -new -key server.key -subj "/CN=localhost" -config ext.cnf -out server.csr
		openssl x509 -req -in server.csr -CA server-ca.crt -CAkey server-ca.key \
			-set_serial 0x1001 -days 30 -extfile ext.cnf -extensions server -out server.crt
		cat server.crt server.key >server.pem
		key client.key
		openssl req -new -key client.key -subj "/O=edgetls test/CN=client1" -config ext.cnf \
			-out client.csr
		openssl x509 -req -in client.csr -CA client-ca.crt -CAkey client-ca.key \
			-set_serial 0x2001 -days 30 -extfile ext.cnf -extensions client -out client.crt
	) >"$o" 2>&1 || {
		cat "$o" >&2
		return 1
	}
}

# ---------------------------------------------------------------------------------------
# spoa-mtls

# start_agent PORT [METRICS_PORT] [extra args...]: AGENT_PID, log $E2E_TMP/agent.log
start_agent() {
	local port=$1 mport=${2:-} args
	shift 2 || shift $#
	[ -x "$SPOA_MTLS" ] || die "no agent binary at $SPOA_MTLS (build it, or set BUILD)"
	args=(--listen "127.0.0.1:$port" --threads 2 --log-level debug)
	[ -n "$mport" ] && args+=(--metrics "127.0.0.1:$mport")
	"$SPOA_MTLS" "${args[@]}" "$@" >>"$E2E_TMP/agent.log" 2>&1 &
	AGENT_PID=$!
	E2E_PIDS+=("$AGENT_PID")
	wait_port "$port" 10 "$AGENT_PID" || return 1
	if [ -n "$mport" ]; then wait_port "$mport" 10 "$AGENT_PID" || return 1; fi
}

stop_agent() {
	stop_pid "$AGENT_PID"
}

# kill_agent [SIGNAL]: default SIGKILL, reaped; AGENT_PID stays as it was
kill_agent() {
	kill "-${1:-KILL}" "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	return 0
}

# metric URL SERIES: the value of one series, matched exactly as printed, labels included
# (metric http://127.0.0.1:9465/metrics 'spoa_mtls_frames_received_total{type="notify"}').
# Prints nothing and fails, saying why on stderr, when the endpoint or the series is missing.
metric() {
	local body rc
	body=$(curl -sS --fail --max-time 5 "$1" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "metric: GET $1 failed (curl exit $rc): $body" >&2
		return 1
	fi
	printf '%s\n' "$body" | awk -v s="$2" '$1 == s { print $2; found = 1; exit } END { exit !found }' ||
		{
			echo "metric: no series $2 in $1 ($(printf '%s' "$body" | wc -c) bytes)" >&2
			return 1
		}
}

# ---------------------------------------------------------------------------------------
# HAProxy

haproxy_check() { # cfg : `haproxy -c`, output on stdout
	"$HAPROXY" -c -f "$1" 2>&1
}

# start_haproxy CFG PORT: foreground (-db) in the background; HAPROXY_PID, log
# $E2E_TMP/haproxy.log; waits for PORT (one of its listeners).
start_haproxy() {
	"$HAPROXY" -db -f "$1" >>"$E2E_TMP/haproxy.log" 2>&1 &
	HAPROXY_PID=$!
	E2E_PIDS+=("$HAPROXY_PID")
	wait_port "$2" 10 "$HAPROXY_PID"
}

stop_haproxy() {
	stop_pid "$HAPROXY_PID"
}

# haproxy_cmd SOCKET COMMAND: one runtime API command over the stats socket (python3, so
# neither socat nor a Unix-socket netcat is needed).
haproxy_cmd() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode(errors="replace"))
PY
}

# server_status SOCKET BACKEND SERVER: UP, DOWN, MAINT, ... from `show stat` (CSV)
server_status() {
	haproxy_cmd "$1" "show stat" | awk -F, -v b="$2" -v s="$3" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == "status") col = i; next }
		$1 == b && $2 == s { print $col; found = 1 }
		END { exit !found }'
}

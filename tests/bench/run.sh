#!/usr/bin/env bash
# make bench: spoa-mtls driven by spop-bench on loopback (research/spop.md §6.3).
#
# Makes a realistic client chain with openssl (root, intermediate, RSA-2048 leaf with a
# subject DN, SANs, clientAuth EKU, AIA and CRL distribution points), then for agent
# threads 1 and 2 starts the agent on a port it picks itself (--listen 127.0.0.1:0) and runs
# the generator at depth 1 and 20. Prints a table of NOTIFY→ACK/s and latency.
#
# Figures, not a test: nothing is judged on speed. A generator error (DISCONNECT, bad ACK,
# unexpected close, unanswered NOTIFY) or an agent that fails to start makes the exit
# status non-zero.
#
# Environment: BUILD (default build), CONNECTIONS (16), DURATION (5 s), WARMUP (1 s),
# AGENT_THREADS ("1 2"), DEPTHS ("1 20").
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-build}
SPOA=$BUILD/bin/spoa-mtls
BENCH=$BUILD/bin/spop-bench
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
AGENT_THREADS=${AGENT_THREADS:-"1 2"}
DEPTHS=${DEPTHS:-"1 20"}
SNI=client01.payments.example.com

for b in "$SPOA" "$BENCH"; do
	if [ ! -x "$b" ]; then
		echo "run.sh: $b is missing: make BUILD=$BUILD $b" >&2
		exit 2
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgetls-bench.XXXXXX")
agent_pid=

stop_agent() {
	local pid=$agent_pid rc=0
	[ -n "$pid" ] || return 0
	agent_pid=
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || rc=$?
	else
		wait "$pid" 2>/dev/null || rc=$?
	fi
	return $rc
}
cleanup() {
	stop_agent || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the client PKI ----

make_pki() {
	local d=$tmp/pki
	mkdir -p "$d"
	cat >"$d/ext.cnf" <<'EOF'
[root_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[inter_ext]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess = caIssuers;URI:http://pki.example.com/certs/example-root-ca.crt, OCSP;URI:http://ocsp.pki.example.com/
crlDistributionPoints = URI:http://pki.example.com/crl/example-root-ca.crl
certificatePolicies = 2.23.140.1.2.2

[leaf_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:client01.payments.example.com, URI:spiffe://example.com/ns/payments/sa/checkout, email:checkout-service@payments.example.com
authorityInfoAccess = caIssuers;URI:http://pki.example.com/certs/example-client-ca-1.crt, OCSP;URI:http://ocsp.pki.example.com/
crlDistributionPoints = URI:http://pki.example.com/crl/example-client-ca-1.crl
EOF
	(
		cd "$d"
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out root.key
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out inter.key
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out leaf.key
		openssl req -new -key root.key -out root.csr \
			-subj "/C=US/ST=California/L=Los Angeles/O=Example Inc./OU=Security/CN=Example Root CA"
		openssl x509 -req -in root.csr -signkey root.key -days 3650 -sha256 \
			-set_serial 0x01 -extfile ext.cnf -extensions root_ext -out root.crt
		openssl req -new -key inter.key -out inter.csr \
			-subj "/C=US/ST=California/L=Los Angeles/O=Example Inc./OU=Security/CN=Example Client CA 1"
		openssl x509 -req -in inter.csr -CA root.crt -CAkey root.key -days 1825 -sha256 \
			-set_serial 0x1001 -extfile ext.cnf -extensions inter_ext -out inter.crt
		openssl req -new -key leaf.key -out leaf.csr \
			-subj "/C=US/ST=California/L=Los Angeles/O=Example Inc./OU=Payments/CN=checkout-service/emailAddress=checkout-service@payments.example.com"
		# A 16-byte serial, as public CAs issue them (top bit clear: a positive INTEGER).
		openssl x509 -req -in leaf.csr -CA inter.crt -CAkey inter.key -days 90 -sha256 \
			-set_serial "0x5$(openssl rand -hex 15)" -extfile ext.cnf -extensions leaf_ext \
			-out leaf.crt
		openssl verify -purpose sslclient -CAfile root.crt -untrusted inter.crt leaf.crt
		openssl x509 -in leaf.crt -outform DER -out leaf.der
		# ssl_c_chain_der: what the client sent after its leaf, here the intermediate.
		openssl x509 -in inter.crt -outform DER -out chain.der
	) >"$tmp/pki.log" 2>&1 || {
		echo "run.sh: could not make the test PKI:" >&2
		cat "$tmp/pki.log" >&2
		exit 1
	}
}

make_pki
leaf_bytes=$(stat -c %s "$tmp/pki/leaf.der")
chain_bytes=$(stat -c %s "$tmp/pki/chain.der")
echo "client certificate: RSA-2048 leaf $leaf_bytes B DER + chain (1 intermediate)" \
	"$chain_bytes B DER = $((leaf_bytes + chain_bytes)) B per NOTIFY"

# ---- the agent ----

start_agent() { # threads
	local log=$tmp/agent-t$1.log port=
	"$SPOA" --listen 127.0.0.1:0 --threads "$1" 2>"$log" &
	agent_pid=$!
	for _ in $(seq 100); do
		port=$(sed -n 's/.*event=listen addr=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log")
		[ -n "$port" ] && break
		if ! kill -0 "$agent_pid" 2>/dev/null; then
			break
		fi
		sleep 0.05
	done
	if [ -z "$port" ]; then
		echo "run.sh: spoa-mtls --threads $1 did not start listening; its log:" >&2
		cat "$log" >&2
		exit 1
	fi
	agent_port=$port
}

field() { # line key
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"
}

cores=$(nproc)
echo "machine: $cores CPU core(s); the generator (1 client thread) and the agent share them," \
	"so the figures are a lower bound for the agent alone"
echo "each run: $CONNECTIONS connections, ${WARMUP} s warm-up, ${DURATION} s measured"
echo

failures=0
results=()
raw=()
for threads in $AGENT_THREADS; do
	start_agent "$threads"
	for depth in $DEPTHS; do
		out=$tmp/bench-t$threads-d$depth.out
		err=$tmp/bench-t$threads-d$depth.err
		rc=0
		"$BENCH" --connect "127.0.0.1:$agent_port" --connections "$CONNECTIONS" \
			--depth "$depth" --duration "$DURATION" --warmup "$WARMUP" --threads 1 \
			--cert "$tmp/pki/leaf.der" --chain "$tmp/pki/chain.der" --sni "$SNI" \
			>"$out" 2>"$err" || rc=$?
		line=$(tail -n 1 "$out")
		if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
			failures=$((failures + 1))
			echo "run.sh: spop-bench failed (exit $rc) against agent threads=$threads" \
				"depth=$depth:" >&2
			sed 's/^/    | /' "$err" >&2
		fi
		raw+=("agent_threads=$threads $line")
		results+=("$(printf '%13s %5s %11s %14s %9s %9s %9s %9s %6s' "$threads" "$depth" \
			"$CONNECTIONS" "$(field "$line" rate | sed 's,/s$,,')" \
			"$(field "$line" p50_us)" "$(field "$line" p99_us)" \
			"$(field "$line" p999_us)" "$(field "$line" max_us)" \
			"$(field "$line" errors)")")
	done
	if ! kill -0 "$agent_pid" 2>/dev/null; then
		echo "run.sh: spoa-mtls --threads $threads died during the runs; its log:" >&2
		tail -n 20 "$tmp/agent-t$threads.log" >&2
		failures=$((failures + 1))
	fi
	arc=0
	stop_agent || arc=$?
	if [ "$arc" -ne 0 ]; then
		echo "run.sh: spoa-mtls --threads $threads exited with status $arc" >&2
		failures=$((failures + 1))
	fi
done

printf '%13s %5s %11s %14s %9s %9s %9s %9s %6s\n' "agent_threads" depth connections \
	"NOTIFY->ACK/s" p50_us p99_us p99.9_us max_us errors
printf '%s\n' "${results[@]}"
echo
echo "raw spop-bench lines:"
printf '  %s\n' "${raw[@]}"

if [ "$failures" -gt 0 ]; then
	echo "run.sh: $failures failure(s)" >&2
	exit 1
fi

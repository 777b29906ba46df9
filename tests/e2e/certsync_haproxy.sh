#!/usr/bin/env bash
# End to end: certsync with the real HAProxy 2.6, everything on 127.0.0.1 with ports picked
# at run time and every file in a temp dir.
#
#   1. `certsync check` accepts the test config; one with an error (depth = 11) is refused
#      with file:line
#   2. upload a certificate for a.example.com: HAProxy serves its serial within seconds,
#      through the runtime API (same HAProxy pid, no reload)
#   3. replace it: the new serial is served; a keep-alive TLS connection opened before the
#      replacement still answers afterwards
#   4. refusals (wrong key, expired, hostname not configured): exit 1 with the reason, and
#      the served serial does not change
#   5. *.example.com uploaded for network n1 serves prod's and staging's hostnames (exact
#      names keep their own certificate), not c.example.com of network n2 (default cert)
#   6. `status --json`: every hostname with source/serial, "haproxy": "in-sync", source
#      "none" without certificate, exit 1 while one has none and 0 once all have one
#   7. a user outside admin_group (nobody) is refused with "permission"; a member of
#      admin_group that is not root may upload
#   8. kill -9 of `certsync run` while an upload is being applied (HAProxy paused, so the
#      kill lands mid-apply for sure; then once more unpaused): after a restart status says
#      in-sync and the served serials are those the crt-list files on disk name
#   9. HAProxy restarted from the same config serves the same serials from disk
#  10. /metrics: certsync_certificate_not_after_seconds{hostname="a.example.com",
#      source="uploaded"}, certsync_haproxy_in_sync 1, and `promtool check metrics`
#
# Usage: BUILD=build bash tests/e2e/certsync_haproxy.sh   (certsync at $BUILD/bin/certsync)
# Runs as root (HAProxy's admin socket, `setpriv` to nobody for the permission checks).

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

CERTSYNC=${CERTSYNC:-$BUILD/bin/certsync}
need "$HAPROXY" curl openssl python3 promtool jq setpriv awk sed
[ -x "$CERTSYNC" ] || die "no certsync binary at $CERTSYNC (build it, or set BUILD)"
[ "$(id -u)" = 0 ] || die "run as root (setpriv to nobody, HAProxy admin socket)"
e2e_init

# The permission checks run certsync as nobody: it must reach the files it reads.
chmod 0755 "$E2E_TMP"
PKI=$E2E_TMP/pki
STATE=$E2E_TMP/state
CONF=$E2E_TMP/certsync.conf
HCFG=$E2E_TMP/haproxy.cfg
SOCK=$E2E_TMP/admin.sock
ADMIN_GROUP=staff
getent group "$ADMIN_GROUP" >/dev/null || die "needs the group $ADMIN_GROUP"
read -r FE_PORT METRICS_PORT <<<"$(free_ports 2)"
[ -n "$METRICS_PORT" ] || die "could not pick free ports"
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
CS_PID=
log "ports: frontend=$FE_PORT metrics=$METRICS_PORT"

# --- PKI -----------------------------------------------------------------------------------
# root (the trusted anchor: upload_ca_file) -> int (the chain uploaded) -> server leaves.

# leaf NAME SERIAL SANS HOURS_AGO: NAME.key, NAME.pem signed by int, notBefore HOURS_AGO
# hours ago (so that "most recently issued" is well defined), valid 30 days
leaf() {
	local start end
	start=$(date -u -d "-$4 hours" +%Y%m%d%H%M%SZ)
	end=$(date -u -d "+30 days" +%Y%m%d%H%M%SZ)
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" &&
		openssl req -new -key "$1.key" -subj "/CN=${3%%,*}" -config ext.cnf -out "$1.csr" &&
		printf '%s\n' "basicConstraints = critical, CA:false" \
			"keyUsage = critical, digitalSignature" "extendedKeyUsage = serverAuth" \
			"subjectKeyIdentifier = hash" "authorityKeyIdentifier = keyid" \
			"subjectAltName = $(printf '%s' "$3" | sed 's/[^,]*/DNS:&/g')" >"$1.ext" &&
		echo "${2#0x}" >serial &&
		openssl ca -batch -config ext.cnf -cert int.pem -keyfile int.key -in "$1.csr" \
			-startdate "$start" -enddate "$end" -extfile "$1.ext" -notext -out "$1.pem"
}

make_pki() {
	mkdir -p "$PKI" && cd "$PKI" || return 1
	cat >ext.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[v3ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca]
default_ca = cad
[cad]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = pol
unique_subject = no
email_in_dn = no
copy_extensions = none
[pol]
commonName = supplied
[expired]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:a.example.com
EOF
	(
		set -e
		key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
		key root.key
		openssl req -new -x509 -key root.key -days 60 -subj "/O=edgetls test/CN=Test Root" \
			-config ext.cnf -extensions v3ca -set_serial 1 -out root.pem
		key int.key
		openssl req -new -key int.key -subj "/O=edgetls test/CN=Test Intermediate" \
			-config ext.cnf -out int.csr
		openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -set_serial 2 -days 50 \
			-extfile ext.cnf -extensions v3ca -out int.pem
		touch index.txt
		leaf default 0x7DEF default.invalid 9
		leaf a1 0x1A01 a.example.com 8
		leaf a2 0x1A02 a.example.com 7
		leaf wild 0x1C01 '*.example.com' 6
		leaf nohost 0x1F01 x.other.test 6
		leaf c 0x1D01 c.example.com,c2.example.com 6
		leaf b1 0x1B01 b.example.com 5
		leaf b2 0x1B02 b.example.com 4
		leaf other 0x1F02 a.example.com 6 # only its key is used: a key that does not match
		# expired: notAfter in the past
		echo 1E01 >serial
		key expired.key
		openssl req -new -key expired.key -subj "/CN=a.example.com" -config ext.cnf \
			-out expired.csr
		openssl ca -batch -config ext.cnf -cert int.pem -keyfile int.key -in expired.csr \
			-startdate 20200101000000Z -enddate 20200201000000Z -extensions expired \
			-notext -out expired.pem
		# same-second pair for b2.example.com: identical notBefore and notAfter
		tstart=$(date -u -d "-1 hours" +%Y%m%d%H%M%SZ)
		tend=$(date -u -d "+20 days" +%Y%m%d%H%M%SZ)
		for t in t1 t2; do
			key $t.key
			openssl req -new -key $t.key -subj "/CN=b2.example.com" -config ext.cnf -out $t.csr
			printf '%s\n' "basicConstraints = critical, CA:false" \
				"extendedKeyUsage = serverAuth" "subjectKeyIdentifier = hash" \
				"authorityKeyIdentifier = keyid" "subjectAltName = DNS:b2.example.com" >$t.ext
			[ $t = t1 ] && echo 2A01 >serial || echo 2A02 >serial
			openssl ca -batch -config ext.cnf -cert int.pem -keyfile int.key -in $t.csr \
				-startdate "$tstart" -enddate "$tend" -extfile $t.ext -notext -out $t.pem
		done
		cat default.pem default.key >"$E2E_TMP/default.pem"
		chmod 0644 ./*
	) >"$PKI/openssl.log" 2>&1 || {
		cat "$PKI/openssl.log" >&2
		return 1
	}
	cd "$E2E_ROOT" || return 1
}

# --- configurations ------------------------------------------------------------------------

write_certsync_conf() {
	cat >"$CONF" <<EOF
# certsync e2e test configuration
state_dir = "$STATE";
admin_group = "$ADMIN_GROUP";
upload_ca_file = "$PKI/root.pem";
metrics_listen = "127.0.0.1:$METRICS_PORT";

haproxy: {
  runtime_api = "unix:$SOCK";
};

environments = (
  {
    name = "prod";
    network = "n1";
    hostnames = [ "a.example.com", "a2.example.com" ];
  },
  {
    name = "staging";
    network = "n1";
    hostnames = [ "b.example.com", "b2.example.com" ];
    mtls: {
      validation = "disabled";
      depth = 1;
    };
  },
  {
    name = "other";
    network = "n2";
    hostnames = [ "c.example.com", "c2.example.com" ];
  }
);
EOF
}

# HAProxy: one HTTPS frontend, a default certificate then one crt-list per environment.
# policy.map and mode.map are referenced (as haproxy/haproxy.cfg does) because certsync
# keeps them in sync through the runtime API too.
write_haproxy_cfg() {
	cat >"$HCFG" <<EOF
global
    stats socket $SOCK mode 600 level admin
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend fe
    bind 127.0.0.1:$FE_PORT ssl crt $E2E_TMP/default.pem crt-list $STATE/haproxy/prod.crt-list crt-list $STATE/haproxy/staging.crt-list crt-list $STATE/haproxy/other.crt-list ca-ignore-err all crt-ignore-err all
    http-request set-var(txn.policy) ssl_fc_sni,lower,map($STATE/haproxy/policy.map,none)
    http-request set-var(txn.mode) ssl_fc_sni,lower,map($STATE/haproxy/mode.map,none)
    http-request return status 200 content-type text/plain lf-string "ok %[var(txn.mode)]\n"
EOF
}

# --- helpers -------------------------------------------------------------------------------

cs() { "$CERTSYNC" -c "$CONF" "$@"; }

# upload NAME [extra args]: cert NAME.pem, chain int.pem, key NAME.key; output on stdout
upload() {
	local n=$1
	shift
	cs upload --cert "$PKI/$n.pem" --chain "$PKI/int.pem" --key "$PKI/$n.key" "$@" 2>&1
}

# as_nobody CMD...: CMD as nobody:nogroup without supplementary groups;
# as_nobody_admin CMD...: the same with admin_group as a supplementary group
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
as_nobody_admin() {
	setpriv --reuid=nobody --regid=nogroup --groups="$ADMIN_GROUP" -- "$@"
}

# served HOST: the serial HAProxy's certificate for SNI HOST has ("" on failure)
served() {
	timeout 5 openssl s_client -connect "127.0.0.1:$FE_PORT" -servername "$1" </dev/null \
		2>/dev/null | openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'
}

# wait_served HOST SERIAL [SECONDS]: until HOST is served SERIAL; prints the last serial seen
wait_served() {
	local host=$1 want=$2 secs=${3:-8} got i
	for ((i = 0; i < secs * 5; i++)); do
		got=$(served "$host")
		[ "$got" = "$want" ] && break
		sleep 0.2
	done
	printf '%s' "$got"
}

# cert_serial FILE: the serial of the first certificate in FILE
cert_serial() { openssl x509 -in "$1" -noout -serial 2>/dev/null | sed 's/^serial=//'; }

haproxy_pid_now() { haproxy_cmd "$SOCK" "show info" | awk -F': ' '$1 == "Pid" { print $2 }'; }

# start_certsync: `certsync run` in the background (the binary itself, so that CS_PID is
# its pid: kill -9 must reach the daemon, not a subshell)
start_certsync() {
	"$CERTSYNC" -c "$CONF" run >>"$E2E_TMP/certsync.log" 2>&1 &
	CS_PID=$!
	E2E_PIDS+=("$CS_PID")
	wait_port "$METRICS_PORT" 10 "$CS_PID" || return 1
	local i
	for i in $(seq 100); do
		[ -S "$STATE/control.sock" ] && return 0
		sleep 0.05
	done
	echo "no control socket at $STATE/control.sock" >&2
	return 1
}

# status_json: runs `certsync status --json`; its output in STATUS_OUT, its exit code in
# STATUS_RC (call it directly, not in $(...))
STATUS_OUT=
STATUS_RC=
status_json() {
	STATUS_OUT=$(cs status --json 2>>"$E2E_TMP/status.err")
	STATUS_RC=$?
}

# wait_in_sync [SECONDS]: until every hostname with a certificate is "in-sync"; prints the
# hostnames that are not (empty: all in sync)
wait_in_sync() {
	local secs=${1:-10} i bad
	for ((i = 0; i < secs * 4; i++)); do
		status_json
		bad=$(jq -r '.[] | select(.certificate.source != "none" and
			.haproxy != "in-sync") | "\(.hostname)=\(.haproxy)"' <<<"$STATUS_OUT" 2>&1 | tr '\n' ' ')
		[ -z "$bad" ] && break
		sleep 0.25
	done
	printf '%s' "$bad"
}

# disk_vs_served: for every configured hostname, the serial the crt-list files on disk
# name (their bundle's first certificate; the default certificate when no line names the
# host) against the one HAProxy serves. Prints the mismatches ("" when all agree).
disk_vs_served() {
	local host want got line bundle out=""
	for host in a.example.com a2.example.com b.example.com b2.example.com c.example.com \
		c2.example.com; do
		line=$(grep -h -v '^#' "$STATE"/haproxy/*.crt-list | awk -v h="$host" '$NF == h')
		if [ -n "$line" ]; then
			bundle=${line%% *}
			want=$(cert_serial "$bundle")
		else
			want=$(cert_serial "$PKI/default.pem")
		fi
		got=$(served "$host")
		[ -n "$want" ] && [ "$want" = "$got" ] || out+="$host: disk=$want served=$got; "
	done
	printf '%s' "$out"
}

# keepalive_client SNI DIR: one TLS connection, one request, then (once DIR/go exists) a
# second request on the same connection. Writes DIR/ready after the first, DIR/peer.pem,
# and prints "first <status line>" and "second <status line>".
keepalive_client() {
	exec python3 - "$FE_PORT" "$1" "$2" <<'PY'
import os, socket, ssl, sys, time
port, sni, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=sni)
with open(os.path.join(d, "peer.pem"), "w") as f:
    f.write(ssl.DER_cert_to_PEM_cert(s.getpeercert(True)))
buf = b""
def request():
    global buf
    s.sendall(b"GET / HTTP/1.1\r\nHost: " + sni.encode() + b"\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            return "connection closed"
        buf += b
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode(errors="replace").split("\r\n")
    clen = 0
    for l in lines[1:]:
        k, _, v = l.partition(":")
        if k.strip().lower() == "content-length":
            clen = int(v.strip())
    while len(buf) < clen:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    buf = buf[clen:]
    return lines[0]
try:
    print("first", request(), flush=True)
    open(os.path.join(d, "ready"), "w").close()
    for _ in range(300):
        if os.path.exists(os.path.join(d, "go")):
            break
        time.sleep(0.1)
    print("second", request(), flush=True)
except Exception as e:
    print("error", repr(e), flush=True)
PY
}

store_count() { find "$STATE/store" -mindepth 1 -maxdepth 1 | wc -l; }

wait_file() { # FILE [SECONDS]
	local i
	for ((i = 0; i < ${2:-10} * 20; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# =========================================================================================
make_pki || die "test PKI generation failed"
SER_DEFAULT=$(cert_serial "$PKI/default.pem")
SER_A1=$(cert_serial "$PKI/a1.pem")
SER_A2=$(cert_serial "$PKI/a2.pem")
SER_WILD=$(cert_serial "$PKI/wild.pem")
SER_C=$(cert_serial "$PKI/c.pem")
SER_B1=$(cert_serial "$PKI/b1.pem")
SER_B2=$(cert_serial "$PKI/b2.pem")
log "serials: default=$SER_DEFAULT a1=$SER_A1 a2=$SER_A2 wild=$SER_WILD c=$SER_C b1=$SER_B1 b2=$SER_B2"
write_certsync_conf
write_haproxy_cfg

section "1. certsync check"
out=$(cs check 2>&1)
rc=$?
assert_eq "check on the test config: exit code" 0 "$rc"
assert_contains "check on the test config: verdict" "$out" "config OK: 3 environments, 6 hostnames"
BAD=$E2E_TMP/bad.conf
sed 's/^      depth = 1;$/      depth = 11;/' "$CONF" >"$BAD"
bad_line=$(grep -n 'depth = 11;' "$BAD" | cut -d: -f1)
[ -n "$bad_line" ] || die "could not make the broken config"
out=$("$CERTSYNC" -c "$BAD" check 2>&1)
rc=$?
assert_eq "check on depth = 11: exit code" 1 "$rc"
assert_match "check on depth = 11: names file:line of the error" "$out" \
	"$BAD:$bad_line: error: .*depth"

section "compile, start HAProxy and certsync run"
out=$(cs compile 2>&1)
rc=$?
assert_eq "compile before any upload: exit code" 0 "$rc"
for env in prod staging other; do
	[ -f "$STATE/haproxy/$env.crt-list" ] || die "compile wrote no $STATE/haproxy/$env.crt-list"
done
assert_eq "compile: the crt-lists hold no certificate line yet" "" \
	"$(grep -hv '^#' "$STATE"/haproxy/*.crt-list)"
out=$(haproxy_check "$HCFG")
rc=$?
assert_eq "haproxy -c accepts the config with the crt-lists compile wrote" 0 "$rc"
[ "$rc" = 0 ] || log "$out"
# What HAProxy 2.6 does with a 0-byte crt-list, and with a missing one.
: >"$E2E_TMP/empty.crt-list"
sed "s#$STATE/haproxy/other.crt-list#$E2E_TMP/empty.crt-list#" "$HCFG" >"$E2E_TMP/h-empty.cfg"
sed "s#$STATE/haproxy/other.crt-list#$E2E_TMP/missing.crt-list#" "$HCFG" >"$E2E_TMP/h-missing.cfg"
haproxy_check "$E2E_TMP/h-empty.cfg" >/dev/null
assert_eq "haproxy -c: a 0-byte crt-list is accepted" 0 "$?"
out=$(haproxy_check "$E2E_TMP/h-missing.cfg")
assert_eq "haproxy -c: a missing crt-list is refused" 1 "$?"
assert_contains "haproxy -c: the refusal names the missing crt-list" "$out" "missing.crt-list"
start_haproxy "$HCFG" "$FE_PORT" || die "HAProxy did not start"
HAP_PID0=$(haproxy_pid_now)
assert_eq "HAProxy's runtime API answers with its pid" "$HAPROXY_PID" "$HAP_PID0"
assert_eq "before any upload a.example.com gets the default certificate" "$SER_DEFAULT" \
	"$(served a.example.com)"
start_certsync || die "certsync run did not start"
status_json
out=$STATUS_OUT
assert_eq "status before any upload: exit code 1 (hostnames without certificate)" 1 "$STATUS_RC"
assert_eq "status before any upload: every hostname has source none" \
	"none none none none none none" "$(jq -r '[.[].certificate.source] | join(" ")' <<<"$out")"

section "2. upload a certificate for a.example.com"
out=$(upload a1)
rc=$?
assert_eq "upload a1: exit code" 0 "$rc"
assert_contains "upload a1: answer names the serial" "$out" "serial $SER_A1"
assert_contains "upload a1: answer says HAProxy is in sync" "$out" "HAProxy: in-sync"
A1_ID=$(sed -n 's/^uploaded: certificate \([0-9a-f]*\) .*/\1/p' <<<"$out")
assert_eq "a.example.com is served a1 within seconds" "$SER_A1" "$(wait_served a.example.com "$SER_A1" 5)"
assert_eq "a2.example.com (not covered) still gets the default certificate" "$SER_DEFAULT" \
	"$(served a2.example.com)"
assert_eq "no HAProxy reload: same pid from the runtime API" "$HAP_PID0" "$(haproxy_pid_now)"
if kill -0 "$HAPROXY_PID" 2>/dev/null; then pass_ "HAProxy process $HAPROXY_PID still running"; else fail_ "HAProxy process $HAPROXY_PID still running" "it is gone"; fi
assert_eq "HAProxy logged no reload" 0 "$(grep -ciE 'reload|re-exec' "$E2E_TMP/haproxy.log")"

section "3. replace it, with a keep-alive connection open across the replacement"
KA=$E2E_TMP/ka
mkdir -p "$KA"
keepalive_client a.example.com "$KA" >"$KA/out" 2>&1 &
KA_PID=$!
E2E_PIDS+=("$KA_PID")
wait_file "$KA/ready" 10 || log "keep-alive client not ready: $(cat "$KA/out")"
assert_eq "keep-alive connection was opened with a1" "$SER_A1" "$(cert_serial "$KA/peer.pem")"
out=$(upload a2)
rc=$?
assert_eq "upload a2: exit code" 0 "$rc"
A2_ID=$(sed -n 's/^uploaded: certificate \([0-9a-f]*\) .*/\1/p' <<<"$out")
assert_eq "a.example.com is served a2" "$SER_A2" "$(wait_served a.example.com "$SER_A2" 5)"
touch "$KA/go"
wait "$KA_PID" 2>/dev/null
assert_contains "keep-alive: first request answered" "$(cat "$KA/out")" "first HTTP/1.1 200"
assert_contains "keep-alive: second request, after the replacement, on the same connection" \
	"$(cat "$KA/out")" "second HTTP/1.1 200"
assert_eq "still the same HAProxy (pid)" "$HAP_PID0" "$(haproxy_pid_now)"
loaded=$(haproxy_cmd "$SOCK" "show ssl cert")
assert_contains "HAProxy holds a2's bundle" "$loaded" "$STATE/haproxy/certs/$A2_ID.pem"
assert_not_contains "HAProxy released a1's bundle" "$loaded" "$STATE/haproxy/certs/$A1_ID.pem"

section "4. refusals"
uploads_before=$(store_count)
out=$(cs upload --cert "$PKI/a1.pem" --chain "$PKI/int.pem" --key "$PKI/other.key" 2>&1)
rc=$?
assert_eq "upload with a key that does not match: exit code" 1 "$rc"
assert_contains "key mismatch: reason" "$out" "the private key does not match the certificate"
out=$(upload expired)
rc=$?
assert_eq "upload of an expired certificate: exit code" 1 "$rc"
assert_contains "expired: reason" "$out" "expired on"
out=$(upload nohost)
rc=$?
assert_eq "upload for a hostname not configured: exit code" 1 "$rc"
assert_contains "no configured hostname: reason names the certificate's name" "$out" "x.other.test"
assert_contains "no configured hostname: reason code" "$out" "(no-hostname)"
assert_eq "after the refusals a.example.com is still served a2" "$SER_A2" "$(served a.example.com)"
assert_eq "the refusals stored nothing" "$uploads_before" "$(store_count)"

section "5. wildcard *.example.com for network n1"
out=$(upload wild)
rc=$?
assert_eq "wildcard without --network (covers n1 and n2): exit code" 1 "$rc"
assert_contains "wildcard without --network: reason" "$out" "several networks"
out=$(upload wild --network n1)
rc=$?
assert_eq "wildcard with --network n1: exit code" 0 "$rc"
for h in a2.example.com b.example.com b2.example.com; do
	assert_eq "$h (network n1) is served the wildcard" "$SER_WILD" "$(wait_served "$h" "$SER_WILD" 5)"
done
assert_eq "a.example.com keeps its exact certificate over the wildcard" "$SER_A2" "$(served a.example.com)"
for h in c.example.com c2.example.com; do
	assert_eq "$h (network n2) gets the default certificate, not the wildcard" "$SER_DEFAULT" \
		"$(served "$h")"
done

section "6. status --json"
assert_eq "status: nothing pending" "" "$(wait_in_sync 5)"
status_json
out=$STATUS_OUT
assert_eq "status exit code while c.example.com and c2.example.com have no certificate" 1 "$STATUS_RC"
assert_eq "status lists every hostname" \
	"a.example.com a2.example.com b.example.com b2.example.com c.example.com c2.example.com" \
	"$(jq -r '[.[].hostname] | sort | join(" ")' <<<"$out")"
for pair in a.example.com=$SER_A2 a2.example.com=$SER_WILD b.example.com=$SER_WILD b2.example.com=$SER_WILD; do
	h=${pair%%=*}
	assert_eq "status: $h source/serial/haproxy" "uploaded $h ${pair#*=} in-sync" \
		"$(jq -r --arg h "$h" '.[] | select(.hostname == $h) | "\(.certificate.source) \(.hostname) \(.certificate.serial) \(.haproxy)"' <<<"$out")"
done
assert_eq "status: c.example.com has source none" "none" \
	"$(jq -r '.[] | select(.hostname == "c.example.com") | .certificate.source' <<<"$out")"
assert_match "status: c.example.com's last_error says what to do" \
	"$(jq -r '.[] | select(.hostname == "c.example.com") | .last_error' <<<"$out")" "upload"
assert_match "status: not_after is RFC 3339" \
	"$(jq -r '.[] | select(.hostname == "a.example.com") | .certificate.not_after' <<<"$out")" \
	'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'

section "7. permissions on the control socket"
stat -c '    %A %U:%G %n' "$STATE" "$STATE/control.sock"
# As certsync left things: is the socket reachable by a non-root member of admin_group?
out=$(as_nobody_admin "$CERTSYNC" -c "$CONF" upload --cert "$PKI/c.pem" --chain "$PKI/int.pem" --key "$PKI/c.key" 2>&1)
rc=$?
assert_eq "admin_group member (non-root) can upload with state_dir as certsync created it" 0 "$rc"
[ "$rc" = 0 ] || log "    $out"
if [ "$rc" != 0 ]; then
	# Loosen state_dir to traversal only so the daemon's own check can be tested.
	chmod 0711 "$STATE"
	out=$(as_nobody_admin "$CERTSYNC" -c "$CONF" upload --cert "$PKI/c.pem" --chain "$PKI/int.pem" --key "$PKI/c.key" 2>&1)
	rc=$?
	assert_eq "admin_group member (non-root) can upload once state_dir is 0711" 0 "$rc"
	[ "$rc" = 0 ] || log "    $out"
fi
assert_eq "c.example.com is served the admin member's upload" "$SER_C" "$(wait_served c.example.com "$SER_C" 5)"
denied_before=$(grep -c 'event=ctl_denied' "$E2E_TMP/certsync.log")
store_before=$(store_count)
out=$(as_nobody "$CERTSYNC" -c "$CONF" upload --cert "$PKI/b1.pem" --chain "$PKI/int.pem" --key "$PKI/b1.key" 2>&1)
rc=$?
assert_eq "nobody (not in admin_group): upload exit code" 1 "$rc"
assert_contains "nobody: refused for permission" "$out" "permission"
assert_eq "nobody: the daemon itself refused (event=ctl_denied logged)" 1 \
	"$(($(grep -c 'event=ctl_denied' "$E2E_TMP/certsync.log") - denied_before))"
assert_eq "nobody: nothing stored" "$store_before" "$(store_count)"
assert_eq "nobody: b.example.com still served the wildcard" "$SER_WILD" "$(served b.example.com)"
status_json
out=$STATUS_OUT
assert_eq "status exit code 0 once every hostname has a certificate" 0 "$STATUS_RC"

section "8. kill -9 of certsync run in the middle of an apply, then restart"
# (a) HAProxy paused: the daemon has stored and compiled the upload and is blocked in its
# first runtime API command when it is killed.
kill -STOP "$HAPROXY_PID"
"$CERTSYNC" -c "$CONF" upload --cert "$PKI/b1.pem" --chain "$PKI/int.pem" --key "$PKI/b1.key" \
	>"$E2E_TMP/upload-b1.out" 2>&1 &
UP_PID=$!
E2E_PIDS+=("$UP_PID")
for i in $(seq 100); do
	grep -q "event=upload .*serial=$SER_B1" "$E2E_TMP/certsync.log" && break
	sleep 0.05
done
sleep 0.3
{
	kill -KILL "$CS_PID"
	wait "$CS_PID"
} 2>/dev/null
assert_eq "the daemon was killed while HAProxy was paused (no apply logged)" 0 \
	"$(grep -c "event=applied" <(sed -n "/serial=$SER_B1/,\$p" "$E2E_TMP/certsync.log"))"
kill -CONT "$HAPROXY_PID"
wait "$UP_PID" 2>/dev/null
log "    upload during the kill said: $(tr '\n' ' ' <"$E2E_TMP/upload-b1.out")"
assert_contains "the upload reached the store before the kill" "$(cat "$E2E_TMP/certsync.log")" "serial=$SER_B1"
assert_contains "the crt-list on disk names the new bundle already" \
	"$(grep -hv '^#' "$STATE/haproxy/staging.crt-list")" "b.example.com"
log "    before the restart HAProxy serves b.example.com: $(served b.example.com)"
start_certsync || die "certsync run did not restart"
assert_eq "after restart (a): status has nothing pending" "" "$(wait_in_sync 10)"
assert_eq "after restart (a): b.example.com is served b1" "$SER_B1" "$(wait_served b.example.com "$SER_B1" 5)"
assert_eq "after restart (a): HAProxy serves what the crt-lists on disk say" "" "$(disk_vs_served)"
# (b) not paused: killed as soon as the daemon logs the upload (while it applies).
"$CERTSYNC" -c "$CONF" upload --cert "$PKI/b2.pem" --chain "$PKI/int.pem" --key "$PKI/b2.key" \
	>"$E2E_TMP/upload-b2.out" 2>&1 &
UP_PID=$!
E2E_PIDS+=("$UP_PID")
for i in $(seq 400); do
	grep -q "event=upload .*serial=$SER_B2" "$E2E_TMP/certsync.log" && break
	sleep 0.005
done
kill -KILL "$CS_PID"
wait "$CS_PID" 2>/dev/null
wait "$UP_PID" 2>/dev/null
if sed -n "/serial=$SER_B2/,\$p" "$E2E_TMP/certsync.log" | grep -q "event=applied"; then
	log "    (b): the kill landed after the apply finished"
else
	log "    (b): the kill landed before the apply finished"
fi
log "    upload during the kill said: $(tr '\n' ' ' <"$E2E_TMP/upload-b2.out")"
start_certsync || die "certsync run did not restart"
assert_eq "after restart (b): status has nothing pending" "" "$(wait_in_sync 10)"
assert_eq "after restart (b): b.example.com is served b2" "$SER_B2" "$(wait_served b.example.com "$SER_B2" 5)"
assert_eq "after restart (b): HAProxy serves what the crt-lists on disk say" "" "$(disk_vs_served)"
status_json
out=$STATUS_OUT
assert_eq "after restart: status exit code 0" 0 "$STATUS_RC"

section "9. HAProxy restarted from the same config"
before=""
for h in a.example.com a2.example.com b.example.com b2.example.com c.example.com c2.example.com; do
	before+="$h=$(served "$h") "
done
stop_haproxy
start_haproxy "$HCFG" "$FE_PORT" || die "HAProxy did not restart"
after=""
for h in a.example.com a2.example.com b.example.com b2.example.com c.example.com c2.example.com; do
	after+="$h=$(served "$h") "
done
assert_eq "after a HAProxy restart the same serials are served (from disk)" "$before" "$after"
assert_eq "after a HAProxy restart: disk and HAProxy agree" "" "$(disk_vs_served)"
assert_eq "after a HAProxy restart certsync reports in-sync" "" "$(wait_in_sync 5)"

section "10. metrics"
body=$(curl -sS --max-time 5 "$METRICS_URL" 2>&1)
na=$(metric "$METRICS_URL" 'certsync_certificate_not_after_seconds{hostname="a.example.com",source="uploaded"}')
assert_eq "metrics: a.example.com's not_after is a2's" \
	"$(date -d "$(openssl x509 -in "$PKI/a2.pem" -noout -enddate | cut -d= -f2)" +%s)" "$na"
assert_eq "metrics: certsync_haproxy_in_sync" 1 "$(metric "$METRICS_URL" certsync_haproxy_in_sync)"
assert_eq "metrics: certsync_hostnames_without_certificate" 0 \
	"$(metric "$METRICS_URL" certsync_hostnames_without_certificate)"
out=$(printf '%s\n' "$body" | promtool check metrics 2>&1)
rc=$?
assert_eq "promtool check metrics: exit code" 0 "$rc"
[ "$rc" = 0 ] || log "$out"

section "11. a replacement issued in the same second as the certificate it replaces"
# t1 and t2 (b2.example.com) have the same notBefore and notAfter. The one uploaded last
# must be served. Uploaded in the order that does not agree with their store ids (the
# SHA-256 of the leaf), so a choice that falls back to the id is seen.
id_of() { openssl x509 -in "$1" -outform der | sha256sum | cut -c1-32; }
if [[ $(id_of "$PKI/t1.pem") > $(id_of "$PKI/t2.pem") ]]; then T_FIRST=t1 T_LAST=t2; else T_FIRST=t2 T_LAST=t1; fi
SER_TLAST=$(cert_serial "$PKI/$T_LAST.pem")
out=$(upload "$T_FIRST")
assert_eq "same-second pair: first upload ($T_FIRST): exit code" 0 "$?"
assert_eq "same-second pair: b2.example.com is served $T_FIRST" "$(cert_serial "$PKI/$T_FIRST.pem")" \
	"$(wait_served b2.example.com "$(cert_serial "$PKI/$T_FIRST.pem")" 5)"
out=$(upload "$T_LAST")
assert_eq "same-second pair: second upload ($T_LAST): exit code" 0 "$?"
assert_contains "same-second pair: the answer says it serves b2.example.com" "$out" "serves b2.example.com"
assert_eq "same-second pair: b2.example.com is served the certificate uploaded last ($T_LAST)" \
	"$SER_TLAST" "$(wait_served b2.example.com "$SER_TLAST" 3)"

section "12. a second certsync run while one runs"
# It must not take the running daemon's control socket away (it fails to start: the
# metrics port is taken), so uploads still reach the running daemon afterwards.
"$CERTSYNC" -c "$CONF" run >>"$E2E_TMP/certsync-second.log" 2>&1 &
SECOND_PID=$!
E2E_PIDS+=("$SECOND_PID")
for i in $(seq 50); do kill -0 "$SECOND_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SECOND_PID" 2>/dev/null && log "    the second certsync run is still running"
stop_pid "$SECOND_PID"
assert_eq "the first daemon is still running" 0 "$(kill -0 "$CS_PID" 2>/dev/null; echo $?)"
out=$(upload b2)
rc=$?
assert_eq "after a second run failed, uploads still reach the running daemon: exit code" 0 "$rc"
[ "$rc" = 0 ] || log "    $out"

e2e_finish

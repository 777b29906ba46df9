#!/usr/bin/env bash
# End to end: the product's core promise — per-hostname mutual TLS — through the real
# HAProxy 2.6 (haproxy/haproxy.cfg + haproxy/spoe-mtls.conf as shipped, paths and ports
# rewritten by sed), spoa-mtls, and `certsync compile`. Everything on 127.0.0.1 with ports
# picked at run time, files in a temp dir, every process stopped at the end.
#
#   (0) PKI made with openssl: client root -> i1 -> i2 -> i3 -> leaves (valid, expired,
#       not yet valid, serverAuth-only, revoked with a CRL from i3 in the trust files),
#       a leaf of an unknown CA, self-signed pinned / unpinned leaves; a server CA and one
#       *.mtls.test wildcard uploaded once through `certsync run` + `certsync upload`;
#       `certsync check` and `certsync compile` write policy.pb, crt-lists and maps.
#       The agent must judge with its policy as soon as it listens, and an agent started
#       before policy.pb exists must not open validating hostnames (fail closed).
#   (1) the matrix: every hostname x every certificate case (and no certificate) gives the
#       outcome of the table below; every 200 carries the exact x-ssl-client-* values
#       (verify, and for the leaf: s-dn, i-dn, serial, sha1, v-start, v-end, v-remain, cert)
#   (2) client-sent x-ssl-client-* headers (mixed case) never reach the origin, any mode
#   (3) Host != SNI across policies: 421; Host = SNI and Host of the same policy: pass
#   (4) TLS session resumed under another SNI (TLS 1.2 and 1.3) is judged by the new SNI
#   (5) request_hostnames: the unasked hostname of a `required` environment never passes
#   (6) one NOTIFY per TLS connection: HTTP/1.1 keep-alive and HTTP/2
#   (7) policy reload under load (certsync compile, new generation adopted within 1 s):
#       no request fails, and the new policy applies
#   (8) agent SIGKILLed mid-traffic: required/optional/optional-no-ca fail closed (503),
#       permissive passes with FAILED:agent-unavailable, disabled passes
#
# Usage: BUILD=build bash tests/e2e/mtls_matrix.sh   (binaries in $BUILD/bin)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

CERTSYNC=${CERTSYNC:-$BUILD/bin/certsync}
need "$HAPROXY" curl openssl python3 awk sed base64
[ -x "$CERTSYNC" ] || die "no certsync binary at $CERTSYNC (build it, or set BUILD)"
[ -x "$SPOA_MTLS" ] || die "no agent binary at $SPOA_MTLS (build it, or set BUILD)"
e2e_init
T_START=$(date +%s.%N)

PKI=$E2E_TMP/pki
STATE=$E2E_TMP/state
CONF=$E2E_TMP/certsync.conf
HCFG=$E2E_TMP/haproxy.cfg
SPOE_CONF=$E2E_TMP/spoe-mtls.conf
SOCK=$E2E_TMP/admin.sock
DOMAIN=mtls.test
read -r FE_PORT AGENT_PORT METRICS_PORT CS_METRICS_PORT ORIGIN_PORT <<<"$(free_ports 5)"
[ -n "$ORIGIN_PORT" ] || die "could not pick free ports"
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
NOTIFY=spoa_mtls_notify_processed_total
log "ports: frontend=$FE_PORT agent=$AGENT_PORT metrics=$METRICS_PORT origin=$ORIGIN_PORT"

# =========================================================================================
# The environments. One per (mode x depth); every hostname is <host>.mtls.test. Trust files
# (chain of trust, every certificate in them an anchor, DESIGN §2.2), all with the pinned
# self-signed leaf and i3's CRL:
#   T1 = i3     a valid leaf's path counts i3                 -> 1 CA certificate
#   T2 = i2     counts i3, i2                                 -> 2
#   T3 = i1     counts i3, i2, i1                             -> 3
#   T4 = root   counts i3, i2, i1, root                       -> 4
# The client always sends leaf + i3 + i2 + i1. For depth N the hostname <x>-dN has the
# anchor at count N (the boundary: passes) and <x>-dN-far at count N+1 (chain-too-long);
# depth 0 takes T2 (only the pinned self-signed leaf can pass).
#
# env          mode            depth deny  asked      hostname:trust ...
ENVS=$(
	cat <<'EOF'
req-d0         required        0     false -          req-d0:T2
req-d1         required        1     false -          req-d1:T1 req-d1-far:T2
req-d2         required        2     false -          req-d2:T2 req-d2-far:T3
req-d3         required        3     false -          req-d3:T3 req-d3-far:T4
opt-d0         optional        0     false -          opt-d0:T2
opt-d1         optional        1     false -          opt-d1:T1
opt-d2         optional        2     false -          opt-d2:T2 opt-d2b:T2
opt-d3         optional        3     false -          opt-d3:T3
perm-d0        permissive      0     false -          perm-d0:T2
perm-d1        permissive      1     false -          perm-d1:T1 perm-d1-far:T2
perm-d2        permissive      2     false -          perm-d2:T2 perm-d2-far:T3
perm-d3        permissive      3     false -          perm-d3:T3 perm-d3-far:T4
permdeny-d2    permissive      2     true  -          permdeny-d2:T2
noca           optional-no-ca  -     false -          noca:T2
noca-bare      optional-no-ca  -     false -          noca-bare:-
dis            disabled        -     false -          dis:-
reqsel         required        2     false reqsel-a   reqsel-a:T2 reqsel-b:T2
EOF
)

# =========================================================================================
# The matrix: hostname x client certificate -> outcome (DESIGN §2.1-§2.4).
#   hs        the TLS handshake fails (HAProxy `verify required`, no certificate): curl 35/56
#   rej       handshake completes, connection closed without any HTTP response (`reject`):
#             curl exit 52, empty reply
#   403       permissive + deny_on_failure, certificate failed
#   NONE      200, x-ssl-client-verify: NONE and no other x-ssl-client-* header
#   SUCCESS / LENIENT / F:<reason>
#             200, x-ssl-client-verify SUCCESS / LENIENT / FAILED:<reason>, and the eight
#             certificate headers of the leaf, each compared with openssl's own output
#   -         200 and no x-ssl-client-* header at all (disabled)
# Cases (columns): none = no certificate sent; valid = clientAuth leaf under i3; expired,
# notyet (notBefore in a year), noeku (serverAuth EKU only), revoked (in i3's CRL), unknown
# (leaf + root of a CA no trust file holds), pinned (self-signed, in every trust file),
# selfsigned (self-signed, in none).
CASES="none valid expired notyet noeku revoked unknown pinned selfsigned"
MATRIX=$(
	cat <<'EOF'
# host       none  valid             expired    notyet           noeku          revoked    unknown     pinned   selfsigned
req-d0       hs    rej               rej        rej              rej            rej        rej         SUCCESS  rej
req-d1       hs    SUCCESS           rej        rej              rej            rej        rej         SUCCESS  rej
req-d1-far   hs    rej               rej        rej              rej            rej        rej         SUCCESS  rej
req-d2       hs    SUCCESS           rej        rej              rej            rej        rej         SUCCESS  rej
req-d2-far   hs    rej               rej        rej              rej            rej        rej         SUCCESS  rej
req-d3       hs    SUCCESS           rej        rej              rej            rej        rej         SUCCESS  rej
req-d3-far   hs    rej               rej        rej              rej            rej        rej         SUCCESS  rej
opt-d0       NONE  rej               rej        rej              rej            rej        rej         LENIENT  rej
opt-d1       NONE  LENIENT           rej        rej              rej            rej        rej         LENIENT  rej
opt-d2       NONE  LENIENT           rej        rej              rej            rej        rej         LENIENT  rej
opt-d2b      NONE  LENIENT           rej        rej              rej            rej        rej         LENIENT  rej
opt-d3       NONE  LENIENT           rej        rej              rej            rej        rej         LENIENT  rej
perm-d0      NONE  F:chain-too-long  F:expired  F:not-yet-valid  F:bad-purpose  F:revoked  F:untrusted LENIENT  F:self-signed-not-pinned
perm-d1      NONE  LENIENT           F:expired  F:not-yet-valid  F:bad-purpose  F:revoked  F:untrusted LENIENT  F:self-signed-not-pinned
perm-d1-far  NONE  F:chain-too-long  F:expired  F:not-yet-valid  F:bad-purpose  F:revoked  F:untrusted LENIENT  F:self-signed-not-pinned
perm-d2      NONE  LENIENT           F:expired  F:not-yet-valid  F:bad-purpose  F:revoked  F:untrusted LENIENT  F:self-signed-not-pinned
perm-d2-far  NONE  F:chain-too-long  F:expired  F:not-yet-valid  F:bad-purpose  F:revoked  F:untrusted LENIENT  F:self-signed-not-pinned
perm-d3      NONE  LENIENT           F:expired  F:not-yet-valid  F:bad-purpose  F:revoked  F:untrusted LENIENT  F:self-signed-not-pinned
perm-d3-far  NONE  F:chain-too-long  F:expired  F:not-yet-valid  F:bad-purpose  F:revoked  F:untrusted LENIENT  F:self-signed-not-pinned
permdeny-d2  NONE  LENIENT           403        403              403            403        403         LENIENT  403
noca         NONE  LENIENT           rej        rej              rej            rej        LENIENT     LENIENT  LENIENT
noca-bare    NONE  LENIENT           rej        rej              rej            LENIENT    LENIENT     LENIENT  LENIENT
dis          -     -                 -          -                -              -          -           -        -
reqsel-a     hs    SUCCESS           rej        rej              rej            rej        rej         SUCCESS  rej
reqsel-b     rej   rej               rej        rej              rej            rej        rej         rej      rej
EOF
)
# noca-bare has no trust file: no CRL, so the revoked leaf is only "untrusted" (tolerated).
# reqsel-b is a `required` hostname left out of request_hostnames: it is never sent a
# CertificateRequest (crt-list `verify none`), so no certificate ever arrives and the agent
# rejects every connection, with or without a client certificate configured (§2.1).

# =========================================================================================
section "(0) PKI"

# issue NAME ISSUER EXT START END SUBJECT: NAME.key/NAME.pem signed by ISSUER (openssl ca)
issue() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" &&
		openssl req -new -utf8 -key "$1.key" -subj "$6" -config ext.cnf -out "$1.csr" &&
		openssl ca -batch -utf8 -config ext.cnf -cert "$2.pem" -keyfile "$2.key" -in "$1.csr" \
			-extensions "$3" -startdate "$4" -enddate "$5" -rand_serial -notext -out "$1.pem"
}

make_pki() {
	mkdir -p "$PKI/newcerts" && cd "$PKI" || return 1
	cat >ext.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
string_mask = utf8only
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
new_certs_dir = newcerts
serial = serial
crlnumber = crlnumber
default_md = sha256
default_crl_days = 30
policy = pol
preserve = yes
unique_subject = no
email_in_dn = no
copy_extensions = none
[pol]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[serveronly]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[selfclient]
basicConstraints = critical, CA:false
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
[wildcard]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:*.mtls.test
[crlext]
authorityKeyIdentifier = keyid
EOF
	(
		set -e
		key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
		touch index.txt
		echo 1000 >serial
		echo 01 >crlnumber
		now=$(date -u +%s)
		d() { date -u -d "@$((now + $1))" +%Y%m%d%H%M%SZ; }
		# CAs: root (self-signed), i1 < root, i2 < i1, i3 < i2; an unknown root; server CA
		for ca in root unknown-ca server-ca; do
			key $ca.key
			openssl req -new -x509 -key $ca.key -days 3650 -subj "/O=edgetls e2e/CN=Client $ca" \
				-config ext.cnf -extensions v3ca -out $ca.pem
		done
		parent=root
		for ca in i1 i2 i3; do
			key $ca.key
			openssl req -new -key $ca.key -subj "/C=US/O=edgetls e2e/OU=Level $ca/CN=Client CA $ca" \
				-config ext.cnf -out $ca.csr
			openssl x509 -req -in $ca.csr -CA $parent.pem -CAkey $parent.key -CAcreateserial \
				-days 3000 -extfile ext.cnf -extensions v3ca -out $ca.pem
			parent=$ca
		done
		# Leaves under i3. The valid one has RFC 2253 escapes to check: ',' '+' '"' and UTF-8.
		issue valid i3 client "$(d -3600)" "$(d $((30 * 86400 + 43200)))" \
			'/C=US/O=ACME, Inc./OU=Sec\+Ops/CN=Ålice "A" Müller'
		issue expired i3 client 20200101000000Z 20210101000000Z '/O=ACME/CN=expired client'
		issue notyet i3 client "$(d $((365 * 86400)))" "$(d $((400 * 86400 + 43200)))" \
			'/O=ACME/CN=not yet valid client'
		issue noeku i3 serveronly "$(d -3600)" "$(d $((30 * 86400 + 43200)))" \
			'/O=ACME/CN=server auth only'
		issue revoked i3 client "$(d -3600)" "$(d $((30 * 86400 + 43200)))" '/O=ACME/CN=revoked client'
		issue unknown unknown-ca client "$(d -3600)" "$(d $((30 * 86400 + 43200)))" \
			'/O=Other/CN=unknown CA client'
		openssl ca -batch -config ext.cnf -cert i3.pem -keyfile i3.key -revoke revoked.pem
		openssl ca -batch -gencrl -config ext.cnf -cert i3.pem -keyfile i3.key -crlexts crlext \
			-out i3.crl
		# Self-signed leaves (clientAuth; no keyUsage, so the self-signature is usable)
		for s in pinned selfsigned; do
			key $s.key
			openssl req -new -x509 -key $s.key -days 90 -subj "/O=Self/CN=$s client" \
				-config ext.cnf -extensions selfclient -out $s.pem
		done
		# What curl sends (--cert): leaf + intermediates
		for c in valid expired notyet noeku revoked; do cat $c.pem i3.pem i2.pem i1.pem >$c.chain.pem; done
		cat unknown.pem unknown-ca.pem >unknown.chain.pem
		cp pinned.pem pinned.chain.pem
		cp selfsigned.pem selfsigned.chain.pem
		# Trust files: one anchor level each, plus the pinned leaf and i3's CRL
		cat i3.pem pinned.pem i3.crl >T1.pem
		cat i2.pem pinned.pem i3.crl >T2.pem
		cat i1.pem pinned.pem i3.crl >T3.pem
		cat root.pem pinned.pem i3.crl >T4.pem
		# The same without the CRL (fallback when certsync cannot load a CRL, see (0))
		cat i3.pem pinned.pem >T1-nocrl.pem
		cat i2.pem pinned.pem >T2-nocrl.pem
		cat i1.pem pinned.pem >T3-nocrl.pem
		cat root.pem pinned.pem >T4-nocrl.pem
		# Server side: one wildcard for every hostname, HAProxy's default certificate
		issue wildcard server-ca wildcard "$(d -3600)" "$(d $((60 * 86400)))" '/CN=*.mtls.test'
		openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
			-keyout default.key -subj "/CN=edgetls e2e default" -out default.crt
		cat default.crt default.key >default.pem
	) >"$PKI/openssl.log" 2>&1 || {
		tail -n 30 "$PKI/openssl.log" >&2
		return 1
	}
	cd "$E2E_ROOT" || return 1
}
make_pki || die "PKI generation failed"
# Sanity of the PKI itself, with openssl (the same partial-chain rules as the product)
assert_ok "PKI: valid leaf verifies against i2 (partial chain, x509_strict, clientAuth)" \
	openssl verify -partial_chain -x509_strict -purpose sslclient -CAfile "$PKI/i2.pem" \
	-untrusted "$PKI/i3.pem" "$PKI/valid.pem"
assert_ok "PKI: i3's CRL lists the revoked leaf" sh -c "openssl crl -in '$PKI/i3.crl' -noout -text | grep -qi \
	\"$(openssl x509 -in "$PKI/revoked.pem" -noout -serial | sed 's/serial=//')\""

# Facts of every client leaf, as openssl prints them (what the agent must send)
declare -A F_SDN F_IDN F_SERIAL F_SHA1 F_VSTART F_VEND F_NOTAFTER F_PEM
for c in valid expired notyet noeku revoked unknown pinned selfsigned; do
	f=$PKI/$c.pem
	F_SDN[$c]=$(openssl x509 -in "$f" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
	F_IDN[$c]=$(openssl x509 -in "$f" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//')
	F_SERIAL[$c]=$(openssl x509 -in "$f" -noout -serial | sed 's/^serial=//')
	F_SHA1[$c]=$(openssl x509 -in "$f" -noout -fingerprint -sha1 | sed 's/^.*=//; s/://g')
	F_VSTART[$c]=$(openssl x509 -in "$f" -noout -startdate | sed 's/^notBefore=//')
	F_VEND[$c]=$(openssl x509 -in "$f" -noout -enddate | sed 's/^notAfter=//')
	F_NOTAFTER[$c]=$(date -u -d "${F_VEND[$c]}" +%s)
	F_PEM[$c]=$(openssl x509 -in "$f")
done
log "valid leaf: s-dn=${F_SDN[valid]}  serial=${F_SERIAL[valid]}"
assert_match "PKI: the valid leaf's RFC 2253 subject has escapes (\\, \\+ \\\" and UTF-8 as \\XX)" \
	"${F_SDN[valid]}" '\\,.*\\\+|\\\+.*\\,'

# =========================================================================================
section "(0) certsync: check, upload of the server wildcard, compile"

# trust_file T: the path of a trust file name (T1..T4)
write_conf() { # [extra-env-text]: the certsync configuration, from $ENVS
	local env mode depth deny asked hosts sep="" h hl t first
	{
		echo "# mtls_matrix.sh: one environment per (mode x depth)"
		echo "state_dir = \"$STATE\";"
		echo "haproxy: { runtime_api = \"unix:$SOCK\"; };"
		echo "agent: { policy_file = \"$STATE/policy.pb\"; };"
		echo "metrics_listen = \"127.0.0.1:$CS_METRICS_PORT\";"
		echo "upload_ca_file = \"$PKI/server-ca.pem\";"
		echo "environments = ("
		while read -r env mode depth deny asked hosts; do
			case $env in "" | "#"*) continue ;; esac
			hl=""
			for h in $hosts; do hl="$hl${hl:+, }\"${h%%:*}.$DOMAIN\""; done
			# the reload test (7) appends hostnames to an environment
			if [ "${EXTRA_HOSTS_ENV:-}" = "$env" ]; then
				for h in $EXTRA_HOSTS; do hl="$hl, \"$h.$DOMAIN\""; done
			fi
			[ "${EXTRA_DENY_ENV:-}" = "$env" ] && deny=true
			printf '%s  { name = "%s"; network = "mtls"; hostnames = [ %s ];\n' "$sep" "$env" "$hl"
			sep=","
			printf '    mtls: { validation = "%s"; send_headers = true;' "$mode"
			[ "$depth" != - ] && printf ' depth = %s;' "$depth"
			[ "$deny" = true ] && printf ' deny_on_failure = true;'
			[ "$asked" != - ] && printf ' request_hostnames = [ "%s.%s" ];' "$asked" "$DOMAIN"
			if [ "$mode" != disabled ]; then
				first=1
				for h in $hosts; do
					t=${h##*:}
					[ "$t" = - ] && continue
					[ $first = 1 ] && printf '\n      chains = ( ' || printf ',\n                 '
					first=0
					printf '{ hostnames = [ "%s.%s" ]; file = "%s"; }' "${h%%:*}" "$DOMAIN" "$PKI/$t${TSUFFIX:-}.pem"
				done
				[ $first = 0 ] && printf ' );'
			fi
			printf ' }; }\n'
		done <<<"$ENVS"
		echo ");"
	} >"$CONF"
}
write_conf
out=$("$CERTSYNC" -c "$CONF" check 2>&1)
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/check.log"
assert_eq "certsync check accepts the matrix configuration" 0 "$rc"
[ "$rc" -eq 0 ] || die "certsync check: $(head -n 5 "$E2E_TMP/check.log")"

compile() {
	"$CERTSYNC" -c "$CONF" compile >>"$E2E_TMP/compile.log" 2>&1
}
# The trust files carry i3's CRL (DESIGN §2.2: "the CRL when the chain has one").
compile
rc=$?
assert_eq "certsync compile with a CRL in the chain-of-trust files" 0 "$rc"
if [ "$rc" -ne 0 ]; then
	log "!! certsync cannot compile trust files holding a CRL (exit $rc: $(grep -v config_warning "$E2E_TMP/compile.log" | tail -n 1))."
	log "!! The rest runs with the same trust files WITHOUT the CRL: the 'revoked' column is then"
	log "!! expected to fail (a revoked certificate passes when no CRL reaches the agent)."
	TSUFFIX=-nocrl
	write_conf
	compile
	assert_eq "certsync compile (trust files without CRL)" 0 "$?"
fi

# The server certificate: uploaded through the daemon (HAProxy is not up yet: files only),
# then the daemon is stopped and `certsync compile` writes the crt-lists that name it.
"$CERTSYNC" -c "$CONF" run >>"$E2E_TMP/certsync.log" 2>&1 &
CS_PID=$!
E2E_PIDS+=("$CS_PID")
for _ in $(seq 100); do
	[ -S "$STATE/control.sock" ] && break
	kill -0 "$CS_PID" 2>/dev/null || break
	sleep 0.05
done
[ -S "$STATE/control.sock" ] || die "certsync run: no control socket"
out=$("$CERTSYNC" -c "$CONF" upload --cert "$PKI/wildcard.pem" --chain "$PKI/server-ca.pem" \
	--key "$PKI/wildcard.key" 2>&1)
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/upload.log"
assert_eq "certsync upload of the *.$DOMAIN wildcard" 0 "$rc"
stop_pid "$CS_PID"
compile
assert_eq "certsync compile after the upload" 0 "$?"
HDIR=$STATE/haproxy
[ -s "$STATE/policy.pb" ] || die "certsync compile wrote no policy.pb"
crtlists=""
while read -r env _; do
	case $env in "" | "#"*) continue ;; esac
	crtlists="$crtlists crt-list $HDIR/$env.crt-list"
done <<<"$ENVS"
assert_match "crt-list: req-d2 asks for a certificate (verify required, its chain as ca-file)" \
	"$(cat "$HDIR/req-d2.crt-list")" "\[verify required ca-file [^]]*\] req-d2\.$DOMAIN"
assert_match "crt-list: opt-d2 asks (verify optional)" "$(cat "$HDIR/opt-d2.crt-list")" \
	"\[verify optional [^]]*\] opt-d2\.$DOMAIN"
assert_match "crt-list: reqsel-b (not in request_hostnames) is not asked (verify none)" \
	"$(cat "$HDIR/reqsel.crt-list")" "\[verify none\] reqsel-b\.$DOMAIN"
assert_match "crt-list: dis is not asked (verify none)" "$(cat "$HDIR/dis.crt-list")" \
	"\[verify none\] dis\.$DOMAIN"

# =========================================================================================
section "(0) HAProxy config derived from haproxy/haproxy.cfg; start agent and HAProxy"

sed -e "s#/var/lib/edgetls/haproxy/#$HDIR/#g" "$E2E_ROOT/haproxy/spoe-mtls.conf" >"$SPOE_CONF"
cat >"$E2E_TMP/test-headers.cfg" <<'EOF'
    # e2e only: what SPOE stored, under names the shipped rules never touch
    http-request set-header x-e2e-mtls-verdict %[var(sess.mtls.verdict)] if { var(sess.mtls.verdict) -m found }
    http-request set-header x-e2e-spoe-error   %[var(txn.mtls.error)]    if { var(txn.mtls.error) -m found }
    http-request set-header x-e2e-resumed      %[ssl_fc_is_resumed]
    http-request set-header x-e2e-sni          %[ssl_fc_sni]
EOF
sed -e "s#crt /etc/haproxy/default.pem crt-list /var/lib/edgetls/haproxy/production.crt-list#crt $PKI/default.pem$crtlists#" \
	-e "s#/var/lib/edgetls/haproxy/#$HDIR/#g" \
	-e "s#/etc/haproxy/spoe-mtls.conf#$SPOE_CONF#g" \
	-e "s#/run/haproxy/admin.sock#$SOCK#g" \
	-e "s#^\([[:space:]]*\)log /dev/log local0#\1log stderr format raw local0 info#" \
	-e "s#^\([[:space:]]*bind \):443 #\1127.0.0.1:$FE_PORT #" \
	-e "s#127\.0\.0\.1:12345#127.0.0.1:$AGENT_PORT#g" \
	-e "s#127\.0\.0\.1:8080#127.0.0.1:$ORIGIN_PORT#g" \
	"$E2E_ROOT/haproxy/haproxy.cfg" | awk -v f="$E2E_TMP/test-headers.cfg" '
		/^[[:space:]]*default_backend origin/ { while ((getline l < f) > 0) print l }
		{ print }' >"$HCFG"
cat >>"$HCFG" <<EOF

# e2e only: the origin answers with the request headers it received, base64-encoded.
listen echo-origin
    bind 127.0.0.1:$ORIGIN_PORT
    http-request return status 200 content-type text/plain lf-string "%[req.hdrs,base64]"
EOF
cfg=$(cat "$HCFG")
assert_contains "test config: every environment's crt-list on the bind line" "$cfg" \
	"crt $PKI/default.pem crt-list $HDIR/req-d0.crt-list"
assert_contains "test config: agent on the test port" "$cfg" "server agent1 127.0.0.1:$AGENT_PORT check"
assert_contains "test config: origin on the test port" "$cfg" "server origin1 127.0.0.1:$ORIGIN_PORT"
assert_contains "test config: shipped SPOE file" "$cfg" "config $SPOE_CONF"
out=$(haproxy_check "$HCFG")
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/haproxy-check.log"
assert_eq "haproxy -c on the derived config" 0 "$rc"
[ "$rc" -eq 0 ] || die "the HAProxy config does not load; see haproxy-check.log"

start_agent "$AGENT_PORT" "$METRICS_PORT" --policy "$STATE/policy.pb" || die "spoa-mtls did not start"
# As soon as the agent accepts connections it must judge with its policy: HAProxy's health
# check marks it UP within a second and sends it traffic.
assert_eq "agent has loaded policy.pb when it starts listening (spoa_mtls_policy_loaded)" 1 \
	"$(metric "$METRICS_URL" spoa_mtls_policy_loaded)"
start_haproxy "$HCFG" "$FE_PORT" || die "haproxy did not start"
wait_agent() { # STATE: until HAProxy's agent server is STATE (max 5 s)
	for _ in $(seq 100); do
		st=$(server_status "$SOCK" spoa-mtls agent1 2>/dev/null) && [ "${st%% *}" = "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
wait_agent UP
assert_eq "agent server UP in HAProxy" UP "${st%% *}"
wait_loaded() { # until spoa_mtls_policy_loaded is 1 (max 2 s)
	for _ in $(seq 40); do
		[ "$(metric "$METRICS_URL" spoa_mtls_policy_loaded)" = 1 ] && return 0
		sleep 0.05
	done
	return 1
}
wait_loaded || die "the agent never loaded $STATE/policy.pb"
# =========================================================================================
# helpers

# req HOST CASE [curl args...]: one request to https://HOST.mtls.test/; sets OUT (hs, rej,
# HTTP status, or "curl<rc>"), RC, BODY (the headers the origin received, one per line)
# and CERR (curl's stderr).
req() {
	local host=$1.$DOMAIN c=$2 code
	shift 2
	local args=(-sS --max-time 10 --cacert "$PKI/server-ca.pem"
		--resolve "$host:$FE_PORT:127.0.0.1" -o "$E2E_TMP/body" -w '%{http_code}')
	[ "$c" != none ] && args+=(--cert "$PKI/$c.chain.pem" --key "$PKI/$c.key")
	: >"$E2E_TMP/body"
	code=$(curl "${args[@]}" "$@" "https://$host:$FE_PORT/m" 2>"$E2E_TMP/curl.err")
	RC=$?
	CERR=$(cat "$E2E_TMP/curl.err")
	BODY=$(base64 -d <"$E2E_TMP/body" 2>/dev/null | tr -d '\r')
	case $RC in
	0) OUT=$code ;;
	52) OUT=rej ;;
	35) OUT=hs ;;
	56) if [[ $CERR == *alert* ]]; then OUT=hs; else OUT=curl56; fi ;;
	*) OUT=curl$RC ;;
	esac
}

# parse_hdrs: HX[name]=value for every x-ssl-client-* header in BODY (lowercased names),
# NX the number of such lines, NV the number of x-ssl-client-verify lines
declare -A HX
parse_hdrs() {
	local line n
	HX=()
	NX=0
	NV=0
	while IFS= read -r line; do
		n=${line%%:*}
		n=${n,,}
		[[ $n == x-ssl-client-* ]] || continue
		NX=$((NX + 1))
		[ "$n" = x-ssl-client-verify ] && NV=$((NV + 1))
		[ -n "${HX[$n]+x}" ] || HX[$n]=${line#*: }
	done <<<"$BODY"
}

urldecode() { printf '%b' "${1//%/\\x}"; }

v_remain_of() { # case: whole days until notAfter, 0 when past
	local s=$((F_NOTAFTER[$1] - $(date -u +%s)))
	[ "$s" -lt 0 ] && s=0
	echo $((s / 86400))
}

# check_facts WHAT CASE: the eight certificate headers equal the leaf's facts
check_facts() {
	local w=$1 c=$2
	assert_eq "$w: x-ssl-client-s-dn" "${F_SDN[$c]}" "${HX[x-ssl-client-s-dn]-<absent>}"
	assert_eq "$w: x-ssl-client-i-dn" "${F_IDN[$c]}" "${HX[x-ssl-client-i-dn]-<absent>}"
	assert_eq "$w: x-ssl-client-serial" "${F_SERIAL[$c]}" "${HX[x-ssl-client-serial]-<absent>}"
	assert_eq "$w: x-ssl-client-sha1" "${F_SHA1[$c]}" "${HX[x-ssl-client-sha1]-<absent>}"
	assert_eq "$w: x-ssl-client-v-start" "${F_VSTART[$c]}" "${HX[x-ssl-client-v-start]-<absent>}"
	assert_eq "$w: x-ssl-client-v-end" "${F_VEND[$c]}" "${HX[x-ssl-client-v-end]-<absent>}"
	assert_eq "$w: x-ssl-client-v-remain" "$(v_remain_of "$c")" "${HX[x-ssl-client-v-remain]-<absent>}"
	local pem
	pem=$(urldecode "${HX[x-ssl-client-cert]-<absent>}")
	if [ "$pem" = "${F_PEM[$c]}" ]; then
		pass_ "$w: x-ssl-client-cert, URL-decoded, is the leaf PEM (${#pem} bytes)"
	else
		fail_ "$w: x-ssl-client-cert, URL-decoded, is the leaf PEM" "expected: ${F_PEM[$c]}" \
			"got:      ${HX[x-ssl-client-cert]-<absent>}"
	fi
	assert_eq "$w: 9 x-ssl-client-* headers, one each" 9 "$NX"
}

# expect WHAT EXPECTED CASE: asserts the outcome of the last req against a matrix cell
expect() {
	local w=$1 e=$2 c=$3 want_out want_verify=""
	case $e in
	hs | rej | 403 | 421 | 503) want_out=$e ;;
	-) want_out=200 ;;
	NONE | SUCCESS | LENIENT) want_out=200 want_verify=$e ;;
	F:*) want_out=200 want_verify=FAILED:${e#F:} ;;
	*) die "bad matrix cell '$e'" ;;
	esac
	if [ "$OUT" != "$want_out" ]; then
		fail_ "$w -> $e" "expected: $want_out" "got:      $OUT (curl exit $RC: ${CERR:0:200})"
		return
	fi
	if [ "$want_out" != 200 ]; then
		pass_ "$w -> $e"
		return
	fi
	parse_hdrs
	if [ "$e" = - ]; then
		assert_eq "$w -> 200, no x-ssl-client-* header" 0 "$NX"
		return
	fi
	assert_eq "$w -> 200, x-ssl-client-verify" "$want_verify" "${HX[x-ssl-client-verify]-<absent>}"
	if [ "$c" = none ]; then
		assert_eq "$w: only x-ssl-client-verify (no certificate)" 1 "$NX"
	else
		check_facts "$w" "$c"
	fi
}

# notify_count: spoa_mtls_notify_processed_total once it has stopped moving
notify_count() {
	local a b
	a=$(metric "$METRICS_URL" "$NOTIFY") || return 1
	for _ in 1 2 3 4 5; do
		sleep 0.2
		b=$(metric "$METRICS_URL" "$NOTIFY") || return 1
		[ "$a" = "$b" ] && break
		a=$b
	done
	echo "$a"
}
delta() {
	if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]]; then echo $(($2 - $1)); else echo "read-failed($1,$2)"; fi
}

# =========================================================================================
section "(0) an agent without its policy file must not open validating hostnames"

# Boot order is not guaranteed: the agent may start before certsync has written
# policy.pb. Until it has a policy, a required/optional hostname must not pass a
# certificate the policy would refuse (fail closed: reject, or no verdict -> 503).
stop_agent
wait_agent DOWN || die "agent not DOWN after stop"
mv "$STATE/policy.pb" "$STATE/policy.pb.hold"
# The agent refuses to start without its policy (exit 1): nothing listens, HAProxy keeps
# it DOWN, and the validating modes fail closed.
"$SPOA_MTLS" --listen "127.0.0.1:$AGENT_PORT" --policy "$STATE/policy.pb" >>"$E2E_TMP/agent.log" 2>&1
assert_eq "agent without its policy file exits 1" 1 "$?"
for spec in req-d1:expired opt-d1:expired req-d0:valid; do
	req "${spec%%:*}" "${spec#*:}" --http1.1
	parse_hdrs
	assert_match "no policy loaded: ${spec%%:*}/${spec#*:} fails closed (got $OUT verify '${HX[x-ssl-client-verify]-}')" \
		"$OUT" '^(rej|503)$'
done
mv "$STATE/policy.pb.hold" "$STATE/policy.pb"
start_agent "$AGENT_PORT" "$METRICS_PORT" --policy "$STATE/policy.pb" || die "spoa-mtls did not restart"
wait_agent UP || die "agent not UP again"
wait_loaded
assert_eq "policy file in place: loaded within 2 s" 1 "$(metric "$METRICS_URL" spoa_mtls_policy_loaded)"
log "policy generation $(metric "$METRICS_URL" spoa_mtls_policy_generation)"

# =========================================================================================
section "(1) the matrix: $(grep -vc '^#' <<<"$MATRIX") hostnames x 9 cases"

T_MATRIX=$(date +%s.%N)
read -r -a CASE_ARR <<<"$CASES"
while read -r host cells; do
	case $host in "" | "#"*) continue ;; esac
	read -r -a cell <<<"$cells"
	[ "${#cell[@]}" -eq 9 ] || die "matrix row $host: ${#cell[@]} cells"
	for i in "${!CASE_ARR[@]}"; do
		c=${CASE_ARR[$i]}
		req "$host" "$c" --http1.1
		expect "$host/$c" "${cell[$i]}" "$c"
	done
done <<<"$MATRIX"
log "matrix took $(awk -v a="$T_MATRIX" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"

# =========================================================================================
section "(2) client-sent x-ssl-client-* headers never reach the origin"

SPOOF=(-H 'x-ssl-client-verify: SUCCESS' -H 'X-SSL-Client-S-DN: CN=forged' -H 'X-Ssl-Client-I-Dn: CN=forged'
	-H 'X-SSL-CLIENT-CERT: forged' -H 'x-SSL-client-serial: forged' -H 'X-Ssl-Client-Sha1: forged'
	-H 'x-ssl-client-V-START: forged' -H 'x-ssl-client-v-end: forged' -H 'X-SSL-Client-V-Remain: 99999'
	-H 'x-ssl-client-anything: forged')
for spec in req-d2:valid:SUCCESS opt-d2:none:NONE opt-d2:valid:LENIENT noca:unknown:LENIENT \
	perm-d2:expired:F:expired perm-d2:none:NONE permdeny-d2:valid:LENIENT dis:valid:- dis:none:-; do
	h=${spec%%:*}
	r=${spec#*:}
	c=${r%%:*}
	e=${r#*:}
	for proto in --http1.1 --http2; do
		req "$h" "$c" "$proto" "${SPOOF[@]}"
		expect "spoofed headers, $h/$c $proto" "$e" "$c"
		assert_not_contains "spoofed headers, $h/$c $proto: no forged value at the origin" "$BODY" forged
		assert_not_contains "spoofed headers, $h/$c $proto: no forged v-remain" "$BODY" 99999
		if [ "$e" = - ]; then want=0; else want=1; fi
		assert_eq "spoofed headers, $h/$c $proto: x-ssl-client-verify lines" "$want" "$NV"
	done
done

# =========================================================================================
section "(3) Host vs SNI: 421 across policies; same policy passes"

# hostreq SNI-HOST HOST-HEADER CASE [curl args]
hostreq() {
	local sni=$1 hh=$2 c=$3
	shift 3
	req "$sni" "$c" -H "Host: $hh" "$@"
}
for proto in --http1.1 --http2; do
	hostreq req-d1 "opt-d1.$DOMAIN" valid $proto
	expect "SNI req-d1, Host opt-d1 (other policy) $proto" 421 valid
	hostreq opt-d2 "req-d2.$DOMAIN" valid $proto
	expect "SNI opt-d2, Host req-d2 (stricter policy) $proto" 421 valid
	hostreq perm-d1 "perm-d1-far.$DOMAIN" valid $proto
	expect "SNI perm-d1, Host perm-d1-far (same environment, other chain: other policy) $proto" 421 valid
	hostreq opt-d2 "unknown-host.example" none $proto
	expect "SNI opt-d2, Host of no configured hostname (default policy) $proto" 421 none
	hostreq dis "opt-d2.$DOMAIN" none $proto
	expect "SNI dis, Host opt-d2 (validating policy behind a disabled SNI) $proto" 421 none
	hostreq opt-d2 "opt-d2.$DOMAIN" valid $proto
	expect "SNI opt-d2, Host opt-d2 (= SNI) $proto" LENIENT valid
	hostreq opt-d2 "OPT-D2.$DOMAIN:$FE_PORT" valid $proto
	expect "SNI opt-d2, Host OPT-D2:port (= SNI, case and port) $proto" LENIENT valid
	hostreq opt-d2 "opt-d2b.$DOMAIN" valid $proto
	expect "SNI opt-d2, Host opt-d2b (same policy) $proto" LENIENT valid
done

# =========================================================================================
section "(4) TLS session resumed under another SNI: judged by the new SNI's policy"

# sclient SNI-HOST HOST-HEADER ARGS...: openssl s_client -quiet with the valid client
# certificate (leaf + chain), one HTTP/1.1 request; sets SC_STATUS (000: no response),
# SC_VERIFY, SC_RESUMED and SC_SNI (what HAProxy saw: ssl_fc_is_resumed, ssl_fc_sni, from
# the e2e-only headers)
sclient() {
	local sni=$1.$DOMAIN hh=$2.$DOMAIN o b
	shift 2
	o=$(printf 'GET /r HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$hh" |
		timeout 10 openssl s_client -quiet -connect "127.0.0.1:$FE_PORT" -servername "$sni" \
			-CAfile "$PKI/server-ca.pem" -cert "$PKI/valid.pem" -key "$PKI/valid.key" \
			-cert_chain "$PKI/valid.chain.pem" -ign_eof "$@" 2>"$E2E_TMP/sclient.err" | tr -d '\r')
	SC_STATUS=$(awk 'NR == 1 && /^HTTP\/1\.1 [0-9]+/ { print $2; f = 1 } END { if (!f) print "000" }' <<<"$o")
	b=$(awk 'f { print } /^$/ { f = 1 }' <<<"$o" | base64 -d 2>/dev/null | tr -d '\r')
	SC_VERIFY=$(awk -F': ' 'tolower($1) == "x-ssl-client-verify" { print $2; exit }' <<<"$b")
	SC_RESUMED=$(awk -F': ' '$1 == "x-e2e-resumed" { print $2; exit }' <<<"$b")
	SC_SNI=$(awk -F': ' '$1 == "x-e2e-sni" { print $2; exit }' <<<"$b")
}
resumed_total() {
	local a b
	a=$(metric "$METRICS_URL" 'spoa_mtls_resumed_total{chain="none"}')
	b=$(metric "$METRICS_URL" 'spoa_mtls_resumed_total{chain="remembered"}')
	echo $((${a:-0} + ${b:-0}))
}
for tls in -tls1_3 -tls1_2; do
	sess=$E2E_TMP/sess$tls.pem
	rm -f "$sess"
	sclient opt-d2 opt-d2 $tls -sess_out "$sess"
	assert_eq "$tls first handshake on opt-d2 (valid certificate): 200" 200 "$SC_STATUS"
	assert_eq "$tls first handshake on opt-d2: verify LENIENT" LENIENT "$SC_VERIFY"
	assert_eq "$tls first handshake on opt-d2: not resumed" 0 "$SC_RESUMED"
	if [ ! -s "$sess" ]; then
		fail_ "$tls: s_client saved a session" "no session in $sess"
		continue
	fi
	# Control: the same hostname resumes and still passes (resumption works at all)
	sclient opt-d2 opt-d2 $tls -sess_in "$sess"
	assert_eq "$tls control: -sess_in on opt-d2: 200" 200 "$SC_STATUS"
	assert_eq "$tls control: -sess_in on opt-d2: resumed (ssl_fc_is_resumed)" 1 "$SC_RESUMED"
	assert_eq "$tls control: resumed on opt-d2: verify LENIENT" LENIENT "$SC_VERIFY"
	# Stricter SNIs: required depth 0 (the valid leaf is chain-too-long there), and
	# permissive with the anchor beyond the depth (verify tells which policy was applied).
	r0=$(resumed_total)
	sclient req-d0 req-d0 $tls -sess_in "$sess"
	log "$tls session of opt-d2 offered under SNI req-d0: HTTP $SC_STATUS (agent resumed NOTIFYs +$(($(resumed_total) - r0)))"
	assert_ne "$tls session of opt-d2 under SNI req-d0 (required, depth 0): never 200" 200 "$SC_STATUS"
	# and the same with Host = the first hostname (TLS 1.2 keeps the session's SNI)
	sclient req-d0 opt-d2 $tls -sess_in "$sess"
	log "$tls session of opt-d2 under SNI req-d0, Host opt-d2: HTTP $SC_STATUS, HAProxy's SNI '$SC_SNI', resumed '$SC_RESUMED'"
	if [ "$SC_STATUS" = 200 ]; then
		assert_eq "$tls SNI req-d0 + Host opt-d2 passes only as opt-d2's own session (HAProxy's SNI)" \
			"opt-d2.$DOMAIN" "$SC_SNI"
	else
		pass_ "$tls SNI req-d0 + Host opt-d2 on the resumed session: no 200 ($SC_STATUS)"
	fi
	sclient perm-d1-far perm-d1-far $tls -sess_in "$sess"
	log "$tls session of opt-d2 under SNI perm-d1-far: HTTP $SC_STATUS, verify '$SC_VERIFY', resumed '$SC_RESUMED', HAProxy's SNI '$SC_SNI'"
	if [ "$SC_STATUS" = 200 ]; then
		assert_eq "$tls session of opt-d2 under SNI perm-d1-far: judged by perm-d1-far's policy" \
			FAILED:chain-too-long "$SC_VERIFY"
	else
		assert_match "$tls session of opt-d2 under SNI perm-d1-far: refused (421: HAProxy kept the session's SNI)" \
			"$SC_STATUS" '^421$'
	fi
done

# =========================================================================================
section "(5) request_hostnames: the unasked hostname of a required environment"

# (the matrix rows reqsel-a / reqsel-b cover every case; here what the client sees)
o=$(printf '' | timeout 10 openssl s_client -connect "127.0.0.1:$FE_PORT" -servername "reqsel-b.$DOMAIN" \
	-CAfile "$PKI/server-ca.pem" -tls1_2 2>&1)
assert_contains "reqsel-b: no CertificateRequest in the handshake (TLS 1.2)" "$o" "No client certificate CA names sent"
o=$(printf '' | timeout 10 openssl s_client -connect "127.0.0.1:$FE_PORT" -servername "reqsel-a.$DOMAIN" \
	-CAfile "$PKI/server-ca.pem" -tls1_2 -cert "$PKI/valid.pem" -key "$PKI/valid.key" 2>&1)
assert_contains "reqsel-a: CertificateRequest naming its anchor (TLS 1.2)" "$o" "Acceptable client certificate CA names"
req reqsel-b valid --http1.1
expect "reqsel-b with a valid certificate configured" rej valid
req reqsel-b none --http1.1
expect "reqsel-b without certificate" rej none
hostreq reqsel-a "reqsel-b.$DOMAIN" valid --http1.1
expect "SNI reqsel-a (asked, valid certificate), Host reqsel-b: other policy" 421 valid

# =========================================================================================
section "(6) one NOTIFY per TLS connection (HTTP/1.1 keep-alive, HTTP/2)"

U=https://opt-d2.$DOMAIN:$FE_PORT
CURL_OPT=(-sS --max-time 10 --cacert "$PKI/server-ca.pem" --resolve "opt-d2.$DOMAIN:$FE_PORT:127.0.0.1"
	--cert "$PKI/valid.chain.pem" --key "$PKI/valid.key")
for proto in http1.1 http2; do
	n0=$(notify_count)
	o=$(curl "${CURL_OPT[@]}" --$proto -w '%{http_code} %{http_version} %{num_connects}\n' \
		-o /dev/null "$U/k1" -o /dev/null "$U/k2" -o /dev/null "$U/k3" -o /dev/null "$U/k4")
	n1=$(notify_count)
	assert_eq "$proto: 4 requests answered 200" 4 "$(grep -c '^200 ' <<<"$o")"
	assert_eq "$proto: on one connection" 1 "$(awk '{ s += $3 } END { print s }' <<<"$o")"
	assert_eq "$proto: protocol" "${proto#http}" "$(awk 'NR == 1 { print $2 }' <<<"$o")"
	assert_eq "$proto: exactly one NOTIFY for the connection" 1 "$(delta "$n0" "$n1")"
done
n0=$(notify_count)
for i in 1 2 3; do curl "${CURL_OPT[@]}" -o /dev/null "$U/sep$i"; done
n1=$(notify_count)
assert_eq "control: 3 connections, 3 NOTIFYs" 3 "$(delta "$n0" "$n1")"

# =========================================================================================
section "(7) policy reload under load: certsync compile, no request fails"

LOAD_N=120
# load HOST CASE N FILE: N sequential requests, one connection each: "status curl-exit"
load() {
	local i
	for ((i = 0; i < $3; i++)); do
		curl -s --max-time 10 --http1.1 --cacert "$PKI/server-ca.pem" \
			--resolve "$1.$DOMAIN:$FE_PORT:127.0.0.1" --cert "$PKI/$2.chain.pem" --key "$PKI/$2.key" \
			-o /dev/null -w '%{http_code} %{exitcode}\n' "https://$1.$DOMAIN:$FE_PORT/load$i"
	done >"$4"
}
load req-d2 valid "$LOAD_N" "$E2E_TMP/load-req.txt" &
L1=$!
load perm-d2 valid "$LOAD_N" "$E2E_TMP/load-perm.txt" &
L2=$!
sleep 0.5
gen_before=$(metric "$METRICS_URL" spoa_mtls_policy_generation)
# New configuration: two hostnames added to opt-d3, perm-d3 now denies failures.
EXTRA_HOSTS_ENV=opt-d3 EXTRA_HOSTS="added1 added2" EXTRA_DENY_ENV=perm-d3 write_conf
compile
assert_eq "certsync compile of the changed configuration" 0 "$?"
t0=$(date +%s.%N)
gen_after=$gen_before
for _ in $(seq 40); do
	gen_after=$(metric "$METRICS_URL" spoa_mtls_policy_generation)
	[ "$gen_after" != "$gen_before" ] && break
	sleep 0.05
done
tgen=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
assert_ne "spoa_mtls_policy_generation moved after compile (was $gen_before)" "$gen_before" "$gen_after"
assert_lt "new snapshot adopted within 1 s (seconds)" "$tgen" 1.0
sleep 0.3
# Second change while the load still runs: back to the original configuration.
write_conf
compile
g3=$gen_after
for _ in $(seq 40); do
	g3=$(metric "$METRICS_URL" spoa_mtls_policy_generation)
	[ "$g3" != "$gen_after" ] && break
	sleep 0.05
done
assert_ne "second compile: generation moved again" "$gen_after" "$g3"
# The changed policy applies: perm-d3 with deny (third compile, left in place after)
EXTRA_DENY_ENV=perm-d3 write_conf
compile
for _ in $(seq 40); do
	g4=$(metric "$METRICS_URL" spoa_mtls_policy_generation)
	[ "$g4" != "$g3" ] && break
	sleep 0.05
done
wait "$L1" "$L2"
for f in load-req load-perm; do
	assert_eq "$f: $LOAD_N requests during 3 reloads, all answered 200" "$LOAD_N" \
		"$(grep -c '^200 0$' "$E2E_TMP/$f.txt")"
	bad=$(grep -v '^200 0$' "$E2E_TMP/$f.txt" | sort | uniq -c | tr '\n' ';')
	assert_eq "$f: no failed request" "" "$bad"
done
req perm-d3 expired --http1.1
expect "after reload: perm-d3 now denies failures (expired)" 403 expired
req perm-d3 valid --http1.1
expect "after reload: perm-d3 valid still passes" LENIENT valid
assert_eq "no policy reload failure" 0 "$(metric "$METRICS_URL" spoa_mtls_policy_reload_failures_total)"

# =========================================================================================
section "(8) agent SIGKILLed mid-traffic"

load perm-d2 valid 60 "$E2E_TMP/load-kill.txt" &
L1=$!
load req-d2 valid 60 "$E2E_TMP/load-kill-req.txt" &
L2=$!
sleep 0.4
kill_agent KILL
log "spoa-mtls pid $AGENT_PID killed with SIGKILL"
for _ in $(seq 60); do
	st=$(server_status "$SOCK" spoa-mtls agent1 2>/dev/null) && [ "${st%% *}" = DOWN ] && break
	sleep 0.05
done
assert_eq "agent server DOWN in HAProxy" DOWN "${st%% *}"
wait "$L1" "$L2"
assert_eq "permissive traffic across the kill: all 60 requests 200" 60 "$(grep -c '^200 0$' "$E2E_TMP/load-kill.txt")"
assert_eq "required traffic across the kill: only 200 (agent up) then 503 (agent gone)" \
	"" "$(grep -vE '^(200|503) 0$' "$E2E_TMP/load-kill-req.txt" | sort | uniq -c | tr '\n' ';')"
assert_match "required traffic across the kill: 200s first, then 503s, no 200 after a 503" \
	"$(awk '{ printf "%s", ($1 == 200 ? "a" : "b") }' "$E2E_TMP/load-kill-req.txt")" '^a+b+$'
for spec in req-d2:valid:503 req-d1:pinned:503 opt-d2:valid:503 opt-d2:none:503 noca:unknown:503 \
	noca:none:503 perm-d2:valid:F:agent-unavailable perm-d2:expired:F:agent-unavailable \
	perm-d2:none:F:agent-unavailable permdeny-d2:expired:F:agent-unavailable dis:valid:- dis:none:-; do
	h=${spec%%:*}
	r=${spec#*:}
	c=${r%%:*}
	e=${r#*:}
	req "$h" "$c" --http1.1 "${SPOOF[@]}"
	case $e in
	F:*)
		if [ "$OUT" = 200 ]; then
			parse_hdrs
			assert_eq "agent down: $h/$c -> 200, verify" "FAILED:${e#F:}" "${HX[x-ssl-client-verify]-<absent>}"
			assert_eq "agent down: $h/$c: only the verify header (no certificate facts)" 1 "$NX"
			assert_not_contains "agent down: $h/$c: no forged value" "$BODY" forged
		else
			fail_ "agent down: $h/$c -> 200 FAILED:agent-unavailable" "got: $OUT (curl $RC ${CERR:0:200})"
		fi
		;;
	*) expect "agent down: $h/$c" "$e" "$c" ;;
	esac
done
assert_match "HAProxy log: the 503 names the SPOE error" \
	"$(grep -a "sni=req-d2.$DOMAIN" "$E2E_TMP/haproxy.log" | tail -n 1)" ' 503 .*spoe_err=[0-9]+ '


# =========================================================================================
T_END=$(date +%s.%N)
log ""
log "run time: $(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }')s"
e2e_finish

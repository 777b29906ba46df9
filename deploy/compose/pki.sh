#!/bin/sh
# edgetls: the demo stack's throw-away PKI and secrets, for `make demo` (scripts/demo.sh)
# and docker-compose.yml (the `init` service). Idempotent: DIR/done marks a finished run.
#
#   pki.sh DIR
#
#   server-ca.pem server-ca.key   private CA certsync trusts for uploads (upload_ca_file)
#   wildcard.pem wildcard.key     *.demo.test, signed by server-ca, uploaded once
#   default.pem                   HAProxy's default certificate (cert + key)
#   client-ca.pem client-ca.key   CA the mTLS environments trust (chains)
#   client.pem client.key         clientAuth certificate CN=alice, signed by client-ca
#   stranger.pem stranger.key     a self-signed client certificate (CN=mallory)
#   pebble-ca.pem pebble.pem pebble.key   TLS for Pebble's HTTPS on 127.0.0.1/localhost
#                                 (acme.server_ca_file; research/acme.md §4.5)
#   tsig.secret                   base64 TSIG secret, one line, 0600 (dns.update)
#   knot-tsig.conf                the same secret as knot's `key:` section (0600)
set -eu

p=${1:?usage: pki.sh DIR}
mkdir -p "$p"
[ -e "$p/done" ] && exit 0
cd "$p"
umask 077

ec() { echo "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"; }

# The server side: a private CA that certsync trusts for uploads (upload_ca_file),
# and one wildcard certificate uploaded once for every demo hostname.
# shellcheck disable=SC2046
openssl req -x509 $(ec) -days 3650 \
	-keyout server-ca.key -out server-ca.pem -subj "/O=edgetls demo/CN=Demo Server CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
# shellcheck disable=SC2046
openssl req -new $(ec) -keyout wildcard.key \
	-out wildcard.csr -subj "/CN=*.demo.test" 2>/dev/null
printf 'subjectAltName=DNS:*.demo.test\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >wildcard.ext
openssl x509 -req -in wildcard.csr -CA server-ca.pem -CAkey server-ca.key -CAcreateserial \
	-days 365 -extfile wildcard.ext -out wildcard.pem 2>/dev/null
# HAProxy's default certificate, for connections whose SNI matches no hostname.
# shellcheck disable=SC2046
openssl req -x509 $(ec) -days 3650 \
	-keyout default.key -out default.crt -subj "/CN=edgetls demo default" 2>/dev/null
cat default.crt default.key >default.pem
# The client side: a CA the mTLS environments trust, and a client certificate.
# shellcheck disable=SC2046
openssl req -x509 $(ec) -days 3650 \
	-keyout client-ca.key -out client-ca.pem -subj "/O=ACME Inc./CN=ACME Client CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
# shellcheck disable=SC2046
openssl req -new $(ec) -keyout client.key \
	-out client.csr -subj "/O=ACME Inc./CN=alice" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' >client.ext
openssl x509 -req -in client.csr -CA client-ca.pem -CAkey client-ca.key -CAcreateserial \
	-days 365 -extfile client.ext -out client.pem 2>/dev/null
# A client certificate nobody vouches for (self-signed), to show what each mode makes of it.
# shellcheck disable=SC2046
openssl req -x509 $(ec) -days 365 -keyout stranger.key -out stranger.pem \
	-subj "/O=Nobody/CN=mallory" -addext extendedKeyUsage=clientAuth 2>/dev/null

# The ACME lab: Pebble's HTTPS certificate (the Debian package ships none), and the TSIG
# secret certsync signs its RFC 2136 updates with, in both formats.
# shellcheck disable=SC2046
openssl req -x509 $(ec) -days 3650 \
	-keyout pebble-ca.key -out pebble-ca.pem -subj "/CN=edgetls demo Pebble CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
# shellcheck disable=SC2046
openssl req -new $(ec) -keyout pebble.key -out pebble.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >pebble.ext
openssl x509 -req -in pebble.csr -CA pebble-ca.pem -CAkey pebble-ca.key -CAcreateserial \
	-days 3650 -extfile pebble.ext -out pebble.pem 2>/dev/null
secret=$(openssl rand -base64 32)
printf '%s\n' "$secret" >tsig.secret
printf 'key:\n  - id: certsync\n    algorithm: hmac-sha256\n    secret: %s\n' "$secret" >knot-tsig.conf

# Keys stay 0600 (umask); certificates are public.
chmod 644 server-ca.pem wildcard.pem default.crt client-ca.pem client.pem pebble-ca.pem pebble.pem
touch ./done

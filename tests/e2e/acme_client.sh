#!/usr/bin/env bash
# End to end: certsync's ACME client (certsync/acme.c, driven by tests/e2e/acmedrv.c)
# against the real Pebble 2.4, everything on 127.0.0.1 with ports picked at run time.
#
#   1. Pebble (PEBBLE_VA_ALWAYS_VALID=1: no DNS needed here — certsync's DNS side is tested
#      on its own; Pebble's default 5 % badNonce rejection left ON; one alternate root):
#      account, an order for a.example.test + *.example.test (two authorizations, one
#      wildcard), dns-01 answered, finalize, download; the chain verifies against
#      Pebble's /roots/0, the alternate chain against /roots/1, the SANs are the names,
#      the key matches, keys are 0600; a second order for one name (P-384 key)
#   2. restart: an order left in flight (the driver exits after answering the challenges)
#      is resumed by its persisted URL by a second invocation and finishes without a
#      second newOrder
#   3. account lookup (onlyReturnExisting): found for the key, accountDoesNotExist for a
#      new key; a profile Pebble does not offer is refused before any request; `replaces`
#      is not sent to a CA without renewalInfo
#   4. Pebble with externalAccountBindingRequired: no EAB -> externalAccountRequired, a
#      wrong HMAC key -> the error with its type, the right one -> account created
#   5. ARI, profiles and Retry-After are NOT in Pebble 2.4, so they are checked against a
#      STAND-IN (tests/e2e/acme_standin.py: directory, newNonce, newOrder, order and
#      renewalInfo only, no CA): CertID of the Pebble certificate, suggestedWindow,
#      Retry-After in seconds and as an HTTP-date, an invalid window refused; newOrder with
#      profile + replaces (after a forced badNonce, retried with the error's nonce); 409
#      alreadyReplaced surfaced; order polling waits the Retry-After, clamped by max-wait
#
# Usage: BUILD=build bash tests/e2e/acme_client.sh   (driver at $BUILD/tests/acmedrv,
# built by `make $BUILD/tests/acmedrv`)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

ACMEDRV=${ACMEDRV:-$BUILD/tests/acmedrv}
PEBBLE=${PEBBLE:-pebble}
need "$PEBBLE" curl openssl python3 awk
[ -x "$ACMEDRV" ] || die "no driver at $ACMEDRV (make BUILD=... \$BUILD/tests/acmedrv)"
e2e_init

PKI=$E2E_TMP/pki
e2e_pki "$PKI" || die "test PKI"
CA=$PKI/server-ca.crt

# field KEY OUTPUT: the value of the first "KEY=value" (value up to the next space)
field() { printf '%s\n' "$2" | grep -o "\(^\| \)$1=[^ ]*" | head -n1 | sed "s/^ *$1=//"; }

# start_pebble NAME CONFIG_EXTRA: writes $E2E_TMP/NAME.json, starts Pebble, sets
# PEBBLE_DIR (directory URL) and PEBBLE_MGMT (management base URL).
start_pebble() {
	local name=$1 extra=$2 p1 p2 p3 p4 pid
	read -r p1 p2 p3 p4 <<<"$(free_ports 4)"
	cat >"$E2E_TMP/$name.json" <<EOF
{ "pebble": {
    "listenAddress": "127.0.0.1:$p1",
    "managementListenAddress": "127.0.0.1:$p2",
    "certificate": "$PKI/server.crt",
    "privateKey": "$PKI/server.key",
    "httpPort": $p3,
    "tlsPort": $p4,
    "ocspResponderURL": ""$extra
} }
EOF
	PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_ALTERNATE_ROOTS=1 \
		"$PEBBLE" -config "$E2E_TMP/$name.json" >>"$E2E_TMP/$name.log" 2>&1 &
	pid=$!
	E2E_PIDS+=("$pid")
	wait_port "$p1" 20 "$pid" || die "$name did not start"
	wait_port "$p2" 20 "$pid" || die "$name management port did not open"
	PEBBLE_DIR=https://127.0.0.1:$p1/dir
	PEBBLE_MGMT=https://127.0.0.1:$p2
}

drv() { # log-name args... : the driver's stdout; its stderr (logs) appended to drv.log
	"$ACMEDRV" "$@" 2>>"$E2E_TMP/drv.log"
}

# verify_chain CHAIN ROOT: the first certificate of CHAIN verifies against ROOT with the
# rest of CHAIN as intermediates
verify_chain() { openssl verify -CAfile "$2" -untrusted "$1" "$1" 2>&1; }

sans_of() { # the dNSNames of the first certificate of a PEM, sorted, comma-separated
	openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tail -n +2 |
		tr ',' '\n' | sed -n 's/^ *DNS://p' | sort | paste -sd, -
}

mode_of() { stat -c %a "$1"; }

# ---------------------------------------------------------------------------------------
section "1. Pebble 2.4: account, wildcard + apex order, dns-01, finalize, download"
start_pebble pebble ""
curl -sS --fail --cacert "$CA" "$PEBBLE_MGMT/roots/0" >"$E2E_TMP/root0.pem" || die "roots/0"
curl -sS --fail --cacert "$CA" "$PEBBLE_MGMT/roots/1" >"$E2E_TMP/root1.pem" || die "roots/1"
P=(--dir "$PEBBLE_DIR" --ca "$CA")

out=$(drv "${P[@]}" directory)
assert_eq "Pebble 2.4 directory: no renewalInfo" "" "$(field renewal_info "$out")"
assert_eq "Pebble 2.4 directory: no profiles" 0 "$(field has_profiles "$out")"

ST=$E2E_TMP/state
out=$(drv "${P[@]}" issue --account-key "$E2E_TMP/account.key" --state "$ST" \
	--out "$E2E_TMP/wild" a.example.test '*.example.test')
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/issue1.out"
assert_eq "issue a.example.test + *.example.test exits 0" 0 "$rc"
assert_contains "new account created" "$out" "account_created=1"
assert_eq "two authorizations (apex and wildcard)" 2 "$(field authorizations "$out")"
assert_contains "wildcard authorization for example.test" "$out" \
	"authz identifier=example.test wildcard=1 status=pending dns01=pending"
assert_match "dns-01 TXT value is 43 base64url characters" "$out" \
	"txt name=_acme-challenge.example.test value=[A-Za-z0-9_-]{43}"
assert_contains "apex authorization valid" "$out" "authz_final identifier=a.example.test status=valid"
assert_contains "wildcard authorization valid" "$out" \
	"authz_final identifier=*.example.test status=valid"
assert_contains "order valid" "$out" "order_valid certificate=https://"
assert_eq "the certificate's key is the new key" 1 "$(field key_matches "$out")"
assert_eq "SANs are exactly the ordered names" "*.example.test,a.example.test" \
	"$(sans_of "$E2E_TMP/wild.pem")"
assert_eq "chain verifies against Pebble's /roots/0" "$E2E_TMP/wild.pem: OK" \
	"$(verify_chain "$E2E_TMP/wild.pem" "$E2E_TMP/root0.pem")"
assert_eq "one alternate chain (Link rel=alternate)" 1 "$(field alternates "$out")"
assert_eq "the alternate chain verifies against /roots/1" "$E2E_TMP/wild.alt1.pem: OK" \
	"$(verify_chain "$E2E_TMP/wild.alt1.pem" "$E2E_TMP/root1.pem")"
assert_eq "account key file is 0600" 600 "$(mode_of "$E2E_TMP/account.key")"
assert_eq "certificate key file is 0600" 600 "$(mode_of "$E2E_TMP/wild.key")"
assert_not_contains "no private key on stdout" "$out" "PRIVATE KEY"
ACCOUNT=$(field account "$out")
CERTID=$(field certid "$out")
assert_eq "account URL persisted" "$ACCOUNT" "$(sed -n 's/^account=//p' "$ST")"
assert_eq "no order in flight once issued" "" "$(sed -n 's/^order=//p' "$ST")"

out=$(drv "${P[@]}" issue --account-key "$E2E_TMP/account.key" --state "$ST" \
	--key-type ec-p384 --out "$E2E_TMP/single" b.example.test)
assert_eq "issue b.example.test (one name) exits 0" 0 "$?"
assert_contains "the account is resumed by URL" "$out" "account_resumed=$ACCOUNT"
assert_eq "one authorization" 1 "$(field authorizations "$out")"
assert_eq "SAN is b.example.test" "b.example.test" "$(sans_of "$E2E_TMP/single.pem")"
assert_eq "chain verifies" "$E2E_TMP/single.pem: OK" \
	"$(verify_chain "$E2E_TMP/single.pem" "$E2E_TMP/root0.pem")"
assert_contains "the key is P-384 (key_type ec-p384)" \
	"$(openssl x509 -in "$E2E_TMP/single.pem" -noout -text)" "NIST CURVE: P-384"

# ---------------------------------------------------------------------------------------
section "2. an order in flight survives a restart of the driver"
ST2=$E2E_TMP/state2
out=$(drv "${P[@]}" issue --account-key "$E2E_TMP/account.key" --state "$ST2" \
	--out "$E2E_TMP/resumed" --stop-after challenges c.example.test '*.c.example.test')
assert_eq "first run stops after answering the challenges" 0 "$?"
assert_contains "first run created the order" "$out" "order_created="
ORDER=$(field order_created "$out")
assert_contains "the order URL is persisted" "$(cat "$ST2")" "order=$ORDER"
assert_eq "no certificate yet" no "$([ -e "$E2E_TMP/resumed.pem" ] && echo yes || echo no)"
out=$(drv "${P[@]}" issue --account-key "$E2E_TMP/account.key" --state "$ST2" \
	--out "$E2E_TMP/resumed" c.example.test '*.c.example.test')
assert_eq "second run exits 0" 0 "$?"
assert_contains "second run resumed the same order" "$out" "order_resumed=$ORDER"
assert_not_contains "second run made no newOrder" "$out" "order_created"
assert_eq "resumed order's certificate covers the names" "*.c.example.test,c.example.test" \
	"$(sans_of "$E2E_TMP/resumed.pem")"
assert_eq "resumed order's chain verifies" "$E2E_TMP/resumed.pem: OK" \
	"$(verify_chain "$E2E_TMP/resumed.pem" "$E2E_TMP/root0.pem")"

# ---------------------------------------------------------------------------------------
section "3. account lookup, profile and replaces against a CA without them"
out=$(drv "${P[@]}" account --account-key "$E2E_TMP/account.key" --only-existing)
assert_eq "onlyReturnExisting finds the account" "$ACCOUNT" "$(field account "$out")"
assert_eq "... without creating one" 0 "$(field created "$out")"
out=$(drv "${P[@]}" account --account-key "$E2E_TMP/fresh.key" --only-existing)
assert_eq "onlyReturnExisting with a new key: accountDoesNotExist" \
	"urn:ietf:params:acme:error:accountDoesNotExist" "$(field problem "$out")"
out=$(drv "${P[@]}" order --account-key "$E2E_TMP/account.key" --account-url "$ACCOUNT" \
	--profile tlsserver d.example.test)
assert_eq "a profile Pebble 2.4 does not offer: refused locally (ACME_E_UNSUPPORTED)" -8 \
	"$(field code "$out")"
out=$(drv "${P[@]}" order --account-key "$E2E_TMP/account.key" --account-url "$ACCOUNT" \
	--replaces-cert "$E2E_TMP/wild.pem" a.example.test)
# pending, or ready at once when Pebble reused the valid authorization (PEBBLE_AUTHZREUSE)
assert_match "newOrder without renewalInfo: ordered" "$out" "status=(pending|ready) "
assert_contains "... and replaces not sent" "$out" "replaces= "

# ---------------------------------------------------------------------------------------
section "4. External Account Binding (externalAccountBindingRequired)"
EAB_KEY=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
WRONG_KEY=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
printf '%s\n' "$EAB_KEY" >"$E2E_TMP/eab.key"
printf '%s\n' "$WRONG_KEY" >"$E2E_TMP/eab-wrong.key"
start_pebble pebble-eab ",
    \"externalAccountBindingRequired\": true,
    \"externalAccountMACKeys\": { \"kid-1\": \"$EAB_KEY\" }"
E=(--dir "$PEBBLE_DIR" --ca "$CA")
out=$(drv "${E[@]}" directory)
assert_eq "directory says externalAccountRequired" 1 "$(field external_account_required "$out")"
out=$(drv "${E[@]}" account --account-key "$E2E_TMP/eab-account.key")
assert_eq "no EAB: externalAccountRequired" \
	"urn:ietf:params:acme:error:externalAccountRequired" "$(field problem "$out")"
out=$(drv "${E[@]}" account --account-key "$E2E_TMP/eab-account.key" --eab-kid kid-1 \
	--eab-key-file "$E2E_TMP/eab-wrong.key")
# Pebble 2.4 answers 403 unauthorized "external account binding JWS verification error"
assert_eq "wrong HMAC key: the error with its type" "urn:ietf:params:acme:error:unauthorized" \
	"$(field problem "$out")"
assert_eq "wrong HMAC key: HTTP 403" 403 "$(field status "$out")"
assert_contains "wrong HMAC key: the detail is surfaced" "$out" "external account binding"
assert_not_contains "the EAB key is not in the output" "$out" "$WRONG_KEY"
out=$(drv "${E[@]}" account --account-key "$E2E_TMP/eab-account.key" --eab-kid kid-9 \
	--eab-key-file "$E2E_TMP/eab.key")
assert_match "unknown EAB kid: an ACME error with its type" "$(field problem "$out")" \
	"^urn:ietf:params:acme:error:[a-zA-Z]+$"
out=$(drv "${E[@]}" account --account-key "$E2E_TMP/eab-account.key" --eab-kid kid-1 \
	--eab-key-file "$E2E_TMP/eab.key")
assert_eq "right HMAC key: account created" 1 "$(field created "$out")"

# ---------------------------------------------------------------------------------------
section "5. ARI, profiles, Retry-After: against the STAND-IN (Pebble 2.4 has none of them)"
SPORT=$(free_port)
python3 "$(dirname "$0")/acme_standin.py" "$SPORT" "$PKI/server.crt" "$PKI/server.key" \
	>>"$E2E_TMP/standin.log" 2>&1 &
SPID=$!
E2E_PIDS+=("$SPID")
wait_port "$SPORT" 10 "$SPID" || die "stand-in did not start"
S=(--dir "https://127.0.0.1:$SPORT/dir" --ca "$CA")

out=$(drv "${S[@]}" directory)
assert_eq "renewalInfo advertised" "https://127.0.0.1:$SPORT/renewal-info" \
	"$(field renewal_info "$out")"
assert_eq "profiles listed" "classic tlsserver" \
	"$(printf '%s\n' "$out" | sed -n 's/^profile=//p' | sort | paste -sd' ' -)"
assert_eq "caaIdentities listed" "standin.test" "$(field caa_identity "$out")"

out=$(drv "${S[@]}" ari --cert "$E2E_TMP/wild.pem")
now=$(date +%s)
assert_eq "ARI CertID of the Pebble certificate" "$CERTID" "$(field certid "$out")"
ws=$(field window_start "$out")
we=$(field window_end "$out")
assert_lt "suggestedWindow start is about a day ahead" "$((ws - now - 86400 + 60))" 120
assert_eq "suggestedWindow is one day long" 86400 "$((we - ws))"
assert_eq "Retry-After in seconds" 21600 "$(field retry_after "$out")"
assert_eq "explanationURL" "https://127.0.0.1:$SPORT/docs/ari" "$(field explanation "$out")"
out=$(drv "${S[@]}" ari --cert "$E2E_TMP/wild.pem")
ra=$(field retry_after "$out")
assert_lt "Retry-After as an HTTP-date, one hour ahead (3590..3600 s)" "$((ra - 3590 + 1))" 12
out=$(drv "${S[@]}" ari --cert "$E2E_TMP/wild.pem")
assert_eq "an invalid window (end before start) is refused (ACME_E_PROTO)" -3 \
	"$(field code "$out")"
assert_contains "stand-in saw the CertID in the URL" "$(cat "$E2E_TMP/standin.log")" \
	"renewalInfo #1 for $CERTID"

SA=https://127.0.0.1:$SPORT/account/1
out=$(drv "${S[@]}" order --account-key "$E2E_TMP/account.key" --account-url "$SA" \
	--profile tlsserver --replaces-cert "$E2E_TMP/wild.pem" --poll a.example.test '*.example.test')
assert_eq "newOrder with profile + replaces exits 0" 0 "$?"
assert_contains "the first POST got badNonce and was retried with the error's nonce" \
	"$(cat "$E2E_TMP/standin.log")" "badnonce-retry-used-error-nonce"
assert_eq "profile reached the server" tlsserver "$(field profile "$out")"
assert_eq "replaces (the CertID) reached the server" "$CERTID" "$(field replaces "$out")"
assert_eq "Retry-After of the order" 2 "$(field retry_after "$out")"
assert_eq "polled to valid" valid "$(field status "$(printf '%s\n' "$out" | grep '^polled')")"
waited=$(field waited "$out")
assert_lt "polling waited the Retry-After (>= 2 s), not the 1 s backoff" 1.9 "$waited"
assert_lt "... and not much longer" "$waited" 4
out=$(drv "${S[@]}" order --account-key "$E2E_TMP/account.key" --account-url "$SA" \
	--replaces-cert "$E2E_TMP/wild.pem" a.example.test)
assert_eq "a second replacement: alreadyReplaced" \
	"urn:ietf:params:acme:error:alreadyReplaced" "$(field problem "$out")"
assert_eq "... HTTP 409" 409 "$(field status "$out")"
out=$(drv "${S[@]}" order --account-key "$E2E_TMP/account.key" --account-url "$SA" \
	--profile shortlived a.example.test)
assert_eq "a profile the CA does not list: refused before any request" -8 "$(field code "$out")"
out=$(drv "${S[@]}" --max-wait 2 order --account-key "$E2E_TMP/account.key" \
	--account-url "$SA" --poll slow.example.test)
assert_eq "Retry-After: 86400 on the order" 86400 "$(field retry_after "$out")"
waited=$(field waited "$out")
assert_lt "polling clamps Retry-After to max-wait (2 s)" "$waited" 4

# ---------------------------------------------------------------------------------------
section "observations"
n=$(grep -c 'event=acme_bad_nonce' "$E2E_TMP/drv.log")
log "badNonce retries during this run (Pebble rejects 5 % of good nonces, plus 1 forced by the stand-in): $n"
log "POSTs answered by Pebble: $(grep -c 'POST' "$E2E_TMP/pebble.log")"

e2e_finish

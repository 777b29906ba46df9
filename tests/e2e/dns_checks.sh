#!/usr/bin/env bash
# End to end: certsync's DNS modules (certsync/caa, delegation, dnsupdate) against a real
# Knot (authoritative, TSIG update ACL) and unbound (recursive, stub zones), through the
# driver tests/e2e/dnsdrv.c ($BUILD/tests/dnsdrv; `make BUILD=... $BUILD/tests/dnsdrv`).
#
#   every delegation outcome: ok (target NXDOMAIN, and with TXT at the target), missing,
#     points-elsewhere, txt-present, wildcard-synthesized (CNAME and TXT), lookup-failed;
#     the shared layout
#   CAA: record at the name, at a parent, CNAME at the name (target's records; the name's
#     parents, not the target's, when the target has none), SERVFAIL -> lookup-failed,
#     record at the name with a SERVFAIL parent -> allowed, nothing anywhere -> allowed
#   RFC 2136: two values at one name, delete one, the other still served; an update
#     outside the ACL -> the ACL message; a wrong secret -> BADSIG; hmac-sha384 refused
#   propagation wait: success, timeout (value never published; a dead server), default
#     server list from the zone's NS; the sweep of leftovers
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/lib_dns.sh
. "$(dirname "$0")/lib_dns.sh"

DNSDRV=${DNSDRV:-$BUILD/tests/dnsdrv}
[ -x "$DNSDRV" ] || die "no driver at $DNSDRV (make BUILD=${BUILD#"$E2E_ROOT"/} $DNSDRV)"

e2e_init
dns_init || die "dns_init failed"

export DNS_VALIDATION_DOMAIN DNS_RESOLVER
VD=$DNS_VALIDATION_DOMAIN

# kv KEY: the value of KEY= in the driver output on stdin
kv() { sed -n "s/^$1=//p" | head -n 1; }
target() { "$DNSDRV" target "$1" "${2:-per-host}" | kv target; }

T_OK=$(target ok.customer.test)
T_APEX=$(target customer.test)
T_TXT=$(target two.customer.test)
[ -n "$T_OK" ] || die "dnsdrv target failed"

section "delegation targets"
assert_match "per-host target is a 26-character base32 label under the validation domain" \
	"$T_OK" "^[a-z2-7]{26}\\.${VD//./\\.}\$"
assert_eq "the wildcard and the apex share one target" "$T_APEX" "$(target '*.customer.test')"
assert_eq "the target does not depend on letter case" "$T_APEX" "$(target CUSTOMER.Test.)"
assert_ne "two hostnames get two targets" "$T_APEX" "$T_OK"
assert_eq "shared layout" "_acme-challenge.$VD" "$(target www.customer.test shared)"

dns_zone customer.test <<ZONE
_acme-challenge                CNAME $T_APEX.
_acme-challenge.ok             CNAME $T_OK.
_acme-challenge.two            CNAME $T_TXT.
_acme-challenge.elsewhere      CNAME somewhere.other.test.
_acme-challenge.txt            TXT   "an-old-token"
_acme-challenge.shared         CNAME _acme-challenge.$VD.
missing                        A     127.0.0.1
ZONE
dns_zone wild.test <<'ZONE'
*                              CNAME lb.other.test.
ZONE
dns_zone wildtxt.test <<'ZONE'
*                              TXT   "from-a-wildcard"
ZONE
dns_zone caa.test <<'ZONE'
@                              CAA   0 issue "ca.example"
allowed                        CAA   0 issue "letsencrypt.org"
pinned                         CAA   0 issue "letsencrypt.org; accounturi=https://ca.test/acct/1; validationmethods=dns-01"
alias                          CNAME target.caa-target.test.
alias2                         CNAME norecords.caa-target.test.
wild                           CAA   0 issuewild ";"
wild                           CAA   0 issue "letsencrypt.org"
ZONE
dns_zone caa-target.test <<'ZONE'
@                              CAA   0 issue "letsencrypt.org"
target                         CAA   0 issue "letsencrypt.org"
norecords                      A     127.0.0.1
ZONE
dns_zone ok.broken.test <<'ZONE'
@                              CAA   0 issue "letsencrypt.org"
ZONE
dns_dead_zone broken.test
dns_start || die "dns_start failed"

deleg() { "$DNSDRV" delegation "$@" 2>&1; }

section "delegation outcomes"
out=$(deleg ok.customer.test)
assert_eq "CNAME present, target NXDOMAIN: ok" ok "$(kv outcome <<<"$out")"
assert_contains "ok says so" "$out" "is a CNAME to $T_OK, as expected"
assert_eq "ok carries no record to add" "" "$(kv record <<<"$out")"
assert_eq "apex: ok" ok "$(deleg customer.test | kv outcome)"
assert_eq "wildcard shares the apex delegation: ok" ok "$(deleg '*.customer.test' | kv outcome)"

out=$(deleg missing.customer.test)
assert_eq "no CNAME: missing" missing "$(kv outcome <<<"$out")"
assert_eq "missing: the exact record to add" \
	"_acme-challenge.missing.customer.test. CNAME $(target missing.customer.test)." \
	"$(kv record <<<"$out")"
assert_eq "a name that does not exist at all: missing" missing \
	"$(deleg nothere.customer.test | kv outcome)"

out=$(deleg elsewhere.customer.test)
assert_eq "CNAME to another name: points-elsewhere" points-elsewhere "$(kv outcome <<<"$out")"
assert_eq "points-elsewhere names what it found" somewhere.other.test "$(kv found <<<"$out")"
assert_contains "points-elsewhere: the record to put instead" "$(kv message <<<"$out")" \
	"Replace it with _acme-challenge.elsewhere.customer.test. CNAME $(target elsewhere.customer.test)."

out=$(deleg txt.customer.test)
assert_eq "TXT at the name: txt-present" txt-present "$(kv outcome <<<"$out")"
assert_contains "txt-present: delete it" "$(kv message <<<"$out")" \
	"Delete the TXT records at _acme-challenge.txt.customer.test"
assert_contains "txt-present: the record to add" "$(kv record <<<"$out")" \
	"_acme-challenge.txt.customer.test. CNAME"

out=$(deleg www.wild.test)
assert_eq "CNAME from a * record: wildcard-synthesized" wildcard-synthesized \
	"$(kv outcome <<<"$out")"
assert_eq "wildcard-synthesized names the target found" lb.other.test "$(kv found <<<"$out")"
assert_contains "wildcard-synthesized: add an explicit record" "$(kv message <<<"$out")" \
	"Add an explicit _acme-challenge.www.wild.test. CNAME"
assert_eq "TXT from a * record: wildcard-synthesized" wildcard-synthesized \
	"$(deleg www.wildtxt.test | kv outcome)"

out=$(deleg www.broken.test)
assert_eq "SERVFAIL: lookup-failed" lookup-failed "$(kv outcome <<<"$out")"
assert_contains "lookup-failed says why" "$(kv message <<<"$out")" "SERVFAIL"
assert_contains "lookup-failed still carries the record" "$(kv record <<<"$out")" \
	"_acme-challenge.www.broken.test. CNAME"

assert_eq "shared layout: ok" ok "$(deleg shared.customer.test shared | kv outcome)"
assert_eq "a shared-layout CNAME checked as per-host: points-elsewhere" points-elsewhere \
	"$(deleg shared.customer.test | kv outcome)"

section "CAA through the resolver"
caa() { "$DNSDRV" caa "$1" 2>&1; }
out=$(caa caa.test)
assert_eq "record at the name forbids" forbidden "$(kv verdict <<<"$out")"
assert_eq "the exact record to add" 'caa.test. CAA 0 issue "letsencrypt.org"' \
	"$(kv fix <<<"$out")"
assert_eq "the record that blocks" 'caa.test. CAA 0 issue "ca.example"' \
	"$(kv blocking <<<"$out")"
out=$(caa www.caa.test)
assert_eq "record at a parent forbids" forbidden "$(kv verdict <<<"$out")"
assert_eq "found at the parent" caa.test "$(kv found_at <<<"$out")"
assert_eq "record at the name allows (parent not consulted)" allowed \
	"$(caa allowed.caa.test | kv verdict)"
out=$(caa alias.caa.test)
assert_eq "CNAME at the name: the target's records decide" allowed "$(kv verdict <<<"$out")"
assert_eq "found at the name itself" alias.caa.test "$(kv found_at <<<"$out")"
out=$(caa alias2.caa.test)
assert_eq "CNAME to a target without CAA: the name's parent decides, not the target's" \
	forbidden "$(kv verdict <<<"$out")"
assert_eq "found at the name's parent" caa.test "$(kv found_at <<<"$out")"
assert_eq "issuewild \";\" forbids the wildcard" forbidden "$(caa '*.wild.caa.test' | kv verdict)"
assert_eq "... and not the name itself" allowed "$(caa wild.caa.test | kv verdict)"
out=$(CAA_ACCOUNT=https://ca.test/acct/2 "$DNSDRV" caa pinned.caa.test)
assert_eq "accounturi of another account forbids" forbidden "$(kv verdict <<<"$out")"
assert_contains "and the fix pins our account" "$(kv fix <<<"$out")" \
	'accounturi=https://ca.test/acct/2'
assert_eq "accounturi of our account allows" allowed \
	"$(CAA_ACCOUNT=https://ca.test/acct/1 "$DNSDRV" caa pinned.caa.test | kv verdict)"
out=$(caa www.broken.test)
assert_eq "SERVFAIL at the name: lookup-failed" lookup-failed "$(kv verdict <<<"$out")"
assert_contains "lookup-failed says what failed" "$(kv message <<<"$out")" SERVFAIL
assert_eq "record at the name, SERVFAIL at its parent: allowed" allowed \
	"$(caa ok.broken.test | kv verdict)"
out=$(caa www.customer.test)
assert_eq "no CAA up to the TLD: allowed" allowed "$(kv verdict <<<"$out")"
assert_eq "nothing found" "" "$(kv found_at <<<"$out")"

section "RFC 2136 with TSIG"
export DNS_UPDATE_SERVER=$DNS_AUTH DNS_TSIG_NAME DNS_TSIG_ALG DNS_TSIG_SECRET_FILE
export DNS_AUTHORITATIVE=$DNS_AUTH
V1=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1
V2=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2
out=$("$DNSDRV" add "$T_TXT" "$V1" 2>&1)
assert_eq "add the first value" ok "$(kv result <<<"$out")"
assert_eq "the zone is discovered from the validation domain" "$DNS_VALIDATION_ZONE" \
	"$(kv zone <<<"$out")"
assert_eq "add the second value at the same name" ok \
	"$("$DNSDRV" add "$T_TXT" "$V2" 2>&1 | kv result)"
auth=$(dns_auth "$T_TXT" TXT)
assert_contains "Knot serves the first value" "$auth" "\"$V1\""
assert_contains "Knot serves the second value" "$auth" "\"$V2\""
assert_match "TTL is at most 60" "$(awk '{print $2; exit}' <<<"$auth")" '^([0-5]?[0-9]|60)$'
out=$("$DNSDRV" wait 5000 "$T_TXT" "$V1" "$V2" 2>&1)
assert_eq "propagation wait: both values on every server" ok "$(kv result <<<"$out")"
assert_eq "delegation still ok with TXT at the target" ok \
	"$(deleg two.customer.test | kv outcome)"
assert_contains "the resolver follows the CNAME to both values" \
	"$(dns_resolve _acme-challenge.two.customer.test TXT)" "\"$V2\""

assert_eq "delete the first value" ok "$("$DNSDRV" delete "$T_TXT" "$V1" 2>&1 | kv result)"
auth=$(dns_auth "$T_TXT" TXT)
assert_not_contains "the deleted value is gone" "$auth" "\"$V1\""
assert_contains "the other value is still served" "$auth" "\"$V2\""

out=$("$DNSDRV" sweep "$T_TXT" "$T_OK" 2>&1)
assert_contains "sweep lists the leftover" "$out" "txt=$T_TXT $V2"
assert_not_contains "sweep lists nothing where nothing is" "$out" "txt=$T_OK"

t0=$(date +%s.%N)
out=$("$DNSDRV" wait 1000 "$T_TXT" "$V1" 2>&1)
t1=$(date +%s.%N)
assert_contains "propagation wait times out for a value not published" "$out" \
	"do not serve all 1 value"
assert_lt "and gives up near its deadline" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" 4
out=$(DNS_AUTHORITATIVE="$DNS_AUTH,127.0.0.1:$(free_port)" "$DNSDRV" wait 1000 "$T_TXT" "$V2" 2>&1)
assert_contains "a server that does not answer keeps the wait from succeeding" "$out" \
	"1 of 2 authoritative servers"
out=$(DNS_AUTHORITATIVE='' "$DNSDRV" servers 2>&1)
assert_contains "default servers: the zone's NS address on port 53" "$out" "server=127.0.0.1:53"
assert_contains "default servers: and the update server" "$out" "server=$DNS_AUTH"

out=$("$DNSDRV" add "other.$DNS_VALIDATION_ZONE" "$V1" 2>&1)
assert_contains "an update outside the ACL: the ACL message" "$out" \
	"the server's ACL refused this update"
assert_not_contains "... and nothing was added" "$(dns_auth "other.$DNS_VALIDATION_ZONE" TXT)" "$V1"
out=$("$DNSDRV" add "outside.example" "$V1" 2>&1)
assert_contains "a name outside the zone is refused before sending" "$out" \
	"is not inside the validation zone"

printf '%s\n' "$(openssl rand -base64 32)" >"$DNS_DIR/wrong.secret"
out=$(DNS_TSIG_SECRET_FILE=$DNS_DIR/wrong.secret "$DNSDRV" add "$T_TXT" "$V1" 2>&1)
assert_contains "a wrong secret: BADSIG, said as such" "$out" "BADSIG"
assert_not_contains "the secret is never printed" "$out" "$(cat "$DNS_DIR/wrong.secret")"
out=$(DNS_TSIG_ALG=hmac-sha384 "$DNSDRV" add "$T_TXT" "$V1" 2>&1)
assert_contains "hmac-sha384 is refused with the libldns explanation" "$out" \
	"libldns (1.8.3) cannot sign with it"

dns_stop
e2e_finish

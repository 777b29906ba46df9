/* Unit tests of certsync/delegation's naming: the per-host label is a contract with
 * customers, so it is pinned here against values computed independently (Python:
 * base64.b32encode(sha256(host)).lower()[:26]). The DNS side runs in
 * tests/e2e/dns_checks.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "delegation.h"

static void test_label_vectors(void **state)
{
	char l[DELEGATION_LABEL_LEN + 1];
	(void)state;
	assert_int_equal(delegation_label("example.com", l, sizeof(l)), 0);
	assert_string_equal(l, "un42n5xov642kxrxrqiyanhcou");
	assert_int_equal(delegation_label("www.example.com", l, sizeof(l)), 0);
	assert_string_equal(l, "qd6a7ojgnw33qp4fquh2bzsurn");
	/* Case, a trailing dot and "*." do not change it. */
	assert_int_equal(delegation_label("*.Example.COM.", l, sizeof(l)), 0);
	assert_string_equal(l, "un42n5xov642kxrxrqiyanhcou");
	assert_int_equal(delegation_label("", l, sizeof(l)), -1);
	assert_int_equal(delegation_label("example.com", l, DELEGATION_LABEL_LEN), -1);
}

static void test_target_and_record(void **state)
{
	char b[DELEGATION_NAME_MAX], r[2 * DELEGATION_NAME_MAX + 16];
	(void)state;
	assert_int_equal(delegation_target("*.example.com", CS_DNS_LAYOUT_PER_HOST,
	                                   "acme.validation.test.", b, sizeof(b)),
	                 0);
	assert_string_equal(b, "un42n5xov642kxrxrqiyanhcou.acme.validation.test");
	assert_int_equal(delegation_target("www.example.com", CS_DNS_LAYOUT_SHARED,
	                                   "Validation.Example.NET", b, sizeof(b)),
	                 0);
	assert_string_equal(b, "_acme-challenge.validation.example.net");
	assert_int_equal(delegation_name("*.example.com", b, sizeof(b)), 0);
	assert_string_equal(b, "_acme-challenge.example.com");
	assert_int_equal(delegation_record("example.com", CS_DNS_LAYOUT_PER_HOST,
	                                   "acme.validation.test", r, sizeof(r)),
	                 0);
	assert_string_equal(r, "_acme-challenge.example.com. CNAME "
	                       "un42n5xov642kxrxrqiyanhcou.acme.validation.test.");
	/* Too small a buffer, or no validation domain. */
	assert_int_equal(
	    delegation_target("example.com", CS_DNS_LAYOUT_PER_HOST, "acme.validation.test", b, 20),
	    -1);
	assert_int_equal(delegation_target("example.com", CS_DNS_LAYOUT_PER_HOST, "", b, sizeof(b)),
	                 -1);
}

static void test_tokens(void **state)
{
	(void)state;
	assert_string_equal(delegation_outcome_token(DELEGATION_OK), "ok");
	assert_string_equal(delegation_outcome_token(DELEGATION_MISSING), "missing");
	assert_string_equal(delegation_outcome_token(DELEGATION_POINTS_ELSEWHERE),
	                    "points-elsewhere");
	assert_string_equal(delegation_outcome_token(DELEGATION_TXT_PRESENT), "txt-present");
	assert_string_equal(delegation_outcome_token(DELEGATION_WILDCARD_SYNTHESIZED),
	                    "wildcard-synthesized");
	assert_string_equal(delegation_outcome_token(DELEGATION_LOOKUP_FAILED), "lookup-failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_label_vectors),
	    cmocka_unit_test(test_target_and_record),
	    cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

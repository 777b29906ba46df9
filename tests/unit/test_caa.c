/* Unit tests of certsync/caa: the pure CAA evaluator, against the cases Boulder's own
 * tests cover (research/acme.md §2.6, written anew here) and RFC 8657's parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "caa.h"

#define ACCT  "https://acme-v02.api.letsencrypt.org/acme/acct/1234"
#define OTHER "https://acme-v02.api.letsencrypt.org/acme/acct/9999"

static const char *const le[] = {"letsencrypt.org"};
static const struct caa_params params = {le, 1, ACCT, "dns-01"};
static struct caa_result res;

/* The climb for ident with every name answering NOERROR/empty, except climb[at], which
 * gets rrs (or, with status != OK, that status). */
struct climb {
	char names[8][CAA_NAME_MAX];
	struct caa_lookup l[8];
	size_t n;
};

static void build(struct climb *c, const char *ident)
{
	const char *p = strncmp(ident, "*.", 2) == 0 ? ident + 2 : ident;
	memset(c, 0, sizeof(*c));
	while (p && c->n < 8) {
		snprintf(c->names[c->n], CAA_NAME_MAX, "%s", p);
		c->l[c->n].name = c->names[c->n];
		c->l[c->n].status = CAA_LOOKUP_OK;
		c->n++;
		p = strchr(p, '.');
		if (p)
			p++;
	}
}

static enum caa_verdict eval_p(const char *ident, const struct caa_params *p, size_t at,
                               const struct caa_rr *rrs, size_t n)
{
	struct climb c;
	build(&c, ident);
	c.l[at].rrs = rrs;
	c.l[at].n_rrs = n;
	assert_int_equal(caa_evaluate(ident, c.l, c.n, p, &res), 0);
	return res.verdict;
}

static enum caa_verdict eval(const char *ident, const struct caa_rr *rrs, size_t n)
{
	return eval_p(ident, &params, 0, rrs, n);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static enum caa_verdict one(const char *ident, uint8_t flags, const char *tag, const char *value)
{
	static struct caa_rr rr;
	rr = (struct caa_rr){flags, tag, value};
	return eval(ident, &rr, 1);
}

/* ---- the climb ---- */

static void test_absent(void **state)
{
	(void)state;
	assert_int_equal(eval("www.example.com", NULL, 0), CAA_ALLOWED);
	assert_string_equal(res.found_at, "");
	assert_string_equal(caa_verdict_token(res.verdict), "allowed");
}

static void test_parent_only(void **state)
{
	static const struct caa_rr rr[] = {{0, "issue", "letsencrypt.org"}};
	(void)state;
	assert_int_equal(eval_p("child.present.com", &params, 1, rr, 1), CAA_ALLOWED);
	assert_string_equal(res.found_at, "present.com");
}

static void test_parent_forbids(void **state)
{
	static const struct caa_rr rr[] = {{0, "issue", "ca.com"}};
	(void)state;
	assert_int_equal(eval_p("a.b.example.com", &params, 2, rr, 1), CAA_FORBIDDEN);
	assert_string_equal(res.found_at, "example.com");
	assert_string_equal(res.fix, "example.com. CAA 0 issue \"letsencrypt.org\"");
	assert_string_equal(res.blocking, "example.com. CAA 0 issue \"ca.com\"");
	assert_non_null(strstr(res.message, "Add example.com. CAA 0 issue \"letsencrypt.org\""));
}

static void test_closest_wins(void **state)
{
	/* The child's set decides even though the parent's would allow. */
	static const struct caa_rr child[] = {{0, "issue", "ca.com"}};
	static const struct caa_rr parent[] = {{0, "issue", "letsencrypt.org"}};
	struct climb c;
	(void)state;
	build(&c, "www.example.com");
	c.l[0].rrs = child;
	c.l[0].n_rrs = 1;
	c.l[1].rrs = parent;
	c.l[1].n_rrs = 1;
	assert_int_equal(caa_evaluate("www.example.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_FORBIDDEN);
	assert_string_equal(res.found_at, "www.example.com");
}

static void test_servfail_at_name(void **state)
{
	static const struct caa_rr parent[] = {{0, "issue", "letsencrypt.org"}};
	struct climb c;
	(void)state;
	build(&c, "www.example.com");
	c.l[0].status = CAA_LOOKUP_ERROR;
	c.l[0].error = "SERVFAIL";
	c.l[1].rrs = parent;
	c.l[1].n_rrs = 1;
	assert_int_equal(caa_evaluate("www.example.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_LOOKUP_FAILED);
	assert_string_equal(res.found_at, "www.example.com");
	assert_string_equal(caa_verdict_token(res.verdict), "lookup-failed");
	assert_non_null(strstr(res.message, "SERVFAIL"));
	assert_string_equal(res.fix, "");
}

static void test_servfail_at_parent_after_record(void **state)
{
	static const struct caa_rr rr[] = {{0, "issue", "letsencrypt.org"}};
	struct climb c;
	(void)state;
	build(&c, "www.example.com");
	c.l[0].rrs = rr;
	c.l[0].n_rrs = 1;
	c.l[1].status = CAA_LOOKUP_ERROR;
	c.l[1].error = "SERVFAIL";
	c.l[2].status = CAA_LOOKUP_ERROR;
	assert_int_equal(caa_evaluate("www.example.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_ALLOWED);
	/* And the caller may stop the climb at the decisive name. */
	assert_int_equal(caa_evaluate("www.example.com", c.l, 1, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_ALLOWED);
}

static void test_servfail_between(void **state)
{
	/* Name empty, parent SERVFAIL, grandparent allows: fail closed. */
	static const struct caa_rr rr[] = {{0, "issue", "letsencrypt.org"}};
	struct climb c;
	(void)state;
	build(&c, "a.b.example.com");
	c.l[1].status = CAA_LOOKUP_ERROR;
	c.l[2].rrs = rr;
	c.l[2].n_rrs = 1;
	assert_int_equal(caa_evaluate("a.b.example.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_LOOKUP_FAILED);
	assert_string_equal(res.found_at, "b.example.com");
}

static void test_nxdomain(void **state)
{
	struct climb c;
	(void)state;
	/* NXDOMAIN below the TLD is "no records". */
	build(&c, "nx.example.com");
	c.l[0].status = CAA_LOOKUP_NXDOMAIN;
	assert_int_equal(caa_evaluate("nx.example.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_ALLOWED);
	/* NXDOMAIN at the TLD is an error. */
	build(&c, "nx.example.invalidtld");
	c.l[0].status = CAA_LOOKUP_NXDOMAIN;
	c.l[1].status = CAA_LOOKUP_NXDOMAIN;
	c.l[2].status = CAA_LOOKUP_NXDOMAIN;
	assert_int_equal(caa_evaluate("nx.example.invalidtld", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_LOOKUP_FAILED);
	assert_string_equal(res.found_at, "invalidtld");
}

static void test_nx_child_critical_parent(void **state)
{
	static const struct caa_rr rr[] = {{1, "issue", "ca.com"}};
	struct climb c;
	(void)state;
	build(&c, "nx.critical.com");
	c.l[0].status = CAA_LOOKUP_NXDOMAIN;
	c.l[1].rrs = rr;
	c.l[1].n_rrs = 1;
	assert_int_equal(caa_evaluate("nx.critical.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_FORBIDDEN);
	assert_string_equal(res.found_at, "critical.com");
}

static void test_cname(void **state)
{
	/* CNAME at the name: the target's records answer for it; the fix goes there. */
	static const struct caa_rr rr[] = {{0, "issue", "ca.com"}};
	struct climb c;
	(void)state;
	build(&c, "www.customer.com");
	c.l[0].cname = "edge.cdn.net";
	c.l[0].rrs = rr;
	c.l[0].n_rrs = 1;
	assert_int_equal(caa_evaluate("www.customer.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_FORBIDDEN);
	assert_string_equal(res.found_at, "www.customer.com");
	assert_string_equal(res.fix, "edge.cdn.net. CAA 0 issue \"letsencrypt.org\"");
	assert_non_null(strstr(res.message, "alias (CNAME) of edge.cdn.net"));
}

static void test_cname_target_empty_parent_of_name(void **state)
{
	/* Target without CAA: the climb goes on with the name's parent, not the target's. */
	static const struct caa_rr rr[] = {{0, "issue", "letsencrypt.org"}};
	struct climb c;
	(void)state;
	build(&c, "www.customer.com");
	c.l[0].cname = "edge.cdn.net";
	c.l[1].rrs = rr;
	c.l[1].n_rrs = 1;
	assert_int_equal(caa_evaluate("www.customer.com", c.l, c.n, &params, &res), 0);
	assert_int_equal(res.verdict, CAA_ALLOWED);
	assert_string_equal(res.found_at, "customer.com");
}

/* ---- tags and flags ---- */

static void test_other_ca(void **state)
{
	(void)state;
	assert_int_equal(one("reserved.com", 0, "issue", "ca.com"), CAA_FORBIDDEN);
	assert_string_equal(caa_verdict_token(res.verdict), "forbidden");
	assert_non_null(strstr(res.message, "other CAs only"));
	assert_int_equal(one("reserved.com", 0, "iSsUe", "ca.com"), CAA_FORBIDDEN);
	assert_int_equal(one("reserved.com", 0, "ISSUE", "letsencrypt.org"), CAA_ALLOWED);
}

static void test_critical(void **state)
{
	(void)state;
	assert_int_equal(one("critical.com", 128, "foo", "bar"), CAA_FORBIDDEN);
	assert_string_equal(res.blocking, "critical.com. CAA 128 foo \"bar\"");
	assert_string_equal(res.fix, "");
	assert_non_null(strstr(res.message, "critical"));
	/* Boulder's alias: flag 1 counts as critical. */
	assert_int_equal(one("critical.com", 1, "foo", "bar"), CAA_FORBIDDEN);
	/* Every other bit set: not critical; an unknown tag alone does not restrict. */
	assert_int_equal(one("noncritical.com", 0x7E, "foo", "bar"), CAA_ALLOWED);
	/* iodef is known: critical or not, it never forbids. */
	assert_int_equal(one("iodef.com", 128, "iodef", "mailto:x@iodef.com"), CAA_ALLOWED);
	assert_int_equal(one("iodef.com", 128, "issuemail", "ca.com"), CAA_ALLOWED);
	/* Critical unknown beats a matching issue record. */
	static const struct caa_rr both[] = {{0, "issue", "letsencrypt.org"}, {128, "tbs", "x"}};
	assert_int_equal(eval("both.com", both, N(both)), CAA_FORBIDDEN);
}

static void test_flag1_issue_plus_match(void **state)
{
	static const struct caa_rr rr[] = {{1, "issue", "ca.com"}, {0, "issue", "letsencrypt.org"}};
	(void)state;
	assert_int_equal(eval("present.com", rr, N(rr)), CAA_ALLOWED);
}

static void test_empty_issuer(void **state)
{
	(void)state;
	assert_int_equal(one("nothing.com", 0, "issue", ";"), CAA_FORBIDDEN);
	assert_non_null(strstr(res.message, "forbids every CA"));
	assert_string_equal(res.fix, "nothing.com. CAA 0 issue \"letsencrypt.org\"");
	assert_int_equal(one("*.nothing.com", 0, "issue", ";"), CAA_FORBIDDEN);
	assert_int_equal(one("nothing.com", 0, "issue", ""), CAA_FORBIDDEN);
	assert_int_equal(one("nothing.com", 0, "issue", " ; "), CAA_FORBIDDEN);
}

static void test_issuewild(void **state)
{
	static const struct caa_rr wild_none[] = {{0, "issuewild", ";"}};
	static const struct caa_rr le_wild_other[] = {{0, "issue", "letsencrypt.org"},
	                                              {0, "issuewild", "ca.com"}};
	static const struct caa_rr other_wild_le[] = {{0, "issue", "ca.com"},
	                                              {0, "issuewild", "letsencrypt.org"}};
	static const struct caa_rr two_wild[] = {{0, "issuewild", "ca.com"},
	                                         {0, "issuewild", "letsencrypt.org"}};
	static const struct caa_rr unknown[] = {{0, "foo", "bar"}};
	(void)state;
	assert_int_equal(eval("*.w.com", wild_none, 1), CAA_FORBIDDEN);
	assert_int_equal(eval("w.com", wild_none, 1), CAA_ALLOWED);
	assert_int_equal(eval("*.w.com", le_wild_other, 2), CAA_FORBIDDEN);
	assert_string_equal(res.fix, "w.com. CAA 0 issuewild \"letsencrypt.org\"");
	assert_non_null(strstr(res.message, "issuewild"));
	assert_int_equal(eval("w.com", le_wild_other, 2), CAA_ALLOWED);
	assert_int_equal(eval("*.w.com", other_wild_le, 2), CAA_ALLOWED);
	assert_int_equal(eval("w.com", other_wild_le, 2), CAA_FORBIDDEN);
	assert_int_equal(eval("*.w.com", two_wild, 2), CAA_ALLOWED);
	assert_int_equal(eval("*.w.com", unknown, 1), CAA_ALLOWED);
	/* Wildcard with issue records only: issue applies. */
	assert_int_equal(one("*.w.com", 0, "issue", "letsencrypt.org"), CAA_ALLOWED);
	assert_int_equal(one("*.w.com", 0, "issue", "ca.com"), CAA_FORBIDDEN);
	assert_string_equal(res.fix, "w.com. CAA 0 issue \"letsencrypt.org\"");
}

/* ---- the value parser ---- */

static void test_parser(void **state)
{
	static const struct {
		const char *value;
		enum caa_verdict want;
	} cases[] = {
	    {"letsencrypt.org", CAA_ALLOWED},
	    {"  letsencrypt.org  ;foo=bar;baz=bar", CAA_ALLOWED}, /* unknown params ignored */
	    {"letsencrypt.org;", CAA_ALLOWED},
	    {"letsencrypt.org;   ", CAA_ALLOWED},
	    {"\tletsencrypt.org\t", CAA_ALLOWED},
	    {"letsencrypt.org; foo=", CAA_ALLOWED},    /* empty value */
	    {"letsencrypt.org; baz=a=b", CAA_ALLOWED}, /* '=' inside a value */
	    {"letsencrypt.org; a_b=123", CAA_FORBIDDEN},
	    {"letsencrypt.org; ab=1 2 3", CAA_FORBIDDEN},
	    {"letsencrypt.org; foo=bar baz=bar", CAA_FORBIDDEN}, /* missing ';' */
	    {"letsencrypt.org; foo-bar=1", CAA_FORBIDDEN},       /* Boulder: no '-' in tags */
	    {"letsencrypt.org; foo", CAA_FORBIDDEN},
	    {"letsencrypt.org;;", CAA_FORBIDDEN},
	    {"letsencrypt.org; foo=b\xc3\xa4r", CAA_FORBIDDEN}, /* non-ASCII */
	    {"letsencrypt.org.", CAA_FORBIDDEN},                /* no trailing-dot folding */
	    {"LetsEncrypt.org", CAA_FORBIDDEN},                 /* no case folding */
	    {"letsencrypt.org extra", CAA_FORBIDDEN},
	};
	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		enum caa_verdict v = one("parse.com", 0, "issue", cases[i].value);
		if (v != cases[i].want)
			fail_msg("value \"%s\": got %s, want %s", cases[i].value,
			         caa_verdict_token(v), caa_verdict_token(cases[i].want));
	}
	assert_int_equal(one("parse.com", 0, "issue", "LetsEncrypt.org"), CAA_FORBIDDEN);
	assert_non_null(strstr(res.message, "exactly"));
	assert_int_equal(one("parse.com", 0, "issue", "letsencrypt.org; a_b=1"), CAA_FORBIDDEN);
	assert_non_null(strstr(res.message, "malformed"));
}

static void test_escaping(void **state)
{
	(void)state;
	assert_int_equal(one("q.com", 0, "issue", "ca\"x\\"), CAA_FORBIDDEN);
	assert_string_equal(res.blocking, "q.com. CAA 0 issue \"ca\\\"x\\\\\"");
}

/* ---- RFC 8657 ---- */

static void test_validationmethods(void **state)
{
	(void)state;
	assert_int_equal(one("vm.com", 0, "issue", "letsencrypt.org; validationmethods=dns-01"),
	                 CAA_ALLOWED);
	assert_int_equal(
	    one("vm.com", 0, "issue", "letsencrypt.org; validationmethods=http-01,dns-01"),
	    CAA_ALLOWED);
	assert_int_equal(one("vm.com", 0, "issue", "letsencrypt.org; validationmethods=http-01"),
	                 CAA_FORBIDDEN);
	assert_string_equal(res.fix,
	                    "vm.com. CAA 0 issue \"letsencrypt.org; validationmethods=dns-01\"");
	assert_non_null(strstr(res.message, "validationmethods"));
	/* Unknown well-formed labels are skipped; a malformed label fails the record. */
	assert_int_equal(
	    one("vm.com", 0, "issue", "letsencrypt.org; validationmethods=future-99,dns-01"),
	    CAA_ALLOWED);
	assert_int_equal(
	    one("vm.com", 0, "issue", "letsencrypt.org; validationmethods=dns_01,dns-01"),
	    CAA_FORBIDDEN);
	assert_int_equal(one("vm.com", 0, "issue", "letsencrypt.org; validationmethods=dns-01,"),
	                 CAA_FORBIDDEN);
	assert_int_equal(one("vm.com", 0, "issue", "letsencrypt.org; validationmethods="),
	                 CAA_FORBIDDEN);
	/* Two validationmethods parameters: unsatisfiable. */
	assert_int_equal(one("vm.com", 0, "issue",
	                     "letsencrypt.org; validationmethods=dns-01; validationmethods=dns-01"),
	                 CAA_FORBIDDEN);
	/* Method names are case-sensitive. */
	assert_int_equal(one("vm.com", 0, "issue", "letsencrypt.org; validationmethods=DNS-01"),
	                 CAA_FORBIDDEN);
}

static void test_accounturi(void **state)
{
	static const struct caa_rr additive[] = {{0, "issue", "letsencrypt.org; accounturi=" OTHER},
	                                         {0, "issue", "letsencrypt.org; accounturi=" ACCT}};
	const struct caa_params anon = {le, 1, NULL, "dns-01"};
	(void)state;
	assert_int_equal(one("acct.com", 0, "issue", "letsencrypt.org; accounturi=" ACCT),
	                 CAA_ALLOWED);
	assert_int_equal(one("acct.com", 0, "issue", "letsencrypt.org; accounturi=" OTHER),
	                 CAA_FORBIDDEN);
	assert_string_equal(res.fix,
	                    "acct.com. CAA 0 issue \"letsencrypt.org; accounturi=" ACCT "\"");
	assert_non_null(strstr(res.message, ACCT));
	assert_int_equal(
	    one("acct.com", 0, "issue", "letsencrypt.org; accounturi=" ACCT "; accounturi=" ACCT),
	    CAA_FORBIDDEN);
	assert_int_equal(eval("acct.com", additive, 2), CAA_ALLOWED);
	/* Both parameters together. */
	assert_int_equal(one("acct.com", 0, "issue",
	                     "letsencrypt.org; accounturi=" ACCT "; validationmethods=dns-01"),
	                 CAA_ALLOWED);
	assert_int_equal(one("acct.com", 0, "issue",
	                     "letsencrypt.org; accounturi=" ACCT "; validationmethods=http-01"),
	                 CAA_FORBIDDEN);
	assert_string_equal(res.fix, "acct.com. CAA 0 issue \"letsencrypt.org; accounturi=" ACCT
	                             "; validationmethods=dns-01\"");
	/* Parameter tags are exact: "AccountURI" is an unknown parameter, ignored. */
	assert_int_equal(one("acct.com", 0, "issue", "letsencrypt.org; AccountURI=" OTHER),
	                 CAA_ALLOWED);
	/* No account yet: a record pinned to an account cannot be satisfied. */
	assert_int_equal(eval_p("acct.com", &anon, 0,
	                        &(struct caa_rr){0, "issue", "letsencrypt.org; accounturi=" ACCT},
	                        1),
	                 CAA_FORBIDDEN);
	assert_non_null(strstr(res.message, "no registered account"));
	assert_int_equal(
	    eval_p("acct.com", &anon, 0, &(struct caa_rr){0, "issue", "letsencrypt.org"}, 1),
	    CAA_ALLOWED);
}

static void test_identities_and_case(void **state)
{
	static const char *const two[] = {"pebble.letsencrypt.org", "letsencrypt.org"};
	const struct caa_params p2 = {two, 2, ACCT, "dns-01"};
	(void)state;
	assert_int_equal(
	    eval_p("x.com", &p2, 0, &(struct caa_rr){0, "issue", "letsencrypt.org"}, 1),
	    CAA_ALLOWED);
	assert_non_null(strstr(res.message, "allows letsencrypt.org"));
	/* The hostname is compared case-insensitively (lower-cased), a trailing dot ignored. */
	assert_int_equal(one("WWW.Example.COM.", 0, "issue", "ca.com"), CAA_FORBIDDEN);
	assert_non_null(strstr(res.message, "www.example.com"));
}

static void test_bad_input(void **state)
{
	struct climb c;
	const struct caa_params none = {le, 0, ACCT, "dns-01"};
	const struct caa_params nomethod = {le, 1, ACCT, NULL};
	(void)state;
	build(&c, "x.com");
	assert_int_equal(caa_evaluate("x.com", c.l, 0, &params, &res), -1);
	assert_int_equal(caa_evaluate("x.com", c.l, c.n, &none, &res), -1);
	assert_int_equal(caa_evaluate("x.com", c.l, c.n, &nomethod, &res), -1);
	assert_int_equal(caa_evaluate("", c.l, c.n, &params, &res), -1);
	assert_int_equal(caa_evaluate("*.", c.l, c.n, &params, &res), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_absent),
	    cmocka_unit_test(test_parent_only),
	    cmocka_unit_test(test_parent_forbids),
	    cmocka_unit_test(test_closest_wins),
	    cmocka_unit_test(test_servfail_at_name),
	    cmocka_unit_test(test_servfail_at_parent_after_record),
	    cmocka_unit_test(test_servfail_between),
	    cmocka_unit_test(test_nxdomain),
	    cmocka_unit_test(test_nx_child_critical_parent),
	    cmocka_unit_test(test_cname),
	    cmocka_unit_test(test_cname_target_empty_parent_of_name),
	    cmocka_unit_test(test_other_ca),
	    cmocka_unit_test(test_critical),
	    cmocka_unit_test(test_flag1_issue_plus_match),
	    cmocka_unit_test(test_empty_issuer),
	    cmocka_unit_test(test_issuewild),
	    cmocka_unit_test(test_parser),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_validationmethods),
	    cmocka_unit_test(test_accounturi),
	    cmocka_unit_test(test_identities_and_case),
	    cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

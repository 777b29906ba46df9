/*
 * Tests of certsync/hapi against the real HAProxy 2.6 (no mock): a HAProxy with a
 * crt-list and a map is started on loopback, changed through its runtime API, and the
 * result is checked on the wire with openssl s_client.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hapi.h"

static char dir[64];
static int port;
static struct hapi api;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* The first line a shell command prints, without its newline. */
static void sh_out(char *out, size_t n, const char *cmd)
{
	FILE *f = popen(cmd, "r");

	out[0] = '\0';
	assert_non_null(f);
	if (fgets(out, (int)n, f))
		out[strcspn(out, "\n")] = '\0';
	pclose(f);
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &l);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

/* A self-signed certificate for name, bundled with its key in DIR/<file>. */
static void make_cert(const char *file, const char *name, const char *keyopt)
{
	assert_int_equal(sh("cd %s && openssl req -x509 -newkey %s -nodes -keyout k.tmp -out c.tmp "
	                    "-days 10 -subj /CN=%s -addext subjectAltName=DNS:%s 2>/dev/null && "
	                    "cat c.tmp k.tmp > %s && rm -f c.tmp k.tmp",
	                    dir, keyopt, name, name, file),
	                 0);
}

static void served_serial(const char *sni, char *out, size_t n)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
	         "openssl s_client -connect 127.0.0.1:%d -servername %s </dev/null 2>/dev/null "
	         "| openssl x509 -noout -serial | cut -d= -f2",
	         port, sni);
	sh_out(out, n, cmd);
}

static void file_serial(const char *file, char *out, size_t n)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "openssl x509 -noout -serial -in %s/%s | cut -d= -f2", dir,
	         file);
	sh_out(out, n, cmd);
}

static char *slurp(const char *file)
{
	char path[256];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	char err[256], sock[128];
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hapi-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	port = free_port();
	make_cert("a.pem", "a.example.com", "ec -pkeyopt ec_paramgen_curve:P-256");
	sh("echo '%s/a.pem a.example.com' > %s/list.crt-list; : > %s/hosts.map", dir, dir, dir);
	snprintf(sock, sizeof(sock), "unix:%s/admin.sock", dir);
	f = fopen("/dev/null", "r");
	fclose(f);
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/h.cfg", dir);
		f = fopen(path, "w");
		if (!f)
			return -1;
		fprintf(f,
		        "global\n    stats socket %s/admin.sock level admin\n"
		        "defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n"
		        "    timeout connect 1s\n"
		        "frontend fe\n    bind 127.0.0.1:%d ssl crt-list %s/list.crt-list\n"
		        "    http-request return status 200 content-type text/plain lf-string "
		        "\"%%[ssl_fc_sni,map(%s/hosts.map,none)]\"\n",
		        dir, port, dir, dir);
		fclose(f);
	}
	if (sh("haproxy -D -p %s/pid -f %s/h.cfg", dir, dir) != 0)
		return -1;
	if (addr_parse(sock, &api.addr, err, sizeof(err)) < 0)
		return -1;
	api.timeout_ms = 3000;
	for (int i = 0; i < 50; i++) {
		if (sh("test -S %s/admin.sock", dir) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
}

static int teardown(void **state)
{
	(void)state;
	sh("kill $(cat %s/pid) 2>/dev/null; sleep 0.2; rm -rf %s", dir, dir);
	return 0;
}

static void test_serial_of_loaded_and_unknown(void **state)
{
	char want[128], got[128], err[256], path[128];

	(void)state;
	file_serial("a.pem", want, sizeof(want));
	snprintf(path, sizeof(path), "%s/a.pem", dir);
	assert_int_equal(hapi_cert_serial(&api, path, got, sizeof(got), err, sizeof(err)), 0);
	assert_string_equal(got, want);
	snprintf(path, sizeof(path), "%s/none.pem", dir);
	assert_int_equal(hapi_cert_serial(&api, path, got, sizeof(got), err, sizeof(err)), 1);
}

static void test_replace_served_without_reload(void **state)
{
	char want[128], got[128], err[256], path[128], *pem;

	(void)state;
	make_cert("a2.pem", "a.example.com", "ec -pkeyopt ec_paramgen_curve:P-256");
	file_serial("a2.pem", want, sizeof(want));
	pem = slurp("a2.pem");
	snprintf(path, sizeof(path), "%s/a.pem", dir);
	if (hapi_cert_update(&api, path, pem, 0, err, sizeof(err)) != 0)
		fail_msg("update: %s", err);
	free(pem);
	served_serial("a.example.com", got, sizeof(got));
	assert_string_equal(got, want);
}

static void test_new_cert_and_crtlist_line(void **state)
{
	char want[128], got[128], err[256], path[128], list[128], line[300], *pem;

	(void)state;
	make_cert("b.pem", "b.example.com", "ec -pkeyopt ec_paramgen_curve:P-256");
	file_serial("b.pem", want, sizeof(want));
	pem = slurp("b.pem");
	snprintf(path, sizeof(path), "%s/b.pem", dir);
	snprintf(list, sizeof(list), "%s/list.crt-list", dir);
	if (hapi_cert_update(&api, path, pem, 1, err, sizeof(err)) != 0)
		fail_msg("new cert: %s", err);
	free(pem);
	snprintf(line, sizeof(line), "%s [alpn h2,http/1.1] b.example.com", path);
	if (hapi_crtlist_add(&api, list, line, err, sizeof(err)) != 0)
		fail_msg("crt-list add: %s", err);
	served_serial("b.example.com", got, sizeof(got));
	assert_string_equal(got, want);
	/* Removing the line: b.example.com falls back to the default certificate (a). */
	if (hapi_crtlist_del(&api, list, path, err, sizeof(err)) != 0)
		fail_msg("crt-list del: %s", err);
	served_serial("b.example.com", got, sizeof(got));
	assert_string_not_equal(got, want);
}

static void test_large_bundle_is_split(void **state)
{
	char want[128], got[128], err[256], path[128], *pem, *big;
	size_t n;

	(void)state;
	/* An RSA-4096 leaf followed by six more RSA-4096 certificates as "chain": well
	 * over HAProxy's 16 KB payload limit, so the key has to travel on its own. */
	make_cert("c.pem", "a.example.com", "rsa:4096");
	for (int i = 0; i < 6; i++)
		sh("cd %s && openssl req -x509 -newkey rsa:4096 -nodes -keyout /dev/null -subj "
		   "/CN=pad%d -days 1 2>/dev/null >> pad.pem",
		   dir, i);
	file_serial("c.pem", want, sizeof(want));
	pem = slurp("c.pem");
	big = slurp("pad.pem");
	n = strlen(pem) + strlen(big) + 2;
	{
		char *bundle = calloc(1, n);
		char *keyat = strstr(pem, "-----BEGIN PRIVATE KEY");
		assert_non_null(bundle);
		assert_non_null(keyat);
		/* leaf, pad certificates, then the key */
		memcpy(bundle, pem, (size_t)(keyat - pem));
		strcat(bundle, big);
		strcat(bundle, keyat);
		assert_true(strlen(bundle) > HAPI_MAX_PAYLOAD);
		snprintf(path, sizeof(path), "%s/a.pem", dir);
		if (hapi_cert_update(&api, path, bundle, 0, err, sizeof(err)) != 0)
			fail_msg("large update: %s", err);
		free(bundle);
	}
	free(pem);
	free(big);
	served_serial("a.example.com", got, sizeof(got));
	assert_string_equal(got, want);
}

static void test_cert_without_key_is_refused_and_aborted(void **state)
{
	char err[256] = "", path[128], before[128], after[128];
	const char *pem;

	(void)state;
	served_serial("a.example.com", before, sizeof(before));
	pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
	snprintf(path, sizeof(path), "%s/a.pem", dir);
	assert_int_equal(hapi_cert_update(&api, path, pem, 0, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
	served_serial("a.example.com", after, sizeof(after));
	assert_string_equal(before, after);
}

static void test_leftover_transaction(void **state)
{
	char err[256], path[128], other[128], want[128], got[128], *pem, *reply = NULL, cmd[300];

	(void)state;
	/* A transaction left open on a file of ours (a certsync killed between set and
	 * commit) is aborted; the update then goes to the right certificate. */
	make_cert("d.pem", "a.example.com", "ec -pkeyopt ec_paramgen_curve:P-256");
	make_cert("e.pem", "a.example.com", "ec -pkeyopt ec_paramgen_curve:P-256");
	pem = slurp("d.pem");
	snprintf(other, sizeof(other), "%s/a.pem", dir);
	snprintf(cmd, sizeof(cmd), "set ssl cert %s", other);
	assert_int_equal(hapi_cmd(&api, cmd, pem, &reply, err, sizeof(err)), 0);
	assert_non_null(strstr(reply, "Transaction"));
	free(reply);
	free(pem);
	pem = slurp("e.pem");
	file_serial("e.pem", want, sizeof(want));
	if (hapi_cert_update(&api, other, pem, 0, err, sizeof(err)) != 0)
		fail_msg("update over a leftover transaction: %s", err);
	free(pem);
	served_serial("a.example.com", got, sizeof(got));
	assert_string_equal(got, want);
	/* Someone else's transaction (another directory) is reported, not aborted. */
	snprintf(path, sizeof(path), "/tmp/elsewhere-%d.pem", (int)getpid());
	snprintf(cmd, sizeof(cmd), "new ssl cert %s", path);
	assert_int_equal(hapi_cmd(&api, cmd, NULL, &reply, err, sizeof(err)), 0);
	free(reply);
	pem = slurp("d.pem");
	snprintf(cmd, sizeof(cmd), "set ssl cert %s", path);
	assert_int_equal(hapi_cmd(&api, cmd, pem, &reply, err, sizeof(err)), 0);
	free(reply);
	assert_int_equal(hapi_cert_update(&api, other, pem, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not ours"));
	snprintf(cmd, sizeof(cmd), "abort ssl cert %s", path);
	assert_int_equal(hapi_cmd(&api, cmd, NULL, &reply, err, sizeof(err)), 0);
	free(reply);
	free(pem);
}

static void test_map_set_add_del(void **state)
{
	char err[256], map[128], got[128], cmd[256];

	(void)state;
	snprintf(map, sizeof(map), "%s/hosts.map", dir);
	snprintf(cmd, sizeof(cmd),
	         "curl -sk --resolve a.example.com:%d:127.0.0.1 https://a.example.com:%d/", port,
	         port);
	if (hapi_map_set(&api, map, "a.example.com", "p1", err, sizeof(err)) != 0)
		fail_msg("map add: %s", err);
	sh_out(got, sizeof(got), cmd);
	assert_string_equal(got, "p1");
	if (hapi_map_set(&api, map, "a.example.com", "p2", err, sizeof(err)) != 0)
		fail_msg("map set: %s", err);
	sh_out(got, sizeof(got), cmd);
	assert_string_equal(got, "p2");
	if (hapi_map_del(&api, map, "a.example.com", err, sizeof(err)) != 0)
		fail_msg("map del: %s", err);
	sh_out(got, sizeof(got), cmd);
	assert_string_equal(got, "none");
	assert_int_equal(hapi_map_set(&api, "/no/such.map", "k", "v", err, sizeof(err)), -1);
}

static void test_unreachable(void **state)
{
	struct hapi bad = {.timeout_ms = 500};
	char err[256], *reply = NULL;

	(void)state;
	assert_int_equal(addr_parse("unix:/nonexistent/admin.sock", &bad.addr, err, sizeof(err)),
	                 0);
	assert_int_equal(hapi_cmd(&bad, "show info", NULL, &reply, err, sizeof(err)), -1);
	assert_null(reply);
	assert_non_null(strstr(err, "cannot connect"));
}

static void test_sanitize_payload(void **state)
{
	char *s = hapi_sanitize_payload("a\r\n\r\nb\n\n\nc\n\n");

	(void)state;
	assert_string_equal(s, "a\nb\nc");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sanitize_payload),
	    cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_serial_of_loaded_and_unknown),
	    cmocka_unit_test(test_replace_served_without_reload),
	    cmocka_unit_test(test_new_cert_and_crtlist_line),
	    cmocka_unit_test(test_large_bundle_is_split),
	    cmocka_unit_test(test_cert_without_key_is_refused_and_aborted),
	    cmocka_unit_test(test_leftover_transaction),
	    cmocka_unit_test(test_map_set_add_del),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}

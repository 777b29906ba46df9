#include "hapi.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "banned.h"

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		long long left = deadline - now_ms();
		int r;
		if (left <= 0)
			return 0;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r;
	}
}

static int send_all(int fd, const char *p, size_t n, long long deadline)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT, deadline) <= 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

int hapi_cmd(const struct hapi *h, const char *cmd, const char *payload, char **reply, char *err,
             size_t errlen)
{
	long long deadline = now_ms() + (h->timeout_ms > 0 ? h->timeout_ms : 5000);
	char *req = NULL, *buf = NULL;
	size_t len = 0, cap = 0, reqlen;
	int fd, r = -1;

	*reply = NULL;
	fd = socket(h->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&h->addr.ss, h->addr.len) < 0) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) <= 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			snprintf(err, errlen, "cannot connect to HAProxy's runtime API: %s",
			         strerror(soerr   ? soerr
			                  : errno ? errno
			                          : ETIMEDOUT));
			goto out;
		}
	}
	/* management.txt §9.3: "<<" at the end of the line opens a payload that the first
	 * empty line closes. */
	if (payload)
		reqlen = (size_t)asprintf(&req, "%s <<\n%s\n\n", cmd, payload);
	else
		reqlen = (size_t)asprintf(&req, "%s\n", cmd);
	if (!req || reqlen == (size_t)-1) {
		req = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (send_all(fd, req, reqlen, deadline) < 0) {
		snprintf(err, errlen, "sending to HAProxy's runtime API: %s",
		         errno ? strerror(errno) : "timeout");
		goto out;
	}
	for (;;) {
		ssize_t n;
		if (cap - len < 4096) {
			char *nb;
			if (cap >= HAPI_MAX_REPLY) {
				snprintf(err, errlen, "HAProxy's reply exceeds %u bytes",
				         HAPI_MAX_REPLY);
				goto out;
			}
			cap = cap ? cap * 2 : 16384;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			buf = nb;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break; /* non-interactive mode: HAProxy closes after answering */
		if (errno == EINTR)
			continue;
		if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN, deadline) > 0)
			continue;
		snprintf(err, errlen, "reading HAProxy's reply: %s",
		         errno == EAGAIN ? "timeout" : strerror(errno));
		goto out;
	}
	if (!buf && !(buf = malloc(1))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	buf[len] = '\0';
	*reply = buf;
	buf = NULL;
	r = 0;
out:
	free(req);
	free(buf);
	close(fd);
	return r;
}

/* Runs cmd and checks that the reply contains `expect`; the reply's first line goes to
 * err otherwise. */
static int cmd_expect(const struct hapi *h, const char *cmd, const char *payload,
                      const char *expect, char *err, size_t errlen)
{
	char *reply = NULL;
	int r = -1;

	if (hapi_cmd(h, cmd, payload, &reply, err, errlen) < 0)
		return -1;
	if (strstr(reply, expect)) {
		r = 0;
	} else {
		size_t n = strcspn(reply, "\n");
		/* An empty reply to a payload command means HAProxy dropped it: too large for
		 * tune.bufsize (research/acme.md §6.2). */
		snprintf(err, errlen, "\"%s\": %.*s", cmd, (int)(n > 300 ? 300 : n),
		         n ? reply : "no reply (payload larger than HAProxy's tune.bufsize?)");
	}
	free(reply);
	return r;
}

char *hapi_sanitize_payload(const char *pem)
{
	size_t n = strlen(pem), o = 0;
	char *out = malloc(n + 1);
	int line_empty = 1;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (pem[i] == '\r')
			continue;
		if (pem[i] == '\n') {
			if (line_empty)
				continue; /* an empty line would end the payload */
			line_empty = 1;
		} else {
			line_empty = 0;
		}
		out[o++] = pem[i];
	}
	while (o && out[o - 1] == '\n')
		o--;
	out[o] = '\0';
	return out;
}

/* Splits a sanitised PEM bundle into its certificates and its private key blocks. */
static int split_key(const char *pem, char **certs, char **key)
{
	size_t n = strlen(pem);
	char *c = calloc(1, n + 2), *k = calloc(1, n + 2);
	size_t co = 0, ko = 0;
	const char *p = pem;

	if (!c || !k) {
		free(c);
		free(k);
		return -1;
	}
	while ((p = strstr(p, "-----BEGIN ")) != NULL) {
		const char *end = strstr(p, "-----END "), *eol;
		int is_key;
		size_t len;
		if (!end)
			break;
		eol = strchr(end, '\n');
		len = (size_t)((eol ? eol : end + strlen(end)) - p);
		is_key = strstr(p, "PRIVATE KEY-----") != NULL &&
		         strstr(p, "PRIVATE KEY-----") < strchr(p, '\n');
		memcpy(is_key ? k + ko : c + co, p, len);
		if (is_key) {
			ko += len;
			k[ko++] = '\n';
		} else {
			co += len;
			c[co++] = '\n';
		}
		p += len;
	}
	if (co)
		c[co - 1] = '\0';
	if (ko)
		k[ko - 1] = '\0';
	*certs = c;
	*key = k;
	return 0;
}

/* HAProxy 2.6 has one certificate transaction at a time: while one is open for P, `set ssl
 * cert F` silently adds F's content to P's transaction. Before starting ours, abort a
 * leftover one on a file of ours (same directory: a run killed between set and commit);
 * refuse to touch anyone else's. */
static int clear_transaction(const struct hapi *h, const char *file, char *err, size_t errlen)
{
	char *reply = NULL, *p, cmd[4200], open_path[4096];
	const char *slash = strrchr(file, '/');
	size_t dirlen = slash ? (size_t)(slash - file) + 1 : 0, n;

	if (hapi_cmd(h, "show ssl cert", NULL, &reply, err, errlen) < 0)
		return -1;
	p = strstr(reply, "\n*");
	if (!p && reply[0] == '*')
		p = reply - 1;
	if (!p) {
		free(reply);
		return 0;
	}
	n = strcspn(p + 2, "\r\n");
	if (n >= sizeof(open_path)) {
		free(reply);
		snprintf(err, errlen, "unexpected transaction name in HAProxy's reply");
		return -1;
	}
	memcpy(open_path, p + 2, n);
	open_path[n] = '\0';
	free(reply);
	if (strncmp(open_path, file, dirlen) != 0 || strchr(open_path + dirlen, '/')) {
		snprintf(err, errlen,
		         "HAProxy has an open certificate transaction on %s, not ours: finish or "
		         "abort it (abort ssl cert %s)",
		         open_path, open_path);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "abort ssl cert %s", open_path);
	return cmd_expect(h, cmd, NULL, "aborted", err, errlen);
}

/* "new ssl KIND FILE" (KIND "cert" or "ca-file"), whose reply says created. "already exists"
 * is fine: a previous run created it and then stopped. */
static int txn_new(const struct hapi *h, const char *kind, const char *file, const char *created,
                   char *err, size_t errlen)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "new ssl %s %s", kind, file);
	if (cmd_expect(h, cmd, NULL, created, err, errlen) < 0 && !strstr(err, "already exists"))
		return -1;
	return 0;
}

/* Ends the transaction on FILE that the set commands filled (set: their result, 0 or -1):
 * commits it, or aborts it when a set or the commit failed so that no transaction stays
 * open. err keeps the failure's reason; the abort's own is dropped. */
static int txn_end(const struct hapi *h, const char *kind, const char *file, int set, char *err,
                   size_t errlen)
{
	char cmd[4200], e2[256];

	if (set == 0) {
		snprintf(cmd, sizeof(cmd), "commit ssl %s %s", kind, file);
		if (cmd_expect(h, cmd, NULL, "Success!", err, errlen) == 0)
			return 0;
	}
	snprintf(cmd, sizeof(cmd), "abort ssl %s %s", kind, file);
	(void)cmd_expect(h, cmd, NULL, "aborted", e2, sizeof(e2));
	return -1;
}

int hapi_cert_update(const struct hapi *h, const char *file, const char *pem, int create, char *err,
                     size_t errlen)
{
	char expect[4200];
	char cmd[4200], *clean = hapi_sanitize_payload(pem), *certs = NULL, *key = NULL;
	int set, r = -1;

	if (!clean) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (strlen(file) > 4000) {
		snprintf(err, errlen, "certificate path too long");
		goto out;
	}
	if (clear_transaction(h, file, err, errlen) < 0)
		goto out;
	/* The reply must name our file: anything else means another transaction took it. */
	snprintf(expect, sizeof(expect), "for certificate %s", file);
	if (create && txn_new(h, "cert", file, "New empty certificate store", err, errlen) < 0)
		goto out;
	snprintf(cmd, sizeof(cmd), "set ssl cert %s", file);
	if (strlen(clean) <= HAPI_MAX_PAYLOAD) {
		set = cmd_expect(h, cmd, clean, expect, err, errlen);
	} else {
		/* Too large for one buffer: certificates first, then the key alone. */
		if (split_key(clean, &certs, &key) < 0 || strlen(certs) > HAPI_MAX_PAYLOAD ||
		    strlen(key) > HAPI_MAX_PAYLOAD) {
			snprintf(err, errlen,
			         "certificate bundle too large for HAProxy's runtime API buffer "
			         "(raise tune.bufsize)");
			goto out;
		}
		set = cmd_expect(h, cmd, certs, expect, err, errlen);
		if (set == 0) {
			snprintf(cmd, sizeof(cmd), "set ssl cert %s.key", file);
			set = cmd_expect(h, cmd, key, expect, err, errlen);
		}
	}
	r = txn_end(h, "cert", file, set, err, errlen);
out:
	if (key)
		memset(key, 0, strlen(key));
	memset(clean, 0, strlen(clean));
	free(certs);
	free(key);
	free(clean);
	return r;
}

int hapi_cert_serial(const struct hapi *h, const char *file, char *serial, size_t len, char *err,
                     size_t errlen)
{
	char cmd[4200], *reply = NULL, *p;
	size_t n;

	if (strlen(file) > 4000) {
		snprintf(err, errlen, "certificate path too long");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "show ssl cert %s", file);
	if (hapi_cmd(h, cmd, NULL, &reply, err, errlen) < 0)
		return -1;
	p = strstr(reply, "\nSerial: ");
	if (!p) {
		free(reply);
		return 1;
	}
	p += strlen("\nSerial: ");
	n = strcspn(p, "\r\n");
	if (n == 0 || n >= len) {
		snprintf(err, errlen, "unexpected serial in HAProxy's reply");
		free(reply);
		return -1;
	}
	memcpy(serial, p, n);
	serial[n] = '\0';
	free(reply);
	return 0;
}

int hapi_crtlist_add(const struct hapi *h, const char *crtlist, const char *line, char *err,
                     size_t errlen)
{
	char cmd[4200];

	if (strlen(crtlist) > 4000 || strchr(line, '\n')) {
		snprintf(err, errlen, "invalid crt-list name or line");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "add ssl crt-list %s", crtlist);
	return cmd_expect(h, cmd, line, "Success!", err, errlen);
}

int hapi_crtlist_del(const struct hapi *h, const char *crtlist, const char *certfile, char *err,
                     size_t errlen)
{
	char cmd[8300];

	if (strlen(crtlist) > 4000 || strlen(certfile) > 4000) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "del ssl crt-list %s %s", crtlist, certfile);
	return cmd_expect(h, cmd, NULL, "deleted", err, errlen);
}

int hapi_cafile_update(const struct hapi *h, const char *file, const char *pem, int create,
                       char *err, size_t errlen)
{
	char cmd[4200], *clean;
	int set, r = -1;

	if (strlen(file) > 4000) {
		snprintf(err, errlen, "CA file path too long");
		return -1;
	}
	clean = hapi_sanitize_payload(pem);
	if (!clean) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (strlen(clean) > HAPI_MAX_PAYLOAD) {
		/* 2.6 has no "add ssl ca-file" to append in parts (it arrived in 2.7). */
		snprintf(err, errlen,
		         "CA file %s too large for HAProxy's runtime API buffer (raise "
		         "tune.bufsize); the file on disk is current, a reload applies it",
		         file);
		goto out;
	}
	if (create && txn_new(h, "ca-file", file, "New CA file created", err, errlen) < 0)
		goto out;
	snprintf(cmd, sizeof(cmd), "set ssl ca-file %s", file);
	set = cmd_expect(h, cmd, clean, "ransaction", err, errlen);
	r = txn_end(h, "ca-file", file, set, err, errlen);
out:
	free(clean);
	return r;
}

int hapi_map_set(const struct hapi *h, const char *map, const char *key, const char *value,
                 char *err, size_t errlen)
{
	char cmd[8500], *reply = NULL;
	int r = -1;

	if (strlen(map) > 4000 || strlen(key) > 2000 || strlen(value) > 2000 ||
	    strpbrk(key, " \t\n") || strpbrk(value, "\n")) {
		snprintf(err, errlen, "invalid map update");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "set map %s %s %s", map, key, value);
	if (hapi_cmd(h, cmd, NULL, &reply, err, errlen) < 0)
		return -1;
	if (reply[0] == '\0' || strcmp(reply, "\n") == 0) {
		r = 0;
	} else if (strstr(reply, "not found")) {
		free(reply);
		reply = NULL;
		snprintf(cmd, sizeof(cmd), "add map %s %s %s", map, key, value);
		if (hapi_cmd(h, cmd, NULL, &reply, err, errlen) < 0)
			return -1;
		if (reply[0] == '\0' || strcmp(reply, "\n") == 0)
			r = 0;
		else
			snprintf(err, errlen, "add map: %.300s", reply);
	} else {
		snprintf(err, errlen, "set map: %.300s", reply);
	}
	free(reply);
	return r;
}

int hapi_map_del(const struct hapi *h, const char *map, const char *key, char *err, size_t errlen)
{
	char cmd[6100], *reply = NULL;
	int r = -1;

	if (strlen(map) > 4000 || strlen(key) > 2000 || strpbrk(key, " \t\n")) {
		snprintf(err, errlen, "invalid map key");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "del map %s %s", map, key);
	if (hapi_cmd(h, cmd, NULL, &reply, err, errlen) < 0)
		return -1;
	if (reply[0] == '\0' || strcmp(reply, "\n") == 0 || strstr(reply, "not found"))
		r = 0;
	else
		snprintf(err, errlen, "del map: %.300s", reply);
	free(reply);
	return r;
}

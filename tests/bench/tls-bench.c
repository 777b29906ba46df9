/*
 * tls-bench: an HTTP/1.1-over-TLS load generator that presents a client certificate
 * (wrk cannot), for the end-to-end figures of DESIGN §5 (tests/bench/mtls.sh).
 *
 *   tls-bench --connect 127.0.0.1:PORT --sni NAME --ca FILE [--cert FILE --key FILE]
 *             [--mode new|keepalive] [--connections N] [--threads T] [--duration S]
 *             [--warmup S] [--path /]
 *
 * mode new: every request on a new TCP + TLS connection with a full handshake (no session
 * is ever offered: no ticket, no session cache; a resumed handshake counts as an error),
 * `Connection: close`; N such connections are in flight at once per run. The latency is
 * from connect() to the end of the response.
 * mode keepalive: N persistent connections, each sending its next GET as soon as the
 * previous response is complete (no pipelining). The latency is from the request's first
 * byte to the end of its response. A connection the server closes is reopened.
 *
 * Non-blocking sockets, one epoll loop per thread; the SSL_CTX is shared. The server's
 * certificate is verified against --ca and the SNI (SSL_set1_host), as a client would.
 * --cert is a PEM file with the leaf first, then the intermediates the client sends.
 *
 * Output: one key=value line on stdout. requests, rate and the latency quantiles cover
 * the measured window (after --warmup); status and error counts cover the whole run.
 * Errors (failed connects and handshakes, resets and early closes, malformed responses,
 * any status but 2xx) go to stderr (the first few), are counted in errors=, and make the
 * exit status 1. Requests in flight when the run ends are dropped, not counted.
 * Only loopback addresses are accepted: this is a lab tool, not a traffic generator.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "addr.h"

#include "banned.h"

#define MAX_CONNECTIONS 4096
#define MAX_THREADS     64
#define MAX_ERR_PRINTS  10 /* per thread; the rest are only counted */
#define HDR_MAX         16384
#define REQ_MAX         2048

#include "hist.h"

/* ---- run-wide configuration (read-only once the threads start) ---- */

enum mode { M_NEW, M_KEEPALIVE };

struct bench {
	struct addr addr;
	enum mode mode;
	unsigned nconn, nthreads;
	double duration, warmup;
	const char *sni, *ca, *cert, *key, *path;
	SSL_CTX *ctx;
	char req[REQ_MAX];
	size_t req_len;
	uint64_t t_start, t_measure, t_end;
};

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_WRITE, C_READ };
static const char *const state_names[] = {"idle", "connecting", "handshake", "write", "read"};

/* The response parser: status line and headers buffered, the body only counted. */
enum body { B_NONE, B_LENGTH, B_CHUNKED, B_CLOSE };
enum chunk { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER };

struct resp {
	char hdr[HDR_MAX];
	size_t hlen;
	bool hdr_done, done, server_close;
	int status;
	enum body body;
	uint64_t left; /* B_LENGTH: body bytes still expected; B_CHUNKED: of this chunk */
	enum chunk ch;
	bool ch_digits, line_empty;
};

struct worker;

struct conn {
	struct worker *w;
	unsigned id;
	int fd;
	SSL *ssl;
	enum cstate st;
	uint32_t events;
	uint64_t t_connect, t_req;
	size_t woff;
	struct resp r;
};

struct worker {
	const struct bench *b;
	unsigned idx;
	pthread_t thread;
	int ep;
	struct conn *conns;
	unsigned nconns;
	uint64_t requests, total, status_2xx, status_other, hs_errors, io_errors, handshakes;
	unsigned err_printed;
	unsigned failed; /* connections dropped on an error since the loop last looked */
	bool stopping;
	struct hist lat, hs;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t sec_to_ns(double s)
{
	return (uint64_t)(s * 1e9);
}

/* ---- connection lifecycle ---- */

static void conn_close(struct conn *c, bool clean)
{
	if (c->ssl) {
		/* One close_notify, never waited for: the next connection must not wait. */
		if (clean)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd); /* also removes it from the epoll set */
	c->fd = -1;
	c->st = C_IDLE;
	c->events = 0;
}

static int conn_start(struct conn *c);

/* Reopens the slot while the run lasts, after a completed exchange. */
static void conn_next(struct conn *c)
{
	if (!c->w->stopping && now_ns() < c->w->b->t_end)
		conn_start(c);
}

/* Appends OpenSSL's queued errors (or errno) to a message. */
static void ssl_reason(char *buf, size_t len, int sys_errno)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else if (sys_errno)
		snprintf(buf, len, "%s", strerror(sys_errno));
	else
		snprintf(buf, len, "unexpected EOF");
	ERR_clear_error();
}

/* An error: count it in *counter, say it (the first few), drop the connection. The loop
 * reopens it (not here: a server that refuses at once would make this recurse). Returns
 * -1 so that callers can `return conn_fail(...)`. */
__attribute__((format(printf, 3, 4))) static int conn_fail(struct conn *c, uint64_t *counter,
                                                           const char *fmt, ...)
{
	struct worker *w = c->w;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(*counter)++;
	if (w->err_printed < MAX_ERR_PRINTS) {
		w->err_printed++;
		fprintf(stderr, "tls-bench: error: connection %u (%s): %s\n", c->id,
		        state_names[c->st], msg);
	} else if (w->err_printed == MAX_ERR_PRINTS) {
		w->err_printed++;
		fprintf(stderr, "tls-bench: thread %u: further errors are only counted\n", w->idx);
	}
	ERR_clear_error();
	conn_close(c, false);
	w->failed++;
	return -1;
}

static int set_events(struct conn *c, uint32_t want)
{
	struct epoll_event ev = {.events = want, .data.ptr = c};

	if (want == c->events)
		return 0;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return conn_fail(c, &c->w->io_errors, "epoll_ctl: %s", strerror(errno));
	c->events = want;
	return 0;
}

/* After SSL_ERROR_WANT_READ/WRITE: wait for what OpenSSL wants. 0, or -1 on a failure
 * (counted in *counter). */
static int ssl_wait(struct conn *c, int ret, uint64_t *counter, const char *what)
{
	int e = SSL_get_error(c->ssl, ret), saved = errno;
	char why[256];

	if (e == SSL_ERROR_WANT_READ)
		return set_events(c, EPOLLIN);
	if (e == SSL_ERROR_WANT_WRITE)
		return set_events(c, EPOLLOUT);
	if (e == SSL_ERROR_ZERO_RETURN)
		return conn_fail(c, counter, "%s: the server closed the TLS connection", what);
	ssl_reason(why, sizeof(why), e == SSL_ERROR_SYSCALL ? saved : 0);
	return conn_fail(c, counter, "%s: %s", what, why);
}

/* ---- the response ---- */

static void resp_reset(struct resp *r)
{
	r->hlen = 0;
	r->hdr_done = r->done = r->server_close = false;
	r->status = 0;
	r->body = B_NONE;
	r->left = 0;
	r->ch = CH_SIZE;
	r->ch_digits = false;
	r->line_empty = true;
}

/* Case-insensitive: does the header line [p, end) have this name? Returns the value,
 * spaces skipped, or NULL. */
static const char *header_value(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(end - p) <= n || strncasecmp(p, name, n) != 0 || p[n] != ':')
		return NULL;
	p += n + 1;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static bool value_has(const char *v, const char *end, const char *token)
{
	size_t n = strlen(token);

	for (; v && v + n <= end; v++)
		if (strncasecmp(v, token, n) == 0)
			return true;
	return false;
}

/* The status line and headers in r->hdr[0..hlen) (ending with the empty line). */
static const char *parse_head(struct resp *r, enum mode mode)
{
	const char *p = r->hdr, *end = r->hdr + r->hlen, *eol;
	bool has_length = false;

	if (r->hlen < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' ||
	    p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return "not an HTTP/1.x status line";
	r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (!(eol = memchr(p, '\n', (size_t)(end - p))))
		return "no end of the status line";
	for (p = eol + 1; p < end; p = eol + 1) {
		const char *v, *le;

		if (!(eol = memchr(p, '\n', (size_t)(end - p))))
			break;
		le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		if ((v = header_value(p, le, "content-length")) != NULL) {
			char *stop;
			unsigned long long n;

			errno = 0;
			n = strtoull(v, &stop, 10);
			if (errno || stop == v)
				return "bad content-length";
			r->left = n;
			has_length = true;
		} else if ((v = header_value(p, le, "transfer-encoding")) != NULL) {
			if (value_has(v, le, "chunked"))
				r->body = B_CHUNKED;
		} else if ((v = header_value(p, le, "connection")) != NULL) {
			if (value_has(v, le, "close"))
				r->server_close = true;
		}
	}
	if (r->body != B_CHUNKED)
		r->body = has_length ? B_LENGTH : B_CLOSE;
	if (r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200))
		r->body = B_NONE; /* RFC 9112 §6.3: no body whatever the headers say */
	if (r->body == B_CLOSE) {
		if (mode == M_KEEPALIVE && !r->server_close)
			return "a response without length on a keep-alive connection";
		r->server_close = true;
	}
	if (r->body == B_NONE || (r->body == B_LENGTH && r->left == 0))
		r->done = true;
	return NULL;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* RFC 9112 §7.1, counted and dropped. */
static const char *chunked(struct resp *r, const uint8_t *p, size_t n, size_t *used)
{
	size_t i = 0;

	while (i < n && !r->done) {
		char ch = (char)p[i];
		int h;

		switch (r->ch) {
		case CH_SIZE:
			if ((h = hexval(ch)) >= 0) {
				if (r->left > (UINT64_MAX >> 4))
					return "chunk size overflow";
				r->left = r->left * 16 + (uint64_t)h;
				r->ch_digits = true;
			} else if (!r->ch_digits) {
				return "bad chunk size";
			} else if (ch == '\r') {
				r->ch = CH_SIZE_LF;
			} else {
				r->ch = CH_EXT;
			}
			i++;
			break;
		case CH_EXT:
			if (ch == '\r')
				r->ch = CH_SIZE_LF;
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return "bad chunk size line";
			i++;
			r->ch_digits = false;
			if (r->left == 0) {
				r->ch = CH_TRAILER;
				r->line_empty = true;
			} else {
				r->ch = CH_DATA;
			}
			break;
		case CH_DATA: {
			size_t take = n - i < r->left ? n - i : (size_t)r->left;
			i += take;
			r->left -= take;
			if (r->left == 0)
				r->ch = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (ch != '\r')
				return "chunk without CRLF";
			r->ch = CH_DATA_LF;
			i++;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				return "chunk without CRLF";
			r->ch = CH_SIZE;
			i++;
			break;
		case CH_TRAILER:
			i++;
			if (ch == '\n') {
				if (r->line_empty)
					r->done = true;
				r->line_empty = true;
			} else if (ch != '\r') {
				r->line_empty = false;
			}
			break;
		}
	}
	*used = i;
	return NULL;
}

/* Feeds n received bytes; NULL, or what is wrong. Bytes after the end of the response
 * are an error: we never pipeline. */
static const char *resp_feed(struct resp *r, const uint8_t *p, size_t n, enum mode mode)
{
	size_t used;
	const char *why;

	if (!r->hdr_done) {
		size_t i = 0;

		while (i < n && !r->hdr_done) {
			if (r->hlen >= HDR_MAX)
				return "response headers over 16 KiB";
			r->hdr[r->hlen++] = (char)p[i++];
			if (r->hlen >= 4 && memcmp(r->hdr + r->hlen - 4, "\r\n\r\n", 4) == 0)
				r->hdr_done = true;
		}
		if (!r->hdr_done)
			return NULL;
		if ((why = parse_head(r, mode)) != NULL)
			return why;
		p += i;
		n -= i;
	}
	if (r->done)
		return n ? "bytes after the response" : NULL;
	switch (r->body) {
	case B_LENGTH:
		if (n > r->left)
			return "bytes after the response";
		r->left -= n;
		r->done = r->left == 0;
		return NULL;
	case B_CHUNKED:
		if ((why = chunked(r, p, n, &used)) != NULL)
			return why;
		return used < n ? "bytes after the response" : NULL;
	default: /* B_CLOSE: the end is the server's close */
		return NULL;
	}
}

/* ---- the request/response cycle ---- */

static int drive(struct conn *c);

static void response_done(struct conn *c)
{
	struct worker *w = c->w;
	const struct bench *b = w->b;
	uint64_t now = now_ns();
	uint64_t t0 = b->mode == M_NEW ? c->t_connect : c->t_req;
	bool ok = c->r.status >= 200 && c->r.status < 300;

	w->total++;
	if (ok)
		w->status_2xx++;
	else
		w->status_other++;
	if (!ok && w->err_printed < MAX_ERR_PRINTS) {
		w->err_printed++;
		fprintf(stderr, "tls-bench: error: connection %u: HTTP status %d\n", c->id,
		        c->r.status);
	}
	if (t0 >= b->t_measure && now <= b->t_end) {
		w->requests++;
		hist_add(&w->lat, now - t0);
	}
	if (b->mode == M_NEW || c->r.server_close) {
		conn_close(c, true);
		conn_next(c);
		return;
	}
	if (now >= b->t_end)
		return;
	c->st = C_WRITE;
	c->woff = 0;
	c->t_req = now;
	drive(c);
}

/* Runs the state machine as far as the socket allows. 0, or -1 when the connection
 * failed (the loop reopens it). */
static int drive(struct conn *c)
{
	struct worker *w = c->w;
	const struct bench *b = w->b;
	uint8_t buf[16384];
	int r;

	for (;;) {
		switch (c->st) {
		case C_HANDSHAKE:
			ERR_clear_error();
			errno = 0;
			r = SSL_do_handshake(c->ssl);
			if (r != 1)
				return ssl_wait(c, r, &w->hs_errors, "handshake");
			if (SSL_session_reused(c->ssl))
				return conn_fail(c, &w->hs_errors,
				                 "the session was resumed: not a full handshake");
			w->handshakes++;
			hist_add(&w->hs, now_ns() - c->t_connect);
			c->st = C_WRITE;
			c->woff = 0;
			c->t_req = now_ns();
			break;
		case C_WRITE:
			ERR_clear_error();
			errno = 0;
			r = SSL_write(c->ssl, b->req + c->woff, (int)(b->req_len - c->woff));
			if (r <= 0)
				return ssl_wait(c, r, &w->io_errors, "write");
			c->woff += (size_t)r;
			if (c->woff == b->req_len) {
				resp_reset(&c->r);
				c->st = C_READ;
			}
			break;
		case C_READ: {
			const char *why;
			bool eof;
			int e;

			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, buf, sizeof(buf));
			if (r > 0) {
				if ((why = resp_feed(&c->r, buf, (size_t)r, b->mode)) != NULL)
					return conn_fail(c, &w->io_errors, "response: %s", why);
				if (c->r.done) {
					response_done(c);
					return 0;
				}
				break;
			}
			e = SSL_get_error(c->ssl, r);
			/* A close_notify, or a bare FIN (SSL_OP_IGNORE_UNEXPECTED_EOF makes it
			 * the same); a reset stays an error. */
			eof = e == SSL_ERROR_ZERO_RETURN ||
			      (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0);
			if (eof && c->r.hdr_done && c->r.body == B_CLOSE) {
				c->r.done = true; /* the close ends this response */
				response_done(c);
				return 0;
			}
			if (eof)
				return conn_fail(c, &w->io_errors,
				                 "the server closed the connection before the end "
				                 "of the response (%zu header bytes read)",
				                 c->r.hlen);
			return ssl_wait(c, r, &w->io_errors, "read");
		}
		default:
			return 0;
		}
	}
}

static void on_connected(struct conn *c)
{
	struct worker *w = c->w;
	const struct bench *b = w->b;
	int err = 0;
	socklen_t l = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		err = errno;
	if (err) {
		conn_fail(c, &w->io_errors, "connect: %s", strerror(err));
		return;
	}
	if (!(c->ssl = SSL_new(b->ctx)) || !SSL_set_fd(c->ssl, c->fd) ||
	    !SSL_set_tlsext_host_name(c->ssl, b->sni) || !SSL_set1_host(c->ssl, b->sni)) {
		conn_fail(c, &w->hs_errors, "cannot set up the TLS connection");
		return;
	}
	SSL_set_connect_state(c->ssl);
	c->st = C_HANDSHAKE;
	drive(c);
}

static void on_event(struct conn *c, uint32_t ev)
{
	if (c->st == C_IDLE)
		return;
	if (c->st == C_CONNECTING) {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			on_connected(c);
		return;
	}
	drive(c);
}

static int conn_start(struct conn *c)
{
	const struct bench *b = c->w->b;
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int one = 1;

	c->st = C_CONNECTING;
	c->fd = socket(b->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return conn_fail(c, &c->w->io_errors, "socket: %s", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->t_connect = now_ns();
	if (connect(c->fd, (const struct sockaddr *)&b->addr.ss, b->addr.len) < 0 &&
	    errno != EINPROGRESS)
		return conn_fail(c, &c->w->io_errors, "connect: %s", strerror(errno));
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return conn_fail(c, &c->w->io_errors, "epoll_ctl: %s", strerror(errno));
	c->events = ev.events;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct bench *b = w->b;
	struct epoll_event evs[256];

	for (unsigned i = 0; i < w->nconns; i++)
		conn_start(&w->conns[i]);
	for (;;) {
		uint64_t now = now_ns(), until;
		int n;

		if (now >= b->t_end)
			break;
		until = b->t_end - now;
		if (until > 1000000000ull)
			until = 1000000000ull;
		/* Connections dropped on an error are reopened here, at most every 10 ms
		 * when nothing else happens: a refusing server must not make us spin. */
		if (w->failed > 0 && until > 10000000ull)
			until = 10000000ull;
		n = epoll_wait(w->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])),
		               (int)((until + 999999) / 1000000));
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "tls-bench: epoll_wait: %s\n", strerror(errno));
			w->io_errors++;
			break;
		}
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		if (w->failed > 0) {
			w->failed = 0;
			for (unsigned i = 0; i < w->nconns; i++)
				if (w->conns[i].st == C_IDLE)
					conn_next(&w->conns[i]);
		}
	}
	/* Whatever is in flight now is dropped: not counted, not an error. */
	w->stopping = true;
	for (unsigned i = 0; i < w->nconns; i++)
		conn_close(&w->conns[i], false);
	return NULL;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tls-bench --connect HOST:PORT --sni NAME --ca FILE\n"
	        "                 [--cert FILE --key FILE] [--mode new|keepalive]\n"
	        "                 [--connections N] [--threads T] [--duration S] [--warmup S]\n"
	        "                 [--path /]\n"
	        "\n"
	        "HTTP/1.1 GETs over TLS with a client certificate, on a loopback address.\n"
	        "Prints one key=value line; exits 1 if any error was seen.\n"
	        "\n"
	        "  -c, --connect HOST:PORT  the server (127.0.0.0/8 or ::1 only)\n"
	        "  -s, --sni NAME           SNI, Host header and the name the server certificate\n"
	        "                           must carry\n"
	        "      --ca FILE            CA certificates (PEM) that verify the server\n"
	        "      --cert FILE          client certificate (PEM): the leaf, then the chain\n"
	        "      --key FILE           its private key (PEM)\n"
	        "  -m, --mode MODE          new: a full handshake per request (Connection:\n"
	        "                           close); keepalive: persistent connections (default)\n"
	        "  -n, --connections N      connections in flight, 1..%u (default 8)\n"
	        "  -t, --threads T          client threads, one epoll loop each (default 1)\n"
	        "  -d, --duration SECONDS   measured time (default 5)\n"
	        "  -w, --warmup SECONDS     unmeasured time before it (default 1)\n"
	        "  -p, --path PATH          the request target (default /)\n"
	        "  -h, --help               this text\n",
	        MAX_CONNECTIONS);
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_seconds(const char *s, double min, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min) || v > 86400.0)
		return -1;
	*out = v;
	return 0;
}

static bool is_loopback(const struct addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

/* A printable token without spaces or control characters: it goes into the request. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return false;
	return true;
}

static int parse_args(int argc, char **argv, struct bench *b)
{
	static const struct option opts[] = {
	    {"connect", required_argument, NULL, 'c'},
	    {"sni", required_argument, NULL, 's'},
	    {"ca", required_argument, NULL, 'A'},
	    {"cert", required_argument, NULL, 'C'},
	    {"key", required_argument, NULL, 'K'},
	    {"mode", required_argument, NULL, 'm'},
	    {"connections", required_argument, NULL, 'n'},
	    {"threads", required_argument, NULL, 't'},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"path", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *connect_to = NULL;
	char err[256];
	int c, li = -1;

	while ((c = getopt_long(argc, argv, "c:s:m:n:t:d:w:p:h", opts, &li)) != -1) {
		switch (c) {
		case 'c':
			connect_to = optarg;
			break;
		case 's':
			b->sni = optarg;
			break;
		case 'A':
			b->ca = optarg;
			break;
		case 'C':
			b->cert = optarg;
			break;
		case 'K':
			b->key = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "new") == 0)
				b->mode = M_NEW;
			else if (strcmp(optarg, "keepalive") == 0)
				b->mode = M_KEEPALIVE;
			else
				goto bad;
			break;
		case 'n':
			if (parse_uint(optarg, 1, MAX_CONNECTIONS, &b->nconn) < 0)
				goto bad;
			break;
		case 't':
			if (parse_uint(optarg, 1, MAX_THREADS, &b->nthreads) < 0)
				goto bad;
			break;
		case 'd':
			if (parse_seconds(optarg, 0.001, &b->duration) < 0)
				goto bad;
			break;
		case 'w':
			if (parse_seconds(optarg, 0.0, &b->warmup) < 0)
				goto bad;
			break;
		case 'p':
			if (optarg[0] != '/' || !is_token(optarg))
				goto bad;
			b->path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		li = -1;
	}
	if (optind < argc || !connect_to || !b->sni || !b->ca) {
		fprintf(stderr, "tls-bench: %s\n",
		        optind < argc ? "unexpected argument"
		                      : "--connect, --sni and --ca are required");
		usage(stderr);
		return -1;
	}
	if (!is_token(b->sni) || strlen(b->sni) > 253) {
		fprintf(stderr, "tls-bench: --sni: not a host name\n");
		return -1;
	}
	if (!b->cert != !b->key) {
		fprintf(stderr, "tls-bench: --cert and --key go together\n");
		return -1;
	}
	if (addr_parse(connect_to, &b->addr, err, sizeof(err)) < 0) {
		fprintf(stderr, "tls-bench: --connect: %s\n", err);
		return -1;
	}
	if (!is_loopback(&b->addr)) {
		fprintf(stderr,
		        "tls-bench: --connect %s: only loopback TCP addresses (127.0.0.0/8, ::1)\n",
		        connect_to);
		return -1;
	}
	if (b->nthreads > b->nconn)
		b->nthreads = b->nconn;
	return 0;
bad:
	if (li >= 0)
		fprintf(stderr, "tls-bench: bad value for --%s: \"%s\"\n", opts[li].name, optarg);
	else
		fprintf(stderr, "tls-bench: bad value for -%c: \"%s\"\n", c, optarg);
	return -1;
}

/* The client context: the server is verified, no session is ever kept or offered. */
static SSL_CTX *make_ctx(const struct bench *b)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char why[256];

	if (!ctx)
		goto err;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, b->ca, NULL) != 1) {
		ssl_reason(why, sizeof(why), 0);
		fprintf(stderr, "tls-bench: --ca %s: %s\n", b->ca, why);
		goto fail;
	}
	if (b->cert && (SSL_CTX_use_certificate_chain_file(ctx, b->cert) != 1 ||
	                SSL_CTX_use_PrivateKey_file(ctx, b->key, SSL_FILETYPE_PEM) != 1 ||
	                SSL_CTX_check_private_key(ctx) != 1)) {
		ssl_reason(why, sizeof(why), 0);
		fprintf(stderr, "tls-bench: --cert %s / --key %s: %s\n", b->cert, b->key, why);
		goto fail;
	}
	return ctx;
err:
	fprintf(stderr, "tls-bench: cannot create the TLS context\n");
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench b = {
	    .mode = M_KEEPALIVE,
	    .nconn = 8,
	    .nthreads = 1,
	    .duration = 5.0,
	    .warmup = 1.0,
	    .path = "/",
	};
	struct worker *workers = NULL;
	struct conn *conns = NULL;
	struct hist *lat = NULL, *hs = NULL;
	uint64_t requests = 0, total = 0, s2xx = 0, sother = 0, hs_err = 0, io_err = 0,
	         handshakes = 0, errors;
	unsigned started = 0;
	double window;
	int n, ret = 2;

	signal(SIGPIPE, SIG_IGN);
	if (parse_args(argc, argv, &b) < 0)
		goto out;
	ret = 1;
	if (!(b.ctx = make_ctx(&b)))
		goto out;
	n = snprintf(
	    b.req, sizeof(b.req),
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tls-bench\r\nAccept: */*\r\n%s\r\n", b.path,
	    b.sni, b.mode == M_NEW ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(b.req)) {
		fprintf(stderr, "tls-bench: the request is too long\n");
		goto out;
	}
	b.req_len = (size_t)n;

	workers = calloc(b.nthreads, sizeof(*workers));
	conns = calloc(b.nconn, sizeof(*conns));
	lat = calloc(1, sizeof(*lat));
	hs = calloc(1, sizeof(*hs));
	if (!workers || !conns || !lat || !hs) {
		fprintf(stderr, "tls-bench: out of memory\n");
		goto out;
	}
	for (unsigned t = 0; t < b.nthreads; t++)
		workers[t].ep = -1;
	for (unsigned t = 0, next = 0; t < b.nthreads; t++) {
		struct worker *w = &workers[t];
		unsigned k = b.nconn / b.nthreads + (t < b.nconn % b.nthreads);

		w->b = &b;
		w->idx = t;
		w->conns = conns + next;
		w->nconns = k;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep < 0) {
			fprintf(stderr, "tls-bench: epoll_create1: %s\n", strerror(errno));
			goto out;
		}
		for (unsigned i = 0; i < k; i++) {
			conns[next + i].w = w;
			conns[next + i].id = next + i;
			conns[next + i].fd = -1;
		}
		next += k;
	}

	b.t_start = now_ns();
	b.t_measure = b.t_start + sec_to_ns(b.warmup);
	b.t_end = b.t_measure + sec_to_ns(b.duration);
	for (; started < b.nthreads; started++) {
		if (pthread_create(&workers[started].thread, NULL, worker_main,
		                   &workers[started]) != 0) {
			fprintf(stderr, "tls-bench: pthread_create failed\n");
			io_err++;
			break;
		}
	}
	for (unsigned t = 0; t < started; t++) {
		struct worker *w = &workers[t];

		pthread_join(w->thread, NULL);
		requests += w->requests;
		total += w->total;
		s2xx += w->status_2xx;
		sother += w->status_other;
		hs_err += w->hs_errors;
		io_err += w->io_errors;
		handshakes += w->handshakes;
		hist_merge(lat, &w->lat);
		hist_merge(hs, &w->hs);
	}
	errors = sother + hs_err + io_err;
	window = (double)(b.t_end - b.t_measure) / 1e9;
	printf("mode=%s connections=%u threads=%u duration_s=%.3f requests=%" PRIu64
	       " rate=%.0f/s mean_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f"
	       " handshakes=%" PRIu64 " hs_p50_us=%.1f total_requests=%" PRIu64
	       " status_2xx=%" PRIu64 " status_other=%" PRIu64 " hs_errors=%" PRIu64
	       " io_errors=%" PRIu64 " errors=%" PRIu64 "\n",
	       b.mode == M_NEW ? "new" : "keepalive", b.nconn, b.nthreads, window, requests,
	       (double)requests / window, lat->count ? lat->sum / (double)lat->count / 1e3 : 0.0,
	       (double)hist_quantile(lat, 0.50) / 1e3, (double)hist_quantile(lat, 0.90) / 1e3,
	       (double)hist_quantile(lat, 0.99) / 1e3, (double)lat->max / 1e3, handshakes,
	       (double)hist_quantile(hs, 0.50) / 1e3, total, s2xx, sother, hs_err, io_err, errors);
	fflush(stdout);
	if (errors > 0)
		fprintf(stderr, "tls-bench: %" PRIu64 " error(s)\n", errors);
	ret = errors > 0 ? 1 : 0;
out:
	if (workers)
		for (unsigned t = 0; t < b.nthreads; t++)
			if (workers[t].ep >= 0)
				close(workers[t].ep);
	free(workers);
	free(conns);
	free(lat);
	free(hs);
	SSL_CTX_free(b.ctx);
	return ret;
}

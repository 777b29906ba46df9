/*
 * spop-bench: a SPOP load generator that plays HAProxy against spoa-mtls
 * (research/spop.md §6.3: throughput and NOTIFY→ACK latency by connections × depth).
 *
 *   spop-bench --connect HOST:PORT --connections N --depth K --duration SECONDS
 *              [--cert LEAF.der [--chain CHAIN.der]] [--sni NAME] [--warmup SECONDS]
 *              [--threads T]
 *
 * It opens N connections, says HAPROXY-HELLO (SPOP 2.0, max-frame-size 16380, capabilities
 * "pipelining", as HAProxy 2.6 does minus "async"), then keeps K NOTIFYs in flight on each:
 * message "mtls" with the DESIGN §3 arguments, the leaf and chain DER taken from the files.
 * Each ACK is matched to its NOTIFY by (sid, fid) and validated (type 103, FIN, known ids,
 * well-formed actions including set-var sess.seen=true). After the run every connection is
 * drained and closed with a HAPROXY-DISCONNECT, whose AGENT-DISCONNECT must say status 0.
 *
 * Output: one key=value line on stdout. Protocol errors (a DISCONNECT during the run, a bad
 * or unknown ACK, an unexpected close, an unanswered NOTIFY at the drain deadline) go to
 * stderr, are counted in errors=, and make the exit status 1.
 *
 * Latencies are kept in a log-linear histogram (HdrHistogram's layout: 64 linear
 * sub-buckets per power of two, < 1.6 % error) of fixed size, per thread, merged at the end.
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "spop.h"

#include "banned.h"

#define OUR_FRAME_SIZE  SPOP_MAX_FRAME_SIZE /* what HAProxy 2.6 announces */
#define MAX_DEPTH       1024
#define MAX_CONNECTIONS 4096
#define MAX_THREADS     64
#define MAX_DER_FILE    (64 * 1024)
#define DRAIN_SECONDS   5.0 /* after --duration, how long in-flight NOTIFYs may take */
#define MAX_ERR_PRINTS  10  /* per thread; the rest are only counted */
#define OBUF_LIMIT      (1024ull * 1024 * 1024)
#define FRONTEND_NAME   "fe_https"

#include "hist.h"

/* ---- run-wide configuration (read-only once the threads start) ---- */

struct bench {
	struct addr addr;
	unsigned nconn, depth, nthreads;
	double duration, warmup;
	const char *sni;
	uint8_t *cert, *chain;
	size_t cert_len, chain_len;
	unsigned slot_bits;
	size_t notify_max; /* the largest NOTIFY frame, length prefix included */
	char engine_id[40];
	uint64_t t_start, t_measure, t_end, t_deadline;
};

enum cstate { C_CONNECTING, C_HELLO, C_READY, C_CLOSING, C_DONE };
static const char *const state_names[] = {"connecting", "hello", "ready", "closing", "done"};

struct slot {
	uint64_t sid, fid, t_sent;
	bool busy;
};

struct worker;

struct conn {
	struct worker *w;
	unsigned id;
	int fd;
	enum cstate st;
	uint32_t events; /* what epoll watches now */
	uint32_t frame_size;
	uint64_t t_connect, seq;
	uint8_t *ibuf;
	size_t ilen, icap;
	uint8_t *obuf;
	size_t ooff, olen, ocap;
	struct slot *slots;
	unsigned *free_slots, nfree;
};

struct worker {
	const struct bench *b;
	unsigned idx;
	pthread_t thread;
	int ep;
	struct conn *conns;
	unsigned nconns, nopen;
	uint64_t sent, acked, errors;
	unsigned err_printed;
	struct hist lat, hello;
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

static void conn_close(struct conn *c)
{
	if (c->st == C_DONE)
		return;
	if (c->fd >= 0)
		close(c->fd); /* also removes it from the epoll set */
	c->fd = -1;
	c->st = C_DONE;
	c->w->nopen--;
}

/* A protocol or I/O error: count it, say it (the first few), drop the connection.
 * Returns -1 so that callers can `return conn_fail(...)`. */
__attribute__((format(printf, 2, 3))) static int conn_fail(struct conn *c, const char *fmt, ...)
{
	struct worker *w = c->w;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->errors++;
	if (w->err_printed < MAX_ERR_PRINTS) {
		w->err_printed++;
		fprintf(stderr, "spop-bench: error: connection %u (%s): %s\n", c->id,
		        state_names[c->st], msg);
	} else if (w->err_printed == MAX_ERR_PRINTS) {
		w->err_printed++;
		fprintf(stderr, "spop-bench: thread %u: further errors are only counted\n", w->idx);
	}
	conn_close(c);
	return -1;
}

static int set_events(struct conn *c, uint32_t want)
{
	struct epoll_event ev = {.events = want, .data.ptr = c};

	if (want == c->events)
		return 0;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return conn_fail(c, "epoll_ctl: %s", strerror(errno));
	c->events = want;
	return 0;
}

/* Sends what is queued. Frames were appended whole; the kernel may take part of one, the
 * rest waits for EPOLLOUT. 0, or -1 when the connection failed. */
static int flush(struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = send(c->fd, c->obuf + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
		if (n > 0) {
			c->ooff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return conn_fail(c, "send: %s", n < 0 ? strerror(errno) : "wrote nothing");
	}
	if (c->ooff == c->olen)
		c->ooff = c->olen = 0;
	return set_events(c, EPOLLIN | (c->olen > c->ooff ? EPOLLOUT : 0));
}

/* Room for `need` more bytes at the end of the output buffer. */
static int out_reserve(struct conn *c, size_t need)
{
	if (c->ocap - c->olen < need && c->ooff > 0) {
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	if (c->ocap - c->olen < need)
		return conn_fail(c, "output buffer full (%zu of %zu bytes queued)", c->olen,
		                 c->ocap);
	return 0;
}

/* ---- frames we send ---- */

static struct spop_value null_value(void)
{
	return (struct spop_value){.type = SPOP_T_NULL};
}

/* The NOTIFY HAProxy sends for DESIGN §3's `mtls` message. Fetches that fail (no SNI, no
 * certificate, a leaf without chain) are sent as NULL, as HAProxy encodes them. */
static int put_notify(struct spop_writer *wr, const struct bench *b, uint64_t sid, uint64_t fid,
                      uint32_t frame_size)
{
	size_t start = spop_frame_begin(wr, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, sid, fid);
	struct spop_value v;

	spop_put_message(wr, "mtls", 7);
	v = b->sni[0] ? spop_str(b->sni) : null_value();
	spop_put_kv(wr, "sni", &v);
	v = spop_bool(b->cert != NULL);
	spop_put_kv(wr, "used", &v);
	v = b->cert ? spop_bin(b->cert, b->cert_len) : null_value();
	spop_put_kv(wr, "cert", &v);
	v = b->chain ? spop_bin(b->chain, b->chain_len) : null_value();
	spop_put_kv(wr, "chain", &v);
	v = spop_bool(false);
	spop_put_kv(wr, "resumed", &v);
	v = spop_int(0); /* X509_V_OK */
	spop_put_kv(wr, "hverify", &v);
	v = spop_str(FRONTEND_NAME);
	spop_put_kv(wr, "fe", &v);
	return spop_frame_end(wr, start, frame_size);
}

static int send_notify(struct conn *c, unsigned slot)
{
	const struct bench *b = c->w->b;
	struct slot *s = &c->slots[slot];
	struct spop_writer wr;
	uint64_t seq;

	if (out_reserve(c, b->notify_max) < 0)
		return -1;
	/* The slot index in the low bits of the sid makes the ACK lookup O(1); the rest of
	 * the sid and the fid grow, so their varints take every length as a run goes on. */
	seq = c->seq++;
	s->sid = (seq << b->slot_bits) | slot;
	s->fid = 2 * seq + 1;
	spop_writer_init(&wr, c->obuf + c->olen, c->ocap - c->olen);
	if (put_notify(&wr, b, s->sid, s->fid, c->frame_size) < 0)
		return conn_fail(c,
		                 "a NOTIFY of about %zu bytes does not fit the negotiated "
		                 "max-frame-size %u",
		                 b->notify_max, c->frame_size);
	c->olen += wr.len;
	s->t_sent = now_ns();
	s->busy = true;
	c->w->sent++;
	return 0;
}

/* Fills every free slot while the run lasts. */
static int fill(struct conn *c, uint64_t now)
{
	if (now >= c->w->b->t_end)
		return 0;
	while (c->nfree > 0) {
		if (send_notify(c, c->free_slots[c->nfree - 1]) < 0)
			return -1;
		c->nfree--;
	}
	return 0;
}

static int send_disconnect(struct conn *c)
{
	struct spop_writer wr;

	if (out_reserve(c, 512) < 0)
		return -1;
	spop_writer_init(&wr, c->obuf + c->olen, c->ocap - c->olen);
	if (spop_disconnect_encode(&wr, SPOP_FRAME_HAPROXY_DISCONNECT, SPOP_ST_NORMAL,
	                           "benchmark done") < 0)
		return conn_fail(c, "cannot encode HAPROXY-DISCONNECT");
	c->olen += wr.len;
	c->st = C_CLOSING;
	return 0;
}

/* ---- frames we receive ---- */

/* Appends a printable rendering of b to out (for error messages). */
static const char *printable(char *out, size_t outlen, struct spop_bytes b)
{
	size_t o = 0;

	for (size_t i = 0; i < b.len && o + 5 < outlen; i++) {
		uint8_t ch = b.p[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
	}
	out[o] = '\0';
	return out;
}

/* SPOE.txt §3.2.5: version, max-frame-size and capabilities are required. */
static int on_agent_hello(struct conn *c, const struct spop_frame *f, uint64_t now)
{
	const struct bench *b = c->w->b;
	const uint8_t *p = f->payload.p;
	size_t len = f->payload.len, o = 0;
	bool has_version = false, has_size = false, has_caps = false, pipelining = false;
	char buf[128];

	if (c->st != C_HELLO)
		return conn_fail(c, "AGENT-HELLO received after the handshake");
	while (o < len) {
		struct spop_bytes k;
		struct spop_value v;
		uint64_t u;
		ssize_t r = spop_kv_decode(p + o, len - o, &k, &v);

		if (r < 0)
			return conn_fail(c, "malformed AGENT-HELLO at byte %zu", o);
		o += (size_t)r;
		if (spop_bytes_eq(k, "version")) {
			if (v.type != SPOP_T_STRING || !spop_bytes_eq(v.s, SPOP_VERSION))
				return conn_fail(
				    c, "AGENT-HELLO version \"%s\", we offered " SPOP_VERSION,
				    v.type == SPOP_T_STRING ? printable(buf, sizeof(buf), v.s)
				                            : "(not a string)");
			has_version = true;
		} else if (spop_bytes_eq(k, "max-frame-size")) {
			if (spop_value_uint(&v, &u) < 0 || u < SPOP_MIN_FRAME_SIZE ||
			    u > OUR_FRAME_SIZE)
				return conn_fail(c, "AGENT-HELLO max-frame-size outside %u..%u",
				                 SPOP_MIN_FRAME_SIZE, OUR_FRAME_SIZE);
			c->frame_size = (uint32_t)u;
			has_size = true;
		} else if (spop_bytes_eq(k, "capabilities")) {
			if (v.type != SPOP_T_STRING)
				return conn_fail(c, "AGENT-HELLO capabilities is not a string");
			pipelining = spop_list_has(v.s, "pipelining");
			has_caps = true;
		}
	}
	if (!has_version || !has_size || !has_caps)
		return conn_fail(c, "AGENT-HELLO without %s",
		                 !has_version ? "version"
		                 : !has_size  ? "max-frame-size"
		                              : "capabilities");
	if (b->depth > 1 && !pipelining)
		return conn_fail(c, "the agent did not agree to pipelining; depth %u needs it",
		                 b->depth);
	hist_add(&c->w->hello, now - c->t_connect);
	c->st = C_READY;
	return fill(c, now);
}

/* SPOE.txt §3.4: LIST-OF-ACTIONS; each action is <type:1><nb-args:1><args...>, set-var
 * has scope, name, value, unset-var scope and name. At least one action (an empty ACK
 * stalls HAProxy 3.1.x, research/spop.md §0.9), and sess.seen=true (DESIGN §3). */
static const char *check_actions(const uint8_t *p, size_t len)
{
	size_t o = 0;
	unsigned n = 0;
	bool seen = false;

	while (o < len) {
		struct spop_bytes name;
		struct spop_value v;
		uint8_t type, nargs, scope;
		ssize_t r;

		if (len - o < 3)
			return "truncated action";
		type = p[o];
		nargs = p[o + 1];
		scope = p[o + 2];
		o += 3;
		if (type != SPOP_ACT_SET_VAR && type != SPOP_ACT_UNSET_VAR)
			return "unknown action type";
		if (nargs != (type == SPOP_ACT_SET_VAR ? 3 : 2))
			return "wrong number of action arguments";
		if (scope > SPOP_SCOPE_RES)
			return "unknown variable scope";
		r = spop_string_decode(p + o, len - o, &name);
		if (r < 0)
			return "malformed variable name";
		o += (size_t)r;
		if (name.len == 0)
			return "empty variable name";
		if (type == SPOP_ACT_SET_VAR) {
			r = spop_value_decode(p + o, len - o, &v);
			if (r < 0)
				return "malformed variable value";
			o += (size_t)r;
			if (scope == SPOP_SCOPE_SESS && spop_bytes_eq(name, "seen") &&
			    v.type == SPOP_T_BOOL && v.b)
				seen = true;
		}
		n++;
	}
	if (n == 0)
		return "no action (HAProxy 3.1.x stalls on an empty ACK)";
	if (!seen)
		return "no set-var sess.seen=true";
	return NULL;
}

static int on_ack(struct conn *c, const struct spop_frame *f, uint64_t now)
{
	const struct bench *b = c->w->b;
	uint64_t mask = ((uint64_t)1 << b->slot_bits) - 1;
	unsigned slot = (unsigned)(f->sid & mask);
	struct slot *s;
	const char *why;

	if (c->st != C_READY)
		return conn_fail(c, "ACK sid=%" PRIu64 " fid=%" PRIu64 " with nothing in flight",
		                 f->sid, f->fid);
	s = slot < b->depth ? &c->slots[slot] : NULL;
	if (!s || !s->busy || s->sid != f->sid || s->fid != f->fid)
		return conn_fail(c, "ACK for unknown sid=%" PRIu64 " fid=%" PRIu64, f->sid, f->fid);
	why = check_actions(f->payload.p, f->payload.len);
	if (why)
		return conn_fail(c, "bad ACK sid=%" PRIu64 " fid=%" PRIu64 ": %s", f->sid, f->fid,
		                 why);
	if (now >= b->t_measure && now < b->t_end)
		hist_add(&c->w->lat, now - s->t_sent);
	c->w->acked++;
	s->busy = false;
	c->free_slots[c->nfree++] = slot;
	return fill(c, now);
}

static int on_agent_disconnect(struct conn *c, const struct spop_frame *f)
{
	struct spop_disconnect d;
	char msg[SPOP_MAX_DISCO_MSG * 4 + 8];

	if (spop_disconnect_decode(f->payload.p, f->payload.len, &d) < 0 || !d.has_status)
		return conn_fail(c, "malformed AGENT-DISCONNECT");
	if (c->st == C_CLOSING && d.status == SPOP_ST_NORMAL) {
		conn_close(c); /* SPOE.txt §3.2.8: the exchange is over, HAProxy closes */
		return 0;
	}
	return conn_fail(c, "AGENT-DISCONNECT status=%u (%s) message=\"%s\"", d.status,
	                 spop_status_text(d.status), printable(msg, sizeof(msg), d.message));
}

static int on_frame(struct conn *c, const uint8_t *body, uint32_t flen, uint64_t now)
{
	struct spop_frame f;

	if (spop_frame_decode(body, flen, &f) < 0)
		return conn_fail(c, "undecodable frame header (%u bytes)", flen);
	/* We never announce fragmentation: every frame must be whole (SPOE.txt §3.2.1). */
	if (!(f.flags & SPOP_FLAG_FIN) || (f.flags & SPOP_FLAG_ABORT))
		return conn_fail(c, "frame type %u with flags 0x%08x (FIN clear or ABORT set)",
		                 f.type, f.flags);
	switch (f.type) {
	case SPOP_FRAME_AGENT_HELLO:
		return on_agent_hello(c, &f, now);
	case SPOP_FRAME_ACK:
		return on_ack(c, &f, now);
	case SPOP_FRAME_AGENT_DISCONNECT:
		return on_agent_disconnect(c, &f);
	default:
		return conn_fail(c, "unexpected frame type %u", f.type);
	}
}

/* Handles every whole frame in the input buffer and keeps the partial rest. */
static int parse_input(struct conn *c, uint64_t now)
{
	size_t o = 0;

	while (c->ilen - o >= 4) {
		uint32_t flen = spop_frame_length(c->ibuf + o);

		/* Checked on the prefix alone, before waiting for the body. */
		if (flen > c->frame_size)
			return conn_fail(c, "frame of %u bytes exceeds the max-frame-size %u", flen,
			                 c->frame_size);
		if (c->ilen - o - 4 < flen)
			break;
		if (on_frame(c, c->ibuf + o + 4, flen, now) < 0 || c->st == C_DONE)
			return -1;
		o += 4 + (size_t)flen;
	}
	if (o > 0) {
		memmove(c->ibuf, c->ibuf + o, c->ilen - o);
		c->ilen -= o;
	}
	return 0;
}

static int do_read(struct conn *c)
{
	for (;;) {
		size_t room = c->icap - c->ilen;
		ssize_t n = recv(c->fd, c->ibuf + c->ilen, room, 0);

		if (n > 0) {
			c->ilen += (size_t)n;
			if (parse_input(c, now_ns()) < 0)
				return -1;
			if ((size_t)n < room)
				break; /* the socket is most likely empty: back to epoll */
			continue;
		}
		if (n == 0)
			return conn_fail(c, "unexpected close by the agent");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		return conn_fail(c, "recv: %s", strerror(errno));
	}
	return flush(c);
}

static int send_hello(struct conn *c)
{
	const struct bench *b = c->w->b;
	struct spop_writer wr;

	spop_writer_init(&wr, c->obuf, c->ocap);
	if (spop_haproxy_hello_encode(&wr, SPOP_VERSION, OUR_FRAME_SIZE, "pipelining", false,
	                              b->engine_id) < 0)
		return conn_fail(c, "cannot encode HAPROXY-HELLO");
	c->ooff = 0;
	c->olen = wr.len;
	c->st = C_HELLO;
	return flush(c);
}

static void on_event(struct conn *c, uint32_t ev)
{
	if (c->st == C_DONE)
		return;
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err) {
			conn_fail(c, "connect: %s", strerror(err));
			return;
		}
		send_hello(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		if (do_read(c) < 0)
			return;
	}
	if ((ev & EPOLLOUT) && c->st != C_DONE)
		flush(c);
}

static int conn_start(struct conn *c)
{
	const struct bench *b = c->w->b;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	int one = 1;

	c->st = C_CONNECTING;
	c->w->nopen++; /* from here on, conn_fail() accounts for the connection */
	c->fd = socket(b->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return conn_fail(c, "socket: %s", strerror(errno));
	/* HAProxy sets TCP_NODELAY on its SPOE connections: small frames go out at once. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->t_connect = now_ns();
	if (connect(c->fd, (const struct sockaddr *)&b->addr.ss, b->addr.len) < 0 &&
	    errno != EINPROGRESS)
		return conn_fail(c, "connect: %s", strerror(errno));
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return conn_fail(c, "epoll_ctl: %s", strerror(errno));
	c->events = ev.events;
	return 0;
}

/* Once the run is over: a drained connection says goodbye; at the deadline, whatever is
 * still open is an error. */
static void tick(struct worker *w, uint64_t now)
{
	const struct bench *b = w->b;

	for (unsigned i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];

		if (c->st == C_DONE)
			continue;
		if (now >= b->t_deadline) {
			conn_fail(c, "%u NOTIFYs still unanswered %.1f s after the run",
			          b->depth - c->nfree, DRAIN_SECONDS);
			continue;
		}
		if (c->st == C_READY && c->nfree == b->depth) {
			if (send_disconnect(c) == 0)
				flush(c);
		}
	}
}

static int conn_alloc(struct conn *c)
{
	const struct bench *b = c->w->b;

	c->fd = -1;
	c->st = C_DONE;
	c->frame_size = OUR_FRAME_SIZE;
	c->icap = 2 * (4 + (size_t)OUR_FRAME_SIZE);
	c->ocap = (size_t)b->depth * b->notify_max + 1024;
	c->ibuf = malloc(c->icap);
	c->obuf = malloc(c->ocap);
	c->slots = calloc(b->depth, sizeof(*c->slots));
	c->free_slots = calloc(b->depth, sizeof(*c->free_slots));
	if (!c->ibuf || !c->obuf || !c->slots || !c->free_slots)
		return -1;
	for (unsigned i = 0; i < b->depth; i++)
		c->free_slots[i] = b->depth - 1 - i;
	c->nfree = b->depth;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct bench *b = w->b;
	struct epoll_event evs[256];

	for (unsigned i = 0; i < w->nconns; i++)
		conn_start(&w->conns[i]);
	while (w->nopen > 0) {
		uint64_t now = now_ns(), until;
		int n, timeout;

		if (now < b->t_end)
			until = b->t_end - now;
		else
			until = 10 * 1000000ull; /* drain: look at the deadline every 10 ms */
		if (until > 1000000000ull)
			until = 1000000000ull;
		timeout = (int)((until + 999999) / 1000000);
		n = epoll_wait(w->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "spop-bench: epoll_wait: %s\n", strerror(errno));
			w->errors++;
			break;
		}
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		now = now_ns();
		if (now >= b->t_end)
			tick(w, now);
	}
	return NULL;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: spop-bench --connect HOST:PORT [--connections N] [--depth K]\n"
	        "                  [--duration SECONDS] [--warmup SECONDS] [--threads T]\n"
	        "                  [--cert LEAF.der [--chain CHAIN.der]] [--sni NAME]\n"
	        "\n"
	        "Plays HAProxy against a SPOP agent on a loopback address: N connections, K\n"
	        "NOTIFYs (message \"mtls\") in flight on each, for SECONDS after a warm-up.\n"
	        "Prints one key=value line; exits 1 if any protocol error was seen.\n"
	        "\n"
	        "  -c, --connect HOST:PORT  the agent (127.0.0.0/8 or ::1 only)\n"
	        "  -n, --connections N      connections, 1..%u (default 8)\n"
	        "  -k, --depth K            NOTIFYs in flight per connection, 1..%u (default 1)\n"
	        "  -d, --duration SECONDS   measured time (default 5)\n"
	        "  -w, --warmup SECONDS     unmeasured time before it (default 1)\n"
	        "  -t, --threads T          client threads, one epoll loop each (default 1)\n"
	        "      --cert FILE          leaf certificate, DER (ssl_c_der); without it the\n"
	        "                           NOTIFY says used=false and cert=NULL\n"
	        "      --chain FILE         the certificates the client sent after the leaf, DER\n"
	        "                           concatenated (ssl_c_chain_der); NULL without it\n"
	        "      --sni NAME           ssl_fc_sni (default app.example.com; \"\" sends NULL)\n"
	        "  -h, --help               this text\n",
	        MAX_CONNECTIONS, MAX_DEPTH);
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

/* Reads a whole DER file (at most MAX_DER_FILE bytes) into a fresh buffer. */
static int read_der(const char *path, uint8_t **out, size_t *outlen)
{
	FILE *f = NULL;
	uint8_t *buf = NULL;
	size_t n;
	int ret = -1;

	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "spop-bench: %s: %s\n", path, strerror(errno));
		goto out;
	}
	buf = malloc(MAX_DER_FILE + 1);
	if (!buf) {
		fprintf(stderr, "spop-bench: out of memory\n");
		goto out;
	}
	n = fread(buf, 1, MAX_DER_FILE + 1, f);
	if (ferror(f)) {
		fprintf(stderr, "spop-bench: %s: read error\n", path);
		goto out;
	}
	if (n > MAX_DER_FILE || n == 0) {
		fprintf(stderr, "spop-bench: %s: %s\n", path,
		        n ? "larger than 64 KiB" : "empty file");
		goto out;
	}
	if (buf[0] != 0x30) { /* every certificate is an ASN.1 SEQUENCE */
		fprintf(stderr,
		        "spop-bench: %s: not DER (PEM? convert with openssl x509 "
		        "-outform DER)\n",
		        path);
		goto out;
	}
	*out = buf;
	*outlen = n;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	if (f)
		fclose(f);
	return ret;
}

static int parse_args(int argc, char **argv, struct bench *b)
{
	static const struct option opts[] = {
	    {"connect", required_argument, NULL, 'c'},
	    {"connections", required_argument, NULL, 'n'},
	    {"depth", required_argument, NULL, 'k'},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"threads", required_argument, NULL, 't'},
	    {"cert", required_argument, NULL, 'C'},
	    {"chain", required_argument, NULL, 'H'},
	    {"sni", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *connect_to = NULL, *cert = NULL, *chain = NULL;
	char err[256];
	int c, li = -1;

	while ((c = getopt_long(argc, argv, "c:n:k:d:w:t:h", opts, &li)) != -1) {
		switch (c) {
		case 'c':
			connect_to = optarg;
			break;
		case 'n':
			if (parse_uint(optarg, 1, MAX_CONNECTIONS, &b->nconn) < 0)
				goto bad;
			break;
		case 'k':
			if (parse_uint(optarg, 1, MAX_DEPTH, &b->depth) < 0)
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
		case 't':
			if (parse_uint(optarg, 1, MAX_THREADS, &b->nthreads) < 0)
				goto bad;
			break;
		case 'C':
			cert = optarg;
			break;
		case 'H':
			chain = optarg;
			break;
		case 'S':
			b->sni = optarg;
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
	if (optind < argc || !connect_to) {
		fprintf(stderr, "spop-bench: %s\n",
		        connect_to ? "unexpected argument" : "--connect HOST:PORT is required");
		usage(stderr);
		return -1;
	}
	if (chain && !cert) {
		fprintf(stderr, "spop-bench: --chain needs --cert (HAProxy has no chain "
		                "without a leaf)\n");
		return -1;
	}
	if (addr_parse(connect_to, &b->addr, err, sizeof(err)) < 0) {
		fprintf(stderr, "spop-bench: --connect: %s\n", err);
		return -1;
	}
	if (!is_loopback(&b->addr)) {
		fprintf(stderr,
		        "spop-bench: --connect %s: only loopback TCP addresses "
		        "(127.0.0.0/8, ::1)\n",
		        connect_to);
		return -1;
	}
	if (cert && read_der(cert, &b->cert, &b->cert_len) < 0)
		return -1;
	if (chain && read_der(chain, &b->chain, &b->chain_len) < 0)
		return -1;
	if (b->nthreads > b->nconn)
		b->nthreads = b->nconn;
	return 0;
bad:
	if (li >= 0)
		fprintf(stderr, "spop-bench: bad value for --%s: \"%s\"\n", opts[li].name, optarg);
	else
		fprintf(stderr, "spop-bench: bad value for -%c: \"%s\"\n", c, optarg);
	return -1;
}

int main(int argc, char **argv)
{
	struct bench b = {
	    .nconn = 8,
	    .depth = 1,
	    .nthreads = 1,
	    .duration = 5.0,
	    .warmup = 1.0,
	    .sni = "app.example.com",
	};
	struct worker *workers = NULL;
	struct conn *conns = NULL;
	struct hist *lat = NULL, *hello = NULL;
	uint8_t probe[OUR_FRAME_SIZE + 64];
	struct spop_writer wr;
	uint64_t sent = 0, acked = 0, errors = 0;
	unsigned started = 0;
	double window;
	int ret = 2;

	signal(SIGPIPE, SIG_IGN);
	if (parse_args(argc, argv, &b) < 0)
		goto out;
	ret = 1;
	while ((1u << b.slot_bits) < b.depth)
		b.slot_bits++;
	/* The NOTIFY's size with the longest ids it can carry: the frame is built anew for
	 * every message, but never larger than this. */
	spop_writer_init(&wr, probe, sizeof(probe));
	if (put_notify(&wr, &b, 0, 0, OUR_FRAME_SIZE) < 0) {
		fprintf(stderr,
		        "spop-bench: the NOTIFY (leaf %zu + chain %zu bytes) exceeds "
		        "max-frame-size %u\n",
		        b.cert_len, b.chain_len, OUR_FRAME_SIZE);
		goto out;
	}
	b.notify_max = wr.len + 2 * (SPOP_VARINT_MAX_LEN - 1);
	if ((uint64_t)b.nconn * b.depth * b.notify_max > OBUF_LIMIT) {
		fprintf(stderr, "spop-bench: connections x depth x NOTIFY size exceeds 1 GiB of "
		                "buffers\n");
		goto out;
	}
	snprintf(b.engine_id, sizeof(b.engine_id), "%08x-5b0b-4e1c-9a00-%012llx",
	         (unsigned)getpid(), (unsigned long long)(now_ns() & 0xffffffffffffull));

	workers = calloc(b.nthreads, sizeof(*workers));
	conns = calloc(b.nconn, sizeof(*conns));
	lat = calloc(1, sizeof(*lat));
	hello = calloc(1, sizeof(*hello));
	if (!workers || !conns || !lat || !hello)
		goto oom;
	for (unsigned t = 0; t < b.nthreads; t++)
		workers[t].ep = -1;
	/* Connections go to threads in contiguous blocks, as evenly as possible. */
	for (unsigned t = 0, next = 0; t < b.nthreads; t++) {
		struct worker *w = &workers[t];
		unsigned n = b.nconn / b.nthreads + (t < b.nconn % b.nthreads);

		w->b = &b;
		w->idx = t;
		w->conns = conns + next;
		w->nconns = n;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep < 0) {
			fprintf(stderr, "spop-bench: epoll_create1: %s\n", strerror(errno));
			goto out;
		}
		for (unsigned i = 0; i < n; i++) {
			conns[next + i].w = w;
			conns[next + i].id = next + i;
			if (conn_alloc(&conns[next + i]) < 0)
				goto oom;
		}
		next += n;
	}

	b.t_start = now_ns();
	b.t_measure = b.t_start + sec_to_ns(b.warmup);
	b.t_end = b.t_measure + sec_to_ns(b.duration);
	b.t_deadline = b.t_end + sec_to_ns(DRAIN_SECONDS);
	for (; started < b.nthreads; started++) {
		if (pthread_create(&workers[started].thread, NULL, worker_main,
		                   &workers[started]) != 0) {
			fprintf(stderr, "spop-bench: pthread_create failed\n");
			errors++;
			break;
		}
	}
	for (unsigned t = 0; t < started; t++) {
		pthread_join(workers[t].thread, NULL);
		sent += workers[t].sent;
		acked += workers[t].acked;
		errors += workers[t].errors;
		hist_merge(lat, &workers[t].lat);
		hist_merge(hello, &workers[t].hello);
	}
	window = (double)(b.t_end - b.t_measure) / 1e9;
	printf("connections=%u depth=%u threads=%u duration_s=%.3f notify_bytes=%zu "
	       "cert_bytes=%zu chain_bytes=%zu sent=%" PRIu64 " acked=%" PRIu64 " notifies=%" PRIu64
	       " rate=%.0f/s mean_us=%.1f p50_us=%.1f p90_us=%.1f "
	       "p99_us=%.1f p999_us=%.1f max_us=%.1f hello_p50_us=%.1f hello_max_us=%.1f "
	       "errors=%" PRIu64 "\n",
	       b.nconn, b.depth, b.nthreads, window, b.notify_max - 2 * (SPOP_VARINT_MAX_LEN - 1),
	       b.cert_len, b.chain_len, sent, acked, lat->count, (double)lat->count / window,
	       lat->count ? lat->sum / (double)lat->count / 1e3 : 0.0,
	       (double)hist_quantile(lat, 0.50) / 1e3, (double)hist_quantile(lat, 0.90) / 1e3,
	       (double)hist_quantile(lat, 0.99) / 1e3, (double)hist_quantile(lat, 0.999) / 1e3,
	       (double)lat->max / 1e3, (double)hist_quantile(hello, 0.50) / 1e3,
	       (double)hello->max / 1e3, errors);
	fflush(stdout);
	if (errors > 0)
		fprintf(stderr, "spop-bench: %" PRIu64 " protocol error(s)\n", errors);
	ret = errors > 0 ? 1 : 0;
	goto out;
oom:
	fprintf(stderr, "spop-bench: out of memory\n");
out:
	if (workers) {
		for (unsigned t = 0; t < b.nthreads; t++)
			if (workers[t].ep >= 0)
				close(workers[t].ep);
	}
	if (conns) {
		for (unsigned i = 0; i < b.nconn; i++) {
			free(conns[i].ibuf);
			free(conns[i].obuf);
			free(conns[i].slots);
			free(conns[i].free_slots);
		}
	}
	free(workers);
	free(conns);
	free(lat);
	free(hello);
	free(b.cert);
	free(b.chain);
	return ret;
}

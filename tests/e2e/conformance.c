/*
 * conformance: socket-level SPOP tests against the real spoa-mtls binary.
 *
 * The program starts the agent named by $SPOA_MTLS on 127.0.0.1 (SPOP port 0, read back
 * from its `event=listen` log line; a metrics port found by binding port 0), plays
 * HAProxy's side of the protocol with a blocking client whose reads time out, and stops
 * the agent by pid with SIGTERM as its last case: the agent must then exit 0, which under
 * ASan/LSan also means no leak and no memory error.
 *
 * What is checked is research/spop.md §1.9 ("What the agent must do") and the vectors of
 * §1.2-1.8; SPOE.txt sections are cited where a case comes from the spec.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "spop.h"

#define RECV_TIMEOUT_MS  5000 /* a hang fails the case instead of the run */
#define START_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS  15000
#define FRAME_BUF        65536
#define AGENT_THREADS    "2"
#define NCONC            200
#define NPIPE            20
#define RSS_SLACK_KB     (4 * 1024) /* "did not grow by more than a few MB" */

static pid_t agent_pid = -1;
static int agent_status = -1; /* waitpid status once reaped */
static uint16_t spop_port, metrics_port;
static char log_path[64];

/* ---- time, processes, the agent ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Reaps the agent if it has exited; true when it has. */
static bool agent_reaped(void)
{
	int st;

	if (agent_pid < 0)
		return true;
	if (waitpid(agent_pid, &st, WNOHANG) == agent_pid) {
		agent_status = st;
		agent_pid = -1;
		return true;
	}
	return false;
}

/* Waits up to ms for the agent to exit; true when it did. */
static bool agent_wait_exit(unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (!agent_reaped()) {
		if (now_ms() > end)
			return false;
		sleep_ms(10);
	}
	return true;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);
			if (!nb)
				break;
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Sockets a failed case leaves open are closed by its teardown, so that one failure
 * does not also fail the connection count of a later case. */
static int open_fds[1024];
static unsigned n_open_fds;

static void track(int fd)
{
	if (n_open_fds < sizeof(open_fds) / sizeof(open_fds[0]))
		open_fds[n_open_fds++] = fd;
}

static void xclose(int fd)
{
	for (unsigned i = 0; i < n_open_fds; i++)
		if (open_fds[i] == fd) {
			open_fds[i] = open_fds[--n_open_fds];
			break;
		}
	close(fd);
}

static int close_leftovers(void **state)
{
	(void)state;
	while (n_open_fds > 0)
		close(open_fds[--n_open_fds]);
	return 0;
}

/* A TCP connection to 127.0.0.1:port with read/write timeouts; -errno on failure. */
static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {RECV_TIMEOUT_MS / 1000, (RECV_TIMEOUT_MS % 1000) * 1000};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	track(fd);
	return fd;
}

/* Starts the agent, waits for both listeners; 0 or -1. */
static int agent_start_once(void)
{
	char listen_arg[] = "127.0.0.1:0", metrics_arg[32], *log = NULL, *p;
	const char *bin = getenv("SPOA_MTLS");
	uint64_t end;
	int mp = free_port(), fd;

	if (!bin || !*bin) {
		fprintf(stderr, "conformance: SPOA_MTLS (the agent binary) is not set\n");
		return -1;
	}
	if (mp < 0)
		return -1;
	snprintf(metrics_arg, sizeof(metrics_arg), "127.0.0.1:%d", mp);
	fd = open(log_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -1;
	agent_pid = fork();
	if (agent_pid < 0) {
		close(fd);
		return -1;
	}
	if (agent_pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "--listen", listen_arg, "--threads", AGENT_THREADS, "--metrics",
		      metrics_arg, (char *)NULL);
		fprintf(stderr, "conformance: exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(fd);
	end = now_ms() + START_TIMEOUT_MS;
	while (now_ms() < end) {
		if (agent_reaped())
			break; /* exited at start: the metrics port may have been taken */
		free(log);
		log = read_file(log_path);
		if (log && (p = strstr(log, "event=listen addr=127.0.0.1:")) &&
		    strstr(log, "event=metrics_listen")) {
			long port = strtol(p + strlen("event=listen addr=127.0.0.1:"), NULL, 10);
			if (port <= 0 || port > 65535)
				break;
			spop_port = (uint16_t)port;
			metrics_port = (uint16_t)mp;
			free(log);
			/* Ready means accepting: one connection to each port. */
			fd = tcp_connect(spop_port);
			if (fd < 0)
				return -1;
			xclose(fd);
			fd = tcp_connect(metrics_port);
			if (fd < 0)
				return -1;
			xclose(fd);
			return 0;
		}
		sleep_ms(20);
	}
	free(log);
	if (agent_pid > 0) {
		kill(agent_pid, SIGKILL);
		agent_wait_exit(STOP_TIMEOUT_MS);
	}
	return -1;
}

static void dump_log(void)
{
	char *log = read_file(log_path);

	if (log) {
		size_t n = strlen(log);
		const char *from = n > 8000 ? log + n - 8000 : log;
		fprintf(stderr, "---- agent log (%s, last %zu bytes) ----\n%s----\n", log_path,
		        strlen(from), from);
	}
	free(log);
}

static int group_setup(void **state)
{
	int fd;

	(void)state;
	snprintf(log_path, sizeof(log_path), "/tmp/spoa-conformance-XXXXXX");
	fd = mkstemp(log_path);
	if (fd < 0)
		return -1;
	close(fd);
	for (int attempt = 0; attempt < 3; attempt++)
		if (agent_start_once() == 0)
			return 0;
	dump_log();
	return -1;
}

static int group_teardown(void **state)
{
	int rc = 0;

	(void)state;
	if (agent_pid > 0) {
		/* The graceful-stop case did not run to its end. */
		kill(agent_pid, SIGTERM);
		if (!agent_wait_exit(STOP_TIMEOUT_MS)) {
			kill(agent_pid, SIGKILL);
			agent_wait_exit(STOP_TIMEOUT_MS);
		}
		rc = -1;
	}
	if (rc < 0 || !WIFEXITED(agent_status) || WEXITSTATUS(agent_status) != 0)
		dump_log();
	unlink(log_path);
	return rc;
}

/* ---- raw I/O ---- */

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("send: %s", n < 0 ? strerror(errno) : "0 bytes");
		p += n;
		len -= (size_t)n;
	}
}

/* Reads exactly len bytes: 1, 0 on EOF before the first byte, -1 otherwise (timeout,
 * error, EOF in the middle). */
static int recv_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, p + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return got == 0 ? 0 : -1;
		if (n < 0)
			return -1;
		got += (size_t)n;
	}
	return 1;
}

/* One frame into buf (without its prefix); the frame's length, 0 on EOF, -1 otherwise. */
static ssize_t recv_frame_raw(int fd, uint8_t *buf, size_t cap, struct spop_frame *f)
{
	uint8_t hdr[4];
	uint32_t len;
	int r = recv_exact(fd, hdr, 4);

	if (r <= 0)
		return r;
	len = spop_frame_length(hdr);
	if (len > cap || len < SPOP_FRAME_HDR_MIN)
		return -1;
	if (recv_exact(fd, buf, len) != 1)
		return -1;
	if (spop_frame_decode(buf, len, f) < 0)
		return -1;
	return (ssize_t)len;
}

/* A frame must come, no larger than max_size. */
static void recv_frame(int fd, uint8_t *buf, struct spop_frame *f, uint32_t max_size)
{
	ssize_t n = recv_frame_raw(fd, buf, FRAME_BUF, f);

	if (n == 0)
		fail_msg("expected a frame, got EOF");
	if (n < 0)
		fail_msg("expected a frame, got a timeout, an error or a malformed frame (%s)",
		         strerror(errno));
	assert_true((uint32_t)n <= max_size);
}

/* The agent closes: EOF, nothing before it (an RST counts as a close too). */
static void expect_eof(int fd)
{
	uint8_t b;
	ssize_t n;

	do
		n = recv(fd, &b, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		fail_msg("expected the agent to close, got data (0x%02x)", b);
	if (n < 0 && errno != ECONNRESET)
		fail_msg("expected the agent to close, got %s", strerror(errno));
}

/* Nothing may arrive within ms. */
static void expect_silence(int fd, unsigned ms)
{
	struct timeval tv = {0, (suseconds_t)ms * 1000}, back = {RECV_TIMEOUT_MS / 1000, 0};
	uint8_t b;
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(fd, &b, 1, MSG_PEEK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, sizeof(back));
	assert_int_equal(n, -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void set_nodelay(int fd)
{
	int one = 1;
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
}

/* ---- frames we send ---- */

enum { K_VER = 1, K_MFS = 2, K_CAPS = 4, K_ENGINE = 8, K_UNKNOWN = 16, K_REVERSED = 32 };
#define K_ALL (K_VER | K_MFS | K_CAPS | K_ENGINE)

/* A HAPROXY-HELLO like 2.6.12's (research/spop.md §1.4), with keys left out at will. */
static size_t build_hello(uint8_t *buf, size_t cap, unsigned keys, const char *versions,
                          uint64_t frame_size)
{
	struct spop_writer w;
	struct spop_value vv = spop_str(versions), vm = spop_uint32((uint32_t)frame_size);
	struct spop_value vc = spop_str("pipelining,async");
	struct spop_value ve = spop_str("0dbc8e44-c9b3-435a-a005-956de0c749d7");
	struct spop_value vu = spop_bin("\x01\x02", 2);
	size_t start;

	spop_writer_init(&w, buf, cap);
	start = spop_frame_begin(&w, SPOP_FRAME_HAPROXY_HELLO, SPOP_FLAG_FIN, 0, 0);
	if (frame_size > UINT32_MAX)
		vm = (struct spop_value){.type = SPOP_T_UINT64, .u = frame_size};
	if (keys & K_UNKNOWN)
		spop_put_kv(&w, "x-unknown-key", &vu);
	if (keys & K_REVERSED) {
		/* SPOE.txt §3.2.4: the agent must not depend on the order of the keys. */
		if (keys & K_ENGINE)
			spop_put_kv(&w, "engine-id", &ve);
		if (keys & K_CAPS)
			spop_put_kv(&w, "capabilities", &vc);
		if (keys & K_MFS)
			spop_put_kv(&w, "max-frame-size", &vm);
		if (keys & K_VER)
			spop_put_kv(&w, "supported-versions", &vv);
	} else {
		if (keys & K_VER)
			spop_put_kv(&w, "supported-versions", &vv);
		if (keys & K_MFS)
			spop_put_kv(&w, "max-frame-size", &vm);
		if (keys & K_CAPS)
			spop_put_kv(&w, "capabilities", &vc);
		if (keys & K_ENGINE)
			spop_put_kv(&w, "engine-id", &ve);
	}
	assert_int_equal(spop_frame_end(&w, start, UINT32_MAX), 0);
	return w.len;
}

/* NOTIFY with one message `name` carrying one argument, as 2.6 sends them. */
static size_t build_notify(uint8_t *buf, size_t cap, uint32_t flags, uint64_t sid, uint64_t fid,
                           const char *name)
{
	struct spop_writer w;
	struct spop_value v = spop_str("www.example.com");
	size_t start;

	spop_writer_init(&w, buf, cap);
	start = spop_frame_begin(&w, SPOP_FRAME_NOTIFY, flags, sid, fid);
	spop_put_message(&w, name, 1);
	spop_put_kv(&w, "sni", &v);
	assert_int_equal(spop_frame_end(&w, start, UINT32_MAX), 0);
	return w.len;
}

static size_t build_haproxy_disconnect(uint8_t *buf, size_t cap, unsigned status, const char *msg)
{
	struct spop_writer w;

	spop_writer_init(&w, buf, cap);
	assert_int_equal(spop_disconnect_encode(&w, SPOP_FRAME_HAPROXY_DISCONNECT, status, msg), 0);
	return w.len;
}

/* A frame from raw bytes: prefix computed, body as given. */
static size_t build_raw(uint8_t *buf, const void *body, size_t len)
{
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	memcpy(buf + 4, body, len);
	return len + 4;
}

/* ---- frames we receive ---- */

struct agent_hello {
	bool has_version, has_frame_size, has_caps;
	struct spop_bytes version, caps;
	uint64_t frame_size;
};

/* AGENT-HELLO payload (SPOE.txt §3.2.5): version, max-frame-size, capabilities. */
static void decode_agent_hello(const struct spop_frame *f, struct agent_hello *h)
{
	const uint8_t *p = f->payload.p;
	size_t len = f->payload.len, o = 0;

	memset(h, 0, sizeof(*h));
	while (o < len) {
		struct spop_bytes k;
		struct spop_value v;
		ssize_t r = spop_kv_decode(p + o, len - o, &k, &v);

		assert_true(r > 0);
		o += (size_t)r;
		if (spop_bytes_eq(k, "version")) {
			assert_int_equal(v.type, SPOP_T_STRING);
			h->version = v.s;
			h->has_version = true;
		} else if (spop_bytes_eq(k, "max-frame-size")) {
			assert_int_equal(spop_value_uint(&v, &h->frame_size), 0);
			h->has_frame_size = true;
		} else if (spop_bytes_eq(k, "capabilities")) {
			assert_int_equal(v.type, SPOP_T_STRING);
			h->caps = v.s;
			h->has_caps = true;
		}
	}
}

static void assert_bytes_eq(struct spop_bytes b, const char *s)
{
	if (!spop_bytes_eq(b, s))
		fail_msg("expected \"%s\", got \"%.*s\"", s, (int)b.len, (const char *)b.p);
}

/* Receives an AGENT-HELLO and checks it against what `ours` should negotiate. */
static uint32_t expect_agent_hello(int fd, uint64_t ours)
{
	uint8_t buf[FRAME_BUF];
	struct spop_frame f;
	struct agent_hello h;
	uint64_t want = ours < SPOP_MAX_FRAME_SIZE ? ours : SPOP_MAX_FRAME_SIZE;

	recv_frame(fd, buf, &f, (uint32_t)want);
	assert_int_equal(f.type, SPOP_FRAME_AGENT_HELLO);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_int_equal(f.sid, 0);
	assert_int_equal(f.fid, 0);
	decode_agent_hello(&f, &h);
	assert_true(h.has_version);
	assert_bytes_eq(h.version, "2.0");
	assert_true(h.has_frame_size);
	assert_int_equal(h.frame_size, want);
	/* Only pipelining: not async (2.6 per-thread engine-ids), not fragmentation. */
	assert_true(h.has_caps);
	assert_bytes_eq(h.caps, "pipelining");
	return (uint32_t)h.frame_size;
}

/* A connection that has completed the HELLO with our max-frame-size `ours`. */
static int open_ready(uint64_t ours)
{
	uint8_t buf[512];
	int fd = tcp_connect(spop_port);

	if (fd < 0)
		fail_msg("connect: %s", strerror(-fd));
	send_all(fd, buf, build_hello(buf, sizeof(buf), K_ALL, "2.0", ours));
	expect_agent_hello(fd, ours);
	return fd;
}

/* AGENT-DISCONNECT with `status` (SPOE.txt §3.2.9), and then the agent closes. */
static void expect_disconnect(int fd, unsigned status)
{
	uint8_t buf[FRAME_BUF];
	struct spop_frame f;
	struct spop_disconnect d;

	recv_frame(fd, buf, &f, SPOP_MAX_FRAME_SIZE);
	assert_int_equal(f.type, SPOP_FRAME_AGENT_DISCONNECT);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_int_equal(f.sid, 0);
	assert_int_equal(f.fid, 0);
	assert_int_equal(spop_disconnect_decode(f.payload.p, f.payload.len, &d), 0);
	assert_true(d.has_status);
	if (d.status != status)
		fail_msg("DISCONNECT status-code %u (\"%.*s\"), expected %u", d.status,
		         (int)d.message.len, (const char *)d.message.p, status);
	assert_true(d.message.len <= SPOP_MAX_DISCO_MSG);
	assert_bytes_eq(d.message, spop_status_text(status));
	expect_eof(fd);
}

struct ack_var {
	uint8_t scope;
	struct spop_bytes name;
	struct spop_value value;
};

struct ack {
	unsigned nactions;
	unsigned nset;
	struct ack_var set[32];
};

/* LIST-OF-ACTIONS (SPOE.txt §3.4): set-var = 01 03 scope name value, unset-var = 02 02
 * scope name. Anything else fails: HAProxy stops applying an ACK at an unknown action. */
static void decode_ack(const struct spop_frame *f, struct ack *a)
{
	const uint8_t *p = f->payload.p;
	size_t len = f->payload.len, o = 0;

	memset(a, 0, sizeof(*a));
	while (o < len) {
		struct spop_bytes name;
		uint8_t type, nargs, scope;
		ssize_t r;

		assert_true(len - o >= 3);
		type = p[o];
		nargs = p[o + 1];
		scope = p[o + 2];
		o += 3;
		assert_true(scope <= SPOP_SCOPE_RES);
		r = spop_string_decode(p + o, len - o, &name);
		assert_true(r > 0);
		o += (size_t)r;
		if (type == SPOP_ACT_SET_VAR) {
			struct spop_value v;
			assert_int_equal(nargs, 3);
			r = spop_value_decode(p + o, len - o, &v);
			assert_true(r > 0);
			o += (size_t)r;
			assert_true(a->nset < sizeof(a->set) / sizeof(a->set[0]));
			a->set[a->nset++] = (struct ack_var){scope, name, v};
		} else if (type == SPOP_ACT_UNSET_VAR) {
			assert_int_equal(nargs, 2);
		} else {
			fail_msg("unknown action type %u in an ACK", type);
		}
		a->nactions++;
	}
}

static const struct spop_value *ack_get(const struct ack *a, uint8_t scope, const char *name)
{
	for (unsigned i = 0; i < a->nset; i++)
		if (a->set[i].scope == scope && spop_bytes_eq(a->set[i].name, name))
			return &a->set[i].value;
	return NULL;
}

/* The `mtls` answer of the policy-less agent: seen, allow, NONE, no headers. */
static void assert_mtls_vars(const struct ack *a)
{
	const struct spop_value *v;

	v = ack_get(a, SPOP_SCOPE_SESS, "seen");
	assert_non_null(v);
	assert_int_equal(v->type, SPOP_T_BOOL);
	assert_true(v->b);
	v = ack_get(a, SPOP_SCOPE_SESS, "verdict");
	assert_non_null(v);
	assert_int_equal(v->type, SPOP_T_STRING);
	assert_bytes_eq(v->s, "allow");
	v = ack_get(a, SPOP_SCOPE_SESS, "verify");
	assert_non_null(v);
	assert_int_equal(v->type, SPOP_T_STRING);
	assert_bytes_eq(v->s, "NONE");
	v = ack_get(a, SPOP_SCOPE_SESS, "hdr");
	assert_non_null(v);
	assert_int_equal(v->type, SPOP_T_BOOL);
	assert_false(v->b);
}

/* One ACK (SPOE.txt §3.2.7): same ids, FIN, at least one action (research §0.9). */
static void expect_ack(int fd, uint64_t sid, uint64_t fid, uint32_t frame_size, struct ack *a)
{
	uint8_t buf[FRAME_BUF];
	struct spop_frame f;

	recv_frame(fd, buf, &f, frame_size);
	if (f.type != SPOP_FRAME_ACK)
		fail_msg("expected an ACK, got frame type %u", f.type);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_int_equal(f.sid, sid);
	assert_int_equal(f.fid, fid);
	decode_ack(&f, a);
	assert_true(a->nactions >= 1);
}

static void notify_roundtrip(int fd, uint64_t sid, uint64_t fid, uint32_t frame_size)
{
	uint8_t buf[512];
	struct ack a;

	send_all(fd, buf, build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, sid, fid, "mtls"));
	expect_ack(fd, sid, fid, frame_size, &a);
	assert_mtls_vars(&a);
}

/* ---- metrics ---- */

/* The body of GET /metrics, read over a raw socket. */
static char *scrape(void)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                          "Connection: close\r\n\r\n";
	size_t len = 0, cap = 1 << 20;
	char *buf = malloc(cap), *body;
	int fd = tcp_connect(metrics_port);

	assert_non_null(buf);
	if (fd < 0)
		fail_msg("metrics connect: %s", strerror(-fd));
	send_all(fd, req, sizeof(req) - 1);
	for (;;) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail_msg("metrics recv: %s", strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
		assert_true(len < cap - 1);
	}
	xclose(fd);
	buf[len] = '\0';
	assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
	body = strstr(buf, "\r\n\r\n");
	assert_non_null(body);
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return buf;
}

/* The value of the series `name` (labels included), which must exist. */
static uint64_t metric(const char *text, const char *name)
{
	size_t n = strlen(name);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	fail_msg("metric %s not found", name);
	return 0;
}

static uint64_t scrape_one(const char *name)
{
	char *text = scrape();
	uint64_t v = metric(text, name);
	free(text);
	return v;
}

static long vmrss_kb(pid_t pid)
{
	char path[64], *s, *p;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	s = read_file(path);
	if (s && (p = strstr(s, "VmRSS:")))
		kb = strtol(p + 6, NULL, 10);
	free(s);
	return kb;
}

/* ---- cases ---- */

/* SPOE.txt §3.2.4-5: version 2.0, max-frame-size = min(ours, agent's), pipelining. */
static void test_hello_negotiation(void **state)
{
	static const uint64_t sizes[] = {16380, 4096, 256, 65535, (uint64_t)1 << 33};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int fd = open_ready(sizes[i]);
		uint32_t fs =
		    sizes[i] < SPOP_MAX_FRAME_SIZE ? (uint32_t)sizes[i] : SPOP_MAX_FRAME_SIZE;
		notify_roundtrip(fd, 7, 1, fs);
		xclose(fd);
	}
}

/* The negotiated size is the limit for the frames the agent receives, too. */
static void test_hello_size_enforced(void **state)
{
	uint8_t big[300] = {0}, buf[512];
	size_t n;
	int fd;

	(void)state;
	fd = open_ready(256);
	/* A 257-byte NOTIFY is within the agent's own 16380 but over the 256 we asked. */
	n = build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, 1, 1, "mtls");
	memcpy(big, buf, n);
	big[0] = big[1] = 0;
	big[2] = 0x01; /* length 257 */
	big[3] = 0x01;
	send_all(fd, big, 4 + 257);
	expect_disconnect(fd, SPOP_ST_TOO_BIG);
	xclose(fd);

	/* Exactly 256 is fine: a NOTIFY padded with a long argument. */
	fd = open_ready(256);
	{
		struct spop_writer w;
		char pad[300];
		struct spop_value v;
		size_t start, payload;
		struct ack a;

		memset(pad, 'a', sizeof(pad));
		spop_writer_init(&w, buf, sizeof(buf));
		start = spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 3, 4);
		spop_put_message(&w, "mtls", 1);
		payload = w.len - start - 4;
		/* name "p" (2) + type (1) + a 1-byte length varint (< 240) + pad = 256 */
		assert_true(256 - payload - 2 - 1 - 1 < 240);
		v = spop_strn(pad, 256 - payload - 2 - 1 - 1);
		spop_put_kv(&w, "p", &v);
		assert_int_equal(spop_frame_end(&w, start, 256), 0);
		assert_int_equal(w.len, 4 + 256);
		send_all(fd, buf, w.len);
		expect_ack(fd, 3, 4, 256, &a);
		assert_mtls_vars(&a);
	}
	xclose(fd);
}

static void hello_rejected(unsigned keys, const char *versions, uint64_t frame_size,
                           unsigned status)
{
	uint8_t buf[512];
	int fd = tcp_connect(spop_port);

	assert_true(fd >= 0);
	send_all(fd, buf, build_hello(buf, sizeof(buf), keys, versions, frame_size));
	expect_disconnect(fd, status);
	xclose(fd);
}

static void test_hello_rejections(void **state)
{
	(void)state;
	hello_rejected(K_ALL, "2.0", 255, SPOP_ST_BAD_FRAME_SIZE);
	hello_rejected(K_ALL, "2.0", 0, SPOP_ST_BAD_FRAME_SIZE);
	hello_rejected(K_ALL, "1.0", 16380, SPOP_ST_BAD_VERSION);
	hello_rejected(K_ALL, "2.1", 16380, SPOP_ST_BAD_VERSION);
	hello_rejected(K_ALL & ~K_VER, "2.0", 16380, SPOP_ST_NO_VERSION);
	hello_rejected(K_ALL & ~K_MFS, "2.0", 16380, SPOP_ST_NO_FRAME_SIZE);
	hello_rejected(K_ALL & ~K_CAPS, "2.0", 16380, SPOP_ST_NO_CAPABILITIES);
}

/* Unknown keys and any key order are accepted; a version list is searched. */
static void test_hello_tolerance(void **state)
{
	uint8_t buf[512];
	int fd;

	(void)state;
	fd = tcp_connect(spop_port);
	assert_true(fd >= 0);
	send_all(fd, buf,
	         build_hello(buf, sizeof(buf), K_ALL | K_UNKNOWN | K_REVERSED, "2.0", 4096));
	expect_agent_hello(fd, 4096);
	notify_roundtrip(fd, 1, 1, 4096);
	xclose(fd);

	fd = tcp_connect(spop_port);
	assert_true(fd >= 0);
	send_all(fd, buf, build_hello(buf, sizeof(buf), K_ALL, "1.0, 2.0", 16380));
	expect_agent_hello(fd, 16380);
	xclose(fd);
}

/* research/spop.md §1.4: the fixed 82-byte `option spop-check` HELLO. */
static void test_healthcheck(void **state)
{
	static const uint8_t hc[] = {
	    0x00, 0x00, 0x00, 0x4e, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x12, 's',  'u',
	    'p',  'p',  'o',  'r',  't',  'e',  'd',  '-',  'v',  'e',  'r',  's',  'i',  'o',
	    'n',  's',  0x08, 0x03, '2',  '.',  '0',  0x0e, 'm',  'a',  'x',  '-',  'f',  'r',
	    'a',  'm',  'e',  '-',  's',  'i',  'z',  'e',  0x03, 0xfc, 0xf0, 0x06, 0x0c, 'c',
	    'a',  'p',  'a',  'b',  'i',  'l',  'i',  't',  'i',  'e',  's',  0x08, 0x00, 0x0b,
	    'h',  'e',  'a',  'l',  't',  'h',  'c',  'h',  'e',  'c',  'k',  0x11,
	};
	uint64_t before = scrape_one("spoa_mtls_health_checks_total");
	int fd;

	(void)state;
	assert_int_equal(sizeof(hc), 82);
	fd = tcp_connect(spop_port);
	assert_true(fd >= 0);
	send_all(fd, hc, sizeof(hc));
	expect_agent_hello(fd, 16380);
	expect_eof(fd); /* no DISCONNECT after a health check (SPOE.txt §3.2.5) */
	xclose(fd);
	assert_true(scrape_one("spoa_mtls_health_checks_total") >= before + 1);
}

/* Every typed-data type (SPOE.txt §3.1), empty argument names, extreme ids. */
static void test_notify_all_types(void **state)
{
	static const struct {
		uint64_t sid, fid;
	} ids[] = {
	    {0, 1},
	    {(uint64_t)1 << 31, 1},
	    {((uint64_t)1 << 32) + 7, ((uint64_t)1 << 63) + 5},
	    {UINT64_MAX, UINT64_MAX},
	};
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	static const uint8_t bin[] = {0x00, 0xff, 0x30, 0x82, 0x00, 0x10};
	int fd;

	(void)state;
	fd = open_ready(16380);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		uint8_t buf[1024];
		struct spop_writer w;
		struct spop_value v;
		struct ack a;
		size_t start;

		spop_writer_init(&w, buf, sizeof(buf));
		start =
		    spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, ids[i].sid, ids[i].fid);
		spop_put_message(&w, "mtls", 16);
		v = (struct spop_value){.type = SPOP_T_NULL};
		spop_put_kv(&w, "", &v);
		v = spop_bool(true);
		spop_put_kv(&w, "", &v);
		v = spop_bool(false);
		spop_put_kv(&w, "b", &v);
		v = (struct spop_value){.type = SPOP_T_INT32, .i = -2147483648LL};
		spop_put_kv(&w, "", &v);
		v = (struct spop_value){.type = SPOP_T_INT32, .i = 9444};
		spop_put_kv(&w, "i32", &v);
		v = (struct spop_value){.type = SPOP_T_UINT32, .u = UINT32_MAX};
		spop_put_kv(&w, "", &v);
		v = (struct spop_value){.type = SPOP_T_INT64, .i = -1};
		spop_put_kv(&w, "", &v);
		v = (struct spop_value){.type = SPOP_T_INT64, .i = INT64_MIN};
		spop_put_kv(&w, "", &v);
		v = (struct spop_value){.type = SPOP_T_INT64, .i = INT64_MAX};
		spop_put_kv(&w, "", &v);
		v = (struct spop_value){.type = SPOP_T_UINT64, .u = UINT64_MAX};
		spop_put_kv(&w, "", &v);
		v = (struct spop_value){.type = SPOP_T_IPV4, .ip = {127, 0, 0, 1}};
		spop_put_kv(&w, "src", &v);
		v = (struct spop_value){.type = SPOP_T_IPV6};
		memcpy(v.ip, v6, sizeof(v6));
		spop_put_kv(&w, "", &v);
		v = spop_str("");
		spop_put_kv(&w, "", &v);
		v = spop_str("CN=alice,O=\"Ex, Inc\"");
		spop_put_kv(&w, "", &v);
		v = spop_bin(bin, sizeof(bin));
		spop_put_kv(&w, "", &v);
		v = spop_bin("", 0);
		spop_put_kv(&w, "", &v);
		assert_int_equal(spop_frame_end(&w, start, 16380), 0);
		send_all(fd, buf, w.len);
		expect_ack(fd, ids[i].sid, ids[i].fid, 16380, &a);
		assert_mtls_vars(&a);
	}
	xclose(fd);
}

/* Several messages in one NOTIFY (SPOE.txt §3.3) and a message with no handler. */
static void test_notify_unknown_message(void **state)
{
	uint8_t buf[512];
	struct spop_writer w;
	struct spop_value v = spop_int(1);
	struct ack a;
	size_t start;
	int fd;

	(void)state;
	fd = open_ready(16380);
	send_all(fd, buf, build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, 11, 2, "no-such-msg"));
	expect_ack(fd, 11, 2, 16380, &a);
	assert_null(ack_get(&a, SPOP_SCOPE_SESS, "seen"));

	/* No message at all: still one ACK with an action. */
	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 12, 3);
	assert_int_equal(spop_frame_end(&w, start, 16380), 0);
	send_all(fd, buf, w.len);
	expect_ack(fd, 12, 3, 16380, &a);

	/* An unknown message, then mtls, in the same NOTIFY. */
	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 13, 4);
	spop_put_message(&w, "other", 1);
	spop_put_kv(&w, "x", &v);
	spop_put_message(&w, "mtls", 0);
	assert_int_equal(spop_frame_end(&w, start, 16380), 0);
	send_all(fd, buf, w.len);
	expect_ack(fd, 13, 4, 16380, &a);
	assert_mtls_vars(&a);
	xclose(fd);
}

/* research/spop.md §1.5: up to 20 NOTIFYs in flight, ACKs in any order. */
static void test_pipelining(void **state)
{
	uint8_t buf[NPIPE * 128];
	bool seen[NPIPE] = {false};
	size_t len = 0;
	int fd;

	(void)state;
	fd = open_ready(16380);
	for (unsigned i = 0; i < NPIPE; i++)
		len += build_notify(buf + len, sizeof(buf) - len, SPOP_FLAG_FIN, 100 + i % 7, 1 + i,
		                    "mtls");
	send_all(fd, buf, len); /* one write */
	for (unsigned n = 0; n < NPIPE; n++) {
		uint8_t fb[FRAME_BUF];
		struct spop_frame f;
		struct ack a;
		unsigned i;

		recv_frame(fd, fb, &f, 16380);
		assert_int_equal(f.type, SPOP_FRAME_ACK);
		assert_int_equal(f.flags, SPOP_FLAG_FIN);
		assert_true(f.fid >= 1 && f.fid <= NPIPE);
		i = (unsigned)f.fid - 1;
		assert_int_equal(f.sid, 100 + i % 7);
		if (seen[i])
			fail_msg("two ACKs for sid=%" PRIu64 " fid=%" PRIu64, f.sid, f.fid);
		seen[i] = true;
		decode_ack(&f, &a);
		assert_mtls_vars(&a);
	}
	expect_silence(fd, 50); /* exactly one ACK per NOTIFY */
	xclose(fd);
}

/* Frames split across reads: one byte per segment (TCP_NODELAY, a pause per byte). */
static void test_byte_by_byte(void **state)
{
	uint8_t buf[512];
	size_t n;
	struct ack a;
	int fd;

	(void)state;
	fd = tcp_connect(spop_port);
	assert_true(fd >= 0);
	set_nodelay(fd);
	n = build_hello(buf, sizeof(buf), K_ALL, "2.0", 4096);
	for (size_t i = 0; i < n; i++) {
		send_all(fd, buf + i, 1);
		sleep_ms(1);
	}
	expect_agent_hello(fd, 4096);
	n = build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, 42, 1, "mtls");
	for (size_t i = 0; i + 1 < n; i++) {
		send_all(fd, buf + i, 1);
		sleep_ms(1);
	}
	expect_silence(fd, 30); /* no answer to a partial frame */
	send_all(fd, buf + n - 1, 1);
	expect_ack(fd, 42, 1, 4096, &a);
	assert_mtls_vars(&a);

	/* Two NOTIFYs split at every offset of a 3-byte stride, straddling the boundary. */
	n = build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, 43, 1, "mtls");
	n += build_notify(buf + n, sizeof(buf) - n, SPOP_FLAG_FIN, 44, 1, "mtls");
	for (size_t i = 0; i < n; i += 3) {
		send_all(fd, buf + i, n - i < 3 ? n - i : 3);
		sleep_ms(1);
	}
	expect_ack(fd, 43, 1, 4096, &a);
	expect_ack(fd, 44, 1, 4096, &a);
	xclose(fd);
}

/* HELLO, 300 NOTIFYs and a DISCONNECT in one write: answered in order, then closed. */
static void test_many_frames_one_write(void **state)
{
	enum { N = 300 };
	uint8_t *buf = malloc(N * 64 + 1024);
	size_t len = 0;
	unsigned got = 0;
	int fd;

	(void)state;
	assert_non_null(buf);
	fd = tcp_connect(spop_port);
	assert_true(fd >= 0);
	len += build_hello(buf, 1024, K_ALL, "2.0", 16380);
	for (unsigned i = 0; i < N; i++)
		len += build_notify(buf + len, 64, SPOP_FLAG_FIN, 5000 + i, 1, "mtls");
	len += build_haproxy_disconnect(buf + len, 128, SPOP_ST_NORMAL, "normal");
	send_all(fd, buf, len);
	expect_agent_hello(fd, 16380);
	for (unsigned i = 0; i < N; i++) {
		struct ack a;
		expect_ack(fd, 5000 + i, 1, 16380, &a);
		got++;
	}
	assert_int_equal(got, N);
	expect_disconnect(fd, SPOP_ST_NORMAL);
	xclose(fd);
	free(buf);
}

/* 200 connections open at once, each through HELLO and one NOTIFY. */
static void test_concurrent_connections(void **state)
{
	static int fds[NCONC];
	uint64_t total0 = scrape_one("spoa_mtls_connections_total"), end;
	uint8_t buf[512];
	size_t hn, nn;

	(void)state;
	for (int i = 0; i < NCONC; i++) {
		fds[i] = tcp_connect(spop_port);
		if (fds[i] < 0)
			fail_msg("connection %d: %s", i, strerror(-fds[i]));
	}
	hn = build_hello(buf, sizeof(buf), K_ALL, "2.0", 16380);
	for (int i = 0; i < NCONC; i++)
		send_all(fds[i], buf, hn);
	for (int i = 0; i < NCONC; i++)
		expect_agent_hello(fds[i], 16380);
	for (int i = 0; i < NCONC; i++) {
		nn = build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, (uint64_t)i, 1, "mtls");
		send_all(fds[i], buf, nn);
	}
	for (int i = 0; i < NCONC; i++) {
		struct ack a;
		expect_ack(fds[i], (uint64_t)i, 1, 16380, &a);
		assert_mtls_vars(&a);
	}
	assert_true(scrape_one("spoa_mtls_connections") >= NCONC);
	for (int i = 0; i < NCONC; i++)
		xclose(fds[i]);

	/* The agent sees the FINs asynchronously: give it a moment. */
	end = now_ms() + RECV_TIMEOUT_MS;
	while (scrape_one("spoa_mtls_connections") != 0 && now_ms() < end)
		sleep_ms(20);
	assert_int_equal(scrape_one("spoa_mtls_connections"), 0);
	assert_true(scrape_one("spoa_mtls_connections_total") >= total0 + NCONC);
}

/* A 1 GB length prefix: DISCONNECT 3 without allocating for it (research §1.9). */
static void test_oversized_length(void **state)
{
	static const uint8_t huge[4] = {0x40, 0x00, 0x00, 0x00};
	uint8_t junk[1024];
	long rss0, rss1;
	int fd;

	(void)state;
	memset(junk, 0x41, sizeof(junk));
	fd = open_ready(16380);
	rss0 = vmrss_kb(agent_pid);
	assert_true(rss0 > 0);
	send_all(fd, huge, sizeof(huge));
	send_all(fd, junk, sizeof(junk));
	expect_disconnect(fd, SPOP_ST_TOO_BIG);
	rss1 = vmrss_kb(agent_pid);
	xclose(fd);
	if (rss1 > rss0 + RSS_SLACK_KB)
		fail_msg("agent VmRSS grew from %ld kB to %ld kB", rss0, rss1);

	/* Just over the negotiated size, and before any HELLO. */
	fd = open_ready(16380);
	{
		static const uint8_t over[4] = {0x00, 0x00, 0x3f, 0xfd}; /* 16381 */
		send_all(fd, over, sizeof(over));
	}
	expect_disconnect(fd, SPOP_ST_TOO_BIG);
	xclose(fd);
	fd = tcp_connect(spop_port);
	assert_true(fd >= 0);
	send_all(fd, huge, sizeof(huge));
	expect_disconnect(fd, SPOP_ST_TOO_BIG);
	xclose(fd);
}

/* FIN clear: we never announced fragmentation (SPOE.txt §3.2.1) -> 10. */
static void test_fin_clear(void **state)
{
	uint8_t buf[512];
	int fd;

	(void)state;
	fd = open_ready(16380);
	send_all(fd, buf, build_notify(buf, sizeof(buf), 0, 1, 1, "mtls"));
	expect_disconnect(fd, SPOP_ST_FRAG_NOT_SUPPORTED);
	xclose(fd);
}

/* Sends one raw frame body on a fresh connection (after a HELLO when `hello`). */
static void malformed(bool hello, const void *body, size_t len, unsigned status)
{
	uint8_t buf[512];
	int fd;

	assert_true(len + 4 <= sizeof(buf));
	if (hello) {
		fd = open_ready(16380);
	} else {
		fd = tcp_connect(spop_port);
		assert_true(fd >= 0);
	}
	send_all(fd, buf, build_raw(buf, body, len));
	expect_disconnect(fd, status);
	xclose(fd);
}

static void test_malformed(void **state)
{
	/* NOTIFY FIN sid=1 fid=1, "mtls" with 2 arguments but only one there. */
	static const uint8_t truncated_kv[] = {3,   0, 0, 0,   1,   1,   1, 4, 'm', 't', 'l',
	                                       's', 2, 3, 's', 'n', 'i', 8, 3, 'a', 'b', 'c'};
	/* ... an argument value cut in the middle of its string. */
	static const uint8_t truncated_value[] = {3,   0,   0, 0, 1,   1,   1,   4, 'm', 't',
	                                          'l', 's', 1, 3, 's', 'n', 'i', 8, 10,  'a'};
	/* ... a stream-id varint of 11 bytes. */
	static const uint8_t long_varint[] = {3,    0,    0,    0,    1,    0xff, 0xff, 0xff, 0xff,
	                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1};
	/* ... a varint whose bits go beyond 64 (10 bytes). */
	static const uint8_t overflow_varint[] = {3,    0,    0,    0,    1,    0xff, 0xff, 0xff,
	                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1};
	/* ... an argument of reserved type 10. */
	static const uint8_t bad_type[] = {3,   0,   0,   0,   1, 1, 1,   4,
	                                   'm', 't', 'l', 's', 1, 1, 'x', 0x0a};
	/* ... a message name longer than the frame. */
	static const uint8_t long_name[] = {3, 0, 0, 0, 1, 1, 1, 0x40, 'm', 't', 'l', 's', 0};
	/* ... the header alone, then a string length varint that never ends. */
	static const uint8_t open_varint[] = {3, 0, 0, 0, 1, 1, 1, 0xff, 0xff, 0xff};
	/* HELLO whose KV list is cut. */
	static const uint8_t bad_hello[] = {1, 0, 0, 0, 1, 0, 0, 0x12, 's', 'u', 'p'};
	/* HAPROXY-DISCONNECT without a status-code. */
	static const uint8_t disco_nostatus[] = {2,   0,   0,   0,   1,   0,   0, 7, 'm',
	                                         'e', 's', 's', 'a', 'g', 'e', 8, 1, 'x'};
	static const uint8_t short6[] = {3, 0, 0, 0, 1, 1};
	uint8_t buf[512];

	(void)state;
	malformed(true, truncated_kv, sizeof(truncated_kv), SPOP_ST_INVALID);
	malformed(true, truncated_value, sizeof(truncated_value), SPOP_ST_INVALID);
	malformed(true, long_varint, sizeof(long_varint), SPOP_ST_INVALID);
	malformed(true, overflow_varint, sizeof(overflow_varint), SPOP_ST_INVALID);
	malformed(true, bad_type, sizeof(bad_type), SPOP_ST_INVALID);
	malformed(true, long_name, sizeof(long_name), SPOP_ST_INVALID);
	malformed(true, open_varint, sizeof(open_varint), SPOP_ST_INVALID);
	malformed(false, bad_hello, sizeof(bad_hello), SPOP_ST_INVALID);
	malformed(true, disco_nostatus, sizeof(disco_nostatus), SPOP_ST_INVALID);
	/* Frame length < 7 (type + flags + two varints), after and before the HELLO. */
	malformed(true, short6, sizeof(short6), SPOP_ST_INVALID);
	malformed(false, short6, sizeof(short6), SPOP_ST_INVALID);
	malformed(true, short6, 0, SPOP_ST_INVALID);
	/* State errors: a NOTIFY before the HELLO, a second HELLO. */
	malformed(false, buf + 4, build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, 1, 1, "mtls") - 4,
	          SPOP_ST_INVALID);
	{
		uint8_t body[512];
		size_t n = build_hello(body, sizeof(body), K_ALL, "2.0", 16380);
		malformed(true, body + 4, n - 4, SPOP_ST_INVALID);
	}
}

/* SPOE.txt §3.2: unknown frame types are skipped. */
static void test_unknown_frame_type(void **state)
{
	static const uint8_t type50[] = {50, 0, 0, 0, 1, 0, 0, 0xde, 0xad, 0xbe, 0xef};
	static const uint8_t type200[] = {200, 0, 0, 0, 1, 9, 9};
	uint8_t buf[512];
	size_t n;
	int fd;

	(void)state;
	fd = open_ready(16380);
	n = build_raw(buf, type50, sizeof(type50));
	n += build_raw(buf + n, type200, sizeof(type200));
	send_all(fd, buf, n);
	expect_silence(fd, 30);
	notify_roundtrip(fd, 77, 2, 16380);
	xclose(fd);
}

/* SPOE.txt §3.2.8: HAPROXY-DISCONNECT is answered with AGENT-DISCONNECT, then close. */
static void test_haproxy_disconnect(void **state)
{
	uint8_t buf[512];
	int fd;

	(void)state;
	fd = open_ready(16380);
	notify_roundtrip(fd, 1, 1, 16380);
	send_all(fd, buf, build_haproxy_disconnect(buf, sizeof(buf), SPOP_ST_NORMAL, "normal"));
	expect_disconnect(fd, SPOP_ST_NORMAL);
	xclose(fd);

	/* A timeout DISCONNECT as 2.6.12 sends it when idle (research §1.8). */
	fd = open_ready(16380);
	send_all(fd, buf,
	         build_haproxy_disconnect(buf, sizeof(buf), SPOP_ST_TIMEOUT, "a timeout occurred"));
	expect_disconnect(fd, SPOP_ST_NORMAL);
	xclose(fd);
}

/* A malformed frame closes its own connection only. */
static void test_isolation(void **state)
{
	static const uint8_t garbage[] = {3, 0, 0, 0, 1, 1, 1, 4, 'm', 't', 'l', 's', 9};
	uint8_t buf[64];
	int a, b;

	(void)state;
	b = open_ready(16380);
	a = open_ready(16380);
	notify_roundtrip(b, 1, 1, 16380);
	send_all(a, buf, build_raw(buf, garbage, sizeof(garbage)));
	expect_disconnect(a, SPOP_ST_INVALID);
	xclose(a);
	notify_roundtrip(b, 1, 2, 16380);
	notify_roundtrip(b, 2, 1, 16380);
	xclose(b);
}

/* A connection reset in the middle of a frame (3.1+ RSTs pooled connections). */
static void test_rst_mid_frame(void **state)
{
	struct linger lg = {1, 0};
	uint8_t buf[512];
	size_t n;
	int a, b, c;

	(void)state;
	b = open_ready(16380);
	for (int round = 0; round < 2; round++) {
		if (round == 0) {
			a = open_ready(16380); /* RST in the middle of a NOTIFY */
			n = build_notify(buf, sizeof(buf), SPOP_FLAG_FIN, 1, 1, "mtls");
		} else {
			a = tcp_connect(spop_port); /* RST in the middle of the HELLO */
			assert_true(a >= 0);
			n = build_hello(buf, sizeof(buf), K_ALL, "2.0", 16380);
		}
		set_nodelay(a);
		send_all(a, buf, n / 2);
		sleep_ms(20); /* let the agent buffer the half frame */
		assert_int_equal(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
		xclose(a);
		sleep_ms(20);
		notify_roundtrip(b, 9, (uint64_t)round + 1, 16380);
	}
	c = open_ready(16380);
	notify_roundtrip(c, 10, 1, 16380);
	xclose(c);
	xclose(b);
}

/* Every error case above was counted by its status. */
static void test_metrics_after_errors(void **state)
{
	static const char *const nonzero[] = {
	    "spoa_mtls_disconnects_sent_total{status=\"0\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"3\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"4\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"5\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"6\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"7\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"8\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"9\"}",
	    "spoa_mtls_disconnects_sent_total{status=\"10\"}",
	    "spoa_mtls_disconnects_received_total{status=\"0\"}",
	    "spoa_mtls_disconnects_received_total{status=\"2\"}",
	    "spoa_mtls_frames_received_total{type=\"other\"}",
	    "spoa_mtls_messages_unknown_total",
	    "spoa_mtls_health_checks_total",
	};
	char *text;

	(void)state;
	text = scrape();
	for (size_t i = 0; i < sizeof(nonzero) / sizeof(nonzero[0]); i++)
		if (metric(text, nonzero[i]) < 1)
			fail_msg("%s is 0 after the error cases", nonzero[i]);
	/* Nothing in this suite should have produced these. */
	assert_int_equal(metric(text, "spoa_mtls_disconnects_sent_total{status=\"13\"}"), 0);
	assert_int_equal(metric(text, "spoa_mtls_ack_too_big_total"), 0);
	assert_true(metric(text, "spoa_mtls_notify_processed_total") >= NCONC + NPIPE + 300);
	free(text);
}

/* SIGTERM: DISCONNECT "normal" on open connections, no new ones, exit 0. Last case. */
static void test_graceful_stop(void **state)
{
	enum { N = 6 };
	int fds[N], fd = -1, st;
	bool refused = false;
	uint64_t end;

	(void)state;
	assert_true(agent_pid > 0);
	for (int i = 0; i < N; i++)
		fds[i] = open_ready(16380);
	notify_roundtrip(fds[0], 1, 1, 16380);
	assert_int_equal(kill(agent_pid, SIGTERM), 0);
	for (int i = 0; i < N; i++)
		expect_disconnect(fds[i], SPOP_ST_NORMAL);
	/* Our sockets are still open, so the agent may still be draining: new connections
	 * must nevertheless be refused (or reset without a byte). */
	end = now_ms() + 2000;
	while (!refused && now_ms() < end) {
		fd = tcp_connect(spop_port);
		if (fd == -ECONNREFUSED) {
			refused = true;
			break;
		}
		if (fd >= 0) {
			uint8_t b;
			ssize_t n = recv(fd, &b, 1, 0);
			xclose(fd);
			assert_true(n <= 0);
		}
		sleep_ms(10);
	}
	assert_true(refused);
	for (int i = 0; i < N; i++)
		xclose(fds[i]);
	if (!agent_wait_exit(STOP_TIMEOUT_MS))
		fail_msg("the agent did not exit within %d ms of SIGTERM", STOP_TIMEOUT_MS);
	st = agent_status;
	if (WIFSIGNALED(st))
		fail_msg("the agent died of signal %d", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != 0)
		fail_msg("the agent exited %d (a sanitizer report? see its log)", WEXITSTATUS(st));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_hello_negotiation, close_leftovers),
	    cmocka_unit_test_teardown(test_hello_size_enforced, close_leftovers),
	    cmocka_unit_test_teardown(test_hello_rejections, close_leftovers),
	    cmocka_unit_test_teardown(test_hello_tolerance, close_leftovers),
	    cmocka_unit_test_teardown(test_healthcheck, close_leftovers),
	    cmocka_unit_test_teardown(test_notify_all_types, close_leftovers),
	    cmocka_unit_test_teardown(test_notify_unknown_message, close_leftovers),
	    cmocka_unit_test_teardown(test_pipelining, close_leftovers),
	    cmocka_unit_test_teardown(test_byte_by_byte, close_leftovers),
	    cmocka_unit_test_teardown(test_many_frames_one_write, close_leftovers),
	    cmocka_unit_test_teardown(test_oversized_length, close_leftovers),
	    cmocka_unit_test_teardown(test_fin_clear, close_leftovers),
	    cmocka_unit_test_teardown(test_malformed, close_leftovers),
	    cmocka_unit_test_teardown(test_unknown_frame_type, close_leftovers),
	    cmocka_unit_test_teardown(test_haproxy_disconnect, close_leftovers),
	    cmocka_unit_test_teardown(test_isolation, close_leftovers),
	    cmocka_unit_test_teardown(test_rst_mid_frame, close_leftovers),
	    /* After every case that opens connections: it wants the count back to 0. */
	    cmocka_unit_test_teardown(test_concurrent_connections, close_leftovers),
	    cmocka_unit_test_teardown(test_metrics_after_errors, close_leftovers),
	    cmocka_unit_test_teardown(test_graceful_stop, close_leftovers),
	};

	/* The sanitizer build must report leaks at exit as a failure (tests/run.sh sets the
	 * same when it runs us). */
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1", 0);
	setenv("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1", 0);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

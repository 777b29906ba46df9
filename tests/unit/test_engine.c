/*
 * Unit tests of agent/engine: the per-connection SPOP state machine, driven with bytes
 * and checked by decoding what it appends to the output writer with lib/spop.
 * Expected behaviour: research/spop.md §1.4 (HELLO), §1.9 (what the agent must do).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "handlers.h"
#include "log.h"
#include "spop.h"
#include "stats.h"

#include "banned.h"

#define OUR_FS   SPOP_MAX_FRAME_SIZE
#define OUT_CAP  (4 * (SPOP_MAX_FRAME_SIZE + 4) + 4096)
#define IN_CAP   (64 * 1024)
#define MAX_OUTS 64

/* The captured 2.6.12 frames used here (research/spop.md §1.4, §1.8). */
static const uint8_t cap_hello[] = "\x00\x00\x00\x81"
                                   "\x01\x00\x00\x00\x01\x00\x00"
                                   "\x12"
                                   "supported-versions"
                                   "\x08\x03"
                                   "2.0"
                                   "\x0e"
                                   "max-frame-size"
                                   "\x03\xfc\xf0\x06"
                                   "\x0c"
                                   "capabilities"
                                   "\x08\x10"
                                   "pipelining,async"
                                   "\x09"
                                   "engine-id"
                                   "\x08\x24"
                                   "0dbc8e44-c9b3-435a-a005-956de0c749d7";
static const uint8_t cap_hc_hello[] = "\x00\x00\x00\x4e"
                                      "\x01\x00\x00\x00\x01\x00\x00"
                                      "\x12"
                                      "supported-versions"
                                      "\x08\x03"
                                      "2.0"
                                      "\x0e"
                                      "max-frame-size"
                                      "\x03\xfc\xf0\x06"
                                      "\x0c"
                                      "capabilities"
                                      "\x08\x00"
                                      "\x0b"
                                      "healthcheck"
                                      "\x11";
static const uint8_t cap_agent_hello[] = "\x00\x00\x00\x40"
                                         "\x65\x00\x00\x00\x01\x00\x00"
                                         "\x07"
                                         "version"
                                         "\x08\x03"
                                         "2.0"
                                         "\x0e"
                                         "max-frame-size"
                                         "\x03\xfc\xf0\x06"
                                         "\x0c"
                                         "capabilities"
                                         "\x08\x0a"
                                         "pipelining";
static const uint8_t cap_idle_disco[] = "\x00\x00\x00\x31"
                                        "\x02\x00\x00\x00\x01\x00\x00"
                                        "\x0b"
                                        "status-code"
                                        "\x03\x02"
                                        "\x07"
                                        "message"
                                        "\x08\x12"
                                        "a timeout occurred";
static const uint8_t cap_agent_disco[] = "\x00\x00\x00\x25"
                                         "\x66\x00\x00\x00\x01\x00\x00"
                                         "\x0b"
                                         "status-code"
                                         "\x03\x00"
                                         "\x07"
                                         "message"
                                         "\x08\x06"
                                         "normal";
#define CAP_LEN(a) (sizeof(a) - 1)

/* ---- fixture ---- */

struct env {
	struct engine_conn c;
	void *hctx; /* the handlers' worker context: no policy loaded, so `disabled` */
	struct agent_stats st;
	uint8_t out[OUT_CAP];
	struct spop_writer w;
	uint8_t in[IN_CAP]; /* frames to feed, built with spop_writer */
	struct spop_writer iw;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	e->hctx = handlers_worker_new(16);
	if (!e->hctx)
		return -1;
	engine_init(&e->c, OUR_FS, &e->st, e->hctx);
	spop_writer_init(&e->w, e->out, sizeof(e->out));
	spop_writer_init(&e->iw, e->in, sizeof(e->in));
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	handlers_worker_free(e->hctx);
	free(e);
	return 0;
}

static size_t feed(struct env *e, const uint8_t *p, size_t len)
{
	size_t used = engine_input(&e->c, p, len, &e->w);

	assert_true(used <= len);
	assert_false(e->w.overflow);
	assert_true(e->w.len <= e->w.cap);
	return used;
}

/* Feeds what was built in e->iw, expects all of it consumed, then clears it. */
static void feed_built(struct env *e)
{
	assert_false(e->iw.overflow);
	assert_int_equal(feed(e, e->in, e->iw.len), e->iw.len);
	e->iw.len = 0;
}

/* ---- input builders ---- */

static void put_hello(struct spop_writer *w, const char *versions, uint64_t fs, const char *caps,
                      bool hc)
{
	size_t start = spop_frame_begin(w, SPOP_FRAME_HAPROXY_HELLO, SPOP_FLAG_FIN, 0, 0);
	struct spop_value v;

	if (versions) {
		v = spop_str(versions);
		spop_put_kv(w, "supported-versions", &v);
	}
	if (fs != UINT64_MAX) {
		v = spop_uint32((uint32_t)fs);
		spop_put_kv(w, "max-frame-size", &v);
	}
	if (caps) {
		v = spop_str(caps);
		spop_put_kv(w, "capabilities", &v);
	}
	if (hc) {
		v = spop_bool(true);
		spop_put_kv(w, "healthcheck", &v);
	}
	assert_int_equal(spop_frame_end(w, start, UINT32_MAX), 0);
}

/* A NOTIFY with one message `name` carrying two arguments, as the mtls message has. */
static void put_notify(struct spop_writer *w, uint64_t sid, uint64_t fid, const char *name)
{
	size_t start = spop_frame_begin(w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, sid, fid);
	struct spop_value v;

	spop_put_message(w, name, 2);
	v = spop_str("www.example.com");
	spop_put_kv(w, "sni", &v);
	v = spop_int(0);
	spop_put_kv(w, "verify", &v);
	assert_int_equal(spop_frame_end(w, start, UINT32_MAX), 0);
}

static void put_raw(struct spop_writer *w, uint8_t type, uint32_t flags, uint64_t sid, uint64_t fid,
                    const void *payload, size_t plen)
{
	size_t start = spop_frame_begin(w, type, flags, sid, fid);
	const uint8_t *p = payload;

	for (size_t i = 0; i < plen; i++)
		spop_put_u8(w, p[i]);
	assert_int_equal(spop_frame_end(w, start, UINT32_MAX), 0);
}

/* ---- output parsing ---- */

struct oframe {
	uint32_t flen;
	struct spop_frame f;
};

/* Splits buf into frames; every byte must belong to a well-formed frame. */
static size_t parse_out(const uint8_t *buf, size_t len, struct oframe *o, size_t max)
{
	size_t off = 0, n = 0;

	while (off < len) {
		assert_true(len - off >= 4);
		assert_true(n < max);
		o[n].flen = spop_frame_length(buf + off);
		assert_true(o[n].flen >= SPOP_FRAME_HDR_MIN);
		assert_true(o[n].flen <= len - off - 4);
		assert_int_equal(spop_frame_decode(buf + off + 4, o[n].flen, &o[n].f),
		                 (ssize_t)o[n].flen);
		/* Every frame we send is whole: FIN, never fragmented (§1.5). */
		assert_int_equal(o[n].f.flags, SPOP_FLAG_FIN);
		off += 4 + o[n].flen;
		n++;
	}
	return n;
}

static size_t out_frames(struct env *e, struct oframe *o)
{
	return parse_out(e->out, e->w.len, o, MAX_OUTS);
}

/* An AGENT-DISCONNECT with this status and HAProxy's message for it. */
static void assert_disconnect(const struct oframe *o, unsigned status)
{
	struct spop_disconnect d;

	assert_int_equal(o->f.type, SPOP_FRAME_AGENT_DISCONNECT);
	assert_true(o->f.sid == 0 && o->f.fid == 0);
	assert_int_equal(spop_disconnect_decode(o->f.payload.p, o->f.payload.len, &d), 0);
	assert_true(d.has_status);
	assert_int_equal(d.status, status);
	assert_true(spop_bytes_eq(d.message, spop_status_text(status)));
}

/* Exactly one frame out, an AGENT-DISCONNECT `status`, and the engine closing. */
static void assert_only_disconnect(struct env *e, unsigned status)
{
	struct oframe o[MAX_OUTS];

	assert_int_equal(out_frames(e, o), 1);
	assert_disconnect(&o[0], status);
	assert_int_equal(e->c.state, ENGINE_CLOSING);
	assert_int_equal(e->c.disco_status, status);
	assert_int_equal(stat_get(&e->st.disco_sent[stat_status_index(status)]), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_DISCONNECT]), 1);
}

struct agent_hello {
	struct spop_bytes version, caps;
	uint64_t fs;
	bool has_version, has_fs, has_caps;
};

static void decode_agent_hello(const struct oframe *o, struct agent_hello *h)
{
	const uint8_t *p = o->f.payload.p;
	size_t len = o->f.payload.len, off = 0;

	assert_int_equal(o->f.type, SPOP_FRAME_AGENT_HELLO);
	assert_true(o->f.sid == 0 && o->f.fid == 0);
	memset(h, 0, sizeof(*h));
	while (off < len) {
		struct spop_bytes k;
		struct spop_value v;
		ssize_t r = spop_kv_decode(p + off, len - off, &k, &v);

		assert_true(r > 0);
		off += (size_t)r;
		if (spop_bytes_eq(k, "version")) {
			assert_int_equal(v.type, SPOP_T_STRING);
			h->version = v.s;
			h->has_version = true;
		} else if (spop_bytes_eq(k, "max-frame-size")) {
			assert_int_equal(spop_value_uint(&v, &h->fs), 0);
			h->has_fs = true;
		} else if (spop_bytes_eq(k, "capabilities")) {
			assert_int_equal(v.type, SPOP_T_STRING);
			h->caps = v.s;
			h->has_caps = true;
		} else {
			fail_msg("unexpected AGENT-HELLO key %.*s", (int)k.len, (const char *)k.p);
		}
	}
}

struct action {
	uint8_t type, scope;
	struct spop_bytes name;
	struct spop_value v;
};

/* Splits an ACK payload into actions; every byte must belong to one. */
static size_t parse_actions(struct spop_bytes pl, struct action *a, size_t max)
{
	size_t off = 0, n = 0;

	while (off < pl.len) {
		ssize_t r;

		assert_true(n < max);
		assert_true(pl.len - off >= 3);
		a[n].type = pl.p[off];
		a[n].scope = pl.p[off + 2];
		if (a[n].type == SPOP_ACT_SET_VAR) {
			assert_int_equal(pl.p[off + 1], 3);
			off += 3;
			r = spop_kv_decode(pl.p + off, pl.len - off, &a[n].name, &a[n].v);
		} else {
			assert_int_equal(a[n].type, SPOP_ACT_UNSET_VAR);
			assert_int_equal(pl.p[off + 1], 2);
			off += 3;
			r = spop_string_decode(pl.p + off, pl.len - off, &a[n].name);
		}
		assert_true(r > 0);
		off += (size_t)r;
		n++;
	}
	return n;
}

/* The `mtls` answer when no policy is loaded: `disabled` (agent/mtls.c). */
static void assert_mtls_ack(const struct oframe *o, uint64_t sid, uint64_t fid)
{
	struct action a[16];
	size_t n;

	assert_int_equal(o->f.type, SPOP_FRAME_ACK);
	assert_true(o->f.sid == sid);
	assert_true(o->f.fid == fid);
	n = parse_actions(o->f.payload, a, 16);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(a[i].type, SPOP_ACT_SET_VAR);
		assert_int_equal(a[i].scope, SPOP_SCOPE_SESS);
	}
	assert_true(spop_bytes_eq(a[0].name, "seen"));
	assert_int_equal(a[0].v.type, SPOP_T_BOOL);
	assert_true(a[0].v.b);
	assert_true(spop_bytes_eq(a[1].name, "verdict"));
	assert_int_equal(a[1].v.type, SPOP_T_STRING);
	assert_true(spop_bytes_eq(a[1].v.s, "allow"));
	assert_true(spop_bytes_eq(a[2].name, "verify"));
	assert_int_equal(a[2].v.type, SPOP_T_STRING);
	assert_true(spop_bytes_eq(a[2].v.s, "NONE"));
	assert_true(spop_bytes_eq(a[3].name, "policy"));
	assert_int_equal(a[3].v.type, SPOP_T_STRING);
	assert_true(spop_bytes_eq(a[3].v.s, "disabled"));
	assert_true(spop_bytes_eq(a[4].name, "hdr"));
	assert_int_equal(a[4].v.type, SPOP_T_BOOL);
	assert_false(a[4].v.b);
}

/* HELLO with HAProxy's frame size `fs`, then the output cleared. */
static void make_ready(struct env *e, uint32_t fs)
{
	struct oframe o[MAX_OUTS];

	put_hello(&e->iw, "2.0", fs, "pipelining,async", false);
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(out_frames(e, o), 1);
	assert_int_equal(o[0].f.type, SPOP_FRAME_AGENT_HELLO);
	e->w.len = 0;
}

static uint64_t lat_count(struct agent_stats *st)
{
	uint64_t t = 0;

	for (unsigned i = 0; i <= STAT_LAT_BUCKETS; i++)
		t += stat_get(&st->lat_bucket[i]);
	return t;
}

/* ---- HELLO ---- */

static void test_hello_captured_reply_bytes(void **state)
{
	struct env *e = *state;

	assert_int_equal(feed(e, cap_hello, CAP_LEN(cap_hello)), CAP_LEN(cap_hello));
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(e->c.frame_size, 16380);
	/* The AGENT-HELLO 2.6.12 accepted, byte for byte. */
	assert_int_equal(e->w.len, CAP_LEN(cap_agent_hello));
	assert_memory_equal(e->out, cap_agent_hello, e->w.len);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_HELLO]), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_HELLO]), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_DISCONNECT]), 0);
	assert_int_equal(stat_get(&e->st.healthchecks), 0);
}

static void test_hello_frame_size_min_theirs(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct agent_hello h;

	put_hello(&e->iw, "2.0", 1024, "pipelining,async", false);
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(e->c.frame_size, 1024);
	assert_int_equal(out_frames(e, o), 1);
	decode_agent_hello(&o[0], &h);
	assert_true(h.has_version && h.has_fs && h.has_caps);
	assert_true(spop_bytes_eq(h.version, "2.0"));
	assert_true(h.fs == 1024);
	/* Exactly "pipelining": never async nor fragmentation (§1.5). */
	assert_true(spop_bytes_eq(h.caps, "pipelining"));
}

static void test_hello_frame_size_min_ours(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct agent_hello h;

	engine_init(&e->c, 4096, &e->st, e->hctx);
	put_hello(&e->iw, "2.0", 16380, "pipelining,async", false);
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(e->c.frame_size, 4096);
	assert_int_equal(out_frames(e, o), 1);
	decode_agent_hello(&o[0], &h);
	assert_true(h.fs == 4096);
	assert_true(spop_bytes_eq(h.caps, "pipelining"));
}

static void test_hello_frame_size_256_ok(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct agent_hello h;

	put_hello(&e->iw, "2.0", 256, "", false);
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(e->c.frame_size, 256);
	assert_int_equal(out_frames(e, o), 1);
	decode_agent_hello(&o[0], &h);
	assert_true(h.fs == 256);
}

static void test_hello_frame_size_255(void **state)
{
	struct env *e = *state;

	put_hello(&e->iw, "2.0", 255, "pipelining", false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_BAD_FRAME_SIZE);
}

static void test_hello_frame_size_0(void **state)
{
	struct env *e = *state;

	put_hello(&e->iw, "2.0", 0, "pipelining", false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_BAD_FRAME_SIZE);
}

static void test_hello_no_versions(void **state)
{
	struct env *e = *state;

	put_hello(&e->iw, NULL, 16380, "pipelining", false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_NO_VERSION);
}

static void test_hello_version_1_0(void **state)
{
	struct env *e = *state;

	put_hello(&e->iw, "1.0", 16380, "pipelining", false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_BAD_VERSION);
}

static void test_hello_version_2_1(void **state)
{
	struct env *e = *state;

	put_hello(&e->iw, "2.1", 16380, "pipelining", false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_BAD_VERSION);
}

static void test_hello_versions_list(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];

	put_hello(&e->iw, "1.0,2.0", 16380, "pipelining", false);
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(out_frames(e, o), 1);
	assert_int_equal(o[0].f.type, SPOP_FRAME_AGENT_HELLO);
}

static void test_hello_no_frame_size(void **state)
{
	struct env *e = *state;

	put_hello(&e->iw, "2.0", UINT64_MAX, "pipelining", false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_NO_FRAME_SIZE);
}

static void test_hello_no_capabilities(void **state)
{
	struct env *e = *state;

	put_hello(&e->iw, "2.0", 16380, NULL, false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_NO_CAPABILITIES);
}

static void test_hello_malformed_kv(void **state)
{
	struct env *e = *state;

	/* "supported-versions" announced with a length beyond the frame. */
	put_raw(&e->iw, SPOP_FRAME_HAPROXY_HELLO, SPOP_FLAG_FIN, 0, 0,
	        "\x12"
	        "supported-vers",
	        15);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_INVALID);
}

static void test_hello_twice(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	put_hello(&e->iw, "2.0", 16380, "pipelining", false);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_INVALID);
}

static void test_healthcheck_hello(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct agent_hello h;
	size_t before;

	assert_int_equal(feed(e, cap_hc_hello, CAP_LEN(cap_hc_hello)), CAP_LEN(cap_hc_hello));
	assert_int_equal(e->c.state, ENGINE_CLOSING);
	/* AGENT-HELLO and no DISCONNECT (§1.4). */
	assert_int_equal(out_frames(e, o), 1);
	decode_agent_hello(&o[0], &h);
	assert_true(spop_bytes_eq(h.version, "2.0"));
	assert_true(h.fs == 16380);
	assert_int_equal(stat_get(&e->st.healthchecks), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_HELLO]), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_DISCONNECT]), 0);
	for (unsigned i = 0; i <= SPOP_ST_COUNT; i++)
		assert_int_equal(stat_get(&e->st.disco_sent[i]), 0);
	/* A shutdown now adds nothing: the connection is already closing. */
	before = e->w.len;
	engine_shutdown(&e->c, &e->w);
	assert_int_equal(e->w.len, before);
}

/* ---- NOTIFY / ACK ---- */

static void test_notify_before_hello(void **state)
{
	struct env *e = *state;

	put_notify(&e->iw, 0, 1, "mtls");
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_INVALID);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_ACK]), 0);
}

static void notify_ids(void **state, uint64_t sid, uint64_t fid)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];

	make_ready(e, 16380);
	put_notify(&e->iw, sid, fid, "mtls");
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(out_frames(e, o), 1);
	assert_mtls_ack(&o[0], sid, fid);
	assert_true(o[0].flen <= e->c.frame_size);
	assert_int_equal(e->c.notifies, 1);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_NOTIFY]), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_ACK]), 1);
	assert_int_equal(stat_get(&e->st.notify_processed), 1);
	assert_int_equal(stat_get(&e->st.messages_unknown), 0);
	assert_int_equal(lat_count(&e->st), 1);
}

static void test_notify_sid0_fid1(void **state)
{
	notify_ids(state, 0, 1);
}

static void test_notify_ids_near_2_63(void **state)
{
	notify_ids(state, ((uint64_t)1 << 63) - 1, (uint64_t)1 << 63);
}

static void test_notify_ids_2_63_plus(void **state)
{
	notify_ids(state, (uint64_t)1 << 63, ((uint64_t)1 << 63) + 1);
}

static void test_notify_ids_max(void **state)
{
	notify_ids(state, UINT64_MAX, UINT64_MAX);
}

static void test_notify_unknown_message(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct action a[16];

	make_ready(e, 16380);
	put_notify(&e->iw, 7, 3, "something-else");
	feed_built(e);
	assert_int_equal(out_frames(e, o), 1);
	assert_int_equal(o[0].f.type, SPOP_FRAME_ACK);
	assert_true(o[0].f.sid == 7 && o[0].f.fid == 3);
	/* Never an empty ACK: HAProxy 3.1 stalls on those (research/spop.md §0.9). */
	assert_true(parse_actions(o[0].f.payload, a, 16) >= 1);
	assert_int_equal(stat_get(&e->st.messages_unknown), 1);
	assert_int_equal(stat_get(&e->st.notify_processed), 1);
}

static void test_notify_empty_payload(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct action a[16];

	make_ready(e, 16380);
	put_raw(&e->iw, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 5, 6, NULL, 0);
	feed_built(e);
	assert_int_equal(out_frames(e, o), 1);
	assert_int_equal(o[0].f.type, SPOP_FRAME_ACK);
	assert_true(o[0].f.sid == 5 && o[0].f.fid == 6);
	assert_true(parse_actions(o[0].f.payload, a, 16) >= 1);
}

static void test_notify_two_messages(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct action a[16];
	size_t start;
	struct spop_value v = spop_int(1);

	make_ready(e, 16380);
	/* An unknown message, then mtls: one ACK with mtls's five actions. */
	start = spop_frame_begin(&e->iw, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 9, 1);
	spop_put_message(&e->iw, "other", 1);
	spop_put_kv(&e->iw, "", &v);
	spop_put_message(&e->iw, "mtls", 0);
	assert_int_equal(spop_frame_end(&e->iw, start, UINT32_MAX), 0);
	feed_built(e);
	assert_int_equal(out_frames(e, o), 1);
	assert_int_equal(parse_actions(o[0].f.payload, a, 16), 5);
	assert_mtls_ack(&o[0], 9, 1);
	assert_int_equal(stat_get(&e->st.messages_unknown), 1);
}

static void test_notify_ack_too_big(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	struct action a[16];
	size_t start;

	make_ready(e, 256);
	/* Ten mtls messages: their forty actions do not fit 256 bytes. */
	start = spop_frame_begin(&e->iw, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 1, 1);
	for (int i = 0; i < 10; i++)
		spop_put_message(&e->iw, "mtls", 0);
	assert_int_equal(spop_frame_end(&e->iw, start, 256), 0);
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(out_frames(e, o), 1);
	assert_int_equal(o[0].f.type, SPOP_FRAME_ACK);
	assert_true(o[0].flen <= 256);
	assert_true(o[0].f.sid == 1 && o[0].f.fid == 1);
	/* Answered without the actions, so `seen` stays unset and HAProxy asks again. */
	assert_int_equal(parse_actions(o[0].f.payload, a, 16), 1);
	assert_int_equal(a[0].type, SPOP_ACT_UNSET_VAR);
	assert_int_equal(stat_get(&e->st.ack_too_big), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_ACK]), 1);
}

static void malformed_notify(void **state, const void *payload, size_t plen)
{
	struct env *e = *state;

	make_ready(e, 16380);
	put_raw(&e->iw, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 1, 1, payload, plen);
	feed_built(e);
	/* Only the DISCONNECT: no ACK for a frame we could not read. */
	assert_only_disconnect(e, SPOP_ST_INVALID);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_ACK]), 0);
	assert_int_equal(stat_get(&e->st.notify_processed), 0);
	assert_int_equal(e->c.notifies, 0);
}

static void test_notify_malformed_nargs(void **state)
{
	malformed_notify(state,
	                 "\x04"
	                 "mtls\x01",
	                 6);
}

static void test_notify_malformed_name(void **state)
{
	malformed_notify(state,
	                 "\x10"
	                 "mtls",
	                 5);
}

static void test_notify_malformed_after_good_message(void **state)
{
	/* A whole mtls message (its actions already written), then a truncated one. */
	malformed_notify(state,
	                 "\x04"
	                 "mtls\x00"
	                 "\x04"
	                 "mt",
	                 9);
}

static void test_notify_malformed_varint(void **state)
{
	malformed_notify(state,
	                 "\x04"
	                 "mtls\x01\x01k\x04\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00",
	                 20);
}

static void test_notify_malformed_reserved_type(void **state)
{
	malformed_notify(state,
	                 "\x04"
	                 "mtls\x01\x01k\x0a",
	                 9);
}

static void test_twenty_notifies_in_order(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];

	make_ready(e, 16380);
	for (uint64_t i = 0; i < 20; i++)
		put_notify(&e->iw, 100 + i, i + 1, "mtls");
	feed_built(e);
	assert_int_equal(out_frames(e, o), 20);
	for (uint64_t i = 0; i < 20; i++)
		assert_mtls_ack(&o[i], 100 + i, i + 1);
	assert_int_equal(e->c.notifies, 20);
	assert_int_equal(stat_get(&e->st.notify_processed), 20);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_NOTIFY]), 20);
	assert_int_equal(lat_count(&e->st), 20);
}

/* ---- framing errors ---- */

static void test_too_big_from_prefix_alone(void **state)
{
	struct env *e = *state;

	make_ready(e, 1024);
	/* Exactly the limit, prefix only: wait for the rest. */
	assert_int_equal(feed(e, (const uint8_t *)"\x00\x00\x04\x00", 4), 0);
	assert_int_equal(e->w.len, 0);
	assert_int_equal(e->c.state, ENGINE_READY);
	/* One more than the limit: refused from the prefix, the body never arrives. */
	assert_int_equal(feed(e, (const uint8_t *)"\x00\x00\x04\x01", 4), 4);
	assert_only_disconnect(e, SPOP_ST_TOO_BIG);
}

static void test_too_big_before_hello(void **state)
{
	struct env *e = *state;

	/* 16381 > our 16380, and a length that would be absurd to buffer. */
	assert_int_equal(feed(e, (const uint8_t *)"\x00\x00\x3f\xfd", 4), 4);
	assert_only_disconnect(e, SPOP_ST_TOO_BIG);
}

static void test_too_big_huge(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	assert_int_equal(feed(e, (const uint8_t *)"\xff\xff\xff\xff", 4), 4);
	assert_only_disconnect(e, SPOP_ST_TOO_BIG);
}

static void test_too_short_length(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	assert_int_equal(feed(e, (const uint8_t *)"\x00\x00\x00\x06", 4), 4);
	assert_only_disconnect(e, SPOP_ST_INVALID);
}

static void test_zero_length(void **state)
{
	struct env *e = *state;

	assert_int_equal(feed(e, (const uint8_t *)"\x00\x00\x00\x00", 4), 4);
	assert_only_disconnect(e, SPOP_ST_INVALID);
}

static void test_short_prefix_waits(void **state)
{
	struct env *e = *state;

	assert_int_equal(feed(e, (const uint8_t *)"\xff\xff\xff", 3), 0);
	assert_int_equal(e->w.len, 0);
	assert_int_equal(e->c.state, ENGINE_WAIT_HELLO);
}

static void test_notify_fin_clear(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	put_raw(&e->iw, SPOP_FRAME_NOTIFY, 0, 1, 1,
	        "\x04"
	        "mtls\x00",
	        6);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_FRAG_NOT_SUPPORTED);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_ACK]), 0);
}

static void test_hello_fin_clear(void **state)
{
	struct env *e = *state;

	put_raw(&e->iw, SPOP_FRAME_HAPROXY_HELLO, 0, 0, 0, NULL, 0);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_FRAG_NOT_SUPPORTED);
}

static void test_unset_frame_type(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	put_raw(&e->iw, SPOP_FRAME_UNSET, SPOP_FLAG_FIN, 1, 1,
	        "\x04"
	        "mtls\x00",
	        6);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_FRAG_NOT_SUPPORTED);
}

static void test_bad_header_varint(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	/* Frame of 7 bytes whose stream-id varint does not end. */
	assert_int_equal(
	    feed(e, (const uint8_t *)"\x00\x00\x00\x07\x03\x00\x00\x00\x01\xf0\x80", 11), 11);
	assert_only_disconnect(e, SPOP_ST_INVALID);
}

static void test_unknown_type_skipped(void **state)
{
	struct env *e = *state;
	struct oframe o[MAX_OUTS];

	make_ready(e, 16380);
	put_raw(&e->iw, 50, SPOP_FLAG_FIN, 0, 0, "\x01\x02\x03", 3);
	put_raw(&e->iw, 200, 0, 1, 1, NULL, 0); /* unknown and without FIN: skipped too */
	put_notify(&e->iw, 42, 1, "mtls");
	feed_built(e);
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(out_frames(e, o), 1);
	assert_mtls_ack(&o[0], 42, 1);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_OTHER]), 2);
}

static void test_agent_frame_from_peer(void **state)
{
	static const uint8_t types[] = {SPOP_FRAME_ACK, SPOP_FRAME_AGENT_HELLO,
	                                SPOP_FRAME_AGENT_DISCONNECT};

	for (size_t i = 0; i < sizeof(types); i++) {
		struct env *e = *state;

		engine_init(&e->c, OUR_FS, &e->st, e->hctx);
		memset(&e->st, 0, sizeof(e->st));
		e->w.len = 0;
		make_ready(e, 16380);
		put_raw(&e->iw, types[i], SPOP_FLAG_FIN, 0, 0, "\x01\x03\x02\x01x\x11", 6);
		feed_built(e);
		assert_only_disconnect(e, SPOP_ST_INVALID);
	}
}

/* ---- DISCONNECT and closing ---- */

static void test_haproxy_disconnect(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	assert_int_equal(feed(e, cap_idle_disco, CAP_LEN(cap_idle_disco)), CAP_LEN(cap_idle_disco));
	assert_int_equal(e->c.state, ENGINE_CLOSING);
	/* Our reply is the AGENT-DISCONNECT example of research/spop.md §1.8. */
	assert_int_equal(e->w.len, CAP_LEN(cap_agent_disco));
	assert_memory_equal(e->out, cap_agent_disco, e->w.len);
	assert_int_equal(stat_get(&e->st.disco_received[SPOP_ST_TIMEOUT]), 1);
	assert_int_equal(stat_get(&e->st.disco_sent[SPOP_ST_NORMAL]), 1);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_DISCONNECT]), 1);
}

static void test_haproxy_disconnect_before_hello(void **state)
{
	struct env *e = *state;

	assert_int_equal(feed(e, cap_idle_disco, CAP_LEN(cap_idle_disco)), CAP_LEN(cap_idle_disco));
	assert_only_disconnect(e, SPOP_ST_NORMAL);
}

static void test_haproxy_disconnect_unknown_status(void **state)
{
	struct env *e = *state;
	struct spop_writer *w = &e->iw;

	make_ready(e, 16380);
	assert_int_equal(spop_disconnect_encode(w, SPOP_FRAME_HAPROXY_DISCONNECT, 99, "x"), 0);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_NORMAL);
	assert_int_equal(stat_get(&e->st.disco_received[SPOP_ST_COUNT]), 1);
}

static void test_haproxy_disconnect_no_status(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	put_raw(&e->iw, SPOP_FRAME_HAPROXY_DISCONNECT, SPOP_FLAG_FIN, 0, 0,
	        "\x07"
	        "message\x08\x01x",
	        11);
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_INVALID);
}

static void test_input_after_closing_ignored(void **state)
{
	struct env *e = *state;
	size_t before;

	make_ready(e, 16380);
	assert_int_equal(feed(e, cap_idle_disco, CAP_LEN(cap_idle_disco)), CAP_LEN(cap_idle_disco));
	before = e->w.len;
	put_notify(&e->iw, 1, 1, "mtls");
	put_notify(&e->iw, 1, 2, "mtls");
	feed_built(e);                      /* all consumed... */
	assert_int_equal(e->w.len, before); /* ...and nothing answered */
	assert_int_equal(feed(e, (const uint8_t *)"\xff\xff\xff\xff\x00", 5), 5);
	assert_int_equal(e->w.len, before);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_ACK]), 0);
	assert_int_equal(e->c.state, ENGINE_CLOSING);
	/* Not even counted: the frames were never looked at. */
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_NOTIFY]), 0);
}

static void test_frames_after_disconnect_same_buffer(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	put_raw(&e->iw, SPOP_FRAME_NOTIFY, 0, 1, 1, NULL, 0); /* FIN clear: 10 */
	put_notify(&e->iw, 1, 2, "mtls");
	feed_built(e);
	assert_only_disconnect(e, SPOP_ST_FRAG_NOT_SUPPORTED);
}

static void test_shutdown_once(void **state)
{
	struct env *e = *state;
	size_t len;

	make_ready(e, 16380);
	engine_shutdown(&e->c, &e->w);
	assert_only_disconnect(e, SPOP_ST_NORMAL);
	len = e->w.len;
	engine_shutdown(&e->c, &e->w);
	assert_int_equal(e->w.len, len);
	assert_int_equal(stat_get(&e->st.disco_sent[SPOP_ST_NORMAL]), 1);
}

static void test_shutdown_before_hello(void **state)
{
	struct env *e = *state;

	engine_shutdown(&e->c, &e->w);
	assert_only_disconnect(e, SPOP_ST_NORMAL);
}

/* ---- splitting and backpressure ---- */

/* Feeds `in` in chunks of `chunk` bytes through a pending buffer, as the server does. */
static size_t feed_chunked(struct env *e, const uint8_t *in, size_t len, size_t chunk)
{
	static uint8_t pend[IN_CAP];
	size_t plen = 0, off = 0;

	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk, used;

		memcpy(pend + plen, in + off, n);
		plen += n;
		off += n;
		used = feed(e, pend, plen);
		memmove(pend, pend + used, plen - used);
		plen -= used;
	}
	return plen;
}

static void build_session(struct spop_writer *w)
{
	put_hello(w, "2.0", 16380, "pipelining,async", false);
	put_notify(w, 0, 1, "mtls");
	put_raw(w, 50, SPOP_FLAG_FIN, 0, 0, "abc", 3);
	put_notify(w, 1, 1, "unknown");
	put_notify(w, UINT64_MAX, (uint64_t)1 << 63, "mtls");
	/* End with the captured HAPROXY-DISCONNECT. */
	for (size_t i = 0; i < CAP_LEN(cap_idle_disco); i++)
		spop_put_u8(w, cap_idle_disco[i]);
}

static void test_split_equivalence(void **state)
{
	static uint8_t once[OUT_CAP];
	static const size_t chunks[] = {1, 2, 3, 7, 13, 64};
	struct env *e = *state;
	struct oframe o[MAX_OUTS];
	size_t once_len, total;

	build_session(&e->iw);
	assert_false(e->iw.overflow);
	total = e->iw.len;

	assert_int_equal(feed(e, e->in, total), total);
	once_len = e->w.len;
	memcpy(once, e->out, once_len);
	/* HELLO, 3 ACKs, DISCONNECT 0. */
	assert_int_equal(out_frames(e, o), 5);
	assert_int_equal(o[0].f.type, SPOP_FRAME_AGENT_HELLO);
	assert_mtls_ack(&o[1], 0, 1);
	assert_int_equal(o[2].f.type, SPOP_FRAME_ACK);
	assert_mtls_ack(&o[3], UINT64_MAX, (uint64_t)1 << 63);
	assert_disconnect(&o[4], SPOP_ST_NORMAL);

	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		struct agent_stats st;

		memset(&st, 0, sizeof(st));
		engine_init(&e->c, OUR_FS, &st, e->hctx);
		e->w.len = 0;
		assert_int_equal(feed_chunked(e, e->in, total, chunks[k]), 0);
		assert_int_equal(e->w.len, once_len);
		assert_memory_equal(e->out, once, once_len);
		assert_int_equal(stat_get(&st.notify_processed), 3);
		e->c.stats = NULL; /* st goes out of scope */
	}
}

static void test_backpressure(void **state)
{
	static uint8_t small[2 * (SPOP_MAX_FRAME_SIZE + 4) + ENGINE_DISCO_ROOM];
	struct env *e = *state;
	struct spop_writer w;
	struct oframe o[MAX_OUTS];
	size_t reserve, one, used;

	make_ready(e, 16380);
	reserve = engine_out_reserve(&e->c);
	assert_int_equal(reserve, 16380 + 4 + ENGINE_DISCO_ROOM);
	put_notify(&e->iw, 1, 1, "mtls");
	one = e->iw.len;
	put_notify(&e->iw, 1, 2, "mtls");
	put_notify(&e->iw, 1, 3, "mtls");

	/* Free room one byte short of the reserve: nothing consumed, nothing written. */
	spop_writer_init(&w, small, sizeof(small));
	w.len = sizeof(small) - (reserve - 1);
	assert_int_equal(engine_input(&e->c, e->in, e->iw.len, &w), 0);
	assert_int_equal(w.len, sizeof(small) - (reserve - 1));
	assert_int_equal(e->c.state, ENGINE_READY);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_NOTIFY]), 0);

	/* Exactly the reserve: one frame, then the ACK eats into it and the engine stops. */
	w.len = sizeof(small) - reserve;
	used = engine_input(&e->c, e->in, e->iw.len, &w);
	assert_int_equal(used, one);
	assert_int_equal(parse_out(small + sizeof(small) - reserve,
	                           w.len - (sizeof(small) - reserve), o, MAX_OUTS),
	                 1);
	assert_mtls_ack(&o[0], 1, 1);

	/* The peer read everything: the rest goes through. */
	w.len = 0;
	assert_int_equal(engine_input(&e->c, e->in + used, e->iw.len - used, &w), e->iw.len - used);
	assert_int_equal(parse_out(small, w.len, o, MAX_OUTS), 2);
	assert_mtls_ack(&o[0], 1, 2);
	assert_mtls_ack(&o[1], 1, 3);
	assert_int_equal(stat_get(&e->st.notify_processed), 3);
}

static void test_backpressure_too_big_still_refused(void **state)
{
	static uint8_t small[2 * (SPOP_MAX_FRAME_SIZE + 4) + ENGINE_DISCO_ROOM];
	struct env *e = *state;
	struct spop_writer w;
	struct oframe o[MAX_OUTS];

	make_ready(e, 16380);
	/* Below the reserve but with room for a DISCONNECT, as the server guarantees. */
	spop_writer_init(&w, small, sizeof(small));
	w.len = sizeof(small) - ENGINE_DISCO_ROOM;
	assert_int_equal(engine_input(&e->c, (const uint8_t *)"\x00\x01\x00\x00", 4, &w), 4);
	assert_int_equal(parse_out(small + sizeof(small) - ENGINE_DISCO_ROOM,
	                           w.len - (sizeof(small) - ENGINE_DISCO_ROOM), o, MAX_OUTS),
	                 1);
	assert_disconnect(&o[0], SPOP_ST_TOO_BIG);
	assert_int_equal(e->c.state, ENGINE_CLOSING);
}

static void test_stats_frames_counted(void **state)
{
	struct env *e = *state;

	make_ready(e, 16380);
	put_notify(&e->iw, 1, 1, "mtls");
	put_raw(&e->iw, 77, SPOP_FLAG_FIN, 0, 0, NULL, 0);
	feed_built(e);
	engine_shutdown(&e->c, &e->w);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_HELLO]), 1);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_NOTIFY]), 1);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_OTHER]), 1);
	assert_int_equal(stat_get(&e->st.frames_in[SF_IN_DISCONNECT]), 0);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_HELLO]), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_ACK]), 1);
	assert_int_equal(stat_get(&e->st.frames_out[SF_OUT_DISCONNECT]), 1);
	assert_int_equal(stat_get(&e->st.disco_sent[SPOP_ST_NORMAL]), 1);
	assert_int_equal(stat_get(&e->st.notify_processed), 1);
	assert_int_equal(lat_count(&e->st), 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_hello_captured_reply_bytes),
	    T(test_hello_frame_size_min_theirs),
	    T(test_hello_frame_size_min_ours),
	    T(test_hello_frame_size_256_ok),
	    T(test_hello_frame_size_255),
	    T(test_hello_frame_size_0),
	    T(test_hello_no_versions),
	    T(test_hello_version_1_0),
	    T(test_hello_version_2_1),
	    T(test_hello_versions_list),
	    T(test_hello_no_frame_size),
	    T(test_hello_no_capabilities),
	    T(test_hello_malformed_kv),
	    T(test_hello_twice),
	    T(test_healthcheck_hello),
	    T(test_notify_before_hello),
	    T(test_notify_sid0_fid1),
	    T(test_notify_ids_near_2_63),
	    T(test_notify_ids_2_63_plus),
	    T(test_notify_ids_max),
	    T(test_notify_unknown_message),
	    T(test_notify_empty_payload),
	    T(test_notify_two_messages),
	    T(test_notify_ack_too_big),
	    T(test_notify_malformed_nargs),
	    T(test_notify_malformed_name),
	    T(test_notify_malformed_after_good_message),
	    T(test_notify_malformed_varint),
	    T(test_notify_malformed_reserved_type),
	    T(test_twenty_notifies_in_order),
	    T(test_too_big_from_prefix_alone),
	    T(test_too_big_before_hello),
	    T(test_too_big_huge),
	    T(test_too_short_length),
	    T(test_zero_length),
	    T(test_short_prefix_waits),
	    T(test_notify_fin_clear),
	    T(test_hello_fin_clear),
	    T(test_unset_frame_type),
	    T(test_bad_header_varint),
	    T(test_unknown_type_skipped),
	    T(test_agent_frame_from_peer),
	    T(test_haproxy_disconnect),
	    T(test_haproxy_disconnect_before_hello),
	    T(test_haproxy_disconnect_unknown_status),
	    T(test_haproxy_disconnect_no_status),
	    T(test_input_after_closing_ignored),
	    T(test_frames_after_disconnect_same_buffer),
	    T(test_shutdown_once),
	    T(test_shutdown_before_hello),
	    T(test_split_equivalence),
	    T(test_backpressure),
	    T(test_backpressure_too_big_still_refused),
	    T(test_stats_frames_counted),
	};

	/* The engine logs every DISCONNECT it sends at warn; keep the test output readable. */
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * libFuzzer target for the SPOP codec (lib/spop) and the connection engine
 * (agent/engine), the code that reads HAProxy's bytes.
 *
 * Input layout (tests/fuzz/make-corpus.py writes seeds in it):
 *   byte 0   how the stream is cut into reads: bits 0-5 + 1 = chunk size, bit 6 = one
 *            read for everything, bit 7 = chunk sizes drawn from a PRNG seeded by byte 0
 *   byte 1   output buffer: bits 0-1 pick its capacity, bit 2 = the peer reads all our
 *            replies after every read (otherwise only when the engine stalls)
 *   byte 2   our max-frame-size: 256 + 64 * byte, capped at 16380
 *   rest     the bytes HAProxy sends
 * The decoders are also called directly on the stream, on its first frame and on that
 * frame's payload, and their results re-encoded and decoded again.
 *
 * Invariants checked (abort on violation): the engine consumes at most what it is given
 * and everything once closing; its output is a sequence of whole frames, each FIN, each a
 * well-formed AGENT-HELLO / ACK / AGENT-DISCONNECT no longer than the negotiated size;
 * the HELLO comes first, nothing follows a DISCONNECT or a health-check reply; one ACK
 * per NOTIFY counted; a full input buffer with room to answer always makes progress.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "spop.h"
#include "stats.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #x);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define PEND_CAP (SPOP_MAX_FRAME_SIZE + 4)
#define OUT_MAX  (4 * (SPOP_MAX_FRAME_SIZE + 4) + ENGINE_DISCO_ROOM)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- helpers ---- */

static bool value_eq(const struct spop_value *a, const struct spop_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case SPOP_T_NULL:
		return true;
	case SPOP_T_BOOL:
		return a->b == b->b;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		return a->i == b->i;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		return a->u == b->u;
	case SPOP_T_IPV4:
		return memcmp(a->ip, b->ip, 4) == 0;
	case SPOP_T_IPV6:
		return memcmp(a->ip, b->ip, 16) == 0;
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		return a->s.len == b->s.len &&
		       (a->s.len == 0 || memcmp(a->s.p, b->s.p, a->s.len) == 0);
	}
	return false;
}

static bool bytes_eq(struct spop_bytes a, struct spop_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Walks an ACK payload; returns the number of actions, or -1 when malformed. */
static int count_actions(struct spop_bytes pl)
{
	size_t off = 0;
	int n = 0;

	while (off < pl.len) {
		struct spop_bytes name;
		struct spop_value v;
		ssize_t r;

		if (pl.len - off < 3)
			return -1;
		if (pl.p[off] == SPOP_ACT_SET_VAR && pl.p[off + 1] == 3) {
			off += 3;
			r = spop_kv_decode(pl.p + off, pl.len - off, &name, &v);
		} else if (pl.p[off] == SPOP_ACT_UNSET_VAR && pl.p[off + 1] == 2) {
			off += 3;
			r = spop_string_decode(pl.p + off, pl.len - off, &name);
		} else {
			return -1;
		}
		if (r < 0)
			return -1;
		off += (size_t)r;
		n++;
	}
	return n;
}

/* ---- the engine ---- */

struct run {
	struct engine_conn c;
	struct agent_stats st;
	uint32_t our_fs;
	bool hello_seen, closed;
	uint64_t acks;
};

/* Checks the frames the engine appended in out[from..to). */
static void check_output(struct run *r, const uint8_t *out, size_t from, size_t to)
{
	size_t off = from;

	while (off < to) {
		struct spop_frame f;
		uint32_t flen;

		CHECK(!r->closed); /* nothing after a DISCONNECT or a health-check reply */
		CHECK(to - off >= 4);
		flen = spop_frame_length(out + off);
		CHECK(flen >= SPOP_FRAME_HDR_MIN);
		CHECK(flen <= to - off - 4);
		CHECK(flen <= r->c.frame_size);
		CHECK(spop_frame_decode(out + off + 4, flen, &f) == (ssize_t)flen);
		CHECK(f.flags == SPOP_FLAG_FIN);
		switch (f.type) {
		case SPOP_FRAME_AGENT_HELLO: {
			size_t o = 0;
			bool has_v = false, has_fs = false, has_caps = false;

			CHECK(!r->hello_seen);
			CHECK(f.sid == 0 && f.fid == 0);
			r->hello_seen = true;
			while (o < f.payload.len) {
				struct spop_bytes k;
				struct spop_value v;
				uint64_t u;
				ssize_t n =
				    spop_kv_decode(f.payload.p + o, f.payload.len - o, &k, &v);

				CHECK(n > 0);
				o += (size_t)n;
				if (spop_bytes_eq(k, "version")) {
					CHECK(v.type == SPOP_T_STRING && spop_bytes_eq(v.s, "2.0"));
					has_v = true;
				} else if (spop_bytes_eq(k, "max-frame-size")) {
					CHECK(spop_value_uint(&v, &u) == 0);
					CHECK(u >= SPOP_MIN_FRAME_SIZE && u <= r->our_fs);
					CHECK(u == r->c.frame_size);
					has_fs = true;
				} else if (spop_bytes_eq(k, "capabilities")) {
					CHECK(v.type == SPOP_T_STRING);
					CHECK(spop_bytes_eq(v.s, "pipelining"));
					has_caps = true;
				} else {
					CHECK(!"unexpected AGENT-HELLO key");
				}
			}
			CHECK(has_v && has_fs && has_caps);
			/* The reply to a health check is the connection's last frame. */
			if (stat_get(&r->st.healthchecks) > 0) {
				CHECK(r->c.state == ENGINE_CLOSING);
				r->closed = true;
			}
			break;
		}
		case SPOP_FRAME_ACK:
			CHECK(r->hello_seen);
			CHECK(count_actions(f.payload) >= 1); /* never an empty ACK */
			r->acks++;
			break;
		case SPOP_FRAME_AGENT_DISCONNECT: {
			struct spop_disconnect d;

			CHECK(f.sid == 0 && f.fid == 0);
			CHECK(spop_disconnect_decode(f.payload.p, f.payload.len, &d) == 0);
			CHECK(d.has_status);
			CHECK(d.status == r->c.disco_status);
			CHECK(d.message.len <= SPOP_MAX_DISCO_MSG);
			CHECK(r->c.state == ENGINE_CLOSING);
			r->closed = true;
			break;
		}
		default:
			CHECK(!"the engine wrote a frame type it must not send");
		}
		off += 4 + flen;
	}
	CHECK(off == to);
}

static void drive_engine(const uint8_t *data, size_t size)
{
	static uint8_t pend[PEND_CAP];
	static uint8_t out[OUT_MAX];
	static struct run r;
	struct spop_writer w;
	uint8_t cut, outmode;
	uint32_t prng;
	size_t off = 0, plen = 0, cap;
	bool drain_always;

	if (size < 3)
		return;
	cut = data[0];
	outmode = data[1];
	memset(&r, 0, sizeof(r));
	r.our_fs =
	    data[2] >= (SPOP_MAX_FRAME_SIZE - 256) / 64 ? SPOP_MAX_FRAME_SIZE : 256 + 64u * data[2];
	data += 3;
	size -= 3;
	prng = 0x9e3779b9u ^ cut;
	engine_init(&r.c, r.our_fs, &r.st, NULL);

	switch (outmode & 3) {
	case 0: /* what the server allocates */
		cap = 2 * ((size_t)r.our_fs + 4) + ENGINE_DISCO_ROOM;
		break;
	case 1: /* the bare reserve: one frame at a time */
		cap = engine_out_reserve(&r.c);
		break;
	case 2:
		cap = engine_out_reserve(&r.c) + (size_t)(outmode >> 3) * 37;
		break;
	default:
		cap = OUT_MAX;
		break;
	}
	CHECK(cap <= OUT_MAX);
	drain_always = (outmode & 4) != 0;
	spop_writer_init(&w, out, cap);

	for (;;) {
		size_t chunk, take, used, before = w.len, plen0, room0, reserve0;
		enum engine_state st0 = r.c.state;

		if (cut & 0x40) {
			chunk = size;
		} else if (cut & 0x80) {
			prng = prng * 1103515245u + 12345u;
			chunk = 1 + (prng >> 16) % 97;
		} else {
			chunk = (size_t)(cut & 0x3f) + 1;
		}
		take = size - off;
		if (take > chunk)
			take = chunk;
		if (take > PEND_CAP - plen)
			take = PEND_CAP - plen;
		memcpy(pend + plen, data + off, take);
		plen += take;
		off += take;

		plen0 = plen;
		room0 = w.cap - w.len;
		reserve0 = engine_out_reserve(&r.c);
		used = engine_input(&r.c, pend, plen, &w);
		CHECK(used <= plen);
		CHECK(!w.overflow);
		CHECK(w.len >= before && w.len <= w.cap);
		if (st0 == ENGINE_CLOSING) {
			/* Closing: everything is swallowed, nothing is answered. */
			CHECK(used == plen);
			CHECK(w.len == before);
		}
		if (r.c.state == ENGINE_CLOSING)
			CHECK(used == plen);
		/* A full buffer holds a whole frame (lengths above our size are refused), so
		 * with room for an answer the engine must move. */
		if (plen0 == PEND_CAP && room0 >= reserve0)
			CHECK(used > 0);
		check_output(&r, out, before, w.len);
		memmove(pend, pend + used, plen - used);
		plen -= used;

		if (drain_always || w.cap - w.len < engine_out_reserve(&r.c))
			w.len = 0; /* the peer read our replies */
		/* Done when the input is all in and the engine took what it could; a stall on
		 * output is retried, now that the replies were read. */
		if (off == size && (plen == 0 || (used == 0 && room0 >= reserve0)))
			break;
	}

	CHECK(r.acks == r.c.notifies);
	CHECK(r.acks == stat_get(&r.st.frames_out[SF_OUT_ACK]));
	CHECK(r.acks == stat_get(&r.st.notify_processed));
	CHECK(r.c.frame_size >= SPOP_MIN_FRAME_SIZE && r.c.frame_size <= r.our_fs);

	/* A graceful stop always finds room for its DISCONNECT, and only one. */
	{
		size_t before = w.len;
		bool was_closing = r.c.state == ENGINE_CLOSING;

		engine_shutdown(&r.c, &w);
		CHECK(!w.overflow);
		if (was_closing) {
			CHECK(w.len == before);
		} else {
			CHECK(w.len > before);
			CHECK(r.c.disco_status == SPOP_ST_NORMAL);
			check_output(&r, out, before, w.len);
			CHECK(r.closed);
		}
		before = w.len;
		engine_shutdown(&r.c, &w);
		CHECK(w.len == before);
		CHECK(r.c.state == ENGINE_CLOSING);
	}
}

/* ---- the decoders, directly ---- */

static void roundtrip_value(const uint8_t *p, size_t len)
{
	struct spop_value v, v2;
	uint8_t buf[64];
	struct spop_writer w;
	ssize_t n = spop_value_decode(p, len, &v);

	if (n < 0)
		return;
	CHECK((size_t)n <= len);
	if (v.type == SPOP_T_STRING || v.type == SPOP_T_BINARY) {
		CHECK(v.s.p >= p && v.s.len <= (size_t)(p + len - v.s.p));
		if (v.s.len > 32)
			return;
	}
	spop_writer_init(&w, buf, sizeof(buf));
	spop_put_value(&w, &v);
	CHECK(!w.overflow);
	CHECK(spop_value_decode(buf, w.len, &v2) == (ssize_t)w.len);
	CHECK(value_eq(&v, &v2));
}

static void roundtrip_varint(const uint8_t *p, size_t len)
{
	uint64_t v, v2;
	uint8_t buf[SPOP_VARINT_MAX_LEN];
	ssize_t n = spop_varint_decode(p, len, &v);
	size_t m;

	if (n < 0)
		return;
	CHECK(n >= 1 && n <= SPOP_VARINT_MAX_LEN && (size_t)n <= len);
	m = spop_varint_encode(v, buf);
	CHECK(m >= 1 && m <= SPOP_VARINT_MAX_LEN);
	CHECK(spop_varint_decode(buf, m, &v2) == (ssize_t)m);
	CHECK(v == v2);
}

static void roundtrip_messages(const uint8_t *p, size_t len)
{
	static struct spop_message m, m2;
	static uint8_t buf[2 * (SPOP_MAX_FRAME_SIZE + 4) + 20000 * 2];
	size_t off = 0;

	if (len > sizeof(buf) / 2)
		return; /* beyond -max_len: the re-encoding might not fit buf */
	while (off < len) {
		struct spop_writer w;
		ssize_t n = spop_message_decode(p + off, len - off, &m);

		if (n < 0)
			return;
		CHECK(n > 0 && (size_t)n <= len - off);
		CHECK(m.nargs <= SPOP_MAX_ARGS);
		/* Re-encode (canonical varints and type bytes) and decode again. */
		spop_writer_init(&w, buf, sizeof(buf));
		spop_put_string(&w, m.name.p, m.name.len);
		spop_put_u8(&w, (uint8_t)m.nargs);
		for (unsigned i = 0; i < m.nargs; i++) {
			spop_put_string(&w, m.args[i].name.p, m.args[i].name.len);
			spop_put_value(&w, &m.args[i].value);
		}
		CHECK(!w.overflow);
		CHECK(spop_message_decode(buf, w.len, &m2) == (ssize_t)w.len);
		CHECK(bytes_eq(m.name, m2.name) && m.nargs == m2.nargs);
		for (unsigned i = 0; i < m.nargs; i++) {
			CHECK(bytes_eq(m.args[i].name, m2.args[i].name));
			CHECK(value_eq(&m.args[i].value, &m2.args[i].value));
		}
		off += (size_t)n;
	}
}

static void decode_payload(const uint8_t *p, size_t len)
{
	struct spop_hello h;
	struct spop_disconnect d;

	if (spop_hello_decode(p, len, &h) == 0) {
		if (h.has_versions)
			CHECK(h.versions.p >= p && h.versions.len <= len);
		if (h.has_capabilities)
			CHECK(h.capabilities.p >= p && h.capabilities.len <= len);
		(void)spop_list_has(h.versions, SPOP_VERSION);
		(void)spop_list_has(h.capabilities, "pipelining");
	}
	if (spop_disconnect_decode(p, len, &d) == 0)
		CHECK(d.message.len <= len);
	roundtrip_messages(p, len);
}

static void drive_decoders(const uint8_t *data, size_t size)
{
	struct spop_frame f;

	roundtrip_varint(data, size);
	roundtrip_value(data, size);
	decode_payload(data, size);
	if (spop_frame_decode(data, size, &f) >= 0) {
		CHECK(f.payload.p >= data && f.payload.len <= size - SPOP_FRAME_HDR_MIN);
		decode_payload(f.payload.p, f.payload.len);
	}
	/* The stream's first frame as the engine would see it. */
	if (size >= 4) {
		uint32_t flen = spop_frame_length(data);

		if (flen <= size - 4 && spop_frame_decode(data + 4, flen, &f) >= 0) {
			CHECK(f.payload.p + f.payload.len == data + 4 + flen);
			decode_payload(f.payload.p, f.payload.len);
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* The engine logs every refused frame: silence it, the fuzzer prints enough. */
	log_set_level((enum log_level)(LOG_ERROR + 1));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	drive_engine(data, size);
	if (size >= 3)
		drive_decoders(data + 3, size - 3);
	drive_decoders(data, size);
	return 0;
}

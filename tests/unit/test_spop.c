/*
 * Unit tests of lib/spop, the SPOP 2.0 codec. The vectors and captured frames come from
 * research/spop.md (§1.2 varints, §1.3 typed data, §1.4 HELLOs, §1.6 NOTIFY/ACK, §1.8
 * DISCONNECT), captured against HAProxy 2.6.12.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spop.h"

#include "banned.h"

/* A string literal as (bytes, length), without its NUL. */
#define LIT(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* ---- captured frames (research/spop.md), whole, length prefix included ---- */

/* §1.4: 2.6.12 HAPROXY-HELLO, frame length 129. */
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

/* §1.4: health-check HELLO, frame length 0x4e. */
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

/* §1.4: the AGENT-HELLO 2.6.12 accepted. */
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

/* §1.6: NOTIFY sid 88 fid 1, conn-msg src=127.0.0.1 dport=9444. */
static const uint8_t cap_notify[] = "\x00\x00\x00\x24"
                                    "\x03\x00\x00\x00\x01\x58\x01"
                                    "\x08"
                                    "conn-msg"
                                    "\x02"
                                    "\x03"
                                    "src"
                                    "\x06\x7f\x00\x00\x01"
                                    "\x05"
                                    "dport"
                                    "\x04\xf4\xbf\x03";

/* §1.6: the ACK the probe sent and 2.6.12 applied. */
static const uint8_t cap_ack[] = "\x00\x00\x00\x42"
                                 "\x67\x00\x00\x00\x01\x58\x01"
                                 "\x01\x03\x02\x07"
                                 "verdict"
                                 "\x08\x05"
                                 "allow"
                                 "\x01\x03\x01\x04"
                                 "seen"
                                 "\x11"
                                 "\x01\x03\x02\x01"
                                 "n"
                                 "\x04\x2a"
                                 "\x01\x03\x02\x02"
                                 "ip"
                                 "\x06\x0a\x01\x02\x03"
                                 "\x01\x03\x02\x07"
                                 "nothere"
                                 "\x08\x01"
                                 "x";

/* §1.6: the smallest useful ACK. */
static const uint8_t cap_small_ack[] = "\x00\x00\x00\x0e"
                                       "\x67\x00\x00\x00\x01\x58\x01"
                                       "\x01\x03\x02\x02"
                                       "ok"
                                       "\x11";

/* §1.8: 2.6.12 idle-timeout HAPROXY-DISCONNECT. */
static const uint8_t cap_idle_disco[] = "\x00\x00\x00\x31"
                                        "\x02\x00\x00\x00\x01\x00\x00"
                                        "\x0b"
                                        "status-code"
                                        "\x03\x02"
                                        "\x07"
                                        "message"
                                        "\x08\x12"
                                        "a timeout occurred";

/* §1.8: AGENT-DISCONNECT example. */
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

/* ---- helpers ---- */

static void assert_bytes_eq(struct spop_bytes b, const char *s)
{
	size_t n = strlen(s);

	assert_int_equal(b.len, n);
	assert_memory_equal(b.p, s, n);
}

/* Decodes a whole captured frame: the prefix must match the bytes that follow it. */
static void decode_captured(const uint8_t *buf, size_t len, struct spop_frame *f)
{
	uint32_t flen;

	assert_true(len >= 4);
	flen = spop_frame_length(buf);
	assert_int_equal(flen, len - 4);
	assert_int_equal(spop_frame_decode(buf + 4, flen, f), (ssize_t)flen);
}

/* ---- varints (§1.2) ---- */

struct varint_vec {
	uint64_t v;
	size_t n;
	uint8_t b[SPOP_VARINT_MAX_LEN];
};

static const struct varint_vec varint_vecs[] = {
    {0, 1, {0x00}},
    {239, 1, {0xef}},
    {240, 2, {0xf0, 0x00}},
    {255, 2, {0xff, 0x00}},
    {256, 2, {0xf0, 0x01}},
    {300, 2, {0xfc, 0x03}},
    {2287, 2, {0xff, 0x7f}},
    {2288, 3, {0xf0, 0x80, 0x00}},
    {16380, 3, {0xfc, 0xf0, 0x06}},
    {65535, 3, {0xff, 0xf0, 0x1e}},
    {264431, 3, {0xff, 0xff, 0x7f}},
    {264432, 4, {0xf0, 0x80, 0x80, 0x00}},
    {33818864, 5, {0xf0, 0x80, 0x80, 0x80, 0x00}},
    {UINT32_MAX, 5, {0xff, 0xf0, 0xfe, 0xfe, 0x7e}},
    {UINT64_MAX, 10, {0xff, 0xf0, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x0e}},
};
#define N_VARINT_VECS (sizeof(varint_vecs) / sizeof(varint_vecs[0]))

static void test_varint_encode_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_VARINT_VECS; i++) {
		uint8_t out[SPOP_VARINT_MAX_LEN + 4];
		size_t n;

		memset(out, 0xaa, sizeof(out));
		n = spop_varint_encode(varint_vecs[i].v, out);
		assert_int_equal(n, varint_vecs[i].n);
		assert_memory_equal(out, varint_vecs[i].b, n);
		/* Nothing written past the varint. */
		assert_int_equal(out[n], 0xaa);
	}
}

static void test_varint_writer_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_VARINT_VECS; i++) {
		uint8_t buf[32];
		struct spop_writer w;

		spop_writer_init(&w, buf, sizeof(buf));
		spop_put_varint(&w, varint_vecs[i].v);
		assert_false(w.overflow);
		assert_int_equal(w.len, varint_vecs[i].n);
		assert_memory_equal(buf, varint_vecs[i].b, w.len);
	}
}

static void test_varint_decode_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_VARINT_VECS; i++) {
		const struct varint_vec *t = &varint_vecs[i];
		uint8_t buf[SPOP_VARINT_MAX_LEN + 3];
		uint64_t v = 12345;

		assert_int_equal(spop_varint_decode(t->b, t->n, &v), (ssize_t)t->n);
		assert_true(v == t->v);
		/* Trailing bytes are left alone. */
		memcpy(buf, t->b, t->n);
		memset(buf + t->n, 0x7f, 3);
		v = 0;
		assert_int_equal(spop_varint_decode(buf, t->n + 3, &v), (ssize_t)t->n);
		assert_true(v == t->v);
		/* Every strict prefix is truncated. */
		for (size_t k = 0; k < t->n; k++)
			assert_int_equal(spop_varint_decode(t->b, k, &v), -1);
	}
}

static void test_varint_roundtrip_boundaries(void **state)
{
	static const uint64_t vals[] = {
	    1,
	    238,
	    241,
	    2286,
	    2289,
	    264433,
	    33818863,
	    33818865,
	    4328786159ull,
	    4328786160ull,
	    (uint64_t)INT64_MAX,
	    (uint64_t)INT64_MAX + 1,
	    UINT64_MAX - 1,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t b[SPOP_VARINT_MAX_LEN];
		uint64_t v = 0;
		size_t n = spop_varint_encode(vals[i], b);

		assert_true(n >= 1 && n <= SPOP_VARINT_MAX_LEN);
		assert_int_equal(spop_varint_decode(b, n, &v), (ssize_t)n);
		assert_true(v == vals[i]);
	}
	/* The table's length classes (§1.2). */
	{
		uint8_t b[SPOP_VARINT_MAX_LEN];
		assert_int_equal(spop_varint_encode(4328786159ull, b), 5);
		assert_int_equal(spop_varint_encode(4328786160ull, b), 6);
	}
}

static void test_varint_rejects(void **state)
{
	/* Eleven bytes: ten continuation bytes, the varint never ends within the cap. */
	static const uint8_t eleven[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                 0xff, 0xff, 0xff, 0xff, 0x00};
	/* 2^64-1 with its last byte one higher: overflows 64 bits by addition. */
	static const uint8_t over_add[] = {0xff, 0xf0, 0xfe, 0xfe, 0xfe,
	                                   0xfe, 0xfe, 0xfe, 0xfe, 0x0f};
	/* Last byte with bits beyond 64 after the shift by 60. */
	static const uint8_t over_shift[] = {0xf0, 0x80, 0x80, 0x80, 0x80,
	                                     0x80, 0x80, 0x80, 0x80, 0x10};
	static const uint8_t over_7f[] = {0xff, 0xff, 0xff, 0xff, 0xff,
	                                  0xff, 0xff, 0xff, 0xff, 0x7f};
	static const uint8_t unterminated[] = {0xf0, 0x80, 0x80};
	uint64_t v = 0;

	(void)state;
	assert_int_equal(spop_varint_decode(eleven, sizeof(eleven), &v), -1);
	/* Even the first ten alone do not make a varint. */
	assert_int_equal(spop_varint_decode(eleven, 10, &v), -1);
	assert_int_equal(spop_varint_decode(over_add, sizeof(over_add), &v), -1);
	assert_int_equal(spop_varint_decode(over_shift, sizeof(over_shift), &v), -1);
	assert_int_equal(spop_varint_decode(over_7f, sizeof(over_7f), &v), -1);
	assert_int_equal(spop_varint_decode(unterminated, sizeof(unterminated), &v), -1);
	assert_int_equal(spop_varint_decode(unterminated, 0, &v), -1);
}

/* ---- typed data (§1.3) ---- */

/* Decodes bytes as one value (all of them), re-encodes it, expects the same bytes. */
static struct spop_value value_roundtrip(const uint8_t *b, size_t n)
{
	struct spop_value v;
	uint8_t out[64];
	struct spop_writer w;

	memset(&v, 0, sizeof(v));
	assert_int_equal(spop_value_decode(b, n, &v), (ssize_t)n);
	spop_writer_init(&w, out, sizeof(out));
	spop_put_value(&w, &v);
	assert_false(w.overflow);
	assert_int_equal(w.len, n);
	assert_memory_equal(out, b, n);
	/* Every strict prefix is truncated. */
	for (size_t k = 0; k < n; k++) {
		struct spop_value t;
		assert_int_equal(spop_value_decode(b, k, &t), -1);
	}
	return v;
}

static void test_value_null_bool(void **state)
{
	struct spop_value v;

	(void)state;
	v = value_roundtrip(LIT("\x00"));
	assert_int_equal(v.type, SPOP_T_NULL);
	v = value_roundtrip(LIT("\x11"));
	assert_int_equal(v.type, SPOP_T_BOOL);
	assert_true(v.b);
	v = value_roundtrip(LIT("\x01"));
	assert_int_equal(v.type, SPOP_T_BOOL);
	assert_false(v.b);
}

static void test_value_bool_constructors_encode(void **state)
{
	uint8_t out[4];
	struct spop_writer w;
	struct spop_value v;

	(void)state;
	spop_writer_init(&w, out, sizeof(out));
	v = spop_bool(true);
	spop_put_value(&w, &v);
	v = spop_bool(false);
	spop_put_value(&w, &v);
	assert_int_equal(w.len, 2);
	/* research/spop.md §0.3: true is 0x11, false is 0x01 (not 0x10/0x00). */
	assert_int_equal(out[0], 0x11);
	assert_int_equal(out[1], 0x01);
}

static void test_value_integers(void **state)
{
	struct spop_value v;

	(void)state;
	v = value_roundtrip(LIT("\x02\x2a"));
	assert_int_equal(v.type, SPOP_T_INT32);
	assert_true(v.i == 42);
	v = value_roundtrip(LIT("\x02\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e"));
	assert_int_equal(v.type, SPOP_T_INT32);
	assert_true(v.i == -1);

	v = value_roundtrip(LIT("\x03\xfc\xf0\x06"));
	assert_int_equal(v.type, SPOP_T_UINT32);
	assert_true(v.u == 16380);
	v = value_roundtrip(LIT("\x03\xff\xf0\xfe\xfe\x7e"));
	assert_true(v.u == UINT32_MAX);

	v = value_roundtrip(LIT("\x04\xf4\xbf\x03"));
	assert_int_equal(v.type, SPOP_T_INT64);
	assert_true(v.i == 9444);
	/* Negative INT64: the two's complement pattern, 10 bytes, no zig-zag (§1.3). */
	v = value_roundtrip(LIT("\x04\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e"));
	assert_int_equal(v.type, SPOP_T_INT64);
	assert_true(v.i == -1);

	v = value_roundtrip(LIT("\x05\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e"));
	assert_int_equal(v.type, SPOP_T_UINT64);
	assert_true(v.u == UINT64_MAX);
	v = value_roundtrip(LIT("\x05\x00"));
	assert_true(v.u == 0);
}

static void test_value_int64_extremes(void **state)
{
	static const int64_t vals[] = {INT64_MIN, INT64_MIN + 1, -2,  -240,     -1,
	                               0,         239,           240, INT64_MAX};

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t out[16];
		struct spop_writer w;
		struct spop_value v = spop_int(vals[i]), d;

		spop_writer_init(&w, out, sizeof(out));
		spop_put_value(&w, &v);
		assert_false(w.overflow);
		assert_int_equal(out[0], SPOP_T_INT64);
		if (vals[i] < 0)
			assert_int_equal(w.len, 11); /* 1 type byte + a 10-byte varint */
		assert_int_equal(spop_value_decode(out, w.len, &d), (ssize_t)w.len);
		assert_int_equal(d.type, SPOP_T_INT64);
		assert_true(d.i == vals[i]);
	}
}

static void test_value_addresses(void **state)
{
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	struct spop_value v;

	(void)state;
	v = value_roundtrip(LIT("\x06\x7f\x00\x00\x01"));
	assert_int_equal(v.type, SPOP_T_IPV4);
	assert_memory_equal(v.ip, "\x7f\x00\x00\x01", 4);
	v = value_roundtrip(LIT("\x07\x20\x01\x0d\xb8\x00\x00\x00\x00"
	                        "\x00\x00\x00\x00\x00\x00\x00\x01"));
	assert_int_equal(v.type, SPOP_T_IPV6);
	assert_memory_equal(v.ip, v6, 16);
}

static void test_value_string_binary(void **state)
{
	struct spop_value v;

	(void)state;
	v = value_roundtrip(LIT("\x08\x05"
	                        "allow"));
	assert_int_equal(v.type, SPOP_T_STRING);
	assert_bytes_eq(v.s, "allow");
	v = value_roundtrip(LIT("\x08\x00"));
	assert_int_equal(v.type, SPOP_T_STRING);
	assert_int_equal(v.s.len, 0);
	/* Binary keeps NULs and high bytes. */
	v = value_roundtrip(LIT("\x09\x04\x00\xff\x80\x00"));
	assert_int_equal(v.type, SPOP_T_BINARY);
	assert_int_equal(v.s.len, 4);
	assert_memory_equal(v.s.p, "\x00\xff\x80\x00", 4);
}

static void test_value_long_string(void **state)
{
	uint8_t payload[300], out[320];
	struct spop_writer w;
	struct spop_value v, d;

	(void)state;
	memset(payload, 'z', sizeof(payload));
	v = spop_bin(payload, sizeof(payload));
	spop_writer_init(&w, out, sizeof(out));
	spop_put_value(&w, &v);
	assert_false(w.overflow);
	/* 300 = fc 03 */
	assert_int_equal(w.len, 1 + 2 + 300);
	assert_memory_equal(out, "\x09\xfc\x03", 3);
	assert_int_equal(spop_value_decode(out, w.len, &d), (ssize_t)w.len);
	assert_int_equal(d.type, SPOP_T_BINARY);
	assert_int_equal(d.s.len, 300);
	assert_ptr_equal(d.s.p, out + 3); /* points into the buffer, no copy */
	/* A length one longer than what follows. */
	assert_int_equal(spop_value_decode(out, w.len - 1, &d), -1);
}

static void test_value_reserved_types(void **state)
{
	(void)state;
	for (unsigned t = 10; t <= 15; t++) {
		uint8_t b[8] = {(uint8_t)t, 0, 0, 0, 0, 0, 0, 0};
		struct spop_value v;

		assert_int_equal(spop_value_decode(b, sizeof(b), &v), -1);
		b[0] = (uint8_t)(t | 0x10); /* with a flag set: still reserved */
		assert_int_equal(spop_value_decode(b, sizeof(b), &v), -1);
	}
}

static void test_value_truncated(void **state)
{
	struct spop_value v;

	(void)state;
	assert_int_equal(spop_value_decode(LIT(""), &v), -1);
	assert_int_equal(spop_value_decode(LIT("\x06\x7f\x00\x00"), &v), -1);
	assert_int_equal(spop_value_decode(LIT("\x07\x00\x00\x00\x00\x00\x00\x00\x00"), &v), -1);
	assert_int_equal(spop_value_decode(LIT("\x08\x05"
	                                       "allo"),
	                                   &v),
	                 -1);
	assert_int_equal(spop_value_decode(LIT("\x09\xf0"), &v), -1);
	assert_int_equal(spop_value_decode(LIT("\x04\xf4\xbf"), &v), -1);
	assert_int_equal(spop_value_decode(LIT("\x03"), &v), -1);
	/* A string length that would wrap a naive bound check. */
	assert_int_equal(spop_value_decode(LIT("\x08\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e"
	                                       "abc"),
	                                   &v),
	                 -1);
}

static void test_value_uint(void **state)
{
	struct spop_value v;
	uint64_t u = 7;

	(void)state;
	v = spop_int(-1);
	assert_int_equal(spop_value_uint(&v, &u), -1);
	v = spop_int(5);
	assert_int_equal(spop_value_uint(&v, &u), 0);
	assert_true(u == 5);
	v = spop_uint32(16380);
	assert_int_equal(spop_value_uint(&v, &u), 0);
	assert_true(u == 16380);
	v.type = SPOP_T_UINT64;
	v.u = UINT64_MAX;
	assert_int_equal(spop_value_uint(&v, &u), 0);
	assert_true(u == UINT64_MAX);
	v = spop_str("16380");
	assert_int_equal(spop_value_uint(&v, &u), -1);
	v = spop_bool(true);
	assert_int_equal(spop_value_uint(&v, &u), -1);
}

/* ---- frames: HELLO (§1.4) ---- */

static void test_frame_length_prefix(void **state)
{
	(void)state;
	assert_int_equal(spop_frame_length((const uint8_t *)"\xde\xad\xbe\xef"), 0xdeadbeefu);
	assert_int_equal(spop_frame_length(cap_hello), 129);
	assert_int_equal(CAP_LEN(cap_hello), 4 + 129);
	assert_int_equal(spop_frame_length(cap_hc_hello), 0x4e);
	assert_int_equal(CAP_LEN(cap_hc_hello), 82);
}

static void test_hello_captured(void **state)
{
	struct spop_frame f;
	struct spop_hello h;

	(void)state;
	decode_captured(cap_hello, CAP_LEN(cap_hello), &f);
	assert_int_equal(f.type, SPOP_FRAME_HAPROXY_HELLO);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_true(f.sid == 0 && f.fid == 0);
	assert_ptr_equal(f.payload.p, cap_hello + 4 + 7);
	assert_int_equal(f.payload.len, 129 - 7);

	assert_int_equal(spop_hello_decode(f.payload.p, f.payload.len, &h), 0);
	assert_true(h.has_versions && h.has_frame_size && h.has_capabilities);
	assert_false(h.healthcheck);
	assert_bytes_eq(h.versions, "2.0");
	assert_true(h.frame_size == 16380);
	assert_bytes_eq(h.capabilities, "pipelining,async");
	assert_bytes_eq(h.engine_id, "0dbc8e44-c9b3-435a-a005-956de0c749d7");
	assert_true(spop_list_has(h.capabilities, "pipelining"));
	assert_true(spop_list_has(h.capabilities, "async"));
	assert_false(spop_list_has(h.capabilities, "fragmentation"));
	assert_true(spop_list_has(h.versions, SPOP_VERSION));
}

static void test_hello_healthcheck_captured(void **state)
{
	struct spop_frame f;
	struct spop_hello h;

	(void)state;
	decode_captured(cap_hc_hello, CAP_LEN(cap_hc_hello), &f);
	assert_int_equal(f.type, SPOP_FRAME_HAPROXY_HELLO);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_int_equal(spop_hello_decode(f.payload.p, f.payload.len, &h), 0);
	assert_true(h.healthcheck);
	assert_true(h.has_capabilities);
	assert_int_equal(h.capabilities.len, 0);
	assert_false(spop_list_has(h.capabilities, "pipelining"));
	assert_true(h.has_versions && h.has_frame_size);
	assert_true(h.frame_size == 16380);
	assert_int_equal(h.engine_id.len, 0);
}

static void test_haproxy_hello_encode_matches_captures(void **state)
{
	uint8_t buf[256];
	struct spop_writer w;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_haproxy_hello_encode(&w, "2.0", 16380, "pipelining,async", false,
	                                           "0dbc8e44-c9b3-435a-a005-956de0c749d7"),
	                 0);
	assert_int_equal(w.len, CAP_LEN(cap_hello));
	assert_memory_equal(buf, cap_hello, w.len);

	spop_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_haproxy_hello_encode(&w, "2.0", 16380, "", true, NULL), 0);
	assert_int_equal(w.len, CAP_LEN(cap_hc_hello));
	assert_memory_equal(buf, cap_hc_hello, w.len);
}

static void test_agent_hello_encode_matches_capture(void **state)
{
	uint8_t buf[128];
	struct spop_writer w;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_agent_hello_encode(&w, 16380, "pipelining"), 0);
	assert_int_equal(w.len, CAP_LEN(cap_agent_hello));
	assert_memory_equal(buf, cap_agent_hello, w.len);

	/* It does not fit: -1, and nothing left behind. */
	spop_writer_init(&w, buf, 40);
	assert_int_equal(spop_agent_hello_encode(&w, 16380, "pipelining"), -1);
	assert_int_equal(w.len, 0);
	assert_false(w.overflow);
}

static const size_t hello_kv_ends[] = {0, 24, 43, 74, 122};

static void test_hello_truncated_kv(void **state)
{
	struct spop_frame f;

	(void)state;
	decode_captured(cap_hello, CAP_LEN(cap_hello), &f);
	for (size_t k = 0; k <= f.payload.len; k++) {
		struct spop_hello h;
		bool boundary = false;
		int r;

		for (size_t i = 0; i < sizeof(hello_kv_ends) / sizeof(hello_kv_ends[0]); i++)
			boundary |= hello_kv_ends[i] == k;
		r = spop_hello_decode(f.payload.p, k, &h);
		if (boundary)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, -1);
	}
	/* At a boundary, the keys after it are missing. */
	{
		struct spop_hello h;
		assert_int_equal(spop_hello_decode(f.payload.p, 43, &h), 0);
		assert_true(h.has_versions && h.has_frame_size);
		assert_false(h.has_capabilities);
	}
}

static void test_hello_wrong_types_and_unknown_keys(void **state)
{
	uint8_t buf[256];
	struct spop_writer w;
	struct spop_hello h;
	struct spop_value v;

	(void)state;
	/* versions as an integer: malformed. */
	spop_writer_init(&w, buf, sizeof(buf));
	v = spop_int(2);
	spop_put_kv(&w, "supported-versions", &v);
	assert_int_equal(spop_hello_decode(buf, w.len, &h), -1);
	/* max-frame-size as a string: malformed. */
	spop_writer_init(&w, buf, sizeof(buf));
	v = spop_str("16380");
	spop_put_kv(&w, "max-frame-size", &v);
	assert_int_equal(spop_hello_decode(buf, w.len, &h), -1);
	/* healthcheck as an integer: malformed. */
	spop_writer_init(&w, buf, sizeof(buf));
	v = spop_int(1);
	spop_put_kv(&w, "healthcheck", &v);
	assert_int_equal(spop_hello_decode(buf, w.len, &h), -1);
	/* An unknown key of any type is skipped; max-frame-size as INT64 is accepted. */
	spop_writer_init(&w, buf, sizeof(buf));
	v = spop_bin("\x00\x01", 2);
	spop_put_kv(&w, "x-future", &v);
	v = spop_int(4096);
	spop_put_kv(&w, "max-frame-size", &v);
	v = spop_str("2.0");
	spop_put_kv(&w, "supported-versions", &v);
	assert_int_equal(spop_hello_decode(buf, w.len, &h), 0);
	assert_true(h.has_frame_size && h.frame_size == 4096);
	assert_true(h.has_versions);
	assert_false(h.has_capabilities);
	/* A negative max-frame-size is not a size. */
	spop_writer_init(&w, buf, sizeof(buf));
	v = spop_int(-1);
	spop_put_kv(&w, "max-frame-size", &v);
	assert_int_equal(spop_hello_decode(buf, w.len, &h), -1);
}

/* ---- frames: NOTIFY, messages (§1.1, §1.6) ---- */

static void test_notify_captured(void **state)
{
	struct spop_frame f;
	static struct spop_message m;

	(void)state;
	decode_captured(cap_notify, CAP_LEN(cap_notify), &f);
	assert_int_equal(f.type, SPOP_FRAME_NOTIFY);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_true(f.sid == 88);
	assert_true(f.fid == 1);
	assert_int_equal(spop_message_decode(f.payload.p, f.payload.len, &m),
	                 (ssize_t)f.payload.len);
	assert_bytes_eq(m.name, "conn-msg");
	assert_int_equal(m.nargs, 2);
	assert_bytes_eq(m.args[0].name, "src");
	assert_int_equal(m.args[0].value.type, SPOP_T_IPV4);
	assert_memory_equal(m.args[0].value.ip, "\x7f\x00\x00\x01", 4);
	assert_bytes_eq(m.args[1].name, "dport");
	assert_int_equal(m.args[1].value.type, SPOP_T_INT64);
	assert_true(m.args[1].value.i == 9444);
}

static void test_notify_encode_matches_capture(void **state)
{
	uint8_t buf[64];
	struct spop_writer w;
	struct spop_value v;
	size_t start;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 88, 1);
	assert_int_equal(start, 0);
	spop_put_message(&w, "conn-msg", 2);
	v.type = SPOP_T_IPV4;
	memcpy(v.ip, "\x7f\x00\x00\x01", 4);
	spop_put_kv(&w, "src", &v);
	v = spop_int(9444);
	spop_put_kv(&w, "dport", &v);
	assert_int_equal(spop_frame_end(&w, start, SPOP_MAX_FRAME_SIZE), 0);
	assert_int_equal(w.len, CAP_LEN(cap_notify));
	assert_memory_equal(buf, cap_notify, w.len);
}

static void test_message_truncated(void **state)
{
	struct spop_frame f;
	static struct spop_message m;

	(void)state;
	decode_captured(cap_notify, CAP_LEN(cap_notify), &f);
	for (size_t k = 0; k < f.payload.len; k++)
		assert_int_equal(spop_message_decode(f.payload.p, k, &m), -1);
	/* NB-ARGS larger than the arguments present. */
	assert_int_equal(spop_message_decode(LIT("\x01"
	                                         "m\x03\x01"
	                                         "a\x11"),
	                                     &m),
	                 -1);
	/* A message name with no NB-ARGS byte. */
	assert_int_equal(spop_message_decode(LIT("\x01"
	                                         "m"),
	                                     &m),
	                 -1);
}

static void test_message_empty_arg_names(void **state)
{
	/* `args ssl_c_used str(x)` without name=: names of length 0 (§1.1). */
	static const uint8_t b[] = "\x04"
	                           "mtls"
	                           "\x02"
	                           "\x00\x11"
	                           "\x00\x08\x01"
	                           "x";
	static struct spop_message m;

	(void)state;
	assert_int_equal(spop_message_decode(b, CAP_LEN(b), &m), (ssize_t)CAP_LEN(b));
	assert_bytes_eq(m.name, "mtls");
	assert_int_equal(m.nargs, 2);
	assert_int_equal(m.args[0].name.len, 0);
	assert_int_equal(m.args[0].value.type, SPOP_T_BOOL);
	assert_true(m.args[0].value.b);
	assert_int_equal(m.args[1].name.len, 0);
	assert_int_equal(m.args[1].value.type, SPOP_T_STRING);
	assert_bytes_eq(m.args[1].value.s, "x");
}

static void test_message_two_in_a_row_and_zero_args(void **state)
{
	static const uint8_t b[] = "\x01"
	                           "a\x00"
	                           "\x01"
	                           "b\x01\x01k\x04\x2a";
	static struct spop_message m;
	ssize_t r;

	(void)state;
	r = spop_message_decode(b, CAP_LEN(b), &m);
	assert_int_equal(r, 3);
	assert_bytes_eq(m.name, "a");
	assert_int_equal(m.nargs, 0);
	assert_int_equal(spop_message_decode(b + r, CAP_LEN(b) - (size_t)r, &m),
	                 (ssize_t)CAP_LEN(b) - r);
	assert_bytes_eq(m.name, "b");
	assert_int_equal(m.nargs, 1);
	assert_bytes_eq(m.args[0].name, "k");
	assert_true(m.args[0].value.i == 42);
}

static void test_message_255_args(void **state)
{
	static uint8_t buf[2048];
	static struct spop_message m;
	struct spop_writer w;
	struct spop_value v;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	spop_put_message(&w, "many", 255);
	for (int i = 0; i < 255; i++) {
		v = spop_int(i);
		spop_put_kv(&w, "", &v);
	}
	assert_false(w.overflow);
	assert_int_equal(spop_message_decode(buf, w.len, &m), (ssize_t)w.len);
	assert_int_equal(m.nargs, 255);
	assert_true(m.args[254].value.i == 254);
}

static void test_kv_decode(void **state)
{
	struct spop_bytes k;
	struct spop_value v;

	(void)state;
	assert_int_equal(spop_kv_decode(LIT("\x03"
	                                    "src\x06\x7f\x00\x00\x01"),
	                                &k, &v),
	                 9);
	assert_bytes_eq(k, "src");
	assert_int_equal(v.type, SPOP_T_IPV4);
	/* Name without a value, name longer than the data. */
	assert_int_equal(spop_kv_decode(LIT("\x03"
	                                    "src"),
	                                &k, &v),
	                 -1);
	assert_int_equal(spop_kv_decode(LIT("\x04"
	                                    "src"),
	                                &k, &v),
	                 -1);
}

static void test_frame_decode_rejects(void **state)
{
	struct spop_frame f;

	(void)state;
	/* Shorter than type + flags + two one-byte varints. */
	assert_int_equal(spop_frame_decode(LIT("\x03\x00\x00\x00\x01\x00"), &f), -1);
	assert_int_equal(spop_frame_decode(LIT(""), &f), -1);
	/* stream-id varint that runs off the end. */
	assert_int_equal(spop_frame_decode(LIT("\x03\x00\x00\x00\x01\xf0\x80"), &f), -1);
	/* frame-id varint that runs off the end. */
	assert_int_equal(spop_frame_decode(LIT("\x03\x00\x00\x00\x01\x00\xf0"), &f), -1);
	/* eleven-byte stream-id. */
	assert_int_equal(spop_frame_decode(LIT("\x03\x00\x00\x00\x01"
	                                       "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00"
	                                       "\x00"),
	                                   &f),
	                 -1);
	/* The minimum frame, empty payload. */
	assert_int_equal(spop_frame_decode(LIT("\x03\x00\x00\x00\x01\x00\x00"), &f), 7);
	assert_int_equal(f.payload.len, 0);
}

static void test_frame_large_ids_and_flags(void **state)
{
	uint8_t buf[64];
	struct spop_writer w;
	struct spop_frame f;
	size_t start;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_ACK, 0x01020304u, UINT64_MAX, (uint64_t)1 << 63);
	assert_int_equal(spop_frame_end(&w, start, SPOP_MAX_FRAME_SIZE), 0);
	assert_int_equal(w.len, 4 + 1 + 4 + 10 + 10);
	assert_memory_equal(buf + 4, "\x67\x01\x02\x03\x04", 5);
	assert_int_equal(spop_frame_decode(buf + 4, w.len - 4, &f), (ssize_t)(w.len - 4));
	assert_int_equal(f.type, SPOP_FRAME_ACK);
	assert_int_equal(f.flags, 0x01020304u);
	assert_true(f.sid == UINT64_MAX);
	assert_true(f.fid == (uint64_t)1 << 63);
	assert_int_equal(f.payload.len, 0);
}

/* ---- DISCONNECT (§1.8) ---- */

static void test_disconnect_captured(void **state)
{
	struct spop_frame f;
	struct spop_disconnect d;

	(void)state;
	decode_captured(cap_idle_disco, CAP_LEN(cap_idle_disco), &f);
	assert_int_equal(f.type, SPOP_FRAME_HAPROXY_DISCONNECT);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_int_equal(spop_disconnect_decode(f.payload.p, f.payload.len, &d), 0);
	assert_true(d.has_status);
	assert_int_equal(d.status, SPOP_ST_TIMEOUT);
	assert_bytes_eq(d.message, "a timeout occurred");
	assert_string_equal(spop_status_text(d.status), "a timeout occurred");
	/* Truncated KV lists are rejected, except at a KV boundary. */
	for (size_t k = 1; k < f.payload.len; k++) {
		int r = spop_disconnect_decode(f.payload.p, k, &d);
		assert_int_equal(r, k == 14 ? 0 : -1);
	}
}

static void test_disconnect_encode_matches_captures(void **state)
{
	uint8_t buf[128];
	struct spop_writer w;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_disconnect_encode(&w, SPOP_FRAME_AGENT_DISCONNECT, SPOP_ST_NORMAL,
	                                        spop_status_text(SPOP_ST_NORMAL)),
	                 0);
	assert_int_equal(w.len, CAP_LEN(cap_agent_disco));
	assert_memory_equal(buf, cap_agent_disco, w.len);

	spop_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_disconnect_encode(&w, SPOP_FRAME_HAPROXY_DISCONNECT, SPOP_ST_TIMEOUT,
	                                        "a timeout occurred"),
	                 0);
	assert_int_equal(w.len, CAP_LEN(cap_idle_disco));
	assert_memory_equal(buf, cap_idle_disco, w.len);
}

static void test_disconnect_message_truncated_to_255(void **state)
{
	char msg[301];
	uint8_t buf[400];
	struct spop_writer w;
	struct spop_frame f;
	struct spop_disconnect d;

	(void)state;
	memset(msg, 'm', 300);
	msg[300] = '\0';
	spop_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_disconnect_encode(&w, SPOP_FRAME_AGENT_DISCONNECT, 99, msg), 0);
	/* 7 header + 14 status-code KV + (1+7 name, 1 type, 2 length varint, 255) message. */
	assert_int_equal(w.len, 4 + 7 + 14 + 1 + 7 + 1 + 2 + 255);
	assert_int_equal(spop_frame_length(buf), w.len - 4);
	assert_int_equal(spop_frame_decode(buf + 4, w.len - 4, &f), (ssize_t)(w.len - 4));
	assert_int_equal(spop_disconnect_decode(f.payload.p, f.payload.len, &d), 0);
	assert_int_equal(d.status, 99);
	assert_int_equal(d.message.len, SPOP_MAX_DISCO_MSG);
	assert_memory_equal(d.message.p, msg, SPOP_MAX_DISCO_MSG);

	/* Exactly 255 is kept whole, 254 too. */
	msg[255] = '\0';
	spop_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_disconnect_encode(&w, SPOP_FRAME_AGENT_DISCONNECT, 1, msg), 0);
	assert_int_equal(spop_frame_decode(buf + 4, w.len - 4, &f), (ssize_t)(w.len - 4));
	assert_int_equal(spop_disconnect_decode(f.payload.p, f.payload.len, &d), 0);
	assert_int_equal(d.message.len, 255);
}

static void test_disconnect_decode_rejects(void **state)
{
	struct spop_disconnect d;

	(void)state;
	/* status-code as a string. */
	assert_int_equal(spop_disconnect_decode(LIT("\x0b"
	                                            "status-code\x08\x01"
	                                            "3"),
	                                        &d),
	                 -1);
	/* status-code above 32 bits. */
	assert_int_equal(spop_disconnect_decode(LIT("\x0b"
	                                            "status-code\x05\xff\xf0\xfe\xfe\xfe\xfe"
	                                            "\xfe\xfe\xfe\x0e"),
	                                        &d),
	                 -1);
	/* message as a bool. */
	assert_int_equal(spop_disconnect_decode(LIT("\x07"
	                                            "message\x11"),
	                                        &d),
	                 -1);
	/* No status-code: decodes, but says so. */
	assert_int_equal(spop_disconnect_decode(LIT("\x07"
	                                            "message\x08\x01"
	                                            "x"),
	                                        &d),
	                 0);
	assert_false(d.has_status);
}

static void test_status_text(void **state)
{
	(void)state;
	assert_string_equal(spop_status_text(0), "normal");
	assert_string_equal(spop_status_text(3), "frame is too big");
	assert_string_equal(spop_status_text(9), "max-frame-size too big or too small");
	assert_string_equal(spop_status_text(13), "resource allocation error");
	assert_string_equal(spop_status_text(14), "an unknown error occurred");
	assert_string_equal(spop_status_text(99), "an unknown error occurred");
}

/* ---- ACK (§1.6, §1.7) ---- */

static void test_ack_matches_capture(void **state)
{
	uint8_t buf[128];
	struct spop_writer w;
	struct spop_value v;
	size_t start;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, 88, 1);
	v = spop_str("allow");
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "verdict", &v);
	v = spop_bool(true);
	spop_put_set_var(&w, SPOP_SCOPE_SESS, "seen", &v);
	v = spop_int(42);
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "n", &v);
	v.type = SPOP_T_IPV4;
	memcpy(v.ip, "\x0a\x01\x02\x03", 4);
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "ip", &v);
	v = spop_str("x");
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "nothere", &v);
	assert_int_equal(spop_frame_end(&w, start, SPOP_MAX_FRAME_SIZE), 0);
	assert_int_equal(w.len, CAP_LEN(cap_ack));
	assert_memory_equal(buf, cap_ack, w.len);

	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, 88, 1);
	v = spop_bool(true);
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "ok", &v);
	assert_int_equal(spop_frame_end(&w, start, SPOP_MAX_FRAME_SIZE), 0);
	assert_int_equal(w.len, CAP_LEN(cap_small_ack));
	assert_memory_equal(buf, cap_small_ack, w.len);
}

static void test_unset_var_bytes(void **state)
{
	uint8_t buf[16];
	struct spop_writer w;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	spop_put_unset_var(&w, SPOP_SCOPE_TXN, "noop");
	assert_int_equal(w.len, 8);
	assert_memory_equal(buf,
	                    "\x02\x02\x02\x04"
	                    "noop",
	                    8);
}

/* ---- lists ---- */

static struct spop_bytes B(const char *s) {
	return (struct spop_bytes){(const uint8_t *)s, strlen(s)};
}

static void
test_list_has(void **state)
{
	(void)state;
	assert_true(spop_list_has(B("pipelining,async"), "pipelining"));
	assert_true(spop_list_has(B("pipelining,async"), "async"));
	assert_true(spop_list_has(B("pipelining, async"), "async"));
	assert_true(spop_list_has(B("  pipelining ,  async  "), "pipelining"));
	assert_false(spop_list_has(B("a,pipeliningx"), "pipelining"));
	assert_false(spop_list_has(B("xpipelining"), "pipelining"));
	assert_false(spop_list_has(B("pipelinin"), "pipelining"));
	assert_false(spop_list_has(B(""), "pipelining"));
	assert_true(spop_list_has(B("1.0,2.0"), "2.0"));
	assert_false(spop_list_has(B("1.0,2.1"), "2.0"));
	assert_false(spop_list_has(B("2.00"), "2.0"));
	/* Only the first len bytes count: a list that stops mid-token. */
	assert_false(spop_list_has((struct spop_bytes){(const uint8_t *)"async", 4}, "async"));
}

static void test_bytes_eq(void **state)
{
	(void)state;
	assert_true(spop_bytes_eq(B("mtls"), "mtls"));
	assert_false(spop_bytes_eq(B("mtls"), "mtl"));
	assert_false(spop_bytes_eq(B("mtl"), "mtls"));
	assert_true(spop_bytes_eq(B(""), ""));
}

/* ---- writer ---- */

static void test_writer_overflow_sticky(void **state)
{
	uint8_t buf[16];
	struct spop_writer w;

	(void)state;
	memset(buf, 0xee, sizeof(buf));
	spop_writer_init(&w, buf, 8);
	spop_put_u8(&w, 1);
	spop_put_string(&w, "hello world", 11); /* 1 + 11 bytes: the varint fits, the rest not */
	assert_true(w.overflow);
	assert_true(w.len <= 8);
	{
		size_t len = w.len;
		/* Sticky: a byte that would fit is refused too. */
		spop_put_u8(&w, 2);
		assert_true(w.overflow);
		assert_int_equal(w.len, len);
	}
	/* Nothing past cap was touched. */
	for (size_t i = 8; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xee);
}

static void test_writer_exact_fit(void **state)
{
	uint8_t buf[4];
	struct spop_writer w;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	spop_put_string(&w, "abc", 3);
	assert_false(w.overflow);
	assert_int_equal(w.len, 4);
	spop_put_string(&w, "", 0);
	assert_true(w.overflow);
	assert_int_equal(w.len, 4);
}

static void test_frame_end_rewinds_on_overflow(void **state)
{
	uint8_t buf[40];
	struct spop_writer w;
	size_t start;

	(void)state;
	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, 1, 1);
	spop_put_unset_var(&w, SPOP_SCOPE_TXN, "a");
	assert_int_equal(spop_frame_end(&w, start, SPOP_MAX_FRAME_SIZE), 0);
	assert_int_equal(w.len, 4 + 7 + 5);

	start = spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, 2, 2);
	assert_int_equal(start, 16);
	spop_put_string(&w, "this does not fit in forty bytes", 32);
	assert_true(w.overflow);
	assert_int_equal(spop_frame_end(&w, start, SPOP_MAX_FRAME_SIZE), -1);
	assert_int_equal(w.len, 16); /* back to the end of the first frame */
	assert_false(w.overflow);    /* the writer is usable again */
	assert_int_equal(spop_frame_length(buf), 12);

	start = spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, 3, 3);
	assert_int_equal(spop_frame_end(&w, start, SPOP_MAX_FRAME_SIZE), 0);
	assert_int_equal(w.len, 16 + 11);
}

static void test_frame_end_max_frame_size(void **state)
{
	static uint8_t buf[1024];
	uint8_t pad[256];
	struct spop_writer w;
	size_t start;

	(void)state;
	memset(pad, 'p', sizeof(pad));
	/* Frame body = 7 header + 2 varint + n: make it exactly 256, then 257. */
	spop_writer_init(&w, buf, sizeof(buf));
	start = spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, 0, 0);
	spop_put_string(&w, pad, 256 - 7 - 2);
	assert_int_equal(w.len - 4, 256);
	assert_int_equal(spop_frame_end(&w, start, 256), 0);
	assert_int_equal(spop_frame_length(buf), 256);

	start = spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, 0, 0);
	spop_put_string(&w, pad, 256 - 7 - 2 + 1);
	assert_false(w.overflow);
	assert_int_equal(spop_frame_end(&w, start, 256), -1);
	assert_int_equal(w.len, start);
	assert_int_equal(w.len, 260);
	assert_false(w.overflow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_varint_encode_vectors),
	    cmocka_unit_test(test_varint_writer_vectors),
	    cmocka_unit_test(test_varint_decode_vectors),
	    cmocka_unit_test(test_varint_roundtrip_boundaries),
	    cmocka_unit_test(test_varint_rejects),
	    cmocka_unit_test(test_value_null_bool),
	    cmocka_unit_test(test_value_bool_constructors_encode),
	    cmocka_unit_test(test_value_integers),
	    cmocka_unit_test(test_value_int64_extremes),
	    cmocka_unit_test(test_value_addresses),
	    cmocka_unit_test(test_value_string_binary),
	    cmocka_unit_test(test_value_long_string),
	    cmocka_unit_test(test_value_reserved_types),
	    cmocka_unit_test(test_value_truncated),
	    cmocka_unit_test(test_value_uint),
	    cmocka_unit_test(test_frame_length_prefix),
	    cmocka_unit_test(test_hello_captured),
	    cmocka_unit_test(test_hello_healthcheck_captured),
	    cmocka_unit_test(test_haproxy_hello_encode_matches_captures),
	    cmocka_unit_test(test_agent_hello_encode_matches_capture),
	    cmocka_unit_test(test_hello_truncated_kv),
	    cmocka_unit_test(test_hello_wrong_types_and_unknown_keys),
	    cmocka_unit_test(test_notify_captured),
	    cmocka_unit_test(test_notify_encode_matches_capture),
	    cmocka_unit_test(test_message_truncated),
	    cmocka_unit_test(test_message_empty_arg_names),
	    cmocka_unit_test(test_message_two_in_a_row_and_zero_args),
	    cmocka_unit_test(test_message_255_args),
	    cmocka_unit_test(test_kv_decode),
	    cmocka_unit_test(test_frame_decode_rejects),
	    cmocka_unit_test(test_frame_large_ids_and_flags),
	    cmocka_unit_test(test_disconnect_captured),
	    cmocka_unit_test(test_disconnect_encode_matches_captures),
	    cmocka_unit_test(test_disconnect_message_truncated_to_255),
	    cmocka_unit_test(test_disconnect_decode_rejects),
	    cmocka_unit_test(test_status_text),
	    cmocka_unit_test(test_ack_matches_capture),
	    cmocka_unit_test(test_unset_var_bytes),
	    cmocka_unit_test(test_list_has),
	    cmocka_unit_test(test_bytes_eq),
	    cmocka_unit_test(test_writer_overflow_sticky),
	    cmocka_unit_test(test_writer_exact_fit),
	    cmocka_unit_test(test_frame_end_rewinds_on_overflow),
	    cmocka_unit_test(test_frame_end_max_frame_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

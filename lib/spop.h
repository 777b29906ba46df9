/*
 * spop: the SPOP 2.0 wire codec (HAProxy SPOE.txt, 2.6, §3), both directions.
 *
 * Pure code: bytes in, structs out, and a bounded writer for the other way. No
 * sockets, no allocation, no globals, so the agent, the tests, the load generator and
 * the fuzzer all call the same functions.
 *
 * Promises:
 *  - every decoder checks each length against the bytes that remain before using it,
 *    reads varints of at most 10 bytes that fit in 64 bits, and returns the number of
 *    bytes consumed or -1; decoded strings point into the caller's buffer (no copies);
 *  - the writer never writes past its capacity: an overflow is sticky and reported by
 *    spop_frame_end(), which also refuses a frame larger than the negotiated size.
 */
#ifndef EDGETLS_SPOP_H
#define EDGETLS_SPOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SPOP_VERSION        "2.0"
#define SPOP_MIN_FRAME_SIZE 256u
#define SPOP_MAX_FRAME_SIZE 16380u /* HAProxy's default: tune.bufsize - 4 */
#define SPOP_VARINT_MAX_LEN 10
#define SPOP_MAX_ARGS       255 /* NB-ARGS is one byte */
#define SPOP_MAX_DISCO_MSG  255 /* 2.6 refuses a longer DISCONNECT message */
#define SPOP_FRAME_HDR_MIN  7   /* type + flags + two one-byte varints */
#define SPOP_FLAG_FIN       0x00000001u
#define SPOP_FLAG_ABORT     0x00000002u

enum spop_frame_type {
	SPOP_FRAME_UNSET = 0,
	SPOP_FRAME_HAPROXY_HELLO = 1,
	SPOP_FRAME_HAPROXY_DISCONNECT = 2,
	SPOP_FRAME_NOTIFY = 3,
	SPOP_FRAME_AGENT_HELLO = 101,
	SPOP_FRAME_AGENT_DISCONNECT = 102,
	SPOP_FRAME_ACK = 103,
};

/* Typed data (SPOE.txt §3.1): type in the low nibble, flags in the high one. */
enum spop_type {
	SPOP_T_NULL = 0,
	SPOP_T_BOOL = 1,
	SPOP_T_INT32 = 2,
	SPOP_T_UINT32 = 3,
	SPOP_T_INT64 = 4,
	SPOP_T_UINT64 = 5,
	SPOP_T_IPV4 = 6,
	SPOP_T_IPV6 = 7,
	SPOP_T_STRING = 8,
	SPOP_T_BINARY = 9,
};
#define SPOP_T_MASK    0x0f
#define SPOP_T_FL_TRUE 0x10

/* DISCONNECT status codes (SPOE.txt §3.5). */
enum spop_status {
	SPOP_ST_NORMAL = 0,
	SPOP_ST_IO = 1,
	SPOP_ST_TIMEOUT = 2,
	SPOP_ST_TOO_BIG = 3,
	SPOP_ST_INVALID = 4,
	SPOP_ST_NO_VERSION = 5,
	SPOP_ST_NO_FRAME_SIZE = 6,
	SPOP_ST_NO_CAPABILITIES = 7,
	SPOP_ST_BAD_VERSION = 8,
	SPOP_ST_BAD_FRAME_SIZE = 9,
	SPOP_ST_FRAG_NOT_SUPPORTED = 10,
	SPOP_ST_INTERLACED = 11,
	SPOP_ST_FRAMEID_NOTFOUND = 12,
	SPOP_ST_RES_ALLOC = 13,
	SPOP_ST_UNKNOWN = 99,
};
#define SPOP_ST_COUNT 14 /* codes 0..13; 99 is counted apart */

/* Action types and variable scopes (SPOE.txt §3.4). */
enum spop_action { SPOP_ACT_SET_VAR = 1, SPOP_ACT_UNSET_VAR = 2 };
enum spop_scope {
	SPOP_SCOPE_PROC = 0,
	SPOP_SCOPE_SESS = 1,
	SPOP_SCOPE_TXN = 2,
	SPOP_SCOPE_REQ = 3,
	SPOP_SCOPE_RES = 4,
};

struct spop_bytes {
	const uint8_t *p;
	size_t len;
};

struct spop_value {
	enum spop_type type;
	union {
		bool b;
		int64_t i;  /* INT32, INT64 */
		uint64_t u; /* UINT32, UINT64 */
		uint8_t ip[16];
		struct spop_bytes s; /* STRING, BINARY */
	};
};

/* A frame without its 4-byte length prefix. */
struct spop_frame {
	uint8_t type;
	uint32_t flags;
	uint64_t sid;
	uint64_t fid;
	struct spop_bytes payload;
};

struct spop_arg {
	struct spop_bytes name; /* may be empty: `args` without name= */
	struct spop_value value;
};

struct spop_message {
	struct spop_bytes name;
	unsigned nargs;
	struct spop_arg args[SPOP_MAX_ARGS];
};

/* What a HAPROXY-HELLO says; has_* tell which required keys were present. */
struct spop_hello {
	bool has_versions, has_frame_size, has_capabilities;
	bool healthcheck;
	struct spop_bytes versions;
	struct spop_bytes capabilities;
	struct spop_bytes engine_id;
	uint64_t frame_size;
};

struct spop_disconnect {
	bool has_status;
	uint32_t status;
	struct spop_bytes message;
};

/* ---- decoding ---- */

/* The 4-byte big-endian length that precedes every frame. */
uint32_t spop_frame_length(const uint8_t p[4]);
ssize_t spop_varint_decode(const uint8_t *p, size_t len, uint64_t *out)
    __attribute__((warn_unused_result));
ssize_t spop_string_decode(const uint8_t *p, size_t len, struct spop_bytes *out)
    __attribute__((warn_unused_result));
ssize_t spop_value_decode(const uint8_t *p, size_t len, struct spop_value *out)
    __attribute__((warn_unused_result));
/* One KV-LIST entry: name (un-typed string) then typed value. */
ssize_t spop_kv_decode(const uint8_t *p, size_t len, struct spop_bytes *name,
                       struct spop_value *value) __attribute__((warn_unused_result));
/* A frame body (after the length prefix): header decoded, payload = the rest. */
ssize_t spop_frame_decode(const uint8_t *p, size_t len, struct spop_frame *out)
    __attribute__((warn_unused_result));
/* One message of a NOTIFY's LIST-OF-MESSAGES. */
ssize_t spop_message_decode(const uint8_t *p, size_t len, struct spop_message *out)
    __attribute__((warn_unused_result));
/* HELLO payload; unknown keys are skipped; 0 or -1 when malformed (wrong types included). */
int spop_hello_decode(const uint8_t *p, size_t len, struct spop_hello *out)
    __attribute__((warn_unused_result));
int spop_disconnect_decode(const uint8_t *p, size_t len, struct spop_disconnect *out)
    __attribute__((warn_unused_result));

/* Is `token` in a list such as "pipelining, async" (tokens split on ',' and spaces)? */
bool spop_list_has(struct spop_bytes list, const char *token);
bool spop_bytes_eq(struct spop_bytes b, const char *s);
/* Integer value of any integer type; -1 when v is not an integer. */
int spop_value_uint(const struct spop_value *v, uint64_t *out);
/* The HAProxy message for a status code ("frame is too big"...). */
const char *spop_status_text(unsigned status);

/* ---- encoding ---- */

/* Writes v as a varint into out (at least SPOP_VARINT_MAX_LEN bytes); returns its length. */
size_t spop_varint_encode(uint64_t v, uint8_t *out);

struct spop_writer {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool overflow;
};

void spop_writer_init(struct spop_writer *w, uint8_t *buf, size_t cap);
void spop_put_u8(struct spop_writer *w, uint8_t v);
/* Bytes already encoded (e.g. actions cached from an earlier ACK). */
void spop_put_raw(struct spop_writer *w, const void *p, size_t n);
void spop_put_varint(struct spop_writer *w, uint64_t v);
void spop_put_string(struct spop_writer *w, const void *s, size_t len);
void spop_put_value(struct spop_writer *w, const struct spop_value *v);
void spop_put_kv(struct spop_writer *w, const char *name, const struct spop_value *v);

/* Starts a frame (length placeholder, type, flags, ids); returns its offset for _end. */
size_t spop_frame_begin(struct spop_writer *w, uint8_t type, uint32_t flags, uint64_t sid,
                        uint64_t fid);
/* Fills the length; -1 (and the writer rewound to `start`) on overflow or when the frame
 * would exceed max_frame_size. */
int spop_frame_end(struct spop_writer *w, size_t start, uint32_t max_frame_size)
    __attribute__((warn_unused_result));

/* ACK actions (SPOE.txt §3.4): name is the variable name without scope and prefix. */
void spop_put_set_var(struct spop_writer *w, enum spop_scope scope, const char *name,
                      const struct spop_value *v);
void spop_put_unset_var(struct spop_writer *w, enum spop_scope scope, const char *name);
/* NOTIFY message header: name and argument count; the caller then puts nargs KVs. */
void spop_put_message(struct spop_writer *w, const char *name, uint8_t nargs);

/* Whole frames. Each returns 0, or -1 when it does not fit (writer rewound). */
int spop_agent_hello_encode(struct spop_writer *w, uint32_t frame_size, const char *caps)
    __attribute__((warn_unused_result));
int spop_haproxy_hello_encode(struct spop_writer *w, const char *versions, uint32_t frame_size,
                              const char *caps, bool healthcheck, const char *engine_id)
    __attribute__((warn_unused_result));
/* type is SPOP_FRAME_AGENT_DISCONNECT or SPOP_FRAME_HAPROXY_DISCONNECT; message is
 * truncated to SPOP_MAX_DISCO_MSG bytes. */
int spop_disconnect_encode(struct spop_writer *w, uint8_t type, unsigned status,
                           const char *message) __attribute__((warn_unused_result));

/* Value constructors. */
struct spop_value spop_bool(bool b);
struct spop_value spop_int(int64_t i);
struct spop_value spop_uint32(uint32_t u);
struct spop_value spop_str(const char *s);
struct spop_value spop_strn(const void *s, size_t len);
struct spop_value spop_bin(const void *p, size_t len);

#endif

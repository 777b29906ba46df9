#include "spop.h"

#include <string.h>

#include "banned.h"

uint32_t spop_frame_length(const uint8_t p[4])
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* SPOE.txt §3.1 "Peers encoding"; the algorithm of HAProxy's intops.h decode_varint(),
 * with the two checks it lacks: at most 10 bytes, and no bit beyond 64. */
ssize_t spop_varint_decode(const uint8_t *p, size_t len, uint64_t *out)
{
	uint64_t v, add;
	unsigned shift = 4;
	size_t i = 1;

	if (len == 0)
		return -1;
	v = p[0];
	if (v < 240) {
		*out = v;
		return 1;
	}
	for (;;) {
		if (i >= len || i >= SPOP_VARINT_MAX_LEN)
			return -1;
		add = (uint64_t)p[i] << shift;
		if ((add >> shift) != p[i] || __builtin_add_overflow(v, add, &v))
			return -1;
		if (p[i++] < 128)
			break;
		shift += 7;
	}
	*out = v;
	return (ssize_t)i;
}

size_t spop_varint_encode(uint64_t v, uint8_t *out)
{
	size_t i = 0;

	if (v < 240) {
		out[0] = (uint8_t)v;
		return 1;
	}
	out[i++] = (uint8_t)v | 0xf0;
	v = (v - 240) >> 4;
	while (v >= 128) {
		out[i++] = (uint8_t)v | 0x80;
		v = (v - 128) >> 7;
	}
	out[i++] = (uint8_t)v;
	return i;
}

ssize_t spop_string_decode(const uint8_t *p, size_t len, struct spop_bytes *out)
{
	uint64_t n;
	ssize_t r = spop_varint_decode(p, len, &n);

	if (r < 0 || n > len - (size_t)r)
		return -1;
	out->p = p + r;
	out->len = (size_t)n;
	return r + (ssize_t)n;
}

ssize_t spop_value_decode(const uint8_t *p, size_t len, struct spop_value *out)
{
	uint64_t u;
	ssize_t r;

	if (len == 0)
		return -1;
	out->type = (enum spop_type)(p[0] & SPOP_T_MASK);
	switch (out->type) {
	case SPOP_T_NULL:
		return 1;
	case SPOP_T_BOOL:
		out->b = (p[0] & SPOP_T_FL_TRUE) != 0;
		return 1;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		r = spop_varint_decode(p + 1, len - 1, &u);
		if (r < 0)
			return -1;
		/* Negative integers travel as their two's complement bit pattern. */
		if (out->type == SPOP_T_INT32 || out->type == SPOP_T_INT64)
			out->i = (int64_t)u;
		else
			out->u = u;
		return 1 + r;
	case SPOP_T_IPV4:
	case SPOP_T_IPV6: {
		size_t n = out->type == SPOP_T_IPV4 ? 4 : 16;
		if (len - 1 < n)
			return -1;
		memcpy(out->ip, p + 1, n);
		return 1 + (ssize_t)n;
	}
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		r = spop_string_decode(p + 1, len - 1, &out->s);
		return r < 0 ? -1 : 1 + r;
	}
	return -1; /* types 10..15 are reserved */
}

ssize_t spop_kv_decode(const uint8_t *p, size_t len, struct spop_bytes *name,
                       struct spop_value *value)
{
	ssize_t a = spop_string_decode(p, len, name), b;

	if (a < 0)
		return -1;
	b = spop_value_decode(p + a, len - (size_t)a, value);
	return b < 0 ? -1 : a + b;
}

ssize_t spop_frame_decode(const uint8_t *p, size_t len, struct spop_frame *out)
{
	size_t o = 5;
	ssize_t r;

	if (len < SPOP_FRAME_HDR_MIN)
		return -1;
	out->type = p[0];
	out->flags = spop_frame_length(p + 1);
	r = spop_varint_decode(p + o, len - o, &out->sid);
	if (r < 0)
		return -1;
	o += (size_t)r;
	r = spop_varint_decode(p + o, len - o, &out->fid);
	if (r < 0)
		return -1;
	o += (size_t)r;
	out->payload.p = p + o;
	out->payload.len = len - o;
	return (ssize_t)len;
}

ssize_t spop_message_decode(const uint8_t *p, size_t len, struct spop_message *out)
{
	ssize_t r = spop_string_decode(p, len, &out->name);
	size_t o;

	if (r < 0)
		return -1;
	o = (size_t)r;
	if (o >= len)
		return -1;
	out->nargs = p[o++];
	for (unsigned i = 0; i < out->nargs; i++) {
		r = spop_kv_decode(p + o, len - o, &out->args[i].name, &out->args[i].value);
		if (r < 0)
			return -1;
		o += (size_t)r;
	}
	return (ssize_t)o;
}

bool spop_bytes_eq(struct spop_bytes b, const char *s)
{
	size_t n = strlen(s);
	return b.len == n && memcmp(b.p, s, n) == 0;
}

int spop_value_uint(const struct spop_value *v, uint64_t *out)
{
	switch (v->type) {
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		if (v->i < 0)
			return -1;
		*out = (uint64_t)v->i;
		return 0;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		*out = v->u;
		return 0;
	default:
		return -1;
	}
}

int spop_hello_decode(const uint8_t *p, size_t len, struct spop_hello *out)
{
	struct spop_bytes k;
	struct spop_value v;
	size_t o = 0;

	memset(out, 0, sizeof(*out));
	while (o < len) {
		ssize_t r = spop_kv_decode(p + o, len - o, &k, &v);
		if (r < 0)
			return -1;
		o += (size_t)r;
		if (spop_bytes_eq(k, "supported-versions")) {
			if (v.type != SPOP_T_STRING)
				return -1;
			out->versions = v.s;
			out->has_versions = true;
		} else if (spop_bytes_eq(k, "max-frame-size")) {
			if (spop_value_uint(&v, &out->frame_size) < 0)
				return -1;
			out->has_frame_size = true;
		} else if (spop_bytes_eq(k, "capabilities")) {
			if (v.type != SPOP_T_STRING)
				return -1;
			out->capabilities = v.s;
			out->has_capabilities = true;
		} else if (spop_bytes_eq(k, "healthcheck")) {
			if (v.type != SPOP_T_BOOL)
				return -1;
			out->healthcheck = v.b;
		} else if (spop_bytes_eq(k, "engine-id")) {
			if (v.type != SPOP_T_STRING)
				return -1;
			out->engine_id = v.s;
		}
		/* SPOE.txt §3.2.4: unknown keys are ignored. */
	}
	return 0;
}

int spop_disconnect_decode(const uint8_t *p, size_t len, struct spop_disconnect *out)
{
	struct spop_bytes k;
	struct spop_value v;
	uint64_t u;
	size_t o = 0;

	memset(out, 0, sizeof(*out));
	while (o < len) {
		ssize_t r = spop_kv_decode(p + o, len - o, &k, &v);
		if (r < 0)
			return -1;
		o += (size_t)r;
		if (spop_bytes_eq(k, "status-code")) {
			if (spop_value_uint(&v, &u) < 0 || u > UINT32_MAX)
				return -1;
			out->status = (uint32_t)u;
			out->has_status = true;
		} else if (spop_bytes_eq(k, "message")) {
			if (v.type != SPOP_T_STRING)
				return -1;
			out->message = v.s;
		}
	}
	return 0;
}

bool spop_list_has(struct spop_bytes list, const char *token)
{
	size_t n = strlen(token), i = 0;

	while (i < list.len) {
		size_t start;
		while (i < list.len && (list.p[i] == ',' || list.p[i] == ' '))
			i++;
		start = i;
		while (i < list.len && list.p[i] != ',' && list.p[i] != ' ')
			i++;
		if (i - start == n && memcmp(list.p + start, token, n) == 0)
			return true;
	}
	return false;
}

const char *spop_status_text(unsigned status)
{
	static const char *const text[SPOP_ST_COUNT] = {
	    "normal",
	    "I/O error",
	    "a timeout occurred",
	    "frame is too big",
	    "invalid frame received",
	    "version value not found",
	    "max-frame-size value not found",
	    "capabilities value not found",
	    "unsupported version",
	    "max-frame-size too big or too small",
	    "fragmentation not supported",
	    "invalid interlaced frames",
	    "frame-id not found",
	    "resource allocation error",
	};
	return status < SPOP_ST_COUNT ? text[status] : "an unknown error occurred";
}

/* ---- writer ---- */

void spop_writer_init(struct spop_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->len = 0;
	w->cap = cap;
	w->overflow = false;
}

static void put(struct spop_writer *w, const void *p, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void spop_put_u8(struct spop_writer *w, uint8_t v)
{
	put(w, &v, 1);
}

void spop_put_raw(struct spop_writer *w, const void *p, size_t n)
{
	put(w, p, n);
}

void spop_put_varint(struct spop_writer *w, uint64_t v)
{
	uint8_t tmp[SPOP_VARINT_MAX_LEN];
	put(w, tmp, spop_varint_encode(v, tmp));
}

void spop_put_string(struct spop_writer *w, const void *s, size_t len)
{
	spop_put_varint(w, len);
	put(w, s, len);
}

void spop_put_value(struct spop_writer *w, const struct spop_value *v)
{
	switch (v->type) {
	case SPOP_T_BOOL:
		spop_put_u8(w, SPOP_T_BOOL | (v->b ? SPOP_T_FL_TRUE : 0));
		return;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		spop_put_u8(w, (uint8_t)v->type);
		spop_put_varint(w, (uint64_t)v->i);
		return;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		spop_put_u8(w, (uint8_t)v->type);
		spop_put_varint(w, v->u);
		return;
	case SPOP_T_IPV4:
	case SPOP_T_IPV6:
		spop_put_u8(w, (uint8_t)v->type);
		put(w, v->ip, v->type == SPOP_T_IPV4 ? 4 : 16);
		return;
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		spop_put_u8(w, (uint8_t)v->type);
		spop_put_string(w, v->s.p, v->s.len);
		return;
	case SPOP_T_NULL:
		break;
	}
	spop_put_u8(w, SPOP_T_NULL);
}

void spop_put_kv(struct spop_writer *w, const char *name, const struct spop_value *v)
{
	spop_put_string(w, name, strlen(name));
	spop_put_value(w, v);
}

size_t spop_frame_begin(struct spop_writer *w, uint8_t type, uint32_t flags, uint64_t sid,
                        uint64_t fid)
{
	size_t start = w->len;
	uint8_t hdr[9] = {0,
	                  0,
	                  0,
	                  0,
	                  type,
	                  (uint8_t)(flags >> 24),
	                  (uint8_t)(flags >> 16),
	                  (uint8_t)(flags >> 8),
	                  (uint8_t)flags};

	put(w, hdr, sizeof(hdr));
	spop_put_varint(w, sid);
	spop_put_varint(w, fid);
	return start;
}

int spop_frame_end(struct spop_writer *w, size_t start, uint32_t max_frame_size)
{
	size_t n;

	if (w->overflow || w->len - start - 4 > max_frame_size) {
		w->len = start;
		w->overflow = false;
		return -1;
	}
	n = w->len - start - 4;
	w->buf[start] = (uint8_t)(n >> 24);
	w->buf[start + 1] = (uint8_t)(n >> 16);
	w->buf[start + 2] = (uint8_t)(n >> 8);
	w->buf[start + 3] = (uint8_t)n;
	return 0;
}

void spop_put_set_var(struct spop_writer *w, enum spop_scope scope, const char *name,
                      const struct spop_value *v)
{
	uint8_t hdr[3] = {SPOP_ACT_SET_VAR, 3, (uint8_t)scope};
	put(w, hdr, sizeof(hdr));
	spop_put_string(w, name, strlen(name));
	spop_put_value(w, v);
}

void spop_put_unset_var(struct spop_writer *w, enum spop_scope scope, const char *name)
{
	uint8_t hdr[3] = {SPOP_ACT_UNSET_VAR, 2, (uint8_t)scope};
	put(w, hdr, sizeof(hdr));
	spop_put_string(w, name, strlen(name));
}

void spop_put_message(struct spop_writer *w, const char *name, uint8_t nargs)
{
	spop_put_string(w, name, strlen(name));
	spop_put_u8(w, nargs);
}

int spop_agent_hello_encode(struct spop_writer *w, uint32_t frame_size, const char *caps)
{
	size_t start = spop_frame_begin(w, SPOP_FRAME_AGENT_HELLO, SPOP_FLAG_FIN, 0, 0);
	struct spop_value v = spop_str(SPOP_VERSION);

	spop_put_kv(w, "version", &v);
	v = spop_uint32(frame_size);
	spop_put_kv(w, "max-frame-size", &v);
	v = spop_str(caps);
	spop_put_kv(w, "capabilities", &v);
	return spop_frame_end(w, start, UINT32_MAX);
}

int spop_haproxy_hello_encode(struct spop_writer *w, const char *versions, uint32_t frame_size,
                              const char *caps, bool healthcheck, const char *engine_id)
{
	size_t start = spop_frame_begin(w, SPOP_FRAME_HAPROXY_HELLO, SPOP_FLAG_FIN, 0, 0);
	struct spop_value v = spop_str(versions);

	spop_put_kv(w, "supported-versions", &v);
	v = spop_uint32(frame_size);
	spop_put_kv(w, "max-frame-size", &v);
	v = spop_str(caps);
	spop_put_kv(w, "capabilities", &v);
	if (healthcheck) {
		v = spop_bool(true);
		spop_put_kv(w, "healthcheck", &v);
	}
	if (engine_id) {
		v = spop_str(engine_id);
		spop_put_kv(w, "engine-id", &v);
	}
	return spop_frame_end(w, start, UINT32_MAX);
}

int spop_disconnect_encode(struct spop_writer *w, uint8_t type, unsigned status,
                           const char *message)
{
	size_t start = spop_frame_begin(w, type, SPOP_FLAG_FIN, 0, 0);
	size_t n = strlen(message);
	struct spop_value v = spop_uint32(status);

	spop_put_kv(w, "status-code", &v);
	v = spop_strn(message, n < SPOP_MAX_DISCO_MSG ? n : SPOP_MAX_DISCO_MSG);
	spop_put_kv(w, "message", &v);
	return spop_frame_end(w, start, UINT32_MAX);
}

struct spop_value spop_bool(bool b)
{
	return (struct spop_value){.type = SPOP_T_BOOL, .b = b};
}

struct spop_value spop_int(int64_t i)
{
	return (struct spop_value){.type = SPOP_T_INT64, .i = i};
}

struct spop_value spop_uint32(uint32_t u)
{
	return (struct spop_value){.type = SPOP_T_UINT32, .u = u};
}

struct spop_value spop_strn(const void *s, size_t len)
{
	return (struct spop_value){.type = SPOP_T_STRING, .s = {(const uint8_t *)s, len}};
}

struct spop_value spop_str(const char *s)
{
	return spop_strn(s, strlen(s));
}

struct spop_value spop_bin(const void *p, size_t len)
{
	return (struct spop_value){.type = SPOP_T_BINARY, .s = {(const uint8_t *)p, len}};
}

#include "engine.h"

#include <string.h>
#include <time.h>

#include "handlers.h"
#include "log.h"

#include "banned.h"

/* Thread-local: a NOTIFY's messages are decoded one at a time into this. */
static _Thread_local struct spop_message msg_scratch;

void engine_init(struct engine_conn *c, uint32_t our_frame_size, struct agent_stats *stats,
                 void *handler_ctx)
{
	memset(c, 0, sizeof(*c));
	c->state = ENGINE_WAIT_HELLO;
	c->frame_size = our_frame_size;
	c->stats = stats;
	c->handler_ctx = handler_ctx;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Queues an AGENT-DISCONNECT and stops reading this connection (SPOE.txt §3.2.9). */
static void disconnect(struct engine_conn *c, struct spop_writer *out, unsigned status)
{
	if (spop_disconnect_encode(out, SPOP_FRAME_AGENT_DISCONNECT, status,
	                           spop_status_text(status)) == 0) {
		stat_add(&c->stats->frames_out[SF_OUT_DISCONNECT], 1);
		stat_add(&c->stats->disco_sent[stat_status_index(status)], 1);
	}
	if (status != SPOP_ST_NORMAL)
		log_msg(LOG_WARN, "event=disconnect_sent conn=%llu status=%u reason=\"%s\"",
		        (unsigned long long)c->id, status, spop_status_text(status));
	c->disco_status = status;
	c->state = ENGINE_CLOSING;
}

/* SPOE.txt §3.2.4-5: accept version 2.0, a frame size of at least 256, reply with ours. */
static void on_hello(struct engine_conn *c, const struct spop_frame *f, struct spop_writer *out)
{
	struct spop_hello h;

	if (c->state != ENGINE_WAIT_HELLO)
		return disconnect(c, out, SPOP_ST_INVALID);
	if (spop_hello_decode(f->payload.p, f->payload.len, &h) < 0)
		return disconnect(c, out, SPOP_ST_INVALID);
	if (!h.has_versions)
		return disconnect(c, out, SPOP_ST_NO_VERSION);
	if (!spop_list_has(h.versions, SPOP_VERSION))
		return disconnect(c, out, SPOP_ST_BAD_VERSION);
	if (!h.has_frame_size)
		return disconnect(c, out, SPOP_ST_NO_FRAME_SIZE);
	if (!h.has_capabilities)
		return disconnect(c, out, SPOP_ST_NO_CAPABILITIES);
	if (h.frame_size < SPOP_MIN_FRAME_SIZE)
		return disconnect(c, out, SPOP_ST_BAD_FRAME_SIZE);
	if (h.frame_size < c->frame_size)
		c->frame_size = (uint32_t)h.frame_size;
	/* Only pipelining: 2.6 uses one engine-id per thread (async would misroute ACKs) and
	 * 3.1 removed async and fragmentation (research/spop.md §1.5, §3). */
	if (spop_agent_hello_encode(out, c->frame_size, "pipelining") < 0)
		return disconnect(c, out, SPOP_ST_RES_ALLOC);
	stat_add(&c->stats->frames_out[SF_OUT_HELLO], 1);
	if (h.healthcheck) {
		/* §3.2.5: answer a health check, then close without a DISCONNECT. */
		stat_add(&c->stats->healthchecks, 1);
		c->state = ENGINE_CLOSING;
		return;
	}
	c->state = ENGINE_READY;
	log_msg(LOG_DEBUG, "event=hello conn=%llu frame_size=%u", (unsigned long long)c->id,
	        c->frame_size);
}

static void on_notify(struct engine_conn *c, const struct spop_frame *f, struct spop_writer *out)
{
	struct spop_message *m = &msg_scratch;
	const uint8_t *p = f->payload.p;
	size_t len = f->payload.len, o = 0, start;
	uint64_t t0 = now_ns();
	int actions = 0;

	if (c->state != ENGINE_READY)
		return disconnect(c, out, SPOP_ST_INVALID);
	start = spop_frame_begin(out, SPOP_FRAME_ACK, SPOP_FLAG_FIN, f->sid, f->fid);
	while (o < len) {
		const struct handler *h;
		ssize_t r = spop_message_decode(p + o, len - o, m);
		size_t used;
		int n;

		if (r < 0) {
			out->len = start; /* no ACK for a frame we could not read */
			out->overflow = false;
			return disconnect(c, out, SPOP_ST_INVALID);
		}
		o += (size_t)r;
		h = handler_find(m->name);
		if (!h) {
			stat_add(&c->stats->messages_unknown, 1);
			continue;
		}
		/* What this ACK may still take without exceeding the negotiated size. */
		used = out->len - start - 4;
		n = h->fn(m, out, used < c->frame_size ? c->frame_size - used : 0, c->handler_ctx);
		if (n > 0)
			actions += n;
	}
	/* An empty ACK stalls HAProxy 3.1.x until its timeout (research/spop.md §0.9): give
	 * it one harmless action, an unset of a variable nothing reads. */
	if (actions == 0)
		spop_put_unset_var(out, SPOP_SCOPE_TXN, "noop");
	if (spop_frame_end(out, start, c->frame_size) < 0) {
		/* The handlers' actions do not fit the negotiated size. Answer with the noop
		 * alone: `seen` stays unset, so HAProxy's rules fail closed and ask again. */
		stat_add(&c->stats->ack_too_big, 1);
		log_msg(LOG_ERROR, "event=ack_too_big conn=%llu sid=%llu fid=%llu frame_size=%u",
		        (unsigned long long)c->id, (unsigned long long)f->sid,
		        (unsigned long long)f->fid, c->frame_size);
		start = spop_frame_begin(out, SPOP_FRAME_ACK, SPOP_FLAG_FIN, f->sid, f->fid);
		spop_put_unset_var(out, SPOP_SCOPE_TXN, "noop");
		if (spop_frame_end(out, start, c->frame_size) < 0)
			return disconnect(c, out, SPOP_ST_RES_ALLOC);
	}
	stat_add(&c->stats->frames_out[SF_OUT_ACK], 1);
	stat_add(&c->stats->notify_processed, 1);
	stat_latency(c->stats, now_ns() - t0);
	c->notifies++;
}

static void on_haproxy_disconnect(struct engine_conn *c, const struct spop_frame *f,
                                  struct spop_writer *out)
{
	struct spop_disconnect d;
	char msg[300];

	if (spop_disconnect_decode(f->payload.p, f->payload.len, &d) < 0 || !d.has_status)
		return disconnect(c, out, SPOP_ST_INVALID);
	stat_add(&c->stats->disco_received[stat_status_index(d.status)], 1);
	log_msg(d.status == SPOP_ST_NORMAL || d.status == SPOP_ST_TIMEOUT ? LOG_DEBUG : LOG_WARN,
	        "event=disconnect_received conn=%llu status=%u message=%s",
	        (unsigned long long)c->id, d.status,
	        log_quote(msg, sizeof(msg), (const char *)d.message.p, d.message.len));
	/* §3.2.8: the agent answers with its own DISCONNECT, then closes. */
	disconnect(c, out, SPOP_ST_NORMAL);
}

/* Handles one complete frame body of flen bytes. */
static void on_frame(struct engine_conn *c, const uint8_t *body, uint32_t flen,
                     struct spop_writer *out)
{
	struct spop_frame f;

	if (spop_frame_decode(body, flen, &f) < 0)
		return disconnect(c, out, SPOP_ST_INVALID);
	switch (f.type) {
	case SPOP_FRAME_HAPROXY_HELLO:
	case SPOP_FRAME_HAPROXY_DISCONNECT:
	case SPOP_FRAME_NOTIFY:
	case SPOP_FRAME_UNSET:
		break;
	case SPOP_FRAME_AGENT_HELLO:
	case SPOP_FRAME_AGENT_DISCONNECT:
	case SPOP_FRAME_ACK:
		/* An agent's frame sent to the agent: the peer is not HAProxy. */
		stat_add(&c->stats->frames_in[SF_IN_OTHER], 1);
		return disconnect(c, out, SPOP_ST_INVALID);
	default:
		/* §3.2: unknown frames may be silently skipped. */
		stat_add(&c->stats->frames_in[SF_IN_OTHER], 1);
		return;
	}
	/* We never announce fragmentation, so every frame must be whole (§3.2.1), and a
	 * type-0 frame can only be the continuation of a fragmented one. */
	if (!(f.flags & SPOP_FLAG_FIN) || f.type == SPOP_FRAME_UNSET) {
		stat_add(&c->stats->frames_in[SF_IN_OTHER], 1);
		return disconnect(c, out, SPOP_ST_FRAG_NOT_SUPPORTED);
	}
	switch (f.type) {
	case SPOP_FRAME_HAPROXY_HELLO:
		stat_add(&c->stats->frames_in[SF_IN_HELLO], 1);
		return on_hello(c, &f, out);
	case SPOP_FRAME_HAPROXY_DISCONNECT:
		stat_add(&c->stats->frames_in[SF_IN_DISCONNECT], 1);
		return on_haproxy_disconnect(c, &f, out);
	default:
		stat_add(&c->stats->frames_in[SF_IN_NOTIFY], 1);
		return on_notify(c, &f, out);
	}
}

size_t engine_input(struct engine_conn *c, const uint8_t *in, size_t len, struct spop_writer *out)
{
	size_t used = 0;

	while (c->state != ENGINE_CLOSING && len - used >= 4) {
		uint32_t flen = spop_frame_length(in + used);

		/* Checked on the prefix alone, before any byte of the frame is buffered. */
		if (flen > c->frame_size) {
			disconnect(c, out, SPOP_ST_TOO_BIG);
			break;
		}
		if (flen < SPOP_FRAME_HDR_MIN) {
			disconnect(c, out, SPOP_ST_INVALID);
			break;
		}
		if (len - used - 4 < flen)
			break; /* the rest of the frame is still on its way */
		if (out->cap - out->len < engine_out_reserve(c))
			break; /* backpressure: the peer must read our replies first */
		on_frame(c, in + used + 4, flen, out);
		used += 4 + (size_t)flen;
	}
	return c->state == ENGINE_CLOSING ? len : used;
}

void engine_shutdown(struct engine_conn *c, struct spop_writer *out)
{
	if (c->state != ENGINE_CLOSING)
		disconnect(c, out, SPOP_ST_NORMAL);
}

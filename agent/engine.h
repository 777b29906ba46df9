/*
 * engine: one SPOP connection's protocol state machine, agent side (SPOE.txt §3.2).
 *
 * Bytes in, frames out, no sockets: the server feeds what it read and writes what the
 * engine appended to the output buffer. The engine
 *  - refuses a frame whose length exceeds the negotiated size before it is buffered
 *    (DISCONNECT 3), a frame without FIN (10), a malformed frame (4), an unacceptable
 *    HELLO (5..9), and then drops everything after that DISCONNECT;
 *  - answers each NOTIFY with exactly one ACK (same ids, FIN, at least one action) and
 *    never emits a frame larger than the negotiated size;
 *  - stops consuming input while the output buffer lacks room for one more full frame,
 *    which is the connection's backpressure.
 */
#ifndef EDGETLS_AGENT_ENGINE_H
#define EDGETLS_AGENT_ENGINE_H

#include <stdint.h>
#include <sys/types.h>

#include "spop.h"
#include "stats.h"

enum engine_state {
	ENGINE_WAIT_HELLO, /* nothing but a HAPROXY-HELLO is acceptable */
	ENGINE_READY,      /* NOTIFYs are answered */
	ENGINE_CLOSING,    /* flush the output, then close; input is discarded */
};

struct engine_conn {
	enum engine_state state;
	uint32_t frame_size;   /* the limit for frames in both directions */
	unsigned disco_status; /* what our DISCONNECT said, when we sent one */
	uint64_t notifies;     /* NOTIFYs answered on this connection */
	uint64_t id;           /* for log lines */
	struct agent_stats *stats;
	void *handler_ctx;
};

/* Prepares c for a new connection; our_frame_size is in [256, ...]. */
void engine_init(struct engine_conn *c, uint32_t our_frame_size, struct agent_stats *stats,
                 void *handler_ctx);

/*
 * Consumes whole frames from in[0..len) and appends replies to out. Returns the bytes
 * consumed: a partial frame, or one that finds no room in out, is left for later.
 * After the return, c->state says whether the connection is closing.
 */
size_t engine_input(struct engine_conn *c, const uint8_t *in, size_t len, struct spop_writer *out);

/* Graceful stop: an AGENT-DISCONNECT "normal" after what is already queued. */
void engine_shutdown(struct engine_conn *c, struct spop_writer *out);

/* Room a DISCONNECT needs: header, two keys, a status and a message of at most 255. */
#define ENGINE_DISCO_ROOM 320

/*
 * Room in the output buffer that engine_input needs before it handles one frame: the
 * largest reply plus a DISCONNECT, so that engine_shutdown() always finds room.
 */
static inline size_t engine_out_reserve(const struct engine_conn *c)
{
	return (size_t)c->frame_size + 4 + ENGINE_DISCO_ROOM;
}

#endif

#include "server.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "handlers.h"
#include "log.h"

#include "banned.h"

#define LISTEN_BACKLOG   1024
#define ACCEPT_BATCH     64
#define LINGER_SECONDS   2.0 /* after our last byte, how long we read and discard */
#define ACCEPT_PAUSE_SEC 0.5 /* after EMFILE/ENFILE */

struct worker;

struct conn {
	struct worker *w;
	struct conn *prev, *next;
	int fd;
	bool reading;   /* rio started */
	bool lingering; /* our side shut down; reading only to see the peer's FIN */
	ev_io rio, wio;
	ev_timer close_timer;
	struct engine_conn e;
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t *obuf;
	size_t ooff, olen, ocap;
};

struct worker {
	struct server *srv;
	unsigned idx;
	pthread_t thread;
	bool started;
	struct ev_loop *loop;
	int lfd;
	bool owns_lfd;
	ev_io accept_io;
	ev_timer accept_pause;
	ev_async stop_async;
	ev_timer stop_deadline;
	bool stopping;
	struct conn *conns;
	unsigned nconns;
	void *handler_ctx; /* the handlers' per-thread state (handlers.h) */
	struct agent_stats stats;
};

struct server {
	struct server_config cfg;
	unsigned nworkers;
	struct worker **workers;
	uint64_t _Atomic next_conn_id;
};

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;

	ev_io_stop(w->loop, &c->rio);
	ev_io_stop(w->loop, &c->wio);
	ev_timer_stop(w->loop, &c->close_timer);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	stat_add(&w->stats.conn_closed, 1);
	log_msg(LOG_DEBUG, "event=conn_close conn=%llu notifies=%llu", (unsigned long long)c->e.id,
	        (unsigned long long)c->e.notifies);
	free(c->rbuf);
	free(c->obuf);
	free(c);
	if (w->stopping && w->nconns == 0)
		ev_break(w->loop, EVBREAK_ONE);
}

static void set_reading(struct conn *c, bool on)
{
	if (on == c->reading)
		return;
	c->reading = on;
	if (on)
		ev_io_start(c->w->loop, &c->rio);
	else
		ev_io_stop(c->w->loop, &c->rio);
}

/* Sends what is queued; 0 when all of it went, 1 when the rest waits for EV_WRITE, -1 when
 * the connection was closed. Each frame was appended whole, so a frame is split across
 * writes only when the kernel takes part of one. */
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
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->ooff > 0) {
				memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
				c->olen -= c->ooff;
				c->ooff = 0;
			}
			ev_io_start(c->w->loop, &c->wio);
			return 1;
		}
		/* EPIPE, ECONNRESET...: the peer is gone, which is a normal end (3.1+ closes
		 * pooled connections with RST). */
		conn_close(c);
		return -1;
	}
	c->ooff = c->olen = 0;
	ev_io_stop(c->w->loop, &c->wio);
	return 0;
}

/* Our replies are all sent and the engine is closing: half-close, then wait briefly for
 * the peer's FIN so that unread input does not turn our close into an RST that could
 * destroy the DISCONNECT in flight. */
static void start_linger(struct conn *c)
{
	if (c->lingering)
		return;
	c->lingering = true;
	shutdown(c->fd, SHUT_WR);
	set_reading(c, true);
	ev_timer_stop(c->w->loop, &c->close_timer);
	ev_timer_set(&c->close_timer, LINGER_SECONDS, 0.);
	ev_timer_start(c->w->loop, &c->close_timer);
}

/* Feeds buffered input to the engine and sends its replies, until nothing moves. */
static void pump(struct conn *c)
{
	for (;;) {
		struct spop_writer wr = {c->obuf, c->olen, c->ocap, false};
		size_t used = engine_input(&c->e, c->rbuf, c->rlen, &wr);
		int fl;

		c->olen = wr.len;
		if (used) {
			memmove(c->rbuf, c->rbuf + used, c->rlen - used);
			c->rlen -= used;
		}
		fl = flush(c);
		if (fl < 0)
			return;
		if (c->e.state == ENGINE_CLOSING) {
			c->rlen = 0;
			if (fl == 0)
				start_linger(c);
			else
				set_reading(c, false);
			return;
		}
		if (used == 0 || fl == 1)
			break;
	}
	/* Backpressure: stop reading while the peer does not read our replies, or while
	 * the input buffer holds a frame we cannot take yet. */
	set_reading(c, c->ocap - c->olen >= engine_out_reserve(&c->e) && c->rlen < c->rcap);
}

static void on_read(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	if (c->lingering) {
		uint8_t sink[4096];
		n = recv(c->fd, sink, sizeof(sink), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			conn_close(c);
		return;
	}
	n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
	if (n == 0) {
		conn_close(c); /* EOF: HAProxy is done with this connection */
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(c); /* RST is a normal close too */
		return;
	}
	c->rlen += (size_t)n;
	pump(c);
}

static void on_write(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;
	int fl;

	(void)loop;
	(void)revents;
	fl = flush(c);
	if (fl < 0)
		return;
	if (c->e.state == ENGINE_CLOSING) {
		if (fl == 0)
			start_linger(c);
		return;
	}
	if (fl == 0)
		pump(c); /* input held back by backpressure */
}

static void on_close_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	conn_close(t->data);
}

static void conn_new(struct worker *w, int fd)
{
	struct server *s = w->srv;
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		goto oom;
	c->rcap = (size_t)s->cfg.frame_size + 4;
	/* Two full replies plus a DISCONNECT: one being sent while the next is built. */
	c->ocap = 2 * ((size_t)s->cfg.frame_size + 4) + ENGINE_DISCO_ROOM;
	c->rbuf = malloc(c->rcap);
	c->obuf = malloc(c->ocap);
	if (!c->rbuf || !c->obuf)
		goto oom;
	/* ACKs are small and latency-bound: never wait for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->w = w;
	c->fd = fd;
	engine_init(&c->e, s->cfg.frame_size, &w->stats, w->handler_ctx);
	c->e.id = atomic_fetch_add_explicit(&s->next_conn_id, 1, memory_order_relaxed);
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_timer_init(&c->close_timer, on_close_timer, 0., 0.);
	c->rio.data = c->wio.data = c->close_timer.data = c;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	stat_add(&w->stats.conn_opened, 1);
	log_msg(LOG_DEBUG, "event=conn_open conn=%llu worker=%u", (unsigned long long)c->e.id,
	        w->idx);
	set_reading(c, true);
	return;
oom:
	log_msg(LOG_ERROR, "event=conn_refused reason=\"out of memory\"");
	if (c) {
		free(c->rbuf);
		free(c->obuf);
		free(c);
	}
	close(fd);
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	if (!w->stopping)
		ev_io_start(loop, &w->accept_io);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker *w = io->data;

	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(w, fd);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_msg(LOG_ERROR, "event=accept_paused reason=\"%s\"", strerror(errno));
			ev_io_stop(loop, io);
			ev_timer_set(&w->accept_pause, ACCEPT_PAUSE_SEC, 0.);
			ev_timer_start(loop, &w->accept_pause);
		}
		return; /* EAGAIN (another worker took it), ECONNABORTED...: wait for the next */
	}
}

static void on_stop_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	log_msg(LOG_WARN, "event=stop_deadline worker=%u open_connections=%u", w->idx, w->nconns);
	while (w->conns)
		conn_close(w->conns);
	ev_break(loop, EVBREAK_ONE);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;
	struct conn *c, *next;

	(void)revents;
	w->stopping = true;
	ev_io_stop(loop, &w->accept_io);
	ev_timer_stop(loop, &w->accept_pause);
	if (w->owns_lfd && w->lfd >= 0) {
		close(w->lfd);
		w->lfd = -1;
	}
	for (c = w->conns; c; c = next) {
		next = c->next;
		if (c->e.state != ENGINE_CLOSING) {
			struct spop_writer wr = {c->obuf, c->olen, c->ocap, false};
			engine_shutdown(&c->e, &wr);
			c->olen = wr.len;
			pump(c); /* may close c */
		}
	}
	if (w->nconns == 0) {
		ev_break(loop, EVBREAK_ONE);
		return;
	}
	ev_timer_set(&w->stop_deadline, w->srv->cfg.drain_seconds, 0.);
	ev_timer_start(loop, &w->stop_deadline);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	ev_run(w->loop, 0);
	while (w->conns) /* only when the loop ended some other way */
		conn_close(w->conns);
	return NULL;
}

static void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->owns_lfd && w->lfd >= 0)
		close(w->lfd);
	if (w->loop)
		ev_loop_destroy(w->loop);
	handlers_worker_free(w->handler_ctx);
	free(w);
}

void server_free(struct server *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->nworkers; i++)
		worker_free(s->workers[i]);
	free(s->workers);
	free(s);
}

int server_start(struct server **out, const struct server_config *cfg)
{
	struct server *s = calloc(1, sizeof(*s));
	bool tcp = cfg->listen.ss.ss_family != AF_UNIX;
	struct addr bound = cfg->listen;
	char abuf[128];
	int shared_fd = -1;

	if (!s)
		return -1;
	s->cfg = *cfg;
	s->workers = calloc(cfg->threads, sizeof(*s->workers));
	if (!s->workers)
		goto err;
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct worker *w = calloc(1, sizeof(*w));
		if (!w)
			goto err;
		s->workers[s->nworkers++] = w;
		w->srv = s;
		w->idx = i;
		w->lfd = -1;
		w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
		w->handler_ctx = handlers_worker_new(cfg->cache_entries);
		if (!w->loop || !w->handler_ctx)
			goto err;
		if (tcp) {
			w->lfd = addr_listen(&bound, LISTEN_BACKLOG, 1);
			w->owns_lfd = true;
			/* Port 0: the first bind picks the port, the others join it. */
			if (w->lfd >= 0 && i == 0) {
				bound.len = sizeof(bound.ss);
				getsockname(w->lfd, (struct sockaddr *)&bound.ss, &bound.len);
			}
		} else {
			if (shared_fd < 0) {
				shared_fd = addr_listen(&bound, LISTEN_BACKLOG, 0);
				w->owns_lfd = true;
			}
			w->lfd = shared_fd;
		}
		if (w->lfd < 0) {
			log_msg(LOG_ERROR, "event=listen_failed addr=%s reason=\"%s\"",
			        addr_format(&bound, abuf, sizeof(abuf)), strerror(errno));
			goto err;
		}
		ev_io_init(&w->accept_io, on_accept, w->lfd, EV_READ);
		ev_timer_init(&w->accept_pause, on_accept_pause, 0., 0.);
		ev_async_init(&w->stop_async, on_stop);
		ev_timer_init(&w->stop_deadline, on_stop_deadline, 0., 0.);
		w->accept_io.data = w->accept_pause.data = w;
		w->stop_async.data = w->stop_deadline.data = w;
		ev_io_start(w->loop, &w->accept_io);
		ev_async_start(w->loop, &w->stop_async);
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (pthread_create(&s->workers[i]->thread, NULL, worker_main, s->workers[i]) != 0) {
			log_msg(LOG_ERROR, "event=thread_failed reason=\"%s\"", strerror(errno));
			server_stop(s);
			goto err;
		}
		s->workers[i]->started = true;
	}
	log_msg(LOG_INFO, "event=listen addr=%s threads=%u max_frame_size=%u",
	        addr_format(&bound, abuf, sizeof(abuf)), s->nworkers, cfg->frame_size);
	*out = s;
	return 0;
err:
	server_free(s);
	return -1;
}

void server_stop(struct server *s)
{
	for (unsigned i = 0; i < s->nworkers; i++)
		if (s->workers[i]->started)
			ev_async_send(s->workers[i]->loop, &s->workers[i]->stop_async);
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (s->workers[i]->started) {
			pthread_join(s->workers[i]->thread, NULL);
			s->workers[i]->started = false;
		}
	}
}

unsigned server_workers(const struct server *s)
{
	return s->nworkers;
}

struct agent_stats *server_stats(struct server *s, unsigned worker)
{
	return &s->workers[worker]->stats;
}

void *server_handler_ctx(struct server *s, unsigned worker)
{
	return s->workers[worker]->handler_ctx;
}

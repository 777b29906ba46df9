#include "promhttp.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "banned.h"

struct promhttp {
	struct MHD_Daemon *d;
	promhttp_render_fn render;
	void *arg;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *text)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
	struct promhttp *p = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t len = 0;
	char *body;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	body = p->render(p->arg, &len);
	if (!body)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int promhttp_start(struct promhttp **out, const struct addr *a, promhttp_render_fn render,
                   void *arg)
{
	struct promhttp *p = calloc(1, sizeof(*p));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;

	if (!p)
		return -1;
	if (a->ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	p->render = render;
	p->arg = arg;
	p->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, p, MHD_OPTION_SOCK_ADDR,
	                        (const struct sockaddr *)&a->ss, MHD_OPTION_CONNECTION_LIMIT,
	                        (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	                        MHD_OPTION_END);
	if (!p->d) {
		free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void promhttp_stop(struct promhttp *p)
{
	if (!p)
		return;
	MHD_stop_daemon(p->d);
	free(p);
}

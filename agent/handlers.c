#include "handlers.h"

#include "mtls.h"

#include "banned.h"

/* The `mtls` message of DESIGN §3. */
static const struct handler handlers[] = {
    {"mtls", mtls_handle},
};

const struct handler *handler_find(struct spop_bytes name)
{
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (spop_bytes_eq(name, handlers[i].name))
			return &handlers[i];
	return NULL;
}

void *handlers_worker_new(size_t cache_entries)
{
	return mtls_worker_new(cache_entries);
}

void handlers_worker_free(void *ctx)
{
	mtls_worker_free(ctx);
}

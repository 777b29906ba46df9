#include "handlers.h"

#include <stddef.h>

#include "banned.h"

/*
 * The `mtls` message of DESIGN §3. Until the policy engine is loaded, every hostname is
 * answered as a `disabled` policy answers it: seen, allow, NONE, no headers.
 */
static int mtls_disabled(const struct spop_message *m, struct spop_writer *w, void *ctx)
{
	struct spop_value v;

	(void)m;
	(void)ctx;
	v = spop_bool(true);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "seen", &v);
	v = spop_str("allow");
	spop_put_set_var(w, SPOP_SCOPE_SESS, "verdict", &v);
	v = spop_str("NONE");
	spop_put_set_var(w, SPOP_SCOPE_SESS, "verify", &v);
	v = spop_bool(false);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "hdr", &v);
	return 4;
}

static const struct handler handlers[] = {
    {"mtls", mtls_disabled},
};

const struct handler *handler_find(struct spop_bytes name)
{
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (spop_bytes_eq(name, handlers[i].name))
			return &handlers[i];
	return NULL;
}

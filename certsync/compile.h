/*
 * compile: from the configuration and the certificate store to the files HAProxy and the
 * agent read (DESIGN §2.1, §2.5, §4): one crt-list per environment, the maps of
 * hostname → policy id and hostname → mode, the CA files the crt-list lines name, the
 * certificate bundles HAProxy loads, and the policy snapshot.
 *
 * compile_build() is pure (no network, no writes; it reads the chain files and the store's
 * certificates) and stable: the same inputs give the same bytes, sorted by hostname, so a
 * second compile changes nothing. compile_write() replaces only the files whose content
 * differs, each atomically, certificates and CA files before the lists that name them and
 * the snapshot last.
 */
#ifndef EDGETLS_CS_COMPILE_H
#define EDGETLS_CS_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "store.h"

#define COMPILE_POLICY_ID_LEN 16 /* "p" + 12 hex digits, NUL, padding */

enum compile_file_kind {
	CF_CERT,     /* a bundle HAProxy loads: certificate, chain, key (0600) */
	CF_CAFILE,   /* CA certificates for a crt-list line's ca-file */
	CF_CRTLIST,  /* an environment's crt-list */
	CF_MAP,      /* hostname maps */
	CF_SNAPSHOT, /* the agent's policy.pb */
};

struct compile_file {
	enum compile_file_kind kind;
	char *path;
	uint8_t *data;
	size_t len;
	mode_t mode;
	const char *env; /* CF_CRTLIST: the environment's name */
};

/* What each configured hostname got. */
struct compile_host {
	const char *hostname; /* from the configuration */
	const struct cs_env *env;
	const struct store_cert *cert; /* NULL: no valid certificate covers it */
	char *cert_path;               /* the bundle's path, when cert */
	char policy[COMPILE_POLICY_ID_LEN];
	bool request_certificate;
	char *crtlist_line; /* the line as in the crt-list, NULL without cert */
};

struct compile_result {
	struct compile_file *files;
	size_t n_files, cap_files;
	struct compile_host *hosts; /* in configuration order */
	size_t n_hosts;
	size_t n_policies;
	uint64_t generation;
};

int compile_build(const struct cs_config *cfg, const struct store *st, time_t now,
                  struct compile_result *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Writes what changed; *changed counts the files written. */
int compile_write(const struct compile_result *r, size_t *changed, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void compile_result_free(struct compile_result *r);

#endif

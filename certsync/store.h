/*
 * store: the organisation-wide certificate store under state_dir (DESIGN §4.3).
 *
 *   <state_dir>/store/<id>/cert.pem    leaf then chain (0644)
 *   <state_dir>/store/<id>/key.pem     private key (0600, created exclusively)
 *   <state_dir>/store/<id>/meta.json   source, network, names, serial, dates (0644)
 *
 * <id> is the first 32 hex digits of the leaf's SHA-256. A certificate enters the store
 * whole or not at all: its files are written into a temporary directory that is renamed
 * into place, so a kill -9 at any point leaves the store as it was. Nothing is ever
 * rewritten in place; removal renames the directory away before deleting it. Keys are
 * never logged or printed; buffers that held them are cleansed.
 */
#ifndef EDGETLS_CS_STORE_H
#define EDGETLS_CS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "x509u.h"

#define STORE_ID_LEN 33 /* 32 hex digits and a NUL */

enum store_source { STORE_UPLOADED = 0, STORE_ACME };

struct store_cert {
	char id[STORE_ID_LEN];
	enum store_source source;
	char *network; /* uploads: the network it serves; ACME: NULL (its own hostnames) */
	struct x509u_names names;
	char serial[X509U_SERIAL_LEN];
	char sha256[X509U_SHA256_LEN];
	char *issuer_dn;
	char *subject_dn;
	time_t not_before, not_after;
	time_t added;
	int64_t added_us; /* when it was stored, in microseconds: orders same-second adds */
	bool wildcard;
};

struct store {
	char *state_dir;
	char *dir; /* <state_dir>/store */
	struct store_cert *v;
	size_t n;
};

/* Opens (creating the directories, 0700) and loads every certificate's metadata. A
 * directory whose metadata is unreadable is skipped with a log line, never fatal. */
int store_open(const char *state_dir, struct store **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void store_close(struct store *s);
/* Reloads the metadata from disk (after another process added a certificate). */
int store_reload(struct store *s, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Adds a certificate with its chain (issuer first) and key. Returns 0 and the entry's id;
 * 1 when this exact certificate is already stored (nothing written); -1 on error. */
int store_add(struct store *s, enum store_source source, const char *network, X509 *leaf,
              STACK_OF(X509) * chain, EVP_PKEY *key, time_t now, char id[STORE_ID_LEN], char *err,
              size_t errlen) __attribute__((warn_unused_result));
int store_remove(struct store *s, const char *id, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Paths of an entry's files, into buf. */
void store_path(const struct store *s, const char *id, const char *file, char *buf, size_t buflen);
/* The PEM HAProxy loads: leaf, chain, key, malloc'd in *out (the caller cleanses and frees
 * it: it holds the key). */
int store_bundle(const struct store *s, const char *id, char **out, size_t *len, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

const char *store_source_name(enum store_source src);

#endif

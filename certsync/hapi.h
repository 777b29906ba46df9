/*
 * hapi: HAProxy's runtime API (the stats socket, `level admin`), as HAProxy 2.6 speaks it
 * (management.txt §9.3; research/acme.md §6.2).
 *
 * One connection per command, in non-interactive mode: HAProxy answers and closes. A
 * payload follows the command after " <<" and ends at the first empty line, so payloads
 * are sanitised (CR and blank lines removed). Every reply is bounded (HAPI_MAX_REPLY) and
 * every call has a deadline. Changes made here live in HAProxy's memory only: callers
 * write the files first (DESIGN §4.3).
 */
#ifndef EDGETLS_CERTSYNC_HAPI_H
#define EDGETLS_CERTSYNC_HAPI_H

#include <stddef.h>

#include "addr.h"

#define HAPI_MAX_REPLY (8u << 20)
/* HAProxy refuses, silently, a command + payload larger than tune.bufsize (16384 by
 * default); we stay under it with room for the command line. */
#define HAPI_MAX_PAYLOAD 15000

struct hapi {
	struct addr addr;
	int timeout_ms;
};

/* Sends cmd (and payload when not NULL) and returns HAProxy's whole reply, malloc'd and
 * NUL-terminated. -1 when HAProxy cannot be reached or does not answer in time (err says
 * which). */
int hapi_cmd(const struct hapi *h, const char *cmd, const char *payload, char **reply, char *err,
             size_t errlen) __attribute__((warn_unused_result));

/* The serial HAProxy serves for a certificate file (uppercase hex), from `show ssl cert
 * <file>`. 0, 1 when HAProxy does not know the file, -1 on error. */
int hapi_cert_serial(const struct hapi *h, const char *file, char *serial, size_t len, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* Replaces (or, when create, first creates) the certificate `file` in HAProxy's memory
 * with pem (certificate, chain, key) and commits. A payload too large for HAProxy's buffer
 * is sent in two parts (certificates, then the key). A failed transaction is aborted. */
int hapi_cert_update(const struct hapi *h, const char *file, const char *pem, int create, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* `add ssl crt-list <crtlist>` with one line, `del ssl crt-list <crtlist> <cert>`. */
int hapi_crtlist_add(const struct hapi *h, const char *crtlist, const char *line, char *err,
                     size_t errlen) __attribute__((warn_unused_result));
int hapi_crtlist_del(const struct hapi *h, const char *crtlist, const char *certfile, char *err,
                     size_t errlen) __attribute__((warn_unused_result));
/* Replaces (or creates) the CA file `file` with pem and commits. */
int hapi_cafile_update(const struct hapi *h, const char *file, const char *pem, int create,
                       char *err, size_t errlen) __attribute__((warn_unused_result));
/* `set map`, or `add map` when the key is absent; `del map`. */
int hapi_map_set(const struct hapi *h, const char *map, const char *key, const char *value,
                 char *err, size_t errlen) __attribute__((warn_unused_result));
int hapi_map_del(const struct hapi *h, const char *map, const char *key, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Copies pem without CRs and blank lines (which would end the payload early); malloc'd. */
char *hapi_sanitize_payload(const char *pem);

#endif

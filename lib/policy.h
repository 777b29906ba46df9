/*
 * policy: reading and writing the mTLS policy snapshot (lib/policy.proto).
 *
 * policy_snapshot_decode() accepts only a snapshot this code can evaluate: the schema
 * version it knows, at most POLICY_MAX_BYTES, every host naming an existing policy, modes
 * and depths in range. Anything else is refused with a sentence in err, so the agent can
 * keep serving the previous snapshot.
 */
#ifndef EDGETLS_POLICY_H
#define EDGETLS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "policy.pb-c.h"

#define POLICY_SCHEMA_VERSION 1
#define POLICY_MAX_BYTES      (64u << 20)
#define POLICY_MAX_DEPTH      10

typedef Edgetls__Snapshot policy_snapshot;

int policy_snapshot_decode(const uint8_t *buf, size_t len, policy_snapshot **out, char *err,
                           size_t errlen) __attribute__((warn_unused_result));
int policy_snapshot_load(const char *path, policy_snapshot **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Serialises s and replaces path atomically (mode 0644: it holds no secret). */
int policy_snapshot_save(const char *path, const policy_snapshot *s)
    __attribute__((warn_unused_result));
void policy_snapshot_free(policy_snapshot *s);

#endif

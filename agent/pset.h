/*
 * pset: the policy set the agent evaluates against — a loaded snapshot (lib/policy.h)
 * with one trust store per policy and a hostname index.
 *
 * Lookup follows DESIGN §2.5: the exact hostname, then the "*." wildcard of its parent
 * (one label), then the snapshot's default policy; NULL means disabled.
 *
 * Lifetime: a set is reference-counted. The current set is published once built;
 * workers keep a reference to the set they evaluate with and swap to a newer one between
 * two NOTIFYs (pset_seq() tells them when), so an evaluation in flight always finishes
 * on the set it started with, and the old set is freed by whoever drops the last
 * reference. A snapshot that does not load never replaces the current set.
 */
#ifndef EDGETLS_AGENT_PSET_H
#define EDGETLS_AGENT_PSET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "eval.h"
#include "policy.h"

/* Verdicts counted per policy: [class: none, success, lenient, failed][allow, deny,
 * reject]. Counts of a policy id are carried over when a new set keeps that id. */
enum pset_class { PC_NONE, PC_SUCCESS, PC_LENIENT, PC_FAILED, PC_COUNT };
enum pset_verdict { PV_ALLOW, PV_DENY, PV_REJECT, PV_COUNT };

struct pset_policy {
	const Edgetls__Policy *p; /* id, mode, depth, deny_on_failure, send_headers... */
	struct eval_trust *trust; /* NULL when the policy has no anchor */
	_Atomic uint64_t verdicts[PC_COUNT][PV_COUNT];
};

struct pset;

/* Loads a snapshot file and builds its trust stores and index; counts are carried over
 * from prev (may be NULL) for the ids both have. */
int pset_load(const char *path, const struct pset *prev, struct pset **out, char *err,
              size_t errlen) __attribute__((warn_unused_result));
void pset_hold(struct pset *ps);
void pset_release(struct pset *ps);

/* The policy for an SNI (any case; NULL or empty: no SNI), or NULL for disabled. */
const struct pset_policy *pset_lookup(const struct pset *ps, const uint8_t *sni, size_t len);
uint64_t pset_generation(const struct pset *ps);
size_t pset_count(const struct pset *ps);
const struct pset_policy *pset_at(const struct pset *ps, size_t i);

/* The process-wide current set. publish takes over the caller's reference. */
void pset_publish(struct pset *ps);
/* A new reference to the current set, or NULL when none was ever published. */
struct pset *pset_current(void);
/* Changes every time a set is published. */
uint64_t pset_seq(void);

#endif

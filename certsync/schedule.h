/*
 * sched: when certsync checks, orders and renews each hostname of an environment with
 * auto_certificates (DESIGN §4.3, research/acme.md §1.12-1.14), and the per-hostname state
 * that survives a restart in <state_dir>/acme/state.json.
 *
 * The rules are pure functions of the times the caller passes in (no clock, no I/O):
 *   - renewal: a uniformly random time in the ARI suggestedWindow when the CA offered one
 *     (RFC 9773 §4.2); else at 2/3 of the lifetime (1/2 when it is under 10 days), minus
 *     a jitter of up to 1/50 of the lifetime so that certificates issued together do not
 *     renew together; never after notAfter.
 *   - order failures back off 1 min, 10 min, 100 min, then once a day (Let's Encrypt's
 *     integration guide); a Retry-After longer than that wins.
 *   - failing checks (delegation, CAA) are re-run after 1 min, doubling up to 1 h; nothing
 *     is ordered meanwhile.
 * The state file is written atomically (afile_write) and read back exactly.
 *
 * (The file is schedule.h, not sched.h: -Icertsync would shadow the system <sched.h>
 * that <pthread.h> includes.)
 */
#ifndef EDGETLS_CS_SCHED_H
#define EDGETLS_CS_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SCHED_CLASS_MAX  48
#define SCHED_MSG_MAX    1024
#define SCHED_RECORD_MAX 1024
#define SCHED_TEN_DAYS   (10 * 86400)
#define SCHED_CHECK_MIN  60
#define SCHED_CHECK_MAX  3600

/* The outcome of one pre-order check as last seen. */
struct sched_check {
	char state[32]; /* "ok", "missing", "allowed", "forbidden", ...; "" never ran */
	char record[SCHED_RECORD_MAX]; /* not OK: the exact record to add ("" when none helps) */
	char message[SCHED_MSG_MAX];
};

struct sched_host {
	char *hostname;
	time_t next_attempt;   /* checks (and an order when they pass) not before this; 0: now */
	time_t renew_at;       /* when the current certificate is renewed; 0: none computed */
	char cert_serial[132]; /* the certificate renew_at was computed for (uppercase hex) */
	time_t ari_start, ari_end; /* the ARI window used, 0 when none */
	int failures;              /* consecutive order failures (checks passed, order failed) */
	int check_failures;        /* consecutive failing checks */
	char last_error_class[SCHED_CLASS_MAX]; /* "" after a success */
	char last_error[SCHED_MSG_MAX];
	time_t last_attempt, last_success;
	struct sched_check delegation, caa;
	bool busy; /* queued or being worked on; runtime only, not persisted */
};

struct sched_state {
	struct sched_host *v;
	size_t n, cap;
	size_t *idx; /* open addressing over v by hostname: index + 1, 0 empty */
	size_t mask;
};

/* 2/3 of the lifetime, 1/2 below 10 days: the ideal renewal time without ARI. */
time_t sched_ideal_renewal(time_t not_before, time_t not_after);
/*
 * The renewal time. has_window: the ARI suggestedWindow [win_start, win_end) is used,
 * the point chosen by rnd (uniform over 0..UINT32_MAX). Without it the ideal renewal time
 * minus rnd * (lifetime / 50) / 2^32. The result is clamped to [not_before, not_after].
 */
time_t sched_renewal_time(time_t not_before, time_t not_after, bool has_window, time_t win_start,
                          time_t win_end, uint32_t rnd);
/* The wait after the n-th consecutive order failure (n >= 1): 60, 600, 6000, 86400... */
long sched_order_backoff(int n);
/* The wait after the n-th consecutive failing check (n >= 1): 60 doubling up to 3600. */
long sched_check_backoff(int n);
/* Is h due at now? has_cert: it holds a valid certificate of ours (renew at renew_at). */
bool sched_due(const struct sched_host *h, bool has_cert, time_t now);

/* The host's entry, created (zeroed, next_attempt 0) when absent; NULL on allocation failure. */
struct sched_host *sched_host_get(struct sched_state *s, const char *hostname);
const struct sched_host *sched_host_find(const struct sched_state *s, const char *hostname);

/* <state_dir>/acme/state.json. A missing file is an empty state (0); -1 with err otherwise. */
int sched_load(const char *path, struct sched_state *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int sched_save(const char *path, const struct sched_state *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void sched_free(struct sched_state *s);
/* The state file's path for a state_dir, into buf. */
void sched_path(const char *state_dir, char *buf, size_t len);

#endif

/*
 * daemon: `certsync run`. One libev loop: it recompiles and applies when the configuration,
 * a chain-of-trust file or the store changes, retries HAProxy with backoff while it is
 * unreachable or out of sync, answers the control socket, and exports metrics (on
 * libmicrohttpd's thread, from a snapshot taken under a mutex after every sync).
 *
 * ACME (DESIGN §4.3): the loop's tick decides which hostnames of environments with
 * auto_certificates are due (schedule.h) and queues them; one worker thread runs
 * issue_run() for each, one at a time (its calls block); each result comes back through
 * an ev_async, is recorded in <state_dir>/acme/state.json, and a new certificate is
 * applied to HAProxy at once by ops_sync (runtime API: no reload).
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <sys/file.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "afile.h"
#include "cmds.h"
#include "ctl.h"
#include "delegation.h"
#include "dnsupdate.h"
#include "issue.h"
#include "log.h"
#include "ops.h"
#include "promhttp.h"
#include "schedule.h"

#include "strhash.h"

#include "banned.h"

#define TICK_SECONDS   1.0  /* how often files are checked for changes */
#define RESYNC_SECONDS 60.0 /* a full comparison with HAProxy even when nothing changed */
#define BACKOFF_MIN    1.0
#define BACKOFF_MAX    60.0

struct host_metric {
	char *hostname;
	const char *source;
	time_t not_after;
};

/* What the metrics thread reads. */
struct snapshot {
	struct host_metric *hosts;
	size_t n_hosts;
	size_t without_cert;
	uint64_t generation;
	int in_sync, reachable, has_hapi;
	size_t config_errors;
	time_t last_sync;
	uint64_t apply_ok, apply_err, reload_ok, reload_err, upload_ok, upload_err;
	/* ACME: counters here, per-hostname state in struct daemon's sched (same mutex) */
	uint64_t orders_valid, orders_invalid, orders_error, dns_updates_ok, dns_updates_err;
};

/* One hostname for the ACME worker, and its result coming back. */
struct acme_job {
	char *hostname;
	char *renew_cert; /* the certificate being renewed (cert.pem in the store), or NULL */
	int ctl_fd;       /* a recheck waiting for its answer, else -1 */
	int rc;
	struct issue_result res;
	struct acme_job *next;
};

struct daemon {
	const char *config_path;
	struct ops o;
	int lock_fd;
	struct ev_loop *loop;
	int ctl_fd;
	ev_io ctl_io;
	ev_timer tick, retry;
	ev_signal sig_term, sig_int, sig_hup;
	char *fingerprint;
	double backoff;
	ev_tstamp last_full;
	pthread_mutex_t mu;
	struct snapshot snap;
	/* ACME: sched is read by the metrics thread, so changed under mu */
	struct sched_state sched;
	char sched_path[4096];
	bool acme_enabled;
	pthread_t worker;
	bool worker_started;
	pthread_mutex_t qmu; /* the two queues and stopping */
	pthread_cond_t qcv;
	struct acme_job *todo, *done;
	size_t queued; /* jobs in todo: the tick queues at most ACME_QUEUE_MAX */
	bool stopping, worker_busy;
	bool sched_dirty; /* state.json is written by the next tick, at most once a second */
	ev_async acme_done;
};

static void append_stat(char **fp, const char *path)
{
	struct stat st;
	char *n = NULL;

	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof(st));
	if (asprintf(&n, "%s%s:%lld.%09ld:%lld;", *fp ? *fp : "", path,
	             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_size) < 0)
		return;
	free(*fp);
	*fp = n;
}

/* The files whose change means "compile again". */
static char *fingerprint(const struct daemon *d)
{
	const struct cs_config *c = d->o.cfg;
	char *fp = NULL;

	append_stat(&fp, d->config_path);
	append_stat(&fp, d->o.store->dir);
	if (c->upload_ca_file)
		append_stat(&fp, c->upload_ca_file);
	for (size_t e = 0; e < c->n_envs; e++)
		for (size_t i = 0; i < c->envs[e].mtls.n_chains; i++)
			append_stat(&fp, c->envs[e].mtls.chains[i].file);
	return fp;
}

static void snapshot_update(struct daemon *d, const struct compile_result *r,
                            const struct apply_report *rep, bool synced)
{
	struct host_metric *hosts = calloc(r->n_hosts + 1, sizeof(*hosts));
	size_t n = 0, without = 0;

	for (size_t i = 0; hosts && i < r->n_hosts; i++) {
		if (!r->hosts[i].cert) {
			without++;
			continue;
		}
		hosts[n].hostname = strdup(r->hosts[i].hostname);
		hosts[n].source = store_source_name(r->hosts[i].cert->source);
		hosts[n].not_after = r->hosts[i].cert->not_after;
		n++;
	}
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->snap.n_hosts; i++)
		free(d->snap.hosts[i].hostname);
	free(d->snap.hosts);
	d->snap.hosts = hosts;
	d->snap.n_hosts = hosts ? n : 0;
	d->snap.without_cert = without;
	d->snap.generation = r->generation;
	d->snap.has_hapi = d->o.has_hapi;
	d->snap.in_sync = rep->in_sync;
	d->snap.reachable = rep->reachable;
	d->snap.last_sync = time(NULL);
	if (synced && d->o.has_hapi) {
		if (rep->in_sync)
			d->snap.apply_ok++;
		else
			d->snap.apply_err++;
	}
	pthread_mutex_unlock(&d->mu);
}

static void sync_now(struct daemon *d)
{
	struct compile_result r;
	struct apply_report rep;
	char err[512];

	ev_timer_stop(d->loop, &d->retry);
	if (ops_sync(&d->o, time(NULL), true, &r, &rep, err, sizeof(err)) < 0) {
		log_msg(LOG_ERROR, "event=compile_failed error=\"%s\"", err);
		d->backoff = d->backoff ? d->backoff * 2 : BACKOFF_MIN;
	} else {
		snapshot_update(d, &r, &rep, true);
		compile_result_free(&r);
		if (!d->o.has_hapi || rep.in_sync) {
			d->backoff = 0;
			return;
		}
		/* Files are correct; HAProxy is behind: retry, backing off. */
		d->backoff = d->backoff ? d->backoff * 2 : BACKOFF_MIN;
	}
	if (d->backoff > BACKOFF_MAX)
		d->backoff = BACKOFF_MAX;
	ev_timer_set(&d->retry, d->backoff, 0.);
	ev_timer_start(d->loop, &d->retry);
}

/* The configuration changed on disk: take it if it is valid, else keep the running one. */
static void reload(struct daemon *d)
{
	struct cs_diags dg;
	struct cs_config *cfg = NULL;
	char err[512];

	cs_diags_init(&dg);
	if (cs_config_load(d->config_path, &cfg, &dg) != 0) {
		for (size_t i = 0; i < dg.n; i++)
			log_msg(LOG_ERROR, "event=config_error file=%s line=%d message=\"%s\"",
			        dg.v[i].file, dg.v[i].line, dg.v[i].message);
		log_msg(LOG_ERROR,
		        "event=config_rejected errors=%zu action=\"keeping the running "
		        "configuration\"",
		        dg.errors);
		pthread_mutex_lock(&d->mu);
		d->snap.config_errors = dg.errors ? dg.errors : 1;
		d->snap.reload_err++;
		pthread_mutex_unlock(&d->mu);
		cs_diags_free(&dg);
		return;
	}
	cs_diags_free(&dg);
	if (strcmp(cfg->state_dir, d->o.cfg->state_dir) != 0) {
		log_msg(LOG_ERROR, "event=config_rejected reason=\"state_dir cannot change while "
		                   "running: restart certsync\"");
		cs_config_free(cfg);
		return;
	}
	cs_config_free(d->o.cfg);
	d->o.cfg = cfg;
	d->o.has_hapi = false;
	if (cfg->runtime_api &&
	    addr_parse(cfg->runtime_api, &d->o.hapi.addr, err, sizeof(err)) == 0)
		d->o.has_hapi = true;
	pthread_mutex_lock(&d->mu);
	d->snap.config_errors = 0;
	d->snap.reload_ok++;
	pthread_mutex_unlock(&d->mu);
	log_msg(LOG_INFO, "event=config_reloaded environments=%zu hostnames=%zu", cfg->n_envs,
	        cfg->n_hostnames);
}

static void acme_schedule(struct daemon *d);

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon *d = t->data;
	char *fp = fingerprint(d), err[512];

	(void)revents;
	acme_schedule(d);
	if (fp && d->fingerprint && strcmp(fp, d->fingerprint) != 0) {
		free(d->fingerprint);
		d->fingerprint = fp;
		reload(d);
		if (store_reload(d->o.store, err, sizeof(err)) < 0)
			log_msg(LOG_ERROR, "event=store_reload_failed error=\"%s\"", err);
		/* The reload may have changed which files are watched. */
		free(d->fingerprint);
		d->fingerprint = fingerprint(d);
		sync_now(d);
		d->last_full = ev_now(loop);
		return;
	}
	free(fp);
	if (ev_now(loop) - d->last_full >= RESYNC_SECONDS && !ev_is_active(&d->retry)) {
		d->last_full = ev_now(loop);
		sync_now(d);
	}
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	sync_now(t->data);
}

/* ---- ACME ---- */

static void job_free(struct acme_job *j)
{
	if (!j)
		return;
	free(j->hostname);
	free(j->renew_cert);
	free(j);
}

/* At start, before any order: TXT records a killed attempt left at our delegation targets
 * are deleted (DESIGN §4.3). An order resumed afterwards publishes its values again. */
static void sweep_stale_txt(const char *config_path)
{
	struct cs_diags dg;
	struct cs_config *cfg = NULL;
	struct dnsupdate *u = NULL;
	struct dnsupdate_txt *found = NULL;
	const char **names = NULL;
	size_t n = 0, nfound = 0;
	char err[512];

	cs_diags_init(&dg);
	if (cs_config_load(config_path, &cfg, &dg) != 0 || !cfg->dns.present)
		goto out;
	names = calloc(cfg->n_hostnames + 1, sizeof(*names));
	for (size_t e = 0; names && e < cfg->n_envs; e++) {
		if (!cfg->envs[e].auto_certificates)
			continue;
		for (size_t h = 0; h < cfg->envs[e].n_hostnames; h++) {
			char t[300];
			bool dup = false;
			if (delegation_target(cfg->envs[e].hostnames[h], cfg->dns.layout,
			                      cfg->dns.validation_domain, t, sizeof(t)) < 0)
				continue;
			for (size_t k = 0; k < n && !dup; k++)
				dup = strcmp(names[k], t) == 0;
			if (!dup && (names[n] = strdup(t)) != NULL)
				n++;
		}
	}
	if (n == 0)
		goto out;
	if (dnsupdate_open(&cfg->dns, 5000, &u, err, sizeof(err)) < 0 ||
	    dnsupdate_sweep(u, names, n, &found, &nfound, err, sizeof(err)) < 0) {
		log_msg(LOG_WARN, "event=txt_sweep_failed error=\"%s\"", err);
		goto out;
	}
	for (size_t i = 0; i < nfound; i++) {
		if (dnsupdate_delete_txt(u, found[i].name, found[i].value, err, sizeof(err)) == 0)
			log_msg(LOG_INFO, "event=txt_swept name=%s", found[i].name);
		else
			log_msg(LOG_WARN, "event=txt_sweep_failed name=%s error=\"%s\"",
			        found[i].name, err);
	}
out:
	dnsupdate_txt_free(found, nfound);
	dnsupdate_close(u);
	for (size_t k = 0; k < n; k++)
		free((char *)names[k]);
	free(names);
	cs_config_free(cfg);
	cs_diags_free(&dg);
}

static void *acme_worker(void *arg)
{
	struct daemon *d = arg;

	struct cs_config *cfg = NULL; /* the worker's own copy: the loop may reload its one */
	char loaded[256] = "";        /* which version of the file cfg is */

	sweep_stale_txt(d->config_path);
	for (;;) {
		struct acme_job *j;
		struct cs_diags dg;
		struct issue_request req = {0};
		char now_stamp[256];
		struct stat st;

		pthread_mutex_lock(&d->qmu);
		while (!d->todo && !d->stopping)
			pthread_cond_wait(&d->qcv, &d->qmu);
		if (d->stopping) {
			pthread_mutex_unlock(&d->qmu);
			cs_config_free(cfg);
			return NULL;
		}
		j = d->todo;
		d->todo = j->next;
		j->next = NULL;
		d->queued--;
		d->worker_busy = true;
		pthread_mutex_unlock(&d->qmu);

		/* Reloaded only when the file changed: a 10,000-hostname configuration takes a
		 * tenth of a second to load, and there is one job per hostname. */
		now_stamp[0] = '\0';
		if (stat(d->config_path, &st) == 0)
			snprintf(now_stamp, sizeof(now_stamp), "%llu:%lld.%09ld:%lld",
			         (unsigned long long)st.st_ino, (long long)st.st_mtim.tv_sec,
			         st.st_mtim.tv_nsec, (long long)st.st_size);
		cs_diags_init(&dg);
		if (!cfg || strcmp(now_stamp, loaded) != 0) {
			cs_config_free(cfg);
			cfg = NULL;
			if (cs_config_load(d->config_path, &cfg, &dg) == 0)
				snprintf(loaded, sizeof(loaded), "%s", now_stamp);
		}
		if (!cfg) {
			memset(&j->res, 0, sizeof(j->res));
			snprintf(j->res.error_class, sizeof(j->res.error_class), "internal");
			snprintf(j->res.error, sizeof(j->res.error),
			         "the configuration on disk has errors (certsync check)");
			j->rc = -1;
		} else {
			req.cfg = cfg;
			req.hostname = j->hostname;
			req.renew_cert = j->renew_cert;
			j->rc = issue_run(&req, &j->res);
		}
		cs_diags_free(&dg);

		pthread_mutex_lock(&d->qmu);
		d->worker_busy = false;
		if (d->stopping) {
			pthread_mutex_unlock(&d->qmu);
			if (j->ctl_fd >= 0)
				close(j->ctl_fd);
			job_free(j);
			cs_config_free(cfg);
			return NULL;
		}
		j->next = d->done;
		d->done = j;
		ev_async_send(d->loop, &d->acme_done);
		pthread_mutex_unlock(&d->qmu);
	}
}

static bool host_is_auto(const struct cs_config *c, const char *hostname)
{
	for (size_t e = 0; e < c->n_envs; e++)
		for (size_t i = 0; c->envs[e].auto_certificates && i < c->envs[e].n_hostnames; i++)
			if (strcmp(c->envs[e].hostnames[i], hostname) == 0)
				return true;
	return false;
}

/* Our newest valid certificate for exactly hostname, or NULL. */
static const struct store_cert *acme_cert_of(const struct store *st, const char *hostname,
                                             time_t now)
{
	const struct store_cert *best = NULL;

	for (size_t i = 0; i < st->n; i++) {
		const struct store_cert *c = &st->v[i];
		if (c->source != STORE_ACME || c->not_after <= now)
			continue;
		for (size_t k = 0; k < c->names.n; k++)
			if (strcmp(c->names.name[k], hostname) == 0 &&
			    (!best || c->not_after > best->not_after))
				best = c;
	}
	return best;
}

static uint32_t rnd32(void)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)random();
	return r;
}

static void sched_store(struct daemon *d)
{
	char err[512];

	if (sched_save(d->sched_path, &d->sched, err, sizeof(err)) < 0)
		log_msg(LOG_ERROR, "event=acme_state_write_failed error=\"%s\"", err);
}

/* Hostnames due at once are queued a few at a time: the rest wait for the next ticks,
 * which keeps memory flat however many hostnames are due (10,000 on a first start). */
#define ACME_QUEUE_MAX 16

static int acme_enqueue(struct daemon *d, const char *hostname, int ctl_fd)
{
	struct acme_job *j = calloc(1, sizeof(*j)), **pp;
	const struct store_cert *c = acme_cert_of(d->o.store, hostname, time(NULL));

	if (!j || !(j->hostname = strdup(hostname))) {
		job_free(j);
		return -1;
	}
	j->ctl_fd = ctl_fd;
	if (c) {
		char path[4096];
		store_path(d->o.store, c->id, "cert.pem", path, sizeof(path));
		j->renew_cert = strdup(path);
	}
	pthread_mutex_lock(&d->qmu);
	for (pp = &d->todo; *pp; pp = &(*pp)->next)
		;
	*pp = j;
	d->queued++;
	pthread_cond_signal(&d->qcv);
	pthread_mutex_unlock(&d->qmu);
	return 0;
}

static size_t queued(struct daemon *d)
{
	size_t n;

	pthread_mutex_lock(&d->qmu);
	n = d->queued;
	pthread_mutex_unlock(&d->qmu);
	return n;
}

/* The newest valid ACME certificate of every name, built once per tick: looking each
 * hostname up in the whole store would cost hostnames x certificates. */
struct cert_index {
	const char **name;
	const struct store_cert **cert;
	size_t mask;
};

static int cert_index_build(struct cert_index *ix, const struct store *st, time_t now)
{
	size_t names = 0, m = 16;

	for (size_t i = 0; i < st->n; i++)
		names += st->v[i].names.n;
	while (m < 2 * names)
		m *= 2;
	ix->name = calloc(m, sizeof(*ix->name));
	ix->cert = calloc(m, sizeof(*ix->cert));
	ix->mask = m - 1;
	if (!ix->name || !ix->cert)
		return -1;
	for (size_t i = 0; i < st->n; i++) {
		const struct store_cert *c = &st->v[i];
		if (c->source != STORE_ACME || c->not_after <= now)
			continue;
		for (size_t k = 0; k < c->names.n; k++) {
			size_t h = (size_t)strhash(c->names.name[k]) & ix->mask;
			while (ix->name[h] && strcmp(ix->name[h], c->names.name[k]) != 0)
				h = (h + 1) & ix->mask;
			if (!ix->name[h] || c->not_after > ix->cert[h]->not_after) {
				ix->name[h] = c->names.name[k];
				ix->cert[h] = c;
			}
		}
	}
	return 0;
}

static const struct store_cert *cert_index_get(const struct cert_index *ix, const char *host)
{
	size_t h = (size_t)strhash(host) & ix->mask;

	while (ix->name[h] && strcmp(ix->name[h], host) != 0)
		h = (h + 1) & ix->mask;
	return ix->name[h] ? ix->cert[h] : NULL;
}

/* The tick: queue every hostname that is due. */
static void acme_schedule(struct daemon *d)
{
	const struct cs_config *c = d->o.cfg;
	time_t now = time(NULL);
	bool changed = false;
	struct cert_index ix = {0};
	size_t room;

	if (!d->acme_enabled)
		return;
	if (d->sched_dirty) {
		d->sched_dirty = false;
		sched_store(d);
	}
	room = ACME_QUEUE_MAX - queued(d);
	if (room == 0 || cert_index_build(&ix, d->o.store, now) < 0) {
		free(ix.name);
		free(ix.cert);
		return;
	}
	pthread_mutex_lock(&d->mu);
	for (size_t e = 0; e < c->n_envs; e++) {
		for (size_t i = 0; c->envs[e].auto_certificates && i < c->envs[e].n_hostnames;
		     i++) {
			const char *hn = c->envs[e].hostnames[i];
			struct sched_host *h = sched_host_get(&d->sched, hn);
			const struct store_cert *cert;
			bool due;
			if (!h || h->busy || room == 0)
				continue;
			cert = cert_index_get(&ix, hn);
			if (cert && strcmp(cert->serial, h->cert_serial) != 0) {
				/* A certificate we have not scheduled yet (first start, or
				 * renewed by another run): renew at 2/3 of its lifetime. */
				snprintf(h->cert_serial, sizeof(h->cert_serial), "%s",
				         cert->serial);
				h->renew_at = sched_renewal_time(cert->not_before, cert->not_after,
				                                 false, 0, 0, rnd32());
				h->ari_start = h->ari_end = 0;
				changed = true;
			}
			due = sched_due(h, cert != NULL, now);
			/* An order in flight is finished as soon as the backoff allows. */
			if (!due && now >= h->next_attempt && issue_order_pending(c->state_dir, hn))
				due = true;
			if (due && acme_enqueue(d, hn, -1) == 0) {
				h->busy = true;
				room--;
				log_msg(LOG_INFO, "event=acme_due hostname=%s reason=%s", hn,
				        cert ? "renewal" : "issuance");
			}
		}
	}
	pthread_mutex_unlock(&d->mu);
	free(ix.name);
	free(ix.cert);
	if (changed)
		d->sched_dirty = true;
}

static void copy_check(struct sched_check *c, const char *state, const char *record,
                       const char *message)
{
	/* Truncation is fine here: these are for display (the precision says so to gcc). */
	snprintf(c->state, sizeof(c->state), "%.*s", (int)sizeof(c->state) - 1, state);
	snprintf(c->record, sizeof(c->record), "%.*s", (int)sizeof(c->record) - 1, record);
	snprintf(c->message, sizeof(c->message), "%.*s", (int)sizeof(c->message) - 1, message);
}

/* The rules of DESIGN §4.3 applied to one result (under d->mu). */
static void acme_record(struct sched_host *h, const struct issue_result *r, int rc, time_t now)
{
	bool ok = r->delegation.outcome == DELEGATION_OK;

	h->last_attempt = now;
	if (r->delegation_ran)
		copy_check(&h->delegation, delegation_outcome_token(r->delegation.outcome),
		           ok ? "" : r->delegation.record, ok ? "" : r->delegation.message);
	if (r->caa_ran) {
		ok = r->caa.verdict == CAA_ALLOWED;
		copy_check(&h->caa, caa_verdict_token(r->caa.verdict), ok ? "" : r->caa.fix,
		           ok ? "" : r->caa.message);
	}
	if (rc == 0 && r->order == ISSUE_ORDER_VALID) {
		h->failures = h->check_failures = 0;
		h->next_attempt = 0;
		h->last_error_class[0] = h->last_error[0] = '\0';
		h->last_success = now;
		snprintf(h->cert_serial, sizeof(h->cert_serial), "%s", r->serial);
		h->renew_at = sched_renewal_time(r->not_before, r->not_after, r->has_window,
		                                 r->win_start, r->win_end, rnd32());
		h->ari_start = r->has_window ? r->win_start : 0;
		h->ari_end = r->has_window ? r->win_end : 0;
		return;
	}
	snprintf(h->last_error_class, sizeof(h->last_error_class), "%s",
	         r->error_class[0] ? r->error_class : "internal");
	snprintf(h->last_error, sizeof(h->last_error), "%s", r->error);
	if (r->checks_ran && !r->checks_ok) {
		/* Nothing was ordered: re-check 1 min, doubling to 1 h. */
		h->check_failures++;
		h->next_attempt = now + sched_check_backoff(h->check_failures);
	} else {
		long w;
		h->check_failures = 0;
		h->failures++;
		w = sched_order_backoff(h->failures);
		if (r->retry_after > w)
			w = r->retry_after;
		h->next_attempt = now + w;
	}
}

static json_t *result_json(const char *hostname, const struct issue_result *r, int rc)
{
	json_t *o =
	    json_pack("{s:b,s:s,s:b}", "ok", rc == 0, "hostname", hostname, "ordered", r->ordered);

	if (r->delegation_ran)
		json_object_set_new(
		    o, "delegation",
		    json_pack("{s:s,s:s,s:s,s:s}", "state",
		              delegation_outcome_token(r->delegation.outcome), "expected",
		              r->delegation.expected, "record",
		              r->delegation.outcome == DELEGATION_OK ? "" : r->delegation.record,
		              "message", r->delegation.message));
	if (r->caa_ran)
		json_object_set_new(o, "caa",
		                    json_pack("{s:s,s:s,s:s}", "state",
		                              caa_verdict_token(r->caa.verdict), "record",
		                              r->caa.verdict == CAA_ALLOWED ? "" : r->caa.fix,
		                              "message", r->caa.message));
	json_object_set_new(o, "resumed", json_boolean(r->resumed));
	if (rc == 0 && r->order == ISSUE_ORDER_VALID) {
		json_object_set_new(o, "serial", json_string(r->serial));
		json_object_set_new(o, "id", json_string(r->store_id));
		json_object_set_new(o, "not_after", json_integer((json_int_t)r->not_after));
	} else {
		json_object_set_new(o, "error_class", json_string(r->error_class));
		json_object_set_new(o, "error", json_string(r->error));
	}
	return o;
}

static void on_acme_done(struct ev_loop *loop, ev_async *w, int revents)
{
	struct daemon *d = w->data;
	struct acme_job *list, *j;
	bool issued = false;
	char err[512];

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&d->qmu);
	list = d->done;
	d->done = NULL;
	pthread_mutex_unlock(&d->qmu);
	for (j = list; j; j = j->next) {
		const struct issue_result *r = &j->res;
		struct sched_host *h;
		pthread_mutex_lock(&d->mu);
		h = sched_host_get(&d->sched, j->hostname);
		if (h) {
			h->busy = false;
			acme_record(h, r, j->rc, time(NULL));
		}
		d->snap.dns_updates_ok += r->dns_updates_ok;
		d->snap.dns_updates_err += r->dns_updates_failed;
		if (r->order == ISSUE_ORDER_VALID)
			d->snap.orders_valid++;
		else if (r->order == ISSUE_ORDER_INVALID)
			d->snap.orders_invalid++;
		else if (r->order == ISSUE_ORDER_ERROR)
			d->snap.orders_error++;
		pthread_mutex_unlock(&d->mu);
		if (j->rc == 0 && r->order == ISSUE_ORDER_VALID)
			issued = true;
		else
			log_msg(LOG_WARN,
			        "event=acme_attempt_failed hostname=%s class=%s ordered=%d "
			        "next_attempt_in=%llds error=\"%s\"",
			        j->hostname, r->error_class, r->ordered,
			        h ? (long long)(h->next_attempt - time(NULL)) : 0LL, r->error);
		if (j->ctl_fd >= 0) {
			ctl_reply(j->ctl_fd, result_json(j->hostname, r, j->rc));
			j->ctl_fd = -1;
		}
	}
	/* Written by the next tick: 10,000 hostnames make a 4 MB state.json. An issuance
	 * is written now, so a restart does not order it again. */
	if (issued)
		sched_store(d);
	else
		d->sched_dirty = true;
	if (issued) {
		/* The new certificate goes to HAProxy now, through the runtime API. */
		if (store_reload(d->o.store, err, sizeof(err)) < 0)
			log_msg(LOG_ERROR, "event=store_reload_failed error=\"%s\"", err);
		free(d->fingerprint);
		d->fingerprint = fingerprint(d);
		sync_now(d);
		d->last_full = ev_now(d->loop);
	}
	while (list) {
		j = list->next;
		job_free(list);
		list = j;
	}
}

/* `recheck HOST` (admin): the checks now and, when they pass, an order now. The answer
 * is sent when the worker is done (on_acme_done). Returns an immediate answer, or NULL
 * when the reply is deferred. */
static json_t *acme_recheck(struct daemon *d, const char *hostname, int fd)
{
	struct sched_host *h;
	json_t *ans = NULL;

	if (!d->acme_enabled || !hostname || !host_is_auto(d->o.cfg, hostname))
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "not-auto", "message",
		                 "not a hostname of an environment with auto_certificates = true");
	pthread_mutex_lock(&d->mu);
	h = sched_host_get(&d->sched, hostname);
	if (!h)
		ans = json_pack("{s:b,s:s}", "ok", 0, "message", "out of memory");
	else if (h->busy)
		ans = json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "busy", "message",
		                "an attempt for this hostname is running: see certsync status");
	else if (acme_enqueue(d, hostname, fd) < 0)
		ans = json_pack("{s:b,s:s}", "ok", 0, "message", "out of memory");
	else {
		h->busy = true;
		h->next_attempt = 0;
		log_msg(LOG_INFO, "event=acme_recheck hostname=%s", hostname);
	}
	pthread_mutex_unlock(&d->mu);
	return ans;
}

static void scrub_request(json_t *req)
{
	json_t *k = json_object_get(req, "key");

	if (k && json_string_value(k))
		OPENSSL_cleanse((char *)json_string_value(k), json_string_length(k));
}

static void on_ctl(struct ev_loop *loop, ev_io *io, int revents)
{
	struct daemon *d = io->data;
	struct ctl_peer peer;
	json_t *req = NULL, *ans = NULL;
	const char *op;
	int fd;

	(void)loop;
	(void)revents;
	fd = ctl_accept(d->ctl_fd, d->o.cfg->admin_group, &peer, &req);
	if (fd < 0)
		return;
	op = json_string_value(json_object_get(req, "op"));
	if (!op) {
		ans = json_pack("{s:b,s:s}", "ok", 0, "message", "no \"op\" in the request");
	} else if (strcmp(op, "upload") == 0 || strcmp(op, "sync") == 0) {
		if (!peer.admin) {
			log_msg(LOG_WARN, "event=ctl_denied op=%s uid=%ld", op, (long)peer.uid);
			ans = json_pack(
			    "{s:b,s:s,s:s}", "ok", 0, "code", "permission-denied", "message",
			    "only root or members of the admin group may change certificates");
		} else if (strcmp(op, "upload") == 0) {
			ans = ops_upload(&d->o, req, time(NULL));
			pthread_mutex_lock(&d->mu);
			if (json_is_true(json_object_get(ans, "ok")))
				d->snap.upload_ok++;
			else
				d->snap.upload_err++;
			pthread_mutex_unlock(&d->mu);
			free(d->fingerprint);
			d->fingerprint = fingerprint(d);
			sync_now(d); /* refreshes the metrics snapshot */
		} else {
			sync_now(d);
			ans = json_pack("{s:b}", "ok", 1);
		}
	} else if (strcmp(op, "recheck") == 0) {
		if (!peer.admin) {
			log_msg(LOG_WARN, "event=ctl_denied op=%s uid=%ld", op, (long)peer.uid);
			ans = json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "permission-denied",
			                "message",
			                "only root or members of the admin group may recheck");
		} else {
			ans = acme_recheck(d, json_string_value(json_object_get(req, "hostname")),
			                   fd);
			if (!ans) {
				json_decref(req);
				return; /* answered by on_acme_done */
			}
		}
	} else {
		ans = json_pack("{s:b,s:s}", "ok", 0, "message", "unknown op");
	}
	scrub_request(req);
	json_decref(req);
	ctl_reply(fd, ans);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	(void)revents;
	if (w->signum == SIGHUP) {
		log_msg(LOG_INFO, "event=sighup action=reload");
		reload(d);
		sync_now(d);
		return;
	}
	log_msg(LOG_INFO, "event=stopping signal=%s", w->signum == SIGTERM ? "TERM" : "INT");
	ev_break(loop, EVBREAK_ALL);
}

/* The ACME series (under d->mu). Hostnames are validated LDH names (or "*."): no label
 * value escaping is needed; error classes are ACME problem types or our fixed words. */
static void render_acme(struct daemon *d, FILE *f)
{
	static const char *const checks[] = {"delegation", "caa"};
	const struct snapshot *s = &d->snap;

	fprintf(f, "# HELP certsync_acme_next_renewal_timestamp_seconds When certsync next "
	           "orders or renews each hostname's certificate, as a Unix time.\n"
	           "# TYPE certsync_acme_next_renewal_timestamp_seconds gauge\n");
	for (size_t i = 0; i < d->sched.n; i++) {
		const struct sched_host *h = &d->sched.v[i];
		time_t t = h->next_attempt;
		if (h->cert_serial[0] && h->renew_at > t)
			t = h->renew_at;
		fprintf(f, "certsync_acme_next_renewal_timestamp_seconds{hostname=\"%s\"} %lld\n",
		        h->hostname, (long long)t);
	}
	fprintf(f, "# HELP certsync_acme_consecutive_failures Consecutive failed attempts "
	           "(checks or orders) per hostname.\n"
	           "# TYPE certsync_acme_consecutive_failures gauge\n");
	for (size_t i = 0; i < d->sched.n; i++)
		fprintf(f, "certsync_acme_consecutive_failures{hostname=\"%s\"} %d\n",
		        d->sched.v[i].hostname,
		        d->sched.v[i].failures + d->sched.v[i].check_failures);
	fprintf(f, "# HELP certsync_acme_last_error 1 for the class of each hostname's last "
	           "error (absent after a success).\n"
	           "# TYPE certsync_acme_last_error gauge\n");
	for (size_t i = 0; i < d->sched.n; i++)
		if (d->sched.v[i].last_error_class[0])
			fprintf(f, "certsync_acme_last_error{hostname=\"%s\",class=\"%s\"} 1\n",
			        d->sched.v[i].hostname, d->sched.v[i].last_error_class);
	fprintf(f, "# HELP certsync_dns_check_ok 1 when the last pre-order check passed.\n"
	           "# TYPE certsync_dns_check_ok gauge\n");
	for (size_t i = 0; i < d->sched.n; i++) {
		const struct sched_host *h = &d->sched.v[i];
		const struct sched_check *c[2] = {&h->delegation, &h->caa};
		for (size_t k = 0; k < 2; k++)
			if (c[k]->state[0])
				fprintf(f,
				        "certsync_dns_check_ok{hostname=\"%s\",check=\"%s\"} %d\n",
				        h->hostname, checks[k],
				        strcmp(c[k]->state, "ok") == 0 ||
				            strcmp(c[k]->state, "allowed") == 0);
	}
	fprintf(f,
	        "# HELP certsync_acme_orders_total ACME orders (new or resumed), by result.\n"
	        "# TYPE certsync_acme_orders_total counter\n"
	        "certsync_acme_orders_total{result=\"valid\"} %llu\n"
	        "certsync_acme_orders_total{result=\"invalid\"} %llu\n"
	        "certsync_acme_orders_total{result=\"error\"} %llu\n",
	        (unsigned long long)s->orders_valid, (unsigned long long)s->orders_invalid,
	        (unsigned long long)s->orders_error);
	fprintf(f,
	        "# HELP certsync_dns_updates_total RFC 2136 updates of the validation zone, by "
	        "result.\n# TYPE certsync_dns_updates_total counter\n"
	        "certsync_dns_updates_total{result=\"ok\"} %llu\n"
	        "certsync_dns_updates_total{result=\"error\"} %llu\n",
	        (unsigned long long)s->dns_updates_ok, (unsigned long long)s->dns_updates_err);
}

static char *render(void *arg, size_t *len)
{
	struct daemon *d = arg;
	struct snapshot *s = &d->snap;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	pthread_mutex_lock(&d->mu);
	fprintf(f, "# HELP certsync_certificate_not_after_seconds Expiry of the certificate each "
	           "hostname is served, as a Unix time.\n"
	           "# TYPE certsync_certificate_not_after_seconds gauge\n");
	for (size_t i = 0; i < s->n_hosts; i++)
		fprintf(
		    f,
		    "certsync_certificate_not_after_seconds{hostname=\"%s\",source=\"%s\"} %lld\n",
		    s->hosts[i].hostname, s->hosts[i].source, (long long)s->hosts[i].not_after);
	fprintf(f,
	        "# HELP certsync_hostnames_without_certificate Configured hostnames that no valid "
	        "certificate covers.\n# TYPE certsync_hostnames_without_certificate gauge\n"
	        "certsync_hostnames_without_certificate %zu\n",
	        s->without_cert);
	fprintf(f,
	        "# HELP certsync_haproxy_in_sync 1 when HAProxy serves exactly what certsync "
	        "compiled.\n# TYPE certsync_haproxy_in_sync gauge\ncertsync_haproxy_in_sync %d\n",
	        s->has_hapi ? s->in_sync : 0);
	fprintf(f,
	        "# HELP certsync_haproxy_reachable 1 when HAProxy's runtime API answered the "
	        "last sync.\n# TYPE certsync_haproxy_reachable gauge\n"
	        "certsync_haproxy_reachable %d\n",
	        s->has_hapi ? s->reachable : 0);
	fprintf(f,
	        "# HELP certsync_apply_total Syncs with HAProxy, by result.\n"
	        "# TYPE certsync_apply_total counter\n"
	        "certsync_apply_total{result=\"ok\"} %llu\ncertsync_apply_total{result=\"error\"} "
	        "%llu\n",
	        (unsigned long long)s->apply_ok, (unsigned long long)s->apply_err);
	fprintf(f,
	        "# HELP certsync_config_errors Errors in the configuration file on disk (the "
	        "running configuration is kept while it has any).\n"
	        "# TYPE certsync_config_errors gauge\ncertsync_config_errors %zu\n",
	        s->config_errors);
	fprintf(f,
	        "# HELP certsync_config_reloads_total Configuration reloads, by result.\n"
	        "# TYPE certsync_config_reloads_total counter\n"
	        "certsync_config_reloads_total{result=\"ok\"} %llu\n"
	        "certsync_config_reloads_total{result=\"error\"} %llu\n",
	        (unsigned long long)s->reload_ok, (unsigned long long)s->reload_err);
	fprintf(f,
	        "# HELP certsync_uploads_total Certificate uploads, by result.\n"
	        "# TYPE certsync_uploads_total counter\n"
	        "certsync_uploads_total{result=\"accepted\"} %llu\n"
	        "certsync_uploads_total{result=\"refused\"} %llu\n",
	        (unsigned long long)s->upload_ok, (unsigned long long)s->upload_err);
	fprintf(f,
	        "# HELP certsync_policy_generation Generation of the policy snapshot written "
	        "for the agent.\n# TYPE certsync_policy_generation gauge\n"
	        "certsync_policy_generation %llu\n",
	        (unsigned long long)s->generation);
	fprintf(f,
	        "# HELP certsync_last_sync_timestamp_seconds When certsync last compiled and "
	        "applied.\n# TYPE certsync_last_sync_timestamp_seconds gauge\n"
	        "certsync_last_sync_timestamp_seconds %lld\n",
	        (long long)s->last_sync);
	if (d->acme_enabled)
		render_acme(d, f);
	pthread_mutex_unlock(&d->mu);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int cmd_run(const char *config_path, int argc, char **argv)
{
	struct daemon d = {.config_path = config_path, .ctl_fd = -1, .lock_fd = -1};
	struct cs_diags dg;
	struct promhttp *prom = NULL;
	char err[512];
	int ret = 2;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "certsync: run takes no arguments\n");
		return 2;
	}
	log_set_prog("certsync");
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&d.mu, NULL);
	cs_diags_init(&dg);
	if (ops_open(&d.o, config_path, &dg, err, sizeof(err)) < 0) {
		cs_diags_print(&dg, stderr);
		cs_diags_free(&dg);
		fprintf(stderr, "certsync: %s\n", err);
		return 2;
	}
	for (size_t i = 0; i < dg.n; i++)
		log_msg(LOG_WARN, "event=config_warning file=%s line=%d message=\"%s\"",
		        dg.v[i].file, dg.v[i].line, dg.v[i].message);
	cs_diags_free(&dg);
	/* One daemon per state_dir: two would apply to HAProxy concurrently. */
	{
		char lock[4096];
		snprintf(lock, sizeof(lock), "%s/certsync.lock", d.o.cfg->state_dir);
		d.lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (d.lock_fd < 0 || flock(d.lock_fd, LOCK_EX | LOCK_NB) < 0) {
			fprintf(stderr, "certsync: %s: %s\n", lock,
			        errno == EWOULDBLOCK ? "another `certsync run` uses this state_dir"
			                             : strerror(errno));
			goto out;
		}
	}
	/* state_dir is 0700; members of admin_group must reach the control socket in it, so
	 * they get search (not read) permission. Keys stay in 0700 directories, 0600 files. */
	if (d.o.cfg->admin_group) {
		struct stat st;
		if (stat(d.o.cfg->state_dir, &st) == 0 && (st.st_mode & 0011) != 0011 &&
		    chmod(d.o.cfg->state_dir, (st.st_mode & 07777) | 0011) == 0)
			log_msg(LOG_INFO,
			        "event=state_dir_mode dir=%s mode=%o reason=\"admin_group "
			        "members reach control.sock\"",
			        d.o.cfg->state_dir, (unsigned)((st.st_mode & 07777) | 0011));
	}
	d.ctl_fd = ctl_listen(d.o.cfg->state_dir, err, sizeof(err));
	if (d.ctl_fd < 0) {
		fprintf(stderr, "certsync: %s\n", err);
		goto out;
	}
	if (d.o.cfg->metrics_listen) {
		struct addr a;
		if (addr_parse(d.o.cfg->metrics_listen, &a, err, sizeof(err)) < 0 ||
		    promhttp_start(&prom, &a, render, &d) < 0) {
			fprintf(stderr, "certsync: cannot serve metrics on %s\n",
			        d.o.cfg->metrics_listen);
			goto out;
		}
	}
	d.loop = ev_default_loop(0);
	pthread_mutex_init(&d.qmu, NULL);
	pthread_cond_init(&d.qcv, NULL);
	for (size_t e = 0; e < d.o.cfg->n_envs; e++)
		if (d.o.cfg->envs[e].auto_certificates)
			d.acme_enabled = d.o.cfg->acme.present && d.o.cfg->dns.present;
	if (d.acme_enabled) {
		char dir[4096];
		issue_acme_dir(d.o.cfg->state_dir, dir, sizeof(dir));
		sched_path(d.o.cfg->state_dir, d.sched_path, sizeof(d.sched_path));
		if (afile_mkdirs(dir, 0700) < 0 ||
		    sched_load(d.sched_path, &d.sched, err, sizeof(err)) < 0) {
			fprintf(stderr, "certsync: ACME state: %s\n",
			        errno ? strerror(errno) : err);
			goto out;
		}
		/* libcurl's global state, before the worker thread exists (acme.h). */
		curl_global_init(CURL_GLOBAL_DEFAULT);
		ev_async_init(&d.acme_done, on_acme_done);
		d.acme_done.data = &d;
		ev_async_start(d.loop, &d.acme_done);
		if (pthread_create(&d.worker, NULL, acme_worker, &d) != 0) {
			fprintf(stderr, "certsync: cannot start the ACME worker\n");
			goto out;
		}
		d.worker_started = true;
	}
	ev_io_init(&d.ctl_io, on_ctl, d.ctl_fd, EV_READ);
	ev_timer_init(&d.tick, on_tick, TICK_SECONDS, TICK_SECONDS);
	ev_timer_init(&d.retry, on_retry, 0., 0.);
	ev_signal_init(&d.sig_term, on_signal, SIGTERM);
	ev_signal_init(&d.sig_int, on_signal, SIGINT);
	ev_signal_init(&d.sig_hup, on_signal, SIGHUP);
	d.ctl_io.data = d.tick.data = d.retry.data = &d;
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	ev_io_start(d.loop, &d.ctl_io);
	ev_timer_start(d.loop, &d.tick);
	ev_signal_start(d.loop, &d.sig_term);
	ev_signal_start(d.loop, &d.sig_int);
	ev_signal_start(d.loop, &d.sig_hup);
	log_msg(LOG_INFO, "event=start version=%s pid=%ld hostnames=%zu runtime_api=%s",
	        EDGETLS_VERSION, (long)getpid(), d.o.cfg->n_hostnames,
	        d.o.cfg->runtime_api ? d.o.cfg->runtime_api : "none");
	d.fingerprint = fingerprint(&d);
	sync_now(&d);
	d.last_full = ev_now(d.loop);
	ev_run(d.loop, 0);
	ret = 0;
out:
	if (d.worker_started) {
		bool busy;
		pthread_mutex_lock(&d.qmu);
		d.stopping = true;
		busy = d.worker_busy;
		pthread_cond_broadcast(&d.qcv);
		pthread_mutex_unlock(&d.qmu);
		/* An attempt in progress may block for minutes: its order is on disk and is
		 * resumed at the next start, so do not wait for it. */
		if (busy)
			pthread_detach(d.worker);
		else
			pthread_join(d.worker, NULL);
		while (d.todo) {
			struct acme_job *j = d.todo;
			d.todo = j->next;
			if (j->ctl_fd >= 0)
				close(j->ctl_fd);
			job_free(j);
		}
	}
	promhttp_stop(prom);
	if (d.ctl_fd >= 0) {
		char path[4096];
		close(d.ctl_fd);
		ctl_socket_path(d.o.cfg->state_dir, path, sizeof(path));
		unlink(path);
	}
	pthread_mutex_lock(&d.mu);
	for (size_t i = 0; i < d.snap.n_hosts; i++)
		free(d.snap.hosts[i].hostname);
	free(d.snap.hosts);
	if (d.sched_dirty)
		sched_store(&d);
	sched_free(&d.sched);
	pthread_mutex_unlock(&d.mu);
	free(d.fingerprint);
	if (d.lock_fd >= 0)
		close(d.lock_fd);
	ops_close(&d.o);
	log_msg(LOG_INFO, "event=stopped");
	return ret;
}

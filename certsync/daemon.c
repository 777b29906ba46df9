/*
 * daemon: `certsync run`. One libev loop: it recompiles and applies when the configuration,
 * a chain-of-trust file or the store changes, retries HAProxy with backoff while it is
 * unreachable or out of sync, answers the control socket, and exports metrics (on
 * libmicrohttpd's thread, from a snapshot taken under a mutex after every sync).
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

#include <openssl/crypto.h>

#include "afile.h"
#include "cmds.h"
#include "ctl.h"
#include "log.h"
#include "ops.h"
#include "promhttp.h"

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

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon *d = t->data;
	char *fp = fingerprint(d), err[512];

	(void)revents;
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
	pthread_mutex_unlock(&d.mu);
	free(d.fingerprint);
	if (d.lock_fd >= 0)
		close(d.lock_fd);
	ops_close(&d.o);
	log_msg(LOG_INFO, "event=stopped");
	return ret;
}

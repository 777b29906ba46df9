#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "log.h"
#include "upload.h"

#include "banned.h"

#define HAPI_TIMEOUT_MS 5000

int ops_open(struct ops *o, const char *config_path, struct cs_diags *d, char *err, size_t errlen)
{
	int r;

	memset(o, 0, sizeof(*o));
	r = cs_config_load(config_path, &o->cfg, d);
	if (r != 0) {
		snprintf(err, errlen, "%s: %s", config_path,
		         r == CS_CONFIG_EUNREADABLE ? "cannot be read" : "has errors");
		return -1;
	}
	if (o->cfg->runtime_api) {
		if (addr_parse(o->cfg->runtime_api, &o->hapi.addr, err, errlen) < 0) {
			ops_close(o);
			return -1;
		}
		o->hapi.timeout_ms = HAPI_TIMEOUT_MS;
		o->has_hapi = true;
	}
	if (store_open(o->cfg->state_dir, &o->store, err, errlen) < 0) {
		ops_close(o);
		return -1;
	}
	return 0;
}

void ops_close(struct ops *o)
{
	store_close(o->store);
	cs_config_free(o->cfg);
	memset(o, 0, sizeof(*o));
}

int ops_sync(struct ops *o, time_t now, bool apply, struct compile_result *r,
             struct apply_report *report, char *err, size_t errlen)
{
	size_t changed = 0;

	memset(report, 0, sizeof(*report));
	if (compile_build(o->cfg, o->store, now, r, err, errlen) < 0)
		return -1;
	if (compile_write(r, &changed, err, errlen) < 0) {
		compile_result_free(r);
		return -1;
	}
	if (changed)
		log_msg(LOG_INFO, "event=compiled files_changed=%zu generation=%llu hostnames=%zu",
		        changed, (unsigned long long)r->generation, r->n_hosts);
	if (apply && o->has_hapi) {
		if (apply_run(&o->hapi, r, report) == 0) {
			if (report->certs_loaded || report->lines_added || report->lines_deleted ||
			    report->map_changes || report->cafiles_set)
				log_msg(LOG_INFO,
				        "event=applied certs=%zu cafiles=%zu lines_added=%zu "
				        "lines_deleted=%zu maps=%zu",
				        report->certs_loaded, report->cafiles_set,
				        report->lines_added, report->lines_deleted,
				        report->map_changes);
		} else {
			log_msg(LOG_WARN, "event=apply_failed reachable=%d error=\"%s\"",
			        report->reachable, report->error);
		}
	}
	return 0;
}

/* The trust anchors for uploads: the system store and upload_ca_file. */
static X509_STORE *ops_upload_trust(const struct cs_config *cfg, char *err, size_t errlen)
{
	X509_STORE *st = X509_STORE_new();

	if (!st || !X509_STORE_set_default_paths(st)) {
		snprintf(err, errlen, "cannot load the system's trusted roots");
		X509_STORE_free(st);
		return NULL;
	}
	if (cfg->upload_ca_file && !X509_STORE_load_file(st, cfg->upload_ca_file)) {
		snprintf(err, errlen, "cannot load upload_ca_file %s", cfg->upload_ca_file);
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

static json_t *refusal(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static json_t *refusal(const char *code, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "message", msg);
}

/* The network an upload serves: the one named, which must hold a hostname the certificate
 * covers, or the only network among those hostnames. */
static const char *pick_network(const struct ops *o, const struct upload_result *res,
                                const char *asked, char *why, size_t whylen)
{
	const char *nets[64];
	size_t n = 0;

	for (size_t i = 0; i < res->covered.n; i++) {
		const struct cs_env *env = cs_config_env_of(o->cfg, res->covered.name[i]);
		size_t j;
		if (!env)
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(nets[j], env->network) == 0)
				break;
		if (j == n && n < 64)
			nets[n++] = env->network;
	}
	if (asked) {
		for (size_t j = 0; j < n; j++)
			if (strcmp(nets[j], asked) == 0)
				return nets[j];
		snprintf(why, whylen,
		         "the certificate covers no configured hostname of network \"%s\"", asked);
		return NULL;
	}
	if (n == 1)
		return nets[0];
	{
		size_t o2 = (size_t)snprintf(
		    why, whylen, "the certificate covers hostnames of several networks (");
		for (size_t j = 0; j < n && o2 < whylen; j++)
			o2 +=
			    (size_t)snprintf(why + o2, whylen - o2, "%s%s", j ? ", " : "", nets[j]);
		if (o2 < whylen)
			snprintf(why + o2, whylen - o2, "): say which one with --network");
	}
	return NULL;
}

static const char *jstr(json_t *o, const char *k, size_t *len)
{
	json_t *v = json_object_get(o, k);

	*len = json_string_length(v);
	return json_string_value(v);
}

json_t *ops_upload(struct ops *o, json_t *req, time_t now)
{
	struct upload_input in = {0};
	struct upload_result res;
	const char **hosts = NULL, *network, *asked;
	char why[1024], err[512], id[STORE_ID_LEN];
	size_t nh = 0, len;
	json_t *ans = NULL;
	struct compile_result cr;
	struct apply_report rep;
	int added;

	memset(&res, 0, sizeof(res));
	in.cert_pem = jstr(req, "cert", &in.cert_len);
	in.chain_pem = jstr(req, "chain", &in.chain_len);
	in.key_pem = jstr(req, "key", &in.key_len);
	asked = jstr(req, "network", &len);
	if (!in.cert_pem || !in.key_pem)
		return refusal("bad-request", "an upload needs a certificate and a key");
	hosts = calloc(o->cfg->n_hostnames + 1, sizeof(*hosts));
	if (!hosts)
		return refusal("internal", "out of memory");
	for (size_t e = 0; e < o->cfg->n_envs; e++)
		for (size_t h = 0; h < o->cfg->envs[e].n_hostnames; h++)
			hosts[nh++] = o->cfg->envs[e].hostnames[h];
	in.hostnames = hosts;
	in.nhostnames = nh;
	in.now = now;
	in.trust = ops_upload_trust(o->cfg, err, sizeof(err));
	if (!in.trust) {
		ans = refusal("internal", "%s", err);
		goto out;
	}
	if (upload_check(&in, &res) < 0) {
		ans = refusal(upload_code_name(res.code), "%s", res.message);
		goto out;
	}
	network = pick_network(o, &res, asked, why, sizeof(why));
	if (!network) {
		ans = refusal("network", "%s", why);
		goto out;
	}
	added = store_add(o->store, STORE_UPLOADED, network, res.leaf, res.intermediates, res.key,
	                  now, id, err, sizeof(err));
	if (added < 0) {
		ans = refusal("store", "%s", err);
		goto out;
	}
	log_msg(LOG_INFO, "event=upload id=%s serial=%s network=%s new=%d", id, res.serial, network,
	        added == 0);
	ans = json_pack("{s:b,s:s,s:s,s:s,s:I,s:b}", "ok", 1, "id", id, "serial", res.serial,
	                "network", network, "not_after", (json_int_t)res.not_after,
	                "already_stored", added == 1);
	if (ops_sync(o, now, true, &cr, &rep, err, sizeof(err)) < 0) {
		json_object_set_new(ans, "haproxy", json_string("pending"));
		json_object_set_new(ans, "sync_error", json_string(err));
	} else {
		/* What it serves is what compile chose, not what it could cover: an exact
		 * or more recent certificate may be preferred for some hostnames. */
		json_t *covers = json_array(), *not_chosen = json_array();
		for (size_t i = 0; i < cr.n_hosts; i++) {
			bool mine = cr.hosts[i].cert && strcmp(cr.hosts[i].cert->id, id) == 0;
			bool could = false;
			for (size_t j = 0; j < res.covered.n && !could; j++)
				could = strcmp(res.covered.name[j], cr.hosts[i].hostname) == 0 &&
				        strcmp(cr.hosts[i].env->network, network) == 0;
			if (mine)
				json_array_append_new(covers, json_string(cr.hosts[i].hostname));
			else if (could)
				json_array_append_new(not_chosen,
				                      json_string(cr.hosts[i].hostname));
		}
		json_object_set_new(ans, "covers", covers);
		json_object_set_new(ans, "preferred_elsewhere", not_chosen);
		json_object_set_new(ans, "haproxy",
		                    json_string(!o->has_hapi    ? "files-only"
		                                : rep.in_sync   ? "in-sync"
		                                : rep.reachable ? "pending"
		                                                : "unreachable"));
		if (o->has_hapi && !rep.in_sync)
			json_object_set_new(ans, "sync_error", json_string(rep.error));
		compile_result_free(&cr);
	}
out:
	X509_STORE_free(in.trust);
	upload_result_free(&res);
	free(hosts);
	return ans;
}

static void rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *check_json(bool is_auto, const struct sched_host *sh, const struct sched_check *c)
{
	if (!is_auto)
		return json_pack("{s:s}", "state", "not-applicable");
	if (!sh || !c->state[0])
		return json_pack("{s:s}", "state", "not-checked");
	if (strcmp(c->state, "ok") == 0 || strcmp(c->state, "allowed") == 0)
		return json_pack("{s:s}", "state", c->state);
	return json_pack("{s:s,s:s,s:s}", "state", c->state, "record", c->record, "message",
	                 c->message);
}

json_t *ops_status(const struct ops *o, const struct compile_result *r, const int *served,
                   const struct sched_state *acme, time_t now, size_t *problems)
{
	json_t *arr = json_array();

	(void)o;
	*problems = 0;
	for (size_t i = 0; i < r->n_hosts; i++) {
		const struct compile_host *h = &r->hosts[i];
		json_t *cert, *item;
		const char *hap, *problem = NULL;
		char when[32];

		if (h->cert) {
			long days = (long)((h->cert->not_after - now) / 86400);
			rfc3339(h->cert->not_after, when, sizeof(when));
			cert = json_pack("{s:s,s:s,s:s,s:I,s:s}", "source",
			                 store_source_name(h->cert->source), "serial",
			                 h->cert->serial, "not_after", when, "days_left",
			                 (json_int_t)(days < 0 ? 0 : days), "id", h->cert->id);
		} else {
			cert = json_pack("{s:s}", "source", "none");
			problem = "no valid certificate covers this hostname: upload one (certsync "
			          "upload) or enable auto_certificates";
		}
		if (!served)
			hap = "unknown";
		else if (served[i] < 0)
			hap = "unreachable";
		else if (served[i] > 0)
			hap = "in-sync";
		else
			hap = "pending";
		if (!problem && served && served[i] == 0)
			problem =
			    "HAProxy does not serve this certificate yet (certsync run applies "
			    "it)";
		if (!problem && served && served[i] < 0)
			problem = "HAProxy's runtime API does not answer";
		{
			bool is_auto = h->env->auto_certificates;
			const struct sched_host *sh =
			    is_auto && acme ? sched_host_find(acme, h->hostname) : NULL;
			json_t *next = json_null();
			/* An ACME error says more than "no certificate". */
			if (sh && sh->last_error[0])
				problem = sh->last_error;
			if (is_auto) {
				time_t t = sh ? sh->next_attempt : 0;
				if (sh && h->cert && h->cert->source == STORE_ACME &&
				    sh->renew_at > t)
					t = sh->renew_at;
				if (t < now)
					t = now;
				rfc3339(t, when, sizeof(when));
				next = json_string(when);
			}
			item =
			    json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:s?}", "hostname",
			              h->hostname, "environment", h->env->name, "mode",
			              cs_validation_name(h->env->mtls.validation), "policy",
			              h->policy, "certificate", cert, "haproxy", hap, "delegation",
			              check_json(is_auto, sh, sh ? &sh->delegation : NULL), "caa",
			              check_json(is_auto, sh, sh ? &sh->caa : NULL), "next_renewal",
			              next, "last_error", problem);
			if (sh && sh->last_error_class[0])
				json_object_set_new(item, "last_error_class",
				                    json_string(sh->last_error_class));
		}
		json_array_append_new(arr, item);
		if (problem)
			(*problems)++;
	}
	return arr;
}

void ops_served(const struct ops *o, const struct compile_result *r, int *served)
{
	apply_served(&o->hapi, r, served);
}

#include "schedule.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "afile.h"

#include "strhash.h"

#include "banned.h"

#define STATE_MAX (16u << 20)

time_t sched_ideal_renewal(time_t not_before, time_t not_after)
{
	time_t v = not_after - not_before;

	if (v <= 0)
		return not_after;
	return not_before + (v < SCHED_TEN_DAYS ? v / 2 : v / 3 * 2 + (v % 3) * 2 / 3);
}

time_t sched_renewal_time(time_t not_before, time_t not_after, bool has_window, time_t win_start,
                          time_t win_end, uint32_t rnd)
{
	time_t t;

	if (has_window && win_end > win_start) {
		/* RFC 9773 §4.2: a uniformly random point of the window. */
		t = win_start + (time_t)(((uint64_t)(win_end - win_start) * rnd) >> 32);
	} else {
		time_t v = not_after - not_before;
		time_t jitter = v > 0 ? (time_t)(((uint64_t)(v / 50) * rnd) >> 32) : 0;
		t = sched_ideal_renewal(not_before, not_after) - jitter;
	}
	if (t > not_after)
		t = not_after;
	if (t < not_before)
		t = not_before;
	return t;
}

long sched_order_backoff(int n)
{
	/* Let's Encrypt integration guide, "Retrying failures". */
	static const long steps[] = {60, 600, 6000};

	if (n <= 0)
		return 0;
	if (n <= 3)
		return steps[n - 1];
	return 86400;
}

long sched_check_backoff(int n)
{
	long w = SCHED_CHECK_MIN;

	if (n <= 0)
		return 0;
	for (int i = 1; i < n && w < SCHED_CHECK_MAX; i++)
		w *= 2;
	return w > SCHED_CHECK_MAX ? SCHED_CHECK_MAX : w;
}

bool sched_due(const struct sched_host *h, bool has_cert, time_t now)
{
	if (now < h->next_attempt)
		return false;
	if (has_cert && h->renew_at && now < h->renew_at)
		return false;
	return true;
}

/* The slot of hostname in the index: its entry, or the empty slot where it goes. */
static size_t slot_of(const struct sched_state *s, const char *hostname)
{
	size_t k = (size_t)strhash(hostname) & s->mask;

	while (s->idx[k] && strcmp(s->v[s->idx[k] - 1].hostname, hostname) != 0)
		k = (k + 1) & s->mask;
	return k;
}

/* Rebuilds the index for a capacity of cap entries (kept at most half full). */
static int reindex(struct sched_state *s, size_t cap)
{
	size_t m = 16, *idx;

	while (m < 2 * cap)
		m *= 2;
	idx = calloc(m, sizeof(*idx));
	if (!idx)
		return -1;
	free(s->idx);
	s->idx = idx;
	s->mask = m - 1;
	for (size_t i = 0; i < s->n; i++)
		s->idx[slot_of(s, s->v[i].hostname)] = i + 1;
	return 0;
}

const struct sched_host *sched_host_find(const struct sched_state *s, const char *hostname)
{
	size_t k;

	if (!s->idx)
		return NULL;
	k = slot_of(s, hostname);
	return s->idx[k] ? &s->v[s->idx[k] - 1] : NULL;
}

struct sched_host *sched_host_get(struct sched_state *s, const char *hostname)
{
	struct sched_host *v;
	size_t k;

	if (s->idx && s->idx[k = slot_of(s, hostname)])
		return &s->v[s->idx[k] - 1];
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		s->v = v;
		s->cap = cap;
		if (reindex(s, cap) < 0)
			return NULL;
	}
	v = s->v;
	memset(&v[s->n], 0, sizeof(v[s->n]));
	v[s->n].hostname = strdup(hostname);
	if (!v[s->n].hostname)
		return NULL;
	s->idx[slot_of(s, hostname)] = s->n + 1;
	return &v[s->n++];
}

void sched_free(struct sched_state *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].hostname);
	free(s->v);
	free(s->idx);
	memset(s, 0, sizeof(*s));
}

void sched_path(const char *state_dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/acme/state.json", state_dir);
}

static void copy_str(char *dst, size_t len, json_t *v)
{
	const char *s = json_string_value(v);

	snprintf(dst, len, "%s", s ? s : "");
}

static time_t get_time(json_t *o, const char *k)
{
	return (time_t)json_integer_value(json_object_get(o, k));
}

static void check_from_json(struct sched_check *c, json_t *o)
{
	copy_str(c->state, sizeof(c->state), json_object_get(o, "state"));
	copy_str(c->record, sizeof(c->record), json_object_get(o, "record"));
	copy_str(c->message, sizeof(c->message), json_object_get(o, "message"));
}

static json_t *check_to_json(const struct sched_check *c)
{
	return json_pack("{s:s,s:s,s:s}", "state", c->state, "record", c->record, "message",
	                 c->message);
}

int sched_load(const char *path, struct sched_state *out, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0, i;
	json_t *root = NULL, *hosts, *o;
	json_error_t je;
	struct sched_state s = {0};
	int ret = -1;

	if (afile_read(path, STATE_MAX, &buf, &len) < 0) {
		if (errno == ENOENT) {
			*out = s;
			return 0;
		}
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	root = json_loadb((const char *)buf, len, 0, &je);
	if (!root || !json_is_object(root)) {
		snprintf(err, errlen, "%s:%d: %s", path, je.line, root ? "not an object" : je.text);
		goto out;
	}
	hosts = json_object_get(root, "hosts");
	json_array_foreach(hosts, i, o)
	{
		const char *name = json_string_value(json_object_get(o, "hostname"));
		struct sched_host *h;
		if (!name)
			continue;
		h = sched_host_get(&s, name);
		if (!h) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		h->next_attempt = get_time(o, "next_attempt");
		h->renew_at = get_time(o, "renew_at");
		copy_str(h->cert_serial, sizeof(h->cert_serial), json_object_get(o, "cert_serial"));
		h->ari_start = get_time(o, "ari_start");
		h->ari_end = get_time(o, "ari_end");
		h->failures = (int)json_integer_value(json_object_get(o, "failures"));
		h->check_failures = (int)json_integer_value(json_object_get(o, "check_failures"));
		copy_str(h->last_error_class, sizeof(h->last_error_class),
		         json_object_get(o, "last_error_class"));
		copy_str(h->last_error, sizeof(h->last_error), json_object_get(o, "last_error"));
		h->last_attempt = get_time(o, "last_attempt");
		h->last_success = get_time(o, "last_success");
		check_from_json(&h->delegation, json_object_get(o, "delegation"));
		check_from_json(&h->caa, json_object_get(o, "caa"));
	}
	*out = s;
	memset(&s, 0, sizeof(s));
	ret = 0;
out:
	sched_free(&s);
	json_decref(root);
	free(buf);
	return ret;
}

int sched_save(const char *path, const struct sched_state *s, char *err, size_t errlen)
{
	json_t *root = json_object(), *hosts = json_array();
	char *text = NULL;
	int ret = -1;

	if (!root || !hosts)
		goto nomem;
	json_object_set_new(root, "version", json_integer(1));
	json_object_set(root, "hosts", hosts);
	for (size_t i = 0; i < s->n; i++) {
		const struct sched_host *h = &s->v[i];
		json_t *o = json_pack(
		    "{s:s,s:I,s:I,s:s,s:I,s:I,s:i,s:i,s:s,s:s,s:I,s:I,s:o,s:o}", "hostname",
		    h->hostname, "next_attempt", (json_int_t)h->next_attempt, "renew_at",
		    (json_int_t)h->renew_at, "cert_serial", h->cert_serial, "ari_start",
		    (json_int_t)h->ari_start, "ari_end", (json_int_t)h->ari_end, "failures",
		    h->failures, "check_failures", h->check_failures, "last_error_class",
		    h->last_error_class, "last_error", h->last_error, "last_attempt",
		    (json_int_t)h->last_attempt, "last_success", (json_int_t)h->last_success,
		    "delegation", check_to_json(&h->delegation), "caa", check_to_json(&h->caa));
		if (!o || json_array_append_new(hosts, o) < 0)
			goto nomem;
	}
	text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!text)
		goto nomem;
	if (afile_write(path, text, strlen(text), 0644) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	free(text);
	json_decref(hosts);
	json_decref(root);
	return ret;
}

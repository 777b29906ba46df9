#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afile.h"

#include "banned.h"

static int check(const policy_snapshot *s, char *err, size_t errlen)
{
	if (s->schema_version != POLICY_SCHEMA_VERSION) {
		snprintf(err, errlen,
		         "snapshot schema version %u, this program reads version %u: "
		         "run the certsync that matches this spoa-mtls",
		         s->schema_version, POLICY_SCHEMA_VERSION);
		return -1;
	}
	for (size_t i = 0; i < s->n_policies; i++) {
		const Edgetls__Policy *p = s->policies[i];
		if (!p->id || !p->id[0]) {
			snprintf(err, errlen, "policy %zu has no id", i);
			return -1;
		}
		if ((unsigned)p->mode > EDGETLS__MODE__MODE_PERMISSIVE) {
			snprintf(err, errlen, "policy %s: unknown mode %d", p->id, (int)p->mode);
			return -1;
		}
		if (p->depth > POLICY_MAX_DEPTH) {
			snprintf(err, errlen, "policy %s: depth %u above %d", p->id, p->depth,
			         POLICY_MAX_DEPTH);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s->policies[j]->id, p->id) == 0) {
				snprintf(err, errlen, "policy id %s appears twice", p->id);
				return -1;
			}
		}
	}
	for (size_t i = 0; i < s->n_hosts; i++) {
		const Edgetls__Host *h = s->hosts[i];
		size_t j;
		if (!h->name || !h->name[0]) {
			snprintf(err, errlen, "host %zu has no name", i);
			return -1;
		}
		for (j = 0; j < s->n_policies; j++)
			if (strcmp(s->policies[j]->id, h->policy) == 0)
				break;
		if (j == s->n_policies) {
			snprintf(err, errlen, "host %s names policy \"%s\", which is not defined",
			         h->name, h->policy);
			return -1;
		}
	}
	if (s->default_policy && s->default_policy[0]) {
		size_t j;
		for (j = 0; j < s->n_policies; j++)
			if (strcmp(s->policies[j]->id, s->default_policy) == 0)
				break;
		if (j == s->n_policies) {
			snprintf(err, errlen, "default policy \"%s\" is not defined",
			         s->default_policy);
			return -1;
		}
	}
	return 0;
}

int policy_snapshot_decode(const uint8_t *buf, size_t len, policy_snapshot **out, char *err,
                           size_t errlen)
{
	policy_snapshot *s;

	if (len > POLICY_MAX_BYTES) {
		snprintf(err, errlen, "snapshot of %zu bytes exceeds the %u-byte limit", len,
		         POLICY_MAX_BYTES);
		return -1;
	}
	s = edgetls__snapshot__unpack(NULL, len, buf);
	if (!s) {
		snprintf(err, errlen, "not a policy snapshot (protobuf decoding failed)");
		return -1;
	}
	if (check(s, err, errlen) < 0) {
		edgetls__snapshot__free_unpacked(s, NULL);
		return -1;
	}
	*out = s;
	return 0;
}

int policy_snapshot_load(const char *path, policy_snapshot **out, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if (afile_read(path, POLICY_MAX_BYTES, &buf, &len) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	r = policy_snapshot_decode(buf, len, out, err, errlen);
	free(buf);
	return r;
}

int policy_snapshot_save(const char *path, const policy_snapshot *s)
{
	size_t len = edgetls__snapshot__get_packed_size(s);
	uint8_t *buf = malloc(len ? len : 1);
	int r;

	if (!buf)
		return -1;
	edgetls__snapshot__pack(s, buf);
	r = afile_write(path, buf, len, 0644);
	free(buf);
	return r;
}

void policy_snapshot_free(policy_snapshot *s)
{
	if (s)
		edgetls__snapshot__free_unpacked(s, NULL);
}

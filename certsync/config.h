/*
 * config: certsync's configuration file (DESIGN §4.1), loaded into plain C structs and
 * validated as a whole.
 *
 * The promise: cs_config_load() either hands out a configuration in which every setting
 * has been checked and every default filled in, or none at all — and in both cases it
 * records *every* problem it found (not only the first) as a diagnostic with file and
 * line, each saying what was expected. Warnings never prevent loading. The libconfig
 * object is freed before returning: every string in struct cs_config is a private copy.
 *
 * Keys (libconfig syntax; "required" means an error when absent):
 *
 *   state_dir            string, required. Certificates, keys, ACME account, policy.
 *   admin_group          string, optional. The group whose members may change things
 *                        through the control socket (upload, recheck). Absent: root only.
 *                        A group unknown to this system draws a warning.
 *   upload_ca_file       string, optional. Extra trust anchors (PEM, CA certificates) for
 *                        building the chains of uploaded certificates, in addition to the
 *                        system store. Checked like a chain-of-trust file.
 *   default_environment  string, optional. The environment for connections whose SNI is
 *                        absent or unknown (DESIGN §2.5); absent: disabled.
 *   metrics_listen       string, optional. HOST:PORT of the Prometheus endpoint.
 *   haproxy { runtime_api }                "unix:PATH" or "tcp:HOST:PORT"; optional.
 *   agent { policy_file }                  default <state_dir>/policy.pb.
 *   acme { directory (https URL, required), contact [strings], key_type
 *          (ec-p256 | ec-p384 | rsa-2048 | rsa-3072, default ec-p256), ca_identities
 *          [domain names], server_ca_file ("" = none), eab { kid; hmac_key_file; },
 *          profile }
 *   dns { resolver (HOST:PORT; absent: the system's resolver), validation_domain
 *         (required), layout (per-host | shared, default per-host), update { server
 *         (required), tsig_name (required), tsig_algorithm (hmac-sha1 | hmac-sha224 |
 *         hmac-sha256 | hmac-sha384 | hmac-sha512, default hmac-sha256), tsig_secret_file
 *         (required) } (required), authoritative [HOST:PORT] }
 *   environments ( { name, network, crt_list, auto_certificates, hostnames,
 *                    mtls { validation, deny_on_failure, depth, request_hostnames,
 *                           send_headers, chains ( { hostnames; file; } ) } } ), required.
 *
 * acme and dns are required only when some environment has auto_certificates = true.
 * Environment defaults: network "default", crt_list <state_dir>/haproxy/<name>.crt-list,
 * auto_certificates false, mtls.validation "disabled", depth 1, deny_on_failure false,
 * send_headers false, request_hostnames empty (= every hostname of the environment).
 *
 * Relative file paths (state_dir, crt_list, policy_file, chain files, key and CA files)
 * are taken relative to the directory of the configuration file, so a configuration and
 * the files next to it can move together; the struct holds the resolved paths.
 * Hostnames are stored in lowercase (see hostname.h for what is valid).
 */
#ifndef EDGETLS_CS_CONFIG_H
#define EDGETLS_CS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ---- diagnostics ---- */

enum cs_severity { CS_ERROR = 0, CS_WARNING };

struct cs_diag {
	char *file; /* the file the problem is in (config or an included file) */
	int line;   /* 1-based; 0 when the problem has no line (unreadable file) */
	enum cs_severity severity;
	char *message; /* says what was found and what was expected */
};

/* A growable list capped at CS_DIAGS_MAX entries; past the cap one last error says so. */
#define CS_DIAGS_MAX 1000

struct cs_diags {
	struct cs_diag *v;
	size_t n, cap;
	size_t errors, warnings;
	bool truncated;
};

void cs_diags_init(struct cs_diags *d);
void cs_diags_free(struct cs_diags *d);
/* Records one diagnostic; an allocation failure is counted but its text is lost. */
void cs_diags_add(struct cs_diags *d, enum cs_severity sev, const char *file, int line,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* One line per diagnostic: "file:line: error: message" ("file: warning: message" when the
 * line is 0). */
void cs_diags_print(const struct cs_diags *d, FILE *f);

/* ---- the configuration ---- */

enum cs_validation {
	CS_VALIDATION_DISABLED = 0,
	CS_VALIDATION_REQUIRED,
	CS_VALIDATION_OPTIONAL,
	CS_VALIDATION_OPTIONAL_NO_CA,
	CS_VALIDATION_PERMISSIVE,
};

enum cs_key_type { CS_KEY_EC_P256 = 0, CS_KEY_EC_P384, CS_KEY_RSA_2048, CS_KEY_RSA_3072 };

enum cs_dns_layout { CS_DNS_LAYOUT_PER_HOST = 0, CS_DNS_LAYOUT_SHARED };

#define CS_DEPTH_MAX 10

/* A chain-of-trust PEM and the hostnames it applies to (DESIGN §2.2). */
struct cs_chain {
	char **hostnames; /* lowercase; each is a hostname of the environment */
	size_t n_hostnames;
	char *file; /* resolved path; the file was readable and held certificates */
	int line;   /* of the "file" setting */
};

struct cs_mtls {
	enum cs_validation validation;
	bool deny_on_failure;     /* only ever true in permissive */
	int depth;                /* 0..CS_DEPTH_MAX */
	char **request_hostnames; /* empty: every hostname of the environment */
	size_t n_request_hostnames;
	bool send_headers;
	struct cs_chain *chains;
	size_t n_chains;
};

struct cs_env {
	char *name;     /* [A-Za-z0-9_-]{1,64}, unique */
	char *network;  /* default "default" */
	char *crt_list; /* default <state_dir>/haproxy/<name>.crt-list */
	bool auto_certificates;
	char **hostnames; /* lowercase, unique across all environments */
	size_t n_hostnames;
	struct cs_mtls mtls;
	int line; /* where the environment's group starts */
};

struct cs_acme {
	bool present;    /* the section exists; the fields below are meaningful only then */
	char *directory; /* https URL */
	char **contact;
	size_t n_contact;
	enum cs_key_type key_type;
	char **ca_identities; /* empty: use the directory's meta.caaIdentities */
	size_t n_ca_identities;
	char *server_ca_file;    /* NULL: the system store only */
	char *eab_kid;           /* NULL without External Account Binding */
	char *eab_hmac_key_file; /* non-NULL exactly when eab_kid is */
	char *profile;           /* NULL: the CA's default profile */
};

struct cs_dns {
	bool present;
	char *resolver; /* HOST:PORT; NULL: the system's resolver */
	char *validation_domain;
	enum cs_dns_layout layout;
	char *update_server;
	char *tsig_name;
	char *tsig_algorithm; /* "hmac-sha256" etc. */
	char *tsig_secret_file;
	char **authoritative; /* HOST:PORT each; empty: the zone's NS and update_server */
	size_t n_authoritative;
};

struct cs_config {
	char *path; /* the file loaded */
	char *state_dir;
	char *admin_group;         /* NULL: root only */
	char *upload_ca_file;      /* NULL: the system store only */
	char *default_environment; /* NULL, or the name of one of envs */
	char *metrics_listen;      /* NULL: no metrics endpoint */
	char *runtime_api;         /* haproxy.runtime_api; NULL: files only */
	char *policy_file;         /* agent.policy_file */
	struct cs_acme acme;
	struct cs_dns dns;
	struct cs_env *envs;
	size_t n_envs;
	size_t n_hostnames; /* over all environments */
};

/* cs_config_load() results besides 0. */
#define CS_CONFIG_EINVALID    (-1) /* at least one error diagnostic */
#define CS_CONFIG_EUNREADABLE (-2) /* the file itself could not be read */

/*
 * Reads and validates path, appending every problem to d (which the caller initialised).
 * Returns 0 when no error was found (warnings allowed) and sets *out; otherwise returns
 * CS_CONFIG_EINVALID or CS_CONFIG_EUNREADABLE and sets *out to NULL.
 */
int cs_config_load(const char *path, struct cs_config **out, struct cs_diags *d)
    __attribute__((warn_unused_result));
void cs_config_free(struct cs_config *c);

/* The environment serving hostname (any case): the one listing it exactly, else the one
 * listing the "*." wildcard matching exactly its first label; NULL when none does. The
 * default_environment is not consulted. */
const struct cs_env *cs_config_env_of(const struct cs_config *c, const char *hostname);
/* The environment named name, or NULL. */
const struct cs_env *cs_config_env_named(const struct cs_config *c, const char *name);

const char *cs_validation_name(enum cs_validation v);
const char *cs_key_type_name(enum cs_key_type t);

#endif

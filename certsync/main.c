/*
 * certsync: the control plane's command line (DESIGN §4.2). This file owns argument
 * parsing and the dispatch to one function per command; the commands themselves live in
 * their modules.
 *
 * Exit codes: 0 success, 1 the command found problems (check: errors in the
 * configuration), 2 the command could not run (usage, unreadable file, not available).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "config.h"
#include "csr.h"
#include "log.h"

#include "banned.h"

#ifndef EDGETLS_VERSION
#define EDGETLS_VERSION "unknown"
#endif

#define DEFAULT_CONFIG "/etc/edgetls/certsync.conf"

/* What every command receives besides its own arguments. */
struct cmd_ctx {
	const char *config_path;
	int config_given; /* -c was on the command line */
};

struct command {
	const char *name;
	/* argv[0] is the command's name, followed by its own arguments. */
	int (*run)(const struct cmd_ctx *ctx, int argc, char **argv);
	const char *synopsis;
};

static void usage(FILE *f);

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static int cmd_check(const struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cs_diags d;
	struct cs_config *c = NULL;
	int r, ret;

	if (argc > 1) {
		fprintf(stderr, "certsync: check takes no arguments (got \"%s\")\n", argv[1]);
		return 2;
	}
	cs_diags_init(&d);
	r = cs_config_load(ctx->config_path, &c, &d);
	/* Unreadable is "could not run" (exit 2): said on stderr, like other failures. */
	cs_diags_print(&d, r == CS_CONFIG_EUNREADABLE ? stderr : stdout);
	if (r == CS_CONFIG_EUNREADABLE) {
		ret = 2;
	} else if (r != 0) {
		printf("%zu %s, %zu %s\n", d.errors, plural(d.errors, "error", "errors"),
		       d.warnings, plural(d.warnings, "warning", "warnings"));
		ret = 1;
	} else {
		printf("config OK: %zu %s, %zu %s", c->n_envs,
		       plural(c->n_envs, "environment", "environments"), c->n_hostnames,
		       plural(c->n_hostnames, "hostname", "hostnames"));
		if (d.warnings)
			printf(", %zu %s", d.warnings, plural(d.warnings, "warning", "warnings"));
		printf("\n");
		ret = 0;
	}
	cs_config_free(c);
	cs_diags_free(&d);
	return ret;
}

static int cmd_compile_w(const struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_compile(ctx->config_path, argc, argv);
}

static int cmd_run_w(const struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_run(ctx->config_path, argc, argv);
}

static int cmd_status_w(const struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_status(ctx->config_path, argc, argv);
}

static int cmd_upload_w(const struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_upload(ctx->config_path, argc, argv);
}

static int cmd_recheck_w(const struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_recheck(ctx->config_path, argc, argv);
}

static int cmd_csr_w(const struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	return csr_main(argc, argv);
}

/*
 * The commands of DESIGN §4.2. To add one, write `static int cmd_x(const struct cmd_ctx *,
 * int, char **)` (or a wrapper calling the module's entry point, e.g. for csr:
 * `{ (void)ctx; return csr_main(argc, argv); }` with csr.h included) and put it here.
 */
static const struct command commands[] = {
    {"check", cmd_check, "-c FILE check                 validate the configuration"},
    {"compile", cmd_compile_w, "-c FILE compile               write policy.pb, crt-lists and maps"},
    {"run", cmd_run_w, "-c FILE run                   the daemon, in the foreground"},
    {"status", cmd_status_w, "-c FILE status [--json]       per-hostname certificate state"},
    {"recheck", cmd_recheck_w, "-c FILE recheck HOST          re-run the checks, issue now"},
    {"upload", cmd_upload_w, "-c FILE upload --cert F --chain F --key F [--network N]"},
    {"csr", cmd_csr_w, "csr --host H [--host H ...] [--key-type T] --key-out F --csr-out F"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: certsync [-c FILE] COMMAND [ARGS]\n"
	           "\n"
	           "The edgetls control plane: configuration, certificates, HAProxy.\n"
	           "\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  certsync %s\n", commands[i].synopsis);
	fprintf(f, "\n"
	           "  -c, --config FILE   the configuration (default " DEFAULT_CONFIG ")\n"
	           "  -h, --help          this text\n"
	           "  -V, --version       the version\n"
	           "\n"
	           "Exit status: 0 success, 1 problems found, 2 the command could not run.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct cmd_ctx ctx = {.config_path = DEFAULT_CONFIG};
	int o;

	log_set_prog("certsync");

	/* "+": stop at the command name, its options are its own. */
	while ((o = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			ctx.config_path = optarg;
			ctx.config_given = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("certsync %s\n", EDGETLS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "certsync: no command given\n");
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, argv[optind]) != 0)
			continue;
		/* One-shot commands print their results; their log lines are for problems. */
		if (strcmp(commands[i].name, "run") != 0)
			log_set_level(LOG_WARN);
		/* A fresh getopt for the command: optind = 0 makes glibc reinitialise. */
		{
			int cargc = argc - optind;
			char **cargv = argv + optind;
			optind = 0;
			return commands[i].run(&ctx, cargc, cargv);
		}
	}
	fprintf(stderr, "certsync: unknown command \"%s\"\n", argv[optind]);
	usage(stderr);
	return 2;
}

/*
 * cmds: certsync's one-shot commands (DESIGN §4.2) other than check and csr. Each takes
 * the configuration path and the command's own arguments (argv[0] is its name) and
 * returns the exit status: 0 success, 1 problems found, 2 could not run.
 */
#ifndef EDGETLS_CS_CMDS_H
#define EDGETLS_CS_CMDS_H

int cmd_compile(const char *config_path, int argc, char **argv);
int cmd_status(const char *config_path, int argc, char **argv);
int cmd_upload(const char *config_path, int argc, char **argv);
/* recheck [--json] HOST: through the daemon, the checks now and, when they pass, an order
 * now; prints the checks and the outcome. 0 issued, 1 not, 2 could not run. */
int cmd_recheck(const char *config_path, int argc, char **argv);
/* The daemon (daemon.c). */
int cmd_run(const char *config_path, int argc, char **argv);

#endif

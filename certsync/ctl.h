/*
 * ctl: the daemon's local control socket, <state_dir>/control.sock (DESIGN §4.2).
 *
 * One request per connection: the client writes one JSON object and shuts down its
 * writing side; the daemon answers one JSON object and closes. Requests are bounded
 * (CTL_MAX_REQUEST) and so is the time a client may take (CTL_TIMEOUT_MS). Who asks is
 * read from the kernel (SO_PEERCRED), never from the request: root and members of the
 * configured admin group may change things, anyone who can connect may read.
 */
#ifndef EDGETLS_CS_CTL_H
#define EDGETLS_CS_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#define CTL_MAX_REQUEST (4u << 20)
#define CTL_TIMEOUT_MS  30000

/* <state_dir>/control.sock into buf. */
void ctl_socket_path(const char *state_dir, char *buf, size_t buflen);

/* Client: sends req, returns the daemon's answer (caller json_decref's it), or NULL with
 * err set (daemon not running, timeout, garbage). */
json_t *ctl_call(const char *state_dir, json_t *req, char *err, size_t errlen);

/* Server: a listening socket at the path (mode 0666: authorisation is per request). */
int ctl_listen(const char *state_dir, char *err, size_t errlen);

struct ctl_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool admin; /* root, or a member of admin_group */
};

/* Accepts one client, reads its request (blocking, bounded, timed) and identifies it.
 * Returns the connection fd and the parsed request, or -1 (the client is dropped). */
int ctl_accept(int lfd, const char *admin_group, struct ctl_peer *peer, json_t **req);
/* Writes the answer and closes fd. */
void ctl_reply(int fd, json_t *answer);

/* Is uid/gid (and the supplementary groups of pid) in the group named group? */
bool ctl_in_group(const char *group, pid_t pid, uid_t uid, gid_t gid);

#endif

#include "ctl.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#include "banned.h"

void ctl_socket_path(const char *state_dir, char *buf, size_t buflen)
{
	snprintf(buf, buflen, "%s/control.sock", state_dir);
}

static int unix_addr(const char *state_dir, struct sockaddr_un *un, char *err, size_t errlen)
{
	char path[4096];

	ctl_socket_path(state_dir, path, sizeof(path));
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(un->sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -1;
	}
	memcpy(un->sun_path, path, strlen(path) + 1);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads until EOF, at most max bytes, before the deadline. */
static char *read_all(int fd, size_t max, long long deadline, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		ssize_t r;
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			goto fail;
		if (cap - n < 4096) {
			char *nb;
			if (cap > max)
				goto fail;
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap + 1);
			if (!nb)
				goto fail;
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max)
			goto fail;
	}
	if (!buf && !(buf = malloc(1)))
		return NULL;
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	free(buf);
	return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

json_t *ctl_call(const char *state_dir, json_t *req, char *err, size_t errlen)
{
	struct sockaddr_un un;
	char *text = NULL, *reply = NULL;
	json_t *answer = NULL;
	json_error_t je;
	size_t len;
	int fd;

	if (unix_addr(state_dir, &un, err, errlen) < 0)
		return NULL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		snprintf(err, errlen,
		         "cannot reach the certsync daemon at %s: %s (is `certsync run` running?)",
		         un.sun_path, strerror(errno));
		goto out;
	}
	text = json_dumps(req, JSON_COMPACT);
	if (!text || write_all(fd, text, strlen(text)) < 0 || shutdown(fd, SHUT_WR) < 0) {
		snprintf(err, errlen, "sending to the certsync daemon: %s", strerror(errno));
		goto out;
	}
	reply = read_all(fd, CTL_MAX_REQUEST, now_ms() + CTL_TIMEOUT_MS * 2, &len);
	if (!reply || len == 0) {
		snprintf(err, errlen,
		         "the certsync daemon closed the connection without answering (it may have "
		         "stopped mid-request: see `certsync status` and its log)");
		goto out;
	}
	answer = json_loadb(reply, len, 0, &je);
	if (!answer || !json_is_object(answer)) {
		json_decref(answer);
		answer = NULL;
		snprintf(err, errlen, "garbled answer from the certsync daemon");
	}
out:
	if (text) {
		/* The request may hold a private key. */
		memset(text, 0, strlen(text));
		free(text);
	}
	free(reply);
	if (fd >= 0)
		close(fd);
	return answer;
}

int ctl_listen(const char *state_dir, char *err, size_t errlen)
{
	struct sockaddr_un un;
	struct stat st;
	int fd;

	if (unix_addr(state_dir, &un, err, errlen) < 0)
		return -1;
	if (lstat(un.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* Replace a socket nobody listens on (a crashed daemon's), never a live one. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int live = probe >= 0 && connect(probe, (struct sockaddr *)&un, sizeof(un)) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			snprintf(err, errlen, "%s: another certsync daemon is answering there",
			         un.sun_path);
			return -1;
		}
		unlink(un.sun_path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(fd, 16) < 0 ||
	    chmod(un.sun_path, 0666) < 0) {
		snprintf(err, errlen, "control socket %s: %s", un.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

bool ctl_in_group(const char *group, pid_t pid, uid_t uid, gid_t gid)
{
	struct group gr, *g = NULL;
	struct passwd pw, *p = NULL;
	char buf[16384], path[64], line[1024];
	FILE *f;
	bool in = false;

	if (!group || getgrnam_r(group, &gr, buf, sizeof(buf), &g) != 0 || !g)
		return false;
	if (g->gr_gid == gid)
		return true;
	{
		char pbuf[16384];
		if (getpwuid_r(uid, &pw, pbuf, sizeof(pbuf), &p) == 0 && p)
			for (char **m = g->gr_mem; m && *m; m++)
				if (strcmp(*m, p->pw_name) == 0)
					return true;
	}
	/* The peer's supplementary groups, as the kernel has them now. */
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!in && fgets(line, sizeof(line), f)) {
		char *save = NULL;
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (char *t = strtok_r(line + 7, " \t\n", &save); t;
		     t = strtok_r(NULL, " \t\n", &save))
			if (strtoul(t, NULL, 10) == g->gr_gid)
				in = true;
	}
	fclose(f);
	return in;
}

int ctl_accept(int lfd, const char *admin_group, struct ctl_peer *peer, json_t **req)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	json_error_t je;
	char *text;
	size_t len;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	*req = NULL;
	if (fd < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		close(fd);
		return -1;
	}
	peer->pid = cred.pid;
	peer->uid = cred.uid;
	peer->gid = cred.gid;
	peer->admin = cred.uid == 0 || ctl_in_group(admin_group, cred.pid, cred.uid, cred.gid);
	text = read_all(fd, CTL_MAX_REQUEST, now_ms() + CTL_TIMEOUT_MS, &len);
	if (!text) {
		log_msg(LOG_WARN,
		        "event=ctl_drop uid=%ld reason=\"request too large, slow or "
		        "unreadable\"",
		        (long)cred.uid);
		close(fd);
		return -1;
	}
	*req = json_loadb(text, len, 0, &je);
	memset(text, 0, len);
	free(text);
	if (!*req || !json_is_object(*req)) {
		json_decref(*req);
		*req = NULL;
		ctl_reply(fd, json_pack("{s:b,s:s}", "ok", 0, "message", "request is not JSON"));
		return -1;
	}
	return fd;
}

void ctl_reply(int fd, json_t *answer)
{
	char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;

	if (text) {
		(void)write_all(fd, text, strlen(text));
		free(text);
	}
	json_decref(answer);
	close(fd);
}

#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "banned.h"

int addr_parse(const char *s, struct addr *out, char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *res = NULL;
	char host[256];
	const char *port, *h;
	size_t hl;
	int r;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
		size_t n = strlen(s + 5);
		if (n == 0 || n >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "unix socket path empty or longer than %zu bytes",
			         sizeof(un->sun_path) - 1);
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, s + 5, n + 1);
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	if (strncmp(s, "tcp:", 4) == 0)
		s += 4;
	port = strrchr(s, ':');
	if (!port || port[1] == '\0') {
		snprintf(err, errlen, "expected HOST:PORT or unix:PATH, got \"%s\"", s);
		return -1;
	}
	h = s;
	hl = (size_t)(port - s);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "host name too long");
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (hl == 0 ? AI_PASSIVE : 0);
	r = getaddrinfo(hl ? host : NULL, port + 1, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve \"%s\": %s", s, gai_strerror(r));
		return -1;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

const char *addr_format(const struct addr *a, char *buf, size_t buflen)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	switch (a->ss.ss_family) {
	case AF_UNIX:
		snprintf(buf, buflen, "unix:%s", ((const struct sockaddr_un *)&a->ss)->sun_path);
		break;
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, buflen, "%s:%u", ip, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, buflen, "[%s]:%u", ip, ntohs(in6->sin6_port));
		break;
	}
	default:
		snprintf(buf, buflen, "?");
	}
	return buf;
}

int addr_listen(const struct addr *a, int backlog, int reuseport)
{
	int fd, one = 1, saved;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (a->ss.ss_family == AF_UNIX) {
		struct stat st;
		const char *path = ((const struct sockaddr_un *)&a->ss)->sun_path;
		/* Replace a stale socket left by a previous run, never another kind of file. */
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	} else {
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
			goto err;
		if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
			goto err;
	}
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, backlog) < 0)
		goto err;
	return fd;
err:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/*
 * addr: socket addresses as operators write them.
 *
 *   unix:/run/x.sock   a Unix stream socket
 *   tcp:HOST:PORT      TCP; the "tcp:" prefix is optional
 *   HOST:PORT          HOST a name, an IPv4 address or [IPv6]; empty means every address
 */
#ifndef EDGETLS_ADDR_H
#define EDGETLS_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* 0, or -1 with a reason in err. */
int addr_parse(const char *s, struct addr *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* "127.0.0.1:9000", "[::1]:9000" or "unix:/path" into buf; returns buf. */
const char *addr_format(const struct addr *a, char *buf, size_t buflen);
/* A listening socket (non-blocking, close-on-exec); SO_REUSEPORT when reuseport.
 * Returns the fd or -1 with errno set. */
int addr_listen(const struct addr *a, int backlog, int reuseport);

#endif

/*
 * strhash: FNV-1a over short strings (hostnames), for the open-addressing tables of the
 * policy set, the configuration's duplicate check, the ACME schedule and the daemon's
 * certificate index. Not for anything an attacker could use to flood one bucket with
 * keys of their choosing: every table is built from the operator's configuration.
 */
#ifndef EDGETLS_STRHASH_H
#define EDGETLS_STRHASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t strhash_n(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static inline uint64_t strhash(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

#endif

/*
 * hostname: the one definition of "a hostname certsync will serve", shared by the
 * configuration, uploads and CSRs so the three never disagree.
 *
 * A hostname is a DNS name in LDH form (RFC 1123 §2.1, RFC 5890 §2.3.1): labels of 1..63
 * letters, digits and hyphens that neither start nor end with a hyphen, at least two
 * labels, 253 characters at most, no trailing dot. The last label is not all digits (so an
 * IPv4 address is never taken for a name). A wildcard is "*." as the whole leftmost label
 * followed by at least two labels (CAs refuse "*.com"); "*" anywhere else is invalid.
 * Internationalised names are accepted in their A-label form ("xn--...") only.
 * Comparison is case-insensitive: the normalised form is lowercase.
 */
#ifndef EDGETLS_CS_HOSTNAME_H
#define EDGETLS_CS_HOSTNAME_H

#include <stddef.h>

/* Longest valid hostname, without the terminating NUL. */
#define CS_HOSTNAME_MAX 253

/* 0 when name is a valid hostname (any case), -1 with the reason in err otherwise. */
int cs_hostname_check(const char *name, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* As cs_hostname_check, and on success writes the lowercase form into out, which holds
 * CS_HOSTNAME_MAX + 1 bytes. */
int cs_hostname_normalize(const char *name, char out[CS_HOSTNAME_MAX + 1], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* 1 when name (already valid) is a wildcard "*.rest", else 0. */
int cs_hostname_is_wildcard(const char *name);

#endif

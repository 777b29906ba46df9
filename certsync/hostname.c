#include "hostname.h"

#include <stdio.h>
#include <string.h>

#include "banned.h"

#define LABEL_MAX 63

static int is_ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int cs_hostname_normalize(const char *name, char out[CS_HOSTNAME_MAX + 1], char *err, size_t errlen)
{
	char buf[CS_HOSTNAME_MAX + 1];
	size_t len, i, start, labels = 0;
	int wildcard = 0, all_digits = 1;

	len = strlen(name);
	if (len == 0) {
		snprintf(err, errlen, "empty hostname");
		return -1;
	}
	if (len > CS_HOSTNAME_MAX) {
		snprintf(err, errlen, "hostname is %zu characters long, expected at most %d", len,
		         CS_HOSTNAME_MAX);
		return -1;
	}
	if (name[len - 1] == '.') {
		snprintf(err, errlen, "hostname \"%s\" ends with a dot; write it without", name);
		return -1;
	}
	i = 0;
	if (name[0] == '*') {
		if (name[1] != '.') {
			snprintf(err, errlen,
			         "\"%s\": '*' is allowed only as the whole leftmost label (\"*.\")",
			         name);
			return -1;
		}
		wildcard = 1;
		buf[0] = '*';
		buf[1] = '.';
		i = 2;
	}
	/* Each pass reads one label, name[start..i). */
	for (;;) {
		start = i;
		all_digits = 1;
		while (name[i] != '\0' && name[i] != '.') {
			char c = name[i];
			if (c == '*') {
				snprintf(err, errlen,
				         "\"%s\": '*' is allowed only as the whole leftmost label "
				         "(\"*.\")",
				         name);
				return -1;
			}
			if (!is_ldh(c)) {
				if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
					snprintf(
					    err, errlen,
					    "\"%s\": byte 0x%02x is not allowed; expected letters, "
					    "digits and '-' (internationalised names as xn--)",
					    name, (unsigned char)c);
				else
					snprintf(
					    err, errlen,
					    "\"%s\": '%c' is not allowed; expected letters, digits "
					    "and '-' in each label",
					    name, c);
				return -1;
			}
			if (c < '0' || c > '9')
				all_digits = 0;
			buf[i] = lower(c);
			i++;
		}
		if (i == start) {
			snprintf(err, errlen, "\"%s\" has an empty label", name);
			return -1;
		}
		if (i - start > LABEL_MAX) {
			snprintf(
			    err, errlen,
			    "\"%s\": label \"%.*s...\" is %zu characters long, expected at most "
			    "%d",
			    name, 16, name + start, i - start, LABEL_MAX);
			return -1;
		}
		if (name[start] == '-' || name[i - 1] == '-') {
			snprintf(err, errlen, "\"%s\": label \"%.*s\" starts or ends with '-'",
			         name, (int)(i - start), name + start);
			return -1;
		}
		labels++;
		if (name[i] == '\0')
			break;
		buf[i] = '.';
		i++;
	}
	buf[i] = '\0';
	if (labels < 2) {
		snprintf(err, errlen,
		         wildcard
		             ? "\"%s\": a wildcard needs at least two labels after \"*.\""
		             : "\"%s\" is a single label; expected a fully qualified name such "
		               "as host.example.com",
		         name);
		return -1;
	}
	if (all_digits) {
		snprintf(err, errlen,
		         "\"%s\": the last label is all digits; expected a DNS name, not an "
		         "address",
		         name);
		return -1;
	}
	memcpy(out, buf, i + 1);
	return 0;
}

int cs_hostname_check(const char *name, char *err, size_t errlen)
{
	char scratch[CS_HOSTNAME_MAX + 1];

	return cs_hostname_normalize(name, scratch, err, errlen);
}

int cs_hostname_is_wildcard(const char *name)
{
	return name[0] == '*' && name[1] == '.';
}

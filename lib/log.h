/*
 * log: one line per event on stderr, key=value, safe to call from any thread.
 *
 * A line is formatted in full and written with a single write(2), so lines from
 * different threads never interleave. Values that may hold spaces or quotes must go
 * through log_quote(). Secrets never reach this module: callers pass none.
 */
#ifndef EDGETLS_LOG_H
#define EDGETLS_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below this level are dropped. Set once at start, before threads exist. */
void log_set_level(enum log_level level);
int log_parse_level(const char *s, enum log_level *out) __attribute__((warn_unused_result));
/* The program name written as prog= on every line. */
void log_set_prog(const char *prog);

/* log_msg(LOG_INFO, "event=listen addr=%s", a) -> "ts=... level=info prog=... event=..." */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes s as a double-quoted value into out (escaping '"', '\\' and non-printables as
 * \xNN), truncating to fit; returns out. */
const char *log_quote(char *out, size_t outsz, const char *s, size_t len);

#endif

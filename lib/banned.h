/*
 * banned: functions we never call (unbounded copies, non-reentrant parsers, atoi's silent
 * failure). Included last in every .c so a use is a compile error.
 */
#ifndef EDGETLS_BANNED_H
#define EDGETLS_BANNED_H

#pragma GCC poison strcpy strcat sprintf vsprintf gets strtok atoi

#endif

/* Logging: one line per event, key=value pairs, to stderr (or a file).
 * Client-supplied bytes go through log_escape() so that a line stays one
 * line and stays short. Never log a password or a message body. */
#ifndef KURA_LOG_H
#define KURA_LOG_H

#include <stddef.h>

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO = 1,
	LOG_WARN = 2,
	LOG_ERROR = 3,
};

void log_set_level(enum log_level lvl);
/* Opens path for appending, or uses stderr when path is NULL. */
int log_open(const char *path);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Escapes up to `max` input bytes into out (size outlen): printable ASCII
 * except '"' and '\\' as is, everything else as \xNN; "..." appended when
 * truncated. Returns out. */
const char *log_escape(const void *p, size_t len, char *out, size_t outlen);

#endif

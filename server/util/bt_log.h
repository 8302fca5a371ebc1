/*
 * logfmt logging: one line per event on stderr,
 *   ts=2026-11-22T10:00:00.123Z level=info msg="agent connected" vendor=acme agent=7
 * The message is a fixed, lowercase sentence; context goes in key=value pairs
 * formatted by the caller. A value that may hold spaces, quotes or '=' goes
 * through BT_Q(), which returns it quoted when needed. Secrets are never passed
 * here (see worker/lib and server/xport for the places that handle them).
 */
#ifndef BT_LOG_H
#define BT_LOG_H

#include <stdarg.h>

typedef enum {
  BT_LOG_DEBUG = 0,
  BT_LOG_INFO = 1,
  BT_LOG_WARN = 2,
  BT_LOG_ERROR = 3,
} bt_log_level_t;

/* Sets the lowest level written. Default info. */
void bt_log_set_level(bt_log_level_t level);
bt_log_level_t bt_log_get_level(void);

/* Makes every later line a write that never blocks the caller's loop: on a
 * socket (the journal) a send with MSG_DONTWAIT, on a pipe or terminal a
 * non-blocking description of its own (fd 2's flags stay as they are). A line
 * that does not fit now is dropped and counted; the next line that gets
 * through is preceded by "log lines dropped" with the count. Regular files
 * are written as before. Call at start, and again after fd 2 is redirected.
 * Without this call every line is a plain write(2) on fd 2. */
void bt_log_nonblocking(void);

/* Parses "debug", "info", "warn" or "error". Returns 0 or BT_EINVAL. */
int bt_log_parse_level(const char *s, bt_log_level_t *out);

/* Writes one line if level is enabled. kv is a printf format for the key=value
 * part (may be NULL). Each line is written with a single write(2) (or send). */
void bt_log(bt_log_level_t level, const char *msg, const char *kv, ...)
    __attribute__((format(printf, 3, 4)));
void bt_vlog(bt_log_level_t level, const char *msg, const char *kv, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Returns s quoted for logfmt when it contains spaces, quotes, '=' or control
 * characters, else s itself. The result lives in one of 8 rotating static
 * buffers (so up to 8 BT_Q() in one log call), truncated to 512 bytes. */
const char *bt_log_quote(const char *s);
#define BT_Q(s) bt_log_quote(s)

#define bt_log_debug(msg, ...) bt_log(BT_LOG_DEBUG, msg, __VA_ARGS__)
#define bt_log_info(msg, ...) bt_log(BT_LOG_INFO, msg, __VA_ARGS__)
#define bt_log_warn(msg, ...) bt_log(BT_LOG_WARN, msg, __VA_ARGS__)
#define bt_log_error(msg, ...) bt_log(BT_LOG_ERROR, msg, __VA_ARGS__)

#endif

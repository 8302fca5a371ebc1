/* logfmt writer. Single-threaded callers (the broker loop, the agent loop); the
 * quote buffers are static for that reason. */
#include "bt_log.h"

#include "bt_err.h"
#include "bt_time.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bt_log_level_t min_level = BT_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void bt_log_set_level(bt_log_level_t level) { min_level = level; }
bt_log_level_t bt_log_get_level(void) { return min_level; }

int bt_log_parse_level(const char *s, bt_log_level_t *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (bt_log_level_t)i;
      return 0;
    }
  }
  if (strcmp(s, "warning") == 0) {
    *out = BT_LOG_WARN;
    return 0;
  }
  return BT_EINVAL;
}

static int needs_quotes(const char *s) {
  if (*s == '\0')
    return 1;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
      return 1;
  }
  return 0;
}

const char *bt_log_quote(const char *s) {
  static char bufs[8][520];
  static unsigned next;
  if (s == NULL)
    return "\"\"";
  if (!needs_quotes(s))
    return s;
  char *b = bufs[next++ % 8];
  size_t o = 0;
  b[o++] = '"';
  for (; *s && o < 512; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      b[o++] = '\\';
      b[o++] = (char)c;
    } else if (c == '\n') {
      b[o++] = '\\';
      b[o++] = 'n';
    } else if (c < ' ' || c == 0x7f) {
      o += (size_t)snprintf(b + o, 8, "\\x%02x", c);
    } else {
      b[o++] = (char)c;
    }
  }
  b[o++] = '"';
  b[o] = '\0';
  return b;
}

void bt_vlog(bt_log_level_t level, const char *msg, const char *kv, va_list ap) {
  if (level < min_level)
    return;
  char line[4096];
  char ts[40];
  bt_time_format(bt_wall_ms(), ts, sizeof ts);
  int n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s", ts,
                   level_names[level], bt_log_quote(msg));
  if (n < 0)
    return;
  size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  if (kv != NULL && *kv != '\0' && len < sizeof line - 2) {
    line[len++] = ' ';
    int m = vsnprintf(line + len, sizeof line - len, kv, ap);
    if (m > 0)
      len += (size_t)m < sizeof line - len ? (size_t)m : sizeof line - len - 1;
  }
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w; /* nothing sensible to do when stderr is gone */
}

void bt_log(bt_log_level_t level, const char *msg, const char *kv, ...) {
  va_list ap;
  va_start(ap, kv);
  bt_vlog(level, msg, kv, ap);
  va_end(ap);
}

/* logfmt writer. Single-threaded callers (the broker loop, the agent loop); the
 * quote buffers and the output state are static for that reason. */
#include "bt_log.h"

#include "bt_err.h"
#include "bt_time.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* How a line reaches stderr (bt_log_nonblocking). */
typedef enum {
  OUT_PLAIN, /* write(2) on fd 2: may block (the default, and regular files) */
  OUT_SEND,  /* a socket (the journal): send with MSG_DONTWAIT */
  OUT_OWN,   /* a pipe or terminal: our own non-blocking description of it */
  OUT_POLL,  /* a pipe we could not reopen: write only when poll says it fits */
} out_mode_t;

static out_mode_t out_mode = OUT_PLAIN;
static int out_fd = STDERR_FILENO;
static uint64_t dropped; /* lines not written since the last one that was */

static bt_log_level_t min_level = BT_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void bt_log_set_level(bt_log_level_t level) { min_level = level; }

void bt_log_nonblocking(void) {
  if (out_fd != STDERR_FILENO)
    close(out_fd);
  out_mode = OUT_PLAIN;
  out_fd = STDERR_FILENO;
  dropped = 0;
  struct stat sb;
  if (fstat(STDERR_FILENO, &sb) != 0)
    return;
  if (S_ISSOCK(sb.st_mode)) {
    out_mode = OUT_SEND;
  } else if (S_ISFIFO(sb.st_mode) || S_ISCHR(sb.st_mode)) {
    /* O_NONBLOCK on fd 2 itself would change the description the shell or
     * the service manager shares with us; a description of our own does not. */
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
      out_mode = OUT_OWN;
      out_fd = fd;
    } else {
      out_mode = OUT_POLL;
    }
  }
}

/* Whether fd can take a line now. A Unix stream socket (the journal) says so
 * while under a quarter of its send buffer is used, a pipe while a page is
 * free: a line (at most 4096 bytes) then goes in whole. */
static int ready(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/* Writes one line without blocking where the mode allows; returns 0 when it
 * was written (maybe cut, on a terminal), -1 when it was not. A line is at
 * most 4096 bytes, PIPE_BUF: a non-blocking pipe takes it whole or not at all. */
static int put_line(const char *line, size_t len) {
  ssize_t w;
  switch (out_mode) {
  case OUT_SEND:
    if (!ready(out_fd))
      return -1;
    w = send(out_fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    break;
  case OUT_POLL:
    if (!ready(out_fd))
      return -1;
    w = write(out_fd, line, len);
    break;
  default:
    w = write(out_fd, line, len);
    break;
  }
  return w > 0 ? 0 : -1;
}

#define LINE_MAX_BYTES 4096 /* PIPE_BUF: what a pipe takes whole or not at all */

static void emit(const char *line, size_t len) {
  if (dropped == 0) {
    if (put_line(line, len) != 0)
      dropped++; /* nothing sensible to do when stderr is gone or full */
    return;
  }
  /* Say what was lost, in the same write as the line when both fit in one
   * (so the note never gets through alone and the count stays exact). */
  char buf[LINE_MAX_BYTES], ts[40];
  bt_time_format(bt_wall_ms(), ts, sizeof ts);
  int n = snprintf(buf, sizeof buf,
                   "ts=%s level=warn msg=\"log lines dropped: stderr was not ready\" "
                   "count=%" PRIu64 "\n",
                   ts, dropped);
  if (n <= 0 || (size_t)n >= sizeof buf) {
    dropped++;
    return;
  }
  size_t total = (size_t)n;
  if (total + len <= sizeof buf) {
    memcpy(buf + total, line, len);
    total += len;
    len = 0;
  } /* else a line too long to share a write: the note goes first, alone */
  if (put_line(buf, total) != 0) {
    dropped++;
    return;
  }
  dropped = len > 0 && put_line(line, len) != 0 ? 1 : 0;
}
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
  char line[LINE_MAX_BYTES];
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
  emit(line, len);
}

void bt_log(bt_log_level_t level, const char *msg, const char *kv, ...) {
  va_list ap;
  va_start(ap, kv);
  bt_vlog(level, msg, kv, ap);
  va_end(ap);
}

/* The fd-3 line splitter and parser; see fd3.h. Pure: no I/O, no globals. */
#include "fd3.h"

#include "bt_err.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int is_blank(char c) { return c == ' ' || c == '\t'; }

size_t bt_fd3_max_line(size_t cap) {
  return sizeof "checkpoint " + (cap + 2) / 3 * 4 + 16;
}

/* Matches "keyword" followed by at least one blank; returns the argument start. */
static const char *keyword(const char *p, const char *end, const char *kw) {
  size_t n = strlen(kw);
  if ((size_t)(end - p) <= n || memcmp(p, kw, n) != 0 || !is_blank(p[n]))
    return NULL;
  p += n;
  while (p < end && is_blank(*p))
    p++;
  return p;
}

static int decode_b64(const char *p, size_t n, uint8_t *buf, size_t cap, size_t *out,
                      const char **why) {
  const char *end = NULL;
  if (n == 0) {
    *why = "empty checkpoint";
    return BT_EINVAL;
  }
  size_t pad = 0;
  while (pad < 2 && pad < n && p[n - 1 - pad] == '=')
    pad++;
  if (n * 3 / 4 - pad > cap) {
    *why = "checkpoint too large";
    return BT_EINVAL;
  }
  int variant = n % 4 == 0 ? sodium_base64_VARIANT_ORIGINAL
                           : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
  if (sodium_base642bin(buf, cap, p, n, NULL, out, &end, variant) != 0 ||
      end != p + n) {
    *why = "invalid base64";
    return BT_EINVAL;
  }
  return 0;
}

int bt_fd3_parse_line(const char *line, size_t len, uint8_t *buf, size_t cap,
                      bt_fd3_msg_t *out, const char **why) {
  const char *p = line, *end = line + len, *arg;
  if (len > 0 && end[-1] == '\r')
    end--;
  while (end > p && is_blank(end[-1]))
    end--;
  *why = NULL;
  memset(out, 0, sizeof *out);
  if (memchr(p, '\0', (size_t)(end - p)) != NULL) {
    *why = "NUL byte in line";
    return BT_EINVAL;
  }
  if ((arg = keyword(p, end, "progress")) != NULL) {
    int v = 0;
    if (arg == end) {
      *why = "progress without a number";
      return BT_EINVAL;
    }
    for (const char *q = arg; q < end; q++) {
      if (*q < '0' || *q > '9') {
        *why = "progress is not a number";
        return BT_EINVAL;
      }
      v = v * 10 + (*q - '0');
      if (v > 100) {
        *why = "progress above 100";
        return BT_EINVAL;
      }
    }
    out->kind = BT_FD3_PROGRESS;
    out->percent = v;
    return 0;
  }
  if ((arg = keyword(p, end, "checkpoint")) != NULL) {
    if (decode_b64(arg, (size_t)(end - arg), buf, cap, &out->len, why) != 0)
      return BT_EINVAL;
    out->kind = BT_FD3_CHECKPOINT;
    return 0;
  }
  *why = "unknown keyword (want progress or checkpoint)";
  return BT_EINVAL;
}

void bt_fd3_lines_init(bt_fd3_lines_t *l, size_t max) {
  memset(l, 0, sizeof *l);
  l->max = max;
}

static void append(bt_fd3_lines_t *l, const char *data, size_t n) {
  if (l->overflow)
    return;
  if (l->len + n > l->max) {
    l->overflow = 1; /* bounded memory: the rest of this line is dropped */
    l->len = 0;
    return;
  }
  if (l->len + n > l->cap) {
    size_t cap = l->cap ? l->cap : 256;
    while (cap < l->len + n)
      cap *= 2;
    char *b = realloc(l->buf, cap);
    if (b == NULL)
      abort();
    l->buf = b;
    l->cap = cap;
  }
  memcpy(l->buf + l->len, data, n);
  l->len += n;
}

static void emit(bt_fd3_lines_t *l, bt_fd3_line_cb on_line, void *user) {
  if (l->overflow)
    on_line(user, NULL, 0);
  else
    on_line(user, l->buf ? l->buf : "", l->len);
  l->len = 0;
  l->overflow = 0;
}

void bt_fd3_lines_feed(bt_fd3_lines_t *l, const char *data, size_t n,
                       bt_fd3_line_cb on_line, void *user) {
  while (n > 0) {
    const char *nl = memchr(data, '\n', n);
    size_t chunk = nl ? (size_t)(nl - data) : n;
    append(l, data, chunk);
    if (nl == NULL)
      return;
    emit(l, on_line, user);
    data += chunk + 1;
    n -= chunk + 1;
  }
}

void bt_fd3_lines_finish(bt_fd3_lines_t *l, bt_fd3_line_cb on_line, void *user) {
  if (l->len > 0 || l->overflow)
    emit(l, on_line, user);
}

void bt_fd3_lines_close(bt_fd3_lines_t *l) {
  free(l->buf);
  memset(l, 0, sizeof *l);
}

/* Aligned text tables; see table.h. Pure. */
#include "table.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bt_cli_table_init(bt_cli_table_t *t, const bt_cli_col_t *cols,
                       size_t n_cols, bool show_header) {
  memset(t, 0, sizeof *t);
  t->cols = cols;
  t->n_cols = n_cols;
  t->show_header = show_header;
}

void bt_cli_table_close(bt_cli_table_t *t) {
  for (size_t i = 0; i < t->n_cells; i++)
    free(t->cells[i]);
  free(t->cells);
  t->cells = NULL;
  t->n_cells = t->cap = 0;
}

/* Copies s, replacing control characters (and DEL) with '?'. */
static char *sanitize(const char *s) {
  if (s == NULL || *s == '\0')
    s = "-";
  char *c = strdup(s);
  if (c == NULL)
    abort();
  for (char *p = c; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
      *p = '?';
  return c;
}

void bt_cli_table_cell(bt_cli_table_t *t, const char *s) {
  if (t->n_cells == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 32;
    t->cells = realloc(t->cells, t->cap * sizeof *t->cells);
    if (t->cells == NULL)
      abort();
  }
  t->cells[t->n_cells++] = sanitize(s);
}

void bt_cli_table_cellf(bt_cli_table_t *t, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  bt_cli_table_cell(t, buf);
}

size_t bt_cli_table_rows(const bt_cli_table_t *t) {
  return t->n_cols ? (t->n_cells + t->n_cols - 1) / t->n_cols : 0;
}

/* Display width: UTF-8 characters (continuation bytes do not count). Wide East
 * Asian characters count as one; good enough for names and ids. */
static size_t width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80)
      w++;
  return w;
}

typedef struct {
  char *buf;
  size_t len, cap;
} sbuf_t;

static void put(sbuf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    while (b->len + n + 1 > b->cap)
      b->cap = b->cap ? b->cap * 2 : 256;
    b->buf = realloc(b->buf, b->cap);
    if (b->buf == NULL)
      abort();
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
}

static void pad(sbuf_t *b, size_t n) {
  while (n-- > 0)
    put(b, " ", 1);
}

static void render_row(sbuf_t *b, const bt_cli_table_t *t, const size_t *w,
                       const char *const *cells, size_t n) {
  for (size_t c = 0; c < t->n_cols; c++) {
    const char *s = c < n ? cells[c] : "-";
    size_t sw = width(s);
    bool last = c + 1 == t->n_cols;
    if (c > 0)
      put(b, "  ", 2);
    if (t->cols[c].right)
      pad(b, w[c] - sw);
    put(b, s, strlen(s));
    if (!t->cols[c].right && !last)
      pad(b, w[c] - sw);
  }
  put(b, "\n", 1);
}

char *bt_cli_table_render(const bt_cli_table_t *t) {
  sbuf_t b = {0};
  put(&b, "", 0);
  if (t->n_cols == 0)
    return b.buf;
  size_t *w = calloc(t->n_cols, sizeof *w);
  if (w == NULL)
    abort();
  if (t->show_header)
    for (size_t c = 0; c < t->n_cols; c++)
      w[c] = width(t->cols[c].header);
  for (size_t i = 0; i < t->n_cells; i++) {
    size_t sw = width(t->cells[i]);
    if (sw > w[i % t->n_cols])
      w[i % t->n_cols] = sw;
  }
  for (size_t c = 0; c < t->n_cols; c++)
    if (w[c] == 0) /* a column with no cell yet still fits its "-" padding */
      w[c] = 1;
  if (t->show_header) {
    const char **h = malloc(t->n_cols * sizeof *h);
    if (h == NULL)
      abort();
    for (size_t c = 0; c < t->n_cols; c++)
      h[c] = t->cols[c].header;
    render_row(&b, t, w, h, t->n_cols);
    free(h);
  }
  for (size_t r = 0; r * t->n_cols < t->n_cells; r++) {
    size_t first = r * t->n_cols;
    size_t n = t->n_cells - first < t->n_cols ? t->n_cells - first : t->n_cols;
    render_row(&b, t, w, (const char *const *)t->cells + first, n);
  }
  free(w);
  return b.buf;
}

/* Binary encoders and decoders for PostgreSQL's wire formats; see pgwire.h. */
#include "pgwire.h"

#include <stdlib.h>
#include <string.h>

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define PG_EPOCH_MS 946684800000LL

static void __attribute__((noinline)) grow_to(bt_pgparams_t *p, size_t need) {
  size_t cap = p->cap ? p->cap : 256;
  while (cap < need)
    cap *= 2;
  p->buf = realloc(p->buf, cap);
  if (p->buf == NULL)
    abort();
  p->cap = cap;
}

/* The encoders below run for every element of every array parameter: the
 * common case (room left) stays inline, growing is the call. */
static inline void grow(bt_pgparams_t *p, size_t more) {
  if (p->len + more > p->cap)
    grow_to(p, p->len + more);
}

static inline void put(bt_pgparams_t *p, const void *b, size_t n) {
  grow(p, n);
  if (n)
    memcpy(p->buf + p->len, b, n);
  p->len += n;
}

static inline void put_be32(bt_pgparams_t *p, uint32_t v) {
  grow(p, 4);
  uint8_t *b = p->buf + p->len;
  b[0] = (uint8_t)(v >> 24);
  b[1] = (uint8_t)(v >> 16);
  b[2] = (uint8_t)(v >> 8);
  b[3] = (uint8_t)v;
  p->len += 4;
}

static void put_be64(bt_pgparams_t *p, uint64_t v) {
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p, (uint32_t)v);
}

static void patch_be32(bt_pgparams_t *p, size_t at, uint32_t v) {
  p->buf[at] = (uint8_t)(v >> 24);
  p->buf[at + 1] = (uint8_t)(v >> 16);
  p->buf[at + 2] = (uint8_t)(v >> 8);
  p->buf[at + 3] = (uint8_t)v;
}

void bt_pgp_init(bt_pgparams_t *p) { memset(p, 0, sizeof *p); }

void bt_pgp_reset(bt_pgparams_t *p) {
  p->len = 0;
  p->n = 0;
}

void bt_pgp_close(bt_pgparams_t *p) {
  free(p->buf);
  memset(p, 0, sizeof *p);
}

static void begin_param(bt_pgparams_t *p) {
  if (p->n >= BT_PG_MAX_PARAMS)
    abort(); /* a statement with more parameters is a programming error */
  p->off[p->n] = p->len;
}

static void end_param(bt_pgparams_t *p, int len) { p->lens[p->n++] = len; }

void bt_pgp_null(bt_pgparams_t *p) {
  begin_param(p);
  end_param(p, -1);
}

void bt_pgp_i64(bt_pgparams_t *p, int64_t v) {
  begin_param(p);
  put_be64(p, (uint64_t)v);
  end_param(p, 8);
}

void bt_pgp_i32(bt_pgparams_t *p, int32_t v) {
  begin_param(p);
  put_be32(p, (uint32_t)v);
  end_param(p, 4);
}

void bt_pgp_i16(bt_pgparams_t *p, int16_t v) {
  begin_param(p);
  uint8_t b[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
  put(p, b, 2);
  end_param(p, 2);
}

void bt_pgp_f64(bt_pgparams_t *p, double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  bt_pgp_i64(p, (int64_t)u);
}

void bt_pgp_bool(bt_pgparams_t *p, bool v) {
  begin_param(p);
  uint8_t b = v ? 1 : 0;
  put(p, &b, 1);
  end_param(p, 1);
}

void bt_pgp_text(bt_pgparams_t *p, const char *s) {
  if (s == NULL) {
    bt_pgp_null(p);
    return;
  }
  bt_pgp_bytes(p, s, strlen(s));
}

void bt_pgp_bytes(bt_pgparams_t *p, const void *b, size_t n) {
  if (b == NULL && n > 0) {
    bt_pgp_null(p);
    return;
  }
  begin_param(p);
  put(p, b, n);
  end_param(p, (int)n);
}

void bt_pgp_ts(bt_pgparams_t *p, int64_t at) {
  if (at == 0) {
    bt_pgp_null(p);
    return;
  }
  bt_pgp_i64(p, (at - PG_EPOCH_MS) * 1000);
}

void bt_pgp_text_array(bt_pgparams_t *p, const char *const *v, size_t n) {
  bt_pgarr_t a;
  bt_pga_begin(&a, p, BT_PG_OID_TEXT);
  for (size_t i = 0; i < n; i++)
    bt_pga_bytes(&a, v[i], strlen(v[i]));
  bt_pga_end(&a);
}

void bt_pgp_id_array(bt_pgparams_t *p, const uint64_t *v, size_t n) {
  bt_pgarr_t a;
  bt_pga_begin(&a, p, BT_PG_OID_INT8);
  for (size_t i = 0; i < n; i++)
    bt_pga_i64(&a, (int64_t)v[i]);
  bt_pga_end(&a);
}

/* Array wire format: ndim, has-null flag, element oid, then per dimension its
 * size and lower bound, then each element as length + bytes (-1 = NULL). The
 * header is written with a placeholder size and patched at the end. */
void bt_pga_begin(bt_pgarr_t *a, bt_pgparams_t *p, uint32_t elem_oid) {
  begin_param(p);
  a->p = p;
  a->start = p->len;
  a->count = 0;
  a->has_null = false;
  a->oid = elem_oid;
  put_be32(p, 1);        /* ndim */
  put_be32(p, 0);        /* flags, patched */
  put_be32(p, elem_oid); /* element type */
  put_be32(p, 0);        /* size, patched */
  put_be32(p, 1);        /* lower bound */
}

void bt_pga_null(bt_pgarr_t *a) {
  put_be32(a->p, UINT32_MAX);
  a->has_null = true;
  a->count++;
}

void bt_pga_bytes(bt_pgarr_t *a, const void *b, size_t n) {
  put_be32(a->p, (uint32_t)n);
  put(a->p, b, n);
  a->count++;
}

void bt_pga_i64(bt_pgarr_t *a, int64_t v) {
  put_be32(a->p, 8);
  put_be64(a->p, (uint64_t)v);
  a->count++;
}

void bt_pga_i32(bt_pgarr_t *a, int32_t v) {
  put_be32(a->p, 4);
  put_be32(a->p, (uint32_t)v);
  a->count++;
}

void bt_pga_i16(bt_pgarr_t *a, int16_t v) {
  put_be32(a->p, 2);
  uint8_t b[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
  put(a->p, b, 2);
  a->count++;
}

void bt_pga_f64(bt_pgarr_t *a, double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  bt_pga_i64(a, (int64_t)u);
}

void bt_pga_ts(bt_pgarr_t *a, int64_t at) {
  if (at == 0)
    bt_pga_null(a);
  else
    bt_pga_i64(a, (at - PG_EPOCH_MS) * 1000);
}

void bt_pga_end(bt_pgarr_t *a) {
  bt_pgparams_t *p = a->p;
  if (a->count == 0) {
    /* An empty array has no dimensions. */
    p->len = a->start;
    put_be32(p, 0);
    put_be32(p, 0);
    put_be32(p, a->oid);
  } else {
    patch_be32(p, a->start + 4, a->has_null ? 1 : 0);
    patch_be32(p, a->start + 12, (uint32_t)a->count);
  }
  end_param(p, (int)(p->len - a->start));
}

static uint32_t be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Every source's parameter idx was written by bt_pga_*: ndim 1 with a 20-byte
 * header, or ndim 0 (empty) with 12. Elements are self-delimiting, so the
 * concatenation is the sources' element bytes one after another under a new
 * header. */
void bt_pgp_concat_arrays(bt_pgparams_t *p, const bt_pgparams_t *const *src, size_t n,
                          int idx) {
  uint32_t count = 0, oid = 0;
  bool has_null = false;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *h = src[i]->buf + src[i]->off[idx];
    if (src[i]->lens[idx] < 12)
      abort(); /* not an array: a programming error */
    oid = be32(h + 8);
    if (be32(h) == 0)
      continue;
    has_null = has_null || be32(h + 4) != 0;
    count += be32(h + 12);
  }
  begin_param(p);
  size_t start = p->len;
  if (count == 0) {
    put_be32(p, 0);
    put_be32(p, 0);
    put_be32(p, oid);
    end_param(p, (int)(p->len - start));
    return;
  }
  size_t bytes = 20;
  for (size_t i = 0; i < n; i++)
    if (be32(src[i]->buf + src[i]->off[idx]) != 0)
      bytes += (size_t)src[i]->lens[idx] - 20;
  grow(p, bytes); /* once, not once per source */
  put_be32(p, 1);
  put_be32(p, has_null ? 1 : 0);
  put_be32(p, oid);
  put_be32(p, count);
  put_be32(p, 1);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *h = src[i]->buf + src[i]->off[idx];
    if (be32(h) == 0)
      continue;
    put(p, h + 20, (size_t)src[i]->lens[idx] - 20);
  }
  end_param(p, (int)(p->len - start));
}

uint32_t bt_pgp_array_len(const bt_pgparams_t *p, int idx) {
  const uint8_t *h = p->buf + p->off[idx];
  if (p->lens[idx] < 12)
    abort(); /* not an array: a programming error */
  return be32(h) == 0 ? 0 : be32(h + 12); /* ndim 0: empty */
}

void bt_pgp_truncate(bt_pgparams_t *p, int n) {
  if (n >= p->n)
    return;
  p->len = p->off[n];
  p->n = n;
}

void bt_pgp_vectors(const bt_pgparams_t *p, const char **values, int *lengths,
                    int *formats) {
  for (int i = 0; i < p->n; i++) {
    values[i] = p->lens[i] < 0 ? NULL : (const char *)p->buf + p->off[i];
    lengths[i] = p->lens[i] < 0 ? 0 : p->lens[i];
    formats[i] = 1;
  }
}

/* --- results ------------------------------------------------------------------- */

static uint64_t be64(const uint8_t *b) {
  return (uint64_t)be32(b) << 32 | be32(b + 4);
}

bool bt_pgr_null(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) != 0;
}

int64_t bt_pgr_i64(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return 0;
  const uint8_t *b = (const uint8_t *)PQgetvalue(r, row, col);
  switch (PQgetlength(r, row, col)) {
  case 8:
    return (int64_t)be64(b);
  case 4:
    return (int32_t)be32(b);
  case 2:
    return (int16_t)((uint16_t)b[0] << 8 | b[1]);
  default:
    return 0;
  }
}

double bt_pgr_f64(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
    return -1.0;
  uint64_t u = be64((const uint8_t *)PQgetvalue(r, row, col));
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

int64_t bt_pgr_ts(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
    return 0;
  int64_t us = (int64_t)be64((const uint8_t *)PQgetvalue(r, row, col));
  /* -infinity and infinity are stored as the extreme values */
  if (us == INT64_MIN)
    return INT64_MIN;
  if (us == INT64_MAX)
    return INT64_MAX;
  /* floor division so times before 2000 stay right */
  int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
  return ms + PG_EPOCH_MS;
}

bool bt_pgr_bool(const PGresult *r, int row, int col) {
  return !PQgetisnull(r, row, col) && PQgetlength(r, row, col) == 1 &&
         PQgetvalue(r, row, col)[0] != 0;
}

const char *bt_pgr_text(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

const uint8_t *bt_pgr_bytes(const PGresult *r, int row, int col, size_t *len) {
  if (PQgetisnull(r, row, col)) {
    *len = 0;
    return NULL;
  }
  *len = (size_t)PQgetlength(r, row, col);
  return (const uint8_t *)PQgetvalue(r, row, col);
}

const char **bt_pgr_text_array(const PGresult *r, int row, int col, size_t *n) {
  *n = 0;
  if (PQgetisnull(r, row, col))
    return NULL;
  const uint8_t *b = (const uint8_t *)PQgetvalue(r, row, col);
  size_t len = (size_t)PQgetlength(r, row, col);
  if (len < 12)
    return NULL;
  uint32_t ndim = be32(b);
  size_t count = 0, o = 12;
  if (ndim == 1) {
    if (len < 20)
      return NULL;
    count = be32(b + 12);
    o = 20;
    /* Every element takes at least its 4-byte length: check before allocating. */
    if (count > (len - 20) / 4)
      return NULL;
  } else if (ndim != 0) {
    return NULL;
  }
  /* One allocation: the pointer vector, then the strings with their NULs. */
  size_t strbytes = len + count;
  char **vec = malloc((count + 1) * sizeof *vec + strbytes);
  if (vec == NULL)
    abort();
  char *s = (char *)(vec + count + 1);
  for (size_t i = 0; i < count; i++) {
    if (o + 4 > len)
      goto bad;
    uint32_t el = be32(b + o);
    o += 4;
    if (el == UINT32_MAX) { /* NULL element: shown as empty */
      vec[i] = s;
      *s++ = '\0';
      continue;
    }
    if (o + el > len)
      goto bad;
    memcpy(s, b + o, el);
    vec[i] = s;
    s += el;
    *s++ = '\0';
    o += el;
  }
  vec[count] = NULL;
  *n = count;
  return (const char **)vec;
bad:
  free(vec);
  return NULL;
}

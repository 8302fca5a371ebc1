/*
 * PostgreSQL binary formats for statement parameters and results. Every
 * parameter goes in binary (resultFormat 1 for results too), so nothing on the
 * write path is escaped or printed: int8/int4/int2/float8/bool in network order,
 * text and bytea as raw bytes, timestamptz as microseconds since 2000-01-01,
 * and one-dimensional arrays in the array wire format.
 */
#ifndef BT_PGWIRE_H
#define BT_PGWIRE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_PG_OID_BOOL 16
#define BT_PG_OID_BYTEA 17
#define BT_PG_OID_INT8 20
#define BT_PG_OID_INT2 21
#define BT_PG_OID_INT4 23
#define BT_PG_OID_TEXT 25
#define BT_PG_OID_FLOAT8 701
#define BT_PG_OID_TIMESTAMPTZ 1184

#define BT_PG_MAX_PARAMS 24

/* Encoded parameters of one statement. The bytes are owned; values[] is built
 * from offsets when the statement is sent. */
typedef struct {
  uint8_t *buf;
  size_t len, cap;
  int n;
  size_t off[BT_PG_MAX_PARAMS];
  int lens[BT_PG_MAX_PARAMS]; /* -1 = NULL */
} bt_pgparams_t;

void bt_pgp_init(bt_pgparams_t *p);
/* Empties p for reuse, keeping its buffer. */
void bt_pgp_reset(bt_pgparams_t *p);
void bt_pgp_close(bt_pgparams_t *p);
void bt_pgp_null(bt_pgparams_t *p);
void bt_pgp_i64(bt_pgparams_t *p, int64_t v);
void bt_pgp_i32(bt_pgparams_t *p, int32_t v);
void bt_pgp_i16(bt_pgparams_t *p, int16_t v);
void bt_pgp_f64(bt_pgparams_t *p, double v);
void bt_pgp_bool(bt_pgparams_t *p, bool v);
void bt_pgp_text(bt_pgparams_t *p, const char *s);          /* NULL → SQL NULL */
void bt_pgp_bytes(bt_pgparams_t *p, const void *b, size_t n); /* bytea; NULL with n > 0 → SQL NULL */
void bt_pgp_ts(bt_pgparams_t *p, int64_t at);               /* unix ms; 0 → SQL NULL */
void bt_pgp_text_array(bt_pgparams_t *p, const char *const *v, size_t n);
void bt_pgp_id_array(bt_pgparams_t *p, const uint64_t *v, size_t n); /* int8[] */

/* Array parameters built element by element (for multi-row statements). */
typedef struct {
  bt_pgparams_t *p;
  size_t start;  /* offset of this parameter's bytes */
  int count;
  bool has_null;
  uint32_t oid;
} bt_pgarr_t;
void bt_pga_begin(bt_pgarr_t *a, bt_pgparams_t *p, uint32_t elem_oid);
void bt_pga_null(bt_pgarr_t *a);
void bt_pga_i64(bt_pgarr_t *a, int64_t v);
void bt_pga_i32(bt_pgarr_t *a, int32_t v);
void bt_pga_i16(bt_pgarr_t *a, int16_t v);
void bt_pga_f64(bt_pgarr_t *a, double v);
void bt_pga_bytes(bt_pgarr_t *a, const void *b, size_t n);
void bt_pga_ts(bt_pgarr_t *a, int64_t at); /* 0 → NULL */
void bt_pga_end(bt_pgarr_t *a);

/* Appends, as p's next parameter, the concatenation of parameter idx of each
 * of the n sources, all one-dimensional arrays of one element type. This is how
 * the engine turns many one-row array statements into one many-row statement. */
void bt_pgp_concat_arrays(bt_pgparams_t *p, const bt_pgparams_t *const *src, size_t n,
                          int idx);
/* The element count of parameter idx, a one-dimensional array (0 for an
 * empty one). */
uint32_t bt_pgp_array_len(const bt_pgparams_t *p, int idx);
/* Drops parameters n and later (to replace the last ones). */
void bt_pgp_truncate(bt_pgparams_t *p, int n);

/* Fills values/lengths/formats for PQsendQueryPrepared. */
void bt_pgp_vectors(const bt_pgparams_t *p, const char **values, int *lengths,
                    int *formats);

/* --- binary results ------------------------------------------------------- */
bool bt_pgr_null(const PGresult *r, int row, int col);
int64_t bt_pgr_i64(const PGresult *r, int row, int col);  /* int8/int4/int2; NULL → 0 */
double bt_pgr_f64(const PGresult *r, int row, int col);   /* NULL → -1 */
int64_t bt_pgr_ts(const PGresult *r, int row, int col);   /* unix ms; NULL → 0; ±infinity → INT64_MIN/MAX */
bool bt_pgr_bool(const PGresult *r, int row, int col);
const char *bt_pgr_text(const PGresult *r, int row, int col); /* NULL → NULL; NUL-terminated by libpq */
const uint8_t *bt_pgr_bytes(const PGresult *r, int row, int col, size_t *len);
/* Decodes a text[] into a NULL-terminated malloc'd vector of pointers into a
 * single allocation (free the vector only). *n receives the count. Returns NULL
 * for SQL NULL or a malformed array (*n = 0). */
const char **bt_pgr_text_array(const PGresult *r, int row, int col, size_t *n);

#endif

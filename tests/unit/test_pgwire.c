/*
 * server/store/pgwire: the binary encoders must produce PostgreSQL's binary
 * formats byte for byte (big-endian integers, IEEE float8, timestamptz as
 * microseconds since 2000-01-01, the one-dimensional array format), and the
 * decoders must read synthetic binary results built with libpq's
 * PQmakeEmptyPGresult/PQsetResultAttrs/PQsetvalue, refusing malformed arrays
 * without crashing or allocating what a corrupt header claims. The cases that
 * could abort or trip UBSan run in a forked child so one failure does not take
 * the rest of the program with it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pgwire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_EPOCH_MS 946684800000LL /* 2000-01-01T00:00:00Z in Unix ms */

/* Checks parameter i of p against the expected bytes. */
static void expect_param(const bt_pgparams_t *p, int i, const void *bytes, int len) {
  assert_true(i < p->n);
  if (p->lens[i] != len)
    fail_msg("param %d: length %d, want %d", i, p->lens[i], len);
  if (len > 0)
    assert_memory_equal(p->buf + p->off[i], bytes, (size_t)len);
}

#define EXPECT(p, i, ...)                                                        \
  do {                                                                           \
    static const uint8_t want_[] = {__VA_ARGS__};                                \
    expect_param((p), (i), want_, (int)sizeof want_);                            \
  } while (0)

/* --- encoders ------------------------------------------------------------------ */

static void test_pgwire_encode_integers(void **state) {
  (void)state;
  bt_pgparams_t p;
  bt_pgp_init(&p);
  bt_pgp_i64(&p, 0x0102030405060708LL);
  bt_pgp_i64(&p, -1);
  bt_pgp_i64(&p, INT64_MIN);
  bt_pgp_i32(&p, 0x01020304);
  bt_pgp_i32(&p, -2);
  bt_pgp_i32(&p, INT32_MIN);
  bt_pgp_i16(&p, 0x0102);
  bt_pgp_i16(&p, -1);
  bt_pgp_i16(&p, INT16_MIN);
  bt_pgp_bool(&p, true);
  bt_pgp_bool(&p, false);
  assert_int_equal(p.n, 11);
  EXPECT(&p, 0, 1, 2, 3, 4, 5, 6, 7, 8);
  EXPECT(&p, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
  EXPECT(&p, 2, 0x80, 0, 0, 0, 0, 0, 0, 0);
  EXPECT(&p, 3, 1, 2, 3, 4);
  EXPECT(&p, 4, 0xff, 0xff, 0xff, 0xfe);
  EXPECT(&p, 5, 0x80, 0, 0, 0);
  EXPECT(&p, 6, 1, 2);
  EXPECT(&p, 7, 0xff, 0xff);
  EXPECT(&p, 8, 0x80, 0);
  EXPECT(&p, 9, 1);
  EXPECT(&p, 10, 0);
  bt_pgp_close(&p);
  assert_null(p.buf);
}

static void test_pgwire_encode_float8(void **state) {
  (void)state;
  bt_pgparams_t p;
  bt_pgp_init(&p);
  bt_pgp_f64(&p, 1.0);
  bt_pgp_f64(&p, -2.5);
  bt_pgp_f64(&p, 0.1);
  bt_pgp_f64(&p, INFINITY);
  bt_pgp_f64(&p, -0.0);
  EXPECT(&p, 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0);
  EXPECT(&p, 1, 0xc0, 0x04, 0, 0, 0, 0, 0, 0);
  EXPECT(&p, 2, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a);
  EXPECT(&p, 3, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0);
  EXPECT(&p, 4, 0x80, 0, 0, 0, 0, 0, 0, 0);
  bt_pgp_close(&p);
}

static void test_pgwire_encode_timestamptz(void **state) {
  (void)state;
  bt_pgparams_t p;
  bt_pgp_init(&p);
  bt_pgp_ts(&p, PG_EPOCH_MS);            /* 2000-01-01T00:00:00Z = 0 us */
  bt_pgp_ts(&p, PG_EPOCH_MS + 1);        /* + 1 ms = 1000 us */
  bt_pgp_ts(&p, PG_EPOCH_MS - 1000);     /* 1999-12-31T23:59:59Z = -1e6 us */
  bt_pgp_ts(&p, 1795341600000LL);        /* 2026-11-22T10:00:00Z */
  bt_pgp_ts(&p, 645453296000LL);         /* 1990-06-15T12:34:56Z */
  bt_pgp_ts(&p, 1);                      /* 1970-01-01T00:00:00.001Z */
  bt_pgp_ts(&p, 0);                      /* 0 means "no time": SQL NULL */
  EXPECT(&p, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  EXPECT(&p, 1, 0, 0, 0, 0, 0, 0, 0x03, 0xe8);
  EXPECT(&p, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0xbd, 0xc0);
  EXPECT(&p, 3, 0x00, 0x03, 0x03, 0xd9, 0x4f, 0x19, 0xa8, 0x00); /* 848656800000000 */
  EXPECT(&p, 4, 0xff, 0xfe, 0xee, 0x08, 0x13, 0x35, 0x7c, 0x00); /* -301231504000000 */
  EXPECT(&p, 5, 0xff, 0xfc, 0xa2, 0xfe, 0xc4, 0xc8, 0x23, 0xe8); /* -946684799999000 */
  assert_int_equal(p.lens[6], -1);
  bt_pgp_close(&p);
}

static void test_pgwire_encode_text_bytea_null(void **state) {
  (void)state;
  bt_pgparams_t p;
  bt_pgp_init(&p);
  bt_pgp_text(&p, "h\xc3\xa9llo");
  bt_pgp_text(&p, "");
  bt_pgp_text(&p, NULL);
  static const uint8_t bin[] = {0, 1, 0, 0xff, '\\', 'x'};
  bt_pgp_bytes(&p, bin, sizeof bin);
  bt_pgp_bytes(&p, "", 0);
  bt_pgp_bytes(&p, NULL, 5);
  bt_pgp_null(&p);
  bt_pgp_i32(&p, 7); /* after NULLs the offsets still line up */
  EXPECT(&p, 0, 'h', 0xc3, 0xa9, 'l', 'l', 'o'); /* raw, no terminator, no escaping */
  assert_int_equal(p.lens[1], 0);                /* empty is not NULL */
  assert_int_equal(p.lens[2], -1);
  EXPECT(&p, 3, 0, 1, 0, 0xff, '\\', 'x');
  assert_int_equal(p.lens[4], 0);
  assert_int_equal(p.lens[5], -1);
  assert_int_equal(p.lens[6], -1);
  EXPECT(&p, 7, 0, 0, 0, 7);
  bt_pgp_close(&p);
}

static void test_pgwire_encode_arrays(void **state) {
  (void)state;
  bt_pgparams_t p;
  bt_pgp_init(&p);

  /* 0: an empty text[]: no dimensions, just ndim 0, flags 0, element oid */
  bt_pgp_text_array(&p, NULL, 0);
  EXPECT(&p, 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, /**/ 0, 0, 0, 25);

  /* 1: text[] {"a","bc"} */
  const char *v[] = {"a", "bc"};
  bt_pgp_text_array(&p, v, 2);
  EXPECT(&p, 1, 0, 0, 0, 1, /* ndim */ 0, 0, 0, 0, /* no nulls */ 0, 0, 0, 25,
         0, 0, 0, 2, /* count, patched */ 0, 0, 0, 1, /* lower bound */
         0, 0, 0, 1, 'a', 0, 0, 0, 2, 'b', 'c');

  /* 2: int8[] with a NULL element: the has-null flag is set */
  bt_pgarr_t a;
  bt_pga_begin(&a, &p, BT_PG_OID_INT8);
  bt_pga_i64(&a, 5);
  bt_pga_null(&a);
  bt_pga_i64(&a, -1);
  bt_pga_end(&a);
  EXPECT(&p, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, 1,
         0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5,
         0xff, 0xff, 0xff, 0xff,
         0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

  /* 3: int4[], int2[] and float8[] elements */
  bt_pga_begin(&a, &p, BT_PG_OID_INT4);
  bt_pga_i32(&a, -2);
  bt_pga_end(&a);
  EXPECT(&p, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 1, 0, 0, 0, 1,
         0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe);
  bt_pga_begin(&a, &p, BT_PG_OID_INT2);
  bt_pga_i16(&a, 0x0102);
  bt_pga_end(&a);
  EXPECT(&p, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 21, 0, 0, 0, 1, 0, 0, 0, 1,
         0, 0, 0, 2, 1, 2);
  bt_pga_begin(&a, &p, BT_PG_OID_FLOAT8);
  bt_pga_f64(&a, 1.0);
  bt_pga_end(&a);
  EXPECT(&p, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0xbd, 0, 0, 0, 1, 0, 0, 0, 1,
         0, 0, 0, 8, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0);

  /* 6: timestamptz[]: 0 becomes a NULL element */
  bt_pga_begin(&a, &p, BT_PG_OID_TIMESTAMPTZ);
  bt_pga_ts(&a, PG_EPOCH_MS - 1000);
  bt_pga_ts(&a, 0);
  bt_pga_end(&a);
  EXPECT(&p, 6, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0x04, 0xa0, 0, 0, 0, 2, 0, 0, 0, 1,
         0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0xbd, 0xc0,
         0xff, 0xff, 0xff, 0xff);

  /* 7: bytea[] with an empty element, and an empty array started element-wise */
  bt_pga_begin(&a, &p, BT_PG_OID_BYTEA);
  bt_pga_bytes(&a, "", 0);
  bt_pga_end(&a);
  EXPECT(&p, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 1, 0, 0, 0, 1,
         0, 0, 0, 0);
  bt_pga_begin(&a, &p, BT_PG_OID_INT8);
  bt_pga_end(&a);
  EXPECT(&p, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20);
  bt_pgp_i16(&p, 9); /* the next parameter starts right after */
  EXPECT(&p, 9, 0, 9);
  bt_pgp_close(&p);
}

/* The element count is patched at the end, also when the buffer moved while the
 * array was being built (many elements force reallocations). */
static void test_pgwire_encode_large_array_patched(void **state) {
  (void)state;
  bt_pgparams_t p;
  bt_pgp_init(&p);
  bt_pgp_i32(&p, 1);
  bt_pgarr_t a;
  bt_pga_begin(&a, &p, BT_PG_OID_INT8);
  for (int i = 0; i < 70000; i++)
    bt_pga_i64(&a, i);
  bt_pga_end(&a);
  const uint8_t *b = p.buf + p.off[1];
  assert_int_equal(p.lens[1], 20 + 70000 * 12);
  static const uint8_t hdr[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20,
                                0, 1, 0x11, 0x70, /* 70000 */ 0, 0, 0, 1};
  assert_memory_equal(b, hdr, sizeof hdr);
  /* the last element is where it should be */
  static const uint8_t last[] = {0, 0, 0, 8, 0, 0, 0, 0, 0, 1, 0x11, 0x6f};
  assert_memory_equal(b + 20 + 69999 * 12, last, sizeof last);
  bt_pgp_close(&p);
}

/* Concatenating arrays is how the store merges writes: the result must be
 * what one bt_pga_* array of all the elements would have been, empty sources
 * skipped, the has-null flag of any source kept; truncating drops the last
 * parameters so they can be written again. */
static void test_pgwire_concat_arrays(void **state) {
  (void)state;
  bt_pgparams_t a, b, c, want, got;
  bt_pgp_init(&a);
  bt_pgp_init(&b);
  bt_pgp_init(&c);
  bt_pgp_init(&want);
  bt_pgp_init(&got);
  bt_pgarr_t x;
  /* each source: param 0 int8[], param 1 text[] */
  bt_pga_begin(&x, &a, BT_PG_OID_INT8);
  bt_pga_i64(&x, 1);
  bt_pga_i64(&x, 2);
  bt_pga_end(&x);
  bt_pga_begin(&x, &a, BT_PG_OID_TEXT);
  bt_pga_bytes(&x, "a", 1);
  bt_pga_bytes(&x, "bb", 2);
  bt_pga_end(&x);
  bt_pga_begin(&x, &b, BT_PG_OID_INT8); /* empty: no dimensions */
  bt_pga_end(&x);
  bt_pga_begin(&x, &b, BT_PG_OID_TEXT);
  bt_pga_end(&x);
  bt_pga_begin(&x, &c, BT_PG_OID_INT8);
  bt_pga_i64(&x, 3);
  bt_pga_end(&x);
  bt_pga_begin(&x, &c, BT_PG_OID_TEXT);
  bt_pga_null(&x);
  bt_pga_end(&x);

  bt_pga_begin(&x, &want, BT_PG_OID_INT8);
  bt_pga_i64(&x, 1);
  bt_pga_i64(&x, 2);
  bt_pga_i64(&x, 3);
  bt_pga_end(&x);
  bt_pga_begin(&x, &want, BT_PG_OID_TEXT);
  bt_pga_bytes(&x, "a", 1);
  bt_pga_bytes(&x, "bb", 2);
  bt_pga_null(&x);
  bt_pga_end(&x);

  const bt_pgparams_t *src[] = {&a, &b, &c};
  bt_pgp_concat_arrays(&got, src, 3, 0);
  bt_pgp_concat_arrays(&got, src, 3, 1);
  assert_int_equal(got.n, 2);
  for (int i = 0; i < 2; i++)
    expect_param(&got, i, want.buf + want.off[i], want.lens[i]);
  /* Element counts as the store reads them (which statement form to send). */
  assert_int_equal(bt_pgp_array_len(&a, 0), 2);
  assert_int_equal(bt_pgp_array_len(&b, 0), 0);
  assert_int_equal(bt_pgp_array_len(&c, 1), 1);
  assert_int_equal(bt_pgp_array_len(&got, 0), 3);
  assert_int_equal(bt_pgp_array_len(&got, 1), 3);

  /* Only empty sources: an empty array of the element type. */
  bt_pgparams_t empty;
  bt_pgp_init(&empty);
  const bt_pgparams_t *only_b[] = {&b};
  bt_pgp_concat_arrays(&empty, only_b, 1, 1);
  expect_param(&empty, 0, b.buf + b.off[1], b.lens[1]);

  /* Truncate, then write the last parameter again. */
  bt_pgp_truncate(&got, 1);
  assert_int_equal(got.n, 1);
  bt_pgp_concat_arrays(&got, src, 3, 1);
  expect_param(&got, 1, want.buf + want.off[1], want.lens[1]);

  /* Reset keeps the buffer (the store reuses freed operations) and encodes
   * the same bytes again from the start. */
  uint8_t *buf = got.buf;
  size_t cap = got.cap;
  bt_pgp_reset(&got);
  assert_int_equal(got.n, 0);
  assert_int_equal(got.len, 0);
  assert_ptr_equal(got.buf, buf);
  assert_int_equal(got.cap, cap);
  bt_pgp_concat_arrays(&got, src, 3, 0);
  bt_pgp_concat_arrays(&got, src, 3, 1);
  assert_int_equal(got.n, 2);
  for (int i = 0; i < 2; i++)
    expect_param(&got, i, want.buf + want.off[i], want.lens[i]);

  bt_pgp_close(&a);
  bt_pgp_close(&b);
  bt_pgp_close(&c);
  bt_pgp_close(&want);
  bt_pgp_close(&got);
  bt_pgp_close(&empty);
}

static void test_pgwire_vectors(void **state) {
  (void)state;
  bt_pgparams_t p;
  bt_pgp_init(&p);
  static uint8_t big[100000];
  memset(big, 0xab, sizeof big);
  bt_pgp_i64(&p, 1);
  bt_pgp_null(&p);
  bt_pgp_bytes(&p, big, sizeof big); /* forces the buffer to move */
  bt_pgp_text(&p, "x");
  for (int i = p.n; i < BT_PG_MAX_PARAMS; i++)
    bt_pgp_i16(&p, (int16_t)i);
  assert_int_equal(p.n, BT_PG_MAX_PARAMS);

  const char *values[BT_PG_MAX_PARAMS];
  int lengths[BT_PG_MAX_PARAMS], formats[BT_PG_MAX_PARAMS];
  bt_pgp_vectors(&p, values, lengths, formats);
  for (int i = 0; i < BT_PG_MAX_PARAMS; i++)
    assert_int_equal(formats[i], 1); /* binary, always */
  assert_ptr_equal(values[0], (const char *)p.buf);
  assert_int_equal(lengths[0], 8);
  assert_null(values[1]);
  assert_int_equal(lengths[1], 0);
  assert_int_equal(lengths[2], (int)sizeof big);
  assert_memory_equal(values[2], big, sizeof big);
  assert_int_equal(lengths[3], 1);
  assert_int_equal(values[3][0], 'x');
  assert_ptr_equal(values[3], values[2] + sizeof big);
  assert_int_equal(lengths[BT_PG_MAX_PARAMS - 1], 2);
  assert_int_equal((uint8_t)values[BT_PG_MAX_PARAMS - 1][1], BT_PG_MAX_PARAMS - 1);
  bt_pgp_close(&p);

  /* an empty statement */
  bt_pgp_init(&p);
  bt_pgp_vectors(&p, values, lengths, formats);
  assert_int_equal(p.n, 0);
  bt_pgp_close(&p);
}

/* --- decoders ----------------------------------------------------------------- */

/* A one-row binary result with the given column types. */
static PGresult *make_result(int ncols, const Oid *types) {
  PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  assert_non_null(r);
  PGresAttDesc d[16];
  char names[16][12]; /* room for any int: GCC checks the format, not the bound */
  assert_true(ncols <= 16);
  for (int i = 0; i < ncols; i++) {
    snprintf(names[i], sizeof names[i], "c%d", i);
    memset(&d[i], 0, sizeof d[i]);
    d[i].name = names[i];
    d[i].format = 1;
    d[i].typid = types[i];
    d[i].typlen = -1;
    d[i].atttypmod = -1;
  }
  assert_int_equal(PQsetResultAttrs(r, ncols, d), 1);
  return r;
}

static void set(PGresult *r, int row, int col, const void *v, int len) {
  assert_int_equal(PQsetvalue(r, row, col, (char *)v, len), 1);
}

static void be64(uint8_t b[8], int64_t v) {
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

static void test_pgwire_decode_integers(void **state) {
  (void)state;
  const Oid t[] = {BT_PG_OID_INT8, BT_PG_OID_INT4, BT_PG_OID_INT2, BT_PG_OID_INT8,
                   BT_PG_OID_BOOL, BT_PG_OID_BOOL};
  PGresult *r = make_result(6, t);
  uint8_t b8[8];
  /* row 0: positive values of each width */
  be64(b8, 0x0102030405060708LL);
  set(r, 0, 0, b8, 8);
  set(r, 0, 1, "\x01\x02\x03\x04", 4);
  set(r, 0, 2, "\x01\x02", 2);
  set(r, 0, 3, NULL, -1);
  set(r, 0, 4, "\x01", 1);
  set(r, 0, 5, "\x00", 1);
  /* row 1: negatives are sign-extended */
  be64(b8, INT64_MIN);
  set(r, 1, 0, b8, 8);
  set(r, 1, 1, "\xff\xff\xff\xfe", 4);
  set(r, 1, 2, "\x80\x00", 2);
  set(r, 1, 3, "\x01\x02\x03", 3); /* a width that is no integer */
  set(r, 1, 4, NULL, -1);
  set(r, 1, 5, "\x01\x01", 2);
  assert_int_equal(PQntuples(r), 2);

  assert_int_equal(bt_pgr_i64(r, 0, 0), 0x0102030405060708LL);
  assert_int_equal(bt_pgr_i64(r, 0, 1), 0x01020304);
  assert_int_equal(bt_pgr_i64(r, 0, 2), 0x0102);
  assert_true(bt_pgr_null(r, 0, 3));
  assert_false(bt_pgr_null(r, 0, 0));
  assert_int_equal(bt_pgr_i64(r, 0, 3), 0); /* NULL → 0 */
  assert_true(bt_pgr_bool(r, 0, 4));
  assert_false(bt_pgr_bool(r, 0, 5));

  assert_true(bt_pgr_i64(r, 1, 0) == INT64_MIN);
  assert_true(bt_pgr_i64(r, 1, 1) == -2);
  assert_true(bt_pgr_i64(r, 1, 2) == INT16_MIN);
  assert_int_equal(bt_pgr_i64(r, 1, 3), 0);
  assert_false(bt_pgr_bool(r, 1, 4)); /* NULL */
  assert_false(bt_pgr_bool(r, 1, 5)); /* wrong width */
  PQclear(r);
}

static void test_pgwire_decode_float8_text_bytea(void **state) {
  (void)state;
  const Oid t[] = {BT_PG_OID_FLOAT8, BT_PG_OID_FLOAT8, BT_PG_OID_FLOAT8, BT_PG_OID_TEXT,
                   BT_PG_OID_TEXT, BT_PG_OID_BYTEA, BT_PG_OID_BYTEA};
  PGresult *r = make_result(7, t);
  set(r, 0, 0, "\xc0\x04\x00\x00\x00\x00\x00\x00", 8); /* -2.5 */
  set(r, 0, 1, NULL, -1);
  set(r, 0, 2, "\x3f\xf0\x00\x00", 4);  /* a float4 is not a float8 */
  set(r, 0, 3, "h\xc3\xa9llo", 6);
  set(r, 0, 4, NULL, -1);
  set(r, 0, 5, "\x00\x01\x00\xff", 4);
  set(r, 0, 6, NULL, -1);

  assert_true(bt_pgr_f64(r, 0, 0) == -2.5);
  assert_true(bt_pgr_f64(r, 0, 1) == -1.0);
  assert_true(bt_pgr_f64(r, 0, 2) == -1.0);
  assert_string_equal(bt_pgr_text(r, 0, 3), "h\xc3\xa9llo");
  assert_null(bt_pgr_text(r, 0, 4));
  size_t len = 99;
  const uint8_t *b = bt_pgr_bytes(r, 0, 5, &len);
  assert_int_equal(len, 4);
  assert_memory_equal(b, "\x00\x01\x00\xff", 4);
  assert_null(bt_pgr_bytes(r, 0, 6, &len));
  assert_int_equal(len, 0);

  /* round trip of an encoded float8 through a result */
  bt_pgparams_t p;
  bt_pgp_init(&p);
  bt_pgp_f64(&p, 0.1);
  set(r, 1, 0, p.buf, p.lens[0]);
  assert_true(bt_pgr_f64(r, 1, 0) == 0.1);
  bt_pgp_close(&p);
  PQclear(r);
}

static void test_pgwire_decode_timestamptz(void **state) {
  (void)state;
  static const struct {
    int64_t us;
    int64_t want_ms;
  } cases[] = {
      {0, PG_EPOCH_MS},
      {1, PG_EPOCH_MS},             /* floor */
      {999, PG_EPOCH_MS},
      {1000, PG_EPOCH_MS + 1},
      {1999, PG_EPOCH_MS + 1},
      {-1, PG_EPOCH_MS - 1},        /* before 2000: floor, not truncation */
      {-999, PG_EPOCH_MS - 1},
      {-1000, PG_EPOCH_MS - 1},
      {-1001, PG_EPOCH_MS - 2},
      {-1000000, PG_EPOCH_MS - 1000},
      {848656800000000LL, 1795341600000LL},   /* 2026-11-22T10:00:00Z */
      {-301231504000000LL, 645453296000LL},   /* 1990-06-15T12:34:56Z */
      {-946684800000000LL, 0},                /* 1970-01-01 */
      {-946684800000001LL, -1},               /* just before 1970 */
      {INT64_MAX, INT64_MAX}, /* 'infinity' stays the far end, like -infinity */
  };
  const Oid t[] = {BT_PG_OID_TIMESTAMPTZ};
  PGresult *r = make_result(1, t);
  int n = (int)(sizeof cases / sizeof cases[0]);
  for (int i = 0; i < n; i++) {
    uint8_t b[8];
    be64(b, cases[i].us);
    set(r, i, 0, b, 8);
  }
  set(r, n, 0, NULL, -1);
  set(r, n + 1, 0, "\0\0\0\0", 4);
  for (int i = 0; i < n; i++) {
    int64_t got = bt_pgr_ts(r, i, 0);
    if (got != cases[i].want_ms)
      fail_msg("%lld us: got %lld ms, want %lld", (long long)cases[i].us,
               (long long)got, (long long)cases[i].want_ms);
  }
  assert_int_equal(bt_pgr_ts(r, n, 0), 0);     /* NULL → 0 */
  assert_int_equal(bt_pgr_ts(r, n + 1, 0), 0); /* wrong width → 0 */

  /* encoder and decoder agree on millisecond instants on both sides of 2000 */
  static const int64_t ats[] = {1, PG_EPOCH_MS - 1, PG_EPOCH_MS + 1, 1795341600123LL,
                                645453296789LL, 253402300799999LL};
  PGresult *r2 = make_result(1, t);
  for (size_t i = 0; i < sizeof ats / sizeof ats[0]; i++) {
    bt_pgparams_t p;
    bt_pgp_init(&p);
    bt_pgp_ts(&p, ats[i]);
    set(r2, (int)i, 0, p.buf, p.lens[0]);
    bt_pgp_close(&p);
    assert_true(bt_pgr_ts(r2, (int)i, 0) == ats[i]);
  }
  PQclear(r2);
  PQclear(r);
}

/* Runs fn in a child with its address space capped a little above what it uses
 * now; returns true when the child exited 0. A child that aborts (malloc of what
 * a corrupt header claims, a UBSan report) counts as a failure, not a crash of
 * the test program. */
static bool isolated(int (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    long vm_kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f != NULL) {
      char line[256];
      while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &vm_kb) == 1)
          break;
      fclose(f);
    }
    if (vm_kb > 0) {
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = (rlim_t)vm_kb * 1024 + (rlim_t)256 * 1024 * 1024;
      setrlimit(RLIMIT_AS, &rl);
    }
    _exit(fn());
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (WIFSIGNALED(st))
    print_message("child killed by signal %d\n", WTERMSIG(st));
  else if (WEXITSTATUS(st) != 0)
    print_message("child exited %d\n", WEXITSTATUS(st));
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int ts_minus_infinity(void) {
  const Oid t[] = {BT_PG_OID_TIMESTAMPTZ};
  PGresult *r = make_result(1, t);
  uint8_t b[8];
  be64(b, INT64_MIN); /* PostgreSQL's '-infinity' */
  set(r, 0, 0, b, 8);
  int64_t got = bt_pgr_ts(r, 0, 0);
  PQclear(r);
  if (got >= 0)
    print_message("-infinity decoded as %lld ms\n", (long long)got);
  return got < 0 ? 0 : 1; /* the far past, never the far future */
}

/* '-infinity'::timestamptz is INT64_MIN microseconds; the floor division must
 * not negate it (signed overflow: UB, and the result flips to the far future). */
static void test_pgwire_decode_timestamptz_minus_infinity(void **state) {
  (void)state;
  assert_true(isolated(ts_minus_infinity));
}

/* --- text[] ---------------------------------------------------------------------- */

static PGresult *text_array_result(void) {
  const Oid t[] = {1009 /* text[] */};
  return make_result(1, t);
}

/* Encodes a text[] with our encoder (NULL entries become NULL elements). */
static uint8_t *encode_text_array(const char *const *v, size_t n, int *len) {
  bt_pgparams_t p;
  bt_pgp_init(&p);
  bt_pgarr_t a;
  bt_pga_begin(&a, &p, BT_PG_OID_TEXT);
  for (size_t i = 0; i < n; i++) {
    if (v[i] == NULL)
      bt_pga_null(&a);
    else
      bt_pga_bytes(&a, v[i], strlen(v[i]));
  }
  bt_pga_end(&a);
  *len = p.lens[0];
  uint8_t *out = test_malloc((size_t)*len);
  memcpy(out, p.buf, (size_t)*len);
  bt_pgp_close(&p);
  return out;
}

static void test_pgwire_decode_text_array(void **state) {
  (void)state;
  PGresult *r = text_array_result();
  const char *in[] = {"eu-west", "", "h\xc3\xa9llo", NULL, "x"};
  int len;
  uint8_t *enc = encode_text_array(in, 5, &len);
  set(r, 0, 0, enc, len);
  test_free(enc);
  enc = encode_text_array(NULL, 0, &len); /* empty: ndim 0 */
  assert_int_equal(len, 12);
  set(r, 1, 0, enc, len);
  test_free(enc);
  set(r, 2, 0, NULL, -1);

  size_t n = 99;
  const char **v = bt_pgr_text_array(r, 0, 0, &n);
  assert_non_null(v);
  assert_int_equal(n, 5);
  assert_string_equal(v[0], "eu-west");
  assert_string_equal(v[1], "");
  assert_string_equal(v[2], "h\xc3\xa9llo");
  assert_string_equal(v[3], ""); /* a NULL element reads as empty */
  assert_string_equal(v[4], "x");
  assert_null(v[5]);
  free(v);

  n = 99;
  v = bt_pgr_text_array(r, 1, 0, &n);
  assert_non_null(v); /* an empty array is a vector, not SQL NULL */
  assert_int_equal(n, 0);
  assert_null(v[0]);
  free(v);

  n = 99;
  assert_null(bt_pgr_text_array(r, 2, 0, &n));
  assert_int_equal(n, 0);
  PQclear(r);
}

static void expect_malformed(const void *bytes, int len, const char *what) {
  PGresult *r = text_array_result();
  set(r, 0, 0, bytes, len);
  size_t n = 99;
  const char **v = bt_pgr_text_array(r, 0, 0, &n);
  if (v != NULL) {
    free(v);
    PQclear(r);
    fail_msg("malformed array accepted: %s", what);
  }
  assert_int_equal(n, 0);
  PQclear(r);
}

static void test_pgwire_decode_text_array_malformed(void **state) {
  (void)state;
  /* every strict prefix of a valid array is refused */
  const char *in[] = {"ab", NULL, "cde"};
  int len;
  uint8_t *enc = encode_text_array(in, 3, &len);
  for (int k = 0; k < len; k++) {
    char what[32];
    snprintf(what, sizeof what, "prefix of %d bytes", k);
    expect_malformed(enc, k, what);
  }

  /* two dimensions */
  uint8_t two[40];
  memcpy(two, enc, 20);
  two[3] = 2;
  expect_malformed(two, 20, "ndim 2");
  /* ndim -1 */
  memcpy(two, enc, 20);
  memset(two, 0xff, 4);
  expect_malformed(two, 20, "ndim -1");

  /* count larger than the elements present */
  uint8_t more[64];
  memcpy(more, enc, (size_t)len);
  more[15] = 4;
  expect_malformed(more, len, "count 4 with 3 elements");

  /* an element length running past the end */
  memcpy(more, enc, (size_t)len);
  more[20 + 3] = 0x7f; /* first element claims 127 bytes */
  expect_malformed(more, len, "element past the end");
  memcpy(more, enc, (size_t)len);
  more[20] = 0x7f; /* ... or 2 GiB */
  expect_malformed(more, len, "element of 2 GiB");
  memcpy(more, enc, (size_t)len);
  memset(more + 20, 0xff, 3);
  more[23] = 0xfe; /* -2: neither NULL nor a length */
  expect_malformed(more, len, "element length -2");
  test_free(enc);
}

static int huge_count(uint32_t count) {
  /* ndim 1, no nulls, text, count as given, lower bound 1, then one element */
  uint8_t b[28] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 0, 0, 0, 0, 1,
                   0, 0, 0, 1, 'a', 0, 0, 0};
  b[12] = (uint8_t)(count >> 24);
  b[13] = (uint8_t)(count >> 16);
  b[14] = (uint8_t)(count >> 8);
  b[15] = (uint8_t)count;
  PGresult *r = text_array_result();
  set(r, 0, 0, b, 25);
  size_t n = 99;
  const char **v = bt_pgr_text_array(r, 0, 0, &n);
  int ok = v == NULL && n == 0;
  free(v);
  PQclear(r);
  return ok ? 0 : 1;
}

static int huge_count_max(void) { return huge_count(0xffffffffu); }
static int huge_count_256m(void) { return huge_count(0x10000000u); }

/* A 25-byte array claiming 4 billion (or 256 million) elements must be refused
 * from its length alone, before allocating a vector for the claimed count (32
 * GiB / 2 GiB). Each element takes at least 4 bytes, so count <= (len-20)/4. */
static void test_pgwire_decode_text_array_huge_count(void **state) {
  (void)state;
  bool max_ok = isolated(huge_count_max);
  bool m256_ok = isolated(huge_count_256m);
  assert_true(max_ok);
  assert_true(m256_ok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pgwire_encode_integers),
      cmocka_unit_test(test_pgwire_encode_float8),
      cmocka_unit_test(test_pgwire_encode_timestamptz),
      cmocka_unit_test(test_pgwire_encode_text_bytea_null),
      cmocka_unit_test(test_pgwire_encode_arrays),
      cmocka_unit_test(test_pgwire_encode_large_array_patched),
      cmocka_unit_test(test_pgwire_concat_arrays),
      cmocka_unit_test(test_pgwire_vectors),
      cmocka_unit_test(test_pgwire_decode_integers),
      cmocka_unit_test(test_pgwire_decode_float8_text_bytea),
      cmocka_unit_test(test_pgwire_decode_timestamptz),
      cmocka_unit_test(test_pgwire_decode_timestamptz_minus_infinity),
      cmocka_unit_test(test_pgwire_decode_text_array),
      cmocka_unit_test(test_pgwire_decode_text_array_malformed),
      cmocka_unit_test(test_pgwire_decode_text_array_huge_count),
  };
  return cmocka_run_group_tests_name("pgwire", tests, NULL, NULL);
}

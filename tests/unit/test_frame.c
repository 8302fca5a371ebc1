/*
 * proto/bt_frame: the control socket's length-prefixed frames. The header
 * round trip, an incremental reader fed byte by byte and in odd chunks, two
 * frames in one buffer (the reader takes exactly one), the empty body, and a
 * length over the limit refused before anything is allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_frame.h"

#include <stdlib.h>
#include <string.h>

static void test_frame_header_round_trip(void **state) {
  (void)state;
  static const uint32_t lens[] = {0, 1, 255, 256, 65535, 65536, 0x01020304u,
                                  0x7fffffffu, 0x80000000u, 0xffffffffu};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    uint8_t h[BT_FRAME_HEADER];
    bt_frame_put_header(h, lens[i]);
    assert_int_equal(bt_frame_get_length(h), lens[i]);
  }
  uint8_t h[BT_FRAME_HEADER];
  bt_frame_put_header(h, 0x01020304u);
  static const uint8_t want[] = {1, 2, 3, 4}; /* big endian */
  assert_memory_equal(h, want, 4);
}

/* A frame (header + body) of body_len bytes with a recognisable pattern. */
static uint8_t *make_frame(uint32_t body_len, uint8_t seed) {
  uint8_t *f = test_malloc(BT_FRAME_HEADER + body_len);
  bt_frame_put_header(f, body_len);
  for (uint32_t i = 0; i < body_len; i++)
    f[BT_FRAME_HEADER + i] = (uint8_t)(seed + i * 7);
  return f;
}

/* Feeds buf in chunks of the given sizes (cycled); returns the body once done. */
static void feed_in_chunks(const uint8_t *buf, size_t len, const size_t *chunks,
                           size_t nchunks, uint32_t want_len) {
  bt_frame_reader_t r;
  bt_frame_reader_init(&r, 1 << 20);
  size_t off = 0, ci = 0;
  int done = 0;
  while (off < len) {
    size_t n = chunks[ci++ % nchunks];
    if (n > len - off)
      n = len - off;
    long used = bt_frame_reader_feed(&r, buf + off, n, &done);
    assert_int_equal(used, (long)n); /* one frame only: everything is taken */
    off += n;
    if (off < len)
      assert_false(done);
  }
  assert_true(done);
  uint32_t got_len = 0;
  uint8_t *body = bt_frame_reader_take(&r, &got_len);
  assert_non_null(body);
  assert_int_equal(got_len, want_len);
  assert_memory_equal(body, buf + BT_FRAME_HEADER, want_len);
  free(body);
  bt_frame_reader_close(&r);
}

static void test_frame_feed_byte_by_byte(void **state) {
  (void)state;
  uint8_t *f = make_frame(1000, 3);
  static const size_t one[] = {1};
  feed_in_chunks(f, BT_FRAME_HEADER + 1000, one, 1, 1000);
  test_free(f);
}

static void test_frame_feed_odd_chunks(void **state) {
  (void)state;
  static const size_t patterns[][4] = {
      {3, 5, 7, 11}, {2, 2, 2, 2}, {4, 1000, 1, 1}, {5, 13, 1, 997}, {1004, 1, 1, 1},
  };
  uint8_t *f = make_frame(1000, 9);
  for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++)
    feed_in_chunks(f, BT_FRAME_HEADER + 1000, patterns[p], 4, 1000);
  test_free(f);
}

static void test_frame_two_frames_one_buffer(void **state) {
  (void)state;
  /* frame A: 10 bytes; frame B: 3 bytes; both in one read */
  uint8_t buf[BT_FRAME_HEADER * 2 + 13];
  bt_frame_put_header(buf, 10);
  memset(buf + 4, 'a', 10);
  bt_frame_put_header(buf + 14, 3);
  memcpy(buf + 18, "bcd", 3);

  bt_frame_reader_t r;
  bt_frame_reader_init(&r, 64);
  int done = 0;
  long used = bt_frame_reader_feed(&r, buf, sizeof buf, &done);
  assert_int_equal(used, 14); /* stops after the first frame */
  assert_true(done);

  /* feeding again before take consumes nothing and stays done */
  long again = bt_frame_reader_feed(&r, buf + used, sizeof buf - (size_t)used, &done);
  assert_int_equal(again, 0);
  assert_true(done);

  uint32_t len;
  uint8_t *a = bt_frame_reader_take(&r, &len);
  assert_int_equal(len, 10);
  assert_memory_equal(a, "aaaaaaaaaa", 10);
  free(a);

  long used2 = bt_frame_reader_feed(&r, buf + used, sizeof buf - (size_t)used, &done);
  assert_int_equal(used2, 7);
  assert_true(done);
  uint8_t *b = bt_frame_reader_take(&r, &len);
  assert_int_equal(len, 3);
  assert_memory_equal(b, "bcd", 3);
  free(b);
  bt_frame_reader_close(&r);
}

static void test_frame_zero_length_body(void **state) {
  (void)state;
  uint8_t buf[BT_FRAME_HEADER + 5];
  bt_frame_put_header(buf, 0);
  bt_frame_put_header(buf + 4, 1);
  buf[8] = 'x';
  bt_frame_reader_t r;
  bt_frame_reader_init(&r, 16);
  int done = 0;
  long used = bt_frame_reader_feed(&r, buf, sizeof buf, &done);
  assert_int_equal(used, 4);
  assert_true(done);
  uint32_t len = 99;
  uint8_t *body = bt_frame_reader_take(&r, &len);
  assert_int_equal(len, 0);
  assert_non_null(body); /* a distinct allocation, even when empty */
  free(body);

  /* then a 1-byte frame; and an empty feed does nothing */
  assert_int_equal(bt_frame_reader_feed(&r, buf + 4, 0, &done), 0);
  assert_false(done);
  assert_int_equal(bt_frame_reader_feed(&r, buf + 4, 5, &done), 5);
  assert_true(done);
  body = bt_frame_reader_take(&r, &len);
  assert_int_equal(len, 1);
  assert_int_equal(body[0], 'x');
  free(body);
  bt_frame_reader_close(&r);
}

/* The announced length is checked as soon as the header is complete, before a
 * body buffer exists; a limit of exactly the length is still accepted. */
static void test_frame_over_limit_refused_before_alloc(void **state) {
  (void)state;
  bt_frame_reader_t r;
  bt_frame_reader_init(&r, 1000);
  uint8_t h[BT_FRAME_HEADER];
  int done = 1;

  bt_frame_put_header(h, 1001);
  assert_int_equal(bt_frame_reader_feed(&r, h, 3, &done), 3);
  assert_false(done);
  assert_int_equal(bt_frame_reader_feed(&r, h + 3, 1, &done), -1);
  assert_false(done);
  assert_null(r.body);
  /* it stays refused */
  assert_int_equal(bt_frame_reader_feed(&r, (const uint8_t *)"zz", 2, &done), -1);
  assert_null(r.body);
  bt_frame_reader_close(&r);

  /* 4 GiB - 1 announced: refused, nothing allocated (ASan would see 4 GiB) */
  bt_frame_reader_init(&r, 1000);
  bt_frame_put_header(h, 0xffffffffu);
  assert_int_equal(bt_frame_reader_feed(&r, h, 4, &done), -1);
  assert_null(r.body);
  bt_frame_reader_close(&r);

  /* exactly the limit is fine */
  bt_frame_reader_init(&r, 1000);
  uint8_t *f = make_frame(1000, 1);
  assert_int_equal(bt_frame_reader_feed(&r, f, BT_FRAME_HEADER + 1000, &done),
                   BT_FRAME_HEADER + 1000);
  assert_true(done);
  test_free(f);
  bt_frame_reader_close(&r); /* frees an untaken body */
  assert_null(r.body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_header_round_trip),
      cmocka_unit_test(test_frame_feed_byte_by_byte),
      cmocka_unit_test(test_frame_feed_odd_chunks),
      cmocka_unit_test(test_frame_two_frames_one_buffer),
      cmocka_unit_test(test_frame_zero_length_body),
      cmocka_unit_test(test_frame_over_limit_refused_before_alloc),
  };
  return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}

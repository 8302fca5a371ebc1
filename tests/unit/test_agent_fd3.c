/* The handler fd-3 line protocol (worker/agentd/fd3.c): parser and splitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "fd3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *line, uint8_t *buf, size_t cap, bt_fd3_msg_t *m,
                 const char **why) {
  return bt_fd3_parse_line(line, strlen(line), buf, cap, m, why);
}

static void test_agent_fd3_progress(void **state) {
  (void)state;
  uint8_t buf[16];
  bt_fd3_msg_t m;
  const char *why;
  assert_int_equal(parse("progress 0", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.kind, BT_FD3_PROGRESS);
  assert_int_equal(m.percent, 0);
  assert_int_equal(parse("progress 100", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.percent, 100);
  assert_int_equal(parse("progress\t 42 \r", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.percent, 42);
  assert_int_equal(parse("progress 007", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.percent, 7);
}

static void test_agent_fd3_invalid(void **state) {
  (void)state;
  uint8_t buf[16];
  bt_fd3_msg_t m;
  const char *why;
  const char *bad[] = {"",
                       "progress",
                       "progress ",
                       "progress 101",
                       "progress -1",
                       "progress 5x",
                       "progress 99999999999999",
                       "Progress 5",
                       "progress5",
                       "progres 5",
                       "hello world",
                       "checkpoint",
                       "checkpoint ",
                       " progress 5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    why = NULL;
    assert_int_equal(parse(bad[i], buf, sizeof buf, &m, &why), BT_EINVAL);
    assert_non_null(why);
  }
  /* an embedded NUL is not silently cut */
  assert_int_equal(bt_fd3_parse_line("progress 5\0x", 12, buf, sizeof buf, &m, &why),
                   BT_EINVAL);
  assert_string_equal(why, "NUL byte in line");
}

static void test_agent_fd3_checkpoint(void **state) {
  (void)state;
  uint8_t buf[16];
  bt_fd3_msg_t m;
  const char *why;
  assert_int_equal(parse("checkpoint aGVsbG8=", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.kind, BT_FD3_CHECKPOINT);
  assert_int_equal(m.len, 5);
  assert_memory_equal(buf, "hello", 5);
  /* padding optional */
  assert_int_equal(parse("checkpoint aGVsbG8", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.len, 5);
  /* binary bytes and '+' '/' of the standard alphabet */
  assert_int_equal(parse("checkpoint +/8A", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.len, 3);
  assert_int_equal(buf[0], 0xfb);
  assert_int_equal(buf[1], 0xff);
  assert_int_equal(buf[2], 0x00);
}

static void test_agent_fd3_bad_base64(void **state) {
  (void)state;
  uint8_t buf[16];
  bt_fd3_msg_t m;
  const char *why;
  assert_int_equal(parse("checkpoint aGVs*G8=", buf, sizeof buf, &m, &why), BT_EINVAL);
  assert_string_equal(why, "invalid base64");
  assert_int_equal(parse("checkpoint aGVsbG8=x", buf, sizeof buf, &m, &why), BT_EINVAL);
  assert_int_equal(parse("checkpoint -_-_", buf, sizeof buf, &m, &why), BT_EINVAL);
  assert_int_equal(parse("checkpoint a", buf, sizeof buf, &m, &why), BT_EINVAL);
  assert_int_equal(parse("checkpoint aGVs bG8=", buf, sizeof buf, &m, &why), BT_EINVAL);
  /* 24 bytes do not fit in a 16-byte buffer */
  assert_int_equal(
      parse("checkpoint MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz", buf, sizeof buf, &m, &why),
      BT_EINVAL);
  assert_string_equal(why, "checkpoint too large");
  /* exactly 16 bytes do */
  assert_int_equal(
      parse("checkpoint MDEyMzQ1Njc4OTAxMjM0NQ==", buf, sizeof buf, &m, &why), 0);
  assert_int_equal(m.len, 16);
}

typedef struct {
  int n, dropped;
  char lines[8][64];
} collect_t;

static void collect(void *user, const char *line, size_t len) {
  collect_t *c = user;
  if (line == NULL) {
    c->dropped++;
    return;
  }
  snprintf(c->lines[c->n++ % 8], 64, "%.*s", (int)len, line);
}

static void test_agent_fd3_lines(void **state) {
  (void)state;
  bt_fd3_lines_t l;
  collect_t c = {0};
  bt_fd3_lines_init(&l, 16);
  const char *in = "progress 1\nprogr";
  bt_fd3_lines_feed(&l, in, strlen(in), collect, &c);
  assert_int_equal(c.n, 1);
  assert_string_equal(c.lines[0], "progress 1");
  bt_fd3_lines_feed(&l, "ess 2\n\n", 7, collect, &c);
  assert_int_equal(c.n, 3);
  assert_string_equal(c.lines[1], "progress 2");
  assert_string_equal(c.lines[2], "");
  /* a long line is dropped as one unit, whatever the chunking */
  bt_fd3_lines_feed(&l, "0123456789", 10, collect, &c);
  bt_fd3_lines_feed(&l, "0123456789", 10, collect, &c);
  bt_fd3_lines_feed(&l, "0123456789\nok\n", 14, collect, &c);
  assert_int_equal(c.dropped, 1);
  assert_int_equal(c.n, 4);
  assert_string_equal(c.lines[3], "ok");
  /* the last line without a newline counts at EOF */
  bt_fd3_lines_feed(&l, "tail", 4, collect, &c);
  assert_int_equal(c.n, 4);
  bt_fd3_lines_finish(&l, collect, &c);
  assert_int_equal(c.n, 5);
  assert_string_equal(c.lines[4], "tail");
  bt_fd3_lines_close(&l);
}

static void test_agent_fd3_long_checkpoint_line(void **state) {
  (void)state;
  /* max_line is large enough for the largest checkpoint the buffer takes */
  size_t cap = 3000;
  size_t max = bt_fd3_max_line(cap);
  char *line = malloc(max + 1);
  uint8_t *buf = malloc(cap);
  bt_fd3_msg_t m;
  const char *why;
  strcpy(line, "checkpoint ");
  size_t n = strlen(line);
  for (size_t i = 0; i < cap / 3 * 4; i++)
    line[n++] = 'A';
  line[n] = '\0';
  assert_true(n <= max);
  assert_int_equal(bt_fd3_parse_line(line, n, buf, cap, &m, &why), 0);
  assert_int_equal(m.len, cap);
  free(line);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agent_fd3_progress),
      cmocka_unit_test(test_agent_fd3_invalid),
      cmocka_unit_test(test_agent_fd3_checkpoint),
      cmocka_unit_test(test_agent_fd3_bad_base64),
      cmocka_unit_test(test_agent_fd3_lines),
      cmocka_unit_test(test_agent_fd3_long_checkpoint_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

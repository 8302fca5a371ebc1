/* batonctl's table renderer (server/batonctl/table.c): column widths, right
 * alignment of numbers, "-" for absent values, no trailing blanks, UTF-8 width
 * and sanitising of control characters. Pure: compares rendered strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "table.h"

#include <stdlib.h>
#include <string.h>

static void expect_render(bt_cli_table_t *t, const char *want) {
  char *got = bt_cli_table_render(t);
  if (strcmp(got, want) != 0)
    fail_msg("rendered:\n%s\nwant:\n%s", got, want);
  free(got);
  bt_cli_table_close(t);
}

static void test_batonctl_table_aligns_columns(void **state) {
  (void)state;
  static const bt_cli_col_t cols[] = {
      {"ID", true}, {"NAME", false}, {"CAPACITY", true}, {"STATE", false}};
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, 4, true);
  bt_cli_table_cell(&t, "1");
  bt_cli_table_cell(&t, "acme");
  bt_cli_table_cell(&t, "10");
  bt_cli_table_cell(&t, "active");
  bt_cli_table_cell(&t, "12");
  bt_cli_table_cell(&t, "zeta-offshore");
  bt_cli_table_cell(&t, "4000");
  bt_cli_table_cell(&t, "failed");
  assert_int_equal(bt_cli_table_rows(&t), 2);
  expect_render(&t, "ID  NAME           CAPACITY  STATE\n"
                    " 1  acme                 10  active\n"
                    "12  zeta-offshore      4000  failed\n");
}

static void test_batonctl_table_absent_values_are_dashes(void **state) {
  (void)state;
  static const bt_cli_col_t cols[] = {
      {"ID", true}, {"VENDOR", false}, {"RATE", true}};
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, 3, true);
  bt_cli_table_cell(&t, "7");
  bt_cli_table_cell(&t, NULL);
  bt_cli_table_cell(&t, "");
  bt_cli_table_cellf(&t, "%d", 8);
  bt_cli_table_cell(&t, "acme");
  /* The last row is short: the missing cell is padded as absent. */
  expect_render(&t, "ID  VENDOR  RATE\n"
                    " 7  -          -\n"
                    " 8  acme       -\n");
}

static void test_batonctl_table_no_trailing_blanks(void **state) {
  (void)state;
  static const bt_cli_col_t cols[] = {{"A", false}, {"LONG_HEADER", false}};
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, 2, true);
  bt_cli_table_cell(&t, "xxxxxx");
  bt_cli_table_cell(&t, "y");
  char *got = bt_cli_table_render(&t);
  for (char *p = strchr(got, '\n'); p != NULL; p = strchr(p + 1, '\n'))
    assert_true(p == got || p[-1] != ' ');
  assert_string_equal(got, "A       LONG_HEADER\nxxxxxx  y\n");
  free(got);
  bt_cli_table_close(&t);
}

static void test_batonctl_table_utf8_width(void **state) {
  (void)state;
  static const bt_cli_col_t cols[] = {{"NAME", false}, {"N", true}};
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, 2, true);
  bt_cli_table_cell(&t, "Zürich"); /* 6 characters, 7 bytes */
  bt_cli_table_cell(&t, "1");
  bt_cli_table_cell(&t, "Bern");
  bt_cli_table_cell(&t, "22");
  expect_render(&t, "NAME     N\n"
                    "Zürich   1\n"
                    "Bern    22\n");
}

static void test_batonctl_table_sanitises_control_chars(void **state) {
  (void)state;
  static const bt_cli_col_t cols[] = {{"NAME", false}, {"X", false}};
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, 2, true);
  bt_cli_table_cell(&t, "evil\n\033[2Jname");
  bt_cli_table_cell(&t, "ok");
  expect_render(&t, "NAME           X\n"
                    "evil??[2Jname  ok\n");
}

static void test_batonctl_table_key_value_without_header(void **state) {
  (void)state;
  static const bt_cli_col_t cols[] = {{"", false}, {"", false}};
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, 2, false);
  bt_cli_table_cell(&t, "id");
  bt_cli_table_cell(&t, "42");
  bt_cli_table_cell(&t, "capability");
  bt_cli_table_cell(&t, "ocr");
  bt_cli_table_cell(&t, "vendor");
  bt_cli_table_cell(&t, NULL);
  expect_render(&t, "id          42\n"
                    "capability  ocr\n"
                    "vendor      -\n");
}

static void test_batonctl_table_empty_prints_header_only(void **state) {
  (void)state;
  static const bt_cli_col_t cols[] = {{"ID", true}, {"NAME", false}};
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, 2, true);
  assert_int_equal(bt_cli_table_rows(&t), 0);
  expect_render(&t, "ID  NAME\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batonctl_table_aligns_columns),
      cmocka_unit_test(test_batonctl_table_absent_values_are_dashes),
      cmocka_unit_test(test_batonctl_table_no_trailing_blanks),
      cmocka_unit_test(test_batonctl_table_utf8_width),
      cmocka_unit_test(test_batonctl_table_sanitises_control_chars),
      cmocka_unit_test(test_batonctl_table_key_value_without_header),
      cmocka_unit_test(test_batonctl_table_empty_prints_header_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

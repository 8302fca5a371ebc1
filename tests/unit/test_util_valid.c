/*
 * server/util/bt_valid: names, UTF-8, free text and bt_sanitize_text. Inputs
 * that carry explicit lengths are tables of (bytes, length) so embedded NULs and
 * truncated sequences are exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_valid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A string of n copies of c (test_free it). */
static char *repeat(char c, size_t n) {
  char *s = test_malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* --- names ---------------------------------------------------------------- */

static void test_util_valid_name_charset(void **state) {
  (void)state;
  static const char *const good[] = {
      "acme",  "a", "Z", "0", "acme-eu.west_1", "ocr:v2", "team/ocr", "ops@acme",
      "c++",   "A-Z_0.9:/@+",
  };
  for (size_t i = 0; i < NELEM(good); i++)
    if (!bt_valid_name(good[i]))
      fail_msg("name \"%s\" rejected", good[i]);

  static const char *const bad[] = {
      "",      "a b",   " a",    "a ",    "a\tb",  "a\nb",   "a\rb", "a\037b",
      "\x1f",  "a,b",   "a;b",   "a\"b",  "a'b",   "a=b",    "a\\b", "a*b",
      "{a}",   "a|b",   "a#b",   "a%b",   "a$b",   "a!b",    "a~b",  "a`b",
      "a(b)",  "a[b]",  "a<b>",  "a&b",   "a?b",   "\xc3\xa9", "a\x7f", "a\x80",
  };
  for (size_t i = 0; i < NELEM(bad); i++)
    if (bt_valid_name(bad[i]))
      fail_msg("name %zu accepted", i);
  assert_false(bt_valid_name(NULL));
}

static void test_util_valid_name_length(void **state) {
  (void)state;
  char *s128 = repeat('a', BT_NAME_MAX);
  char *s129 = repeat('a', BT_NAME_MAX + 1);
  char *s4k = repeat('b', 4096);
  assert_true(bt_valid_name(s128));
  assert_false(bt_valid_name(s129));
  assert_false(bt_valid_name(s4k));
  /* A bad character after the limit is not what fails it: the length is. */
  s129[BT_NAME_MAX] = ' ';
  assert_false(bt_valid_name(s129));
  test_free(s128);
  test_free(s129);
  test_free(s4k);
}

/* A C string ends at its first NUL, so a NUL cannot be part of a name: what
 * protobuf-c truncates at NUL is validated as the truncated string. */
static void test_util_valid_name_nul_ends_it(void **state) {
  (void)state;
  static const char with_nul[] = "acme\0 evil";
  assert_true(bt_valid_name(with_nul));
  assert_int_equal(strlen(with_nul), 4);
  static const char only_nul[] = "\0acme";
  assert_false(bt_valid_name(only_nul));
}

/* --- UTF-8 ---------------------------------------------------------------- */

typedef struct {
  const char *s;
  size_t len;
  const char *what;
} bytes_case_t;

#define B(lit, what) {lit, sizeof(lit) - 1, what}

static void test_util_valid_utf8_accepts(void **state) {
  (void)state;
  static const bytes_case_t good[] = {
      B("", "empty"),
      B("abc", "ascii"),
      B("\x01\x1f\x7f", "ascii controls are valid UTF-8"),
      B("\xc2\x80", "U+0080"),
      B("\xdf\xbf", "U+07FF"),
      B("\xc3\xa9", "e acute"),
      B("\xe0\xa0\x80", "U+0800"),
      B("\xe2\x82\xac", "euro"),
      B("\xed\x9f\xbf", "U+D7FF, below the surrogates"),
      B("\xee\x80\x80", "U+E000, above the surrogates"),
      B("\xef\xbf\xbf", "U+FFFF"),
      B("\xf0\x90\x80\x80", "U+10000"),
      B("\xf0\x9d\x84\x9e", "G clef"),
      B("\xf4\x8f\xbf\xbf", "U+10FFFF"),
      B("a\xc3\xa9z\xe2\x82\xac\xf0\x9d\x84\x9e", "mixed"),
  };
  for (size_t i = 0; i < NELEM(good); i++)
    if (!bt_valid_utf8(good[i].s, good[i].len))
      fail_msg("valid UTF-8 rejected: %s", good[i].what);
}

static void test_util_valid_utf8_rejects(void **state) {
  (void)state;
  static const bytes_case_t bad[] = {
      B("\0", "NUL"),
      B("a\0b", "embedded NUL"),
      B("\xc0\x80", "overlong NUL"),
      B("\xc0\xaf", "overlong /"),
      B("\xc1\xbf", "overlong U+007F"),
      B("\xe0\x80\x80", "overlong 3-byte NUL"),
      B("\xe0\x9f\xbf", "overlong U+07FF"),
      B("\xf0\x80\x80\x80", "overlong 4-byte NUL"),
      B("\xf0\x8f\xbf\xbf", "overlong U+FFFF"),
      B("\xed\xa0\x80", "surrogate U+D800"),
      B("\xed\xbf\xbf", "surrogate U+DFFF"),
      B("\xed\xa0\xbd\xed\xb2\xa9", "CESU-8 surrogate pair"),
      B("\xf4\x90\x80\x80", "U+110000"),
      B("\xf5\x80\x80\x80", "lead F5"),
      B("\xf7\xbf\xbf\xbf", "U+1FFFFF"),
      B("\xf8\x88\x80\x80\x80", "5-byte form"),
      B("\xfc\x84\x80\x80\x80\x80", "6-byte form"),
      B("\xfe", "FE"),
      B("\xff", "FF"),
      B("\x80", "lone continuation"),
      B("\xbf", "lone continuation BF"),
      B("a\x80z", "continuation inside ascii"),
      B("\xc3", "truncated 2-byte"),
      B("\xe2\x82", "truncated 3-byte"),
      B("\xf0\x9d\x84", "truncated 4-byte"),
      B("ok\xe2", "truncated at the end"),
      B("\xc3\x28", "bad continuation"),
      B("\xe2\x28\xa1", "bad second byte"),
      B("\xe2\x82\x28", "bad third byte"),
      B("\xf0\x9d\x84\x28", "bad fourth byte"),
      B("\xc3\xc3\xa9", "lead after lead"),
  };
  for (size_t i = 0; i < NELEM(bad); i++)
    if (bt_valid_utf8(bad[i].s, bad[i].len))
      fail_msg("invalid UTF-8 accepted: %s", bad[i].what);
}

/* The length bounds the scan: a sequence cut by len is invalid even when the
 * bytes after len would complete it. */
static void test_util_valid_utf8_respects_len(void **state) {
  (void)state;
  const char *euro = "\xe2\x82\xac";
  assert_true(bt_valid_utf8(euro, 3));
  assert_false(bt_valid_utf8(euro, 2));
  assert_false(bt_valid_utf8(euro, 1));
  assert_true(bt_valid_utf8(euro, 0));
  /* exact-length heap buffers so ASan catches any read past len */
  for (size_t n = 1; n <= 3; n++) {
    char *p = test_malloc(n);
    memcpy(p, euro, n);
    assert_int_equal(bt_valid_utf8(p, n), n == 3);
    test_free(p);
  }
}

/* --- bt_valid_text ---------------------------------------------------------- */

static void test_util_valid_text(void **state) {
  (void)state;
  assert_false(bt_valid_text(NULL, 10));
  assert_true(bt_valid_text("", 10));
  assert_true(bt_valid_text("", 0));
  assert_true(bt_valid_text("Mon-Fri 08:00-18:00 Europe/Berlin", 128));
  assert_true(bt_valid_text("exit 3: caf\xc3\xa9 \xe2\x82\xac", 128));
  assert_true(bt_valid_text("quotes \" ' = \\ are text", 128));

  static const char *const ctrl[] = {"a\tb", "a\nb", "a\rb", "\x1b[31mred", "a\x1f",
                                     "a\x7f", "\x01", "end\n"};
  for (size_t i = 0; i < NELEM(ctrl); i++)
    if (bt_valid_text(ctrl[i], 128))
      fail_msg("text with a control character accepted (%zu)", i);
  assert_false(bt_valid_text("bad \xff byte", 128));
  assert_false(bt_valid_text("\xed\xa0\x80", 128));

  /* max counts bytes */
  assert_true(bt_valid_text("0123456789", 10));
  assert_false(bt_valid_text("0123456789", 9));
  assert_true(bt_valid_text("\xc3\xa9", 2));
  assert_false(bt_valid_text("\xc3\xa9", 1));
  char *big = repeat('x', BT_TEXT_MAX + 1);
  assert_false(bt_valid_text(big, BT_TEXT_MAX));
  big[BT_TEXT_MAX] = '\0';
  assert_true(bt_valid_text(big, BT_TEXT_MAX));
  test_free(big);
}

/* The header promises "no control characters"; U+0080..U+009F are control
 * characters too (Unicode category Cc: NEL, CSI, ...), not only the ASCII ones. */
static void test_util_valid_text_c1_controls(void **state) {
  (void)state;
  assert_false(bt_valid_text("a\xc2\x85" "b", 128)); /* U+0085 NEL */
  assert_false(bt_valid_text("\xc2\x9b" "31m", 128)); /* U+009B CSI */
  char out[16];
  bt_sanitize_text("a\xc2\x9b" "b", out, sizeof out);
  assert_string_equal(out, "a?b");
}

/* --- bt_sanitize_text --------------------------------------------------------- */

static void test_util_valid_sanitize(void **state) {
  (void)state;
  static const struct {
    const char *in;
    size_t cap;
    const char *want;
  } cases[] = {
      {"abc", 10, "abc"},
      {"", 10, ""},
      {"a\xff" "b", 10, "a?b"},
      {"a\nb\tc\x7f", 10, "a?b?c?"},
      {"\x1b[0m", 10, "?[0m"},
      {"\xc0\x80", 10, "??"},               /* overlong: each byte replaced */
      {"\xed\xa0\x80!", 10, "??" "?!"},    /* surrogate */
      {"ab\xe2\x82", 10, "ab??"},           /* truncated sequence at the end */
      {"caf\xc3\xa9", 10, "caf\xc3\xa9"},   /* valid multibyte kept */
      {"abcdef", 4, "abc"},                 /* truncation */
      {"a\xc3\xa9", 3, "a"},                /* é does not fit: cut before it */
      {"a\xc3\xa9", 4, "a\xc3\xa9"},
      {"\xe2\x82\xac\xe2\x82\xac", 4, "\xe2\x82\xac"},
      {"\xe2\x82\xac\xe2\x82\xac", 6, "\xe2\x82\xac"},
      {"\xe2\x82\xac\xe2\x82\xac", 7, "\xe2\x82\xac\xe2\x82\xac"},
      {"\xf0\x9d\x84\x9e", 4, ""},
      {"abc", 1, ""},                        /* cap 1: only the terminator */
      {"\xff\xff\xff", 3, "??"},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    char out[32];
    memset(out, 'Z', sizeof out);
    assert_ptr_equal(bt_sanitize_text(cases[i].in, out, cases[i].cap), out);
    if (strcmp(out, cases[i].want) != 0)
      fail_msg("sanitize case %zu (cap %zu): got \"%s\"", i, cases[i].cap, out);
    /* nothing written past cap */
    for (size_t k = cases[i].cap; k < sizeof out; k++)
      assert_int_equal(out[k], 'Z');
  }

  char out[8] = "keep";
  assert_ptr_equal(bt_sanitize_text("abc", out, 0), out);
  assert_string_equal(out, "keep"); /* cap 0 writes nothing */
  bt_sanitize_text(NULL, out, sizeof out);
  assert_string_equal(out, "");
}

/* Seeded property: whatever goes in, what comes out is valid text that fits. */
static void test_util_valid_sanitize_property(void **state) {
  (void)state;
  uint32_t x = 12345u;
  for (int round = 0; round < 20000; round++) {
    unsigned char in[40];
    x = x * 1103515245u + 12345u;
    size_t n = (x >> 16) % (sizeof in - 1);
    for (size_t i = 0; i < n; i++) {
      x = x * 1103515245u + 12345u;
      /* favour bytes that matter: controls, leads, continuations */
      unsigned r = (x >> 16) & 0xff;
      in[i] = (unsigned char)(r == 0 ? 'a' : r);
    }
    in[n] = '\0';
    x = x * 1103515245u + 12345u;
    size_t cap = 1 + (x >> 16) % 32;
    char *out = test_malloc(cap);
    bt_sanitize_text((const char *)in, out, cap);
    size_t len = strlen(out);
    if (len >= cap || !bt_valid_text(out, cap - 1))
      fail_msg("round %d: output of %zu bytes (cap %zu) is not valid text", round, len,
               cap);
    test_free(out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util_valid_name_charset),
      cmocka_unit_test(test_util_valid_name_length),
      cmocka_unit_test(test_util_valid_name_nul_ends_it),
      cmocka_unit_test(test_util_valid_utf8_accepts),
      cmocka_unit_test(test_util_valid_utf8_rejects),
      cmocka_unit_test(test_util_valid_utf8_respects_len),
      cmocka_unit_test(test_util_valid_text),
      cmocka_unit_test(test_util_valid_text_c1_controls),
      cmocka_unit_test(test_util_valid_sanitize),
      cmocka_unit_test(test_util_valid_sanitize_property),
  };
  return cmocka_run_group_tests_name("util_valid", tests, NULL, NULL);
}

/*
 * server/util/bt_time: the duration and RFC 3339 syntax of the CLI and the
 * config, bt_parse_when, and the two formatters. Table-driven; expected instants
 * were computed independently (Python's datetime).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "bt_time.h"

#include <stdio.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- durations ------------------------------------------------------------ */

static void test_util_time_duration_accepts(void **state) {
  (void)state;
  static const struct {
    const char *in;
    uint64_t ms;
  } cases[] = {
      {"250ms", 250},
      {"90s", 90000},
      {"15m", 900000},
      {"2h", 7200000},
      {"3d", 259200000},
      {"1h30m", 5400000},
      {"1m30s", 90000},
      {"2h500ms", 7200500},
      {"5", 5000},   /* a bare number is seconds */
      {"0", 0},
      {"0ms", 0},
      {"1ms", 1},     /* "ms" wins over "m" */
      {"36500d", 36500ull * 86400000}, /* 100 years of 365 days */
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    uint64_t ms = 12345;
    int rc = bt_parse_duration(cases[i].in, &ms);
    if (rc != 0 || ms != cases[i].ms)
      fail_msg("duration \"%s\": rc=%d ms=%llu, want %llu", cases[i].in, rc,
               (unsigned long long)ms, (unsigned long long)cases[i].ms);
  }
}

static void test_util_time_duration_rejects(void **state) {
  (void)state;
  static const char *const cases[] = {
      "",
      "-1s",
      "1x",
      "s",
      "ms",
      "h",
      "1.5s",
      " 5s",
      "5s ",
      "5 s",
      "+5s",
      "1h-30m",
      "1e3",
      "99999999999999999999999999",  /* overflows uint64_t */
      "18446744073709551616ms",       /* 2^64 */
      "36601d",                       /* more than 100 years */
      "3200000000000ms",              /* more than 100 years in ms */
      "36600d1h",                     /* the sum goes past 100 years */
      "878400h1h",
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    uint64_t ms = 777;
    int rc = bt_parse_duration(cases[i], &ms);
    if (rc != BT_EINVAL)
      fail_msg("duration \"%s\" accepted (rc=%d ms=%llu)", cases[i], rc,
               (unsigned long long)ms);
    assert_int_equal(ms, 777); /* untouched on error */
  }
  uint64_t ms;
  assert_int_equal(bt_parse_duration(NULL, &ms), BT_EINVAL);
}

/* --- RFC 3339 --------------------------------------------------------------- */

static void test_util_time_rfc3339_accepts(void **state) {
  (void)state;
  static const struct {
    const char *in;
    int64_t at;
  } cases[] = {
      {"2026-11-22T10:00:00Z", 1795341600000LL},
      {"2026-11-22t10:00:00z", 1795341600000LL},
      {"2026-11-22 10:00:00Z", 1795341600000LL},
      {"2026-11-22T10:00:00+00:00", 1795341600000LL},
      {"2026-11-22T10:00:00-00:00", 1795341600000LL},
      {"2026-11-22T10:00:00+05:30", 1795321800000LL}, /* 04:30Z */
      {"2026-11-22T10:00:00-08:00", 1795370400000LL}, /* 18:00Z */
      {"2026-11-22T10:00:00.1Z", 1795341600100LL},
      {"2026-11-22T10:00:00.12Z", 1795341600120LL},
      {"2026-11-22T10:00:00.123Z", 1795341600123LL},
      {"2026-11-22T10:00:00.123456Z", 1795341600123LL}, /* truncated to ms */
      {"2026-11-22T10:00:00.999999999Z", 1795341600999LL},
      {"2026-11-22T10:00:00.5+05:30", 1795321800500LL},
      {"2028-02-29T12:00:00Z", 1835438400000LL}, /* leap day */
      {"2000-02-29T00:00:00Z", 951782400000LL},  /* divisible by 400 */
      {"1970-01-01T00:00:00Z", 0},
      {"1999-12-31T23:59:59Z", 946684799000LL},
      {"9999-12-31T23:59:59Z", 253402300799000LL},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    int64_t at = -42;
    int rc = bt_parse_time(cases[i].in, &at);
    if (rc != 0 || at != cases[i].at)
      fail_msg("time \"%s\": rc=%d at=%lld, want %lld", cases[i].in, rc, (long long)at,
               (long long)cases[i].at);
  }
}

static void test_util_time_rfc3339_rejects(void **state) {
  (void)state;
  static const char *const cases[] = {
      "",
      "2026",
      "2026-11-22",
      "2026-11-22T10:00",
      "2026-11-22T10:00:00",        /* no zone */
      "2026-11-22T10:00:00.Z",      /* empty fraction */
      "2026-11-22X10:00:00Z",
      "2026-11-22T10:00:00Zjunk",   /* trailing junk */
      "2026-11-22T10:00:00Z ",
      "2026-11-22T10:00:00+05:30x",
      "2026-11-22T10:00:00+0530",
      "2026-11-22T10:00:00+5:30",
      "2026-11-22T10:00:00+24:00",
      "2026-11-22T10:00:00+05:60",
      "2027-02-29T00:00:00Z",       /* not a leap year */
      "2100-02-29T00:00:00Z",       /* divisible by 100, not 400 */
      "2026-13-01T00:00:00Z",       /* month 13 */
      "2026-00-01T00:00:00Z",
      "2026-04-31T00:00:00Z",
      "2026-01-32T00:00:00Z",
      "2026-01-00T00:00:00Z",
      "2026-01-01T24:00:00Z",
      "2026-01-01T23:60:00Z",
      "2026-01-01T23:59:61Z",
      "2026-1-01T00:00:00Z",
      "+2026-01-01T00:00:00Z",
      "26-01-01T00:00:00Z",
      "2026-11-22T10:00:00.123",
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    int64_t at = 777;
    int rc = bt_parse_time(cases[i], &at);
    if (rc != BT_EINVAL)
      fail_msg("time \"%s\" accepted (rc=%d at=%lld)", cases[i], rc, (long long)at);
    assert_int_equal(at, 777);
  }
  int64_t at;
  assert_int_equal(bt_parse_time(NULL, &at), BT_EINVAL);
}

/* Every prefix of a valid time is rejected and never read past its end (ASan
 * sees the heap copy's bounds). */
static void test_util_time_rfc3339_prefixes_rejected(void **state) {
  (void)state;
  const char *full = "2026-11-22T10:00:00.123+05:30";
  size_t n = strlen(full);
  for (size_t k = 0; k < n; k++) {
    char *p = test_malloc(k + 1);
    memcpy(p, full, k);
    p[k] = '\0';
    int64_t at;
    int rc = bt_parse_time(p, &at);
    test_free(p);
    if (rc != BT_EINVAL)
      fail_msg("prefix of %zu bytes accepted", k);
  }
}

/* --- bt_parse_when -------------------------------------------------------- */

static void test_util_time_when_duration_or_time(void **state) {
  (void)state;
  const int64_t now = 1795341600000LL;
  int64_t at = 0;
  assert_int_equal(bt_parse_when("90s", now, &at), 0);
  assert_int_equal(at, now + 90000);
  assert_int_equal(bt_parse_when("1h30m", now, &at), 0);
  assert_int_equal(at, now + 5400000);
  assert_int_equal(bt_parse_when("0", now, &at), 0);
  assert_int_equal(at, now);
  assert_int_equal(bt_parse_when("2026-11-22T11:00:00Z", now, &at), 0);
  assert_int_equal(at, now + 3600000);
  assert_int_equal(bt_parse_when("2026-11-22T10:00:00-08:00", 0, &at), 0);
  assert_int_equal(at, 1795370400000LL);

  at = 5;
  assert_int_equal(bt_parse_when("", now, &at), BT_EINVAL);
  assert_int_equal(bt_parse_when("tomorrow", now, &at), BT_EINVAL);
  assert_int_equal(bt_parse_when("-5m", now, &at), BT_EINVAL);
  assert_int_equal(bt_parse_when("2027-02-29T00:00:00Z", now, &at), BT_EINVAL);
  assert_int_equal(at, 5);
}

/* --- formatting ------------------------------------------------------------- */

static void test_util_time_format_known_instants(void **state) {
  (void)state;
  static const struct {
    int64_t at;
    const char *want;
  } cases[] = {
      {0, "1970-01-01T00:00:00.000Z"},
      {1795341600123LL, "2026-11-22T10:00:00.123Z"},
      {1835438400000LL, "2028-02-29T12:00:00.000Z"},
      {946684799999LL, "1999-12-31T23:59:59.999Z"},
      {253402300799999LL, "9999-12-31T23:59:59.999Z"},
      {-1, "1969-12-31T23:59:59.999Z"}, /* negative: floor, not truncation */
      {-1000, "1969-12-31T23:59:59.000Z"},
      {-1001, "1969-12-31T23:59:58.999Z"},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    char buf[25];
    assert_ptr_equal(bt_time_format(cases[i].at, buf, sizeof buf), buf);
    if (strcmp(buf, cases[i].want) != 0)
      fail_msg("format %lld: \"%s\", want \"%s\"", (long long)cases[i].at, buf,
               cases[i].want);
  }
}

/* Seeded: format then parse gives the same instant, across 1970..9999. */
static void test_util_time_format_round_trip(void **state) {
  (void)state;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    int64_t at = (int64_t)(x % 253402300800000ull);
    char buf[32];
    bt_time_format(at, buf, sizeof buf);
    int64_t back = -1;
    if (bt_parse_time(buf, &back) != 0 || back != at)
      fail_msg("round trip of %lld via \"%s\" gave %lld", (long long)at, buf,
               (long long)back);
  }
}

static void test_util_time_duration_format(void **state) {
  (void)state;
  static const struct {
    uint64_t ms;
    const char *want;
  } cases[] = {
      {0, "0ms"},
      {850, "850ms"},
      {999, "999ms"},
      {1000, "1.0s"},
      {12300, "12.3s"},
      {60000, "1m0s"},
      {250000, "4m10s"},
      {3599999, "59m59s"},
      {3600000, "1h0m"},
      {7380000, "2h3m"},
      {86400000, "1d0h"},
      {273600000, "3d4h"},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    char buf[32];
    assert_ptr_equal(bt_duration_format(cases[i].ms, buf, sizeof buf), buf);
    if (strcmp(buf, cases[i].want) != 0)
      fail_msg("duration %llu: \"%s\", want \"%s\"", (unsigned long long)cases[i].ms,
               buf, cases[i].want);
  }
  /* A short buffer truncates and stays terminated. */
  char small[4];
  bt_duration_format(273600000, small, sizeof small);
  assert_string_equal(small, "3d4");
}

/* Under a minute must not print as "60.0s" (%.1f rounds 59.95 s and up to 60.0);
 * 59999 ms is still "59.9s"-ish, never a whole minute in the seconds form. */
static void test_util_time_duration_format_below_a_minute(void **state) {
  (void)state;
  for (uint64_t ms = 59900; ms < 60000; ms++) {
    char buf[32];
    bt_duration_format(ms, buf, sizeof buf);
    if (strcmp(buf, "60.0s") == 0)
      fail_msg("%llu ms formats as \"%s\"", (unsigned long long)ms, buf);
  }
}

static void test_util_time_clocks(void **state) {
  (void)state;
  uint64_t a = bt_mono_ms();
  uint64_t b = bt_mono_ms();
  assert_true(b >= a);
  int64_t now = bt_wall_ms();
  assert_true(now > 1704067200000LL); /* after 2024-01-01 */
  assert_true(now < 253402300799999LL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util_time_duration_accepts),
      cmocka_unit_test(test_util_time_duration_rejects),
      cmocka_unit_test(test_util_time_rfc3339_accepts),
      cmocka_unit_test(test_util_time_rfc3339_rejects),
      cmocka_unit_test(test_util_time_rfc3339_prefixes_rejected),
      cmocka_unit_test(test_util_time_when_duration_or_time),
      cmocka_unit_test(test_util_time_format_known_instants),
      cmocka_unit_test(test_util_time_format_round_trip),
      cmocka_unit_test(test_util_time_duration_format),
      cmocka_unit_test(test_util_time_duration_format_below_a_minute),
      cmocka_unit_test(test_util_time_clocks),
  };
  return cmocka_run_group_tests_name("util_time", tests, NULL, NULL);
}

/*
 * server/util/bt_hours: the hours parser (accepts and a table of rejects), the
 * pure matcher, and the TZif reader behind bt_hours_local.
 *
 * Known instants were computed independently (Python's zoneinfo). The reader
 * is then cross-checked against glibc's localtime_r with TZ set: seeded random
 * instants over 1990-2045 and every transition found by stepping, for a set of
 * awkward zones; random instants for every zone installed; and hand-built
 * "slim" files holding only a POSIX footer, compared with glibc reading the
 * same footer as a TZ string. Malformed files (every truncation, random
 * corruption, leap-second data) must be refused without crashing. This test
 * is the one place that calls setenv("TZ")/tzset; it restores TZ afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "bt_hours.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define ZONEINFO "/usr/share/zoneinfo"
#define Y1990 INT64_C(631152000)  /* 1990-01-01T00:00:00Z */
#define Y2046 INT64_C(2398291200) /* 2046-01-01T00:00:00Z */

static const char *const day_name[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static bool have_tzdata(void) {
  struct stat st;
  return stat(ZONEINFO "/Europe/Berlin", &st) == 0 &&
         stat(ZONEINFO "/America/New_York", &st) == 0;
}

/* --- parsing ------------------------------------------------------------------ */

static bt_hours_t parse_ok(const char *text) {
  bt_hours_t h;
  char err[160];
  int rc = bt_hours_parse(text, &h, err, sizeof err);
  if (rc != 0)
    fail_msg("\"%s\" rejected: rc=%d %s", text, rc, err);
  return h;
}

#define DAYS(...) days_mask((const int[]){__VA_ARGS__, -1})
static uint8_t days_mask(const int *d) {
  uint8_t m = 0;
  for (; *d >= 0; d++)
    m |= (uint8_t)(1u << *d);
  return m;
}

static void expect_range(const bt_hours_t *h, unsigned i, uint8_t days, int start, int end) {
  assert_true(i < h->nranges);
  if (h->ranges[i].days != days || h->ranges[i].start != start || h->ranges[i].end != end)
    fail_msg("range %u: days=0x%02x %d-%d, want days=0x%02x %d-%d", i, h->ranges[i].days,
             h->ranges[i].start, h->ranges[i].end, days, start, end);
}

static void test_util_hours_parse_examples(void **state) {
  (void)state;
  if (!have_tzdata())
    skip();
  bt_hours_t h = parse_ok("Mon-Fri 08:00-18:00 Europe/Berlin");
  assert_false(h.always);
  assert_int_equal(h.nranges, 1);
  expect_range(&h, 0, DAYS(0, 1, 2, 3, 4), 8 * 60, 18 * 60);
  assert_string_equal(h.zone, "Europe/Berlin");

  h = parse_ok("Mon-Fri 09:00-17:30, Sat 10:00-14:00 America/New_York");
  assert_int_equal(h.nranges, 2);
  expect_range(&h, 0, DAYS(0, 1, 2, 3, 4), 9 * 60, 17 * 60 + 30);
  expect_range(&h, 1, DAYS(5), 10 * 60, 14 * 60);
  assert_string_equal(h.zone, "America/New_York");

  h = parse_ok("Sun-Thu 08:00-16:00 Asia/Kolkata"); /* wraps through Sunday */
  assert_int_equal(h.nranges, 1);
  expect_range(&h, 0, DAYS(6, 0, 1, 2, 3), 8 * 60, 16 * 60);
  assert_string_equal(h.zone, "Asia/Kolkata");

  h = parse_ok("Mon-Sun 22:00-06:00 UTC");
  expect_range(&h, 0, 0x7f, 22 * 60, 6 * 60);
  assert_string_equal(h.zone, "UTC");

  h = parse_ok("24/7");
  assert_true(h.always);
  assert_int_equal(h.nranges, 0);
  assert_string_equal(h.zone, "UTC");

  h = parse_ok("24/7 Asia/Tokyo");
  assert_true(h.always);
  assert_string_equal(h.zone, "Asia/Tokyo");

  h = parse_ok("");
  assert_true(h.always);
  h = parse_ok("   ");
  assert_true(h.always);
  assert_int_equal(bt_hours_parse(NULL, &h, NULL, 0), 0);
  assert_true(h.always);

  h = parse_ok("Mon,Wed,Fri-Sun 09:00-17:00 UTC");
  expect_range(&h, 0, DAYS(0, 2, 4, 5, 6), 9 * 60, 17 * 60);
  h = parse_ok("Sat-Mon 00:00-24:00 UTC");
  expect_range(&h, 0, DAYS(5, 6, 0), 0, 1440);
  h = parse_ok("Tue-Mon 00:00-00:00 UTC"); /* a wrap that covers the week */
  expect_range(&h, 0, 0x7f, 0, 0);
  h = parse_ok("Wed 12:00-13:00 Etc/GMT+5");
  assert_string_equal(h.zone, "Etc/GMT+5");

  /* Eight ranges is the limit; they fit in 128 bytes only written tightly. */
  h = parse_ok("Mon01:00-02:00,Tue01:00-02:00,Wed01:00-02:00,Thu01:00-02:00,"
               "Fri01:00-02:00,Sat01:00-02:00,Sun01:00-02:00,Mon03:00-04:00 UTC");
  assert_int_equal(h.nranges, 8);
  expect_range(&h, 6, DAYS(6), 60, 120);
  expect_range(&h, 7, DAYS(0), 180, 240);
}

static bool hours_equal(const bt_hours_t *a, const bt_hours_t *b) {
  if (a->always != b->always || a->nranges != b->nranges || strcmp(a->zone, b->zone) != 0)
    return false;
  for (unsigned i = 0; i < a->nranges; i++)
    if (a->ranges[i].days != b->ranges[i].days || a->ranges[i].start != b->ranges[i].start ||
        a->ranges[i].end != b->ranges[i].end)
      return false;
  return true;
}

/* Liberal in spaces and the case of day names: each of these parses to the
 * same thing as its canonical form. */
static void test_util_hours_parse_liberal(void **state) {
  (void)state;
  static const struct {
    const char *canonical, *variant;
  } cases[] = {
      {"Mon-Fri 08:00-18:00 UTC", "  Mon-Fri   08:00-18:00   UTC  "},
      {"Mon-Fri 08:00-18:00 UTC", "\tMon - Fri\t08:00 - 18:00\tUTC\t"},
      {"Mon-Fri 08:00-18:00 UTC", "mon-FRI 08:00-18:00 UTC"},
      {"Mon-Fri 09:00-17:30, Sat 10:00-14:00 UTC", "Mon-Fri 09:00-17:30,Sat 10:00-14:00 UTC"},
      {"Mon-Fri 09:00-17:30, Sat 10:00-14:00 UTC",
       "Mon-Fri 09:00-17:30 ,  Sat 10:00-14:00 UTC"},
      {"Mon,Wed,Fri-Sun 09:00-17:00 UTC", "MON , wed, fri -sun 09:00-17:00 UTC"},
      {"Mon-Fri 08:00-18:00 UTC", "Mon-Fri08:00-18:00 UTC"},
      {"24/7", "  24/7  "},
      {"24/7 UTC", "24/7\tUTC"},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    bt_hours_t a = parse_ok(cases[i].canonical), b = parse_ok(cases[i].variant);
    if (!hours_equal(&a, &b))
      fail_msg("\"%s\" does not parse like \"%s\"", cases[i].variant, cases[i].canonical);
  }
}

static void test_util_hours_parse_rejects(void **state) {
  (void)state;
  char long_text[BT_HOURS_TEXT_MAX + 2];
  memset(long_text, ' ', sizeof long_text);
  memcpy(long_text, "Mon-Fri 08:00-18:00 UTC", 23);
  long_text[sizeof long_text - 1] = '\0'; /* 129 bytes, mostly trailing spaces */
  char long_zone[100];
  snprintf(long_zone, sizeof long_zone, "Mon 08:00-18:00 %s",
           "Aaaaaaaaaa/Bbbbbbbbbb/Cccccccccc/Dddddddddd/Eeeeeeeeee/Ffffffffff/G");

  const struct {
    const char *text, *why; /* why: a substring the message must contain */
  } cases[] = {
      {"Mnd-Fri 08:00-18:00 UTC", "unknown day \"Mnd\""},
      {"Monday-Friday 08:00-18:00 UTC", "unknown day \"Monday\""},
      {"Mon-Fr 08:00-18:00 UTC", "unknown day \"Fr\""},
      {"08:00-18:00 UTC", "expected a day (Mon..Sun) at \"08:00\""},
      {"Mon-Fri 8:00-18:00 UTC", "bad time \"8:00\""},
      {"Mon-Fri 08:00-18 UTC", "bad time \"18\""},
      {"Mon-Fri 08:00-18:00:00 UTC", "bad time \"18:00:00\""},
      {"Mon-Fri 25:00-26:00 UTC", "bad time \"25:00\" (hours run from 00 to 24)"},
      {"Mon-Fri 08:00-25:00 UTC", "bad time \"25:00\""},
      {"Mon-Fri 08:60-18:00 UTC", "bad time \"08:60\" (minutes"},
      {"Mon-Fri 24:00-06:00 UTC", "24:00 may only end a range"},
      {"Mon-Fri 08:00-24:01 UTC", "the latest time is 24:00"},
      {"Mon-Fri 08:00 18:00 UTC", "expected '-' between the times"},
      {"Mon-Fri 08:00", "missing end time"},
      {"Mon-Fri 08:00-", "missing time (HH:MM) at the end"},
      {"Mon-Fri", "missing time (HH:MM) at the end"},
      {"Mon-Fri 08:00-18:00", "missing zone"},
      {"Mon-Fri 08:00-18:00,", "expected a day (Mon..Sun) at the end of the text"},
      {"Mon-Fri 08:00-18:00, UTC", "unknown day \"UTC\""},
      {"Mon-Fri 08:00-18:00 Mars/Olympus_Mons", "unknown zone \"Mars/Olympus_Mons\""},
      {"Mon-Fri 08:00-18:00 utc", "unknown zone \"utc\""},
      {"Mon-Fri 08:00-18:00 ../../etc/passwd", "bad zone name \"../../etc/passwd\""},
      {"Mon-Fri 08:00-18:00 /etc/passwd", "bad zone name \"/etc/passwd\""},
      {"Mon-Fri 08:00-18:00 Europe/", "bad zone name"},
      {"Mon-Fri 08:00-18:00 Europe//Berlin", "bad zone name"},
      {"Mon-Fri 08:00-18:00 Europe/Ber;lin", "bad zone name"},
      {"Mon-Fri 08:00-18:00 localtime", "bad zone name"},
      {"Mon-Fri 08:00-18:00 Sat 10:00-12:00 UTC",
       "unexpected \"10:00-12:00 UTC\" after \"Sat\""},
      {"Mon-Fri 08:00-18:00 UTC UTC", "unexpected \"UTC\" after \"UTC\""},
      {"Mon 01:00-02:00, Tue 01:00-02:00, Wed 01:00-02:00, Thu 01:00-02:00, "
       "Fri 01:00-02:00, Sat 01:00-02:00, Sun 01:00-02:00, Mon 03:00-04:00, "
       "Tue 03:00-04:00 UTC",
       "more than 8 ranges"},
      {"24/7 Mon-Fri 08:00-18:00 UTC", "unexpected \"Mon-Fri 08:00-18:00 UTC\" after 24/7"},
      {"24/7 Mon-Fri", "unknown zone \"Mon-Fri\""},
      {"24/7 Nowhere/Land", "unknown zone \"Nowhere/Land\""},
      {"24/7x", "expected a day (Mon..Sun) at \"24/7x\""},
      {"Mon-Fri 08:00-18:00 Europe/Berlin\n", "unexpected character 0x0a at byte 33"},
      {"Mon\xc2\xa0" "08:00-18:00 UTC", "unexpected character 0xc2 at byte 3"},
      {long_text, "longer than 128 bytes (129)"},
      {"24/7                                                                       "
       "                                                                       UTC",
       "longer than 128 bytes"},
      {long_zone, "is longer than 63 bytes"},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    bt_hours_t h;
    memset(&h, 0xa5, sizeof h);
    bt_hours_t before = h;
    char err[200] = "untouched";
    int rc = bt_hours_parse(cases[i].text, &h, err, sizeof err);
    if (rc != BT_EINVAL)
      fail_msg("\"%s\" accepted (rc=%d)", cases[i].text, rc);
    if (strstr(err, cases[i].why) == NULL)
      fail_msg("\"%s\": message \"%s\" does not say \"%s\"", cases[i].text, err, cases[i].why);
    if (memcmp(&h, &before, sizeof h) != 0)
      fail_msg("\"%s\": output changed on failure", cases[i].text);
    /* A NULL or tiny error buffer is fine. */
    assert_int_equal(bt_hours_parse(cases[i].text, &h, NULL, 0), BT_EINVAL);
    char tiny[4];
    assert_int_equal(bt_hours_parse(cases[i].text, &h, tiny, sizeof tiny), BT_EINVAL);
    assert_true(strlen(tiny) < sizeof tiny);
  }
}

/* --- contains ------------------------------------------------------------------ */

#define MIN(h, m) ((h) * 60 + (m))

typedef struct {
  int wday, minute;
  bool inside;
} probe_t;

static void expect_probes(const char *text, const probe_t *p, size_t n) {
  bt_hours_t h = parse_ok(text);
  for (size_t i = 0; i < n; i++) {
    bool got = bt_hours_contains(&h, p[i].wday, p[i].minute);
    if (got != p[i].inside)
      fail_msg("\"%s\" at %s %02d:%02d: %s, want %s", text, day_name[p[i].wday],
               p[i].minute / 60, p[i].minute % 60, got ? "inside" : "outside",
               p[i].inside ? "inside" : "outside");
  }
}

static void test_util_hours_contains_ranges(void **state) {
  (void)state;
  static const probe_t p[] = {
      {0, MIN(7, 59), false}, {0, MIN(8, 0), true},   {0, MIN(12, 0), true},
      {0, MIN(17, 59), true}, {0, MIN(18, 0), false}, {4, MIN(8, 0), true},
      {4, MIN(17, 59), true}, {5, MIN(12, 0), false}, {6, MIN(12, 0), false},
      {0, 0, false},          {6, 1439, false},
  };
  expect_probes("Mon-Fri 08:00-18:00 UTC", p, NELEM(p));

  static const probe_t two[] = {
      {2, MIN(17, 29), true},  {2, MIN(17, 30), false}, {5, MIN(9, 59), false},
      {5, MIN(10, 0), true},   {5, MIN(13, 59), true},  {5, MIN(14, 0), false},
      {6, MIN(10, 30), false},
  };
  expect_probes("Mon-Fri 09:00-17:30, Sat 10:00-14:00 UTC", two, NELEM(two));

  static const probe_t whole[] = {
      {0, 0, true}, {0, 1439, true}, {1, 0, false}, {6, 1439, false},
  };
  expect_probes("Mon 00:00-24:00 UTC", whole, NELEM(whole));
  expect_probes("Mon 00:00-00:00 UTC", whole, NELEM(whole)); /* end <= start: 24 h */

  /* Out-of-range arguments are never inside; 24/7 always is. */
  bt_hours_t h = parse_ok("Mon-Sun 00:00-24:00 UTC");
  assert_false(bt_hours_contains(&h, -1, 0));
  assert_false(bt_hours_contains(&h, 7, 0));
  assert_false(bt_hours_contains(&h, 0, -1));
  assert_false(bt_hours_contains(&h, 0, 1440));
  h = parse_ok("24/7");
  assert_true(bt_hours_contains(&h, 3, 777));
}

static void test_util_hours_contains_day_lists(void **state) {
  (void)state;
  static const probe_t p[] = {
      {0, MIN(10, 0), true},  {1, MIN(10, 0), false}, {2, MIN(10, 0), true},
      {3, MIN(10, 0), false}, {4, MIN(10, 0), true},  {5, MIN(10, 0), true},
      {6, MIN(10, 0), true},  {6, MIN(17, 0), false},
  };
  expect_probes("Mon,Wed,Fri-Sun 09:00-17:00 UTC", p, NELEM(p));
}

static void test_util_hours_contains_wrapping_days(void **state) {
  (void)state;
  static const probe_t p[] = {
      {5, MIN(12, 0), true}, {6, MIN(12, 0), true},  {0, MIN(12, 0), true},
      {1, MIN(12, 0), false}, {4, MIN(12, 0), false},
  };
  expect_probes("Sat-Mon 09:00-17:00 UTC", p, NELEM(p));
  static const probe_t q[] = {
      {6, MIN(8, 0), true}, {0, MIN(8, 0), true}, {3, MIN(8, 0), true},
      {4, MIN(8, 0), false}, {5, MIN(8, 0), false},
  };
  expect_probes("Sun-Thu 08:00-16:00 UTC", q, NELEM(q));
}

static void test_util_hours_contains_midnight(void **state) {
  (void)state;
  /* Friday night only: 22:00 Fri to 06:00 Sat belongs to Friday. */
  static const probe_t fri[] = {
      {4, MIN(21, 59), false}, {4, MIN(22, 0), true}, {4, 1439, true},
      {5, 0, true},            {5, MIN(5, 59), true}, {5, MIN(6, 0), false},
      {4, MIN(5, 59), false}, /* Friday morning belongs to a Thursday range */
      {5, MIN(22, 0), false},
  };
  expect_probes("Fri 22:00-06:00 UTC", fri, NELEM(fri));
  static const probe_t all[] = {
      {0, MIN(22, 0), true}, {0, MIN(5, 59), true}, {0, MIN(6, 0), false},
      {0, MIN(21, 59), false}, {6, 1439, true}, {0, 0, true},
  };
  expect_probes("Mon-Sun 22:00-06:00 UTC", all, NELEM(all));
  /* Sunday night into Monday, through the week's wrap. */
  static const probe_t sun[] = {
      {6, MIN(23, 0), true}, {0, MIN(1, 0), true}, {0, MIN(2, 0), false},
      {5, MIN(23, 0), false},
  };
  expect_probes("Sun 23:00-02:00 UTC", sun, NELEM(sun));
  /* A whole day from a start time: Wed 09:00 to Thu 09:00. */
  static const probe_t day[] = {
      {2, MIN(8, 59), false}, {2, MIN(9, 0), true}, {3, MIN(8, 59), true},
      {3, MIN(9, 0), false},
  };
  expect_probes("Wed 09:00-09:00 UTC", day, NELEM(day));
}

/* --- local time: known instants -------------------------------------------------- */

typedef struct {
  const char *zone;
  int64_t at;
  int wday, minute;
  int32_t utoff;
} instant_t;

/* From Python's zoneinfo: datetime(...).astimezone(ZoneInfo(zone)). */
static const instant_t known[] = {
    {"Europe/Berlin", 1782907200000LL, 2, 840, 7200},    /* 2026-07-01T12:00Z = Wed 14:00 CEST */
    {"Europe/Berlin", 1768478400000LL, 3, 780, 3600},    /* 2026-01-15T12:00Z = Thu 13:00 CET */
    {"Europe/Berlin", 1774745940000LL, 6, 119, 3600},    /* 2026-03-29T00:59Z = Sun 01:59 CET */
    {"Europe/Berlin", 1774745999999LL, 6, 119, 3600},    /* 2026-03-29T00:59:59.999Z = Sun 01:59 */
    {"Europe/Berlin", 1774746000000LL, 6, 180, 7200},    /* 2026-03-29T01:00Z = Sun 03:00 CEST */
    {"Europe/Berlin", 1792889940000LL, 6, 179, 7200},    /* 2026-10-25T00:59Z = Sun 02:59 CEST */
    {"Europe/Berlin", 1792890000000LL, 6, 120, 3600},    /* 2026-10-25T01:00Z = Sun 02:00 CET */
    {"America/New_York", 1772953140000LL, 6, 119, -18000}, /* 2026-03-08T06:59Z = Sun 01:59 EST */
    {"America/New_York", 1772953200000LL, 6, 180, -14400}, /* 2026-03-08T07:00Z = Sun 03:00 EDT */
    {"America/New_York", 1793512740000LL, 6, 119, -14400}, /* 2026-11-01T05:59Z = Sun 01:59 EDT */
    {"America/New_York", 1793512800000LL, 6, 60, -18000},  /* 2026-11-01T06:00Z = Sun 01:00 EST */
    {"America/New_York", 1782907200000LL, 2, 480, -14400}, /* 2026-07-01T12:00Z = Wed 08:00 EDT */
    {"America/New_York", 1768478400000LL, 3, 420, -18000}, /* 2026-01-15T12:00Z = Thu 07:00 EST */
    {"Asia/Kolkata", 1782907200000LL, 2, 1050, 19800},     /* 2026-07-01T12:00Z = Wed 17:30 IST */
    {"Asia/Kolkata", 1768507200000LL, 4, 90, 19800},       /* 2026-01-15T20:00Z = Fri 01:30 IST */
    {"UTC", 1782950399000LL, 2, 1439, 0},                   /* 2026-07-01T23:59:59Z = Wed 23:59 */
    {"UTC", -1LL, 2, 1439, 0},                              /* 1969-12-31T23:59:59.999Z */
    /* Past the fat file's last transition (2037): the footer decides. */
    {"Europe/Berlin", 2224756800000LL, 6, 840, 7200},      /* 2040-07-01T12:00Z = Sun 14:00 CEST */
    {"Europe/Berlin", 2237976000000LL, 5, 780, 3600},      /* 2040-12-01T12:00Z = Sat 13:00 CET */
    {"Europe/Berlin", 2216249940000LL, 6, 119, 3600},      /* 2040-03-25T00:59Z = Sun 01:59 CET */
    {"Europe/Berlin", 2216250000000LL, 6, 180, 7200},      /* 2040-03-25T01:00Z = Sun 03:00 CEST */
    {"America/New_York", 2224756800000LL, 6, 480, -14400}, /* 2040-07-01T12:00Z = Sun 08:00 EDT */
    {"Australia/Sydney", 1768435200000LL, 3, 660, 39600},  /* 2026-01-15T00:00Z = Thu 11:00 AEDT */
    {"Australia/Sydney", 1784073600000LL, 2, 600, 36000},  /* 2026-07-15T00:00Z = Wed 10:00 AEST */
};

static void test_util_hours_local_known(void **state) {
  (void)state;
  if (!have_tzdata())
    skip();
  for (size_t i = 0; i < NELEM(known); i++) {
    const instant_t *k = &known[i];
    int wday = -1, minute = -1;
    int32_t utoff = -1;
    assert_int_equal(bt_hours_local(k->zone, k->at, &wday, &minute), 0);
    assert_int_equal(bt_hours_offset(k->zone, k->at, &utoff), 0);
    if (wday != k->wday || minute != k->minute || utoff != k->utoff)
      fail_msg("%s at %lld: %s %02d:%02d %+d, want %s %02d:%02d %+d", k->zone,
               (long long)k->at, day_name[wday], minute / 60, minute % 60, utoff,
               day_name[k->wday], k->minute / 60, k->minute % 60, k->utoff);
  }
}

static void test_util_hours_local_unknown_zone(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",  "Mars/Olympus_Mons", "../../../etc/passwd", "/etc/passwd", "Europe",
      "Europe/", "Europe//Berlin", "Europe/./Berlin", "zone.tab", "tzdata.zi",
      "localtime", "right/Europe/Berlin", /* leap-second data */
      "Europe/Berlin\n", "Europe/Berlin ",
      "Aaaaaaaaaa/Bbbbbbbbbb/Cccccccccc/Dddddddddd/Eeeeeeeeee/Ffffffffff/Gggg",
  };
  for (size_t i = 0; i < NELEM(bad); i++) {
    int wday = 42, minute = 42;
    int32_t utoff = 42;
    if (bt_hours_local(bad[i], 0, &wday, &minute) != BT_EINVAL)
      fail_msg("zone \"%s\" accepted", bad[i]);
    assert_int_equal(wday, 42);
    assert_int_equal(minute, 42);
    assert_int_equal(bt_hours_offset(bad[i], 0, &utoff), BT_EINVAL);
    assert_int_equal(utoff, 42);
    assert_false(bt_hours_zone_exists(bad[i]));
  }
  int wday, minute;
  assert_int_equal(bt_hours_local(NULL, 0, &wday, &minute), BT_EINVAL);
  assert_false(bt_hours_zone_exists(NULL));
  assert_true(bt_hours_zone_exists("UTC")); /* built in, even without tzdata */
}

static void test_util_hours_at(void **state) {
  (void)state;
  if (!have_tzdata())
    skip();
  bt_hours_t h = parse_ok("Mon-Fri 08:00-18:00 Europe/Berlin");
  bool in = false;
  assert_int_equal(bt_hours_at(&h, 1782907200000LL, &in), 0); /* Wed 14:00 CEST */
  assert_true(in);
  assert_int_equal(bt_hours_at(&h, 1782943200000LL, &in), 0); /* 2026-07-01T22:00Z = 00:00 Thu */
  assert_false(in);
  assert_int_equal(bt_hours_at(&h, 1782885600000LL, &in), 0); /* 2026-07-01T06:00Z = 08:00 */
  assert_true(in);
  assert_int_equal(bt_hours_at(&h, 1782885599999LL, &in), 0); /* 07:59:59.999 */
  assert_false(in);
  assert_int_equal(bt_hours_at(&h, 1774746000000LL, &in), 0); /* Sun 03:00 */
  assert_false(in);

  h = parse_ok("Mon-Sun 22:00-06:00 UTC");
  assert_int_equal(bt_hours_at(&h, 1782950399000LL, &in), 0); /* 23:59:59 */
  assert_true(in);
  h = parse_ok("24/7");
  assert_int_equal(bt_hours_at(&h, 0, &in), 0);
  assert_true(in);

  /* A zone that went away (hand-made struct) is an error, not "outside". */
  snprintf(h.zone, sizeof h.zone, "Nowhere/Land");
  h.always = false;
  assert_int_equal(bt_hours_at(&h, 0, &in), BT_EINVAL);
}

/* --- cross-checks against glibc ---------------------------------------------------- */

static char *saved_tz;
static bool saved_tz_set;

static void tz_set(const char *tz) {
  setenv("TZ", tz, 1);
  tzset();
}

static void tz_save(void) {
  const char *tz = getenv("TZ");
  saved_tz_set = tz != NULL;
  saved_tz = tz ? strdup(tz) : NULL;
}

static void tz_restore(void) {
  if (saved_tz_set)
    setenv("TZ", saved_tz, 1);
  else
    unsetenv("TZ");
  tzset();
  free(saved_tz);
  saved_tz = NULL;
}

/* Compares our zone with glibc (TZ already set) at one instant. */
static void compare_one(const char *zone, int64_t at) {
  int64_t t = at >= 0 ? at / 1000 : -((-at + 999) / 1000);
  time_t tt = (time_t)t;
  struct tm tm;
  if (localtime_r(&tt, &tm) == NULL)
    fail_msg("localtime_r failed t=%lld", (long long)t);
  int32_t utoff;
  int wday, minute;
  if (bt_hours_offset(zone, at, &utoff) != 0 || bt_hours_local(zone, at, &wday, &minute) != 0)
    fail_msg("zone %s refused", zone);
  int gw = (tm.tm_wday + 6) % 7, gm = tm.tm_hour * 60 + tm.tm_min;
  if (utoff != tm.tm_gmtoff || wday != gw || minute != gm)
    fail_msg("%s at t=%lld: ours %s %02d:%02d %+d, glibc %s %02d:%02d %+ld (%s)", zone,
             (long long)t, day_name[wday], minute / 60, minute % 60, utoff, day_name[gw],
             tm.tm_hour, tm.tm_min, (long)tm.tm_gmtoff, tm.tm_zone);
}

/* Random instants in [from, to) plus every change of offset found by stepping,
 * checked one second either side. Returns how many changes were found. */
static int compare_span(const char *zone, int64_t from, int64_t to, int nrand, int64_t step,
                        uint64_t *seed) {
  for (int i = 0; i < nrand; i++) {
    int64_t t = from + (int64_t)(rng_next(seed) % (uint64_t)(to - from));
    compare_one(zone, t * 1000 + (int64_t)(rng_next(seed) % 1000));
  }
  if (step <= 0)
    return 0;
  int changes = 0;
  int32_t prev, cur;
  assert_int_equal(bt_hours_offset(zone, from * 1000, &prev), 0);
  for (int64_t t = from + step; t < to; t += step) {
    assert_int_equal(bt_hours_offset(zone, t * 1000, &cur), 0);
    if (cur == prev)
      continue;
    int64_t lo = t - step, hi = t; /* offset(lo) == prev, offset(hi) != prev */
    while (hi - lo > 1) {
      int64_t mid = lo + (hi - lo) / 2;
      int32_t o;
      assert_int_equal(bt_hours_offset(zone, mid * 1000, &o), 0);
      if (o == prev)
        lo = mid;
      else
        hi = mid;
    }
    for (int64_t d = -2; d <= 1; d++)
      compare_one(zone, (hi + d) * 1000);
    compare_one(zone, hi * 1000 - 1);
    changes++;
    prev = cur;
  }
  return changes;
}

static void test_util_hours_local_matches_glibc(void **state) {
  (void)state;
  if (!have_tzdata())
    skip();
  static const struct {
    const char *zone;
    int min_changes; /* offset changes expected over 1990-2045 */
  } zones[] = {
      {"Europe/Berlin", 100},     {"America/New_York", 100}, {"Asia/Kolkata", 0},
      {"UTC", 0},                 {"Australia/Sydney", 100}, {"Australia/Lord_Howe", 100},
      {"America/Santiago", 50},   {"Asia/Jerusalem", 50},    {"America/Nuuk", 50},
      {"Europe/Dublin", 100},     {"Pacific/Chatham", 100},  {"Africa/Casablanca", 20},
      {"Asia/Tehran", 20},        {"America/Sao_Paulo", 20}, {"Pacific/Apia", 2},
      {"Europe/Moscow", 20},      {"Asia/Kathmandu", 0},     {"America/St_Johns", 100},
      {"Antarctica/Troll", 50},   {"Europe/London", 100},
  };
  uint64_t seed = 20260701;
  tz_save();
  for (size_t i = 0; i < NELEM(zones); i++) {
    char tz[96];
    snprintf(tz, sizeof tz, ":%s", zones[i].zone);
    tz_set(tz);
    int changes = compare_span(zones[i].zone, Y1990, Y2046, 2000, 3 * 3600, &seed);
    if (changes < zones[i].min_changes)
      fail_msg("%s: only %d offset changes found", zones[i].zone, changes);
  }
  tz_restore();
}

/* Every zone installed (aliases that are symlinks aside), random instants. This
 * also cycles far more zones than the cache holds. */
static char **all_zones;
static size_t n_all_zones, cap_all_zones;

static int collect_zone(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type != FTW_F)
    return 0;
  const char *rel = path + strlen(ZONEINFO) + 1;
  if (strncmp(rel, "posix/", 6) == 0 || strncmp(rel, "right/", 6) == 0)
    return 0;
  FILE *f = fopen(path, "rb");
  char magic[4] = {0};
  if (f == NULL)
    return 0;
  size_t n = fread(magic, 1, 4, f);
  fclose(f);
  if (n != 4 || memcmp(magic, "TZif", 4) != 0)
    return 0;
  if (n_all_zones == cap_all_zones) {
    cap_all_zones = cap_all_zones ? cap_all_zones * 2 : 256;
    all_zones = realloc(all_zones, cap_all_zones * sizeof *all_zones);
    assert_non_null(all_zones);
  }
  all_zones[n_all_zones++] = strdup(rel);
  return 0;
}

static void test_util_hours_all_zones_match_glibc(void **state) {
  (void)state;
  if (!have_tzdata())
    skip();
  assert_int_equal(nftw(ZONEINFO, collect_zone, 16, FTW_PHYS), 0);
  assert_true(n_all_zones > 300);
  uint64_t seed = 42;
  tz_save();
  for (size_t i = 0; i < n_all_zones; i++) {
    char tz[96];
    snprintf(tz, sizeof tz, ":%s", all_zones[i]);
    tz_set(tz);
    if (!bt_hours_zone_exists(all_zones[i]))
      fail_msg("zone %s refused", all_zones[i]);
    compare_span(all_zones[i], Y1990, Y2046, 300, 0, &seed);
  }
  tz_restore();
  for (size_t i = 0; i < n_all_zones; i++)
    free(all_zones[i]);
  free(all_zones);
  all_zones = NULL;
  n_all_zones = cap_all_zones = 0;
}

/* --- hand-built TZif files ------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/bt_hours_XXXXXX", base && *base ? base : "/tmp");
  assert_non_null(mkdtemp(tmpdir));
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

static void remove_tmpdir(void) {
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  bt_hours__set_zonedir(NULL);
}

static void write_file(const char *name, const void *data, size_t len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  char *slash = strrchr(path, '/');
  if (slash > path + strlen(tmpdir)) { /* one level of folder, enough here */
    *slash = '\0';
    mkdir(path, 0700);
    *slash = '/';
  }
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

typedef struct {
  uint8_t b[8192];
  size_t n;
} buf_t;

static void put8(buf_t *b, uint8_t v) {
  assert_true(b->n < sizeof b->b);
  b->b[b->n++] = v;
}
static void put32(buf_t *b, uint32_t v) {
  for (int i = 3; i >= 0; i--)
    put8(b, (uint8_t)(v >> (8 * i)));
}
static void put64(buf_t *b, uint64_t v) {
  put32(b, (uint32_t)(v >> 32));
  put32(b, (uint32_t)v);
}
static void put_header(buf_t *b, char version, uint32_t leap, uint32_t time, uint32_t type) {
  memcpy(b->b + b->n, "TZif", 4);
  b->n += 4;
  put8(b, (uint8_t)version);
  for (int i = 0; i < 15; i++)
    put8(b, 0);
  put32(b, 0);    /* isutcnt */
  put32(b, 0);    /* isstdcnt */
  put32(b, leap); /* leapcnt */
  put32(b, time);
  put32(b, type);
  put32(b, 4);    /* charcnt: "ZZZ\0" */
}

/* A TZif file: version '\0' writes 32-bit data only; otherwise a stub 32-bit
 * block (as zic -b slim does), the 64-bit data and the footer. */
static void build_tzif(buf_t *b, char version, const int64_t *trans, const uint8_t *idx,
                       uint32_t ntrans, const int32_t *utoff, uint32_t ntypes,
                       uint32_t leap, const char *footer) {
  b->n = 0;
  if (version == '\0') {
    put_header(b, 0, leap, ntrans, ntypes);
  } else {
    put_header(b, version, 0, 0, 1);
    put32(b, 0); /* one type: UTC, standard, "ZZZ" */
    put8(b, 0);
    put8(b, 0);
    put32(b, 0x5a5a5a00); /* "ZZZ\0" */
    put_header(b, version, leap, ntrans, ntypes);
  }
  unsigned tsize = version == '\0' ? 4 : 8;
  for (uint32_t i = 0; i < ntrans; i++) {
    if (tsize == 8)
      put64(b, (uint64_t)trans[i]);
    else
      put32(b, (uint32_t)trans[i]);
  }
  for (uint32_t i = 0; i < ntrans; i++)
    put8(b, idx[i]);
  for (uint32_t i = 0; i < ntypes; i++) {
    put32(b, (uint32_t)utoff[i]);
    put8(b, i > 0); /* isdst */
    put8(b, 0);     /* designation: "ZZZ" */
  }
  put32(b, 0x5a5a5a00);
  for (uint32_t i = 0; i < leap; i++) { /* 1972-07-01, one leap second */
    if (tsize == 8)
      put64(b, 78796800);
    else
      put32(b, 78796800);
    put32(b, i + 1);
  }
  if (version != '\0') {
    put8(b, '\n');
    for (const char *p = footer; *p; p++)
      put8(b, (uint8_t)*p);
    put8(b, '\n');
  }
}

/* A slim file holding only a footer: every instant goes through the POSIX TZ
 * rule, which glibc can read straight from TZ for comparison. */
static void test_util_hours_footer_rules(void **state) {
  (void)state;
  static const char *const footers[] = {
      "CET-1CEST,M3.5.0,M10.5.0/3",
      "EST5EDT,M3.2.0,M11.1.0",
      "<-04>4<-03>,M9.1.6/24,M4.1.6/24",   /* Santiago: southern, 24:00 */
      "IST-2IDT,M3.4.4/26,M10.5.0",        /* Jerusalem: 26:00 */
      "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",   /* Nuuk: a negative time */
      "IST-1GMT0,M10.5.0,M3.5.0/1",        /* Dublin: DST below standard */
      "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", /* Lord Howe: half-hour DST */
      "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
      "AEST-10AEDT,M10.1.0,M4.1.0/3",
      "XXX3YYY,J60/2,J300/2",              /* Julian days, Feb 29 never counted */
      "XXX3YYY,59/2,299/2",                /* zero-based days, Feb 29 counted */
      "XXX3YYY2:30,M4.1.0/1:30:15,M9.5.6/23:59:59",
      "IST-5:30", "<+0545>-5:45", "UTC0", "<-03>3", "XXX-14",
  };
  make_tmpdir();
  bt_hours__set_zonedir(tmpdir);
  uint64_t seed = 7;
  tz_save();
  for (size_t i = 0; i < NELEM(footers); i++) {
    buf_t b;
    int32_t utoff = 0;
    build_tzif(&b, '2', NULL, NULL, 0, &utoff, 1, 0, footers[i]);
    char name[32];
    snprintf(name, sizeof name, "Test/Footer%zu", i);
    write_file(name, b.b, b.n);
    tz_set(footers[i]);
    compare_span(name, 0, INT64_C(4102444800) /* 2100 */, 3000, 6 * 3600, &seed);
  }
  tz_restore();

  /* All-year DST ("0/0,J365/25"): always the DST offset, across new year too. */
  static const char *const always_dst[] = {"EST5EDT,0/0,J365/25", "XXX3YYY,J1/0,J365/25"};
  for (size_t i = 0; i < NELEM(always_dst); i++) {
    buf_t b;
    int32_t utoff = 0;
    build_tzif(&b, '3', NULL, NULL, 0, &utoff, 1, 0, always_dst[i]);
    write_file("Test/AllDst", b.b, b.n);
    bt_hours_cache_close();
    int32_t want = i == 0 ? -4 * 3600 : -2 * 3600, got;
    for (int64_t t = Y1990; t < Y2046; t += 3571) {
      assert_int_equal(bt_hours_offset("Test/AllDst", t * 1000, &got), 0);
      if (got != want)
        fail_msg("%s at t=%lld: %+d, want %+d", always_dst[i], (long long)t, got, want);
    }
  }

  /* DST without a rule takes the US rules, as glibc and tzcode do. */
  {
    buf_t b;
    int32_t utoff = 0;
    build_tzif(&b, '2', NULL, NULL, 0, &utoff, 1, 0, "XST5XDT");
    write_file("Test/NoRule", b.b, b.n);
    build_tzif(&b, '2', NULL, NULL, 0, &utoff, 1, 0, "XST5XDT,M3.2.0,M11.1.0");
    write_file("Test/UsRule", b.b, b.n);
    for (int64_t t = Y1990; t < Y2046; t += 7919) {
      int32_t a, c;
      assert_int_equal(bt_hours_offset("Test/NoRule", t * 1000, &a), 0);
      assert_int_equal(bt_hours_offset("Test/UsRule", t * 1000, &c), 0);
      assert_int_equal(a, c);
    }
  }
  remove_tmpdir();
}

/* The real Berlin file and a slim one with only its footer agree wherever the
 * footer's rule was law (EU rules since 1996), so the footer carries 2040. */
static void test_util_hours_slim_matches_fat(void **state) {
  (void)state;
  if (!have_tzdata())
    skip();
  FILE *f = fopen(ZONEINFO "/Europe/Berlin", "rb");
  assert_non_null(f);
  static uint8_t fat[65536];
  size_t fat_len = fread(fat, 1, sizeof fat, f);
  fclose(f);
  make_tmpdir();
  bt_hours__set_zonedir(tmpdir);
  write_file("Europe/Berlin", fat, fat_len);
  buf_t b;
  int64_t trans[] = {INT64_C(820454400)}; /* 1996-01-01: into the footer's era */
  uint8_t idx[] = {0};
  int32_t utoff[] = {3600};
  build_tzif(&b, '2', trans, idx, 1, utoff, 1, 0, "CET-1CEST,M3.5.0,M10.5.0/3");
  write_file("Test/SlimBerlin", b.b, b.n);
  uint64_t seed = 99;
  for (int i = 0; i < 20000; i++) {
    int64_t at = (INT64_C(820454400) + (int64_t)(rng_next(&seed) % (Y2046 - 820454400))) * 1000;
    int32_t a, c;
    assert_int_equal(bt_hours_offset("Europe/Berlin", at, &a), 0);
    assert_int_equal(bt_hours_offset("Test/SlimBerlin", at, &c), 0);
    if (a != c)
      fail_msg("at=%lld: fat %+d, slim %+d", (long long)at, a, c);
  }
  int wday, minute;
  assert_int_equal(bt_hours_local("Test/SlimBerlin", 2216250000000LL, &wday, &minute), 0);
  assert_int_equal(wday, 6);      /* 2040-03-25T01:00Z = Sun 03:00 CEST */
  assert_int_equal(minute, 180);

  /* Cached: once loaded, the file is not read again... */
  char path[512];
  snprintf(path, sizeof path, "%s/Test/SlimBerlin", tmpdir);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(bt_hours_local("Test/SlimBerlin", 0, &wday, &minute), 0);
  /* ...until the cache is dropped. */
  bt_hours_cache_close();
  assert_int_equal(bt_hours_local("Test/SlimBerlin", 0, &wday, &minute), BT_EINVAL);
  remove_tmpdir();
}

/* Version 1 files (32-bit data, no footer), instants before the first
 * transition (type 0) and after the last one without a footer. */
static void test_util_hours_tzif_versions(void **state) {
  (void)state;
  make_tmpdir();
  bt_hours__set_zonedir(tmpdir);
  int64_t trans[] = {1000, 2000};
  uint8_t idx[] = {1, 2};
  int32_t utoff[] = {100 * 60, 200 * 60, 300 * 60};
  static const char versions[] = {'\0', '2', '3', '4'};
  for (size_t v = 0; v < NELEM(versions); v++) {
    buf_t b;
    build_tzif(&b, versions[v], trans, idx, 2, utoff, 3, 0, "");
    write_file("Test/V", b.b, b.n);
    bt_hours_cache_close();
    static const struct {
      int64_t t;
      int32_t off;
    } probes[] = {{-99999, 6000}, {999, 6000}, {1000, 12000}, {1999, 12000},
                  {2000, 18000},  {INT64_C(4000000000), 18000}};
    for (size_t i = 0; i < NELEM(probes); i++) {
      int32_t got;
      assert_int_equal(bt_hours_offset("Test/V", probes[i].t * 1000, &got), 0);
      if (got != probes[i].off)
        fail_msg("version %d t=%lld: %d, want %d", versions[v], (long long)probes[i].t, got,
                 probes[i].off);
    }
  }
  /* Extreme instants do not overflow. */
  int wday, minute;
  assert_int_equal(bt_hours_local("Test/V", INT64_MAX, &wday, &minute), 0);
  assert_int_equal(bt_hours_local("Test/V", INT64_MIN, &wday, &minute), 0);
  assert_true(wday >= 0 && wday < 7 && minute >= 0 && minute < 1440);
  remove_tmpdir();
  if (have_tzdata()) {
    assert_int_equal(bt_hours_local("Europe/Berlin", INT64_MAX, &wday, &minute), 0);
    assert_int_equal(bt_hours_local("Europe/Berlin", INT64_MIN, &wday, &minute), 0);
  }
}

static void test_util_hours_tzif_rejects(void **state) {
  (void)state;
  make_tmpdir();
  bt_hours__set_zonedir(tmpdir);
  buf_t b;
  int64_t trans[] = {1000, 2000};
  uint8_t idx[] = {0, 1};
  int32_t utoff[] = {0, 3600};

  /* Leap-second data (right/...), times out of order, a type out of range, a
   * bad footer, a missing footer, a wild offset, not TZif at all. */
  build_tzif(&b, '2', trans, idx, 2, utoff, 2, 1, "UTC0");
  write_file("Bad/Leap", b.b, b.n);
  int64_t unordered[] = {2000, 1000};
  build_tzif(&b, '2', unordered, idx, 2, utoff, 2, 0, "UTC0");
  write_file("Bad/Order", b.b, b.n);
  uint8_t bad_idx[] = {0, 2};
  build_tzif(&b, '2', trans, bad_idx, 2, utoff, 2, 0, "UTC0");
  write_file("Bad/Type", b.b, b.n);
  build_tzif(&b, '2', trans, idx, 2, utoff, 2, 0, "CET-1CEST,M3.5.0");
  write_file("Bad/Footer", b.b, b.n);
  build_tzif(&b, '2', trans, idx, 2, utoff, 2, 0, "CET-1CEST,M13.5.0,M10.5.0");
  write_file("Bad/Month", b.b, b.n);
  build_tzif(&b, '2', trans, idx, 2, utoff, 2, 0, "CET-1CEST,M3.5.0,M10.5.0/3 ");
  write_file("Bad/Trailing", b.b, b.n);
  build_tzif(&b, '2', trans, idx, 2, utoff, 2, 0, "UTC0");
  write_file("Bad/NoFooter", b.b, b.n - 1); /* the closing newline cut off */
  int32_t wild[] = {0, 30 * 3600};
  build_tzif(&b, '2', trans, idx, 2, wild, 2, 0, "UTC0");
  write_file("Bad/Wild", b.b, b.n);
  write_file("Bad/Text", "hello, world\n", 13);
  write_file("Bad/Empty", "", 0);
  static const char *const bad[] = {"Bad/Leap", "Bad/Order", "Bad/Type", "Bad/Footer",
                                    "Bad/Month", "Bad/Trailing", "Bad/NoFooter", "Bad/Wild",
                                    "Bad/Text", "Bad/Empty", "Bad"};
  for (size_t i = 0; i < NELEM(bad); i++)
    if (bt_hours_zone_exists(bad[i]))
      fail_msg("%s accepted", bad[i]);

  /* Every truncation of a real file is refused; random corruption never
   * crashes (ASan watches) and leaves the answer in range. */
  if (have_tzdata()) {
    FILE *f = fopen(ZONEINFO "/America/New_York", "rb");
    assert_non_null(f);
    static uint8_t real[65536], work[65536];
    size_t len = fread(real, 1, sizeof real, f);
    fclose(f);
    for (size_t n = 0; n < len; n++) {
      write_file("Cut/Zone", real, n);
      if (bt_hours_zone_exists("Cut/Zone"))
        fail_msg("a cut at %zu of %zu bytes was accepted", n, len);
    }
    write_file("Cut/Zone", real, len);
    assert_true(bt_hours_zone_exists("Cut/Zone"));
    uint64_t seed = 1234;
    for (int i = 0; i < 3000; i++) {
      memcpy(work, real, len);
      int flips = 1 + (int)(rng_next(&seed) % 4);
      for (int k = 0; k < flips; k++)
        work[rng_next(&seed) % len] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
      write_file("Cut/Mangled", work, len);
      bt_hours_cache_close();
      int wday, minute;
      if (bt_hours_local("Cut/Mangled", (int64_t)(rng_next(&seed) % 4000000000u) * 1000,
                         &wday, &minute) == 0)
        assert_true(wday >= 0 && wday < 7 && minute >= 0 && minute < 1440);
    }
  }
  remove_tmpdir();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util_hours_parse_examples),
      cmocka_unit_test(test_util_hours_parse_liberal),
      cmocka_unit_test(test_util_hours_parse_rejects),
      cmocka_unit_test(test_util_hours_contains_ranges),
      cmocka_unit_test(test_util_hours_contains_day_lists),
      cmocka_unit_test(test_util_hours_contains_wrapping_days),
      cmocka_unit_test(test_util_hours_contains_midnight),
      cmocka_unit_test(test_util_hours_local_known),
      cmocka_unit_test(test_util_hours_local_unknown_zone),
      cmocka_unit_test(test_util_hours_at),
      cmocka_unit_test(test_util_hours_local_matches_glibc),
      cmocka_unit_test(test_util_hours_all_zones_match_glibc),
      cmocka_unit_test(test_util_hours_footer_rules),
      cmocka_unit_test(test_util_hours_slim_matches_fat),
      cmocka_unit_test(test_util_hours_tzif_versions),
      cmocka_unit_test(test_util_hours_tzif_rejects),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  bt_hours_cache_close();
  return rc;
}

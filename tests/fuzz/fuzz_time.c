/*
 * Fuzz target: the duration and time syntax of the CLI, the config and batch
 * files (server/util/bt_time.c: bt_parse_duration, bt_parse_time,
 * bt_parse_when) and the two formatters. Input: the text (cut at a NUL, as
 * every caller passes a C string).
 *
 * Invariants beyond "no crash":
 *   - a parsed duration is at most 100 years, and written back in canonical
 *     units ("1d2h3m4s5ms"), in milliseconds ("93784005ms") and, when whole
 *     seconds, as a bare number, it parses to the same value;
 *   - a parsed time lies between 1970 (less a day of offset) and the end of
 *     9999 (plus a day), and bt_time_format's text of it parses to the same
 *     instant whenever that instant is in 1970..9999;
 *   - bt_parse_when is the duration from now when the text is a duration and
 *     the RFC 3339 time otherwise;
 *   - bt_duration_format fits and terminates a 32-byte buffer.
 */
#include "fuzz_util.h"

#include "bt_err.h"
#include "bt_time.h"

#include <inttypes.h>

#define HUNDRED_YEARS_MS (100ull * 366 * 24 * 3600 * 1000)
#define DAY_MS 86400000LL
#define LAST_AT 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define NOW_AT 1800000000000LL

static void canonical(uint64_t ms, char *buf, size_t len) {
  static const struct {
    uint64_t f;
    const char *u;
  } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  size_t o = 0;
  buf[0] = '\0';
  if (ms == 0) {
    snprintf(buf, len, "0s");
    return;
  }
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    uint64_t n = ms / units[i].f;
    ms %= units[i].f;
    if (n > 0)
      o += (size_t)snprintf(buf + o, len - o, "%" PRIu64 "%s", n, units[i].u);
  }
}

static void same_duration(const char *text, uint64_t want) {
  uint64_t got = 0;
  FUZZ_CHECK(bt_parse_duration(text, &got) == 0, "\"%s\" is refused", text);
  FUZZ_CHECK(got == want, "\"%s\" parses to %" PRIu64 ", not %" PRIu64, text, got, want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  char buf[96];

  uint64_t ms = 0;
  int drc = bt_parse_duration(s, &ms);
  FUZZ_CHECK(drc == 0 || drc == BT_EINVAL, "rc %d", drc);
  if (drc == 0) {
    FUZZ_CHECK(ms <= HUNDRED_YEARS_MS, "\"%s\" is %" PRIu64 " ms", s, ms);
    canonical(ms, buf, sizeof buf);
    same_duration(buf, ms);
    snprintf(buf, sizeof buf, "%" PRIu64 "ms", ms);
    same_duration(buf, ms);
    if (ms % 1000 == 0) {
      snprintf(buf, sizeof buf, "%" PRIu64, ms / 1000);
      same_duration(buf, ms);
    }
    char small[32];
    memset(small, 0x55, sizeof small);
    bt_duration_format(ms, small, sizeof small);
    FUZZ_CHECK(memchr(small, '\0', sizeof small) != NULL, "duration format unterminated");
  }

  int64_t at = 0;
  int trc = bt_parse_time(s, &at);
  FUZZ_CHECK(trc == 0 || trc == BT_EINVAL, "rc %d", trc);
  if (trc == 0) {
    FUZZ_CHECK(at >= -DAY_MS && at <= LAST_AT + DAY_MS, "\"%s\" is %lld", s, (long long)at);
    FUZZ_CHECK(drc != 0, "\"%s\" is both a duration and a time", s);
    if (at >= 0 && at <= LAST_AT) {
      bt_time_format(at, buf, sizeof buf);
      int64_t again = 0;
      FUZZ_CHECK(bt_parse_time(buf, &again) == 0, "formatted \"%s\" is refused", buf);
      FUZZ_CHECK(again == at, "\"%s\" -> %lld -> \"%s\" -> %lld", s, (long long)at, buf,
                 (long long)again);
    }
  }

  int64_t when = 0;
  int wrc = bt_parse_when(s, NOW_AT, &when);
  FUZZ_CHECK(wrc == ((drc == 0 || trc == 0) ? 0 : BT_EINVAL), "when rc %d", wrc);
  if (drc == 0)
    FUZZ_CHECK(when == NOW_AT + (int64_t)ms, "when is not now + duration");
  else if (trc == 0)
    FUZZ_CHECK(when == at, "when is not the time");
  free(s);
  return 0;
}

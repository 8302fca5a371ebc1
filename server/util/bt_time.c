/* Clock reads and the parsers for durations and RFC 3339 times. Pure string
 * handling apart from the two clock functions. */
#include "bt_time.h"

#include "bt_err.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t bt_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t bt_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define HUNDRED_YEARS_MS (100ull * 366 * 24 * 3600 * 1000)

int bt_parse_duration(const char *s, uint64_t *out_ms) {
  if (s == NULL || *s == '\0')
    return BT_EINVAL;
  uint64_t total = 0;
  const char *p = s;
  while (*p) {
    if (!isdigit((unsigned char)*p))
      return BT_EINVAL;
    uint64_t v = 0;
    while (isdigit((unsigned char)*p)) {
      if (v > HUNDRED_YEARS_MS)
        return BT_EINVAL;
      v = v * 10 + (uint64_t)(*p - '0');
      p++;
    }
    uint64_t mult;
    if (strncmp(p, "ms", 2) == 0) {
      mult = 1;
      p += 2;
    } else if (*p == 's' || *p == '\0') {
      mult = 1000;
      p += *p ? 1 : 0;
    } else if (*p == 'm') {
      mult = 60 * 1000;
      p++;
    } else if (*p == 'h') {
      mult = 3600 * 1000;
      p++;
    } else if (*p == 'd') {
      mult = 24 * 3600 * 1000;
      p++;
    } else {
      return BT_EINVAL;
    }
    if (v > HUNDRED_YEARS_MS / mult)
      return BT_EINVAL;
    total += v * mult;
    if (total > HUNDRED_YEARS_MS)
      return BT_EINVAL;
  }
  *out_ms = total;
  return 0;
}

static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

int bt_parse_time(const char *s, int64_t *out_at) {
  if (s == NULL)
    return BT_EINVAL;
  const char *p = s;
  int Y, M, D, h, m, sec;
  if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
      digits(&p, 2, &D))
    return BT_EINVAL;
  if (*p != 'T' && *p != 't' && *p != ' ')
    return BT_EINVAL;
  p++;
  if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p++ != ':' ||
      digits(&p, 2, &sec))
    return BT_EINVAL;
  int ms = 0;
  if (*p == '.') {
    p++;
    int n = 0;
    while (isdigit((unsigned char)*p)) {
      if (n < 3)
        ms = ms * 10 + (*p - '0');
      n++;
      p++;
    }
    if (n == 0)
      return BT_EINVAL;
    for (; n < 3; n++)
      ms *= 10;
  }
  int offset_min = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1;
    p++;
    int oh, om;
    if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 ||
        om > 59)
      return BT_EINVAL;
    offset_min = sign * (oh * 60 + om);
  } else {
    return BT_EINVAL;
  }
  if (*p != '\0')
    return BT_EINVAL;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (Y < 1970 || Y > 9999 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] ||
      h > 23 || m > 59 || sec > 60)
    return BT_EINVAL;
  int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
  if (M == 2 && D == 29 && !leap)
    return BT_EINVAL;
  struct tm tm = {0};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  *out_at = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + ms;
  return 0;
}

int bt_parse_when(const char *s, int64_t now_at, int64_t *out_at) {
  uint64_t ms;
  if (bt_parse_duration(s, &ms) == 0) {
    *out_at = now_at + (int64_t)ms;
    return 0;
  }
  return bt_parse_time(s, out_at);
}

char *bt_time_format(int64_t at, char *buf, size_t len) {
  time_t t = (time_t)(at / 1000);
  int ms = (int)(at % 1000);
  if (ms < 0) {
    ms += 1000;
    t -= 1;
  }
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

char *bt_duration_format(uint64_t ms, char *buf, size_t len) {
  if (ms < 1000)
    snprintf(buf, len, "%" PRIu64 "ms", ms);
  else if (ms < 59950) /* %.1f would round 59950 up to "60.0s" */
    snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
  else if (ms < 60000)
    snprintf(buf, len, "1m0s");
  else if (ms < 3600000)
    snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", ms / 60000,
             (ms % 60000) / 1000);
  else if (ms < 86400000)
    snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", ms / 3600000,
             (ms % 3600000) / 60000);
  else
    snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", ms / 86400000,
             (ms % 86400000) / 3600000);
  return buf;
}

/*
 * Fuzz target: vendor working hours (server/util/bt_hours.c bt_hours_parse,
 * "Mon-Fri 08:00-18:00 Europe/Berlin"), which arrive in VendorAdd requests.
 * Zones are looked up in the system's zoneinfo as in the broker. Input: the
 * text (cut at a NUL, as callers pass a C string).
 *
 * Invariants beyond "no crash":
 *   - a refusal has a reason; an accepted value has 1-8 ranges (or is
 *     always), day masks within Mon..Sun, start 00:00-23:59, end at most
 *     24:00, and a zone that exists;
 *   - written back in a canonical form (days as runs, "Sat-Mon" wrapping;
 *     "24/7 ZONE" when always), it parses to the identical value;
 *   - each range contains its own first minute on each of its days, nothing
 *     contains an out-of-range day or minute (unless always), and
 *     bt_hours_at works for its zone.
 */
#include "fuzz_util.h"

#include "bt_err.h"
#include "bt_hours.h"

static const char *const DAY[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

/* Appends the days of mask as maximal runs around the week. */
static size_t put_days(uint8_t mask, char *buf, size_t len) {
  size_t o = 0;
  if (mask == 0x7f)
    return (size_t)snprintf(buf, len, "Mon-Sun");
  /* Start after a day that is not in the mask, so no run is cut in two. */
  int first = 0;
  while ((mask >> first) & 1u)
    first++;
  bool sep = false;
  for (int i = 1; i <= 7; i++) {
    int d = (first + i) % 7;
    if (!((mask >> d) & 1u))
      continue;
    int e = d;
    while (i < 7 && ((mask >> ((e + 1) % 7)) & 1u)) {
      e = (e + 1) % 7;
      i++;
    }
    if (e == d)
      o += (size_t)snprintf(buf + o, len - o, "%s%s", sep ? "," : "", DAY[d]);
    else
      o += (size_t)snprintf(buf + o, len - o, "%s%s-%s", sep ? "," : "", DAY[d], DAY[e]);
    sep = true;
  }
  return o;
}

static void canonical(const bt_hours_t *h, char *buf, size_t len) {
  size_t o = 0;
  if (h->always) {
    snprintf(buf, len, "24/7 %s", h->zone);
    return;
  }
  for (unsigned i = 0; i < h->nranges; i++) {
    const bt_hours_range_t *r = &h->ranges[i];
    if (i > 0)
      o += (size_t)snprintf(buf + o, len - o, ",");
    o += put_days(r->days, buf + o, len - o);
    o += (size_t)snprintf(buf + o, len - o, " %02u:%02u-%02u:%02u", r->start / 60,
                          r->start % 60, r->end / 60, r->end % 60);
  }
  snprintf(buf + o, len - o, " %s", h->zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  char err[200];
  bt_hours_t h;
  memset(&h, 0xa5, sizeof h);
  err[0] = '\0';
  int rc = bt_hours_parse(s, &h, err, sizeof err);
  if (rc != 0) {
    FUZZ_CHECK(rc == BT_EINVAL, "rc %d", rc);
    FUZZ_CHECK(err[0] != '\0', "refused without a reason");
    free(s);
    return 0;
  }
  FUZZ_CHECK(h.zone[0] != '\0' && memchr(h.zone, '\0', sizeof h.zone) != NULL, "zone");
  FUZZ_CHECK(bt_hours_zone_exists(h.zone), "zone %s does not exist", h.zone);
  if (!h.always) {
    FUZZ_CHECK(h.nranges >= 1 && h.nranges <= BT_HOURS_MAX_RANGES, "%u ranges", h.nranges);
    for (unsigned i = 0; i < h.nranges; i++) {
      const bt_hours_range_t *r = &h.ranges[i];
      FUZZ_CHECK(r->days != 0 && r->days < 0x80, "days 0x%x", r->days);
      FUZZ_CHECK(r->start <= 1439 && r->end <= 1440, "range %u-%u", r->start, r->end);
      for (int d = 0; d < 7; d++)
        if ((r->days >> d) & 1u)
          FUZZ_CHECK(bt_hours_contains(&h, d, r->start), "range %u misses its start", i);
    }
    FUZZ_CHECK(!bt_hours_contains(&h, 7, 0) && !bt_hours_contains(&h, -1, 0) &&
                   !bt_hours_contains(&h, 0, 1440) && !bt_hours_contains(&h, 0, -1),
               "an out-of-range day or minute is inside");
  }
  bool inside;
  FUZZ_CHECK(bt_hours_at(&h, 1800000000000LL, &inside) == 0 &&
                 bt_hours_at(&h, -86400000LL, &inside) == 0,
             "bt_hours_at fails for zone %s", h.zone);

  char text[512];
  canonical(&h, text, sizeof text);
  if (strlen(text) <= BT_HOURS_TEXT_MAX) {
    bt_hours_t h2;
    memset(&h2, 0x5a, sizeof h2);
    FUZZ_CHECK(bt_hours_parse(text, &h2, err, sizeof err) == 0,
               "canonical \"%s\" of \"%s\" is refused: %s", text, s, err);
    FUZZ_CHECK(h2.always == h.always && strcmp(h2.zone, h.zone) == 0,
               "\"%s\" and \"%s\" differ", text, s);
    if (!h.always) {
      FUZZ_CHECK(h2.nranges == h.nranges, "\"%s\" and \"%s\" differ in ranges", text, s);
      for (unsigned i = 0; i < h.nranges; i++)
        FUZZ_CHECK(h2.ranges[i].days == h.ranges[i].days &&
                       h2.ranges[i].start == h.ranges[i].start &&
                       h2.ranges[i].end == h.ranges[i].end,
                   "\"%s\" and \"%s\" differ in range %u", text, s, i);
    }
  }
  free(s);
  return 0;
}

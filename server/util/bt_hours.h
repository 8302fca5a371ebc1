/*
 * Vendor working hours: "Mon-Fri 08:00-18:00 Europe/Berlin".
 *
 * The job is split so the pure core never reads a clock or a zone file:
 *   - bt_hours_parse() and bt_hours_contains() are pure (no I/O, no globals);
 *     parse only touches the zone table to check that the zone exists;
 *   - bt_hours_local() is the edge: it turns a UTC instant into a local weekday
 *     and minute of a named IANA zone, by reading the zone's TZif file itself
 *     (never setenv("TZ")/tzset, so the process's own local time is untouched).
 *
 * Grammar (spaces are free around ',', '-' and between words; day names are
 * case-insensitive; everything else is strict):
 *
 *   HOURS := RANGE { ',' RANGE } ZONE  |  '24/7' [ZONE]  |  ''   (empty = always)
 *   RANGE := DAYS HH:MM '-' HH:MM
 *   DAYS  := ITEM { ',' ITEM }          ITEM := DAY | DAY '-' DAY   (may wrap: Sat-Mon)
 *   DAY   := Mon | Tue | Wed | Thu | Fri | Sat | Sun
 *   ZONE  := an IANA name ("Europe/Berlin") or "UTC"; always the last word
 *
 * HH:MM runs from 00:00 to 23:59, and 24:00 is allowed as an end. A range whose
 * end is not after its start crosses midnight and belongs to the day it starts
 * on: "Fri 22:00-06:00" is Friday 22:00 to Saturday 06:00, and "Mon 00:00-00:00"
 * is all of Monday. At most BT_HOURS_MAX_RANGES ranges, at most
 * BT_HOURS_TEXT_MAX bytes of text.
 *
 * The zone table is a process-wide cache without locks: like the rest of the
 * broker, call these functions from one thread (the loop thread).
 */
#ifndef BT_HOURS_H
#define BT_HOURS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_HOURS_MAX_RANGES 8
#define BT_HOURS_TEXT_MAX 128
#define BT_HOURS_ZONE_MAX 64 /* buffer size; names are at most 63 bytes */

typedef struct {
  uint8_t days;   /* bit d set: the range starts on weekday d (0=Mon..6=Sun) */
  uint16_t start; /* minute of the day it starts, 0..1439 */
  uint16_t end;   /* 1..1440; end <= start crosses into the next day */
} bt_hours_range_t;

typedef struct {
  bool always; /* "24/7" or empty text: ranges are ignored */
  uint8_t nranges;
  bt_hours_range_t ranges[BT_HOURS_MAX_RANGES];
  char zone[BT_HOURS_ZONE_MAX]; /* IANA name; "UTC" when the text named none */
} bt_hours_t;

/* Parses working hours (grammar above). text is borrowed; NULL counts as empty.
 * Returns 0 and fills *out, or BT_EINVAL and, when err is not NULL, a one-line
 * lowercase reason naming what is wrong (e.g. `unknown day "Mnd"`) in err
 * (cut to err_len). *out is left untouched on failure. Checks that the zone
 * exists, which may read its zone file once (see bt_hours_zone_exists). */
int bt_hours_parse(const char *text, bt_hours_t *out, char *err, size_t err_len);

/* Pure: true when local weekday wday (0=Mon..6=Sun) and minute of the day
 * (0..1439) fall inside h. Out-of-range arguments are never inside (unless
 * h->always). h is borrowed. */
bool bt_hours_contains(const bt_hours_t *h, int wday, int minute);

/* Edge: the local weekday (0=Mon..6=Sun) and minute of the day (0..1439) of
 * the UTC instant at (milliseconds since the epoch) in zone. Returns 0, or
 * BT_EINVAL for a bad or unknown zone (outputs untouched). The first call for a
 * zone reads its TZif file; later calls do no I/O. zone is borrowed. */
int bt_hours_local(const char *zone, int64_t at, int *wday, int *minute);

/* Edge: the zone's offset from UTC in seconds (east positive, DST included) at
 * the instant at. Returns 0 or BT_EINVAL like bt_hours_local. */
int bt_hours_offset(const char *zone, int64_t at, int32_t *utoff);

/* True when zone is a well-formed name ([A-Za-z0-9_+-/], no leading or
 * trailing '/', no empty or dot components, under BT_HOURS_ZONE_MAX bytes) and
 * its TZif file loads. "UTC" always exists, even without tzdata. May read the
 * zone file (once; loaded zones are cached, unknown names are not). */
bool bt_hours_zone_exists(const char *zone);

/* Convenience: *inside = whether the instant at falls in h, via bt_hours_local
 * (no zone lookup at all when h->always). Returns 0 or BT_EINVAL (zone gone).
 * h is borrowed. */
int bt_hours_at(const bt_hours_t *h, int64_t at, bool *inside);

/* Frees the cached zones; later calls reload them from disk. For shutdown, and
 * after tzdata changed under a long-running process. */
void bt_hours_cache_close(void);

/* Internal, for tests: read zone files from dir instead of $TZDIR or
 * /usr/share/zoneinfo (NULL restores the default). Clears the cache. dir is
 * copied. */
void bt_hours__set_zonedir(const char *dir);

#endif

/*
 * Clocks and the duration/time syntax of the CLI and config:
 *   durations: "250ms", "90s", "15m", "2h", "3d", or a bare number of seconds;
 *   times: RFC 3339 ("2026-11-22T10:00:00Z", fractional seconds and offsets).
 * Monotonic milliseconds are uint64_t named *_ms; wall-clock UTC is int64_t
 * milliseconds since the Unix epoch named *_at.
 */
#ifndef BT_TIME_H
#define BT_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
uint64_t bt_mono_ms(void);
/* Wall clock, UTC milliseconds since the epoch. */
int64_t bt_wall_ms(void);

/* Parses a duration into milliseconds. Returns 0 or BT_EINVAL (empty, junk,
 * negative, overflow or more than 100 years). */
int bt_parse_duration(const char *s, uint64_t *out_ms);

/* Parses an RFC 3339 timestamp into UTC milliseconds. Returns 0 or BT_EINVAL. */
int bt_parse_time(const char *s, int64_t *out_at);

/* Parses either a duration (taken as relative to now_at) or an RFC 3339 time.
 * Used for --deadline and --not-before. Returns 0 or BT_EINVAL. */
int bt_parse_when(const char *s, int64_t now_at, int64_t *out_at);

/* Formats UTC milliseconds as "2026-11-22T10:00:00.123Z". Returns buf. buf must
 * hold at least 25 bytes. */
char *bt_time_format(int64_t at, char *buf, size_t len);

/* Formats a duration compactly: "850ms", "12.3s", "4m10s", "2h3m", "3d4h". */
char *bt_duration_format(uint64_t ms, char *buf, size_t len);

#endif

/*
 * Vendor working hours; see bt_hours.h for the grammar.
 *
 * This file owns two things: the pure parser/matcher of the hours text, and a
 * small reader of TZif zone files (RFC 8536) with a process-wide cache of the
 * zones it has loaded. It must never call setenv("TZ"), tzset() or
 * localtime(): those change the process's idea of local time under every other
 * caller (the logger among them), so the zone arithmetic is done here instead.
 *
 * Zone lookup: the 64-bit data of a version 2+ file (the 32-bit data of a
 * version 1 file) gives transition instants and the offset in force after
 * each; an instant before the first transition takes time type 0, and one at
 * or after the last transition follows the POSIX TZ footer ("CET-1CEST,
 * M3.5.0,M10.5.0/3"), which is all a "slim" file has for the future and what a
 * "fat" one has after 2037. Files with leap-second records (right/...) are
 * refused: their transition times are not POSIX time.
 */
#include "bt_hours.h"

#include "bt_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- small arithmetic ------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), valid for any year an int64_t instant can reach. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* The year of a day counted from 1970-01-01 (civil_from_days, year only). */
static int64_t year_from_days(int64_t z) {
  z += 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10 ? 1 : 0);
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_len(int64_t y, int m) {
  static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* ASCII only: the hours text and zone names are not locale text. */
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* --- POSIX TZ strings (the TZif footer) ------------------------------------ */

typedef struct {
  char kind;    /* 'J': day 1..365, Feb 29 never counted; 'D': day 0..365; 'M' */
  int n;        /* for 'J' and 'D' */
  int m, w, d;  /* for 'M': month 1..12, week 1..5 (5 = last), weekday 0=Sun */
  int32_t secs; /* local time of day of the change; may be < 0 or > 24h */
} rdate_t;

typedef struct {
  int32_t std_utoff, dst_utoff; /* seconds east of UTC */
  bool has_dst;
  rdate_t start; /* into DST, in standard local time */
  rdate_t end;   /* out of DST, in DST local time */
} ptz_t;

static bool ptz_name(const char **pp) {
  const char *p = *pp, *s;
  if (*p == '<') {
    s = ++p;
    while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-')
      p++;
    if (*p != '>' || p - s < 3)
      return false;
    p++;
  } else {
    s = p;
    while (is_alpha(*p))
      p++;
    if (p - s < 3)
      return false;
  }
  *pp = p;
  return true;
}

static bool ptz_num(const char **pp, int maxdigits, int min, int max, int *out) {
  const char *p = *pp;
  int v = 0, n = 0;
  while (is_digit(*p) && n < maxdigits) {
    v = v * 10 + (*p++ - '0');
    n++;
  }
  if (n == 0 || is_digit(*p) || v < min || v > max)
    return false;
  *pp = p;
  *out = v;
  return true;
}

/* [+-]h[hh][:mm[:ss]] into seconds. */
static bool ptz_hms(const char **pp, int maxh, int32_t *out) {
  const char *p = *pp;
  int sign = 1, h, m = 0, s = 0;
  if (*p == '+' || *p == '-')
    sign = *p++ == '-' ? -1 : 1;
  if (!ptz_num(&p, 3, 0, maxh, &h))
    return false;
  if (*p == ':') {
    p++;
    if (!ptz_num(&p, 2, 0, 59, &m))
      return false;
    if (*p == ':') {
      p++;
      if (!ptz_num(&p, 2, 0, 59, &s))
        return false;
    }
  }
  *pp = p;
  *out = sign * (h * 3600 + m * 60 + s);
  return true;
}

static bool ptz_date(const char **pp, rdate_t *r) {
  const char *p = *pp;
  memset(r, 0, sizeof *r);
  if (*p == 'J') {
    p++;
    r->kind = 'J';
    if (!ptz_num(&p, 3, 1, 365, &r->n))
      return false;
  } else if (*p == 'M') {
    p++;
    r->kind = 'M';
    if (!ptz_num(&p, 2, 1, 12, &r->m) || *p++ != '.' || !ptz_num(&p, 1, 1, 5, &r->w) ||
        *p++ != '.' || !ptz_num(&p, 1, 0, 6, &r->d))
      return false;
  } else {
    r->kind = 'D';
    if (!ptz_num(&p, 3, 0, 365, &r->n))
      return false;
  }
  r->secs = 2 * 3600;
  if (*p == '/') {
    p++;
    /* RFC 8536 extends POSIX here: -167..167 hours (Nuuk uses "/-1"). */
    if (!ptz_hms(&p, 167, &r->secs))
      return false;
  }
  *pp = p;
  return true;
}

/* Parses "std offset [dst [offset] [,start[/time],end[/time]]]". */
static bool ptz_parse(const char *s, ptz_t *z) {
  const char *p = s;
  int32_t off;
  memset(z, 0, sizeof *z);
  if (!ptz_name(&p) || !ptz_hms(&p, 24, &off))
    return false;
  z->std_utoff = -off; /* POSIX offsets count west as positive */
  if (*p == '\0')
    return true;
  if (!ptz_name(&p))
    return false;
  z->has_dst = true;
  z->dst_utoff = z->std_utoff + 3600;
  if (*p != '\0' && *p != ',') {
    if (!ptz_hms(&p, 24, &off))
      return false;
    z->dst_utoff = -off;
  }
  if (*p == '\0') {
    /* No rule: POSIX leaves it to the implementation; glibc and tzcode use
     * the US rules. TZif footers always carry one when there is DST. */
    p = ",M3.2.0,M11.1.0";
  }
  if (*p++ != ',' || !ptz_date(&p, &z->start) || *p++ != ',' || !ptz_date(&p, &z->end))
    return false;
  return *p == '\0';
}

/* Seconds since the epoch of the local wall time of r in year y, read as if
 * local time were UTC (the caller subtracts the offset in force). */
static int64_t rdate_local(const rdate_t *r, int64_t y) {
  int64_t days;
  if (r->kind == 'J') {
    days = days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60 ? 1 : 0);
  } else if (r->kind == 'D') {
    days = days_from_civil(y, 1, 1) + r->n;
  } else {
    int64_t first = days_from_civil(y, r->m, 1);
    int wd1 = (int)floor_mod(first + 4, 7); /* 1970-01-01 was a Thursday (4) */
    int mday = 1 + (r->d - wd1 + 7) % 7 + 7 * (r->w - 1);
    while (mday > month_len(y, r->m))
      mday -= 7;
    days = first + mday - 1;
  }
  return days * 86400 + r->secs;
}

/* The offset at UTC second t under the footer rule. The changes of the year
 * before, the year of and the year after t are put in order and the last one
 * at or before t wins; this is right for either hemisphere and for rules that
 * touch the new year (all-year DST is "0/0,J365/25"). */
static int32_t ptz_utoff(const ptz_t *z, int64_t t) {
  if (!z->has_dst)
    return z->std_utoff;
  struct {
    int64_t at;
    int dst;
  } ev[6] = {{0, 0}}, tmp;
  const int n = 6;
  int64_t y = year_from_days(floor_div(t + z->std_utoff, 86400));
  for (int i = 0; i < 3; i++) {
    ev[2 * i].at = rdate_local(&z->start, y - 1 + i) - z->std_utoff;
    ev[2 * i].dst = 1;
    ev[2 * i + 1].at = rdate_local(&z->end, y - 1 + i) - z->dst_utoff;
    ev[2 * i + 1].dst = 0;
  }
  /* Insertion sort; on a tie the end goes first, so back-to-back DST years
   * stay DST. */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && (ev[j - 1].at > ev[j].at ||
                              (ev[j - 1].at == ev[j].at && ev[j - 1].dst > ev[j].dst));
         j--) {
      tmp = ev[j];
      ev[j] = ev[j - 1];
      ev[j - 1] = tmp;
    }
  int dst = !ev[0].dst;
  for (int i = 0; i < n && ev[i].at <= t; i++)
    dst = ev[i].dst;
  return dst ? z->dst_utoff : z->std_utoff;
}

/* --- TZif files -------------------------------------------------------------- */

#define TZIF_MAX_BYTES (256 * 1024) /* the largest Debian zone is under 4 KiB */
#define TZIF_MAX_TRANS 65536
#define TZIF_MAX_UTOFF (26 * 3600)
#define ZONE_CACHE_SLOTS 64

typedef struct {
  char name[BT_HOURS_ZONE_MAX];
  uint32_t ntrans;
  int64_t *trans;  /* ascending UTC seconds */
  uint8_t *idx;    /* type in force from trans[i] on */
  uint32_t ntypes; /* >= 1 */
  int32_t *utoff;  /* per type */
  bool has_footer;
  ptz_t footer;
} zone_t;

typedef struct {
  uint32_t isut, isstd, leap, time, type, chr;
} tzif_counts_t;

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p) {
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static void zone_free(zone_t *z) {
  if (z == NULL)
    return;
  free(z->trans);
  free(z->idx);
  free(z->utoff);
  free(z);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p == NULL)
    abort();
  return p;
}

static bool tzif_header(const uint8_t *b, size_t len, size_t off, tzif_counts_t *c,
                        uint8_t *version) {
  if (off > len || len - off < 44 || memcmp(b + off, "TZif", 4) != 0)
    return false;
  *version = b[off + 4];
  const uint8_t *p = b + off + 20;
  c->isut = be32(p);
  c->isstd = be32(p + 4);
  c->leap = be32(p + 8);
  c->time = be32(p + 12);
  c->type = be32(p + 16);
  c->chr = be32(p + 20);
  return true;
}

static uint64_t tzif_block_size(const tzif_counts_t *c, unsigned tsize) {
  return (uint64_t)c->time * tsize + c->time + (uint64_t)c->type * 6 + c->chr +
         (uint64_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Reads the data block at off (after its header) into z. */
static bool tzif_block(const uint8_t *b, size_t len, size_t off, const tzif_counts_t *c,
                       unsigned tsize, zone_t *z) {
  if (c->type < 1 || c->type > 256 || c->time > TZIF_MAX_TRANS ||
      (c->isstd != 0 && c->isstd != c->type) || (c->isut != 0 && c->isut != c->type))
    return false;
  if (c->leap != 0)
    return false; /* right/...: leap-second time, not POSIX time */
  if (tzif_block_size(c, tsize) > len - off)
    return false;
  const uint8_t *p = b + off;
  z->ntrans = c->time;
  z->ntypes = c->type;
  z->trans = xcalloc(c->time, sizeof *z->trans);
  z->idx = xcalloc(c->time, sizeof *z->idx);
  z->utoff = xcalloc(c->type, sizeof *z->utoff);
  for (uint32_t i = 0; i < c->time; i++, p += tsize) {
    z->trans[i] = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
    if (i > 0 && z->trans[i] <= z->trans[i - 1])
      return false;
  }
  for (uint32_t i = 0; i < c->time; i++, p++) {
    if (*p >= c->type)
      return false;
    z->idx[i] = *p;
  }
  for (uint32_t i = 0; i < c->type; i++, p += 6) {
    int32_t u = (int32_t)be32(p);
    if (u < -TZIF_MAX_UTOFF || u > TZIF_MAX_UTOFF || p[4] > 1)
      return false;
    z->utoff[i] = u;
  }
  return true;
}

/* Parses a whole TZif file. Returns owned or NULL when it is not a usable one. */
static zone_t *tzif_parse(const uint8_t *b, size_t len) {
  tzif_counts_t c;
  uint8_t version;
  if (!tzif_header(b, len, 0, &c, &version))
    return NULL;
  zone_t *z = xcalloc(1, sizeof *z);
  if (version < '2') {
    if (!tzif_block(b, len, 44, &c, 4, z))
      goto bad;
    return z;
  }
  /* Version 2+: skip the 32-bit data (which may be a stub) to the 64-bit
   * header, its data and the footer. */
  uint64_t skip = tzif_block_size(&c, 4);
  if (skip > len - 44)
    goto bad;
  size_t off = 44 + (size_t)skip;
  if (!tzif_header(b, len, off, &c, &version) || version < '2' ||
      !tzif_block(b, len, off + 44, &c, 8, z))
    goto bad;
  off += 44 + (size_t)tzif_block_size(&c, 8);
  /* The footer: "\n" POSIX-TZ "\n"; empty means no rule beyond the table. */
  if (off >= len || b[off] != '\n')
    goto bad;
  const uint8_t *nl = memchr(b + off + 1, '\n', len - off - 1);
  if (nl == NULL)
    goto bad;
  size_t flen = (size_t)(nl - (b + off + 1));
  if (flen > 0) {
    char tz[128];
    if (flen >= sizeof tz)
      goto bad;
    memcpy(tz, b + off + 1, flen);
    tz[flen] = '\0';
    if (!ptz_parse(tz, &z->footer))
      goto bad;
    z->has_footer = true;
  }
  return z;
bad:
  zone_free(z);
  return NULL;
}

/* Reads a regular file of at most TZIF_MAX_BYTES. Returns 0 or -1. */
static int read_small_file(const char *path, uint8_t **out, size_t *out_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return -1;
  struct stat st;
  uint8_t *buf = NULL;
  size_t len = 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TZIF_MAX_BYTES)
    goto fail;
  buf = xcalloc((size_t)st.st_size + 1, 1);
  while (len < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* shrank under us: parse what there is */
    len += (size_t)n;
  }
  close(fd);
  *out = buf;
  *out_len = len;
  return 0;
fail:
  free(buf);
  close(fd);
  return -1;
}

/* --- the zone table ----------------------------------------------------------- */

static zone_t *zone_cache[ZONE_CACHE_SLOTS];
static unsigned zone_cache_next; /* round-robin victim once the table is full */
static char zone_dir_override[256];

static int32_t utc_utoff[1] = {0};
static const zone_t utc_zone = {.name = "UTC", .ntypes = 1, .utoff = utc_utoff};

static bool valid_zone_name(const char *s) {
  size_t n = strnlen(s, BT_HOURS_ZONE_MAX);
  if (n == 0 || n >= BT_HOURS_ZONE_MAX || s[0] == '/' || s[n - 1] == '/')
    return false;
  if (strstr(s, "..") != NULL || strstr(s, "//") != NULL)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '+' && c != '-' && c != '/')
      return false;
  }
  /* A link to the host's own setting, not a zone anyone can name. */
  return strcmp(s, "localtime") != 0;
}

static const char *zone_dir(void) {
  if (zone_dir_override[0] != '\0')
    return zone_dir_override;
  const char *env = getenv("TZDIR"); /* glibc honours it too */
  if (env != NULL && env[0] == '/' && strlen(env) < 200)
    return env;
  return "/usr/share/zoneinfo";
}

/* The zone named name, loading it on first use. Returns borrowed or NULL. */
static const zone_t *zone_get(const char *name) {
  if (name == NULL || !valid_zone_name(name))
    return NULL;
  if (strcmp(name, "UTC") == 0)
    return &utc_zone;
  for (unsigned i = 0; i < ZONE_CACHE_SLOTS; i++)
    if (zone_cache[i] != NULL && strcmp(zone_cache[i]->name, name) == 0)
      return zone_cache[i];

  char path[512];
  int w = snprintf(path, sizeof path, "%s/%s", zone_dir(), name);
  if (w < 0 || (size_t)w >= sizeof path)
    return NULL;
  uint8_t *buf;
  size_t len;
  if (read_small_file(path, &buf, &len) != 0)
    return NULL;
  zone_t *z = tzif_parse(buf, len);
  free(buf);
  if (z == NULL)
    return NULL; /* unknown names are not cached: they cost one open() each */
  snprintf(z->name, sizeof z->name, "%s", name);

  unsigned slot = ZONE_CACHE_SLOTS;
  for (unsigned i = 0; i < ZONE_CACHE_SLOTS && slot == ZONE_CACHE_SLOTS; i++)
    if (zone_cache[i] == NULL)
      slot = i;
  if (slot == ZONE_CACHE_SLOTS) {
    slot = zone_cache_next++ % ZONE_CACHE_SLOTS;
    zone_free(zone_cache[slot]);
  }
  zone_cache[slot] = z;
  return z;
}

/* The offset in force at UTC second t. */
static int32_t zone_utoff(const zone_t *z, int64_t t) {
  if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
    if (z->has_footer)
      return ptz_utoff(&z->footer, t);
    return z->utoff[z->ntrans == 0 ? 0 : z->idx[z->ntrans - 1]];
  }
  if (t < z->trans[0])
    return z->utoff[0];
  uint32_t lo = 0, hi = z->ntrans - 1; /* trans[lo] <= t < trans[hi] */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (z->trans[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  return z->utoff[z->idx[lo]];
}

bool bt_hours_zone_exists(const char *zone) { return zone_get(zone) != NULL; }

int bt_hours_offset(const char *zone, int64_t at, int32_t *utoff) {
  const zone_t *z = zone_get(zone);
  if (z == NULL)
    return BT_EINVAL;
  *utoff = zone_utoff(z, floor_div(at, 1000));
  return 0;
}

int bt_hours_local(const char *zone, int64_t at, int *wday, int *minute) {
  const zone_t *z = zone_get(zone);
  if (z == NULL)
    return BT_EINVAL;
  int64_t t = floor_div(at, 1000);
  int64_t local = t + zone_utoff(z, t);
  int64_t days = floor_div(local, 86400);
  *minute = (int)((local - days * 86400) / 60);
  *wday = (int)floor_mod(days + 3, 7); /* 1970-01-01 was a Thursday (3 from Mon) */
  return 0;
}

void bt_hours_cache_close(void) {
  for (unsigned i = 0; i < ZONE_CACHE_SLOTS; i++) {
    zone_free(zone_cache[i]);
    zone_cache[i] = NULL;
  }
  zone_cache_next = 0;
}

void bt_hours__set_zonedir(const char *dir) {
  snprintf(zone_dir_override, sizeof zone_dir_override, "%s", dir ? dir : "");
  bt_hours_cache_close();
}

/* --- the hours text ------------------------------------------------------------ */

typedef struct {
  const char *p; /* cursor */
  char *err;
  size_t err_len;
} parser_t;

/* How much of a snippet an error message quotes. */
#define SNIP 24

__attribute__((format(printf, 2, 3))) static int perr(parser_t *ps, const char *fmt, ...) {
  if (ps->err != NULL && ps->err_len > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err, ps->err_len, fmt, ap);
    va_end(ap);
  }
  return BT_EINVAL;
}

static void skip_space(parser_t *ps) {
  while (is_space(*ps->p))
    ps->p++;
}

/* Length of the token at p: up to a space, ',', '-' or the end. */
static int token_len(const char *p) {
  int n = 0;
  while (p[n] != '\0' && !is_space(p[n]) && p[n] != ',' && p[n] != '-')
    n++;
  return n;
}

static int clip(int n) { return n > SNIP ? SNIP : n; }

static int parse_day(parser_t *ps, int *day) {
  static const char names[7][4] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  const char *p = ps->p;
  int n = 0;
  while (is_alpha(p[n]))
    n++;
  if (n == 0) {
    if (*p == '\0')
      return perr(ps, "expected a day (Mon..Sun) at the end of the text");
    int t = token_len(p);
    return perr(ps, "expected a day (Mon..Sun) at \"%.*s\"", clip(t ? t : 1), p);
  }
  for (int d = 0; n == 3 && d < 7; d++) {
    if (lower(p[0]) == names[d][0] && lower(p[1]) == names[d][1] &&
        lower(p[2]) == names[d][2]) {
      *day = d;
      ps->p += 3;
      return 0;
    }
  }
  return perr(ps, "unknown day \"%.*s\" (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
              clip(n), p);
}

/* DAYS: a day, a day range (which may wrap) or a comma list of those. A ','
 * inside DAYS is always followed by another day, since a range's times must
 * come before the next range. */
static int parse_days(parser_t *ps, uint8_t *mask) {
  uint8_t m = 0;
  for (;;) {
    int a, b, rc;
    if ((rc = parse_day(ps, &a)) != 0)
      return rc;
    b = a;
    skip_space(ps);
    if (*ps->p == '-') {
      ps->p++;
      skip_space(ps);
      if ((rc = parse_day(ps, &b)) != 0)
        return rc;
      skip_space(ps);
    }
    for (int d = a;; d = (d + 1) % 7) {
      m |= (uint8_t)(1u << d);
      if (d == b)
        break;
    }
    if (*ps->p != ',')
      break;
    ps->p++;
    skip_space(ps);
  }
  *mask = m;
  return 0;
}

static int parse_time(parser_t *ps, bool is_end, uint16_t *minute) {
  const char *p = ps->p;
  int n = token_len(p);
  if (n == 0) {
    if (*p == '\0')
      return perr(ps, "missing time (HH:MM) at the end of the text");
    return perr(ps, "expected a time (HH:MM) at \"%.*s\"", clip(token_len(p + 1) + 1), p);
  }
  if (n != 5 || !is_digit(p[0]) || !is_digit(p[1]) || p[2] != ':' || !is_digit(p[3]) ||
      !is_digit(p[4]))
    return perr(ps, "bad time \"%.*s\" (expected HH:MM)", clip(n), p);
  int h = (p[0] - '0') * 10 + (p[1] - '0');
  int m = (p[3] - '0') * 10 + (p[4] - '0');
  if (h > 24)
    return perr(ps, "bad time \"%.5s\" (hours run from 00 to 24)", p);
  if (m > 59)
    return perr(ps, "bad time \"%.5s\" (minutes run from 00 to 59)", p);
  if (h == 24 && m != 0)
    return perr(ps, "bad time \"%.5s\" (the latest time is 24:00)", p);
  if (h == 24 && !is_end)
    return perr(ps, "bad time \"24:00\" (24:00 may only end a range)");
  *minute = (uint16_t)(h * 60 + m);
  ps->p += 5;
  return 0;
}

/* ZONE: the rest of the text, which must be one word. */
static int parse_zone(parser_t *ps, bt_hours_t *h) {
  const char *z = ps->p;
  int n = 0;
  while (z[n] != '\0' && !is_space(z[n]))
    n++;
  const char *rest = z + n;
  while (is_space(*rest))
    rest++;
  if (*rest != '\0')
    return perr(ps,
                "unexpected \"%.*s\" after \"%.*s\" (the zone must be the last word; "
                "separate ranges with ',')",
                clip((int)strlen(rest)), rest, clip(n), z);
  if (n >= BT_HOURS_ZONE_MAX)
    return perr(ps, "zone name \"%.*s...\" is longer than %d bytes", SNIP, z,
                BT_HOURS_ZONE_MAX - 1);
  memcpy(h->zone, z, (size_t)n);
  h->zone[n] = '\0';
  if (!valid_zone_name(h->zone))
    return perr(ps, "bad zone name \"%s\" (expected an IANA name such as Europe/Berlin)",
                h->zone);
  if (!bt_hours_zone_exists(h->zone))
    return perr(ps, "unknown zone \"%s\"", h->zone);
  ps->p = rest;
  return 0;
}

int bt_hours_parse(const char *text, bt_hours_t *out, char *err, size_t err_len) {
  parser_t ps = {.p = text ? text : "", .err = err, .err_len = err_len};
  bt_hours_t h;
  int rc;
  memset(&h, 0, sizeof h);
  if (err != NULL && err_len > 0)
    err[0] = '\0';

  /* The length is checked after the ranges: nine ranges never fit in 128
   * bytes, and "more than 8 ranges" says better what to change. */
  size_t len = strlen(ps.p);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)ps.p[i];
    if (!is_space((char)c) && (c <= 0x20 || c >= 0x7f))
      return perr(&ps, "unexpected character 0x%02x at byte %zu", c, i);
  }

  skip_space(&ps);
  if (*ps.p == '\0' || (strncmp(ps.p, "24/7", 4) == 0 &&
                        (ps.p[4] == '\0' || is_space(ps.p[4])))) {
    h.always = true;
    snprintf(h.zone, sizeof h.zone, "UTC");
    if (len > BT_HOURS_TEXT_MAX)
      return perr(&ps, "hours text is longer than %d bytes (%zu)", BT_HOURS_TEXT_MAX, len);
    if (*ps.p != '\0') {
      ps.p += 4;
      skip_space(&ps);
      const char *w = ps.p;
      while (*w != '\0' && !is_space(*w))
        w++;
      while (is_space(*w))
        w++;
      if (*w != '\0')
        return perr(&ps, "unexpected \"%.*s\" after 24/7 (only a zone may follow)",
                    clip((int)strlen(ps.p)), ps.p);
      if (*ps.p != '\0' && (rc = parse_zone(&ps, &h)) != 0)
        return rc;
    }
    *out = h;
    return 0;
  }

  for (;;) {
    if (h.nranges == BT_HOURS_MAX_RANGES)
      return perr(&ps, "more than %d ranges", BT_HOURS_MAX_RANGES);
    bt_hours_range_t *r = &h.ranges[h.nranges];
    if ((rc = parse_days(&ps, &r->days)) != 0)
      return rc;
    skip_space(&ps);
    if ((rc = parse_time(&ps, false, &r->start)) != 0)
      return rc;
    skip_space(&ps);
    if (*ps.p != '-') {
      if (*ps.p == '\0')
        return perr(&ps, "missing end time of the range at the end of the text");
      return perr(&ps, "expected '-' between the times of a range at \"%.*s\"",
                  clip(token_len(ps.p) ? token_len(ps.p) : 1), ps.p);
    }
    ps.p++;
    skip_space(&ps);
    if ((rc = parse_time(&ps, true, &r->end)) != 0)
      return rc;
    h.nranges++;
    skip_space(&ps);
    if (*ps.p != ',')
      break;
    ps.p++;
    skip_space(&ps);
  }
  if (len > BT_HOURS_TEXT_MAX)
    return perr(&ps, "hours text is longer than %d bytes (%zu)", BT_HOURS_TEXT_MAX, len);
  if (*ps.p == '\0')
    return perr(&ps, "missing zone after the last range (e.g. Europe/Berlin or UTC)");
  if ((rc = parse_zone(&ps, &h)) != 0)
    return rc;
  *out = h;
  return 0;
}

bool bt_hours_contains(const bt_hours_t *h, int wday, int minute) {
  if (h->always)
    return true;
  if (wday < 0 || wday > 6 || minute < 0 || minute >= 1440)
    return false;
  int prev = (wday + 6) % 7;
  for (unsigned i = 0; i < h->nranges && i < BT_HOURS_MAX_RANGES; i++) {
    const bt_hours_range_t *r = &h->ranges[i];
    bool today = (r->days >> wday) & 1u;
    if (r->start < r->end) {
      if (today && minute >= r->start && minute < r->end)
        return true;
    } else {
      /* Crosses midnight: the evening part today, the morning part belongs to
       * a range that started yesterday. */
      if (today && minute >= r->start)
        return true;
      if (((r->days >> prev) & 1u) && minute < r->end)
        return true;
    }
  }
  return false;
}

int bt_hours_at(const bt_hours_t *h, int64_t at, bool *inside) {
  if (h->always) {
    *inside = true;
    return 0;
  }
  int wday, minute, rc;
  if ((rc = bt_hours_local(h->zone, at, &wday, &minute)) != 0)
    return rc;
  *inside = bt_hours_contains(h, wday, minute);
  return 0;
}

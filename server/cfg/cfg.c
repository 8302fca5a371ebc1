/* The configuration table and its parsers; see cfg.h. */
#include "cfg.h"

#include "bt_err.h"
#include "bt_log.h"
#include "bt_time.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(bt_config_t, f)
#define MS (1000ull)
#define MIB (1024ull * 1024)
/* Read once at start: changing it needs a restart (the flags column says so). */
#define RESTART 0u

/* Columns: name, type, default, min, max, field, environment variable, help,
 * flags. BT_CFG_RUNTIME keys are the tunables the shell can hand the core (or
 * the logger) while it runs without breaking an invariant (see
 * bt_core_reconfigure); everything that shaped a socket, a connection, an
 * agent's contract (heartbeat, lease) or a limit already told to a peer is
 * RESTART. */
const bt_cfg_key_t bt_cfg_keys[] = {
    {"db", BT_CFG_STR, NULL, 0, 0, OFF(db), "BATON_DB",
     "PostgreSQL conninfo or URI; unset = a private cluster under DATA_DIR/pg",
     RESTART | BT_CFG_CONNINFO},
    {"data_dir", BT_CFG_STR, "./var", 0, 0, OFF(data_dir), "BATON_DATA_DIR",
     "directory for the control socket and the embedded PostgreSQL", RESTART},
    {"agents", BT_CFG_STR, "tcp://127.0.0.1:7800", 0, 0, OFF(agents), "BATON_AGENTS",
     "nanomsg endpoint the agents connect to", RESTART},
    {"control", BT_CFG_STR, NULL, 0, 0, OFF(control), "BATON_CONTROL",
     "control socket path; unset = DATA_DIR/baton.sock", RESTART},
    {"metrics", BT_CFG_STR, "127.0.0.1:9464", 0, 0, OFF(metrics), "BATON_METRICS",
     "HOST:PORT for Prometheus metrics", RESTART},
    {"admin_token", BT_CFG_STR, NULL, 0, 0, OFF(admin_token), "BATON_ADMIN_TOKEN",
     "token a tcp:// control endpoint requires of every request; never logged", BT_CFG_SECRET},
    {"log_level", BT_CFG_STR, "info", 0, 0, OFF(log_level), NULL,
     "debug, info, warn or error", BT_CFG_RUNTIME},
    {"pg_bin_dir", BT_CFG_STR, NULL, 0, 0, OFF(pg_bin_dir), "BATON_PG_BINDIR",
     "PostgreSQL server binaries for the embedded default; unset = found", RESTART},
    {"pg_user", BT_CFG_STR, NULL, 0, 0, OFF(pg_user), NULL,
     "OS user the embedded PostgreSQL runs as when batond runs as root", RESTART},
    {"user", BT_CFG_STR, NULL, 0, 0, OFF(user), "BATON_USER",
     "started as root: switch to this OS user once the sockets are bound", RESTART},
    {"heartbeat", BT_CFG_DURATION, "1s", 100, 60 * MS, OFF(heartbeat_ms), NULL,
     "how often a busy agent reports in", RESTART},
    {"lease", BT_CFG_DURATION, "3s", 300, 3600 * MS, OFF(lease_ms), NULL,
     "an agent silent this long is lost and its work handed off", RESTART},
    {"poll_park", BT_CFG_DURATION, "1s", 50, 60 * MS, OFF(poll_ms), NULL,
     "how long an idle agent's poll waits for work", RESTART},
    {"restart_grace", BT_CFG_DURATION, "10s", 0, 3600 * MS, OFF(restart_grace_ms), NULL,
     "after a broker restart, how long agents have to report the work they hold", RESTART},
    {"leader_lease", BT_CFG_DURATION, "4s", 400, 600 * MS, OFF(leader_lease_ms), NULL,
     "brokers sharing a database: a leader that has not renewed its lease this long "
     "is replaced by a standby (renewed every quarter of it)", RESTART},
    {"standby_poll", BT_CFG_DURATION, "500ms", 50, 60 * MS, OFF(standby_poll_ms), NULL,
     "how often a standby broker checks whether it may take over", RESTART},
    {"retry_base", BT_CFG_DURATION, "1s", 0, 3600 * MS, OFF(retry_base_ms), NULL,
     "backoff after the first failed attempt (doubles each time, ±20% jitter)", BT_CFG_RUNTIME},
    {"retry_max", BT_CFG_DURATION, "60s", 0, 24 * 3600 * MS, OFF(retry_max_ms), NULL,
     "longest backoff between attempts", BT_CFG_RUNTIME},
    {"max_attempts", BT_CFG_UINT, "3", 1, 1000, OFF(max_attempts), NULL,
     "failed attempts before a package is dead (when the package does not say)", BT_CFG_RUNTIME},
    {"max_message_bytes", BT_CFG_BYTES, "1m", 64 * 1024, 256 * MIB,
     OFF(max_message_bytes), NULL,
     "largest agent message; agents are told and use the same limit", RESTART},
    {"max_payload_bytes", BT_CFG_BYTES, "512k", 0, 128 * MIB, OFF(max_payload_bytes),
     NULL, "largest payload, result or checkpoint of one package", RESTART},
    {"max_control_frame_bytes", BT_CFG_BYTES, "16m", 64 * 1024, 1024 * MIB,
     OFF(max_control_frame_bytes), NULL, "largest control request", RESTART},
    {"max_batch", BT_CFG_UINT, "10000", 1, 1000000, OFF(max_batch), NULL,
     "packages in one submit", RESTART},
    {"max_agents_per_vendor", BT_CFG_UINT, "1000", 1, 100000,
     OFF(max_agents_per_vendor), NULL, "connected agents one vendor may have", RESTART},
    {"encrypt", BT_CFG_UINT, "1", 0, 1, OFF(encrypt), "BATON_ENCRYPT",
     "1: agent messages after authentication are encrypted and authenticated "
     "(XSalsa20-Poly1305); 0: authenticated only (HMAC-SHA512-256), bodies in clear",
     RESTART},
    {"store_pipeline_depth", BT_CFG_UINT, "2", 1, 64, OFF(store_pipeline_depth), NULL,
     "transactions in flight to PostgreSQL at once (2: the next is sent while one "
     "commits, so the backend never waits for the broker; 1: one at a time)", RESTART},
    {"store_overlap_ops", BT_CFG_UINT, "128", 0, 1000000, OFF(store_overlap_ops), NULL,
     "with a transaction in flight, the next is sent only once this many writes wait; "
     "fewer wait for the commit and go with what comes meanwhile (0: at once)",
     RESTART},
    {"store_lanes", BT_CFG_UINT, "1", 1, 8, OFF(store_lanes), NULL,
     "connections that package writes are spread over by package id (a package's "
     "writes keep their order on one), so PostgreSQL runs them on several cores "
     "(worth it when PostgreSQL has cores of its own)",
     RESTART},
    {"store_submit_lanes", BT_CFG_UINT, "2", 1, 8, OFF(store_submit_lanes), NULL,
     "connections that large submits (64 packages or more) take turns on, one request "
     "each; smaller ones go with the other package writes on the first of store_lanes",
     RESTART},
    {"store_segment_ops", BT_CFG_UINT, "4096", 1, 1000000, OFF(store_segment_ops), NULL,
     "most writes in one transaction", RESTART},
    {"store_list_interval", BT_CFG_DURATION, "1s", 10, 3600 * MS,
     OFF(store_list_interval_ms), NULL,
     "how often the packages still open are listed for a restart to read "
     "(open_packages); a package that ends sooner is never listed, and a restart "
     "also reads every package submitted since the last listing", RESTART},
    {"store_timeout", BT_CFG_DURATION, "15s", 1000, 3600 * MS, OFF(store_timeout_ms),
     NULL, "a transaction unanswered this long: the connection is dropped and retried", RESTART},
    {"score_cost", BT_CFG_REAL, "1.0", 0, 100, OFF(score_cost), NULL,
     "routing weight of the cost term, cost_reference / (cost_reference + cost)", BT_CFG_RUNTIME},
    {"score_sla", BT_CFG_REAL, "1.0", 0, 100, OFF(score_sla), NULL,
     "routing weight of the on-time term, (on_time + 9) / (with_deadline + 10)", BT_CFG_RUNTIME},
    {"score_utilisation", BT_CFG_REAL, "1.0", 0, 100, OFF(score_utilisation), NULL,
     "routing weight of the free-capacity term, 1 - in_flight / capacity", BT_CFG_RUNTIME},
    {"score_prefer", BT_CFG_REAL, "1.0", 0, 100, OFF(score_prefer), NULL,
     "routing weight of a package preferring the vendor (--prefer)", BT_CFG_RUNTIME},
    {"score_hours", BT_CFG_REAL, "0.5", 0, 100, OFF(score_hours), NULL,
     "routing weight of the vendor being inside its working hours", BT_CFG_RUNTIME},
    {"cost_reference", BT_CFG_REAL, "1.0", 0.001, 1e9, OFF(cost_reference), NULL,
     "the cost at which the cost term is 0.5", BT_CFG_RUNTIME},
    {"share_cap", BT_CFG_REAL, "0.7", 0.01, 1.0, OFF(share_cap), NULL,
     "largest share of a capability's in-flight work one vendor gets while another "
     "eligible vendor has room (1 = no cap)", BT_CFG_RUNTIME},
    {"route_at_submit", BT_CFG_UINT, "1", 0, 1, OFF(route_at_submit), NULL,
     "1: a package an agent has room for is assigned in its submit, the assignment "
     "written in the insert's transaction (one commit from submit to start); 0: "
     "routed once its insert is committed", BT_CFG_RUNTIME},
    {"aging_bound", BT_CFG_DURATION, "5m", 0, 24 * 3600 * MS, OFF(aging_bound_ms), NULL,
     "a package routable this long goes before all others, oldest first (0 = off)", BT_CFG_RUNTIME},
    {"breaker_window", BT_CFG_DURATION, "60s", 1000, 24 * 3600 * MS, OFF(breaker_window_ms),
     NULL, "vendor health looks at the attempts that ended this long ago or less", BT_CFG_RUNTIME},
    {"breaker_min_attempts", BT_CFG_UINT, "5", 1, 1000000, OFF(breaker_min_attempts), NULL,
     "ended attempts in the window before a vendor's failure share counts", BT_CFG_RUNTIME},
    {"breaker_threshold", BT_CFG_REAL, "0.5", 0.01, 1.0, OFF(breaker_threshold), NULL,
     "failed share in the window that trips the circuit breaker (the vendor fails)", BT_CFG_RUNTIME},
    {"degrade_threshold", BT_CFG_REAL, "0.2", 0.01, 1.0, OFF(degrade_threshold), NULL,
     "failed or late share in the window that makes a vendor degraded", BT_CFG_RUNTIME},
    {"breaker_cooldown", BT_CFG_DURATION, "10s", 0, 24 * 3600 * MS, OFF(breaker_cooldown_ms),
     NULL, "a tripped vendor is probed after this (doubling after each failed probe, up to 8x)", BT_CFG_RUNTIME},
    {"probe_packages", BT_CFG_UINT, "1", 1, 1000000, OFF(probe_packages), NULL,
     "packages in flight on a recovering vendor; each success doubles it up to its capacity", BT_CFG_RUNTIME},
    {"degraded_factor", BT_CFG_REAL, "0.5", 0.0, 1.0, OFF(degraded_factor), NULL,
     "a degraded vendor's routing score is multiplied by this", BT_CFG_RUNTIME},
};
const size_t bt_cfg_nkeys = sizeof bt_cfg_keys / sizeof bt_cfg_keys[0];

static void fmt_value(const bt_cfg_key_t *k, const void *field, char *buf, size_t len);

static const bt_cfg_key_t *find(const char *name) {
  for (size_t i = 0; i < bt_cfg_nkeys; i++)
    if (strcmp(bt_cfg_keys[i].name, name) == 0)
      return &bt_cfg_keys[i];
  return NULL;
}

/* "512k", "16m", "1g" or plain bytes. */
static int parse_bytes(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno != 0 || *s == '-')
    return BT_EINVAL;
  uint64_t mult = 1;
  if (*end != '\0') {
    switch (tolower((unsigned char)*end)) {
    case 'k': mult = 1024; break;
    case 'm': mult = MIB; break;
    case 'g': mult = 1024 * MIB; break;
    default: return BT_EINVAL;
    }
    end++;
    if (*end == 'b' || *end == 'B')
      end++;
    if (*end != '\0')
      return BT_EINVAL;
  }
  if (v > UINT64_MAX / mult)
    return BT_EINVAL;
  *out = v * mult;
  return 0;
}

int bt_cfg_set(bt_config_t *cfg, const char *key, const char *value, char *err,
               size_t err_len) {
  const bt_cfg_key_t *k = find(key);
  if (k == NULL) {
    snprintf(err, err_len, "unknown configuration key \"%s\"", key);
    return BT_ENOTFOUND;
  }
  void *field = (char *)cfg + k->offset;
  if (k->type == BT_CFG_STR) {
    if (strcmp(k->name, "log_level") == 0) {
      bt_log_level_t l;
      if (value == NULL || bt_log_parse_level(value, &l) != 0) {
        snprintf(err, err_len, "%s: \"%s\" is not debug, info, warn or error", key,
                 value ? value : "");
        return BT_EINVAL;
      }
    }
    char **s = field;
    /* Copy before freeing: value may be the old string itself. */
    char *copy = value && *value ? strdup(value) : NULL;
    if (value && *value && copy == NULL)
      abort();
    free(*s);
    *s = copy;
    return 0;
  }
  if (k->type == BT_CFG_REAL) {
    char *end;
    errno = 0;
    double d = value ? strtod(value, &end) : 0;
    if (value == NULL || end == value || *end != '\0' || errno || !isfinite(d)) {
      snprintf(err, err_len, "%s: \"%s\" is not a number", key, value ? value : "");
      return BT_EINVAL;
    }
    if (d < k->min || d > k->max) {
      snprintf(err, err_len, "%s: %s is out of range (%g to %g)", key, value, k->min,
               k->max);
      return BT_EINVAL;
    }
    *(double *)field = d;
    return 0;
  }
  uint64_t v = 0;
  int rc;
  const char *what;
  switch (k->type) {
  case BT_CFG_DURATION:
    rc = bt_parse_duration(value, &v);
    what = "a duration like 500ms, 3s, 2m";
    break;
  case BT_CFG_BYTES:
    rc = parse_bytes(value, &v);
    what = "a size like 65536, 512k, 16m";
    break;
  default: {
    char *end;
    errno = 0;
    v = strtoull(value, &end, 10);
    rc = (end == value || *end != '\0' || errno || *value == '-') ? BT_EINVAL : 0;
    what = "a whole number";
  }
  }
  if (rc != 0) {
    snprintf(err, err_len, "%s: \"%s\" is not %s", key, value, what);
    return BT_EINVAL;
  }
  if ((double)v < k->min || (double)v > k->max) {
    /* The bounds in the key's own units ("1s to 1d"), as an operator writes them. */
    uint32_t lo = (uint32_t)k->min, hi = (uint32_t)k->max;
    char lo_s[32], hi_s[32];
    fmt_value(k, &lo, lo_s, sizeof lo_s);
    fmt_value(k, &hi, hi_s, sizeof hi_s);
    snprintf(err, err_len, "%s: %s is out of range (%s to %s)", key, value, lo_s, hi_s);
    return BT_EINVAL;
  }
  *(uint32_t *)field = (uint32_t)v;
  return 0;
}

void bt_cfg_init(bt_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  char err[256];
  for (size_t i = 0; i < bt_cfg_nkeys; i++)
    if (bt_cfg_keys[i].def != NULL && bt_cfg_set(cfg, bt_cfg_keys[i].name,
                                                 bt_cfg_keys[i].def, err, sizeof err) != 0)
      abort(); /* a default outside its own bounds is a programming error */
}

void bt_cfg_free(bt_config_t *cfg) {
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    if (bt_cfg_keys[i].type == BT_CFG_STR) {
      char **s = (char **)((char *)cfg + bt_cfg_keys[i].offset);
      free(*s);
      *s = NULL;
    }
  }
}

typedef struct {
  bt_config_t *cfg;
  const char *path;
  char msg[200];
  int rc;
} file_ctx_t;

static int ini_cb(void *user, const char *section, const char *name, const char *value) {
  file_ctx_t *ctx = user;
  if (ctx->rc != 0)
    return 0;
  if (section[0] != '\0' && strcmp(section, "broker") != 0)
    return 1; /* other sections belong to other programs (e.g. [agent]) */
  int rc = bt_cfg_set(ctx->cfg, name, value, ctx->msg, sizeof ctx->msg);
  if (rc != 0) {
    ctx->rc = rc;
    return 0; /* inih then reports this line's number */
  }
  return 1;
}

int bt_cfg_load_file(bt_config_t *cfg, const char *path, char *err, size_t err_len) {
  file_ctx_t ctx = {.cfg = cfg, .path = path};
  int line = ini_parse(path, ini_cb, &ctx);
  if (ctx.rc != 0) {
    snprintf(err, err_len, "%s:%d: %s", path, line, ctx.msg);
    return ctx.rc;
  }
  if (line == -1) {
    snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    return BT_ECONFIG;
  }
  if (line != 0) {
    snprintf(err, err_len, "%s:%d: not a key = value line", path, line);
    return BT_ECONFIG;
  }
  return 0;
}

int bt_cfg_load_env(bt_config_t *cfg, char *err, size_t err_len) {
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const char *e = bt_cfg_keys[i].env;
    const char *v = e ? getenv(e) : NULL;
    if (v == NULL || *v == '\0')
      continue;
    char msg[200];
    int rc = bt_cfg_set(cfg, bt_cfg_keys[i].name, v, msg, sizeof msg);
    if (rc != 0) {
      snprintf(err, err_len, "environment %s: %s", e, msg);
      return rc;
    }
  }
  return 0;
}

const bt_cfg_key_t *bt_cfg_key(const char *key) { return key ? find(key) : NULL; }

/* The largest unit that divides v exactly. units[] is largest first and ends
 * with the base unit (factor 1). */
typedef struct {
  uint64_t factor;
  const char *suffix;
} unit_t;

static void fmt_units(uint64_t v, const unit_t *units, char *buf, size_t len) {
  for (const unit_t *u = units;; u++) {
    if (u->factor == 1 || (v != 0 && v % u->factor == 0)) {
      snprintf(buf, len, "%llu%s", (unsigned long long)(v / u->factor), u->suffix);
      return;
    }
  }
}

/* The shortest %g form that reads back as exactly d (so get → set is exact). */
static void fmt_real(double d, char *buf, size_t len) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      return;
  }
}

static void fmt_value(const bt_cfg_key_t *k, const void *field, char *buf, size_t len) {
  static const unit_t durations[] = {
      {24 * 3600 * MS, "d"}, {3600 * MS, "h"}, {60 * MS, "m"}, {MS, "s"}, {1, "ms"}};
  static const unit_t sizes[] = {{1024 * MIB, "g"}, {MIB, "m"}, {1024, "k"}, {1, ""}};
  switch (k->type) {
  case BT_CFG_STR: {
    const char *s = *(char *const *)field;
    if (s != NULL && (k->flags & BT_CFG_SECRET))
      s = "(set)"; /* a secret: never printed */
    if (s != NULL && (k->flags & BT_CFG_CONNINFO))
      bt_cfg_redact_conninfo(s, buf, len);
    else
      snprintf(buf, len, "%s", s ? s : "");
    break;
  }
  case BT_CFG_DURATION:
    /* "0s", not "0ms": a bare 0 reads as seconds too, but say the unit. */
    if (*(const uint32_t *)field == 0)
      snprintf(buf, len, "0s");
    else
      fmt_units(*(const uint32_t *)field, durations, buf, len);
    break;
  case BT_CFG_BYTES:
    fmt_units(*(const uint32_t *)field, sizes, buf, len);
    break;
  case BT_CFG_REAL:
    fmt_real(*(const double *)field, buf, len);
    break;
  case BT_CFG_UINT:
    snprintf(buf, len, "%u", *(const uint32_t *)field);
    break;
  }
}

int bt_cfg_get(const bt_config_t *cfg, const char *key, char *buf, size_t len) {
  const bt_cfg_key_t *k = bt_cfg_key(key);
  if (k == NULL) {
    if (len > 0)
      buf[0] = '\0';
    return BT_ENOTFOUND;
  }
  fmt_value(k, (const char *)cfg + k->offset, buf, len);
  return 0;
}

void bt_cfg_default_text(const bt_cfg_key_t *k, char *buf, size_t len) {
  if (k->def == NULL) {
    snprintf(buf, len, "%s", "");
    return;
  }
  /* Through the parser, so "1.0" shows as "1" and "60s" as "1m", as get does. */
  bt_config_t tmp;
  memset(&tmp, 0, sizeof tmp);
  char err[200];
  if (bt_cfg_set(&tmp, k->name, k->def, err, sizeof err) != 0)
    abort(); /* a default outside its own bounds is a programming error */
  fmt_value(k, (const char *)&tmp + k->offset, buf, len);
  bt_cfg_free(&tmp);
}

bool bt_cfg_same(const bt_config_t *a, const bt_config_t *b, const bt_cfg_key_t *k) {
  const void *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
  switch (k->type) {
  case BT_CFG_STR: {
    const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
    return (sa == NULL || sb == NULL) ? sa == sb : strcmp(sa, sb) == 0;
  }
  case BT_CFG_REAL:
    return *(const double *)fa == *(const double *)fb;
  default:
    return *(const uint32_t *)fa == *(const uint32_t *)fb;
  }
}

void bt_cfg_copy(bt_config_t *dst, const bt_config_t *src) {
  memcpy(dst, src, sizeof *dst);
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    if (bt_cfg_keys[i].type != BT_CFG_STR)
      continue;
    char **s = (char **)((char *)dst + bt_cfg_keys[i].offset);
    if (*s != NULL && (*s = strdup(*s)) == NULL)
      abort();
  }
}

void bt_cfg_dump(const bt_config_t *cfg, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < bt_cfg_nkeys && o < len; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    char v[1024];
    fmt_value(k, (const char *)cfg + k->offset, v, sizeof v);
    o += (size_t)snprintf(buf + o, len - o, "%s = %s\n", k->name, v);
  }
}

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

const bt_cfg_key_t bt_cfg_keys[] = {
    {"db", BT_CFG_STR, NULL, 0, 0, OFF(db), "BATON_DB",
     "PostgreSQL conninfo or URI; unset = a private cluster under DATA_DIR/pg"},
    {"data_dir", BT_CFG_STR, "./var", 0, 0, OFF(data_dir), "BATON_DATA_DIR",
     "directory for the control socket and the embedded PostgreSQL"},
    {"agents", BT_CFG_STR, "tcp://127.0.0.1:7800", 0, 0, OFF(agents), "BATON_AGENTS",
     "nanomsg endpoint the agents connect to"},
    {"control", BT_CFG_STR, NULL, 0, 0, OFF(control), "BATON_CONTROL",
     "control socket path; unset = DATA_DIR/baton.sock"},
    {"metrics", BT_CFG_STR, "127.0.0.1:9464", 0, 0, OFF(metrics), "BATON_METRICS",
     "HOST:PORT for Prometheus metrics"},
    {"admin_token", BT_CFG_STR, NULL, 0, 0, OFF(admin_token), "BATON_ADMIN_TOKEN",
     "token a tcp:// control endpoint requires of every request; never logged"},
    {"log_level", BT_CFG_STR, "info", 0, 0, OFF(log_level), NULL,
     "debug, info, warn or error"},
    {"pg_bin_dir", BT_CFG_STR, NULL, 0, 0, OFF(pg_bin_dir), "BATON_PG_BINDIR",
     "PostgreSQL server binaries for the embedded default; unset = found"},
    {"pg_user", BT_CFG_STR, NULL, 0, 0, OFF(pg_user), NULL,
     "OS user the embedded PostgreSQL runs as when batond runs as root"},
    {"heartbeat", BT_CFG_DURATION, "1s", 100, 60 * MS, OFF(heartbeat_ms), NULL,
     "how often a busy agent reports in"},
    {"lease", BT_CFG_DURATION, "3s", 300, 3600 * MS, OFF(lease_ms), NULL,
     "an agent silent this long is lost and its work handed off"},
    {"poll_park", BT_CFG_DURATION, "1s", 50, 60 * MS, OFF(poll_ms), NULL,
     "how long an idle agent's poll waits for work"},
    {"restart_grace", BT_CFG_DURATION, "10s", 0, 3600 * MS, OFF(restart_grace_ms), NULL,
     "after a broker restart, how long agents have to report the work they hold"},
    {"retry_base", BT_CFG_DURATION, "1s", 0, 3600 * MS, OFF(retry_base_ms), NULL,
     "backoff after the first failed attempt (doubles each time, ±20% jitter)"},
    {"retry_max", BT_CFG_DURATION, "60s", 0, 24 * 3600 * MS, OFF(retry_max_ms), NULL,
     "longest backoff between attempts"},
    {"max_attempts", BT_CFG_UINT, "3", 1, 1000, OFF(max_attempts), NULL,
     "failed attempts before a package is dead (when the package does not say)"},
    {"max_message_bytes", BT_CFG_BYTES, "1m", 64 * 1024, 256 * MIB,
     OFF(max_message_bytes), NULL,
     "largest agent message; agents are told and use the same limit"},
    {"max_payload_bytes", BT_CFG_BYTES, "512k", 0, 128 * MIB, OFF(max_payload_bytes),
     NULL, "largest payload, result or checkpoint of one package"},
    {"max_control_frame_bytes", BT_CFG_BYTES, "16m", 64 * 1024, 1024 * MIB,
     OFF(max_control_frame_bytes), NULL, "largest control request"},
    {"max_batch", BT_CFG_UINT, "10000", 1, 1000000, OFF(max_batch), NULL,
     "packages in one submit"},
    {"max_agents_per_vendor", BT_CFG_UINT, "1000", 1, 100000,
     OFF(max_agents_per_vendor), NULL, "connected agents one vendor may have"},
    {"store_pipeline_depth", BT_CFG_UINT, "1", 1, 64, OFF(store_pipeline_depth), NULL,
     "transactions in flight to PostgreSQL at once (1 = group commit per round trip)"},
    {"store_segment_ops", BT_CFG_UINT, "4096", 1, 1000000, OFF(store_segment_ops), NULL,
     "most writes in one transaction"},
    {"store_timeout", BT_CFG_DURATION, "15s", 1000, 3600 * MS, OFF(store_timeout_ms),
     NULL, "a transaction unanswered this long: the connection is dropped and retried"},
    {"score_cost", BT_CFG_REAL, "1.0", 0, 100, OFF(score_cost), NULL,
     "routing weight of the cost term, cost_reference / (cost_reference + cost)"},
    {"score_sla", BT_CFG_REAL, "1.0", 0, 100, OFF(score_sla), NULL,
     "routing weight of the on-time term, (on_time + 9) / (with_deadline + 10)"},
    {"score_utilisation", BT_CFG_REAL, "1.0", 0, 100, OFF(score_utilisation), NULL,
     "routing weight of the free-capacity term, 1 - in_flight / capacity"},
    {"score_prefer", BT_CFG_REAL, "1.0", 0, 100, OFF(score_prefer), NULL,
     "routing weight of a package preferring the vendor (--prefer)"},
    {"score_hours", BT_CFG_REAL, "0.5", 0, 100, OFF(score_hours), NULL,
     "routing weight of the vendor being inside its working hours"},
    {"cost_reference", BT_CFG_REAL, "1.0", 0.001, 1e9, OFF(cost_reference), NULL,
     "the cost at which the cost term is 0.5"},
    {"share_cap", BT_CFG_REAL, "0.7", 0.01, 1.0, OFF(share_cap), NULL,
     "largest share of a capability's in-flight work one vendor gets while another "
     "eligible vendor has room (1 = no cap)"},
    {"aging_bound", BT_CFG_DURATION, "5m", 0, 24 * 3600 * MS, OFF(aging_bound_ms), NULL,
     "a package routable this long goes before all others, oldest first (0 = off)"},
    {"breaker_window", BT_CFG_DURATION, "60s", 1000, 24 * 3600 * MS, OFF(breaker_window_ms),
     NULL, "vendor health looks at the attempts that ended this long ago or less"},
    {"breaker_min_attempts", BT_CFG_UINT, "5", 1, 1000000, OFF(breaker_min_attempts), NULL,
     "ended attempts in the window before a vendor's failure share counts"},
    {"breaker_threshold", BT_CFG_REAL, "0.5", 0.01, 1.0, OFF(breaker_threshold), NULL,
     "failed share in the window that trips the circuit breaker (the vendor fails)"},
    {"degrade_threshold", BT_CFG_REAL, "0.2", 0.01, 1.0, OFF(degrade_threshold), NULL,
     "failed or late share in the window that makes a vendor degraded"},
    {"breaker_cooldown", BT_CFG_DURATION, "10s", 0, 24 * 3600 * MS, OFF(breaker_cooldown_ms),
     NULL, "a tripped vendor is probed after this (doubling after each failed probe, up to 8x)"},
    {"probe_packages", BT_CFG_UINT, "1", 1, 1000000, OFF(probe_packages), NULL,
     "packages in flight on a recovering vendor; each success doubles it up to its capacity"},
    {"degraded_factor", BT_CFG_REAL, "0.5", 0.0, 1.0, OFF(degraded_factor), NULL,
     "a degraded vendor's routing score is multiplied by this"},
};
const size_t bt_cfg_nkeys = sizeof bt_cfg_keys / sizeof bt_cfg_keys[0];

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
    free(*s);
    *s = value && *value ? strdup(value) : NULL;
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
    snprintf(err, err_len, "%s: %s is out of range (%.0f to %.0f%s)", key, value, k->min,
             k->max,
             k->type == BT_CFG_DURATION ? " ms" : k->type == BT_CFG_BYTES ? " bytes" : "");
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

void bt_cfg_dump(const bt_config_t *cfg, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < bt_cfg_nkeys && o < len; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    const void *field = (const char *)cfg + k->offset;
    if (k->type == BT_CFG_STR) {
      const char *s = *(char *const *)field;
      if (s != NULL && strcmp(k->name, "admin_token") == 0)
        s = "(set)"; /* a secret: never printed */
      o += (size_t)snprintf(buf + o, len - o, "%s = %s\n", k->name, s ? s : "");
    } else if (k->type == BT_CFG_DURATION) {
      o += (size_t)snprintf(buf + o, len - o, "%s = %ums\n", k->name,
                            *(const uint32_t *)field);
    } else if (k->type == BT_CFG_REAL) {
      o += (size_t)snprintf(buf + o, len - o, "%s = %g\n", k->name,
                            *(const double *)field);
    } else {
      o += (size_t)snprintf(buf + o, len - o, "%s = %u\n", k->name,
                            *(const uint32_t *)field);
    }
  }
}

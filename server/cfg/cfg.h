/*
 * Broker configuration: one declarative table of keys (name, type, default,
 * bounds, environment variable, help). Defaults, the config file, the
 * environment and command-line flags all go through bt_cfg_set(), so every
 * value is checked the same way and an error names the bad key.
 * Precedence: flags > environment > config file > defaults.
 *
 * A key marked BT_CFG_RUNTIME may change while the broker runs (`batonctl
 * config set`, SIGHUP reload); every other key is read once at start and needs
 * a restart. A key marked BT_CFG_SECRET is never printed: bt_cfg_get shows
 * "(set)"; one marked BT_CFG_CONNINFO is printed with its password hidden.
 * bt_cfg_get's text parses back through bt_cfg_set to the same value (those
 * two kinds aside; neither may change at run time).
 */
#ifndef BT_CFG_H
#define BT_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  /* where things are */
  char *db;        /* libpq conninfo; NULL = the embedded PostgreSQL */
  char *data_dir;
  char *agents;    /* agent endpoint */
  char *control;   /* control socket path; NULL = DATA_DIR/baton.sock */
  char *metrics;
  char *admin_token; /* required by a tcp:// control endpoint; a secret */
  char *log_level;
  char *pg_bin_dir;
  char *pg_user;
  char *user;      /* started as root: drop to this OS user once bound; NULL = stay */
  /* liveness */
  uint32_t heartbeat_ms;
  uint32_t lease_ms;
  uint32_t poll_ms;
  uint32_t restart_grace_ms;
  uint32_t leader_lease_ms;
  uint32_t standby_poll_ms;
  /* retries */
  uint32_t retry_base_ms;
  uint32_t retry_max_ms;
  uint32_t max_attempts;
  /* limits */
  uint32_t max_message_bytes;
  uint32_t max_payload_bytes;
  uint32_t max_control_frame_bytes;
  uint32_t max_batch;
  uint32_t max_agents_per_vendor;
  uint32_t encrypt; /* 1: seal agent messages with secretbox; 0: MAC only */
  /* store */
  uint32_t store_pipeline_depth;
  uint32_t store_overlap_ops;
  uint32_t store_lanes;
  uint32_t store_submit_lanes;
  uint32_t store_segment_ops;
  uint32_t store_timeout_ms;
  uint32_t store_list_interval_ms;
  /* routing */
  double score_cost;
  double score_sla;
  double score_utilisation;
  double score_prefer;
  double score_hours;
  double cost_reference;
  double share_cap;
  uint32_t aging_bound_ms;
  uint32_t route_at_submit; /* 1: a package may be routed in its submit */
  /* vendor health */
  uint32_t breaker_window_ms;
  uint32_t breaker_min_attempts;
  double breaker_threshold;
  double degrade_threshold;
  uint32_t breaker_cooldown_ms;
  uint32_t probe_packages;
  double degraded_factor;
} bt_config_t;

typedef enum {
  BT_CFG_STR,
  BT_CFG_UINT,
  BT_CFG_DURATION,
  BT_CFG_BYTES,
  BT_CFG_REAL,
} bt_cfg_type_t;

/* bt_cfg_key_t.flags */
#define BT_CFG_RUNTIME 1u /* may change at run time (config set, SIGHUP) */
#define BT_CFG_SECRET 2u  /* never printed or logged */
#define BT_CFG_CONNINFO 4u /* a connection string: printed with its password hidden */

typedef struct {
  const char *name;
  bt_cfg_type_t type;
  const char *def;  /* NULL = unset (strings only) */
  double min, max;  /* bounds (ms for durations, bytes for sizes) */
  size_t offset;
  const char *env;  /* NULL = none */
  const char *help;
  unsigned flags;   /* BT_CFG_RUNTIME, BT_CFG_SECRET; 0 = read at start only */
} bt_cfg_key_t;

extern const bt_cfg_key_t bt_cfg_keys[];
extern const size_t bt_cfg_nkeys;

/* Fills cfg with every default. */
void bt_cfg_init(bt_config_t *cfg);
void bt_cfg_free(bt_config_t *cfg);

/* Sets key from its text form. Returns 0, or BT_EINVAL / BT_ENOTFOUND with a
 * message naming the key in err. */
int bt_cfg_set(bt_config_t *cfg, const char *key, const char *value, char *err,
               size_t err_len);

/* Reads an ini file ([broker] section or none; '#' and ';' comments). Returns 0
 * or a negative code with "FILE:LINE: message" in err. */
int bt_cfg_load_file(bt_config_t *cfg, const char *path, char *err, size_t err_len);

/* Applies the environment variables of the table. */
int bt_cfg_load_env(bt_config_t *cfg, char *err, size_t err_len);

/* Writes "key = value" of every key (the effective configuration), values as
 * bt_cfg_get gives them. */
void bt_cfg_dump(const bt_config_t *cfg, char *buf, size_t len);

/* The table row of key (borrowed, static), or NULL for an unknown key. */
const bt_cfg_key_t *bt_cfg_key(const char *key);

/* Writes key's value in its text form into buf: durations in the largest unit
 * that is exact ("3s", "1500ms", "5m"), sizes likewise ("512k", "1m"), numbers
 * as short as they parse back exactly, an unset string as "", a secret as
 * "(set)". bt_cfg_set(key, that text) gives the same value back (secrets
 * aside). Returns 0 or BT_ENOTFOUND. */
int bt_cfg_get(const bt_config_t *cfg, const char *key, char *buf, size_t len);

/* Copies the libpq connection string in (keyword/value or URI) to out with
 * every password replaced by "***". Always terminates out (len > 0). */
void bt_cfg_redact_conninfo(const char *in, char *out, size_t len);

/* The default of k in the same text form as bt_cfg_get ("" when unset). */
void bt_cfg_default_text(const bt_cfg_key_t *k, char *buf, size_t len);

/* Whether key k holds the same value in a and b. */
bool bt_cfg_same(const bt_config_t *a, const bt_config_t *b, const bt_cfg_key_t *k);

/* Makes dst an independent copy of src (strings duplicated); dst must not
 * hold strings of its own (free it first). */
void bt_cfg_copy(bt_config_t *dst, const bt_config_t *src);

#endif

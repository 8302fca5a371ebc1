/*
 * Broker configuration: one declarative table of keys (name, type, default,
 * bounds, environment variable, help). Defaults, the config file, the
 * environment and command-line flags all go through bt_cfg_set(), so every
 * value is checked the same way and an error names the bad key.
 * Precedence: flags > environment > config file > defaults.
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
  /* liveness */
  uint32_t heartbeat_ms;
  uint32_t lease_ms;
  uint32_t poll_ms;
  uint32_t restart_grace_ms;
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
  /* store */
  uint32_t store_pipeline_depth;
  uint32_t store_segment_ops;
  uint32_t store_timeout_ms;
  /* routing */
  double score_cost;
  double score_sla;
  double score_utilisation;
  double score_prefer;
  double score_hours;
  double cost_reference;
  double share_cap;
  uint32_t aging_bound_ms;
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

typedef struct {
  const char *name;
  bt_cfg_type_t type;
  const char *def;  /* NULL = unset (strings only) */
  double min, max;  /* bounds (ms for durations, bytes for sizes) */
  size_t offset;
  const char *env;  /* NULL = none */
  const char *help;
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

/* Writes "key = value" of every key (the effective configuration). */
void bt_cfg_dump(const bt_config_t *cfg, char *buf, size_t len);

#endif

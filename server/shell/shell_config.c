/*
 * The broker's live configuration: the copy of bt_config_t the broker runs
 * with, `batonctl config get|set` and the SIGHUP reload (bt_shell_reload).
 *
 * Every change goes the same way: the new value is checked on a copy through
 * server/cfg's table (bt_cfg_set: type and bounds), the core gets the new
 * tunables (bt_core_reconfigure keeps its invariants and says what follows
 * from them), then the copy becomes the live one and the logger gets its
 * level; nothing is touched before the last step that may refuse, so a
 * refused value changes nothing anywhere. Each change is logged (at info; a
 * log level change at the higher of the two levels, so it shows under both)
 * and written to the audit trail (`config.set`, or
 * `config.reload` for SIGHUP); a `config set` is answered once its audit row
 * is committed. Keys without BT_CFG_RUNTIME are never changed here: a set is
 * refused, a reload warns that the new value needs a restart.
 *
 * `config set` changes the running broker only, never the config file: the
 * next SIGHUP re-reads the file and the file wins.
 *
 * Secrets (BT_CFG_SECRET) are never logged or audited with their value:
 * bt_cfg_get gives "(set)" for them, and that text is all this file prints.
 */
#include "shell_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX 1024

void bt_shell__core_config(const bt_config_t *cfg, bt_core_config_t *cc) {
  bt_core_config_default(cc);
  cc->lease_ms = cfg->lease_ms;
  cc->restart_grace_ms = cfg->restart_grace_ms;
  cc->retry_base_ms = cfg->retry_base_ms;
  cc->retry_max_ms = cfg->retry_max_ms;
  cc->default_max_attempts = cfg->max_attempts;
  cc->w_cost = cfg->score_cost;
  cc->w_sla = cfg->score_sla;
  cc->w_util = cfg->score_utilisation;
  cc->w_prefer = cfg->score_prefer;
  cc->w_hours = cfg->score_hours;
  cc->cost_ref = cfg->cost_reference;
  cc->share_cap = cfg->share_cap;
  cc->aging_bound_ms = cfg->aging_bound_ms;
  cc->route_at_submit = cfg->route_at_submit != 0;
  cc->breaker_window_ms = cfg->breaker_window_ms;
  cc->breaker_min_attempts = cfg->breaker_min_attempts;
  cc->breaker_threshold = cfg->breaker_threshold;
  cc->degrade_threshold = cfg->degrade_threshold;
  cc->breaker_cooldown_ms = cfg->breaker_cooldown_ms;
  cc->probe_packages = cfg->probe_packages;
  cc->degraded_factor = cfg->degraded_factor;
}

const bt_config_t *bt_shell__config(void *arg) {
  bt_shell_t *sh = arg;
  return &sh->cfg;
}

/* Makes next the live configuration: the core's tunables first (the one step
 * that may refuse), then the log level. On success next is moved into sh->cfg
 * (the old one freed); on failure next is left to the caller. */
static int make_live(bt_shell_t *sh, bt_config_t *next) {
  bt_core_config_t cc;
  bt_shell__core_config(next, &cc);
  bt_now_t t = bt_shell__now();
  int rc = bt_core_reconfigure(sh->core, &cc, &t, &sh->acts);
  if (rc != 0)
    return rc;
  /* Vendors the new rules degrade, restore or fail, and work they route. */
  bt_shell__apply(sh);
  bt_cfg_free(&sh->cfg);
  sh->cfg = *next;
  memset(next, 0, sizeof *next);
  return 0;
}

/* Logs and audits one key's change (old and new as bt_cfg_get gives them),
 * and carries out a new log level. A log level change is logged at the higher
 * of the two levels, before it takes effect, so it shows under both. */
static void record(bt_shell_t *sh, const char *action, const char *key, const char *old,
                   const char *now_v) {
  bt_log_level_t level = BT_LOG_INFO, lo, hi;
  bool log_level = strcmp(key, "log_level") == 0 && bt_log_parse_level(old, &lo) == 0 &&
                   bt_log_parse_level(now_v, &hi) == 0;
  if (log_level && (lo > level || hi > level))
    level = lo > hi ? lo : hi;
  bt_log(level, "config changed", "key=%s old=%s new=%s source=%s", key, BT_Q(old),
         BT_Q(now_v), strcmp(action, "config.reload") == 0 ? "reload" : "set");
  if (log_level)
    bt_log_set_level(hi);
  char subject[160], detail[2 * VALUE_MAX + 8];
  snprintf(subject, sizeof subject, "config:%s", key);
  snprintf(detail, sizeof detail, "%s -> %s", old[0] ? old : "\"\"", now_v[0] ? now_v : "\"\"");
  bt_store_audit(sh->lanes.lane[0], bt_wall_ms(), "admin", action, subject, detail);
}

/* --- config set ------------------------------------------------------------------- */

typedef struct {
  bt_shell_t *sh;
  uint64_t token;
  const char *key; /* static: the table's name */
  char previous[VALUE_MAX];
} set_ctx_t;

static void on_set_committed(void *arg, int status) {
  set_ctx_t *c = arg;
  bt_ctl_config_set_done(c->sh->ctl, c->token, status, c->key, c->previous,
                         status == 0 ? NULL
                                     : "store unavailable; the change is in effect but its "
                                       "audit row is not confirmed");
  free(c);
}

int bt_shell__config_set(void *arg, const char *key, const char *value, uint64_t token,
                         char *err, size_t err_len) {
  bt_shell_t *sh = arg;
  const bt_cfg_key_t *k = bt_cfg_key(key);
  if (k == NULL) {
    snprintf(err, err_len, "unknown configuration key \"%s\"", key);
    return BT_ENOTFOUND;
  }
  if (!(k->flags & BT_CFG_RUNTIME)) {
    snprintf(err, err_len, "%s cannot change at run time; edit the config file and restart",
             k->name);
    return BT_ESTATE;
  }
  /* The change is acknowledged only with its audit row committed. */
  if (bt_lanes_down(&sh->lanes)) {
    snprintf(err, err_len, "store unavailable; %s was not changed, retry later", k->name);
    return BT_EDBDOWN;
  }
  bt_config_t next;
  bt_cfg_copy(&next, &sh->cfg);
  int rc = bt_cfg_set(&next, k->name, value, err, err_len);
  if (rc != 0) {
    bt_cfg_free(&next);
    return rc;
  }
  set_ctx_t *c = malloc(sizeof *c);
  if (c == NULL)
    abort();
  c->sh = sh;
  c->token = token;
  c->key = k->name;
  bt_cfg_get(&sh->cfg, k->name, c->previous, sizeof c->previous);
  if ((rc = make_live(sh, &next)) != 0) {
    snprintf(err, err_len, "%s: the broker refused \"%s\"", k->name, value);
    bt_cfg_free(&next);
    free(c);
    return rc;
  }
  char now_v[VALUE_MAX];
  bt_cfg_get(&sh->cfg, k->name, now_v, sizeof now_v);
  record(sh, "config.set", k->name, c->previous, now_v);
  bt_lanes_barrier(&sh->lanes, on_set_committed, c);
  return 0;
}

/* --- SIGHUP ------------------------------------------------------------------------ */

int bt_shell_reload(bt_shell_t *sh, const bt_config_t *loaded) {
  bt_config_t next;
  bt_cfg_copy(&next, &sh->cfg);
  const bt_cfg_key_t *changed[64];
  size_t n_changed = 0, n_restart = 0;
  char err[300] = "more changed keys than one reload handles";
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    if (bt_cfg_same(&sh->cfg, loaded, k))
      continue;
    if (!(k->flags & BT_CFG_RUNTIME)) {
      n_restart++;
      bt_log_warn("configuration key changed but needs a restart; the running value stays",
                  "key=%s", k->name);
      continue;
    }
    /* Through the text form and bt_cfg_set, like every other change. */
    char v[VALUE_MAX];
    bt_cfg_get(loaded, k->name, v, sizeof v);
    if (bt_cfg_set(&next, k->name, v, err, sizeof err) != 0 ||
        n_changed == sizeof changed / sizeof changed[0]) {
      bt_log_error("could not reload the configuration; nothing changed", "error=%s",
                   BT_Q(err));
      bt_cfg_free(&next);
      return BT_ECONFIG;
    }
    changed[n_changed++] = k;
  }
  if (n_changed == 0) {
    bt_cfg_free(&next);
    bt_log_info("configuration reloaded", "changed=0 needs_restart=%zu", n_restart);
    return 0;
  }
  char (*old)[VALUE_MAX] = malloc(n_changed * sizeof *old);
  if (old == NULL)
    abort();
  for (size_t i = 0; i < n_changed; i++)
    bt_cfg_get(&sh->cfg, changed[i]->name, old[i], sizeof old[i]);
  int rc = make_live(sh, &next);
  if (rc != 0) {
    bt_log_error("could not reload the configuration; nothing changed", "error=%s",
                 bt_strerror(rc));
    bt_cfg_free(&next);
    free(old);
    return rc;
  }
  for (size_t i = 0; i < n_changed; i++) {
    char now_v[VALUE_MAX];
    bt_cfg_get(&sh->cfg, changed[i]->name, now_v, sizeof now_v);
    record(sh, "config.reload", changed[i]->name, old[i], now_v);
  }
  free(old);
  bt_log_info("configuration reloaded", "changed=%zu needs_restart=%zu", n_changed,
              n_restart);
  return 0;
}

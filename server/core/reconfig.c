/*
 * New tunables while the broker runs (bt_core_reconfigure; core.h says what
 * each change does to state already there). Owns only the order: check
 * everything first so a bad value changes nothing, swap the settings, let
 * vendor health catch up (health.c), then route again so weights, share cap,
 * aging and raised probe limits show in the very next decisions. Like every
 * entry point it is pure: no clock, no I/O; the shell persists what it emits.
 */
#include "core_int.h"

#include "bt_err.h"

#include <math.h>

static bool weight_ok(double w) { return isfinite(w) && w >= 0; }

static bool share_ok(double x) { return isfinite(x) && x > 0 && x <= 1; }

static int check(const bt_core_config_t *c) {
  if (c->default_max_attempts == 0 || c->breaker_window_ms == 0 ||
      c->breaker_min_attempts == 0 || c->probe_packages == 0)
    return BT_EINVAL;
  if (!weight_ok(c->w_cost) || !weight_ok(c->w_sla) || !weight_ok(c->w_util) ||
      !weight_ok(c->w_prefer) || !weight_ok(c->w_hours))
    return BT_EINVAL;
  if (!isfinite(c->cost_ref) || c->cost_ref <= 0)
    return BT_EINVAL;
  if (!share_ok(c->share_cap) || !share_ok(c->breaker_threshold) ||
      !share_ok(c->degrade_threshold))
    return BT_EINVAL;
  if (!isfinite(c->degraded_factor) || c->degraded_factor < 0 || c->degraded_factor > 1)
    return BT_EINVAL;
  return 0;
}

int bt_core_reconfigure(bt_core_t *core, const bt_core_config_t *cfg, const bt_now_t *now,
                        bt_actions_t *out) {
  int rc = check(cfg);
  if (rc != 0)
    return rc;
  bt_core_config_t old = core->cfg;
  bt_core_config_t next = *cfg;
  /* Fixed at start: agents were told the lease, the restart grace is counting
   * already, and the jitter stream must stay one stream for replays. */
  next.lease_ms = old.lease_ms;
  next.restart_grace_ms = old.restart_grace_ms;
  next.seed = old.seed;
  core->cfg = next;
  bt_core__health_reconfigure(core, &old, now, out);
  /* Weights, share cap and aging are read per decision: look at every
   * capability again so the change shows now, not at the next poll. */
  for (uint32_t i = 0; i < core->n_vendors; i++)
    bt_core__mark_vendor(core, core->vendors[i]);
  bt_core__sched(core, now, out);
  return 0;
}

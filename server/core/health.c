/*
 * Vendor health: the states a vendor moves through on its own (active,
 * degraded, failed, probing back up) and the admin's state changes.
 *
 *   active ──failed share ≥ degrade_threshold, or late share ≥ it──► degraded
 *   degraded ──both below again──► active
 *   active/degraded ──failed share ≥ breaker_threshold (circuit breaker)──► failed
 *   active/degraded ──its last live agent lost or gone──► failed
 *   failed ──cooldown over, an agent connected──► degraded, probing
 *   probing ──each success doubles the limit; at capacity──► active
 *   probing ──a failure──► failed, cooldown doubled (up to 8×)
 *   any ──vendor drain/suspend/fail──► draining/suspended/failed (admin)
 *   any ──vendor resume──► active
 *
 * Shares are over the attempts that ended in the last breaker_window_ms, and
 * only once there are breaker_min_attempts of them, so one early failure does
 * not fail a vendor. Transient failures (exit 75) and lost attempts do not
 * count: the first is the handler saying "not my fault", the second is what
 * agent leases and the no-live-agent rule are for.
 *
 * Whenever a vendor fails or is suspended its in-flight attempts are revoked:
 * the agent is told to stop the handler, each package gets a handoff row
 * carrying its last checkpoint, and it is routed again at once — still only
 * to vendors its requirements allow.
 */
#include "core_int.h"

#include "bt_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define WIN_BUCKETS 10
#define COOLDOWN_MAX_FACTOR 8

struct bt_health_win {
  uint64_t epoch[WIN_BUCKETS]; /* which bucket-length slice of time it counts */
  uint32_t ok[WIN_BUCKETS], failed[WIN_BUCKETS], late[WIN_BUCKETS];
};

void bt_core__health_init(bt_core_t *core, bt_core_vendor_t *v) {
  v->win = bt_xcalloc(1, sizeof *v->win);
  v->limit = v->capacity;
  v->cooldown_ms = core->cfg.breaker_cooldown_ms;
}

static uint64_t bucket_ms(const bt_core_t *core) {
  uint64_t b = core->cfg.breaker_window_ms / WIN_BUCKETS;
  return b ? b : 1;
}

/* Recounts the window as of now into v->recent_*. */
static void win_sum(const bt_core_t *core, bt_core_vendor_t *v, uint64_t now_ms) {
  uint64_t cur = now_ms / bucket_ms(core);
  uint32_t ok = 0, failed = 0, late = 0;
  for (int i = 0; i < WIN_BUCKETS; i++) {
    if (v->win->epoch[i] + WIN_BUCKETS <= cur || v->win->epoch[i] > cur)
      continue;
    ok += v->win->ok[i];
    failed += v->win->failed[i];
    late += v->win->late[i];
  }
  v->recent_ok = ok;
  v->recent_failed = failed;
  v->recent_late = late;
}

static void win_clear(bt_core_vendor_t *v) {
  memset(v->win, 0, sizeof *v->win);
  v->recent_ok = v->recent_failed = v->recent_late = 0;
}

static void win_add(const bt_core_t *core, bt_core_vendor_t *v, uint64_t now_ms,
                    bool failed, bool late) {
  uint64_t cur = now_ms / bucket_ms(core);
  uint32_t i = (uint32_t)(cur % WIN_BUCKETS);
  if (v->win->epoch[i] != cur) {
    v->win->epoch[i] = cur;
    v->win->ok[i] = v->win->failed[i] = v->win->late[i] = 0;
  }
  if (failed)
    v->win->failed[i]++;
  else
    v->win->ok[i]++;
  if (late)
    v->win->late[i]++;
  win_sum(core, v, now_ms);
}

/* --- state changes ------------------------------------------------------------ */

/* VENDOR_STATE with the state and limit as they are now (see core.h). */
static void persist_state(bt_core_vendor_t *v, const bt_now_t *now, bt_actions_t *out) {
  bt_action_t *a = bt_core__push(out, BT_ACT_VENDOR_STATE);
  a->vendor_id = v->id;
  a->at = now->at;
  a->code = (int)v->state;
  a->attempt = v->limit;
  a->text = v->state_reason;
}

static void set_state(bt_core_t *core, bt_core_vendor_t *v, bt_vendor_state_t state,
                      const char *reason, bool by_admin, const bt_now_t *now,
                      bt_actions_t *out) {
  v->state = state;
  snprintf(v->state_reason, sizeof v->state_reason, "%s", reason ? reason : "");
  persist_state(v, now, out);
  bt_action_t *a = bt_core__push(out, BT_ACT_AUDIT);
  a->vendor_id = v->id;
  a->at = now->at;
  a->by_admin = by_admin;
  a->text = by_admin ? "vendor.admin" : "vendor.health";
  a->text2 = v->name;
  a->text3 = bt_vendor_state_name(state);
  a->text4 = v->state_reason;
  /* Room may have opened (resume, ramp) or closed: look again. */
  bt_core__mark_vendor(core, v);
}

bool bt_core__stop_handler(bt_core_t *core, const bt_core_pkg_t *p, bt_actions_t *out) {
  bt_core_agent_t *a = bt_core__agent(core, p->agent_id);
  if (a == NULL || a->state != BT_AGENT_CONNECTED)
    return false;
  if (!(p->flags & BT_PKGF_UNDISPATCHED)) {
    bt_action_t *c = bt_core__push(out, BT_ACT_CANCEL);
    c->agent_id = p->agent_id;
    c->package_id = p->id;
    c->attempt = p->attempt;
  }
  return true;
}

void bt_core__revoke(bt_core_t *core, bt_core_pkg_t *p, bt_handoff_reason_t reason,
                     const char *why, const bt_now_t *now, bt_actions_t *out) {
  /* A connected agent is told to stop the handler (its result will be stale);
   * one that is gone already lost the attempt. */
  bool connected = bt_core__stop_handler(core, p, out);
  size_t at = out->n;
  bt_core__requeue_lost(core, p, connected ? BT_OUTCOME_REVOKED : BT_OUTCOME_LOST, reason,
                        true, now, out);
  if (connected)
    out->v[at].text = why; /* the FINISH: why the attempt ended */
}

static void revoke_all(bt_core_t *core, bt_core_vendor_t *v, bt_handoff_reason_t reason,
                       const char *why, const bt_now_t *now, bt_actions_t *out) {
  for (uint32_t i = 0; i < core->n_agents && v->in_flight > 0; i++) {
    bt_core_agent_t *a = core->agents[i];
    if (a->vendor_id != v->id)
      continue;
    while (a->n_held > 0)
      bt_core__revoke(core, a->held[a->n_held - 1], reason, why, now, out);
  }
}

/* Fails a vendor on its own account (breaker, no live agent, failed probe):
 * probed again after probe_in_ms once an agent is connected. */
static void fail_auto(bt_core_t *core, bt_core_vendor_t *v, const char *reason,
                      uint64_t probe_in_ms, const bt_now_t *now, bt_actions_t *out) {
  v->probing = false;
  v->limit = v->capacity;
  v->probe_at_ms = now->ms + probe_in_ms;
  if (v->probe_at_ms == 0)
    v->probe_at_ms = 1; /* 0 means never */
  win_clear(v);
  set_state(core, v, BT_VENDOR_FAILED, reason, false, now, out);
  revoke_all(core, v, BT_HANDOFF_VENDOR_FAILED, "vendor failed", now, out);
}

static void start_probe(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now,
                        bt_actions_t *out) {
  uint32_t n = core->cfg.probe_packages ? core->cfg.probe_packages : 1;
  v->probing = true;
  v->limit = n < v->capacity ? n : v->capacity;
  v->probe_at_ms = 0;
  char why[96];
  snprintf(why, sizeof why, "probing: %u in flight allowed", v->limit);
  set_state(core, v, BT_VENDOR_DEGRADED, why, false, now, out);
}

/* --- what attempts tell ------------------------------------------------------- */

/* Active ⇄ degraded from the window's shares (not while probing). */
static void judge(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now,
                  bt_actions_t *out) {
  const bt_core_config_t *c = &core->cfg;
  uint32_t total = v->recent_ok + v->recent_failed;
  bool enough = total >= c->breaker_min_attempts && total > 0;
  if (enough && (double)v->recent_failed >= c->breaker_threshold * (double)total) {
    char why[128];
    snprintf(why, sizeof why, "circuit breaker: %u of %u attempts failed in %us",
             v->recent_failed, total, c->breaker_window_ms / 1000);
    fail_auto(core, v, why, v->cooldown_ms, now, out);
    return;
  }
  bool failing = enough && (double)v->recent_failed >= c->degrade_threshold * (double)total;
  bool late = enough && (double)v->recent_late >= c->degrade_threshold * (double)total;
  if ((failing || late) && v->state == BT_VENDOR_ACTIVE) {
    char why[128];
    if (failing)
      snprintf(why, sizeof why, "elevated failures: %u of %u attempts failed",
               v->recent_failed, total);
    else
      snprintf(why, sizeof why, "SLA misses: %u of %u attempts finished late",
               v->recent_late, total);
    set_state(core, v, BT_VENDOR_DEGRADED, why, false, now, out);
  } else if (!failing && !late && v->state == BT_VENDOR_DEGRADED) {
    set_state(core, v, BT_VENDOR_ACTIVE, "", false, now, out);
  }
}

void bt_core__health_record(bt_core_t *core, bt_core_vendor_t *v, bt_outcome_t outcome,
                            bool late, const bt_now_t *now, bt_actions_t *out) {
  if (outcome != BT_OUTCOME_COMPLETED && outcome != BT_OUTCOME_FAILED)
    return;
  bool failed = outcome == BT_OUTCOME_FAILED;
  win_add(core, v, now->ms, failed, late);
  if (v->probing && v->state == BT_VENDOR_DEGRADED) {
    if (failed) {
      uint32_t base = core->cfg.breaker_cooldown_ms;
      uint64_t next = (uint64_t)v->cooldown_ms * 2;
      v->cooldown_ms = (uint32_t)(next > (uint64_t)base * COOLDOWN_MAX_FACTOR
                                      ? (uint64_t)base * COOLDOWN_MAX_FACTOR
                                      : next);
      fail_auto(core, v, "circuit breaker: a probe failed", v->cooldown_ms, now, out);
      return;
    }
    uint64_t next = (uint64_t)v->limit * 2;
    v->limit = next >= v->capacity ? v->capacity : (uint32_t)next;
    if (v->limit == v->capacity) {
      v->probing = false;
      v->cooldown_ms = core->cfg.breaker_cooldown_ms;
      win_clear(v);
      set_state(core, v, BT_VENDOR_ACTIVE, "", false, now, out);
    } else {
      snprintf(v->state_reason, sizeof v->state_reason, "probing: %u in flight allowed",
               v->limit);
      persist_state(v, now, out);
      bt_core__mark_vendor(core, v);
    }
    return;
  }
  if (v->state == BT_VENDOR_ACTIVE || v->state == BT_VENDOR_DEGRADED)
    judge(core, v, now, out);
}

void bt_core__health_agent_down(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now,
                                bt_actions_t *out) {
  if (v->agents_connected > 0 ||
      (v->state != BT_VENDOR_ACTIVE && v->state != BT_VENDOR_DEGRADED))
    return;
  /* Probe as soon as an agent is back: the vendor did nothing wrong we know of. */
  fail_auto(core, v, "no live agent", 0, now, out);
}

void bt_core__health_agent_up(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now,
                              bt_actions_t *out) {
  if (v->state == BT_VENDOR_FAILED && v->probe_at_ms != 0 && now->ms >= v->probe_at_ms)
    start_probe(core, v, now, out);
}

uint64_t bt_core__health_tick(bt_core_t *core, const bt_now_t *now, bt_actions_t *out) {
  uint64_t next = UINT64_MAX;
  for (uint32_t i = 0; i < core->n_vendors; i++) {
    bt_core_vendor_t *v = core->vendors[i];
    if (v->state == BT_VENDOR_FAILED && v->probe_at_ms != 0) {
      if (now->ms < v->probe_at_ms) {
        if (v->probe_at_ms < next)
          next = v->probe_at_ms;
      } else if (v->agents_connected > 0) {
        start_probe(core, v, now, out);
      }
    } else if (v->state == BT_VENDOR_DEGRADED && !v->probing) {
      /* Old failures slide out of the window: recover without new attempts. */
      win_sum(core, v, now->ms);
      judge(core, v, now, out);
      uint64_t b = bucket_ms(core);
      uint64_t edge = (now->ms / b + 1) * b;
      if (edge < next)
        next = edge;
    }
  }
  return next;
}

/* Loaded state after a restart: the window starts empty; a vendor failed on
 * its own account is probed after a cooldown, one that was probing probes
 * again from the start. Admin states stay as they were. */
void bt_core__health_loaded(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now) {
  if (v->state == BT_VENDOR_FAILED && strncmp(v->state_reason, "admin", 5) != 0) {
    /* "no live agent" was no fault of the vendor's: probe as soon as one is back. */
    bool orphaned = strcmp(v->state_reason, "no live agent") == 0;
    v->probe_at_ms = now->ms + (orphaned ? 0 : v->cooldown_ms);
    if (v->probe_at_ms == 0)
      v->probe_at_ms = 1; /* 0 means never */
  }
  if (v->state == BT_VENDOR_DEGRADED && strncmp(v->state_reason, "probing", 7) == 0) {
    uint32_t n = core->cfg.probe_packages ? core->cfg.probe_packages : 1;
    v->probing = true;
    v->limit = n < v->capacity ? n : v->capacity;
  }
}

/* --- the admin's word ----------------------------------------------------------- */

int bt_core_vendor_op(bt_core_t *core, uint64_t vendor_id, bt_vendor_op_t op,
                      const bt_now_t *now, bt_actions_t *out) {
  bt_core_vendor_t *v = bt_core__vendor(core, vendor_id);
  if (v == NULL)
    return BT_ENOTFOUND;
  v->probing = false;
  v->limit = v->capacity;
  v->probe_at_ms = 0;
  switch (op) {
  case BT_VENDOR_OP_DRAIN:
    set_state(core, v, BT_VENDOR_DRAINING, "admin: draining", true, now, out);
    break;
  case BT_VENDOR_OP_SUSPEND:
    set_state(core, v, BT_VENDOR_SUSPENDED, "admin: suspended", true, now, out);
    revoke_all(core, v, BT_HANDOFF_ADMIN, "vendor suspended", now, out);
    break;
  case BT_VENDOR_OP_FAIL:
    set_state(core, v, BT_VENDOR_FAILED, "admin: failed", true, now, out);
    revoke_all(core, v, BT_HANDOFF_VENDOR_FAILED, "vendor failed", now, out);
    break;
  case BT_VENDOR_OP_RESUME:
    v->cooldown_ms = core->cfg.breaker_cooldown_ms;
    win_clear(v);
    set_state(core, v, BT_VENDOR_ACTIVE, "", true, now, out);
    break;
  default:
    return BT_EINVAL;
  }
  bt_core__sched(core, now, out);
  return 0;
}

/* --- new settings while running (bt_core_reconfigure) ------------------------------ */

/* Moves the counts of v's window from buckets of old_b ms to buckets of the
 * current length. Each old bucket's attempts are taken to have ended at the
 * bucket's last millisecond (not after now): kept while that instant is inside
 * the new window, so a shorter window forgets sooner and a longer one keeps
 * what the old one still held. Epochs of the new window are distinct within
 * WIN_BUCKETS, so no two old buckets fight over a slot with different epochs. */
static void win_rebucket(const bt_core_t *core, bt_core_vendor_t *v, uint64_t old_b,
                         uint64_t now_ms) {
  struct bt_health_win old = *v->win;
  uint64_t old_cur = now_ms / old_b;
  uint64_t new_b = bucket_ms(core), new_cur = now_ms / new_b;
  memset(v->win, 0, sizeof *v->win);
  for (int i = 0; i < WIN_BUCKETS; i++) {
    if (old.epoch[i] + WIN_BUCKETS <= old_cur || old.epoch[i] > old_cur)
      continue;
    if (old.ok[i] == 0 && old.failed[i] == 0 && old.late[i] == 0)
      continue;
    uint64_t t = (old.epoch[i] + 1) * old_b - 1;
    if (t > now_ms)
      t = now_ms;
    uint64_t e = t / new_b;
    if (e + WIN_BUCKETS <= new_cur)
      continue;
    uint32_t j = (uint32_t)(e % WIN_BUCKETS);
    if (v->win->epoch[j] != e) {
      v->win->epoch[j] = e;
      v->win->ok[j] = v->win->failed[j] = v->win->late[j] = 0;
    }
    v->win->ok[j] += old.ok[i];
    v->win->failed[j] += old.failed[i];
    v->win->late[j] += old.late[i];
  }
  win_sum(core, v, now_ms);
}

/* A failed vendor's backoff, rescaled from the old base cooldown to the new
 * one (the doubling after failed probes is kept), and its pending probe moved
 * by the difference — never into the past: then it probes at the next tick. */
static void rescale_cooldown(const bt_core_t *core, bt_core_vendor_t *v, uint32_t old_base,
                             const bt_now_t *now) {
  uint64_t base = core->cfg.breaker_cooldown_ms;
  uint64_t cd = old_base ? (uint64_t)v->cooldown_ms * base / old_base : base;
  if (cd > base * COOLDOWN_MAX_FACTOR)
    cd = base * COOLDOWN_MAX_FACTOR;
  if (v->state == BT_VENDOR_FAILED && v->probe_at_ms > now->ms &&
      v->probe_at_ms >= v->cooldown_ms) {
    uint64_t at = v->probe_at_ms - v->cooldown_ms + cd;
    v->probe_at_ms = at > now->ms ? at : now->ms;
    if (v->probe_at_ms == 0)
      v->probe_at_ms = 1; /* 0 means never */
  }
  v->cooldown_ms = (uint32_t)cd;
}

/* A probing vendor under a raised probe_packages gets at least that limit; at
 * its capacity the ramp is over, as after enough successful probes. */
static void raise_probe(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now,
                        bt_actions_t *out) {
  uint32_t n = core->cfg.probe_packages ? core->cfg.probe_packages : 1;
  if (n <= v->limit)
    return;
  v->limit = n < v->capacity ? n : v->capacity;
  if (v->limit == v->capacity) {
    v->probing = false;
    v->cooldown_ms = core->cfg.breaker_cooldown_ms;
    win_clear(v);
    set_state(core, v, BT_VENDOR_ACTIVE, "", false, now, out);
    return;
  }
  snprintf(v->state_reason, sizeof v->state_reason, "probing: %u in flight allowed",
           v->limit);
  persist_state(v, now, out);
  bt_core__mark_vendor(core, v);
}

void bt_core__health_reconfigure(bt_core_t *core, const bt_core_config_t *old,
                                 const bt_now_t *now, bt_actions_t *out) {
  const bt_core_config_t *c = &core->cfg;
  bool window = c->breaker_window_ms != old->breaker_window_ms;
  bool rules = window || c->breaker_min_attempts != old->breaker_min_attempts ||
               c->breaker_threshold != old->breaker_threshold ||
               c->degrade_threshold != old->degrade_threshold;
  uint64_t old_b = old->breaker_window_ms / WIN_BUCKETS;
  if (old_b == 0)
    old_b = 1;
  /* Index loop: judging may fail a vendor, which changes its fields but never
   * the vendor array. */
  for (uint32_t i = 0; i < core->n_vendors; i++) {
    bt_core_vendor_t *v = core->vendors[i];
    if (window)
      win_rebucket(core, v, old_b, now->ms);
    if (c->breaker_cooldown_ms != old->breaker_cooldown_ms)
      rescale_cooldown(core, v, old->breaker_cooldown_ms, now);
    if (v->probing && v->state == BT_VENDOR_DEGRADED) {
      if (c->probe_packages != old->probe_packages)
        raise_probe(core, v, now, out);
      continue; /* a probe is judged by its own rule, not by the shares */
    }
    if (rules && (v->state == BT_VENDOR_ACTIVE || v->state == BT_VENDOR_DEGRADED)) {
      win_sum(core, v, now->ms);
      judge(core, v, now, out);
    }
  }
}

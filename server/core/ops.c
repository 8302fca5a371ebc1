/*
 * An admin's operations on one package: cancel, retry, reassign (with or
 * without a vendor to pin it to), and revive (retry of a dead or cancelled
 * package the shell read back from the store). Each writes what it changed
 * and audits it; the shell answers once the writes are committed.
 */
#include "core_int.h"

#include "bt_err.h"

#include <string.h>

static void audit(bt_actions_t *out, const bt_core_pkg_t *p, const char *what,
                  const bt_now_t *now) {
  bt_action_t *a = bt_core__push(out, BT_ACT_AUDIT);
  a->package_id = p->id;
  a->attempt = p->attempt;
  a->agent_id = p->agent_id;
  a->at = now->at;
  a->text = what;
  a->by_admin = true;
}

static void update(bt_actions_t *out, const bt_core_pkg_t *p, const bt_now_t *now) {
  bt_action_t *a = bt_core__push(out, BT_ACT_PACKAGE_UPDATE);
  a->package_id = p->id;
  a->attempt = p->attempt;
  a->state = (bt_pkg_state_t)p->state;
  a->at = now->at;
}

/* An open package an admin may touch: committed and not finishing. */
static int touchable(bt_core_t *core, uint64_t id, bt_core_pkg_t **out) {
  bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, id);
  if (p == NULL)
    return BT_ENOTFOUND;
  if (p->flags & (BT_PKGF_UNPERSISTED | BT_PKGF_FINISHING))
    return BT_ESTATE;
  *out = p;
  return 0;
}

int bt_core_package_cancel(bt_core_t *core, uint64_t package_id, const bt_now_t *now,
                           bt_pkg_state_t *state, bt_actions_t *out) {
  bt_core_pkg_t *p;
  int rc = touchable(core, package_id, &p);
  if (rc != 0)
    return rc;
  bt_core_agent_t *agent = NULL;
  if (p->state == BT_PKG_ASSIGNED || p->state == BT_PKG_RUNNING) {
    agent = bt_core__agent(core, p->agent_id);
    bt_core__stop_handler(core, p, out);
  }
  bt_action_t *a = bt_core__push(out, BT_ACT_FINISH);
  a->package_id = p->id;
  a->attempt = p->attempt;
  a->agent_id = p->agent_id;
  a->vendor_id = p->vendor_id;
  a->outcome = BT_OUTCOME_CANCELLED;
  a->state = BT_PKG_CANCELLED;
  a->exit_code = -1;
  a->at = now->at;
  a->text = "cancelled by admin";
  audit(out, p, "package.cancel", now);
  if (agent != NULL)
    bt_core__agent_release(core, agent, p);
  bt_core__dequeue(core, p);
  /* No agent holds it any more: a result the agent still sends is stale (and
   * audited), not taken for a resend of the result that ended it. */
  p->agent_id = 0;
  p->flags &= (uint8_t)~BT_PKGF_UNDISPATCHED;
  bt_core__pkg_set_finishing(core, p, BT_PKG_CANCELLED);
  *state = BT_PKG_CANCELLED;
  bt_core__sched(core, now, out);
  return 0;
}

int bt_core_package_retry(bt_core_t *core, uint64_t package_id, const bt_now_t *now,
                          bt_pkg_state_t *state, bt_actions_t *out) {
  bt_core_pkg_t *p;
  int rc = touchable(core, package_id, &p);
  if (rc != 0)
    return rc;
  if (p->state != BT_PKG_QUEUED)
    return BT_ESTATE;
  if (p->flags & BT_PKGF_DELAYED) {
    bt_core__dequeue(core, p);
    p->not_before_at = 0;
    bt_core__enqueue(core, p, now);
  }
  update(out, p, now);
  audit(out, p, "package.retry", now);
  bt_core__sched(core, now, out);
  *state = (bt_pkg_state_t)p->state;
  return 0;
}

/* Moves a package to the class of its requirements pinned to vendor v. */
static void pin(bt_core_t *core, bt_core_pkg_t *p, const bt_core_vendor_t *v) {
  bt_pkg_view_t view;
  bt_core_package_view(core, p->id, &view);
  bt_pkg_spec_t spec = {
      .capability = view.capability,
      .regions = view.regions,
      .n_regions = view.n_regions,
      .certs = view.certs,
      .n_certs = view.n_certs,
      .max_cost = view.max_cost,
      .prefer = view.prefer,
      .n_prefer = view.n_prefer,
      .avoid = view.avoid,
      .n_avoid = view.n_avoid,
      .only_vendor = v->name,
  };
  bt_core_class_t *cls =
      bt_core__class_get(core, p->cls->cap, bt_core__reqs_intern(core, &spec));
  bt_core__class_release(core, p->cls);
  p->cls = cls;
}

int bt_core_package_reassign(bt_core_t *core, uint64_t package_id, uint64_t to_vendor,
                             const bt_now_t *now, bt_pkg_state_t *state,
                             bt_actions_t *out) {
  bt_core_pkg_t *p;
  int rc = touchable(core, package_id, &p);
  if (rc != 0)
    return rc;
  bt_core_vendor_t *to = NULL;
  if (to_vendor != 0) {
    to = bt_core__vendor(core, to_vendor);
    if (to == NULL)
      return BT_ENOTFOUND;
    /* Hard constraints hold for an admin too: the pin only narrows. */
    if (!bt_core__vendor_has_cap(to, p->cls->cap) ||
        !bt_core__reqs_allow(core, p->cls->reqs, to))
      return BT_EINVAL;
  } else if (p->state == BT_PKG_QUEUED) {
    return BT_ESTATE; /* nothing to move */
  }
  if (p->state == BT_PKG_ASSIGNED || p->state == BT_PKG_RUNNING)
    bt_core__revoke(core, p, BT_HANDOFF_ADMIN, "reassigned by admin", now, out);
  if (p->state == BT_PKG_QUEUED && to != NULL) {
    bool queued = (p->flags & (BT_PKGF_QUEUED | BT_PKGF_DELAYED)) != 0;
    bt_core__dequeue(core, p);
    pin(core, p, to);
    if (queued)
      bt_core__enqueue(core, p, now);
  }
  update(out, p, now);
  audit(out, p, "package.reassign", now);
  bt_core__sched(core, now, out);
  *state = (bt_pkg_state_t)p->state;
  return 0;
}

int bt_core_package_revive(bt_core_t *core, const bt_pkg_row_t *row, const bt_now_t *now,
                           bt_actions_t *out) {
  if (row->state != BT_PKG_DEAD && row->state != BT_PKG_CANCELLED)
    return BT_EINVAL;
  if (row->id == 0)
    return BT_EINVAL;
  if (bt_idmap_get(&core->pkg_by_id, row->id) != NULL)
    return BT_ECONFLICT;
  bt_pkg_spec_t spec = row->spec;
  spec.key = NULL; /* finished packages' keys stay with their row; not re-indexed */
  uint32_t per_run = row->spec.max_attempts ? row->spec.max_attempts
                                            : core->cfg.default_max_attempts;
  bt_core_pkg_t *p = bt_core__pkg_new(core, &spec, row->id, row->submitted_at);
  p->attempt = row->attempt;
  p->failures = row->failures;
  p->lost = row->lost;
  /* As many attempts again as it had: the earlier ones stay counted. */
  p->max_attempts = row->failures + per_run;
  p->not_before_at = 0;
  if (row->checkpoint != NULL && row->checkpoint_len > 0) {
    p->checkpoint = bt_xmalloc(row->checkpoint_len);
    memcpy(p->checkpoint, row->checkpoint, row->checkpoint_len);
    p->checkpoint_len = (uint32_t)row->checkpoint_len;
  }
  core->finished[row->state] -= core->finished[row->state] > 0;
  update(out, p, now);
  audit(out, p, "package.retry", now);
  bt_core__enqueue(core, p, now);
  bt_core__sched(core, now, out);
  return 0;
}

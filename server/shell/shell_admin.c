/*
 * The admin's vendor and package operations (batonctl vendor drain|suspend|
 * resume|fail|rotate-secret, package cancel|retry|reassign): the core decides,
 * the shell writes, and the answer goes out only once every write the
 * operation caused is committed — a store barrier queued after them fires
 * then. A package that is no longer in memory (dead or cancelled) is read back
 * from the store first for `retry`. A secret rotation writes the new key
 * first and lets the core act on it only once that is committed.
 */
#include "shell_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  bt_shell_t *sh;
  uint64_t token;
  uint64_t id;
  int state; /* bt_vendor_state_t or bt_pkg_state_t, as it was right after the op */
  bt_pkg_op_t op;
} op_ctx_t;

static op_ctx_t *ctx_new(bt_shell_t *sh, uint64_t token, uint64_t id, int state) {
  op_ctx_t *c = malloc(sizeof *c);
  if (c == NULL)
    abort();
  *c = (op_ctx_t){sh, token, id, state, BT_PKG_OP_CANCEL};
  return c;
}

static const char *unavailable(int status) {
  return status == BT_EDBDOWN ? "store unavailable; try again" : NULL;
}

/* --- vendors --------------------------------------------------------------------- */

static void on_vendor_done(void *arg, int status) {
  op_ctx_t *c = arg;
  bt_ctl_vendor_changed(c->sh->ctl, c->token, status, c->id, (bt_vendor_state_t)c->state,
                        unavailable(status));
  free(c);
}

static const char *const vendor_op_names[] = {"drain", "suspend", "resume", "fail"};

int bt_shell__vendor_op(void *arg, uint64_t vendor_id, bt_vendor_op_t op, uint64_t token) {
  bt_shell_t *sh = arg;
  if (bt_lanes_down(&sh->lanes))
    return BT_EDBDOWN;
  bt_now_t t = bt_shell__now();
  int rc = bt_core_vendor_op(sh->core, vendor_id, op, &t, &sh->acts);
  if (rc != 0) {
    bt_shell__apply(sh);
    return rc;
  }
  const bt_core_vendor_t *v = bt_core_vendor(sh->core, vendor_id);
  bt_log_info("admin changed a vendor", "vendor=%s op=%s state=%s", BT_Q(v->name),
              vendor_op_names[op], bt_vendor_state_name(v->state));
  op_ctx_t *c = ctx_new(sh, token, vendor_id, v->state);
  bt_shell__apply(sh);
  bt_lanes_barrier(&sh->lanes, on_vendor_done, c);
  return 0;
}

/* --- secret rotation --------------------------------------------------------------- */

/* One rotation from the key write to the answer. The key is public (the
 * secret itself stays in ctl until the answer), so it is kept without care. */
typedef struct {
  bt_shell_t *sh;
  uint64_t token;
  uint64_t vendor_id;
  uint8_t key[32];
} key_ctx_t;

static bt_vendor_state_t vendor_state(bt_shell_t *sh, uint64_t vendor_id) {
  const bt_core_vendor_t *v = bt_core_vendor(sh->core, vendor_id);
  return v ? v->state : BT_VENDOR_ACTIVE;
}

static const char *vendor_name(bt_shell_t *sh, uint64_t vendor_id) {
  const bt_core_vendor_t *v = bt_core_vendor(sh->core, vendor_id);
  return v ? v->name : "?";
}

/* The audit rows and session ends are through: answer with the new secret. */
static void on_rotated(void *arg, int status) {
  key_ctx_t *c = arg;
  bt_shell_t *sh = c->sh;
  /* The key is committed and in force whatever became of the audit row: an
   * error here would withhold the only copy of the secret and lock the
   * vendor's agents out, so the admin gets it and the log says what is
   * missing. */
  if (status != 0)
    bt_log_warn("the audit row of a secret rotation may be missing", "vendor=%s error=%s",
                BT_Q(vendor_name(sh, c->vendor_id)), bt_strerror(status));
  bt_ctl_vendor_rotated(sh->ctl, c->token, 0, c->vendor_id, vendor_state(sh, c->vendor_id),
                        NULL);
  free(c);
}

/* The new key is committed (or not). Only now does the core switch keys and
 * end the vendor's sessions, so a failed write changes nothing and the old
 * secret keeps working. */
static void on_key_committed(void *arg, int status) {
  key_ctx_t *c = arg;
  bt_shell_t *sh = c->sh;
  if (status != 0) {
    bt_log_error("could not record a vendor's new key; the old secret stays valid",
                 "vendor=%s error=%s", BT_Q(vendor_name(sh, c->vendor_id)),
                 bt_strerror(status));
    bt_ctl_vendor_rotated(sh->ctl, c->token, status, c->vendor_id,
                          vendor_state(sh, c->vendor_id), NULL);
    free(c);
    return;
  }
  bt_now_t t = bt_shell__now();
  uint32_t ended = 0;
  int rc = bt_core_vendor_key_persisted(sh->core, c->vendor_id, c->key, &t, &ended,
                                        &sh->acts);
  if (rc == 0)
    bt_log_info("vendor secret rotated; its agents must authenticate again",
                "vendor=%s vendor_id=%" PRIu64 " sessions_ended=%u",
                BT_Q(vendor_name(sh, c->vendor_id)), c->vendor_id, ended);
  bt_shell__apply(sh);
  bt_lanes_barrier(&sh->lanes, on_rotated, c);
}

int bt_shell__vendor_rotate_secret(void *arg, uint64_t vendor_id, const uint8_t key[32],
                                   uint64_t token) {
  bt_shell_t *sh = arg;
  if (bt_lanes_down(&sh->lanes))
    return BT_EDBDOWN;
  bt_now_t t = bt_shell__now();
  int rc = bt_core_vendor_rotate_key(sh->core, vendor_id, key, token, &t, &sh->acts);
  bt_shell__apply(sh); /* VENDOR_KEY: bt_shell__vendor_key below */
  return rc;
}

void bt_shell__vendor_key(bt_shell_t *sh, const bt_action_t *a) {
  key_ctx_t *c = malloc(sizeof *c);
  if (c == NULL)
    abort();
  c->sh = sh;
  c->token = a->token;
  c->vendor_id = a->vendor_id;
  if (a->data == NULL || a->len != sizeof c->key)
    abort(); /* the core always sends a whole key */
  memcpy(c->key, a->data, sizeof c->key);
  bt_store_vendor_key(sh->lanes.lane[0], a->vendor_id, c->key, a->at, on_key_committed, c);
}

/* --- packages -------------------------------------------------------------------- */

static void on_package_done(void *arg, int status) {
  op_ctx_t *c = arg;
  bt_ctl_package_changed(c->sh->ctl, c->token, status, c->id, (bt_pkg_state_t)c->state,
                         unavailable(status));
  free(c);
}

/* Answers once what came before is committed. */
static void answer_after_commit(bt_shell_t *sh, uint64_t token, uint64_t id,
                                bt_pkg_state_t state) {
  bt_lanes_barrier(&sh->lanes, on_package_done, ctx_new(sh, token, id, state));
}

/* The row of a package that is not open: retry revives a dead or cancelled
 * one; for anything else the row says why the operation cannot be done. */
static void on_row(void *arg, int status, const bt_pkg_row_t *row) {
  op_ctx_t *c = arg;
  bt_shell_t *sh = c->sh;
  char msg[96];
  snprintf(msg, sizeof msg, "%s", status == BT_ENOTFOUND ? "no such package" : "");
  if (status == 0) {
    bt_now_t t = bt_shell__now();
    bool revivable = row->state == BT_PKG_DEAD || row->state == BT_PKG_CANCELLED;
    if (c->op == BT_PKG_OP_RETRY && revivable && bt_core_package(sh->core, c->id) == NULL) {
      status = bt_core_package_revive(sh->core, row, &t, &sh->acts);
      bt_shell__apply(sh);
      if (status == 0) {
        bt_log_info("admin queued a package again", "package=%" PRIu64, c->id);
        answer_after_commit(sh, c->token, c->id, BT_PKG_QUEUED);
        free(c);
        return;
      }
    }
    /* Open again by now (another request), or finished for good. */
    status = BT_ESTATE;
    snprintf(msg, sizeof msg, "package %" PRIu64 " is %s", c->id,
             bt_core_package(sh->core, c->id) ? "open" : bt_pkg_state_name(row->state));
  }
  bt_ctl_package_changed(sh->ctl, c->token, status, c->id, BT_PKG_QUEUED,
                         msg[0] ? msg : unavailable(status));
  free(c);
}

static const char *const pkg_op_names[] = {"cancel", "retry", "reassign"};

int bt_shell__package_op(void *arg, uint64_t package_id, bt_pkg_op_t op,
                         uint64_t to_vendor_id, uint64_t token) {
  bt_shell_t *sh = arg;
  if (bt_lanes_down(&sh->lanes))
    return BT_EDBDOWN;
  bt_now_t t = bt_shell__now();
  bt_pkg_state_t state = BT_PKG_QUEUED;
  int rc;
  if (bt_core_package(sh->core, package_id) == NULL) {
    /* Finished (or never was): only the store knows; retry revives it. */
    op_ctx_t *c = ctx_new(sh, token, package_id, BT_PKG_QUEUED);
    c->op = op;
    bt_store_package_row(bt_lanes_for(&sh->lanes, package_id), package_id, on_row, c);
    return 0;
  }
  switch (op) {
  case BT_PKG_OP_CANCEL:
    rc = bt_core_package_cancel(sh->core, package_id, &t, &state, &sh->acts);
    break;
  case BT_PKG_OP_RETRY:
    rc = bt_core_package_retry(sh->core, package_id, &t, &state, &sh->acts);
    break;
  case BT_PKG_OP_REASSIGN:
    rc = bt_core_package_reassign(sh->core, package_id, to_vendor_id, &t, &state,
                                  &sh->acts);
    break;
  default:
    rc = BT_EINVAL;
    break;
  }
  bt_shell__apply(sh);
  if (rc != 0)
    return rc;
  bt_log_info("admin changed a package", "package=%" PRIu64 " op=%s state=%s", package_id,
              pkg_op_names[op], bt_pkg_state_name(state));
  answer_after_commit(sh, token, package_id, state);
  return 0;
}

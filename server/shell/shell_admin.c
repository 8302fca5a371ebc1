/*
 * The admin's vendor and package operations (batonctl vendor drain|suspend|
 * resume|fail, package cancel|retry|reassign): the core decides, the shell
 * writes, and the answer goes out only once every write the operation caused
 * is committed — a store barrier queued after them fires then. A package that
 * is no longer in memory (dead or cancelled) is read back from the store first
 * for `retry`.
 */
#include "shell_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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
  if (bt_store_is_down(sh->store))
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
  bt_store_barrier(sh->store, on_vendor_done, c);
  return 0;
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
  bt_store_barrier(sh->store, on_package_done, ctx_new(sh, token, id, state));
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
  if (bt_store_is_down(sh->store))
    return BT_EDBDOWN;
  bt_now_t t = bt_shell__now();
  bt_pkg_state_t state = BT_PKG_QUEUED;
  int rc;
  if (bt_core_package(sh->core, package_id) == NULL) {
    /* Finished (or never was): only the store knows; retry revives it. */
    op_ctx_t *c = ctx_new(sh, token, package_id, BT_PKG_QUEUED);
    c->op = op;
    bt_store_package_row(sh->store, package_id, on_row, c);
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

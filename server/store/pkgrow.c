/*
 * A package's whole row as the core loads it (bt_pkg_row_t): parsed the same
 * way for recovery at start (load.c) and for `package retry` of a dead or
 * cancelled package, read here asynchronously on the loop.
 *
 * Column order: id, idem_key, capability, payload, priority, deadline_at,
 * not_before_at, regions, certs, max_cost, prefer, avoid, max_attempts, state,
 * attempt, vendor_id, agent_id, progress, checkpoint, submitted_at, failures,
 * lost, only_vendor (load.c's cursor and BT_SQL_PACKAGE_ROW both select them).
 */
#include "store_int.h"

#include "bt_err.h"

#include <stdlib.h>
#include <string.h>

void bt_store__parse_pkg_row(const PGresult *r, int i, bt_pkg_row_t *row,
                             const char **lists[4]) {
  size_t plen, clen;
  memset(row, 0, sizeof *row);
  row->id = (uint64_t)bt_pgr_i64(r, i, 0);
  row->spec.key = bt_pgr_text(r, i, 1);
  row->spec.capability = bt_pgr_text(r, i, 2);
  row->spec.payload = bt_pgr_bytes(r, i, 3, &plen);
  row->spec.payload_len = plen;
  row->spec.priority = (uint32_t)bt_pgr_i64(r, i, 4);
  row->spec.deadline_at = bt_pgr_ts(r, i, 5);
  row->spec.not_before_at = bt_pgr_ts(r, i, 6);
  lists[0] = bt_pgr_text_array(r, i, 7, &row->spec.n_regions);
  lists[1] = bt_pgr_text_array(r, i, 8, &row->spec.n_certs);
  lists[2] = bt_pgr_text_array(r, i, 10, &row->spec.n_prefer);
  lists[3] = bt_pgr_text_array(r, i, 11, &row->spec.n_avoid);
  row->spec.regions = lists[0];
  row->spec.certs = lists[1];
  row->spec.prefer = lists[2];
  row->spec.avoid = lists[3];
  row->spec.max_cost = bt_pgr_null(r, i, 9) ? -1.0 : bt_pgr_f64(r, i, 9);
  row->spec.max_attempts = (uint32_t)bt_pgr_i64(r, i, 12);
  if (bt_pkg_state_parse(bt_pgr_text(r, i, 13), &row->state) != 0)
    row->state = BT_PKG_QUEUED;
  row->attempt = (uint32_t)bt_pgr_i64(r, i, 14);
  row->vendor_id = (uint64_t)bt_pgr_i64(r, i, 15);
  row->agent_id = (uint64_t)bt_pgr_i64(r, i, 16);
  row->progress = bt_pgr_null(r, i, 17) ? -1 : (int)bt_pgr_i64(r, i, 17);
  row->checkpoint = bt_pgr_bytes(r, i, 18, &clen);
  row->checkpoint_len = clen;
  row->submitted_at = bt_pgr_ts(r, i, 19);
  row->failures = (uint32_t)bt_pgr_i64(r, i, 20);
  row->lost = (uint32_t)bt_pgr_i64(r, i, 21);
  row->spec.only_vendor = bt_pgr_text(r, i, 22);
}

static void complete_row(bt_store_op_t *op, int status) {
  bt_store_row_cb cb = (bt_store_row_cb)op->cb;
  if (status != 0 || PQntuples(op->res[0]) == 0) {
    cb(op->arg, status ? status : BT_ENOTFOUND, NULL);
    return;
  }
  bt_pkg_row_t row;
  const char **lists[4];
  bt_store__parse_pkg_row(op->res[0], 0, &row, lists);
  cb(op->arg, 0, &row);
  for (int k = 0; k < 4; k++)
    free(lists[k]);
}

void bt_store_package_row(bt_store_t *st, uint64_t id, bt_store_row_cb cb, void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_row, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgp_i64(bt_store__op_stmt(op, BT_SQL_PACKAGE_ROW), (int64_t)id);
  bt_store__enqueue(st, op);
}

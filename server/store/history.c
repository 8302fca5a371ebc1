/*
 * History reads for the control socket: the audit trail and the vendor
 * scorecard. Both are computed by PostgreSQL from what the store has
 * committed (never from the core's memory) and parsed from binary results
 * into borrowed views that live for the callback only. Nothing here writes.
 */
#include "store_int.h"

#include "bt_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static void complete_audit(bt_store_op_t *op, int status) {
  bt_store_audit_cb cb = (bt_store_audit_cb)op->cb;
  if (status != 0) {
    cb(op->arg, status, NULL, 0);
    return;
  }
  const PGresult *r = op->res[0];
  int n = PQntuples(r);
  bt_store_audit_row_t *rows = calloc((size_t)n + 1, sizeof *rows);
  if (rows == NULL)
    abort();
  for (int i = 0; i < n; i++) {
    rows[i].at = bt_pgr_ts(r, i, 0);
    rows[i].actor = bt_pgr_text(r, i, 1);
    rows[i].action = bt_pgr_text(r, i, 2);
    rows[i].subject = bt_pgr_text(r, i, 3);
    rows[i].detail = bt_pgr_text(r, i, 4);
    rows[i].id = (uint64_t)bt_pgr_i64(r, i, 5);
  }
  cb(op->arg, 0, rows, (size_t)n);
  free(rows);
}

void bt_store_list_audit(bt_store_t *st, const bt_store_audit_filter_t *f,
                         bt_store_audit_cb cb, void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_audit, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_AUDIT_LIST);
  bt_pgp_ts(p, f->since_at);
  if (f->package_id) {
    char subject[32];
    snprintf(subject, sizeof subject, "package:%" PRIu64, f->package_id);
    bt_pgp_text(p, subject);
  } else {
    bt_pgp_null(p);
  }
  bt_pgp_text(p, f->vendor);
  bt_pgp_i32(p, (int32_t)(f->limit ? f->limit : 1000));
  bt_store__enqueue(st, op);
}

/* Column order of BT_SQL_SCORECARD. */
enum { S_NAME, S_COMPLETED, S_FAILED, S_HANDED_OFF, S_ON_TIME, S_P50, S_P95, S_COST };

static void complete_scorecard(bt_store_op_t *op, int status) {
  bt_store_scores_cb cb = (bt_store_scores_cb)op->cb;
  if (status != 0) {
    cb(op->arg, status, NULL, 0);
    return;
  }
  const PGresult *r = op->res[0];
  int n = PQntuples(r);
  bt_store_score_t *rows = calloc((size_t)n + 1, sizeof *rows);
  if (rows == NULL)
    abort();
  for (int i = 0; i < n; i++) {
    bt_store_score_t *s = &rows[i];
    s->vendor = bt_pgr_text(r, i, S_NAME);
    s->completed = (uint64_t)bt_pgr_i64(r, i, S_COMPLETED);
    s->failed = (uint64_t)bt_pgr_i64(r, i, S_FAILED);
    s->handed_off = (uint64_t)bt_pgr_i64(r, i, S_HANDED_OFF);
    s->has_on_time_rate = !bt_pgr_null(r, i, S_ON_TIME);
    s->on_time_rate = s->has_on_time_rate ? bt_pgr_f64(r, i, S_ON_TIME) : 0;
    s->has_turnaround = !bt_pgr_null(r, i, S_P50);
    s->turnaround_p50_ms = s->has_turnaround ? bt_pgr_f64(r, i, S_P50) : 0;
    s->turnaround_p95_ms = s->has_turnaround ? bt_pgr_f64(r, i, S_P95) : 0;
    s->cost_total = bt_pgr_f64(r, i, S_COST);
  }
  cb(op->arg, 0, rows, (size_t)n);
  free(rows);
}

void bt_store_scorecard(bt_store_t *st, uint64_t vendor_id, bt_store_scores_cb cb,
                        void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_scorecard, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_SCORECARD);
  if (vendor_id)
    bt_pgp_i64(p, (int64_t)vendor_id);
  else
    bt_pgp_null(p);
  bt_store__enqueue(st, op);
}

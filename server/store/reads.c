/*
 * Typed reads for the control socket: packages with their history, package
 * lists, state counts for `wait`, results, and handoff history. Rows are parsed from binary
 * results into borrowed views that live for the callback only.
 */
#include "store_int.h"

#include "bt_err.h"

#include <stdlib.h>
#include <string.h>

/* Column order of BT_SQL_PACKAGE_SELECT (PACKAGE_GET and PACKAGE_LIST). */
enum { P_ID, P_CAP, P_STATE, P_PRIO, P_DEADLINE, P_NOTBEFORE, P_VENDOR, P_AGENT,
       P_ATTEMPT, P_PROGRESS, P_RESULT_BYTES, P_KEY, P_SUBMITTED, P_COMPLETED,
       P_REGIONS, P_CERTS, P_MAXCOST, P_PREFER, P_AVOID, P_MAXATT, P_PAYLOAD_BYTES,
       P_ERROR };

/* Fills out from row; the decoded lists are malloc'd into lists[0..3] for the
 * caller to free. */
static void parse_package(const PGresult *r, int row, bt_store_pkg_t *out,
                          const char **lists[4]) {
  memset(out, 0, sizeof *out);
  out->id = (uint64_t)bt_pgr_i64(r, row, P_ID);
  out->capability = bt_pgr_text(r, row, P_CAP);
  out->state = bt_pgr_text(r, row, P_STATE);
  out->priority = (uint32_t)bt_pgr_i64(r, row, P_PRIO);
  out->deadline_at = bt_pgr_ts(r, row, P_DEADLINE);
  out->not_before_at = bt_pgr_ts(r, row, P_NOTBEFORE);
  out->vendor = bt_pgr_text(r, row, P_VENDOR);
  out->agent = bt_pgr_text(r, row, P_AGENT);
  out->attempt = (uint32_t)bt_pgr_i64(r, row, P_ATTEMPT);
  out->progress = bt_pgr_null(r, row, P_PROGRESS) ? -1 : (int)bt_pgr_i64(r, row, P_PROGRESS);
  out->result_bytes = (uint64_t)bt_pgr_i64(r, row, P_RESULT_BYTES);
  out->key = bt_pgr_text(r, row, P_KEY);
  out->submitted_at = bt_pgr_ts(r, row, P_SUBMITTED);
  out->completed_at = bt_pgr_ts(r, row, P_COMPLETED);
  lists[0] = bt_pgr_text_array(r, row, P_REGIONS, &out->n_regions);
  lists[1] = bt_pgr_text_array(r, row, P_CERTS, &out->n_certs);
  lists[2] = bt_pgr_text_array(r, row, P_PREFER, &out->n_prefer);
  lists[3] = bt_pgr_text_array(r, row, P_AVOID, &out->n_avoid);
  out->regions = lists[0];
  out->certs = lists[1];
  out->prefer = lists[2];
  out->avoid = lists[3];
  out->max_cost = bt_pgr_null(r, row, P_MAXCOST) ? -1.0 : bt_pgr_f64(r, row, P_MAXCOST);
  out->max_attempts = (uint32_t)bt_pgr_i64(r, row, P_MAXATT);
  out->payload_bytes = (uint64_t)bt_pgr_i64(r, row, P_PAYLOAD_BYTES);
  out->error = bt_pgr_text(r, row, P_ERROR);
}

static void complete_get(bt_store_op_t *op, int status) {
  bt_store_pkgs_cb cb = (bt_store_pkgs_cb)op->cb;
  if (status != 0 || PQntuples(op->res[0]) == 0) {
    cb(op->arg, status ? status : BT_ENOTFOUND, NULL, 0);
    return;
  }
  bt_store_pkg_t pkg;
  const char **lists[4];
  parse_package(op->res[0], 0, &pkg, lists);

  const PGresult *ra = op->res[1];
  int na = PQntuples(ra);
  bt_store_attempt_t *atts = calloc((size_t)na + 1, sizeof *atts);
  if (atts == NULL)
    abort();
  for (int i = 0; i < na; i++) {
    atts[i].attempt = (uint32_t)bt_pgr_i64(ra, i, 0);
    atts[i].vendor = bt_pgr_text(ra, i, 1);
    atts[i].agent = bt_pgr_text(ra, i, 2);
    atts[i].started_at = bt_pgr_ts(ra, i, 3);
    atts[i].ended_at = bt_pgr_ts(ra, i, 4);
    atts[i].outcome = bt_pgr_text(ra, i, 5);
    atts[i].has_exit_code = !bt_pgr_null(ra, i, 6);
    atts[i].exit_code = (int32_t)bt_pgr_i64(ra, i, 6);
    atts[i].error = bt_pgr_text(ra, i, 7);
  }
  const PGresult *rh = op->res[2];
  int nh = PQntuples(rh);
  bt_store_handoff_t *hos = calloc((size_t)nh + 1, sizeof *hos);
  if (hos == NULL)
    abort();
  for (int i = 0; i < nh; i++) {
    hos[i].from_vendor = bt_pgr_text(rh, i, 0);
    hos[i].to_vendor = bt_pgr_text(rh, i, 1);
    hos[i].reason = bt_pgr_text(rh, i, 2);
    hos[i].at = bt_pgr_ts(rh, i, 3);
    hos[i].checkpoint_bytes = (uint32_t)bt_pgr_i64(rh, i, 4);
  }
  pkg.attempts = atts;
  pkg.n_attempts = (size_t)na;
  pkg.handoffs = hos;
  pkg.n_handoffs = (size_t)nh;
  cb(op->arg, 0, &pkg, 1);
  free(atts);
  free(hos);
  for (int i = 0; i < 4; i++)
    free(lists[i]);
}

void bt_store_get_package(bt_store_t *st, uint64_t id, bt_store_pkgs_cb cb, void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_get, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgp_i64(bt_store__op_stmt(op, BT_SQL_PACKAGE_GET), (int64_t)id);
  bt_pgp_i64(bt_store__op_stmt(op, BT_SQL_PACKAGE_ATTEMPTS), (int64_t)id);
  bt_pgp_i64(bt_store__op_stmt(op, BT_SQL_PACKAGE_HANDOFFS), (int64_t)id);
  bt_store__enqueue(st, op);
}

static void complete_list(bt_store_op_t *op, int status) {
  bt_store_pkgs_cb cb = (bt_store_pkgs_cb)op->cb;
  if (status != 0) {
    cb(op->arg, status, NULL, 0);
    return;
  }
  const PGresult *r = op->res[0];
  int n = PQntuples(r);
  bt_store_pkg_t *rows = calloc((size_t)n + 1, sizeof *rows);
  const char ***lists = calloc((size_t)n * 4 + 1, sizeof *lists);
  if (rows == NULL || lists == NULL)
    abort();
  for (int i = 0; i < n; i++)
    parse_package(r, i, &rows[i], &lists[4 * i]);
  cb(op->arg, 0, rows, (size_t)n);
  for (int i = 0; i < 4 * n; i++)
    free(lists[i]);
  free(lists);
  free(rows);
}

void bt_store_list_packages(bt_store_t *st, const bt_store_pkg_filter_t *f,
                            bt_store_pkgs_cb cb, void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_list, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_PACKAGE_LIST);
  bt_pgp_text(p, f->state);
  if (f->vendor_id)
    bt_pgp_i64(p, (int64_t)f->vendor_id);
  else
    bt_pgp_null(p);
  bt_pgp_text(p, f->capability);
  bt_pgp_i32(p, (int32_t)(f->limit ? f->limit : 100));
  bt_store__enqueue(st, op);
}

static void complete_counts(bt_store_op_t *op, int status) {
  bt_store_counts_cb cb = (bt_store_counts_cb)op->cb;
  uint64_t counts[BT_PKG__COUNT] = {0};
  uint64_t found = 0;
  if (status == 0) {
    const PGresult *r = op->res[0];
    for (int i = 0; i < PQntuples(r); i++) {
      bt_pkg_state_t s;
      uint64_t c = (uint64_t)bt_pgr_i64(r, i, 1);
      if (bt_pkg_state_parse(bt_pgr_text(r, i, 0), &s) == 0)
        counts[s] += c;
      found += c;
    }
  }
  cb(op->arg, status, counts, found);
}

void bt_store_count_states(bt_store_t *st, const uint64_t *ids, size_t n,
                           bt_store_counts_cb cb, void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_counts, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_COUNT_STATES);
  bt_pgp_id_array(p, ids, n);
  bt_store__enqueue(st, op);
}

static void complete_result(bt_store_op_t *op, int status) {
  bt_store_result_cb cb = (bt_store_result_cb)op->cb;
  if (status != 0 || PQntuples(op->res[0]) == 0) {
    cb(op->arg, status ? status : BT_ENOTFOUND, NULL, NULL, 0);
    return;
  }
  size_t len;
  const uint8_t *b = bt_pgr_bytes(op->res[0], 0, 1, &len);
  cb(op->arg, 0, bt_pgr_text(op->res[0], 0, 0), b, len);
}

void bt_store_get_result(bt_store_t *st, uint64_t id, bt_store_result_cb cb, void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_result, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgp_i64(bt_store__op_stmt(op, BT_SQL_RESULT_GET), (int64_t)id);
  bt_store__enqueue(st, op);
}

static void complete_handoffs(bt_store_op_t *op, int status) {
  bt_store_handoffs_cb cb = (bt_store_handoffs_cb)op->cb;
  if (status != 0) {
    cb(op->arg, status, NULL, 0);
    return;
  }
  const PGresult *r = op->res[0];
  int n = PQntuples(r);
  bt_store_handoff_t *rows = calloc((size_t)n + 1, sizeof *rows);
  if (rows == NULL)
    abort();
  for (int i = 0; i < n; i++) {
    rows[i].package_id = (uint64_t)bt_pgr_i64(r, i, 0);
    rows[i].attempt = (uint32_t)bt_pgr_i64(r, i, 1);
    rows[i].from_vendor = bt_pgr_text(r, i, 2);
    rows[i].to_vendor = bt_pgr_text(r, i, 3);
    rows[i].reason = bt_pgr_text(r, i, 4);
    rows[i].at = bt_pgr_ts(r, i, 5);
    rows[i].checkpoint_bytes = (uint32_t)bt_pgr_i64(r, i, 6);
  }
  cb(op->arg, 0, rows, (size_t)n);
  free(rows);
}

void bt_store_list_handoffs(bt_store_t *st, const bt_store_handoff_filter_t *f,
                            bt_store_handoffs_cb cb, void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_handoffs, (void (*)(void))cb, arg);
  op->fail_fast = true;
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_HANDOFF_LIST);
  if (f->vendor_id)
    bt_pgp_i64(p, (int64_t)f->vendor_id);
  else
    bt_pgp_null(p);
  if (f->package_id)
    bt_pgp_i64(p, (int64_t)f->package_id);
  else
    bt_pgp_null(p);
  bt_pgp_ts(p, f->since_at);
  bt_pgp_i32(p, (int32_t)(f->limit ? f->limit : 10000));
  bt_store__enqueue(st, op);
}

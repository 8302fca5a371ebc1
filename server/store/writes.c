/*
 * Typed writes: each turns a core action (or a vendor/agent/package in core
 * memory) into one prepared statement with binary parameters, copied at call
 * time so the core may change right after.
 */
#include "store_int.h"

#include "bt_err.h"

#include <stdlib.h>
#include <string.h>

static void complete_plain(bt_store_op_t *op, int status) {
  if (op->cb)
    ((bt_store_cb)op->cb)(op->arg, status);
}

static bt_store_op_t *plain_op(bt_store_cb cb, void *arg) {
  return bt_store__op_new(complete_plain, (void (*)(void))cb, arg);
}

/* Symbols → a text[] parameter. */
static void sym_array(bt_pgparams_t *p, const bt_core_t *core, const bt_sym_t *syms,
                      uint32_t n) {
  bt_pgarr_t a;
  bt_pga_begin(&a, p, BT_PG_OID_TEXT);
  for (uint32_t i = 0; i < n; i++) {
    const char *s = bt_core_sym(core, syms[i]);
    bt_pga_bytes(&a, s, strlen(s));
  }
  bt_pga_end(&a);
}

void bt_store_put_vendor(bt_store_t *st, const bt_core_t *core,
                         const bt_core_vendor_t *v, int64_t at, bool fail_fast,
                         bt_store_cb cb, void *arg) {
  bt_store_op_t *op = plain_op(cb, arg);
  op->fail_fast = fail_fast;
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_VENDOR_PUT);
  bt_pgp_i64(p, (int64_t)v->id);
  bt_pgp_text(p, v->name);
  bt_pgp_text(p, v->region);
  bt_pgp_text(p, bt_model_name(v->model));
  sym_array(p, core, v->caps, v->n_caps);
  sym_array(p, core, v->certs, v->n_certs);
  bt_pgp_i32(p, (int32_t)v->capacity);
  bt_pgp_f64(p, v->cost);
  bt_pgp_text(p, v->hours);
  bt_pgp_f64(p, v->weight);
  bt_pgp_text(p, bt_vendor_state_name(v->state));
  bt_pgp_bytes(p, v->auth_key, sizeof v->auth_key);
  bt_pgp_ts(p, v->created_at);
  bt_pgp_ts(p, at);
  bt_store__enqueue(st, op);
}

void bt_store_put_agent(bt_store_t *st, const bt_core_t *core, uint64_t agent_id,
                        const char *software, int64_t at, bt_store_cb cb, void *arg) {
  bt_agent_view_t a;
  if (bt_core_agent_view(core, agent_id, &a) != 0)
    abort(); /* the shell persists agents the core just created */
  bt_store_op_t *op = plain_op(cb, arg);
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_AGENT_PUT);
  bt_pgp_i64(p, (int64_t)a.id);
  bt_pgp_i64(p, (int64_t)a.vendor_id);
  bt_pgp_text(p, a.name);
  sym_array(p, core, a.caps, a.n_caps);
  bt_pgp_i32(p, (int32_t)a.slots);
  bt_pgp_text(p, software);
  bt_pgp_ts(p, at);
  bt_store__enqueue(st, op);
}

/* --- packages ------------------------------------------------------------------- */

typedef struct {
  size_t n;
  uint64_t ids[];
} insert_extra_t;

static void complete_insert(bt_store_op_t *op, int status) {
  insert_extra_t *x = op->extra;
  bt_store_insert_cb cb = (bt_store_insert_cb)op->cb;
  bt_store_inserted_t *rows = calloc(x->n ? x->n : 1, sizeof *rows);
  if (rows == NULL)
    abort();
  for (size_t i = 0; i < x->n; i++)
    rows[i].id = x->ids[i];
  if (status == 0 && PQnfields(op->res[0]) == 3) { /* the keyed form names earlier packages */
    const PGresult *r = op->res[0];
    int nr = PQntuples(r);
    for (int i = 0; i < nr; i++) {
      uint64_t id = (uint64_t)bt_pgr_i64(r, i, 0);
      if (bt_pgr_null(r, i, 1))
        continue;
      /* ids were given in increasing order */
      size_t lo = 0, hi = x->n;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->ids[mid] < id)
          lo = mid + 1;
        else
          hi = mid;
      }
      if (lo < x->n && x->ids[lo] == id) {
        rows[lo].existing_id = (uint64_t)bt_pgr_i64(r, i, 1);
        rows[lo].existing_state = bt_pgr_text(r, i, 2);
      }
    }
  }
  if (cb)
    cb(op->arg, status, rows, x->n);
  free(rows);
}

/* Joins a list with the unit separator (see PACKAGES_INSERT). */
static void joined(bt_pgarr_t *a, const char *const *v, size_t n) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += strlen(v[i]) + 1;
  char *buf = malloc(len + 1);
  if (buf == NULL)
    abort();
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(v[i]);
    if (i)
      buf[o++] = '\x1f';
    memcpy(buf + o, v[i], l);
    o += l;
  }
  bt_pga_bytes(a, buf, o);
  free(buf);
}

void bt_store_insert_packages(bt_store_t *st, const bt_core_t *core,
                              const uint64_t *ids, size_t n, bt_store_insert_cb cb,
                              void *arg) {
  bt_store_op_t *op = bt_store__op_new(complete_insert, (void (*)(void))cb, arg);
  op->fail_fast = true;
  insert_extra_t *x = malloc(sizeof *x + (n ? n : 1) * sizeof x->ids[0]);
  if (x == NULL)
    abort();
  x->n = n;
  memcpy(x->ids, ids, n * sizeof *ids);
  op->extra = x;
  /* Each package is looked up once: the columns below read it 17 times, and
   * 17 id-map probes a package were a third of batond's time in a bulk
   * submit of 1M packages (tests/bench, perf). */
  const bt_core_pkg_t **pkgs = malloc((n ? n : 1) * sizeof *pkgs);
  if (pkgs == NULL)
    abort();
  bool keyed = false;
  for (size_t i = 0; i < n; i++) {
    if ((pkgs[i] = bt_core_package(core, ids[i])) == NULL)
      abort(); /* the shell inserts packages the core just created */
    bt_pkg_view_t v;
    bt_core_pkg_view(core, pkgs[i], &v);
    keyed = keyed || v.key != NULL;
  }
  bt_pgparams_t *p =
      bt_store__op_stmt(op, keyed ? BT_SQL_PACKAGES_INSERT_KEYED : BT_SQL_PACKAGES_INSERT);
  /* Keyless submits need nothing back but success, so several submits' rows
   * may go in one statement; a keyed one reads its own answer. */
  op->mergeable = !keyed;

  /* Column-major: one array parameter per column, one element per package. */
  enum { C_ID, C_KEY, C_CAP, C_PAYLOAD, C_PRIO, C_DEADLINE, C_NOTBEFORE, C_REGIONS,
         C_CERTS, C_MAXCOST, C_PREFER, C_AVOID, C_MAXATT, C_SUBMITTED, C_ATTEMPT,
         C_VENDOR, C_AGENT, C_N };
  static const uint32_t oids[C_N] = {
      BT_PG_OID_INT8,   BT_PG_OID_TEXT,        BT_PG_OID_TEXT,
      BT_PG_OID_BYTEA,  BT_PG_OID_INT2,        BT_PG_OID_TIMESTAMPTZ,
      BT_PG_OID_TIMESTAMPTZ, BT_PG_OID_TEXT,   BT_PG_OID_TEXT,
      BT_PG_OID_FLOAT8, BT_PG_OID_TEXT,        BT_PG_OID_TEXT,
      BT_PG_OID_INT4,   BT_PG_OID_TIMESTAMPTZ, BT_PG_OID_INT4,
      BT_PG_OID_INT8,   BT_PG_OID_INT8};
  for (int c = 0; c < C_N; c++) {
    bt_pgarr_t a;
    bt_pga_begin(&a, p, oids[c]);
    for (size_t i = 0; i < n; i++) {
      bt_pkg_view_t v;
      bt_core_pkg_view(core, pkgs[i], &v);
      switch (c) {
      case C_ID: bt_pga_i64(&a, (int64_t)v.id); break;
      case C_KEY:
        if (v.key) bt_pga_bytes(&a, v.key, strlen(v.key));
        else bt_pga_null(&a);
        break;
      case C_CAP: bt_pga_bytes(&a, v.capability, strlen(v.capability)); break;
      case C_PAYLOAD: bt_pga_bytes(&a, v.payload, v.payload_len); break;
      case C_PRIO: bt_pga_i16(&a, (int16_t)v.priority); break;
      case C_DEADLINE: bt_pga_ts(&a, v.deadline_at); break;
      case C_NOTBEFORE: bt_pga_ts(&a, v.not_before_at); break;
      case C_REGIONS: joined(&a, v.regions, v.n_regions); break;
      case C_CERTS: joined(&a, v.certs, v.n_certs); break;
      case C_MAXCOST:
        if (v.max_cost >= 0) bt_pga_f64(&a, v.max_cost);
        else bt_pga_null(&a);
        break;
      case C_PREFER: joined(&a, v.prefer, v.n_prefer); break;
      case C_AVOID: joined(&a, v.avoid, v.n_avoid); break;
      case C_MAXATT: bt_pga_i32(&a, (int32_t)v.max_attempts); break;
      case C_SUBMITTED: bt_pga_ts(&a, v.submitted_at); break;
      /* A package the core placed in its submit (route_at_submit) is
       * assigned already: its attempt goes in with it (attempt 0: none). */
      case C_ATTEMPT:
        bt_pga_i32(&a, v.state == BT_PKG_ASSIGNED ? (int32_t)v.attempt : 0);
        break;
      case C_VENDOR:
        bt_pga_i64(&a, v.state == BT_PKG_ASSIGNED ? (int64_t)v.vendor_id : 0);
        break;
      case C_AGENT:
        bt_pga_i64(&a, v.state == BT_PKG_ASSIGNED ? (int64_t)v.agent_id : 0);
        break;
      }
    }
    bt_pga_end(&a);
  }
  free(pkgs);
  bt_store__enqueue(st, op);
}

/* --- attempts -------------------------------------------------------------------- */

/* Assign, start and finish are array statements (sql.def): each op writes its
 * row as one-element arrays and says which package it is about, so the engine
 * may send it together with others of its kind. */
static bt_pgparams_t *mergeable_stmt(bt_store_op_t *op, int stmt, uint64_t package_id,
                                     uint32_t attempt, int64_t at) {
  op->mergeable = true;
  op->merge_key = package_id;
  op->merge_attempt = attempt;
  op->merge_at = at;
  return bt_store__op_stmt(op, stmt);
}

static void one_i64(bt_pgparams_t *p, int64_t v) {
  bt_pgarr_t a;
  bt_pga_begin(&a, p, BT_PG_OID_INT8);
  bt_pga_i64(&a, v);
  bt_pga_end(&a);
}

static void one_i32(bt_pgparams_t *p, int32_t v, bool null) {
  bt_pgarr_t a;
  bt_pga_begin(&a, p, BT_PG_OID_INT4);
  if (null)
    bt_pga_null(&a);
  else
    bt_pga_i32(&a, v);
  bt_pga_end(&a);
}

static void one_ts(bt_pgparams_t *p, int64_t at) {
  bt_pgarr_t a;
  bt_pga_begin(&a, p, BT_PG_OID_TIMESTAMPTZ);
  bt_pga_ts(&a, at);
  bt_pga_end(&a);
}

/* text (oid TEXT) or bytea (oid BYTEA); NULL → SQL NULL */
static void one_bytes(bt_pgparams_t *p, uint32_t oid, const void *b, size_t n) {
  bt_pgarr_t a;
  bt_pga_begin(&a, p, oid);
  if (b == NULL)
    bt_pga_null(&a);
  else
    bt_pga_bytes(&a, b, n);
  bt_pga_end(&a);
}

static void one_text(bt_pgparams_t *p, const char *s) {
  one_bytes(p, BT_PG_OID_TEXT, s, s ? strlen(s) : 0);
}

void bt_store_assign(bt_store_t *st, const bt_action_t *a, bt_store_cb cb, void *arg) {
  bt_store_op_t *op = plain_op(cb, arg);
  bt_pgparams_t *p =
      mergeable_stmt(op, BT_SQL_ASSIGN, a->package_id, a->attempt, a->at);
  one_i64(p, (int64_t)a->package_id);
  one_i32(p, (int32_t)a->attempt, false);
  one_i64(p, (int64_t)a->vendor_id);
  one_i64(p, (int64_t)a->agent_id);
  one_ts(p, a->at);
  bt_store__enqueue(st, op);
}

void bt_store_start(bt_store_t *st, const bt_action_t *a) {
  bt_store_op_t *op = plain_op(NULL, NULL);
  bt_pgparams_t *p = mergeable_stmt(op, BT_SQL_START, a->package_id, a->attempt, a->at);
  one_i64(p, (int64_t)a->package_id);
  one_i32(p, (int32_t)a->attempt, false);
  one_ts(p, a->at);
  bt_store__enqueue(st, op);
}

void bt_store_progress(bt_store_t *st, const bt_action_t *a) {
  bt_store_op_t *op = plain_op(NULL, NULL);
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_PROGRESS);
  bt_pgp_i64(p, (int64_t)a->package_id);
  bt_pgp_i32(p, (int32_t)a->attempt);
  if (a->progress >= 0)
    bt_pgp_i16(p, (int16_t)a->progress);
  else
    bt_pgp_null(p);
  if (a->data != NULL)
    bt_pgp_bytes(p, a->data, a->len);
  else
    bt_pgp_null(p);
  bt_pgp_ts(p, a->at);
  bt_store__enqueue(st, op);
}

void bt_store_finish(bt_store_t *st, const bt_action_t *a, const char *vendor,
                     const char *agent, bt_store_cb cb, void *arg) {
  bt_store_op_t *op = plain_op(cb, arg);
  const char *error = a->text && *a->text ? a->text : NULL;
  if (a->state == BT_PKG_COMPLETED && a->outcome == BT_OUTCOME_COMPLETED) {
    /* The common end has a statement of its own (sql.def, COMPLETE). */
    bt_pgparams_t *p = mergeable_stmt(op, BT_SQL_COMPLETE, a->package_id, a->attempt, a->at);
    one_i64(p, (int64_t)a->package_id);
    one_i32(p, (int32_t)a->attempt, false);
    one_ts(p, a->at);
    one_i32(p, a->exit_code, false);
    one_text(p, error);
    one_bytes(p, BT_PG_OID_BYTEA, a->data ? a->data : "", a->len);
    one_text(p, vendor ? vendor : "?");
    one_text(p, agent ? agent : "?");
    one_ts(p, 0); /* the folded start (merge.c): always the last column */
    bt_store__enqueue(st, op);
    return;
  }
  bt_pgparams_t *p = mergeable_stmt(op, BT_SQL_FINISH, a->package_id, a->attempt, a->at);
  one_i64(p, (int64_t)a->package_id);
  one_i32(p, (int32_t)a->attempt, false);
  one_text(p, bt_pkg_state_name(a->state));
  one_ts(p, a->at);
  one_text(p, bt_outcome_name(a->outcome));
  bool has_exit = a->outcome == BT_OUTCOME_COMPLETED || a->outcome == BT_OUTCOME_FAILED ||
                  a->outcome == BT_OUTCOME_TRANSIENT;
  one_i32(p, a->exit_code, !has_exit);
  one_text(p, error);
  if (a->state == BT_PKG_COMPLETED)
    one_bytes(p, BT_PG_OID_BYTEA, a->data ? a->data : "", a->len);
  else
    one_bytes(p, BT_PG_OID_BYTEA, NULL, 0);
  one_ts(p, a->retry_at);
  one_text(p, vendor ? vendor : "?");
  one_text(p, agent ? agent : "?");
  one_i64(p, (int64_t)a->vendor_id);
  one_i64(p, (int64_t)a->agent_id);
  one_ts(p, 0); /* the folded start (merge.c): always the last column */
  bt_store__enqueue(st, op);
}

void bt_store_handoff(bt_store_t *st, const bt_action_t *a) {
  bt_store_op_t *op = plain_op(NULL, NULL);
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_HANDOFF);
  bt_pgp_i64(p, (int64_t)a->package_id);
  bt_pgp_i32(p, (int32_t)a->attempt);
  bt_pgp_i64(p, (int64_t)a->vendor_id);
  bt_pgp_text(p, bt_handoff_reason_name(a->reason));
  if (a->data != NULL && a->len > 0)
    bt_pgp_bytes(p, a->data, a->len);
  else
    bt_pgp_null(p);
  bt_pgp_ts(p, a->at);
  bt_store__enqueue(st, op);
}

void bt_store_vendor_state(bt_store_t *st, const bt_core_vendor_t *v, int64_t at) {
  bt_store_op_t *op = plain_op(NULL, NULL);
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_VENDOR_STATE);
  bt_pgp_i64(p, (int64_t)v->id);
  bt_pgp_text(p, bt_vendor_state_name(v->state));
  bt_pgp_text(p, v->state_reason);
  bt_pgp_ts(p, at);
  bt_store__enqueue(st, op);
}

void bt_store_vendor_key(bt_store_t *st, uint64_t vendor_id, const uint8_t key[32],
                         int64_t at, bt_store_cb cb, void *arg) {
  bt_store_op_t *op = plain_op(cb, arg);
  /* The admin waits for this answer: with the store down it is refused at
   * once (and the old secret stays valid) rather than held until it is back. */
  op->fail_fast = true;
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_VENDOR_KEY);
  bt_pgp_i64(p, (int64_t)vendor_id);
  bt_pgp_bytes(p, key, 32);
  bt_pgp_ts(p, at);
  bt_store__enqueue(st, op);
}

void bt_store_package_update(bt_store_t *st, const bt_pkg_view_t *v, int64_t at) {
  bt_store_op_t *op = plain_op(NULL, NULL);
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_PACKAGE_UPDATE);
  bt_pgp_i64(p, (int64_t)v->id);
  bt_pgp_i32(p, (int32_t)v->attempt);
  bt_pgp_text(p, bt_pkg_state_name(v->state));
  bt_pgp_i32(p, (int32_t)v->max_attempts);
  bt_pgp_ts(p, v->not_before_at);
  bt_pgp_text(p, v->only_vendor);
  bt_pgp_ts(p, at);
  bt_store__enqueue(st, op);
}

void bt_store_list_open(bt_store_t *st, const uint64_t *ids, size_t n, uint64_t through,
                        bt_store_cb cb, void *arg) {
  bt_store_op_t *op = plain_op(cb, arg);
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_OPEN_LIST);
  bt_pgp_id_array(p, ids, n);
  bt_pgp_i64(p, (int64_t)through);
  bt_store__enqueue(st, op);
}

void bt_store_audit(bt_store_t *st, int64_t at, const char *actor, const char *action,
                    const char *subject, const char *detail) {
  bt_store_op_t *op = plain_op(NULL, NULL);
  bt_pgparams_t *p = bt_store__op_stmt(op, BT_SQL_AUDIT);
  bt_pgp_ts(p, at);
  bt_pgp_text(p, actor);
  bt_pgp_text(p, action);
  bt_pgp_text(p, subject ? subject : "");
  bt_pgp_text(p, detail ? detail : "");
  bt_store__enqueue(st, op);
}

void bt_store_barrier(bt_store_t *st, bt_store_cb cb, void *arg) {
  bt_store__enqueue(st, plain_op(cb, arg));
}

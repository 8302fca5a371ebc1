/*
 * server/store's inserts of rows keyed by the broker's own ids (sql.def,
 * BT_SQL_IF_THERE_ALREADY) against a real PostgreSQL. A first sending is a
 * plain insert; a write whose outcome is unknown (in flight on a connection
 * the engine dropped) is resent guarded, as its rows may be committed already:
 *   - an assignment whose transaction was still running on the dropped
 *     connection, and committed there after the engine had replayed it on a
 *     new one, succeeds once: one attempts row, one answer, no error (resent
 *     plain, it would fail as a unique violation);
 *   - a keyless submit (its package row and audit event; a submit lists
 *     nothing in open_packages, migrations/0011) in the same position
 *     commits once too: one row, one
 *     "package.submit" event (the audit comes from the rows the replay
 *     really inserted: none), and the submitter is answered once, with
 *     success;
 *   - an assignment sent for the first time that meets its row anyway fails,
 *     alone, instead of being taken for done; the writes beside it commit.
 * The transaction is held in flight by a vendor-key write waiting for a row
 * lock another session holds, and the connection is dropped by the engine's
 * own timeout (opts.op_timeout_ms).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"

#include <stdio.h>
#include <string.h>

static int setup(void **state) {
  (void)state;
  return fx_start("store-replay");
}

static int teardown(void **state) {
  (void)state;
  fx_stop();
  return 0;
}

static void assign(bt_store_t *st, uint64_t pkg, fx_done_t *d) {
  bt_action_t a;
  memset(&a, 0, sizeof a);
  a.kind = BT_ACT_ASSIGN;
  a.package_id = pkg;
  a.attempt = 1;
  a.vendor_id = 1;
  a.agent_id = 1;
  a.at = 1790000000000LL;
  bt_store_assign(st, &a, fx_on_done, d);
}

/* How many rows of from_where ("table WHERE ... =") name pkg. */
static long rows_for(const char *from_where, uint64_t pkg) {
  char q[256];
  snprintf(q, sizeof q, "SELECT count(*) FROM %s %llu", from_where, (unsigned long long)pkg);
  return fx_num(q);
}

static long attempt_rows(uint64_t pkg) { return rows_for("attempts WHERE package_id =", pkg); }

/* A store whose engine gives up on a transaction after 500 ms: it drops the
 * connection and replays what was in flight on a new one. */
static bt_store_t *store_that_replays(void) {
  bt_store_opts_t o;
  bt_store_opts_default(&o);
  o.op_timeout_ms = 500;
  return fx_store_open(&o);
}

/* Holds the transaction of the writes just queued on st in flight (their
 * rows written, not committed): a vendor-key write after them waits for a
 * row lock another session holds. The engine drops the connection and
 * replays all of them; the replayed writes wait for the first transaction's
 * rows, so two backends wait on locks, and nothing has answered yet
 * (*answered is 0). Then the first transaction goes on and commits on its
 * dropped connection, and the loop runs until the replay is written too. */
static void commit_behind_the_replay(bt_store_t *st, int vendor_id, const int *answered) {
  static const uint8_t key[32] = {9};
  PGconn *holder = fx_lock_new_vendor(vendor_id);
  fx_done_t keyed = {0};
  bt_store_vendor_key(st, (uint64_t)vendor_id, key, 1790000000000LL, fx_on_done, &keyed);
  fx_run_until_lock_wait();
  fx_run_until_lock_waiters(2);
  assert_int_equal(fx_num("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"),
                   2);
  assert_int_equal(*answered, 0);
  fx_unlock(holder);
  fx_run_until_written(st);
  assert_int_equal(keyed.calls, 1);
  assert_int_equal(keyed.status, 0);
}

static void test_store_replay_commit_on_the_dropped_connection_counts_once(void **state) {
  (void)state;
  bt_store_t *st = store_that_replays();
  fx_add_package(501);

  fx_done_t assigned = {0};
  assign(st, 501, &assigned);
  /* The replayed assignment finds the row the first transaction committed. */
  commit_behind_the_replay(st, 71, &assigned.calls);
  assert_int_equal(assigned.calls, 1);
  assert_int_equal(assigned.status, 0);
  assert_int_equal(attempt_rows(501), 1);
  fx_store_close(st);
}

typedef struct {
  int calls, status;
  size_t n;
  uint64_t id, existing_id;
} inserted_t;

static void on_inserted(void *arg, int status, const bt_store_inserted_t *rows, size_t n) {
  inserted_t *d = arg;
  d->calls++;
  d->status = status;
  d->n = n;
  if (n > 0) {
    d->id = rows[0].id;
    d->existing_id = rows[0].existing_id;
  }
}

static void test_store_replay_submit_committed_on_the_dropped_connection_counts_once(
    void **state) {
  (void)state;
  bt_store_t *st = store_that_replays();

  /* A package as a submit makes it: the core gives it its id, the store
   * reads it from the core. No vendor offers it, so it stays queued. */
  bt_core_config_t cfg;
  bt_core_config_default(&cfg);
  bt_core_t *core = bt_core_new(&cfg);
  bt_actions_t out;
  bt_actions_init(&out);
  bt_pkg_spec_t spec = {.capability = "replay", .payload = "p", .payload_len = 1,
                        .max_cost = -1};
  bt_now_t now = {.ms = 1000, .at = 1790000000000LL};
  bt_submit_result_t r;
  assert_int_equal(bt_core_submit(core, &spec, 1, 1, &now, &r, &out), 0);
  assert_true(r.pending);
  uint64_t id = r.id;

  inserted_t ins = {0};
  bt_store_insert_packages(st, core, &id, 1, on_inserted, &ins);
  commit_behind_the_replay(st, 72, &ins.calls);
  assert_int_equal(ins.calls, 1);
  assert_int_equal(ins.status, 0);
  assert_int_equal(ins.n, 1);
  assert_int_equal(ins.id, id);
  assert_int_equal(ins.existing_id, 0);
  assert_int_equal(rows_for("work_packages WHERE id =", id), 1);
  assert_int_equal(rows_for("open_packages WHERE id =", id), 0);
  assert_int_equal(rows_for("audit_events WHERE action = 'package.submit'"
                            " AND subject = 'package:' ||",
                            id),
                   1);

  fx_store_close(st);
  bt_actions_close(&out);
  bt_core_free(core);
}

static void test_store_replay_first_sending_that_meets_its_row_fails_alone(void **state) {
  (void)state;
  bt_store_t *st = fx_store_open(NULL);
  fx_add_package(601);
  fx_add_package(602);
  /* A row the broker does not know of: a plain insert must not pass over it. */
  fx_exec("INSERT INTO attempts (package_id, attempt, vendor_id, agent_id, assigned_at)"
          " VALUES (601, 1, 1, 1, now())");

  fx_done_t a601 = {0}, a602 = {0};
  assign(st, 601, &a601);
  assign(st, 602, &a602); /* merged into the same statement */
  fx_run_until_written(st);
  assert_int_equal(a601.calls, 1);
  assert_int_not_equal(a601.status, 0);
  assert_int_equal(a602.calls, 1);
  assert_int_equal(a602.status, 0);
  assert_int_equal(attempt_rows(601), 1);
  assert_int_equal(attempt_rows(602), 1);
  fx_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_replay_commit_on_the_dropped_connection_counts_once),
      cmocka_unit_test(test_store_replay_submit_committed_on_the_dropped_connection_counts_once),
      cmocka_unit_test(test_store_replay_first_sending_that_meets_its_row_fails_alone),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

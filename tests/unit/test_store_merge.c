/*
 * server/store's merging (merge.c) against a real PostgreSQL: writes of many
 * packages queued in one loop turn go out as one array statement per kind and
 * round, and the rows must come out exactly as if each had been its own
 * statement, in queue order:
 *   - a package's whole life in one segment (assign, start, fail, reassign,
 *     start, complete) ends completed on attempt 2 with two attempt rows;
 *   - a start followed by its finish is folded into the finish and still
 *     leaves started_at;
 *   - an op that cannot be merged (an audit row) between merged ones keeps its
 *     place;
 *   - one bad row in a merged statement fails only its own op: the others are
 *     replayed alone and commit (completions, COMPLETE, and other ends, FINISH);
 *   - a completion's audit event reads as any other end's;
 *   - open_packages follows the ends of packages, and a listing round lists
 *     and moves the list's floor (migrations/0011).
 * One cluster (pgembed, a few seconds for initdb) serves every test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int64_t clock_at = 1790000000000LL; /* ms since the epoch, moves 1 ms a write */

/* --- the store on a loop -------------------------------------------------------- */

static bt_store_t *st;

static bt_action_t act(uint64_t pkg, uint32_t attempt) {
  bt_action_t a;
  memset(&a, 0, sizeof a);
  a.package_id = pkg;
  a.attempt = attempt;
  a.vendor_id = 1;
  a.agent_id = 1;
  a.at = ++clock_at;
  return a;
}

static void assign(uint64_t pkg, uint32_t attempt, fx_done_t *d) {
  bt_action_t a = act(pkg, attempt);
  a.kind = BT_ACT_ASSIGN;
  bt_store_assign(st, &a, fx_on_done, d);
}

static void start(uint64_t pkg, uint32_t attempt) {
  bt_action_t a = act(pkg, attempt);
  a.kind = BT_ACT_START;
  bt_store_start(st, &a);
}

static void finish(uint64_t pkg, uint32_t attempt, bt_outcome_t outcome,
                   bt_pkg_state_t next, const char *result, fx_done_t *d) {
  bt_action_t a = act(pkg, attempt);
  a.kind = BT_ACT_FINISH;
  a.outcome = outcome;
  a.state = next;
  a.data = result;
  a.len = result ? strlen(result) : 0;
  a.retry_at = next == BT_PKG_QUEUED ? a.at + 10 : 0;
  bt_store_finish(st, &a, "vendor-a", "agent-1", fx_on_done, d);
}

/* Packages first .. first + n_add - 1, the first n_assign of them assigned
 * (attempt 1) and committed; d[i] holds assignment i's outcome. */
static void add_and_assign(uint64_t first, int n_add, int n_assign, fx_done_t *d) {
  for (int i = 0; i < n_add; i++)
    fx_add_package(first + (uint64_t)i);
  memset(d, 0, (size_t)n_assign * sizeof *d);
  for (int i = 0; i < n_assign; i++)
    assign(first + (uint64_t)i, 1, &d[i]);
  fx_run_until_written(st);
}

static int setup(void **state) {
  (void)state;
  if (fx_start("store-merge") != 0)
    return -1;
  fx_exec("INSERT INTO vendors (id, name, region, model, capabilities, capacity, cost,"
          " weight, auth_key, created_at, updated_at) VALUES (1, 'vendor-a', 'EU',"
          " 'onshore', '{cap}', 10, 1, 1, decode(repeat('00', 32), 'hex'), now(), now())");
  fx_exec("INSERT INTO agents (id, vendor_id, name, capabilities, slots, first_seen_at,"
          " last_seen_at) VALUES (1, 1, 'agent-1', '{cap}', 4, now(), now())");
  st = fx_store_open(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (st != NULL)
    fx_store_close(st);
  fx_stop();
  return 0;
}

/* --- tests ---------------------------------------------------------------------- */

static void test_store_merge_whole_life_in_one_segment(void **state) {
  (void)state;
  for (uint64_t id = 100; id < 110; id++)
    fx_add_package(id);
  fx_done_t d[32];
  memset(d, 0, sizeof d);
  /* Package 100's whole life, queued in one turn, interleaved with nine other
   * packages' assign + start + finish, and an audit row in the middle. */
  assign(100, 1, &d[0]);
  for (uint64_t id = 101; id < 110; id++)
    assign(id, 1, &d[id - 100]);
  start(100, 1);
  finish(100, 1, BT_OUTCOME_FAILED, BT_PKG_QUEUED, NULL, &d[10]);
  bt_store_audit(st, ++clock_at, "admin", "test.marker", "package:100", "between");
  assign(100, 2, &d[11]);
  for (uint64_t id = 101; id < 110; id++)
    start(id, 1);
  start(100, 2);
  for (uint64_t id = 101; id < 110; id++)
    finish(id, 1, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, "ok", &d[id - 100 + 12]);
  finish(100, 2, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, "second", &d[22]);
  /* Package 110: the same life with nothing between its attempts but
   * other packages' writes (only the rounds keep its order). */
  fx_done_t e[4];
  memset(e, 0, sizeof e);
  fx_add_package(110);
  assign(110, 1, &e[0]);
  fx_run_until_written(st);
  start(110, 1);
  finish(110, 1, BT_OUTCOME_TRANSIENT, BT_PKG_QUEUED, NULL, &e[1]);
  assign(110, 2, &e[2]);
  finish(110, 2, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, "late", &e[3]);
  fx_run_until_written(st);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(e[i].calls, 1);
    assert_int_equal(e[i].status, 0);
  }
  assert_string_equal(fx_text("SELECT state || '/' || attempt || '/' || "
                              "convert_from(result, 'UTF8') FROM packages_now "
                              "WHERE id = 110"),
                      "completed/2/late");
  assert_string_equal(fx_text("SELECT string_agg(attempt || ':' || outcome || ':' ||"
                              " (started_at IS NOT NULL), ',' ORDER BY attempt)"
                              " FROM attempts WHERE package_id = 110"),
                      "1:transient:true,2:completed:false");
  /* The requeue of attempt 1 set the retry time before attempt 2 was
   * assigned; the other way round the requeue would find attempt 2 and do
   * nothing, and not_before_at would be empty. */
  assert_string_equal(fx_text("SELECT not_before_at IS NOT NULL FROM work_packages"
                              " WHERE id = 110"),
                      "t");
  for (int i = 0; i < 23; i++) {
    if (i >= 1 && i <= 9)
      assert_int_equal(d[i].calls, 1);
    if (d[i].calls) {
      assert_int_equal(d[i].calls, 1);
      assert_int_equal(d[i].status, 0);
    }
  }
  assert_int_equal(d[0].calls + d[10].calls + d[11].calls + d[22].calls, 4);

  assert_string_equal(fx_text("SELECT state || '/' || attempt || '/' || "
                              "convert_from(result, 'UTF8') FROM packages_now "
                              "WHERE id = 100"),
                      "completed/2/second");
  assert_string_equal(fx_text("SELECT string_agg(attempt || ':' || outcome || ':' ||"
                              " (started_at IS NOT NULL), ',' ORDER BY attempt)"
                              " FROM attempts WHERE package_id = 100"),
                      "1:failed:true,2:completed:true");
  assert_int_equal(fx_num("SELECT count(*) FROM packages_now WHERE id BETWEEN 101 AND 109"
                          " AND state = 'completed' AND attempt = 1"),
                   9);
  /* Completed is written to attempts alone (0008): the rows stay as they
   * were, and none of the packages is open any more. */
  assert_int_equal(fx_num("SELECT count(*) FROM work_packages WHERE id BETWEEN 100 AND 110"
                          " AND completed_at IS NULL AND result IS NULL"),
                   11);
  assert_int_equal(fx_num("SELECT count(*) FROM open_packages WHERE id BETWEEN 100 AND 110"),
                   0);
  assert_int_equal(fx_num("SELECT count(*) FROM attempts WHERE package_id BETWEEN 101"
                          " AND 109 AND outcome = 'completed' AND started_at IS NOT NULL"
                          " AND started_at <= ended_at"),
                   9);
  /* One attempt.<outcome> row per finished attempt, and the audit row that
   * was queued between package 100's attempts sits between their rows. */
  assert_int_equal(fx_num("SELECT count(*) FROM audit_events WHERE action LIKE 'attempt.%'"
                          " AND subject IN (SELECT 'package:' || g FROM"
                          " generate_series(100, 109) g)"),
                   11);
  assert_string_equal(fx_text("SELECT string_agg(action, ',' ORDER BY id) FROM audit_events"
                              " WHERE subject = 'package:100'"),
                      "attempt.failed,test.marker,attempt.completed");
  /* A completion's event reads as any other end's (COMPLETE and FINISH). */
  assert_string_equal(fx_text("SELECT string_agg(actor || ' ' || action || ' ' || detail, ','"
                              " ORDER BY id) FROM audit_events WHERE subject = 'package:100'"
                              " AND action LIKE 'attempt.%'"),
                      "agent attempt.failed attempt=1 vendor=vendor-a agent=agent-1"
                      " next=queued exit=0,"
                      "agent attempt.completed attempt=2 vendor=vendor-a agent=agent-1"
                      " next=completed exit=0");
}

/* Five ends in one statement, the one of package first + 2 bad: each of the
 * five fails or commits on its own, and the bad one's attempt stays open. */
static void five_ends_one_bad(uint64_t first, bt_outcome_t outcome, bt_pkg_state_t next,
                              bool bad_time) {
  fx_done_t d[5];
  add_and_assign(first, 5, 5, d);
  memset(d, 0, sizeof d);
  for (uint64_t id = first; id < first + 5; id++) {
    bt_action_t a = act(id, 1);
    a.kind = BT_ACT_FINISH;
    a.outcome = outcome;
    a.state = next;
    a.data = "ok";
    a.len = 2;
    if (id == first + 2) {
      if (bad_time)
        a.at = 0; /* no time: the audit's domain refuses a NULL event time */
      else
        a.outcome = BT_OUTCOME__COUNT; /* named "unknown": attempts.outcome refuses it */
    }
    bt_store_finish(st, &a, "vendor-a", "agent-1", fx_on_done, &d[id - first]);
  }
  fx_run_until_written(st);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(d[i].calls, 1);
    if (i == 2)
      assert_int_not_equal(d[i].status, 0);
    else
      assert_int_equal(d[i].status, 0);
  }
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM packages_now WHERE id BETWEEN %llu AND %llu AND state = '%s'",
           (unsigned long long)first, (unsigned long long)first + 4, bt_pkg_state_name(next));
  assert_int_equal(fx_num(sql), 4);
  /* Its attempt is still open: the package row is as submitted (an
   * assignment writes attempts only), and packages_now folds the attempt in. */
  snprintf(sql, sizeof sql,
           "SELECT state || '/' || attempt || '/' || agent_id || '/' || (SELECT w.state"
           " || '/' || w.attempt"
           " FROM work_packages w WHERE w.id = p.id) FROM packages_now p WHERE id = %llu",
           (unsigned long long)first + 2);
  assert_string_equal(fx_text(sql), "assigned/1/1/queued/0");
  snprintf(sql, sizeof sql, "SELECT id FROM open_packages WHERE id BETWEEN %llu AND %llu",
           (unsigned long long)first, (unsigned long long)first + 4);
  assert_int_equal(fx_num(sql), (long)(first + 2));
}

static void test_store_merge_bad_row_fails_alone(void **state) {
  (void)state;
  /* Completions, one statement of their own (COMPLETE). */
  five_ends_one_bad(200, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, true);
  /* Any other end (FINISH). */
  five_ends_one_bad(210, BT_OUTCOME_FAILED, BT_PKG_DEAD, false);
  /* Completions with one bad outcome among them: that one goes as a FINISH
   * of its own, the four others as COMPLETE. */
  five_ends_one_bad(220, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, false);
}

/* A database upgraded with work in flight: an earlier version wrote the open
 * attempt into the package row too (state 'assigned', attempt 1). It reads
 * the same through packages_now, and this version's start, progress and
 * finish still apply to it. */
static void test_store_merge_attempt_open_before_0006(void **state) {
  (void)state;
  fx_add_package(300);
  fx_exec("UPDATE work_packages SET state = 'assigned', attempt = 1, vendor_id = 1,"
          " agent_id = 1 WHERE id = 300");
  fx_exec("INSERT INTO attempts (package_id, attempt, vendor_id, agent_id, assigned_at)"
          " VALUES (300, 1, 1, 1, now())");
  assert_string_equal(fx_text("SELECT state || '/' || attempt || '/' || vendor_id"
                              " FROM packages_now WHERE id = 300"),
                      "assigned/1/1");
  fx_done_t d = {0};
  start(300, 1);
  bt_action_t p = act(300, 1);
  p.kind = BT_ACT_PROGRESS;
  p.progress = 40;
  bt_store_progress(st, &p);
  fx_run_until_written(st);
  assert_string_equal(fx_text("SELECT state || '/' || progress FROM packages_now"
                              " WHERE id = 300"),
                      "running/40");
  finish(300, 1, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, "old", &d);
  fx_run_until_written(st);
  assert_int_equal(d.status, 0);
  assert_string_equal(fx_text("SELECT state || '/' || attempt || '/' || agent_id || '/' ||"
                              " convert_from(result, 'UTF8') FROM packages_now"
                              " WHERE id = 300"),
                      "completed/1/1/old");
  assert_string_equal(fx_text("SELECT outcome || '/' || (started_at IS NOT NULL)"
                              " FROM attempts WHERE package_id = 300"),
                      "completed/true");
}

/* open_packages (0008) follows every way a package ends or opens again: a
 * dead or cancelled end takes it off and records the end in the package row,
 * an admin's revive puts it back, and a late progress report on a completed
 * package (whose row was never updated) changes nothing. */
static void test_store_merge_open_packages(void **state) {
  (void)state;
  fx_done_t d[7];
  memset(d, 0, sizeof d);
  add_and_assign(400, 4, 3, d);
  finish(400, 1, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, "done", &d[3]);
  finish(401, 1, BT_OUTCOME_FAILED, BT_PKG_DEAD, NULL, &d[4]);
  finish(402, 1, BT_OUTCOME_CANCELLED, BT_PKG_CANCELLED, NULL, &d[5]);
  /* 403 was never assigned: cancelled while queued (attempt 0, no attempt row). */
  finish(403, 0, BT_OUTCOME_CANCELLED, BT_PKG_CANCELLED, NULL, &d[6]);
  fx_run_until_written(st);
  for (int i = 0; i < 7; i++)
    assert_int_equal(d[i].status, 0);
  assert_int_equal(fx_num("SELECT count(*) FROM open_packages WHERE id BETWEEN 400 AND 403"),
                   0);
  assert_string_equal(fx_text("SELECT string_agg(id || ':' || state || ':' ||"
                              " (completed_at IS NOT NULL), ',' ORDER BY id)"
                              " FROM packages_now WHERE id BETWEEN 400 AND 403"),
                      "400:completed:true,401:dead:true,402:cancelled:true,"
                      "403:cancelled:true");
  assert_string_equal(fx_text("SELECT string_agg(id || ':' || state, ',' ORDER BY id)"
                              " FROM work_packages WHERE id BETWEEN 400 AND 403"),
                      "400:queued,401:dead,402:cancelled,403:cancelled");

  /* Revive the dead one: open again, queued, in the row and in the view. */
  bt_pkg_view_t v;
  memset(&v, 0, sizeof v);
  v.id = 401;
  v.attempt = 1;
  v.state = BT_PKG_QUEUED;
  v.max_attempts = 6;
  bt_store_package_update(st, &v, ++clock_at);
  /* A late progress report for the completed one. */
  bt_action_t p = act(400, 1);
  p.kind = BT_ACT_PROGRESS;
  p.progress = 99;
  bt_store_progress(st, &p);
  fx_run_until_written(st);
  assert_int_equal(fx_num("SELECT id FROM open_packages WHERE id BETWEEN 400 AND 403"), 401);
  assert_string_equal(fx_text("SELECT state || '/' || (completed_at IS NULL) FROM packages_now"
                              " WHERE id = 401"),
                      "queued/true");
  assert_string_equal(fx_text("SELECT state || '/' || coalesce(progress, -1) || '/' ||"
                              " convert_from(result, 'UTF8') FROM packages_now WHERE id = 400"),
                      "completed/-1/done");
}

/* A listing round (0011): the ids go into open_packages and the floor moves
 * to the end of the round's stretch, in one statement. A package listed
 * already is left as it is, the floor never moves back, and a listed package
 * that completes leaves the list (its finish follows the listing on the same
 * connection). */
static void test_store_merge_listing_round(void **state) {
  (void)state;
  fx_done_t d[4];
  memset(d, 0, sizeof d);
  for (uint64_t id = 500; id < 504; id++)
    fx_add_package(id);
  fx_exec("DELETE FROM open_packages WHERE id BETWEEN 500 AND 503");
  long floor = fx_num("SELECT listed_through FROM open_packages_floor");
  assert_true(floor < 503);

  uint64_t first[] = {500, 502};
  bt_store_list_open(st, first, 2, 503, fx_on_done, &d[0]);
  fx_run_until_written(st);
  assert_int_equal(d[0].status, 0);
  assert_string_equal(fx_text("SELECT string_agg(id::text, ',' ORDER BY id) FROM"
                              " open_packages WHERE id BETWEEN 500 AND 503"),
                      "500,502");
  assert_int_equal(fx_num("SELECT listed_through FROM open_packages_floor"), 503);

  uint64_t again[] = {502, 501};
  bt_store_list_open(st, again, 2, 100, fx_on_done, &d[1]);
  bt_store_list_open(st, NULL, 0, 0, fx_on_done, &d[2]);
  assign(502, 1, &d[3]); /* a finish needs its attempt */
  fx_run_until_written(st);
  assert_int_equal(d[1].status, 0);
  assert_int_equal(d[2].status, 0);
  assert_int_equal(d[3].status, 0);
  assert_int_equal(fx_num("SELECT listed_through FROM open_packages_floor"), 503);
  memset(d, 0, sizeof d);
  finish(502, 1, BT_OUTCOME_COMPLETED, BT_PKG_COMPLETED, "done", &d[0]);
  fx_run_until_written(st);
  assert_int_equal(d[0].status, 0);
  assert_string_equal(fx_text("SELECT string_agg(id::text, ',' ORDER BY id) FROM"
                              " open_packages WHERE id BETWEEN 500 AND 503"),
                      "500,501");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_merge_whole_life_in_one_segment),
      cmocka_unit_test(test_store_merge_bad_row_fails_alone),
      cmocka_unit_test(test_store_merge_attempt_open_before_0006),
      cmocka_unit_test(test_store_merge_open_packages),
      cmocka_unit_test(test_store_merge_listing_round),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

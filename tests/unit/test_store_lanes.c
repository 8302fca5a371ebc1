/*
 * server/store's lanes against a real PostgreSQL: package writes spread over
 * several connections by package id. A package always gets the same lane; a
 * barrier answers only once every lane committed what came before it; and a
 * close, which takes the lanes down one at a time, still commits what commit
 * callbacks write to other lanes while it runs, including lanes closed
 * already (their packages go to lane 0). Checked in the rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "store_fixture.h"

#include <stdio.h>
#include <string.h>

static int setup(void **state) {
  (void)state;
  return fx_start("store-lanes");
}

static int teardown(void **state) {
  (void)state;
  fx_stop();
  return 0;
}

static bool called(void *arg) { return ((fx_done_t *)arg)->calls > 0; }

static void audit(bt_store_t *st, const char *subject) {
  bt_store_audit(st, 1790000000000LL, "test", "test.lanes", subject, "");
}

static void open_lanes(bt_lanes_t *l, size_t n) {
  bt_lanes_init(l, n);
  for (size_t i = 0; i < l->n; i++)
    l->lane[i] = fx_store_open(NULL);
}

static bool closed(void *arg) { return *(bool *)arg; }

static void on_closed(void *arg) { *(bool *)arg = true; }

static void close_lanes(bt_lanes_t *l) {
  bool done = false;
  bt_lanes_close(l, on_closed, &done);
  fx_run_until(closed, &done);
  assert_int_equal(l->open, 0);
}

/* No database needed: which lane a package id gets, before and while the
 * lanes close (a closed lane's packages go to lane 0). */
static void test_lanes_map_a_package_to_one_lane(void **state) {
  (void)state;
  bt_store_t *fake[3] = {(bt_store_t *)&fake[0], (bt_store_t *)&fake[1],
                         (bt_store_t *)&fake[2]};
  bt_lanes_t l;
  bt_lanes_init(&l, 3);
  for (size_t i = 0; i < 3; i++)
    l.lane[i] = fake[i];
  for (uint64_t id = 1; id < 100; id++)
    assert_ptr_equal(bt_lanes_for(&l, id), fake[id % 3]);
  l.open = 2; /* lane 2 closed */
  assert_ptr_equal(bt_lanes_for(&l, 5), fake[0]);
  assert_ptr_equal(bt_lanes_for(&l, 4), fake[1]);
  bt_lanes_init(&l, 0); /* out of range: one lane */
  assert_int_equal(l.n, 1);
  bt_lanes_init(&l, BT_STORE_MAX_LANES + 1);
  assert_int_equal(l.n, 1);
}

/* The barrier answers once, after every lane committed what came before it:
 * lanes 0 and 1 commit at once, lane 2's write waits for a row lock another
 * session holds, and the barrier waits for lane 2. */
static void test_lanes_barrier_waits_for_every_lane(void **state) {
  (void)state;
  bt_lanes_t l;
  open_lanes(&l, 3);
  PGconn *holder = fx_lock_new_vendor(77);

  audit(l.lane[0], "lanes:0");
  audit(l.lane[1], "lanes:1");
  static const uint8_t key[32] = {1};
  fx_done_t keyed = {0}, d = {0};
  bt_store_vendor_key(l.lane[2], 77, key, 1790000000000LL, fx_on_done, &keyed);
  bt_lanes_barrier(&l, fx_on_done, &d);
  for (int i = 0; i < 200 && fx_audit_rows("lanes:0") + fx_audit_rows("lanes:1") < 2; i++)
    uv_run(&fx_loop, UV_RUN_NOWAIT);
  assert_int_equal(fx_audit_rows("lanes:0"), 1);
  assert_int_equal(fx_audit_rows("lanes:1"), 1);
  for (int i = 0; i < 100; i++)
    uv_run(&fx_loop, UV_RUN_NOWAIT);
  assert_int_equal(keyed.calls, 0); /* lane 2 waits for the lock */
  assert_int_equal(d.calls, 0);     /* and so does the barrier */

  fx_unlock(holder);
  fx_run_until(called, &d);
  assert_int_equal(keyed.calls, 1);
  assert_int_equal(keyed.status, 0);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, 0);
  assert_string_equal(fx_text("SELECT get_byte(auth_key, 0) FROM vendors WHERE id = 77"), "1");
  close_lanes(&l);
  assert_int_equal(d.calls, 1);
}

/* What a commit callback writes while the lanes close is committed: to the
 * lane of a package whose lane is still draining, and to lane 0 for one
 * whose lane is gone. */
typedef struct {
  bt_lanes_t *lanes;
  int fired;
} chain_t;

static void on_first_commit(void *arg, int status) {
  chain_t *c = arg;
  assert_int_equal(status, 0);
  c->fired++;
  for (uint64_t id = 0; id < 4; id++) { /* every lane's packages */
    char subject[40];
    snprintf(subject, sizeof subject, "lanes:close:%llu", (unsigned long long)id);
    audit(bt_lanes_for(c->lanes, id), subject);
  }
}

static bool only_lane0_open(void *arg) { return ((bt_lanes_t *)arg)->open == 1; }

static void test_lanes_close_commits_cross_lane_writes(void **state) {
  (void)state;
  bt_lanes_t l;
  open_lanes(&l, 4);
  chain_t c = {.lanes = &l};
  /* Lane 0's write waits for a row lock until lanes 3, 2 and 1 are closed:
   * its callback's writes for their packages must go to lane 0. Lanes 1-3
   * each commit one write whose callback writes to every lane, open or
   * closed by then. */
  PGconn *holder = fx_lock_new_vendor(78);
  static const uint8_t key[32] = {2};
  bt_store_vendor_key(l.lane[0], 78, key, 1790000000000LL, on_first_commit, &c);
  for (size_t i = 1; i < l.n; i++) {
    audit(l.lane[i], "lanes:close:first");
    bt_store_barrier(l.lane[i], on_first_commit, &c);
  }
  bool done = false;
  bt_lanes_close(&l, on_closed, &done);
  fx_run_until(only_lane0_open, &l);
  assert_int_equal(c.fired, 3);
  assert_false(done);
  fx_unlock(holder);
  fx_run_until(closed, &done);
  assert_int_equal(l.open, 0);
  assert_int_equal(c.fired, 4);
  assert_int_equal(fx_audit_rows("lanes:close:first"), 3);
  for (int id = 0; id < 4; id++) {
    char subject[40];
    snprintf(subject, sizeof subject, "lanes:close:%d", id);
    assert_int_equal(fx_audit_rows(subject), 4);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lanes_map_a_package_to_one_lane),
      cmocka_unit_test(test_lanes_barrier_waits_for_every_lane),
      cmocka_unit_test(test_lanes_close_commits_cross_lane_writes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

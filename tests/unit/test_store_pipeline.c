/*
 * server/store's pipeline against a real PostgreSQL: how many transactions
 * the engine keeps in flight on its connection. With one transaction held in
 * flight (its write waits for a row lock another session holds):
 *   - a few writes queued over several loop turns wait for its commit and go
 *     as one transaction, not one each (opts.overlap_min_ops);
 *   - as many writes as overlap_min_ops go out at once as a second
 *     transaction, and what comes after them waits for a free place
 *     (opts.pipeline_depth);
 *   - with overlap_min_ops 0 every turn's writes go while there is room.
 * The transactions are counted with opts.on_commit, the rows in the tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"

#include <stdio.h>

static int setup(void **state) {
  (void)state;
  return fx_start("store-pipeline");
}

static int teardown(void **state) {
  (void)state;
  fx_stop();
  return 0;
}

static int commits;

static void count_commit(void *arg, double seconds) {
  (void)arg, (void)seconds;
  commits++;
}

static bt_store_t *open_store(uint32_t overlap_min_ops) {
  bt_store_opts_t o;
  bt_store_opts_default(&o);
  o.pipeline_depth = 2;
  o.overlap_min_ops = overlap_min_ops;
  o.on_commit = count_commit;
  bt_store_t *st = fx_store_open(&o);
  commits = 0;
  return st;
}

static void audit(bt_store_t *st, const char *subject) {
  bt_store_audit(st, 1790000000000LL, "test", "test.pipeline", subject, "");
}

/* Loop turns that never block: the store's first transaction is stuck. */
static void turns(int n) {
  for (int i = 0; i < n; i++)
    uv_run(&fx_loop, UV_RUN_NOWAIT);
}

/* Holds a transaction of st in flight: a key write of a locked vendor row. */
static PGconn *hold(bt_store_t *st, int vendor, fx_done_t *d) {
  static const uint8_t key[32] = {7};
  PGconn *holder = fx_lock_new_vendor(vendor);
  bt_store_vendor_key(st, (uint64_t)vendor, key, 1790000000000LL, fx_on_done, d);
  fx_run_until_lock_wait();
  return holder;
}

/* Holds a transaction in flight on a store with this overlap_min_ops, queues
 * one write in each of three loop turns meanwhile, lets the held one commit
 * and returns how many transactions it all took (every row checked). */
static int transactions_for_three_turns(uint32_t overlap_min_ops, int vendor,
                                        const char *tag) {
  bt_store_t *st = open_store(overlap_min_ops);
  fx_done_t keyed = {0};
  PGconn *holder = hold(st, vendor, &keyed);
  char subject[64];
  for (int i = 0; i < 3; i++) {
    snprintf(subject, sizeof subject, "%s:%d", tag, i);
    audit(st, subject);
    turns(5);
  }
  turns(20);
  assert_int_equal(commits, 0);
  fx_unlock(holder);
  fx_run_until_written(st);

  assert_int_equal(keyed.calls, 1);
  assert_int_equal(keyed.status, 0);
  for (int i = 0; i < 3; i++) {
    snprintf(subject, sizeof subject, "%s:%d", tag, i);
    assert_int_equal(fx_audit_rows(subject), 1);
  }
  fx_store_close(st);
  return commits;
}

static void test_store_pipeline_few_writes_wait_for_the_commit_in_flight(void **state) {
  (void)state;
  /* The held one, then the three writes together (three waiting < 4). */
  assert_int_equal(transactions_for_three_turns(4, 91, "few"), 2);
}

static void test_store_pipeline_overlap_zero_sends_whenever_there_is_room(void **state) {
  (void)state;
  /* The held one; the first write at once beside it; the other two once it
   * commits. */
  assert_int_equal(transactions_for_three_turns(0, 93, "zero"), 3);
}

static void test_store_pipeline_enough_writes_go_while_one_commits(void **state) {
  (void)state;
  bt_store_t *st = open_store(4);
  fx_done_t keyed = {0};
  PGconn *holder = hold(st, 92, &keyed);

  for (int i = 0; i < 4; i++)
    audit(st, "enough:batch");
  turns(5); /* four waiting: sent now, behind the held one */
  audit(st, "enough:later");
  turns(20); /* two in flight: the pipeline is full, this one waits */
  assert_int_equal(commits, 0);
  fx_unlock(holder);
  fx_run_until_written(st);

  /* Three transactions: had the four waited too, all five would have gone
   * together (two). */
  assert_int_equal(commits, 3);
  assert_int_equal(keyed.status, 0);
  assert_int_equal(fx_audit_rows("enough:batch"), 4);
  assert_int_equal(fx_audit_rows("enough:later"), 1);
  fx_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_pipeline_few_writes_wait_for_the_commit_in_flight),
      cmocka_unit_test(test_store_pipeline_enough_writes_go_while_one_commits),
      cmocka_unit_test(test_store_pipeline_overlap_zero_sends_whenever_there_is_room),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

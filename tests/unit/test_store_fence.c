/*
 * server/store's leader fencing (broker HA) against a real PostgreSQL: a
 * store opened with an epoch heads every transaction with baton_fence(epoch)
 * (migrations/0004). While broker_lease carries that epoch its writes
 * commit; once another broker has taken the lease (the epoch in the row
 * moved on), the next transaction rolls back, the store calls on_fenced
 * once, acknowledges nothing more and sends nothing more, and a close fails
 * what waited with BT_ESHUTDOWN. Checked in the rows, not only the callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "store_fixture.h"

#include <string.h>

static void on_fenced(void *arg) { ++*(int *)arg; }

static bool called(void *arg) { return ((fx_done_t *)arg)->calls > 0; }

static bool fenced_once(void *arg) { return *(int *)arg > 0; }

static int setup(void **state) {
  (void)state;
  return fx_start("store-fence");
}

static int teardown(void **state) {
  (void)state;
  fx_stop();
  return 0;
}

/* An audit row and a barrier after it: the barrier's callback says whether
 * the row's transaction committed. */
static void write_audit(bt_store_t *st, const char *subject, fx_done_t *d) {
  bt_store_audit(st, 1790000000000LL, "test", "test.write", subject, "");
  bt_store_barrier(st, fx_on_done, d);
}

static void test_store_fence_refuses_writes_once_the_epoch_moved_on(void **state) {
  (void)state;
  fx_exec("UPDATE broker_lease SET epoch = 7, holder = 'me'");
  int fenced = 0;
  bt_store_opts_t so;
  bt_store_opts_default(&so);
  so.epoch = 7;
  so.on_fenced = on_fenced;
  so.fenced_arg = &fenced;
  bt_store_t *st = fx_store_open(&so);

  fx_done_t before = {0};
  write_audit(st, "fence:before", &before);
  fx_run_until(called, &before);
  assert_int_equal(before.status, 0);
  assert_int_equal(fx_audit_rows("fence:before"), 1);

  /* Another broker takes over. */
  fx_exec("UPDATE broker_lease SET epoch = 8, holder = 'other'");
  fx_done_t after = {0}, later = {0};
  write_audit(st, "fence:after", &after);
  fx_run_until(fenced_once, &fenced);
  write_audit(st, "fence:later", &later);
  for (int i = 0; i < 50; i++)
    uv_run(&fx_loop, UV_RUN_NOWAIT);
  assert_int_equal(fenced, 1);
  assert_int_equal(after.calls, 0); /* not acknowledged */
  assert_int_equal(later.calls, 0);
  assert_true(bt_store_backlog(st) >= 2);

  fx_store_close(st);
  assert_int_equal(after.calls, 1);
  assert_int_equal(after.status, BT_ESHUTDOWN);
  assert_int_equal(later.status, BT_ESHUTDOWN);
  assert_int_equal(fenced, 1);
  assert_int_equal(fx_audit_rows("fence:after"), 0);
  assert_int_equal(fx_audit_rows("fence:later"), 0);
}

/* A store without an epoch (tests, tools) is not fenced at all. */
static void test_store_fence_off_without_an_epoch(void **state) {
  (void)state;
  fx_exec("UPDATE broker_lease SET epoch = 9, holder = 'other'");
  bt_store_t *st = fx_store_open(NULL);
  fx_done_t d = {0};
  write_audit(st, "fence:none", &d);
  fx_run_until(called, &d);
  assert_int_equal(d.status, 0);
  fx_store_close(st);
  assert_int_equal(fx_audit_rows("fence:none"), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_fence_refuses_writes_once_the_epoch_moved_on),
      cmocka_unit_test(test_store_fence_off_without_an_epoch),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

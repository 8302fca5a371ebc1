/*
 * server/core: agents and attempts — the assignment lifecycle, fencing of
 * results, failures and retries with backoff, handing back, liveness (leases),
 * reconciliation when an agent says hello again, and bye.
 */
#include "core_fixture.h"

#include <string.h>

/* Checks an action's package, attempt and agent in one line. */
static void check_act(const bt_action_t *a, uint64_t pkg, uint32_t attempt,
                      uint64_t agent) {
  assert_non_null(a);
  assert_int_equal(a->package_id, pkg);
  assert_int_equal(a->attempt, attempt);
  if (agent != 0)
    assert_int_equal(a->agent_id, agent);
}

/* Index of the first action of kind for pkg (fails when absent). */
static size_t index_of(const bt_actions_t *out, bt_act_kind_t kind, uint64_t pkg) {
  const bt_action_t *a = fx_find(out, kind, pkg);
  assert_non_null(a);
  return (size_t)(a - out->v);
}

/* --- lifecycle ------------------------------------------------------------------- */

static void test_core_lifecycle_completed(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){.deadline_in = 3600000});

  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, p);
  check_act(as, p, 1, a);
  assert_int_equal(as->vendor_id, v);
  assert_int_equal(as->at, fx->now.at);
  assert_int_equal(fx_state(fx, p), BT_PKG_ASSIGNED);
  assert_int_equal(fx_agent_of(fx, p), a);
  assert_int_equal(fx_vendor_of(fx, p), v);
  assert_int_equal(fx_busy(fx, a), 1);
  assert_int_equal(bt_core_vendor(fx->core, v)->in_flight, 1);

  fx_confirm_assigns(fx);
  assert_int_equal(fx_state(fx, p), BT_PKG_ASSIGNED);

  fx_advance(fx, 10);
  fx_started(fx, a, p, 1);
  const bt_action_t *st = fx_one(&fx->out, BT_ACT_START, p);
  check_act(st, p, 1, a);
  assert_int_equal(st->vendor_id, v);
  assert_int_equal(fx_state(fx, p), BT_PKG_RUNNING);
  fx_started(fx, a, p, 1); /* a resent ack starts nothing twice */
  assert_int_equal(fx->out.n, 0);

  fx_clear(fx);
  assert_int_equal(bt_core_agent_progress(fx->core, a, p, 1, 50, "cp1", 3, &fx->now,
                                          &fx->out),
                   0);
  const bt_action_t *pr = fx_one(&fx->out, BT_ACT_PROGRESS, p);
  assert_int_equal(pr->progress, 50);
  assert_int_equal(pr->len, 3);
  assert_memory_equal(pr->data, "cp1", 3);
  bt_pkg_view_t view;
  bt_core_package_view(fx->core, p, &view);
  assert_int_equal(view.progress, 50);
  assert_int_equal(view.checkpoint_len, 3);
  assert_memory_equal(view.checkpoint, "cp1", 3);
  /* Progress only, and a percentage past 100, keep the checkpoint. */
  bt_core_agent_progress(fx->core, a, p, 1, 250, NULL, 0, &fx->now, &fx->out);
  bt_core_package_view(fx->core, p, &view);
  assert_int_equal(view.progress, 100);
  assert_int_equal(view.checkpoint_len, 3);

  fx_advance(fx, 1000);
  uint64_t token = fx->token;
  assert_int_equal(fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "result-bytes"), 0);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, p);
  check_act(fin, p, 1, a);
  assert_int_equal(fin->vendor_id, v);
  assert_int_equal(fin->outcome, BT_OUTCOME_COMPLETED);
  assert_int_equal(fin->state, BT_PKG_COMPLETED);
  assert_int_equal(fin->len, strlen("result-bytes"));
  assert_memory_equal(fin->data, "result-bytes", fin->len);
  assert_int_equal(fin->exit_code, 0);
  assert_int_equal(fin->at, fx->now.at);
  const bt_action_t *ack = fx_one(&fx->out, BT_ACT_ACK_RESULT, p);
  check_act(ack, p, 1, a);
  assert_int_equal(ack->code, 0);
  assert_int_equal(ack->token, token);
  /* Durability: the ack comes after the finish it acknowledges. */
  assert_true(index_of(&fx->out, BT_ACT_FINISH, p) < index_of(&fx->out, BT_ACT_ACK_RESULT, p));
  assert_int_equal(fx_state(fx, p), BT_PKG_COMPLETED);
  assert_int_equal(fx_busy(fx, a), 0);
  const bt_core_vendor_t *vv = bt_core_vendor(fx->core, v);
  assert_int_equal(vv->in_flight, 0);
  assert_int_equal(vv->completed, 1);
  assert_int_equal(vv->with_deadline, 1);
  assert_int_equal(vv->on_time, 1);
  assert_int_equal(vv->failed, 0);

  fx_finish_persisted(fx, p, 1);
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(fx_state(fx, p), BT_PKG__COUNT);
  bt_core_stats_t stats;
  bt_core_stats(fx->core, &fx->now, &stats);
  assert_int_equal(stats.by_state[BT_PKG_COMPLETED], 1);
  assert_int_equal(stats.by_state[BT_PKG_QUEUED] + stats.by_state[BT_PKG_ASSIGNED] +
                       stats.by_state[BT_PKG_RUNNING],
                   0);
}

/* Stats (and wait --all, which reads them) count a final state only once its
 * FINISH is committed: until then the package is "finishing", so a client
 * never sees a package done whose result it cannot read yet. A FINISH that
 * failed for good puts the package back to run again, counted as open. */
static void check_counts(fx_t *fx, uint64_t open, uint64_t finishing, uint64_t completed,
                         uint64_t cancelled) {
  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_QUEUED] + st.by_state[BT_PKG_ASSIGNED] +
                       st.by_state[BT_PKG_RUNNING],
                   open);
  assert_int_equal(st.finishing, finishing);
  assert_int_equal(st.by_state[BT_PKG_COMPLETED], completed);
  assert_int_equal(st.by_state[BT_PKG_CANCELLED], cancelled);
}

static void test_core_lifecycle_stats_count_commits(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p1, 1);
  fx_started(fx, a, p2, 1);
  check_counts(fx, 2, 0, 0, 0);

  assert_int_equal(fx_result(fx, a, p1, 1, BT_OUTCOME_COMPLETED, "one"), 0);
  assert_int_equal(fx_result(fx, a, p2, 1, BT_OUTCOME_COMPLETED, "two"), 0);
  check_counts(fx, 0, 2, 0, 0);

  fx_finish_persisted(fx, p1, 1);
  check_counts(fx, 0, 1, 1, 0);

  /* p2's FINISH never committed: it runs again, and is not counted done. */
  fx_clear(fx);
  bt_core_finish_persisted(fx->core, p2, 1, false, &fx->now, &fx->out);
  assert_true(fx_state(fx, p2) == BT_PKG_QUEUED || fx_state(fx, p2) == BT_PKG_ASSIGNED);
  check_counts(fx, 1, 0, 1, 0);

  /* A cancel is finishing too until its write commits. */
  uint64_t p3 = fx_submit(fx, &(fx_pkg_t){.cap = "nobody-offers-this"});
  check_counts(fx, 2, 0, 1, 0);
  bt_pkg_state_t cs;
  fx_clear(fx);
  assert_int_equal(bt_core_package_cancel(fx->core, p3, &fx->now, &cs, &fx->out), 0);
  check_counts(fx, 1, 1, 1, 0);
  fx_finish_persisted(fx, p3, fx_attempt(fx, p3));
  check_counts(fx, 1, 0, 1, 1);
}

/* A completion after the deadline counts against the vendor's on-time rate. */
static void test_core_lifecycle_late_completion(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){.deadline_in = 1000});
  fx_confirm_assigns(fx);
  fx_advance(fx, 1001);
  bt_core_agent_seen(fx->core, a, &fx->now);
  fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "late");
  const bt_core_vendor_t *vv = bt_core_vendor(fx->core, v);
  assert_int_equal(vv->with_deadline, 1);
  assert_int_equal(vv->on_time, 0);
}

static void test_core_assign_persist_failure_requeues(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p1), p1, 1, a);
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){.priority = 5});
  assert_int_equal(fx_state(fx, p2), BT_PKG_QUEUED);

  /* The write failed for good: p1 goes back to the queue, the slot is free and
   * the best queued package (p2, higher priority) takes it. */
  fx_clear(fx);
  bt_core_assign_persisted(fx->core, p1, 1, false, &fx->now, &fx->out);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p2), p2, 1, a);
  assert_int_equal(fx_state(fx, p1), BT_PKG_QUEUED);
  assert_int_equal(fx_agent_of(fx, p1), 0);
  assert_int_equal(bt_core_vendor(fx->core, v)->in_flight, 1);
  /* Late notices for the failed attempt are ignored. */
  fx_clear(fx);
  bt_core_assign_persisted(fx->core, p1, 1, true, &fx->now, &fx->out);
  bt_core_assign_persisted(fx->core, p1, 1, false, &fx->now, &fx->out);
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(fx_state(fx, p1), BT_PKG_QUEUED);

  /* When p2 ends, p1 gets its next attempt. */
  fx_confirm_assigns(fx);
  fx_result(fx, a, p2, 1, BT_OUTCOME_COMPLETED, "ok");
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p1), p1, 2, a);
}

/* --- fencing --------------------------------------------------------------------- */

static void expect_stale(fx_t *fx, int rv, uint64_t pkg, uint32_t attempt,
                         uint64_t agent) {
  assert_int_equal(rv, BT_ESTALE);
  const bt_action_t *ack = fx_one(&fx->out, BT_ACT_ACK_RESULT, pkg);
  check_act(ack, pkg, attempt, agent);
  assert_int_equal(ack->code, BT_ESTALE);
  const bt_action_t *au = fx_one(&fx->out, BT_ACT_AUDIT, pkg);
  assert_string_equal(au->text, "result.stale");
  assert_int_equal(au->agent_id, agent);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
}

static void expect_acked_once(fx_t *fx, int rv, uint64_t pkg) {
  assert_int_equal(rv, 0);
  assert_int_equal(fx->out.n, 1);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ACK_RESULT, pkg)->code, 0);
}

static void test_core_fencing_stale_results(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  uint64_t b = fx_agent(fx, v, "b1", "translate", 1);

  static const bt_outcome_t outcomes[] = {BT_OUTCOME_COMPLETED, BT_OUTCOME_FAILED,
                                          BT_OUTCOME_HANDED_BACK};
  for (size_t i = 0; i < 3; i++) {
    /* Another agent reports the current attempt. */
    expect_stale(fx, fx_result(fx, b, p, 1, outcomes[i], "x"), p, 1, b);
    /* The holder reports an attempt that is not current. */
    expect_stale(fx, fx_result(fx, a, p, 2, outcomes[i], "x"), p, 2, a);
    expect_stale(fx, fx_result(fx, a, p, 0, outcomes[i], "x"), p, 0, a);
    /* A package nobody knows. */
    expect_stale(fx, fx_result(fx, a, 4242, 1, outcomes[i], "x"), 4242, 1, a);
  }
  assert_int_equal(fx_state(fx, p), BT_PKG_RUNNING);
  assert_int_equal(fx_agent_of(fx, p), a);

  /* Progress and start from the wrong agent or attempt change nothing; stale
   * progress is audited (never silently dropped), a stale start is not. */
  fx_clear(fx);
  assert_int_equal(bt_core_agent_progress(fx->core, b, p, 1, 10, "x", 1, &fx->now,
                                          &fx->out),
                   BT_ESTALE);
  assert_int_equal(bt_core_agent_progress(fx->core, a, p, 2, 10, NULL, 0, &fx->now,
                                          &fx->out),
                   BT_ESTALE);
  bt_core_agent_started(fx->core, b, p, 1, &fx->now, &fx->out);
  assert_int_equal(fx->out.n, 2);
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(fx->out.v[i].kind, BT_ACT_AUDIT);
    assert_string_equal(fx->out.v[i].text, "progress.stale");
    assert_int_equal(fx->out.v[i].package_id, p);
  }
  assert_int_equal(fx->out.v[0].agent_id, b);
  assert_int_equal(fx->out.v[1].attempt, 2);
  bt_pkg_view_t view;
  bt_core_package_view(fx->core, p, &view);
  assert_int_equal(view.progress, -1);
  assert_int_equal(view.checkpoint_len, 0);
}

/* An agent lost by its lease reports late: the package has moved on to the
 * next attempt on another agent, and the late result is stale. */
static void test_core_fencing_result_after_handoff(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  uint64_t b = fx_agent(fx, v, "b1", "translate", 1);
  fx_advance(fx, fx->cfg.lease_ms - 1);
  bt_core_agent_seen(fx->core, b, &fx->now);
  fx_advance(fx, 1);
  fx_tick(fx);
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p), p, 2, b);
  fx_confirm_assigns(fx);

  expect_stale(fx, fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "late"), p, 1, a);
  expect_stale(fx, fx_result(fx, b, p, 1, BT_OUTCOME_COMPLETED, "mixed"), p, 1, b);
  assert_int_equal(fx_state(fx, p), BT_PKG_ASSIGNED);
  assert_int_equal(bt_core_vendor(fx->core, v)->completed, 0);
  assert_int_equal(fx_result(fx, b, p, 2, BT_OUTCOME_COMPLETED, "ok"), 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->state, BT_PKG_COMPLETED);
}

/* A result resent after a lost reply is acknowledged, never finished twice:
 * while its finish is being committed, and after. */
static void test_core_fencing_duplicate_result(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  assert_int_equal(fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "out"), 0);
  fx_one(&fx->out, BT_ACT_FINISH, p);

  expect_acked_once(fx, fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "out"), p);
  assert_int_equal(fx_state(fx, p), BT_PKG_COMPLETED);
  assert_int_equal(bt_core_vendor(fx->core, v)->completed, 1);

  fx_finish_persisted(fx, p, 1);
  fx_finish_persisted(fx, p, 1); /* twice: harmless */
  assert_int_equal(fx_state(fx, p), BT_PKG__COUNT);
  expect_acked_once(fx, fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "out"), p);
  assert_int_equal(bt_core_vendor(fx->core, v)->completed, 1);
  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_COMPLETED], 1);
}

/* --- failures and retries -------------------------------------------------------- */

static void check_backoff(const fx_t *fx, const bt_action_t *fin, int64_t base) {
  assert_int_equal(fin->state, BT_PKG_QUEUED);
  int64_t d = fin->retry_at - fx->now.at;
  if (d < base * 8 / 10 || d > base * 12 / 10)
    fail_msg("backoff %lld ms, want %lld ±20%%", (long long)d, (long long)base);
}

static void test_core_failure_retries_then_dead(void **state) {
  fx_t *fx = *state;
  bt_core_config_t cfg = fx->cfg;
  cfg.lease_ms = 600000; /* no lease expiry in the way */
  fx_reconfigure(fx, &cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0}); /* default max attempts: 3 */
  fx_confirm_assigns(fx);
  assert_int_equal(cfg.default_max_attempts, 3);

  for (uint32_t attempt = 1; attempt <= 3; attempt++) {
    fx_started(fx, a, p, attempt);
    assert_int_equal(fx_result(fx, a, p, attempt, BT_OUTCOME_FAILED, NULL), 0);
    const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, p);
    check_act(fin, p, attempt, a);
    assert_int_equal(fin->outcome, BT_OUTCOME_FAILED);
    assert_int_equal(fin->exit_code, 1);
    assert_string_equal(fin->text, "handler failed");
    assert_int_equal(fx_one(&fx->out, BT_ACT_ACK_RESULT, p)->code, 0);
    assert_int_equal(bt_core_vendor(fx->core, v)->failed, attempt);
    assert_int_equal(fx_busy(fx, a), 0);
    if (attempt == 3) {
      assert_int_equal(fin->state, BT_PKG_DEAD);
      assert_int_equal(fin->retry_at, 0);
      assert_int_equal(fx_state(fx, p), BT_PKG_DEAD);
      break;
    }
    check_backoff(fx, fin, (int64_t)cfg.retry_base_ms << (attempt - 1));
    int64_t retry_at = fin->retry_at;
    /* Queued but not routable before retry_at, although the agent is free. */
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
    assert_int_equal(fx_state(fx, p), BT_PKG_QUEUED);
    bt_pkg_view_t view;
    bt_core_package_view(fx->core, p, &view);
    assert_int_equal(view.not_before_at, retry_at);
    assert_int_equal(strncmp(fx_reason(fx, p), "not before ", 11), 0);
    fx_clear(fx);
    bt_core_agent_ready(fx->core, a, 1, &fx->now, &fx->out);
    assert_int_equal(fx->out.n, 0);

    uint64_t wait = (uint64_t)(retry_at - fx->now.at);
    uint64_t due_ms = fx->now.ms + wait;
    fx_advance(fx, wait - 1);
    assert_int_equal(fx_tick(fx), due_ms);
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
    fx_advance(fx, 1);
    fx_tick(fx);
    check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p), p, attempt + 1, a);
    fx_confirm_assigns(fx);
  }
  fx_finish_persisted(fx, p, 3);
  assert_int_equal(fx_state(fx, p), BT_PKG__COUNT);
  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_DEAD], 1);
  assert_int_equal(st.by_state[BT_PKG_COMPLETED], 0);
}

/* Backoff: base * 2^(n-1), capped at retry_max, each ±20%; deterministic for a
 * seed. */
static void test_core_failure_backoff_schedule(void **state) {
  (void)state;
  int64_t delays[2][8];
  for (int run = 0; run < 2; run++) {
    bt_core_config_t cfg;
    bt_core_config_default(&cfg);
    cfg.retry_base_ms = 1000;
    cfg.retry_max_ms = 5000;
    cfg.lease_ms = 600000;
    cfg.breaker_min_attempts = 1000; /* one vendor failing on purpose: no breaker here */
    fx_t *fx = fx_new(&cfg);
    uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
    uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
    uint64_t p = fx_submit(fx, &(fx_pkg_t){.max_attempts = 9});
    static const int64_t want[] = {1000, 2000, 4000, 5000, 5000, 5000, 5000, 5000};
    for (uint32_t n = 1; n <= 8; n++) {
      fx_confirm_assigns(fx);
      fx_result(fx, a, p, n, BT_OUTCOME_FAILED, NULL);
      const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, p);
      check_backoff(fx, fin, want[n - 1]);
      delays[run][n - 1] = fin->retry_at - fx->now.at;
      fx_advance(fx, (uint64_t)delays[run][n - 1]);
      fx_tick(fx);
      fx_one(&fx->out, BT_ACT_ASSIGN, p);
    }
    fx_confirm_assigns(fx);
    fx_result(fx, a, p, 9, BT_OUTCOME_FAILED, NULL);
    assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->state, BT_PKG_DEAD);
    fx_free(fx);
  }
  assert_memory_equal(delays[0], delays[1], sizeof delays[0]);
}

/* Transient (exit 75, "not my fault"): uses up an attempt so a package that can
 * never succeed still ends, but is not the vendor's failure. */
static void test_core_failure_transient(void **state) {
  fx_t *fx = *state;
  bt_core_config_t cfg = fx->cfg;
  cfg.lease_ms = 600000;
  fx_reconfigure(fx, &cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){.max_attempts = 2});
  fx_confirm_assigns(fx);
  fx_result(fx, a, p, 1, BT_OUTCOME_TRANSIENT, NULL);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, p);
  assert_int_equal(fin->outcome, BT_OUTCOME_TRANSIENT);
  check_backoff(fx, fin, cfg.retry_base_ms);
  assert_int_equal(bt_core_vendor(fx->core, v)->failed, 0);
  fx_advance(fx, cfg.retry_base_ms * 2);
  fx_tick(fx);
  fx_confirm_assigns(fx);
  fx_result(fx, a, p, 2, BT_OUTCOME_TRANSIENT, NULL);
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->state, BT_PKG_DEAD);
  assert_int_equal(bt_core_vendor(fx->core, v)->failed, 0);
}

/* Handed back (the agent drains): queued again at once with a drain handoff
 * that carries the checkpoint; not the package's failure. */
static void test_core_handed_back_requeues_at_once(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t globex = fx_vendor(fx, &(fx_vendor_t){.name = "globex"});
  uint64_t a = fx_agent(fx, acme, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){.max_attempts = 1});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  fx_clear(fx);
  bt_core_agent_progress(fx->core, a, p, 1, 40, "half", 4, &fx->now, &fx->out);
  uint64_t g = fx_agent(fx, globex, "g1", "translate", 1);

  assert_int_equal(fx_result(fx, a, p, 1, BT_OUTCOME_HANDED_BACK, NULL), 0);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, p);
  assert_int_equal(fin->outcome, BT_OUTCOME_HANDED_BACK);
  assert_int_equal(fin->state, BT_PKG_QUEUED);
  assert_int_equal(fin->retry_at, 0);
  const bt_action_t *h = fx_one(&fx->out, BT_ACT_HANDOFF, p);
  assert_int_equal(h->reason, BT_HANDOFF_DRAIN);
  assert_int_equal(h->vendor_id, acme);
  assert_int_equal(h->attempt, 1);
  assert_int_equal(h->len, 4);
  assert_memory_equal(h->data, "half", 4);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ACK_RESULT, p)->code, 0);
  /* Routed again in the same step (max_attempts 1: not counted as a failure). */
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, p);
  assert_int_equal(as->attempt, 2);
  assert_true(as->agent_id == a || as->agent_id == g);
  assert_int_equal(bt_core_vendor(fx->core, acme)->failed, 0);
  /* The next attempt continues from the checkpoint. */
  bt_pkg_view_t view;
  bt_core_package_view(fx->core, p, &view);
  assert_int_equal(view.checkpoint_len, 4);
  assert_int_equal(view.progress, -1);
}

/* --- liveness ---------------------------------------------------------------------- */

static void test_core_lease_expiry_hands_off(void **state) {
  fx_t *fx = *state;
  uint32_t lease = fx->cfg.lease_ms;
  assert_int_equal(fx_tick(fx), UINT64_MAX); /* nothing to wait for */
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .region = "EU-DE"});
  uint64_t globex = fx_vendor(fx, &(fx_vendor_t){.name = "globex", .region = "EU-DE"});
  uint64_t initech = fx_vendor(fx, &(fx_vendor_t){.name = "initech", .region = "US"});
  uint64_t a = fx_agent(fx, acme, "a1", "translate", 3);
  uint64_t t0 = fx->now.ms;
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){.regions = "EU-DE"});
  fx_confirm_assigns(fx);
  uint64_t p3 = fx_submit(fx, &(fx_pkg_t){.regions = "EU-DE"});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p1, 1);
  fx_clear(fx);
  bt_core_agent_progress(fx->core, a, p1, 1, 70, "cp", 2, &fx->now, &fx->out);
  assert_int_equal(fx_busy(fx, a), 3);
  uint64_t b = fx_agent(fx, globex, "b1", "translate", 1);
  uint64_t c = fx_agent(fx, initech, "c1", "translate", 5);

  fx_advance(fx, lease - 1000);
  bt_core_agent_seen(fx->core, b, &fx->now);
  bt_core_agent_seen(fx->core, c, &fx->now);
  uint64_t b_expires = fx->now.ms + lease;
  assert_int_equal(fx_tick(fx), t0 + lease); /* a1's lease is next */
  assert_int_equal(fx->out.n, 0);

  fx_advance(fx, 1000);
  assert_int_equal(fx_tick(fx), b_expires);
  const bt_action_t *end = fx_one(&fx->out, BT_ACT_END_SESSION, 0);
  assert_int_equal(end->agent_id, a);
  /* a1 was acme's only agent: acme fails with it (no live agent), before its
   * work is handed off, so the handoffs say vendor-failed. */
  const bt_action_t *au = fx_find(&fx->out, BT_ACT_AUDIT, 0);
  assert_string_equal(au->text, "vendor.health");
  assert_string_equal(au->text2, "acme");
  assert_string_equal(au->text3, "failed");
  assert_string_equal(au->text4, "no live agent");
  assert_int_equal(bt_core_vendor(fx->core, acme)->state, BT_VENDOR_FAILED);
  au = NULL;
  for (size_t i = 0; i < fx->out.n && au == NULL; i++)
    if (fx->out.v[i].kind == BT_ACT_AUDIT && strcmp(fx->out.v[i].text, "agent.lost") == 0)
      au = &fx->out.v[i];
  assert_non_null(au);
  assert_string_equal(au->text2, "a1");
  assert_string_equal(au->text3, "acme");
  uint64_t pkgs[3] = {p1, p2, p3};
  for (int i = 0; i < 3; i++) {
    const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, pkgs[i]);
    check_act(fin, pkgs[i], 1, a);
    assert_int_equal(fin->outcome, BT_OUTCOME_LOST);
    assert_int_equal(fin->state, BT_PKG_QUEUED);
    const bt_action_t *h = fx_one(&fx->out, BT_ACT_HANDOFF, pkgs[i]);
    assert_int_equal(h->reason, BT_HANDOFF_VENDOR_FAILED);
    assert_int_equal(h->vendor_id, acme);
    assert_true(index_of(&fx->out, BT_ACT_FINISH, pkgs[i]) <
                index_of(&fx->out, BT_ACT_HANDOFF, pkgs[i]));
  }
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, p1)->len, 2);
  /* Rerouted to live agents within the hard constraints: the EU-DE packages
   * may go only to b1 (one slot), never to the US agent, even in failover.
   * (b1 takes p1, the best package by order, so p2 and p3 wait although c1
   * could have taken p1: routing is greedy per agent, not a matching.) */
  assert_true(fx_count(&fx->out, BT_ACT_ASSIGN) >= 1);
  for (size_t i = 0; i < fx->out.n; i++) {
    const bt_action_t *x = &fx->out.v[i];
    if (x->kind != BT_ACT_ASSIGN)
      continue;
    assert_int_equal(x->attempt, 2);
    if (x->package_id == p2 || x->package_id == p3)
      assert_int_equal(x->agent_id, b);
  }
  assert_int_equal(fx_busy(fx, b), 1);
  for (int i = 1; i < 3; i++)
    if (fx_state(fx, pkgs[i]) == BT_PKG_QUEUED)
      assert_string_equal(fx_reason(fx, pkgs[i]), "");

  bt_agent_view_t view;
  bt_core_agent_view(fx->core, a, &view);
  assert_int_equal(view.state, BT_AGENT_LOST);
  assert_int_equal(view.busy, 0);
  assert_int_equal(bt_core_vendor(fx->core, acme)->in_flight, 0);
  assert_int_equal(bt_core_vendor(fx->core, acme)->agents_connected, 0);

  /* A lost agent is not revived by a stray message, and is not lost twice. */
  bt_core_agent_seen(fx->core, a, &fx->now);
  fx_clear(fx);
  bt_core_agent_ready(fx->core, a, 1, &fx->now, &fx->out);
  fx_advance(fx, lease);
  fx_tick(fx);
  assert_int_equal(fx_count(&fx->out, BT_ACT_END_SESSION), 2); /* b1 and c1 */
  for (size_t i = 0; i < fx->out.n; i++)
    if (fx->out.v[i].kind == BT_ACT_END_SESSION)
      assert_int_not_equal(fx->out.v[i].agent_id, a);
}

static void test_core_agent_seen_keeps_alive(void **state) {
  fx_t *fx = *state;
  uint32_t lease = fx->cfg.lease_ms;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  for (int i = 0; i < 10; i++) {
    fx_advance(fx, lease - 1);
    bt_core_agent_seen(fx->core, a, &fx->now);
    assert_int_equal(fx_tick(fx), fx->now.ms + lease);
    assert_int_equal(fx->out.n, 0);
  }
  bt_agent_view_t view;
  bt_core_agent_view(fx->core, a, &view);
  assert_int_equal(view.last_seen_at, fx->now.at);
  assert_int_equal(view.state, BT_AGENT_CONNECTED);
  assert_int_equal(fx_state(fx, p), BT_PKG_ASSIGNED);
  /* An idle agent that goes silent is lost too (its session ends). */
  fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "ok");
  fx_advance(fx, lease);
  fx_tick(fx);
  fx_one(&fx->out, BT_ACT_END_SESSION, 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_HANDOFF), 0);
}

static void test_core_agent_bye_hands_off(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  uint64_t b = fx_agent(fx, v, "b1", "translate", 1);
  fx_clear(fx);
  bt_core_agent_bye(fx->core, a, &fx->now, &fx->out);
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->outcome, BT_OUTCOME_LOST);
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, p)->reason, BT_HANDOFF_AGENT_LOST);
  /* The agent ends its own session with Bye: the core must not end it again
   * (the endpoint would free the session it is still answering). */
  assert_int_equal(fx_count(&fx->out, BT_ACT_END_SESSION), 0);
  assert_string_equal(fx_find(&fx->out, BT_ACT_AUDIT, 0)->text, "agent.bye");
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p), p, 2, b);
  bt_agent_view_t view;
  bt_core_agent_view(fx->core, a, &view);
  assert_int_equal(view.state, BT_AGENT_GONE);
  /* A second bye, or a bye from nobody, does nothing. */
  fx_clear(fx);
  bt_core_agent_bye(fx->core, a, &fx->now, &fx->out);
  bt_core_agent_bye(fx->core, 999, &fx->now, &fx->out);
  assert_int_equal(fx->out.n, 0);
  /* The agent may come back. */
  assert_int_equal(fx_agent(fx, v, "a1", "translate", 1), a);
  assert_int_equal(bt_core_vendor(fx->core, v)->agents_connected, 2);
}

/* --- hello reconciliation ----------------------------------------------------------- */

static void test_core_hello_reconciles_held_work(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 4);
  uint64_t running = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, running, 1);
  uint64_t sent = fx_submit(fx, &(fx_pkg_t){0}); /* dispatched, not started */
  fx_confirm_assigns(fx);
  uint64_t forgotten = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, forgotten, 1);
  uint64_t pending = fx_submit(fx, &(fx_pkg_t){0}); /* assign not committed */
  fx_one(&fx->out, BT_ACT_ASSIGN, pending);
  uint64_t b = fx_agent(fx, v, "b1", "translate", 1);
  uint64_t others = fx_submit(fx, &(fx_pkg_t){0});
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, others), others, 1, b);
  fx_confirm_assigns(fx);
  assert_int_equal(fx_busy(fx, a), 4);

  bt_held_t held[] = {
      {running, 1},   /* current: continues */
      {sent, 1},      /* current, not started yet: now running */
      {others, 1},    /* b1's attempt: not a1's, cancel */
      {running, 7},   /* an attempt that never was: cancel */
      {4242, 1},      /* unknown package: cancel */
  };
  uint64_t id = 0;
  assert_int_equal(fx_hello(fx, v, "a1", "translate", 4, held, 5, &id), 0);
  assert_int_equal(id, a);
  fx_one(&fx->out, BT_ACT_PERSIST_AGENT, 0);

  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_FINISH, running), 0);
  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_HANDOFF, running), 0);
  assert_int_equal(fx_state(fx, running), BT_PKG_RUNNING);

  check_act(fx_one(&fx->out, BT_ACT_START, sent), sent, 1, a);
  assert_int_equal(fx_state(fx, sent), BT_PKG_RUNNING);

  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, forgotten);
  check_act(fin, forgotten, 1, a);
  assert_int_equal(fin->outcome, BT_OUTCOME_LOST);
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, forgotten)->reason,
                   BT_HANDOFF_AGENT_LOST);

  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_FINISH, pending), 0);
  assert_int_equal(fx_state(fx, pending), BT_PKG_ASSIGNED);
  assert_int_equal(fx_agent_of(fx, pending), a);
  assert_int_equal(fx_attempt(fx, pending), 1);

  assert_int_equal(fx_count(&fx->out, BT_ACT_CANCEL), 3);
  check_act(fx_one(&fx->out, BT_ACT_CANCEL, others), others, 1, a);
  check_act(fx_one(&fx->out, BT_ACT_CANCEL, 4242), 4242, 1, a);
  assert_int_equal(fx_find(&fx->out, BT_ACT_CANCEL, running)->attempt, 7);
  assert_int_equal(fx_agent_of(fx, others), b); /* b1 keeps its work */
  assert_int_equal(fx_state(fx, others), BT_PKG_ASSIGNED);
  assert_int_equal(bt_core_vendor(fx->core, v)->agents_connected, 2);

  /* The commit of the pending assignment still lands. */
  fx_clear(fx);
  bt_core_assign_persisted(fx->core, pending, 1, true, &fx->now, &fx->out);
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(fx_state(fx, pending), BT_PKG_ASSIGNED);
  uint64_t in_flight = 0;
  for (size_t i = 0; i < bt_core_agent_count(fx->core); i++) {
    bt_agent_view_t av;
    bt_core_agent_at(fx->core, i, &av);
    in_flight += av.busy;
    assert_true(av.busy <= av.slots);
  }
  assert_int_equal(bt_core_vendor(fx->core, v)->in_flight, in_flight);
}

/* An agent lost by its lease comes back: what it still runs was handed off
 * meanwhile, so it is told to cancel it. */
static void test_core_hello_after_loss_cancels_old_attempts(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  fx_advance(fx, fx->cfg.lease_ms);
  fx_tick(fx);
  fx_one(&fx->out, BT_ACT_END_SESSION, 0);
  assert_int_equal(fx_state(fx, p), BT_PKG_QUEUED);

  bt_held_t held[] = {{p, 1}};
  assert_int_equal(fx_hello(fx, v, "a1", "translate", 1, held, 1, NULL), 0);
  check_act(fx_one(&fx->out, BT_ACT_CANCEL, p), p, 1, a);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  /* It is back and takes the package again, as a new attempt. */
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p), p, 2, a);
  bt_agent_view_t view;
  bt_core_agent_view(fx->core, a, &view);
  assert_int_equal(view.state, BT_AGENT_CONNECTED);
  assert_int_equal(bt_core_vendor(fx->core, v)->agents_connected, 1);
}


/* --- authorization: another vendor's work, unregistered capabilities ------------- */

/* Checks the one AUDIT in fx->out: a *.foreign row naming the reporter, its
 * vendor and the vendor that holds the package. */
static void expect_foreign_audit(const fx_t *fx, const char *what, uint64_t pkg,
                                 uint32_t attempt, uint64_t agent, const char *agent_name,
                                 const char *vendor, const char *holder) {
  assert_int_equal(fx_count(&fx->out, BT_ACT_AUDIT), 1);
  const bt_action_t *au = fx_one(&fx->out, BT_ACT_AUDIT, pkg);
  assert_string_equal(au->text, what);
  check_act(au, pkg, attempt, agent);
  assert_string_equal(au->text2, agent_name);
  assert_string_equal(au->text3, vendor);
  assert_string_equal(au->text4, holder);
}

/* Two vendors offer the same capability; beta's agent reports about the package
 * acme's agent holds. Every kind of report is refused and audited as foreign,
 * the package and its holder are untouched, and the holder still completes it. */
static void test_core_authz_foreign_reports(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t beta = fx_vendor(fx, &(fx_vendor_t){.name = "beta"});
  uint64_t a = fx_agent(fx, acme, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p), p, 1, a);
  fx_confirm_assigns(fx);
  uint64_t b = fx_agent(fx, beta, "b1", "translate", 1);

  static const bt_outcome_t outcomes[] = {BT_OUTCOME_COMPLETED, BT_OUTCOME_FAILED,
                                          BT_OUTCOME_HANDED_BACK, BT_OUTCOME_CANCELLED};
  for (size_t i = 0; i < 4; i++) {
    /* The current attempt, and one not issued yet: no beta agent ever held them. */
    for (uint32_t att = 1; att <= 2; att++) {
      assert_int_equal(fx_result(fx, b, p, att, outcomes[i], "forged"), BT_EAUTH);
      const bt_action_t *ack = fx_one(&fx->out, BT_ACT_ACK_RESULT, p);
      check_act(ack, p, att, b);
      assert_int_equal(ack->code, BT_ESTALE); /* the agent forgets it */
      expect_foreign_audit(fx, "result.foreign", p, att, b, "b1", "beta", "acme");
      assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
      assert_int_equal(fx_count(&fx->out, BT_ACT_HANDOFF), 0);
    }
  }
  fx_clear(fx);
  assert_int_equal(bt_core_agent_progress(fx->core, b, p, 1, 90, "evil", 4, &fx->now,
                                          &fx->out),
                   BT_EAUTH);
  expect_foreign_audit(fx, "progress.foreign", p, 1, b, "b1", "beta", "acme");
  assert_int_equal(fx_count(&fx->out, BT_ACT_PROGRESS), 0);
  fx_started(fx, b, p, 1);
  expect_foreign_audit(fx, "start.foreign", p, 1, b, "b1", "beta", "acme");
  assert_int_equal(fx_count(&fx->out, BT_ACT_START), 0);

  assert_int_equal(fx_state(fx, p), BT_PKG_ASSIGNED);
  assert_int_equal(fx_agent_of(fx, p), a);
  assert_int_equal(fx_vendor_of(fx, p), acme);
  bt_pkg_view_t view;
  bt_core_package_view(fx->core, p, &view);
  assert_int_equal(view.progress, -1);
  assert_int_equal(view.checkpoint_len, 0);
  assert_int_equal(bt_core_vendor(fx->core, beta)->completed, 0);
  assert_int_equal(bt_core_vendor(fx->core, beta)->failed, 0);
  assert_int_equal(fx_busy(fx, b), 0);

  fx_started(fx, a, p, 1);
  assert_int_equal(fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "real"), 0);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, p);
  assert_int_equal(fin->state, BT_PKG_COMPLETED);
  assert_int_equal(fin->len, 4);
  assert_memory_equal(fin->data, "real", 4);
  assert_int_equal(bt_core_vendor(fx->core, acme)->completed, 1);
  /* Once it is finishing, beta still may not claim it. */
  assert_int_equal(fx_result(fx, b, p, 1, BT_OUTCOME_COMPLETED, "forged"), BT_EAUTH);
  expect_foreign_audit(fx, "result.foreign", p, 1, b, "b1", "beta", "acme");
}

/* Foreign is not stale: a late report from a replaced agent stays stale, both
 * within a vendor and across a handoff to another vendor; only a claim on the
 * attempt another vendor holds now is foreign. */
static void test_core_authz_foreign_vs_stale(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t beta = fx_vendor(fx, &(fx_vendor_t){.name = "beta"});
  uint64_t a = fx_agent(fx, acme, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  uint64_t a2 = fx_agent(fx, acme, "a2", "translate", 1);
  /* The same vendor's other agent: stale, as ever (test_core_fencing_stale_results). */
  expect_stale(fx, fx_result(fx, a2, p, 1, BT_OUTCOME_COMPLETED, "x"), p, 1, a2);

  /* acme fails: the package moves to beta as attempt 2. */
  uint64_t b = fx_agent(fx, beta, "b1", "translate", 1);
  fx_clear(fx);
  assert_int_equal(bt_core_vendor_op(fx->core, acme, BT_VENDOR_OP_FAIL, &fx->now, &fx->out),
                   0);
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, p), p, 2, b);
  fx_confirm_assigns(fx);

  /* acme's late answer for its own attempt 1 is stale, not foreign. */
  expect_stale(fx, fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "late"), p, 1, a);
  fx_clear(fx);
  assert_int_equal(bt_core_agent_progress(fx->core, a, p, 1, 50, NULL, 0, &fx->now,
                                          &fx->out),
                   BT_ESTALE);
  assert_string_equal(fx_one(&fx->out, BT_ACT_AUDIT, p)->text, "progress.stale");
  /* But it may not claim beta's attempt 2. */
  assert_int_equal(fx_result(fx, a, p, 2, BT_OUTCOME_COMPLETED, "x"), BT_EAUTH);
  expect_foreign_audit(fx, "result.foreign", p, 2, a, "a1", "acme", "beta");
  assert_int_equal(fx_state(fx, p), BT_PKG_ASSIGNED);
  assert_int_equal(fx_agent_of(fx, p), b);
  assert_int_equal(fx_result(fx, b, p, 2, BT_OUTCOME_COMPLETED, "ok"), 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->state, BT_PKG_COMPLETED);
}

/* An agent that says in its hello it holds another vendor's attempt is told to
 * cancel it, audited held.foreign; the holder keeps it. */
static void test_core_authz_foreign_held(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t beta = fx_vendor(fx, &(fx_vendor_t){.name = "beta"});
  uint64_t a = fx_agent(fx, acme, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);

  bt_held_t held[] = {{p, 1}};
  uint64_t b = 0;
  assert_int_equal(fx_hello(fx, beta, "b1", "translate", 1, held, 1, &b), 0);
  check_act(fx_one(&fx->out, BT_ACT_CANCEL, p), p, 1, b);
  expect_foreign_audit(fx, "held.foreign", p, 1, b, "b1", "beta", "acme");
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  assert_int_equal(fx_state(fx, p), BT_PKG_RUNNING);
  assert_int_equal(fx_agent_of(fx, p), a);
  assert_int_equal(fx_busy(fx, b), 0);
}

/* A hello advertising a capability the vendor is not registered for is refused
 * as a whole and each such capability is audited by name; packages of that
 * capability are never assigned to the agent, and the same agent with only its
 * registered capabilities is welcome and gets only those. */
static void test_core_authz_capability_refused(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .caps = "translate"});
  uint64_t label = fx_submit(fx, &(fx_pkg_t){.cap = "label"});
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);

  uint64_t id = 0;
  assert_int_equal(fx_hello(fx, acme, "a1", "translate,label,ocr", 2, NULL, 0, &id),
                   BT_EINVAL);
  assert_int_equal(fx->out.n, 2); /* two audit rows, nothing else */
  static const char *const refused[] = {"label", "ocr"};
  for (size_t i = 0; i < 2; i++) {
    const bt_action_t *au = &fx->out.v[i];
    assert_int_equal(au->kind, BT_ACT_AUDIT);
    assert_string_equal(au->text, "agent.capability_refused");
    assert_string_equal(au->text2, "a1");
    assert_string_equal(au->text3, "acme");
    assert_string_equal(au->text4, refused[i]);
    assert_int_equal(au->vendor_id, acme);
    assert_int_equal(au->agent_id, 0);
    assert_int_equal(au->package_id, 0);
  }
  assert_int_equal(bt_core_agent_count(fx->core), 0);
  assert_int_equal(bt_core_vendor(fx->core, acme)->agents_connected, 0);

  uint64_t a = fx_agent(fx, acme, "a1", "translate", 2);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  uint64_t t = fx_submit(fx, &(fx_pkg_t){.cap = "translate"});
  check_act(fx_one(&fx->out, BT_ACT_ASSIGN, t), t, 1, a);
  fx_confirm_assigns(fx);
  fx_advance(fx, 1000);
  fx_tick(fx);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_int_equal(fx_state(fx, label), BT_PKG_QUEUED);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_core_lifecycle_completed),
      T(test_core_lifecycle_late_completion),
      T(test_core_lifecycle_stats_count_commits),
      T(test_core_assign_persist_failure_requeues),
      T(test_core_fencing_stale_results),
      T(test_core_fencing_result_after_handoff),
      T(test_core_fencing_duplicate_result),
      T(test_core_failure_retries_then_dead),
      cmocka_unit_test(test_core_failure_backoff_schedule),
      T(test_core_failure_transient),
      T(test_core_handed_back_requeues_at_once),
      T(test_core_lease_expiry_hands_off),
      T(test_core_agent_seen_keeps_alive),
      T(test_core_agent_bye_hands_off),
      T(test_core_hello_reconciles_held_work),
      T(test_core_hello_after_loss_cancels_old_attempts),
      T(test_core_authz_foreign_reports),
      T(test_core_authz_foreign_vs_stale),
      T(test_core_authz_foreign_held),
      T(test_core_authz_capability_refused),
  };
#undef T
  return cmocka_run_group_tests_name("test_core_agents", tests, NULL, NULL);
}

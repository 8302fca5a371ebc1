/*
 * bt_core_reconfigure: new tunables while the core runs (`batonctl config
 * set`, SIGHUP). Each test builds state, changes one group of settings and
 * shows the new values take effect without breaking what was there: routing
 * weights at the next decision, the default max attempts for new packages
 * only, the breaker window rebucketed (counts kept or aged out, never
 * corrupted), thresholds judged again at once, probe limits raised for a
 * recovering vendor, a pending probe moved with the cooldown, and a bad
 * config refused with nothing changed.
 */
#include "core_fixture.h"

#include <string.h>

static bt_core_config_t base_cfg(void) {
  bt_core_config_t cfg;
  bt_core_config_default(&cfg);
  cfg.lease_ms = 600000; /* leases are not what these tests are about */
  cfg.retry_base_ms = 100;
  cfg.retry_max_ms = 100;
  cfg.breaker_window_ms = 30000;
  cfg.breaker_min_attempts = 4;
  cfg.breaker_threshold = 0.8;
  cfg.degrade_threshold = 0.2;
  cfg.breaker_cooldown_ms = 5000;
  cfg.probe_packages = 1;
  return cfg;
}

static const bt_core_vendor_t *vendor(const fx_t *fx, uint64_t id) {
  return bt_core_vendor(fx->core, id);
}

/* Runs the reconfiguration; fx->out holds its actions. */
static int reconfigure(fx_t *fx, const bt_core_config_t *cfg) {
  fx_clear(fx);
  return bt_core_reconfigure(fx->core, cfg, &fx->now, &fx->out);
}

/* Ends attempts of packages run one at a time on agent a: outcomes in order. */
static void run_seq(fx_t *fx, uint64_t a, const bt_outcome_t *seq, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t p = fx_submit(fx, &(fx_pkg_t){.max_attempts = 1});
    fx_confirm_assigns(fx);
    assert_int_equal(fx_agent_of(fx, p), a);
    fx_started(fx, a, p, 1);
    fx_result(fx, a, p, 1, seq[i], "out");
  }
}

static void test_core_reconfig_weights_apply_to_next_decision(void **state) {
  (void)state;
  bt_core_config_t cfg = base_cfg();
  fx_t *fx = fx_new(&cfg);
  uint64_t dear = fx_vendor(fx, &(fx_vendor_t){.name = "dear", .cost = 50});
  uint64_t cheap = fx_vendor(fx, &(fx_vendor_t){.name = "cheap", .cost = 0});
  fx_agent(fx, dear, "d1", "translate", 10);
  fx_agent(fx, cheap, "c1", "translate", 10);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_vendor_of(fx, p1), cheap); /* the cost term decides */
  fx_confirm_assigns(fx);

  /* Cost no longer counts, utilisation does: the idle vendor wins now. */
  cfg.w_cost = 0;
  cfg.w_util = 5;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_vendor_of(fx, p2), dear);
  bt_score_t s;
  uint64_t p3 = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  assert_int_equal(bt_core_score(fx->core, p3, cheap, &s), 0);
  assert_true(s.cost > 0.9); /* the term is there, its weight is 0 */
  assert_true(s.total < 1.0 * (5 * 1.0 + 1.0 + 0.5));
  fx_free(fx);
}

static void test_core_reconfig_queued_work_routes_at_once(void **state) {
  (void)state;
  /* share_cap 0.5 with one vendor: it is capped but the only one, so work
   * still goes there; the change shows at the very next pass, not at the
   * next poll: reconfigure routes what it can. */
  bt_core_config_t cfg = base_cfg();
  cfg.probe_packages = 1;
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .capacity = 4});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 4);
  /* Fail it by losing its agent, then probe: limit 1. */
  fx_clear(fx);
  bt_core_agent_bye(fx->core, a, &fx->now, &fx->out);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_FAILED);
  a = fx_agent(fx, v, "a2", "translate", 4);
  fx_tick(fx);
  assert_true(vendor(fx, v)->probing);
  assert_int_equal(vendor(fx, v)->limit, 1);
  uint64_t p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = fx_submit(fx, &(fx_pkg_t){0});
    fx_confirm_assigns(fx);
  }
  assert_int_equal(vendor(fx, v)->in_flight, 1);

  /* probe_packages 3: the probing vendor may take 3 now; two queued
   * packages are assigned by the reconfiguration itself. */
  cfg.probe_packages = 3;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->limit, 3);
  assert_true(vendor(fx, v)->probing);
  assert_non_null(strstr(vendor(fx, v)->state_reason, "3 in flight"));
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 2);
  assert_int_equal(fx_one(&fx->out, BT_ACT_VENDOR_STATE, 0)->attempt, 3);
  fx_confirm_assigns(fx);
  assert_int_equal(vendor(fx, v)->in_flight, 3);

  /* Lowering it takes nothing back. */
  cfg.probe_packages = 1;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->limit, 3);
  assert_int_equal(fx_count(&fx->out, BT_ACT_CANCEL), 0);

  /* At its capacity the ramp is over: active, full limit, the last one placed. */
  cfg.probe_packages = 100;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_ACTIVE);
  assert_false(vendor(fx, v)->probing);
  assert_int_equal(vendor(fx, v)->limit, 4);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 1);
  (void)p;
  fx_free(fx);
}

static void test_core_reconfig_max_attempts_for_new_packages_only(void **state) {
  (void)state;
  bt_core_config_t cfg = base_cfg();
  fx_t *fx = fx_new(&cfg);
  fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t before = fx_submit(fx, &(fx_pkg_t){0});
  cfg.default_max_attempts = 7;
  cfg.retry_base_ms = 2000;
  cfg.retry_max_ms = 2000;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  uint64_t after = fx_submit(fx, &(fx_pkg_t){0});
  uint64_t own = fx_submit(fx, &(fx_pkg_t){.max_attempts = 2});
  bt_pkg_view_t v;
  assert_int_equal(bt_core_package_view(fx->core, before, &v), 0);
  assert_int_equal(v.max_attempts, 3);
  assert_int_equal(bt_core_package_view(fx->core, after, &v), 0);
  assert_int_equal(v.max_attempts, 7);
  assert_int_equal(bt_core_package_view(fx->core, own, &v), 0);
  assert_int_equal(v.max_attempts, 2);
  fx_free(fx);
}

static void test_core_reconfig_retry_backoff_applies_to_next_failure(void **state) {
  (void)state;
  bt_core_config_t cfg = base_cfg();
  cfg.breaker_min_attempts = 1000; /* health is not the point here */
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  cfg.retry_base_ms = 40000;
  cfg.retry_max_ms = 40000;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){.max_attempts = 5});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  fx_result(fx, a, p, 1, BT_OUTCOME_FAILED, NULL);
  const bt_action_t *f = fx_one(&fx->out, BT_ACT_FINISH, p);
  assert_int_equal(f->state, BT_PKG_QUEUED);
  /* 40 s ± 20% */
  assert_true(f->retry_at - fx->now.at >= 32000);
  assert_true(f->retry_at - fx->now.at <= 48000);
  fx_free(fx);
}

static void test_core_reconfig_window_rebuckets(void **state) {
  (void)state;
  bt_core_config_t cfg = base_cfg();
  cfg.breaker_min_attempts = 1000; /* count only: never judged enough */
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  const bt_outcome_t seq[] = {BT_OUTCOME_FAILED, BT_OUTCOME_COMPLETED, BT_OUTCOME_FAILED};
  run_seq(fx, a, seq, 1);
  fx_advance(fx, 10000);
  run_seq(fx, a, seq + 1, 2);
  fx_advance(fx, 1000);
  assert_int_equal(vendor(fx, v)->recent_failed, 2);
  assert_int_equal(vendor(fx, v)->recent_ok, 1);

  /* Longer window, other bucket length: every attempt still counted. */
  cfg.breaker_window_ms = 120000;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->recent_failed, 2);
  assert_int_equal(vendor(fx, v)->recent_ok, 1);
  /* and they still slide out of the new window in time */
  fx_advance(fx, 60000);
  fx_tick(fx);
  run_seq(fx, a, seq + 1, 1);
  assert_int_equal(vendor(fx, v)->recent_failed, 2);
  assert_int_equal(vendor(fx, v)->recent_ok, 2);

  /* A 5 s window now holds only the success of a moment ago. */
  cfg.breaker_window_ms = 5000;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->recent_failed, 0);
  assert_int_equal(vendor(fx, v)->recent_ok, 1);
  /* New attempts land in the new buckets and age out with them. */
  run_seq(fx, a, seq, 1);
  assert_int_equal(vendor(fx, v)->recent_failed, 1);
  fx_advance(fx, 6000);
  run_seq(fx, a, seq + 1, 1);
  assert_int_equal(vendor(fx, v)->recent_failed, 0);
  assert_int_equal(vendor(fx, v)->recent_ok, 1);
  fx_free(fx);
}

static void test_core_reconfig_thresholds_judge_now(void **state) {
  (void)state;
  bt_core_config_t cfg = base_cfg();
  cfg.degrade_threshold = 0.6;
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .capacity = 8});
  uint64_t w = fx_vendor(fx, &(fx_vendor_t){.name = "wayne", .capacity = 8, .cost = 50});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 8);
  /* 2 failures of 4: 50%, below degrade (60%) and breaker (80%). */
  const bt_outcome_t seq[] = {BT_OUTCOME_FAILED, BT_OUTCOME_COMPLETED, BT_OUTCOME_FAILED,
                              BT_OUTCOME_COMPLETED};
  run_seq(fx, a, seq, 4);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_ACTIVE);

  /* degrade_threshold 0.4: degraded at once, audited. */
  cfg.degrade_threshold = 0.4;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_DEGRADED);
  assert_non_null(strstr(vendor(fx, v)->state_reason, "2 of 4"));
  assert_int_equal(fx_one(&fx->out, BT_ACT_VENDOR_STATE, 0)->code, BT_VENDOR_DEGRADED);
  assert_string_equal(fx_one(&fx->out, BT_ACT_AUDIT, 0)->text, "vendor.health");

  /* Back up: active again. */
  cfg.degrade_threshold = 0.6;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_ACTIVE);

  /* breaker_threshold 0.5 with work in flight: the breaker trips now and the
   * work is handed off to the other vendor. */
  uint64_t b = fx_agent(fx, w, "b1", "translate", 8);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_agent_of(fx, p), a);
  cfg.breaker_threshold = 0.5;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_FAILED);
  assert_non_null(strstr(vendor(fx, v)->state_reason, "circuit breaker"));
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, p)->reason, BT_HANDOFF_VENDOR_FAILED);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, p)->agent_id, b);
  fx_free(fx);
}

static void test_core_reconfig_cooldown_moves_pending_probe(void **state) {
  (void)state;
  bt_core_config_t cfg = base_cfg();
  cfg.breaker_threshold = 0.5;
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  const bt_outcome_t seq[] = {BT_OUTCOME_FAILED, BT_OUTCOME_FAILED, BT_OUTCOME_FAILED,
                              BT_OUTCOME_FAILED};
  run_seq(fx, a, seq, 4);
  uint64_t tripped = fx->now.ms;
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_FAILED);
  assert_int_equal(vendor(fx, v)->probe_at_ms, tripped + 5000);
  fx_advance(fx, 1000);

  cfg.breaker_cooldown_ms = 20000;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->probe_at_ms, tripped + 20000);
  assert_int_equal(vendor(fx, v)->cooldown_ms, 20000);
  /* the tick's next deadline follows */
  assert_true(fx_tick(fx) <= tripped + 20000);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_FAILED);

  /* Shorter than what has passed: probed at the next tick. */
  fx_advance(fx, 2000);
  cfg.breaker_cooldown_ms = 1000;
  assert_int_equal(reconfigure(fx, &cfg), 0);
  assert_int_equal(vendor(fx, v)->probe_at_ms, fx->now.ms);
  fx_tick(fx);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_DEGRADED);
  assert_true(vendor(fx, v)->probing);
  fx_free(fx);
}

static void test_core_reconfig_refuses_bad_values(void **state) {
  (void)state;
  bt_core_config_t cfg = base_cfg();
  fx_t *fx = fx_new(&cfg);
  uint64_t dear = fx_vendor(fx, &(fx_vendor_t){.name = "dear", .cost = 50});
  uint64_t cheap = fx_vendor(fx, &(fx_vendor_t){.name = "cheap", .cost = 0});
  fx_agent(fx, dear, "d1", "translate", 10);
  fx_agent(fx, cheap, "c1", "translate", 10);
  static const struct {
    const char *what;
    size_t off;
    bool is_double;
    double bad;
  } cases[] = {
      {"w_cost", offsetof(bt_core_config_t, w_cost), true, -1},
      {"share_cap", offsetof(bt_core_config_t, share_cap), true, 0},
      {"share_cap", offsetof(bt_core_config_t, share_cap), true, 1.5},
      {"breaker_threshold", offsetof(bt_core_config_t, breaker_threshold), true, 0},
      {"degraded_factor", offsetof(bt_core_config_t, degraded_factor), true, 2},
      {"cost_ref", offsetof(bt_core_config_t, cost_ref), true, 0},
      {"breaker_window_ms", offsetof(bt_core_config_t, breaker_window_ms), false, 0},
      {"probe_packages", offsetof(bt_core_config_t, probe_packages), false, 0},
      {"default_max_attempts", offsetof(bt_core_config_t, default_max_attempts), false, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bt_core_config_t bad = cfg;
    bad.w_cost = 0; /* would change routing if it got through */
    if (cases[i].is_double)
      *(double *)((char *)&bad + cases[i].off) = cases[i].bad;
    else
      *(uint32_t *)((char *)&bad + cases[i].off) = (uint32_t)cases[i].bad;
    if (reconfigure(fx, &bad) != BT_EINVAL)
      fail_msg("%s = %g accepted", cases[i].what, cases[i].bad);
    assert_int_equal(fx->out.n, 0);
  }
  /* Nothing changed: cost still decides. */
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_vendor_of(fx, p), cheap);
  fx_free(fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_reconfig_weights_apply_to_next_decision),
      cmocka_unit_test(test_core_reconfig_queued_work_routes_at_once),
      cmocka_unit_test(test_core_reconfig_max_attempts_for_new_packages_only),
      cmocka_unit_test(test_core_reconfig_retry_backoff_applies_to_next_failure),
      cmocka_unit_test(test_core_reconfig_window_rebuckets),
      cmocka_unit_test(test_core_reconfig_thresholds_judge_now),
      cmocka_unit_test(test_core_reconfig_cooldown_moves_pending_probe),
      cmocka_unit_test(test_core_reconfig_refuses_bad_values),
  };
  return cmocka_run_group_tests_name("core_reconfig", tests, NULL, NULL);
}

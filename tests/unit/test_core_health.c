/*
 * Vendor health and the admin's operations, through the core's public API:
 * the circuit breaker (trip, cooldown, probing, ramp back up), degraded on
 * elevated failures, a vendor failing with its last live agent, residency
 * holding during failover, vendor drain/suspend/fail/resume, and package
 * cancel/retry/reassign/revive.
 */
#include "core_fixture.h"

#include <string.h>

static bt_core_config_t health_cfg(void) {
  bt_core_config_t cfg;
  bt_core_config_default(&cfg);
  cfg.lease_ms = 600000; /* leases are not what these tests are about */
  cfg.retry_base_ms = 100;
  cfg.retry_max_ms = 100;
  cfg.default_max_attempts = 50;
  cfg.breaker_window_ms = 30000;
  cfg.breaker_min_attempts = 4;
  cfg.breaker_threshold = 0.5;
  cfg.degrade_threshold = 0.2;
  cfg.breaker_cooldown_ms = 5000;
  cfg.probe_packages = 1;
  return cfg;
}

static const bt_core_vendor_t *vendor(const fx_t *fx, uint64_t id) {
  return bt_core_vendor(fx->core, id);
}

/* Runs one package to the given outcome on agent a (it must be assigned there). */
static void run_one(fx_t *fx, uint64_t a, uint64_t p, bt_outcome_t outcome) {
  fx_started(fx, a, p, fx_attempt(fx, p));
  fx_result(fx, a, p, fx_attempt(fx, p), outcome, "out");
}

static void test_core_breaker_trips_hands_off_probes_and_ramps(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  fx_t *fx = fx_new(&cfg);
  uint64_t bad = fx_vendor(fx, &(fx_vendor_t){.name = "bad", .capacity = 8, .cost = 0});
  uint64_t good = fx_vendor(fx, &(fx_vendor_t){.name = "good", .capacity = 8, .cost = 50});
  uint64_t a = fx_agent(fx, bad, "a1", "translate", 8);
  uint64_t pk[6];
  for (int i = 0; i < 6; i++) {
    pk[i] = fx_submit(fx, &(fx_pkg_t){0});
    fx_confirm_assigns(fx);
    assert_int_equal(fx_agent_of(fx, pk[i]), a); /* the only agent so far */
  }
  uint64_t g = fx_agent(fx, good, "g1", "translate", 8);
  for (int i = 0; i < 6; i++)
    fx_started(fx, a, pk[i], 1);
  /* Three failures of four: below min_attempts nothing happens. */
  for (int i = 0; i < 3; i++) {
    fx_result(fx, a, pk[i], 1, BT_OUTCOME_FAILED, NULL);
    assert_int_equal(vendor(fx, bad)->state, BT_VENDOR_ACTIVE);
  }
  /* The fourth ended attempt (a failure): 4 of 4 failed ≥ 0.5 → trips. */
  fx_result(fx, a, pk[3], 1, BT_OUTCOME_FAILED, NULL);
  assert_int_equal(vendor(fx, bad)->state, BT_VENDOR_FAILED);
  assert_non_null(strstr(vendor(fx, bad)->state_reason, "circuit breaker: 4 of 4"));
  const bt_action_t *vs = fx_one(&fx->out, BT_ACT_VENDOR_STATE, 0);
  assert_int_equal(vs->code, BT_VENDOR_FAILED);
  /* pk[4] and pk[5] ran on it: revoked, handed off as vendor-failed, rerouted
   * to the good vendor at once. */
  for (int i = 4; i < 6; i++) {
    const bt_action_t *c = fx_one(&fx->out, BT_ACT_CANCEL, pk[i]);
    assert_int_equal(c->agent_id, a);
    const bt_action_t *f = fx_one(&fx->out, BT_ACT_FINISH, pk[i]);
    assert_int_equal(f->outcome, BT_OUTCOME_REVOKED);
    assert_int_equal(f->state, BT_PKG_QUEUED);
    assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, pk[i])->reason,
                     BT_HANDOFF_VENDOR_FAILED);
    assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, pk[i])->agent_id, g);
  }
  fx_confirm_assigns(fx);
  /* Its late result is stale now. */
  assert_int_equal(fx_result(fx, a, pk[4], 1, BT_OUTCOME_COMPLETED, "late"), BT_ESTALE);

  /* No work while failed, however much is queued. */
  uint64_t more[3];
  for (int i = 0; i < 3; i++) {
    more[i] = fx_submit(fx, &(fx_pkg_t){0});
    fx_confirm_assigns(fx);
    assert_int_equal(fx_vendor_of(fx, more[i]), good);
  }
  /* The cooldown: the next tick deadline is the probe time. */
  fx_clear(fx);
  assert_true(fx_tick(fx) <= fx->now.ms + cfg.breaker_cooldown_ms);
  fx_advance(fx, cfg.breaker_cooldown_ms);
  fx_tick(fx);
  assert_int_equal(vendor(fx, bad)->state, BT_VENDOR_DEGRADED);
  assert_true(vendor(fx, bad)->probing);
  assert_int_equal(vendor(fx, bad)->limit, 1);
  fx_confirm_assigns(fx);
  /* Probe: only one package goes there. */
  uint64_t probe[4];
  for (int i = 0; i < 4; i++) {
    probe[i] = fx_submit(fx, &(fx_pkg_t){0});
    fx_confirm_assigns(fx);
  }
  assert_int_equal(vendor(fx, bad)->in_flight, 1);
  uint64_t on_bad = 0; /* the probe: a new package or a retried one */
  for (uint64_t id = 1; id <= probe[3]; id++)
    if (fx_state(fx, id) != BT_PKG__COUNT && fx_state(fx, id) != BT_PKG_QUEUED &&
        fx_vendor_of(fx, id) == bad)
      on_bad = id;
  assert_int_not_equal(on_bad, 0);
  /* The probe fails: failed again, and the cooldown doubles. */
  uint64_t t_fail = fx->now.ms;
  run_one(fx, a, on_bad, BT_OUTCOME_FAILED);
  assert_int_equal(vendor(fx, bad)->state, BT_VENDOR_FAILED);
  assert_string_equal(vendor(fx, bad)->state_reason, "circuit breaker: a probe failed");
  assert_int_equal(vendor(fx, bad)->probe_at_ms, t_fail + 2 * cfg.breaker_cooldown_ms);
  fx_advance(fx, cfg.breaker_cooldown_ms);
  fx_tick(fx);
  assert_int_equal(vendor(fx, bad)->state, BT_VENDOR_FAILED);
  fx_advance(fx, cfg.breaker_cooldown_ms);
  fx_tick(fx);
  assert_true(vendor(fx, bad)->probing);
  fx_confirm_assigns(fx);
  /* Successes ramp the limit 1 → 2 → 4 → 8 = capacity: active again. */
  uint32_t want[] = {2, 4, 8};
  for (int step = 0; step < 3; step++) {
    bt_agent_view_t av;
    for (uint32_t k = 0; k < 8; k++) {
      fx_submit(fx, &(fx_pkg_t){0});
      fx_confirm_assigns(fx);
    }
    bt_core_agent_view(fx->core, a, &av);
    assert_int_equal(vendor(fx, bad)->in_flight, vendor(fx, bad)->limit);
    /* Finish one of its packages successfully. */
    uint64_t mine = 0;
    for (uint64_t id = 1; id < 200 && mine == 0; id++)
      if (fx_state(fx, id) != BT_PKG__COUNT && fx_agent_of(fx, id) == a &&
          fx_state(fx, id) == BT_PKG_ASSIGNED)
        mine = id;
    assert_int_not_equal(mine, 0);
    run_one(fx, a, mine, BT_OUTCOME_COMPLETED);
    fx_confirm_assigns(fx);
    assert_int_equal(vendor(fx, bad)->limit, want[step]);
  }
  assert_int_equal(vendor(fx, bad)->state, BT_VENDOR_ACTIVE);
  assert_false(vendor(fx, bad)->probing);
  assert_string_equal(vendor(fx, bad)->state_reason, "");
  fx_free(fx);
}

static void test_core_transient_failures_do_not_trip(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  for (int i = 0; i < 10; i++) {
    fx_confirm_assigns(fx);
    run_one(fx, a, p, BT_OUTCOME_TRANSIENT);
    fx_advance(fx, 200);
    fx_tick(fx);
  }
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_ACTIVE);
  assert_int_equal(vendor(fx, v)->recent_failed, 0);
  fx_free(fx);
}

static void test_core_degraded_on_elevated_failures_then_recovers(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t w = fx_vendor(fx, &(fx_vendor_t){.name = "wayne"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  /* 1 failure in 4: 25% ≥ 20% degrades, < 50% does not trip. */
  bt_outcome_t seq[] = {BT_OUTCOME_COMPLETED, BT_OUTCOME_COMPLETED, BT_OUTCOME_COMPLETED,
                        BT_OUTCOME_FAILED};
  for (int i = 0; i < 4; i++) {
    uint64_t p = fx_submit(fx, &(fx_pkg_t){.max_attempts = 1});
    fx_confirm_assigns(fx);
    run_one(fx, a, p, seq[i]);
  }
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_DEGRADED);
  assert_non_null(strstr(vendor(fx, v)->state_reason, "elevated failures: 1 of 4"));
  /* Degraded scores lower: with an equal healthy vendor, work goes there. */
  uint64_t b = fx_agent(fx, w, "b1", "translate", 1);
  bt_score_t sv, sw;
  uint64_t p = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  assert_int_equal(bt_core_score(fx->core, p, v, &sv), 0);
  assert_int_equal(bt_core_score(fx->core, p, w, &sw), 0);
  assert_true(sv.total < sw.total * 0.75);
  (void)b;
  /* The window slides past the failure: active again without new attempts. */
  fx_advance(fx, cfg.breaker_window_ms + 3000);
  fx_tick(fx);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_ACTIVE);
  fx_free(fx);
}

static void test_core_last_agent_lost_fails_vendor_and_residency_holds(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  cfg.lease_ms = 3000;
  fx_t *fx = fx_new(&cfg);
  uint64_t eu = fx_vendor(fx, &(fx_vendor_t){.name = "eu", .region = "EU-DE"});
  uint64_t us = fx_vendor(fx, &(fx_vendor_t){.name = "us", .region = "US"});
  uint64_t a = fx_agent(fx, eu, "a1", "translate", 4);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){.regions = "EU-DE,EU-FR"});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  bt_core_agent_progress(fx->core, a, p, 1, 40, "ckpt", 4, &fx->now, &fx->out);
  uint64_t u = fx_agent(fx, us, "u1", "translate", 4);
  /* a1 falls silent; u1 keeps talking. */
  fx_advance(fx, cfg.lease_ms - 1);
  bt_core_agent_seen(fx->core, u, &fx->now);
  fx_advance(fx, 1);
  fx_tick(fx);
  assert_int_equal(vendor(fx, eu)->state, BT_VENDOR_FAILED);
  assert_string_equal(vendor(fx, eu)->state_reason, "no live agent");
  const bt_action_t *h = fx_one(&fx->out, BT_ACT_HANDOFF, p);
  assert_int_equal(h->reason, BT_HANDOFF_VENDOR_FAILED);
  assert_int_equal(h->len, 4); /* carries the checkpoint */
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->outcome, BT_OUTCOME_LOST);
  /* EU-only work never goes to the US vendor: it waits, with a reason. */
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_int_equal(fx_state(fx, p), BT_PKG_QUEUED);
  assert_non_null(strstr(fx_reason(fx, p), "EU-DE|EU-FR"));
  /* An EU agent comes back: probed at once (the vendor did nothing wrong). */
  fx_agent(fx, eu, "a2", "translate", 4);
  assert_int_equal(vendor(fx, eu)->state, BT_VENDOR_DEGRADED);
  assert_true(vendor(fx, eu)->probing);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, p)->vendor_id, eu);
  fx_free(fx);
}

static void test_core_admin_vendor_ops(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .cost = 0});
  uint64_t w = fx_vendor(fx, &(fx_vendor_t){.name = "wayne", .cost = 9});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 4);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p1, 1);
  uint64_t b = fx_agent(fx, w, "b1", "translate", 4);

  /* drain: no new work; what runs finishes and is accepted. */
  fx_clear(fx);
  assert_int_equal(bt_core_vendor_op(fx->core, v, BT_VENDOR_OP_DRAIN, &fx->now, &fx->out), 0);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_DRAINING);
  const bt_action_t *au = fx_find(&fx->out, BT_ACT_AUDIT, 0);
  assert_true(au->by_admin);
  assert_string_equal(au->text3, "draining");
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_agent_of(fx, p2), b);
  assert_int_equal(fx_result(fx, a, p1, 1, BT_OUTCOME_COMPLETED, "ok"), 0);

  /* resume, then suspend: what runs is revoked and handed off (admin). */
  bt_core_vendor_op(fx->core, v, BT_VENDOR_OP_RESUME, &fx->now, &fx->out);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_ACTIVE);
  uint64_t p3 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_agent_of(fx, p3), a);
  fx_started(fx, a, p3, 1);
  fx_clear(fx);
  bt_core_vendor_op(fx->core, v, BT_VENDOR_OP_SUSPEND, &fx->now, &fx->out);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_SUSPENDED);
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, p3)->reason, BT_HANDOFF_ADMIN);
  assert_int_equal(fx_one(&fx->out, BT_ACT_CANCEL, p3)->agent_id, a);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, p3)->agent_id, b);
  uint64_t ignored;
  assert_int_equal(fx_hello(fx, v, "a9", "translate", 1, NULL, 0, &ignored), BT_ESTATE);

  /* fail: like suspend but vendor-failed, and never probed on its own. */
  bt_core_vendor_op(fx->core, v, BT_VENDOR_OP_RESUME, &fx->now, &fx->out);
  uint64_t p4 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_clear(fx);
  bt_core_vendor_op(fx->core, v, BT_VENDOR_OP_FAIL, &fx->now, &fx->out);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_FAILED);
  assert_int_equal(vendor(fx, v)->probe_at_ms, 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, p4)->reason, BT_HANDOFF_VENDOR_FAILED);
  fx_advance(fx, 10 * cfg.breaker_cooldown_ms);
  fx_tick(fx);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_FAILED);
  assert_int_equal(bt_core_vendor_op(fx->core, 999, BT_VENDOR_OP_FAIL, &fx->now, &fx->out),
                   BT_ENOTFOUND);
  fx_free(fx);
}

static void test_core_admin_package_ops(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  cfg.retry_base_ms = cfg.retry_max_ms = 60000;
  fx_t *fx = fx_new(&cfg);
  uint64_t eu = fx_vendor(fx, &(fx_vendor_t){.name = "eu", .region = "EU-DE", .cost = 0});
  uint64_t fr = fx_vendor(fx, &(fx_vendor_t){.name = "fr", .region = "EU-FR", .cost = 5});
  uint64_t us = fx_vendor(fx, &(fx_vendor_t){.name = "us", .region = "US", .cost = 9});
  uint64_t a = fx_agent(fx, eu, "a1", "translate", 4);
  uint64_t f = fx_agent(fx, fr, "f1", "translate", 4);
  fx_agent(fx, us, "u1", "translate", 4);
  bt_pkg_state_t st;

  /* cancel a running package: the agent is told, the package ends cancelled. */
  uint64_t p = fx_submit(fx, &(fx_pkg_t){.regions = "EU-DE,EU-FR"});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_agent_of(fx, p), a);
  fx_started(fx, a, p, 1);
  fx_clear(fx);
  assert_int_equal(bt_core_package_cancel(fx->core, p, &fx->now, &st, &fx->out), 0);
  assert_int_equal(st, BT_PKG_CANCELLED);
  assert_int_equal(fx_one(&fx->out, BT_ACT_CANCEL, p)->agent_id, a);
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->state, BT_PKG_CANCELLED);
  assert_int_equal(bt_core_package_cancel(fx->core, p, &fx->now, &st, &fx->out), BT_ESTATE);
  assert_int_equal(fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "late"), BT_ESTALE);
  fx_finish_persisted(fx, p, 1);

  /* reassign a running package to another eligible vendor: revoked, handed
   * off (admin), pinned: it goes there and nowhere else. */
  uint64_t q = fx_submit(fx, &(fx_pkg_t){.regions = "EU-DE,EU-FR"});
  fx_confirm_assigns(fx);
  fx_started(fx, a, q, 1);
  assert_int_equal(bt_core_package_reassign(fx->core, q, us, &fx->now, &st, &fx->out),
                   BT_EINVAL); /* US is outside its regions: refused */
  fx_clear(fx);
  assert_int_equal(bt_core_package_reassign(fx->core, q, fr, &fx->now, &st, &fx->out), 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, q)->reason, BT_HANDOFF_ADMIN);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, q)->agent_id, f);
  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_PACKAGE_UPDATE, q), 1);
  bt_pkg_view_t view;
  bt_core_package_view(fx->core, q, &view);
  assert_string_equal(view.only_vendor, "fr");
  /* fr fails: the pinned package waits rather than go anywhere else. */
  fx_confirm_assigns(fx);
  fx_clear(fx);
  bt_core_vendor_op(fx->core, fr, BT_VENDOR_OP_FAIL, &fx->now, &fx->out);
  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_ASSIGN, q), 0);
  assert_non_null(strstr(fx_reason(fx, q), "pinned to fr"));

  /* retry: a package waiting out its backoff is released now. */
  uint64_t r = fx_submit(fx, &(fx_pkg_t){.regions = "EU-DE"});
  fx_confirm_assigns(fx);
  fx_result(fx, a, r, 1, BT_OUTCOME_FAILED, NULL);
  assert_int_equal(fx_state(fx, r), BT_PKG_QUEUED);
  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_ASSIGN, r), 0); /* backing off */
  fx_clear(fx);
  assert_int_equal(bt_core_package_retry(fx->core, r, &fx->now, &st, &fx->out), 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, r)->agent_id, a);
  assert_int_equal(bt_core_package_retry(fx->core, r, &fx->now, &st, &fx->out), BT_ESTATE);

  /* revive: a dead package read back from the store is queued again with as
   * many attempts again as it had. */
  bt_pkg_row_t row;
  memset(&row, 0, sizeof row);
  row.spec.capability = "translate";
  row.spec.payload = "x";
  row.spec.payload_len = 1;
  row.spec.max_attempts = 2;
  row.id = 4242;
  row.state = BT_PKG_DEAD;
  row.attempt = 2;
  row.failures = 2;
  row.submitted_at = fx->now.at;
  row.progress = -1;
  fx_clear(fx);
  assert_int_equal(bt_core_package_revive(fx->core, &row, &fx->now, &fx->out), 0);
  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_PACKAGE_UPDATE, 4242), 1);
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, 4242);
  assert_int_equal(as->attempt, 3);
  bt_core_package_view(fx->core, 4242, &view);
  assert_int_equal(view.max_attempts, 4);
  assert_int_equal(bt_core_package_revive(fx->core, &row, &fx->now, &fx->out), BT_ECONFLICT);
  row.state = BT_PKG_COMPLETED;
  row.id = 4343;
  assert_int_equal(bt_core_package_revive(fx->core, &row, &fx->now, &fx->out), BT_EINVAL);
  fx_free(fx);
}

/* While the store cannot commit, agents waiting on the broker look silent:
 * their leases are held, and given a full lease again once it is back. */
static void test_core_leases_held_while_store_stalls(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  cfg.lease_ms = 3000;
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a, p, 1);
  bt_core_hold_leases(fx->core, true, &fx->now);
  fx_advance(fx, 10 * cfg.lease_ms);
  fx_tick(fx);
  assert_int_equal(fx_count(&fx->out, BT_ACT_HANDOFF), 0);
  assert_int_equal(vendor(fx, v)->state, BT_VENDOR_ACTIVE);
  bt_core_hold_leases(fx->core, false, &fx->now);
  fx_advance(fx, cfg.lease_ms - 1);
  fx_tick(fx);
  assert_int_equal(fx_state(fx, p), BT_PKG_RUNNING);
  fx_advance(fx, 1); /* still silent a full lease after the store came back */
  fx_tick(fx);
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, p)->reason, BT_HANDOFF_VENDOR_FAILED);
  fx_free(fx);
}

/* One of a vendor's agents is lost; another that has been as quiet is
 * probably gone with it: no work is routed to it until it is heard from. */
static void test_core_quiet_siblings_of_a_lost_agent_get_no_work(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  cfg.lease_ms = 3000;
  cfg.share_cap = 1.0; /* acme, the cheaper, takes everything it can */
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .cost = 0});
  uint64_t w = fx_vendor(fx, &(fx_vendor_t){.name = "wayne", .cost = 9});
  uint64_t a1 = fx_agent(fx, v, "a1", "translate", 4);
  uint64_t p = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_started(fx, a1, p, 1);
  fx_advance(fx, 20);
  uint64_t a2 = fx_agent(fx, v, "a2", "translate", 4); /* its lease ends 20 ms later */
  uint64_t a3 = fx_agent(fx, v, "a3", "translate", 4);
  uint64_t b = fx_agent(fx, w, "b1", "translate", 4);
  /* a3 and b1 keep talking; a1 and a2 fall silent. */
  fx_advance(fx, cfg.lease_ms - 20 - 500);
  bt_core_agent_seen(fx->core, a3, &fx->now);
  bt_core_agent_seen(fx->core, b, &fx->now);
  fx_advance(fx, 500);
  fx_tick(fx);
  /* a1 is lost; a2 (quiet as long) is suspect, a3 is not: the work goes to a3. */
  bt_agent_view_t av;
  bt_core_agent_view(fx->core, a2, &av);
  assert_true(av.suspect);
  assert_int_equal(av.state, BT_AGENT_CONNECTED);
  bt_core_agent_view(fx->core, a3, &av);
  assert_false(av.suspect);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, p)->agent_id, a3);
  assert_int_equal(fx_one(&fx->out, BT_ACT_HANDOFF, p)->reason, BT_HANDOFF_AGENT_LOST);
  /* Heard from again: it takes work again. */
  bt_core_agent_seen(fx->core, a2, &fx->now);
  bt_core_agent_view(fx->core, a2, &av);
  assert_false(av.suspect);
  uint64_t q = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_agent_of(fx, q), a2); /* the most free slots at acme */
  fx_free(fx);
}

/* After a restart: a vendor the breaker failed waits out its cooldown, one
 * failed for lack of agents is probed when an agent is back, one an admin
 * failed stays failed. */
static void test_core_health_after_restart(void **state) {
  (void)state;
  bt_core_config_t cfg = health_cfg();
  fx_t *fx = fx_new(&cfg);
  uint64_t tripped = fx_vendor(fx, &(fx_vendor_t){
      .name = "tripped", .state = BT_VENDOR_FAILED,
      .state_reason = "circuit breaker: 5 of 5 attempts failed in 30s"});
  uint64_t orphan = fx_vendor(fx, &(fx_vendor_t){
      .name = "orphan", .state = BT_VENDOR_FAILED, .state_reason = "no live agent"});
  uint64_t banned = fx_vendor(
      fx, &(fx_vendor_t){.name = "banned", .state = BT_VENDOR_FAILED,
                         .state_reason = "admin: failed"});
  bt_core_load_done(fx->core, &fx->now);
  fx_agent(fx, tripped, "t1", "translate", 1);
  fx_agent(fx, orphan, "o1", "translate", 1);
  fx_agent(fx, banned, "b1", "translate", 1);
  assert_int_equal(vendor(fx, orphan)->state, BT_VENDOR_DEGRADED);
  assert_true(vendor(fx, orphan)->probing);
  assert_int_equal(vendor(fx, tripped)->state, BT_VENDOR_FAILED);
  fx_advance(fx, cfg.breaker_cooldown_ms);
  fx_tick(fx);
  assert_true(vendor(fx, tripped)->probing);
  assert_int_equal(vendor(fx, banned)->state, BT_VENDOR_FAILED);
  assert_string_equal(vendor(fx, banned)->state_reason, "admin: failed");
  fx_free(fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_breaker_trips_hands_off_probes_and_ramps),
      cmocka_unit_test(test_core_transient_failures_do_not_trip),
      cmocka_unit_test(test_core_degraded_on_elevated_failures_then_recovers),
      cmocka_unit_test(test_core_last_agent_lost_fails_vendor_and_residency_holds),
      cmocka_unit_test(test_core_admin_vendor_ops),
      cmocka_unit_test(test_core_admin_package_ops),
      cmocka_unit_test(test_core_leases_held_while_store_stalls),
      cmocka_unit_test(test_core_quiet_siblings_of_a_lost_agent_get_no_work),
      cmocka_unit_test(test_core_health_after_restart),
  };
  return cmocka_run_group_tests_name("test_core_health", tests, NULL, NULL);
}

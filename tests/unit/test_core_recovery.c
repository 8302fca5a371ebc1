/*
 * server/core: a broker restart. State is loaded from the store (vendors,
 * agents, open packages), then agents get restart_grace_ms to come back: one
 * that reports what it still runs keeps it, one that does not come back loses
 * it at the end of the grace. Loads that name unknown vendors or agents are
 * refused.
 */
#include "core_fixture.h"

#include <string.h>

static const char *const translate[] = {"translate"};

static bt_vendor_row_t vendor_row(uint64_t id, const char *name, const char *region) {
  return (bt_vendor_row_t){
      .spec = {
          .name = name,
          .region = region,
          .model = BT_MODEL_ONSHORE,
          .caps = translate,
          .n_caps = 1,
          .capacity = 10,
          .cost = 1,
          .weight = 1,
      },
      .id = id,
      .state = BT_VENDOR_ACTIVE,
      .created_at = FX_T0_AT - 86400000,
      .completed = 40,
      .failed = 2,
  };
}

static bt_agent_row_t agent_row(uint64_t id, uint64_t vendor_id, const char *name,
                                uint32_t slots) {
  return (bt_agent_row_t){.id = id,
                          .vendor_id = vendor_id,
                          .name = name,
                          .caps = translate,
                          .n_caps = 1,
                          .slots = slots,
                          .last_seen_at = FX_T0_AT - 5000};
}

static bt_pkg_row_t pkg_row(uint64_t id, bt_pkg_state_t st, uint32_t attempt,
                            uint64_t vendor_id, uint64_t agent_id) {
  bt_pkg_row_t r;
  memset(&r, 0, sizeof r);
  r.spec.capability = "translate";
  r.spec.payload = "data";
  r.spec.payload_len = 4;
  r.spec.max_cost = -1;
  r.id = id;
  r.state = st;
  r.attempt = attempt;
  r.vendor_id = vendor_id;
  r.agent_id = agent_id;
  r.progress = -1;
  r.submitted_at = FX_T0_AT - 60000;
  return r;
}

enum { ACME = 1, GLOBEX = 3, A1 = 5, A2 = 6, G1 = 7 };
enum { Q1 = 10, Q2 = 11, R1 = 12, S1 = 13, R2 = 14 };

static void load_world(fx_t *fx) {
  bt_vendor_row_t v1 = vendor_row(ACME, "acme", "EU-DE");
  bt_vendor_row_t v3 = vendor_row(GLOBEX, "globex", "US");
  assert_int_equal(bt_core_load_vendor(fx->core, &v1), 0);
  assert_int_equal(bt_core_load_vendor(fx->core, &v3), 0);
  bt_agent_row_t a1 = agent_row(A1, ACME, "a1", 2);
  bt_agent_row_t a2 = agent_row(A2, ACME, "a2", 2);
  bt_agent_row_t g1 = agent_row(G1, GLOBEX, "g1", 4);
  assert_int_equal(bt_core_load_agent(fx->core, &a1), 0);
  assert_int_equal(bt_core_load_agent(fx->core, &a2), 0);
  assert_int_equal(bt_core_load_agent(fx->core, &g1), 0);

  bt_pkg_row_t q1 = pkg_row(Q1, BT_PKG_QUEUED, 0, 0, 0);
  q1.spec.key = "k-10";
  bt_pkg_row_t q2 = pkg_row(Q2, BT_PKG_QUEUED, 1, 0, 0);
  q2.failures = 1;
  q2.spec.not_before_at = fx->now.at + 5000; /* a retry's backoff */
  bt_pkg_row_t r1 = pkg_row(R1, BT_PKG_RUNNING, 2, ACME, A1);
  r1.checkpoint = "cp";
  r1.checkpoint_len = 2;
  r1.progress = 30;
  bt_pkg_row_t s1 = pkg_row(S1, BT_PKG_ASSIGNED, 1, ACME, A1);
  bt_pkg_row_t r2 = pkg_row(R2, BT_PKG_RUNNING, 1, ACME, A2);
  r2.checkpoint = "half";
  r2.checkpoint_len = 4;
  const bt_pkg_row_t *rows[] = {&q1, &q2, &r1, &s1, &r2};
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(bt_core_load_package(fx->core, rows[i]), 0);
  bt_core_load_max_ids(fx->core, GLOBEX, 9, 20);
  bt_core_load_done(fx->core, &fx->now);
}

static void test_core_recovery_loads_state(void **state) {
  fx_t *fx = *state;
  load_world(fx);
  const bt_core_vendor_t *acme = bt_core_vendor(fx->core, ACME);
  assert_int_equal(acme->in_flight, 3);
  assert_int_equal(acme->completed, 40);
  assert_int_equal(acme->failed, 2);
  assert_int_equal(acme->agents_connected, 0);
  assert_int_equal(bt_core_vendor(fx->core, GLOBEX)->in_flight, 0);
  assert_int_equal(bt_core_vendor_by_ref(fx->core, "globex")->id, GLOBEX);
  bt_agent_view_t av;
  assert_int_equal(bt_core_agent_view(fx->core, A1, &av), 0);
  assert_int_equal(av.state, BT_AGENT_LOST);
  assert_int_equal(av.busy, 2);
  assert_int_equal(av.slots, 2);
  assert_int_equal(av.last_seen_at, FX_T0_AT - 5000);

  bt_pkg_view_t v;
  assert_int_equal(bt_core_package_view(fx->core, R1, &v), 0);
  assert_int_equal(v.state, BT_PKG_RUNNING);
  assert_int_equal(v.attempt, 2);
  assert_int_equal(v.agent_id, A1);
  assert_int_equal(v.vendor_id, ACME);
  assert_int_equal(v.progress, 30);
  assert_int_equal(v.checkpoint_len, 2);
  assert_int_equal(v.submitted_at, FX_T0_AT - 60000);

  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_QUEUED], 2);
  assert_int_equal(st.by_state[BT_PKG_ASSIGNED], 1);
  assert_int_equal(st.by_state[BT_PKG_RUNNING], 2);
  assert_int_equal(st.agents_connected, 0);

  /* Keys of loaded packages still deduplicate; new ids start above the
   * largest ids in the database. */
  fx_spec_t s;
  fx_spec(fx, &(fx_pkg_t){.key = "k-10"}, &s);
  bt_submit_result_t r;
  fx_clear(fx);
  bt_core_submit(fx->core, &s.spec, 1, 1, &fx->now, &r, &fx->out);
  assert_true(r.duplicate);
  assert_int_equal(r.id, Q1);
  assert_int_equal(fx_submit_unpersisted(fx, &(fx_pkg_t){0}), 21);
  uint64_t id = 0;
  assert_int_equal(fx_hello(fx, ACME, "a9", "translate", 1, NULL, 0, &id), 0);
  assert_int_equal(id, 10);
  assert_int_equal(fx_vendor(fx, &(fx_vendor_t){.name = "initech"}), GLOBEX + 1);
}

static void test_core_recovery_grace(void **state) {
  fx_t *fx = *state;
  bt_core_config_t cfg = fx->cfg;
  cfg.lease_ms = 60000; /* longer than the grace: only the grace expires here */
  cfg.restart_grace_ms = 10000;
  fx_reconfigure(fx, &cfg);
  uint64_t t0 = fx->now.ms;
  load_world(fx);

  /* First tick: queued packages become routable, but no agent is back. */
  assert_int_equal(fx_tick(fx), t0 + 5000); /* q2's not-before */
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(fx_state(fx, Q1), BT_PKG_QUEUED);

  fx_advance(fx, 1000);
  uint64_t id = 0;
  assert_int_equal(fx_hello(fx, GLOBEX, "g1", "translate", 4, NULL, 0, &id), 0);
  assert_int_equal(id, G1);
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, Q1);
  assert_int_equal(as->agent_id, G1);
  assert_int_equal(as->attempt, 1);
  fx_confirm_assigns(fx);

  /* a1 is back within the grace and still runs both: nothing is handed off;
   * the one it had not started yet is running now. */
  fx_advance(fx, 1000);
  bt_held_t held[] = {{R1, 2}, {S1, 1}};
  assert_int_equal(fx_hello(fx, ACME, "a1", "translate", 2, held, 2, &id), 0);
  assert_int_equal(id, A1);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_HANDOFF), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_CANCEL), 0);
  fx_one(&fx->out, BT_ACT_START, S1);
  assert_int_equal(fx_state(fx, R1), BT_PKG_RUNNING);
  assert_int_equal(fx_state(fx, S1), BT_PKG_RUNNING);
  assert_int_equal(fx_busy(fx, A1), 2);
  /* ... and may finish it as the current attempt. */
  assert_int_equal(fx_result(fx, A1, R1, 2, BT_OUTCOME_COMPLETED, "done"), 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, R1)->state, BT_PKG_COMPLETED);

  /* q2's backoff ends. */
  fx_advance(fx, 3000);
  fx_tick(fx);
  assert_int_equal(fx_state(fx, Q2), BT_PKG_ASSIGNED);
  assert_int_equal(fx_attempt(fx, Q2), 2);
  fx_confirm_assigns(fx);

  /* a2 never comes back: its work is handed off when the grace ends, with its
   * checkpoint. It had no session, so there is none to end. */
  fx_advance(fx, 4999);
  assert_int_equal(fx_tick(fx), t0 + 10000);
  assert_int_equal(fx->out.n, 0);
  fx_advance(fx, 1);
  fx_tick(fx);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, R2);
  assert_int_equal(fin->outcome, BT_OUTCOME_LOST);
  assert_int_equal(fin->attempt, 1);
  assert_int_equal(fin->agent_id, A2);
  const bt_action_t *h = fx_one(&fx->out, BT_ACT_HANDOFF, R2);
  assert_int_equal(h->reason, BT_HANDOFF_AGENT_LOST);
  assert_int_equal(h->vendor_id, ACME);
  assert_int_equal(h->len, 4);
  assert_memory_equal(h->data, "half", 4);
  assert_int_equal(fx_count(&fx->out, BT_ACT_END_SESSION), 0);
  as = fx_one(&fx->out, BT_ACT_ASSIGN, R2);
  assert_int_equal(as->attempt, 2);
  assert_true(as->agent_id == G1 || as->agent_id == A1);
  bt_agent_view_t av;
  bt_core_agent_view(fx->core, A2, &av);
  assert_int_equal(av.busy, 0);
  assert_int_equal(av.state, BT_AGENT_LOST);
  /* a1 and g1 are not affected by the grace. */
  bt_core_agent_view(fx->core, A1, &av);
  assert_int_equal(av.state, BT_AGENT_CONNECTED);
}

/* An agent back within the grace that no longer runs something loses just
 * that package; one it claims with an old attempt is cancelled. */
static void test_core_recovery_partial_reconnect(void **state) {
  fx_t *fx = *state;
  load_world(fx);
  fx_tick(fx);
  bt_held_t held[] = {{S1, 1}, {R1, 1}}; /* R1's current attempt is 2 */
  assert_int_equal(fx_hello(fx, ACME, "a1", "translate", 2, held, 2, NULL), 0);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, R1);
  assert_int_equal(fin->attempt, 2);
  assert_int_equal(fin->outcome, BT_OUTCOME_LOST);
  fx_one(&fx->out, BT_ACT_HANDOFF, R1);
  const bt_action_t *c = fx_one(&fx->out, BT_ACT_CANCEL, R1);
  assert_int_equal(c->attempt, 1);
  fx_one(&fx->out, BT_ACT_START, S1);
  assert_int_equal(fx_count_pkg(&fx->out, BT_ACT_FINISH, S1), 0);
}

static void test_core_recovery_rejects_bad_rows(void **state) {
  fx_t *fx = *state;
  bt_vendor_row_t v = vendor_row(5, "acme", "EU-DE");
  assert_int_equal(bt_core_load_vendor(fx->core, &v), 0);
  bt_agent_row_t a = agent_row(7, 5, "a1", 2);
  assert_int_equal(bt_core_load_agent(fx->core, &a), 0);

  static const struct {
    const char *what;
    uint64_t id;
  } vendors[] = {{"id 0", 0}, {"same id", 5}, {"lower id", 4}};
  for (size_t i = 0; i < 3; i++) {
    bt_vendor_row_t r = vendor_row(vendors[i].id, "other", "US");
    if (bt_core_load_vendor(fx->core, &r) != BT_EINVAL)
      fail_msg("vendor %s accepted", vendors[i].what);
  }
  static const struct {
    const char *what;
    uint64_t id, vendor_id;
  } agents[] = {{"unknown vendor", 8, 99},
                {"id 0", 0, 5},
                {"same id", 7, 5},
                {"lower id", 6, 5}};
  for (size_t i = 0; i < 4; i++) {
    bt_agent_row_t r = agent_row(agents[i].id, agents[i].vendor_id, "other", 1);
    if (bt_core_load_agent(fx->core, &r) != BT_EINVAL)
      fail_msg("agent %s accepted", agents[i].what);
  }
  bt_pkg_row_t ok = pkg_row(10, BT_PKG_QUEUED, 0, 0, 0);
  assert_int_equal(bt_core_load_package(fx->core, &ok), 0);
  static const struct {
    const char *what;
    uint64_t id;
    bt_pkg_state_t st;
    uint64_t vendor_id, agent_id;
  } pkgs[] = {
      {"unknown agent", 11, BT_PKG_ASSIGNED, 5, 99},
      {"no agent", 11, BT_PKG_RUNNING, 5, 0},
      {"agent of another vendor", 11, BT_PKG_RUNNING, 6, 7},
      {"finished state", 11, BT_PKG_COMPLETED, 0, 0},
      {"dead state", 11, BT_PKG_DEAD, 0, 0},
      {"id 0", 0, BT_PKG_QUEUED, 0, 0},
      {"same id", 10, BT_PKG_QUEUED, 0, 0},
  };
  for (size_t i = 0; i < sizeof pkgs / sizeof *pkgs; i++) {
    bt_pkg_row_t r = pkg_row(pkgs[i].id, pkgs[i].st, 1, pkgs[i].vendor_id,
                             pkgs[i].agent_id);
    if (bt_core_load_package(fx->core, &r) != BT_EINVAL)
      fail_msg("package %s accepted", pkgs[i].what);
  }
  assert_int_equal(bt_core_vendor_count(fx->core), 1);
  assert_int_equal(bt_core_agent_count(fx->core), 1);
  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_QUEUED], 1);
  assert_int_equal(st.by_state[BT_PKG_ASSIGNED] + st.by_state[BT_PKG_RUNNING], 0);
  assert_int_equal(bt_core_vendor(fx->core, 5)->in_flight, 0);
  bt_pkg_view_t view;
  assert_int_equal(bt_core_package_view(fx->core, 11, &view), BT_ENOTFOUND);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_core_recovery_loads_state),
      T(test_core_recovery_grace),
      T(test_core_recovery_partial_reconnect),
      T(test_core_recovery_rejects_bad_rows),
  };
#undef T
  return cmocka_run_group_tests_name("test_core_recovery", tests, NULL, NULL);
}

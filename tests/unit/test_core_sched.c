/*
 * server/core: routing. The hard constraints (capability, agent slots, vendor
 * capacity, data residency, certifications, cost, avoided vendors, vendor
 * state) as a table, each row run both ways — agents first (the packages'
 * commit routes them) and packages first (the agents' hello routes them) — then
 * the order of the queue, not-before times, and the spreading of a burst.
 */
#include "core_fixture.h"

#include <stdio.h>
#include <string.h>

/* --- hard constraints ---------------------------------------------------------- */

typedef struct {
  const char *what;
  fx_vendor_t vendors[3]; /* each (unless suspended) gets one agent with its caps */
  fx_pkg_t pkg;
  const char *want; /* the vendor that must get the package; NULL = nobody */
} route_case_t;

static const route_case_t route_cases[] = {
    {"capability picks the vendor",
     {{.name = "acme", .caps = "translate"}, {.name = "globex", .caps = "review"}},
     {.cap = "review"},
     "globex"},
    {"nobody has the capability",
     {{.name = "acme", .caps = "translate"}},
     {.cap = "label"},
     NULL},
    {"region (data residency)",
     {{.name = "acme", .region = "EU-DE"}, {.name = "globex", .region = "US"}},
     {.regions = "US"},
     "globex"},
    {"one of several allowed regions",
     {{.name = "acme", .region = "EU-DE"},
      {.name = "globex", .region = "US"},
      {.name = "initech", .region = "IN"}},
     {.regions = "IN,EU-FR"},
     "initech"},
    {"no vendor in the region",
     {{.name = "acme", .region = "EU-DE"}, {.name = "globex", .region = "US"}},
     {.regions = "EU-FR"},
     NULL},
    {"every required certification",
     {{.name = "acme", .certs = "iso27001"},
      {.name = "globex", .certs = "soc2"},
      {.name = "initech", .certs = "soc2,iso27001,gdpr"}},
     {.certs = "iso27001,soc2"},
     "initech"},
    {"certification missing everywhere",
     {{.name = "acme", .certs = "soc2"}},
     {.certs = "iso27001"},
     NULL},
    {"cost at the cap is allowed",
     {{.name = "acme", .cost = 10}, {.name = "globex", .cost = 5}},
     {.has_max_cost = true, .max_cost = 5},
     "globex"},
    {"a cap of zero takes only free vendors",
     {{.name = "acme", .cost = 1}, {.name = "globex", .cost = 0}},
     {.has_max_cost = true, .max_cost = 0},
     "globex"},
    {"cost above the cap",
     {{.name = "acme", .cost = 3}},
     {.has_max_cost = true, .max_cost = 2.99},
     NULL},
    {"avoided vendor",
     {{.name = "acme"}, {.name = "globex"}},
     {.avoid = "acme"},
     "globex"},
    {"every vendor avoided",
     {{.name = "acme"}, {.name = "globex"}},
     {.avoid = "globex,acme"},
     NULL},
    {"avoiding an unknown vendor changes nothing",
     {{.name = "acme"}},
     {.avoid = "nobody"},
     "acme"},
    {"prefer is soft, never a constraint",
     {{.name = "acme"}},
     {.prefer = "globex"},
     "acme"},
    {"failed vendor takes no work",
     {{.name = "acme", .state = BT_VENDOR_FAILED}, {.name = "globex"}},
     {0},
     "globex"},
    {"draining vendor takes no new work",
     {{.name = "acme", .state = BT_VENDOR_DRAINING}},
     {0},
     NULL},
    {"suspended vendor has no agents",
     {{.name = "acme", .state = BT_VENDOR_SUSPENDED}, {.name = "globex"}},
     {0},
     "globex"},
    {"degraded vendor still takes work",
     {{.name = "acme", .state = BT_VENDOR_DEGRADED}},
     {0},
     "acme"},
    {"all constraints at once",
     {{.name = "acme", .region = "EU-DE", .certs = "iso27001", .cost = 8},
      {.name = "globex", .region = "EU-DE", .certs = "iso27001", .cost = 4},
      {.name = "initech", .region = "US", .certs = "iso27001", .cost = 1}},
     {.regions = "EU-DE,EU-FR", .certs = "iso27001", .has_max_cost = true,
      .max_cost = 5, .avoid = "initech"},
     "globex"},
};

static void check_assign_to(const fx_t *fx, uint64_t pkg, uint64_t agent) {
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, pkg);
  assert_int_equal(as->agent_id, agent);
}

static void connect_agents(fx_t *fx, const route_case_t *c, const uint64_t *vids) {
  for (int j = 0; j < 3 && c->vendors[j].name; j++) {
    if (c->vendors[j].state == BT_VENDOR_SUSPENDED)
      continue;
    char name[32];
    snprintf(name, sizeof name, "%s-a1", c->vendors[j].name);
    fx_agent(fx, vids[j], name,
             c->vendors[j].caps ? c->vendors[j].caps : "translate", 4);
    fx_confirm_assigns(fx);
  }
}

static void test_core_route_hard_constraints(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof route_cases / sizeof *route_cases; i++) {
    const route_case_t *c = &route_cases[i];
    for (int agents_first = 0; agents_first < 2; agents_first++) {
      fx_t *fx = fx_new(NULL);
      uint64_t vids[3] = {0};
      for (int j = 0; j < 3 && c->vendors[j].name; j++)
        vids[j] = fx_vendor(fx, &c->vendors[j]);
      if (agents_first)
        connect_agents(fx, c, vids);
      uint64_t id = fx_submit(fx, &c->pkg);
      if (!agents_first)
        connect_agents(fx, c, vids);
      bt_pkg_state_t st = fx_state(fx, id);
      if (c->want == NULL) {
        if (st != BT_PKG_QUEUED)
          fail_msg("%s (%s): routed to vendor %llu", c->what,
                   agents_first ? "agents first" : "package first",
                   (unsigned long long)fx_vendor_of(fx, id));
      } else {
        const bt_core_vendor_t *v = bt_core_vendor_by_name(fx->core, c->want);
        if (st != BT_PKG_ASSIGNED)
          fail_msg("%s (%s): not routed (%s)", c->what,
                   agents_first ? "agents first" : "package first", fx_reason(fx, id));
        if (fx_vendor_of(fx, id) != v->id)
          fail_msg("%s: routed to %s, want %s", c->what,
                   bt_core_vendor(fx->core, fx_vendor_of(fx, id))->name, c->want);
        assert_int_equal(v->in_flight, 1);
      }
      fx_free(fx);
    }
  }
}

/* --- hello refusals --------------------------------------------------------------- */

static void test_core_hello_refusals(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .caps = "translate,review"});
  uint64_t sus = fx_vendor(fx, &(fx_vendor_t){.name = "initech",
                                              .state = BT_VENDOR_SUSPENDED});
  static const struct {
    const char *what;
    int vendor; /* 0 acme, 1 suspended, 2 unknown */
    const char *caps;
    int want;
  } cases[] = {
      {"suspended vendor", 1, "translate", BT_ESTATE},
      {"unknown vendor", 2, "translate", BT_ENOTFOUND},
      {"capability the vendor is not registered for", 0, "translate,label", BT_EINVAL},
      {"only an unregistered capability", 0, "label", BT_EINVAL},
  };
  fx_submit(fx, &(fx_pkg_t){0});
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    uint64_t vid = cases[i].vendor == 0 ? acme : cases[i].vendor == 1 ? sus : 999;
    uint64_t id = 0;
    int rv = fx_hello(fx, vid, "a1", cases[i].caps, 4, NULL, 0, &id);
    if (rv != cases[i].want)
      fail_msg("%s: got %s", cases[i].what, bt_strerror(rv));
    /* A refused capability is audited by name (test_core_authz_capability_refused). */
    for (size_t k = 0; k < fx->out.n; k++) {
      assert_int_equal(fx->out.v[k].kind, BT_ACT_AUDIT);
      assert_string_equal(fx->out.v[k].text, "agent.capability_refused");
      assert_string_equal(fx->out.v[k].text4, "label");
    }
    assert_int_equal(fx->out.n, cases[i].want == BT_EINVAL ? 1 : 0);
    assert_int_equal(bt_core_agent_count(fx->core), 0);
  }
  assert_int_equal(bt_core_vendor(fx->core, acme)->agents_connected, 0);
  /* A subset of the vendor's capabilities is fine, and gets the work. */
  uint64_t a = fx_agent(fx, acme, "a1", "translate", 4);
  fx_one(&fx->out, BT_ACT_PERSIST_AGENT, 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, 0)->agent_id, a);
  bt_agent_view_t view;
  assert_int_equal(bt_core_agent_view(fx->core, a, &view), 0);
  assert_int_equal(view.state, BT_AGENT_CONNECTED);
  assert_int_equal(view.vendor_id, acme);
  assert_string_equal(view.name, "a1");
  assert_int_equal(view.slots, 4);
  assert_int_equal(view.busy, 1);
  assert_int_equal(view.last_seen_at, fx->now.at);
  assert_int_equal(bt_core_vendor(fx->core, acme)->agents_connected, 1);
  /* Same vendor + name: the same agent. */
  uint64_t again = fx_agent(fx, acme, "a1", "translate,review", 4);
  assert_int_equal(again, a);
  assert_int_equal(bt_core_agent_count(fx->core), 1);
  assert_int_equal(bt_core_vendor(fx->core, acme)->agents_connected, 1);
  assert_int_equal(bt_core_agent_view(fx->core, 999, &view), BT_ENOTFOUND);
  assert_int_equal(bt_core_agent_at(fx->core, 1, &view), BT_ENOTFOUND);
}

/* An agent that says hello again with other capabilities (and slots) is routed
 * by the new ones; what it holds stays with it. */
static void test_core_hello_changes_capabilities(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .caps = "translate,review"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t t1 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  uint64_t r1 = fx_submit(fx, &(fx_pkg_t){.cap = "review"});
  uint64_t t2 = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_state(fx, r1), BT_PKG_QUEUED);

  bt_held_t held[] = {{t1, 1}};
  assert_int_equal(fx_hello(fx, v, "a1", "review", 2, held, 1, NULL), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  assert_int_equal(fx_agent_of(fx, t1), a); /* kept */
  check_assign_to(fx, r1, a);
  assert_int_equal(fx_state(fx, t2), BT_PKG_QUEUED); /* no longer offered */
  assert_int_equal(fx_busy(fx, a), 2);

  /* Back to translate only: the review work it holds stays, translate flows. */
  fx_confirm_assigns(fx);
  bt_held_t both[] = {{t1, 1}, {r1, 1}};
  assert_int_equal(fx_hello(fx, v, "a1", "translate", 3, both, 2, NULL), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  check_assign_to(fx, t2, a);
  uint64_t r2 = fx_submit(fx, &(fx_pkg_t){.cap = "review"});
  assert_int_equal(fx_state(fx, r2), BT_PKG_QUEUED);
  uint64_t t3 = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_state(fx, t3), BT_PKG_QUEUED); /* 3 slots, 3 held */
}

/* --- slots and capacity ------------------------------------------------------------- */

static void test_core_route_respects_agent_slots(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t ids[5];
  for (int i = 0; i < 5; i++) {
    ids[i] = fx_submit(fx, &(fx_pkg_t){0});
    fx_confirm_assigns(fx);
  }
  assert_int_equal(fx_busy(fx, a), 2);
  fx_clear(fx);
  bt_core_agent_ready(fx->core, a, 1, &fx->now, &fx->out);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  /* A finished attempt frees a slot and the next package fills it at once. */
  fx_result(fx, a, ids[0], 1, BT_OUTCOME_COMPLETED, "ok");
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, ids[2]);
  assert_int_equal(as->agent_id, a);
  assert_int_equal(fx_busy(fx, a), 2);
  assert_int_equal(fx_state(fx, ids[3]), BT_PKG_QUEUED);
}

static void test_core_route_respects_vendor_capacity(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .capacity = 3});
  uint64_t globex = fx_vendor(fx, &(fx_vendor_t){.name = "globex"});
  uint64_t a1 = fx_agent(fx, acme, "a1", "translate", 2);
  uint64_t a2 = fx_agent(fx, acme, "a2", "translate", 2);
  uint64_t g1 = fx_agent(fx, globex, "g1", "translate", 1);
  uint64_t ids[8];
  for (int i = 0; i < 8; i++) {
    ids[i] = fx_submit(fx, &(fx_pkg_t){0});
    fx_confirm_assigns(fx);
  }
  assert_int_equal(bt_core_vendor(fx->core, acme)->in_flight, 3);
  assert_int_equal(fx_busy(fx, a1) + fx_busy(fx, a2), 3);
  assert_int_equal(fx_busy(fx, g1), 1);
  /* Free agents of a full vendor get nothing. */
  fx_clear(fx);
  bt_core_agent_ready(fx->core, fx_busy(fx, a1) < 2 ? a1 : a2, 1, &fx->now, &fx->out);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  /* One of acme's attempts ends: exactly one more goes to acme. */
  uint64_t done = 0;
  for (int i = 0; i < 8 && !done; i++)
    if (fx_state(fx, ids[i]) == BT_PKG_ASSIGNED && fx_vendor_of(fx, ids[i]) == acme)
      done = ids[i];
  fx_result(fx, fx_agent_of(fx, done), done, 1, BT_OUTCOME_COMPLETED, "ok");
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 1);
  assert_int_equal(bt_core_vendor(fx->core, acme)->in_flight, 3);
}

/* Room at a full vendor goes to whichever of its agents can use it, not only
 * to the agent that finished. */
static void test_core_route_vendor_room_wakes_other_agent(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .caps = "translate,review",
                                            .capacity = 2});
  uint64_t a1 = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_busy(fx, a1), 2);
  uint64_t a2 = fx_agent(fx, v, "a2", "review", 2);
  uint64_t r = fx_submit(fx, &(fx_pkg_t){.cap = "review"});
  assert_int_equal(fx_state(fx, r), BT_PKG_QUEUED); /* vendor full */
  fx_result(fx, a1, p1, 1, BT_OUTCOME_COMPLETED, "ok");
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, r);
  assert_int_equal(as->agent_id, a2);
}

/* --- order ----------------------------------------------------------------------------- */

static void test_core_route_order(void **state) {
  fx_t *fx = *state;
  static const fx_pkg_t pkgs[] = {
      /* 0 */ {.priority = 1},
      /* 1 */ {.priority = 5, .deadline_in = 3600000},
      /* 2 */ {.priority = 5, .deadline_in = 1800000, .regions = "EU-DE"},
      /* 3 */ {.priority = 5},
      /* 4 */ {.priority = 9, .certs = "iso27001"},
      /* 5 */ {.priority = 5, .deadline_in = 1800000},
      /* 6 */ {.priority = 0, .deadline_in = 60000},
      /* 7 */ {.priority = 1, .has_max_cost = true, .max_cost = 100},
      /* 8 */ {.priority = 5, .deadline_in = 1800000, .avoid = "globex"},
  };
  /* priority first, then the earliest deadline (none last), then id; across
   * requirement classes too */
  static const int want[] = {4, 2, 5, 8, 1, 3, 0, 7, 6};
  size_t n = sizeof pkgs / sizeof *pkgs;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .certs = "iso27001"});
  uint64_t ids[16];
  for (size_t i = 0; i < n; i++)
    ids[i] = fx_submit(fx, &pkgs[i]);
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  for (size_t k = 0; k < n; k++) {
    const bt_action_t *as = fx_find(&fx->out, BT_ACT_ASSIGN, 0);
    if (as == NULL)
      fail_msg("step %zu: nothing assigned", k);
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 1);
    if (as->package_id != ids[want[k]]) {
      int got = -1;
      for (size_t i = 0; i < n; i++)
        if (ids[i] == as->package_id)
          got = (int)i;
      fail_msg("step %zu: got package #%d, want #%d", k, got, want[k]);
    }
    uint64_t pid = as->package_id;
    fx_confirm_assigns(fx);
    fx_result(fx, a, pid, 1, BT_OUTCOME_COMPLETED, "ok");
  }
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
}

/* --- not before ---------------------------------------------------------------------------- */

static void test_core_route_not_before(void **state) {
  fx_t *fx = *state;
  bt_core_config_t cfg = fx->cfg;
  cfg.lease_ms = 60000;
  fx_reconfigure(fx, &cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 4);
  uint64_t past = fx_submit(fx, &(fx_pkg_t){.not_before_in = -1000});
  fx_one(&fx->out, BT_ACT_ASSIGN, past);
  uint64_t later = fx_submit(fx, &(fx_pkg_t){.not_before_in = 5000, .priority = 9});
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  fx_clear(fx);
  bt_core_agent_ready(fx->core, a, 1, &fx->now, &fx->out);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  uint64_t start_ms = fx->now.ms;

  fx_advance(fx, 4999);
  bt_core_agent_seen(fx->core, a, &fx->now);
  uint64_t next = fx_tick(fx);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_int_equal(next, start_ms + 5000); /* the tick names the release time */
  assert_int_equal(fx_state(fx, later), BT_PKG_QUEUED);

  fx_advance(fx, 1);
  next = fx_tick(fx);
  fx_one(&fx->out, BT_ACT_ASSIGN, later);
  assert_int_equal(next, fx->now.ms - 1 + cfg.lease_ms); /* now the lease */
}

/* --- spreading a burst --------------------------------------------------------------------- */

static void test_core_route_spreads_burst(void **state) {
  (void)state;
  static const struct {
    const char *what;
    uint32_t slots[3]; /* one agent per vendor; 0 = no third vendor */
    uint32_t want[3];
    bool stuck; /* a package nobody may take waits in the same capability */
  } cases[] = {
      {"two equal agents", {10, 10, 0}, {5, 5, 0}, false},
      {"small and large", {2, 10, 0}, {2, 8, 0}, false},
      {"three vendors", {10, 10, 10}, {4, 3, 3}, false},
      {"more work than slots", {3, 4, 0}, {3, 4, 0}, false},
      {"two equal agents, one package stuck", {10, 10, 0}, {5, 5, 0}, true},
      {"three vendors, one package stuck", {10, 10, 10}, {4, 3, 3}, true},
  };
  static const char *const names[] = {"acme", "globex", "initech"};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    fx_t *fx = fx_new(NULL);
    uint64_t agents[3] = {0};
    for (int j = 0; j < 3 && cases[i].slots[j]; j++) {
      uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = names[j]});
      char an[16];
      snprintf(an, sizeof an, "%s-a", names[j]);
      agents[j] = fx_agent(fx, v, an, "translate", cases[i].slots[j]);
    }
    if (cases[i].stuck)
      fx_submit(fx, &(fx_pkg_t){.regions = "EU-FR", .priority = 9});
    /* Ten packages in one request, committed together. */
    fx_spec_t s;
    fx_spec(fx, &(fx_pkg_t){0}, &s);
    bt_pkg_spec_t specs[10];
    for (int k = 0; k < 10; k++)
      specs[k] = s.spec;
    bt_submit_result_t r[10];
    fx_clear(fx);
    bt_core_submit(fx->core, specs, 10, 1, &fx->now, r, &fx->out);
    fx_clear(fx);
    for (int k = 0; k < 10; k++)
      bt_core_package_persisted(fx->core, r[k].id, true, 0, &fx->now, &fx->out);
    for (int j = 0; j < 3 && agents[j]; j++) {
      size_t got = 0;
      for (size_t k = 0; k < fx->out.n; k++)
        if (fx->out.v[k].kind == BT_ACT_ASSIGN && fx->out.v[k].agent_id == agents[j])
          got++;
      if (got != cases[i].want[j])
        fail_msg("%s: agent %s got %zu, want %u", cases[i].what, names[j], got,
                 cases[i].want[j]);
      assert_int_equal(fx_busy(fx, agents[j]), cases[i].want[j]);
    }
    fx_free(fx);
  }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_route_hard_constraints),
      T(test_core_hello_refusals),
      T(test_core_hello_changes_capabilities),
      T(test_core_route_respects_agent_slots),
      T(test_core_route_respects_vendor_capacity),
      T(test_core_route_vendor_room_wakes_other_agent),
      T(test_core_route_order),
      T(test_core_route_not_before),
      cmocka_unit_test(test_core_route_spreads_burst),
  };
#undef T
  return cmocka_run_group_tests_name("test_core_sched", tests, NULL, NULL);
}

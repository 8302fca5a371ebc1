/*
 * server/core: work packages — submit and the durability rule (nothing is
 * routed before its insert commits, or, with route_at_submit, only in its own
 * submit, written with its insert), idempotency keys, the outcome of the
 * insert, views, waiting reasons, the figures, and the walk that lists open
 * packages for a restart.
 */
#include "core_fixture.h"

#include <stdio.h>
#include <string.h>

/* --- submit and persist ------------------------------------------------------------ */

static void test_core_submit_not_routable_until_persisted(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 4);

  fx_spec_t s;
  fx_spec(fx, &(fx_pkg_t){.key = "order-1"}, &s);
  bt_submit_result_t r;
  memset(&r, 0xff, sizeof r);
  fx_clear(fx);
  assert_int_equal(bt_core_submit(fx->core, &s.spec, 1, 4242, &fx->now, &r, &fx->out), 0);
  assert_false(r.duplicate);
  assert_true(r.pending);
  assert_int_equal(r.state, BT_PKG_QUEUED);
  assert_int_not_equal(r.id, 0);
  assert_int_equal(fx->out.n, 1);
  const bt_action_t *p = fx_one(&fx->out, BT_ACT_PERSIST_PACKAGE, r.id);
  assert_int_equal(p->token, 4242);
  assert_int_equal(p->at, fx->now.at);

  /* Open (visible) but not routable: an agent asking for work gets nothing. */
  assert_int_equal(fx_state(fx, r.id), BT_PKG_QUEUED);
  assert_string_equal(fx_reason(fx, r.id), "");
  fx_clear(fx);
  bt_core_agent_ready(fx->core, a, 1, &fx->now, &fx->out);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  fx_tick(fx);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_int_equal(fx_busy(fx, a), 0);

  fx_clear(fx);
  bt_core_package_persisted(fx->core, r.id, true, 0, &fx->now, &fx->out);
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, r.id);
  assert_int_equal(as->agent_id, a);
  assert_int_equal(as->vendor_id, v);
  assert_int_equal(as->attempt, 1);
  assert_int_equal(fx_state(fx, r.id), BT_PKG_ASSIGNED);

  /* A second commit notice for the same package changes nothing. */
  fx_clear(fx);
  bt_core_package_persisted(fx->core, r.id, true, 0, &fx->now, &fx->out);
  bt_core_package_persisted(fx->core, 999, true, 0, &fx->now, &fx->out);
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(fx_state(fx, r.id), BT_PKG_ASSIGNED);
}

static void test_core_submit_batch_one_token(void **state) {
  fx_t *fx = *state;
  fx_spec_t s[3];
  bt_pkg_spec_t specs[3];
  for (int i = 0; i < 3; i++) {
    fx_spec(fx, &(fx_pkg_t){.priority = (uint32_t)i}, &s[i]);
    specs[i] = s[i].spec;
  }
  bt_submit_result_t r[3];
  fx_clear(fx);
  assert_int_equal(bt_core_submit(fx->core, specs, 3, 77, &fx->now, r, &fx->out), 0);
  assert_int_equal(fx->out.n, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fx->out.v[i].kind, BT_ACT_PERSIST_PACKAGE);
    assert_int_equal(fx->out.v[i].token, 77);
    assert_int_equal(fx->out.v[i].package_id, r[i].id);
    assert_false(r[i].duplicate);
    if (i > 0)
      assert_true(r[i].id > r[i - 1].id);
  }
}

/* The insert failed, or the database already held the key (a package that
 * finished before): the new package is dropped and its key is free again. */
static void test_core_persist_failure_drops_package(void **state) {
  fx_t *fx = *state;
  static const struct {
    const char *what;
    bool ok;
    uint64_t existing_id;
  } cases[] = {
      {"insert failed", false, 0},
      {"key known to the database", true, 42},
      {"failed and known", false, 42},
  };
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 4);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    uint64_t id = fx_submit_unpersisted(fx, &(fx_pkg_t){.key = "k"});
    fx_clear(fx);
    bt_core_package_persisted(fx->core, id, cases[i].ok, cases[i].existing_id,
                              &fx->now, &fx->out);
    if (fx->out.n != 0)
      fail_msg("%s: dropping a package emitted actions", cases[i].what);
    bt_pkg_view_t view;
    assert_int_equal(bt_core_package_view(fx->core, id, &view), BT_ENOTFOUND);
    assert_null(bt_core_package(fx->core, id));
    assert_string_equal(fx_reason(fx, id), "");
    assert_int_equal(fx_busy(fx, a), 0);
    bt_core_stats_t st;
    bt_core_stats(fx->core, &fx->now, &st);
    assert_int_equal(st.by_state[BT_PKG_QUEUED], 0);
    /* A late notice for the dropped package is ignored. */
    bt_core_package_persisted(fx->core, id, true, 0, &fx->now, &fx->out);
    assert_int_equal(fx->out.n, 0);
  }
  /* The key is free: a new submit makes a new package that routes. */
  fx_spec_t s;
  fx_spec(fx, &(fx_pkg_t){.key = "k"}, &s);
  bt_submit_result_t r;
  fx_clear(fx);
  bt_core_submit(fx->core, &s.spec, 1, 1, &fx->now, &r, &fx->out);
  assert_false(r.duplicate);
  fx_clear(fx);
  bt_core_package_persisted(fx->core, r.id, true, 0, &fx->now, &fx->out);
  fx_one(&fx->out, BT_ACT_ASSIGN, r.id);
}

static void test_core_submit_same_key_one_package(void **state) {
  fx_t *fx = *state;
  /* In one batch: the second spec names the first package. */
  fx_spec_t s1, s2, s3;
  fx_spec(fx, &(fx_pkg_t){.key = "dup", .priority = 1}, &s1);
  fx_spec(fx, &(fx_pkg_t){.key = "dup", .priority = 9}, &s2);
  fx_spec(fx, &(fx_pkg_t){.key = "other"}, &s3);
  bt_pkg_spec_t specs[3] = {s1.spec, s2.spec, s3.spec};
  bt_submit_result_t r[3];
  fx_clear(fx);
  bt_core_submit(fx->core, specs, 3, 5, &fx->now, r, &fx->out);
  assert_int_equal(fx_count(&fx->out, BT_ACT_PERSIST_PACKAGE), 2);
  assert_false(r[0].duplicate);
  assert_true(r[1].duplicate);
  assert_int_equal(r[1].id, r[0].id);
  assert_true(r[1].pending); /* answer it when the first copy commits */
  assert_false(r[2].duplicate);
  assert_int_not_equal(r[2].id, r[0].id);
  bt_pkg_view_t view;
  assert_int_equal(bt_core_package_view(fx->core, r[0].id, &view), 0);
  assert_int_equal(view.priority, 1); /* the first spec wins */

  /* Across batches, before and after the commit. */
  bt_submit_result_t again;
  fx_clear(fx);
  bt_core_submit(fx->core, &s1.spec, 1, 6, &fx->now, &again, &fx->out);
  assert_true(again.duplicate);
  assert_true(again.pending);
  assert_int_equal(again.id, r[0].id);
  assert_int_equal(fx->out.n, 0);

  bt_core_package_persisted(fx->core, r[0].id, true, 0, &fx->now, &fx->out);
  fx_clear(fx);
  bt_core_submit(fx->core, &s2.spec, 1, 7, &fx->now, &again, &fx->out);
  assert_true(again.duplicate);
  assert_false(again.pending);
  assert_int_equal(again.id, r[0].id);
  assert_int_equal(again.state, BT_PKG_QUEUED);
  assert_int_equal(fx->out.n, 0);

  /* Once assigned the duplicate reports the live state. */
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  fx_agent(fx, v, "a1", "translate", 1);
  assert_int_equal(fx_state(fx, r[0].id), BT_PKG_ASSIGNED);
  bt_core_submit(fx->core, &s1.spec, 1, 8, &fx->now, &again, &fx->out);
  assert_true(again.duplicate);
  assert_int_equal(again.state, BT_PKG_ASSIGNED);

  /* No key: never a duplicate. */
  uint64_t x = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  uint64_t y = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  assert_int_not_equal(x, y);
}

static void test_core_key_free_after_finish(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t id = fx_submit(fx, &(fx_pkg_t){.key = "once"});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_result(fx, a, id, 1, BT_OUTCOME_COMPLETED, "ok"), 0);

  fx_spec_t s;
  fx_spec(fx, &(fx_pkg_t){.key = "once"}, &s);
  bt_submit_result_t r;
  fx_clear(fx);
  bt_core_submit(fx->core, &s.spec, 1, 1, &fx->now, &r, &fx->out);
  assert_true(r.duplicate);
  assert_true(r.pending); /* its completion is still being committed */
  assert_int_equal(r.state, BT_PKG_COMPLETED);
  assert_int_equal(r.id, id);

  fx_finish_persisted(fx, id, 1);
  assert_int_equal(fx_state(fx, id), BT_PKG__COUNT);
  fx_clear(fx);
  bt_core_submit(fx->core, &s.spec, 1, 2, &fx->now, &r, &fx->out);
  assert_false(r.duplicate);
  assert_int_not_equal(r.id, id);
  /* The store finds the key among finished packages: the shell answers with
   * the old id and the new package goes away. */
  fx_clear(fx);
  bt_core_package_persisted(fx->core, r.id, true, id, &fx->now, &fx->out);
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(fx_state(fx, r.id), BT_PKG__COUNT);
}

/* --- views ---------------------------------------------------------------------------- */

static void test_core_package_view_fields(void **state) {
  fx_t *fx = *state;
  fx_advance(fx, 5);
  uint64_t id = fx_submit(fx, &(fx_pkg_t){.cap = "review",
                                          .priority = 7,
                                          .deadline_in = 3600000,
                                          .not_before_in = 60000,
                                          .regions = "EU-DE,EU-FR,EU-DE",
                                          .certs = "iso27001",
                                          .prefer = "acme",
                                          .avoid = "globex,initech",
                                          .has_max_cost = true,
                                          .max_cost = 12.5,
                                          .max_attempts = 5,
                                          .key = "k-1",
                                          .payload = "hello"});
  bt_pkg_view_t v;
  assert_int_equal(bt_core_package_view(fx->core, id, &v), 0);
  assert_int_equal(v.id, id);
  assert_string_equal(v.capability, "review");
  assert_int_equal(v.state, BT_PKG_QUEUED);
  assert_int_equal(v.priority, 7);
  assert_int_equal(v.attempt, 0);
  assert_int_equal(v.max_attempts, 5);
  assert_int_equal(v.deadline_at, fx->now.at + 3600000);
  assert_int_equal(v.not_before_at, fx->now.at + 60000);
  assert_int_equal(v.submitted_at, fx->now.at);
  assert_int_equal(v.vendor_id, 0);
  assert_int_equal(v.agent_id, 0);
  assert_int_equal(v.progress, -1);
  assert_int_equal(v.payload_len, 5);
  assert_memory_equal(v.payload, "hello", 5);
  assert_int_equal(v.checkpoint_len, 0);
  assert_string_equal(v.key, "k-1");
  assert_int_equal(v.n_regions, 2); /* deduplicated */
  assert_int_equal(v.n_certs, 1);
  assert_string_equal(v.certs[0], "iso27001");
  assert_int_equal(v.n_prefer, 1);
  assert_string_equal(v.prefer[0], "acme");
  assert_int_equal(v.n_avoid, 2);
  assert_true(v.max_cost == 12.5);
  bool de = false, fr = false;
  for (size_t i = 0; i < v.n_regions; i++) {
    de |= strcmp(v.regions[i], "EU-DE") == 0;
    fr |= strcmp(v.regions[i], "EU-FR") == 0;
  }
  assert_true(de && fr);

  uint64_t plain = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(bt_core_package_view(fx->core, plain, &v), 0);
  assert_null(v.key);
  assert_int_equal(v.n_regions + v.n_certs + v.n_prefer + v.n_avoid, 0);
  assert_true(v.max_cost < 0);
  assert_int_equal(v.max_attempts, fx->cfg.default_max_attempts);
  assert_int_equal(bt_core_package_view(fx->core, 12345, &v), BT_ENOTFOUND);
}

/* --- waiting reasons ---------------------------------------------------------------- */

typedef struct {
  const char *what;
  fx_vendor_t vendors[3];
  const char *agent_caps[3]; /* NULL = the vendor's caps; "-" = no agent */
  fx_pkg_t pkg;
  const char *want;
} reason_case_t;

static const reason_case_t reason_cases[] = {
    {"nobody offers the capability",
     {{.name = "acme", .caps = "translate"}},
     {0},
     {.cap = "transcribe"},
     "no vendor with capability transcribe"},
    {"the only vendor drains",
     {{.name = "acme", .state = BT_VENDOR_DRAINING}},
     {0},
     {0},
     "no active vendor with capability translate"},
    {"the only vendor is suspended",
     {{.name = "acme", .state = BT_VENDOR_SUSPENDED}},
     {"-"},
     {0},
     "no active vendor with capability translate"},
    {"the vendor in the region has failed",
     {{.name = "acme", .region = "EU-DE", .state = BT_VENDOR_FAILED},
      {.name = "globex", .region = "US"}},
     {0},
     {.regions = "EU-DE"},
     "no active vendor in EU-DE with capability translate"},
    {"data residency and certification",
     {{.name = "acme", .region = "EU-DE"},
      {.name = "globex", .region = "US", .certs = "iso27001"}},
     {0},
     {.regions = "EU-DE", .certs = "iso27001"},
     "no active vendor in EU-DE with capability translate and cert iso27001"},
    {"several regions and certifications",
     {{.name = "globex", .region = "US"}},
     {0},
     {.regions = "EU-DE,EU-FR", .certs = "iso27001,soc2"},
     "no active vendor in EU-DE|EU-FR with capability translate and cert "
     "iso27001,soc2"},
    {"too expensive",
     {{.name = "acme", .cost = 10}},
     {0},
     {.has_max_cost = true, .max_cost = 5},
     "no active vendor with capability translate and cost <= 5"},
    {"the only vendor is avoided",
     {{.name = "acme"}},
     {0},
     {.avoid = "acme"},
     "no active vendor with capability translate outside avoided acme"},
    {"eligible vendor, no agent",
     {{.name = "acme"}},
     {"-"},
     {0},
     "no connected agent with capability translate at an eligible vendor"},
    {"the agent does not offer the capability",
     {{.name = "acme", .caps = "translate,review"}},
     {"review"},
     {0},
     "no connected agent with capability translate at an eligible vendor"},
    {"the eligible vendor has no agent, the other is in the wrong region",
     {{.name = "acme", .region = "EU-DE"}, {.name = "globex", .region = "US"}},
     {"-", NULL},
     {.regions = "EU-DE"},
     "no connected agent with capability translate at an eligible vendor"},
    {"a degraded vendor still takes work (assigned: no reason)",
     {{.name = "acme", .state = BT_VENDOR_DEGRADED}},
     {0},
     {0},
     ""},
};

static void test_core_waiting_reason_names_what_is_missing(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof reason_cases / sizeof *reason_cases; i++) {
    const reason_case_t *c = &reason_cases[i];
    fx_t *fx = fx_new(NULL);
    for (int j = 0; j < 3 && c->vendors[j].name; j++) {
      uint64_t v = fx_vendor(fx, &c->vendors[j]);
      const char *caps = c->agent_caps[j];
      if (caps != NULL && strcmp(caps, "-") == 0)
        continue;
      char name[32];
      snprintf(name, sizeof name, "%s-a1", c->vendors[j].name);
      fx_agent(fx, v, name, caps ? caps : c->vendors[j].caps ? c->vendors[j].caps
                                                            : "translate",
               4);
    }
    uint64_t id = fx_submit(fx, &c->pkg);
    const char *got = fx_reason(fx, id);
    if (strcmp(got, c->want) != 0)
      fail_msg("%s:\n  want \"%s\"\n  got  \"%s\"", c->what, c->want, got);
    bt_core_stats_t st;
    bt_core_stats(fx->core, &fx->now, &st);
    assert_int_equal(st.waiting, c->want[0] ? 1 : 0);
    fx_free(fx);
  }
}

static void test_core_waiting_reason_not_before(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  fx_agent(fx, v, "a1", "translate", 4);
  uint64_t id = fx_submit(fx, &(fx_pkg_t){.not_before_in = 90 * 60 * 1000});
  assert_int_equal(fx_state(fx, id), BT_PKG_QUEUED);
  assert_string_equal(fx_reason(fx, id), "not before 2027-01-15T09:30:00Z");
}

/* A package that is merely behind others (every slot busy) has no reason. */
static void test_core_waiting_reason_empty_when_behind_others(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .capacity = 1});
  fx_agent(fx, v, "a1", "translate", 1);
  uint64_t first = fx_submit(fx, &(fx_pkg_t){0});
  uint64_t second = fx_submit(fx, &(fx_pkg_t){.regions = "EU-DE"});
  assert_int_equal(fx_state(fx, first), BT_PKG_ASSIGNED);
  assert_int_equal(fx_state(fx, second), BT_PKG_QUEUED);
  assert_string_equal(fx_reason(fx, second), "");
  assert_string_equal(fx_reason(fx, first), ""); /* not queued */
  assert_string_equal(fx_reason(fx, 999), "");   /* unknown */
  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.waiting, 0);

  /* A tiny buffer truncates, never overflows. */
  char tiny[8];
  fx_t *other = fx_new(NULL);
  uint64_t p = fx_submit(other, &(fx_pkg_t){.cap = "transcribe"});
  bt_core_waiting_reason(other->core, p, &other->now, tiny, sizeof tiny);
  assert_string_equal(tiny, "no vend");
  fx_free(other);
}

/* --- figures ---------------------------------------------------------------------------- */

static void test_core_stats_counts(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  fx_vendor(fx, &(fx_vendor_t){.name = "globex", .state = BT_VENDOR_DRAINING});
  fx_vendor(fx, &(fx_vendor_t){.name = "initech", .state = BT_VENDOR_SUSPENDED});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){0});
  fx_submit(fx, &(fx_pkg_t){0});                       /* behind p1, p2 */
  fx_submit(fx, &(fx_pkg_t){.cap = "transcribe"});     /* waiting */
  fx_submit(fx, &(fx_pkg_t){.cap = "transcribe"});     /* waiting, same class */
  fx_submit(fx, &(fx_pkg_t){.regions = "IN"});         /* waiting */
  fx_submit(fx, &(fx_pkg_t){.not_before_in = 60000});  /* scheduled */
  fx_submit_unpersisted(fx, &(fx_pkg_t){.cap = "x"});  /* not committed */
  fx_confirm_assigns(fx);
  fx_started(fx, a, p1, 1);

  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_RUNNING], 1);
  assert_int_equal(st.by_state[BT_PKG_ASSIGNED], 1);
  assert_int_equal(st.by_state[BT_PKG_QUEUED], 6);
  /* Delayed packages (not before, retry backoff) are scheduled, not stuck, and
   * are not counted as waiting even though bt_core_waiting_reason() names
   * their time. */
  assert_int_equal(st.waiting, 3);
  assert_int_equal(st.vendors_by_state[BT_VENDOR_ACTIVE], 1);
  assert_int_equal(st.vendors_by_state[BT_VENDOR_DRAINING], 1);
  assert_int_equal(st.vendors_by_state[BT_VENDOR_SUSPENDED], 1);
  assert_int_equal(st.agents_connected, 1);

  bt_core_set_finished_counts(fx->core, 10, 2, 3);
  fx_result(fx, a, p2, 1, BT_OUTCOME_COMPLETED, "out");
  fx_finish_persisted(fx, p2, 1);
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_COMPLETED], 11);
  assert_int_equal(st.by_state[BT_PKG_DEAD], 2);
  assert_int_equal(st.by_state[BT_PKG_CANCELLED], 3);
}

/* --- route_at_submit ---------------------------------------------------------------- */

/* A core with route_at_submit on and lease_ms (0: none in the way), vendor
 * acme and its agent a1 with slots; returns the agent's id. */
static uint64_t route_at_submit(fx_t *fx, uint32_t lease_ms, uint32_t slots,
                                uint64_t *vendor) {
  bt_core_config_t cfg = fx->cfg;
  cfg.route_at_submit = true;
  cfg.lease_ms = lease_ms ? lease_ms : 600000;
  fx_reconfigure(fx, &cfg);
  *vendor = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  return fx_agent(fx, *vendor, "a1", "translate", slots);
}

/* An agent has room: the package is assigned by its own submit (the ASSIGN
 * comes with its PERSIST_PACKAGE, for the shell to write in one transaction)
 * and is placed nowhere else while its insert is in flight. */
static void test_core_route_at_submit_assigns_in_the_submit(void **state) {
  fx_t *fx = *state;
  uint64_t v;
  uint64_t a = route_at_submit(fx, 0, 2, &v);

  uint64_t p = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  fx_one(&fx->out, BT_ACT_PERSIST_PACKAGE, p);
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, p);
  assert_int_equal(as->agent_id, a);
  assert_int_equal(as->vendor_id, v);
  assert_int_equal(as->attempt, 1);
  assert_true(as->with_insert);
  assert_int_equal(fx->out.n, 2);
  assert_int_equal(fx_state(fx, p), BT_PKG_ASSIGNED);
  assert_true(bt_core_package_unpersisted(fx->core, p));
  assert_int_equal(fx_busy(fx, a), 1);

  /* The insert and the assignment commit together. */
  fx_clear(fx);
  bt_core_package_persisted(fx->core, p, true, 0, &fx->now, &fx->out);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_false(bt_core_package_unpersisted(fx->core, p));
  bt_core_assign_persisted(fx->core, p, 1, true, &fx->now, &fx->out);
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(fx_result(fx, a, p, 1, BT_OUTCOME_COMPLETED, "done"), 0);
  assert_int_equal(fx_one(&fx->out, BT_ACT_FINISH, p)->state, BT_PKG_COMPLETED);
  fx_finish_persisted(fx, p, 1);
  assert_int_equal(fx_state(fx, p), BT_PKG__COUNT);
  assert_int_equal(fx_busy(fx, a), 0);
}

/* No room at its submit: the package waits for its insert's commit, even if
 * room opens before that (a later placement could not join the insert). */
static void test_core_route_at_submit_unplaced_waits_for_its_commit(void **state) {
  fx_t *fx = *state;
  uint64_t v;
  uint64_t a = route_at_submit(fx, 0, 1, &v);
  uint64_t p0 = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  fx_one(&fx->out, BT_ACT_ASSIGN, p0);
  fx_clear(fx);
  bt_core_package_persisted(fx->core, p0, true, 0, &fx->now, &fx->out);
  bt_core_assign_persisted(fx->core, p0, 1, true, &fx->now, &fx->out);

  uint64_t p1 = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_int_equal(fx_result(fx, a, p0, 1, BT_OUTCOME_COMPLETED, "done"), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0); /* room, but p1 is in flight */
  fx_clear(fx);
  bt_core_agent_ready(fx->core, a, 1, &fx->now, &fx->out);
  fx_tick(fx);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_int_equal(fx_state(fx, p1), BT_PKG_QUEUED);

  fx_clear(fx);
  bt_core_package_persisted(fx->core, p1, true, 0, &fx->now, &fx->out);
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, p1);
  assert_int_equal(as->agent_id, a);
  assert_int_equal(as->attempt, 1);
  assert_false(as->with_insert); /* its own write, after the insert */
}

/* The insert fails, or names an earlier package by its key: the assignment
 * made with it never happened, and the agent's slot takes other work. */
static void test_core_route_at_submit_failed_insert_frees_the_slot(void **state) {
  fx_t *fx = *state;
  uint64_t v;
  uint64_t a = route_at_submit(fx, 0, 1, &v);
  for (int dup = 0; dup < 2; dup++) {
    uint64_t p = fx_submit_unpersisted(fx, &(fx_pkg_t){.key = dup ? "k" : NULL});
    fx_one(&fx->out, BT_ACT_ASSIGN, p);
    uint64_t q = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0); /* the one slot is p's */
    fx_clear(fx);
    bt_core_package_persisted(fx->core, q, true, 0, &fx->now, &fx->out);
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);

    fx_clear(fx);
    bt_core_package_persisted(fx->core, p, dup ? true : false, dup ? 77 : 0, &fx->now,
                              &fx->out);
    assert_int_equal(fx_state(fx, p), BT_PKG__COUNT);
    const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, q);
    assert_int_equal(as->agent_id, a);
    assert_int_equal(fx_busy(fx, a), 1);
    bt_core_assign_persisted(fx->core, p, 1, true, &fx->now, &fx->out); /* a late word */
    assert_int_equal(fx_busy(fx, a), 1);
    fx_confirm_assigns(fx);
    assert_int_equal(fx_result(fx, a, q, 1, BT_OUTCOME_COMPLETED, "done"), 0);
    fx_finish_persisted(fx, q, 1);
    assert_int_equal(fx_busy(fx, a), 0);
  }
  bt_core_stats_t st;
  bt_core_stats(fx->core, &fx->now, &st);
  assert_int_equal(st.by_state[BT_PKG_ASSIGNED], 0);
  assert_int_equal(st.by_state[BT_PKG_QUEUED], 0);
  assert_int_equal(st.by_state[BT_PKG_COMPLETED], 2);
}

/* Its agent is lost before the insert answered: the attempt ends (lost, in
 * the insert's connection, after it: the shell's concern) with no handoff,
 * and the package is placed again only once its insert is committed. */
static void test_core_route_at_submit_agent_lost_before_commit(void **state) {
  fx_t *fx = *state;
  uint64_t v;
  uint64_t a = route_at_submit(fx, 3000, 1, &v);
  uint64_t p = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, p)->agent_id, a);
  uint64_t b = fx_agent(fx, v, "b1", "translate", 1);
  fx_advance(fx, fx->cfg.lease_ms - 1);
  bt_core_agent_seen(fx->core, b, &fx->now);
  fx_advance(fx, 1);
  fx_tick(fx);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, p);
  assert_int_equal(fin->attempt, 1);
  assert_int_equal(fin->outcome, BT_OUTCOME_LOST);
  assert_int_equal(fin->state, BT_PKG_QUEUED);
  assert_int_equal(fx_count(&fx->out, BT_ACT_HANDOFF), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0); /* b has room; p waits */
  assert_int_equal(fx_state(fx, p), BT_PKG_QUEUED);
  assert_true(bt_core_package_unpersisted(fx->core, p));

  fx_clear(fx);
  bt_core_package_persisted(fx->core, p, true, 0, &fx->now, &fx->out);
  const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, p);
  assert_int_equal(as->agent_id, b);
  assert_int_equal(as->attempt, 2);
}

/* --- the open-packages list (migrations/0011) ----------------------------------- */

static size_t unlisted(fx_t *fx, size_t max_walk, uint64_t *ids, uint64_t *through) {
  memset(ids, 0, 8 * sizeof *ids);
  return bt_core_open_unlisted(fx->core, max_walk, ids, through);
}

/* A round walks the ids above the floor in order: it names the packages open
 * in memory, passes over those that ended, and stops at the first whose
 * insert or final end is not committed, so their listing can neither
 * overtake the insert nor follow the delete of a final end. */
static void test_core_open_list_walks_settled_packages(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a = fx_agent(fx, v, "a1", "translate", 1);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_state(fx, p1), BT_PKG_ASSIGNED);
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){0});
  uint64_t p3 = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  uint64_t p4 = fx_submit(fx, &(fx_pkg_t){0});
  uint64_t ids[8], through;
  assert_int_equal(bt_core_listed_through(fx->core), 0);

  /* p3's insert is in flight: the stretch ends before it. */
  assert_int_equal(unlisted(fx, 8, ids, &through), 2);
  assert_int_equal(ids[0], p1);
  assert_int_equal(ids[1], p2);
  assert_int_equal(through, p2);

  /* p1's end is being committed: nothing may be listed past it. */
  fx_clear(fx);
  bt_core_package_persisted(fx->core, p3, true, 0, &fx->now, &fx->out);
  assert_int_equal(fx_result(fx, a, p1, 1, BT_OUTCOME_COMPLETED, "ok"), 0);
  assert_int_equal(unlisted(fx, 8, ids, &through), 0);
  assert_int_equal(through, 0);

  /* Committed, p1 is gone and passed over; at most max_walk ids a round. */
  fx_finish_persisted(fx, p1, 1);
  assert_int_equal(unlisted(fx, 2, ids, &through), 1);
  assert_int_equal(ids[0], p2);
  assert_int_equal(through, p2);
  assert_int_equal(unlisted(fx, 8, ids, &through), 3);
  assert_int_equal(ids[0], p2);
  assert_int_equal(ids[1], p3);
  assert_int_equal(ids[2], p4);
  assert_int_equal(through, p4);

  /* Listed: the next round starts above, and the floor never moves back. */
  bt_core_open_listed(fx->core, p2);
  assert_int_equal(unlisted(fx, 8, ids, &through), 2);
  assert_int_equal(ids[0], p3);
  bt_core_open_listed(fx->core, p4);
  bt_core_open_listed(fx->core, p2);
  assert_int_equal(bt_core_listed_through(fx->core), p4);
  assert_int_equal(unlisted(fx, 8, ids, &through), 0);
  assert_int_equal(through, p4);
}

/* After a restart new ids start above the stored floor as well as above the
 * largest id: the floor may name ids whose inserts never committed, and a
 * package given one would be open below the floor, unlisted, and not loaded
 * by the next restart. */
static void test_core_open_list_new_ids_above_the_floor(void **state) {
  fx_t *fx = *state;
  bt_core_load_max_ids(fx->core, 0, 0, 40);
  bt_core_load_listed_through(fx->core, 500);
  assert_int_equal(bt_core_listed_through(fx->core), 500);
  assert_int_equal(fx_submit(fx, &(fx_pkg_t){0}), 501);
  bt_core_load_max_ids(fx->core, 0, 0, 700);
  bt_core_load_listed_through(fx->core, 600);
  assert_int_equal(fx_submit(fx, &(fx_pkg_t){0}), 701);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_core_submit_not_routable_until_persisted),
      T(test_core_submit_batch_one_token),
      T(test_core_persist_failure_drops_package),
      T(test_core_submit_same_key_one_package),
      T(test_core_key_free_after_finish),
      T(test_core_package_view_fields),
      cmocka_unit_test(test_core_waiting_reason_names_what_is_missing),
      T(test_core_waiting_reason_not_before),
      T(test_core_waiting_reason_empty_when_behind_others),
      T(test_core_stats_counts),
      T(test_core_route_at_submit_assigns_in_the_submit),
      T(test_core_route_at_submit_unplaced_waits_for_its_commit),
      T(test_core_route_at_submit_failed_insert_frees_the_slot),
      T(test_core_route_at_submit_agent_lost_before_commit),
      T(test_core_open_list_walks_settled_packages),
      T(test_core_open_list_new_ids_above_the_floor),
  };
#undef T
  return cmocka_run_group_tests_name("test_core_packages", tests, NULL, NULL);
}

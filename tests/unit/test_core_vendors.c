/*
 * server/core: the names of its enumerations (the strings the database, the
 * wire and the CLI use), configuration defaults, symbols, and vendors —
 * registration, id assignment, the actions it asks the shell for, lookups, and
 * the rotation of a vendor's secret (its key and its agents' sessions).
 */
#include "core_fixture.h"

#include <stdio.h>
#include <string.h>

/* --- names --------------------------------------------------------------------- */

static void test_core_names_pkg_states_round_trip(void **state) {
  (void)state;
  static const char *const want[BT_PKG__COUNT] = {
      "queued", "assigned", "running", "completed", "dead", "cancelled"};
  for (int s = 0; s < BT_PKG__COUNT; s++) {
    const char *name = bt_pkg_state_name((bt_pkg_state_t)s);
    assert_string_equal(name, want[s]);
    bt_pkg_state_t back = BT_PKG__COUNT;
    assert_int_equal(bt_pkg_state_parse(name, &back), 0);
    assert_int_equal(back, s);
  }
  bt_pkg_state_t untouched = BT_PKG_DEAD;
  assert_int_equal(bt_pkg_state_parse("Queued", &untouched), BT_EINVAL);
  assert_int_equal(bt_pkg_state_parse("", &untouched), BT_EINVAL);
  assert_int_equal(untouched, BT_PKG_DEAD);
  assert_string_equal(bt_pkg_state_name(BT_PKG__COUNT), "unknown");
  assert_string_equal(bt_pkg_state_name((bt_pkg_state_t)-1), "unknown");
}

static void test_core_names_vendor_states_round_trip(void **state) {
  (void)state;
  static const char *const want[BT_VENDOR__COUNT] = {"active", "degraded", "failed",
                                                     "draining", "suspended"};
  for (int s = 0; s < BT_VENDOR__COUNT; s++) {
    const char *name = bt_vendor_state_name((bt_vendor_state_t)s);
    assert_string_equal(name, want[s]);
    bt_vendor_state_t back = BT_VENDOR__COUNT;
    assert_int_equal(bt_vendor_state_parse(name, &back), 0);
    assert_int_equal(back, s);
  }
  bt_vendor_state_t v;
  assert_int_equal(bt_vendor_state_parse("paused", &v), BT_EINVAL);
  assert_string_equal(bt_vendor_state_name(BT_VENDOR__COUNT), "unknown");
}

static void test_core_names_models_round_trip(void **state) {
  (void)state;
  static const char *const want[BT_MODEL__COUNT] = {"onshore", "nearshore",
                                                    "offshore", "captive"};
  for (int m = 0; m < BT_MODEL__COUNT; m++) {
    const char *name = bt_model_name((bt_model_t)m);
    assert_string_equal(name, want[m]);
    bt_model_t back = BT_MODEL__COUNT;
    assert_int_equal(bt_model_parse(name, &back), 0);
    assert_int_equal(back, m);
  }
  bt_model_t m;
  assert_int_equal(bt_model_parse("far-shore", &m), BT_EINVAL);
  assert_string_equal(bt_model_name(BT_MODEL__COUNT), "unknown");
}

/* Outcomes, agent states and handoff reasons have names only (no parser): pin
 * each, and check no two enumerators share a name. */
static void test_core_names_name_only_enums(void **state) {
  (void)state;
  static const char *const outcomes[BT_OUTCOME__COUNT] = {
      "completed", "failed", "transient", "lost", "cancelled", "handed-back",
      "revoked"};
  for (int o = 0; o < BT_OUTCOME__COUNT; o++)
    assert_string_equal(bt_outcome_name((bt_outcome_t)o), outcomes[o]);
  assert_string_equal(bt_outcome_name(BT_OUTCOME__COUNT), "unknown");

  static const char *const agents[] = {"connected", "lost", "gone"};
  assert_string_equal(bt_agent_state_name(BT_AGENT_CONNECTED), agents[0]);
  assert_string_equal(bt_agent_state_name(BT_AGENT_LOST), agents[1]);
  assert_string_equal(bt_agent_state_name(BT_AGENT_GONE), agents[2]);
  assert_string_equal(bt_agent_state_name((bt_agent_state_t)3), "unknown");

  static const struct {
    bt_handoff_reason_t r;
    const char *name;
  } reasons[] = {
      {BT_HANDOFF_VENDOR_FAILED, "vendor-failed"},
      {BT_HANDOFF_AGENT_LOST, "agent-lost"},
      {BT_HANDOFF_LEASE_EXPIRED, "lease-expired"},
      {BT_HANDOFF_DRAIN, "drain"},
      {BT_HANDOFF_SLA_RISK, "sla-risk"},
      {BT_HANDOFF_ADMIN, "admin"},
  };
  size_t n = sizeof reasons / sizeof *reasons;
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(bt_handoff_reason_name(reasons[i].r), reasons[i].name);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(reasons[i].name, reasons[j].name);
  }
  assert_string_equal(bt_handoff_reason_name((bt_handoff_reason_t)n), "unknown");
}

/* --- config and symbols ------------------------------------------------------------ */

static void test_core_config_defaults_are_sane(void **state) {
  (void)state;
  bt_core_config_t cfg;
  memset(&cfg, 0xff, sizeof cfg);
  bt_core_config_default(&cfg);
  assert_true(cfg.lease_ms > 0);
  assert_true(cfg.restart_grace_ms >= cfg.lease_ms);
  assert_true(cfg.retry_base_ms > 0);
  assert_true(cfg.retry_max_ms >= cfg.retry_base_ms);
  assert_true(cfg.default_max_attempts >= 1);
  assert_true(cfg.seed != 0);
}

static void test_core_intern_is_stable(void **state) {
  fx_t *fx = *state;
  bt_sym_t a = bt_core_intern(fx->core, "translate");
  bt_sym_t b = bt_core_intern(fx->core, "review");
  assert_int_not_equal(a, 0);
  assert_int_not_equal(b, 0);
  assert_int_not_equal(a, b);
  char copy[] = "translate";
  assert_int_equal(bt_core_intern(fx->core, copy), a);
  copy[0] = 'X'; /* the core keeps its own copy */
  assert_string_equal(bt_core_sym(fx->core, a), "translate");
  assert_int_equal(bt_core_intern(fx->core, ""), 0);
  assert_int_equal(bt_core_intern(fx->core, NULL), 0);
  assert_string_equal(bt_core_sym(fx->core, 0), "");
  assert_string_equal(bt_core_sym(fx->core, 1u << 30), "");
}

/* --- vendors --------------------------------------------------------------------------- */

static void test_core_vendor_add_assigns_ids_and_persists(void **state) {
  fx_t *fx = *state;
  static const fx_vendor_t rows[] = {
      {.name = "acme", .region = "EU-DE", .caps = "translate,review"},
      {.name = "globex", .region = "US", .caps = "label"},
      {.name = "initech", .region = "IN", .caps = "translate", .certs = "soc2"},
  };
  uint64_t prev = 0;
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    uint64_t token = fx->token;
    uint64_t id = fx_vendor(fx, &rows[i]);
    assert_true(id > prev);
    prev = id;
    assert_int_equal(fx->out.n, 2);
    const bt_action_t *p = &fx->out.v[0];
    assert_int_equal(p->kind, BT_ACT_PERSIST_VENDOR);
    assert_int_equal(p->vendor_id, id);
    assert_int_equal(p->token, token);
    assert_int_equal(p->at, fx->now.at);
    const bt_action_t *a = &fx->out.v[1];
    assert_int_equal(a->kind, BT_ACT_AUDIT);
    assert_int_equal(a->vendor_id, id);
    assert_string_equal(a->text, "vendor.add");
    assert_string_equal(a->text2, rows[i].name);
    assert_string_equal(a->text3, rows[i].region);

    const bt_core_vendor_t *v = bt_core_vendor(fx->core, id);
    assert_non_null(v);
    assert_string_equal(v->name, rows[i].name);
    assert_string_equal(v->region, rows[i].region);
    assert_int_equal(v->state, BT_VENDOR_ACTIVE);
    assert_int_equal(v->created_at, fx->now.at);
    assert_int_equal(v->in_flight, 0);
    assert_int_equal(v->agents_connected, 0);
    fx_advance(fx, 10);
  }
  assert_int_equal(bt_core_vendor_count(fx->core), 3);
  for (size_t i = 0; i < 3; i++)
    assert_string_equal(bt_core_vendor_at(fx->core, i)->name, rows[i].name);
  assert_null(bt_core_vendor_at(fx->core, 3));
}

static void test_core_vendor_add_duplicate_name_conflicts(void **state) {
  fx_t *fx = *state;
  uint64_t id = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  bt_vendor_spec_t spec = {.name = "acme", .region = "US", .capacity = 1};
  uint64_t out_id = 777;
  fx_clear(fx);
  assert_int_equal(
      bt_core_vendor_add(fx->core, &spec, 1, &fx->now, &out_id, &fx->out),
      BT_ECONFLICT);
  assert_int_equal(fx->out.n, 0);
  assert_int_equal(out_id, 777);
  assert_int_equal(bt_core_vendor_count(fx->core), 1);
  assert_string_equal(bt_core_vendor(fx->core, id)->region, "EU-DE");
  /* Case matters: "ACME" is another vendor. */
  assert_true(fx_vendor(fx, &(fx_vendor_t){.name = "ACME"}) > id);
}

static void test_core_vendor_copies_and_normalises_spec(void **state) {
  fx_t *fx = *state;
  char name[16] = "acme", region[16] = "EU-DE", cap[16] = "translate";
  const char *caps[] = {cap, "review", "translate"}; /* a duplicate */
  const char *certs[] = {"soc2", "iso27001", "soc2"};
  bt_vendor_spec_t spec = {.name = name,
                           .region = region,
                           .model = BT_MODEL_OFFSHORE,
                           .caps = caps,
                           .n_caps = 3,
                           .certs = certs,
                           .n_certs = 3,
                           .capacity = 7,
                           .cost = 2.5,
                           .weight = 0.5,
                           .hours = ""};
  memset(spec.auth_key, 0xab, sizeof spec.auth_key);
  uint64_t id;
  fx_clear(fx);
  assert_int_equal(bt_core_vendor_add(fx->core, &spec, 9, &fx->now, &id, &fx->out), 0);
  strcpy(name, "zzz");
  strcpy(region, "zzz");
  strcpy(cap, "zzz");
  const bt_core_vendor_t *v = bt_core_vendor(fx->core, id);
  assert_string_equal(v->name, "acme");
  assert_string_equal(v->region, "EU-DE");
  assert_string_equal(bt_core_sym(fx->core, v->region_sym), "EU-DE");
  assert_int_equal(v->model, BT_MODEL_OFFSHORE);
  assert_int_equal(v->n_caps, 2);
  assert_int_equal(v->n_certs, 2);
  assert_int_equal(v->capacity, 7);
  assert_true(v->cost == 2.5);
  assert_null(v->hours); /* "" means not set */
  assert_int_equal(v->auth_key[31], 0xab);
  bool has_translate = false, has_review = false;
  for (uint32_t i = 0; i < v->n_caps; i++) {
    has_translate |= strcmp(bt_core_sym(fx->core, v->caps[i]), "translate") == 0;
    has_review |= strcmp(bt_core_sym(fx->core, v->caps[i]), "review") == 0;
  }
  assert_true(has_translate && has_review);
}

static void test_core_vendor_lookup_by_id_name_and_ref(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t globex = fx_vendor(fx, &(fx_vendor_t){.name = "globex", .region = "US"});
  char idref[32];
  snprintf(idref, sizeof idref, "%llu", (unsigned long long)globex);

  static const struct {
    const char *ref;
    int want; /* 0 none, 1 acme, 2 globex */
  } refs[] = {
      {"acme", 1}, {"globex", 2}, {"nobody", 0}, {"", 0},
      {"0", 0},    {"999", 0},    {"1x", 0},     {"-1", 0},
  };
  for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
    const bt_core_vendor_t *v = bt_core_vendor_by_ref(fx->core, refs[i].ref);
    uint64_t want = refs[i].want == 1 ? acme : refs[i].want == 2 ? globex : 0;
    if (want == 0) {
      if (v != NULL)
        fail_msg("ref '%s' found vendor %s", refs[i].ref, v->name);
    } else {
      assert_non_null(v);
      assert_int_equal(v->id, want);
    }
  }
  assert_int_equal(bt_core_vendor_by_ref(fx->core, idref)->id, globex);
  assert_int_equal(bt_core_vendor(fx->core, acme)->id, acme);
  assert_null(bt_core_vendor(fx->core, 0));
  assert_null(bt_core_vendor(fx->core, globex + 1));
  assert_int_equal(bt_core_vendor_by_name(fx->core, "acme")->id, acme);
  assert_null(bt_core_vendor_by_name(fx->core, "Acme"));
}

/* Many vendors: lookups by id stay right past the first growth of the table. */
static void test_core_vendor_many(void **state) {
  fx_t *fx = *state;
  uint64_t ids[100];
  for (int i = 0; i < 100; i++) {
    char name[16];
    snprintf(name, sizeof name, "v%03d", i);
    ids[i] = fx_vendor(fx, &(fx_vendor_t){.name = name});
  }
  for (int i = 0; i < 100; i++) {
    char name[16];
    snprintf(name, sizeof name, "v%03d", i);
    const bt_core_vendor_t *v = bt_core_vendor(fx->core, ids[i]);
    assert_non_null(v);
    assert_string_equal(v->name, name);
    assert_ptr_equal(bt_core_vendor_by_name(fx->core, name), v);
    assert_ptr_equal(bt_core_vendor_at(fx->core, (size_t)i), v);
  }
}

/* --- secret rotation ----------------------------------------------------------------- */

static const uint8_t new_key[32] = {0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 7, 8, 9, 10, 11,
                                    12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                    23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* acme (a1 running one package, a2 idle) and globex (g1), all EU-DE. */
typedef struct {
  uint64_t acme, globex, a1, a2, g1, p1;
} rot_world_t;

static void rot_world(fx_t *fx, rot_world_t *w) {
  w->acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .cost = 0.5});
  w->globex = fx_vendor(fx, &(fx_vendor_t){.name = "globex", .cost = 5});
  w->a1 = fx_agent(fx, w->acme, "a1", "translate", 1);
  w->a2 = fx_agent(fx, w->acme, "a2", "translate", 1);
  w->g1 = fx_agent(fx, w->globex, "g1", "translate", 4);
  w->p1 = fx_submit(fx, &(fx_pkg_t){.prefer = "acme"});
  fx_confirm_assigns(fx);
  uint64_t on = fx_agent_of(fx, w->p1);
  assert_true(on == w->a1 || on == w->a2);
  if (on == w->a2) { /* keep the names telling: a1 is the busy one */
    uint64_t t = w->a1;
    w->a1 = w->a2;
    w->a2 = t;
  }
  fx_started(fx, w->a1, w->p1, 1);
}

static void rot_persisted(fx_t *fx, uint64_t vendor_id, uint32_t *ended) {
  fx_clear(fx);
  assert_int_equal(bt_core_vendor_key_persisted(fx->core, vendor_id, new_key, &fx->now,
                                                ended, &fx->out),
                   0);
}

static void test_core_vendor_rotate_key_waits_for_commit(void **state) {
  fx_t *fx = *state;
  rot_world_t w;
  rot_world(fx, &w);
  uint8_t old_key[32];
  memcpy(old_key, bt_core_vendor(fx->core, w.acme)->auth_key, 32);

  fx_clear(fx);
  assert_int_equal(bt_core_vendor_rotate_key(fx->core, w.acme, new_key, 77, &fx->now,
                                             &fx->out),
                   0);
  /* Only the write: the old key holds and nobody is signed out until it
   * commits, so a failed write changes nothing. */
  assert_int_equal(fx->out.n, 1);
  const bt_action_t *k = &fx->out.v[0];
  assert_int_equal(k->kind, BT_ACT_VENDOR_KEY);
  assert_int_equal(k->vendor_id, w.acme);
  assert_int_equal(k->token, 77);
  assert_int_equal(k->at, fx->now.at);
  assert_int_equal(k->len, 32);
  assert_memory_equal(k->data, new_key, 32);
  assert_memory_equal(bt_core_vendor(fx->core, w.acme)->auth_key, old_key, 32);
  bt_agent_view_t av;
  assert_int_equal(bt_core_agent_view(fx->core, w.a1, &av), 0);
  assert_int_equal(av.state, BT_AGENT_CONNECTED);
  assert_false(av.suspect);

  fx_clear(fx);
  assert_int_equal(bt_core_vendor_rotate_key(fx->core, 999, new_key, 78, &fx->now,
                                             &fx->out),
                   BT_ENOTFOUND);
  assert_int_equal(fx->out.n, 0);
  uint32_t ended = 5;
  assert_int_equal(bt_core_vendor_key_persisted(fx->core, 999, new_key, &fx->now, &ended,
                                                &fx->out),
                   BT_ENOTFOUND);
  assert_int_equal(ended, 0);
  assert_int_equal(fx->out.n, 0);
}

static void test_core_vendor_rotate_key_ends_sessions_keeps_work(void **state) {
  fx_t *fx = *state;
  rot_world_t w;
  rot_world(fx, &w);
  uint32_t ended = 0;
  rot_persisted(fx, w.acme, &ended);

  const bt_core_vendor_t *v = bt_core_vendor(fx->core, w.acme);
  assert_memory_equal(v->auth_key, new_key, 32);
  assert_memory_not_equal(bt_core_vendor(fx->core, w.globex)->auth_key, new_key, 32);
  /* Both of acme's sessions end; globex's stays. */
  assert_int_equal(ended, 2);
  assert_int_equal(fx_count(&fx->out, BT_ACT_END_SESSION), 2);
  for (size_t i = 0; i < fx->out.n; i++) {
    const bt_action_t *a = &fx->out.v[i];
    if (a->kind == BT_ACT_END_SESSION) {
      assert_true(a->agent_id == w.a1 || a->agent_id == w.a2);
      assert_int_equal(a->vendor_id, w.acme);
    }
  }
  /* The admin's audit row names the vendor, never the key. */
  const bt_action_t *au = fx_find(&fx->out, BT_ACT_AUDIT, 0);
  assert_non_null(au);
  assert_string_equal(au->text, "vendor.rotate-secret");
  assert_true(au->by_admin);
  assert_int_equal(au->vendor_id, w.acme);
  assert_int_equal(au->agent_id, 0);
  assert_string_equal(au->text2, "acme");
  assert_string_equal(au->text3, "active");
  assert_null(au->data);
  size_t signed_out = 0;
  for (size_t i = 0; i < fx->out.n; i++)
    if (fx->out.v[i].kind == BT_ACT_AUDIT &&
        strcmp(fx->out.v[i].text, "agent.signed_out") == 0) {
      assert_string_equal(fx->out.v[i].text3, "acme");
      signed_out++;
    }
  assert_int_equal(signed_out, 2);
  /* The rotation itself stops nothing and hands nothing off. */
  assert_int_equal(fx_count(&fx->out, BT_ACT_CANCEL), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_HANDOFF), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_VENDOR_STATE), 0);
  assert_int_equal(fx_state(fx, w.p1), BT_PKG_RUNNING);
  assert_int_equal(fx_agent_of(fx, w.p1), w.a1);
  assert_int_equal(v->state, BT_VENDOR_ACTIVE);
  assert_int_equal(v->in_flight, 1);

  /* No new work for a signed-out agent: the next package, acme preferred
   * and cheaper, goes to globex. */
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){.prefer = "acme"});
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, p2)->agent_id, w.g1);
  fx_confirm_assigns(fx);
  bt_agent_view_t av;
  assert_int_equal(bt_core_agent_view(fx->core, w.a2, &av), 0);
  assert_true(av.suspect);

  /* a1 comes back with the new secret, holding p1: it keeps it, and takes
   * work again. */
  bt_held_t held = {w.p1, 1};
  fx_clear(fx);
  uint64_t again = 0;
  assert_int_equal(fx_hello(fx, w.acme, "a1", "translate", 2, &held, 1, &again), 0);
  assert_int_equal(again, w.a1);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  assert_int_equal(fx_count(&fx->out, BT_ACT_CANCEL), 0);
  assert_int_equal(fx_state(fx, w.p1), BT_PKG_RUNNING);
  assert_int_equal(bt_core_agent_view(fx->core, w.a1, &av), 0);
  assert_false(av.suspect);
  uint64_t p3 = fx_submit(fx, &(fx_pkg_t){.prefer = "acme"});
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, p3)->agent_id, w.a1);
}

static void test_core_vendor_rotate_key_old_agent_lost_after_lease(void **state) {
  fx_t *fx = *state;
  rot_world_t w;
  rot_world(fx, &w);
  bt_core_agent_seen(fx->core, w.g1, &fx->now);
  uint32_t ended = 0;
  fx_advance(fx, 100);
  rot_persisted(fx, w.acme, &ended);
  assert_int_equal(ended, 2);

  /* Nobody of acme comes back (they only knew the old secret). Within the
   * lease nothing moves ... */
  fx_advance(fx, fx->cfg.lease_ms - 200);
  bt_core_agent_seen(fx->core, w.g1, &fx->now);
  fx_tick(fx);
  assert_int_equal(fx_count(&fx->out, BT_ACT_FINISH), 0);
  assert_int_equal(fx_state(fx, w.p1), BT_PKG_RUNNING);
  /* ... then they are lost like any silent agent, and p1 is handed off (acme
   * has no live agent left, so as vendor-failed) and goes to globex. */
  fx_advance(fx, 200);
  fx_tick(fx);
  const bt_action_t *fin = fx_one(&fx->out, BT_ACT_FINISH, w.p1);
  assert_int_equal(fin->outcome, BT_OUTCOME_LOST);
  assert_int_equal(fin->state, BT_PKG_QUEUED);
  const bt_action_t *h = fx_one(&fx->out, BT_ACT_HANDOFF, w.p1);
  assert_int_equal(h->vendor_id, w.acme);
  assert_true(h->reason == BT_HANDOFF_AGENT_LOST || h->reason == BT_HANDOFF_VENDOR_FAILED);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, w.p1)->agent_id, w.g1);
  bt_agent_view_t av;
  assert_int_equal(bt_core_agent_view(fx->core, w.a1, &av), 0);
  assert_int_equal(av.state, BT_AGENT_LOST);
  assert_int_equal(bt_core_agent_view(fx->core, w.a2, &av), 0);
  assert_int_equal(av.state, BT_AGENT_LOST);
  assert_int_equal(bt_core_vendor(fx->core, w.acme)->agents_connected, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_names_pkg_states_round_trip),
      cmocka_unit_test(test_core_names_vendor_states_round_trip),
      cmocka_unit_test(test_core_names_models_round_trip),
      cmocka_unit_test(test_core_names_name_only_enums),
      cmocka_unit_test(test_core_config_defaults_are_sane),
      cmocka_unit_test_setup_teardown(test_core_intern_is_stable, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_add_assigns_ids_and_persists,
                                      fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_add_duplicate_name_conflicts,
                                      fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_copies_and_normalises_spec,
                                      fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_lookup_by_id_name_and_ref,
                                      fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_many, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_rotate_key_waits_for_commit,
                                      fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_rotate_key_ends_sessions_keeps_work,
                                      fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_core_vendor_rotate_key_old_agent_lost_after_lease,
                                      fx_setup, fx_teardown),
  };
  return cmocka_run_group_tests_name("test_core_vendors", tests, NULL, NULL);
}

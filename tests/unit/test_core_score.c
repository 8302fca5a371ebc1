/*
 * server/core: the routing score and the queue order, rule by rule, as tables.
 *
 * The rules (sched.c's header states them and the formula):
 *   score = weight × (w_cost·cost + w_sla·sla + w_util·util + w_prefer·prefer
 *                     + w_hours·hours)
 *   cost = cost_ref / (cost_ref + vendor cost), sla = (on_time + 9) /
 *   (with_deadline + 10), util = 1 − in_flight / capacity, prefer and hours 0/1;
 *   the highest score among the eligible vendors with room wins, ties go to the
 *   lower vendor id, and a vendor whose share of the capability's in-flight work
 *   would exceed share_cap is passed over while another eligible vendor has room.
 *   Packages go by priority, then earliest deadline, then id, except that one
 *   ready for aging_bound_ms goes first (oldest first); not-before is respected.
 *
 * A "winner" row builds vendors (each also offers its own capability
 * "fill-<name>", so a row can put work in flight at exactly that vendor before
 * the package under test arrives), connects one agent per vendor (in reverse
 * id order, so a tie broken by the ready list's order would show), then
 * submits the row's package count times and compares the vendors chosen, one
 * per placement ("-" = it waits), with the row's expectation.
 */
#include "core_fixture.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof *(a))
#define MAX_V 4

/* Routing weights for a row. share_cap 0 = 1 (off); cost_ref 0 = 1. */
typedef struct {
  double cost, sla, util, prefer, hours;
  double share_cap;
  double cost_ref;
} weights_t;

static bt_core_config_t cfg_of(const weights_t *w, uint32_t aging_ms) {
  bt_core_config_t cfg;
  bt_core_config_default(&cfg);
  cfg.w_cost = w->cost;
  cfg.w_sla = w->sla;
  cfg.w_util = w->util;
  cfg.w_prefer = w->prefer;
  cfg.w_hours = w->hours;
  cfg.share_cap = w->share_cap > 0 ? w->share_cap : 1.0;
  cfg.cost_ref = w->cost_ref > 0 ? w->cost_ref : 1.0;
  cfg.aging_bound_ms = aging_ms;
  cfg.lease_ms = 3600000; /* no agent is lost in these tests */
  return cfg;
}

/* Only one term on (share cap off). */
#define ONLY_COST {.cost = 1}
#define ONLY_SLA {.sla = 1}
#define ONLY_UTIL {.util = 1}
#define ONLY_HOURS {.hours = 1}
#define ALL_ONE {.cost = 1, .sla = 1, .util = 1, .prefer = 1, .hours = 1}

typedef struct {
  const char *what;
  weights_t w;
  fx_vendor_t vendors[MAX_V];
  uint32_t fill[MAX_V];  /* packages in flight at the vendor before the test */
  uint32_t slots[MAX_V]; /* its agent's slots; 0 = 1000 */
  fx_pkg_t pkg;          /* submitted count times */
  uint32_t count;        /* 0 = 1 */
  const char *want;      /* vendor per placement, comma-separated; "-" = waits */
} win_case_t;

typedef struct {
  fx_t *fx;
  size_t n;
  uint64_t vid[MAX_V];
  uint64_t aid[MAX_V];
  char names[MAX_V][32];
} world_t;

/* Builds the row's vendors, agents and fill. */
static void world_build(world_t *w, const win_case_t *c) {
  bt_core_config_t cfg = cfg_of(&c->w, 0);
  memset(w, 0, sizeof *w);
  w->fx = fx_new(&cfg);
  char caps[MAX_V][128];
  for (size_t i = 0; i < MAX_V && c->vendors[i].name; i++) {
    fx_vendor_t v = c->vendors[i];
    snprintf(w->names[i], sizeof w->names[i], "%s", v.name);
    if (v.caps == NULL)
      snprintf(caps[i], sizeof caps[i], "translate,fill-%s", v.name);
    else
      snprintf(caps[i], sizeof caps[i], "%s,fill-%s", v.caps, v.name);
    v.caps = caps[i];
    w->vid[i] = fx_vendor(w->fx, &v);
    w->n++;
  }
  for (size_t k = w->n; k-- > 0;) {
    if (c->vendors[k].state == BT_VENDOR_SUSPENDED)
      continue;
    char an[48];
    snprintf(an, sizeof an, "%s-a", w->names[k]);
    w->aid[k] = fx_agent(w->fx, w->vid[k], an, caps[k], c->slots[k] ? c->slots[k] : 1000);
    fx_confirm_assigns(w->fx);
  }
  for (size_t i = 0; i < w->n; i++) {
    char cap[48];
    snprintf(cap, sizeof cap, "fill-%s", w->names[i]);
    for (uint32_t k = 0; k < c->fill[i]; k++) {
      uint64_t id = fx_submit(w->fx, &(fx_pkg_t){.cap = cap});
      if (fx_state(w->fx, id) != BT_PKG_ASSIGNED || fx_vendor_of(w->fx, id) != w->vid[i])
        fail_msg("%s: could not fill %s", c->what, w->names[i]);
      fx_confirm_assigns(w->fx);
    }
  }
}

static const char *vendor_name(const world_t *w, uint64_t vid) {
  for (size_t i = 0; i < w->n; i++)
    if (w->vid[i] == vid)
      return w->names[i];
  return "?";
}

/* Submits one package; appends the chosen vendor (or "-") to got. */
static void place_one(world_t *w, const fx_pkg_t *p, char *got, size_t len) {
  uint64_t id = fx_submit(w->fx, p);
  const bt_action_t *as = fx_find(&w->fx->out, BT_ACT_ASSIGN, id);
  const char *name = "-";
  if (as != NULL) {
    assert_int_equal(fx_count(&w->fx->out, BT_ACT_ASSIGN), 1);
    name = vendor_name(w, as->vendor_id);
  } else {
    assert_int_equal(fx_count(&w->fx->out, BT_ACT_ASSIGN), 0);
  }
  size_t o = strlen(got);
  snprintf(got + o, len - o, "%s%s", o ? "," : "", name);
  fx_confirm_assigns(w->fx);
}

static void run_win_cases(const win_case_t *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const win_case_t *c = &cases[i];
    world_t w;
    world_build(&w, c);
    char got[512] = "";
    uint32_t count = c->count ? c->count : 1;
    for (uint32_t k = 0; k < count; k++)
      place_one(&w, &c->pkg, got, sizeof got);
    if (strcmp(got, c->want) != 0)
      fail_msg("%s: got %s, want %s", c->what, got, c->want);
    /* Whatever the score said, no hard constraint was broken (the package
     * checks of test_core_sched.c cover each; here only capacity and slots). */
    for (size_t k = 0; k < w.n; k++) {
      const bt_core_vendor_t *v = bt_core_vendor(w.fx->core, w.vid[k]);
      assert_true(v->in_flight <= v->capacity);
      if (w.aid[k])
        assert_true(fx_busy(w.fx, w.aid[k]) <= (c->slots[k] ? c->slots[k] : 1000));
    }
    fx_free(w.fx);
  }
}

/* --- one table per term -------------------------------------------------------- */

static const win_case_t cost_cases[] = {
    {"cheaper wins",
     ONLY_COST,
     {{.name = "acme", .cost = 5}, {.name = "globex", .cost = 2}, {.name = "initech", .cost = 3}},
     .want = "globex"},
    {"free beats any price",
     ONLY_COST,
     {{.name = "acme", .cost = 0.01}, {.name = "globex", .cost = 0}},
     .want = "globex"},
    {"cheaper takes every placement while it has room (share cap off)",
     ONLY_COST,
     {{.name = "acme", .cost = 1, .capacity = 3}, {.name = "globex", .cost = 2}},
     .count = 5,
     .want = "acme,acme,acme,globex,globex"},
    {"a cheaper vendor at capacity is passed over",
     ONLY_COST,
     {{.name = "acme", .cost = 1, .capacity = 2}, {.name = "globex", .cost = 2}},
     .fill = {2},
     .want = "globex"},
    {"cost_ref changes the values, not the order",
     {.cost = 1, .cost_ref = 10},
     {{.name = "acme", .cost = 4}, {.name = "globex", .cost = 3}},
     .want = "globex"},
};

static void test_core_score_cost(void **state) {
  (void)state;
  run_win_cases(cost_cases, NELEM(cost_cases));
}

static const win_case_t sla_cases[] = {
    {"better on-time rate wins",
     ONLY_SLA,
     {{.name = "acme", .on_time = 5, .with_deadline = 10},
      {.name = "globex", .on_time = 9, .with_deadline = 10}},
     .want = "globex"},
    {"no history counts as 0.9: beats 8 of 10 (0.85)",
     ONLY_SLA,
     {{.name = "acme", .on_time = 8, .with_deadline = 10}, {.name = "globex"}},
     .want = "globex"},
    {"one late completion (9/11) loses to no history (0.9)",
     ONLY_SLA,
     {{.name = "acme", .on_time = 0, .with_deadline = 1}, {.name = "globex"}},
     .want = "globex"},
    {"a long perfect record (59/60) beats a short one (11/12)",
     ONLY_SLA,
     {{.name = "acme", .on_time = 2, .with_deadline = 2},
      {.name = "globex", .on_time = 50, .with_deadline = 50}},
     .want = "globex"},
    {"1 of 1 (10/11) beats 90 of 100 (99/110)",
     ONLY_SLA,
     {{.name = "acme", .on_time = 90, .with_deadline = 100},
      {.name = "globex", .on_time = 1, .with_deadline = 1}},
     .want = "globex"},
};

static void test_core_score_sla(void **state) {
  (void)state;
  run_win_cases(sla_cases, NELEM(sla_cases));
}

static const win_case_t util_cases[] = {
    {"emptier wins (0.75 over 0.5)",
     ONLY_UTIL,
     {{.name = "acme", .capacity = 10}, {.name = "globex", .capacity = 4}},
     .fill = {5, 1},
     .want = "globex"},
    {"utilisation is a share, not a count",
     ONLY_UTIL,
     {{.name = "acme", .capacity = 100}, {.name = "globex", .capacity = 4}},
     .fill = {10, 0},
     .want = "globex"},
    {"placements follow the free share, ties to the lower id, then capacity",
     ONLY_UTIL,
     {{.name = "acme", .capacity = 4}, {.name = "globex", .capacity = 2}},
     .count = 7,
     .want = "acme,globex,acme,acme,globex,acme,-"},
    {"work of another capability counts: the vendor is busy either way",
     ONLY_UTIL,
     {{.name = "acme", .capacity = 10}, {.name = "globex", .capacity = 10}},
     .fill = {3, 2},
     .want = "globex"},
};

static void test_core_score_util(void **state) {
  (void)state;
  run_win_cases(util_cases, NELEM(util_cases));
}

static const win_case_t prefer_cases[] = {
    {"preferred beats cheaper when w_prefer dominates",
     {.cost = 1, .prefer = 5},
     {{.name = "acme", .cost = 0}, {.name = "globex", .cost = 9}},
     .pkg = {.prefer = "globex"},
     .want = "globex"},
    {"two preferred: the cheaper of them",
     {.cost = 1, .prefer = 5},
     {{.name = "acme", .cost = 0}, {.name = "globex", .cost = 5}, {.name = "initech", .cost = 2}},
     .pkg = {.prefer = "globex,initech"},
     .want = "initech"},
    {"a small w_prefer does not beat a large cost difference",
     {.cost = 1, .prefer = 0.1},
     {{.name = "acme", .cost = 0}, {.name = "globex", .cost = 1}},
     .pkg = {.prefer = "globex"},
     .want = "acme"},
    {"preferring an ineligible vendor changes nothing (soft)",
     {.cost = 1, .prefer = 5},
     {{.name = "acme", .cost = 0, .region = "EU-DE"}, {.name = "globex", .cost = 9, .region = "US"}},
     .pkg = {.prefer = "acme", .regions = "US"},
     .want = "globex"},
    {"preferring an unknown vendor changes nothing",
     {.cost = 1, .prefer = 5},
     {{.name = "acme", .cost = 3}, {.name = "globex", .cost = 1}},
     .pkg = {.prefer = "nobody"},
     .want = "globex"},
    {"prefer only for the package that asks",
     {.cost = 1, .prefer = 5},
     {{.name = "acme", .cost = 3}, {.name = "globex", .cost = 1}},
     .want = "globex"},
};

static void test_core_score_prefer(void **state) {
  (void)state;
  run_win_cases(prefer_cases, NELEM(prefer_cases));
}

static const win_case_t hours_cases[] = {
    {"out-of-hours vendor loses",
     ONLY_HOURS,
     {{.name = "acme", .out_of_hours = true}, {.name = "globex"}},
     .want = "globex"},
    {"both out of hours: a tie, the lower id",
     ONLY_HOURS,
     {{.name = "acme", .out_of_hours = true}, {.name = "globex", .out_of_hours = true}},
     .want = "acme"},
    {"hours are soft: the only vendor takes it out of hours",
     ONLY_HOURS,
     {{.name = "acme", .out_of_hours = true}},
     .want = "acme"},
    {"a vendor with hours set and inside them counts as inside",
     ONLY_HOURS,
     {{.name = "acme", .out_of_hours = true, .hours = "Mon-Fri 09:00-17:00 UTC"},
      {.name = "globex", .hours = "Mon-Fri 09:00-17:00 UTC"}},
     .want = "globex"},
};

static void test_core_score_hours(void **state) {
  (void)state;
  run_win_cases(hours_cases, NELEM(hours_cases));
}

static const win_case_t weight_cases[] = {
    {"weight 2 beats weight 1 at equal terms",
     ALL_ONE,
     {{.name = "acme", .weight = 1}, {.name = "globex", .weight = 2}},
     .want = "globex"},
    {"weight 0.5 loses at equal terms",
     ALL_ONE,
     {{.name = "acme", .weight = 0.5}, {.name = "globex", .weight = 1}},
     .want = "globex"},
    {"weight 2 beats a cheaper vendor of weight 1 (1.333 > 1)",
     ONLY_COST,
     {{.name = "acme", .cost = 0}, {.name = "globex", .cost = 0.5, .weight = 2}},
     .want = "globex"},
    {"weight 2 does not beat much better terms (0.5 < 1)",
     ONLY_COST,
     {{.name = "acme", .cost = 0}, {.name = "globex", .cost = 3, .weight = 2}},
     .want = "acme"},
};

static void test_core_score_weight(void **state) {
  (void)state;
  run_win_cases(weight_cases, NELEM(weight_cases));
}

static const win_case_t tie_cases[] = {
    {"equal vendors: the lower id, not the name or the agent order",
     ALL_ONE,
     {{.name = "zeta"}, {.name = "alpha"}},
     .want = "zeta"},
    {"all weights zero: every score 0, the lower id",
     {.cost = 0},
     {{.name = "acme", .cost = 9}, {.name = "globex", .cost = 0}},
     .want = "acme"},
    {"a tie among the best two: the lower id of them",
     ONLY_COST,
     {{.name = "acme", .cost = 5}, {.name = "globex", .cost = 1}, {.name = "initech", .cost = 1}},
     .want = "globex"},
    {"ties stay with the lower id while both have room",
     ONLY_COST,
     {{.name = "acme"}, {.name = "globex"}},
     .count = 3,
     .want = "acme,acme,acme"},
};

static void test_core_score_ties(void **state) {
  (void)state;
  run_win_cases(tie_cases, NELEM(tie_cases));
}

/* --- the share cap ----------------------------------------------------------------- */

static const win_case_t share_cases[] = {
    {"share cap 0.5: two vendors split evenly though one scores higher",
     {.cost = 1, .share_cap = 0.5},
     {{.name = "acme", .cost = 1}, {.name = "globex", .cost = 2}},
     .count = 10,
     .want = "acme,globex,acme,globex,acme,globex,acme,globex,acme,globex"},
    {"share cap 1: the higher score takes all while it has room",
     {.cost = 1, .share_cap = 1.0},
     {{.name = "acme", .cost = 1, .capacity = 6}, {.name = "globex", .cost = 2}},
     .count = 8,
     .want = "acme,acme,acme,acme,acme,acme,globex,globex"},
    {"share cap 0.5 never leaves work waiting when only the capped vendor has room",
     {.cost = 1, .share_cap = 0.5},
     {{.name = "acme", .cost = 1}, {.name = "globex", .cost = 2, .capacity = 1}},
     .count = 6,
     .want = "acme,globex,acme,acme,acme,acme"},
    {"share cap 0.5, the other vendor's agent full: the capped vendor takes it",
     {.cost = 1, .share_cap = 0.5},
     {{.name = "acme", .cost = 1}, {.name = "globex", .cost = 2}},
     .slots = {0, 2},
     .count = 6,
     .want = "acme,globex,acme,globex,acme,acme"},
    {"share cap 0.1 with a single vendor: it takes everything",
     {.cost = 1, .share_cap = 0.1},
     {{.name = "acme"}},
     .count = 4,
     .want = "acme,acme,acme,acme"},
    {"share cap 0.5, three vendors: none above half, the cheapest first",
     {.cost = 1, .share_cap = 0.5},
     {{.name = "acme", .cost = 1}, {.name = "globex", .cost = 2}, {.name = "initech", .cost = 3}},
     .count = 9,
     .want = "acme,globex,initech,acme,globex,acme,globex,acme,globex"},
    {"share cap 0.5 counts one capability: other work at a vendor does not count",
     {.cost = 1, .share_cap = 0.5},
     {{.name = "acme", .cost = 1}, {.name = "globex", .cost = 2}},
     .fill = {6, 0},
     .count = 4,
     .want = "acme,globex,acme,globex"},
    {"share cap 0.5 applies to eligible vendors only: the region still rules",
     {.cost = 1, .share_cap = 0.5},
     {{.name = "acme", .cost = 1, .region = "US"}, {.name = "globex", .cost = 2}},
     .pkg = {.regions = "US"},
     .count = 3,
     .want = "acme,acme,acme"},
};

static void test_core_score_share_cap(void **state) {
  (void)state;
  run_win_cases(share_cases, NELEM(share_cases));
}

/* The cap is on the in-flight share: when work finishes the split follows. */
static void test_core_score_share_cap_follows_in_flight(void **state) {
  (void)state;
  static const win_case_t c = {
      .w = {.cost = 1, .share_cap = 0.5},
      .vendors = {{.name = "acme", .cost = 1}, {.name = "globex", .cost = 2}}};
  world_t w;
  world_build(&w, &c);
  uint64_t ids[4];
  for (int i = 0; i < 4; i++) {
    ids[i] = fx_submit(w.fx, &(fx_pkg_t){0});
    fx_confirm_assigns(w.fx);
  }
  /* acme, globex, acme, globex */
  assert_int_equal(fx_vendor_of(w.fx, ids[0]), w.vid[0]);
  assert_int_equal(fx_vendor_of(w.fx, ids[1]), w.vid[1]);
  /* acme's two finish: acme holds 0 of 2, so the next two go to acme (1 of 3,
   * 2 of 4: within half); at 2 and 2 both would exceed half, so the better
   * score (acme, 3 of 5); then globex (3 of 6). */
  fx_result(w.fx, w.aid[0], ids[0], 1, BT_OUTCOME_COMPLETED, "ok");
  fx_result(w.fx, w.aid[0], ids[2], 1, BT_OUTCOME_COMPLETED, "ok");
  char got[128] = "";
  for (int i = 0; i < 4; i++)
    place_one(&w, &(fx_pkg_t){0}, got, sizeof got);
  if (strcmp(got, "acme,acme,acme,globex") != 0)
    fail_msg("after acme's work finished: got %s", got);
  fx_free(w.fx);
}

/* --- hard constraints beat any score ------------------------------------------------------- */

/* acme scores best on every term (cheap, weight 10, preferred, in hours, a
 * perfect record) but each row makes it ineligible. */
#define BEST_ACME(...)                                                                     \
  {.name = "acme", .weight = 10, .on_time = 100, .with_deadline = 100, __VA_ARGS__}
#define GLOBEX(...) {.name = "globex", .out_of_hours = true, __VA_ARGS__}

static const win_case_t hard_cases[] = {
    {"outside the package's regions",
     ALL_ONE,
     {BEST_ACME(.region = "EU-DE"), GLOBEX(.cost = 9, .region = "US")},
     .pkg = {.regions = "US", .prefer = "acme"},
     .count = 3,
     .want = "globex,globex,globex"},
    {"missing a certification",
     ALL_ONE,
     {BEST_ACME(.certs = "soc2"), GLOBEX(.cost = 9, .certs = "soc2,iso27001")},
     .pkg = {.certs = "iso27001", .prefer = "acme"},
     .want = "globex"},
    {"over the package's max cost",
     ALL_ONE,
     {BEST_ACME(.cost = 5), GLOBEX(.cost = 1)},
     .pkg = {.has_max_cost = true, .max_cost = 2, .prefer = "acme"},
     .want = "globex"},
    {"avoided",
     ALL_ONE,
     {BEST_ACME(), GLOBEX(.cost = 9)},
     .pkg = {.avoid = "acme", .prefer = "acme"},
     .want = "globex"},
    {"vendor failed",
     ALL_ONE,
     {BEST_ACME(.state = BT_VENDOR_FAILED), GLOBEX(.cost = 9)},
     .want = "globex"},
    {"vendor draining",
     ALL_ONE,
     {BEST_ACME(.state = BT_VENDOR_DRAINING), GLOBEX(.cost = 9)},
     .want = "globex"},
    {"vendor suspended",
     ALL_ONE,
     {BEST_ACME(.state = BT_VENDOR_SUSPENDED), GLOBEX(.cost = 9)},
     .want = "globex"},
    {"vendor at capacity",
     ALL_ONE,
     {BEST_ACME(.capacity = 2), GLOBEX(.cost = 9)},
     .fill = {2, 0},
     .want = "globex"},
    {"its agent's slots full",
     ALL_ONE,
     {BEST_ACME(), GLOBEX(.cost = 9)},
     .fill = {1, 0},
     .slots = {1, 0},
     .want = "globex"},
    {"degraded is not a hard stop: the best vendor takes it",
     ALL_ONE,
     {BEST_ACME(.state = BT_VENDOR_DEGRADED), GLOBEX(.cost = 9)},
     .want = "acme"},
    {"capability not offered",
     ALL_ONE,
     {BEST_ACME(.caps = "review"), GLOBEX(.cost = 9)},
     .want = "globex"},
    {"the only eligible vendor is full: the package waits",
     ALL_ONE,
     {BEST_ACME(.region = "EU-DE"), GLOBEX(.cost = 9, .region = "US", .capacity = 1)},
     .fill = {0, 1},
     .pkg = {.regions = "US"},
     .count = 2,
     .want = "-,-"},
};

static void test_core_score_hard_constraints_win(void **state) {
  (void)state;
  run_win_cases(hard_cases, NELEM(hard_cases));
}

/* Over many placements the best-scoring vendor outside the regions never gets
 * the package: the eligible one takes what it has room for, the rest waits
 * (behind others: no waiting reason), and its freed room goes to the next. */
static void test_core_score_hard_constraints_over_time(void **state) {
  (void)state;
  static const win_case_t c = {
      .w = ALL_ONE,
      .vendors = {BEST_ACME(.region = "EU-DE"), GLOBEX(.cost = 9, .region = "US", .capacity = 3)}};
  world_t w;
  world_build(&w, &c);
  uint64_t ids[20];
  for (int i = 0; i < 20; i++) {
    ids[i] = fx_submit(w.fx, &(fx_pkg_t){.regions = "US", .prefer = "acme", .priority = 9});
    fx_confirm_assigns(w.fx);
  }
  for (int round = 0; round < 6; round++) {
    int at_globex = 0;
    uint64_t one = 0;
    for (int i = 0; i < 20; i++) {
      bt_pkg_state_t st = fx_state(w.fx, ids[i]);
      if (st == BT_PKG_ASSIGNED || st == BT_PKG_RUNNING) {
        assert_int_equal(fx_vendor_of(w.fx, ids[i]), w.vid[1]);
        at_globex++;
        one = ids[i];
      } else if (st == BT_PKG_QUEUED) {
        assert_string_equal(fx_reason(w.fx, ids[i]), "");
      }
    }
    assert_int_equal(at_globex, 3);
    assert_int_equal(bt_core_vendor(w.fx->core, w.vid[0])->in_flight, 0);
    fx_result(w.fx, w.aid[1], one, 1, BT_OUTCOME_COMPLETED, "ok");
    const bt_action_t *as = fx_find(&w.fx->out, BT_ACT_ASSIGN, 0);
    assert_non_null(as);
    assert_int_equal(as->vendor_id, w.vid[1]);
    fx_confirm_assigns(w.fx);
  }
  /* A package without the region goes to acme at once, past the queue. */
  uint64_t free_pkg = fx_submit(w.fx, &(fx_pkg_t){.priority = 0});
  assert_int_equal(fx_vendor_of(w.fx, free_pkg), w.vid[0]);
  fx_free(w.fx);
}

/* A package no vendor may take waits with a reason, and is routed as soon as
 * a vendor that may take it (and an agent of it) appears. */
static void test_core_score_waits_until_a_vendor_appears(void **state) {
  fx_t *fx = *state;
  uint64_t acme = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .region = "EU-DE"});
  fx_agent(fx, acme, "acme-a", "translate", 4);
  uint64_t id = fx_submit(fx, &(fx_pkg_t){.regions = "EU-FR", .certs = "gdpr"});
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  assert_string_equal(fx_reason(fx, id),
                      "no active vendor in EU-FR with capability translate and cert gdpr");
  /* A vendor in the region without the cert: still not eligible. */
  uint64_t wrong = fx_vendor(fx, &(fx_vendor_t){.name = "wrong", .region = "EU-FR"});
  fx_agent(fx, wrong, "wrong-a", "translate", 4);
  assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  uint64_t gx = fx_vendor(fx, &(fx_vendor_t){.name = "globex", .region = "EU-FR",
                                             .certs = "gdpr", .cost = 50});
  assert_int_equal(fx_state(fx, id), BT_PKG_QUEUED);
  assert_string_equal(fx_reason(fx, id),
                      "no connected agent with capability translate at an eligible vendor");
  uint64_t g = fx_agent(fx, gx, "globex-a", "translate", 1);
  assert_int_equal(fx_one(&fx->out, BT_ACT_ASSIGN, id)->agent_id, g);
  assert_string_equal(fx_reason(fx, id), "");
}

/* --- the agent within the vendor ------------------------------------------------------------- */

static void test_core_score_agent_with_most_free_slots(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t a1 = fx_agent(fx, v, "a1", "translate", 2);
  uint64_t a2 = fx_agent(fx, v, "a2", "translate", 5);
  uint64_t a3 = fx_agent(fx, v, "a3", "translate", 3);
  uint64_t p1 = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_agent_of(fx, p1), a2); /* 5 free */
  uint64_t p2 = fx_submit(fx, &(fx_pkg_t){0});
  assert_int_equal(fx_agent_of(fx, p2), a2); /* 4 free against 3 */
  uint64_t p3 = fx_submit(fx, &(fx_pkg_t){0});
  /* 3 free at a2 and a3 against 2 at a1: either of the two */
  assert_true(fx_agent_of(fx, p3) == a2 || fx_agent_of(fx, p3) == a3);
  assert_int_equal(fx_busy(fx, a1), 0);
}

/* --- bt_core_score: the documented formula, term by term -------------------------------------- */

typedef struct {
  const char *what;
  weights_t w;
  fx_vendor_t vendor;
  uint32_t fill;
  bool preferred;
  bt_score_t want;
} formula_case_t;

static const formula_case_t formula_cases[] = {
    {"cost 0.5 (ref 1), 8 of 10 on time, 3 of 4 in flight, preferred, out of hours",
     {.cost = 1, .sla = 2, .util = 0.5, .prefer = 3, .hours = 0.25},
     {.name = "acme", .cost = 0.5, .capacity = 4, .on_time = 8, .with_deadline = 10,
      .out_of_hours = true, .weight = 1.5},
     3,
     true,
     /* 1.5 × (2/3 + 2·0.85 + 0.5·0.25 + 3·1 + 0.25·0) */
     {2.0 / 3.0, 0.85, 0.25, 1.0, 0.0, 1.5, 1.5 * (2.0 / 3.0 + 1.7 + 0.125 + 3.0)}},
    {"free, no history, empty, not preferred, in hours; default weights",
     {.cost = 1, .sla = 1, .util = 1, .prefer = 1, .hours = 0.5},
     {.name = "acme", .cost = 0, .capacity = 10},
     0,
     false,
     {1.0, 0.9, 1.0, 0.0, 1.0, 1.0, 1.0 + 0.9 + 1.0 + 0.0 + 0.5}},
    {"cost 3 with cost_ref 2, full, weight 2",
     {.cost = 2, .util = 1, .hours = 1, .cost_ref = 2},
     {.name = "acme", .cost = 3, .capacity = 5, .weight = 2},
     5,
     false,
     {0.4, 0.9, 0.0, 0.0, 1.0, 2.0, 2.0 * (2 * 0.4 + 0 + 1.0)}},
    {"0 of 3 on time, 1 of 8 in flight",
     {.sla = 1, .util = 1},
     {.name = "acme", .cost = 1, .capacity = 8, .on_time = 0, .with_deadline = 3},
     1,
     false,
     {0.5, 9.0 / 13.0, 0.875, 0.0, 1.0, 1.0, 9.0 / 13.0 + 0.875}},
};

static void near(const char *what, const char *term, double got, double want) {
  if (!(fabs(got - want) < 1e-9))
    fail_msg("%s: %s = %.10f, want %.10f", what, term, got, want);
}

static void test_core_score_formula(void **state) {
  (void)state;
  for (size_t i = 0; i < NELEM(formula_cases); i++) {
    const formula_case_t *c = &formula_cases[i];
    win_case_t wc = {.what = c->what, .w = c->w, .vendors = {c->vendor}, .fill = {c->fill}};
    world_t w;
    world_build(&w, &wc);
    /* Not committed, so it is not routed and changes no figure. */
    uint64_t id = fx_submit_unpersisted(w.fx, &(fx_pkg_t){.prefer = c->preferred ? "acme" : NULL});
    bt_score_t s;
    assert_int_equal(bt_core_score(w.fx->core, id, w.vid[0], &s), 0);
    near(c->what, "cost", s.cost, c->want.cost);
    near(c->what, "sla", s.sla, c->want.sla);
    near(c->what, "util", s.util, c->want.util);
    near(c->what, "prefer", s.prefer, c->want.prefer);
    near(c->what, "hours", s.hours, c->want.hours);
    near(c->what, "weight", s.weight, c->want.weight);
    near(c->what, "total", s.total, c->want.total);
    fx_free(w.fx);
  }
  /* The examples, to four places: cost 0.5 with cost_ref 1 is 0.6667. */
  assert_true(fabs(formula_cases[0].want.cost - 0.6667) < 0.00005);
}

static void test_core_score_unknown_ids(void **state) {
  fx_t *fx = *state;
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  uint64_t id = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  bt_score_t s;
  assert_int_equal(bt_core_score(fx->core, id, v, &s), 0);
  assert_int_equal(bt_core_score(fx->core, id + 1, v, &s), BT_ENOTFOUND);
  assert_int_equal(bt_core_score(fx->core, id, v + 1, &s), BT_ENOTFOUND);
}

/* SLA history from completed results: on-time and late completions with a
 * deadline move the score; completions without a deadline do not. */
static void test_core_score_sla_from_results(void **state) {
  (void)state;
  static const win_case_t c = {.w = ONLY_SLA, .vendors = {{.name = "acme"}, {.name = "globex"}}};
  world_t w;
  world_build(&w, &c);
  fx_t *fx = w.fx;
  /* globex: two completions after their deadline, one without a deadline. */
  for (int i = 0; i < 3; i++) {
    uint64_t id = fx_submit(fx, &(fx_pkg_t){.cap = "fill-globex", .deadline_in = i < 2 ? 1000 : 0});
    fx_confirm_assigns(fx);
    fx_advance(fx, 2000);
    fx_result(fx, w.aid[1], id, 1, BT_OUTCOME_COMPLETED, "ok");
    fx_finish_persisted(fx, id, 1);
  }
  /* acme: one on time — completed at the deadline exactly, which counts. */
  uint64_t id = fx_submit(fx, &(fx_pkg_t){.cap = "fill-acme", .deadline_in = 1000});
  fx_confirm_assigns(fx);
  fx_advance(fx, 1000);
  fx_result(fx, w.aid[0], id, 1, BT_OUTCOME_COMPLETED, "ok");
  const bt_core_vendor_t *a = bt_core_vendor(fx->core, w.vid[0]);
  const bt_core_vendor_t *g = bt_core_vendor(fx->core, w.vid[1]);
  assert_int_equal(a->completed, 1);
  assert_int_equal(a->on_time, 1);
  assert_int_equal(a->with_deadline, 1);
  assert_int_equal(g->on_time, 0);
  assert_int_equal(g->with_deadline, 2);
  assert_int_equal(g->completed, 3);
  uint64_t probe = fx_submit_unpersisted(fx, &(fx_pkg_t){0});
  bt_score_t sa, sg;
  assert_int_equal(bt_core_score(fx->core, probe, w.vid[0], &sa), 0);
  assert_int_equal(bt_core_score(fx->core, probe, w.vid[1], &sg), 0);
  near("acme", "sla", sa.sla, 10.0 / 11.0);
  near("globex", "sla", sg.sla, 9.0 / 12.0);
  /* A failure is not a completion: no change. */
  uint64_t f = fx_submit(fx, &(fx_pkg_t){.cap = "fill-acme", .deadline_in = 1000,
                                         .max_attempts = 1});
  fx_confirm_assigns(fx);
  fx_result(fx, w.aid[0], f, 1, BT_OUTCOME_FAILED, NULL);
  a = bt_core_vendor(fx->core, w.vid[0]);
  assert_int_equal(a->with_deadline, 1);
  assert_int_equal(a->failed, 1);
  /* globex's late record loses the next package. */
  char got[64] = "";
  place_one(&w, &(fx_pkg_t){0}, got, sizeof got);
  assert_string_equal(got, "acme");
  /* Flip acme's record: three late ones (10/14 = 0.714 < 9/12 = 0.75). */
  for (int i = 0; i < 3; i++) {
    uint64_t x = fx_submit(fx, &(fx_pkg_t){.cap = "fill-acme", .deadline_in = 1});
    fx_confirm_assigns(fx);
    fx_advance(fx, 10);
    fx_result(fx, w.aid[0], x, 1, BT_OUTCOME_COMPLETED, "ok");
  }
  got[0] = '\0';
  place_one(&w, &(fx_pkg_t){0}, got, sizeof got);
  assert_string_equal(got, "globex");
  fx_free(fx);
}

/* Working hours flip with bt_core_vendor_set_in_hours and move the next
 * decision (already placed work stays). */
static void test_core_score_hours_flip(void **state) {
  (void)state;
  static const win_case_t c = {.w = ONLY_HOURS, .vendors = {{.name = "acme"}, {.name = "globex"}}};
  world_t w;
  world_build(&w, &c);
  char got[128] = "";
  place_one(&w, &(fx_pkg_t){0}, got, sizeof got);
  bt_core_vendor_set_in_hours(w.fx->core, w.vid[0], false);
  place_one(&w, &(fx_pkg_t){0}, got, sizeof got);
  place_one(&w, &(fx_pkg_t){0}, got, sizeof got);
  bt_core_vendor_set_in_hours(w.fx->core, w.vid[0], true);
  bt_core_vendor_set_in_hours(w.fx->core, w.vid[1], false);
  place_one(&w, &(fx_pkg_t){0}, got, sizeof got);
  bt_core_vendor_set_in_hours(w.fx->core, w.vid[0], false);
  place_one(&w, &(fx_pkg_t){0}, got, sizeof got); /* both out: the lower id */
  bt_core_vendor_set_in_hours(w.fx->core, 999, false); /* unknown: ignored */
  assert_string_equal(got, "acme,globex,globex,acme,acme");
  assert_false(bt_core_vendor(w.fx->core, w.vid[0])->in_hours);
  fx_free(w.fx);
}

/* --- order: priority, deadline, id; aging; not-before ------------------------------------------ */

/* One vendor, one agent with one slot, busy with a blocker while the row's
 * packages arrive (each at its time; the clock ticks at every step). At
 * release_at the blocker finishes and each placed package finishes at once, so
 * the agent takes them one by one: got is the order, by label. */
typedef struct {
  const char *what;
  uint32_t aging_ms;
  struct {
    char label; /* 'a', 'b', … in submission order; 0 ends the list */
    int64_t at; /* ms after the start, non-decreasing */
    fx_pkg_t p;
  } pkgs[8];
  int64_t release_at;
  const char *want; /* labels a, b, c … in placement order */
} order_case_t;

static const order_case_t order_cases[] = {
    {"priority first",
     0,
     {{'a', 0, {.priority = 1}}, {'b', 0, {.priority = 9}}, {'c', 0, {.priority = 5}}},
     0,
     "b,c,a"},
    {"earliest deadline within a priority, none last",
     0,
     {{'a', 0, {.priority = 5, .deadline_in = 3 * 3600000}},
      {'b', 0, {.priority = 5, .deadline_in = 3600000}},
      {'c', 0, {.priority = 5}},
      {'d', 0, {.priority = 5, .deadline_in = 2 * 3600000}}},
     0,
     "b,d,a,c"},
    {"priority beats an earlier deadline",
     0,
     {{'a', 0, {.priority = 1, .deadline_in = 60000}}, {'b', 0, {.priority = 2}}},
     0,
     "b,a"},
    {"equal priority and deadline: the lower id",
     0,
     {{'a', 0, {.priority = 3, .deadline_in = 60000}},
      {'b', 0, {.priority = 3, .deadline_in = 60000}},
      {'c', 0, {.priority = 3, .deadline_in = 60000}}},
     0,
     "a,b,c"},
    {"the same order across requirement classes",
     0,
     {{'a', 0, {.priority = 5, .regions = "EU-DE"}},
      {'b', 0, {.priority = 6, .certs = "iso27001"}},
      {'c', 0, {.priority = 5, .deadline_in = 60000, .avoid = "nobody"}},
      {'d', 0, {.priority = 5, .deadline_in = 30000, .has_max_cost = true, .max_cost = 5}}},
     0,
     "b,d,c,a"},
    {"the same order across capabilities",
     0,
     {{'a', 0, {.priority = 3}}, {'b', 0, {.priority = 7, .cap = "review"}},
      {'c', 0, {.priority = 5, .cap = "label"}}, {'d', 0, {.priority = 5, .deadline_in = 1000}}},
     0,
     "b,d,c,a"},
    {"a late arrival of higher priority goes first",
     0,
     {{'a', 0, {.priority = 4}}, {'b', 0, {.priority = 4}}, {'c', 500, {.priority = 8}}},
     500,
     "c,a,b"},
    {"aging 1 s: a priority-0 package ready 1 s goes before fresh priority 9",
     1000,
     {{'a', 0, {.priority = 0}}, {'b', 1000, {.priority = 9}}, {'c', 1000, {.priority = 9}},
      {'d', 1000, {.priority = 9}}},
     1000,
     "a,b,c,d"},
    {"aging 1 s: ready 999 ms is not overdue yet",
     1000,
     {{'a', 0, {.priority = 0}}, {'b', 999, {.priority = 9}}, {'c', 999, {.priority = 9}}},
     999,
     "b,c,a"},
    {"no aging bound: priority 0 waits behind priority 9 however long",
     0,
     {{'a', 0, {.priority = 0}}, {'b', 3600000, {.priority = 9}}, {'c', 3600000, {.priority = 9}},
      {'d', 3600000, {.priority = 9}}},
     3600000,
     "b,c,d,a"},
    {"aging: the oldest overdue first, whatever its priority",
     1000,
     {{'a', 0, {.priority = 5}}, {'b', 100, {.priority = 1}}, {'c', 200, {.priority = 0}},
      {'d', 1500, {.priority = 9}}, {'e', 1500, {.priority = 8}}},
     1500,
     "a,b,c,d,e"},
    {"aging: overdue packages go by age, fresh ones by priority after them",
     1000,
     {{'a', 0, {.priority = 0}}, {'b', 100, {.priority = 8}}, {'c', 900, {.priority = 2}},
      {'d', 1050, {.priority = 9}}, {'e', 1050, {.priority = 3}}},
     1050,
     /* a (1050) and b (950: not overdue) … at 1050 only a is overdue; then the
      * fresh ones by priority: d (9), b (8), e (3), c (2) */
     "a,d,b,e,c"},
    {"aging across requirement classes and capabilities",
     1000,
     {{'a', 0, {.priority = 0, .cap = "review"}}, {'b', 10, {.priority = 0, .regions = "EU-DE"}},
      {'c', 2000, {.priority = 9}}, {'d', 2000, {.priority = 9, .cap = "label"}}},
     2000,
     "a,b,c,d"},
    {"aging counts from when it became ready, not from submission",
     1000,
     {{'a', 0, {.priority = 0, .not_before_in = 5000}}, {'b', 5000, {.priority = 9}},
      {'c', 5900, {.priority = 9}}},
     5900,
     "b,c,a"},
    {"aging: ready since its not-before for 1 s, overdue",
     1000,
     {{'a', 0, {.priority = 0, .not_before_in = 5000}}, {'b', 5000, {.priority = 9}},
      {'c', 6000, {.priority = 9}}},
     6000,
     "a,b,c"},
    {"not-before: a delayed package does not hold back others",
     0,
     {{'a', 0, {.priority = 9, .not_before_in = 60000}}, {'b', 0, {.priority = 1}}},
     1000,
     "b"},
    {"not-before in the past: routable at once",
     0,
     {{'a', 0, {.priority = 1, .not_before_in = -5000}}, {'b', 0, {.priority = 0}}},
     0,
     "a,b"},
    {"not-before reached: it takes its place by priority",
     0,
     {{'a', 0, {.priority = 9, .not_before_in = 2000}}, {'b', 0, {.priority = 1}},
      {'c', 0, {.priority = 1}}},
     2000,
     "a,b,c"},
};

static void run_order_case(const order_case_t *c) {
  weights_t wt = ALL_ONE;
  bt_core_config_t cfg = cfg_of(&wt, c->aging_ms);
  fx_t *fx = fx_new(&cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme", .caps = "translate,review,label",
                                            .certs = "iso27001"});
  uint64_t a = fx_agent(fx, v, "a1", "translate,review,label", 1);
  uint64_t blocker = fx_submit(fx, &(fx_pkg_t){0});
  fx_confirm_assigns(fx);
  assert_int_equal(fx_agent_of(fx, blocker), a);
  uint64_t ids[8] = {0};
  size_t n = 0;
  int64_t t = 0;
  for (; n < 8 && c->pkgs[n].label; n++) {
    assert_int_equal(c->pkgs[n].label, 'a' + (int)n);
    if (c->pkgs[n].at > t) {
      fx_advance(fx, (uint64_t)(c->pkgs[n].at - t));
      t = c->pkgs[n].at;
      bt_core_agent_seen(fx->core, a, &fx->now);
      fx_tick(fx);
      assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
    }
    ids[n] = fx_submit(fx, &c->pkgs[n].p);
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  }
  if (c->release_at > t) {
    fx_advance(fx, (uint64_t)(c->release_at - t));
    bt_core_agent_seen(fx->core, a, &fx->now);
    fx_tick(fx);
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
  }
  char got[64] = "";
  uint64_t done = blocker;
  for (size_t k = 0; k <= n; k++) {
    fx_result(fx, a, done, 1, BT_OUTCOME_COMPLETED, "ok");
    const bt_action_t *as = fx_find(&fx->out, BT_ACT_ASSIGN, 0);
    if (as == NULL)
      break;
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 1);
    char label = '?';
    for (size_t i = 0; i < n; i++)
      if (ids[i] == as->package_id)
        label = (char)('a' + i);
    size_t o = strlen(got);
    snprintf(got + o, sizeof got - o, "%s%c", o ? "," : "", label);
    done = as->package_id;
    fx_confirm_assigns(fx);
  }
  if (strcmp(got, c->want) != 0)
    fail_msg("%s: got %s, want %s", c->what, got, c->want);
  fx_free(fx);
}

static void test_core_score_order(void **state) {
  (void)state;
  for (size_t i = 0; i < NELEM(order_cases); i++)
    run_order_case(&order_cases[i]);
}

/* Sustained high-priority load: every 100 ms one priority-9 package arrives and
 * one finishes, so the queue never empties. A priority-0 package starts within
 * the aging bound (plus one step); without a bound it never does. */
static void test_core_score_aging_bounds_wait_under_load(void **state) {
  (void)state;
  static const uint32_t bounds[] = {300, 1000, 2500, 0};
  for (size_t b = 0; b < NELEM(bounds); b++) {
    weights_t wt = ALL_ONE;
    bt_core_config_t cfg = cfg_of(&wt, bounds[b]);
    fx_t *fx = fx_new(&cfg);
    uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
    uint64_t a = fx_agent(fx, v, "a1", "translate", 2);
    uint64_t running[2];
    for (int i = 0; i < 2; i++) {
      running[i] = fx_submit(fx, &(fx_pkg_t){.priority = 9});
      fx_confirm_assigns(fx);
    }
    for (int i = 0; i < 3; i++)
      fx_submit(fx, &(fx_pkg_t){.priority = 9});
    uint64_t low = fx_submit(fx, &(fx_pkg_t){.priority = 0});
    int64_t t0 = fx->now.at, started = -1;
    for (int step = 0; step < 100 && started < 0; step++) {
      fx_advance(fx, 100);
      bt_core_agent_seen(fx->core, a, &fx->now);
      fx_tick(fx);
      fx_submit(fx, &(fx_pkg_t){.priority = 9});
      assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0); /* both slots busy */
      uint64_t done = running[step % 2];
      fx_result(fx, a, done, 1, BT_OUTCOME_COMPLETED, "ok");
      const bt_action_t *as = fx_one(&fx->out, BT_ACT_ASSIGN, 0);
      running[step % 2] = as->package_id;
      if (as->package_id == low)
        started = fx->now.at - t0;
      fx_confirm_assigns(fx);
    }
    if (bounds[b] == 0) {
      if (started >= 0)
        fail_msg("no bound: priority 0 started after %" PRId64 " ms under load", started);
    } else if (started < 0 || started < (int64_t)bounds[b] ||
               started > (int64_t)bounds[b] + 100) {
      fail_msg("bound %u: priority 0 started after %" PRId64 " ms", bounds[b], started);
    }
    fx_free(fx);
  }
}

/* Not before: not routed before its time, with a waiting reason, and at the
 * first tick at or after it. */
static void test_core_score_not_before(void **state) {
  fx_t *fx = *state;
  bt_core_config_t cfg = fx->cfg;
  cfg.lease_ms = 3600000;
  fx_reconfigure(fx, &cfg);
  uint64_t v = fx_vendor(fx, &(fx_vendor_t){.name = "acme"});
  fx_agent(fx, v, "a1", "translate", 8);
  static const int64_t delays[] = {1, 1000, 2500, 60000};
  uint64_t ids[4];
  for (size_t i = 0; i < NELEM(delays); i++) {
    ids[i] = fx_submit(fx, &(fx_pkg_t){.not_before_in = delays[i], .priority = 9});
    assert_int_equal(fx_count(&fx->out, BT_ACT_ASSIGN), 0);
    assert_true(strncmp(fx_reason(fx, ids[i]), "not before ", 11) == 0);
  }
  int64_t start = fx->now.at;
  for (int64_t t = 0; t <= 60000; t += 250) {
    if (t > 0) {
      fx_advance(fx, 250);
      fx_tick(fx);
    }
    for (size_t i = 0; i < NELEM(delays); i++) {
      bt_pkg_state_t st = fx_state(fx, ids[i]);
      bool due = fx->now.at >= start + delays[i];
      if (!due && st != BT_PKG_QUEUED)
        fail_msg("package %zu routed %" PRId64 " ms before its time", i,
                 start + delays[i] - fx->now.at);
      if (due && st == BT_PKG_QUEUED)
        fail_msg("package %zu not routed at %" PRId64 " ms (due at %" PRId64 ")", i,
                 fx->now.at - start, delays[i]);
    }
  }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_score_cost),
      cmocka_unit_test(test_core_score_sla),
      cmocka_unit_test(test_core_score_util),
      cmocka_unit_test(test_core_score_prefer),
      cmocka_unit_test(test_core_score_hours),
      cmocka_unit_test(test_core_score_weight),
      cmocka_unit_test(test_core_score_ties),
      cmocka_unit_test(test_core_score_share_cap),
      cmocka_unit_test(test_core_score_share_cap_follows_in_flight),
      cmocka_unit_test(test_core_score_hard_constraints_win),
      cmocka_unit_test(test_core_score_hard_constraints_over_time),
      T(test_core_score_waits_until_a_vendor_appears),
      T(test_core_score_agent_with_most_free_slots),
      cmocka_unit_test(test_core_score_formula),
      T(test_core_score_unknown_ids),
      cmocka_unit_test(test_core_score_sla_from_results),
      cmocka_unit_test(test_core_score_hours_flip),
      cmocka_unit_test(test_core_score_order),
      cmocka_unit_test(test_core_score_aging_bounds_wait_under_load),
      T(test_core_score_not_before),
  };
#undef T
  return cmocka_run_group_tests_name("test_core_score", tests, NULL, NULL);
}

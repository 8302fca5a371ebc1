/*
 * server/core: a seeded randomized property test. A small simulated world —
 * vendors with random regions, capabilities, certifications, capacities, costs
 * and states; agents that connect, run, fail, hand back, crash and come back; a
 * shell that commits (or fails to commit) what the core asks for, in random
 * order — drives the core through thousands of events. After every event the
 * invariants below must hold:
 *
 *  - no agent holds more attempts than its slots; an agent that is not
 *    connected holds none;
 *  - no vendor's in_flight exceeds its capacity, and it equals the attempts its
 *    agents hold; agents_connected matches the agents;
 *  - every assigned or running package sits with a connected agent of a vendor
 *    that accepts work, offers the capability, and passes every hard
 *    requirement of the package (region, certifications, cost, avoided);
 *  - work conservation: no routable queued package is left waiting while a
 *    connected agent that may take it has a free slot at a vendor with room;
 *  - per package, FINISH attempts only grow and at most one completes it;
 *    every result gets exactly one ACK_RESULT;
 *  - the figures match the packages.
 * Then the world is drained (all commits land, agents finish what they run)
 * and every package left open must be queued with a waiting reason.
 *
 * The same seed must give the same action stream: each seed runs twice and
 * the hashes of the two streams are compared. BT_CORE_SEED=<n> runs one seed.
 */
#include "core_fixture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_EVENTS 4000
#define MAX_VENDORS 6
#define MAX_AGENTS 10
#define MAX_RUNS 64
#define MAX_PKGS 8192

static const char *const REGIONS[] = {"EU-DE", "EU-FR", "US", "IN"};
static const char *const CAPS[] = {"translate", "review", "label"};
static const char *const CERTS[] = {"iso27001", "soc2", "gdpr"};
#define NELEM(a) (sizeof(a) / sizeof *(a))

/* --- a PRNG of our own (xorshift64*), so the stream is the test's ------------- */

typedef struct {
  uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545f4914f6cdd1dull;
}
static uint32_t below(rng_t *r, uint32_t n) { return (uint32_t)(rnd(r) % n); }
static bool chance(rng_t *r, uint32_t pct) { return below(r, 100) < pct; }

/* A comma list of a random non-empty (or possibly empty) subset of v. */
static void subset(rng_t *r, const char *const *v, size_t n, bool nonempty,
                   char *buf, size_t len) {
  buf[0] = '\0';
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (chance(r, 50)) {
      o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "", v[i]);
    }
  }
  if (nonempty && o == 0)
    snprintf(buf, len, "%s", v[below(r, (uint32_t)n)]);
}

/* --- the simulated world ---------------------------------------------------------- */

typedef struct {
  uint64_t pkg;
  uint32_t attempt;
  bool started;
} run_t;

typedef struct {
  uint64_t vendor_id;
  char name[16];
  char caps[64];
  uint32_t slots;
  bool bad;        /* advertises a capability its vendor lacks */
  uint64_t id;     /* 0 until a hello succeeded */
  bool session;    /* the agent believes it has a session */
  run_t runs[MAX_RUNS];
  size_t n_runs;
} magent_t;

typedef struct {
  uint64_t pkg;
  uint32_t attempt;
  uint64_t agent_id;
} pend_t;

typedef struct {
  uint64_t agent_id;
  uint64_t pkg;
  uint32_t attempt;
  bt_outcome_t outcome;
} sent_t;

typedef struct {
  bool persisted;        /* its insert committed */
  uint32_t last_finish;  /* highest attempt with a FINISH */
  uint32_t completions;
} mpkg_t;

typedef struct {
  rng_t rng;
  fx_t *fx;
  size_t n_vendors;
  uint64_t vendor_ids[MAX_VENDORS];
  magent_t agents[MAX_AGENTS];
  size_t n_agents;
  pend_t pend_pkg[MAX_PKGS], pend_assign[MAX_PKGS], pend_finish[MAX_PKGS];
  size_t n_pend_pkg, n_pend_assign, n_pend_finish;
  sent_t sent[64];
  size_t n_sent;
  mpkg_t pkgs[MAX_PKGS]; /* by package id */
  uint64_t open[MAX_PKGS];
  size_t n_open;
  uint64_t max_pkg;
  int64_t last_tick_at;
  uint64_t hash;
  size_t step;
  uint64_t seed;
  size_t acks_expected; /* results fed since the last take_actions() */
  char checkpoint[32];  /* PROGRESS borrows it until the actions are taken */
  /* figures for the report line */
  size_t n_assign, n_finish, n_completed, n_stale, n_lost;
} sim_t;

static void hash_bytes(sim_t *s, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) {
    s->hash ^= b[i];
    s->hash *= 0x100000001b3ull;
  }
}
static void hash_u64(sim_t *s, uint64_t v) { hash_bytes(s, &v, sizeof v); }
static void hash_str(sim_t *s, const char *t) {
  if (t)
    hash_bytes(s, t, strlen(t) + 1);
  else
    hash_u64(s, 0xdead);
}

static void fail_at(const sim_t *s, const char *what) {
  fail_msg("seed %" PRIu64 " step %zu: %s", s->seed, s->step, what);
}

static magent_t *agent_by_id(sim_t *s, uint64_t id) {
  for (size_t i = 0; i < s->n_agents; i++)
    if (s->agents[i].id == id)
      return &s->agents[i];
  return NULL;
}

static void drop_run(magent_t *m, uint64_t pkg, uint32_t attempt) {
  for (size_t i = 0; i < m->n_runs; i++) {
    if (m->runs[i].pkg == pkg && m->runs[i].attempt == attempt) {
      m->runs[i] = m->runs[--m->n_runs];
      return;
    }
  }
}

/* The shell: records what the core asked for, checks per-action rules and
 * folds the stream into the hash. */
static void take_actions(sim_t *s) {
  const bt_actions_t *out = &s->fx->out;
  size_t acks = 0, acks_expected = s->acks_expected;
  s->acks_expected = 0;
  for (size_t i = 0; i < out->n; i++) {
    const bt_action_t *a = &out->v[i];
    hash_u64(s, a->kind);
    hash_u64(s, a->package_id);
    hash_u64(s, a->attempt);
    hash_u64(s, a->agent_id);
    hash_u64(s, a->vendor_id);
    hash_u64(s, a->token);
    hash_u64(s, (uint64_t)(int64_t)a->code);
    hash_u64(s, a->outcome);
    hash_u64(s, a->state);
    hash_u64(s, (uint64_t)(int64_t)a->exit_code);
    hash_u64(s, (uint64_t)a->at);
    hash_u64(s, (uint64_t)a->retry_at);
    hash_u64(s, (uint64_t)(int64_t)a->progress);
    hash_u64(s, a->reason);
    hash_u64(s, a->len);
    if (a->len)
      hash_bytes(s, a->data, a->len);
    hash_str(s, a->text);
    hash_str(s, a->text2);
    hash_str(s, a->text3);
    switch (a->kind) {
    case BT_ACT_PERSIST_PACKAGE:
      assert_true(s->n_pend_pkg < MAX_PKGS);
      s->pend_pkg[s->n_pend_pkg++] = (pend_t){a->package_id, 0, 0};
      assert_true(a->package_id < MAX_PKGS);
      if (a->package_id > s->max_pkg)
        s->max_pkg = a->package_id;
      s->open[s->n_open++] = a->package_id;
      break;
    case BT_ACT_ASSIGN:
      assert_true(s->n_pend_assign < MAX_PKGS);
      s->pend_assign[s->n_pend_assign++] = (pend_t){a->package_id, a->attempt, a->agent_id};
      s->n_assign++;
      break;
    case BT_ACT_FINISH: {
      mpkg_t *p = &s->pkgs[a->package_id];
      if (a->attempt <= p->last_finish)
        fail_at(s, "FINISH for an attempt that was already finished");
      p->last_finish = a->attempt;
      if (a->state == BT_PKG_COMPLETED && ++p->completions > 1)
        fail_at(s, "package completed twice");
      s->pend_finish[s->n_pend_finish++] = (pend_t){a->package_id, a->attempt, 0};
      s->n_finish++;
      s->n_completed += a->state == BT_PKG_COMPLETED;
      s->n_lost += a->outcome == BT_OUTCOME_LOST;
      break;
    }
    case BT_ACT_CANCEL: {
      magent_t *m = agent_by_id(s, a->agent_id);
      assert_non_null(m);
      drop_run(m, a->package_id, a->attempt);
      break;
    }
    case BT_ACT_END_SESSION: {
      magent_t *m = agent_by_id(s, a->agent_id);
      assert_non_null(m);
      m->session = false; /* its next message gets "unknown session" */
      break;
    }
    case BT_ACT_ACK_RESULT:
      acks++;
      if (a->code != 0 && a->code != BT_ESTALE)
        fail_at(s, "ACK_RESULT with a code other than 0 or stale");
      s->n_stale += a->code == BT_ESTALE;
      break;
    default:
      break;
    }
  }
  if (acks != acks_expected)
    fail_at(s, "a result did not get exactly one ACK_RESULT");
}

/* --- invariants ---------------------------------------------------------------------- */

static bool has_str(const char *const *v, size_t n, const char *x) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], x) == 0)
      return true;
  return false;
}

static bool has_sym(const bt_core_t *core, const bt_sym_t *v, uint32_t n,
                    const char *x) {
  for (uint32_t i = 0; i < n; i++)
    if (strcmp(bt_core_sym(core, v[i]), x) == 0)
      return true;
  return false;
}

/* The hard constraints, computed here from the views, independently of the
 * core's own eligibility code. */
static bool may_take(const bt_core_t *core, const bt_pkg_view_t *p,
                     const bt_core_vendor_t *v, const bt_agent_view_t *a) {
  if (v->state != BT_VENDOR_ACTIVE && v->state != BT_VENDOR_DEGRADED)
    return false;
  if (!has_sym(core, v->caps, v->n_caps, p->capability) ||
      !has_sym(core, a->caps, a->n_caps, p->capability))
    return false;
  if (p->n_regions > 0 && !has_str(p->regions, p->n_regions, v->region))
    return false;
  for (size_t i = 0; i < p->n_certs; i++)
    if (!has_sym(core, v->certs, v->n_certs, p->certs[i]))
      return false;
  if (p->max_cost >= 0 && v->cost > p->max_cost)
    return false;
  if (has_str(p->avoid, p->n_avoid, v->name))
    return false;
  return true;
}

static void check_invariants(sim_t *s) {
  const bt_core_t *core = s->fx->core;
  size_t na = bt_core_agent_count(core);
  bt_agent_view_t av[MAX_AGENTS];
  uint32_t held[MAX_AGENTS] = {0};
  assert_true(na <= MAX_AGENTS);
  for (size_t i = 0; i < na; i++) {
    assert_int_equal(bt_core_agent_at(core, i, &av[i]), 0);
    if (av[i].busy > av[i].slots)
      fail_at(s, "an agent holds more than its slots");
    if (av[i].state != BT_AGENT_CONNECTED && av[i].busy != 0)
      fail_at(s, "an agent that is not connected holds work");
  }
  for (size_t j = 0; j < bt_core_vendor_count(core); j++) {
    const bt_core_vendor_t *v = bt_core_vendor_at(core, j);
    uint32_t busy = 0, connected = 0;
    for (size_t i = 0; i < na; i++) {
      if (av[i].vendor_id != v->id)
        continue;
      busy += av[i].busy;
      connected += av[i].state == BT_AGENT_CONNECTED;
    }
    if (v->in_flight > v->capacity)
      fail_at(s, "a vendor is over its capacity");
    if (v->in_flight != busy)
      fail_at(s, "vendor in_flight differs from what its agents hold");
    if (v->agents_connected != connected)
      fail_at(s, "vendor agents_connected differs from its agents");
  }

  uint64_t by_state[BT_PKG__COUNT] = {0};
  size_t keep = 0;
  for (size_t k = 0; k < s->n_open; k++) {
    uint64_t id = s->open[k];
    bt_pkg_view_t p;
    if (bt_core_package_view(core, id, &p) != 0)
      continue; /* left memory for good */
    s->open[keep++] = id;
    by_state[p.state]++;
    if (p.state == BT_PKG_ASSIGNED || p.state == BT_PKG_RUNNING) {
      size_t ai = na;
      for (size_t i = 0; i < na; i++)
        if (av[i].id == p.agent_id)
          ai = i;
      if (ai == na)
        fail_at(s, "an assigned package names an unknown agent");
      held[ai]++;
      const bt_core_vendor_t *v = bt_core_vendor(core, p.vendor_id);
      if (v == NULL || av[ai].vendor_id != v->id)
        fail_at(s, "an assigned package's vendor is not its agent's");
      if (av[ai].state != BT_AGENT_CONNECTED)
        fail_at(s, "an assigned package sits with an agent that is not connected");
      if (!may_take(core, &p, v, &av[ai]))
        fail_at(s, "an assigned package breaks a hard constraint");
    }
  }
  s->n_open = keep;
  for (size_t i = 0; i < na; i++)
    if (held[i] != av[i].busy)
      fail_at(s, "an agent's busy count differs from the packages it holds");

  /* Work conservation. */
  for (size_t k = 0; k < s->n_open; k++) {
    bt_pkg_view_t p;
    bt_core_package_view(core, s->open[k], &p);
    if (p.state != BT_PKG_QUEUED || !s->pkgs[p.id].persisted ||
        p.not_before_at > s->last_tick_at)
      continue;
    for (size_t i = 0; i < na; i++) {
      if (av[i].state != BT_AGENT_CONNECTED || av[i].busy >= av[i].slots)
        continue;
      const bt_core_vendor_t *v = bt_core_vendor(core, av[i].vendor_id);
      if (v->in_flight >= v->capacity || !may_take(core, &p, v, &av[i]))
        continue;
      char msg[160];
      snprintf(msg, sizeof msg,
               "package %" PRIu64 " waits while agent %" PRIu64 " could take it",
               p.id, av[i].id);
      fail_at(s, msg);
    }
  }

  bt_core_stats_t st;
  bt_core_stats(core, &s->fx->now, &st);
  for (int x = BT_PKG_QUEUED; x <= BT_PKG_RUNNING; x++)
    if (st.by_state[x] != by_state[x])
      fail_at(s, "stats differ from the open packages");
  if (st.waiting > by_state[BT_PKG_QUEUED])
    fail_at(s, "more packages waiting than queued");
}

/* --- events ------------------------------------------------------------------------------ */

static void ev_submit(sim_t *s) {
  rng_t *r = &s->rng;
  size_t n = 1 + below(r, 4);
  fx_spec_t specs[4];
  bt_pkg_spec_t v[4];
  char regions[4][64], certs[4][64], avoid[4][16], prefer[4][16], key[4][16];
  for (size_t i = 0; i < n; i++) {
    fx_pkg_t p = {0};
    p.cap = chance(r, 3) ? "transcribe" : CAPS[below(r, NELEM(CAPS))];
    p.priority = below(r, 10);
    p.deadline_in = chance(r, 50) ? 1 + below(r, 100000) : 0;
    p.not_before_in = chance(r, 10) ? 1 + below(r, 5000) : 0;
    if (chance(r, 30)) {
      subset(r, REGIONS, NELEM(REGIONS), true, regions[i], sizeof regions[i]);
      p.regions = regions[i];
    }
    if (chance(r, 20)) {
      subset(r, CERTS, NELEM(CERTS), true, certs[i], sizeof certs[i]);
      p.certs = certs[i];
    }
    if (chance(r, 20)) {
      p.has_max_cost = true;
      p.max_cost = below(r, 10);
    }
    if (chance(r, 10)) {
      snprintf(avoid[i], sizeof avoid[i], "v%u", below(r, (uint32_t)s->n_vendors));
      p.avoid = avoid[i];
    }
    if (chance(r, 10)) {
      snprintf(prefer[i], sizeof prefer[i], "v%u", below(r, (uint32_t)s->n_vendors));
      p.prefer = prefer[i];
    }
    p.max_attempts = chance(r, 50) ? 0 : 1 + below(r, 4);
    if (chance(r, 30)) {
      snprintf(key[i], sizeof key[i], "k%u", below(r, 30));
      p.key = key[i];
    }
    fx_spec(s->fx, &p, &specs[i]);
    v[i] = specs[i].spec;
  }
  bt_submit_result_t res[4];
  fx_clear(s->fx);
  assert_int_equal(bt_core_submit(s->fx->core, v, n, s->fx->token++, &s->fx->now, res,
                                  &s->fx->out),
                   0);
  for (size_t i = 0; i < n; i++)
    if (res[i].duplicate && bt_core_package(s->fx->core, res[i].id) == NULL)
      fail_at(s, "a duplicate names a package that is not open");
}

static pend_t take_pending(sim_t *s, pend_t *v, size_t *n) {
  size_t i = below(&s->rng, (uint32_t)*n);
  pend_t p = v[i];
  v[i] = v[--*n];
  return p;
}

static void ev_persist_pkg(sim_t *s) {
  if (s->n_pend_pkg == 0)
    return;
  pend_t p = take_pending(s, s->pend_pkg, &s->n_pend_pkg);
  uint32_t roll = below(&s->rng, 100);
  bool ok = roll >= 5;
  uint64_t existing = roll >= 95 ? 1 : 0;
  fx_clear(s->fx);
  bt_core_package_persisted(s->fx->core, p.pkg, ok, existing, &s->fx->now, &s->fx->out);
  if (ok && !existing)
    s->pkgs[p.pkg].persisted = true;
}

static void ev_persist_assign(sim_t *s) {
  if (s->n_pend_assign == 0)
    return;
  pend_t p = take_pending(s, s->pend_assign, &s->n_pend_assign);
  bool ok = chance(&s->rng, 95);
  fx_clear(s->fx);
  bt_core_assign_persisted(s->fx->core, p.pkg, p.attempt, ok, &s->fx->now, &s->fx->out);
  magent_t *m = agent_by_id(s, p.agent_id);
  /* The shell sends a committed assignment to the agent's session. */
  if (ok && m != NULL && m->session) {
    assert_true(m->n_runs < MAX_RUNS);
    m->runs[m->n_runs++] = (run_t){p.pkg, p.attempt, false};
  }
}

static void ev_persist_finish(sim_t *s) {
  if (s->n_pend_finish == 0)
    return;
  pend_t p = take_pending(s, s->pend_finish, &s->n_pend_finish);
  fx_finish_persisted(s->fx, p.pkg, p.attempt);
}

static magent_t *agent_with_runs(sim_t *s) {
  size_t start = below(&s->rng, (uint32_t)s->n_agents);
  for (size_t k = 0; k < s->n_agents; k++) {
    magent_t *m = &s->agents[(start + k) % s->n_agents];
    if (m->session && m->n_runs > 0)
      return m;
  }
  return NULL;
}

static void ev_started(sim_t *s) {
  magent_t *m = agent_with_runs(s);
  if (m == NULL)
    return;
  run_t *r = &m->runs[below(&s->rng, (uint32_t)m->n_runs)];
  r->started = true;
  fx_started(s->fx, m->id, r->pkg, r->attempt);
}

static void ev_progress(sim_t *s) {
  magent_t *m = agent_with_runs(s);
  if (m == NULL)
    return;
  run_t *r = &m->runs[below(&s->rng, (uint32_t)m->n_runs)];
  char *cp = s->checkpoint;
  int n = snprintf(cp, sizeof s->checkpoint, "cp%zu", s->step);
  fx_clear(s->fx);
  bt_core_agent_progress(s->fx->core, m->id, r->pkg, r->attempt,
                         (int)below(&s->rng, 101), chance(&s->rng, 50) ? cp : NULL,
                         (size_t)n, &s->fx->now, &s->fx->out);
}

static void send_result(sim_t *s, uint64_t agent_id, uint64_t pkg, uint32_t attempt,
                        bt_outcome_t o) {
  int rv = fx_result(s->fx, agent_id, pkg, attempt, o, "output");
  const bt_action_t *ack = fx_find(&s->fx->out, BT_ACT_ACK_RESULT, 0);
  if (ack == NULL || ack->code != rv)
    fail_at(s, "the return code differs from the ACK_RESULT code");
  s->acks_expected = 1;
}

static void ev_result(sim_t *s) {
  magent_t *m = agent_with_runs(s);
  if (m == NULL)
    return;
  size_t i = below(&s->rng, (uint32_t)m->n_runs);
  run_t r = m->runs[i];
  m->runs[i] = m->runs[--m->n_runs];
  uint32_t roll = below(&s->rng, 100);
  bt_outcome_t o = roll < 60   ? BT_OUTCOME_COMPLETED
                   : roll < 80 ? BT_OUTCOME_FAILED
                   : roll < 90 ? BT_OUTCOME_TRANSIENT
                               : BT_OUTCOME_HANDED_BACK;
  sent_t *x = &s->sent[s->n_sent < NELEM(s->sent) ? s->n_sent++ : below(&s->rng, NELEM(s->sent))];
  *x = (sent_t){m->id, r.pkg, r.attempt, o};
  send_result(s, m->id, r.pkg, r.attempt, o);
}

static void ev_resend(sim_t *s) {
  if (s->n_sent == 0)
    return;
  sent_t x = s->sent[below(&s->rng, (uint32_t)s->n_sent)];
  send_result(s, x.agent_id, x.pkg, x.attempt, x.outcome);
}

static void ev_bogus_result(sim_t *s) {
  magent_t *m = &s->agents[below(&s->rng, (uint32_t)s->n_agents)];
  if (m->id == 0)
    return;
  uint64_t pkg = 1 + below(&s->rng, (uint32_t)(s->max_pkg + 5));
  uint32_t attempt = below(&s->rng, 4);
  /* Not one of its current runs (those are sent by ev_result). */
  for (size_t i = 0; i < m->n_runs; i++)
    if (m->runs[i].pkg == pkg && m->runs[i].attempt == attempt)
      return;
  send_result(s, m->id, pkg, attempt, BT_OUTCOME_COMPLETED);
}

static void ev_ready(sim_t *s) {
  magent_t *m = &s->agents[below(&s->rng, (uint32_t)s->n_agents)];
  if (!m->session)
    return;
  fx_clear(s->fx);
  bt_core_agent_ready(s->fx->core, m->id, 1, &s->fx->now, &s->fx->out);
}

static void ev_hello(sim_t *s, magent_t *m) {
  bt_held_t held[MAX_RUNS + 1];
  size_t n = 0;
  for (size_t i = 0; i < m->n_runs; i++)
    held[n++] = (bt_held_t){m->runs[i].pkg, m->runs[i].attempt};
  if (chance(&s->rng, 10) && s->max_pkg > 0)
    held[n++] = (bt_held_t){1 + below(&s->rng, (uint32_t)s->max_pkg),
                            below(&s->rng, 3)};
  uint64_t id = 0;
  int rv = fx_hello(s->fx, m->vendor_id, m->name, m->caps, m->slots, held, n, &id);
  const bt_core_vendor_t *v = bt_core_vendor(s->fx->core, m->vendor_id);
  int want = m->bad ? BT_EINVAL : v->state == BT_VENDOR_SUSPENDED ? BT_ESTATE : 0;
  if (rv != want)
    fail_at(s, "hello answered unexpectedly");
  if (rv != 0)
    return;
  if (m->id != 0 && m->id != id)
    fail_at(s, "an agent changed its id");
  m->id = id;
  m->session = true;
}

static void ev_hello_any(sim_t *s) {
  magent_t *m = &s->agents[below(&s->rng, (uint32_t)s->n_agents)];
  /* Mostly agents without a session; sometimes a reconnect over a live one. */
  if (m->session && !chance(&s->rng, 20))
    return;
  ev_hello(s, m);
}

static void ev_bye(sim_t *s) {
  magent_t *m = &s->agents[below(&s->rng, (uint32_t)s->n_agents)];
  if (!m->session)
    return;
  fx_clear(s->fx);
  bt_core_agent_bye(s->fx->core, m->id, &s->fx->now, &s->fx->out);
  m->session = false;
  m->n_runs = 0;
}

/* The agent's process dies: its runs vanish; the core finds out by the lease. */
static void ev_crash(sim_t *s) {
  magent_t *m = &s->agents[below(&s->rng, (uint32_t)s->n_agents)];
  m->session = false;
  m->n_runs = 0;
}

static void ev_time(sim_t *s, uint32_t max_ms, uint32_t heartbeat_pct) {
  fx_advance(s->fx, below(&s->rng, max_ms));
  for (size_t i = 0; i < s->n_agents; i++)
    if (s->agents[i].session && chance(&s->rng, heartbeat_pct))
      bt_core_agent_seen(s->fx->core, s->agents[i].id, &s->fx->now);
  uint64_t next = fx_tick(s->fx);
  if (next != UINT64_MAX && next <= s->fx->now.ms)
    fail_at(s, "tick named a deadline that is not in the future");
  s->last_tick_at = s->fx->now.at;
}

/* --- the run ------------------------------------------------------------------------------ */

static void build_world(sim_t *s) {
  rng_t *r = &s->rng;
  s->n_vendors = 2 + below(r, MAX_VENDORS - 1);
  for (size_t i = 0; i < s->n_vendors; i++) {
    char name[16], caps[64], certs[64];
    snprintf(name, sizeof name, "v%u", (unsigned)i);
    subset(r, CAPS, NELEM(CAPS), true, caps, sizeof caps);
    subset(r, CERTS, NELEM(CERTS), false, certs, sizeof certs);
    uint32_t roll = below(r, 100);
    bt_vendor_state_t st = roll < 70   ? BT_VENDOR_ACTIVE
                           : roll < 80 ? BT_VENDOR_DEGRADED
                           : roll < 90 ? BT_VENDOR_DRAINING
                           : roll < 95 ? BT_VENDOR_FAILED
                                       : BT_VENDOR_SUSPENDED;
    s->vendor_ids[i] = fx_vendor(s->fx, &(fx_vendor_t){
                                            .name = name,
                                            .region = REGIONS[below(r, NELEM(REGIONS))],
                                            .caps = caps,
                                            .certs = certs,
                                            .capacity = 1 + below(r, 6),
                                            .cost = below(r, 10),
                                            .state = st,
                                        });
  }
  s->n_agents = 3 + below(r, MAX_AGENTS - 2);
  for (size_t i = 0; i < s->n_agents; i++) {
    magent_t *m = &s->agents[i];
    size_t vi = below(r, (uint32_t)s->n_vendors);
    m->vendor_id = s->vendor_ids[vi];
    snprintf(m->name, sizeof m->name, "a%u", (unsigned)i);
    const bt_core_vendor_t *v = bt_core_vendor(s->fx->core, m->vendor_id);
    const char *vc[8];
    for (uint32_t k = 0; k < v->n_caps; k++)
      vc[k] = bt_core_sym(s->fx->core, v->caps[k]);
    subset(r, vc, v->n_caps, true, m->caps, sizeof m->caps);
    m->bad = chance(r, 5);
    if (m->bad)
      strcat(m->caps, ",transcribe");
    m->slots = 1 + below(r, 4);
  }
  fx_clear(s->fx);
}

static uint64_t run_sim(uint64_t seed, bool verbose) {
  sim_t *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->seed = seed;
  s->rng.s = seed ? seed : 1;
  bt_core_config_t cfg;
  bt_core_config_default(&cfg);
  cfg.seed = seed ^ 0x5eed;
  cfg.retry_base_ms = 200;
  cfg.retry_max_ms = 3000;
  s->fx = fx_new(&cfg);
  s->hash = 0xcbf29ce484222325ull;
  s->last_tick_at = s->fx->now.at;
  build_world(s);
  for (size_t i = 0; i < s->n_agents; i++)
    if (chance(&s->rng, 70)) {
      ev_hello(s, &s->agents[i]);
      take_actions(s);
    }

  static const struct {
    int weight;
    int ev;
  } table[] = {{12, 0}, {12, 1}, {12, 2}, {8, 3},  {5, 4}, {12, 5}, {3, 6}, {2, 7},
               {10, 8}, {10, 9}, {4, 10}, {5, 11}, {1, 12}, {1, 13}};
  int total = 0;
  for (size_t i = 0; i < NELEM(table); i++)
    total += table[i].weight;
  for (s->step = 0; s->step < N_EVENTS; s->step++) {
    int roll = (int)below(&s->rng, (uint32_t)total), ev = 0;
    for (size_t i = 0; i < NELEM(table); i++) {
      if (roll < table[i].weight) {
        ev = table[i].ev;
        break;
      }
      roll -= table[i].weight;
    }
    fx_clear(s->fx);
    switch (ev) {
    case 0: ev_submit(s); break;
    case 1: ev_persist_pkg(s); break;
    case 2: ev_persist_assign(s); break;
    case 3: ev_started(s); break;
    case 4: ev_progress(s); break;
    case 5: ev_result(s); break;
    case 6: ev_resend(s); break;
    case 7: ev_bogus_result(s); break;
    case 8: ev_persist_finish(s); break;
    case 9: ev_time(s, 1500, 90); break;
    case 10: ev_ready(s); break;
    case 11: ev_hello_any(s); break;
    case 12: ev_bye(s); break;
    case 13: ev_crash(s); break;
    }
    take_actions(s);
    check_invariants(s);
  }

  /* Drain: every commit lands, every agent that can is connected and finishes
   * what it runs, time passes, until a quiet round after 10 s. What is left
   * must be visibly waiting. */
  uint64_t drained_ms = 0;
  for (int round = 0;; round++) {
    if (round == 2000)
      fail_at(s, "the drain does not settle");
    s->step++;
    size_t assigns = s->n_assign, finishes = s->n_finish;
    bool quiet = true;
    while (s->n_pend_pkg || s->n_pend_assign || s->n_pend_finish) {
      quiet = false;
      fx_clear(s->fx);
      if (s->n_pend_pkg) {
        pend_t p = s->pend_pkg[--s->n_pend_pkg];
        bt_core_package_persisted(s->fx->core, p.pkg, true, 0, &s->fx->now, &s->fx->out);
        s->pkgs[p.pkg].persisted = true;
      } else if (s->n_pend_assign) {
        pend_t p = s->pend_assign[--s->n_pend_assign];
        bt_core_assign_persisted(s->fx->core, p.pkg, p.attempt, true, &s->fx->now,
                                 &s->fx->out);
        magent_t *m = agent_by_id(s, p.agent_id);
        if (m != NULL && m->session)
          m->runs[m->n_runs++] = (run_t){p.pkg, p.attempt, false};
      } else {
        pend_t p = s->pend_finish[--s->n_pend_finish];
        bt_core_finish_persisted(s->fx->core, p.pkg, p.attempt, true, &s->fx->now,
                                 &s->fx->out);
      }
      take_actions(s);
      check_invariants(s);
    }
    for (size_t i = 0; i < s->n_agents; i++) {
      magent_t *m = &s->agents[i];
      if (!m->session && !m->bad) {
        ev_hello(s, m);
        take_actions(s);
        check_invariants(s);
      }
      while (m->session && m->n_runs > 0) {
        quiet = false;
        run_t r = m->runs[--m->n_runs];
        send_result(s, m->id, r.pkg, r.attempt, BT_OUTCOME_COMPLETED);
        take_actions(s);
        check_invariants(s);
      }
    }
    uint64_t before = s->fx->now.ms;
    fx_clear(s->fx);
    ev_time(s, 1000, 100);
    drained_ms += s->fx->now.ms - before;
    take_actions(s);
    check_invariants(s);
    if (s->n_assign != assigns || s->n_finish != finishes)
      quiet = false;
    if (quiet && drained_ms >= 10000)
      break;
  }
  size_t left = 0;
  for (size_t k = 0; k < s->n_open; k++) {
    bt_pkg_view_t p;
    if (bt_core_package_view(s->fx->core, s->open[k], &p) != 0)
      continue;
    left++;
    if (p.state != BT_PKG_QUEUED)
      fail_at(s, "after the drain a package is still assigned");
    char buf[256];
    bt_core_waiting_reason(s->fx->core, p.id, &s->fx->now, buf, sizeof buf);
    if (buf[0] == '\0') {
      char msg[200];
      snprintf(msg, sizeof msg, "after the drain package %" PRIu64 " waits without a reason",
               p.id);
      fail_at(s, msg);
    }
  }
  if (verbose)
    fprintf(stderr,
            "seed %" PRIu64 ": %zu vendors, %zu agents, %" PRIu64 " packages, %zu assigns, "
            "%zu finishes (%zu completed, %zu lost), %zu stale, %zu left waiting\n",
            seed, s->n_vendors, s->n_agents, s->max_pkg, s->n_assign, s->n_finish,
            s->n_completed, s->n_lost, s->n_stale, left);
  uint64_t h = s->hash;
  fx_free(s->fx);
  free(s);
  return h;
}

static void test_core_property_invariants_hold(void **state) {
  (void)state;
  const char *env = getenv("BT_CORE_SEED");
  if (env != NULL) {
    run_sim(strtoull(env, NULL, 0), true);
    return;
  }
  static const uint64_t seeds[] = {1, 42, 0xbadc0ffee, 20271115, 7777777};
  for (size_t i = 0; i < NELEM(seeds); i++)
    run_sim(seeds[i], true);
}

static void test_core_property_same_seed_same_actions(void **state) {
  (void)state;
  uint64_t a = run_sim(99, false);
  uint64_t b = run_sim(99, false);
  uint64_t c = run_sim(100, false);
  assert_int_equal(a, b);
  assert_int_not_equal(a, c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_property_invariants_hold),
      cmocka_unit_test(test_core_property_same_seed_same_actions),
  };
  return cmocka_run_group_tests_name("test_core_property", tests, NULL, NULL);
}

/*
 * bt_bench_sched — the scheduler micro-benchmark (tests/bench/README.md,
 * "Scheduler micro-benchmark").
 *
 * Drives the pure core (server/core) directly: no I/O, no database, no shell.
 * For every combination of Q queued packages and V vendors it builds the
 * state, then measures:
 *
 *  - steady state: one running attempt completes (bt_core_agent_result,
 *    COMPLETED) and the core places the next package into the freed slot in the
 *    same call. That call is one routing decision; its time is the figure.
 *    Around it, untimed, the benchmark does what the shell would: ASSIGN and
 *    FINISH are confirmed, the agent says it started; and for each package
 *    placed one like it (same class; priority and deadline from the mix) is
 *    submitted and committed, so the queue keeps its length and its mix.
 *  - the same split in two: the agent first says it takes no work (untimed),
 *    the result is handled (timed: result handling alone), then the agent
 *    polls (bt_core_agent_ready, timed: the placement alone).
 *  - burst: every agent idle with Q queued, one round of placement. The core
 *    has no event that makes all agents ready at once except a tick, so each
 *    vendor also gets a "filler" agent that takes the vendor's whole capacity
 *    before the real agents connect (idle: their vendor is full). The fillers
 *    then fall silent; one bt_core_tick expires all their leases, requeues
 *    their packages and places one package into every free slot in a single
 *    scheduling pass. Figure: that tick's time per assignment.
 *
 * Every vendor has one agent with as many slots as the vendor's capacity
 * (2-8); vendors, requirement sets and packages come from a fixed seed, so
 * vendor i is the same in every run and the figures are repeatable.
 */
#include "bench_util.h"
#include "core.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- deterministic randomness ------------------------------------------------ */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *s, uint32_t n) {
  return (uint32_t)(rng_next(s) % n);
}

static double rng_unit(uint64_t *s) {
  return (double)(rng_next(s) >> 11) / (double)(1ull << 53);
}

static uint32_t rng_weighted(uint64_t *s, const uint32_t *w, uint32_t n) {
  uint32_t total = 0;
  for (uint32_t i = 0; i < n; i++)
    total += w[i];
  uint32_t r = rng_below(s, total);
  for (uint32_t i = 0; i < n; i++) {
    if (r < w[i])
      return i;
    r -= w[i];
  }
  return n - 1;
}

/* --- the world: capabilities, regions, certifications -------------------------- */

#define N_CAPS 6
static const char *const CAPS[N_CAPS] = {"translate",   "transcribe",   "annotate-image",
                                         "code-review", "legal-review", "data-entry"};
/* The share of vendors offering each capability. */
static const double CAP_P[N_CAPS] = {0.55, 0.30, 0.30, 0.25, 0.10, 0.35};

typedef struct {
  const char *name;
  uint32_t weight; /* share of vendors */
  bt_model_t model;
  double cost; /* typical cost per unit */
  bool gdpr;   /* vendors there usually hold a GDPR DPA */
} region_t;

#define N_REGIONS 8
static const region_t REGIONS[N_REGIONS] = {
    {"EU-DE", 14, BT_MODEL_ONSHORE, 2.6, true},    {"EU-FR", 9, BT_MODEL_ONSHORE, 2.4, true},
    {"EU-PL", 12, BT_MODEL_NEARSHORE, 1.4, true},  {"UK", 8, BT_MODEL_ONSHORE, 2.8, true},
    {"US-EAST", 14, BT_MODEL_ONSHORE, 3.0, false}, {"US-WEST", 9, BT_MODEL_ONSHORE, 3.2, false},
    {"IN", 20, BT_MODEL_OFFSHORE, 0.8, false},     {"PH", 14, BT_MODEL_OFFSHORE, 0.7, false},
};

#define N_CERTS 5
static const char *const CERTS[N_CERTS] = {"iso27001", "soc2", "hipaa", "gdpr", "pci"};
static const double CERT_P[N_CERTS] = {0.50, 0.30, 0.10, 0.20 /* 0.70 in GDPR regions */,
                                       0.08};

/* --- vendors ------------------------------------------------------------------ */

typedef struct {
  char name[16];
  const char *region;
  bt_model_t model;
  const char *caps[N_CAPS];
  size_t n_caps;
  const char *certs[N_CERTS];
  size_t n_certs;
  uint32_t slots; /* its agent's slots = the vendor's capacity */
  double cost, weight;
  bool in_hours;
} vendor_def_t;

/* Vendor i, the same in every run. */
static void vendor_def(uint32_t i, vendor_def_t *d) {
  uint64_t s = 0x5eedull + (uint64_t)i * 0x2545f4914f6cdd1dull;
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "v%04u", i);
  uint32_t rw[N_REGIONS];
  for (uint32_t k = 0; k < N_REGIONS; k++)
    rw[k] = REGIONS[k].weight;
  const region_t *r = &REGIONS[rng_weighted(&s, rw, N_REGIONS)];
  d->region = r->name;
  d->model = r->model;
  for (uint32_t k = 0; k < N_CAPS; k++)
    if (rng_unit(&s) < CAP_P[k])
      d->caps[d->n_caps++] = CAPS[k];
  if (d->n_caps == 0)
    d->caps[d->n_caps++] = CAPS[rng_below(&s, N_CAPS)];
  for (uint32_t k = 0; k < N_CERTS; k++) {
    double p = k == 3 && r->gdpr ? 0.70 : CERT_P[k];
    if (rng_unit(&s) < p)
      d->certs[d->n_certs++] = CERTS[k];
  }
  d->cost = r->cost * (0.6 + 0.8 * rng_unit(&s));
  d->weight = 0.8 + 0.4 * rng_unit(&s);
  d->slots = 2 + rng_below(&s, 7);
  d->in_hours = rng_unit(&s) < 0.8;
}

/* --- requirement profiles: one class each ---------------------------------------- */

typedef struct {
  const char *cap;
  const char *regions, *certs; /* comma-separated, NULL none */
  double max_cost;             /* < 0 none */
  const char *prefer, *avoid;  /* vendor names */
  uint32_t weight;             /* share of packages */
} profile_def_t;

static const profile_def_t PROFILE_DEFS[] = {
    {"translate", NULL, NULL, -1, NULL, NULL, 12},
    {"translate", "EU-DE,EU-FR,EU-PL", NULL, -1, NULL, NULL, 4},
    {"translate", "EU-DE,EU-FR,EU-PL,UK", "gdpr", -1, NULL, NULL, 3},
    {"translate", NULL, NULL, 1.5, NULL, NULL, 3},
    {"translate", NULL, "iso27001", -1, NULL, NULL, 2},
    {"translate", NULL, NULL, -1, "v0003", NULL, 2},
    {"translate", NULL, NULL, -1, NULL, "v0001", 1},
    {"translate", "US-EAST,US-WEST", NULL, -1, NULL, NULL, 2},
    {"translate", "IN,PH", NULL, 1.0, NULL, NULL, 1},
    {"transcribe", NULL, NULL, -1, NULL, NULL, 7},
    {"transcribe", NULL, "hipaa", -1, NULL, NULL, 2},
    {"transcribe", "US-EAST,US-WEST", "hipaa", -1, NULL, NULL, 2},
    {"transcribe", NULL, NULL, 2.0, NULL, NULL, 2},
    {"transcribe", "EU-DE,EU-FR,EU-PL,UK", "gdpr", -1, NULL, NULL, 2},
    {"annotate-image", NULL, NULL, -1, NULL, NULL, 9},
    {"annotate-image", NULL, NULL, 1.0, NULL, NULL, 4},
    {"annotate-image", "IN,PH", NULL, -1, NULL, NULL, 3},
    {"annotate-image", NULL, "iso27001", -1, NULL, NULL, 2},
    {"annotate-image", NULL, "soc2", 2.5, NULL, NULL, 2},
    {"code-review", NULL, NULL, -1, NULL, NULL, 4},
    {"code-review", NULL, "soc2", -1, NULL, NULL, 2},
    {"code-review", NULL, "iso27001,soc2", -1, NULL, NULL, 1},
    {"code-review", "US-EAST,US-WEST,UK", NULL, -1, NULL, NULL, 1},
    {"code-review", NULL, NULL, -1, "v0002,v0007", NULL, 1},
    {"code-review", NULL, NULL, -1, NULL, "v0005", 1},
    {"legal-review", NULL, NULL, -1, NULL, NULL, 2},
    {"legal-review", "UK,US-EAST", NULL, -1, NULL, NULL, 1},
    {"legal-review", "EU-DE,EU-FR", "iso27001", -1, NULL, NULL, 1},
    {"legal-review", NULL, NULL, 3.0, NULL, NULL, 1},
    {"data-entry", NULL, NULL, -1, NULL, NULL, 9},
    {"data-entry", NULL, NULL, 0.8, NULL, NULL, 4},
    {"data-entry", "IN,PH", NULL, -1, NULL, NULL, 3},
    {"data-entry", NULL, "pci", -1, NULL, NULL, 2},
    {"data-entry", NULL, "pci,soc2", -1, NULL, NULL, 1},
    {"data-entry", "EU-PL", NULL, -1, NULL, NULL, 1},
};
#define N_PROFILES (sizeof PROFILE_DEFS / sizeof PROFILE_DEFS[0])

typedef struct {
  char buf[128];
  const char *v[8];
  size_t n;
} list_t;

typedef struct {
  list_t regions, certs, prefer, avoid;
} profile_t;

static profile_t g_profiles[N_PROFILES];
static uint32_t g_profile_w[N_PROFILES];

static void split(list_t *l, const char *csv) {
  l->n = 0;
  if (csv == NULL)
    return;
  snprintf(l->buf, sizeof l->buf, "%s", csv);
  char *save = NULL;
  for (char *t = strtok_r(l->buf, ",", &save); t != NULL && l->n < 8;
       t = strtok_r(NULL, ",", &save))
    l->v[l->n++] = t;
}

static void profiles_init(void) {
  for (size_t i = 0; i < N_PROFILES; i++) {
    split(&g_profiles[i].regions, PROFILE_DEFS[i].regions);
    split(&g_profiles[i].certs, PROFILE_DEFS[i].certs);
    split(&g_profiles[i].prefer, PROFILE_DEFS[i].prefer);
    split(&g_profiles[i].avoid, PROFILE_DEFS[i].avoid);
    g_profile_w[i] = PROFILE_DEFS[i].weight;
  }
}

/* Priorities 0-9, mostly in the middle. */
static const uint32_t PRIO_W[10] = {4, 6, 10, 14, 20, 16, 12, 8, 6, 4};

static const uint8_t PAYLOAD[64] = "{\"doc\":\"bench\",\"lang\":\"de-en\",\"words\":1200,\"pad\":\"......\"}";

/* A package spec from the mix; points into static storage. */
static void pkg_spec(uint64_t *rng, int64_t now_at, bt_pkg_spec_t *s) {
  uint32_t i = rng_weighted(rng, g_profile_w, (uint32_t)N_PROFILES);
  const profile_def_t *d = &PROFILE_DEFS[i];
  const profile_t *p = &g_profiles[i];
  memset(s, 0, sizeof *s);
  s->capability = d->cap;
  s->payload = PAYLOAD;
  s->payload_len = sizeof PAYLOAD;
  s->priority = rng_weighted(rng, PRIO_W, 10);
  /* 30% have a deadline, 15 minutes to 48 hours out. */
  if (rng_unit(rng) < 0.30)
    s->deadline_at = now_at + 900000 + (int64_t)rng_below(rng, 47u * 3600000u);
  s->regions = p->regions.v;
  s->n_regions = p->regions.n;
  s->certs = p->certs.v;
  s->n_certs = p->certs.n;
  s->max_cost = d->max_cost;
  s->prefer = p->prefer.v;
  s->n_prefer = p->prefer.n;
  s->avoid = p->avoid.v;
  s->n_avoid = p->avoid.n;
}

/* --- the bench state ------------------------------------------------------------- */

typedef struct {
  uint64_t agent, pkg;
  uint32_t attempt;
} run_t;

typedef struct {
  bt_core_t *core;
  bt_now_t now;
  bt_actions_t out, scratch, scratch2;
  uint64_t rng, token;
  /* running attempts, oldest first (a ring) */
  run_t *runs;
  size_t runs_cap, runs_head, runs_n;
  uint32_t total_slots;
} bench_t;

static void runs_push(bench_t *b, run_t r) {
  if (b->runs_n == b->runs_cap) {
    size_t ncap = b->runs_cap ? b->runs_cap * 2 : 1024;
    run_t *n = malloc(ncap * sizeof *n);
    if (n == NULL)
      abort();
    for (size_t i = 0; i < b->runs_n; i++)
      n[i] = b->runs[(b->runs_head + i) % b->runs_cap];
    free(b->runs);
    b->runs = n;
    b->runs_cap = ncap;
    b->runs_head = 0;
  }
  b->runs[(b->runs_head + b->runs_n) % b->runs_cap] = r;
  b->runs_n++;
}

static run_t runs_pop(bench_t *b) {
  if (b->runs_n == 0)
    bench_die("nothing is running: no package could be placed");
  run_t r = b->runs[b->runs_head];
  b->runs_head = (b->runs_head + 1) % b->runs_cap;
  b->runs_n--;
  return r;
}

static size_t count_assigns(const bt_actions_t *a) {
  size_t n = 0;
  for (size_t i = 0; i < a->n; i++)
    n += a->v[i].kind == BT_ACT_ASSIGN;
  return n;
}

/* What the shell does after an event: every ASSIGN is committed, sent, and the
 * agent starts it. */
static void absorb(bench_t *b, const bt_actions_t *a) {
  for (size_t i = 0; i < a->n; i++) {
    const bt_action_t *x = &a->v[i];
    if (x->kind != BT_ACT_ASSIGN)
      continue;
    uint64_t pkg = x->package_id, agent = x->agent_id;
    uint32_t attempt = x->attempt;
    bt_actions_clear(&b->scratch);
    bt_core_assign_persisted(b->core, pkg, attempt, true, &b->now, &b->scratch);
    bt_core_agent_started(b->core, agent, pkg, attempt, &b->now, &b->scratch);
    runs_push(b, (run_t){agent, pkg, attempt});
  }
}

static void advance(bench_t *b, uint64_t ms) {
  b->now.ms += ms;
  b->now.at += (int64_t)ms;
}

/* Submits n packages of the mix in one request and commits them. */
static void submit(bench_t *b, size_t n) {
  enum { MAXB = 1000 };
  static bt_pkg_spec_t specs[MAXB];
  static bt_submit_result_t res[MAXB];
  while (n > 0) {
    size_t k = n < MAXB ? n : MAXB;
    for (size_t i = 0; i < k; i++)
      pkg_spec(&b->rng, b->now.at, &specs[i]);
    bt_actions_clear(&b->out);
    bt_core_submit(b->core, specs, k, b->token++, &b->now, res, &b->out);
    for (size_t i = 0; i < k; i++) {
      bt_actions_clear(&b->out);
      bt_core_package_persisted(b->core, res[i].id, true, 0, &b->now, &b->out);
      absorb(b, &b->out);
    }
    n -= k;
  }
}

/* One new package like package id (same capability and requirements: the same
 * class), with priority and deadline from the mix, submitted and committed: what
 * the steady state adds for each package it places, so the queue keeps its
 * length and its mix of classes. */
static void submit_like(bench_t *b, uint64_t id) {
  bt_pkg_view_t v;
  if (bt_core_package_view(b->core, id, &v) != 0)
    bench_die("package %" PRIu64 " is not open", id);
  bt_pkg_spec_t s;
  pkg_spec(&b->rng, b->now.at, &s); /* priority and deadline */
  s.capability = v.capability;
  s.regions = v.regions;
  s.n_regions = v.n_regions;
  s.certs = v.certs;
  s.n_certs = v.n_certs;
  s.max_cost = v.max_cost;
  s.prefer = v.prefer;
  s.n_prefer = v.n_prefer;
  s.avoid = v.avoid;
  s.n_avoid = v.n_avoid;
  bt_submit_result_t res;
  bt_actions_t *out = &b->scratch2;
  bt_actions_clear(out);
  bt_core_submit(b->core, &s, 1, b->token++, &b->now, &res, out);
  bt_actions_clear(out);
  bt_core_package_persisted(b->core, res.id, true, 0, &b->now, out);
  absorb(b, out);
}

/* Replaces every package the actions placed (see submit_like). */
static void replenish(bench_t *b, const bt_actions_t *a) {
  for (size_t i = 0; i < a->n; i++)
    if (a->v[i].kind == BT_ACT_ASSIGN)
      submit_like(b, a->v[i].package_id);
}

/* Connects an agent named name for the vendor, with all its capabilities. */
static uint64_t hello(bench_t *b, uint64_t vendor_id, const vendor_def_t *d,
                      const char *name) {
  bt_agent_hello_t h = {
      .vendor_id = vendor_id,
      .name = name,
      .caps = d->caps,
      .n_caps = d->n_caps,
      .slots = d->slots,
  };
  uint64_t id = 0;
  bt_actions_clear(&b->out);
  int rv = bt_core_agent_hello(b->core, &h, &b->now, &id, &b->out);
  if (rv != 0)
    bench_die("hello %s of %s: %d", name, d->name, rv);
  absorb(b, &b->out);
  return id;
}

/* --- one configuration ------------------------------------------------------------ */

typedef struct {
  /* options */
  uint32_t batch;       /* decisions per batch */
  uint32_t min_batches; /* per mode */
  uint32_t max_batches;
  double min_time_s;    /* timed seconds of the combined mode */
} opts_t;

typedef struct {
  uint64_t queued, vendors;
  uint32_t agents, slots, classes;
  double build_s;
  double rss_before_mb, rss_built_mb, bytes_per_pkg;
  /* burst */
  uint64_t burst_assigns;
  double burst_ms, burst_ns_per_assign;
  /* steady state */
  uint32_t batches;
  uint64_t decisions;
  double decision_ns;                    /* median of batch means */
  double decision_p50_ns, decision_p99_ns; /* per call */
  double placed_pct;                     /* calls that placed a package */
  double result_only_ns, place_only_ns;  /* medians of batch means */
  double timed_s;
  uint64_t queued_end, waiting_end, running_end;
  double rss_end_mb;
  double free_s; /* bt_core_free of the whole state */
} result_t;

static double median(double *v, size_t n) {
  bench_samples_t s = {.v = v, .n = n, .cap = n};
  bench_samples_sort(&s);
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The first three fields of /proc/loadavg ("" when unreadable). */
static void loadavg(char *buf, size_t len) {
  buf[0] = '\0';
  FILE *f = fopen("/proc/loadavg", "r");
  if (f == NULL)
    return;
  double a, b, c;
  if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
    snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
  fclose(f);
}

static double rss_mb(const char *field) {
  long kb = bench_proc_status_kb((int)getpid(), field);
  return kb < 0 ? -1 : (double)kb / 1024.0;
}

static void run_one(const opts_t *o, uint64_t Q, uint32_t V, result_t *res) {
  memset(res, 0, sizeof *res);
  res->queued = Q;
  res->vendors = V;
  malloc_trim(0);
  res->rss_before_mb = rss_mb("VmRSS");

  bench_t b = {0};
  bt_core_config_t cfg;
  bt_core_config_default(&cfg);
  b.core = bt_core_new(&cfg);
  b.now.ms = 1000000;
  b.now.at = INT64_C(1800000000000); /* 2027-01-15T08:00:00Z */
  b.rng = 0xbe7c4ull ^ (Q * 31 + V);
  b.token = 1;
  bt_actions_init(&b.out);
  bt_actions_init(&b.scratch);
  bt_actions_init(&b.scratch2);

  uint64_t t0 = bench_now_ns();
  /* Vendors. */
  vendor_def_t *defs = calloc(V, sizeof *defs);
  uint64_t *vid = calloc(V, sizeof *vid);
  if (defs == NULL || vid == NULL)
    abort();
  for (uint32_t i = 0; i < V; i++) {
    vendor_def_t *d = &defs[i];
    vendor_def(i, d);
    bt_vendor_spec_t spec = {
        .name = d->name,
        .region = d->region,
        .model = d->model,
        .caps = d->caps,
        .n_caps = d->n_caps,
        .certs = d->certs,
        .n_certs = d->n_certs,
        .capacity = d->slots,
        .cost = d->cost,
        .weight = d->weight,
    };
    bt_actions_clear(&b.out);
    if (bt_core_vendor_add(b.core, &spec, b.token++, &b.now, &vid[i], &b.out) != 0)
      bench_die("vendor_add %s", d->name);
    if (!d->in_hours)
      bt_core_vendor_set_in_hours(b.core, vid[i], false);
    b.total_slots += d->slots;
  }
  res->agents = V;
  res->slots = b.total_slots;

  /* Q + one round's worth of packages, committed, with nobody connected. */
  submit(&b, Q + b.total_slots);

  /* The fillers take each vendor's whole capacity... */
  for (uint32_t i = 0; i < V; i++)
    hello(&b, vid[i], &defs[i], "filler");
  /* ...so the real agents connect idle (their vendor is full)... */
  uint32_t lease = cfg.lease_ms;
  advance(&b, lease / 2);
  uint64_t *agent_ids = calloc(V, sizeof *agent_ids);
  if (agent_ids == NULL)
    abort();
  for (uint32_t i = 0; i < V; i++)
    agent_ids[i] = hello(&b, vid[i], &defs[i], "agent");
  res->build_s = (double)(bench_now_ns() - t0) / 1e9;
  res->rss_built_mb = rss_mb("VmRSS");
  res->bytes_per_pkg =
      (res->rss_built_mb - res->rss_before_mb) * 1048576.0 / (double)(Q + b.total_slots);

  /* ...and the fillers fall silent: one tick expires their leases, requeues
   * their packages and fills every idle slot in one pass (the burst). */
  advance(&b, lease - lease / 2);
  /* The real agents are alive (they would have polled meanwhile): heard from
   * now, so the fillers' loss does not make them suspect (untimed). */
  for (uint32_t i = 0; i < V; i++)
    bt_core_agent_seen(b.core, agent_ids[i], &b.now);
  free(agent_ids);
  b.runs_n = 0; /* the fillers' attempts: handed off by the tick */
  b.runs_head = 0;
  bt_actions_clear(&b.out);
  uint64_t tb = bench_now_ns();
  bt_core_tick(b.core, &b.now, &b.out);
  uint64_t te = bench_now_ns();
  res->burst_assigns = count_assigns(&b.out);
  res->burst_ms = (double)(te - tb) / 1e6;
  res->burst_ns_per_assign =
      res->burst_assigns ? (double)(te - tb) / (double)res->burst_assigns : 0;
  absorb(&b, &b.out);

  /* Steady state: batches of the combined mode and of the split mode, in turn. */
  uint32_t nb_max = o->max_batches;
  double *a_mean = calloc(nb_max, sizeof *a_mean);
  double *r_mean = calloc(nb_max, sizeof *r_mean);
  double *p_mean = calloc(nb_max, sizeof *p_mean);
  bench_samples_t calls = {0};
  if (a_mean == NULL || r_mean == NULL || p_mean == NULL)
    abort();
  bt_result_t r = {.outcome = BT_OUTCOME_COMPLETED, .output = "ok", .output_len = 2};
  uint64_t timed_a = 0, placed = 0, calls_a = 0;
  uint32_t nb = 0;
  while (nb < nb_max &&
         (nb < o->min_batches || (double)timed_a / 1e9 < o->min_time_s)) {
    /* combined: result + placement in one call */
    uint64_t sum = 0;
    for (uint32_t k = 0; k < o->batch; k++) {
      advance(&b, 1);
      run_t run = runs_pop(&b);
      r.package_id = run.pkg;
      r.attempt = run.attempt;
      bt_actions_clear(&b.out);
      uint64_t c0 = bench_now_ns();
      int rv = bt_core_agent_result(b.core, run.agent, &r, b.token++, &b.now, &b.out);
      uint64_t c1 = bench_now_ns();
      if (rv != 0)
        bench_die("result for package %" PRIu64 ": %d", run.pkg, rv);
      sum += c1 - c0;
      bench_samples_push(&calls, (double)(c1 - c0));
      placed += count_assigns(&b.out) > 0;
      calls_a++;
      absorb(&b, &b.out);
      replenish(&b, &b.out);
      bt_actions_clear(&b.scratch);
      bt_core_finish_persisted(b.core, run.pkg, run.attempt, true, &b.now, &b.scratch);
    }
    a_mean[nb] = (double)sum / o->batch;
    timed_a += sum;
    /* split: result handling alone, then the agent polls */
    uint64_t sum_r = 0, sum_p = 0;
    for (uint32_t k = 0; k < o->batch; k++) {
      advance(&b, 1);
      run_t run = runs_pop(&b);
      r.package_id = run.pkg;
      r.attempt = run.attempt;
      bt_actions_clear(&b.scratch);
      bt_core_agent_ready(b.core, run.agent, 0, &b.now, &b.scratch);
      bt_actions_clear(&b.out);
      uint64_t c0 = bench_now_ns();
      int rv = bt_core_agent_result(b.core, run.agent, &r, b.token++, &b.now, &b.out);
      uint64_t c1 = bench_now_ns();
      if (rv != 0)
        bench_die("result for package %" PRIu64 ": %d", run.pkg, rv);
      absorb(&b, &b.out);
      replenish(&b, &b.out);
      bt_actions_clear(&b.out);
      uint64_t c2n = bench_now_ns();
      bt_core_agent_ready(b.core, run.agent, 1, &b.now, &b.out);
      uint64_t c3 = bench_now_ns();
      absorb(&b, &b.out);
      replenish(&b, &b.out);
      sum_r += c1 - c0;
      sum_p += c3 - c2n;
      bt_actions_clear(&b.scratch);
      bt_core_finish_persisted(b.core, run.pkg, run.attempt, true, &b.now, &b.scratch);
    }
    r_mean[nb] = (double)sum_r / o->batch;
    p_mean[nb] = (double)sum_p / o->batch;
    nb++;
  }
  res->batches = nb;
  res->decisions = calls_a;
  res->decision_ns = median(a_mean, nb);
  res->result_only_ns = median(r_mean, nb);
  res->place_only_ns = median(p_mean, nb);
  res->placed_pct = calls_a ? 100.0 * (double)placed / (double)calls_a : 0;
  res->timed_s = (double)timed_a / 1e9;
  bench_samples_sort(&calls);
  res->decision_p50_ns = bench_samples_pct(&calls, 50);
  res->decision_p99_ns = bench_samples_pct(&calls, 99);
  bench_samples_free(&calls);

  bt_core_stats_t st;
  bt_core_stats(b.core, &b.now, &st);
  res->queued_end = st.by_state[BT_PKG_QUEUED];
  res->running_end = st.by_state[BT_PKG_RUNNING] + st.by_state[BT_PKG_ASSIGNED];
  res->waiting_end = st.waiting;
  res->rss_end_mb = rss_mb("VmRSS");
  res->classes = (uint32_t)N_PROFILES;

  free(a_mean);
  free(r_mean);
  free(p_mean);
  free(defs);
  free(vid);
  free(b.runs);
  bt_actions_close(&b.out);
  bt_actions_close(&b.scratch);
  bt_actions_close(&b.scratch2);
  uint64_t f0 = bench_now_ns();
  bt_core_free(b.core);
  res->free_s = (double)(bench_now_ns() - f0) / 1e9;
  malloc_trim(0);
}

/* --- output ---------------------------------------------------------------------- */

static const char *fmt_int(uint64_t v, char *buf, size_t len) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
  size_t o = 0;
  for (int i = 0; i < n && o + 1 < len; i++) {
    if (i > 0 && (n - i) % 3 == 0 && o + 1 < len)
      buf[o++] = ',';
    if (o + 1 < len)
      buf[o++] = tmp[i];
  }
  buf[o] = '\0';
  return buf;
}

static double timer_overhead_ns(void) {
  enum { N = 20001 };
  static double d[N];
  for (int i = 0; i < N; i++) {
    uint64_t a = bench_now_ns();
    uint64_t c = bench_now_ns();
    d[i] = (double)(c - a);
  }
  return median(d, N);
}

typedef double (*cell_fn)(const result_t *r);
static double cell_decision(const result_t *r) { return r->decision_ns; }
static double cell_result(const result_t *r) { return r->result_only_ns; }
static double cell_place(const result_t *r) { return r->place_only_ns; }
static double cell_burst(const result_t *r) { return r->burst_ns_per_assign; }
static double cell_p50(const result_t *r) { return r->decision_p50_ns; }
static double cell_p99(const result_t *r) { return r->decision_p99_ns; }
static double cell_rss(const result_t *r) { return r->rss_built_mb; }

static void table(const char *title, const result_t *res, const uint64_t *qs, size_t nq,
                  const uint32_t *vs, size_t nv, cell_fn f) {
  char buf[32];
  printf("\n%s\n", title);
  printf("  %-18s", "queued \\ vendors");
  for (size_t j = 0; j < nv; j++)
    printf(" %10s", fmt_int(vs[j], buf, sizeof buf));
  printf("\n");
  for (size_t i = 0; i < nq; i++) {
    printf("  %-18s", fmt_int(qs[i], buf, sizeof buf));
    for (size_t j = 0; j < nv; j++) {
      char cell[32];
      snprintf(cell, sizeof cell, "%.0f", f(&res[i * nv + j]));
      printf(" %10s", cell);
    }
    printf("\n");
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bt_bench_sched [--quick] [--queued LIST] [--vendors LIST] [--json]\n"
          "                      [--batch N] [--min-batches N] [--max-batches N]\n"
          "                      [--min-time SECONDS]\n"
          "  LIST: comma-separated counts, k and M suffixes allowed (1k,100k,1M)\n"
          "  defaults: --queued 1k,100k,1M --vendors 10,100,1000 --batch 200\n"
          "            --min-batches 100 --max-batches 1500 --min-time 0.5\n"
          "  --quick: --queued 1k,100k --batch 100 --min-batches 5 --min-time 0\n");
}

static size_t parse_list(const char *s, uint64_t *out, size_t max) {
  size_t n = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
    char *end = NULL;
    double v = strtod(t, &end);
    if (end == t)
      bench_die("not a count: %s", t);
    if (*end == 'k' || *end == 'K')
      v *= 1e3, end++;
    else if (*end == 'M' || *end == 'm')
      v *= 1e6, end++;
    if (*end != '\0' || v < 1 || v > 1e8)
      bench_die("not a count: %s", t);
    if (n == max)
      bench_die("too many values in %s", s);
    out[n++] = (uint64_t)(v + 0.5);
  }
  if (n == 0)
    bench_die("empty list");
  return n;
}

int main(int argc, char **argv) {
  bench_prog = "bt_bench_sched";
  uint64_t qs[16] = {1000, 100000, 1000000};
  size_t nq = 3;
  uint64_t vs64[16] = {10, 100, 1000};
  size_t nv = 3;
  bool json = false, quick = false, qset = false;
  opts_t o = {.batch = 200, .min_batches = 100, .max_batches = 1500, .min_time_s = 0.5};
  opts_t given = {0};
  bool b_set = false, mb_set = false, xb_set = false, mt_set = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "--json") == 0) {
      json = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (v == NULL) {
      usage(stderr);
      return 2;
    } else if (strcmp(a, "--queued") == 0) {
      nq = parse_list(v, qs, 16);
      qset = true;
      i++;
    } else if (strcmp(a, "--vendors") == 0) {
      nv = parse_list(v, vs64, 16);
      i++;
    } else if (strcmp(a, "--batch") == 0) {
      given.batch = (uint32_t)atoi(v), b_set = true, i++;
    } else if (strcmp(a, "--min-batches") == 0) {
      given.min_batches = (uint32_t)atoi(v), mb_set = true, i++;
    } else if (strcmp(a, "--max-batches") == 0) {
      given.max_batches = (uint32_t)atoi(v), xb_set = true, i++;
    } else if (strcmp(a, "--min-time") == 0) {
      given.min_time_s = atof(v), mt_set = true, i++;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (quick) {
    o.batch = 100;
    o.min_batches = 5;
    o.min_time_s = 0;
    if (!qset) {
      qs[0] = 1000, qs[1] = 100000;
      nq = 2;
    }
  }
  if (b_set)
    o.batch = given.batch;
  if (mb_set)
    o.min_batches = given.min_batches;
  if (xb_set)
    o.max_batches = given.max_batches;
  if (mt_set)
    o.min_time_s = given.min_time_s;
  if (o.batch == 0 || o.min_batches == 0)
    bench_die("--batch and --min-batches must be at least 1");
  if (o.max_batches < o.min_batches)
    o.max_batches = o.min_batches;
  uint32_t vs[16];
  for (size_t j = 0; j < nv; j++) {
    if (vs64[j] > 100000)
      bench_die("at most 100,000 vendors");
    vs[j] = (uint32_t)vs64[j];
  }

  profiles_init();
  double tov = timer_overhead_ns();
  result_t *res = calloc(nq * nv, sizeof *res);
  if (res == NULL)
    abort();
  char load_start[64], load_end[64];
  loadavg(load_start, sizeof load_start);
  uint64_t t_start = bench_now_ns();
  for (size_t i = 0; i < nq; i++) {
    for (size_t j = 0; j < nv; j++) {
      result_t *r = &res[i * nv + j];
      fprintf(stderr, "bt_bench_sched: queued %" PRIu64 ", vendors %u ...", qs[i], vs[j]);
      fflush(stderr);
      run_one(&o, qs[i], vs[j], r);
      fprintf(stderr,
              " built %.1f s (RSS %.0f MB), burst %" PRIu64 " in %.1f ms, %u x 2 x %u "
              "decisions: %.0f ns; queued at the end %" PRIu64 " (%" PRIu64
              " no vendor may take); core freed in %.2f s\n",
              r->build_s, r->rss_built_mb, r->burst_assigns, r->burst_ms, r->batches,
              o.batch, r->decision_ns, r->queued_end, r->waiting_end, r->free_s);
    }
  }
  double total_s = (double)(bench_now_ns() - t_start) / 1e9;
  loadavg(load_end, sizeof load_end);
  double peak_mb = rss_mb("VmHWM");

  /* Flat in Q: the cost at the largest queue over the cost at the smallest, per
   * vendor count. */
  double worst = 0, worst_place = 0;
  for (size_t j = 0; j < nv && nq > 1; j++) {
    const result_t *lo = &res[j], *hi = &res[(nq - 1) * nv + j];
    double x = lo->decision_ns > 0 ? hi->decision_ns / lo->decision_ns : 0;
    double y = lo->place_only_ns > 0 ? hi->place_only_ns / lo->place_only_ns : 0;
    if (x > worst)
      worst = x;
    if (y > worst_place)
      worst_place = y;
  }
  /* The same between the two largest queues when both are far beyond the CPU
   * caches (>= 100,000 packages, ~27 MB): at 1,000 queued every package a
   * decision touches is in L2, from 100,000 on each is a DRAM access, so the
   * small-to-large ratio mixes the work done with the cost of memory. This one
   * shows the work: a constant number of touches per decision gives ~1x. */
  double worst_big = 0;
  bool have_big = nq >= 3 && qs[nq - 2] >= 100000;
  for (size_t j = 0; j < nv && have_big; j++) {
    const result_t *lo = &res[(nq - 2) * nv + j], *hi = &res[(nq - 1) * nv + j];
    double x = lo->decision_ns > 0 ? hi->decision_ns / lo->decision_ns : 0;
    if (x > worst_big)
      worst_big = x;
  }
  const double flat_limit = 1.5;
  bool flat = nq < 2 || (have_big ? worst_big : worst) <= flat_limit;

  if (json) {
    printf("{\"timer_overhead_ns\": %.0f, \"classes\": %zu, \"capabilities\": %d, "
           "\"batch\": %u, \"min_batches\": %u, \"min_time_s\": %.2f, "
           "\"total_s\": %.1f, \"load_start\": \"%s\", \"load_end\": \"%s\", "
           "\"peak_rss_mb\": %.1f, \"flat_limit\": %.2f, "
           "\"worst_ratio\": %.3f, \"worst_place_ratio\": %.3f, "
           "\"worst_ratio_beyond_cache\": %.3f, \"flat\": %s, "
           "\"runs\": [",
           tov, (size_t)N_PROFILES, N_CAPS, o.batch, o.min_batches, o.min_time_s,
           total_s, load_start, load_end, peak_mb, flat_limit, worst, worst_place,
           worst_big, flat ? "true" : "false");
    for (size_t k = 0; k < nq * nv; k++) {
      const result_t *r = &res[k];
      printf("%s\n  {\"queued\": %" PRIu64 ", \"vendors\": %" PRIu64
             ", \"agents\": %u, \"slots\": %u, \"build_s\": %.2f, "
             "\"rss_built_mb\": %.1f, \"bytes_per_package\": %.0f, "
             "\"burst_assignments\": %" PRIu64 ", \"burst_ms\": %.3f, "
             "\"burst_ns_per_assignment\": %.0f, \"batches\": %u, "
             "\"decisions\": %" PRIu64 ", \"decision_ns\": %.0f, "
             "\"decision_p50_ns\": %.0f, \"decision_p99_ns\": %.0f, "
             "\"placed_pct\": %.1f, \"result_only_ns\": %.0f, \"place_only_ns\": %.0f, "
             "\"queued_end\": %" PRIu64 ", \"waiting_end\": %" PRIu64
             ", \"running_end\": %" PRIu64 ", \"rss_end_mb\": %.1f, \"free_s\": %.3f}",
             k ? "," : "", r->queued, r->vendors, r->agents, r->slots, r->build_s,
             r->rss_built_mb, r->bytes_per_pkg, r->burst_assigns, r->burst_ms,
             r->burst_ns_per_assign, r->batches, r->decisions, r->decision_ns,
             r->decision_p50_ns, r->decision_p99_ns, r->placed_pct, r->result_only_ns,
             r->place_only_ns, r->queued_end, r->waiting_end, r->running_end,
             r->rss_end_mb, r->free_s);
    }
    printf("\n]}\n");
    free(res);
    return 0;
  }

  printf("bt_bench_sched: routing decisions of the pure core (no I/O, no database)\n");
  printf("%zu requirement classes over %d capabilities; one agent per vendor with 2-8 "
         "slots\n(= the vendor's capacity); timer CLOCK_MONOTONIC, %.0f ns per read pair "
         "(included below);\nmedians of batch means, batches of %u, at least %u batches "
         "and %.1f s timed per cell\n",
         (size_t)N_PROFILES, N_CAPS, tov, o.batch, o.min_batches, o.min_time_s);
  table("Steady state, ns per decision: one result (COMPLETED) whose call places the "
        "next package\ninto the freed slot",
        res, qs, nq, vs, nv, cell_decision);
  table("  single calls: median, ns", res, qs, nq, vs, nv, cell_p50);
  table("  single calls: p99, ns", res, qs, nq, vs, nv, cell_p99);
  table("Split, ns: result handling alone (the agent takes no work) ...", res, qs, nq, vs,
        nv, cell_result);
  table("  ... and the placement alone (the agent then polls)", res, qs, nq, vs, nv,
        cell_place);
  table("Burst, ns per assignment: one tick fills every idle slot (all agents idle, Q "
        "queued)",
        res, qs, nq, vs, nv, cell_burst);
  printf("  assignments per round:");
  for (size_t j = 0; j < nv; j++)
    printf(" %u vendors %" PRIu64 "%s", vs[j], res[j].burst_assigns,
           j + 1 < nv ? "," : "\n");
  table("RSS after building the state, MB", res, qs, nq, vs, nv, cell_rss);
  printf("  peak RSS (VmHWM) %.0f MB; ", peak_mb);
  {
    const result_t *big = &res[(nq - 1) * nv];
    printf("%.0f bytes per open package at %" PRIu64 " queued, %" PRIu64
           " vendors\n",
           big->bytes_per_pkg, big->queued, big->vendors);
  }
  printf("\nCalls that placed a package: ");
  double minp = 100;
  for (size_t k = 0; k < nq * nv; k++)
    if (res[k].placed_pct < minp)
      minp = res[k].placed_pct;
  printf("at least %.1f%% in every cell.\n", minp);
  if (nq > 1) {
    char b1[32], b2[32];
    printf("Flat in queue length? decision cost at %s queued / at %s:",
           fmt_int(qs[nq - 1], b1, sizeof b1), fmt_int(qs[0], b2, sizeof b2));
    for (size_t j = 0; j < nv; j++)
      printf(" %u vendors %.2fx%s", vs[j],
             res[j].decision_ns > 0 ? res[(nq - 1) * nv + j].decision_ns / res[j].decision_ns
                                    : 0,
             j + 1 < nv ? "," : "");
    printf("\n  (placement alone at worst %.2fx; at %s every package touched is in cache)\n",
           worst_place, fmt_int(qs[0], b2, sizeof b2));
    if (have_big) {
      char b3[32];
      printf("Beyond the caches: decision cost at %s queued / at %s:",
             fmt_int(qs[nq - 1], b1, sizeof b1), fmt_int(qs[nq - 2], b3, sizeof b3));
      for (size_t j = 0; j < nv; j++)
        printf(" %u vendors %.2fx%s", vs[j],
               res[(nq - 2) * nv + j].decision_ns > 0
                   ? res[(nq - 1) * nv + j].decision_ns / res[(nq - 2) * nv + j].decision_ns
                   : 0,
               j + 1 < nv ? "," : "");
      printf("\n");
    }
    printf("  -> %s (limit %.1fx %s)\n", flat ? "FLAT" : "NOT FLAT", flat_limit,
           have_big ? "between the two largest queues" : "from the smallest to the largest");
  }
  printf("total %.0f s; load average (1, 5, 15 min) at the start %s, at the end %s on %ld "
         "CPUs\n",
         total_s, load_start, load_end, sysconf(_SC_NPROCESSORS_ONLN));
  free(res);
  return 0;
}

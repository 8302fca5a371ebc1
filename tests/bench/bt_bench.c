/*
 * bt_bench: the broker benchmark's load generator (tests/bench/run starts the
 * PostgreSQL, the broker and the vendor, then this program; README.md says what
 * the figures mean).
 *
 * One process plays both ends:
 *   - N agents on ONE libuv loop in their own thread, built on libbaton-agent,
 *     with a no-op handler: on_task notes when (package id) started and
 *     completes it at once with an empty output;
 *   - S submitters, each a control connection keeping up to W Submit
 *     requests of B packages in flight (the broker answers in request
 *     order), until P packages are submitted, driven by T threads
 *     (bench_submit.c);
 *   - the main thread, which polls Stats every 20 ms until P more packages are
 *     completed (the broker acknowledges nothing before it is committed, so
 *     Stats.completed counts committed completions), then runs the memory
 *     phase: Q packages of a capability no vendor offers, so they stay queued,
 *     and the broker's resident memory before and after.
 * --packages 0 skips the first phase, --queued 0 the second. tests/bench/run
 * runs them as two invocations with a broker restart in between, so that the
 * memory phase starts from a fresh heap instead of one the allocator kept from
 * the backlog of the first phase.
 * It prints one JSON object on stdout; progress and errors go to stderr.
 *
 * It never touches the broker's database or internals: everything it knows
 * comes over the two public protocols and from /proc.
 */
#include "baton.pb-c.h"
#include "baton_agent.h"
#include "bench_ctl.h"
#include "bench_submit.h"
#include "bench_util.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define STATS_POLL_MS 20
#define STALL_TIMEOUT_S 60
#define AGENTS_UP_TIMEOUT_S 30
#define CTL_TIMEOUT_MS 60000
#define QUEUED_BATCH 5000
#define QUEUED_WINDOW 2

typedef struct {
  const char *control;   /* control socket path */
  const char *agents_ep; /* agent endpoint, tcp://HOST:PORT */
  const char *vendor;
  const char *secret; /* from BATON_SECRET, so it stays out of ps */
  const char *capability;
  const char *idle_capability;
  uint32_t agents, slots, submitters, window, batch, payload_bytes;
  uint32_t submit_threads; /* threads driving the submitters' connections */
  uint32_t pace_tick_us;   /* paced sends wake on this grid (0: at each due time) */
  uint64_t packages, queued;
  uint32_t idle_seconds; /* > 0: the idle phase (agents connected, no work) */
  uint32_t idle_total;   /* agents (of every bt_bench) to wait for before measuring */
  double rate;           /* > 0: submits paced to this many packages/s in all */
  int broker_pid, pg_pid;
  bool prefill;
  bool progress;
} opts_t;

static double ms_between(uint64_t from_ns, uint64_t to_ns) {
  return (double)(int64_t)(to_ns - from_ns) / 1e6;
}

/* --- agents: one loop, one thread ----------------------------------------------- */

typedef struct {
  const opts_t *o;
  uv_loop_t loop;
  uv_async_t stop_async;
  pthread_t thread;
  bt_agent_t **agents;
  uint32_t n_made;
  uint32_t n_closed;
  bench_marks_t starts; /* loop thread only until joined */
  uint64_t complete_errors;
  _Atomic uint64_t n_started;
  atomic_int fatal;
  char fatal_msg[256];
} agents_t;

static void on_task(bt_agent_t *a, const bt_agent_task_t *t, void *user) {
  agents_t *ag = user;
  bench_marks_push(&ag->starts, t->package_id, bench_now_ns());
  atomic_fetch_add_explicit(&ag->n_started, 1, memory_order_relaxed);
  if (bt_agent_complete(a, t->package_id, t->attempt, BT_AGENT_COMPLETED, NULL, 0, 0,
                        NULL) != 0)
    ag->complete_errors++;
}

static void on_fatal(bt_agent_t *a, int code, const char *message, void *user) {
  (void)a;
  agents_t *ag = user;
  snprintf(ag->fatal_msg, sizeof ag->fatal_msg, "%s (%s)", message ? message : "",
           bt_agent_strerror(code));
  atomic_store(&ag->fatal, 1);
}

static void on_agent_closed(bt_agent_t *a, void *user) {
  (void)a;
  agents_t *ag = user;
  if (++ag->n_closed == ag->n_made)
    uv_close((uv_handle_t *)&ag->stop_async, NULL);
}

static void on_stop_async(uv_async_t *h) {
  agents_t *ag = h->data;
  if (ag->n_made == 0) {
    uv_close((uv_handle_t *)&ag->stop_async, NULL);
    return;
  }
  for (uint32_t i = 0; i < ag->n_made; i++)
    bt_agent_stop(ag->agents[i], on_agent_closed);
}

/* The loop thread: makes the agents (every bt_agent_* call happens here), runs
 * the loop until every agent is closed, frees them. */
static void *agents_main(void *arg) {
  agents_t *ag = arg;
  const opts_t *o = ag->o;
  const char *caps[] = {o->capability};
  ag->agents = calloc(o->agents, sizeof *ag->agents);
  for (uint32_t i = 0; i < o->agents; i++) {
    char name[64];
    snprintf(name, sizeof name, "bench-%u", i);
    bt_agent_config_t cfg = {.brokers = o->agents_ep,
                             .vendor = o->vendor,
                             .secret = o->secret,
                             .name = name,
                             .capabilities = caps,
                             .n_capabilities = 1,
                             .slots = o->slots};
    bt_agent_callbacks_t cbs = {.on_task = on_task, .on_fatal = on_fatal};
    bt_agent_t *a;
    int rv = bt_agent_new(&ag->loop, &cfg, &cbs, ag, &a);
    if (rv == 0 && (rv = bt_agent_start(a)) != 0)
      bt_agent_free(a);
    if (rv != 0) {
      snprintf(ag->fatal_msg, sizeof ag->fatal_msg, "could not start agent %u: %s", i,
               bt_agent_strerror(rv));
      atomic_store(&ag->fatal, 1);
      break;
    }
    ag->agents[ag->n_made++] = a;
  }
  uv_run(&ag->loop, UV_RUN_DEFAULT);
  for (uint32_t i = 0; i < ag->n_made; i++)
    bt_agent_free(ag->agents[i]);
  free(ag->agents);
  uv_loop_close(&ag->loop);
  return NULL;
}

static void agents_start(agents_t *ag, const opts_t *o) {
  memset(ag, 0, sizeof *ag);
  ag->o = o;
  if (uv_loop_init(&ag->loop) != 0 || uv_async_init(&ag->loop, &ag->stop_async,
                                                    on_stop_async) != 0)
    bench_die("could not make the agents' loop");
  ag->stop_async.data = ag;
  if (pthread_create(&ag->thread, NULL, agents_main, ag) != 0)
    bench_die("could not start the agents' thread");
}

static void agents_stop(agents_t *ag) {
  uv_async_send(&ag->stop_async);
  pthread_join(ag->thread, NULL);
}

/* --- measuring ------------------------------------------------------------------ */

typedef struct {
  uint64_t ns;
  double broker_cpu, pg_cpu, self_cpu;
  uint64_t host_busy, host_total;
} cpu_mark_t;

static cpu_mark_t cpu_mark(const opts_t *o) {
  cpu_mark_t m = {.ns = bench_now_ns()};
  m.broker_cpu = o->broker_pid > 0 ? bench_proc_cpu_s(o->broker_pid) : -1;
  m.pg_cpu = o->pg_pid > 0 ? bench_proc_tree_cpu_s(o->pg_pid) : -1;
  m.self_cpu = bench_proc_cpu_s(getpid());
  bench_host_jiffies(&m.host_busy, &m.host_total);
  return m;
}

/* CPU used between a and b, in percent of one core (-1 when unknown). */
static double cpu_pct(double a, double b, uint64_t a_ns, uint64_t b_ns) {
  if (a < 0 || b < 0 || b_ns <= a_ns)
    return -1;
  return 100.0 * (b - a) / ((double)(b_ns - a_ns) / 1e9);
}

static void stats_or_die(bench_conn_t *c, bench_stats_t *st) {
  int rv = bench_conn_stats(c, st);
  if (rv != 0)
    bench_die("stats request failed: %s", strerror(-rv));
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void wait_agents_up(bench_conn_t *c, agents_t *ag, uint32_t want) {
  uint64_t deadline = bench_now_ns() + (uint64_t)AGENTS_UP_TIMEOUT_S * 1000000000ull;
  for (;;) {
    if (atomic_load(&ag->fatal))
      bench_die("agent failed: %s", ag->fatal_msg);
    bench_stats_t st;
    stats_or_die(c, &st);
    if (st.agents >= want)
      return;
    if (bench_now_ns() > deadline)
      bench_die("only %u of %u agents connected after %d s", st.agents, want,
          AGENTS_UP_TIMEOUT_S);
    sleep_ms(STATS_POLL_MS);
  }
}

/* Joins the submitters and dies with the first error. */
static void submitters_join(bench_submit_group_t *g) {
  const char *err = bench_submit_join(g);
  if (err != NULL)
    bench_die("submitter: %s", err);
}

/* Polls Stats until completed >= target; returns when it was seen. */
static uint64_t wait_completed(bench_conn_t *c, const opts_t *o, agents_t *ag, bench_phase_t *ph,
                               uint64_t base, uint64_t target) {
  uint64_t t0 = bench_now_ns(), last_change = t0, last_print = t0;
  uint64_t last_completed = 0, printed_completed = base;
  for (;;) {
    bench_stats_t st;
    stats_or_die(c, &st);
    uint64_t now = bench_now_ns();
    if (st.completed >= target)
      return now;
    if (atomic_load(&ag->fatal))
      bench_die("agent failed: %s", ag->fatal_msg);
    if (ph != NULL && atomic_load(&ph->failed))
      return 0; /* the submitters say why */
    if (st.completed != last_completed) {
      last_completed = st.completed;
      last_change = now;
    } else if (now - last_change > (uint64_t)STALL_TIMEOUT_S * 1000000000ull) {
      bench_die("no completion for %d s: completed %llu of %llu, queued %llu assigned %llu "
          "running %llu dead %llu agents %u started %llu",
          STALL_TIMEOUT_S, (unsigned long long)(st.completed - base),
          (unsigned long long)(target - base), (unsigned long long)st.queued,
          (unsigned long long)st.assigned, (unsigned long long)st.running,
          (unsigned long long)st.dead, st.agents,
          (unsigned long long)atomic_load(&ag->n_started));
    }
    if (o->progress && now - last_print >= 1000000000ull) {
      double dt = (double)(now - last_print) / 1e9;
      fprintf(stderr,
              "bt_bench: %5.1fs acked %llu completed %llu (%.0f/s) queued %llu "
              "assigned %llu running %llu\n",
              (double)(now - t0) / 1e9,
              ph ? (unsigned long long)atomic_load(&ph->acked) : 0ull,
              (unsigned long long)(st.completed - base),
              (double)(st.completed - printed_completed) / dt,
              (unsigned long long)st.queued, (unsigned long long)st.assigned,
              (unsigned long long)st.running);
      last_print = now;
      printed_completed = st.completed;
    }
    sleep_ms(STATS_POLL_MS);
  }
}

/* --- options ------------------------------------------------------------------ */

static void usage(void) {
  fputs("usage: bt_bench --control PATH --agents-endpoint tcp://HOST:PORT --vendor NAME\n"
        "                [--agents N] [--slots N] [--submitters N] [--submit-threads N]\n"
        "                [--window N] [--pace-tick-us N]\n"
        "                [--batch N] [--payload-bytes N] [--packages N] [--queued N]\n"
        "                [--broker-pid PID] [--pg-pid PID] [--prefill] [--progress]\n"
        "                [--idle-seconds S [--idle-total N]] [--rate PACKAGES_PER_S]\n"
        "  The vendor secret comes from BATON_SECRET. Prints one JSON object.\n",
        stderr);
  exit(2);
}

static void parse(int argc, char **argv, opts_t *o) {
  *o = (opts_t){.capability = "noop",
                .idle_capability = "idle",
                .agents = 8,
                .slots = 16,
                .submitters = 4,
                .submit_threads = 2,
                .pace_tick_us = 500,
                .window = 8,
                .batch = 1,
                .payload_bytes = 64,
                .packages = 100000,
                .queued = 100000};
  static const struct option lo[] = {
      {"control", required_argument, NULL, 'c'},
      {"agents-endpoint", required_argument, NULL, 'e'},
      {"vendor", required_argument, NULL, 'v'},
      {"capability", required_argument, NULL, 'C'},
      {"agents", required_argument, NULL, 'a'},
      {"slots", required_argument, NULL, 's'},
      {"submitters", required_argument, NULL, 'S'},
      {"window", required_argument, NULL, 'w'},
      {"submit-threads", required_argument, NULL, 't'},
      {"pace-tick-us", required_argument, NULL, 'k'},
      {"batch", required_argument, NULL, 'b'},
      {"payload-bytes", required_argument, NULL, 'p'},
      {"packages", required_argument, NULL, 'n'},
      {"queued", required_argument, NULL, 'q'},
      {"broker-pid", required_argument, NULL, 'B'},
      {"pg-pid", required_argument, NULL, 'P'},
      {"prefill", no_argument, NULL, 'f'},
      {"idle-seconds", required_argument, NULL, 'i'},
      {"rate", required_argument, NULL, 'r'},
      {"idle-total", required_argument, NULL, 'T'},
      {"progress", no_argument, NULL, 'g'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'c': o->control = optarg; break;
    case 'e': o->agents_ep = optarg; break;
    case 'v': o->vendor = optarg; break;
    case 'C': o->capability = optarg; break;
    case 'a': o->agents = (uint32_t)bench_num("agents", optarg, 1, 10000); break;
    case 's': o->slots = (uint32_t)bench_num("slots", optarg, 1, 100000); break;
    case 'S': o->submitters = (uint32_t)bench_num("submitters", optarg, 1, 1024); break;
    case 'w': o->window = (uint32_t)bench_num("window", optarg, 1, 256); break;
    case 't': o->submit_threads = (uint32_t)bench_num("submit-threads", optarg, 1, 1024); break;
    case 'k': o->pace_tick_us = (uint32_t)bench_num("pace-tick-us", optarg, 0, 100000); break;
    case 'b': o->batch = (uint32_t)bench_num("batch", optarg, 1, 10000); break;
    case 'p': o->payload_bytes = (uint32_t)bench_num("payload-bytes", optarg, 0, 512 * 1024); break;
    case 'n': o->packages = bench_num("packages", optarg, 0, 100000000); break;
    case 'q': o->queued = bench_num("queued", optarg, 0, 100000000); break;
    case 'B': o->broker_pid = (int)bench_num("broker-pid", optarg, 1, 1u << 30); break;
    case 'P': o->pg_pid = (int)bench_num("pg-pid", optarg, 1, 1u << 30); break;
    case 'f': o->prefill = true; break;
    case 'T': o->idle_total = (uint32_t)bench_num("idle-total", optarg, 1, 1000000); break;
    case 'r': o->rate = (double)bench_num("rate", optarg, 1, 10000000); break;
    case 'i': o->idle_seconds = (uint32_t)bench_num("idle-seconds", optarg, 1, 3600); break;
    case 'g': o->progress = true; break;
    default: usage();
    }
  }
  if (optind != argc || o->control == NULL || o->agents_ep == NULL || o->vendor == NULL)
    usage();
  o->secret = getenv("BATON_SECRET");
  if (o->secret == NULL || *o->secret == '\0')
    bench_die("BATON_SECRET is not set");
}

/* --- output --------------------------------------------------------------------- */

/* JSON members are printed with a leading ",\n" except the first, so each
 * phase prints only what it measured. */
static bool first_member = true;

static void member(const char *key) {
  printf("%s  \"%s\": ", first_member ? "{\n" : ",\n", key);
  first_member = false;
}

/* A figure with prec decimals, or null when it could not be measured (< 0). */
static void put_num(const char *key, double v, int prec) {
  member(key);
  if (v < 0)
    fputs("null", stdout);
  else
    printf("%.*f", prec, v);
}

static void put_u64(const char *key, uint64_t v) {
  member(key);
  printf("%llu", (unsigned long long)v);
}

static void put_pct(const char *key, const bench_samples_t *s) {
  static const struct {
    const char *name;
    double p;
  } ps[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"max", 100}};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    char k[96];
    snprintf(k, sizeof k, "%s_%s_ms", key, ps[i].name);
    put_num(k, bench_samples_pct(s, ps[i].p), 3);
  }
}

static double kb_to_mb(long kb) {
  return kb >= 0 ? (double)kb / 1024.0 : -1;
}

static long broker_kb(const opts_t *o, const char *field) {
  return o->broker_pid ? bench_proc_status_kb(o->broker_pid, field) : -1;
}

/* --- phase 1: throughput and latency ----------------------------------------------- */

static void run_throughput(const opts_t *o, bench_conn_t *ctl) {
  bench_stats_t st0;
  stats_or_die(ctl, &st0);
  long rss_start_kb = broker_kb(o, "VmRSS");

  agents_t ag;
  bench_phase_t ph = {.control = o->control, .capability = o->capability,
                      .payload_bytes = o->payload_bytes, .total = o->packages,
                      .batch = o->batch, .window = o->window,
                      .rate = o->prefill ? 0 : o->rate,
                      .tick_ns = (uint64_t)o->pace_tick_us * 1000u};
  uint64_t t_agents = 0;
  if (!o->prefill) {
    agents_start(&ag, o);
    wait_agents_up(ctl, &ag, st0.agents + o->agents);
  }
  cpu_mark_t c0 = cpu_mark(o);
  bench_submit_group_t *g = bench_submit_start(&ph, o->submitters, o->submit_threads);
  const bench_submitter_t *subs = g->subs;
  if (o->prefill) {
    /* Everything queued first, then the agents come: the peers' "process/s". */
    submitters_join(g);
    t_agents = bench_now_ns();
    agents_start(&ag, o);
  }
  uint64_t t_done = wait_completed(ctl, o, &ag, &ph, st0.completed,
                                   st0.completed + o->packages);
  cpu_mark_t c1 = cpu_mark(o);
  if (!o->prefill)
    submitters_join(g);
  long rss_run_kb = broker_kb(o, "VmRSS");
  long hwm_kb = broker_kb(o, "VmHWM");
  agents_stop(&ag);
  if (ag.complete_errors)
    fprintf(stderr, "bt_bench: warning: %llu bt_agent_complete calls failed\n",
            (unsigned long long)ag.complete_errors);

  uint64_t first_send = 0, last_ack = 0, requests = 0, n_sent = 0;
  bench_samples_t ack = {0};
  for (uint32_t i = 0; i < o->submitters; i++) {
    if (subs[i].first_send_ns && (first_send == 0 || subs[i].first_send_ns < first_send))
      first_send = subs[i].first_send_ns;
    if (subs[i].last_ack_ns > last_ack)
      last_ack = subs[i].last_ack_ns;
    requests += subs[i].requests;
    n_sent += subs[i].sent.n;
    bench_samples_append(&ack, &subs[i].ack_ms);
  }
  bench_samples_sort(&ack);
  bench_idmap_t sent_map;
  bench_idmap_init(&sent_map, n_sent);
  for (uint32_t i = 0; i < o->submitters; i++)
    for (size_t j = 0; j < subs[i].sent.n; j++)
      bench_idmap_put(&sent_map, subs[i].sent.v[j].id, subs[i].sent.v[j].ns);
  /* Start latency counts the first start of each package: delivery is at least
   * once, so a package may be offered again (counted as a repeat). */
  bench_idmap_t started;
  bench_idmap_init(&started, ag.starts.n);
  bench_samples_t s2s = {0};
  uint64_t repeats = 0, unknown = 0, last_start = 0;
  for (size_t i = 0; i < ag.starts.n; i++) {
    const bench_mark_t *m = &ag.starts.v[i];
    uint64_t sent_ns;
    if (!bench_idmap_put(&started, m->id, m->ns)) {
      repeats++;
      continue;
    }
    if (m->ns > last_start)
      last_start = m->ns;
    if (bench_idmap_get(&sent_map, m->id, &sent_ns))
      bench_samples_push(&s2s, ms_between(sent_ns, m->ns));
    else
      unknown++;
  }
  bench_samples_sort(&s2s);
  double elapsed_s = (double)(t_done - first_send) / 1e9;
  double process_s = o->prefill ? (double)(t_done - t_agents) / 1e9 : elapsed_s;
  double submit_s = (double)(last_ack - first_send) / 1e9;
  double host_pct = -1;
  if (c1.host_total > c0.host_total)
    host_pct = 100.0 * (double)(c1.host_busy - c0.host_busy) /
               (double)(c1.host_total - c0.host_total);

  member("mode");
  printf("\"%s\"", o->prefill ? "prefill" : "mixed");
  put_u64("packages", o->packages);
  put_num("elapsed_s", elapsed_s, 3);
  put_num("packages_per_s", (double)o->packages / elapsed_s, 1);
  put_num("process_s", process_s, 3);
  put_num("process_per_s", (double)o->packages / process_s, 1);
  put_num("submit_s", submit_s, 3);
  put_num("submit_per_s", (double)o->packages / submit_s, 1);
  put_u64("requests", requests);
  put_pct("submit_ack", &ack);
  put_pct("submit_to_start", &s2s);
  put_u64("starts", ag.starts.n);
  put_u64("repeated_starts", repeats);
  put_u64("unknown_starts", unknown);
  put_num("last_start_to_done_ms", last_start ? ms_between(last_start, t_done) : 0, 1);
  put_num("broker_cpu_pct", cpu_pct(c0.broker_cpu, c1.broker_cpu, c0.ns, c1.ns), 1);
  put_num("pg_cpu_pct", cpu_pct(c0.pg_cpu, c1.pg_cpu, c0.ns, c1.ns), 1);
  put_num("bench_cpu_pct", cpu_pct(c0.self_cpu, c1.self_cpu, c0.ns, c1.ns), 1);
  put_num("host_busy_pct", host_pct, 1);
  put_num("broker_cpu_us_per_package",
          c0.broker_cpu >= 0 && c1.broker_cpu >= 0
              ? (c1.broker_cpu - c0.broker_cpu) * 1e6 / (double)o->packages
              : -1,
          1);
  put_num("pg_cpu_us_per_package",
          c0.pg_cpu >= 0 && c1.pg_cpu >= 0
              ? (c1.pg_cpu - c0.pg_cpu) * 1e6 / (double)o->packages
              : -1,
          1);
  put_num("broker_rss_start_mb", kb_to_mb(rss_start_kb), 1);
  put_num("broker_rss_after_run_mb", kb_to_mb(rss_run_kb), 1);
  put_num("broker_peak_rss_run_mb", kb_to_mb(hwm_kb), 1);

  bench_submit_free(g);
  bench_samples_free(&ack);
  bench_samples_free(&s2s);
  bench_marks_free(&ag.starts);
  bench_idmap_free(&sent_map);
  bench_idmap_free(&started);
}

/* --- phase 2: memory per queued package -------------------------------------------- */

/* Nothing offers idle_capability, so these packages stay queued (with a waiting
 * reason) in the broker's memory. Run on a freshly started broker, the growth
 * is what the packages cost, not heap the allocator kept from earlier work. */
static void run_memory(const opts_t *o, bench_conn_t *ctl) {
  bench_stats_t qs0, qs1;
  stats_or_die(ctl, &qs0);
  long rss0_kb = broker_kb(o, "VmRSS");
  bench_phase_t qph = {.control = o->control, .capability = o->idle_capability,
                       .payload_bytes = o->payload_bytes, .total = o->queued,
                       .batch = QUEUED_BATCH, .window = QUEUED_WINDOW};
  uint64_t t0 = bench_now_ns();
  bench_submit_group_t *qs = bench_submit_start(&qph, 1, 1);
  submitters_join(qs);
  double submit_s = (double)(bench_now_ns() - t0) / 1e9;
  long rss1_kb = broker_kb(o, "VmRSS");
  stats_or_die(ctl, &qs1);
  double per_pkg = -1;
  if (rss0_kb >= 0 && rss1_kb >= 0)
    per_pkg = (double)(rss1_kb - rss0_kb) * 1024.0 / (double)o->queued;

  put_u64("queued", o->queued);
  put_u64("queued_seen", qs1.queued - qs0.queued);
  put_num("queued_submit_per_s", (double)o->queued / submit_s, 1);
  put_num("broker_rss_before_queued_mb", kb_to_mb(rss0_kb), 1);
  put_num("broker_rss_after_queued_mb", kb_to_mb(rss1_kb), 1);
  put_num("broker_bytes_per_queued_package", per_pkg, 1);
  put_num("broker_bytes_per_queued_package_minus_payload",
          per_pkg >= 0 ? per_pkg - o->payload_bytes : -1, 1);

  bench_submit_free(qs);
}

/* --- the idle phase: what connected agents cost with no work ----------------------- */

/* The agents connect, park their polls and heartbeat; the broker answers each
 * parked poll when it times out (poll_park) and each heartbeat. Its CPU over
 * the window is what keeping that many agents costs. */
static void run_idle(const opts_t *o, bench_conn_t *ctl) {
  bench_stats_t st0;
  stats_or_die(ctl, &st0);
  agents_t ag;
  agents_start(&ag, o);
  /* nanomsg allows 512 sockets a process, so a thousand agents take two
   * bt_bench processes: each waits until the broker has --idle-total agents
   * connected in all (it had none before). */
  wait_agents_up(ctl, &ag, o->idle_total ? o->idle_total : st0.agents + o->agents);
  sleep_ms(2000); /* let the connection burst settle */
  long rss_kb = broker_kb(o, "VmRSS");
  cpu_mark_t c0 = cpu_mark(o);
  sleep_ms((int)o->idle_seconds * 1000);
  cpu_mark_t c1 = cpu_mark(o);
  bench_stats_t st1;
  stats_or_die(ctl, &st1);
  agents_stop(&ag);
  member("mode");
  printf("\"idle\"");
  put_u64("idle_agents", o->agents);
  put_u64("idle_agents_seen", st1.agents);
  put_num("idle_seconds", (double)(c1.ns - c0.ns) / 1e9, 2);
  put_num("idle_broker_cpu_pct", cpu_pct(c0.broker_cpu, c1.broker_cpu, c0.ns, c1.ns), 2);
  put_num("idle_bench_cpu_pct", cpu_pct(c0.self_cpu, c1.self_cpu, c0.ns, c1.ns), 2);
  put_num("idle_broker_rss_mb", kb_to_mb(rss_kb), 1);
}

/* --- main ------------------------------------------------------------------- */

int main(int argc, char **argv) {
  bench_prog = "bt_bench";
  /* A nanomsg socket costs a few descriptors: a thousand agents need more
   * than the usual soft limit of 1024. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  opts_t o;
  parse(argc, argv, &o);
  bt_agent_set_log_level(2);

  bench_conn_t ctl;
  int rv = bench_conn_open(&ctl, o.control, CTL_TIMEOUT_MS);
  if (rv != 0)
    bench_die("could not connect to %s: %s", o.control, strerror(-rv));
  if (o.idle_seconds > 0)
    run_idle(&o, &ctl);
  else if (o.packages > 0)
    run_throughput(&o, &ctl);
  if (o.queued > 0)
    run_memory(&o, &ctl);
  put_num("broker_peak_rss_mb", kb_to_mb(broker_kb(&o, "VmHWM")), 1);
  bench_stats_t st;
  stats_or_die(&ctl, &st);
  put_u64("final_completed", st.completed);
  put_u64("final_queued", st.queued);
  put_u64("final_dead", st.dead);
  printf("\n}\n");
  bench_conn_close(&ctl);
  return 0;
}

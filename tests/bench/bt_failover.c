/*
 * bt_failover: one vendor's agents for the failover benchmark (tests/bench/failover
 * starts the PostgreSQL, the broker and the vendors, then one of these per vendor;
 * README.md, "Failover benchmark", says what it measures).
 *
 * One process runs N agents of one vendor on ONE libuv loop, built on
 * libbaton-agent. The handler holds each task for --hold-ms (a uv_timer_t per
 * task, no process) and then completes it with a short output, so thousands of
 * tasks can be in flight at once: the benchmark kills this process with SIGKILL
 * while it holds them, which is the crash of a whole vendor site.
 *
 * SIGTERM or SIGINT stops it cleanly: what it still holds is handed back, the
 * agents say Bye, every handle is closed and freed (so a sanitizer build reports
 * no leak), and one JSON object with its counters goes to stdout. A line of
 * counters goes to stderr every --report-ms.
 *
 * It never touches the broker's database or internals; it only speaks the agent
 * protocol through the library.
 */
#include "baton_agent.h"
#include "bench_util.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct {
  const char *agents_ep; /* tcp://HOST:PORT[,...] */
  const char *vendor;
  const char *secret; /* from BATON_SECRET, so it stays out of ps */
  const char *capability;
  const char *name_prefix;
  uint32_t agents, slots;
  uint64_t hold_ms, report_ms;
} opts_t;

typedef struct fo fo_t;

/* One held task: its timer completes it when the hold is over. Freed from the
 * timer's close callback only. */
typedef struct task {
  uv_timer_t timer;
  fo_t *fo;
  bt_agent_t *agent;
  uint64_t package_id;
  uint32_t attempt;
  struct task *prev, *next; /* fo->tasks, the tasks not finished yet */
} task_t;

struct fo {
  const opts_t *o;
  uv_loop_t *loop;
  bt_agent_t **agents;
  uint32_t n_made, n_closed;
  uv_signal_t sigterm, sigint;
  uv_timer_t report;
  task_t *tasks; /* held, newest first */
  uint64_t held, max_held;
  uint64_t started, completed, cancelled, handed_back, complete_errors;
  uint64_t t0_ms;
  bool stopping;
  int exit_code;
  char fatal_msg[256];
};

/* --- tasks ---------------------------------------------------------------------- */

static void task_unlink(fo_t *fo, task_t *t) {
  if (t->prev != NULL)
    t->prev->next = t->next;
  else
    fo->tasks = t->next;
  if (t->next != NULL)
    t->next->prev = t->prev;
  t->prev = t->next = NULL;
  fo->held--;
}

static void task_free_cb(uv_handle_t *h) {
  free(h->data);
}

/* Ends a held task with outcome: unlinks it, reports it, closes its timer (the
 * task is freed from the close callback). */
static void task_finish(task_t *t, bt_agent_outcome_t outcome) {
  fo_t *fo = t->fo;
  char out[96];
  int len = 0;
  if (outcome == BT_AGENT_COMPLETED)
    len = snprintf(out, sizeof out, "done package=%" PRIu64 " attempt=%" PRIu32
                   " vendor=%s", t->package_id, t->attempt, fo->o->vendor);
  task_unlink(fo, t);
  int rv = bt_agent_complete(t->agent, t->package_id, t->attempt, outcome,
                             len > 0 ? out : NULL, len > 0 ? (size_t)len : 0, 0, NULL);
  if (rv != 0) {
    fo->complete_errors++;
    fprintf(stderr, "bt_failover: could not complete package=%" PRIu64
            " attempt=%" PRIu32 ": %s\n", t->package_id, t->attempt,
            bt_agent_strerror(rv));
  } else if (outcome == BT_AGENT_COMPLETED) {
    fo->completed++;
  } else if (outcome == BT_AGENT_HANDED_BACK) {
    fo->handed_back++;
  } else {
    fo->cancelled++;
  }
  uv_timer_stop(&t->timer);
  uv_close((uv_handle_t *)&t->timer, task_free_cb);
}

static void on_hold_over(uv_timer_t *h) {
  task_finish(h->data, BT_AGENT_COMPLETED);
}

static void on_task(bt_agent_t *a, const bt_agent_task_t *task, void *user) {
  fo_t *fo = user;
  task_t *t = calloc(1, sizeof *t);
  if (t == NULL)
    abort();
  t->fo = fo;
  t->agent = a;
  t->package_id = task->package_id;
  t->attempt = task->attempt;
  uv_timer_init(fo->loop, &t->timer);
  t->timer.data = t;
  t->next = fo->tasks;
  if (fo->tasks != NULL)
    fo->tasks->prev = t;
  fo->tasks = t;
  fo->started++;
  if (++fo->held > fo->max_held)
    fo->max_held = fo->held;
  if (fo->stopping) {
    /* The library hands back what arrives after a drain itself; this covers one
     * that was already on its way to the callback. */
    task_finish(t, BT_AGENT_HANDED_BACK);
    return;
  }
  uv_timer_start(&t->timer, on_hold_over, fo->o->hold_ms, 0);
}

/* The broker revoked an attempt (an admin cancel or reassign, the vendor failed
 * or suspended). Rare in this benchmark, so a scan of the held list will do. */
static void on_cancel(bt_agent_t *a, uint64_t package_id, uint32_t attempt, void *user) {
  fo_t *fo = user;
  for (task_t *t = fo->tasks; t != NULL; t = t->next) {
    if (t->agent == a && t->package_id == package_id && t->attempt == attempt) {
      task_finish(t, BT_AGENT_CANCELLED);
      return;
    }
  }
}

/* --- lifecycle ------------------------------------------------------------------ */

static void stop_all(fo_t *fo);

static void on_fatal(bt_agent_t *a, int code, const char *message, void *user) {
  (void)a;
  fo_t *fo = user;
  snprintf(fo->fatal_msg, sizeof fo->fatal_msg, "%s (%s)", message ? message : "",
           bt_agent_strerror(code));
  fprintf(stderr, "bt_failover: fatal: %s\n", fo->fatal_msg);
  fo->exit_code = 1;
  stop_all(fo);
}

/* The last handles of the process: once they are closed, uv_run returns. */
static void close_own_handles(fo_t *fo) {
  uv_close((uv_handle_t *)&fo->sigterm, NULL);
  uv_close((uv_handle_t *)&fo->sigint, NULL);
  uv_close((uv_handle_t *)&fo->report, NULL);
}

static void on_agent_closed(bt_agent_t *a, void *user) {
  (void)a;
  fo_t *fo = user;
  if (++fo->n_closed == fo->n_made)
    close_own_handles(fo);
}

/* Drains every agent, hands back what is held, then stops the agents; the loop
 * ends once the last one is closed. */
static void stop_all(fo_t *fo) {
  if (fo->stopping)
    return;
  fo->stopping = true;
  for (uint32_t i = 0; i < fo->n_made; i++)
    bt_agent_drain(fo->agents[i]);
  while (fo->tasks != NULL)
    task_finish(fo->tasks, BT_AGENT_HANDED_BACK);
  if (fo->n_made == 0) {
    close_own_handles(fo);
    return;
  }
  for (uint32_t i = 0; i < fo->n_made; i++)
    bt_agent_stop(fo->agents[i], on_agent_closed);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  stop_all(h->data);
}

static void on_report(uv_timer_t *h) {
  fo_t *fo = h->data;
  fprintf(stderr,
          "bt_failover: vendor=%s t=%.1fs started=%" PRIu64 " completed=%" PRIu64
          " held=%" PRIu64 " cancelled=%" PRIu64 "\n",
          fo->o->vendor, (double)(uv_now(fo->loop) - fo->t0_ms) / 1000.0, fo->started,
          fo->completed, fo->held, fo->cancelled);
}

/* --- options ------------------------------------------------------------------ */

static void usage(void) {
  fputs("usage: bt_failover --agents-endpoint tcp://HOST:PORT --vendor NAME\n"
        "                   [--agents N] [--slots N] [--hold-ms MS]\n"
        "                   [--capability C] [--name-prefix P] [--report-ms MS]\n"
        "  Runs N agents of one vendor that hold each task for MS and complete it.\n"
        "  The vendor secret comes from BATON_SECRET. SIGTERM stops it and prints\n"
        "  one JSON object of counters.\n",
        stderr);
  exit(2);
}

static void parse(int argc, char **argv, opts_t *o) {
  *o = (opts_t){.capability = "hold", .agents = 4, .slots = 256, .hold_ms = 60000,
                .report_ms = 5000};
  static const struct option lo[] = {
      {"agents-endpoint", required_argument, NULL, 'e'},
      {"vendor", required_argument, NULL, 'v'},
      {"capability", required_argument, NULL, 'C'},
      {"name-prefix", required_argument, NULL, 'N'},
      {"agents", required_argument, NULL, 'a'},
      {"slots", required_argument, NULL, 's'},
      {"hold-ms", required_argument, NULL, 'H'},
      {"report-ms", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'e': o->agents_ep = optarg; break;
    case 'v': o->vendor = optarg; break;
    case 'C': o->capability = optarg; break;
    case 'N': o->name_prefix = optarg; break;
    /* The broker takes at most 1,000 agents per vendor and 1,024 slots per agent
     * (max_agents_per_vendor, BT_XP_MAX_SLOTS). */
    case 'a': o->agents = (uint32_t)bench_num("agents", optarg, 1, 1000); break;
    case 's': o->slots = (uint32_t)bench_num("slots", optarg, 1, 1024); break;
    case 'H': o->hold_ms = bench_num("hold-ms", optarg, 0, 24ull * 3600 * 1000); break;
    case 'r': o->report_ms = bench_num("report-ms", optarg, 0, 3600 * 1000); break;
    default: usage();
    }
  }
  if (optind != argc || o->agents_ep == NULL || o->vendor == NULL)
    usage();
  if (o->name_prefix == NULL)
    o->name_prefix = o->vendor;
  o->secret = getenv("BATON_SECRET");
  if (o->secret == NULL || *o->secret == '\0')
    bench_die("BATON_SECRET is not set");
}

/* s as a JSON string (quotes and control characters escaped). */
static void put_json_str(const char *s) {
  putchar('"');
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

/* --- main --------------------------------------------------------------------- */

int main(int argc, char **argv) {
  bench_prog = "bt_failover";
  opts_t o;
  parse(argc, argv, &o);
  bt_agent_set_log_level(2);
  /* A broker gone mid-write must not kill the process. */
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    bench_die("could not make the loop");
  fo_t fo = {.o = &o, .loop = &loop};
  fo.t0_ms = uv_now(&loop);
  uv_signal_init(&loop, &fo.sigterm);
  uv_signal_init(&loop, &fo.sigint);
  fo.sigterm.data = fo.sigint.data = &fo;
  uv_signal_start(&fo.sigterm, on_signal, SIGTERM);
  uv_signal_start(&fo.sigint, on_signal, SIGINT);
  uv_timer_init(&loop, &fo.report);
  fo.report.data = &fo;
  if (o.report_ms > 0)
    uv_timer_start(&fo.report, on_report, o.report_ms, o.report_ms);

  const char *caps[] = {o.capability};
  fo.agents = calloc(o.agents, sizeof *fo.agents);
  if (fo.agents == NULL)
    abort();
  for (uint32_t i = 0; i < o.agents; i++) {
    char name[160];
    snprintf(name, sizeof name, "%s-%u", o.name_prefix, i);
    bt_agent_config_t cfg = {.brokers = o.agents_ep,
                             .vendor = o.vendor,
                             .secret = o.secret,
                             .name = name,
                             .capabilities = caps,
                             .n_capabilities = 1,
                             .slots = o.slots};
    bt_agent_callbacks_t cbs = {.on_task = on_task, .on_cancel = on_cancel,
                                .on_fatal = on_fatal};
    bt_agent_t *a;
    int rv = bt_agent_new(&loop, &cfg, &cbs, &fo, &a);
    if (rv == 0 && (rv = bt_agent_start(a)) != 0)
      bt_agent_free(a);
    if (rv != 0) {
      fprintf(stderr, "bt_failover: could not start agent %u: %s\n", i,
              bt_agent_strerror(rv));
      fo.exit_code = 1;
      stop_all(&fo);
      break;
    }
    fo.agents[fo.n_made++] = a;
  }
  fprintf(stderr, "bt_failover: vendor=%s agents=%u slots=%u hold_ms=%" PRIu64
          " running\n", o.vendor, fo.n_made, o.slots, o.hold_ms);

  uv_run(&loop, UV_RUN_DEFAULT);
  for (uint32_t i = 0; i < fo.n_made; i++)
    bt_agent_free(fo.agents[i]);
  free(fo.agents);
  if (uv_loop_close(&loop) != 0)
    fprintf(stderr, "bt_failover: the loop still had handles at exit\n");

  fputs("{\"vendor\": ", stdout);
  put_json_str(o.vendor);
  printf(", \"agents\": %u, \"slots\": %u, \"hold_ms\": %" PRIu64
         ", \"started\": %" PRIu64 ", \"completed\": %" PRIu64
         ", \"cancelled\": %" PRIu64 ", \"handed_back\": %" PRIu64
         ", \"max_held\": %" PRIu64 ", \"complete_errors\": %" PRIu64 ", \"fatal\": ",
         fo.n_made, o.slots, o.hold_ms, fo.started, fo.completed, fo.cancelled,
         fo.handed_back, fo.max_held, fo.complete_errors);
  put_json_str(fo.fatal_msg);
  fputs("}\n", stdout);
  return fo.exit_code;
}

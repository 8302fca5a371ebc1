/*
 * The daemon's supervisor (see agentd.h): maps assignments to handler processes
 * and runs the shutdown sequence. SIGTERM/SIGINT: take no new work, let running
 * handlers finish until the drain timeout, then stop the rest (SIGTERM, SIGKILL
 * after the kill grace) and report them HANDED_BACK so the broker hands them off
 * at once, flush results, say Bye, exit 0. Their last checkpoint was forwarded as
 * progress when the handler wrote it, and the library sends a pending checkpoint
 * before the result it belongs to.
 */
#include "agentd.h"

#include "baton_agent.h"
#include "bt_err.h"
#include "bt_log.h"
#include "handler.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
  D_NEW,      /* created: nothing started */
  D_RUNNING,  /* taking work */
  D_DRAINING, /* signal received: no new work; handlers finish until the drain timer */
  D_HANDING_BACK, /* drain timeout, second signal or fatal: handlers stopping */
  D_STOPPING,     /* no handler left: the agent flushes, says Bye and closes */
  D_CLOSED,       /* the agent closed and our handles are closing: the loop ends */
} dstate_t;

typedef struct run {
  bt_handler_t *h;
  uint64_t package_id;
  uint32_t attempt;
  struct run *next;
} run_t;

struct bt_agentd {
  uv_loop_t *loop;
  const bt_agentd_opts_t *opts;
  bt_agent_t *agent;
  dstate_t state;
  uv_signal_t sigterm, sigint;
  uv_timer_t drain_timer;
  int handles_open;
  run_t *runs;
  size_t n_runs;
  int exit_code;
};

static const char *command_for(const bt_agentd_t *d, const char *capability) {
  for (size_t i = 0; i < d->opts->n_handlers; i++) {
    if (strcmp(d->opts->handlers[i].capability, capability) == 0)
      return d->opts->handlers[i].command;
  }
  return NULL;
}

static run_t *find_run(bt_agentd_t *d, uint64_t pkg, uint32_t attempt) {
  for (run_t *r = d->runs; r != NULL; r = r->next) {
    if (r->package_id == pkg && r->attempt == attempt)
      return r;
  }
  return NULL;
}

/* ---- shutdown sequence ----------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  bt_agentd_t *d = h->data;
  d->handles_open--;
}

static void on_agent_closed(bt_agent_t *a, void *user) {
  bt_agentd_t *d = user;
  (void)a;
  d->state = D_CLOSED;
  uv_close((uv_handle_t *)&d->sigterm, on_handle_closed);
  uv_close((uv_handle_t *)&d->sigint, on_handle_closed);
  uv_close((uv_handle_t *)&d->drain_timer, on_handle_closed);
}

static void stop_agent(bt_agentd_t *d) {
  d->state = D_STOPPING;
  uv_timer_stop(&d->drain_timer);
  bt_agent_stop(d->agent, on_agent_closed);
}

static void hand_back(bt_agentd_t *d) {
  d->state = D_HANDING_BACK;
  uv_timer_stop(&d->drain_timer);
  if (d->n_runs == 0) {
    stop_agent(d);
    return;
  }
  bt_log_info("handing back running work", "running=%zu", d->n_runs);
  for (run_t *r = d->runs; r != NULL; r = r->next)
    bt_handler_stop(r->h, BT_AGENT_HANDED_BACK); /* on_done fires later */
}

static void on_drain_timeout(uv_timer_t *t) {
  bt_agentd_t *d = t->data;
  if (d->state == D_DRAINING) {
    bt_log_warn("drain timeout; handing back what still runs", "running=%zu",
                d->n_runs);
    hand_back(d);
  }
}

static void on_signal(uv_signal_t *s, int signum) {
  bt_agentd_t *d = s->data;
  switch (d->state) {
  case D_RUNNING:
    bt_log_info("signal received; draining",
                "signal=%d running=%zu drain_timeout_ms=%" PRIu64, signum, d->n_runs,
                d->opts->drain_timeout_ms);
    d->state = D_DRAINING;
    bt_agent_drain(d->agent);
    if (d->n_runs == 0)
      stop_agent(d);
    else
      uv_timer_start(&d->drain_timer, on_drain_timeout, d->opts->drain_timeout_ms, 0);
    break;
  case D_DRAINING:
    bt_log_info("second signal; handing back running work now", "signal=%d", signum);
    hand_back(d);
    break;
  default:
    bt_log_info("signal received; already stopping", "signal=%d", signum);
    break;
  }
}

/* ---- handlers ---------------------------------------------------------------- */

static void on_handler_progress(bt_handler_t *h, int percent, const uint8_t *ckpt,
                                size_t len, void *user) {
  bt_agentd_t *d = user;
  int rv = bt_agent_progress(d->agent, bt_handler_package_id(h), bt_handler_attempt(h),
                             percent, ckpt, len);
  if (rv != 0)
    bt_log_debug("progress not forwarded", "package=%" PRIu64 " error=%s",
                 bt_handler_package_id(h), BT_Q(bt_agent_strerror(rv)));
}

static void on_handler_done(bt_handler_t *h, const bt_handler_result_t *res,
                            void *user) {
  bt_agentd_t *d = user;
  uint64_t pkg = bt_handler_package_id(h);
  uint32_t attempt = bt_handler_attempt(h);
  int rv = bt_agent_complete(d->agent, pkg, attempt, res->outcome, res->output,
                             res->output_len, res->exit_code, res->error);
  if (rv != 0 && rv != BT_AGENT_ELIMIT)
    bt_log_warn("result not recorded",
                "package=%" PRIu64 " attempt=%" PRIu32 " error=%s", pkg, attempt,
                BT_Q(bt_agent_strerror(rv)));
  for (run_t **p = &d->runs; *p != NULL; p = &(*p)->next) {
    if ((*p)->h == h) {
      run_t *r = *p;
      *p = r->next;
      free(r);
      d->n_runs--;
      break;
    }
  }
  bt_handler_free(h);
  if ((d->state == D_DRAINING || d->state == D_HANDING_BACK) && d->n_runs == 0)
    stop_agent(d);
}

/* ---- agent callbacks ------------------------------------------------------- */

static void on_task(bt_agent_t *a, const bt_agent_task_t *t, void *user) {
  bt_agentd_t *d = user;
  const char *cmd = command_for(d, t->capability);
  if (cmd == NULL) {
    /* cannot happen: only configured capabilities are advertised */
    bt_agent_complete(a, t->package_id, t->attempt, BT_AGENT_FAILED, NULL, 0, -1,
                      "no handler configured for this capability");
    return;
  }
  if (d->state != D_RUNNING) {
    bt_agent_complete(a, t->package_id, t->attempt, BT_AGENT_HANDED_BACK, NULL, 0, -1,
                      "agent draining");
    return;
  }
  /* The broker refuses a result above its max_payload_bytes as a whole message
   * (and the library would resend it for ever), so the handler's output is cut
   * at the smaller limit and the attempt reported failed, "result too large". */
  size_t max = bt_agent_max_output(a);
  if (d->opts->max_result_bytes > 0 && d->opts->max_result_bytes < max)
    max = (size_t)d->opts->max_result_bytes;
  bt_handler_spec_t spec = {
      .package_id = t->package_id,
      .attempt = t->attempt,
      .capability = t->capability,
      .command = cmd,
      .payload = t->payload,
      .payload_len = t->payload_len,
      .deadline_at = t->deadline_at,
      .checkpoint = t->checkpoint,
      .checkpoint_len = t->checkpoint_len,
      .max_output = max,
      .max_checkpoint = max,
      .kill_grace_ms = d->opts->kill_grace_ms,
  };
  bt_handler_callbacks_t cbs = {on_handler_progress, on_handler_done};
  bt_handler_t *h = NULL;
  int rv = bt_handler_start(d->loop, &spec, &cbs, d, &h);
  if (rv != 0) {
    char why[160];
    snprintf(why, sizeof why, "could not start handler: %s", uv_strerror(rv));
    bt_agent_complete(a, t->package_id, t->attempt, BT_AGENT_FAILED, NULL, 0, -1, why);
    return;
  }
  run_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    abort();
  r->h = h;
  r->package_id = t->package_id;
  r->attempt = t->attempt;
  r->next = d->runs;
  d->runs = r;
  d->n_runs++;
}

static void on_cancel(bt_agent_t *a, uint64_t pkg, uint32_t attempt, void *user) {
  bt_agentd_t *d = user;
  run_t *r = find_run(d, pkg, attempt);
  (void)a;
  if (r != NULL)
    bt_handler_stop(r->h, BT_AGENT_CANCELLED);
}

static void on_fatal(bt_agent_t *a, int code, const char *msg, void *user) {
  bt_agentd_t *d = user;
  (void)a;
  (void)msg; /* logged by the library */
  bt_log_error("broker refused this agent; exiting", "reason=%s",
               BT_Q(bt_agent_strerror(code)));
  d->exit_code = 1;
  if (d->state == D_RUNNING || d->state == D_DRAINING)
    hand_back(d);
}

/* ---- lifecycle ------------------------------------------------------------- */

int bt_agentd_new(uv_loop_t *loop, const bt_agentd_opts_t *o, bt_agentd_t **out) {
  bt_agentd_t *d = calloc(1, sizeof *d);
  const char **caps = calloc(o->n_handlers, sizeof *caps);
  if (d == NULL || caps == NULL)
    abort();
  d->loop = loop;
  d->opts = o;
  for (size_t i = 0; i < o->n_handlers; i++)
    caps[i] = o->handlers[i].capability;
  bt_agent_config_t cfg = {
      .brokers = o->broker,
      .vendor = o->vendor,
      .secret = o->secret,
      .name = o->name,
      .capabilities = caps,
      .n_capabilities = o->n_handlers,
      .slots = (uint32_t)o->slots,
      .max_message_bytes = (uint32_t)o->max_message_bytes,
  };
  bt_agent_callbacks_t cbs = {on_task, on_cancel, on_fatal};
  int rv = bt_agent_new(loop, &cfg, &cbs, d, &d->agent);
  free(caps);
  if (rv != 0) {
    free(d);
    return rv;
  }
  *out = d;
  return 0;
}

int bt_agentd_start(bt_agentd_t *d) {
  int rv = bt_agent_start(d->agent);
  if (rv != 0)
    return rv;
  uv_signal_init(d->loop, &d->sigterm);
  uv_signal_init(d->loop, &d->sigint);
  uv_timer_init(d->loop, &d->drain_timer);
  d->sigterm.data = d->sigint.data = d->drain_timer.data = d;
  d->handles_open = 3;
  uv_signal_start(&d->sigterm, on_signal, SIGTERM);
  uv_signal_start(&d->sigint, on_signal, SIGINT);
  d->state = D_RUNNING;
  for (size_t i = 0; i < d->opts->n_handlers; i++)
    bt_log_info("handler configured", "capability=%s command=%s",
                BT_Q(d->opts->handlers[i].capability),
                BT_Q(d->opts->handlers[i].command));
  return 0;
}

int bt_agentd_exit_code(const bt_agentd_t *d) { return d->exit_code; }

void bt_agentd_free(bt_agentd_t *d) {
  if (d == NULL)
    return;
  if (d->state != D_NEW && (d->state != D_CLOSED || d->handles_open != 0)) {
    fprintf(stderr, "baton-agent: bt_agentd_free before the daemon stopped\n");
    abort();
  }
  while (d->runs != NULL) { /* none once stopped; kept for symmetry */
    run_t *r = d->runs;
    d->runs = r->next;
    free(r);
  }
  bt_agent_free(d->agent);
  free(d);
}

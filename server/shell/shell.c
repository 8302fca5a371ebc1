/*
 * Shell: core events in, actions out. See shell.h.
 *
 * One actions buffer serves every event: the core fills it, apply() carries it
 * out, and nothing apply() calls feeds an event back synchronously (store and
 * endpoint callbacks always come later from the loop), so the buffer is never
 * used twice at once.
 */
#include "shell_int.h"

#include "bt_err.h"
#include "bt_hours.h"
#include "bt_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    abort();
  return p;
}

static void update_hours(bt_shell_t *sh);

/* --- commit callbacks --------------------------------------------------------- */

typedef struct {
  bt_shell_t *sh;
  uint64_t package_id;
  uint64_t agent_id;
  uint32_t attempt;
  int code;
  uint64_t token;
  bool ack; /* FINISH: acknowledge the agent's result once this commits */
  uint64_t applied_ns; /* ASSIGN: when it was applied (assignment latency) */
} ctx_t;

static ctx_t *ctx_new(bt_shell_t *sh, const bt_action_t *a) {
  ctx_t *c = xmalloc(sizeof *c);
  c->sh = sh;
  c->package_id = a->package_id;
  c->agent_id = a->agent_id;
  c->attempt = a->attempt;
  c->code = a->code;
  c->token = a->token;
  c->ack = false;
  c->applied_ns = 0;
  return c;
}

/* One info line per package state change (issue 5), all in one shape —
 * msg="package state" package=… state=… — so an operator can follow a package
 * with one grep. The lookups are skipped when info is off (the benchmarks run
 * at warn: at tens of thousands of packages a second these lines cost). */
static void log_package(bt_shell_t *sh, uint64_t package_id, bt_pkg_state_t state,
                        uint32_t attempt, uint64_t agent_id, const char *more) {
  if (bt_log_get_level() > BT_LOG_INFO)
    return;
  bt_pkg_view_t v;
  const char *cap = "?", *vendor = "";
  if (bt_core_package_view(sh->core, package_id, &v) == 0) {
    cap = v.capability;
    const bt_core_vendor_t *ven = v.vendor_id ? bt_core_vendor(sh->core, v.vendor_id) : NULL;
    if (ven != NULL && state != BT_PKG_QUEUED)
      vendor = ven->name;
  }
  char who[200] = "";
  if (attempt > 0)
    snprintf(who, sizeof who, " attempt=%u vendor=%s agent=%" PRIu64, attempt, BT_Q(vendor),
             agent_id);
  bt_log_info("package state", "package=%" PRIu64 " state=%s capability=%s%s%s",
              package_id, bt_pkg_state_name(state), BT_Q(cap), who, more ? more : "");
}

static void log_finish(bt_shell_t *sh, const bt_action_t *a) {
  if (bt_log_get_level() > BT_LOG_INFO)
    return;
  char more[400];
  snprintf(more, sizeof more, " outcome=%s%s%s", bt_outcome_name(a->outcome),
           a->text ? " error=" : "", a->text ? BT_Q(a->text) : "");
  log_package(sh, a->package_id, a->state, a->attempt, a->agent_id, more);
}

/* sh->early's value for an insert sent on lanes.lane[0] (a small submit). */
#define EARLY_MAIN_LANE UINTPTR_MAX

/* Submit lane i, or lane 0 once lane i is closed (bt_lanes_close closes the
 * last first; lane 0 takes what the closed ones had). */
static bt_store_t *submit_store(bt_shell_t *sh, size_t i) {
  return i < sh->submit_lanes.open ? sh->submit_lanes.lane[i] : sh->submit_lanes.lane[0];
}

/* The connection for a write about a package: the lane of its id, or the
 * submit lane of its insert when it was assigned in its submit
 * (route_at_submit) and that insert is still in flight, so the write
 * follows the insert on one connection. A package lost with its agent
 * before its insert answered keeps that lane until it ends (sh->early):
 * the end of that attempt went there, and what comes after must follow it. */
bt_store_t *bt_shell__package_lane(bt_shell_t *sh, uint64_t package_id) {
  void *v = sh->early.n > 0 ? bt_idmap_get(&sh->early, package_id) : NULL;
  if (v != NULL && (uintptr_t)v == EARLY_MAIN_LANE)
    return sh->lanes.lane[0]; /* the last lane to close */
  if (v != NULL && sh->submit_lanes.open > 0)
    return submit_store(sh, (size_t)(uintptr_t)v - 1);
  return bt_lanes_for(&sh->lanes, package_id);
}

/* An assignment committed (its own write, or its package's insert): the agent
 * gets it, then the core hears. */
static void assignment_committed(bt_shell_t *sh, uint64_t package_id, uint32_t attempt,
                                 uint64_t agent_id, uint64_t applied_ns) {
  bt_now_t t = bt_shell__now();
  log_package(sh, package_id, BT_PKG_ASSIGNED, attempt, agent_id, NULL);
  if (sh->xp != NULL) {
    bt_xp_dispatch(sh->xp, agent_id, package_id, attempt);
    bt_met_hist_observe(&sh->stats.assign_latency, (double)(uv_hrtime() - applied_ns) / 1e9);
  }
  bt_core_assign_persisted(sh->core, package_id, attempt, true, &t, &sh->acts);
  bt_shell__apply(sh);
}

static void on_assign_committed(void *arg, int status) {
  ctx_t *c = arg;
  bt_shell_t *sh = c->sh;
  if (status == 0) {
    assignment_committed(sh, c->package_id, c->attempt, c->agent_id, c->applied_ns);
    free(c);
    return;
  }
  bt_log_error("could not record an assignment", "package=%" PRIu64 " attempt=%u error=%s",
               c->package_id, c->attempt, bt_strerror(status));
  bt_now_t t = bt_shell__now();
  bt_core_assign_persisted(sh->core, c->package_id, c->attempt, false, &t, &sh->acts);
  bt_shell__apply(sh);
  free(c);
}

static void on_finish_committed(void *arg, int status) {
  ctx_t *c = arg;
  bt_shell_t *sh = c->sh;
  bt_now_t t = bt_shell__now();
  if (status != 0)
    bt_log_error("could not record the end of an attempt; it will run again",
                 "package=%" PRIu64 " attempt=%u error=%s", c->package_id, c->attempt,
                 bt_strerror(status));
  if (c->ack && sh->xp != NULL)
    bt_xp_ack(sh->xp, c->agent_id, c->package_id, c->attempt, status == 0 ? 0 : status);
  bt_core_finish_persisted(sh->core, c->package_id, c->attempt, status == 0, &t,
                           &sh->acts);
  if (sh->early.n > 0 && bt_core_package(sh->core, c->package_id) == NULL)
    bt_idmap_del(&sh->early, c->package_id); /* ended: nothing more to order */
  bt_shell__apply(sh);
  free(c);
}

static void on_ack_ready(void *arg, int status) {
  ctx_t *c = arg;
  /* A barrier that failed means what came before it was not committed: say
   * nothing, the agent will send the result again. */
  if (c->sh->xp != NULL)
    bt_xp_ack(c->sh->xp, c->agent_id, c->package_id, c->attempt,
              status == 0 ? c->code : status);
  free(c);
}

static void on_vendor_committed(void *arg, int status) {
  ctx_t *c = arg;
  if (status == 0)
    update_hours(c->sh); /* a new vendor's hours count from now */
  if (status != 0) {
    bt_log_error("could not record a new vendor", "vendor_id=%" PRIu64 " error=%s",
                 c->package_id, bt_strerror(status));
    bt_core_vendor_persist_failed(c->sh->core, c->package_id);
  }
  bt_ctl_vendor_added(c->sh->ctl, c->token, status, c->package_id /* vendor id */);
  free(c);
}

typedef struct {
  bt_shell_t *sh;
  uint64_t session;
} hello_ctx_t;

static void on_agent_committed(void *arg, int status) {
  hello_ctx_t *c = arg;
  if (c->sh->xp != NULL)
    bt_xp_welcome(c->sh->xp, c->session, status);
  free(c);
}

/* --- applying actions ------------------------------------------------------------ */

static void audit(bt_shell_t *sh, const bt_action_t *a) {
  char subject[160], detail[320];
  const char *actor = a->by_admin ? "admin" : "broker";
  if (a->package_id && a->text2 != NULL) { /* *.foreign: who reported, who holds it */
    snprintf(subject, sizeof subject, "package:%" PRIu64, a->package_id);
    snprintf(detail, sizeof detail,
             "attempt=%u agent=%" PRIu64 " agent_name=%s vendor=%s holder=%s", a->attempt,
             a->agent_id, a->text2, a->text3 ? a->text3 : "?", a->text4 ? a->text4 : "?");
    bt_log_warn("refused a report about another vendor's package",
                "action=%s package=%" PRIu64 " attempt=%u agent=%s vendor=%s holder=%s",
                a->text, a->package_id, a->attempt, BT_Q(a->text2), BT_Q(a->text3),
                BT_Q(a->text4));
  } else if (a->package_id) {
    snprintf(subject, sizeof subject, "package:%" PRIu64, a->package_id);
    snprintf(detail, sizeof detail, "attempt=%u agent=%" PRIu64, a->attempt, a->agent_id);
  } else if (!a->agent_id && a->text2 != NULL && a->text4 != NULL &&
             strcmp(a->text, "agent.capability_refused") == 0) {
    /* No agent id yet: the hello was refused. Same subject as agent.auth_failed. */
    snprintf(subject, sizeof subject, "agent:%s/%s", a->text3 ? a->text3 : "?", a->text2);
    snprintf(detail, sizeof detail, "capability=%s vendor_id=%" PRIu64, a->text4,
             a->vendor_id);
    bt_log_warn("refused agent capability: its vendor is not registered for it",
                "vendor=%s agent=%s capability=%s", BT_Q(a->text3), BT_Q(a->text2),
                BT_Q(a->text4));
  } else if (a->agent_id) {
    snprintf(subject, sizeof subject, "agent:%s", a->text2 ? a->text2 : "?");
    snprintf(detail, sizeof detail, "agent_id=%" PRIu64 " vendor=%s", a->agent_id,
             a->text3 ? a->text3 : "?");
  } else if (a->text4 != NULL) { /* a vendor's state changed: text3 state, text4 why */
    snprintf(subject, sizeof subject, "vendor:%s", a->text2 ? a->text2 : "?");
    snprintf(detail, sizeof detail, "vendor_id=%" PRIu64 " state=%s reason=%s",
             a->vendor_id, a->text3 ? a->text3 : "?", a->text4);
  } else {
    snprintf(subject, sizeof subject, "vendor:%s", a->text2 ? a->text2 : "?");
    snprintf(detail, sizeof detail, "vendor_id=%" PRIu64 " region=%s", a->vendor_id,
             a->text3 ? a->text3 : "");
  }
  bt_store_audit(sh->lanes.lane[0], a->at, actor, a->text, subject, detail);
}

/* The core audits a report for an attempt that is no longer current (a result,
 * progress or held package from an agent that was passed over) as "<what>.stale". */
static bool is_stale_report(const char *action) {
  static const char suffix[] = ".stale";
  size_t n = action ? strlen(action) : 0;
  return n >= sizeof suffix - 1 && strcmp(action + n - (sizeof suffix - 1), suffix) == 0;
}

/* Persists a FINISH; its audit row names the attempt's vendor and agent as the
 * core knows them. */
static void finish(bt_shell_t *sh, const bt_action_t *a, ctx_t *c) {
  const bt_core_vendor_t *v = bt_core_vendor(sh->core, a->vendor_id);
  bt_agent_view_t g;
  const char *agent = bt_core_agent_view(sh->core, a->agent_id, &g) == 0 ? g.name : NULL;
  bt_store_finish(bt_shell__package_lane(sh, a->package_id), a, v ? v->name : NULL, agent,
                  on_finish_committed, c);
}

void bt_shell__apply(bt_shell_t *sh) {
  if (sh->applying)
    abort(); /* see the file comment: apply never nests */
  sh->applying = true;
  ctx_t *last_finish = NULL;
  for (size_t i = 0; i < sh->acts.n; i++) {
    const bt_action_t *a = &sh->acts.v[i];
    switch (a->kind) {
    case BT_ACT_PERSIST_VENDOR: {
      ctx_t *c = ctx_new(sh, a);
      c->package_id = a->vendor_id;
      bt_store_put_vendor(sh->lanes.lane[0], sh->core, bt_core_vendor(sh->core, a->vendor_id),
                          a->at, true, on_vendor_committed, c);
      break;
    }
    case BT_ACT_VENDOR_STATE: {
      const bt_core_vendor_t *v = bt_core_vendor(sh->core, a->vendor_id);
      bt_log(v->state == BT_VENDOR_ACTIVE ? BT_LOG_INFO : BT_LOG_WARN, "vendor state",
             "vendor=%s state=%s reason=%s", BT_Q(v->name), bt_vendor_state_name(v->state),
             BT_Q(v->state_reason));
      bt_store_vendor_state(sh->lanes.lane[0], v, a->at);
      break;
    }
    case BT_ACT_PACKAGE_UPDATE: {
      bt_pkg_view_t v;
      if (bt_core_package_view(sh->core, a->package_id, &v) == 0) {
        log_package(sh, a->package_id, v.state, 0, 0, a->by_admin ? " by=admin" : NULL);
        bt_store_package_update(bt_shell__package_lane(sh, a->package_id), &v, a->at);
      }
      break;
    }
    case BT_ACT_PERSIST_AGENT: {
      hello_ctx_t *c = xmalloc(sizeof *c);
      c->sh = sh;
      c->session = sh->hello_session;
      bt_store_put_agent(sh->lanes.lane[0], sh->core, a->agent_id, sh->hello_software, a->at,
                         on_agent_committed, c);
      break;
    }
    case BT_ACT_PERSIST_PACKAGE:
      break; /* batched by the submit path, which reads these itself */
    case BT_ACT_ASSIGN: {
      if (a->with_insert) /* placed in its submit: written with its insert (c_submit) */
        break;
      ctx_t *c = ctx_new(sh, a);
      c->applied_ns = uv_hrtime();
      bt_store_assign(bt_shell__package_lane(sh, a->package_id), a, on_assign_committed, c);
      break;
    }
    case BT_ACT_START:
      log_package(sh, a->package_id, BT_PKG_RUNNING, a->attempt, a->agent_id, NULL);
      bt_store_start(bt_shell__package_lane(sh, a->package_id), a);
      break;
    case BT_ACT_PROGRESS:
      bt_store_progress(bt_shell__package_lane(sh, a->package_id), a);
      break;
    case BT_ACT_FINISH:
      log_finish(sh, a);
      if (a->outcome == BT_OUTCOME_COMPLETED)
        sh->stats.completions++;
      else if (a->outcome == BT_OUTCOME_FAILED || a->outcome == BT_OUTCOME_TRANSIENT)
        sh->stats.failures++;
      last_finish = ctx_new(sh, a);
      finish(sh, a, last_finish);
      break;
    case BT_ACT_HANDOFF: {
      const bt_core_vendor_t *v = bt_core_vendor(sh->core, a->vendor_id);
      bt_log_info("package handed off", "package=%" PRIu64 " attempt=%u from=%s reason=%s",
                  a->package_id, a->attempt, v ? v->name : "?",
                  bt_handoff_reason_name(a->reason));
      if ((int)a->reason >= 0 && (int)a->reason < N_HANDOFF_REASONS)
        sh->stats.handoffs[a->reason]++;
      bt_store_handoff(bt_shell__package_lane(sh, a->package_id), a);
      break;
    }
    case BT_ACT_ACK_RESULT:
      /* The answer to a result that ended an attempt depends on that FINISH
       * committing; a barrier would also fire after a FINISH that failed. */
      if (last_finish != NULL && a->code == 0 && last_finish->package_id == a->package_id &&
          last_finish->attempt == a->attempt && last_finish->agent_id == a->agent_id)
        last_finish->ack = true;
      else
        bt_lanes_barrier(&sh->lanes, on_ack_ready, ctx_new(sh, a));
      break;
    case BT_ACT_CANCEL:
      bt_xp_cancel(sh->xp, a->agent_id, a->package_id, a->attempt);
      break;
    case BT_ACT_END_SESSION:
      /* A commit callback during shutdown may end sessions (a rotated
       * secret) after the endpoint closed: they are gone already. */
      if (sh->xp != NULL)
        bt_xp_end_session(sh->xp, a->agent_id);
      break;
    case BT_ACT_AUDIT:
      if (is_stale_report(a->text))
        sh->stats.stale++;
      audit(sh, a);
      break;
    case BT_ACT_VENDOR_KEY:
      bt_shell__vendor_key(sh, a);
      break;
    }
  }
  bt_actions_clear(&sh->acts);
  sh->applying = false;
}

/* --- agent endpoint handlers --------------------------------------------------------- */

static int h_vendor_key(void *arg, const char *vendor, uint64_t *vendor_id,
                        uint8_t key[32]) {
  bt_shell_t *sh = arg;
  const bt_core_vendor_t *v = bt_core_vendor_by_name(sh->core, vendor);
  if (v == NULL)
    return BT_ENOTFOUND;
  if (v->state == BT_VENDOR_SUSPENDED)
    return BT_ESTATE;
  *vendor_id = v->id;
  memcpy(key, v->auth_key, 32);
  return 0;
}

static int h_hello(void *arg, const bt_xp_hello_t *h, uint64_t *agent_id) {
  bt_shell_t *sh = arg;
  bt_now_t t = bt_shell__now();
  bt_agent_hello_t hello = {
      .vendor_id = h->vendor_id,
      .name = h->agent_name,
      .caps = h->caps,
      .n_caps = h->n_caps,
      .slots = h->slots,
      .held = h->held,
      .n_held = h->n_held,
  };
  sh->hello_session = h->session;
  sh->hello_software = h->software;
  int rc = bt_core_agent_hello(sh->core, &hello, &t, agent_id, &sh->acts);
  bt_shell__apply(sh);
  sh->hello_session = 0;
  sh->hello_software = NULL;
  return rc;
}

static void h_seen(void *arg, uint64_t agent_id) {
  bt_shell_t *sh = arg;
  bt_now_t t = bt_shell__now();
  bt_core_agent_seen(sh->core, agent_id, &t);
}

static void h_started(void *arg, uint64_t agent_id, uint64_t package_id, uint32_t attempt) {
  bt_shell_t *sh = arg;
  bt_now_t t = bt_shell__now();
  bt_core_agent_started(sh->core, agent_id, package_id, attempt, &t, &sh->acts);
  bt_shell__apply(sh);
}

static void h_ready(void *arg, uint64_t agent_id, uint32_t free_slots) {
  bt_shell_t *sh = arg;
  bt_now_t t = bt_shell__now();
  bt_core_agent_ready(sh->core, agent_id, free_slots, &t, &sh->acts);
  bt_shell__apply(sh);
}

static void h_progress(void *arg, uint64_t agent_id, uint64_t package_id, uint32_t attempt,
                       int percent, const void *checkpoint, size_t len) {
  bt_shell_t *sh = arg;
  bt_now_t t = bt_shell__now();
  bt_core_agent_progress(sh->core, agent_id, package_id, attempt, percent, checkpoint, len,
                         &t, &sh->acts);
  bt_shell__apply(sh);
}

static void h_result(void *arg, uint64_t agent_id, const bt_result_t *r) {
  bt_shell_t *sh = arg;
  bt_now_t t = bt_shell__now();
  bt_core_agent_result(sh->core, agent_id, r, 0, &t, &sh->acts);
  bt_shell__apply(sh);
}

static void h_bye(void *arg, uint64_t agent_id) {
  bt_shell_t *sh = arg;
  bt_now_t t = bt_shell__now();
  bt_core_agent_bye(sh->core, agent_id, &t, &sh->acts);
  bt_shell__apply(sh);
}

static int h_assignment(void *arg, uint64_t agent_id, uint64_t package_id,
                        uint32_t attempt, bt_xp_assignment_t *out) {
  bt_shell_t *sh = arg;
  bt_pkg_view_t v;
  if (bt_core_package_view(sh->core, package_id, &v) != 0 || v.attempt != attempt ||
      v.agent_id != agent_id ||
      (v.state != BT_PKG_ASSIGNED && v.state != BT_PKG_RUNNING))
    return BT_ESTALE;
  out->capability = v.capability;
  out->payload = v.payload;
  out->payload_len = v.payload_len;
  out->deadline_at = v.deadline_at;
  out->checkpoint = v.checkpoint;
  out->checkpoint_len = v.checkpoint_len;
  return 0;
}

static void h_rejected(void *arg, const char *action, const char *vendor, const char *agent,
                       const char *detail) {
  bt_shell_t *sh = arg;
  char subject[300];
  snprintf(subject, sizeof subject, "agent:%s/%s", vendor, agent);
  bt_store_audit(sh->lanes.lane[0], bt_wall_ms(), "agent", action, subject, detail);
}

/* --- control handlers ------------------------------------------------------------------ */

static int c_vendor_add(void *arg, const bt_vendor_spec_t *spec, uint64_t token) {
  bt_shell_t *sh = arg;
  if (bt_lanes_down(&sh->lanes))
    return BT_EDBDOWN;
  bt_now_t t = bt_shell__now();
  uint64_t id;
  int rc = bt_core_vendor_add(sh->core, spec, token, &t, &id, &sh->acts);
  if (rc == 0)
    bt_log_info("vendor added", "vendor=%s vendor_id=%" PRIu64 " region=%s", BT_Q(spec->name),
                id, BT_Q(spec->region));
  bt_shell__apply(sh);
  return rc;
}

/* A package the core assigned in its submit (route_at_submit): the insert
 * carries its attempt, and its commit is the assignment's. */
typedef struct {
  uint64_t package_id, agent_id;
  uint32_t attempt;
} early_assign_t;

typedef struct {
  bt_shell_t *sh;
  uint64_t token;
  size_t n;
  /* A known key of the request names a package not committed yet: its insert
   * may be on a submit lane or the first main lane, its finish on a main
   * lane. */
  bool names_pending;
  size_t n_early;
  early_assign_t *early;
  uint64_t applied_ns; /* when the submit was routed (assignment latency) */
  bt_submit_result_t results[];
} submit_ctx_t;

static void on_submit_store_barrier(void *arg, int status);

/* The insert of a submit's packages answered: its early assignments committed
 * with it, or never happened. Each goes to its agent if the core still holds
 * it so (not lost with its agent meanwhile; its package not a key's
 * duplicate). */
static void settle_early(submit_ctx_t *c, int status) {
  bt_shell_t *sh = c->sh;
  for (size_t i = 0; i < c->n_early; i++) {
    const early_assign_t *e = &c->early[i];
    bt_pkg_view_t v;
    bool open = bt_core_package_view(sh->core, e->package_id, &v) == 0;
    bool held = open && v.attempt == e->attempt && v.agent_id == e->agent_id &&
                v.state == BT_PKG_ASSIGNED;
    if (!open || held) /* else it was lost meanwhile: it keeps the lane */
      bt_idmap_del(&sh->early, e->package_id);
    if (status == 0 && held)
      assignment_committed(sh, e->package_id, e->attempt, e->agent_id, c->applied_ns);
  }
  free(c->early);
  c->early = NULL;
  c->n_early = 0;
}

static void on_inserted(void *arg, int status, const bt_store_inserted_t *rows, size_t n) {
  submit_ctx_t *c = arg;
  bt_shell_t *sh = c->sh;
  bt_now_t t = bt_shell__now();
  size_t k = 0;
  for (size_t i = 0; i < c->n; i++) {
    bt_submit_result_t *r = &c->results[i];
    if (r->duplicate || k >= n)
      continue;
    const bt_store_inserted_t *row = &rows[k++];
    if (status == 0 && row->existing_id == 0) {
      sh->stats.submits++;
      log_package(sh, row->id, BT_PKG_QUEUED, 0, 0, NULL);
    }
    bt_core_package_persisted(sh->core, row->id, status == 0, row->existing_id, &t,
                              &sh->acts);
    bt_shell__apply(sh);
    if (status == 0 && row->existing_id != 0) {
      r->id = row->existing_id;
      r->duplicate = true;
      if (row->existing_state == NULL ||
          bt_pkg_state_parse(row->existing_state, &r->state) != 0)
        r->state = BT_PKG_COMPLETED;
    }
  }
  if (c->n_early > 0)
    settle_early(c, status);
  if (status == 0 && c->names_pending) {
    /* Its own rows are in; what its known keys name is answered only once
     * committed too (the same barriers as a submit of known keys alone). */
    c->names_pending = false;
    bt_lanes_barrier(&sh->submit_lanes, on_submit_store_barrier, c);
    return;
  }
  bt_ctl_submitted(sh->ctl, c->token, status, c->results, c->n);
  free(c);
}

static void on_submit_barrier(void *arg, int status) {
  on_inserted(arg, status, NULL, 0);
}

/* A known key names a package whose insert (a submit lane, or the first
 * main lane) or finish (a main lane) may still be on its way: answer once all
 * of them are through. */
static void on_submit_store_barrier(void *arg, int status) {
  submit_ctx_t *c = arg;
  if (status != 0 || c->sh->lanes.lane[0] == NULL) {
    on_inserted(arg, status, NULL, 0);
    return;
  }
  bt_lanes_barrier(&c->sh->lanes, on_submit_barrier, c);
}

/* Small submits go with the other package writes on lanes.lane[0]: one
 * transaction and one commit for the submits, assignments and results of a
 * loop turn. At moderate load PostgreSQL's time goes mostly to the fixed
 * cost of each transaction and statement (a fence, a commit, executor
 * start-up), not to rows: with small submits on a connection of their own a
 * paced 10,000/s took 67-71 us of PostgreSQL a package, with them on the
 * main lane 53-57, and unpaced submitting-while-working went from 26-30k to
 * 30-41k packages/s (tests/bench/run, three interleaved pairs each). A large
 * one keeps a backend busy for milliseconds (about 15 us a row), so large
 * ones take turns over the submit lanes and a burst of them runs on several
 * cores (tests/bench: bulk submits of 1,000 went from 43-59k to 66-94k
 * packages/s with two). *early_tag is what sh->early records for the
 * packages of the submit assigned in it. */
#define SUBMIT_SPREAD_MIN 64

static bt_store_t *submit_store_for(bt_shell_t *sh, size_t n_new, uintptr_t *early_tag) {
  if (n_new < SUBMIT_SPREAD_MIN) {
    *early_tag = EARLY_MAIN_LANE;
    return sh->lanes.lane[0];
  }
  size_t lane = (size_t)(sh->submit_turn++ % sh->submit_lanes.n);
  *early_tag = lane + 1;
  return submit_store(sh, lane);
}

static int c_submit(void *arg, const bt_pkg_spec_t *specs, size_t n, uint64_t token) {
  bt_shell_t *sh = arg;
  if (sh->lanes.lane[0] == NULL || sh->submit_lanes.lane[0] == NULL)
    return BT_ESHUTDOWN; /* closing: a connection still open could ask */
  if (bt_lanes_down(&sh->lanes) || bt_lanes_down(&sh->submit_lanes))
    return BT_EDBDOWN;
  bt_now_t t = bt_shell__now();
  submit_ctx_t *c = xmalloc(sizeof *c + n * sizeof c->results[0]);
  c->sh = sh;
  c->token = token;
  c->n = n;
  c->names_pending = false;
  c->n_early = 0;
  c->early = NULL;
  c->applied_ns = uv_hrtime();
  bt_core_submit(sh->core, specs, n, token, &t, c->results, &sh->acts);
  uint64_t *ids = xmalloc(n * sizeof *ids);
  size_t n_new = 0;
  for (size_t i = 0; i < sh->acts.n; i++) {
    const bt_action_t *a = &sh->acts.v[i];
    if (a->kind == BT_ACT_PERSIST_PACKAGE)
      ids[n_new++] = a->package_id;
    else if (a->kind == BT_ACT_ASSIGN && a->with_insert) {
      if (c->early == NULL)
        c->early = xmalloc(n * sizeof *c->early);
      c->early[c->n_early++] =
          (early_assign_t){.package_id = a->package_id, .agent_id = a->agent_id,
                           .attempt = a->attempt};
    }
  }
  for (size_t i = 0; i < n && n_new > 0; i++) /* (known keys alone: barriers below) */
    if (c->results[i].duplicate && c->results[i].pending)
      c->names_pending = true;
  uintptr_t early_tag = 0;
  bt_store_t *ins = n_new > 0 ? submit_store_for(sh, n_new, &early_tag) : NULL;
  for (size_t i = 0; i < c->n_early; i++)
    bt_idmap_put(&sh->early, c->early[i].package_id, (void *)early_tag);
  /* The insert first: it carries the early assignments as the core has them
   * now, and what apply writes about them (nothing, as a rule) follows it. */
  if (n_new > 0)
    bt_store_insert_packages(ins, sh->core, ids, n_new, on_inserted, c);
  bt_shell__apply(sh);
  if (n_new == 0) /* only known keys: answer once what they name is committed */
    bt_lanes_barrier(&sh->submit_lanes, on_submit_store_barrier, c);
  free(ids);
  return 0;
}

static void c_rejected(void *arg, const char *action, const char *detail) {
  bt_shell_t *sh = arg;
  bt_store_audit(sh->lanes.lane[0], bt_wall_ms(), "control", action, "control-socket", detail);
}

/* --- time ---------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t) {
  bt_shell_t *sh = t->data;
  if (sh->lead_check != NULL)
    sh->lead_check(sh->lead_arg);
  bt_now_t n = bt_shell__now();
  /* An agent waiting for a commit cannot report in: do not take that for
   * silence (test_database_outage_loses_nothing). */
  bt_core_hold_leases(sh->core, bt_lanes_stalled_ms(&sh->lanes, n.ms) > STORE_STALL_MS, &n);
  uint64_t next = bt_core_tick(sh->core, &n, &sh->acts);
  bt_shell__apply(sh);
  bt_shell__list_tick(sh, n.ms);
  uint64_t wait = next > n.ms ? next - n.ms : 1;
  uv_timer_start(&sh->tick, on_tick, wait < TICK_MAX_MS ? wait : TICK_MAX_MS, 0);
}

/* --- working hours ----------------------------------------------------------------------- */

/* Whether each vendor is inside its working hours now. This needs a clock and
 * time-zone data, so it is done here and handed to the core, which only scores
 * with it. Zone files are read once per zone and cached (bt_hours). */
static void update_hours(bt_shell_t *sh) {
  int64_t at = bt_wall_ms();
  size_t n = bt_core_vendor_count(sh->core);
  for (size_t i = 0; i < n; i++) {
    const bt_core_vendor_t *v = bt_core_vendor_at(sh->core, i);
    bool inside = true;
    bt_hours_t h;
    if (v->hours != NULL && bt_hours_parse(v->hours, &h, NULL, 0) == 0 &&
        bt_hours_at(&h, at, &inside) != 0)
      inside = true; /* zone data gone: do not penalise the vendor for it */
    if (inside != v->in_hours) {
      bt_log_info(inside ? "vendor inside its working hours" : "vendor outside its working hours",
                  "vendor=%s hours=%s", BT_Q(v->name), BT_Q(v->hours));
      bt_core_vendor_set_in_hours(sh->core, v->id, inside);
    }
  }
}

static void on_hours(uv_timer_t *t) { update_hours(t->data); }

/* --- metrics ------------------------------------------------------------------------------ */

/* The per-vendor series with one value each (label `vendor`). */
typedef struct {
  const char *name, *type, *help;
  double (*value)(const bt_core_vendor_t *v);
} vendor_series_t;

static double v_in_flight(const bt_core_vendor_t *v) { return (double)v->in_flight; }
static double v_capacity(const bt_core_vendor_t *v) { return (double)v->capacity; }
static double v_limit(const bt_core_vendor_t *v) { return (double)v->limit; }
/* With no completed deadline yet there is no evidence of lateness: 1, never
 * NaN, so alerts on "ratio < x" do not fire for a new vendor. */
static double v_on_time(const bt_core_vendor_t *v) {
  return v->with_deadline ? (double)v->on_time / (double)v->with_deadline : 1.0;
}
static double v_completed(const bt_core_vendor_t *v) { return (double)v->completed; }
static double v_failed(const bt_core_vendor_t *v) { return (double)v->failed; }

static const vendor_series_t vendor_series[] = {
    {"baton_vendor_in_flight", "gauge", "Assigned and running packages per vendor.",
     v_in_flight},
    {"baton_vendor_capacity", "gauge", "Most packages a vendor runs at once.", v_capacity},
    {"baton_vendor_limit", "gauge",
     "Packages a vendor may have in flight now (below capacity while ramping up after a "
     "failure).",
     v_limit},
    {"baton_vendor_on_time_ratio", "gauge",
     "Completed packages with a deadline that met it, over all completed with a deadline "
     "(1 with none yet).",
     v_on_time},
    {"baton_vendor_completed_total", "counter", "Packages a vendor completed (all time).",
     v_completed},
    {"baton_vendor_failed_total", "counter",
     "Attempts that failed at a vendor (all time; transient failures, exit 75, are not "
     "counted).",
     v_failed},
};

/* Every family the broker exposes. Counters named *_total without a vendor
 * label count since this process started; the per-vendor totals come from the
 * vendors' rows and so survive restarts. */
static void render_metrics(void *arg, bt_met_buf_t *b) {
  bt_shell_t *sh = arg;
  bt_now_t n = bt_shell__now();
  bt_core_stats_t st;
  bt_core_stats(sh->core, &n, &st);
  bt_met_family(b, "baton_packages", "gauge",
                "Work packages by state (finishing: final state not committed yet).");
  for (int s = 0; s < BT_PKG__COUNT; s++)
    bt_met_sample(b, "baton_packages", "state", bt_pkg_state_name((bt_pkg_state_t)s),
                  (double)st.by_state[s]);
  bt_met_sample(b, "baton_packages", "state", "finishing", (double)st.finishing);
  bt_met_family(b, "baton_packages_waiting", "gauge",
                "Queued packages that no vendor may take now (see their waiting reason).");
  bt_met_sample(b, "baton_packages_waiting", NULL, NULL, (double)st.waiting);
  bt_met_family(b, "baton_vendors", "gauge", "Vendors by state.");
  for (int s = 0; s < BT_VENDOR__COUNT; s++)
    bt_met_sample(b, "baton_vendors", "state", bt_vendor_state_name((bt_vendor_state_t)s),
                  (double)st.vendors_by_state[s]);
  bt_met_family(b, "baton_agents_connected", "gauge", "Agents with a live session.");
  bt_met_sample(b, "baton_agents_connected", NULL, NULL, (double)st.agents_connected);
  /* Only the leader serves metrics (standbys bind nothing): a change of this
   * value on the scraped address is a takeover. */
  bt_met_family(b, "baton_leader_epoch", "gauge",
                "The leader epoch this broker serves under (raised by one at every takeover).");
  bt_met_sample(b, "baton_leader_epoch", NULL, NULL, (double)sh->epoch);

  bt_met_family(b, "baton_submits_total", "counter",
                "New packages accepted (committed; a known idempotency key is not counted).");
  bt_met_sample(b, "baton_submits_total", NULL, NULL, (double)sh->stats.submits);
  bt_met_family(b, "baton_completions_total", "counter", "Attempts that completed their package.");
  bt_met_sample(b, "baton_completions_total", NULL, NULL, (double)sh->stats.completions);
  bt_met_family(b, "baton_failures_total", "counter",
                "Attempts that ended in failure, permanent or transient (exit 75).");
  bt_met_sample(b, "baton_failures_total", NULL, NULL, (double)sh->stats.failures);
  bt_met_family(b, "baton_handoffs_total", "counter",
                "Packages moved away from a vendor, by reason.");
  for (int r = 0; r < N_HANDOFF_REASONS; r++)
    bt_met_sample(b, "baton_handoffs_total", "reason",
                  bt_handoff_reason_name((bt_handoff_reason_t)r), (double)sh->stats.handoffs[r]);
  bt_met_family(b, "baton_stale_reports_total", "counter",
                "Agent reports (result, progress, held work) for an attempt no longer current.");
  bt_met_sample(b, "baton_stale_reports_total", NULL, NULL, (double)sh->stats.stale);

  size_t nv = bt_core_vendor_count(sh->core);
  for (size_t k = 0; k < sizeof vendor_series / sizeof vendor_series[0]; k++) {
    const vendor_series_t *vs = &vendor_series[k];
    bt_met_family(b, vs->name, vs->type, vs->help);
    for (size_t i = 0; i < nv; i++) {
      const bt_core_vendor_t *v = bt_core_vendor_at(sh->core, i);
      bt_met_sample(b, vs->name, "vendor", v->name, vs->value(v));
    }
  }
  bt_met_family(b, "baton_vendor_state", "gauge",
                "1 for the vendor's current state, 0 for every other state.");
  for (size_t i = 0; i < nv; i++) {
    const bt_core_vendor_t *v = bt_core_vendor_at(sh->core, i);
    for (int st_i = 0; st_i < BT_VENDOR__COUNT; st_i++)
      bt_met_sample2(b, "baton_vendor_state", "vendor", v->name, "state",
                     bt_vendor_state_name((bt_vendor_state_t)st_i),
                     v->state == (bt_vendor_state_t)st_i ? 1 : 0);
  }

  bt_met_hist_render(b, "baton_assignment_latency_seconds",
                     "From the broker deciding an assignment to sending it to the agent, once its commit returned.",
                     &sh->stats.assign_latency);
  bt_met_hist_render(b, "baton_store_commit_seconds",
                     "From a batch of database writes being sent to its commit (sync) result.",
                     &sh->stats.store_commit);
  bt_met_family(b, "baton_store_backlog", "gauge",
                "Database writes and reads queued or in flight.");
  bt_met_sample(b, "baton_store_backlog", NULL, NULL,
                (double)bt_lanes_backlog(&sh->lanes) +
                    (double)bt_lanes_backlog(&sh->submit_lanes));
  bt_met_family(b, "baton_store_unlisted_ids", "gauge",
                "Package ids handed out since the last listing round (open_packages): "
                "a restart reads these besides the list.");
  bt_met_sample(b, "baton_store_unlisted_ids", NULL, NULL,
                (double)bt_core_unlisted_ids(sh->core));
}

static void on_store_commit(void *arg, double seconds) {
  bt_shell_t *sh = arg;
  bt_met_hist_observe(&sh->stats.store_commit, seconds);
}

static void on_store_flush(void *arg) {
  bt_shell_t *sh = arg;
  if (sh->xp)
    bt_xp_flush(sh->xp);
}

/* --- lifecycle ---------------------------------------------------------------------------- */

static void part_closed(void *arg) {
  bt_shell_t *sh = arg;
  if (--sh->closing_parts > 0)
    return;
  void (*cb)(void *) = sh->on_stopped;
  void *cb_arg = sh->stopped_arg;
  bt_actions_close(&sh->acts);
  bt_idmap_close(&sh->early);
  bt_shell__list_close(sh);
  bt_core_free(sh->core);
  bt_cfg_free(&sh->cfg);
  free(sh);
  if (cb)
    cb(cb_arg);
}

static void tick_closed(uv_handle_t *h) { part_closed(h->data); }

static void hours_closed(uv_handle_t *h) { part_closed(h->data); }

/* Every lane is drained: now the control socket may go (its last answers were
 * written by the store's callbacks). */
static void store_closed(void *arg) {
  bt_shell_t *sh = arg;
  if (sh->ctl)
    bt_ctl_close(sh->ctl, part_closed, sh);
  else
    part_closed(sh);
}

/* The submit lanes are drained: their last callbacks may have written through
 * the main lanes (a persisted package routed at once), so those close after
 * them. */
static void submit_store_closed(void *arg) {
  bt_shell_t *sh = arg;
  /* Everything written through a submit lane has answered: later writes
   * about any package can take its main lane. */
  bt_idmap_close(&sh->early);
  bt_idmap_init(&sh->early);
  if (sh->lanes.lane[0])
    bt_lanes_close(&sh->lanes, store_closed, sh);
  else
    store_closed(sh);
}

static void xp_closed(void *arg) {
  bt_shell_t *sh = arg;
  sh->xp = NULL;
  part_closed(sh);
}

static void met_closed(void *arg) {
  bt_shell_t *sh = arg;
  sh->met = NULL;
  part_closed(sh);
}

void bt_shell_stop(bt_shell_t *sh, void (*on_stopped)(void *arg), void *arg) {
  if (sh->stopping)
    return;
  sh->stopping = true;
  sh->on_stopped = on_stopped;
  sh->stopped_arg = arg;
  bt_log_info("stopping: no new requests; flushing pending commits", NULL);
  /* parts: tick and hours timers, endpoint, metrics, store→ctl chain */
  sh->closing_parts = 5;
  uv_timer_stop(&sh->hours);
  uv_close((uv_handle_t *)&sh->hours, hours_closed);
  if (sh->ctl)
    bt_ctl_stop_accepting(sh->ctl);
  if (sh->met)
    bt_met_close(sh->met, met_closed, sh);
  else
    part_closed(sh);
  uv_timer_stop(&sh->tick);
  uv_close((uv_handle_t *)&sh->tick, tick_closed);
  if (sh->xp)
    bt_xp_close(sh->xp, xp_closed, sh);
  else
    part_closed(sh);
  if (sh->submit_lanes.lane[0])
    bt_lanes_close(&sh->submit_lanes, submit_store_closed, sh);
  else
    submit_store_closed(sh);
}

int bt_shell_new(uv_loop_t *loop, const bt_config_t *cfg, const char *dsn,
                 const char *control_path, const bt_shell_lead_t *lead,
                 bt_shell_t **out) {
  bt_shell_t *sh = calloc(1, sizeof *sh);
  if (sh == NULL)
    abort();
  sh->loop = loop;
  bt_actions_init(&sh->acts);
  bt_idmap_init(&sh->early);
  bt_met_hist_init(&sh->stats.assign_latency);
  bt_met_hist_init(&sh->stats.store_commit);

  /* The live copy `config get|set` and SIGHUP work on (shell_config.c). */
  bt_cfg_copy(&sh->cfg, cfg);
  bt_core_config_t cc;
  bt_shell__core_config(cfg, &cc);
  cc.seed = (uint64_t)bt_wall_ms() ^ ((uint64_t)bt_mono_ms() << 20);
  sh->core = bt_core_new(&cc);

  bt_now_t t = bt_shell__now();
  int rv = bt_store_load(dsn, sh->core, &t);
  if (rv != 0) {
    bt_log_error("could not load state from the database", "error=%s", bt_strerror(rv));
    bt_actions_close(&sh->acts);
    bt_idmap_close(&sh->early);
    bt_core_free(sh->core);
    bt_cfg_free(&sh->cfg);
    free(sh);
    return rv;
  }

  bt_store_opts_t so;
  bt_store_opts_default(&so);
  so.pipeline_depth = cfg->store_pipeline_depth;
  so.overlap_min_ops = cfg->store_overlap_ops;
  so.max_segment_ops = cfg->store_segment_ops;
  so.op_timeout_ms = cfg->store_timeout_ms;
  so.on_commit = on_store_commit;
  so.commit_arg = sh;
  if (lead != NULL) {
    sh->lead_check = lead->check;
    sh->epoch = lead->epoch;
    sh->lead_arg = lead->arg;
    so.epoch = lead->epoch;
    so.on_fenced = lead->fenced;
    so.fenced_arg = lead->arg;
  }
  bt_lanes_init(&sh->lanes, cfg->store_lanes);
  for (size_t i = 0; i < sh->lanes.n; i++)
    bt_store_new(loop, dsn, &so, on_store_flush, sh, &sh->lanes.lane[i]);
  bt_lanes_init(&sh->submit_lanes, cfg->store_submit_lanes);
  for (size_t i = 0; i < sh->submit_lanes.n; i++)
    bt_store_new(loop, dsn, &so, on_store_flush, sh, &sh->submit_lanes.lane[i]);
  if (lead != NULL && lead->epoch != 0) {
    /* Governance: who led, from when (the first write of this epoch). */
    char subject[32], detail[200];
    snprintf(subject, sizeof subject, "epoch:%lld", (long long)lead->epoch);
    snprintf(detail, sizeof detail, "holder=%s previous=%s",
             lead->holder ? lead->holder : "",
             lead->previous && lead->previous[0] ? lead->previous : "none");
    bt_store_audit(sh->lanes.lane[0], bt_wall_ms(), "broker", "broker.leader", subject, detail);
  }

  bt_xp_opts_t xo;
  bt_xp_opts_default(&xo);
  xo.max_message_bytes = cfg->max_message_bytes;
  xo.heartbeat_ms = cfg->heartbeat_ms;
  xo.lease_ms = cfg->lease_ms;
  xo.poll_ms = cfg->poll_ms;
  xo.max_payload_bytes = cfg->max_payload_bytes;
  xo.max_agents_per_vendor = cfg->max_agents_per_vendor;
  xo.encrypt = cfg->encrypt != 0;
  static const bt_xp_handler_t xh = {
      .vendor_key = h_vendor_key,
      .hello = h_hello,
      .seen = h_seen,
      .started = h_started,
      .ready = h_ready,
      .progress = h_progress,
      .result = h_result,
      .bye = h_bye,
      .assignment = h_assignment,
      .rejected = h_rejected,
  };
  rv = bt_xp_new(loop, cfg->agents, &xo, &xh, sh, &sh->xp);

  if (rv == 0) {
    bt_ctl_opts_t co;
    bt_ctl_opts_default(&co);
    co.max_frame_bytes = cfg->max_control_frame_bytes;
    co.max_batch = cfg->max_batch;
    co.max_payload_bytes = cfg->max_payload_bytes;
    co.admin_token = cfg->admin_token;
    static const bt_ctl_ops_t ops = {.vendor_add = c_vendor_add,
                                     .submit = c_submit,
                                     .vendor_op = bt_shell__vendor_op,
                                     .package_op = bt_shell__package_op,
                                     .vendor_rotate_secret = bt_shell__vendor_rotate_secret,
                                     .rejected = c_rejected,
                                     .config = bt_shell__config,
                                     .config_set = bt_shell__config_set};
    rv = bt_ctl_new(loop, control_path, &co, sh->core, &sh->lanes, &ops, sh, &sh->ctl);
  }
  if (rv == 0 && cfg->metrics != NULL && cfg->metrics[0] != '\0')
    rv = bt_met_new(loop, cfg->metrics, render_metrics, sh, &sh->met);

  uv_timer_init(loop, &sh->tick);
  sh->tick.data = sh;
  uv_timer_init(loop, &sh->hours);
  sh->hours.data = sh;
  if (rv != 0) {
    bt_shell_stop(sh, NULL, NULL);
    return rv;
  }
  uv_timer_start(&sh->tick, on_tick, 0, 0);
  /* Now, then at every minute: hours are given to the minute. */
  update_hours(sh);
  uv_timer_start(&sh->hours, on_hours, 60000 - (uint64_t)(bt_wall_ms() % 60000), 60000);
  *out = sh;
  return 0;
}

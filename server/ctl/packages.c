/*
 * Package commands: submit and the admin operations cancel, retry and
 * reassign (validated here, decided by the core through the shell), show and
 * list (read from the store, with the core's live view laid over open
 * packages: progress and the waiting reason), result and wait.
 */
#include "ctl_int.h"

#include "bt_err.h"
#include "bt_log.h"
#include "bt_time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- submit ------------------------------------------------------------------ */

void bt_ctl__submit(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__Submit *m) {
  if (m->n_packages == 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, "no packages to submit");
    return;
  }
  if (m->n_packages > ctl->opts.max_batch) {
    char msg[128];
    snprintf(msg, sizeof msg, "a batch holds at most %u packages, got %zu",
             ctl->opts.max_batch, m->n_packages);
    bt_ctl__fail(ctl, req, BT_ELIMIT, msg);
    return;
  }
  bt_pkg_spec_t *specs = calloc(m->n_packages, sizeof *specs);
  if (specs == NULL)
    abort();
  for (size_t i = 0; i < m->n_packages; i++) {
    const Baton__PackageSpec *s = m->packages[i];
    char why[200], msg[240];
    if (bt_ctl__validate_spec(s, ctl->opts.max_payload_bytes, why, sizeof why) != 0) {
      if (m->n_packages > 1)
        snprintf(msg, sizeof msg, "package %zu: %s", i + 1, why);
      else
        snprintf(msg, sizeof msg, "%s", why);
      bt_ctl__fail(ctl, req, BT_EINVAL, msg);
      free(specs);
      return;
    }
    bt_pkg_spec_t *p = &specs[i];
    p->capability = s->capability;
    p->payload = s->has_payload ? s->payload.data : NULL;
    p->payload_len = s->has_payload ? s->payload.len : 0;
    p->priority = s->has_priority ? s->priority : 0;
    p->deadline_at = s->has_deadline_at ? s->deadline_at : 0;
    p->not_before_at = s->has_not_before_at ? s->not_before_at : 0;
    p->regions = (const char *const *)s->regions;
    p->n_regions = s->n_regions;
    p->certs = (const char *const *)s->certs;
    p->n_certs = s->n_certs;
    p->max_cost = s->has_max_cost ? s->max_cost : -1.0;
    p->prefer = (const char *const *)s->prefer;
    p->n_prefer = s->n_prefer;
    p->avoid = (const char *const *)s->avoid;
    p->n_avoid = s->n_avoid;
    p->max_attempts = s->has_max_attempts ? s->max_attempts : 0;
    p->key = s->key;
  }
  int rc = ctl->ops.submit(ctl->arg, specs, m->n_packages, req->token);
  free(specs);
  if (rc != 0)
    bt_ctl__fail(ctl, req, rc,
                 rc == BT_EDBDOWN ? "store unavailable; nothing was submitted, retry later"
                                  : bt_strerror(rc));
}

void bt_ctl_submitted(bt_ctl_t *ctl, uint64_t token, int status,
                      const bt_submit_result_t *results, size_t n) {
  bt_ctl_req_t *req = bt_ctl__req_by_token(ctl, token);
  if (req == NULL)
    return;
  if (status != 0) {
    bt_ctl__fail(ctl, req, status,
                 status == BT_EDBDOWN || status == BT_ESHUTDOWN
                     ? "store unavailable; the packages were not submitted"
                     : bt_strerror(status));
    return;
  }
  Baton__SubmittedPackage *sp = calloc(n + 1, sizeof *sp);
  Baton__SubmittedPackage **ptrs = calloc(n + 1, sizeof *ptrs);
  if (sp == NULL || ptrs == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    baton__submitted_package__init(&sp[i]);
    sp[i].has_id = sp[i].has_duplicate = true;
    sp[i].id = results[i].id;
    sp[i].duplicate = results[i].duplicate;
    sp[i].state = (char *)bt_pkg_state_name(results[i].state);
    ptrs[i] = &sp[i];
  }
  Baton__CtlReply reply;
  Baton__Submitted sub = BATON__SUBMITTED__INIT;
  bt_ctl__reply_init(&reply);
  sub.n_packages = n;
  sub.packages = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_SUBMITTED;
  reply.submitted = &sub;
  bt_ctl__answer(ctl, req, &reply);
  free(ptrs);
  free(sp);
}

/* --- cancel, retry, reassign ------------------------------------------------------ */

static const char *package_op_verb(bt_pkg_op_t op) {
  switch (op) {
  case BT_PKG_OP_CANCEL:
    return "cancel";
  case BT_PKG_OP_RETRY:
    return "retry";
  case BT_PKG_OP_REASSIGN:
    return "reassign";
  }
  return "change";
}

/* The operator's text for a package operation that failed with code. */
static void package_op_error(int code, const char *verb, uint64_t id, char *buf,
                             size_t len) {
  if (code == BT_EDBDOWN || code == BT_ESHUTDOWN)
    snprintf(buf, len, "store unavailable; package %" PRIu64 " was not changed, retry later",
             id);
  else if (code == BT_ENOTFOUND)
    /* The core knows open packages only: a finished one is "not found" too. */
    snprintf(buf, len, "could not %s package %" PRIu64 ": no such open package", verb, id);
  else
    snprintf(buf, len, "could not %s package %" PRIu64 ": %s", verb, id, bt_strerror(code));
}

void bt_ctl__package_op(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageOp *m) {
  char why[240];
  bt_pkg_op_t op;
  if (bt_ctl__validate_package_op(m, &op, why, sizeof why) != 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, why);
    return;
  }
  uint64_t to_vendor = 0;
  const char *to_name = NULL;
  if (m->to != NULL) {
    const bt_core_vendor_t *v = bt_ctl__vendor_or_fail(ctl, req, m->to);
    if (v == NULL)
      return;
    to_vendor = v->id;
    to_name = v->name;
  }
  if (ctl->ops.package_op == NULL) {
    bt_ctl__fail(ctl, req, BT_ESTATE, "this broker cannot change packages");
    return;
  }
  /* Kept for a later error text; the verb travels in the name slot. */
  snprintf(req->name, sizeof req->name, "%s", package_op_verb(op));
  int rc = ctl->ops.package_op(ctl->arg, m->id, op, to_vendor, req->token);
  /* rc == 0: the shell holds the token (and may have answered already). */
  if (rc != 0) {
    if (rc == BT_EINVAL && to_name != NULL)
      /* The core refuses a target the package could never run on. */
      snprintf(why, sizeof why,
               "could not reassign package %" PRIu64 " to vendor %s: the vendor lacks its "
               "capability or its requirements exclude the vendor",
               m->id, to_name);
    else
      package_op_error(rc, package_op_verb(op), m->id, why, sizeof why);
    bt_ctl__fail(ctl, req, rc, why);
  }
}

void bt_ctl_package_changed(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id,
                            bt_pkg_state_t state, const char *message) {
  bt_ctl_req_t *req = bt_ctl__req_by_token(ctl, token);
  if (req == NULL)
    return;
  if (status != 0) {
    char buf[240];
    if (message == NULL || message[0] == '\0') {
      /* Here the change may be in memory already, its commit unknown. */
      if (status == BT_EDBDOWN || status == BT_ESHUTDOWN)
        snprintf(buf, sizeof buf,
                 "store unavailable; the change to package %" PRIu64 " is not confirmed", id);
      else
        package_op_error(status, req->name[0] ? req->name : "change", id, buf, sizeof buf);
      message = buf;
    }
    bt_ctl__fail(ctl, req, status, message);
    return;
  }
  Baton__CtlReply reply;
  Baton__PackageState ps = BATON__PACKAGE_STATE__INIT;
  bt_ctl__reply_init(&reply);
  ps.has_id = true;
  ps.id = id;
  ps.state = (char *)bt_pkg_state_name(state);
  reply.body_case = BATON__CTL_REPLY__BODY_PACKAGE_STATE;
  reply.package_state = &ps;
  bt_ctl__answer(ctl, req, &reply);
}

/* --- show and list ---------------------------------------------------------------- */

/* A read in flight: the request it answers (by token, since the client may
 * leave meanwhile) and the package it is about. */
typedef struct {
  bt_ctl_t *ctl;
  uint64_t token;
  uint64_t package_id;
} pending_t;

static pending_t *pending_new(bt_ctl_t *ctl, bt_ctl_req_t *req, uint64_t package_id) {
  pending_t *p = malloc(sizeof *p);
  if (p == NULL)
    abort();
  p->ctl = ctl;
  p->token = req->token;
  p->package_id = package_id;
  return p;
}

/* Copies a store row into pi; live figures of an open package come from the
 * core (reason_buf holds its waiting reason). */
static void package_info(const bt_ctl_t *ctl, const bt_store_pkg_t *row,
                         Baton__PackageInfo *pi, char *reason_buf, size_t reason_len,
                         const bt_now_t *now) {
  baton__package_info__init(pi);
  pi->has_id = true;
  pi->id = row->id;
  pi->capability = (char *)row->capability;
  pi->state = (char *)row->state;
  pi->has_priority = true;
  pi->priority = row->priority;
  if (row->deadline_at) {
    pi->has_deadline_at = true;
    pi->deadline_at = row->deadline_at;
  }
  if (row->not_before_at) {
    pi->has_not_before_at = true;
    pi->not_before_at = row->not_before_at;
  }
  pi->vendor = (char *)row->vendor;
  pi->agent = (char *)row->agent;
  pi->has_attempt = true;
  pi->attempt = row->attempt;
  int progress = row->progress;
  bt_pkg_view_t v;
  reason_buf[0] = '\0';
  if (bt_core_package_view(ctl->core, row->id, &v) == 0) {
    if (v.progress >= 0)
      progress = v.progress;
    bt_core_waiting_reason(ctl->core, row->id, now, reason_buf, reason_len);
  }
  if (reason_buf[0])
    pi->waiting_reason = reason_buf;
  if (progress >= 0) {
    pi->has_progress = true;
    pi->progress = (uint32_t)progress;
  }
  pi->has_result_bytes = true;
  pi->result_bytes = row->result_bytes;
  pi->key = (char *)row->key;
  pi->has_submitted_at = true;
  pi->submitted_at = row->submitted_at;
  if (row->completed_at) {
    pi->has_completed_at = true;
    pi->completed_at = row->completed_at;
  }
  pi->n_regions = row->n_regions;
  pi->regions = (char **)row->regions;
  pi->n_certs = row->n_certs;
  pi->certs = (char **)row->certs;
  pi->n_prefer = row->n_prefer;
  pi->prefer = (char **)row->prefer;
  pi->n_avoid = row->n_avoid;
  pi->avoid = (char **)row->avoid;
  if (row->max_cost >= 0) {
    pi->has_max_cost = true;
    pi->max_cost = row->max_cost;
  }
  pi->has_max_attempts = pi->has_payload_bytes = true;
  pi->max_attempts = row->max_attempts;
  pi->payload_bytes = row->payload_bytes;
  pi->error = (char *)row->error;
}

static void answer_packages(bt_ctl_t *ctl, bt_ctl_req_t *req, const bt_store_pkg_t *rows,
                            size_t n) {
  bt_now_t now = {.ms = bt_mono_ms(), .at = bt_wall_ms()};
  Baton__PackageInfo *infos = calloc(n + 1, sizeof *infos);
  Baton__PackageInfo **ptrs = calloc(n + 1, sizeof *ptrs);
  char (*reasons)[256] = calloc(n + 1, sizeof *reasons);
  if (infos == NULL || ptrs == NULL || reasons == NULL)
    abort();
  Baton__AttemptInfo *ais = NULL, **aptrs = NULL;
  Baton__HandoffInfo *his = NULL, **hptrs = NULL;
  for (size_t i = 0; i < n; i++) {
    package_info(ctl, &rows[i], &infos[i], reasons[i], sizeof reasons[i], &now);
    ptrs[i] = &infos[i];
  }
  if (n == 1 && (rows[0].n_attempts > 0 || rows[0].n_handoffs > 0)) {
    const bt_store_pkg_t *r = &rows[0];
    ais = calloc(r->n_attempts + 1, sizeof *ais);
    aptrs = calloc(r->n_attempts + 1, sizeof *aptrs);
    his = calloc(r->n_handoffs + 1, sizeof *his);
    hptrs = calloc(r->n_handoffs + 1, sizeof *hptrs);
    if (ais == NULL || aptrs == NULL || his == NULL || hptrs == NULL)
      abort();
    for (size_t k = 0; k < r->n_attempts; k++) {
      const bt_store_attempt_t *a = &r->attempts[k];
      baton__attempt_info__init(&ais[k]);
      ais[k].has_attempt = true;
      ais[k].attempt = a->attempt;
      ais[k].vendor = (char *)a->vendor;
      ais[k].agent = (char *)a->agent;
      ais[k].has_started_at = a->started_at != 0;
      ais[k].started_at = a->started_at;
      ais[k].has_ended_at = a->ended_at != 0;
      ais[k].ended_at = a->ended_at;
      ais[k].outcome = (char *)a->outcome;
      ais[k].has_exit_code = a->has_exit_code;
      ais[k].exit_code = a->exit_code;
      ais[k].error = (char *)a->error;
      aptrs[k] = &ais[k];
    }
    for (size_t k = 0; k < r->n_handoffs; k++) {
      const bt_store_handoff_t *h = &r->handoffs[k];
      baton__handoff_info__init(&his[k]);
      his[k].from_vendor = (char *)h->from_vendor;
      his[k].to_vendor = (char *)h->to_vendor;
      his[k].reason = (char *)h->reason;
      his[k].has_at = his[k].has_checkpoint_bytes = true;
      his[k].at = h->at;
      his[k].checkpoint_bytes = h->checkpoint_bytes;
      hptrs[k] = &his[k];
    }
    infos[0].n_attempts = r->n_attempts;
    infos[0].attempts = aptrs;
    infos[0].n_handoffs = r->n_handoffs;
    infos[0].handoffs = hptrs;
  }
  Baton__CtlReply reply;
  Baton__PackageList pl = BATON__PACKAGE_LIST__INIT;
  bt_ctl__reply_init(&reply);
  pl.n_packages = n;
  pl.packages = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_PACKAGES;
  reply.packages = &pl;
  bt_ctl__answer(ctl, req, &reply);
  free(ais);
  free(aptrs);
  free(his);
  free(hptrs);
  free(reasons);
  free(ptrs);
  free(infos);
}

static void on_show(void *arg, int status, const bt_store_pkg_t *rows, size_t n) {
  pending_t *p = arg;
  bt_ctl_req_t *req = bt_ctl__req_by_token(p->ctl, p->token);
  if (req != NULL) {
    if (status == BT_ENOTFOUND)
      bt_ctl__fail(p->ctl, req, status, "no such package");
    else if (status != 0)
      bt_ctl__fail(p->ctl, req, status, "store unavailable; retry later");
    else
      answer_packages(p->ctl, req, rows, n);
  }
  free(p);
}

void bt_ctl__package_show(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageRef *m) {
  if (!m->has_id || m->id == 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, "package id required");
    return;
  }
  bt_store_get_package(bt_lanes_for(ctl->lanes, m->id), m->id, on_show,
                       pending_new(ctl, req, m->id));
}

void bt_ctl__package_list(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageQuery *m) {
  bt_store_pkg_filter_t f = {0};
  if (m->state != NULL) {
    bt_pkg_state_t s;
    if (bt_pkg_state_parse(m->state, &s) != 0) {
      bt_ctl__fail(ctl, req, BT_EINVAL,
                   "state must be queued, assigned, running, completed, dead or cancelled");
      return;
    }
    f.state = bt_pkg_state_name(s);
  }
  if (m->vendor != NULL) {
    const bt_core_vendor_t *v = bt_ctl__vendor_or_fail(ctl, req, m->vendor);
    if (v == NULL)
      return;
    f.vendor_id = v->id;
  }
  f.capability = m->capability;
  f.limit = m->has_limit && m->limit > 0 ? (m->limit > 10000 ? 10000 : m->limit) : 100;
  bt_store_list_packages(ctl->lanes->lane[0], &f, on_show, pending_new(ctl, req, 0));
}

/* --- result --------------------------------------------------------------------- */

static void on_result(void *arg, int status, const char *state, const uint8_t *data,
                      size_t len) {
  pending_t *p = arg;
  bt_ctl_req_t *req = bt_ctl__req_by_token(p->ctl, p->token);
  if (req == NULL) {
    free(p);
    return;
  }
  if (status == BT_ENOTFOUND) {
    bt_ctl__fail(p->ctl, req, status, "no such package");
  } else if (status != 0) {
    bt_ctl__fail(p->ctl, req, status, "store unavailable; retry later");
  } else if (strcmp(state, "completed") != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "package has no result: it is %s, not completed", state);
    bt_ctl__fail(p->ctl, req, BT_ESTATE, msg);
  } else {
    Baton__CtlReply reply;
    Baton__ResultData rd = BATON__RESULT_DATA__INIT;
    bt_ctl__reply_init(&reply);
    rd.has_id = rd.has_result = true;
    rd.id = p->package_id;
    rd.state = (char *)state;
    rd.result.data = (uint8_t *)(data ? data : (const uint8_t *)"");
    rd.result.len = len;
    reply.body_case = BATON__CTL_REPLY__BODY_RESULT;
    reply.result = &rd;
    bt_ctl__answer(p->ctl, req, &reply);
  }
  free(p);
}

void bt_ctl__result(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageRef *m) {
  if (!m->has_id || m->id == 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, "package id required");
    return;
  }
  bt_store_get_result(bt_lanes_for(ctl->lanes, m->id), m->id, on_result,
                      pending_new(ctl, req, m->id));
}

/* --- wait ------------------------------------------------------------------------- */

typedef struct {
  bt_ctl_t *ctl;
  uint64_t token;
  uint64_t asked;
} wait_t;

static void answer_wait(bt_ctl_t *ctl, bt_ctl_req_t *req, uint64_t completed, uint64_t dead,
                        uint64_t cancelled, uint64_t pending, uint64_t unknown) {
  Baton__CtlReply reply;
  Baton__WaitStatus ws = BATON__WAIT_STATUS__INIT;
  bt_ctl__reply_init(&reply);
  ws.has_completed = ws.has_dead = ws.has_cancelled = ws.has_pending = true;
  ws.has_unknown = true;
  ws.completed = completed;
  ws.dead = dead;
  ws.cancelled = cancelled;
  ws.pending = pending;
  ws.unknown = unknown;
  reply.body_case = BATON__CTL_REPLY__BODY_WAIT;
  reply.wait = &ws;
  bt_ctl__answer(ctl, req, &reply);
}

static void on_counts(void *arg, int status, const uint64_t counts[BT_PKG__COUNT],
                      uint64_t found) {
  wait_t *w = arg;
  bt_ctl_req_t *req = bt_ctl__req_by_token(w->ctl, w->token);
  if (req != NULL) {
    if (status != 0) {
      bt_ctl__fail(w->ctl, req, status, "store unavailable; retry later");
    } else {
      uint64_t done = counts[BT_PKG_COMPLETED] + counts[BT_PKG_DEAD] +
                      counts[BT_PKG_CANCELLED];
      answer_wait(w->ctl, req, counts[BT_PKG_COMPLETED], counts[BT_PKG_DEAD],
                  counts[BT_PKG_CANCELLED], found - done,
                  w->asked > found ? w->asked - found : 0);
    }
  }
  free(w);
}

void bt_ctl__wait(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__WaitQuery *m) {
  if (m->has_all && m->all) {
    /* Everything the broker knows: open packages are in memory, finished ones
     * counted since load. A package whose final state is not committed yet
     * is still pending: its result may not be readable until it is. */
    bt_now_t now = {.ms = bt_mono_ms(), .at = bt_wall_ms()};
    bt_core_stats_t st;
    bt_core_stats(ctl->core, &now, &st);
    answer_wait(ctl, req, st.by_state[BT_PKG_COMPLETED], st.by_state[BT_PKG_DEAD],
                st.by_state[BT_PKG_CANCELLED],
                st.by_state[BT_PKG_QUEUED] + st.by_state[BT_PKG_ASSIGNED] +
                    st.by_state[BT_PKG_RUNNING] + st.finishing,
                0);
    return;
  }
  if (m->n_ids == 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, "package ids or --all required");
    return;
  }
  if (m->n_ids > 100000) {
    bt_ctl__fail(ctl, req, BT_ELIMIT, "at most 100000 ids in one wait");
    return;
  }
  wait_t *w = malloc(sizeof *w);
  if (w == NULL)
    abort();
  w->ctl = ctl;
  w->token = req->token;
  w->asked = m->n_ids;
  bt_store_count_states(ctl->lanes->lane[0], m->ids, m->n_ids, on_counts, w);
}

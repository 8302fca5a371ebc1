/*
 * `audit` and `scorecard`: answered from history in the store, never from the
 * core's memory, so they hold across restarts and agree with the rows. The
 * vendor filter is resolved against the core first (every vendor is in
 * memory) so an unknown name is "not found" rather than an empty answer that
 * looks like good news.
 */
#include "ctl_int.h"

#include "bt_err.h"

#include <stdio.h>
#include <stdlib.h>

/* --- audit -------------------------------------------------------------------- */

static void on_audit(void *arg, int status, const bt_store_audit_row_t *rows, size_t n) {
  bt_ctl_t *ctl;
  bt_ctl_req_t *req = bt_ctl__read_done(arg, status, &ctl);
  if (req == NULL)
    return;
  Baton__AuditEvent *evs = calloc(n + 1, sizeof *evs);
  Baton__AuditEvent **ptrs = calloc(n + 1, sizeof *ptrs);
  if (evs == NULL || ptrs == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    const bt_store_audit_row_t *r = &rows[i];
    Baton__AuditEvent *e = &evs[i];
    baton__audit_event__init(e);
    e->has_id = e->has_at = true;
    e->id = r->id;
    e->at = r->at;
    e->actor = (char *)r->actor;
    e->action = (char *)r->action;
    e->subject = (char *)r->subject;
    e->detail = (char *)r->detail;
    ptrs[i] = e;
  }
  Baton__CtlReply reply;
  Baton__AuditList al = BATON__AUDIT_LIST__INIT;
  bt_ctl__reply_init(&reply);
  al.n_events = n;
  al.events = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_AUDIT;
  reply.audit = &al;
  bt_ctl__answer(ctl, req, &reply);
  free(ptrs);
  free(evs);
}

void bt_ctl__audit(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__AuditQuery *m) {
  char why[200];
  if (bt_ctl__validate_audit_query(m, why, sizeof why) != 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, why);
    return;
  }
  bt_store_audit_filter_t f = {0};
  if (m->vendor != NULL) {
    const bt_core_vendor_t *v = bt_ctl__vendor_or_fail(ctl, req, m->vendor);
    if (v == NULL)
      return;
    f.vendor = v->name; /* audit rows name vendors, not ids; copied into the params */
  }
  f.package_id = m->has_package_id ? m->package_id : 0;
  f.since_at = m->has_since_at ? m->since_at : 0;
  f.limit = m->has_limit ? m->limit : BT_CTL_DEFAULT_AUDIT;
  bt_store_list_audit(ctl->lanes->lane[0], &f, on_audit, bt_ctl__read_new(ctl, req));
}

/* --- scorecard ---------------------------------------------------------------- */

static void on_scorecard(void *arg, int status, const bt_store_score_t *rows, size_t n) {
  bt_ctl_t *ctl;
  bt_ctl_req_t *req = bt_ctl__read_done(arg, status, &ctl);
  if (req == NULL)
    return;
  Baton__VendorScore *scores = calloc(n + 1, sizeof *scores);
  Baton__VendorScore **ptrs = calloc(n + 1, sizeof *ptrs);
  if (scores == NULL || ptrs == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    const bt_store_score_t *r = &rows[i];
    Baton__VendorScore *s = &scores[i];
    baton__vendor_score__init(s);
    s->vendor = (char *)r->vendor;
    s->has_completed = s->has_failed = s->has_handed_off = s->has_cost_total = true;
    s->completed = r->completed;
    s->failed = r->failed;
    s->handed_off = r->handed_off;
    s->cost_total = r->cost_total;
    s->has_on_time_rate = r->has_on_time_rate;
    s->on_time_rate = r->on_time_rate;
    s->has_turnaround_p50_ms = s->has_turnaround_p95_ms = r->has_turnaround;
    s->turnaround_p50_ms = r->turnaround_p50_ms;
    s->turnaround_p95_ms = r->turnaround_p95_ms;
    ptrs[i] = s;
  }
  Baton__CtlReply reply;
  Baton__ScorecardList sl = BATON__SCORECARD_LIST__INIT;
  bt_ctl__reply_init(&reply);
  sl.n_vendors = n;
  sl.vendors = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_SCORECARD;
  reply.scorecard = &sl;
  bt_ctl__answer(ctl, req, &reply);
  free(ptrs);
  free(scores);
}

void bt_ctl__scorecard(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__ScorecardQuery *m) {
  char why[200];
  if (bt_ctl__validate_scorecard_query(m, why, sizeof why) != 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, why);
    return;
  }
  uint64_t vendor_id = 0;
  if (m->vendor != NULL) {
    const bt_core_vendor_t *v = bt_ctl__vendor_or_fail(ctl, req, m->vendor);
    if (v == NULL)
      return;
    vendor_id = v->id;
  }
  bt_store_scorecard(ctl->lanes->lane[0], vendor_id, on_scorecard, bt_ctl__read_new(ctl, req));
}

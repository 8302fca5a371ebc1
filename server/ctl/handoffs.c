/*
 * `handoffs`: the handoff history across packages, read from the store and
 * filtered by vendor (handed off from or to it), package and time. The vendor
 * is resolved against the core (every vendor is in memory) so an unknown name
 * is "not found" rather than an empty list that looks like good news.
 */
#include "ctl_int.h"

#include "bt_err.h"

#include <stdio.h>
#include <stdlib.h>

/* A read in flight, answered by token since the client may leave meanwhile. */
static void on_handoffs(void *arg, int status, const bt_store_handoff_t *rows, size_t n) {
  bt_ctl_t *ctl;
  bt_ctl_req_t *req = bt_ctl__read_done(arg, status, &ctl);
  if (req == NULL)
    return;
  Baton__HandoffInfo *infos = calloc(n + 1, sizeof *infos);
  Baton__HandoffInfo **ptrs = calloc(n + 1, sizeof *ptrs);
  if (infos == NULL || ptrs == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    const bt_store_handoff_t *h = &rows[i];
    Baton__HandoffInfo *hi = &infos[i];
    baton__handoff_info__init(hi);
    hi->has_package_id = hi->has_attempt = true;
    hi->package_id = h->package_id;
    hi->attempt = h->attempt;
    hi->from_vendor = (char *)h->from_vendor;
    hi->to_vendor = (char *)h->to_vendor;
    hi->reason = (char *)h->reason;
    hi->has_at = hi->has_checkpoint_bytes = true;
    hi->at = h->at;
    hi->checkpoint_bytes = h->checkpoint_bytes;
    ptrs[i] = hi;
  }
  Baton__CtlReply reply;
  Baton__HandoffList hl = BATON__HANDOFF_LIST__INIT;
  bt_ctl__reply_init(&reply);
  hl.n_handoffs = n;
  hl.handoffs = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_HANDOFFS;
  reply.handoffs = &hl;
  bt_ctl__answer(ctl, req, &reply);
  free(ptrs);
  free(infos);
}

void bt_ctl__handoffs(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__HandoffQuery *m) {
  char why[200];
  if (bt_ctl__validate_handoff_query(m, why, sizeof why) != 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, why);
    return;
  }
  bt_store_handoff_filter_t f = {0};
  if (m->vendor != NULL) {
    const bt_core_vendor_t *v = bt_ctl__vendor_or_fail(ctl, req, m->vendor);
    if (v == NULL)
      return;
    f.vendor_id = v->id;
  }
  f.package_id = m->has_package_id ? m->package_id : 0;
  f.since_at = m->has_since_at ? m->since_at : 0;
  f.limit = m->has_limit ? m->limit : BT_CTL_MAX_HANDOFFS;
  bt_store_list_handoffs(ctl->lanes->lane[0], &f, on_handoffs, bt_ctl__read_new(ctl, req));
}

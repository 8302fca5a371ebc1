/*
 * Control commands answered from the core's memory (vendors, agents, stats),
 * vendor registration, vendor state changes and secret rotation, plus the dispatch of every
 * command. Package commands are in packages.c, handoff history in handoffs.c,
 * the audit trail and the scorecard in audit.c.
 */
#include "ctl_int.h"

#include "bt_auth.h"
#include "bt_err.h"
#include "bt_log.h"
#include "bt_time.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bt_now_t now_wall(void) {
  bt_now_t n = {.ms = bt_mono_ms(), .at = bt_wall_ms()};
  return n;
}

/* --- vendors ---------------------------------------------------------------- */

static void vendor_add(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__VendorAdd *m) {
  char why[160];
  if (bt_ctl__validate_vendor(m, why, sizeof why) != 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, why);
    return;
  }
  bt_vendor_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.name = m->name;
  spec.region = m->region;
  spec.model = BT_MODEL_ONSHORE;
  if (m->model)
    bt_model_parse(m->model, &spec.model);
  spec.caps = (const char *const *)m->capabilities;
  spec.n_caps = m->n_capabilities;
  spec.certs = (const char *const *)m->certs;
  spec.n_certs = m->n_certs;
  spec.capacity = m->has_capacity ? m->capacity : 10;
  spec.cost = m->has_cost ? m->cost : 1.0;
  spec.weight = m->has_weight ? m->weight : 1.0;
  spec.hours = m->hours;
  /* The secret is made here, shown once in the answer, and never stored: only
   * the public key derived from it goes to the core and the database. */
  bt_auth_new_secret(req->secret, spec.auth_key);
  snprintf(req->name, sizeof req->name, "%s", m->name);
  int rc = ctl->ops.vendor_add(ctl->arg, &spec, req->token);
  if (rc != 0) {
    memset(req->secret, 0, sizeof req->secret);
    char msg[200];
    if (rc == BT_ECONFLICT)
      snprintf(msg, sizeof msg, "vendor %s already exists", m->name);
    else
      snprintf(msg, sizeof msg, "could not add vendor %s: %s", m->name, bt_strerror(rc));
    bt_ctl__fail(ctl, req, rc, msg);
  }
}

void bt_ctl_vendor_added(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id) {
  bt_ctl_req_t *req = bt_ctl__req_by_token(ctl, token);
  if (req == NULL)
    return;
  if (status != 0) {
    memset(req->secret, 0, sizeof req->secret);
    bt_ctl__fail(ctl, req, status,
                 status == BT_EDBDOWN ? "store unavailable; the vendor was not added"
                                      : bt_strerror(status));
    return;
  }
  Baton__CtlReply reply;
  Baton__VendorCreated vc = BATON__VENDOR_CREATED__INIT;
  bt_ctl__reply_init(&reply);
  vc.has_id = true;
  vc.id = id;
  vc.name = req->name;
  vc.secret = req->secret;
  reply.body_case = BATON__CTL_REPLY__BODY_VENDOR_CREATED;
  reply.vendor_created = &vc;
  bt_ctl__answer(ctl, req, &reply);
}

/* Fills vi from a vendor; the string arrays are malloc'd into *strs. */
static void vendor_info(const bt_core_t *core, const bt_core_vendor_t *v,
                        Baton__VendorInfo *vi, char ***caps, char ***certs) {
  baton__vendor_info__init(vi);
  vi->has_id = true;
  vi->id = v->id;
  vi->name = v->name;
  vi->region = v->region;
  vi->model = (char *)bt_model_name(v->model);
  *caps = malloc((v->n_caps + 1) * sizeof **caps);
  *certs = malloc((v->n_certs + 1) * sizeof **certs);
  if (*caps == NULL || *certs == NULL)
    abort();
  for (uint32_t i = 0; i < v->n_caps; i++)
    (*caps)[i] = (char *)bt_core_sym(core, v->caps[i]);
  for (uint32_t i = 0; i < v->n_certs; i++)
    (*certs)[i] = (char *)bt_core_sym(core, v->certs[i]);
  vi->n_capabilities = v->n_caps;
  vi->capabilities = *caps;
  vi->n_certs = v->n_certs;
  vi->certs = *certs;
  vi->has_capacity = vi->has_cost = vi->has_weight = true;
  vi->capacity = v->capacity;
  vi->cost = v->cost;
  vi->weight = v->weight;
  vi->hours = v->hours;
  vi->state = (char *)bt_vendor_state_name(v->state);
  vi->has_agents = vi->has_in_flight = vi->has_completed = vi->has_failed = true;
  vi->agents = v->agents_connected;
  vi->in_flight = v->in_flight;
  vi->completed = v->completed;
  vi->failed = v->failed;
  if (v->with_deadline > 0) {
    vi->has_on_time_rate = true;
    vi->on_time_rate = (double)v->on_time / (double)v->with_deadline;
  }
  vi->has_created_at = true;
  vi->created_at = v->created_at;
  if (v->state_reason[0] != '\0')
    vi->state_reason = (char *)v->state_reason;
  vi->has_limit = vi->has_probing = true;
  vi->limit = v->limit;
  vi->probing = v->probing;
}

static void vendor_list(bt_ctl_t *ctl, bt_ctl_req_t *req, const char *only) {
  const bt_core_t *core = ctl->core;
  size_t n = bt_core_vendor_count(core);
  const bt_core_vendor_t *one = NULL;
  if (only != NULL) {
    one = bt_core_vendor_by_ref(core, only);
    if (one == NULL) {
      char msg[200];
      snprintf(msg, sizeof msg, "no vendor %s", only);
      bt_ctl__fail(ctl, req, BT_ENOTFOUND, msg);
      return;
    }
    n = 1;
  }
  Baton__VendorInfo *infos = calloc(n + 1, sizeof *infos);
  Baton__VendorInfo **ptrs = calloc(n + 1, sizeof *ptrs);
  char ***lists = calloc(2 * n + 1, sizeof *lists);
  if (infos == NULL || ptrs == NULL || lists == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    vendor_info(core, one ? one : bt_core_vendor_at(core, i), &infos[i], &lists[2 * i],
                &lists[2 * i + 1]);
    ptrs[i] = &infos[i];
  }
  Baton__CtlReply reply;
  Baton__VendorList vl = BATON__VENDOR_LIST__INIT;
  bt_ctl__reply_init(&reply);
  vl.n_vendors = n;
  vl.vendors = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_VENDORS;
  reply.vendors = &vl;
  bt_ctl__answer(ctl, req, &reply);
  for (size_t i = 0; i < 2 * n; i++)
    free(lists[i]);
  free(lists);
  free(ptrs);
  free(infos);
}

/* --- vendor state changes -------------------------------------------------------- */

static const char *vendor_op_verb(bt_vendor_op_t op) {
  switch (op) {
  case BT_VENDOR_OP_DRAIN:
    return "drain";
  case BT_VENDOR_OP_SUSPEND:
    return "suspend";
  case BT_VENDOR_OP_RESUME:
    return "resume";
  case BT_VENDOR_OP_FAIL:
    return "fail";
  }
  return "change";
}

/* The operator's text for a vendor operation that failed with code. */
static void vendor_op_error(int code, const char *verb, const char *name, char *buf,
                            size_t len) {
  if (code == BT_EDBDOWN || code == BT_ESHUTDOWN)
    snprintf(buf, len, "store unavailable; vendor %s was not changed, retry later", name);
  else if (code == BT_ENOTFOUND)
    snprintf(buf, len, "no vendor %s", name);
  else
    snprintf(buf, len, "could not %s vendor %s: %s", verb, name, bt_strerror(code));
}

const bt_core_vendor_t *bt_ctl__vendor_or_fail(bt_ctl_t *ctl, bt_ctl_req_t *req,
                                                const char *ref) {
  const bt_core_vendor_t *v = bt_core_vendor_by_ref(ctl->core, ref);
  if (v == NULL) {
    char why[200];
    snprintf(why, sizeof why, "no vendor %s", ref);
    bt_ctl__fail(ctl, req, BT_ENOTFOUND, why);
  }
  return v;
}

static void vendor_op(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__VendorOp *m) {
  char why[200];
  bt_vendor_op_t op;
  if (bt_ctl__validate_vendor_op(m, &op, why, sizeof why) != 0) {
    bt_ctl__fail(ctl, req, BT_EINVAL, why);
    return;
  }
  const bt_core_vendor_t *v = bt_ctl__vendor_or_fail(ctl, req, m->vendor);
  if (v == NULL)
    return;
  if (ctl->ops.vendor_op == NULL) {
    bt_ctl__fail(ctl, req, BT_ESTATE, "this broker cannot change vendor states");
    return;
  }
  /* Kept for the answer: a later error names the vendor the operator typed
   * as the broker knows it. */
  snprintf(req->name, sizeof req->name, "%s", v->name);
  int rc = ctl->ops.vendor_op(ctl->arg, v->id, op, req->token);
  /* rc == 0: the shell holds the token and may even have answered already,
   * so req must not be touched again here. */
  if (rc != 0) {
    vendor_op_error(rc, vendor_op_verb(op), req->name, why, sizeof why);
    bt_ctl__fail(ctl, req, rc, why);
  }
}

void bt_ctl_vendor_changed(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id,
                           bt_vendor_state_t state, const char *message) {
  bt_ctl_req_t *req = bt_ctl__req_by_token(ctl, token);
  if (req == NULL)
    return;
  if (status != 0) {
    char buf[200];
    if (message == NULL || message[0] == '\0') {
      /* Here the change may be in memory already, its commit unknown. */
      if (status == BT_EDBDOWN || status == BT_ESHUTDOWN)
        snprintf(buf, sizeof buf,
                 "store unavailable; the change to vendor %s is not confirmed", req->name);
      else
        vendor_op_error(status, "change", req->name, buf, sizeof buf);
      message = buf;
    }
    bt_ctl__fail(ctl, req, status, message);
    return;
  }
  const bt_core_vendor_t *v = bt_core_vendor(ctl->core, id);
  Baton__CtlReply reply;
  Baton__VendorState vs = BATON__VENDOR_STATE__INIT;
  bt_ctl__reply_init(&reply);
  vs.has_id = true;
  vs.id = id;
  vs.name = v ? v->name : req->name;
  vs.state = (char *)bt_vendor_state_name(state);
  /* The reason belongs to the state the core holds now; after a quick second
   * change it may not match state, so it is sent only when they agree. */
  if (v != NULL && v->state == state && v->state_reason[0] != '\0')
    vs.state_reason = (char *)v->state_reason;
  reply.body_case = BATON__CTL_REPLY__BODY_VENDOR_STATE;
  reply.vendor_state = &vs;
  bt_ctl__answer(ctl, req, &reply);
}

/* --- vendor secret rotation ---------------------------------------------------- */

/* Like vendor add, the new secret is made here and leaves only in the answer;
 * the shell and the core see its public key. */
static void vendor_rotate(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__VendorRef *m) {
  char why[200];
  if (m->vendor == NULL || m->vendor[0] == '\0') {
    bt_ctl__fail(ctl, req, BT_EINVAL, "vendor id or name required");
    return;
  }
  const bt_core_vendor_t *v = bt_ctl__vendor_or_fail(ctl, req, m->vendor);
  if (v == NULL)
    return;
  if (ctl->ops.vendor_rotate_secret == NULL) {
    bt_ctl__fail(ctl, req, BT_ESTATE, "this broker cannot rotate vendor secrets");
    return;
  }
  snprintf(req->name, sizeof req->name, "%s", v->name);
  uint8_t key[BT_AUTH_PK_BYTES];
  bt_auth_new_secret(req->secret, key);
  int rc = ctl->ops.vendor_rotate_secret(ctl->arg, v->id, key, req->token);
  /* rc == 0: answered later through bt_ctl_vendor_rotated; req is the
   * shell's to answer now. */
  if (rc != 0) {
    sodium_memzero(req->secret, sizeof req->secret);
    vendor_op_error(rc, "rotate the secret of", req->name, why, sizeof why);
    bt_ctl__fail(ctl, req, rc, why);
  }
}

void bt_ctl_vendor_rotated(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id,
                           bt_vendor_state_t state, const char *message) {
  bt_ctl_req_t *req = bt_ctl__req_by_token(ctl, token);
  if (req == NULL)
    return;
  /* Taken out of the request first: the answer below may free req, and the
   * secret must not linger in memory once it is on its way. */
  char secret[sizeof req->secret];
  memcpy(secret, req->secret, sizeof secret);
  sodium_memzero(req->secret, sizeof req->secret);
  if (status != 0) {
    char buf[200];
    if (message == NULL || message[0] == '\0') {
      vendor_op_error(status, "rotate the secret of", req->name, buf, sizeof buf);
      message = buf;
    }
    bt_ctl__fail(ctl, req, status, message);
    sodium_memzero(secret, sizeof secret);
    return;
  }
  const bt_core_vendor_t *v = bt_core_vendor(ctl->core, id);
  Baton__CtlReply reply;
  Baton__VendorRotated vr = BATON__VENDOR_ROTATED__INIT;
  bt_ctl__reply_init(&reply);
  vr.has_id = true;
  vr.id = id;
  vr.name = v ? v->name : req->name;
  vr.state = (char *)bt_vendor_state_name(state);
  vr.secret = secret;
  reply.body_case = BATON__CTL_REPLY__BODY_VENDOR_ROTATED;
  reply.vendor_rotated = &vr;
  bt_ctl__answer(ctl, req, &reply);
  sodium_memzero(secret, sizeof secret);
}

/* --- agents ------------------------------------------------------------------ */

static void agent_list(bt_ctl_t *ctl, bt_ctl_req_t *req) {
  const bt_core_t *core = ctl->core;
  size_t n = bt_core_agent_count(core);
  int64_t now_at = bt_wall_ms();
  Baton__AgentInfo *infos = calloc(n + 1, sizeof *infos);
  Baton__AgentInfo **ptrs = calloc(n + 1, sizeof *ptrs);
  char ***caps = calloc(n + 1, sizeof *caps);
  if (infos == NULL || ptrs == NULL || caps == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    bt_agent_view_t a;
    bt_core_agent_at(core, i, &a);
    const bt_core_vendor_t *v = bt_core_vendor(core, a.vendor_id);
    Baton__AgentInfo *ai = &infos[i];
    baton__agent_info__init(ai);
    ai->has_id = true;
    ai->id = a.id;
    ai->vendor = v ? v->name : (char *)"?";
    ai->name = (char *)a.name;
    caps[i] = malloc((a.n_caps + 1) * sizeof *caps[i]);
    if (caps[i] == NULL)
      abort();
    for (uint32_t k = 0; k < a.n_caps; k++)
      caps[i][k] = (char *)bt_core_sym(core, a.caps[k]);
    ai->n_capabilities = a.n_caps;
    ai->capabilities = caps[i];
    ai->has_slots = ai->has_busy = true;
    ai->slots = a.slots;
    ai->busy = a.busy;
    if (a.last_seen_at > 0) {
      ai->has_last_seen_ms = true;
      ai->last_seen_ms = now_at > a.last_seen_at ? (uint64_t)(now_at - a.last_seen_at) : 0;
    }
    ai->state = (char *)bt_agent_state_name(a.state);
    ptrs[i] = ai;
  }
  Baton__CtlReply reply;
  Baton__AgentList al = BATON__AGENT_LIST__INIT;
  bt_ctl__reply_init(&reply);
  al.n_agents = n;
  al.agents = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_AGENTS;
  reply.agents = &al;
  bt_ctl__answer(ctl, req, &reply);
  for (size_t i = 0; i < n; i++)
    free(caps[i]);
  free(caps);
  free(ptrs);
  free(infos);
}

/* --- stats --------------------------------------------------------------------- */

static void stats(bt_ctl_t *ctl, bt_ctl_req_t *req) {
  bt_now_t now = now_wall();
  bt_core_stats_t st;
  bt_core_stats(ctl->core, &now, &st);
  Baton__Stats s = BATON__STATS__INIT;
  s.has_queued = s.has_assigned = s.has_running = true;
  s.has_completed = s.has_dead = s.has_cancelled = true;
  s.has_agents = s.has_waiting = s.has_finishing = true;
  s.queued = st.by_state[BT_PKG_QUEUED];
  s.assigned = st.by_state[BT_PKG_ASSIGNED];
  s.running = st.by_state[BT_PKG_RUNNING];
  s.completed = st.by_state[BT_PKG_COMPLETED];
  s.dead = st.by_state[BT_PKG_DEAD];
  s.cancelled = st.by_state[BT_PKG_CANCELLED];
  s.finishing = st.finishing;
  s.agents = st.agents_connected;
  s.waiting = st.waiting;
  Baton__StateCount counts[BT_VENDOR__COUNT];
  Baton__StateCount *ptrs[BT_VENDOR__COUNT];
  for (int i = 0; i < BT_VENDOR__COUNT; i++) {
    baton__state_count__init(&counts[i]);
    counts[i].state = (char *)bt_vendor_state_name((bt_vendor_state_t)i);
    counts[i].has_count = true;
    counts[i].count = st.vendors_by_state[i];
    ptrs[i] = &counts[i];
  }
  s.n_vendors = BT_VENDOR__COUNT;
  s.vendors = ptrs;
  Baton__CtlReply reply;
  bt_ctl__reply_init(&reply);
  reply.body_case = BATON__CTL_REPLY__BODY_STATS;
  reply.stats = &s;
  bt_ctl__answer(ctl, req, &reply);
}

/* --- dispatch ---------------------------------------------------------------- */

void bt_ctl__dispatch(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__CtlRequest *msg) {
  switch (msg->body_case) {
  case BATON__CTL_REQUEST__BODY_VENDOR_ADD:
    vendor_add(ctl, req, msg->vendor_add);
    break;
  case BATON__CTL_REQUEST__BODY_VENDOR_LIST:
    vendor_list(ctl, req, NULL);
    break;
  case BATON__CTL_REQUEST__BODY_VENDOR_SHOW:
    if (msg->vendor_show->vendor == NULL || msg->vendor_show->vendor[0] == '\0')
      bt_ctl__fail(ctl, req, BT_EINVAL, "vendor id or name required");
    else
      vendor_list(ctl, req, msg->vendor_show->vendor);
    break;
  case BATON__CTL_REQUEST__BODY_AGENT_LIST:
    agent_list(ctl, req);
    break;
  case BATON__CTL_REQUEST__BODY_SUBMIT:
    bt_ctl__submit(ctl, req, msg->submit);
    break;
  case BATON__CTL_REQUEST__BODY_PACKAGE_SHOW:
    bt_ctl__package_show(ctl, req, msg->package_show);
    break;
  case BATON__CTL_REQUEST__BODY_PACKAGE_LIST:
    bt_ctl__package_list(ctl, req, msg->package_list);
    break;
  case BATON__CTL_REQUEST__BODY_RESULT:
    bt_ctl__result(ctl, req, msg->result);
    break;
  case BATON__CTL_REQUEST__BODY_WAIT:
    bt_ctl__wait(ctl, req, msg->wait);
    break;
  case BATON__CTL_REQUEST__BODY_STATS:
    stats(ctl, req);
    break;
  case BATON__CTL_REQUEST__BODY_VENDOR_OP:
    vendor_op(ctl, req, msg->vendor_op);
    break;
  case BATON__CTL_REQUEST__BODY_VENDOR_ROTATE_SECRET:
    vendor_rotate(ctl, req, msg->vendor_rotate_secret);
    break;
  case BATON__CTL_REQUEST__BODY_PACKAGE_OP:
    bt_ctl__package_op(ctl, req, msg->package_op);
    break;
  case BATON__CTL_REQUEST__BODY_HANDOFFS:
    bt_ctl__handoffs(ctl, req, msg->handoffs);
    break;
  case BATON__CTL_REQUEST__BODY_AUDIT:
    bt_ctl__audit(ctl, req, msg->audit);
    break;
  case BATON__CTL_REQUEST__BODY_SCORECARD:
    bt_ctl__scorecard(ctl, req, msg->scorecard);
    break;
  case BATON__CTL_REQUEST__BODY_CONFIG_GET:
    bt_ctl__config_get(ctl, req, msg->config_get);
    break;
  case BATON__CTL_REQUEST__BODY_CONFIG_SET:
    bt_ctl__config_set(ctl, req, msg->config_set);
    break;
  default:
    bt_ctl__fail(ctl, req, BT_EINVAL, "unknown or empty request");
    break;
  }
}

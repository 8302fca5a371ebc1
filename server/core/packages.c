/*
 * Work packages in memory: creation on submit, the outcome of their insert,
 * read-only views for the edges, and the waiting reason of a queued package.
 * Nothing is dispatched that a crash could forget (the durability rule): a
 * package is routable once its insert is committed, or, with route_at_submit,
 * in its own submit, where its assignment is written in its insert's
 * transaction. Between its submit and that commit it is placed nowhere else
 * (bt_core__enqueue keeps it out of the queues).
 */
#include "core_int.h"

#include "bt_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

bt_core_pkg_t *bt_core__pkg_new(bt_core_t *core, const bt_pkg_spec_t *spec,
                                uint64_t id, int64_t submitted_at) {
  size_t klen = spec->key ? strlen(spec->key) + 1 : 0;
  bt_core_pkg_t *p = bt_xmalloc(sizeof *p + spec->payload_len + klen);
  memset(p, 0, sizeof *p);
  p->id = id;
  p->deadline_at = spec->deadline_at;
  p->not_before_at = spec->not_before_at;
  p->submitted_at = submitted_at;
  p->heap_pos = BT_NOPOS;
  p->rq_pos = BT_NOPOS;
  p->ag_pos = BT_NOPOS;
  p->max_attempts =
      spec->max_attempts ? spec->max_attempts : core->cfg.default_max_attempts;
  p->payload_len = (uint32_t)spec->payload_len;
  /* 0-9, checked at the edge; clamped so a bad caller cannot index past the
   * class queue's priority levels. */
  p->priority = (uint8_t)(spec->priority < BT_PRIORITIES ? spec->priority : BT_PRIORITIES - 1);
  p->state = BT_PKG_QUEUED;
  p->progress = -1;
  if (spec->payload_len)
    memcpy(p->data, spec->payload, spec->payload_len);
  if (klen) {
    p->key = (char *)p->data + spec->payload_len;
    memcpy(p->key, spec->key, klen);
    bt_strmap_put(&core->pkg_by_key, p->key, p);
  }
  p->cls = bt_core__class_get(core, bt_core_intern(core, spec->capability),
                              bt_core__reqs_intern(core, spec));
  bt_idmap_put(&core->pkg_by_id, id, p);
  core->open_by_state[BT_PKG_QUEUED]++;
  if (id >= core->next_pkg_id)
    core->next_pkg_id = id + 1;
  return p;
}

/* Frees a package that is in no heap and no agent's list; the caller has
 * already removed it from the maps. */
void bt_core__pkg_free(bt_core_t *core, bt_core_pkg_t *p) {
  bt_core__class_release(core, p->cls);
  free(p->checkpoint);
  free(p);
}

void bt_core__pkg_set_state(bt_core_t *core, bt_core_pkg_t *p, bt_pkg_state_t s) {
  core->open_by_state[p->state]--;
  p->state = (uint8_t)s;
  core->open_by_state[s]++;
}

void bt_core__pkg_set_finishing(bt_core_t *core, bt_core_pkg_t *p, bt_pkg_state_t s) {
  p->flags |= BT_PKGF_FINISHING;
  bt_core__pkg_set_state(core, p, s);
  core->finishing[s]++;
}

/* Takes a package out of memory: its final state is committed, or its insert
 * never was. */
static void pkg_evict(bt_core_t *core, bt_core_pkg_t *p, bool counted) {
  bt_core__dequeue(core, p);
  bt_idmap_del(&core->pkg_by_id, p->id);
  if (p->key && bt_strmap_get(&core->pkg_by_key, p->key) == p)
    bt_strmap_del(&core->pkg_by_key, p->key);
  core->open_by_state[p->state]--;
  if (counted)
    core->finished[p->state]++;
  bt_core__pkg_free(core, p);
}

/* Places the new packages of a submit where agents have room now (their
 * ASSIGNs ride with the insert, see bt_core_submit). Those left over wait
 * for their insert's commit, as without route_at_submit: a later placement
 * could not join the insert's transaction. */
static void route_new(bt_core_t *core, size_t n, const bt_submit_result_t *results,
                      const bt_now_t *now, bt_actions_t *out) {
  core->routing_submit = true;
  for (size_t i = 0; i < n; i++)
    if (!results[i].duplicate)
      bt_core__enqueue(core, bt_idmap_get(&core->pkg_by_id, results[i].id), now);
  bt_core__sched(core, now, out);
  core->routing_submit = false;
  for (size_t i = 0; i < n; i++) {
    bt_core_pkg_t *p =
        results[i].duplicate ? NULL : bt_idmap_get(&core->pkg_by_id, results[i].id);
    if (p != NULL && p->state == BT_PKG_QUEUED)
      bt_core__dequeue(core, p);
  }
}

int bt_core_submit(bt_core_t *core, const bt_pkg_spec_t *specs, size_t n,
                   uint64_t token, const bt_now_t *now,
                   bt_submit_result_t *results, bt_actions_t *out) {
  for (size_t i = 0; i < n; i++) {
    const bt_pkg_spec_t *spec = &specs[i];
    bt_core_pkg_t *known =
        spec->key ? bt_strmap_get(&core->pkg_by_key, spec->key) : NULL;
    if (known != NULL) {
      results[i].id = known->id;
      results[i].duplicate = true;
      results[i].pending = (known->flags & (BT_PKGF_UNPERSISTED | BT_PKGF_FINISHING)) != 0;
      results[i].state = (bt_pkg_state_t)known->state;
      continue;
    }
    bt_core_pkg_t *p = bt_core__pkg_new(core, spec, core->next_pkg_id, now->at);
    p->flags |= BT_PKGF_UNPERSISTED;
    p->token = token;
    results[i].id = p->id;
    results[i].duplicate = false;
    results[i].pending = true;
    results[i].state = BT_PKG_QUEUED;
    bt_action_t *a = bt_core__push(out, BT_ACT_PERSIST_PACKAGE);
    a->package_id = p->id;
    a->token = token;
    a->at = now->at;
  }
  if (core->cfg.route_at_submit)
    route_new(core, n, results, now, out);
  return 0;
}

void bt_core_package_persisted(bt_core_t *core, uint64_t package_id, bool ok,
                               uint64_t existing_id, const bt_now_t *now,
                               bt_actions_t *out) {
  bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, package_id);
  if (p == NULL || !(p->flags & BT_PKGF_UNPERSISTED))
    return;
  if (!ok || existing_id != 0) {
    /* Its assignment (route_at_submit) was in the same transaction: it never
     * happened either, and its agent's slot is free for other work. */
    bt_core_agent_t *a = p->agent_id ? bt_core__agent(core, p->agent_id) : NULL;
    if (a != NULL)
      bt_core__agent_release(core, a, p);
    pkg_evict(core, p, false);
    if (a != NULL)
      bt_core__sched(core, now, out);
    return;
  }
  p->flags &= (uint8_t)~BT_PKGF_UNPERSISTED;
  p->token = 0;
  /* Placed in its submit, it is assigned; placed and then lost with its agent
   * before this commit, it is queued but in no queue yet. */
  if (p->state == BT_PKG_QUEUED)
    bt_core__enqueue(core, p, now);
  bt_core__sched(core, now, out);
}

const bt_core_pkg_t *bt_core_package(const bt_core_t *core, uint64_t id) {
  return bt_idmap_get(&core->pkg_by_id, id);
}

bool bt_core_package_unpersisted(const bt_core_t *core, uint64_t id) {
  const bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, id);
  return p != NULL && (p->flags & BT_PKGF_UNPERSISTED) != 0;
}

size_t bt_core_open_unlisted(const bt_core_t *core, size_t max_walk, uint64_t *ids,
                             uint64_t *through) {
  size_t n = 0;
  uint64_t id = core->listed_through;
  while (id + 1 < core->next_pkg_id && max_walk-- > 0) {
    const bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, id + 1);
    /* Not in memory: ended for good, or its insert never committed. In
     * flight: its listing could overtake the insert, or a final end's delete
     * could run before the listing's insert and leave it listed. */
    if (p != NULL && (p->flags & (BT_PKGF_UNPERSISTED | BT_PKGF_FINISHING)))
      break;
    if (p != NULL)
      ids[n++] = p->id;
    id++;
  }
  *through = id;
  return n;
}

void bt_core_open_listed(bt_core_t *core, uint64_t through) {
  if (through > core->listed_through)
    core->listed_through = through;
}

uint64_t bt_core_listed_through(const bt_core_t *core) {
  return core->listed_through;
}

uint64_t bt_core_unlisted_ids(const bt_core_t *core) {
  return core->next_pkg_id - 1 - core->listed_through;
}

static size_t view_list(const bt_core_t *core, const bt_sym_t *syms, uint32_t n,
                        const char **dst) {
  if (n > BT_CORE_MAX_LIST) /* the edges never let more in; rows edited by hand might */
    n = BT_CORE_MAX_LIST;
  for (uint32_t i = 0; i < n; i++)
    dst[i] = bt_core_sym(core, syms[i]);
  return n;
}

int bt_core_package_view(const bt_core_t *core, uint64_t id, bt_pkg_view_t *v) {
  const bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, id);
  if (p == NULL)
    return BT_ENOTFOUND;
  bt_core_pkg_view(core, p, v);
  return 0;
}

void bt_core_pkg_view(const bt_core_t *core, const bt_core_pkg_t *p, bt_pkg_view_t *v) {
  memset(v, 0, offsetof(bt_pkg_view_t, strs));
  v->id = p->id;
  v->capability = bt_core_sym(core, p->cls->cap);
  v->state = (bt_pkg_state_t)p->state;
  v->priority = p->priority;
  v->attempt = p->attempt;
  v->max_attempts = p->max_attempts;
  v->deadline_at = p->deadline_at;
  v->not_before_at = p->not_before_at;
  v->submitted_at = p->submitted_at;
  v->vendor_id = p->vendor_id;
  v->agent_id = p->agent_id;
  v->progress = p->progress;
  v->payload = p->data;
  v->payload_len = p->payload_len;
  v->checkpoint = p->checkpoint;
  v->checkpoint_len = p->checkpoint_len;
  v->key = p->key;
  v->max_cost = -1.0;
  const bt_core_reqs_t *r = p->cls->reqs;
  if (r != NULL) {
    const char **s = v->strs;
    v->regions = s;
    v->n_regions = view_list(core, r->regions, r->n_regions, s);
    s += v->n_regions;
    v->certs = s;
    v->n_certs = view_list(core, r->certs, r->n_certs, s);
    s += v->n_certs;
    v->prefer = s;
    v->n_prefer = view_list(core, r->prefer, r->n_prefer, s);
    s += v->n_prefer;
    v->avoid = s;
    v->n_avoid = view_list(core, r->avoid, r->n_avoid, s);
    v->max_cost = r->max_cost;
    v->only_vendor = r->only ? bt_core_sym(core, r->only) : NULL;
  }
}

/* Appends " a|b|c" style lists to a reason. */
static void append_syms(const bt_core_t *core, char *buf, size_t len, size_t *o,
                        const char *prefix, const bt_sym_t *v, uint32_t n,
                        const char *sep) {
  if (n == 0 || *o >= len)
    return;
  *o += (size_t)snprintf(buf + *o, len - *o, "%s", prefix);
  for (uint32_t i = 0; i < n && *o < len; i++)
    *o += (size_t)snprintf(buf + *o, len - *o, "%s%s", i ? sep : "",
                           bt_core_sym(core, v[i]));
}

char *bt_core_waiting_reason(const bt_core_t *core, uint64_t id, const bt_now_t *now,
                             char *buf, size_t len) {
  if (len == 0)
    return buf;
  buf[0] = '\0';
  const bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, id);
  if (p == NULL || p->state != BT_PKG_QUEUED || (p->flags & BT_PKGF_UNPERSISTED))
    return buf;
  if (p->not_before_at > now->at) {
    char when[40];
    time_t t = (time_t)(p->not_before_at / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(buf, len, "not before %s", when);
    return buf;
  }
  bt_sym_t cap = p->cls->cap;
  const bt_core_reqs_t *r = p->cls->reqs;
  uint32_t with_cap = 0, active = 0, eligible = 0, live = 0;
  for (uint32_t i = 0; i < core->n_vendors; i++) {
    const bt_core_vendor_t *v = core->vendors[i];
    if (!bt_core__vendor_has_cap(v, cap))
      continue;
    with_cap++;
    if (!bt_core__vendor_accepts(v))
      continue;
    active++;
    if (!bt_core__reqs_allow(core, r, v))
      continue;
    eligible++;
  }
  /* One pass over the agents, not one per eligible vendor: vendors × agents
   * per call made bt_core_stats (one call per class) take 0.3 s with 350
   * vendors and 1,000 agents (test_core_property_world). */
  for (uint32_t j = 0; eligible > 0 && live == 0 && j < core->n_agents; j++) {
    const bt_core_agent_t *a = core->agents[j];
    if (a->state != BT_AGENT_CONNECTED)
      continue;
    bool offers = false;
    for (uint32_t k = 0; k < a->n_caps && !offers; k++)
      offers = a->caps[k] == cap;
    const bt_core_vendor_t *v = offers ? bt_core__vendor(core, a->vendor_id) : NULL;
    if (v != NULL && bt_core__vendor_has_cap(v, cap) && bt_core__vendor_accepts(v) &&
        bt_core__reqs_allow(core, r, v))
      live++;
  }
  const char *capname = bt_core_sym(core, cap);
  size_t o = 0;
  if (with_cap == 0) {
    snprintf(buf, len, "no vendor with capability %s", capname);
  } else if (active == 0) {
    snprintf(buf, len, "no active vendor with capability %s", capname);
  } else if (eligible == 0) {
    o = (size_t)snprintf(buf, len, "no active vendor");
    if (r != NULL) {
      append_syms(core, buf, len, &o, " in ", r->regions, r->n_regions, "|");
      if (o < len)
        o += (size_t)snprintf(buf + o, len - o, " with capability %s", capname);
      append_syms(core, buf, len, &o, " and cert ", r->certs, r->n_certs, ",");
      if (r->max_cost >= 0 && o < len)
        o += (size_t)snprintf(buf + o, len - o, " and cost <= %g", r->max_cost);
      append_syms(core, buf, len, &o, " outside avoided ", r->avoid, r->n_avoid,
                  ",");
      if (r->only != 0 && o < len)
        o += (size_t)snprintf(buf + o, len - o, " (pinned to %s)",
                              bt_core_sym(core, r->only));
    } else if (o < len) {
      snprintf(buf + o, len - o, " with capability %s", capname);
    }
  } else if (live == 0) {
    snprintf(buf, len,
             "no connected agent with capability %s at an eligible vendor",
             capname);
  }
  return buf;
}

/*
 * Routing: which queued package goes to which agent.
 *
 * Eligibility is hard and checked on every decision: the vendor accepts work
 * (active or degraded) and is under its capacity, the agent has a free slot and
 * offers the capability, and the package's requirement set allows the vendor
 * (region, certifications, max cost, avoided vendors). Among eligible packages
 * the best comes first: priority, then earliest deadline, then submission order.
 *
 * Work arrives in two ways, and both end here through bt_core__sched():
 *  - an agent has room (it polled, or finished something): fill that agent with
 *    the best packages it may take (agent-driven);
 *  - packages became routable in a capability: hand them round-robin over the
 *    agents with room for that capability, one package per agent per round, so
 *    a burst spreads over vendors instead of filling the first agent.
 * Each decision reads only the top of each class heap of the capability, so its
 * cost does not grow with the number of queued packages.
 */
#include "core_int.h"

#include <string.h>

void bt_core__mark_cap(bt_core_t *core, bt_sym_t cap) {
  bt_core_capq_t *q = bt_core__capq(core, cap);
  if (q->dirty)
    return;
  q->dirty = true;
  if (core->n_dirty_caps == core->cap_dirty_caps) {
    core->cap_dirty_caps = core->cap_dirty_caps ? core->cap_dirty_caps * 2 : 16;
    core->dirty_caps = bt_xrealloc(core->dirty_caps,
                                   core->cap_dirty_caps * sizeof *core->dirty_caps);
  }
  core->dirty_caps[core->n_dirty_caps++] = cap;
}

void bt_core__mark_agent(bt_core_t *core, bt_core_agent_t *a) {
  if (a->dirty)
    return;
  a->dirty = true;
  if (core->n_dirty_agents == core->cap_dirty_agents) {
    core->cap_dirty_agents = core->cap_dirty_agents ? core->cap_dirty_agents * 2 : 16;
    core->dirty_agents = bt_xrealloc(
        core->dirty_agents, core->cap_dirty_agents * sizeof *core->dirty_agents);
  }
  core->dirty_agents[core->n_dirty_agents++] = a;
}

void bt_core__mark_vendor(bt_core_t *core, const bt_core_vendor_t *v) {
  for (uint32_t i = 0; i < v->n_caps; i++)
    bt_core__mark_cap(core, v->caps[i]);
}

static bool vendor_has_room(const bt_core_vendor_t *v) {
  return bt_core__vendor_accepts(v) && v->in_flight < v->capacity;
}

/* The best ready package of one capability that vendor v may take. */
static bt_core_pkg_t *best_in_cap(bt_core_t *core, bt_sym_t cap,
                                  const bt_core_vendor_t *v) {
  if (cap >= core->n_capqs)
    return NULL;
  const bt_core_capq_t *q = &core->capqs[cap];
  bt_core_pkg_t *best = NULL;
  for (uint32_t i = 0; i < q->n_classes; i++) {
    bt_core_class_t *c = q->classes[i];
    bt_core_pkg_t *top = bt_pheap_top(&c->ready);
    if (top == NULL || !bt_core__reqs_allow(core, c->reqs, v))
      continue;
    if (best == NULL || bt_core__pkg_better(top, best))
      best = top;
  }
  return best;
}

static bt_core_pkg_t *best_for_agent(bt_core_t *core, const bt_core_agent_t *a,
                                     const bt_core_vendor_t *v) {
  bt_core_pkg_t *best = NULL;
  for (uint32_t i = 0; i < a->n_caps; i++) {
    bt_core_pkg_t *p = best_in_cap(core, a->caps[i], v);
    if (p != NULL && (best == NULL || bt_core__pkg_better(p, best)))
      best = p;
  }
  return best;
}

static void assign(bt_core_t *core, bt_core_pkg_t *p, bt_core_agent_t *a,
                   const bt_now_t *now, bt_actions_t *out) {
  bt_core__dequeue(core, p);
  p->attempt++;
  p->agent_id = a->id;
  p->vendor_id = a->vendor_id;
  p->progress = -1;
  p->flags |= BT_PKGF_UNDISPATCHED;
  bt_core__pkg_set_state(core, p, BT_PKG_ASSIGNED);
  bt_core__agent_hold(core, a, p);
  bt_action_t *act = bt_core__push(out, BT_ACT_ASSIGN);
  act->package_id = p->id;
  act->attempt = p->attempt;
  act->agent_id = a->id;
  act->vendor_id = a->vendor_id;
  act->at = now->at;
}

static void fill_agent(bt_core_t *core, bt_core_agent_t *a, const bt_now_t *now,
                       bt_actions_t *out) {
  const bt_core_vendor_t *v = bt_core__vendor(core, a->vendor_id);
  while (a->ready && vendor_has_room(v)) {
    bt_core_pkg_t *p = best_for_agent(core, a, v);
    if (p == NULL)
      break;
    assign(core, p, a, now, out);
  }
}

static bool cap_has_work(const bt_core_t *core, bt_sym_t cap) {
  const bt_core_capq_t *q = &core->capqs[cap];
  for (uint32_t i = 0; i < q->n_classes; i++)
    if (q->classes[i]->ready.n > 0)
      return true;
  return false;
}

/* Moves agent a to the tail of capability cap's ready list (round robin). */
static void rotate(bt_core_t *core, bt_core_capq_t *q, bt_core_agent_t *a,
                   uint32_t idx, bt_sym_t cap) {
  if (q->ready_tail == a)
    return;
  bt_core_agent_t *next = a->links[idx].next;
  bt_core_agent_t *prev = a->links[idx].prev;
  (void)core;
  /* unlink */
  if (prev) {
    for (uint32_t i = 0; i < prev->n_caps; i++)
      if (prev->caps[i] == cap)
        prev->links[i].next = next;
  } else {
    q->ready_head = next;
  }
  for (uint32_t i = 0; i < next->n_caps; i++)
    if (next->caps[i] == cap)
      next->links[i].prev = prev;
  /* append */
  bt_core_agent_t *tail = q->ready_tail;
  for (uint32_t i = 0; i < tail->n_caps; i++)
    if (tail->caps[i] == cap)
      tail->links[i].next = a;
  a->links[idx].prev = tail;
  a->links[idx].next = NULL;
  q->ready_tail = a;
}

static void fill_cap(bt_core_t *core, bt_sym_t cap, const bt_now_t *now,
                     bt_actions_t *out) {
  bt_core_capq_t *q = bt_core__capq(core, cap);
  bool progress = true;
  while (progress && q->ready_head != NULL && cap_has_work(core, cap)) {
    progress = false;
    /* One round: walk the list once; only an agent that gets a package moves to
     * the tail. Rotating every agent visited (also those that got nothing)
     * brought the list back to its old order after each round, so packages
     * committed one at a time all went to the first agent
     * (test_core_route_spreads_burst). */
    uint32_t n = q->n_ready;
    bt_core_agent_t *a = q->ready_head;
    for (uint32_t i = 0; i < n && a != NULL; i++) {
      uint32_t idx = 0;
      while (a->caps[idx] != cap)
        idx++;
      /* assign() may unlink a (full) and rotate() moves it; next stays put. */
      bt_core_agent_t *next = a->links[idx].next;
      const bt_core_vendor_t *v = bt_core__vendor(core, a->vendor_id);
      bt_core_pkg_t *p = vendor_has_room(v) ? best_in_cap(core, cap, v) : NULL;
      if (p != NULL) {
        rotate(core, q, a, idx, cap);
        assign(core, p, a, now, out);
        progress = true;
      }
      a = next;
    }
  }
}

void bt_core__sched(bt_core_t *core, const bt_now_t *now, bt_actions_t *out) {
  /* Caps first: a burst of new packages is spread round-robin before any single
   * agent that asked is filled to the brim. */
  while (core->n_dirty_caps > 0) {
    bt_sym_t cap = core->dirty_caps[--core->n_dirty_caps];
    core->capqs[cap].dirty = false;
    fill_cap(core, cap, now, out);
  }
  while (core->n_dirty_agents > 0) {
    bt_core_agent_t *a = core->dirty_agents[--core->n_dirty_agents];
    a->dirty = false;
    fill_agent(core, a, now, out);
  }
}

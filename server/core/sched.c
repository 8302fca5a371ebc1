/*
 * Routing: which queued package goes to which vendor's agent.
 *
 * Eligibility is hard and checked on every decision: the vendor accepts work
 * (active or degraded) and is under its capacity, one of its agents offers the
 * capability and has a free slot, and the package's requirement set allows the
 * vendor (region, certifications, max cost, avoided vendors).
 *
 * Whenever capacity or work changes (an agent polls or frees a slot, packages
 * become routable), the affected capabilities are marked and bt_core__sched()
 * places packages until nothing more can be placed:
 *
 *  1. Which package: the best placeable one — the best of a class queue that at
 *     least one vendor with room may take — across the marked capabilities.
 *     Best is: a package ready for longer than aging_bound first (oldest
 *     first: no starvation), then higher priority, earlier deadline, lower id.
 *  2. Which vendor: the highest score among the eligible vendors with room,
 *        score = weight × (w_cost·cost + w_sla·sla + w_util·util
 *                          + w_prefer·prefer + w_hours·hours)
 *        cost   = cost_ref / (cost_ref + vendor cost)        1 when free
 *        sla    = (on_time + 9) / (with_deadline + 10)       0.9 with no history
 *        util   = 1 − in_flight / capacity                   its free share
 *        prefer = 1 if the package prefers the vendor, else 0
 *        hours  = 1 inside its working hours (or none set), else 0
 *     (times degraded_factor for a degraded vendor: still used, others first),
 *     except that a vendor whose share of the capability's in-flight work would
 *     exceed share_cap is passed over while another eligible vendor has room.
 *     Ties go to the lower vendor id.
 *  3. Which agent: the vendor's agent with the most free slots.
 *
 * A decision reads only the best and the oldest package of each class (one
 * class per capability and requirement set; classq.c keeps both at hand in
 * O(1) for the common case), so its cost depends on the number of classes and
 * of vendors with room, never on the number of queued packages.
 */
#include "core_int.h"

#include "bt_err.h"

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
  /* limit is the capacity, or less while a recovering vendor ramps up. */
  return bt_core__vendor_accepts(v) && v->in_flight < v->limit;
}

/* --- the score ------------------------------------------------------------- */

static void score(const bt_core_t *core, const bt_core_pkg_t *p,
                  const bt_core_vendor_t *v, bt_score_t *s) {
  const bt_core_config_t *c = &core->cfg;
  s->cost = c->cost_ref > 0 ? c->cost_ref / (c->cost_ref + v->cost) : 0.0;
  s->sla = ((double)v->on_time + 9.0) / ((double)v->with_deadline + 10.0);
  s->util = v->capacity > 0 ? 1.0 - (double)v->in_flight / (double)v->capacity : 0.0;
  if (s->util < 0)
    s->util = 0;
  s->prefer = bt_core__reqs_prefer(p->cls->reqs, v) ? 1.0 : 0.0;
  s->hours = v->in_hours ? 1.0 : 0.0;
  s->weight = v->weight;
  s->total = v->weight * (c->w_cost * s->cost + c->w_sla * s->sla + c->w_util * s->util +
                          c->w_prefer * s->prefer + c->w_hours * s->hours);
  /* Degraded: still used, but others first. */
  if (v->state == BT_VENDOR_DEGRADED)
    s->total *= c->degraded_factor;
}

int bt_core_score(const bt_core_t *core, uint64_t package_id, uint64_t vendor_id,
                  bt_score_t *out) {
  const bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, package_id);
  const bt_core_vendor_t *v = bt_core__vendor(core, vendor_id);
  /* BT_ENOTFOUND as core.h documents, not -1 (test_core_score_unknown_ids). */
  if (p == NULL || v == NULL)
    return BT_ENOTFOUND;
  score(core, p, v, out);
  return 0;
}

/* --- vendors with room for a capability -------------------------------------- */

/* A vendor that can take a package of the capability now, with the agent that
 * would run it. */
typedef struct {
  bt_core_vendor_t *v;
  bt_core_agent_t *a;
} cand_t;

static cand_t *scratch(bt_core_t *core, uint32_t n) {
  if (n > core->sched_buf_cap) {
    core->sched_buf_cap = n < 64 ? 64 : n * 2;
    core->sched_buf = bt_xrealloc(core->sched_buf, core->sched_buf_cap * sizeof(cand_t));
  }
  return core->sched_buf;
}

/* Collects each vendor that has room and an agent with a free slot for cap,
 * with its agent that has the most free slots. Returns how many (in *out). */
static uint32_t vendors_with_room(bt_core_t *core, bt_sym_t cap, cand_t **out) {
  const bt_core_capq_t *q = &core->capqs[cap];
  cand_t *buf = scratch(core, q->n_ready);
  uint32_t n = 0;
  uint32_t stamp = ++core->sched_stamp;
  for (bt_core_agent_t *a = q->ready_head; a != NULL;) {
    bt_core_agent_t *next = NULL;
    for (uint32_t i = 0; i < a->n_caps; i++)
      if (a->caps[i] == cap)
        next = a->links[i].next;
    bt_core_vendor_t *v = bt_core__vendor(core, a->vendor_id);
    if (vendor_has_room(v)) {
      if (v->sched_stamp != stamp) {
        v->sched_stamp = stamp;
        v->sched_slot = n;
        buf[n].v = v;
        buf[n].a = a;
        n++;
      } else {
        bt_core_agent_t *b = buf[v->sched_slot].a;
        if (a->slots - a->n_held > b->slots - b->n_held)
          buf[v->sched_slot].a = a;
      }
    }
    a = next;
  }
  *out = buf;
  return n;
}

/* True when some class of cap has a routable package queued. */
static bool cap_has_queued(const bt_core_t *core, bt_sym_t cap) {
  const bt_core_capq_t *q = &core->capqs[cap];
  for (uint32_t i = 0; i < q->n_classes; i++) {
    bt_qkey_t k;
    if (bt_classq_best(&q->classes[i]->q, &k))
      return true;
  }
  return false;
}

/* --- which package ------------------------------------------------------------ */

/* A class's candidate with its sort key, so comparing candidates of different
 * classes reads no package. */
typedef struct {
  bt_core_pkg_t *p;
  bool overdue;
  uint8_t priority;
  int64_t key; /* deadline (INT64_MAX none), or ready_at when overdue */
  uint64_t id;
} pick_t;

/* True when a goes before b. */
static bool pick_better(const pick_t *a, const pick_t *b) {
  if (a->overdue != b->overdue)
    return a->overdue;
  if (!a->overdue && a->priority != b->priority)
    return a->priority > b->priority;
  if (a->key != b->key)
    return a->key < b->key;
  return a->id < b->id;
}

static bool class_placeable(const bt_core_t *core, const bt_core_class_t *c,
                            const cand_t *vs, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (bt_core__reqs_allow(core, c->reqs, vs[i].v))
      return true;
  return false;
}

/* The best package of cap that one of the n vendors may take. */
static pick_t pick_package(const bt_core_t *core, bt_sym_t cap, const cand_t *vs,
                           uint32_t n, const bt_now_t *now) {
  const bt_core_capq_t *q = &core->capqs[cap];
  pick_t best = {NULL, false, 0, 0, 0};
  uint32_t bound = core->cfg.aging_bound_ms;
  for (uint32_t i = 0; i < q->n_classes; i++) {
    const bt_core_class_t *c = q->classes[i];
    bt_qkey_t k;
    if (!bt_classq_best(&c->q, &k) || !class_placeable(core, c, vs, n))
      continue;
    pick_t cand = {k.p, false, k.priority, k.deadline, k.id};
    bt_agekey_t old;
    if (bound > 0 && bt_classq_oldest(&c->q, &old) &&
        now->at - old.ready_at >= (int64_t)bound)
      cand = (pick_t){old.p, true, 0, old.ready_at, old.id};
    if (best.p == NULL || pick_better(&cand, &best))
      best = cand;
  }
  return best;
}

/* --- which vendor ------------------------------------------------------------- */

static const cand_t *pick_vendor(const bt_core_t *core, const bt_core_pkg_t *p,
                                 const cand_t *vs, uint32_t n) {
  const bt_core_capq_t *q = &core->capqs[p->cls->cap];
  double cap = core->cfg.share_cap;
  const cand_t *best = NULL, *best_capped = NULL;
  double best_s = 0, best_capped_s = 0;
  for (uint32_t i = 0; i < n; i++) {
    const bt_core_vendor_t *v = vs[i].v;
    if (!bt_core__reqs_allow(core, p->cls->reqs, v))
      continue;
    bt_score_t s;
    score(core, p, v, &s);
    uint32_t ci = bt_core__vendor_cap_index(v, p->cls->cap);
    uint32_t mine = ci == BT_NOPOS ? 0 : v->cap_in_flight[ci];
    /* Its share after taking this one. */
    bool capped = cap < 1.0 && (double)(mine + 1) > cap * (double)(q->in_flight + 1);
    const cand_t **slot = capped ? &best_capped : &best;
    double *slot_s = capped ? &best_capped_s : &best_s;
    if (*slot == NULL || s.total > *slot_s ||
        (s.total == *slot_s && v->id < (*slot)->v->id)) {
      *slot = &vs[i];
      *slot_s = s.total;
    }
  }
  return best != NULL ? best : best_capped;
}

/* --- placing ------------------------------------------------------------------ */

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
  act->with_insert = (p->flags & BT_PKGF_UNPERSISTED) != 0; /* route_at_submit */
}

void bt_core__sched(bt_core_t *core, const bt_now_t *now, bt_actions_t *out) {
  /* An agent with room makes its capabilities worth a look. */
  for (uint32_t i = 0; i < core->n_dirty_agents; i++) {
    bt_core_agent_t *a = core->dirty_agents[i];
    a->dirty = false;
    for (uint32_t k = 0; k < a->n_caps; k++)
      bt_core__mark_cap(core, a->caps[k]);
  }
  core->n_dirty_agents = 0;
  /* The marked capabilities (dirty_caps is reused as the working list; new
   * marks made while placing are impossible: placing only takes room). */
  uint32_t n_caps = core->n_dirty_caps;
  const uint32_t marked = n_caps;
  bt_sym_t *caps = core->dirty_caps;
  for (;;) {
    pick_t best = {NULL, false, 0, 0, 0};
    bt_sym_t best_cap = 0;
    for (uint32_t i = 0; i < n_caps;) {
      cand_t *vs;
      /* Walking the ready agents is O(agents): skip it when nothing of the
       * capability waits (a thousand idle agents polling every second made
       * that walk a fifth of the broker's time). */
      uint32_t n = cap_has_queued(core, caps[i]) ? vendors_with_room(core, caps[i], &vs) : 0;
      pick_t p = n ? pick_package(core, caps[i], vs, n, now) : (pick_t){NULL, false, 0, 0, 0};
      if (p.p == NULL) {
        /* Nothing placeable here, and placing elsewhere only takes room. */
        core->capqs[caps[i]].dirty = false;
        caps[i] = caps[--n_caps];
        continue;
      }
      if (best.p == NULL || pick_better(&p, &best)) {
        best = p;
        best_cap = caps[i];
      }
      i++;
    }
    if (best.p == NULL)
      break;
    cand_t *vs;
    uint32_t n = vendors_with_room(core, best_cap, &vs);
    const cand_t *c = pick_vendor(core, best.p, vs, n);
    BT_ASSERT(c != NULL); /* pick_package saw an eligible vendor */
    assign(core, best.p, c->a, now, out);
  }
  BT_ASSERT(core->n_dirty_caps == marked); /* nothing marked while placing */
  core->n_dirty_caps = 0;
}

/*
 * Agents and what they report: sessions (hello, liveness, bye), the start,
 * progress and results of attempts, the tick that expires leases, and the
 * sessions a vendor's secret rotation ends.
 *
 * Fencing: an attempt number is the token. Only the agent that holds the
 * current attempt of a package may move it; every other report is answered
 * stale and changes nothing, which is what keeps a package completed once even
 * when a replaced agent finishes late.
 *
 * Authorization (DESIGN.md, Security): an agent acts only on its own vendor's
 * assignments and only for capabilities its vendor is registered for. A report
 * that claims the current attempt of a package another vendor holds is no late
 * answer but an agent acting outside its vendor's work: it is refused like a
 * stale one and audited apart ("<what>.foreign"), so an operator can tell a
 * misbehaving vendor from ordinary at-least-once noise.
 */
#include "core_int.h"

#include "bt_err.h"

#include <string.h>

bt_core_agent_t *bt_core__agent(const bt_core_t *core, uint64_t id) {
  return bt_idmap_get(&core->agent_by_id, id);
}

static bt_core_agent_t *agent_by_name(const bt_core_t *core, uint64_t vendor_id,
                                      const char *name) {
  for (uint32_t i = 0; i < core->n_agents; i++) {
    bt_core_agent_t *a = core->agents[i];
    if (a->vendor_id == vendor_id && strcmp(a->name, name) == 0)
      return a;
  }
  return NULL;
}

/* --- ready lists --------------------------------------------------------------- */

static uint32_t cap_index(const bt_core_agent_t *a, bt_sym_t cap) {
  for (uint32_t i = 0; i < a->n_caps; i++)
    if (a->caps[i] == cap)
      return i;
  return BT_NOPOS;
}

static void ready_link(bt_core_t *core, bt_core_agent_t *a) {
  for (uint32_t i = 0; i < a->n_caps; i++) {
    bt_core_capq_t *q = bt_core__capq(core, a->caps[i]);
    a->links[i].prev = q->ready_tail;
    a->links[i].next = NULL;
    if (q->ready_tail)
      q->ready_tail->links[cap_index(q->ready_tail, a->caps[i])].next = a;
    else
      q->ready_head = a;
    q->ready_tail = a;
    q->n_ready++;
  }
}

static void ready_unlink(bt_core_t *core, bt_core_agent_t *a) {
  for (uint32_t i = 0; i < a->n_caps; i++) {
    bt_sym_t cap = a->caps[i];
    bt_core_capq_t *q = bt_core__capq(core, cap);
    bt_core_agent_t *prev = a->links[i].prev, *next = a->links[i].next;
    if (prev)
      prev->links[cap_index(prev, cap)].next = next;
    else
      q->ready_head = next;
    if (next)
      next->links[cap_index(next, cap)].prev = prev;
    else
      q->ready_tail = prev;
    a->links[i].prev = a->links[i].next = NULL;
    q->n_ready--;
  }
}

void bt_core__agent_update_ready(bt_core_t *core, bt_core_agent_t *a) {
  bool ready = a->state == BT_AGENT_CONNECTED && a->accepting && !a->suspect &&
               a->n_held < a->slots;
  if (ready == a->ready)
    return;
  if (ready)
    ready_link(core, a);
  else
    ready_unlink(core, a);
  a->ready = ready;
}

/* --- holding attempts ------------------------------------------------------------ */

void bt_core__agent_hold(bt_core_t *core, bt_core_agent_t *a, bt_core_pkg_t *p) {
  if (a->n_held == a->cap_held) {
    a->cap_held = a->cap_held ? a->cap_held * 2 : 4;
    a->held = bt_xrealloc(a->held, a->cap_held * sizeof *a->held);
  }
  a->held[a->n_held++] = p;
  bt_core_vendor_t *v = bt_core__vendor(core, a->vendor_id);
  v->in_flight++;
  uint32_t ci = bt_core__vendor_cap_index(v, p->cls->cap);
  if (ci != BT_NOPOS)
    v->cap_in_flight[ci]++;
  bt_core__capq(core, p->cls->cap)->in_flight++;
  bt_core__agent_update_ready(core, a);
}

void bt_core__agent_release(bt_core_t *core, bt_core_agent_t *a, bt_core_pkg_t *p) {
  for (uint32_t i = 0; i < a->n_held; i++) {
    if (a->held[i] == p) {
      a->held[i] = a->held[--a->n_held];
      bt_core_vendor_t *v = bt_core__vendor(core, a->vendor_id);
      uint32_t ci = bt_core__vendor_cap_index(v, p->cls->cap);
      if (ci != BT_NOPOS)
        v->cap_in_flight[ci]--;
      bt_core__capq(core, p->cls->cap)->in_flight--;
      /* A vendor at its limit may have other agents waiting for room. */
      if (v->in_flight-- >= v->limit)
        bt_core__mark_vendor(core, v);
      bt_core__agent_update_ready(core, a);
      bt_core__mark_agent(core, a);
      return;
    }
  }
  BT_ASSERT(!"released an attempt the agent does not hold");
}

static bt_core_pkg_t *current_for(const bt_core_t *core, uint64_t agent_id,
                                  uint64_t package_id, uint32_t attempt) {
  bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, package_id);
  if (p == NULL || p->attempt != attempt || p->agent_id != agent_id ||
      (p->state != BT_PKG_ASSIGNED && p->state != BT_PKG_RUNNING))
    return NULL;
  return p;
}

void bt_core__requeue_lost(bt_core_t *core, bt_core_pkg_t *p, bt_outcome_t outcome,
                           bt_handoff_reason_t reason, bool handoff, const bt_now_t *now,
                           bt_actions_t *out) {
  bt_core_agent_t *a = bt_core__agent(core, p->agent_id);
  uint64_t from_vendor = p->vendor_id;
  if (p->flags & BT_PKGF_UNDISPATCHED)
    handoff = false; /* not committed, never sent: no work moved */
  /* An agent crash is not the package's fault, so lost attempts do not count
   * as failures; but a package that takes down every agent it lands on must
   * end, so lost attempts have their own, wider bound. */
  bool dead = false;
  if (handoff && outcome == BT_OUTCOME_LOST && ++p->lost >= 2 * p->max_attempts + 1)
    dead = true;
  bt_action_t *act = bt_core__push(out, BT_ACT_FINISH);
  act->package_id = p->id;
  act->attempt = p->attempt;
  act->agent_id = p->agent_id;
  act->vendor_id = from_vendor;
  act->outcome = outcome;
  act->state = dead ? BT_PKG_DEAD : BT_PKG_QUEUED;
  act->at = now->at;
  act->exit_code = -1;
  act->text = dead ? "lost with its agent too many times"
              : outcome == BT_OUTCOME_LOST ? "agent lost"
                                           : NULL;
  if (!dead && handoff) {
    act = bt_core__push(out, BT_ACT_HANDOFF);
    act->package_id = p->id;
    act->attempt = p->attempt;
    act->vendor_id = from_vendor;
    act->reason = reason;
    act->at = now->at;
    act->data = p->checkpoint;
    act->len = p->checkpoint_len;
  }
  if (a != NULL)
    bt_core__agent_release(core, a, p);
  p->flags &= (uint8_t)~BT_PKGF_UNDISPATCHED;
  if (dead) {
    bt_core__pkg_set_finishing(core, p, BT_PKG_DEAD);
    return;
  }
  p->agent_id = 0;
  p->vendor_id = 0;
  p->not_before_at = 0;
  bt_core__pkg_set_state(core, p, BT_PKG_QUEUED);
  bt_core__enqueue(core, p, now);
}

/* Records a report refused because it is not about the current attempt. */
static void audit_stale(bt_actions_t *out, uint64_t agent_id, uint64_t package_id,
                        uint32_t attempt, const char *what, const bt_now_t *now) {
  bt_action_t *a = bt_core__push(out, BT_ACT_AUDIT);
  a->agent_id = agent_id;
  a->package_id = package_id;
  a->attempt = attempt;
  a->at = now->at;
  a->text = what;
}

/* Whether a report from agent_id about attempt of p claims work another
 * vendor holds. Only the current attempt (or one never issued) is judged: each
 * attempt is given to exactly one agent, so another vendor's agent cannot have
 * held it. An earlier attempt may have run at any vendor before a handoff, and
 * its late report is merely stale (test_core_authz_foreign_vs_stale). */
static bool is_foreign(const bt_core_t *core, uint64_t agent_id, const bt_core_pkg_t *p,
                       uint32_t attempt) {
  if (p == NULL || p->agent_id == 0 || p->agent_id == agent_id || attempt < p->attempt)
    return false;
  const bt_core_agent_t *a = bt_core__agent(core, agent_id);
  return a != NULL && a->vendor_id != p->vendor_id;
}

/* Records a report refused because the package's current attempt belongs to
 * another vendor: the subject is the package, the detail names the reporting
 * agent and its vendor (text2, text3) and the vendor that holds it (text4). */
static void audit_foreign(const bt_core_t *core, bt_actions_t *out, uint64_t agent_id,
                          const bt_core_pkg_t *p, uint32_t attempt, const char *what,
                          const bt_now_t *now) {
  const bt_core_agent_t *ag = bt_core__agent(core, agent_id);
  const bt_core_vendor_t *mine = bt_core__vendor(core, ag->vendor_id);
  const bt_core_vendor_t *holder = bt_core__vendor(core, p->vendor_id);
  bt_action_t *a = bt_core__push(out, BT_ACT_AUDIT);
  a->agent_id = agent_id;
  a->vendor_id = ag->vendor_id;
  a->package_id = p->id;
  a->attempt = attempt;
  a->at = now->at;
  a->text = what;
  a->text2 = ag->name;
  a->text3 = mine != NULL ? mine->name : "?";
  a->text4 = holder != NULL ? holder->name : "?";
}

/* --- sessions ----------------------------------------------------------------------- */

static bool held_contains(const bt_agent_hello_t *h, uint64_t id, uint32_t attempt) {
  for (size_t i = 0; i < h->n_held; i++)
    if (h->held[i].package_id == id && h->held[i].attempt == attempt)
      return true;
  return false;
}

static void agent_set_caps(bt_core_t *core, bt_core_agent_t *a,
                           const char *const *caps, size_t n) {
  free(a->caps);
  free(a->links);
  a->caps = bt_xmalloc((n + 1) * sizeof *a->caps);
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++) {
    bt_sym_t s = bt_core_intern(core, caps[i]);
    bool dup = false;
    for (uint32_t j = 0; j < k && !dup; j++)
      dup = a->caps[j] == s;
    if (!dup)
      a->caps[k++] = s;
  }
  a->n_caps = k;
  a->links = bt_xcalloc(k + 1, sizeof *a->links);
}

static bt_core_agent_t *agent_create(bt_core_t *core, uint64_t id, uint64_t vendor_id,
                                     const char *name) {
  bt_core_agent_t *a = bt_xcalloc(1, sizeof *a);
  a->id = id;
  a->vendor_id = vendor_id;
  a->name = bt_xstrdup(name);
  a->state = BT_AGENT_LOST;
  if (core->n_agents == core->cap_agents) {
    core->cap_agents = core->cap_agents ? core->cap_agents * 2 : 16;
    core->agents = bt_xrealloc(core->agents, core->cap_agents * sizeof *core->agents);
  }
  BT_ASSERT(core->n_agents == 0 || core->agents[core->n_agents - 1]->id < id);
  core->agents[core->n_agents++] = a;
  bt_idmap_put(&core->agent_by_id, id, a);
  if (id >= core->next_agent_id)
    core->next_agent_id = id + 1;
  return a;
}

int bt_core_agent_hello(bt_core_t *core, const bt_agent_hello_t *hello,
                        const bt_now_t *now, uint64_t *agent_id, bt_actions_t *out) {
  bt_core_vendor_t *v = bt_core__vendor(core, hello->vendor_id);
  if (v == NULL)
    return BT_ENOTFOUND;
  if (v->state == BT_VENDOR_SUSPENDED)
    return BT_ESTATE;
  /* The whole hello is refused, not just the capability: an agent that runs a
   * handler its vendor was never registered for is misconfigured or hostile,
   * and the agent learns it at once (it exits on the error) instead of sitting
   * connected with work it will never get. Each refused capability is named. */
  bool refused = false;
  for (size_t i = 0; i < hello->n_caps; i++) {
    bt_sym_t s = bt_core_intern(core, hello->caps[i]);
    if (bt_core__vendor_has_cap(v, s))
      continue;
    bt_action_t *act = bt_core__push(out, BT_ACT_AUDIT);
    act->vendor_id = v->id;
    act->at = now->at;
    act->text = "agent.capability_refused";
    act->text2 = hello->name;
    act->text3 = v->name;
    act->text4 = bt_core_sym(core, s); /* interned: outlives the hello's strings */
    refused = true;
  }
  if (refused)
    return BT_EINVAL;
  bt_core_agent_t *a = agent_by_name(core, v->id, hello->name);
  if (a == NULL)
    a = agent_create(core, core->next_agent_id, v->id, hello->name);
  if (a->ready) {
    ready_unlink(core, a);
    a->ready = false;
  }
  agent_set_caps(core, a, hello->caps, hello->n_caps);
  a->slots = hello->slots;
  a->accepting = true; /* a fresh session polls next */
  a->suspect = false;
  if (a->state != BT_AGENT_CONNECTED)
    v->agents_connected++;
  a->state = BT_AGENT_CONNECTED;
  a->last_seen_ms = now->ms;
  a->last_seen_at = now->at;
  a->expires_ms = now->ms + core->cfg.lease_ms;
  *agent_id = a->id;

  bt_action_t *act = bt_core__push(out, BT_ACT_PERSIST_AGENT);
  act->agent_id = a->id;
  act->vendor_id = v->id;
  act->at = now->at;

  /* Reconcile: what it still runs continues; what we sent it but it does not
   * know about is lost (handed off); undispatched assignments will follow. */
  for (uint32_t i = 0; i < a->n_held;) {
    bt_core_pkg_t *p = a->held[i];
    if ((p->flags & BT_PKGF_UNDISPATCHED) || held_contains(hello, p->id, p->attempt)) {
      i++;
      continue;
    }
    /* Still "assigned": the agent never acknowledged it, so it never had it
     * (e.g. the broker died between commit and send). Route it again, but it is
     * no handoff: no work moved and no vendor failed. */
    bt_core__requeue_lost(core, p, BT_OUTCOME_LOST, BT_HANDOFF_AGENT_LOST,
                          p->state == BT_PKG_RUNNING, now, out);
  }
  for (size_t i = 0; i < hello->n_held; i++) {
    const bt_held_t *h = &hello->held[i];
    bt_core_pkg_t *p = current_for(core, a->id, h->package_id, h->attempt);
    if (p == NULL) {
      /* It runs (or finished) an attempt that is no longer current: it was
       * handed off while the agent was away. Stop it; its result is stale. */
      act = bt_core__push(out, BT_ACT_CANCEL);
      act->agent_id = a->id;
      act->package_id = h->package_id;
      act->attempt = h->attempt;
      bt_core_pkg_t *q = bt_idmap_get(&core->pkg_by_id, h->package_id);
      if (is_foreign(core, a->id, q, h->attempt))
        audit_foreign(core, out, a->id, q, h->attempt, "held.foreign", now);
      else
        audit_stale(out, a->id, h->package_id, h->attempt, "held.stale", now);
    } else if (p->state == BT_PKG_ASSIGNED) {
      bt_core_agent_started(core, a->id, p->id, p->attempt, now, out);
    }
  }
  bt_core__agent_update_ready(core, a);
  bt_core__mark_agent(core, a);
  bt_core__health_agent_up(core, v, now, out);
  bt_core__sched(core, now, out);
  return 0;
}

void bt_core_agent_seen(bt_core_t *core, uint64_t agent_id, const bt_now_t *now) {
  bt_core_agent_t *a = bt_core__agent(core, agent_id);
  if (a == NULL || a->state != BT_AGENT_CONNECTED)
    return;
  a->last_seen_ms = now->ms;
  a->last_seen_at = now->at;
  a->expires_ms = now->ms + core->cfg.lease_ms;
  if (a->suspect) {
    a->suspect = false;
    bt_core__agent_update_ready(core, a);
    bt_core__mark_agent(core, a); /* routed at the next decision */
  }
}

/* An agent was lost: its vendor's other agents that have been quiet for a
 * third of a lease are probably gone with it (one host, one network, one
 * crash), only their leases were renewed a moment later. They get no new
 * work until they are heard from again, so the lost agent's work does not go
 * to them only to be lost once more (the failover benchmark saw 909 of 3,334
 * packages bounce that way). */
static void suspect_siblings(bt_core_t *core, const bt_core_agent_t *lost,
                             const bt_now_t *now) {
  uint64_t quiet = core->cfg.lease_ms / 3;
  for (uint32_t i = 0; i < core->n_agents; i++) {
    bt_core_agent_t *b = core->agents[i];
    if (b == lost || b->vendor_id != lost->vendor_id || b->state != BT_AGENT_CONNECTED ||
        b->suspect || now->ms - b->last_seen_ms <= quiet)
      continue;
    b->suspect = true;
    bt_core__agent_update_ready(core, b);
  }
}

void bt_core_agent_ready(bt_core_t *core, uint64_t agent_id, uint32_t free_slots,
                         const bt_now_t *now, bt_actions_t *out) {
  bt_core_agent_t *a = bt_core__agent(core, agent_id);
  if (a == NULL || a->state != BT_AGENT_CONNECTED)
    return;
  bt_core_agent_seen(core, agent_id, now);
  /* A draining agent says 0: it must not get work back, not even what it just
   * handed back (test_core_handed_back_requeues_at_once). */
  a->accepting = free_slots > 0;
  bt_core__agent_update_ready(core, a);
  if (a->accepting)
    bt_core__mark_agent(core, a);
  bt_core__sched(core, now, out);
}

void bt_core__agent_lose(bt_core_t *core, bt_core_agent_t *a, bt_agent_state_t state,
                         const bt_now_t *now, bt_actions_t *out) {
  bt_core_vendor_t *v = bt_core__vendor(core, a->vendor_id);
  bool was_connected = a->state == BT_AGENT_CONNECTED;
  if (was_connected)
    v->agents_connected--;
  a->state = state;
  a->suspect = false;
  bt_core__agent_update_ready(core, a);
  if (was_connected && state == BT_AGENT_LOST)
    suspect_siblings(core, a, now);
  /* Its vendor's last live agent: the vendor fails, and everything it had in
   * flight (this agent's work too) is handed off as vendor-failed. */
  if ((was_connected || a->n_held > 0) && v->agents_connected == 0)
    bt_core__health_agent_down(core, v, now, out);
  while (a->n_held > 0)
    bt_core__requeue_lost(core, a->held[a->n_held - 1], BT_OUTCOME_LOST,
                          BT_HANDOFF_AGENT_LOST, true, now, out);
  if (was_connected) {
    bt_action_t *act;
    /* A lost agent's session must end so its next message starts over; an
     * agent that said Bye is ending its session itself. */
    if (state == BT_AGENT_LOST) {
      act = bt_core__push(out, BT_ACT_END_SESSION);
      act->agent_id = a->id;
      act->vendor_id = a->vendor_id;
      act->at = now->at;
    }
    act = bt_core__push(out, BT_ACT_AUDIT);
    act->agent_id = a->id;
    act->vendor_id = a->vendor_id;
    act->at = now->at;
    act->text = state == BT_AGENT_GONE ? "agent.bye" : "agent.lost";
    act->text2 = a->name;
    act->text3 = v->name;
  }
}

void bt_core_agent_bye(bt_core_t *core, uint64_t agent_id, const bt_now_t *now,
                       bt_actions_t *out) {
  bt_core_agent_t *a = bt_core__agent(core, agent_id);
  if (a == NULL || a->state != BT_AGENT_CONNECTED)
    return;
  bt_core__agent_lose(core, a, BT_AGENT_GONE, now, out);
  bt_core__sched(core, now, out);
}

/* --- a vendor's secret rotated ----------------------------------------------------- */

int bt_core_vendor_rotate_key(bt_core_t *core, uint64_t vendor_id,
                              const uint8_t key[32], uint64_t token,
                              const bt_now_t *now, bt_actions_t *out) {
  if (bt_core__vendor(core, vendor_id) == NULL)
    return BT_ENOTFOUND;
  bt_action_t *a = bt_core__push(out, BT_ACT_VENDOR_KEY);
  a->vendor_id = vendor_id;
  a->token = token;
  a->at = now->at;
  a->data = key;
  a->len = 32;
  return 0;
}

int bt_core_vendor_key_persisted(bt_core_t *core, uint64_t vendor_id,
                                 const uint8_t key[32], const bt_now_t *now,
                                 uint32_t *ended, bt_actions_t *out) {
  bt_core_vendor_t *v = bt_core__vendor(core, vendor_id);
  *ended = 0;
  if (v == NULL)
    return BT_ENOTFOUND;
  memcpy(v->auth_key, key, sizeof v->auth_key);
  bt_action_t *act = bt_core__push(out, BT_ACT_AUDIT);
  act->vendor_id = v->id;
  act->at = now->at;
  act->by_admin = true;
  act->text = "vendor.rotate-secret";
  act->text2 = v->name;
  act->text3 = bt_vendor_state_name(v->state);
  act->text4 = "secret rotated; agents must authenticate again";
  /* A session authenticated with the old secret must not outlive it. The
   * agent stays connected in here, though, with its lease running: the
   * rotation itself kills no handler and hands nothing off. Back within the
   * lease with the new secret, its hello reconciles what it holds as after
   * any reconnect; not back (it only knows the old secret), it is lost like
   * any silent agent and its work is handed off then — nothing is lost and
   * an operator sees the usual agent-lost story. Until it is heard from it
   * gets no new work: suspect means exactly that, and only an authenticated
   * message (hello or later) clears it. */
  for (uint32_t i = 0; i < core->n_agents; i++) {
    bt_core_agent_t *a = core->agents[i];
    if (a->vendor_id != v->id || a->state != BT_AGENT_CONNECTED)
      continue;
    a->suspect = true;
    bt_core__agent_update_ready(core, a);
    act = bt_core__push(out, BT_ACT_END_SESSION);
    act->agent_id = a->id;
    act->vendor_id = v->id;
    act->at = now->at;
    act = bt_core__push(out, BT_ACT_AUDIT);
    act->agent_id = a->id;
    act->vendor_id = v->id;
    act->at = now->at;
    act->text = "agent.signed_out";
    act->text2 = a->name;
    act->text3 = v->name;
    (*ended)++;
  }
  return 0;
}

/* --- attempts ---------------------------------------------------------------------- */

void bt_core_agent_started(bt_core_t *core, uint64_t agent_id, uint64_t package_id,
                           uint32_t attempt, const bt_now_t *now, bt_actions_t *out) {
  bt_core_pkg_t *p = current_for(core, agent_id, package_id, attempt);
  if (p == NULL) {
    /* A stale start is ordinary (a resent ack) and not audited; a start of
     * another vendor's attempt is not. */
    bt_core_pkg_t *q = bt_idmap_get(&core->pkg_by_id, package_id);
    if (is_foreign(core, agent_id, q, attempt))
      audit_foreign(core, out, agent_id, q, attempt, "start.foreign", now);
    return;
  }
  if (p->state != BT_PKG_ASSIGNED)
    return;
  bt_core__pkg_set_state(core, p, BT_PKG_RUNNING);
  bt_action_t *a = bt_core__push(out, BT_ACT_START);
  a->package_id = p->id;
  a->attempt = p->attempt;
  a->agent_id = agent_id;
  a->vendor_id = p->vendor_id;
  a->at = now->at;
}

int bt_core_agent_progress(bt_core_t *core, uint64_t agent_id, uint64_t package_id,
                           uint32_t attempt, int percent, const void *checkpoint,
                           size_t checkpoint_len, const bt_now_t *now,
                           bt_actions_t *out) {
  bt_core_pkg_t *p = current_for(core, agent_id, package_id, attempt);
  if (p == NULL) {
    /* Never overwrites: a replaced attempt's checkpoint must not reach the
     * next handler, nor another vendor's agent's checkpoint the holder's. */
    bt_core_pkg_t *q = bt_idmap_get(&core->pkg_by_id, package_id);
    if (is_foreign(core, agent_id, q, attempt)) {
      audit_foreign(core, out, agent_id, q, attempt, "progress.foreign", now);
      return BT_EAUTH;
    }
    audit_stale(out, agent_id, package_id, attempt, "progress.stale", now);
    return BT_ESTALE;
  }
  if (p->state == BT_PKG_ASSIGNED)
    bt_core_agent_started(core, agent_id, package_id, attempt, now, out);
  if (percent >= 0)
    p->progress = (int8_t)(percent > 100 ? 100 : percent);
  if (checkpoint != NULL) {
    free(p->checkpoint);
    p->checkpoint = bt_xmalloc(checkpoint_len);
    memcpy(p->checkpoint, checkpoint, checkpoint_len);
    p->checkpoint_len = (uint32_t)checkpoint_len;
  }
  bt_action_t *a = bt_core__push(out, BT_ACT_PROGRESS);
  a->package_id = p->id;
  a->attempt = attempt;
  a->agent_id = agent_id;
  a->progress = percent;
  a->data = checkpoint;
  /* No checkpoint means no bytes, whatever length came with it: the shell
   * copies data/len (test_core_property_invariants_hold sends NULL + a length). */
  a->len = checkpoint != NULL ? checkpoint_len : 0;
  a->at = now->at;
  return 0;
}

void bt_core__remember_finish(bt_core_t *core, uint64_t id, uint32_t attempt,
                              uint64_t agent_id) {
  uint32_t n = sizeof core->recent / sizeof core->recent[0];
  core->recent[core->recent_next % n].package_id = id;
  core->recent[core->recent_next % n].attempt = attempt;
  core->recent[core->recent_next % n].agent_id = agent_id;
  core->recent_next++;
}

bool bt_core__recently_finished(const bt_core_t *core, uint64_t id, uint32_t attempt,
                                uint64_t agent_id) {
  uint32_t n = sizeof core->recent / sizeof core->recent[0];
  for (uint32_t i = 0; i < n; i++)
    if (core->recent[i].package_id == id && core->recent[i].attempt == attempt &&
        core->recent[i].agent_id == agent_id)
      return true;
  return false;
}

/* Backoff before retry n (1-based): base * 2^(n-1), capped, ±20% jitter. */
static int64_t backoff_ms(bt_core_t *core, uint32_t n) {
  uint64_t d = core->cfg.retry_base_ms;
  for (uint32_t i = 1; i < n && d < core->cfg.retry_max_ms; i++)
    d *= 2;
  if (d > core->cfg.retry_max_ms)
    d = core->cfg.retry_max_ms;
  uint64_t r = bt_core__rand(core) % 401; /* 0..400 → 0.8..1.2 */
  return (int64_t)(d * (800 + r) / 1000);
}

static void ack(bt_actions_t *out, uint64_t agent_id, const bt_result_t *r,
                uint64_t token, int code) {
  bt_action_t *a = bt_core__push(out, BT_ACT_ACK_RESULT);
  a->agent_id = agent_id;
  a->package_id = r->package_id;
  a->attempt = r->attempt;
  a->token = token;
  a->code = code;
}

int bt_core_agent_result(bt_core_t *core, uint64_t agent_id, const bt_result_t *r,
                         uint64_t token, const bt_now_t *now, bt_actions_t *out) {
  bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, r->package_id);
  bool mine = p != NULL && p->attempt == r->attempt && p->agent_id == agent_id;
  if (is_foreign(core, agent_id, p, r->attempt)) {
    /* Answered as stale so the agent forgets it (anything else and it would
     * resend for ever); the package and its holder are untouched. */
    ack(out, agent_id, r, token, BT_ESTALE);
    audit_foreign(core, out, agent_id, p, r->attempt, "result.foreign", now);
    return BT_EAUTH;
  }
  if (mine && (p->flags & BT_PKGF_FINISHING)) {
    /* The same result again (a resend after a lost reply): answer once the first
     * copy's commit is through; ACK_RESULT is ordered after it. */
    ack(out, agent_id, r, token, 0);
    return 0;
  }
  if (!mine || (p->state != BT_PKG_ASSIGNED && p->state != BT_PKG_RUNNING)) {
    /* A resend of a result this agent already delivered for this attempt: the
     * attempt ended then (requeued, dead or completed); say so again. */
    if (bt_core__recently_finished(core, r->package_id, r->attempt, agent_id)) {
      ack(out, agent_id, r, token, 0);
      return 0;
    }
    ack(out, agent_id, r, token, BT_ESTALE);
    audit_stale(out, agent_id, r->package_id, r->attempt, "result.stale", now);
    return BT_ESTALE;
  }

  bt_core_agent_t *agent = bt_core__agent(core, agent_id);
  bt_core_vendor_t *v = bt_core__vendor(core, p->vendor_id);
  /* The FINISH's fields are decided first and the action pushed after: a
   * pointer into out must not be kept across another push (it may move). */
  bt_pkg_state_t next;
  int64_t retry_at = 0;
  bool requeue = false, late = false;
  switch (r->outcome) {
  case BT_OUTCOME_COMPLETED:
    next = BT_PKG_COMPLETED;
    v->completed++;
    if (p->deadline_at) {
      v->with_deadline++;
      late = now->at > p->deadline_at;
      if (!late)
        v->on_time++;
    }
    break;
  case BT_OUTCOME_FAILED:
  case BT_OUTCOME_TRANSIENT:
    /* Exit 75 is the handler saying "not my fault": retried, and not counted in
     * the vendor's failures, but it still uses up an attempt so a package that
     * can never succeed ends. */
    if (r->outcome == BT_OUTCOME_FAILED)
      v->failed++;
    p->failures++;
    if (p->failures >= p->max_attempts) {
      next = BT_PKG_DEAD;
    } else {
      next = BT_PKG_QUEUED;
      retry_at = now->at + backoff_ms(core, p->failures);
      requeue = true;
    }
    break;
  case BT_OUTCOME_HANDED_BACK:
  default:
    /* Handed back (drain) or stopped without being asked: another agent may
     * take it at once; not the package's failure. */
    next = BT_PKG_QUEUED;
    requeue = true;
    break;
  }
  bt_action_t *a = bt_core__push(out, BT_ACT_FINISH);
  a->package_id = p->id;
  a->attempt = p->attempt;
  a->agent_id = agent_id;
  a->vendor_id = p->vendor_id;
  a->outcome = r->outcome;
  a->exit_code = r->exit_code;
  a->at = now->at;
  a->text = r->error;
  a->state = next;
  a->retry_at = retry_at;
  if (next == BT_PKG_COMPLETED) {
    a->data = r->output;
    a->len = r->output_len;
  }
  if (r->outcome == BT_OUTCOME_HANDED_BACK) {
    bt_action_t *h = bt_core__push(out, BT_ACT_HANDOFF);
    h->package_id = p->id;
    h->attempt = p->attempt;
    h->vendor_id = p->vendor_id;
    h->reason = BT_HANDOFF_DRAIN;
    h->at = now->at;
    h->data = p->checkpoint;
    h->len = p->checkpoint_len;
  }
  ack(out, agent_id, r, token, 0);
  bt_core__remember_finish(core, p->id, p->attempt, agent_id);

  if (agent != NULL)
    bt_core__agent_release(core, agent, p);
  p->flags &= (uint8_t)~BT_PKGF_UNDISPATCHED;
  if (requeue) {
    p->agent_id = 0;
    p->vendor_id = 0;
    p->not_before_at = retry_at;
    bt_core__pkg_set_state(core, p, BT_PKG_QUEUED);
    bt_core__enqueue(core, p, now);
  } else {
    /* agent_id stays set while the finish commits: it is what makes a resent
     * copy of this result "mine" above, so it is acked instead of refused as
     * stale (test_core_fencing_duplicate_result). */
    bt_core__pkg_set_finishing(core, p, next);
  }
  /* After the package is settled: a tripped breaker revokes the vendor's other
   * attempts, never this one twice. */
  bt_core__health_record(core, v, r->outcome, late, now, out);
  bt_core__sched(core, now, out);
  return 0;
}

/* --- persistence feedback ------------------------------------------------------------ */

void bt_core_assign_persisted(bt_core_t *core, uint64_t package_id, uint32_t attempt,
                              bool ok, const bt_now_t *now, bt_actions_t *out) {
  bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, package_id);
  if (p == NULL || p->attempt != attempt || !(p->flags & BT_PKGF_UNDISPATCHED))
    return;
  p->flags &= (uint8_t)~BT_PKGF_UNDISPATCHED;
  if (ok)
    return;
  /* The write failed for good: the agent never got it; put it back. */
  bt_core_agent_t *a = bt_core__agent(core, p->agent_id);
  if (a != NULL)
    bt_core__agent_release(core, a, p);
  p->agent_id = 0;
  p->vendor_id = 0;
  bt_core__pkg_set_state(core, p, BT_PKG_QUEUED);
  bt_core__enqueue(core, p, now);
  bt_core__sched(core, now, out);
}

void bt_core_finish_persisted(bt_core_t *core, uint64_t package_id, uint32_t attempt,
                              bool ok, const bt_now_t *now, bt_actions_t *out) {
  bt_core_pkg_t *p = bt_idmap_get(&core->pkg_by_id, package_id);
  if (p == NULL || p->attempt != attempt || !(p->flags & BT_PKGF_FINISHING))
    return;
  core->finishing[p->state]--;
  if (!ok) {
    /* Never recorded as finished: run it again rather than lose it. */
    p->flags &= (uint8_t)~BT_PKGF_FINISHING;
    p->agent_id = 0;
    p->vendor_id = 0;
    p->not_before_at = 0;
    bt_core__pkg_set_state(core, p, BT_PKG_QUEUED);
    bt_core__enqueue(core, p, now);
    bt_core__sched(core, now, out);
    return;
  }
  bt_idmap_del(&core->pkg_by_id, p->id);
  if (p->key && bt_strmap_get(&core->pkg_by_key, p->key) == p)
    bt_strmap_del(&core->pkg_by_key, p->key);
  core->open_by_state[p->state]--;
  core->finished[p->state]++;
  bt_core__pkg_free(core, p);
}

/* --- time ------------------------------------------------------------------------------ */

uint64_t bt_core_tick(bt_core_t *core, const bt_now_t *now, bt_actions_t *out) {
  /* Delayed packages whose time has come. */
  bt_core_pkg_t *p;
  while ((p = bt_pheap_top(&core->delayed)) != NULL && p->not_before_at <= now->at) {
    bt_core__dequeue(core, p);
    bt_core__enqueue(core, p, now);
  }
  uint64_t next = UINT64_MAX;
  if (p != NULL)
    next = now->ms + (uint64_t)(p->not_before_at - now->at);
  /* Leases: a connected agent silent too long, or an agent that did not come
   * back after a restart, loses what it held. */
  for (uint32_t i = 0; i < core->n_agents && !core->leases_held; i++) {
    bt_core_agent_t *a = core->agents[i];
    if (a->state != BT_AGENT_CONNECTED && a->n_held == 0)
      continue;
    if (now->ms >= a->expires_ms)
      bt_core__agent_lose(core, a, BT_AGENT_LOST, now, out);
    else if (a->expires_ms < next)
      next = a->expires_ms;
  }
  uint64_t probe = bt_core__health_tick(core, now, out);
  if (probe < next)
    next = probe;
  bt_core__sched(core, now, out);
  return next;
}

void bt_core_hold_leases(bt_core_t *core, bool hold, const bt_now_t *now) {
  if (hold == core->leases_held)
    return;
  core->leases_held = hold;
  if (hold)
    return;
  for (uint32_t i = 0; i < core->n_agents; i++) {
    bt_core_agent_t *a = core->agents[i];
    if ((a->state == BT_AGENT_CONNECTED || a->n_held > 0) &&
        a->expires_ms < now->ms + core->cfg.lease_ms)
      a->expires_ms = now->ms + core->cfg.lease_ms;
  }
}

/* --- views ------------------------------------------------------------------------------ */

static void agent_view(const bt_core_agent_t *a, bt_agent_view_t *v) {
  v->id = a->id;
  v->vendor_id = a->vendor_id;
  v->name = a->name;
  v->caps = a->caps;
  v->n_caps = a->n_caps;
  v->slots = a->slots;
  v->busy = a->n_held;
  v->last_seen_at = a->last_seen_at;
  v->state = a->state;
  v->suspect = a->suspect;
}

size_t bt_core_agent_count(const bt_core_t *core) { return core->n_agents; }

int bt_core_agent_at(const bt_core_t *core, size_t i, bt_agent_view_t *view) {
  if (i >= core->n_agents)
    return BT_ENOTFOUND;
  agent_view(core->agents[i], view);
  return 0;
}

int bt_core_agent_view(const bt_core_t *core, uint64_t agent_id, bt_agent_view_t *view) {
  const bt_core_agent_t *a = bt_core__agent(core, agent_id);
  if (a == NULL)
    return BT_ENOTFOUND;
  agent_view(a, view);
  return 0;
}

/* --- loading at start ---------------------------------------------------------------------- */

int bt_core_load_agent(bt_core_t *core, const bt_agent_row_t *row) {
  if (row->id == 0 || bt_core__vendor(core, row->vendor_id) == NULL ||
      bt_core__agent(core, row->id) != NULL ||
      (core->n_agents > 0 && core->agents[core->n_agents - 1]->id > row->id))
    return BT_EINVAL;
  bt_core_agent_t *a = agent_create(core, row->id, row->vendor_id, row->name);
  agent_set_caps(core, a, row->caps, row->n_caps);
  a->slots = row->slots;
  a->last_seen_at = row->last_seen_at;
  return 0;
}

int bt_core_load_package(bt_core_t *core, const bt_pkg_row_t *row) {
  if (row->id == 0 || bt_idmap_get(&core->pkg_by_id, row->id) != NULL)
    return BT_EINVAL;
  bt_core_agent_t *a = NULL;
  if (row->state == BT_PKG_ASSIGNED || row->state == BT_PKG_RUNNING) {
    a = bt_core__agent(core, row->agent_id);
    if (a == NULL || a->vendor_id != row->vendor_id)
      return BT_EINVAL;
  } else if (row->state != BT_PKG_QUEUED) {
    return BT_EINVAL;
  }
  bt_core_pkg_t *p = bt_core__pkg_new(core, &row->spec, row->id, row->submitted_at);
  p->attempt = row->attempt;
  p->failures = row->failures;
  p->lost = row->lost;
  p->progress = (int8_t)(row->progress < 0 ? -1 : row->progress > 100 ? 100 : row->progress);
  /* A package that was waiting before the restart keeps its age. */
  if (row->state == BT_PKG_QUEUED)
    p->ready_at = row->spec.not_before_at > row->submitted_at ? row->spec.not_before_at
                                                              : row->submitted_at;
  if (row->checkpoint != NULL && row->checkpoint_len > 0) {
    p->checkpoint = bt_xmalloc(row->checkpoint_len);
    memcpy(p->checkpoint, row->checkpoint, row->checkpoint_len);
    p->checkpoint_len = (uint32_t)row->checkpoint_len;
  }
  if (a != NULL) {
    p->agent_id = a->id;
    p->vendor_id = a->vendor_id;
    bt_core__pkg_set_state(core, p, row->state);
    bt_core__agent_hold(core, a, p);
  } else {
    /* Enqueue needs a time; not-before is compared at the first tick. */
    p->flags |= BT_PKGF_DELAYED;
    bt_pheap_push(&core->delayed, p);
  }
  return 0;
}

void bt_core_load_done(bt_core_t *core, const bt_now_t *now) {
  for (uint32_t i = 0; i < core->n_agents; i++) {
    bt_core_agent_t *a = core->agents[i];
    if (a->n_held > 0)
      a->expires_ms = now->ms + core->cfg.restart_grace_ms;
  }
  for (uint32_t i = 0; i < core->n_vendors; i++)
    bt_core__health_loaded(core, core->vendors[i], now);
}

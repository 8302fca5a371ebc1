/*
 * Internal layout of the core, shared by its .c files only. Nothing outside
 * server/core includes this.
 */
#ifndef BT_CORE_INT_H
#define BT_CORE_INT_H

#include "core.h"

#include <stdlib.h>

#define BT_ASSERT(cond)                                                        \
  do {                                                                         \
    if (!(cond))                                                               \
      bt_core__assert_fail(#cond, __FILE__, __LINE__);                         \
  } while (0)
_Noreturn void bt_core__assert_fail(const char *what, const char *file, int line);

/* Allocation that aborts on out of memory (STYLE: OOM aborts). */
void *bt_xmalloc(size_t n);
void *bt_xcalloc(size_t n, size_t size);
void *bt_xrealloc(void *p, size_t n);
char *bt_xstrdup(const char *s);

#define BT_NOPOS UINT32_MAX

#include "bt_idmap.h"

/* --- string → pointer map (keys borrowed from the values' own storage) ---- */
typedef struct {
  const char **keys; /* NULL = empty; (const char*)1 = tombstone */
  void **vals;
  uint32_t cap, n, tomb;
} bt_strmap_t;
void bt_strmap_init(bt_strmap_t *m);
void bt_strmap_close(bt_strmap_t *m);
void *bt_strmap_get(const bt_strmap_t *m, const char *key);
void bt_strmap_put(bt_strmap_t *m, const char *key, void *val);
void *bt_strmap_del(bt_strmap_t *m, const char *key);
uint64_t bt_hash_bytes(const void *p, size_t n, uint64_t seed);

/* --- package heap ----------------------------------------------------------- */
typedef int (*bt_pheap_less_fn)(const bt_core_pkg_t *a, const bt_core_pkg_t *b);
/* A package may sit in two heaps at once (priority order and age order), so
 * each heap keeps the package's position in its own field: pos_off is that
 * field's offset inside bt_core_pkg_t. */
typedef struct {
  bt_core_pkg_t **v;
  uint32_t n, cap;
  bt_pheap_less_fn less;
  size_t pos_off;
} bt_pheap_t;
void bt_pheap_init(bt_pheap_t *h, bt_pheap_less_fn less, size_t pos_off);
void bt_pheap_close(bt_pheap_t *h);
void bt_pheap_push(bt_pheap_t *h, bt_core_pkg_t *p);
bt_core_pkg_t *bt_pheap_top(const bt_pheap_t *h);
void bt_pheap_remove(bt_pheap_t *h, bt_core_pkg_t *p);

/* --- requirement sets, interned so packages that ask the same share one --- */
typedef struct bt_core_reqs {
  bt_sym_t *regions; /* sorted */
  uint32_t n_regions;
  bt_sym_t *certs; /* sorted */
  uint32_t n_certs;
  bt_sym_t *prefer; /* vendor names, sorted */
  uint32_t n_prefer;
  bt_sym_t *avoid; /* vendor names, sorted */
  uint32_t n_avoid;
  double max_cost; /* < 0 none */
  bt_sym_t only;   /* vendor name the package is pinned to (reassign --to); 0 none */
  uint64_t hash;
  uint32_t refs;
  struct bt_core_reqs *next; /* hash chain */
} bt_core_reqs_t;

/* --- a class's queue (classq.c) ------------------------------------------- */
#define BT_PRIORITIES 10

/* A heap entry with its key inline (sifts read no package). */
typedef struct {
  int64_t k1;
  uint64_t k2;
  bt_core_pkg_t *p;
} bt_kent_t;
typedef struct {
  bt_kent_t *v;
  uint32_t n, cap;
  size_t pos_off; /* the package field that holds its position */
} bt_kheap_t;

/* One priority level: a FIFO of packages in both orders at once, and a heap
 * for the rest (see classq.c). The FIFO ends' keys are kept here. */
typedef struct {
  bt_core_pkg_t *head, *tail;
  uint64_t head_id, tail_id;
  int64_t head_deadline, tail_deadline; /* INT64_MAX = none */
  int64_t head_ready_at, tail_ready_at;
  bt_kheap_t heap; /* (deadline or none = INT64_MAX, id) */
} bt_prioq_t;

typedef struct {
  bt_prioq_t prio[BT_PRIORITIES];
  bt_kheap_t age;    /* (ready_at, id) of the packages in the prio heaps */
  uint32_t n;        /* packages queued */
  uint16_t nonempty; /* bit i: prio[i] holds packages */
} bt_classq_t;

/* The best package of a class in ready order, with its key. */
typedef struct {
  bt_core_pkg_t *p;
  int64_t deadline; /* INT64_MAX = none */
  uint64_t id;
  uint8_t priority;
} bt_qkey_t;
/* The oldest package of a class in aging order, with its key. */
typedef struct {
  bt_core_pkg_t *p;
  int64_t ready_at;
  uint64_t id;
} bt_agekey_t;

void bt_classq_init(bt_classq_t *q);
void bt_classq_close(bt_classq_t *q);
/* p's priority, deadline, id and ready_at must not change while it is queued. */
void bt_classq_push(bt_classq_t *q, bt_core_pkg_t *p);
void bt_classq_remove(bt_classq_t *q, bt_core_pkg_t *p);
bool bt_classq_best(const bt_classq_t *q, bt_qkey_t *out);
bool bt_classq_oldest(const bt_classq_t *q, bt_agekey_t *out);
bt_core_pkg_t *bt_classq_any(const bt_classq_t *q);

/* --- a queue class: packages of one capability with one requirement set ---- */
typedef struct bt_core_class {
  bt_sym_t cap;
  bt_core_reqs_t *reqs; /* NULL = unconstrained */
  bt_classq_t q;        /* queued and routable */
  uint32_t refs;        /* packages that point here */
  uint32_t index;       /* position in its capq's classes */
} bt_core_class_t;

/* Per-capability index: its classes and the agents that could take more. */
typedef struct {
  bt_core_class_t **classes;
  uint32_t n_classes, cap_classes;
  bt_core_agent_t *ready_head, *ready_tail; /* agents with a free slot */
  uint32_t n_ready;
  uint32_t in_flight; /* assigned and running packages of this capability */
  bool dirty; /* in core->dirty_caps */
} bt_core_capq_t;

/* --- packages --------------------------------------------------------------- */
enum {
  BT_PKGF_UNPERSISTED = 1 << 0,  /* submitted; insert not committed */
  BT_PKGF_UNDISPATCHED = 1 << 1, /* assigned; write not committed yet */
  BT_PKGF_FINISHING = 1 << 2,    /* final state being committed */
  BT_PKGF_DELAYED = 1 << 3,      /* in core->delayed (not before a time) */
  BT_PKGF_QUEUED = 1 << 4,       /* in its class's queue */
};

struct bt_core_pkg {
  uint64_t id;
  uint64_t vendor_id; /* current attempt; 0 when queued */
  uint64_t agent_id;
  int64_t deadline_at;
  int64_t not_before_at; /* also the retry time after a failure */
  int64_t submitted_at;
  int64_t ready_at;      /* when it last became routable (aging); 0 while not */
  bt_core_class_t *cls;
  uint64_t token; /* submit request, while unpersisted */
  uint8_t *checkpoint;
  uint32_t checkpoint_len;
  bt_core_pkg_t *rq_prev, *rq_next; /* in a FIFO of cls->q */
  uint32_t rq_pos;   /* in a heap of cls->q, else BT_NOPOS */
  uint32_t ag_pos;   /* in cls->q.age, else BT_NOPOS */
  uint32_t heap_pos; /* in core->delayed */
  uint32_t attempt;
  uint32_t max_attempts;
  uint32_t failures; /* attempts that failed (count against max_attempts) */
  uint32_t lost;     /* attempts lost with their agent (bounded separately) */
  uint32_t payload_len;
  uint8_t priority;
  uint8_t state; /* bt_pkg_state_t */
  uint8_t flags;
  int8_t progress; /* -1 none */
  char *key;       /* points into data, or NULL */
  uint8_t data[];  /* payload, then the key with its NUL */
};

/* --- agents ------------------------------------------------------------------ */
typedef struct {
  bt_core_agent_t *prev, *next;
} bt_ready_link_t;

struct bt_core_agent {
  uint64_t id;
  uint64_t vendor_id;
  char *name;
  bt_sym_t *caps;
  uint32_t n_caps;
  uint32_t slots;
  bt_agent_state_t state;
  uint64_t last_seen_ms;
  int64_t last_seen_at;
  uint64_t expires_ms; /* its assignments are lost at this time */
  bt_core_pkg_t **held; /* current assignments */
  uint32_t n_held, cap_held;
  bt_ready_link_t *links; /* one per cap, for capq ready lists */
  bool accepting;         /* the agent wants work (it polled; not draining) */
  bool suspect;           /* quiet when a sibling was lost: no new work until heard */
  bool ready;             /* in the ready lists */
  bool dirty;             /* in core->dirty_agents */
};

/* --- the core ------------------------------------------------------------------ */
typedef struct {
  char **strs;
  uint32_t n, cap;
  bt_strmap_t map;
} bt_strtab_t;

struct bt_core {
  bt_core_config_t cfg;
  bt_strtab_t strs;

  bt_core_vendor_t **vendors; /* id order */
  uint32_t n_vendors, cap_vendors;

  bt_core_agent_t **agents; /* id order */
  uint32_t n_agents, cap_agents;
  bt_idmap_t agent_by_id;

  bt_idmap_t pkg_by_id;
  bt_strmap_t pkg_by_key;
  bt_pheap_t delayed; /* not_before_at order */

  bt_core_capq_t *capqs; /* indexed by capability symbol */
  uint32_t n_capqs;

  bt_core_reqs_t **reqs_buckets;
  uint32_t reqs_nbuckets;

  bt_sym_t *dirty_caps;
  uint32_t n_dirty_caps, cap_dirty_caps;
  /* routing scratch (sched.c) */
  void *sched_buf;
  uint32_t sched_buf_cap;
  uint32_t sched_stamp;
  bt_core_agent_t **dirty_agents;
  uint32_t n_dirty_agents, cap_dirty_agents;

  /* attempts ended by a result, so the same result resent after a lost reply
   * is acked again instead of refused as stale (idempotent agent messages) */
  struct {
    uint64_t package_id;
    uint64_t agent_id;
    uint32_t attempt;
  } recent[1024];
  uint32_t recent_next;

  bool leases_held; /* bt_core_hold_leases */
  bool routing_submit; /* inside bt_core_submit's routing: new packages may be placed */
  uint64_t next_vendor_id, next_agent_id, next_pkg_id;
  /* open_packages_floor.listed_through as committed (migrations/0011): every
   * open package at or below it is in open_packages */
  uint64_t listed_through;
  uint64_t open_by_state[BT_PKG__COUNT];
  uint64_t finishing[BT_PKG__COUNT]; /* of open_by_state: FINISHING (commit pending) */
  uint64_t finished[BT_PKG__COUNT];
  uint64_t rng;
};

/* Shared internals (bt_core__ prefix). */
bt_action_t *bt_core__push(bt_actions_t *out, bt_act_kind_t kind);
bt_core_vendor_t *bt_core__vendor(const bt_core_t *core, uint64_t id);
bt_core_agent_t *bt_core__agent(const bt_core_t *core, uint64_t id);
bt_core_capq_t *bt_core__capq(bt_core_t *core, bt_sym_t cap);
bool bt_core__vendor_has_cap(const bt_core_vendor_t *v, bt_sym_t cap);
bool bt_core__vendor_accepts(const bt_core_vendor_t *v);
bool bt_core__reqs_allow(const bt_core_t *core, const bt_core_reqs_t *r,
                         const bt_core_vendor_t *v);
bool bt_core__reqs_prefer(const bt_core_reqs_t *r, const bt_core_vendor_t *v);
bt_core_reqs_t *bt_core__reqs_intern(bt_core_t *core, const bt_pkg_spec_t *spec);
void bt_core__reqs_release(bt_core_t *core, bt_core_reqs_t *r);
void bt_core__reqs_free_all(bt_core_t *core);
bt_core_class_t *bt_core__class_get(bt_core_t *core, bt_sym_t cap,
                                    bt_core_reqs_t *reqs);
void bt_core__class_release(bt_core_t *core, bt_core_class_t *cls);
int bt_core__pkg_earlier(const bt_core_pkg_t *a, const bt_core_pkg_t *b);
uint32_t bt_core__vendor_cap_index(const bt_core_vendor_t *v, bt_sym_t cap);

/* Package placement. */
bt_core_pkg_t *bt_core__pkg_new(bt_core_t *core, const bt_pkg_spec_t *spec,
                                uint64_t id, int64_t submitted_at);
void bt_core__pkg_free(bt_core_t *core, bt_core_pkg_t *p);
void bt_core__pkg_set_state(bt_core_t *core, bt_core_pkg_t *p, bt_pkg_state_t s);
/* Moves p to its final state s with BT_PKGF_FINISHING set: the FINISH that
 * records it is not committed yet (bt_core_finish_persisted ends that). */
void bt_core__pkg_set_finishing(bt_core_t *core, bt_core_pkg_t *p, bt_pkg_state_t s);
void bt_core__enqueue(bt_core_t *core, bt_core_pkg_t *p, const bt_now_t *now);
void bt_core__dequeue(bt_core_t *core, bt_core_pkg_t *p);
void bt_core__remember_finish(bt_core_t *core, uint64_t id, uint32_t attempt,
                              uint64_t agent_id);
bool bt_core__recently_finished(const bt_core_t *core, uint64_t id, uint32_t attempt,
                                uint64_t agent_id);
/* Ends the current attempt of an assigned package without a result from the
 * agent (lost, revoked, handed back): emits FINISH (queued, or dead past the
 * bound on lost attempts) and, when the agent had the work, a HANDOFF (never
 * for an assignment not yet committed: it never left the broker). */
void bt_core__requeue_lost(bt_core_t *core, bt_core_pkg_t *p, bt_outcome_t outcome,
                           bt_handoff_reason_t reason, bool handoff, const bt_now_t *now,
                           bt_actions_t *out);

/* Agents and routing. */
void bt_core__agent_hold(bt_core_t *core, bt_core_agent_t *a, bt_core_pkg_t *p);
void bt_core__agent_release(bt_core_t *core, bt_core_agent_t *a, bt_core_pkg_t *p);
void bt_core__agent_update_ready(bt_core_t *core, bt_core_agent_t *a);
void bt_core__agent_lose(bt_core_t *core, bt_core_agent_t *a, bt_agent_state_t state,
                         const bt_now_t *now, bt_actions_t *out);
void bt_core__mark_cap(bt_core_t *core, bt_sym_t cap);
void bt_core__mark_agent(bt_core_t *core, bt_core_agent_t *a);
void bt_core__mark_vendor(bt_core_t *core, const bt_core_vendor_t *v);
void bt_core__sched(bt_core_t *core, const bt_now_t *now, bt_actions_t *out);
uint64_t bt_core__rand(bt_core_t *core);

/* Vendor health (health.c). */
void bt_core__health_init(bt_core_t *core, bt_core_vendor_t *v);
/* An attempt of v ended (completed or failed count; late = past its deadline). */
void bt_core__health_record(bt_core_t *core, bt_core_vendor_t *v, bt_outcome_t outcome,
                            bool late, const bt_now_t *now, bt_actions_t *out);
/* v lost a live agent / gained one. */
void bt_core__health_agent_down(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now,
                                bt_actions_t *out);
void bt_core__health_agent_up(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now,
                              bt_actions_t *out);
/* Probes due, degraded vendors recovering; returns the next time it matters. */
uint64_t bt_core__health_tick(bt_core_t *core, const bt_now_t *now, bt_actions_t *out);
void bt_core__health_loaded(bt_core_t *core, bt_core_vendor_t *v, const bt_now_t *now);
/* core->cfg was just replaced (old is what it was): windows, cooldowns, probe
 * limits and vendor states follow the new values (see bt_core_reconfigure). */
void bt_core__health_reconfigure(bt_core_t *core, const bt_core_config_t *old,
                                 const bt_now_t *now, bt_actions_t *out);
/* Tells p's agent to stop the handler of its attempt (CANCEL), when the agent
 * is connected and the assignment was sent. Returns whether it is connected. */
bool bt_core__stop_handler(bt_core_t *core, const bt_core_pkg_t *p, bt_actions_t *out);
/* Takes an attempt from its agent (CANCEL when the agent is connected),
 * records a handoff with the checkpoint and queues the package again. */
void bt_core__revoke(bt_core_t *core, bt_core_pkg_t *p, bt_handoff_reason_t reason,
                     const char *why, const bt_now_t *now, bt_actions_t *out);

#endif

/*
 * The broker's pure core: vendors, agents, open work packages and every decision
 * about them — whom to assign, when a lease expired, what a result means.
 *
 * The core does no I/O: no clock reads, no sockets, no SQL, no logging, no
 * randomness (jitter comes from a seed the shell passes in). Each entry point
 * takes the state, an event and the time, and appends actions to a bt_actions_t;
 * the shell (server/shell) carries the actions out — persist first, then send —
 * and feeds the outcome back (bt_core_*_persisted). Iteration is in id order so
 * one recorded event stream replays to the same decisions.
 *
 * Packages live here only while open (queued, assigned, running) or while their
 * final state is being committed; finished packages are read from the store.
 *
 * Ownership: every pointer argument is borrowed for the duration of the call;
 * the core copies what it keeps. Pointers returned by accessors are borrowed and
 * valid until the next call that changes the core.
 */
#ifndef BT_CORE_H
#define BT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bt_core bt_core_t;
typedef uint32_t bt_sym_t; /* an interned string (capability, region, cert); 0 = none */

/* The most entries a package's region, cert, prefer or avoid list may hold; the
 * edges reject longer lists before they reach the core. */
#define BT_CORE_MAX_LIST 32

/* --- enumerations shared with the edges -------------------------------- */

typedef enum {
  BT_PKG_QUEUED = 0,
  BT_PKG_ASSIGNED,
  BT_PKG_RUNNING,
  BT_PKG_COMPLETED,
  BT_PKG_DEAD,
  BT_PKG_CANCELLED,
  BT_PKG__COUNT
} bt_pkg_state_t;

typedef enum {
  BT_VENDOR_ACTIVE = 0,
  BT_VENDOR_DEGRADED,
  BT_VENDOR_FAILED,
  BT_VENDOR_DRAINING,
  BT_VENDOR_SUSPENDED,
  BT_VENDOR__COUNT
} bt_vendor_state_t;

typedef enum {
  BT_MODEL_ONSHORE = 0,
  BT_MODEL_NEARSHORE,
  BT_MODEL_OFFSHORE,
  BT_MODEL_CAPTIVE,
  BT_MODEL__COUNT
} bt_model_t;

/* How an attempt ended. */
typedef enum {
  BT_OUTCOME_COMPLETED = 0,
  BT_OUTCOME_FAILED,
  BT_OUTCOME_TRANSIENT,
  BT_OUTCOME_LOST,
  BT_OUTCOME_CANCELLED,
  BT_OUTCOME_HANDED_BACK,
  BT_OUTCOME_REVOKED,
  BT_OUTCOME__COUNT
} bt_outcome_t;

typedef enum {
  BT_AGENT_CONNECTED = 0, /* a live session */
  BT_AGENT_LOST,          /* silent past its lease, or not back after a restart */
  BT_AGENT_GONE,          /* said Bye */
} bt_agent_state_t;

/* Why a package moved away from a vendor (handoffs.reason). */
typedef enum {
  BT_HANDOFF_VENDOR_FAILED = 0,
  BT_HANDOFF_AGENT_LOST,
  BT_HANDOFF_LEASE_EXPIRED,
  BT_HANDOFF_DRAIN,
  BT_HANDOFF_SLA_RISK,
  BT_HANDOFF_ADMIN,
} bt_handoff_reason_t;

const char *bt_pkg_state_name(bt_pkg_state_t s);
int bt_pkg_state_parse(const char *s, bt_pkg_state_t *out); /* 0 or BT_EINVAL */
const char *bt_vendor_state_name(bt_vendor_state_t s);
int bt_vendor_state_parse(const char *s, bt_vendor_state_t *out);
const char *bt_model_name(bt_model_t m);
int bt_model_parse(const char *s, bt_model_t *out);
const char *bt_outcome_name(bt_outcome_t o);
const char *bt_agent_state_name(bt_agent_state_t s);
const char *bt_handoff_reason_name(bt_handoff_reason_t r);

/* --- time --------------------------------------------------------------- */

/* The shell reads both clocks once per event: monotonic for leases and timers,
 * wall-clock UTC for what is stored or compared with deadlines. */
typedef struct {
  uint64_t ms; /* monotonic milliseconds */
  int64_t at;  /* wall clock, ms since the epoch, UTC */
} bt_now_t;

/* --- configuration ------------------------------------------------------ */

typedef struct {
  uint32_t lease_ms;           /* an agent silent longer than this is lost */
  uint32_t restart_grace_ms;   /* after a restart, how long agents have to come back */
  uint32_t retry_base_ms;      /* backoff after a failed attempt: base * 2^(n-1) … */
  uint32_t retry_max_ms;       /* … capped here, with ±20% jitter */
  uint32_t default_max_attempts;
  uint64_t seed;               /* for backoff jitter */
  /* Routing score (see sched.c and the README): among the eligible vendors with
   * room, a package goes to the highest
   *   weight × (w_cost·cost + w_sla·sla + w_util·util + w_prefer·prefer + w_hours·hours)
   * with every term in [0, 1]. */
  double w_cost, w_sla, w_util, w_prefer, w_hours;
  double cost_ref;             /* cost term = cost_ref / (cost_ref + cost) */
  /* No lock-in: a vendor whose share of a capability's in-flight work would
   * exceed this is passed over while another eligible vendor has room. 1 = off. */
  double share_cap;
  /* Aging: a package ready this long goes before any other (oldest first), so
   * low priority work is never starved. 0 = off. */
  uint32_t aging_bound_ms;
  /* Route a new package while it is submitted, when an agent has room: its
   * ASSIGN comes out of bt_core_submit and its write must commit with the
   * package's insert (one transaction: nothing is sent before both are
   * committed). false (the default here; the broker's route_at_submit turns
   * it on): a package is routed once its insert is committed. */
  bool route_at_submit;
  /* Vendor health (health.c; the README's "Vendor health" says the same).
   * Over the last breaker_window_ms, once a vendor has at least
   * breaker_min_attempts ended attempts: a failed share ≥ breaker_threshold
   * trips the circuit breaker (the vendor fails, its work is handed off); a
   * failed or late share ≥ degrade_threshold makes it degraded (score ×
   * degraded_factor). A vendor failed by the breaker or by losing its last
   * agent is probed after breaker_cooldown_ms (doubling after each failed
   * probe, up to 8×) with probe_packages in flight; each success doubles that
   * limit until it reaches the capacity. */
  uint32_t breaker_window_ms;
  uint32_t breaker_min_attempts;
  double breaker_threshold;
  double degrade_threshold;
  uint32_t breaker_cooldown_ms;
  uint32_t probe_packages;
  double degraded_factor;
} bt_core_config_t;

/* Sensible defaults for every field. */
void bt_core_config_default(bt_core_config_t *cfg);

/* --- actions: what the shell must do ------------------------------------ */

typedef enum {
  /* Write the vendor row (new or changed). Then reply to token. */
  BT_ACT_PERSIST_VENDOR,
  /* Write the vendor's state and state_reason (as they are now). code = the
   * new bt_vendor_state_t, attempt = the in-flight limit then. */
  BT_ACT_VENDOR_STATE,
  /* Rewrite an open package's admin-changeable columns as they are now: state
   * queued, max_attempts, not-before, only_vendor (retry, revive, reassign). */
  BT_ACT_PACKAGE_UPDATE,
  /* Upsert the agent row (hello). */
  BT_ACT_PERSIST_AGENT,
  /* Insert a new package (consecutive ones with the same token form one batch,
   * committed together). Then bt_core_packages_persisted(). */
  BT_ACT_PERSIST_PACKAGE,
  /* Write the assignment (attempt row, package state). Then send it to the
   * agent and call bt_core_assign_persisted(). with_insert: made in the
   * package's submit (route_at_submit), written with its insert. */
  BT_ACT_ASSIGN,
  /* The agent has the assignment: persist state running. */
  BT_ACT_START,
  /* Persist progress and/or checkpoint (data/len, borrowed) of the current attempt. */
  BT_ACT_PROGRESS,
  /* End an attempt: outcome, the package's next state (queued with retry_at,
   * completed, dead, cancelled); data/len is the result for a completion, text an
   * error (both borrowed). Then bt_core_finish_persisted(). */
  BT_ACT_FINISH,
  /* Record a handoff row: from vendor, reason, checkpoint (data/len). */
  BT_ACT_HANDOFF,
  /* Answer an agent's result after everything before it is committed:
   * code 0 = acknowledged, BT_ESTALE = refused as stale. */
  BT_ACT_ACK_RESULT,
  /* Tell the agent to stop an attempt and drop its result. */
  BT_ACT_CANCEL,
  /* The agent's session is over (lost): forget it so its next message gets
   * "unknown session" and it starts again with Hello. */
  BT_ACT_END_SESSION,
  /* Append an audit row: text = action, subject/detail in text2/text3 (text4:
   * more detail, e.g. the capability or the vendor holding an attempt). */
  BT_ACT_AUDIT,
  /* Write the vendor's new public key (data/len: 32 bytes, borrowed). Then
   * call bt_core_vendor_key_persisted() with the outcome; token echoed. */
  BT_ACT_VENDOR_KEY,
} bt_act_kind_t;

typedef struct {
  bt_act_kind_t kind;
  uint64_t package_id;
  uint32_t attempt;
  uint64_t agent_id;
  uint64_t vendor_id;
  uint64_t token;       /* the caller's correlation id, echoed */
  int code;             /* ACK_RESULT: 0 or BT_ESTALE */
  bt_outcome_t outcome; /* FINISH */
  bt_pkg_state_t state; /* FINISH: the package's next state */
  int32_t exit_code;    /* FINISH */
  int64_t at;           /* when it happened (wall clock) */
  int64_t retry_at;     /* FINISH to queued: not before this */
  int progress;         /* PROGRESS: 0-100 or -1 */
  bt_handoff_reason_t reason; /* HANDOFF */
  const void *data;     /* borrowed: valid until the entry point returns */
  size_t len;
  const char *text;     /* borrowed, like data */
  const char *text2;
  const char *text3;
  const char *text4;
  bool by_admin;        /* AUDIT: the actor is the admin, not the broker */
  bool with_insert;     /* ASSIGN: rides with its package's insert (bt_core_submit) */
} bt_action_t;

typedef struct {
  bt_action_t *v;
  size_t n, cap;
} bt_actions_t;

void bt_actions_init(bt_actions_t *a);
void bt_actions_clear(bt_actions_t *a); /* forget the actions, keep the buffer */
void bt_actions_close(bt_actions_t *a);

/* --- reconfiguration ----------------------------------------------------- */

/* New tunables while the broker runs (`batonctl config set`, SIGHUP).
 * Taken from cfg: retry_base_ms, retry_max_ms, default_max_attempts, the
 * routing weights, cost_ref, share_cap, aging_bound_ms, route_at_submit (the
 * submits from now on) and the vendor health fields. Kept from start (they
 * need a restart): lease_ms, restart_grace_ms, seed. What each change does to
 * state already there:
 *   - routing fields: the next routing decision uses them (every capability
 *     is looked at again now);
 *   - retry and max attempts: failures and packages from now on (a package
 *     keeps the max_attempts it was submitted with; a waiting retry keeps its
 *     time);
 *   - breaker_window_ms: each vendor's window is rebucketed, so the attempts
 *     it counted stay counted while they are inside the new window;
 *   - thresholds and min attempts: active and degraded vendors are judged
 *     again now, which may degrade, restore or fail one (with handoffs);
 *   - breaker_cooldown_ms: a failed vendor's pending probe moves by the
 *     difference (its doubling after failed probes is kept);
 *   - probe_packages: a probing vendor's limit rises to it (never falls: work
 *     already granted is not taken back); at its capacity the ramp is over.
 * Emits VENDOR_STATE, AUDIT, FINISH, HANDOFF, CANCEL and ASSIGN as those
 * consequences need. Returns 0, or BT_EINVAL (a field out of its range:
 * nothing changed). */
int bt_core_reconfigure(bt_core_t *core, const bt_core_config_t *cfg, const bt_now_t *now,
                        bt_actions_t *out);

/* --- read-only views ------------------------------------------------------ */

typedef struct bt_core_vendor {
  uint64_t id;
  char *name;
  char *region;
  bt_sym_t region_sym;
  bt_model_t model;
  bt_sym_t *caps;
  uint32_t n_caps;
  bt_sym_t *certs;
  uint32_t n_certs;
  uint32_t capacity;
  double cost;
  double weight;
  char *hours; /* NULL when not set */
  bt_vendor_state_t state;
  uint8_t auth_key[32];
  int64_t created_at;
  bt_sym_t name_sym;       /* for packages' prefer and avoid lists */
  bool in_hours;           /* inside its working hours now (the shell keeps this) */
  uint32_t *cap_in_flight; /* per capability (parallel to caps): for the share cap */
  /* live figures */
  uint32_t in_flight;
  uint32_t agents_connected;
  uint64_t completed;
  uint64_t failed;
  uint64_t on_time;       /* completed with a deadline, on time */
  uint64_t with_deadline; /* completed with a deadline */
  /* health (health.c) */
  char state_reason[128];   /* why it is in its state ("" when active) */
  uint32_t limit;           /* in flight allowed now: capacity, or less while ramping */
  bool probing;             /* ramping up after a failure (limit < capacity) */
  uint64_t probe_at_ms;     /* failed: monotonic time of the next probe, 0 = never
                               (failed by an admin: only `vendor resume`) */
  uint32_t cooldown_ms;     /* the wait before the next probe */
  uint32_t recent_ok, recent_failed, recent_late; /* attempts in the window */
  struct bt_health_win *win; /* the window's buckets (health.c) */
  /* scheduler scratch, meaningless outside a routing pass */
  uint32_t sched_stamp;
  uint32_t sched_slot;
} bt_core_vendor_t;

typedef struct bt_core_agent bt_core_agent_t;
typedef struct bt_core_pkg bt_core_pkg_t;

/* --- lifecycle ------------------------------------------------------------ */

/* Returns a new core (owned; free with bt_core_free). Aborts on out of memory. */
bt_core_t *bt_core_new(const bt_core_config_t *cfg);
void bt_core_free(bt_core_t *core);

/* Interns a string; returns its symbol (never 0 for a non-empty string). */
bt_sym_t bt_core_intern(bt_core_t *core, const char *s);
/* The string of a symbol ("" for 0). */
const char *bt_core_sym(const bt_core_t *core, bt_sym_t sym);

/* --- vendors -------------------------------------------------------------- */

typedef struct {
  const char *name;
  const char *region;
  bt_model_t model;
  const char *const *caps;
  size_t n_caps;
  const char *const *certs;
  size_t n_certs;
  uint32_t capacity;
  double cost;
  double weight;
  const char *hours; /* may be NULL */
  uint8_t auth_key[32];
} bt_vendor_spec_t;

/* A vendor registered by an admin: assigns its id, emits PERSIST_VENDOR (token)
 * and an AUDIT row. Returns 0, or BT_ECONFLICT when the name is taken. */
int bt_core_vendor_add(bt_core_t *core, const bt_vendor_spec_t *spec,
                       uint64_t token, const bt_now_t *now, uint64_t *out_id,
                       bt_actions_t *out);

/* Whether the vendor is inside its working hours now. The shell evaluates the
 * hours in the vendor's time zone (a clock and tz data: not the core's job) and
 * says so when it changes; a vendor without hours is always inside. Soft: it
 * only moves the score. */
void bt_core_vendor_set_in_hours(bt_core_t *core, uint64_t vendor_id, bool in_hours);

/* The routing score of a vendor for a package, term by term (for tests, logs
 * and the README's worked example). Returns 0 or BT_ENOTFOUND. */
typedef struct {
  double cost, sla, util, prefer, hours; /* each in [0, 1] */
  double weight;                         /* the vendor's weight */
  double total;                          /* weight × the weighted sum (× degraded_factor
                                            when the vendor is degraded) */
} bt_score_t;
int bt_core_score(const bt_core_t *core, uint64_t package_id, uint64_t vendor_id,
                  bt_score_t *out);

/* Admin state changes (`batonctl vendor drain|suspend|resume|fail`):
 *   drain   → draining: no new work; what runs may finish.
 *   suspend → suspended: no new work, no new agent sessions; what runs is
 *             revoked and handed off (reason admin).
 *   fail    → failed: no new work; what runs is revoked and handed off now
 *             (reason vendor-failed). Not probed: only resume brings it back.
 *   resume  → active at full capacity, from any state.
 * Emits VENDOR_STATE, AUDIT and, for fail/suspend, FINISH (revoked), HANDOFF
 * and CANCEL per attempt; the shell answers the admin once they are committed.
 * Returns 0, or BT_ENOTFOUND. */
typedef enum {
  BT_VENDOR_OP_DRAIN = 0,
  BT_VENDOR_OP_SUSPEND,
  BT_VENDOR_OP_RESUME,
  BT_VENDOR_OP_FAIL,
} bt_vendor_op_t;
int bt_core_vendor_op(bt_core_t *core, uint64_t vendor_id, bt_vendor_op_t op,
                      const bt_now_t *now, bt_actions_t *out);

/* The vendor's row could not be written: it is taken out again (it has no
 * agents or work yet). */
void bt_core_vendor_persist_failed(bt_core_t *core, uint64_t vendor_id);

/* `batonctl vendor rotate-secret V`, in two steps so the old secret keeps
 * working until the new key is committed and a failed write changes nothing:
 *   rotate_key: emits VENDOR_KEY (key, token) and nothing else. Returns 0 or
 *     BT_ENOTFOUND.
 *   key_persisted: the write committed. The vendor's key becomes key, so the
 *     old secret authenticates no one from now on; every connected agent of
 *     the vendor gets END_SESSION (its next message is refused and it must
 *     authenticate again) and no new work until it has. Its running work is
 *     not revoked: an agent that comes back with the new secret reports it in
 *     its hello and keeps it; one that cannot (old secret) is lost when its
 *     lease runs out and its work is handed off as for any lost agent. Emits
 *     an AUDIT vendor.rotate-secret (never the key) and one agent.signed_out
 *     per session ended (*ended: how many). Returns 0 or BT_ENOTFOUND. */
int bt_core_vendor_rotate_key(bt_core_t *core, uint64_t vendor_id,
                              const uint8_t key[32], uint64_t token,
                              const bt_now_t *now, bt_actions_t *out);
int bt_core_vendor_key_persisted(bt_core_t *core, uint64_t vendor_id,
                                 const uint8_t key[32], const bt_now_t *now,
                                 uint32_t *ended, bt_actions_t *out);

/* Lookups (borrowed results; NULL when absent). ref = decimal id or name. */
const bt_core_vendor_t *bt_core_vendor(const bt_core_t *core, uint64_t id);
const bt_core_vendor_t *bt_core_vendor_by_name(const bt_core_t *core,
                                               const char *name);
const bt_core_vendor_t *bt_core_vendor_by_ref(const bt_core_t *core,
                                              const char *ref);
/* Vendors in id order: index 0..count-1. */
size_t bt_core_vendor_count(const bt_core_t *core);
const bt_core_vendor_t *bt_core_vendor_at(const bt_core_t *core, size_t i);

/* --- packages ------------------------------------------------------------- */

typedef struct {
  const char *capability;
  const void *payload;
  size_t payload_len;
  uint32_t priority;      /* 0-9 */
  int64_t deadline_at;    /* 0 = none */
  int64_t not_before_at;  /* 0 = none */
  const char *const *regions;
  size_t n_regions;
  const char *const *certs;
  size_t n_certs;
  double max_cost;        /* < 0 = none */
  const char *const *prefer;
  size_t n_prefer;
  const char *const *avoid;
  size_t n_avoid;
  uint32_t max_attempts;  /* 0 = the configured default */
  const char *key;        /* NULL = none */
  const char *only_vendor; /* NULL = any; set by `package reassign --to V` */
} bt_pkg_spec_t;

typedef struct {
  uint64_t id;
  bool duplicate;       /* the key named an earlier open package */
  bool pending;         /* not committed yet: reply after its PERSIST commits */
  bt_pkg_state_t state;
} bt_submit_result_t;

/* Submits n packages (one request: committed together). New packages get ids
 * and PERSIST_PACKAGE actions with token. They are routed once persisted, or
 * with cfg.route_at_submit at once where an agent has room: such an ASSIGN
 * (with_insert) must be written in the same transaction as its insert, and its outcome is the insert's
 * (bt_core_package_persisted, then bt_core_assign_persisted if it still
 * holds). Until then such a package is placed nowhere else.
 * A key already known for an open package returns that package instead.
 * results must hold n entries. Returns 0. */
int bt_core_submit(bt_core_t *core, const bt_pkg_spec_t *specs, size_t n,
                   uint64_t token, const bt_now_t *now,
                   bt_submit_result_t *results, bt_actions_t *out);

/* Outcome of a PERSIST_PACKAGE write. existing_id != 0 when the database held
 * the key already (a package finished earlier): the new package is dropped and
 * the caller answers with existing_id. ok = false: the write failed, the package
 * is dropped. A dropped package's assignment made with its submit is undone
 * (its agent's slot is free again). Routes what became routable. */
void bt_core_package_persisted(bt_core_t *core, uint64_t package_id, bool ok,
                               uint64_t existing_id, const bt_now_t *now,
                               bt_actions_t *out);

/* Lookup of an open package (NULL when not open in memory). */
const bt_core_pkg_t *bt_core_package(const bt_core_t *core, uint64_t id);
/* True while the package's insert is not committed (bt_core_submit). */
bool bt_core_package_unpersisted(const bt_core_t *core, uint64_t id);

/* The list of open packages that a restart reads (migrations/0011). A
 * package is listed only once it has been open a while, by rounds: a round
 * walks the ids above the list's floor in order and stops at the first
 * package whose insert or final end is not committed yet, so the writes about
 * one package stay in order on its connection (listed after its insert,
 * before anything that ends it).
 *
 * bt_core_open_unlisted walks at most max_walk ids from listed_through + 1
 * and fills ids (room for max_walk) with those of the stretch still open in
 * memory. Returns how many; *through is the stretch's last id (listed_through
 * when it walked none). Those ids listed and the floor moved to *through in
 * one committed transaction (or the listings of every lane committed first,
 * then the floor), the shell calls bt_core_open_listed(through). */
size_t bt_core_open_unlisted(const bt_core_t *core, size_t max_walk, uint64_t *ids,
                             uint64_t *through);
void bt_core_open_listed(bt_core_t *core, uint64_t through);
uint64_t bt_core_listed_through(const bt_core_t *core);
/* Ids handed out above the floor: what a restart would read besides the list. */
uint64_t bt_core_unlisted_ids(const bt_core_t *core);

/* A read-only view of an open package for the edges. */
typedef struct {
  uint64_t id;
  const char *capability;
  bt_pkg_state_t state;
  uint32_t priority;
  uint32_t attempt;
  uint32_t max_attempts;
  int64_t deadline_at;
  int64_t not_before_at;
  int64_t submitted_at;
  uint64_t vendor_id;
  uint64_t agent_id;
  int progress; /* -1 none */
  const uint8_t *payload;
  size_t payload_len;
  const uint8_t *checkpoint;
  size_t checkpoint_len;
  const char *key; /* NULL none */
  const char *only_vendor; /* NULL = any (pinned by package reassign --to) */
  /* requirements, for persisting; the lists point into strs below */
  const char *const *regions;
  size_t n_regions;
  const char *const *certs;
  size_t n_certs;
  double max_cost; /* < 0 none */
  const char *const *prefer;
  size_t n_prefer;
  const char *const *avoid;
  size_t n_avoid;
  const char *strs[4 * BT_CORE_MAX_LIST]; /* storage for the lists */
} bt_pkg_view_t;

/* Fills view for an open package. Returns 0 or BT_ENOTFOUND. */
int bt_core_package_view(const bt_core_t *core, uint64_t id, bt_pkg_view_t *view);
/* The same for a package already looked up (bt_core_package, not NULL): an edge
 * that reads many fields of many packages looks each one up once. */
void bt_core_pkg_view(const bt_core_t *core, const bt_core_pkg_t *p, bt_pkg_view_t *view);

typedef struct bt_pkg_row bt_pkg_row_t; /* defined under recovery below */

/* Admin operations on one package (`batonctl package cancel|retry|reassign`).
 * Each writes what it changed (FINISH, PACKAGE_UPDATE, HANDOFF, AUDIT) and
 * says the package's state now in *state; the shell answers the admin once
 * those writes are committed (a store barrier).
 *
 * cancel: a queued package is cancelled; an assigned or running one too, and
 *   its agent is told to stop the handler (CANCEL; its result will be stale).
 * retry: a queued package waiting out a retry backoff or its not-before is
 *   released now. Dead and cancelled packages are not in memory: the shell
 *   reads the row and calls bt_core_package_revive.
 * reassign: an assigned or running package's attempt is revoked (CANCEL),
 *   recorded with a handoff (reason admin, carrying its checkpoint) and the
 *   package queued again; to_vendor != 0 pins it to that vendor (a queued
 *   package may be pinned too). Hard constraints still hold.
 * Returns 0; BT_ENOTFOUND (no open package, or no such vendor); BT_ESTATE (it
 * is finishing or not committed yet; retry: it runs; reassign without --to:
 * it is queued); BT_EINVAL (reassign: the package's requirements forbid
 * to_vendor, or it does not offer the capability). */
int bt_core_package_cancel(bt_core_t *core, uint64_t package_id, const bt_now_t *now,
                           bt_pkg_state_t *state, bt_actions_t *out);
int bt_core_package_retry(bt_core_t *core, uint64_t package_id, const bt_now_t *now,
                          bt_pkg_state_t *state, bt_actions_t *out);
int bt_core_package_reassign(bt_core_t *core, uint64_t package_id, uint64_t to_vendor,
                             const bt_now_t *now, bt_pkg_state_t *state,
                             bt_actions_t *out);
/* A dead or cancelled package read from the store is queued again with
 * max_attempts more attempts than it has used. Emits PACKAGE_UPDATE and AUDIT.
 * Returns 0, BT_ECONFLICT when it is open already, or BT_EINVAL for a row that
 * is not dead or cancelled. */
int bt_core_package_revive(bt_core_t *core, const bt_pkg_row_t *row, const bt_now_t *now,
                           bt_actions_t *out);

/* Why a queued package is not running, written into buf ("" when it is simply
 * behind others or not queued). Returns buf. */
char *bt_core_waiting_reason(const bt_core_t *core, uint64_t id, const bt_now_t *now,
                             char *buf, size_t len);

/* --- agents --------------------------------------------------------------- */

typedef struct {
  uint64_t package_id;
  uint32_t attempt;
} bt_held_t;

typedef struct {
  uint64_t vendor_id;
  const char *name;
  const char *const *caps;
  size_t n_caps;
  uint32_t slots;
  const bt_held_t *held; /* attempts the agent still runs */
  size_t n_held;
} bt_agent_hello_t;

/* An authenticated agent starts a session. Returns its stable id in *agent_id
 * (new or known by vendor + name), emits PERSIST_AGENT, reconciles held work:
 * held attempts that are current continue; its other dispatched attempts are
 * lost and handed off; held attempts that are not current get CANCEL (audited
 * held.stale, or held.foreign when another vendor holds that attempt). Returns
 * 0, BT_ENOTFOUND (vendor), BT_ESTATE (vendor suspended) or BT_EINVAL (a
 * capability the vendor is not registered for: nothing changes but one AUDIT
 * agent.capability_refused per such capability, text2 the agent's name, text3
 * the vendor's, text4 the capability). */
int bt_core_agent_hello(bt_core_t *core, const bt_agent_hello_t *hello,
                        const bt_now_t *now, uint64_t *agent_id, bt_actions_t *out);

/* Any message from the agent: keeps it alive. */
void bt_core_agent_seen(bt_core_t *core, uint64_t agent_id, const bt_now_t *now);

/* The agent says how many slots it has free (a poll, results or a heartbeat).
 * More than 0: it takes work and is routed to; 0: it takes no new work (it is
 * busy or draining) until it says otherwise. */
void bt_core_agent_ready(bt_core_t *core, uint64_t agent_id, uint32_t free_slots,
                         const bt_now_t *now, bt_actions_t *out);

/* The agent acknowledged an assignment (it runs it): emits START. A start of
 * an attempt another vendor holds is audited start.foreign. */
void bt_core_agent_started(bt_core_t *core, uint64_t agent_id, uint64_t package_id,
                           uint32_t attempt, const bt_now_t *now, bt_actions_t *out);

/* Progress and/or a checkpoint from a handler. Stale reports are ignored.
 * percent -1 = none; checkpoint NULL = none. Returns 0, BT_ESTALE (audited
 * progress.stale) or BT_EAUTH (the attempt is another vendor's: audited
 * progress.foreign). */
int bt_core_agent_progress(bt_core_t *core, uint64_t agent_id, uint64_t package_id,
                           uint32_t attempt, int percent, const void *checkpoint,
                           size_t checkpoint_len, const bt_now_t *now,
                           bt_actions_t *out);

typedef struct {
  uint64_t package_id;
  uint32_t attempt;
  bt_outcome_t outcome; /* COMPLETED, FAILED, TRANSIENT, CANCELLED, HANDED_BACK */
  const void *output;
  size_t output_len;
  int32_t exit_code;
  const char *error; /* may be NULL */
} bt_result_t;

/* A finished attempt reported by an agent. Only the agent holding the current
 * attempt may finish it (fencing); anything else is answered stale. A result the
 * same agent already reported for that attempt is acknowledged again and
 * changes nothing. Emits FINISH and/or ACK_RESULT (token echoed); an
 * ACK_RESULT that follows a FINISH of the same attempt must wait for that
 * FINISH's commit. Returns 0, BT_ESTALE (audited result.stale) or BT_EAUTH:
 * the current attempt (or a later one) of a package another vendor holds —
 * answered stale too, audited result.foreign with the package as subject,
 * text2/text3 the reporting agent and its vendor, text4 the holder's vendor. */
int bt_core_agent_result(bt_core_t *core, uint64_t agent_id, const bt_result_t *r,
                         uint64_t token, const bt_now_t *now, bt_actions_t *out);

/* The agent said Bye: its session ends now; what it still held is handed off. */
void bt_core_agent_bye(bt_core_t *core, uint64_t agent_id, const bt_now_t *now,
                       bt_actions_t *out);

/* Read-only agent view. */
typedef struct {
  uint64_t id;
  uint64_t vendor_id;
  const char *name;
  const bt_sym_t *caps;
  uint32_t n_caps;
  uint32_t slots;
  uint32_t busy;
  int64_t last_seen_at; /* wall clock of the last message */
  bt_agent_state_t state;
  bool suspect; /* quiet when a sibling was lost: no new work until heard from */
} bt_agent_view_t;

size_t bt_core_agent_count(const bt_core_t *core);
/* Agents in id order. Returns 0 or BT_ENOTFOUND past the end. */
int bt_core_agent_at(const bt_core_t *core, size_t i, bt_agent_view_t *view);
int bt_core_agent_view(const bt_core_t *core, uint64_t agent_id, bt_agent_view_t *view);

/* --- persistence feedback ------------------------------------------------- */

/* The ASSIGN write committed (ok) or failed for good (!ok: the package goes back
 * to the queue). */
void bt_core_assign_persisted(bt_core_t *core, uint64_t package_id, uint32_t attempt,
                              bool ok, const bt_now_t *now, bt_actions_t *out);

/* The FINISH write committed (ok): a finished package leaves memory. Or it
 * failed for good (!ok): the package was never recorded finished, so it goes
 * back to the queue and runs again (at least once, never lost). */
void bt_core_finish_persisted(bt_core_t *core, uint64_t package_id, uint32_t attempt,
                              bool ok, const bt_now_t *now, bt_actions_t *out);

/* --- time ----------------------------------------------------------------- */

/* The store cannot commit (down, or a transaction stuck): agents waiting for
 * the broker's answers cannot report, and nothing handed off could be
 * dispatched anyway. While held, leases do not expire; on release every agent
 * gets a full lease from now. */
void bt_core_hold_leases(bt_core_t *core, bool hold, const bt_now_t *now);

/* Expires leases, releases delayed packages, ends the restart grace. Returns the
 * monotonic time of the next deadline (UINT64_MAX when none). */
uint64_t bt_core_tick(bt_core_t *core, const bt_now_t *now, bt_actions_t *out);

/* --- recovery (loading state at start; no actions) ------------------------ */

typedef struct {
  bt_vendor_spec_t spec;
  uint64_t id;
  bt_vendor_state_t state;
  const char *state_reason; /* may be NULL */
  int64_t created_at;
  uint64_t completed, failed, on_time, with_deadline;
} bt_vendor_row_t;

typedef struct {
  uint64_t id;
  uint64_t vendor_id;
  const char *name;
  const char *const *caps;
  size_t n_caps;
  uint32_t slots;
  int64_t last_seen_at;
} bt_agent_row_t;

struct bt_pkg_row {
  bt_pkg_spec_t spec;
  uint64_t id;
  bt_pkg_state_t state; /* load: queued, assigned or running; revive: dead or cancelled */
  uint32_t attempt;
  uint64_t vendor_id;   /* assigned/running: the current attempt's */
  uint64_t agent_id;
  uint32_t failures;    /* earlier attempts that failed */
  uint32_t lost;        /* earlier attempts lost with their agent */
  int progress;
  const void *checkpoint;
  size_t checkpoint_len;
  int64_t submitted_at;
};

/* Loads must come in this order: vendors, agents, packages, then
 * bt_core_load_done(). Returns 0 or BT_EINVAL (a reference to an unknown
 * vendor/agent). */
int bt_core_load_vendor(bt_core_t *core, const bt_vendor_row_t *row);
int bt_core_load_agent(bt_core_t *core, const bt_agent_row_t *row);
int bt_core_load_package(bt_core_t *core, const bt_pkg_row_t *row);
/* Raises the next ids above the largest ids in the database (finished packages
 * and old agents are not loaded but their ids stay taken). */
void bt_core_load_max_ids(bt_core_t *core, uint64_t vendor_id, uint64_t agent_id,
                          uint64_t package_id);
/* The floor of the open-packages list as stored. New package ids start above
 * it too: it may name ids whose inserts never committed, and a package given
 * such an id would be open and below the floor, unlisted. */
void bt_core_load_listed_through(bt_core_t *core, uint64_t listed_through);
/* Sets the next ids above everything loaded and starts the restart grace:
 * assignments of agents that are not back by then are handed off. */
void bt_core_load_done(bt_core_t *core, const bt_now_t *now);

/* --- figures ---------------------------------------------------------------- */

typedef struct {
  uint64_t by_state[BT_PKG__COUNT]; /* open states live; finished since start + loaded;
                                       a final state counts once committed */
  uint64_t finishing;               /* final state decided, its commit pending: in
                                       none of by_state (wait --all still waits) */
  uint64_t waiting;                 /* routable, but no vendor may take them now
                                       (held by --not-before or a retry backoff
                                       is not waiting: it is on schedule) */
  uint32_t vendors_by_state[BT_VENDOR__COUNT];
  uint32_t agents_connected;
} bt_core_stats_t;

/* Fills st. finished counts start from bt_core_set_finished_counts(). */
void bt_core_stats(const bt_core_t *core, const bt_now_t *now, bt_core_stats_t *st);
void bt_core_set_finished_counts(bt_core_t *core, uint64_t completed, uint64_t dead,
                                 uint64_t cancelled);

#endif

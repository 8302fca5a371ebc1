/*
 * The store: Baton's only way into PostgreSQL and the only place SQL lives.
 *
 * Write path. One non-blocking libpq connection in pipeline mode, driven by the
 * loop (PQsocket watched with uv_poll). Every write or read is queued as an
 * operation; once per loop turn (uv_check) the queued operations go out as one
 * segment ending in one PQpipelineSync, so everything in a segment is a single
 * transaction and durability costs one commit per batch, not per row (group
 * commit). Callbacks fire only when the segment's sync returns clean: a write's
 * callback means "committed". Operations complete in the order they were queued.
 *
 * Failures. A statement error aborts its segment; its operations are replayed
 * one per segment so only the bad one fails. A lost connection puts the
 * in-flight operations back at the head of the queue and reconnects with
 * backoff; writes are idempotent (ids chosen by the broker, ON CONFLICT, guarded
 * updates), so replaying a segment whose outcome is unknown is safe. While the
 * connection is down after having been up, "fail fast" operations (reads and
 * client-facing inserts that were never sent) fail at once with BT_EDBDOWN;
 * everything else waits and goes out when the database is back.
 *
 * Startup helpers (migrations, loading state) are blocking and run before the
 * loop starts.
 */
#ifndef BT_STORE_H
#define BT_STORE_H

#include "core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct bt_store bt_store_t;

typedef struct {
  uint32_t pipeline_depth;  /* segments in flight at once (1 = wait for each commit) */
  /* With a segment in flight, another is sent only once this many operations
   * wait (fewer wait for the commit, batching with what comes meanwhile);
   * 0: whenever the pipeline has room. Default 64. */
  uint32_t overlap_min_ops;
  uint32_t max_segment_ops; /* operations per segment */
  uint32_t reconnect_max_ms;
  uint32_t op_timeout_ms;   /* a segment unanswered this long: the connection is dropped */
  /* Optional (NULL by default): called on the loop each time a segment's sync
   * result arrives, with the seconds since the segment was sent (the
   * commit-latency metric). The clock is in milliseconds, so a commit faster
   * than that reads as 0 or 0.001. Not called for the segment that prepares
   * statements, nor for segments lost with the connection. Borrows commit_arg. */
  void (*on_commit)(void *commit_arg, double seconds);
  void *commit_arg;
  /* Broker HA: the leader epoch every transaction is fenced with (0 = none).
   * When a transaction finds another epoch in broker_lease, nothing more is
   * sent (what waits is never acknowledged; a close fails it with
   * BT_ESHUTDOWN) and on_fenced is called, once, on the loop. */
  int64_t epoch;
  void (*on_fenced)(void *fenced_arg);
  void *fenced_arg;
} bt_store_opts_t;

void bt_store_opts_default(bt_store_opts_t *o);

/* Called after the store has delivered a batch of callbacks (one pass over the
 * socket): the shell sends the replies those callbacks prepared. */
typedef void (*bt_store_flush_cb)(void *arg);

/* Creates the store and starts connecting (asynchronously). Returns 0 or a
 * negative code. The store is owned; free it with bt_store_close. */
int bt_store_new(uv_loop_t *loop, const char *dsn, const bt_store_opts_t *opts,
                 bt_store_flush_cb on_flush, void *flush_arg, bt_store_t **out);

/* Stops the store: queued operations are sent, in-flight ones awaited, then the
 * connection is closed. on_closed fires from the loop once every handle is
 * closed; after it the store is freed. */
void bt_store_close(bt_store_t *st, void (*on_closed)(void *arg), void *arg);

/* True while the connection is established. */
bool bt_store_is_up(const bt_store_t *st);
/* True when the connection was up and is lost (not merely still connecting at
 * start): client-facing writes should be refused with "store unavailable". */
bool bt_store_is_down(const bt_store_t *st);
/* How long the store has been unable to commit: since the connection was lost,
 * or how long the oldest transaction in flight has waited; 0 when all is well.
 * (Monotonic milliseconds.) */
uint64_t bt_store_stalled_ms(const bt_store_t *st, uint64_t now_ms);
/* Operations queued or in flight. */
size_t bt_store_backlog(const bt_store_t *st);

/* Completion of a write or barrier: status 0 = committed, else a negative code
 * (BT_EDBDOWN, BT_EDB, …). */
typedef void (*bt_store_cb)(void *arg, int status);

/* --- writes (each copies what it needs before returning) ------------------- */

void bt_store_put_vendor(bt_store_t *st, const bt_core_t *core,
                         const bt_core_vendor_t *v, int64_t at, bool fail_fast,
                         bt_store_cb cb, void *arg);
void bt_store_put_agent(bt_store_t *st, const bt_core_t *core, uint64_t agent_id,
                        const char *software, int64_t at, bt_store_cb cb, void *arg);

/* Outcome of one inserted package. */
typedef struct {
  uint64_t id;          /* the id the broker gave it */
  uint64_t existing_id; /* != 0: the key belonged to this earlier package instead */
  const char *existing_state;
} bt_store_inserted_t;
typedef void (*bt_store_insert_cb)(void *arg, int status,
                                   const bt_store_inserted_t *rows, size_t n);

/* Inserts open packages (ids from the core) in one statement: all or none.
 * Call it in the loop turn of their submit: a package the core assigned there
 * (route_at_submit) is written with its attempt, which commits with it. */
void bt_store_insert_packages(bt_store_t *st, const bt_core_t *core,
                              const uint64_t *ids, size_t n, bt_store_insert_cb cb,
                              void *arg);

/* The persistence of core actions (see core.h for each kind's meaning). */
void bt_store_assign(bt_store_t *st, const bt_action_t *a, bt_store_cb cb, void *arg);
void bt_store_start(bt_store_t *st, const bt_action_t *a);
void bt_store_progress(bt_store_t *st, const bt_action_t *a);
/* FINISH, with its audit row naming the attempt's vendor and agent (borrowed;
 * the broker has them in memory, so the statement need not look them up). */
void bt_store_finish(bt_store_t *st, const bt_action_t *a, const char *vendor,
                     const char *agent, bt_store_cb cb, void *arg);
void bt_store_handoff(bt_store_t *st, const bt_action_t *a);
/* VENDOR_STATE: the vendor's state and state_reason as they are now. */
void bt_store_vendor_state(bt_store_t *st, const bt_core_vendor_t *v, int64_t at);
/* VENDOR_KEY: the vendor's new public key (key copied). Fails fast with
 * BT_EDBDOWN while the store is down; cb: committed or not. */
void bt_store_vendor_key(bt_store_t *st, uint64_t vendor_id, const uint8_t key[32],
                         int64_t at, bt_store_cb cb, void *arg);
/* PACKAGE_UPDATE: an open package's admin-changeable columns as in v. */
void bt_store_package_update(bt_store_t *st, const bt_pkg_view_t *v, int64_t at);
/* OPEN_LIST (migrations/0011): lists the n packages (ids copied) as open
 * and moves the floor of the list up to through (0: it stays). Send each
 * package's listing on its own connection, after its insert committed and
 * before anything that may end it. cb: committed or not. */
void bt_store_list_open(bt_store_t *st, const uint64_t *ids, size_t n, uint64_t through,
                        bt_store_cb cb, void *arg);
/* Reads one package's whole row (any state) for bt_core_package_revive. The
 * row and everything it points to live for the callback only. status
 * BT_ENOTFOUND when there is no such package. */
typedef void (*bt_store_row_cb)(void *arg, int status, const bt_pkg_row_t *row);
void bt_store_package_row(bt_store_t *st, uint64_t id, bt_store_row_cb cb, void *arg);
void bt_store_audit(bt_store_t *st, int64_t at, const char *actor, const char *action,
                    const char *subject, const char *detail);

/* cb fires once everything queued before it is committed (no SQL of its own). */
void bt_store_barrier(bt_store_t *st, bt_store_cb cb, void *arg);

/* --- lanes -------------------------------------------------------------------
 * One connection runs its transactions one after another, so one PostgreSQL
 * backend (one core) does all of its work. Lanes are several stores on the
 * same database among which package writes are spread by package id: a
 * package's writes all go to the same lane, so they keep their order, and the
 * backends of different lanes run side by side. Lane 0 also carries everything
 * that is not about one package (vendors, agents, audit rows, list reads).
 * Nothing orders two lanes: a write that must wait for another lane's waits
 * for a barrier on all of them. */
#define BT_STORE_MAX_LANES 8
typedef struct {
  bt_store_t *lane[BT_STORE_MAX_LANES];
  size_t n;    /* 1..BT_STORE_MAX_LANES */
  size_t open; /* lane[open..n-1] are closed (bt_lanes_close) */
  void (*on_closed)(void *arg);
  void *closed_arg;
} bt_lanes_t;

/* n lanes (out of range: 1), none created yet: the caller fills lane[]. */
void bt_lanes_init(bt_lanes_t *l, size_t n);
/* The lane a package's writes and single-package reads go to. */
bt_store_t *bt_lanes_for(const bt_lanes_t *l, uint64_t package_id);
/* cb fires once everything queued on every lane before it is committed, with
 * the first failure among them (0 if none). */
void bt_lanes_barrier(const bt_lanes_t *l, bt_store_cb cb, void *arg);
/* bt_store_is_down of any lane; the longest bt_store_stalled_ms; the sum of
 * bt_store_backlog. */
bool bt_lanes_down(const bt_lanes_t *l);
uint64_t bt_lanes_stalled_ms(const bt_lanes_t *l, uint64_t now_ms);
size_t bt_lanes_backlog(const bt_lanes_t *l);
/* Closes every lane (bt_store_close: queued writes are committed first), the
 * last first and lane 0 at the end; on_closed fires once all are freed. */
void bt_lanes_close(bt_lanes_t *l, void (*on_closed)(void *arg), void *arg);

/* --- reads ------------------------------------------------------------------- */

typedef struct {
  uint32_t attempt;
  const char *vendor;
  const char *agent;
  int64_t started_at;
  int64_t ended_at; /* 0 = still open */
  const char *outcome; /* NULL = still open */
  bool has_exit_code;
  int32_t exit_code;
  const char *error;
} bt_store_attempt_t;

typedef struct {
  const char *from_vendor;
  const char *to_vendor; /* NULL until it is assigned elsewhere */
  const char *reason;
  int64_t at;
  uint32_t checkpoint_bytes;
  uint64_t package_id; /* set by bt_store_list_handoffs only */
  uint32_t attempt;    /* the attempt handed off; bt_store_list_handoffs only */
} bt_store_handoff_t;

typedef struct {
  uint64_t id;
  const char *capability;
  const char *state;
  uint32_t priority;
  int64_t deadline_at, not_before_at, submitted_at, completed_at; /* 0 = none */
  const char *vendor; /* NULL = none */
  const char *agent;
  uint32_t attempt;
  int progress; /* -1 = none */
  uint64_t result_bytes;
  uint64_t payload_bytes;
  const char *key;
  const char *error;
  const char **regions;
  size_t n_regions;
  const char **certs;
  size_t n_certs;
  double max_cost; /* < 0 = none */
  const char **prefer;
  size_t n_prefer;
  const char **avoid;
  size_t n_avoid;
  uint32_t max_attempts;
  const bt_store_attempt_t *attempts;
  size_t n_attempts;
  const bt_store_handoff_t *handoffs;
  size_t n_handoffs;
} bt_store_pkg_t;

/* Rows are borrowed for the callback's duration. status BT_ENOTFOUND for show. */
typedef void (*bt_store_pkgs_cb)(void *arg, int status, const bt_store_pkg_t *rows,
                                 size_t n);

/* One package with its attempts and handoffs. */
void bt_store_get_package(bt_store_t *st, uint64_t id, bt_store_pkgs_cb cb, void *arg);

typedef struct {
  const char *state;    /* NULL = any */
  uint64_t vendor_id;   /* 0 = any */
  const char *capability; /* NULL = any */
  uint32_t limit;
} bt_store_pkg_filter_t;

/* Packages, newest first, without history. */
void bt_store_list_packages(bt_store_t *st, const bt_store_pkg_filter_t *f,
                            bt_store_pkgs_cb cb, void *arg);

/* How many of ids are in each state; found = how many exist. */
typedef void (*bt_store_counts_cb)(void *arg, int status,
                                   const uint64_t counts[BT_PKG__COUNT], uint64_t found);
void bt_store_count_states(bt_store_t *st, const uint64_t *ids, size_t n,
                           bt_store_counts_cb cb, void *arg);

/* A package's state and result bytes (borrowed for the callback). */
typedef void (*bt_store_result_cb)(void *arg, int status, const char *state,
                                   const uint8_t *result, size_t len);
void bt_store_get_result(bt_store_t *st, uint64_t id, bt_store_result_cb cb, void *arg);

typedef struct {
  uint64_t vendor_id;  /* 0 = any; else handed off from or to it */
  uint64_t package_id; /* 0 = any */
  int64_t since_at;    /* 0 = any; else at or after */
  uint32_t limit;      /* the newest this many; 0 = 10000 */
} bt_store_handoff_filter_t;

/* Rows are borrowed for the callback's duration, oldest first. */
typedef void (*bt_store_handoffs_cb)(void *arg, int status,
                                     const bt_store_handoff_t *rows, size_t n);

/* Handoff history across packages (`batonctl handoffs`). */
void bt_store_list_handoffs(bt_store_t *st, const bt_store_handoff_filter_t *f,
                            bt_store_handoffs_cb cb, void *arg);

/* One audit event (`batonctl audit`); strings borrowed for the callback. */
typedef struct {
  uint64_t id;
  int64_t at;
  const char *actor;
  const char *action;
  const char *subject;
  const char *detail; /* "" when none */
} bt_store_audit_row_t;

typedef struct {
  int64_t since_at;    /* 0 = any; else at or after */
  uint64_t package_id; /* 0 = any; else subject package:ID */
  const char *vendor;  /* NULL = any; else this vendor's name: its rows and its agents' */
  uint32_t limit;      /* the newest this many; 0 = 1000 */
} bt_store_audit_filter_t;

/* Rows are borrowed for the callback's duration, oldest first. */
typedef void (*bt_store_audit_cb)(void *arg, int status, const bt_store_audit_row_t *rows,
                                  size_t n);

/* The audit trail (`batonctl audit`). f is borrowed; cb runs once, from the loop,
 * with status 0 or a negative code (BT_EDBDOWN when the store is down). */
void bt_store_list_audit(bt_store_t *st, const bt_store_audit_filter_t *f,
                         bt_store_audit_cb cb, void *arg);

/* One vendor's KPIs from history (`batonctl scorecard`). */
typedef struct {
  const char *vendor;
  uint64_t completed, failed, handed_off;
  bool has_on_time_rate; /* false when no completed package had a deadline */
  double on_time_rate;
  bool has_turnaround;   /* false when it completed nothing */
  double turnaround_p50_ms, turnaround_p95_ms;
  double cost_total;
} bt_store_score_t;

/* Rows are borrowed for the callback's duration, by vendor name. */
typedef void (*bt_store_scores_cb)(void *arg, int status, const bt_store_score_t *rows,
                                   size_t n);

/* Vendor KPIs for vendor_id (0 = every vendor). cb runs once, from the loop. */
void bt_store_scorecard(bt_store_t *st, uint64_t vendor_id, bt_store_scores_cb cb,
                        void *arg);

/* --- startup (blocking; before the loop runs) ---------------------------------- */

/* Applies the embedded migrations not yet recorded in baton_migrations, each in
 * its own transaction, under an advisory lock so two brokers never race.
 * *applied receives how many ran. Returns 0 or a negative code (logged). */
int bt_store_migrate(const char *dsn, unsigned *applied);

/* Loads vendors, recent agents, open packages, finished counts and the largest
 * ids into core, then calls bt_core_load_done. Returns 0 or a negative code. */
int bt_store_load(const char *dsn, bt_core_t *core, const bt_now_t *now);

#endif

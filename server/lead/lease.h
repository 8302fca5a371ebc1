/*
 * The leader lease: which of the batond processes sharing one database is
 * the active broker. Every batond contends; the one that holds the single
 * row of broker_lease (migrations/0004) serves, the others are standbys that
 * wait and take over when the lease is not renewed, or at once when the
 * leader's database session is gone (a session advisory lock on its epoch).
 * The epoch, raised by one at each takeover, fences the leader's writes (the
 * store calls baton_fence(epoch) first in every transaction).
 *
 * The lease is kept by a thread of its own with a blocking libpq connection,
 * so renewals go out on time even while the loop is busy (loading a million
 * packages at takeover, say). The thread never logs and never calls back:
 * it posts what happened through a uv_async, and the callbacks below run on
 * the loop.
 *
 * Steps down (on_lost) when: a renewal finds another epoch in the row (a
 * standby took over), or no renewal succeeded for a whole lease while a
 * standby was waiting at the last one that did. A lone broker that cannot
 * reach the database keeps serving (the store refuses writes meanwhile) and
 * renews when the database is back, as long as nobody took its epoch.
 */
#ifndef BT_LEASE_H
#define BT_LEASE_H

#include <stdint.h>
#include <uv.h>

typedef struct bt_lease bt_lease_t;

typedef struct {
  uint32_t lease_ms;        /* how long a lease lasts without renewal */
  uint32_t standby_poll_ms; /* how often a standby tries to take over */
  const char *holder;       /* this process's name in the row (and its
                               sessions' application_name); copied */
} bt_lease_opts_t;

typedef struct {
  /* This process is the leader now, with this epoch (the previous holder
   * named, "" for none). Called once. */
  void (*acquired)(void *arg, int64_t epoch, const char *previous);
  /* Leadership is lost for good (why: one sentence). Called at most once,
   * after acquired. The caller must stop writing and go. */
  void (*lost)(void *arg, const char *why);
} bt_lease_events_t;

/* Starts contending (asynchronously; the thread connects). Returns 0 or a
 * negative code. */
int bt_lease_start(uv_loop_t *loop, const char *dsn, const bt_lease_opts_t *opts,
                   const bt_lease_events_t *ev, void *arg, bt_lease_t **out);

/* Stops: a leader gives its lease up (expires it now, so a standby takes over
 * without waiting), a standby stops waiting. on_closed fires on the loop once
 * the thread has ended and the handles are closed; the lease is freed then. */
void bt_lease_stop(bt_lease_t *l, void (*on_closed)(void *arg), void *arg);

/* Checks now what the lease's own timer checks every lease/4: a leader that
 * has not renewed for a whole lease while a standby was waiting has lost
 * (events.lost is called from here). For the moments after a stall, when
 * every timer is due at once. */
void bt_lease_check(bt_lease_t *l);

/* A name for this process: "batond:HOST:PID:RANDOM", at most 63 bytes (it is
 * also the sessions' application_name). */
void bt_lease_holder_name(char *out, size_t len);

#endif

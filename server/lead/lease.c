/*
 * The leader lease (see lease.h): a thread with one blocking libpq
 * connection, and the loop side that logs and calls back.
 *
 * The row and its statements (migrations/0004 explains the locks):
 *  - standby, every standby_poll: mark standby_seen_at and read the row.
 *    It may take over when the lease has expired, or when its holder's
 *    session lock on (7801, epoch) is free: that session is gone (kill -9, a
 *    lost connection), so nobody is renewing. When the lease expired it first
 *    ends the old holder's sessions (a hung leader can hold its fence lock in
 *    a half-sent transaction, which would stall the takeover; it is no
 *    longer the leader, and its sessions go by its name: application_name =
 *    holder). The takeover is one transaction (take_over): the old epoch's
 *    fence lock exclusively, then the row, still carrying the epoch just
 *    read, gets the next epoch, and this session locks (7801, new epoch)
 *    before anyone can read it.
 *  - leader, every lease/4: extend expires_at where the epoch is still its
 *    own. No row: someone took over. It also learns whether a standby is
 *    waiting (standby_seen_at recent), which decides what an outage means.
 *  - leader, at a graceful stop: expire the lease now.
 * Times come from the database's clock (clock_timestamp()), so brokers on
 * several machines need not agree on the time; the leader's own deadline for
 * "no renewal for a whole lease" is counted from when it sent the last
 * renewal that succeeded, on its monotonic clock, which errs on the safe side.
 */
#include "lease.h"

#include "bt_log.h"
#include "bt_time.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOCK_CLASS "7801" /* advisory lock space of the leader sessions */
#define TEXT_OID 25
#define INT8_OID 20
#define BOOL_OID 16

struct bt_lease {
  uv_async_t async; /* the thread's reports */
  uv_timer_t watch; /* the leader's own deadline */
  int open_handles;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *dsn;
  bt_lease_opts_t o;
  char holder[64];
  bt_lease_events_t ev;
  void *arg;
  uint64_t started_ms;
  /* --- shared with the thread, under mu --- */
  bool stop;
  bool ended;
  int64_t epoch; /* 0 = not the leader (yet) */
  char previous[64];
  bool acquired_new;
  bool lost;
  char lost_why[160];
  uint64_t valid_until_ms; /* monotonic */
  bool standby_waiting;
  /* for the loop to log */
  char seen_holder[64];
  int64_t seen_epoch;
  bool seen_new;
  char db_error[200];
  bool db_error_new;
  bool db_back;
  char terminated_holder[64];
  int terminated;
  /* --- loop only --- */
  bool lost_told;
  void (*on_closed)(void *arg);
  void *closed_arg;
};

void bt_lease_holder_name(char *out, size_t len) {
  char host[33] = "";
  if (gethostname(host, sizeof host - 1) != 0)
    snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  uint32_t r = (uint32_t)bt_mono_ms() * 2654435761u ^ (uint32_t)bt_wall_ms() ^
               ((uint32_t)getpid() << 16);
  snprintf(out, len, "batond:%s:%ld:%08x", host, (long)getpid(), r);
}

/* --- the thread -------------------------------------------------------------- */

static void quiet(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

/* Records a database error for the loop to log (under mu). */
static void report_error(bt_lease_t *l, const char *what, const char *detail) {
  pthread_mutex_lock(&l->mu);
  snprintf(l->db_error, sizeof l->db_error, "%s: %s", what, detail ? detail : "");
  size_t n = strlen(l->db_error);
  while (n > 0 && (l->db_error[n - 1] == '\n' || l->db_error[n - 1] == ' '))
    l->db_error[--n] = '\0';
  l->db_error_new = true;
  pthread_mutex_unlock(&l->mu);
  uv_async_send(&l->async);
}

static PGconn *lease_connect(bt_lease_t *l) {
  const char *keys[] = {"connect_timeout", "dbname", NULL};
  const char *vals[] = {"3", l->dsn, NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (PQstatus(c) != CONNECTION_OK) {
    report_error(l, "could not connect", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  PQsetNoticeProcessor(c, quiet, NULL);
  /* Nothing here may hang for long: a stuck lease thread means a leader
   * that cannot tell it lost. */
  PGresult *r = PQexec(c, "SET statement_timeout = '3s'; SET lock_timeout = '1s'");
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    report_error(l, "could not set up the session", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  return c;
}

/* Waits ms, or until stop. Returns true when stopping. */
static bool nap(bt_lease_t *l, uint32_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&l->mu);
  while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT) {
  }
  bool stop = l->stop;
  pthread_mutex_unlock(&l->mu);
  return stop;
}

/* A lock wait that timed out (lock_timeout, statement_timeout): not a
 * broken connection, only a round to try again. */
static bool is_lock_wait(const char *sqlstate) {
  return sqlstate != NULL &&
         (strcmp(sqlstate, "55P03") == 0 || strcmp(sqlstate, "57014") == 0);
}

/* Ends the sessions of a leader whose lease expired. */
static void end_sessions_of(bt_lease_t *l, PGconn *c, const char *holder) {
  const char *p[1] = {holder};
  PGresult *r = PQexecParams(c,
                             "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                             " FROM pg_stat_activity"
                             " WHERE application_name = $1 AND pid <> pg_backend_pid()",
                             1, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
    int n = atoi(PQgetvalue(r, 0, 0));
    if (n > 0) {
      pthread_mutex_lock(&l->mu);
      snprintf(l->terminated_holder, sizeof l->terminated_holder, "%s", holder);
      l->terminated = n;
      pthread_mutex_unlock(&l->mu);
      uv_async_send(&l->async);
    }
  }
  PQclear(r); /* not allowed to (another role's sessions): the takeover waits */
}

/* Gives back the probe lock on (7801, epoch) of a takeover that did not
 * happen, so the session does not collect them. */
static void unlock_probe(PGconn *c, const char *epoch) {
  const char *p[1] = {epoch};
  const unsigned int t[1] = {INT8_OID};
  PQclear(PQexecParams(c, "SELECT pg_advisory_unlock(" LOCK_CLASS ", $1::int)", 1, t, p,
                       NULL, NULL, 0));
}

/* Runs one statement; NULL on an error, whose SQLSTATE goes to state. */
static PGresult *run_ok(PGconn *c, const char *sql, int n, const unsigned int *types,
                        const char *const *vals, char state[6]) {
  PGresult *r = PQexecParams(c, sql, n, types, vals, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
    return r;
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  snprintf(state, 6, "%s", code ? code : "");
  PQclear(r);
  return NULL;
}

/* The takeover, one transaction: the fence lock of the old epoch exclusively
 * (it waits for the old leader's transactions in flight, and holds its later
 * ones back until the commit; migrations/0004), then the row: a new epoch,
 * this holder, a fresh lease, and this session's lock on (7801, new epoch)
 * before anyone can read the row. Returns 1 taken, 0 not (another standby
 * was first; or a lock wait timed out: the old leader's transaction is still
 * open, its sessions are ended, the next round gets through), -1 on a
 * connection error. */
static int take_over(bt_lease_t *l, PGconn *c, const char *old_epoch, const char *old_holder) {
  char lease_ms[16];
  snprintf(lease_ms, sizeof lease_ms, "%u", l->o.lease_ms);
  const char *pl[1] = {old_epoch};
  const unsigned int tl[1] = {INT8_OID};
  const char *pu[3] = {l->holder, lease_ms, old_epoch};
  const unsigned int tu[3] = {TEXT_OID, INT8_OID, INT8_OID};
  PGresult *r = NULL;
  char state[6] = "";
  bool ok = (r = run_ok(c, "BEGIN", 0, NULL, NULL, state)) != NULL;
  PQclear(r);
  r = NULL;
  if (ok) {
    ok = (r = run_ok(c, "SELECT pg_advisory_xact_lock(7802, $1::int)", 1, tl, pl, state)) != NULL;
    PQclear(r);
    r = NULL;
  }
  uint64_t sent_ms = bt_mono_ms();
  if (ok)
    r = run_ok(c,
               "UPDATE broker_lease SET epoch = epoch + 1, holder = $1,"
               " acquired_at = clock_timestamp(),"
               " expires_at = clock_timestamp() + $2 * interval '1 millisecond',"
               " standby_seen_at = NULL"
               " WHERE epoch = $3"
               " RETURNING epoch, pg_try_advisory_lock(" LOCK_CLASS ", epoch::int)",
               3, tu, pu, state);
  if (r != NULL) {
    PGresult *cr = run_ok(c, "COMMIT", 0, NULL, NULL, state);
    ok = cr != NULL;
    PQclear(cr);
  } else {
    ok = false;
  }
  if (!ok) {
    char why[200]; /* copied: the ROLLBACK below replaces the connection's message */
    snprintf(why, sizeof why, "%s", PQerrorMessage(c));
    bool lock_wait = is_lock_wait(state);
    PQclear(r);
    PQclear(PQexec(c, "ROLLBACK"));
    if (PQstatus(c) != CONNECTION_OK) {
      report_error(l, "could not take the leader lease over", why);
      return -1;
    }
    if (!lock_wait)
      report_error(l, "could not take the leader lease over", why);
    return 0;
  }
  if (PQntuples(r) != 1) {
    PQclear(r);
    return 0;
  }
  pthread_mutex_lock(&l->mu);
  l->epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  snprintf(l->previous, sizeof l->previous, "%s", old_holder);
  l->valid_until_ms = sent_ms + l->o.lease_ms;
  l->standby_waiting = false;
  l->acquired_new = true;
  pthread_mutex_unlock(&l->mu);
  PQclear(r);
  uv_async_send(&l->async);
  return 1;
}

/* One standby round. Returns 1 when this process took the lease, 0 when not
 * (yet), -1 when the connection should be dropped. */
static int try_acquire(bt_lease_t *l, PGconn *c) {
  PGresult *r = PQexec(c, "UPDATE broker_lease SET standby_seen_at = clock_timestamp()"
                          " RETURNING epoch, holder, expires_at < clock_timestamp()");
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    bool lock_wait = is_lock_wait(PQresultErrorField(r, PG_DIAG_SQLSTATE));
    if (!lock_wait)
      report_error(l, "could not read the leader lease",
                   PQntuples(r) == 0 && PQresultStatus(r) == PGRES_TUPLES_OK
                       ? "the broker_lease row is missing"
                       : PQresultErrorMessage(r));
    PQclear(r);
    return lock_wait ? 0 : -1;
  }
  char seen_epoch[24], holder[64];
  snprintf(seen_epoch, sizeof seen_epoch, "%s", PQgetvalue(r, 0, 0));
  snprintf(holder, sizeof holder, "%s", PQgetvalue(r, 0, 1));
  bool expired = PQgetvalue(r, 0, 2)[0] == 't';
  PQclear(r);
  pthread_mutex_lock(&l->mu);
  int64_t e = strtoll(seen_epoch, NULL, 10);
  if (e != l->seen_epoch || strcmp(holder, l->seen_holder) != 0) {
    l->seen_epoch = e;
    snprintf(l->seen_holder, sizeof l->seen_holder, "%s", holder);
    l->seen_new = true;
    uv_async_send(&l->async);
  }
  pthread_mutex_unlock(&l->mu);
  if (expired && holder[0] != '\0' && strcmp(holder, l->holder) != 0)
    end_sessions_of(l, c, holder);

  /* Is the holder's session gone? Its lock on (7801, epoch) is free then (and
   * ours now; given back below if the takeover does not happen). */
  bool orphaned = false;
  if (!expired) {
    const char *pe[1] = {seen_epoch};
    const unsigned int te[1] = {INT8_OID};
    r = PQexecParams(c, "SELECT pg_try_advisory_lock(" LOCK_CLASS ", $1::int)", 1, te, pe,
                     NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      report_error(l, "could not probe the leader's session", PQresultErrorMessage(r));
      PQclear(r);
      return -1;
    }
    orphaned = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!orphaned)
      return 0; /* a live leader with a valid lease: keep waiting */
  }
  int rv = take_over(l, c, seen_epoch, holder);
  if (rv != 1 && orphaned)
    unlock_probe(c, seen_epoch);
  return rv;
}

/* One renewal. Returns 1 renewed, 0 lost (another epoch holds the row), -1
 * when the connection should be dropped. relock: the session is new, so the
 * lock on (7801, epoch) went with the old one; take it again. */
static int renew(bt_lease_t *l, PGconn *c, int64_t epoch, bool relock) {
  char e[24], lease_ms[16], window_ms[16];
  snprintf(e, sizeof e, "%lld", (long long)epoch);
  snprintf(lease_ms, sizeof lease_ms, "%u", l->o.lease_ms);
  /* A standby marks the row every standby_poll; a few missed marks still
   * count as waiting. */
  uint32_t window = l->o.standby_poll_ms * 4 > 2000 ? l->o.standby_poll_ms * 4 : 2000;
  snprintf(window_ms, sizeof window_ms, "%u", window);
  const char *p[4] = {e, lease_ms, window_ms, relock ? "t" : "f"};
  const unsigned int types[4] = {INT8_OID, INT8_OID, INT8_OID, BOOL_OID};
  uint64_t sent_ms = bt_mono_ms();
  PGresult *r = PQexecParams(
      c,
      "UPDATE broker_lease"
      " SET expires_at = clock_timestamp() + $2 * interval '1 millisecond'"
      " WHERE epoch = $1"
      " RETURNING coalesce(standby_seen_at > clock_timestamp() - $3 * interval '1 millisecond',"
      "  false),"
      " CASE WHEN $4 THEN pg_try_advisory_lock(" LOCK_CLASS ", $1::int) ELSE true END",
      4, types, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    report_error(l, "could not renew the leader lease", PQresultErrorMessage(r));
    PQclear(r);
    return -1;
  }
  int rv = 1;
  pthread_mutex_lock(&l->mu);
  if (PQntuples(r) == 0) {
    l->lost = true;
    snprintf(l->lost_why, sizeof l->lost_why,
             "another broker took the leader lease (epoch %lld is no longer in the row)",
             (long long)epoch);
    rv = 0;
  } else {
    l->valid_until_ms = sent_ms + l->o.lease_ms;
    l->standby_waiting = PQgetvalue(r, 0, 0)[0] == 't';
  }
  pthread_mutex_unlock(&l->mu);
  PQclear(r);
  if (rv == 0)
    uv_async_send(&l->async);
  return rv;
}

static void give_up_lease(PGconn *c, int64_t epoch) {
  char e[24];
  snprintf(e, sizeof e, "%lld", (long long)epoch);
  const char *p[1] = {e};
  const unsigned int types[1] = {INT8_OID};
  PQclear(PQexecParams(c,
                       "UPDATE broker_lease SET expires_at = clock_timestamp()"
                       " WHERE epoch = $1",
                       1, types, p, NULL, NULL, 0));
}

static void *lease_thread(void *arg) {
  bt_lease_t *l = arg;
  PGconn *c = NULL;
  bool failing = false;
  /* Standby: until this process holds the lease. */
  for (;;) {
    if (c == NULL)
      c = lease_connect(l);
    int got = c != NULL ? try_acquire(l, c) : -1;
    if (got < 0 && c != NULL) {
      PQfinish(c);
      c = NULL;
    }
    if (got == 1 || nap(l, l->o.standby_poll_ms))
      break;
  }
  pthread_mutex_lock(&l->mu);
  int64_t epoch = l->epoch;
  pthread_mutex_unlock(&l->mu);
  /* Leader: renew until stopped or lost. */
  bool relock = false;
  while (epoch != 0 && !nap(l, l->o.lease_ms / 4)) {
    if (c == NULL) {
      c = lease_connect(l);
      relock = true;
    }
    int rv = c != NULL ? renew(l, c, epoch, relock) : -1;
    if (rv == 0)
      break;
    if (rv < 0) {
      failing = true;
      if (c != NULL) {
        PQfinish(c);
        c = NULL;
      }
      continue;
    }
    relock = false;
    if (failing) {
      failing = false;
      pthread_mutex_lock(&l->mu);
      l->db_back = true;
      pthread_mutex_unlock(&l->mu);
      uv_async_send(&l->async);
    }
  }
  pthread_mutex_lock(&l->mu);
  bool give_up = epoch != 0 && !l->lost;
  pthread_mutex_unlock(&l->mu);
  if (give_up && c != NULL)
    give_up_lease(c, epoch);
  PQfinish(c);
  pthread_mutex_lock(&l->mu);
  l->ended = true;
  pthread_mutex_unlock(&l->mu);
  uv_async_send(&l->async);
  return NULL;
}

/* --- the loop side -------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  bt_lease_t *l = h->data;
  if (--l->open_handles > 0)
    return;
  void (*cb)(void *) = l->on_closed;
  void *arg = l->closed_arg;
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l->dsn);
  free(l);
  if (cb)
    cb(arg);
}

static void tell_lost(bt_lease_t *l, const char *why) {
  if (l->lost_told)
    return;
  l->lost_told = true;
  uv_timer_stop(&l->watch);
  l->ev.lost(l->arg, why);
}

static void on_watch(uv_timer_t *t);

static void on_report(uv_async_t *a) {
  bt_lease_t *l = a->data;
  pthread_mutex_lock(&l->mu);
  bool seen = l->seen_new, err = l->db_error_new, acquired = l->acquired_new;
  bool lost = l->lost, ended = l->ended, back = l->db_back;
  int terminated = l->terminated;
  char seen_holder[64], error[200], previous[64], why[160], term_holder[64];
  int64_t seen_epoch = l->seen_epoch, epoch = l->epoch;
  memcpy(seen_holder, l->seen_holder, sizeof seen_holder);
  memcpy(error, l->db_error, sizeof error);
  memcpy(previous, l->previous, sizeof previous);
  memcpy(why, l->lost_why, sizeof why);
  memcpy(term_holder, l->terminated_holder, sizeof term_holder);
  l->seen_new = l->db_error_new = l->acquired_new = l->db_back = false;
  l->terminated = 0;
  pthread_mutex_unlock(&l->mu);

  if (err)
    bt_log_warn("leader lease: database error", "error=%s", BT_Q(error));
  if (back)
    bt_log_info("leader lease renewed again", "epoch=%lld", (long long)epoch);
  if (seen && !acquired && seen_holder[0] != '\0')
    bt_log_info("standby: another broker holds the leader lease", "holder=%s epoch=%lld",
                BT_Q(seen_holder), (long long)seen_epoch);
  if (terminated > 0)
    bt_log_warn("ended the database sessions of a leader whose lease expired",
                "holder=%s sessions=%d", BT_Q(term_holder), terminated);
  if (acquired) {
    bt_log_info("leader lease acquired", "epoch=%lld previous=%s waited_ms=%llu",
                (long long)epoch, BT_Q(previous[0] ? previous : "none"),
                (unsigned long long)(bt_mono_ms() - l->started_ms));
    uv_timer_start(&l->watch, on_watch, l->o.lease_ms / 4, l->o.lease_ms / 4);
    l->ev.acquired(l->arg, epoch, previous);
  }
  if (lost)
    tell_lost(l, why);
  if (ended) {
    pthread_join(l->thread, NULL);
    uv_timer_stop(&l->watch);
    uv_close((uv_handle_t *)&l->async, handle_closed);
    uv_close((uv_handle_t *)&l->watch, handle_closed);
  }
}

/* The leader's own deadline: no renewal for a whole lease while a standby
 * waits means the standby takes over any moment now (or has). */
static void on_watch(uv_timer_t *t) { bt_lease_check(t->data); }

void bt_lease_check(bt_lease_t *l) {
  if (l->lost_told)
    return;
  pthread_mutex_lock(&l->mu);
  bool leader = l->epoch != 0 && !l->lost && !l->stop;
  bool overdue = bt_mono_ms() > l->valid_until_ms;
  bool standby = l->standby_waiting;
  pthread_mutex_unlock(&l->mu);
  if (leader && overdue && standby)
    tell_lost(l, "no renewal of the leader lease for a whole lease while a standby was "
                 "waiting to take over");
}

int bt_lease_start(uv_loop_t *loop, const char *dsn, const bt_lease_opts_t *opts,
                   const bt_lease_events_t *ev, void *arg, bt_lease_t **out) {
  bt_lease_t *l = calloc(1, sizeof *l);
  if (l == NULL)
    abort();
  l->dsn = strdup(dsn);
  if (l->dsn == NULL)
    abort();
  l->o = *opts;
  if (l->o.lease_ms < 400)
    l->o.lease_ms = 400;
  if (l->o.standby_poll_ms == 0)
    l->o.standby_poll_ms = 500;
  snprintf(l->holder, sizeof l->holder, "%s", opts->holder);
  l->o.holder = l->holder;
  l->ev = *ev;
  l->arg = arg;
  l->started_ms = bt_mono_ms();
  pthread_mutex_init(&l->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cv, &ca);
  pthread_condattr_destroy(&ca);
  uv_async_init(loop, &l->async, on_report);
  l->async.data = l;
  uv_timer_init(loop, &l->watch);
  l->watch.data = l;
  l->open_handles = 2;
  int rv = pthread_create(&l->thread, NULL, lease_thread, l);
  if (rv != 0) {
    bt_log_error("could not start the leader lease thread", "error=%s", strerror(rv));
    l->ended = true; /* nothing to join: close the handles */
    uv_close((uv_handle_t *)&l->async, handle_closed);
    uv_close((uv_handle_t *)&l->watch, handle_closed);
    *out = NULL;
    return -rv;
  }
  *out = l;
  return 0;
}

void bt_lease_stop(bt_lease_t *l, void (*on_closed)(void *arg), void *arg) {
  l->on_closed = on_closed;
  l->closed_arg = arg;
  uv_timer_stop(&l->watch);
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

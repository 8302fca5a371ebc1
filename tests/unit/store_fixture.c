#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"

#include "pgembed.h"

#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

uv_loop_t fx_loop;
const char *fx_dsn;
static char root[64];
static bt_pg_t *pg;

int fx_start(const char *name) {
  snprintf(root, sizeof root, "/tmp/bt-%s-XXXXXX", name);
  if (mkdtemp(root) == NULL)
    return -1;
  chmod(root, 0711); /* as root the cluster runs as another user */
  bt_pg_opts_t o = {.data_dir = root};
  if (bt_pg_start(&o, &pg) != 0)
    return -1;
  fx_dsn = bt_pg_dsn(pg);
  unsigned applied = 0;
  if (bt_store_migrate(fx_dsn, &applied) != 0)
    return -1;
  uv_loop_init(&fx_loop);
  return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  remove(p);
  return 0;
}

void fx_stop(void) {
  uv_loop_close(&fx_loop);
  bt_pg_stop(pg);
  if (getenv("BATON_KEEP_TMP") == NULL)
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static PGresult *sql(const char *q) {
  PGconn *c = PQconnectdb(fx_dsn);
  if (PQstatus(c) != CONNECTION_OK)
    fail_msg("connect: %s", PQerrorMessage(c));
  PGresult *r = PQexec(c, q);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    fail_msg("%s: %s", q, PQresultErrorMessage(r));
  PQfinish(c);
  return r;
}

void fx_exec(const char *q) { PQclear(sql(q)); }

const char *fx_text(const char *q) {
  static char buf[512];
  PGresult *r = sql(q);
  snprintf(buf, sizeof buf, "%s",
           PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
  return buf;
}

long fx_num(const char *q) { return atol(fx_text(q)); }

long fx_audit_rows(const char *subject) {
  char q[200];
  snprintf(q, sizeof q, "SELECT count(*) FROM audit_events WHERE subject = '%s'", subject);
  return fx_num(q);
}

void fx_add_package(uint64_t id) {
  char q[512];
  snprintf(q, sizeof q,
           "INSERT INTO work_packages (id, capability, payload, priority, max_attempts,"
           " state, attempt, submitted_at, updated_at)"
           " VALUES (%llu, 'cap', 'x', 0, 3, 'queued', 0, now(), now());"
           " INSERT INTO open_packages (id) VALUES (%llu)",
           (unsigned long long)id, (unsigned long long)id);
  fx_exec(q);
}

PGconn *fx_lock_new_vendor(int id) {
  char q[400];
  snprintf(q, sizeof q,
           "INSERT INTO vendors (id, name, region, model, capabilities, capacity, cost,"
           " weight, auth_key, created_at, updated_at) VALUES (%d, 'locked-%d', 'EU',"
           " 'onshore', '{x}', 1, 1, 1, decode(repeat('00', 32), 'hex'), now(), now())",
           id, id);
  fx_exec(q);
  PGconn *c = PQconnectdb(fx_dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  snprintf(q, sizeof q, "BEGIN; SELECT 1 FROM vendors WHERE id = %d FOR UPDATE", id);
  PGresult *r = PQexec(c, q);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  PQclear(r);
  return c;
}

void fx_unlock(PGconn *holder) {
  PQclear(PQexec(holder, "COMMIT"));
  PQfinish(holder);
}

/* Turns of the loop that never block (the store is stuck, so a blocking turn
 * would sleep until some timer), with a look at pg_stat_activity between. */
void fx_run_until_lock_waiters(long n) {
  for (int i = 0; i < 2500; i++) {
    uv_run(&fx_loop, UV_RUN_NOWAIT);
    if (fx_num("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") >= n)
      return;
    usleep(2000);
  }
  fail_msg("fewer than %ld backends came to wait for a lock", n);
}

void fx_run_until_lock_wait(void) { fx_run_until_lock_waiters(1); }

static void on_deadline(uv_timer_t *t) { *(bool *)t->data = true; }

static void on_deadline_closed(uv_handle_t *h) { (void)h; }

/* Bounded in time, not in loop turns: a turn may wait a second for the
 * store's timer, and a failing test should fail in seconds (and stop its
 * cluster in the teardown), not hang until ctest kills it. */
void fx_run_until(bool (*cond)(void *), void *arg) {
  bool expired = false;
  uv_timer_t deadline;
  uv_timer_init(&fx_loop, &deadline);
  deadline.data = &expired;
  uv_timer_start(&deadline, on_deadline, 20000, 0);
  while (!cond(arg) && !expired)
    uv_run(&fx_loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&deadline, on_deadline_closed);
  uv_run(&fx_loop, UV_RUN_NOWAIT); /* the close callback, before deadline goes */
  assert_true(cond(arg));
}

void fx_on_done(void *arg, int status) {
  fx_done_t *d = arg;
  d->calls++;
  d->status = status;
}

static bool store_up(void *arg) { return bt_store_is_up(arg); }

static bool written(void *arg) { return bt_store_backlog(arg) == 0; }

void fx_run_until_written(bt_store_t *st) { fx_run_until(written, st); }

bt_store_t *fx_store_open(const bt_store_opts_t *opts) {
  bt_store_t *st = NULL;
  assert_int_equal(bt_store_new(&fx_loop, fx_dsn, opts, NULL, NULL, &st), 0);
  fx_run_until(store_up, st);
  return st;
}

static void on_closed(void *arg) { *(bool *)arg = true; }

static bool flag_set(void *arg) { return *(bool *)arg; }

void fx_store_close(bt_store_t *st) {
  bool closed = false;
  bt_store_close(st, on_closed, &closed);
  fx_run_until(flag_set, &closed);
}

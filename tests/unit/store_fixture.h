/*
 * A real PostgreSQL (pgembed, migrated) and a loop for tests of server/store:
 * blocking SQL to set up and check rows, and stores opened on the loop.
 * One cluster per test program (initdb takes a few seconds).
 */
#ifndef BT_TEST_STORE_FIXTURE_H
#define BT_TEST_STORE_FIXTURE_H

#include "store.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <uv.h>

extern uv_loop_t fx_loop;
extern const char *fx_dsn;

/* Starts the cluster (in a temp dir named after name), applies the
 * migrations and opens the loop. Returns 0 or -1. */
int fx_start(const char *name);
/* Stops the cluster and removes its directory (kept with BATON_KEEP_TMP). */
void fx_stop(void);

/* Blocking SQL on a connection of its own; fails the test on an error. */
void fx_exec(const char *q);
/* The first column of the first row as text ("" for no row or NULL); the
 * buffer is static. */
const char *fx_text(const char *q);
long fx_num(const char *q);
/* Rows of audit_events with this subject (the tests write them as markers). */
long fx_audit_rows(const char *subject);

/* Adds a queued package row as a submit would have written it, listed in
 * open_packages as a listing round would have after (migrations/0011). */
void fx_add_package(uint64_t id);

/* Adds vendor id and locks its row from a transaction of another session
 * until fx_unlock(): a store's write of that row (bt_store_vendor_key) waits
 * for it, which holds that store's transaction in flight. */
PGconn *fx_lock_new_vendor(int id);
void fx_unlock(PGconn *holder);
/* Runs the loop until a backend waits for a lock (the held transaction); fails
 * the test if none does within a few seconds. */
void fx_run_until_lock_wait(void);
/* The same until n backends wait for locks. */
void fx_run_until_lock_waiters(long n);

/* A write's or barrier's outcome, for bt_store_cb: how often it was called
 * and the last status. */
typedef struct {
  int calls;
  int status;
} fx_done_t;
void fx_on_done(void *arg, int status);

/* Runs the loop until cond(arg) holds; fails the test if it never does. */
void fx_run_until(bool (*cond)(void *), void *arg);
/* Runs the loop until st has nothing left to write (bt_store_backlog). */
void fx_run_until_written(bt_store_t *st);

/* Opens a store (opts NULL: defaults) and runs the loop until it is up. */
bt_store_t *fx_store_open(const bt_store_opts_t *opts);
/* Closes it and runs the loop until it is freed. */
void fx_store_close(bt_store_t *st);

#endif

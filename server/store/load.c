/*
 * Startup, before the loop runs (blocking libpq is fine here): apply the
 * embedded migrations and rebuild the core's state from the database.
 */
#include "store_int.h"

#include "bt_err.h"
#include "bt_log.h"
#include "bt_migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PGconn *connect_blocking(const char *dsn) {
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    bt_log_error("could not connect to the database", "error=%s",
                 BT_Q(PQerrorMessage(c)));
    PQfinish(c);
    return NULL;
  }
  PQsetNoticeProcessor(c, NULL, NULL);
  return c;
}

static int exec_ok(PGconn *c, const char *sql, const char *what) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType s = PQresultStatus(r);
  int rv = 0;
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
    bt_log_error("could not run migration statement", "step=%s error=%s", what,
                 BT_Q(PQresultErrorMessage(r)));
    rv = bt_store__map_error(r);
  }
  PQclear(r);
  return rv;
}

/* Silences NOTICEs like "relation already exists, skipping". */
static void quiet_notices(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

int bt_store_migrate(const char *dsn, unsigned *applied) {
  *applied = 0;
  PGconn *c = connect_blocking(dsn);
  if (c == NULL)
    return BT_EDBDOWN;
  PQsetNoticeProcessor(c, quiet_notices, NULL);
  /* Two brokers (or two `batond migrate`) starting together: the second waits
   * here for the whole run of the first, then finds nothing left to do. The
   * lock comes before anything else, even creating the bookkeeping table, whose
   * IF NOT EXISTS is not safe against a concurrent create. */
  int rv = exec_ok(c, "SELECT pg_advisory_lock(7800, 1)", "lock");
  if (rv == 0)
    rv = exec_ok(c,
                 "CREATE TABLE IF NOT EXISTS baton_migrations ("
                 " version integer PRIMARY KEY, name text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 "create baton_migrations");
  for (unsigned i = 0; rv == 0 && i < bt_migrations_count; i++) {
    const bt_migration_t *m = &bt_migrations[i];
    if ((rv = exec_ok(c, "BEGIN", "begin")) != 0)
      break;
    char q[128];
    snprintf(q, sizeof q, "SELECT 1 FROM baton_migrations WHERE version = %d",
             m->version);
    PGresult *r = PQexec(c, q);
    bool done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok) {
      rv = BT_EDB;
      break;
    }
    if (!done) {
      bt_log_info("applying migration", "version=%04d name=%s", m->version, m->name);
      if ((rv = exec_ok(c, m->sql, m->name)) != 0)
        break;
      const char *params[2];
      char ver[16];
      snprintf(ver, sizeof ver, "%d", m->version);
      params[0] = ver;
      params[1] = m->name;
      r = PQexecParams(c, "INSERT INTO baton_migrations (version, name) VALUES ($1, $2)",
                       2, NULL, params, NULL, NULL, 0);
      ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
      if (!ok) {
        rv = BT_EDB;
        break;
      }
      (*applied)++;
    }
    if ((rv = exec_ok(c, "COMMIT", "commit")) != 0)
      break;
  }
  if (rv != 0 && PQtransactionStatus(c) != PQTRANS_IDLE)
    PQclear(PQexec(c, "ROLLBACK"));
  /* The session lock goes with the connection. */
  PQfinish(c);
  return rv;
}

/* --- loading state ---------------------------------------------------------------- */

static PGresult *query(PGconn *c, const char *sql, int nparams, const char *const *vals,
                       const int *lens, const int *fmts) {
  PGresult *r = PQexecParams(c, sql, nparams, NULL, vals, lens, fmts, 1);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
    bt_log_error("could not load state", "error=%s", BT_Q(PQresultErrorMessage(r)));
    PQclear(r);
    return NULL;
  }
  return r;
}

static int load_vendors(PGconn *c, bt_core_t *core) {
  PGresult *stats = query(
      c,
      "SELECT a.vendor_id,"
      " count(*) FILTER (WHERE a.outcome = 'completed'),"
      " count(*) FILTER (WHERE a.outcome = 'failed'),"
      " count(*) FILTER (WHERE a.outcome = 'completed' AND w.deadline_at IS NOT NULL"
      "   AND a.ended_at <= w.deadline_at),"
      " count(*) FILTER (WHERE a.outcome = 'completed' AND w.deadline_at IS NOT NULL)"
      " FROM attempts a JOIN work_packages w ON w.id = a.package_id"
      " GROUP BY a.vendor_id",
      0, NULL, NULL, NULL);
  if (stats == NULL)
    return BT_EDB;
  PGresult *r = query(c,
                      "SELECT id, name, region, model, capabilities, certs, capacity,"
                      " cost, hours, weight, state, auth_key, created_at, state_reason"
                      " FROM vendors ORDER BY id",
                      0, NULL, NULL, NULL);
  if (r == NULL) {
    PQclear(stats);
    return BT_EDB;
  }
  int rv = 0;
  for (int i = 0; i < PQntuples(r) && rv == 0; i++) {
    bt_vendor_row_t row;
    memset(&row, 0, sizeof row);
    size_t n_caps, n_certs, klen;
    const char **caps = bt_pgr_text_array(r, i, 4, &n_caps);
    const char **certs = bt_pgr_text_array(r, i, 5, &n_certs);
    row.id = (uint64_t)bt_pgr_i64(r, i, 0);
    row.spec.name = bt_pgr_text(r, i, 1);
    row.spec.region = bt_pgr_text(r, i, 2);
    if (bt_model_parse(bt_pgr_text(r, i, 3), &row.spec.model) != 0)
      row.spec.model = BT_MODEL_ONSHORE;
    row.spec.caps = caps;
    row.spec.n_caps = n_caps;
    row.spec.certs = certs;
    row.spec.n_certs = n_certs;
    row.spec.capacity = (uint32_t)bt_pgr_i64(r, i, 6);
    row.spec.cost = bt_pgr_f64(r, i, 7);
    row.spec.hours = bt_pgr_text(r, i, 8);
    row.spec.weight = bt_pgr_f64(r, i, 9);
    if (bt_vendor_state_parse(bt_pgr_text(r, i, 10), &row.state) != 0)
      row.state = BT_VENDOR_ACTIVE;
    const uint8_t *key = bt_pgr_bytes(r, i, 11, &klen);
    if (key != NULL && klen == sizeof row.spec.auth_key)
      memcpy(row.spec.auth_key, key, klen);
    row.created_at = bt_pgr_ts(r, i, 12);
    row.state_reason = bt_pgr_text(r, i, 13);
    for (int s = 0; s < PQntuples(stats); s++) {
      if ((uint64_t)bt_pgr_i64(stats, s, 0) == row.id) {
        row.completed = (uint64_t)bt_pgr_i64(stats, s, 1);
        row.failed = (uint64_t)bt_pgr_i64(stats, s, 2);
        row.on_time = (uint64_t)bt_pgr_i64(stats, s, 3);
        row.with_deadline = (uint64_t)bt_pgr_i64(stats, s, 4);
      }
    }
    rv = bt_core_load_vendor(core, &row);
    if (rv != 0)
      bt_log_error("could not load vendor", "vendor=%s", BT_Q(row.spec.name));
    free(caps);
    free(certs);
  }
  PQclear(r);
  PQclear(stats);
  return rv;
}

/* The ids of every package that may be open: those listed in open_packages
 * and all above the list's floor, which were not listed yet (migrations/0011).
 * Some are not open (a listed package revived and ended again, a package
 * above the floor that ended), so the loads below filter by state. */
#define OPEN_IDS                                                                \
  "SELECT id FROM open_packages UNION ALL SELECT id FROM work_packages"       \
  " WHERE id > (SELECT listed_through FROM open_packages_floor)"

static int load_agents(PGconn *c, bt_core_t *core) {
  /* Recent agents for `agent list`, and every agent that holds open work. */
  PGresult *r = query(c,
                      "SELECT id, vendor_id, name, capabilities, slots, last_seen_at"
                      " FROM agents WHERE last_seen_at > now() - interval '1 day'"
                      " OR id IN (SELECT agent_id FROM packages_now"
                      "           WHERE id IN (" OPEN_IDS ")"
                      "           AND state IN ('assigned', 'running'))"
                      " ORDER BY id",
                      0, NULL, NULL, NULL);
  if (r == NULL)
    return BT_EDB;
  int rv = 0;
  for (int i = 0; i < PQntuples(r) && rv == 0; i++) {
    bt_agent_row_t row;
    size_t n_caps;
    const char **caps = bt_pgr_text_array(r, i, 3, &n_caps);
    row.id = (uint64_t)bt_pgr_i64(r, i, 0);
    row.vendor_id = (uint64_t)bt_pgr_i64(r, i, 1);
    row.name = bt_pgr_text(r, i, 2);
    row.caps = caps;
    row.n_caps = n_caps;
    row.slots = (uint32_t)bt_pgr_i64(r, i, 4);
    row.last_seen_at = bt_pgr_ts(r, i, 5);
    rv = bt_core_load_agent(core, &row);
    if (rv != 0)
      bt_log_error("could not load agent", "agent=%s", BT_Q(row.name));
    free(caps);
  }
  PQclear(r);
  return rv;
}

/* Open packages, through a cursor so a million queued packages never sit in one
 * result. */
static int load_packages(PGconn *c, bt_core_t *core, uint64_t *loaded) {
  PGresult *r = query(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL, NULL, NULL);
  if (r == NULL)
    return BT_EDB;
  PQclear(r);
  r = query(c,
            "DECLARE open_packages NO SCROLL CURSOR FOR"
            " SELECT w.id, w.idem_key, w.capability, w.payload, w.priority,"
            " w.deadline_at, w.not_before_at, w.regions, w.certs, w.max_cost,"
            " w.prefer, w.avoid, w.max_attempts, w.state, w.attempt, w.vendor_id,"
            " w.agent_id, w.progress, w.checkpoint, w.submitted_at,"
            " (SELECT count(*) FROM attempts t WHERE t.package_id = w.id"
            "   AND t.outcome IN ('failed', 'transient')),"
            " (SELECT count(*) FROM attempts t WHERE t.package_id = w.id"
            "   AND t.outcome = 'lost'),"
            " w.only_vendor"
            /* the view folds each one's open attempt in (0006) */
            " FROM packages_now w WHERE w.id IN (" OPEN_IDS ")"
            " AND w.state IN ('queued', 'assigned', 'running')"
            " ORDER BY w.id",
            0, NULL, NULL, NULL);
  if (r == NULL)
    return BT_EDB;
  PQclear(r);
  int rv = 0;
  for (;;) {
    r = query(c, "FETCH 10000 FROM open_packages", 0, NULL, NULL, NULL);
    if (r == NULL) {
      rv = BT_EDB;
      break;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n && rv == 0; i++) {
      bt_pkg_row_t row;
      const char **lists[4];
      bt_store__parse_pkg_row(r, i, &row, lists);
      rv = bt_core_load_package(core, &row);
      if (rv != 0)
        bt_log_error("could not load package", "package=%llu state=%s",
                     (unsigned long long)row.id, bt_pkg_state_name(row.state));
      for (int k = 0; k < 4; k++)
        free(lists[k]);
      (*loaded)++;
    }
    PQclear(r);
    if (n == 0 || rv != 0)
      break;
  }
  r = PQexec(c, rv == 0 ? "COMMIT" : "ROLLBACK");
  PQclear(r);
  return rv;
}

static int load_counts(PGconn *c, bt_core_t *core) {
  PGresult *r = query(c,
                      "SELECT (SELECT coalesce(max(id), 0) FROM vendors),"
                      " (SELECT coalesce(max(id), 0) FROM agents),"
                      " (SELECT coalesce(max(id), 0) FROM work_packages),"
                      " (SELECT listed_through FROM open_packages_floor)",
                      0, NULL, NULL, NULL);
  if (r == NULL)
    return BT_EDB;
  bt_core_load_max_ids(core, (uint64_t)bt_pgr_i64(r, 0, 0),
                       (uint64_t)bt_pgr_i64(r, 0, 1), (uint64_t)bt_pgr_i64(r, 0, 2));
  bt_core_load_listed_through(core, (uint64_t)bt_pgr_i64(r, 0, 3));
  PQclear(r);
  r = query(c,
            /* A completion is its attempt alone (0008); each package
             * completes once (fencing), earlier versions' included. */
            "SELECT 'completed', count(*) FROM attempts WHERE outcome = 'completed'"
            " UNION ALL SELECT state, count(*) FROM work_packages"
            " WHERE state IN ('dead', 'cancelled') GROUP BY state",
            0, NULL, NULL, NULL);
  if (r == NULL)
    return BT_EDB;
  uint64_t done[BT_PKG__COUNT] = {0};
  for (int i = 0; i < PQntuples(r); i++) {
    bt_pkg_state_t s;
    if (bt_pkg_state_parse(bt_pgr_text(r, i, 0), &s) == 0)
      done[s] = (uint64_t)bt_pgr_i64(r, i, 1);
  }
  PQclear(r);
  bt_core_set_finished_counts(core, done[BT_PKG_COMPLETED], done[BT_PKG_DEAD],
                              done[BT_PKG_CANCELLED]);
  return 0;
}

int bt_store_load(const char *dsn, bt_core_t *core, const bt_now_t *now) {
  PGconn *c = connect_blocking(dsn);
  if (c == NULL)
    return BT_EDBDOWN;
  uint64_t packages = 0;
  int rv = load_vendors(c, core);
  if (rv == 0)
    rv = load_agents(c, core);
  if (rv == 0)
    rv = load_packages(c, core, &packages);
  if (rv == 0)
    rv = load_counts(c, core);
  PQfinish(c);
  if (rv != 0)
    return rv;
  bt_core_load_done(core, now);
  bt_log_info("state loaded", "vendors=%zu agents=%zu open_packages=%llu",
              bt_core_vendor_count(core), bt_core_agent_count(core),
              (unsigned long long)packages);
  return 0;
}

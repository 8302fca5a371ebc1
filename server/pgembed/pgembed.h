/*
 * pgembed: the private PostgreSQL cluster of the embedded default.
 *
 * When batond is given no database it runs its own cluster under DATA_DIR/pg:
 * created on first run, started before the event loop, stopped after it. The
 * cluster listens on a unix socket only (no TCP), trusts local connections and
 * keeps the socket owner-only, so only the broker's user (and root) can reach it.
 *
 * Every call here blocks (it forks and waits for initdb and pg_ctl). That is
 * only acceptable because batond calls it before uv_run() and after it returns;
 * never call it from the loop.
 *
 * Layout under DATA_DIR/pg (owned by the PostgreSQL OS user when batond is root):
 *   data/        the cluster (PGDATA); data/baton.conf holds our settings
 *   run/         the socket directory, unless its path is too long for
 *                sun_path; then /tmp/baton-pg-<hash of the absolute path>
 *   server.log   initdb's and the postmaster's own output
 *   batond.lock  held (flock) by the live bt_pg_t so two brokers never share
 *                and then stop the same cluster
 */
#ifndef BT_PGEMBED_H
#define BT_PGEMBED_H

typedef struct bt_pg bt_pg_t;

typedef struct {
  /* Borrowed. The cluster lives in DATA_DIR/pg; created when missing. */
  const char *data_dir;
  /* Borrowed, may be NULL: autodetect from env BATON_PG_BINDIR, then
   * `pg_config --bindir`, then the newest /usr/lib/postgresql/N/bin, then
   * PATH. A directory qualifies only if it has initdb, pg_ctl and postgres. */
  const char *bin_dir;
  /* Borrowed, may be NULL. Only used when we run as root (PostgreSQL refuses
   * root): the OS user the cluster runs as; NULL → "postgres" if that user
   * exists, else "nobody". Ignored when not root: the cluster runs as us. */
  const char *run_as;
} bt_pg_opts_t;

/* Creates the cluster on first run, starts it (or reuses a postmaster a
 * crashed batond left running on the same data dir) and creates the database
 * "baton" if missing. Returns 0 and a new handle in *out (owned by the caller,
 * release with bt_pg_stop), or a negative code after logging one error line:
 * BT_ECONFIG (no binaries, unusable user or path), BT_ECONFLICT (another live
 * batond holds this data dir), BT_EDB (initdb, pg_ctl or the server failed;
 * see DATA_DIR/pg/server.log), or -errno from the filesystem. */
int bt_pg_start(const bt_pg_opts_t *opts, bt_pg_t **out);

/* libpq conninfo of the running cluster, e.g.
 * "host=/var/baton/pg/run port=5432 dbname=baton user=baton". Holds no secret
 * (trust auth over an owner-only socket). Borrowed: valid until bt_pg_stop. */
const char *bt_pg_dsn(const bt_pg_t *pg);

/* Stops the cluster (pg_ctl stop -m fast; -m immediate if that times out) and
 * frees the handle. Returns 0, or BT_EDB if the postmaster would not stop (the
 * handle is freed anyway). Safe on NULL. */
int bt_pg_stop(bt_pg_t *pg);

#endif

/*
 * The start/stop sequence of the embedded PostgreSQL (see pgembed.h for the
 * layout under DATA_DIR/pg).
 *
 * bt_pg_start, in order:
 *   1. resolve the server's OS user and PostgreSQL's binaries;
 *   2. prepare DATA_DIR/pg (owner, permissions) and take batond.lock;
 *   3. first run only: initdb into data.initdb, then rename it to data, so a
 *      crash half way through initdb never leaves a "cluster" that can't start;
 *   4. rewrite data/baton.conf (socket dir, no TCP) on every start, so a moved
 *      data dir or a changed socket dir is picked up;
 *   5. look at postmaster.pid: a live postmaster of this cluster (batond
 *      crashed, PostgreSQL did not) is reused; a dead one's file is left to
 *      PostgreSQL, which handles stale pid files itself, unless its pid is a
 *      zombie or now belongs to another process, which PostgreSQL would take
 *      for a live server: then it is moved aside (see bt_pg__pid_state);
 *   6. pg_ctl start -w, then create the database "baton" if missing.
 *
 * Must never: print on stdout, open a TCP port, log the DSN's secrets (there
 * are none: trust auth over an owner-only socket), or run from the loop.
 */
#include "pgembed.h"

#include "pg_internal.h"

#include "bt_err.h"
#include "bt_log.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PG_PORT 5432 /* only names the socket file; there is no TCP listener */
#define PG_USER "baton"
#define PG_DB "baton"
#define PG_START_TIMEOUT "120" /* seconds; crash recovery can take a while */
#define PG_STOP_TIMEOUT "60"
#define PG_READY_WAIT_MS 60000 /* a reused postmaster still in recovery */

struct bt_pg {
  bt_pg__ident_t ident;
  char *bin_dir;
  char *pg_dir;   /* DATA_DIR/pg, absolute */
  char *pgdata;   /* DATA_DIR/pg/data */
  char *log_path; /* DATA_DIR/pg/server.log */
  char *sock_dir; /* the socket directory in use */
  char *host;     /* conninfo value of the socket dir actually in use */
  int port;
  char *dsn;
  int lock_fd;
  int log_fd; /* server.log, for initdb's and pg_ctl's output */
};

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static char *prog(const bt_pg_t *pg, const char *name) {
  return bt_pg__printf("%s/%s", pg->bin_dir, name);
}

static void pg_free(bt_pg_t *pg) {
  if (pg == NULL)
    return;
  bt_pg__ident_close(&pg->ident);
  free(pg->bin_dir);
  free(pg->pg_dir);
  free(pg->pgdata);
  free(pg->log_path);
  free(pg->sock_dir);
  free(pg->host);
  free(pg->dsn);
  if (pg->lock_fd >= 0)
    close(pg->lock_fd); /* releases the flock */
  if (pg->log_fd >= 0)
    close(pg->log_fd);
  free(pg);
}

/* ---- paths and ownership ------------------------------------------------ */

/* pg_ctl and initdb paste the data dir and log path into /bin/sh command
 * lines inside double quotes; these characters would break out of them. */
static int path_is_shell_safe(const char *p) {
  return strpbrk(p, "\"$`\\\n") == NULL;
}

static int prepare_dirs(bt_pg_t *pg, const char *data_dir) {
  const bt_pg__ident_t *id = &pg->ident;
  if (!path_is_shell_safe(data_dir)) {
    bt_log_error("data directory path must not contain \", $, `, \\ or a "
                 "newline (pg_ctl cannot quote them)",
                 "dir=%s", BT_Q(data_dir));
    return BT_ECONFIG;
  }
  /* The server's user must be able to pass through DATA_DIR; as root we can
   * at least make the directories we create ourselves passable. */
  int rv = bt_pg__mkdirs(data_dir, id->drop ? 0711 : 0700);
  if (rv != 0) {
    bt_log_error("could not create data directory", "dir=%s error=%s",
                 BT_Q(data_dir), BT_Q(bt_strerror(rv)));
    return rv;
  }
  char real[PATH_MAX];
  if (realpath(data_dir, real) == NULL) {
    rv = -errno;
    bt_log_error("could not resolve data directory", "dir=%s error=%s",
                 BT_Q(data_dir), BT_Q(bt_strerror(rv)));
    return rv;
  }
  pg->pg_dir = bt_pg__printf("%s/pg", real);
  pg->pgdata = bt_pg__printf("%s/data", pg->pg_dir);
  pg->log_path = bt_pg__printf("%s/server.log", pg->pg_dir);
  if (!path_is_shell_safe(pg->pg_dir)) { /* a symlink on the way */
    bt_log_error("data directory path must not contain \", $, `, \\ or a "
                 "newline (pg_ctl cannot quote them)",
                 "dir=%s", BT_Q(pg->pg_dir));
    return BT_ECONFIG;
  }
  if (mkdir(pg->pg_dir, 0700) != 0 && errno != EEXIST) {
    rv = -errno;
    bt_log_error("could not create directory", "dir=%s error=%s",
                 BT_Q(pg->pg_dir), BT_Q(bt_strerror(rv)));
    return rv;
  }

  struct stat st;
  if (stat(pg->pg_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    bt_log_error("not a directory", "dir=%s", BT_Q(pg->pg_dir));
    return -ENOTDIR;
  }
  if (id->drop) {
    /* Root hands DATA_DIR/pg to the server's user. A cluster that belongs to
     * someone else (restored from a backup as root, or run_as changed) would
     * make the postmaster refuse "wrong ownership": fix the whole tree. */
    struct stat dst;
    char *version = bt_pg__printf("%s/PG_VERSION", pg->pgdata);
    int whole = stat(version, &dst) == 0 && stat(pg->pgdata, &dst) == 0 &&
                dst.st_uid != id->uid;
    free(version);
    if (whole) {
      bt_log_warn("handing embedded postgresql files to their user",
                  "dir=%s user=%s", BT_Q(pg->pg_dir), BT_Q(id->user));
      rv = bt_pg__chown_tree(pg->pg_dir, id->uid, id->gid);
    } else if (st.st_uid != id->uid && lchown(pg->pg_dir, id->uid, id->gid)) {
      rv = -errno;
    }
    if (rv != 0) {
      bt_log_error("could not change owner", "dir=%s user=%s error=%s",
                   BT_Q(pg->pg_dir), BT_Q(id->user), BT_Q(bt_strerror(rv)));
      return rv;
    }
  } else if (st.st_uid != id->uid) {
    bt_log_error("embedded postgresql directory belongs to another user",
                 "dir=%s", BT_Q(pg->pg_dir));
    return BT_ECONFIG;
  }
  if ((st.st_mode & 0077) != 0 && chmod(pg->pg_dir, 0700) != 0) {
    rv = -errno;
    bt_log_error("could not change mode", "dir=%s error=%s", BT_Q(pg->pg_dir),
                 BT_Q(bt_strerror(rv)));
    return rv;
  }
  rv = bt_pg__user_access(id, pg->pg_dir);
  if (rv != 0) {
    bt_log_error("embedded postgresql directory is not reachable by its user; "
                 "every parent directory needs search (x) permission for it",
                 "dir=%s user=%s error=%s", BT_Q(pg->pg_dir), BT_Q(id->user),
                 BT_Q(bt_strerror(rv)));
    return BT_ECONFIG;
  }
  return 0;
}

/* One live bt_pg_t per cluster: a second batond on the same data dir would
 * reuse the postmaster and then stop it under the first one's feet. flock is
 * released by the kernel when the holder dies, so a crashed batond never
 * blocks its successor. */
static int take_lock(bt_pg_t *pg) {
  char *path = bt_pg__printf("%s/batond.lock", pg->pg_dir);
  pg->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  int rv = 0;
  if (pg->lock_fd < 0) {
    rv = -errno;
    bt_log_error("could not open lock file", "path=%s error=%s", BT_Q(path),
                 BT_Q(bt_strerror(rv)));
  } else if (flock(pg->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    rv = errno == EWOULDBLOCK ? BT_ECONFLICT : -errno;
    if (rv == BT_ECONFLICT)
      bt_log_error("embedded postgresql is in use by another batond", "dir=%s",
                   BT_Q(pg->pg_dir));
    else
      bt_log_error("could not lock", "path=%s error=%s", BT_Q(path),
                   BT_Q(bt_strerror(rv)));
  }
  free(path);
  return rv;
}

static int open_log(bt_pg_t *pg) {
  pg->log_fd = open(pg->log_path,
                    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (pg->log_fd < 0 ||
      (pg->ident.drop && fchown(pg->log_fd, pg->ident.uid, pg->ident.gid) != 0)) {
    int rv = -errno;
    bt_log_error("could not open postgresql log", "path=%s error=%s",
                 BT_Q(pg->log_path), BT_Q(bt_strerror(rv)));
    return rv;
  }
  return 0;
}

/* Appends a marker line to server.log so each of our steps is findable (and
 * so bt_pg__log_detail looks only at the latest step's output). */
static void log_marker(bt_pg_t *pg, const char *what) {
  char line[256];
  int n = snprintf(line, sizeof line, BT_PG__LOG_MARKER "%s (pid %d) ---\n", what,
                   (int)getpid());
  if (n > 0 && write(pg->log_fd, line, (size_t)n) < 0) {
    /* best effort: the log is for humans */
  }
}

/* Logs a failed PostgreSQL step with the last line PostgreSQL wrote, which
 * usually names the actual cause ("could not bind", "wrong ownership", …). */
static int step_failed(bt_pg_t *pg, const char *msg, int code) {
  char last[300];
  bt_pg__log_detail(pg->log_path, last, sizeof last);
  bt_log_error(msg, "exit=%d log=%s detail=%s", code, BT_Q(pg->log_path),
               BT_Q(last));
  return BT_EDB;
}

/* ---- first run: initdb -------------------------------------------------- */

/* A value for postgresql.conf: single-quoted, with ' doubled and \ escaped. */
static char *conf_quote(const char *s) {
  size_t n = strlen(s);
  char *q = malloc(2 * n + 3);
  if (q == NULL)
    abort();
  size_t o = 0;
  q[o++] = '\'';
  for (; *s; s++) {
    if (*s == '\'' || *s == '\\')
      q[o++] = *s;
    q[o++] = *s;
  }
  q[o++] = '\'';
  q[o] = '\0';
  return q;
}

/* Writes path atomically (temp file + rename), owned by the server's user. */
static int write_file(const bt_pg_t *pg, const char *path, const char *text) {
  char *tmp = bt_pg__printf("%s.tmp", path);
  int rv = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                0600);
  size_t len = strlen(text);
  if (fd < 0 || write(fd, text, len) != (ssize_t)len ||
      (pg->ident.drop && fchown(fd, pg->ident.uid, pg->ident.gid) != 0) ||
      fsync(fd) != 0)
    rv = -errno;
  if (fd >= 0)
    close(fd);
  if (rv == 0 && rename(tmp, path) != 0)
    rv = -errno;
  if (rv != 0) {
    unlink(tmp);
    bt_log_error("could not write file", "path=%s error=%s", BT_Q(path),
                 BT_Q(bt_strerror(rv)));
  }
  free(tmp);
  return rv;
}

#define INCLUDE_LINE "include_if_exists = 'baton.conf'"

static int init_cluster(bt_pg_t *pg) {
  char *tmp = bt_pg__printf("%s/data.initdb", pg->pg_dir);
  char *initdb = prog(pg, "initdb");
  int rv = bt_pg__rmtree(tmp); /* left by an initdb that was interrupted */
  if (rv != 0) {
    bt_log_error("could not remove leftover directory", "dir=%s error=%s",
                 BT_Q(tmp), BT_Q(bt_strerror(rv)));
    goto out;
  }
  bt_log_info("creating embedded postgresql cluster", "dir=%s",
              BT_Q(pg->pgdata));
  log_marker(pg, "initdb");
  const char *const argv[] = {initdb,           "-D",       tmp,
                              "-U",             PG_USER,    "-E",
                              "UTF8",           "--locale=C.UTF-8",
                              "--auth=trust",   NULL};
  int code = 0;
  rv = bt_pg__run(&pg->ident, argv, pg->log_fd, &code);
  if (rv != 0) {
    bt_log_error("could not run initdb", "path=%s error=%s", BT_Q(initdb),
                 BT_Q(bt_strerror(rv)));
    goto out;
  }
  if (code != 0) {
    rv = step_failed(pg, "initdb failed", code);
    goto out;
  }
  if (rename(tmp, pg->pgdata) != 0) {
    rv = -errno;
    bt_log_error("could not rename new cluster", "from=%s to=%s error=%s",
                 BT_Q(tmp), BT_Q(pg->pgdata), BT_Q(bt_strerror(rv)));
  }
out:
  free(initdb);
  free(tmp);
  return rv;
}

static int ensure_cluster(bt_pg_t *pg) {
  struct stat st;
  char *version = bt_pg__printf("%s/PG_VERSION", pg->pgdata);
  int have_version = stat(version, &st) == 0;
  int have_dir = stat(pg->pgdata, &st) == 0;
  free(version);
  if (have_version)
    return 0;
  if (have_dir) {
    /* We only ever create data/ by renaming a finished cluster, so this is
     * something else; never initdb over (or delete) it. */
    bt_log_error("directory exists but is not a postgresql cluster; move it "
                 "away",
                 "dir=%s", BT_Q(pg->pgdata));
    return BT_ECONFIG;
  }
  return init_cluster(pg);
}

/* Our settings live in baton.conf (rewritten at every start); the main
 * postgresql.conf only includes it, once, so an operator's own edits there
 * stay untouched. */
static int ensure_include(const bt_pg_t *pg) {
  char *conf = bt_pg__printf("%s/postgresql.conf", pg->pgdata);
  char line[1024];
  int found = 0, rv = 0;
  FILE *f = fopen(conf, "re");
  while (f && !found && fgets(line, sizeof line, f))
    found = strncmp(line, INCLUDE_LINE, strlen(INCLUDE_LINE)) == 0;
  if (f)
    fclose(f);
  if (!found) {
    f = fopen(conf, "ae");
    if (f == NULL)
      rv = -errno;
    else if (fprintf(f, "\n# added by batond\n%s\n", INCLUDE_LINE) < 0)
      rv = -EIO;
    if (f != NULL && fclose(f) != 0 && rv == 0)
      rv = -errno;
    if (rv != 0)
      bt_log_error("could not write file", "path=%s error=%s", BT_Q(conf),
                   BT_Q(bt_strerror(rv)));
  }
  free(conf);
  return rv;
}

static int write_settings(bt_pg_t *pg) {
  /* unix_socket_directories is a list: double quotes keep a path with commas
   * or spaces one entry. */
  char *list = bt_pg__printf("\"%s\"", pg->sock_dir);
  char *qdirs = conf_quote(list);
  char *text = bt_pg__printf(
      "# Written by batond at every start of the embedded cluster; edits are\n"
      "# overwritten. Put your own settings in postgresql.conf.\n"
      "listen_addresses = ''\n"
      "port = %d\n"
      "unix_socket_directories = %s\n"
      "unix_socket_permissions = 0700\n"
      "logging_collector = off\n",
      PG_PORT, qdirs);
  char *path = bt_pg__printf("%s/baton.conf", pg->pgdata);
  int rv = write_file(pg, path, text);
  if (rv == 0)
    rv = ensure_include(pg);
  free(path);
  free(text);
  free(qdirs);
  free(list);
  return rv;
}

/* ---- running ------------------------------------------------------------ */

/* libpq conninfo value: quoted when it holds spaces, quotes or backslashes. */
static char *conninfo_value(const char *v) {
  if (v[0] != '\0' && strpbrk(v, " '\\\t\n") == NULL)
    return bt_pg__strdup(v);
  size_t n = strlen(v);
  char *q = malloc(2 * n + 3);
  if (q == NULL)
    abort();
  size_t o = 0;
  q[o++] = '\'';
  for (; *v; v++) {
    if (*v == '\'' || *v == '\\')
      q[o++] = '\\';
    q[o++] = *v;
  }
  q[o++] = '\'';
  q[o] = '\0';
  return q;
}

static void set_dsn(bt_pg_t *pg, const char *sock_dir, int port) {
  char *dir = bt_pg__strdup(sock_dir); /* sock_dir may be pg->sock_dir */
  free(pg->sock_dir);
  free(pg->host);
  free(pg->dsn);
  pg->sock_dir = dir;
  pg->host = conninfo_value(dir);
  pg->port = port;
  pg->dsn = bt_pg__printf("host=%s port=%d dbname=%s user=%s", pg->host, port,
                          PG_DB, PG_USER);
}

static char *admin_conninfo(const bt_pg_t *pg) {
  /* Same server, maintenance database: "baton" may not exist yet. */
  return bt_pg__printf("host=%s port=%d dbname=postgres user=%s "
                       "connect_timeout=10",
                       pg->host, pg->port, PG_USER);
}

/* Waits until the server accepts connections: a reused postmaster may still
 * be replaying WAL after a crash. Returns 1 when ready. */
static int wait_ready(const bt_pg_t *pg, int wait_ms) {
  char *ci = admin_conninfo(pg);
  int ready = 0;
  for (int waited = 0;; waited += 200) {
    PGPing p = PQping(ci);
    if (p == PQPING_OK) {
      ready = 1;
      break;
    }
    if (p == PQPING_NO_ATTEMPT || waited >= wait_ms)
      break;
    sleep_ms(200);
  }
  free(ci);
  return ready;
}

static int ensure_database(const bt_pg_t *pg) {
  char *ci = admin_conninfo(pg);
  PGconn *c = PQconnectdb(ci);
  free(ci);
  int rv = 0;
  PGresult *r = NULL;
  if (PQstatus(c) != CONNECTION_OK) {
    bt_log_error("could not connect to embedded postgresql", "error=%s",
                 BT_Q(PQerrorMessage(c)));
    rv = BT_EDBDOWN;
    goto out;
  }
  const char *params[] = {PG_DB};
  r = PQexecParams(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL,
                   params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    bt_log_error("could not look up database", "db=%s error=%s", PG_DB,
                 BT_Q(PQresultErrorMessage(r)));
    rv = BT_EDB;
    goto out;
  }
  if (PQntuples(r) == 0) {
    PQclear(r);
    r = PQexec(c, "CREATE DATABASE " PG_DB);
    /* 42P04: a concurrent creator won the race, which is fine. */
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_COMMAND_OK &&
        !(state && strcmp(state, "42P04") == 0)) {
      bt_log_error("could not create database", "db=%s error=%s", PG_DB,
                   BT_Q(PQresultErrorMessage(r)));
      rv = BT_EDB;
      goto out;
    }
    bt_log_info("created database", "db=%s", PG_DB);
  }
out:
  PQclear(r);
  PQfinish(c);
  return rv;
}

/* pg_ctl as the server's user; its output goes to server.log. */
static int pg_ctl(bt_pg_t *pg, const char *const args[], int *code) {
  const char *argv[16];
  char *path = prog(pg, "pg_ctl");
  size_t n = 0;
  argv[n++] = path;
  for (size_t i = 0; args[i] != NULL && n < 15; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  int rv = bt_pg__run(&pg->ident, argv, pg->log_fd, code);
  if (rv != 0)
    bt_log_error("could not run pg_ctl", "path=%s error=%s", BT_Q(path),
                 BT_Q(bt_strerror(rv)));
  free(path);
  return rv;
}

/* Decides from postmaster.pid whether a postmaster already serves this
 * cluster. Returns 1 (reuse it; dsn set), 0 (start one) or a negative code
 * after logging. */
static int find_running(bt_pg_t *pg) {
  bt_pg__pidfile_t pf;
  int rv = bt_pg__read_pidfile(pg->pgdata, &pf);
  if (rv == -ENOENT)
    return 0;
  if (rv != 0) {
    /* A torn or empty pid file: PostgreSQL checks it again on start. */
    bt_log_warn("unreadable postmaster.pid, starting anyway", "dir=%s",
                BT_Q(pg->pgdata));
    return 0;
  }
  bt_pg__pid_state_t state = bt_pg__pid_state(pf.pid, pg->pgdata);
  if (state != BT_PG__PID_OURS && state != BT_PG__PID_UNKNOWN) {
    /* The postmaster is dead. Its backends notice that and exit within
     * moments; until they have, PostgreSQL refuses to start ("shared memory
     * block is still in use"), so give them time. */
    for (int i = 0; i < 50 && bt_pg__cluster_busy(pg->pgdata); i++)
      sleep_ms(100);
    if (bt_pg__cluster_busy(pg->pgdata)) {
      bt_log_error("processes of a dead postmaster still use the cluster; "
                   "stop them first",
                   "dir=%s pid=%d", BT_Q(pg->pgdata), (int)pf.pid);
      bt_pg__pidfile_close(&pf);
      return BT_ECONFLICT;
    }
  }
  switch (state) {
  case BT_PG__PID_GONE:
  case BT_PG__PID_UNKNOWN:
    /* PostgreSQL's own check (kill(pid, 0)) handles these on start. */
    rv = 0;
    break;
  case BT_PG__PID_ZOMBIE:
  case BT_PG__PID_OTHER: {
    /* PostgreSQL would take this pid for a live postmaster and refuse to
     * start; nothing works in the cluster any more (checked above), so the
     * file can go. */
    char *from = bt_pg__printf("%s/postmaster.pid", pg->pgdata);
    char *to = bt_pg__printf("%s/postmaster.pid.stale", pg->pgdata);
    /* The socket's lock file names the same pid and gets the same test. */
    char *own_sock = bt_pg__socket_dir(pg->pg_dir, PG_PORT);
    int port = pf.port > 0 ? pf.port : PG_PORT;
    if (pf.sock_dir)
      bt_pg__drop_socket_lock(pf.sock_dir, port, pf.pid);
    bt_pg__drop_socket_lock(own_sock, port, pf.pid);
    free(own_sock);
    rv = rename(from, to) == 0 ? 0 : -errno;
    if (rv == 0)
      bt_log_warn("set aside postmaster.pid of a dead postmaster",
                  "pid=%d state=%s", (int)pf.pid,
                  state == BT_PG__PID_ZOMBIE ? "zombie" : "recycled");
    else
      bt_log_error("could not move stale postmaster.pid", "path=%s error=%s",
                   BT_Q(from), BT_Q(bt_strerror(rv)));
    free(from);
    free(to);
    break;
  }
  case BT_PG__PID_OURS:
    if (pf.sock_dir == NULL) {
      bt_log_error("running postmaster has no unix socket; stop it first",
                   "dir=%s pid=%d", BT_Q(pg->pgdata), (int)pf.pid);
      rv = BT_ECONFLICT;
      break;
    }
    set_dsn(pg, pf.sock_dir, pf.port > 0 ? pf.port : PG_PORT);
    /* One still starting (crash recovery) gets time; one that says it is
     * ready and does not answer has lost its socket (a /tmp cleaner, say). */
    int ready = strcmp(pf.status, "ready") == 0;
    char *sock = bt_pg__printf("%s/.s.PGSQL.%d", pf.sock_dir, pg->port);
    struct stat st;
    int wait_ms = !ready ? PG_READY_WAIT_MS : stat(sock, &st) == 0 ? 5000 : 0;
    free(sock);
    if (wait_ready(pg, wait_ms)) {
      bt_log_info("reusing running embedded postgresql", "pid=%d",
                  (int)pf.pid);
      rv = 1;
      break;
    }
    /* Restart it; a fast stop signals the postmaster, it needs no socket. */
    bt_log_warn("running embedded postgresql does not answer, restarting it",
                "pid=%d sock_dir=%s status=%s", (int)pf.pid,
                BT_Q(pf.sock_dir), BT_Q(pf.status));
    log_marker(pg, "pg_ctl stop (unreachable)");
    const char *const args[] = {"stop", "-D", pg->pgdata, "-m", "fast", "-w",
                                "-t",   PG_STOP_TIMEOUT,  "-s", NULL};
    int code = 0;
    if ((rv = pg_ctl(pg, args, &code)) == 0 && code != 0)
      rv = step_failed(pg, "could not stop unreachable embedded postgresql",
                       code);
    break;
  }
  bt_pg__pidfile_close(&pf);
  return rv;
}

static int start_server(bt_pg_t *pg) {
  log_marker(pg, "pg_ctl start");
  const char *const args[] = {"start", "-D", pg->pgdata, "-l", pg->log_path,
                              "-w",    "-t", PG_START_TIMEOUT, "-s", NULL};
  int code = 0;
  int rv = pg_ctl(pg, args, &code);
  if (rv != 0)
    return rv;
  if (code != 0)
    return step_failed(pg, "could not start embedded postgresql", code);

  /* The pid file says where the socket really is. */
  bt_pg__pidfile_t pf;
  if (bt_pg__read_pidfile(pg->pgdata, &pf) == 0 && pf.sock_dir != NULL)
    set_dsn(pg, pf.sock_dir, pf.port > 0 ? pf.port : PG_PORT);
  else
    set_dsn(pg, pg->sock_dir, PG_PORT);
  bt_pg__pidfile_close(&pf);
  if (!wait_ready(pg, 10000)) {
    bt_log_error("embedded postgresql started but does not accept "
                 "connections",
                 "log=%s", BT_Q(pg->log_path));
    return BT_EDBDOWN;
  }
  return 0;
}

int bt_pg_start(const bt_pg_opts_t *opts, bt_pg_t **out) {
  *out = NULL;
  if (opts == NULL || opts->data_dir == NULL || opts->data_dir[0] == '\0') {
    bt_log_error("embedded postgresql needs a data directory", NULL);
    return BT_EINVAL;
  }
  bt_pg_t *pg = calloc(1, sizeof *pg);
  if (pg == NULL)
    abort();
  pg->lock_fd = -1;
  pg->log_fd = -1;

  int rv;
  if ((rv = bt_pg__ident_init(&pg->ident, opts->run_as)) != 0)
    goto fail;
  if ((rv = bt_pg__find_bindir(opts->bin_dir, &pg->bin_dir)) != 0)
    goto fail;
  if ((rv = prepare_dirs(pg, opts->data_dir)) != 0)
    goto fail;
  if ((rv = take_lock(pg)) != 0)
    goto fail;
  bt_log_info("starting embedded postgresql", "dir=%s bin_dir=%s user=%s",
              BT_Q(pg->pg_dir), BT_Q(pg->bin_dir), BT_Q(pg->ident.user));
  if ((rv = open_log(pg)) != 0)
    goto fail;
  if ((rv = ensure_cluster(pg)) != 0)
    goto fail;

  rv = find_running(pg);
  if (rv < 0)
    goto fail;
  if (rv == 0) {
    free(pg->sock_dir);
    pg->sock_dir = bt_pg__socket_dir(pg->pg_dir, PG_PORT);
    if ((rv = bt_pg__ensure_socket_dir(&pg->ident, pg->sock_dir)) != 0)
      goto fail;
    if ((rv = write_settings(pg)) != 0)
      goto fail;
    if ((rv = start_server(pg)) != 0)
      goto fail;
  }
  if ((rv = ensure_database(pg)) != 0) {
    /* Leave nothing running that batond will not stop. */
    const char *const args[] = {"stop", "-D", pg->pgdata, "-m", "fast",
                                "-w",   "-s", NULL};
    int code;
    pg_ctl(pg, args, &code);
    goto fail;
  }
  bt_log_info("embedded postgresql ready", "dsn=%s", BT_Q(pg->dsn));
  *out = pg;
  return 0;

fail:
  pg_free(pg);
  return rv;
}

const char *bt_pg_dsn(const bt_pg_t *pg) { return pg ? pg->dsn : NULL; }

/* The /tmp fallback socket dir is recreated at every start; leave /tmp as
 * we found it. rmdir only succeeds once the postmaster removed its files. */
static void remove_tmp_socket_dir(const bt_pg_t *pg) {
  size_t n = strlen(pg->pg_dir);
  if (pg->sock_dir != NULL &&
      !(strncmp(pg->sock_dir, pg->pg_dir, n) == 0 && pg->sock_dir[n] == '/'))
    rmdir(pg->sock_dir);
}

int bt_pg_stop(bt_pg_t *pg) {
  if (pg == NULL)
    return 0;
  int rv = 0, code = 0;
  bt_pg__pidfile_t pf;
  if (bt_pg__read_pidfile(pg->pgdata, &pf) == -ENOENT) {
    /* Someone else stopped it (or it died and PostgreSQL cleaned up). */
    bt_log_warn("embedded postgresql was not running at stop", "dir=%s",
                BT_Q(pg->pgdata));
    goto out;
  }
  bt_pg__pid_state_t state = bt_pg__pid_state(pf.pid, pg->pgdata);
  pid_t pid = pf.pid;
  bt_pg__pidfile_close(&pf);
  if (state != BT_PG__PID_OURS && state != BT_PG__PID_UNKNOWN) {
    /* It died without cleaning up; the next start handles the leftovers.
     * (pg_ctl would wait out its whole timeout on a zombie.) */
    bt_log_warn("embedded postgresql had already exited", "pid=%d", (int)pid);
    goto out;
  }
  bt_log_info("stopping embedded postgresql", "dir=%s", BT_Q(pg->pg_dir));
  log_marker(pg, "pg_ctl stop");
  const char *const fast[] = {"stop", "-D", pg->pgdata, "-m", "fast", "-w",
                              "-t",   PG_STOP_TIMEOUT,  "-s", NULL};
  if (pg_ctl(pg, fast, &code) == 0 && code == 0)
    goto out;
  /* A fast stop waits for nothing but can still time out on a hung backend;
   * immediate is crash-safe (WAL replay at the next start). */
  bt_log_warn("embedded postgresql did not stop in time, stopping immediately",
              "exit=%d", code);
  const char *const immediate[] = {"stop", "-D", pg->pgdata, "-m", "immediate",
                                   "-w",   "-s", NULL};
  if (pg_ctl(pg, immediate, &code) != 0 || code != 0) {
    step_failed(pg, "could not stop embedded postgresql", code);
    rv = BT_EDB;
  }
out:
  if (rv == 0)
    remove_tmp_socket_dir(pg);
  pg_free(pg);
  return rv;
}

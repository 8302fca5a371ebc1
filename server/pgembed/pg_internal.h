/*
 * Internals of server/pgembed shared between its files; not part of the API.
 *   pg_spawn.c  running PostgreSQL's programs as the server's OS user
 *   pg_fs.c     binaries, directories, the socket dir, postmaster.pid
 *   pgembed.c   the start/stop sequence
 */
#ifndef BT_PG_INTERNAL_H
#define BT_PG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Who PostgreSQL's programs run as, and with which environment. */
typedef struct {
  int drop;          /* 1: we are root; children switch to uid/gid first */
  uid_t uid;         /* the server's user (ours when not root) */
  gid_t gid;
  gid_t *groups;     /* supplementary groups of the user, resolved up front */
  int ngroups;
  char *user;        /* user name, for messages */
  char **envp;       /* our environment minus PG* variables */
} bt_pg__ident_t;

/* Resolves the server's user: ourselves when not root; else run_as, or
 * "postgres" when that user exists, else "nobody". Returns 0, or BT_ECONFIG
 * after logging (unknown user, or a user that is root itself). */
int bt_pg__ident_init(bt_pg__ident_t *id, const char *run_as);
void bt_pg__ident_close(bt_pg__ident_t *id);

/* Runs argv[0] (an absolute path) as the server's user with stdin from
 * /dev/null and stdout+stderr appended to out_fd (-1: /dev/null); waits for
 * it. Borrows everything. Returns 0 and the exit code in *code (128+signal
 * when killed), or -errno when it could not be started. */
int bt_pg__run(const bt_pg__ident_t *id, const char *const argv[], int out_fd,
               int *code);

/* Runs argv (searched in PATH) as ourselves and returns the first line of its
 * stdout in buf (NUL-terminated, newline stripped). Returns 0 when it exited 0
 * with output, else a negative code. Nothing is logged. */
int bt_pg__capture(const char *const argv[], char *buf, size_t len);

/* Whether the server's user can read, write and enter path. Returns 0 or a
 * negative errno (e.g. -EACCES: a parent directory is closed to it). */
int bt_pg__user_access(const bt_pg__ident_t *id, const char *path);

/* Finds a directory holding initdb, pg_ctl and postgres; see bt_pg_opts_t.
 * Returns 0 and a malloc'ed path in *out, or BT_ECONFIG after logging. */
int bt_pg__find_bindir(const char *explicit_dir, char **out);

/* mkdir -p; new directories get mode. Returns 0 or -errno. */
int bt_pg__mkdirs(const char *path, mode_t mode);
/* rm -rf without following symlinks. Returns 0 or -errno. */
int bt_pg__rmtree(const char *path);
/* chown -R without following symlinks. Returns 0 or -errno. */
int bt_pg__chown_tree(const char *path, uid_t uid, gid_t gid);

/* The socket directory for a cluster whose files live in pg_dir (absolute):
 * pg_dir/run when pg_dir/run/.s.PGSQL.<port> fits in sun_path, else
 * /tmp/baton-pg-<FNV-1a of pg_dir>, stable across restarts. Returns owned. */
char *bt_pg__socket_dir(const char *pg_dir, int port);

/* Creates the socket directory 0700 owned by the server's user, or checks an
 * existing one (a real directory, not a symlink, owned by that user; one of
 * ours left owned by root is handed over). Returns 0, or a negative code
 * after logging. */
int bt_pg__ensure_socket_dir(const bt_pg__ident_t *id, const char *dir);

/* What postmaster.pid in pgdata says. */
typedef struct {
  pid_t pid;
  int port;
  char *sock_dir; /* owned; NULL when the server has no unix socket */
  char status[16]; /* "starting", "ready", "stopping", "standby" or "" */
} bt_pg__pidfile_t;

/* Reads pgdata/postmaster.pid. Returns 0, -ENOENT when there is none (the
 * cluster is stopped), or another negative code. */
int bt_pg__read_pidfile(const char *pgdata, bt_pg__pidfile_t *out);
void bt_pg__pidfile_close(bt_pg__pidfile_t *pf);

typedef enum {
  BT_PG__PID_GONE,    /* no such process: a stale pid file, PG handles it */
  BT_PG__PID_ZOMBIE,  /* exited but not reaped (a non-reaping init) */
  BT_PG__PID_OTHER,   /* alive, but not a process working in pgdata */
  BT_PG__PID_OURS,    /* alive with its cwd in pgdata: a live postmaster */
  BT_PG__PID_UNKNOWN, /* alive, can't tell (another user's process) */
} bt_pg__pid_state_t;

/* Classifies the pid of a postmaster.pid (PostgreSQL's processes all chdir to
 * the data directory, which is how a recycled pid is told apart). */
bt_pg__pid_state_t bt_pg__pid_state(pid_t pid, const char *pgdata);

/* Whether any live process has its cwd in pgdata (a postmaster or one of its
 * backends still attached to the cluster). */
int bt_pg__cluster_busy(const char *pgdata);

/* Removes dir/.s.PGSQL.<port>.lock when it names dead_pid: like
 * postmaster.pid, it would make PostgreSQL refuse to start while that pid is
 * a zombie. Only call after checking the cluster is idle. */
void bt_pg__drop_socket_lock(const char *dir, int port, pid_t dead_pid);

/* Starts each step's output in server.log. */
#define BT_PG__LOG_MARKER "--- batond: "

/* The line of server.log that best explains the latest failure, in buf: the
 * last FATAL/PANIC/ERROR/error line after the latest marker, else the last
 * line that is not pg_ctl's generic advice; "" when unreadable. Returns buf. */
char *bt_pg__log_detail(const char *path, char *buf, size_t len);

/* Formatting that aborts on out of memory. Returns owned. */
char *bt_pg__strdup(const char *s);
char *bt_pg__printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

/*
 * batond — the Baton broker. Wiring only: configuration → database (the
 * embedded cluster when none is given) → migrations → shell → loop → shutdown.
 * See DESIGN.md and CONTRACT.md for what the pieces do.
 */
#include "bt_auth.h"
#include "bt_err.h"
#include "bt_log.h"
#include "bt_user.h"
#include "cfg.h"
#include "lease.h"
#include "pgembed.h"
#include "shell.h"
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static const char usage[] =
    "usage: batond [serve] [--config FILE] [--db DSN] [--data-dir DIR]\n"
    "              [--agents ENDPOINT] [--control PATH|tcp://HOST:PORT]\n"
    "              [--admin-token TOKEN] [--metrics HOST:PORT]\n"
    "              [--log-level debug|info|warn|error] [--user NAME]\n"
    "              [--set KEY=VALUE]...\n"
    "       batond migrate [--db DSN | --data-dir DIR]\n"
    "       batond --version | --help\n"
    "\n"
    "With no database, batond runs a private PostgreSQL under DATA_DIR/pg\n"
    "(created on first run, stopped on exit). Settings come from flags, then the\n"
    "environment (BATON_DB, BATON_DATA_DIR, BATON_AGENTS, BATON_CONTROL,\n"
    "BATON_METRICS, BATON_ADMIN_TOKEN), then the config file, then defaults;\n"
    "--set sets any key of the config file (see deploy/baton.conf).\n"
    "\n"
    "Several batond may share one database: one leads (holds the leader lease and\n"
    "binds its endpoints), the others wait as standbys and take over when it stops\n"
    "renewing (keys leader_lease, standby_poll). A broker that lost the lease to\n"
    "another exits with status 75 (restart it: it comes back a standby).\n"
    "\n"
    "--user NAME (root only; env BATON_USER, key user): once the embedded\n"
    "PostgreSQL is up (it then runs as NAME too) and the sockets are bound, batond\n"
    "hands DATA_DIR and the control socket to NAME and switches to it for good.\n"
    "\n"
    "SIGHUP reloads: the whole configuration is read again (defaults, the file,\n"
    "the environment, the flags) and every key that may change at run time takes\n"
    "its new value (logged, audited as config.reload); a changed key that needs a\n"
    "restart is named in a warning and keeps its running value; a file that does\n"
    "not parse changes nothing. `batonctl config set` changes the running broker\n"
    "only, not the file: the next SIGHUP re-reads the file, and the file wins.\n";

/* A broker that finds another one took the leader lease exits with this
 * (EX_TEMPFAIL): its supervisor restarts it, and it comes back a standby. */
#define EXIT_LOST_LEADERSHIP 75

typedef struct {
  uv_loop_t loop;
  uv_signal_t sig_term, sig_int, sig_hup;
  bt_lease_t *lease;
  bt_shell_t *shell;
  int signals;
  bool stopping;
  int exit_code;
  int64_t epoch;
  /* what the shell is made of once this broker leads */
  const bt_config_t *cfg;
  const char *dsn;
  const char *control;
  const char *holder;
  const bt_user_t *user;
  bt_pg_t *pg; /* the private PostgreSQL of the embedded default, or NULL */
  /* the command line, read again on SIGHUP */
  int argc;
  char **argv;
} app_t;

static void on_signal_closed(uv_handle_t *h) { (void)h; }

static void close_signals(app_t *app) {
  uv_close((uv_handle_t *)&app->sig_term, on_signal_closed);
  uv_close((uv_handle_t *)&app->sig_int, on_signal_closed);
  uv_close((uv_handle_t *)&app->sig_hup, on_signal_closed);
}

static void on_lease_closed(void *arg) {
  app_t *app = arg;
  app->lease = NULL;
  close_signals(app);
}

/* The shell is gone: give the lease up (a standby takes over at once). */
static void on_stopped(void *arg) {
  app_t *app = arg;
  app->shell = NULL;
  bt_lease_stop(app->lease, on_lease_closed, app);
}

static void on_signal(uv_signal_t *s, int signum) {
  app_t *app = s->data;
  if (++app->signals > 1) {
    bt_log_warn("second signal: exiting without waiting for pending commits",
                "signal=%d", signum);
    /* Not without the private PostgreSQL: left running, it would outlive us
     * (Ctrl-C in a terminal reaches both batond and a wrapper such as
     * deploy/dev.sh, which then sends SIGTERM too). Its fast stop rolls back
     * what is not committed, and nothing uncommitted was acknowledged.
     * Blocking, but the loop is being abandoned. */
    if (app->pg != NULL)
      bt_pg_stop(app->pg);
    exit(1);
  }
  bt_log_info("signal received: stopping", "signal=%d", signum);
  app->stopping = true;
  app->exit_code = 0;
  if (app->shell)
    bt_shell_stop(app->shell, on_stopped, app);
  else if (app->lease)
    bt_lease_stop(app->lease, on_lease_closed, app); /* a standby */
}

/* Another broker leads now. Nothing of this one may be written any more (the
 * store's fence refuses it anyway), nothing is waiting that was acknowledged,
 * and the new leader rebuilds from the database: leave at once, the way a
 * crash would, without flushing or handing anything back. */
static void on_lost(void *arg, const char *why) {
  app_t *app = arg;
  bt_log_error("lost leadership: stepping down", "epoch=%lld reason=%s exit=%d",
               (long long)app->epoch, BT_Q(why), EXIT_LOST_LEADERSHIP);
  _exit(EXIT_LOST_LEADERSHIP);
}

static void check_lease(void *arg) {
  app_t *app = arg;
  bt_lease_check(app->lease);
}

static void on_fenced(void *arg) {
  on_lost(arg, "a write was refused: another broker holds the leader lease");
}

/* Creates the data directory when it does not exist: owner-only, except that
 * a root broker with the embedded PostgreSQL must let the postgres user pass
 * through to DATA_DIR/pg (0711: others may traverse, not list). */
static int ensure_data_dir(const char *dir, bool embedded) {
  struct stat st;
  if (stat(dir, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      bt_log_error("data directory is not a directory", "path=%s", BT_Q(dir));
      return BT_ECONFIG;
    }
    if (st.st_mode & 0022)
      bt_log_warn("data directory is writable by others; the control socket should "
                  "live in a private directory",
                  "path=%s mode=%03o", BT_Q(dir), st.st_mode & 0777);
    return 0;
  }
  mode_t mode = embedded && geteuid() == 0 ? 0711 : 0700;
  if (mkdir(dir, mode) != 0 || chmod(dir, mode) != 0) {
    bt_log_error("could not create the data directory", "path=%s error=%s", BT_Q(dir),
                 strerror(errno));
    return -errno;
  }
  return 0;
}

/* Loads the whole configuration into cfg (which holds the defaults): the
 * config file (--config or BATON_CONFIG), the environment, then the flags,
 * which win. Runs at start and again on SIGHUP with the same argv, so it
 * leaves argv as it found it. Returns 0, or 2 with the reason in err
 * (*show_usage: the usage text should follow). --help and --version exit here. */
static int load_config(int argc, char **argv, bt_config_t *cfg, int *migrate, char *err,
                       size_t err_len, bool *show_usage) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"db", required_argument, NULL, 'd'},
      {"data-dir", required_argument, NULL, 'D'},
      {"agents", required_argument, NULL, 'a'},
      {"control", required_argument, NULL, 'C'},
      {"metrics", required_argument, NULL, 'm'},
      {"log-level", required_argument, NULL, 'l'},
      {"admin-token", required_argument, NULL, 't'},
      {"user", required_argument, NULL, 'u'},
      {"set", required_argument, NULL, 's'},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int first = 1;
  *migrate = 0;
  *show_usage = false;
  if (argc > 1 && argv[1][0] != '-') {
    if (strcmp(argv[1], "migrate") == 0)
      *migrate = 1;
    else if (strcmp(argv[1], "serve") != 0) {
      snprintf(err, err_len, "unknown command \"%s\"", argv[1]);
      *show_usage = true;
      return 2;
    }
    first = 2;
  }
  /* The config file first, so flags and the environment override it. */
  const char *config = getenv("BATON_CONFIG");
  for (int i = first; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      config = argv[i + 1];
    else if (strncmp(argv[i], "--config=", 9) == 0)
      config = argv[i] + 9;
  }
  if (config != NULL && bt_cfg_load_file(cfg, config, err, err_len) != 0)
    return 2;
  if (bt_cfg_load_env(cfg, err, err_len) != 0)
    return 2;
  /* getopt sees argv[sub] as the program name. optind = 0 makes glibc start a
   * fresh scan, which the SIGHUP reload needs (a second scan of the same argv). */
  int sub = first - 1;
  optind = 0;
  int c;
  while ((c = getopt_long(argc - sub, argv + sub, "h", opts, NULL)) != -1) {
    const char *key = NULL;
    const char *val = optarg;
    char set_key[128];
    const char *eq;
    switch (c) {
    case 'c':
      continue;
    case 'd': key = "db"; break;
    case 'D': key = "data_dir"; break;
    case 'a': key = "agents"; break;
    case 'C': key = "control"; break;
    case 'm': key = "metrics"; break;
    case 'l': key = "log_level"; break;
    case 't': key = "admin_token"; break;
    case 'u': key = "user"; break;
    case 's':
      /* Split into a copy: argv is read again on SIGHUP. */
      eq = strchr(optarg, '=');
      if (eq == NULL || (size_t)(eq - optarg) >= sizeof set_key) {
        snprintf(err, err_len, "--set takes KEY=VALUE, not \"%s\"", optarg);
        return 2;
      }
      memcpy(set_key, optarg, (size_t)(eq - optarg));
      set_key[eq - optarg] = '\0';
      key = set_key;
      val = eq + 1;
      break;
    case 'V':
      printf("batond %s\n", BATON_VERSION);
      exit(0);
    case 'h':
      fputs(usage, stdout);
      exit(0);
    default:
      snprintf(err, err_len, "bad option");
      *show_usage = true;
      return 2;
    }
    if (bt_cfg_set(cfg, key, val, err, err_len) != 0)
      return 2;
  }
  if (optind < argc - sub) {
    snprintf(err, err_len, "unexpected argument \"%s\"", argv[sub + optind]);
    *show_usage = true;
    return 2;
  }
  return 0;
}

/* SIGHUP: the whole configuration is read again into a fresh bt_config_t and
 * handed to the shell, which applies what may change at run time. This reads
 * the config file with inih on the loop thread — a blocking read, but of one
 * small local file, once per signal, and it keeps the reload atomic with
 * respect to every other event; nothing else here blocks. */
static void on_hup(uv_signal_t *s, int signum) {
  (void)signum;
  app_t *app = s->data;
  if (app->shell == NULL || app->stopping)
    return;
  bt_log_info("SIGHUP: reloading the configuration", NULL);
  bt_config_t cfg;
  bt_cfg_init(&cfg);
  int migrate;
  bool show_usage;
  char err[400] = "";
  if (load_config(app->argc, app->argv, &cfg, &migrate, err, sizeof err, &show_usage) != 0)
    bt_log_error("could not reload the configuration; nothing changed", "error=%s",
                 BT_Q(err));
  else
    bt_shell_reload(app->shell, &cfg);
  bt_cfg_free(&cfg);
}

/* --- dropping root (--user) -------------------------------------------------- */

/* Hands a path batond created as root to the user it is about to become: the
 * data directory (so the broker can still create and remove files in it) and
 * the control socket (so it is the broker's own, as when started as that user).
 * Not recursive: DATA_DIR/pg already belongs to PostgreSQL's user. */
static int give_to(const bt_user_t *u, const char *path) {
  if (lchown(path, u->uid, u->gid) != 0) {
    bt_log_error("could not hand a path to the --user", "path=%s user=%s error=%s", BT_Q(path),
                 BT_Q(u->name), strerror(errno));
    return -errno;
  }
  return 0;
}

/* Switches to the --user for good (bt_user_switch); setuid changes every
 * thread (glibc), so nanomsg's and libuv's threads follow. Returns 0, or -1
 * after logging: the caller must not go on serving as root. */
static int drop_privileges(const bt_user_t *u) {
  char err[300];
  if (bt_user_switch(u, err, sizeof err) != 0) {
    bt_log_error("could not drop root privileges", "user=%s error=%s", BT_Q(u->name),
                 BT_Q(err));
    return -1;
  }
  bt_log_info("dropped root privileges", "user=%s uid=%u gid=%u", BT_Q(u->name),
              (unsigned)u->uid, (unsigned)u->gid);
  return 0;
}

/* Every agent connection costs the broker a few descriptors (its TCP socket,
 * nanomsg's internal ones), so the usual soft limit of 1024 would stop it near
 * a few hundred agents; the hard limit is what the operator allows. */
static void raise_fd_limit(void) {
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
      bt_log_warn("could not raise the open file limit", "error=%s", BT_Q(strerror(errno)));
  }
}

/* This broker holds the leader lease: load the state, bind, serve. */
static void on_leader(void *arg, int64_t epoch, const char *previous) {
  app_t *app = arg;
  app->epoch = epoch;
  if (app->stopping)
    return; /* a signal came first; the lease is being given up */
  bt_shell_lead_t lead = {.epoch = epoch, .holder = app->holder, .previous = previous,
                          .fenced = on_fenced, .check = check_lease, .arg = app};
  if (bt_shell_new(&app->loop, app->cfg, app->dsn, app->control, &lead, &app->shell) != 0) {
    app->shell = NULL;
    app->stopping = true;
    bt_lease_stop(app->lease, on_lease_closed, app);
    return;
  }
  /* Everything that may need root is open: the embedded cluster, the agent
   * endpoint, the metrics port and the control socket. */
  const bt_user_t *user = app->user;
  if (user->uid != 0 &&
      ((strncmp(app->control, "tcp://", 6) != 0 && give_to(user, app->control) != 0) ||
       drop_privileges(user) != 0)) {
    app->stopping = true;
    bt_shell_stop(app->shell, on_stopped, app);
    return;
  }
  bt_log_info("batond serving", "version=%s agents=%s control=%s epoch=%lld",
              BATON_VERSION, BT_Q(app->cfg->agents), BT_Q(app->control), (long long)epoch);
}

int main(int argc, char **argv) {
  bt_config_t cfg;
  bt_cfg_init(&cfg);
  int migrate = 0;
  bool show_usage = false;
  char err[400] = "";
  int rc = load_config(argc, argv, &cfg, &migrate, err, sizeof err, &show_usage);
  if (rc != 0) {
    fprintf(stderr, "batond: %s\n%s", err, show_usage ? usage : "");
    bt_cfg_free(&cfg);
    return rc;
  }
  bt_log_level_t level;
  bt_log_parse_level(cfg.log_level, &level);
  bt_log_set_level(level);
  bt_log_nonblocking(); /* a blocked stderr must not stop the loop */
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  if (bt_auth_init() != 0) {
    bt_log_error("could not initialise libsodium", NULL);
    return 1;
  }

  bt_user_t user = {0};
  if (cfg.user != NULL && !migrate) {
    char uerr[300];
    if (bt_user_resolve(cfg.user, &user, uerr, sizeof uerr) != 0) {
      fprintf(stderr, "batond: %s\n", uerr);
      bt_cfg_free(&cfg);
      return 2;
    }
    /* After the switch batond can neither reach (owner-only socket) nor stop
     * (pg_ctl as its user) a cluster that runs as someone else. */
    if (cfg.db == NULL && cfg.pg_user != NULL && strcmp(cfg.pg_user, user.name) != 0) {
      fprintf(stderr,
              "batond: --user %s with the embedded PostgreSQL needs pg_user unset or the "
              "same user, not %s\n",
              user.name, cfg.pg_user);
      bt_cfg_free(&cfg);
      return 2;
    }
  }

  int exit_code = 1;
  bt_pg_t *pg = NULL;
  char control[4096];
  const char *dsn = cfg.db;
  if (ensure_data_dir(cfg.data_dir, dsn == NULL) != 0)
    goto out;
  if (user.uid != 0 && give_to(&user, cfg.data_dir) != 0)
    goto out;
  if (dsn == NULL) {
    bt_pg_opts_t po = {.data_dir = cfg.data_dir, .bin_dir = cfg.pg_bin_dir,
                       .run_as = cfg.pg_user ? cfg.pg_user : user.uid ? user.name : NULL};
    if (bt_pg_start(&po, &pg) != 0)
      goto out;
    dsn = bt_pg_dsn(pg);
  }
  /* Every session of this broker carries its name, so a standby that takes
   * over from it can end them (server/lead/lease.c). */
  char holder[64];
  bt_lease_holder_name(holder, sizeof holder);
  setenv("PGAPPNAME", holder, 1);
  unsigned applied = 0;
  if ((rc = bt_store_migrate(dsn, &applied)) != 0) {
    bt_log_error("could not apply migrations", "error=%s", bt_strerror(rc));
    goto out;
  }
  bt_log_info(applied ? "migrations applied" : "schema up to date", "applied=%u",
              applied);
  if (migrate) {
    exit_code = 0;
    goto out;
  }
  snprintf(control, sizeof control, "%s", cfg.control ? cfg.control : "");
  if (cfg.control == NULL)
    snprintf(control, sizeof control, "%s/baton.sock", cfg.data_dir);

  app_t app;
  memset(&app, 0, sizeof app);
  app.cfg = &cfg;
  app.dsn = dsn;
  app.control = control;
  app.user = &user;
  app.holder = holder;
  app.pg = pg;
  app.exit_code = 1;
  uv_loop_init(&app.loop);
  uv_signal_init(&app.loop, &app.sig_term);
  uv_signal_init(&app.loop, &app.sig_int);
  uv_signal_init(&app.loop, &app.sig_hup);
  app.sig_term.data = app.sig_int.data = app.sig_hup.data = &app;
  app.argc = argc;
  app.argv = argv;
  uv_signal_start(&app.sig_term, on_signal, SIGTERM);
  uv_signal_start(&app.sig_int, on_signal, SIGINT);
  uv_signal_start(&app.sig_hup, on_hup, SIGHUP);
  bt_lease_opts_t lo = {.lease_ms = cfg.leader_lease_ms,
                        .standby_poll_ms = cfg.standby_poll_ms,
                        .holder = holder};
  static const bt_lease_events_t lev = {.acquired = on_leader, .lost = on_lost};
  if (bt_lease_start(&app.loop, dsn, &lo, &lev, &app, &app.lease) != 0)
    close_signals(&app);
  uv_run(&app.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&app.loop) != 0)
    bt_log_warn("handles left open at exit", NULL);
  bt_log_info("batond stopped", NULL);
  exit_code = app.exit_code;
out:
  if (pg != NULL && bt_pg_stop(pg) != 0)
    exit_code = 1;
  bt_cfg_free(&cfg);
  return exit_code;
}

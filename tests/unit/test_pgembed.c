/*
 * server/pgembed against a real PostgreSQL: first start (initdb), restart
 * with data kept, reuse of a postmaster left running by a crashed broker, a
 * postmaster killed with its broker, refusal of a second broker, a data dir
 * path too long for sun_path (and with spaces), missing binaries.
 *
 * The tests run in order and share one temp dir; each cluster costs an initdb
 * (a few seconds). Crashes are real: a forked child starts the cluster and
 * _exit()s without stopping it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "pgembed.h"

#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char root[64];        /* the test's temp dir */
static char main_dir[PATH_MAX];
static char long_dir[PATH_MAX];
static bt_pg_t *open_handles[8]; /* stopped in teardown if a test failed */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bt_pg_t *start_ok(const char *dir) {
  bt_pg_opts_t o = {.data_dir = dir};
  bt_pg_t *pg = NULL;
  int rv = bt_pg_start(&o, &pg);
  if (rv != 0)
    fail_msg("bt_pg_start failed: %s", bt_strerror(rv));
  assert_non_null(pg);
  for (size_t i = 0; i < 8; i++) {
    if (open_handles[i] == NULL) {
      open_handles[i] = pg;
      break;
    }
  }
  return pg;
}

static void stop_ok(bt_pg_t *pg) {
  for (size_t i = 0; i < 8; i++)
    if (open_handles[i] == pg)
      open_handles[i] = NULL;
  assert_int_equal(bt_pg_stop(pg), 0);
}

/* Runs sql and returns the first column of the first row as a number (0 when
 * there is no row). */
static long query(const char *dsn, const char *sql) {
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK)
    fail_msg("connect %s: %s", dsn, PQerrorMessage(c));
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  long v = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? atol(PQgetvalue(r, 0, 0))
                                                     : 0;
  PQclear(r);
  PQfinish(c);
  return v;
}

static pid_t postmaster_pid(const char *dir) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/pg/data/postmaster.pid", dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  long pid = 0;
  if (fscanf(f, "%ld", &pid) != 1)
    pid = 0;
  fclose(f);
  return (pid_t)pid;
}

/* Dead or a zombie (this machine's init may never reap orphans). */
static int is_dead(pid_t pid) {
  if (kill(pid, 0) != 0)
    return 1;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' && rp[2] == 'Z';
}

/* A broker that crashes: start in a child that exits without stopping, after
 * killing its postmaster too when kill_pm is set. Returns the postmaster pid. */
static pid_t crashed_broker(const char *dir, int kill_pm) {
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    bt_pg_opts_t o = {.data_dir = dir};
    bt_pg_t *pg = NULL;
    if (bt_pg_start(&o, &pg) != 0)
      _exit(1);
    if (kill_pm && kill(postmaster_pid(dir), SIGKILL) != 0)
      _exit(2);
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(child, &st, 0), child);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  pid_t pm = postmaster_pid(dir);
  assert_true(pm > 0);
  return pm;
}

static void test_pgembed_first_start_creates_cluster(void **state) {
  (void)state;
  bt_pg_t *pg = start_ok(main_dir);
  const char *dsn = bt_pg_dsn(pg);
  assert_non_null(strstr(dsn, "dbname=baton"));
  assert_non_null(strstr(dsn, "user=baton"));
  assert_int_equal(query(dsn, "SELECT 1"), 1);
  /* Unix socket only. */
  assert_int_equal(query(dsn, "SELECT count(*) FROM pg_settings WHERE name = "
                              "'listen_addresses' AND setting = ''"),
                   1);
  query(dsn, "CREATE TABLE kept (x int)");
  query(dsn, "INSERT INTO kept VALUES (42)");

  char path[PATH_MAX + 32];
  struct stat st;
  snprintf(path, sizeof path, "%s/pg/server.log", main_dir);
  assert_int_equal(stat(path, &st), 0);
  assert_true(st.st_size > 0);
  snprintf(path, sizeof path, "%s/pg/run", main_dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);

  pid_t pm = postmaster_pid(main_dir);
  assert_true(pm > 0);
  stop_ok(pg);
  assert_int_equal(postmaster_pid(main_dir), 0);
}

static void test_pgembed_restart_keeps_data(void **state) {
  (void)state;
  bt_pg_t *pg = start_ok(main_dir);
  assert_int_equal(query(bt_pg_dsn(pg), "SELECT x FROM kept"), 42);
  stop_ok(pg);
}

static void test_pgembed_refuses_second_broker(void **state) {
  (void)state;
  bt_pg_t *pg = start_ok(main_dir);
  bt_pg_opts_t o = {.data_dir = main_dir};
  bt_pg_t *other = NULL;
  assert_int_equal(bt_pg_start(&o, &other), BT_ECONFLICT);
  assert_null(other);
  /* The refusal must not have touched the running cluster. */
  assert_int_equal(query(bt_pg_dsn(pg), "SELECT x FROM kept"), 42);
  stop_ok(pg);
}

static void test_pgembed_reuses_postmaster_of_crashed_broker(void **state) {
  (void)state;
  pid_t pm = crashed_broker(main_dir, 0);
  assert_false(is_dead(pm));
  bt_pg_t *pg = start_ok(main_dir);
  assert_int_equal(postmaster_pid(main_dir), pm); /* reused, not restarted */
  assert_int_equal(query(bt_pg_dsn(pg), "SELECT x FROM kept"), 42);
  stop_ok(pg);
  for (int i = 0; i < 100 && !is_dead(pm); i++)
    sleep_ms(50);
  assert_true(is_dead(pm));
}

static void test_pgembed_recovers_from_killed_postmaster(void **state) {
  (void)state;
  /* Broker and postmaster both die (kill -9): postmaster.pid stays behind. */
  pid_t pm = crashed_broker(main_dir, 1);
  for (int i = 0; i < 100 && !is_dead(pm); i++)
    sleep_ms(50);
  assert_true(is_dead(pm));
  bt_pg_t *pg = start_ok(main_dir);
  pid_t now = postmaster_pid(main_dir);
  assert_true(now > 0 && now != pm);
  assert_int_equal(query(bt_pg_dsn(pg), "SELECT x FROM kept"), 42);
  stop_ok(pg);
}

/* The postmaster dies under a running broker: stop must not hang on it (a
 * zombie here, as this machine's init never reaps), and the next start
 * recovers. */
static void test_pgembed_stop_after_postmaster_died(void **state) {
  (void)state;
  bt_pg_t *pg = start_ok(main_dir);
  pid_t pm = postmaster_pid(main_dir);
  assert_int_equal(kill(pm, SIGKILL), 0);
  for (int i = 0; i < 100 && !is_dead(pm); i++)
    sleep_ms(50);
  time_t t0 = time(NULL);
  stop_ok(pg);
  assert_true(time(NULL) - t0 < 10);

  pg = start_ok(main_dir);
  assert_int_equal(query(bt_pg_dsn(pg), "SELECT x FROM kept"), 42);
  stop_ok(pg);
}

/* Replaces the pid on the first line of a PostgreSQL lock file. */
static void forge_lock(const char *path, const char *saved, pid_t pid) {
  const char *rest = strchr(saved, '\n');
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "%d%s", (int)pid, rest ? rest : "\n");
  fclose(f);
}

static char *slurp(const char *path) {
  static char buf[2][4096];
  static int next;
  char *b = buf[next++ % 2];
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(b, 1, sizeof buf[0] - 1, f);
  b[n] = '\0';
  fclose(f);
  return b;
}

/* postmaster.pid and the socket lock left by a postmaster that died long ago
 * (after a reboot, say), once with a pid nobody has and once with a pid that
 * a different process got since. The first case is PostgreSQL's own stale
 * pid handling; the second would make it refuse to start. */
static void test_pgembed_ignores_stale_pid_files(void **state) {
  (void)state;
  char pidfile[PATH_MAX + 32], socklock[PATH_MAX + 32];
  snprintf(pidfile, sizeof pidfile, "%s/pg/data/postmaster.pid", main_dir);
  snprintf(socklock, sizeof socklock, "%s/pg/run/.s.PGSQL.5432.lock", main_dir);

  pid_t sleeper = fork();
  assert_true(sleeper >= 0);
  if (sleeper == 0) {
    execlp("sleep", "sleep", "60", (char *)NULL);
    _exit(127);
  }
  pid_t dead = fork();
  assert_true(dead >= 0);
  if (dead == 0)
    _exit(0);
  assert_int_equal(waitpid(dead, NULL, 0), dead); /* reaped: truly gone */

  const pid_t fakes[] = {dead, sleeper};
  for (size_t i = 0; i < 2; i++) {
    bt_pg_t *pg = start_ok(main_dir);
    char saved_pid[4096], saved_sock[4096];
    snprintf(saved_pid, sizeof saved_pid, "%s", slurp(pidfile));
    snprintf(saved_sock, sizeof saved_sock, "%s", slurp(socklock));
    stop_ok(pg);
    forge_lock(pidfile, saved_pid, fakes[i]);
    forge_lock(socklock, saved_sock, fakes[i]);

    pg = start_ok(main_dir);
    pid_t now = postmaster_pid(main_dir);
    assert_true(now > 0 && now != fakes[i]);
    assert_int_equal(query(bt_pg_dsn(pg), "SELECT x FROM kept"), 42);
    stop_ok(pg);
  }
  kill(sleeper, SIGKILL);
  waitpid(sleeper, NULL, 0);
}

static void test_pgembed_long_path_with_spaces(void **state) {
  (void)state;
  assert_true(strlen(long_dir) > 110);
  bt_pg_t *pg = start_ok(long_dir);
  char first[1024];
  snprintf(first, sizeof first, "%s", bt_pg_dsn(pg));
  /* DATA_DIR/pg/run/.s.PGSQL.5432 does not fit in sun_path. */
  assert_non_null(strstr(first, "host=/tmp/baton-pg-"));
  assert_int_equal(query(first, "SELECT 1"), 1);
  query(first, "CREATE TABLE kept (x int)");
  stop_ok(pg);

  /* The same data dir finds the same socket directory again. */
  pg = start_ok(long_dir);
  assert_string_equal(bt_pg_dsn(pg), first);
  assert_int_equal(query(first, "SELECT count(*) FROM kept"), 0);
  stop_ok(pg);

  /* A clean stop leaves no directory behind in /tmp. */
  char sock_dir[64];
  struct stat st;
  assert_int_equal(sscanf(first, "host=%63s", sock_dir), 1);
  assert_int_equal(stat(sock_dir, &st), -1);
}

static void test_pgembed_missing_binaries_fail_cleanly(void **state) {
  (void)state;
  char dir[PATH_MAX + 16];
  snprintf(dir, sizeof dir, "%s/nobin", root);
  bt_pg_opts_t o = {.data_dir = dir, .bin_dir = "/nonexistent/bin"};
  bt_pg_t *pg = (bt_pg_t *)1;
  assert_int_equal(bt_pg_start(&o, &pg), BT_ECONFIG);
  assert_null(pg);
}

static void test_pgembed_stop_null_is_safe(void **state) {
  (void)state;
  assert_int_equal(bt_pg_stop(NULL), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state) {
  (void)state;
  snprintf(root, sizeof root, "/tmp/bt-pgembed-XXXXXX");
  if (mkdtemp(root) == NULL)
    return -1;
  /* When the test runs as root, the postgres user must be able to pass
   * through the temp dir (mkdtemp makes it 0700). */
  chmod(root, 0755);
  snprintf(main_dir, sizeof main_dir, "%s/main", root);
  snprintf(long_dir, sizeof long_dir,
           "%s/a data dir with spaces/"
           "%s",
           root,
           "0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij"
           "0123456789abcdefghij0123456789");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < 8; i++)
    bt_pg_stop(open_handles[i]);
  /* A failed test may have left a postmaster behind: SIGQUIT is
   * PostgreSQL's immediate shutdown. */
  const char *dirs[] = {main_dir, long_dir};
  for (size_t i = 0; i < 2; i++) {
    pid_t pm = postmaster_pid(dirs[i]);
    if (pm > 0 && !is_dead(pm))
      kill(pm, SIGQUIT);
  }
  if (getenv("BATON_KEEP_TMP") == NULL)
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pgembed_first_start_creates_cluster),
      cmocka_unit_test(test_pgembed_restart_keeps_data),
      cmocka_unit_test(test_pgembed_refuses_second_broker),
      cmocka_unit_test(test_pgembed_reuses_postmaster_of_crashed_broker),
      cmocka_unit_test(test_pgembed_recovers_from_killed_postmaster),
      cmocka_unit_test(test_pgembed_stop_after_postmaster_died),
      cmocka_unit_test(test_pgembed_ignores_stale_pid_files),
      cmocka_unit_test(test_pgembed_long_path_with_spaces),
      cmocka_unit_test(test_pgembed_missing_binaries_fail_cleanly),
      cmocka_unit_test(test_pgembed_stop_null_is_safe),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

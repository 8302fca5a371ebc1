/*
 * Running PostgreSQL's programs (initdb, pg_ctl, pg_config) with fork+exec.
 *
 * PostgreSQL refuses to run as root, so when batond is root every child
 * switches to the server's OS user before exec. Everything the child needs is
 * resolved in the parent first (user, groups, environment, argv): between fork
 * and exec the child only makes system calls, which stays safe even if the
 * process already has other threads.
 *
 * Never used from the event loop: every function here waits for its child.
 */
#include "pg_internal.h"

#include "bt_err.h"
#include "bt_log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* PG* variables (PGDATA, PGPORT, PGOPTIONS, …) change what initdb, pg_ctl and
 * the postmaster do; the embedded cluster must not depend on the caller's
 * shell, so children get our environment without them. */
static char **env_without_pg(void) {
  size_t n = 0;
  for (char **e = environ; e && *e; e++)
    n++;
  char **out = calloc(n + 1, sizeof *out);
  if (out == NULL)
    abort();
  size_t o = 0;
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, "PG", 2) == 0)
      continue;
    out[o++] = bt_pg__strdup(*e);
  }
  out[o] = NULL;
  return out;
}

int bt_pg__ident_init(bt_pg__ident_t *id, const char *run_as) {
  memset(id, 0, sizeof *id);
  id->envp = env_without_pg();
  if (geteuid() != 0) {
    /* Not root: the cluster runs as us; there is nobody else to become. */
    struct passwd *pw = getpwuid(geteuid());
    id->uid = geteuid();
    id->gid = getegid();
    id->user = bt_pg__strdup(pw ? pw->pw_name : "?");
    if (run_as != NULL && (pw == NULL || strcmp(run_as, pw->pw_name) != 0))
      bt_log_debug("not root, ignoring run_as", "run_as=%s", BT_Q(run_as));
    return 0;
  }

  const char *name = run_as;
  if (name == NULL)
    name = getpwnam("postgres") ? "postgres" : "nobody";
  struct passwd *pw = getpwnam(name);
  if (pw == NULL) {
    bt_log_error("unknown user for embedded postgresql", "user=%s", BT_Q(name));
    bt_pg__ident_close(id);
    return BT_ECONFIG;
  }
  if (pw->pw_uid == 0) {
    bt_log_error("embedded postgresql cannot run as root; choose another user",
                 "user=%s", BT_Q(name));
    bt_pg__ident_close(id);
    return BT_ECONFIG;
  }
  id->drop = 1;
  id->uid = pw->pw_uid;
  id->gid = pw->pw_gid;
  id->user = bt_pg__strdup(pw->pw_name);

  /* getgrouplist reports the needed size when the first guess is short. */
  int ng = 16;
  for (;;) {
    id->groups = realloc(id->groups, (size_t)ng * sizeof *id->groups);
    if (id->groups == NULL)
      abort();
    int want = ng;
    if (getgrouplist(pw->pw_name, pw->pw_gid, id->groups, &want) >= 0) {
      id->ngroups = want;
      break;
    }
    if (want <= ng)
      want = ng * 2;
    ng = want;
  }
  return 0;
}

void bt_pg__ident_close(bt_pg__ident_t *id) {
  if (id->envp) {
    for (char **e = id->envp; *e; e++)
      free(*e);
    free(id->envp);
  }
  free(id->groups);
  free(id->user);
  memset(id, 0, sizeof *id);
}

/* In the child: a clean process state for a long-lived server. batond may
 * block or ignore signals for its loop, and ignored signals survive exec. */
static void child_reset_signals(void) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  static const int sigs[] = {SIGPIPE, SIGCHLD, SIGINT, SIGTERM,
                             SIGHUP,  SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], SIG_DFL);
}

/* In the child: stdin from /dev/null, stdout/stderr to out_fd, nothing else
 * open. Without the close, the postmaster (which pg_ctl leaves running) would
 * inherit batond's descriptors, including the data dir lock. */
static void child_stdio(int out_fd) {
  int devnull = open("/dev/null", O_RDWR);
  if (out_fd >= 0 && out_fd < 3)
    out_fd = fcntl(out_fd, F_DUPFD, 3);
  int out = out_fd >= 0 ? out_fd : devnull;
  if (devnull >= 0)
    dup2(devnull, 0);
  if (out >= 0) {
    dup2(out, 1);
    dup2(out, 2);
  }
  if (close_range(3, ~0U, 0) != 0) {
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 ? max : 1024); fd++)
      close((int)fd);
  }
}

/* In the child: become the server's user. Order matters: groups and gid
 * while still root, uid last. */
static int child_drop(const bt_pg__ident_t *id) {
  if (!id->drop)
    return 0;
  /* batond --user switched to this very user after the start: it has nothing
   * left to drop (and may no longer set groups); pg_ctl stop runs as it is. */
  if (getuid() == id->uid && geteuid() == id->uid)
    return 0;
  if (setgroups((size_t)id->ngroups, id->groups) != 0 || setgid(id->gid) != 0 ||
      setuid(id->uid) != 0)
    return -1;
  if (setuid(0) == 0) /* must be impossible now */
    return -1;
  return 0;
}

static int wait_child(pid_t pid, int *code) {
  int st;
  for (;;) {
    if (waitpid(pid, &st, 0) >= 0)
      break;
    if (errno != EINTR)
      return -errno;
  }
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return 0;
}

int bt_pg__run(const bt_pg__ident_t *id, const char *const argv[], int out_fd,
               int *code) {
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (pid == 0) {
    child_reset_signals();
    child_stdio(out_fd);
    /* initdb and pg_ctl resolve their own path from the cwd, which may be
     * closed to the server's user (e.g. /root). */
    if (chdir("/") != 0 || child_drop(id) != 0)
      _exit(126);
    umask(077);
    execve(argv[0], (char *const *)argv, id->envp);
    _exit(127);
  }
  return wait_child(pid, code);
}

int bt_pg__capture(const char *const argv[], char *buf, size_t len) {
  int p[2];
  if (len == 0)
    return BT_EINVAL;
  if (pipe2(p, O_CLOEXEC) != 0)
    return -errno;
  pid_t pid = fork();
  if (pid < 0) {
    int rv = -errno;
    close(p[0]);
    close(p[1]);
    return rv;
  }
  if (pid == 0) {
    child_reset_signals();
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(p[1], 1);
    dup2(devnull, 2);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  size_t got = 0;
  for (;;) {
    ssize_t n = read(p[0], buf + got, len - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
    if (got == len - 1) {
      /* Drain the rest so the child never blocks on a full pipe. */
      char sink[256];
      while (read(p[0], sink, sizeof sink) > 0)
        ;
      break;
    }
  }
  close(p[0]);
  buf[got] = '\0';
  buf[strcspn(buf, "\r\n")] = '\0';
  int code = 0;
  int rv = wait_child(pid, &code);
  if (rv != 0)
    return rv;
  return code == 0 && buf[0] != '\0' ? 0 : BT_ENOTFOUND;
}

int bt_pg__user_access(const bt_pg__ident_t *id, const char *path) {
  if (!id->drop)
    return access(path, R_OK | W_OK | X_OK) == 0 ? 0 : -errno;
  /* access(2) checks the real uid, so ask a child that really is that user. */
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (pid == 0) {
    if (child_drop(id) != 0)
      _exit(255);
    _exit(access(path, R_OK | W_OK | X_OK) == 0 ? 0 : (errno & 0xff));
  }
  int code = 0;
  int rv = wait_child(pid, &code);
  if (rv != 0)
    return rv;
  if (code == 255)
    return -EPERM;
  return -code;
}

/*
 * The filesystem side of the embedded cluster: finding PostgreSQL's binaries,
 * directories and their owners, the socket directory, and reading
 * postmaster.pid to tell a live postmaster from a dead one.
 */
#include "pg_internal.h"

#include "bt_err.h"
#include "bt_log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

char *bt_pg__strdup(const char *s) {
  char *d = strdup(s);
  if (d == NULL)
    abort();
  return d;
}

char *bt_pg__printf(const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0)
    abort();
  return s;
}

/* ---- binaries ---------------------------------------------------------- */

static int has_binaries(const char *dir) {
  static const char *const progs[] = {"initdb", "pg_ctl", "postgres"};
  if (dir == NULL || dir[0] != '/')
    return 0;
  for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
    char *p = bt_pg__printf("%s/%s", dir, progs[i]);
    int ok = access(p, X_OK) == 0;
    free(p);
    if (!ok)
      return 0;
  }
  return 1;
}

/* The newest /usr/lib/postgresql/N/bin (Debian's layout; several majors can
 * be installed side by side). */
static char *newest_debian_bindir(void) {
  DIR *d = opendir("/usr/lib/postgresql");
  if (d == NULL)
    return NULL;
  long best = -1;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    char *end;
    long v = strtol(de->d_name, &end, 10);
    if (!isdigit((unsigned char)de->d_name[0]) || *end != '\0' || v <= best)
      continue;
    char *bin = bt_pg__printf("/usr/lib/postgresql/%s/bin", de->d_name);
    if (has_binaries(bin))
      best = v;
    free(bin);
  }
  closedir(d);
  return best < 0 ? NULL : bt_pg__printf("/usr/lib/postgresql/%ld/bin", best);
}

static char *bindir_from_path(void) {
  const char *path = getenv("PATH");
  if (path == NULL)
    return NULL;
  char *copy = bt_pg__strdup(path), *save = NULL, *found = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir && !found;
       dir = strtok_r(NULL, ":", &save)) {
    if (has_binaries(dir))
      found = bt_pg__strdup(dir);
  }
  free(copy);
  return found;
}

int bt_pg__find_bindir(const char *explicit_dir, char **out) {
  *out = NULL;
  /* A directory the operator named must be right; silently falling back to
   * another version would hide the mistake. */
  const char *named = explicit_dir ? explicit_dir : getenv("BATON_PG_BINDIR");
  if (named != NULL && named[0] != '\0') {
    if (!has_binaries(named)) {
      bt_log_error("no postgresql binaries (initdb, pg_ctl, postgres) in the "
                   "configured directory",
                   "bin_dir=%s", BT_Q(named));
      return BT_ECONFIG;
    }
    *out = bt_pg__strdup(named);
    return 0;
  }
  /* Debian's pg_config comes with libpq-dev and names the server's bindir
   * even when the server package is missing, so check what it says. */
  char buf[PATH_MAX];
  const char *const argv[] = {"pg_config", "--bindir", NULL};
  if (bt_pg__capture(argv, buf, sizeof buf) == 0 && has_binaries(buf)) {
    *out = bt_pg__strdup(buf);
    return 0;
  }
  if ((*out = newest_debian_bindir()) != NULL)
    return 0;
  if ((*out = bindir_from_path()) != NULL)
    return 0;
  bt_log_error("could not find PostgreSQL binaries; install postgresql-15 or "
               "set BATON_PG_BINDIR",
               NULL);
  return BT_ECONFIG;
}

/* ---- directories ------------------------------------------------------- */

int bt_pg__mkdirs(const char *path, mode_t mode) {
  char *p = bt_pg__strdup(path);
  int rv = 0;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, mode) != 0 && errno != EEXIST) {
      rv = -errno;
      break;
    }
    *s = c;
    if (c == '\0')
      break;
  }
  free(p);
  if (rv == 0) {
    struct stat st;
    if (stat(path, &st) != 0)
      rv = -errno;
    else if (!S_ISDIR(st.st_mode))
      rv = -ENOTDIR;
  }
  return rv;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)ftw;
  int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
  return rc == 0 || errno == ENOENT ? 0 : -errno;
}

int bt_pg__rmtree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : -errno;
  int rv = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return rv > 0 ? -EIO : rv;
}

/* nftw has no user data pointer; the tree walk is single-threaded and only
 * runs during start, so file-level state is fine. */
static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag,
                     struct FTW *ftw) {
  (void)flag;
  (void)ftw;
  if (st->st_uid == chown_uid && st->st_gid == chown_gid)
    return 0;
  return lchown(path, chown_uid, chown_gid) == 0 ? 0 : -errno;
}

int bt_pg__chown_tree(const char *path, uid_t uid, gid_t gid) {
  chown_uid = uid;
  chown_gid = gid;
  int rv = nftw(path, chown_one, 16, FTW_PHYS);
  return rv > 0 ? -EIO : rv;
}

/* ---- socket directory --------------------------------------------------- */

char *bt_pg__socket_dir(const char *pg_dir, int port) {
  struct sockaddr_un sa;
  char *dir = bt_pg__printf("%s/run", pg_dir);
  /* PostgreSQL needs the whole socket path, NUL included, in sun_path. */
  int n = snprintf(NULL, 0, "%s/.s.PGSQL.%d", dir, port);
  if ((size_t)n < sizeof sa.sun_path)
    return dir;
  free(dir);
  /* FNV-1a 64 of the absolute path: the same data dir always maps to the same
   * directory, so a restarted batond finds a postmaster it left running. */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *s = (const unsigned char *)pg_dir; *s; s++) {
    h ^= *s;
    h *= 0x100000001b3ULL;
  }
  return bt_pg__printf("/tmp/baton-pg-%016llx", (unsigned long long)h);
}

int bt_pg__ensure_socket_dir(const bt_pg__ident_t *id, const char *dir) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    int rv = -errno;
    bt_log_error("could not create socket directory for embedded postgresql",
                 "dir=%s error=%s", BT_Q(dir), BT_Q(bt_strerror(rv)));
    return rv;
  }
  /* The fallback lives in world-writable /tmp, so someone else could have
   * planted it: accept only a real directory owned by the server's user (or
   * by root, which is us, left over from an earlier step). */
  struct stat st;
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
      (st.st_uid != id->uid && st.st_uid != 0) ||
      (st.st_uid == 0 && !id->drop)) {
    bt_log_error("socket directory for embedded postgresql is not a directory "
                 "owned by its user; remove it",
                 "dir=%s user=%s", BT_Q(dir), BT_Q(id->user));
    return BT_ECONFIG;
  }
  if ((st.st_uid != id->uid && lchown(dir, id->uid, id->gid) != 0) ||
      ((st.st_mode & 0777) != 0700 && chmod(dir, 0700) != 0)) {
    int rv = -errno;
    bt_log_error("could not secure socket directory for embedded postgresql",
                 "dir=%s error=%s", BT_Q(dir), BT_Q(bt_strerror(rv)));
    return rv;
  }
  return 0;
}

/* ---- postmaster.pid ----------------------------------------------------- */

int bt_pg__read_pidfile(const char *pgdata, bt_pg__pidfile_t *out) {
  memset(out, 0, sizeof *out);
  char *path = bt_pg__printf("%s/postmaster.pid", pgdata);
  FILE *f = fopen(path, "re");
  free(path);
  if (f == NULL)
    return -errno;
  /* Lines (see pidfile.h): 1 pid, 2 data dir, 3 start time, 4 port,
   * 5 first socket directory, 6 listen address, 7 shmem key, 8 status. */
  char line[PATH_MAX + 16];
  int rv = BT_EPROTO;
  for (int no = 1; no <= 8 && fgets(line, sizeof line, f); no++) {
    line[strcspn(line, "\n")] = '\0';
    if (no == 1) {
      long pid = strtol(line, NULL, 10);
      if (pid <= 0)
        break;
      out->pid = (pid_t)pid;
      rv = 0;
    } else if (no == 4) {
      out->port = atoi(line);
    } else if (no == 5 && line[0] != '\0') {
      out->sock_dir = bt_pg__strdup(line);
    } else if (no == 8) {
      /* Padded with spaces so the postmaster can rewrite it in place. */
      sscanf(line, "%15s", out->status);
    }
  }
  fclose(f);
  return rv;
}

void bt_pg__pidfile_close(bt_pg__pidfile_t *pf) {
  free(pf->sock_dir);
  memset(pf, 0, sizeof *pf);
}

/* The state letter of /proc/PID/stat, or 0. */
static char proc_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  /* "pid (comm) S ...": comm may hold spaces and parentheses. */
  char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* 1: the process's cwd is pgdata, 0: it is not, -1: can't tell. */
static int cwd_is(pid_t pid, const char *pgdata_real) {
  char path[64], cwd[PATH_MAX];
  snprintf(path, sizeof path, "/proc/%d/cwd", (int)pid);
  ssize_t n = readlink(path, cwd, sizeof cwd - 1);
  if (n < 0)
    return -1;
  cwd[n] = '\0';
  return strcmp(cwd, pgdata_real) == 0;
}

bt_pg__pid_state_t bt_pg__pid_state(pid_t pid, const char *pgdata) {
  if (kill(pid, 0) != 0 && errno == ESRCH)
    return BT_PG__PID_GONE;
  /* Under an init that never reaps orphans (some containers) a killed
   * postmaster stays a zombie, and PostgreSQL's own kill(pid, 0) test would
   * take it for a live server forever. */
  if (proc_state(pid) == 'Z')
    return BT_PG__PID_ZOMBIE;
  char real[PATH_MAX];
  if (realpath(pgdata, real) == NULL)
    return BT_PG__PID_UNKNOWN;
  switch (cwd_is(pid, real)) {
  case 1:
    return BT_PG__PID_OURS;
  case 0:
    return BT_PG__PID_OTHER;
  default:
    return BT_PG__PID_UNKNOWN;
  }
}

int bt_pg__cluster_busy(const char *pgdata) {
  char real[PATH_MAX];
  if (realpath(pgdata, real) == NULL)
    return 0;
  DIR *d = opendir("/proc");
  if (d == NULL)
    return 0;
  int busy = 0;
  struct dirent *de;
  while (!busy && (de = readdir(d)) != NULL) {
    if (!isdigit((unsigned char)de->d_name[0]))
      continue;
    pid_t pid = (pid_t)atoi(de->d_name);
    busy = cwd_is(pid, real) == 1 && proc_state(pid) != 'Z';
  }
  closedir(d);
  return busy;
}

void bt_pg__drop_socket_lock(const char *dir, int port, pid_t dead_pid) {
  char *path = bt_pg__printf("%s/.s.PGSQL.%d.lock", dir, port);
  FILE *f = fopen(path, "re");
  long pid = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld", &pid) != 1)
      pid = 0;
    fclose(f);
  }
  if (pid == (long)dead_pid && unlink(path) == 0)
    bt_log_warn("removed socket lock file of a dead postmaster",
                "path=%s pid=%ld", BT_Q(path), pid);
  free(path);
}

static int is_cause(const char *line) {
  static const char *const keys[] = {"FATAL:", "PANIC:", "ERROR:", "error:"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strstr(line, keys[i]) != NULL)
      return 1;
  return 0;
}

char *bt_pg__log_detail(const char *path, char *buf, size_t len) {
  buf[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return buf;
  char tail[8192];
  off_t size = lseek(fd, 0, SEEK_END);
  off_t from = size > (off_t)sizeof tail - 1 ? size - (off_t)sizeof tail + 1 : 0;
  ssize_t n = pread(fd, tail, sizeof tail - 1, from);
  close(fd);
  if (n <= 0)
    return buf;
  tail[n] = '\0';
  /* Only the latest step's output: older runs' errors are not the cause. */
  char *start = tail;
  for (char *m = strstr(tail, BT_PG__LOG_MARKER); m;
       m = strstr(m + 1, BT_PG__LOG_MARKER))
    start = m;
  const char *cause = NULL, *last = NULL;
  for (char *save = NULL, *line = strtok_r(start, "\r\n", &save); line;
       line = strtok_r(NULL, "\r\n", &save)) {
    if (strncmp(line, BT_PG__LOG_MARKER, strlen(BT_PG__LOG_MARKER)) == 0 ||
        strcmp(line, "Examine the log output.") == 0)
      continue;
    if (is_cause(line))
      cause = line;
    last = line;
  }
  snprintf(buf, len, "%s", cause ? cause : last ? last : "");
  return buf;
}

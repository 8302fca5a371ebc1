/* Dropping root for good; see bt_user.h. */
#include "bt_user.h"

#include "bt_err.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bt_user_resolve(const char *name, bt_user_t *u, char *err, size_t err_len) {
  memset(u, 0, sizeof *u);
  if (geteuid() != 0) {
    snprintf(err, err_len,
             "--user %s needs root; this process already runs as uid %u (start it as that "
             "user instead)",
             name, (unsigned)geteuid());
    return BT_EINVAL;
  }
  struct passwd *pw = getpwnam(name);
  if (pw == NULL) {
    snprintf(err, err_len, "--user %s: no such user", name);
    return BT_EINVAL;
  }
  if (pw->pw_uid == 0) {
    snprintf(err, err_len, "--user %s is root; name an unprivileged user", name);
    return BT_EINVAL;
  }
  if (strlen(pw->pw_name) >= sizeof u->name) {
    snprintf(err, err_len, "--user %s: the name is too long", name);
    return BT_EINVAL;
  }
  u->uid = pw->pw_uid;
  u->gid = pw->pw_gid;
  snprintf(u->name, sizeof u->name, "%s", pw->pw_name);
  snprintf(u->home, sizeof u->home, "%s", pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
  return 0;
}

int bt_user_switch(const bt_user_t *u, char *err, size_t err_len) {
  if (initgroups(u->name, u->gid) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0) {
    snprintf(err, err_len, "could not switch to user %s: %s; refusing to run as root",
             u->name, strerror(errno));
    return -EPERM;
  }
  if (setuid(0) == 0 || geteuid() != u->uid || getuid() != u->uid || getegid() != u->gid) {
    snprintf(err, err_len, "root privileges survived the switch to %s; refusing to run",
             u->name);
    return -EPERM;
  }
  setenv("HOME", u->home, 1);
  setenv("USER", u->name, 1);
  setenv("LOGNAME", u->name, 1);
  return 0;
}

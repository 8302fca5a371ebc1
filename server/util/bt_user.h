/*
 * Dropping root for good (`batond --user`, `baton-agent --user`): resolve the
 * user before anything is opened, so a typo fails at once, and switch once
 * what needs root is open. Shared by the broker and the agent so both refuse
 * the same mistakes with the same words.
 */
#ifndef BT_USER_H
#define BT_USER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
  uid_t uid;
  gid_t gid;
  char name[64];
  char home[256];
} bt_user_t;

/* Looks name up for a later bt_user_switch. Refuses when this process is not
 * root (there is nothing to drop), an unknown user and root itself. Returns 0,
 * or BT_EINVAL with one sentence in err ("--user x: no such user"). */
int bt_user_resolve(const char *name, bt_user_t *u, char *err, size_t err_len);

/* Switches to u for good: supplementary groups and gid while still root, uid
 * last (glibc applies it to every thread), then proves root cannot come back,
 * and makes HOME, USER and LOGNAME the user's (children inherit them).
 * Returns 0, or -EPERM with the reason in err: the caller must not go on
 * running as root when the operator asked otherwise. */
int bt_user_switch(const bt_user_t *u, char *err, size_t err_len);

#endif

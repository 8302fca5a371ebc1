/*
 * baton-agent's settings: one declarative table (name, type, environment
 * variable, default, bounds) that the command line, the environment and the
 * config file all go through, in that order of precedence:
 *   flags > environment > config file ([agent] section, keys = long flags) > defaults,
 * except the secret: BATON_SECRET beats --secret (it stays out of ps).
 * The repeatable `handler` is a list: the highest source that names any handler
 * replaces the lower sources' lists entirely.
 */
#ifndef BT_AGENTD_OPTIONS_H
#define BT_AGENTD_OPTIONS_H

#include "bt_log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
  char *capability;
  char *command;
} bt_agentd_handler_cfg_t;

typedef struct {
  char *broker; /* comma-separated endpoints */
  char *vendor;
  char *secret;
  char *name;   /* NULL: hostname-pid */
  char *config; /* the config file read, or NULL */
  uint64_t slots;
  uint64_t max_message_bytes;
  uint64_t drain_timeout_ms;
  uint64_t kill_grace_ms;
  uint64_t max_result_bytes; /* handler output/checkpoint cap (≤ the broker's payload limit) */
  char *user;                /* NULL: stay who we are; else drop to it (root only) */
  bt_log_level_t log_level;
  bt_agentd_handler_cfg_t *handlers;
  size_t n_handlers;
  int handlers_source;        /* internal: which source set the list */
  int secret_on_command_line; /* --secret was used (visible in ps until blanked) */
  int secret_flag_ignored;    /* --secret given, but BATON_SECRET won */
} bt_agentd_opts_t;

/* What the broker accepts in a hello (server/xport: BT_XP_MAX_CAPS,
 * BT_XP_MAX_SLOTS); checked at start so a refused hello is not retried. */
#define BT_AGENTD_MAX_HANDLERS 32
#define BT_AGENTD_MAX_SLOTS 1024

enum {
  BT_AGENTD_OPTS_RUN = 0,  /* settings complete: run the agent */
  BT_AGENTD_OPTS_EXIT = 1, /* --help or --version was printed: exit 0 */
};

/* Fills o from argv, the environment (getenv_fn, NULL: getenv) and the config
 * file named by --config. A --secret value is copied and then blanked in argv so
 * it disappears from ps. Help and version text go to out.
 * Returns BT_AGENTD_OPTS_RUN or BT_AGENTD_OPTS_EXIT, or BT_ECONFIG with a one-line
 * message naming the bad flag, variable or key in err (then print the usage and
 * exit 2). o is owned by the caller: bt_agentd_opts_free, whatever the result. */
int bt_agentd_opts_parse(bt_agentd_opts_t *o, int argc, char **argv,
                         const char *(*getenv_fn)(const char *), FILE *out, char *err,
                         size_t errlen);
void bt_agentd_opts_free(bt_agentd_opts_t *o);
/* Prints the usage text. */
void bt_agentd_usage(FILE *f);

#endif

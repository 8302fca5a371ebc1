/*
 * baton-agent: wiring only. Settings (options.c) -> daemon (agentd.c) -> loop ->
 * exit status. Exit codes: 0 stopped by a signal, 1 refused by the broker or a
 * startup failure, 2 usage or configuration error.
 */
#include "agentd.h"
#include "baton_agent.h"
#include "bt_err.h"
#include "bt_log.h"
#include "bt_user.h"
#include "options.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* --user: switch to an unprivileged user before anything connects or any
 * handler runs, so vendor handlers never run as root. Returns 0, 2 for a
 * usage error (not root, unknown user, root itself) or 1 when the switch
 * failed; one line is printed either way, and the agent must not go on. */
static int drop_privileges(const char *name) {
  bt_user_t u;
  char err[300];
  if (bt_user_resolve(name, &u, err, sizeof err) != 0) {
    fprintf(stderr, "baton-agent: %s\n", err);
    return 2;
  }
  if (bt_user_switch(&u, err, sizeof err) != 0) {
    fprintf(stderr, "baton-agent: %s\n", err);
    return 1;
  }
  /* A root cwd (e.g. /root) may be closed to the user; handlers run in it. */
  if (access(".", R_OK | X_OK) != 0 && chdir("/") != 0)
    return 1;
  bt_log_info("dropped root privileges", "user=%s uid=%u gid=%u", BT_Q(u.name),
              (unsigned)u.uid, (unsigned)u.gid);
  return 0;
}

int main(int argc, char **argv) {
  bt_agentd_opts_t opts;
  bt_agentd_t *d = NULL;
  char err[512] = "";
  int rv = bt_agentd_opts_parse(&opts, argc, argv, NULL, stdout, err, sizeof err);
  if (rv == BT_AGENTD_OPTS_EXIT) {
    bt_agentd_opts_free(&opts);
    return 0;
  }
  if (rv != 0) {
    fprintf(stderr, "baton-agent: %s\n\n", err);
    bt_agentd_usage(stderr);
    bt_agentd_opts_free(&opts);
    return 2;
  }
  bt_log_set_level(opts.log_level);
  bt_log_nonblocking(); /* a blocked stderr must not stop the loop */
  if (opts.secret_on_command_line)
    bt_log_warn("secret given with --secret; prefer BATON_SECRET, which stays out of "
                "ps and shell history",
                NULL);
  if (opts.secret_flag_ignored)
    bt_log_warn("--secret ignored: BATON_SECRET is set and wins; drop --secret from the "
                "command line",
                NULL);
  /* The config file is read; nothing is connected or spawned yet. */
  if (opts.user != NULL && (rv = drop_privileges(opts.user)) != 0) {
    bt_agentd_opts_free(&opts);
    return rv;
  }
  /* A handler that does not read its stdin must not kill the agent. */
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop();
  if ((rv = bt_agentd_new(loop, &opts, &d)) != 0) {
    fprintf(stderr, "baton-agent: %s\n",
            rv == BT_EINVAL ? "invalid configuration (see the log line above)"
                            : bt_agent_strerror(rv));
    bt_agentd_opts_free(&opts);
    return 2;
  }
  if ((rv = bt_agentd_start(d)) != 0) {
    fprintf(stderr, "baton-agent: could not start: %s\n", bt_agent_strerror(rv));
    bt_agentd_free(d);
    bt_agentd_opts_free(&opts);
    return rv == BT_EINVAL ? 2 : 1;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  int code = bt_agentd_exit_code(d);
  bt_agentd_free(d);
  uv_loop_close(loop);
  bt_agentd_opts_free(&opts);
  return code;
}

/*
 * The baton-agent daemon: libbaton-agent wired to handler processes. Owns the
 * agent, the running handlers (one per attempt), the signal watchers and the
 * drain timer. Decides only process-level matters (which command runs a
 * capability, when to drain, hand back and stop); the protocol is the library's
 * and the child process is handler.c's.
 */
#ifndef BT_AGENTD_H
#define BT_AGENTD_H

#include "options.h"

#include <uv.h>

typedef struct bt_agentd bt_agentd_t;

/* Creates the daemon on loop from opts (borrowed: keep it alive until
 * bt_agentd_free). Returns 0 and *out (owned), or BT_EINVAL (e.g. a malformed
 * secret) with the reason logged. */
int bt_agentd_new(uv_loop_t *loop, const bt_agentd_opts_t *opts, bt_agentd_t **out);

/* Connects and starts taking work, and watches SIGTERM/SIGINT (drain, then hand
 * back and exit). Run the loop afterwards; it returns once the daemon stopped.
 * Returns 0 or a negative error (e.g. a malformed broker endpoint). */
int bt_agentd_start(bt_agentd_t *d);

/* The process exit status after the loop returned: 0 after a signal, 1 after a
 * fatal refusal by the broker (bad secret, protocol version). */
int bt_agentd_exit_code(const bt_agentd_t *d);

/* Frees a daemon whose loop has returned (or that was never started). */
void bt_agentd_free(bt_agentd_t *d);

#endif

/*
 * One handler process: runs a capability's COMMAND for one attempt with
 * `/bin/sh -c` (uv_spawn, i.e. fork+exec: a process that forked after nn_socket
 * without exec would hang), feeds it the payload, collects its result and reports
 * how it ended. The handler protocol is CONTRACT.md's:
 *   - payload on stdin (then closed); stdout is the result, capped at max_output
 *     (beyond it: failed, "result too large"); stderr passes through to the
 *     agent's stderr and its last line is kept for the error text;
 *   - exit 0 completed, 75 transient, any other exit or a signal failed;
 *   - environment: the agent's, minus BATON_SECRET, plus BATON_PACKAGE_ID,
 *     BATON_ATTEMPT, BATON_CAPABILITY, BATON_DEADLINE (RFC 3339 or empty) and
 *     BATON_CHECKPOINT_IN (a private temp file with the last checkpoint, only when
 *     there is one; removed afterwards);
 *   - fd 3: "progress N" / "checkpoint BASE64" lines (fd3.h);
 *   - stop (cancel, hand back): SIGTERM to its process group, SIGKILL after the
 *     grace.
 * The process runs in its own session and process group so that signals reach the
 * whole handler tree and a Ctrl-C at the agent's terminal does not (the agent
 * decides what happens to running work).
 * The process must ignore SIGPIPE (a handler that does not read its stdin makes
 * the payload write fail with EPIPE, which is handled).
 */
#ifndef BT_HANDLER_H
#define BT_HANDLER_H

#include "baton_agent.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct bt_handler bt_handler_t;

typedef struct {
  uint64_t package_id;
  uint32_t attempt;
  const char *capability;
  const char *command; /* run as /bin/sh -c COMMAND */
  const uint8_t *payload;
  size_t payload_len;
  int64_t deadline_at;       /* 0: none */
  const uint8_t *checkpoint; /* NULL: none */
  size_t checkpoint_len;
  size_t max_output;      /* stdout beyond this fails the attempt */
  size_t max_checkpoint;  /* larger fd-3 checkpoints are ignored (logged) */
  uint64_t kill_grace_ms; /* SIGTERM to SIGKILL */
  const char *tmp_dir;    /* for BATON_CHECKPOINT_IN; NULL: $TMPDIR or /tmp */
} bt_handler_spec_t;

typedef struct {
  bt_agent_outcome_t outcome;
  const uint8_t *output; /* stdout (none when cancelled, handed back or too large) */
  size_t output_len;
  int exit_code;     /* the exit status, or 128 + signal when killed */
  const char *error; /* NULL when completed, else e.g. "exit 3: <stderr line>" */
} bt_handler_result_t;

typedef struct {
  /* A valid fd-3 line: percent 0-100 or -1, and/or a checkpoint (borrowed for
   * the call). Optional. */
  void (*on_progress)(bt_handler_t *h, int percent, const uint8_t *checkpoint,
                      size_t len, void *user);
  /* The process has exited and every handle is closed; result is borrowed for
   * the call. Fires exactly once; the handler may be freed inside. */
  void (*on_done)(bt_handler_t *h, const bt_handler_result_t *result, void *user);
} bt_handler_callbacks_t;

/* Starts the handler on loop. spec and callbacks are copied (the payload too).
 * Returns 0 and *out (owned: bt_handler_free after on_done), or a negative error
 * (e.g. a libuv spawn error); then no callback ever fires. */
int bt_handler_start(uv_loop_t *loop, const bt_handler_spec_t *spec,
                     const bt_handler_callbacks_t *callbacks, void *user,
                     bt_handler_t **out);

/* Stops the handler: SIGTERM to its process group now, SIGKILL after the grace.
 * reason (BT_AGENT_CANCELLED or BT_AGENT_HANDED_BACK) becomes the outcome.
 * Ignored once the process has exited on its own (its own result stands). */
void bt_handler_stop(bt_handler_t *h, bt_agent_outcome_t reason);

/* Frees a handler whose on_done has fired (may be called inside on_done). */
void bt_handler_free(bt_handler_t *h);

uint64_t bt_handler_package_id(const bt_handler_t *h);
uint32_t bt_handler_attempt(const bt_handler_t *h);
/* The process id (its process group id too). */
int bt_handler_pid(const bt_handler_t *h);

#endif

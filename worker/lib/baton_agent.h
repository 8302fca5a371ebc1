/*
 * libbaton-agent: the worker side of the Baton agent protocol, for vendors who
 * want to take Baton work packages inside their own program.
 *
 * The library connects to one or more brokers, authenticates with the vendor
 * secret (challenge-response: the secret never leaves the process), asks for work
 * when it has free slots, and reports progress and results. It does not run
 * anything itself: on_task hands the embedder a task and the embedder finishes it
 * with bt_agent_complete(), on the same loop, whenever it likes.
 *
 * Threading: everything happens on one libuv loop. Call every bt_agent_* function
 * from the thread that runs that loop. Callbacks fire from that loop.
 *
 * Errors: functions return 0 on success and a negative code on failure: a libuv
 * -errno code or one of the BT_AGENT_E* codes below. bt_agent_strerror() describes
 * either.
 *
 * Delivery is at least once: after a lost reply or a broker restart a task may be
 * offered again. The library drops an assignment for an attempt it already knows,
 * but a process that restarts may see an attempt it ran before. Make tasks
 * idempotent. Only the current attempt of a package may complete it; the broker
 * tells the library when a result was refused as stale, and the library then just
 * forgets it.
 */
#ifndef BATON_AGENT_H
#define BATON_AGENT_H

#include <stddef.h>
#include <stdint.h>

/* libuv's loop type, declared without <uv.h> (C11 allows the same typedef twice),
 * so embedders that let the library own its loop need no libuv headers. */
struct uv_loop_s;
typedef struct uv_loop_s uv_loop_t;

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BT_AGENT_API __attribute__((visibility("default")))
#else
#define BT_AGENT_API
#endif

/* Error codes (negative). They equal Baton's internal codes. */
#define BT_AGENT_EPROTO (-29999)    /* malformed or invalid message */
#define BT_AGENT_EVERSION (-29998)  /* protocol version not supported */
#define BT_AGENT_EAUTH (-29997)     /* authentication failed */
#define BT_AGENT_ENOTFOUND (-29995) /* no such attempt */
#define BT_AGENT_ELIMIT (-29991)    /* a size limit was exceeded */
#define BT_AGENT_EINVAL (-29990)    /* invalid argument */
#define BT_AGENT_ESTATE (-29988)    /* not allowed in the current state */

/* How an attempt ended. */
typedef enum {
  /* done; output is the result */
  BT_AGENT_COMPLETED = 1,
  /* failed; counts against the vendor */
  BT_AGENT_FAILED = 2,
  /* failed for a passing reason; retried, not held against the vendor */
  BT_AGENT_TRANSIENT = 3,
  /* stopped because the broker cancelled it */
  BT_AGENT_CANCELLED = 4,
  /* not run to the end (e.g. the agent is draining): give it to someone else */
  BT_AGENT_HANDED_BACK = 5,
} bt_agent_outcome_t;

typedef struct bt_agent bt_agent_t;

/* A task: one attempt of one work package. Everything is borrowed for the duration
 * of the on_task callback only; copy what you need. */
typedef struct {
  uint64_t package_id;
  uint32_t attempt;       /* the fencing token: quote it in complete/progress */
  const char *capability; /* one of the configured capabilities */
  const uint8_t *payload;
  size_t payload_len;
  int64_t deadline_at;       /* ms since the epoch, UTC; 0 = none */
  const uint8_t *checkpoint; /* last checkpoint of an earlier attempt, or NULL */
  size_t checkpoint_len;
} bt_agent_task_t;

typedef struct {
  /* A new task. Start it and return; finish it later (or at once) with
   * bt_agent_complete(). Required. The task occupies one slot until then. */
  void (*on_task)(bt_agent_t *agent, const bt_agent_task_t *task, void *user);
  /* The broker cancelled a running attempt. Stop it, then call
   * bt_agent_complete() (any outcome): the slot stays busy until then, and the
   * result is dropped. Optional (NULL: the task runs to the end, result dropped). */
  void (*on_cancel)(bt_agent_t *agent, uint64_t package_id, uint32_t attempt,
                    void *user);
  /* A fatal error: the broker refused the protocol version (code
   * BT_AGENT_EVERSION) or the vendor/secret (BT_AGENT_EAUTH). Retrying will not
   * help. The library has stopped talking to the broker; call bt_agent_stop()
   * then bt_agent_free(). message is borrowed for the call. Optional. */
  void (*on_fatal)(bt_agent_t *agent, int code, const char *message, void *user);
} bt_agent_callbacks_t;

typedef struct {
  /* "tcp://host:port" or a comma-separated list. The library connects to every
   * endpoint; each request goes to whichever is connected. */
  const char *brokers;
  const char *vendor; /* vendor name */
  /* the vendor secret (43 characters); turned into a key, never kept or logged */
  const char *secret;
  const char *name; /* agent name, unique per vendor; NULL: "hostname-pid" */
  const char *const *capabilities; /* what this agent can run; at least one */
  size_t n_capabilities;
  uint32_t slots;             /* concurrent tasks; 0: 1 */
  uint32_t max_message_bytes; /* 0: 1 MiB; the broker's Welcome may lower or raise it */
  uint32_t reply_timeout_ms;  /* 0: 5 s before the session is up, lease + 2 s after
                                 (plus poll_ms for a parked poll) */
  uint32_t stop_timeout_ms;   /* 0: 5 s; how long bt_agent_stop may spend flushing
                                 results and saying Bye */
} bt_agent_config_t;

/* Creates an agent. loop: the loop to run on, borrowed (it must outlive the
 * agent); NULL makes the library create its own, then drive it with
 * bt_agent_run(). config and callbacks are copied; user is passed to every
 * callback. Nothing is connected until bt_agent_start().
 * Returns 0 and *out (owned by the caller: bt_agent_free), or BT_AGENT_EINVAL for
 * a bad config (missing vendor, malformed secret, no capability, ...). */
BT_AGENT_API int bt_agent_new(uv_loop_t *loop, const bt_agent_config_t *config,
                              const bt_agent_callbacks_t *callbacks, void *user,
                              bt_agent_t **out);

/* Opens the socket, connects to the brokers and starts the session (Hello). The
 * connection itself is asynchronous and retried for ever; the callbacks fire as
 * the session progresses. Returns 0, BT_AGENT_EINVAL for a malformed endpoint,
 * or BT_AGENT_ESTATE when already started. */
BT_AGENT_API int bt_agent_start(bt_agent_t *agent);

/* For an agent made with loop == NULL: starts it if needed and runs its loop until
 * it is stopped (the on_closed of bt_agent_stop has fired) or failed. Returns 0,
 * or the on_fatal code when it ended on a fatal error. */
BT_AGENT_API int bt_agent_run(bt_agent_t *agent);

/* Finishes a task given by on_task. output (len bytes, may be NULL when len is 0)
 * and error (a short reason, may be NULL; cut to 256 bytes) are copied. exit_code
 * is reported as is. The result is sent as soon as possible (batched with others)
 * and kept until the broker acknowledges it, across reconnects.
 * Returns 0; BT_AGENT_ELIMIT when output does not fit in a message (see
 * bt_agent_max_output): the attempt is then reported FAILED with error "result
 * too large"; BT_AGENT_ENOTFOUND for an unknown attempt; BT_AGENT_ESTATE when it
 * was already completed or the agent is closed; BT_AGENT_EINVAL for a bad outcome.
 * Completing an attempt the broker cancelled just frees its slot. */
BT_AGENT_API int bt_agent_complete(bt_agent_t *agent, uint64_t package_id,
                                   uint32_t attempt, bt_agent_outcome_t outcome,
                                   const void *output, size_t len, int exit_code,
                                   const char *error);

/* Reports progress of a running task: percent 0-100 or -1 for none, and/or a
 * checkpoint (copied; NULL/0 for none) that a later attempt will receive if the
 * package is handed off. Reports are coalesced (the latest per attempt wins) and
 * a pending checkpoint is always sent before the attempt's result.
 * Returns 0, BT_AGENT_EINVAL (percent out of range), BT_AGENT_ELIMIT (checkpoint
 * too large), BT_AGENT_ENOTFOUND or BT_AGENT_ESTATE (not running). */
BT_AGENT_API int bt_agent_progress(bt_agent_t *agent, uint64_t package_id,
                                   uint32_t attempt, int percent,
                                   const void *checkpoint, size_t len);

/* Stops asking for work. Running tasks go on and their results are still
 * reported; an assignment that arrives anyway is handed back at once. Not
 * reversible. */
BT_AGENT_API void bt_agent_drain(bt_agent_t *agent);

/* Stops the agent: no new work; pending results and checkpoints are flushed, then
 * Bye is sent, within stop_timeout_ms; then every handle is closed. on_closed
 * (may be NULL) fires from the loop after the last close callback; the agent may
 * be freed inside it. Tasks still running are abandoned: drain and complete them
 * first (e.g. as BT_AGENT_HANDED_BACK). For an agent never started, on_closed
 * is called before this returns. Calling it again only replaces on_closed. */
BT_AGENT_API void bt_agent_stop(bt_agent_t *agent,
                                void (*on_closed)(bt_agent_t *agent, void *user));

/* Frees the agent and, if it made one, its loop. Allowed for an agent never
 * started or one whose on_closed has fired; for a library-owned loop also in any
 * other state (it is stopped without Bye and the loop run until closed). Freeing a
 * live agent on a caller's loop is a bug and aborts. Never call it from on_task,
 * on_cancel or on_fatal. */
BT_AGENT_API void bt_agent_free(bt_agent_t *agent);

/* The largest output bt_agent_complete accepts now (it follows the broker's
 * max_message_bytes once the session is up). */
BT_AGENT_API size_t bt_agent_max_output(const bt_agent_t *agent);

/* The loop the agent runs on (the caller's, or the one it made). */
BT_AGENT_API uv_loop_t *bt_agent_loop(const bt_agent_t *agent);

/* Describes an error code. Returns a static string. */
BT_AGENT_API const char *bt_agent_strerror(int code);

/* Sets the library's log threshold: 0 debug, 1 info (default), 2 warn, 3 error.
 * Logs are logfmt lines on stderr. Process-wide. */
BT_AGENT_API void bt_agent_set_log_level(int level);

#ifdef __cplusplus
}
#endif

#endif

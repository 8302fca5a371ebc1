/*
 * Internals of libbaton-agent shared by its files (never installed):
 *   attempts.c  the table of attempts this process holds (running, finished,
 *               result in flight) with their pending progress;
 *   link.c      one raw nanomsg NN_REQ socket bridged into the libuv loop;
 *   wire.c      protobuf packing with the size check, and reply validation;
 *   agent.c     the session state machine and the public API.
 * Internal non-static names use the bt_agent__ prefix; none is exported from the
 * shared library (see baton-agent.map).
 */
#ifndef BT_AGENT_INT_H
#define BT_AGENT_INT_H

#include "baton.pb-c.h"
#include "baton_agent.h"
#include "bt_pballoc.h"
#include "bt_seal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

/* Always-on invariant check: a broken invariant is a bug, not an input error. */
#define BT_AGENT_ASSERT(cond)                                                          \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      fprintf(stderr, "baton-agent: assertion failed: %s (%s:%d)\n", #cond, __FILE__,  \
              __LINE__);                                                               \
      abort();                                                                         \
    }                                                                                  \
  } while (0)

/* Bytes a Results message needs besides the outputs (ids, outcome, exit code, an
 * error of at most BT_AGENT__ERROR_MAX bytes, session, ack_seq, framing). */
#define BT_AGENT__OVERHEAD 1024u
#define BT_AGENT__ERROR_MAX 256u
#define BT_AGENT__MIN_MESSAGE 8192u

/* Allocation helpers: out of memory aborts (STYLE: errors). */
void *bt_agent__xmalloc(size_t n);
void *bt_agent__xcalloc(size_t n, size_t size);
void *bt_agent__xrealloc(void *p, size_t n);
char *bt_agent__xstrdup(const char *s);
void *bt_agent__xmemdup(const void *p, size_t n);

/* ---- attempts.c --------------------------------------------------------- */

typedef enum {
  BT_AGENT__ATT_RUNNING,   /* on_task called; waiting for bt_agent_complete */
  BT_AGENT__ATT_CANCELLED, /* broker cancelled it; still holds its slot until complete
                            */
  BT_AGENT__ATT_DONE,      /* result recorded; to be sent (or sent again) */
  BT_AGENT__ATT_SENT,      /* result carried by the Results request in flight */
} bt_agent__att_state_t;

typedef struct {
  uint64_t package_id;
  uint32_t attempt;
  bt_agent__att_state_t state;
  /* result, set by bt_agent_complete */
  bt_agent_outcome_t outcome;
  uint8_t *output;
  size_t output_len;
  int exit_code;
  char *error; /* NULL or NUL-terminated, at most BT_AGENT__ERROR_MAX bytes */
  /* latest progress; *_dirty: not yet acknowledged by a Progress reply */
  int percent; /* -1: none */
  int percent_dirty;
  uint8_t *checkpoint;
  size_t checkpoint_len;
  int checkpoint_dirty;
  /* what the Progress in flight carries, restored to dirty if it fails */
  int sent_percent, sent_checkpoint;
} bt_agent__att_t;

typedef struct {
  bt_agent__att_t **v; /* in arrival order, so results go out oldest first */
  size_t n, cap;
} bt_agent__atts_t;

/* Finds an attempt. Returns a pointer borrowed from the table (valid until the
 * table changes) or NULL. */
bt_agent__att_t *bt_agent__atts_find(const bt_agent__atts_t *t, uint64_t package_id,
                                     uint32_t attempt);
/* Adds a RUNNING attempt (must not exist). Returns it, borrowed from the table. */
bt_agent__att_t *bt_agent__atts_add(bt_agent__atts_t *t, uint64_t package_id,
                                    uint32_t attempt);
/* Removes and frees an attempt. */
void bt_agent__atts_remove(bt_agent__atts_t *t, bt_agent__att_t *att);
/* Counts attempts whose state bit (1u << state) is in mask. */
size_t bt_agent__atts_count(const bt_agent__atts_t *t, unsigned mask);
/* Frees every attempt and the table's storage. */
void bt_agent__atts_clear(bt_agent__atts_t *t);

#define BT_AGENT__BIT(s) (1u << (s))
#define BT_AGENT__BUSY                                                                 \
  (BT_AGENT__BIT(BT_AGENT__ATT_RUNNING) | BT_AGENT__BIT(BT_AGENT__ATT_CANCELLED))
#define BT_AGENT__HELD                                                                 \
  (BT_AGENT__BIT(BT_AGENT__ATT_RUNNING) | BT_AGENT__BIT(BT_AGENT__ATT_DONE) |          \
   BT_AGENT__BIT(BT_AGENT__ATT_SENT))

/* ---- link.c ------------------------------------------------------------- */

typedef struct bt_agent__link bt_agent__link_t;

/* Fires for each message received that carries the current request's id; buf
 * is borrowed for the call. Returns 1 when it took the message as the answer
 * (the link stops waiting), 0 when it refused it (a forged or replayed copy:
 * the link keeps waiting for the real answer). The callee may close the link;
 * no further message is delivered after that (it then returns 1). */
typedef int (*bt_agent__link_msg_cb)(void *ctx, const uint8_t *buf, size_t len);
/* Fires once the link's handle is closed and its memory freed. */
typedef void (*bt_agent__link_closed_cb)(void *ctx);

/* Opens a raw NN_REQ socket, sets its options (receive limit max_bytes,
 * reconnect intervals), connects it to every endpoint of the comma-separated
 * list and watches it on loop. Returns 0 and *out (owned: close with
 * bt_agent__link_close), BT_EINVAL for a malformed endpoint list, or -errno. */
int bt_agent__link_open(uv_loop_t *loop, const char *endpoints, uint32_t max_bytes,
                        bt_agent__link_msg_cb on_msg, void *ctx,
                        bt_agent__link_t **out);
/* Sends one request (copied) under a new request id. Only the reply to the
 * latest request is delivered; a reply to an earlier one is dropped. Queued if
 * no connection is up yet, and sent again if the connections change before
 * the reply comes. Returns 0 or -errno. */
int bt_agent__link_send(bt_agent__link_t *link, const void *buf, size_t len);
/* Changes the receive limit (NN_RCVMAXSIZE). Returns 0 or -errno. */
int bt_agent__link_set_max(bt_agent__link_t *link, uint32_t max_bytes);
/* Stops the watcher, closes the socket and frees the link from the loop; on_closed
 * fires then. Takes ownership. */
void bt_agent__link_close(bt_agent__link_t *link, bt_agent__link_closed_cb on_closed);

/* ---- wire.c ------------------------------------------------------------- */

/* Packs req into a new buffer when it fits in max_bytes. Returns 0 with *out
 * (owned: free) and *len, or BT_ELIMIT. (Requests after Welcome are sealed:
 * bt_seal_pack_request.) */
int bt_agent__wire_pack(const Baton__AgentRequest *req, size_t max_bytes, uint8_t **out,
                        size_t *len);
/* Unpacks and validates a broker reply (version, body, required fields, ranges;
 * a Sealed is checked for its counter and box only: its inner reply is
 * validated by a second call once opened). Decodes under budget (the
 * caller's; initialised here for len, and it must outlive *out). Returns 0
 * with *out (owned: baton__agent_reply__free_unpacked(*out, &budget->a)), or
 * BT_EPROTO with *why set to a static reason. */
int bt_agent__wire_unpack(const uint8_t *buf, size_t len, bt_pb_budget_t *budget,
                          Baton__AgentReply **out, const char **why);
/* Packed size of one Result inside a Results message (with its tag and length). */
size_t bt_agent__wire_result_size(const Baton__Result *r);

/* ---- the agent: session.c (state machine), requests.c, agent.c (API) ----- */

#define BT_AGENT__DEFAULT_MAX_MESSAGE (1u << 20)
#define BT_AGENT__DEFAULT_HEARTBEAT_MS 1000u
#define BT_AGENT__DEFAULT_LEASE_MS 3000u
#define BT_AGENT__DEFAULT_POLL_MS 1000u
#define BT_AGENT__DEFAULT_STOP_TIMEOUT_MS 5000u
/* A chatty handler's progress is coalesced to at most one Progress per this
 * interval; a checkpoint that precedes a result is never held back. */
#define BT_AGENT__PROGRESS_MIN_MS 200u

typedef enum {
  BT_AGENT__S_NEW,   /* configured, not started: no handle exists */
  BT_AGENT__S_HELLO, /* Hello in flight: waiting for Challenge */
  BT_AGENT__S_AUTH,  /* Auth in flight: waiting for Welcome */
  BT_AGENT__S_READY, /* session up, nothing in flight: waiting for something to say */
  BT_AGENT__S_POLL, /* Poll parked at the broker: superseded as soon as there is news */
  BT_AGENT__S_BUSY, /* Heartbeat, Progress or Results in flight: never superseded */
  BT_AGENT__S_BACKOFF, /* an error answer: nothing in flight until backoff_until */
  BT_AGENT__S_BYE, /* stopping: Bye in flight; close on its reply or at the timeout */
  BT_AGENT__S_FAILED,  /* fatal answer reported: link closed; waiting for bt_agent_stop
                        */
  BT_AGENT__S_CLOSING, /* handles closing: on_closed fires after the last close callback
                        */
  BT_AGENT__S_CLOSED,  /* nothing open: only bt_agent_free remains */
} bt_agent__state_t;

typedef enum {
  BT_AGENT__REQ_NONE,
  BT_AGENT__REQ_HELLO,
  BT_AGENT__REQ_AUTH,
  BT_AGENT__REQ_POLL,
  BT_AGENT__REQ_HEARTBEAT,
  BT_AGENT__REQ_PROGRESS,
  BT_AGENT__REQ_RESULTS,
  BT_AGENT__REQ_BYE,
} bt_agent__req_t;

extern const char *const bt_agent__req_names[];

struct bt_agent {
  uv_loop_t *loop;
  uv_loop_t *own_loop; /* the loop the library made (loop == NULL), or NULL */
  bt_agent_callbacks_t cb;
  void *user;
  /* configuration, owned copies */
  char *brokers;
  char *vendor;
  char *name;
  char **caps;
  size_t n_caps;
  uint32_t slots;
  uint32_t cfg_max_message;
  uint32_t cfg_reply_timeout_ms;
  uint32_t stop_timeout_ms;
  uint8_t sk[64]; /* derived from the secret; the secret itself is not kept */
  /* Session keys (from the kx exchange bound to the Auth signature) and the
   * counters: every request after Auth is sealed, every reply must open and
   * answer the request in flight (reply_to == seal.tx_ctr). Wiped with the
   * session. */
  bt_seal_t seal;

  bt_agent__state_t state;
  bt_agent__link_t *link;
  uv_timer_t timer; /* reply timeouts, heartbeats, backoff, stop deadline, kicks */
  int timer_open;
  int pending_closes;
  int depth; /* > 0 while a user callback runs */

  /* session */
  int session_up; /* Welcome received */
  uint64_t session;
  uint64_t ack_seq; /* highest Assignment.seq seen in this session */
  uint64_t agent_id;
  uint32_t heartbeat_ms, lease_ms, poll_ms, max_message;

  /* the request in flight */
  bt_agent__req_t inflight;
  uint64_t reply_deadline;
  uint64_t last_sent;
  uint64_t last_progress;
  uint64_t prog_package;
  uint32_t prog_attempt;
  uint64_t ready_wake; /* S_READY: when there will be something to send */

  uint64_t backoff_until;
  unsigned errors_in_row;

  int draining;
  int stop_requested;
  uint64_t stop_deadline;
  void (*on_closed)(bt_agent_t *, void *);
  int fatal_code;

  bt_agent__atts_t atts;
};

static inline uint64_t bt_agent__now(const bt_agent_t *a) { return uv_now(a->loop); }

static inline uint64_t bt_agent__min(uint64_t x, uint64_t y) { return x < y ? x : y; }

/* Slots not taken by running (or cancelled, still stopping) attempts. */
static inline uint32_t bt_agent__free_slots_raw(const bt_agent_t *a) {
  size_t busy = bt_agent__atts_count(&a->atts, BT_AGENT__BUSY);
  return busy >= a->slots ? 0 : a->slots - (uint32_t)busy;
}

/* What the broker is told: nothing while draining or stopping. */
static inline uint32_t bt_agent__free_slots(const bt_agent_t *a) {
  return a->draining || a->stop_requested ? 0 : bt_agent__free_slots_raw(a);
}

static inline size_t bt_agent__max_output(const bt_agent_t *a) {
  return a->max_message - BT_AGENT__OVERHEAD;
}

/* session.c: the state machine. All take the agent borrowed. */
/* Arms the timer at zero so the state machine looks at the agent soon. */
void bt_agent__kick(bt_agent_t *a);
/* Re-arms the timer to the next deadline of the current state. */
void bt_agent__arm(bt_agent_t *a);
/* Closes the link and the timer; on_closed fires after the last close callback. */
void bt_agent__close_all(bt_agent_t *a);
void bt_agent__close_link(bt_agent_t *a);
/* Replaces the socket and starts a new session with Hello. */
void bt_agent__reconnect(bt_agent_t *a, const char *why);
/* Waits (growing with errors_in_row) before retrying. */
void bt_agent__enter_backoff(bt_agent_t *a);
/* The link's message callback (ctx is the agent): 1 taken, 0 refused. */
int bt_agent__on_link_msg(void *ctx, const uint8_t *buf, size_t len);

/* requests.c: building and sending requests. */
/* Opens the link if needed and sends Hello (or backs off). */
void bt_agent__send_hello(bt_agent_t *a);
/* Answers a Challenge with the signature and the held attempts. */
void bt_agent__send_auth(bt_agent_t *a, const Baton__Challenge *ch);
/* Sends the most urgent request, or stays ready with ready_wake set. */
void bt_agent__send_next(bt_agent_t *a);
/* An attempt with progress to send (finished ones first when before_result). */
bt_agent__att_t *bt_agent__progress_pending(const bt_agent_t *a, int before_result);
/* Whether a parked Poll should give way now. */
int bt_agent__has_news(const bt_agent_t *a, uint64_t now);

#endif

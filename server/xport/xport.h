/*
 * xport: the agent endpoint. It owns the nanomsg AF_SP_RAW NN_REP socket on the
 * loop, agent sessions (challenge, authentication, the request being answered,
 * the outbox of unacknowledged assignments) and the protobuf wire format. It
 * turns validated messages into calls on a bt_xp_handler_t (the shell) and the
 * shell's decisions back into replies. It decides no business rule: whom to
 * assign, whether a result counts, and whether an agent is alive are the core's.
 *
 * Every message after Auth is sealed under a per-session key pair agreed during
 * the handshake (proto/bt_seal.h, proto/README.md "Sealing"); a message that
 * does not open, or opens with an old counter, is refused and audited without
 * touching its session, so a forger can neither inject, replay nor end one.
 *
 * Replies are not sent from inside handler calls: the shell marks what is ready
 * and calls bt_xp_flush() once per batch, so an answer to Results can carry the
 * assignments committed in the same transaction.
 */
#ifndef BT_XPORT_H
#define BT_XPORT_H

#include "core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct bt_xp bt_xp_t;

typedef struct {
  uint32_t max_message_bytes; /* NN_RCVMAXSIZE; also announced to agents */
  uint32_t heartbeat_ms;
  uint32_t lease_ms;
  uint32_t poll_ms;           /* how long a poll is parked */
  uint32_t max_payload_bytes; /* checkpoints and results above this are refused */
  uint32_t max_pending_auth;  /* challenges outstanding at once */
  uint32_t max_agents_per_vendor;
  /* Seal every message after Auth with XSalsa20-Poly1305 (true, the default)
   * or send the body in clear behind an HMAC-SHA512-256 tag (false). Either
   * way every message is authenticated and replays are refused. */
  bool encrypt;
} bt_xp_opts_t;

void bt_xp_opts_default(bt_xp_opts_t *o);

typedef struct {
  uint64_t session;
  uint64_t vendor_id;
  const char *vendor;
  const char *agent_name;
  const char *const *caps;
  size_t n_caps;
  uint32_t slots;
  const char *software;
  const bt_held_t *held;
  size_t n_held;
} bt_xp_hello_t;

/* What the endpoint sends for one assignment (borrowed from the core). */
typedef struct {
  const char *capability;
  const uint8_t *payload;
  size_t payload_len;
  int64_t deadline_at;
  const uint8_t *checkpoint;
  size_t checkpoint_len;
} bt_xp_assignment_t;

/* The shell's side. Every call happens on the loop; pointers are borrowed for
 * the call. */
typedef struct {
  /* The vendor's public key for an authentication attempt. Returns 0,
   * BT_ENOTFOUND or BT_ESTATE (vendor may not connect). */
  int (*vendor_key)(void *arg, const char *vendor, uint64_t *vendor_id,
                    uint8_t key[32]);
  /* An authenticated agent. Returns 0 with *agent_id set — the shell then calls
   * bt_xp_welcome() once the agent row is committed — or a negative code, which
   * the endpoint answers with an error. */
  int (*hello)(void *arg, const bt_xp_hello_t *h, uint64_t *agent_id);
  /* Any valid message of a live session. */
  void (*seen)(void *arg, uint64_t agent_id);
  /* The agent acknowledged an assignment (it received it). */
  void (*started)(void *arg, uint64_t agent_id, uint64_t package_id, uint32_t attempt);
  /* The agent reported how many slots it has free (poll, results, heartbeat). */
  void (*ready)(void *arg, uint64_t agent_id, uint32_t free_slots);
  void (*progress)(void *arg, uint64_t agent_id, uint64_t package_id, uint32_t attempt,
                   int percent, const void *checkpoint, size_t len);
  /* One finished attempt; the shell answers later with bt_xp_ack(). */
  void (*result)(void *arg, uint64_t agent_id, const bt_result_t *r);
  void (*bye)(void *arg, uint64_t agent_id);
  /* Fills what to send for an assignment; BT_ESTALE when it is no longer
   * current (then it is dropped from the outbox). */
  int (*assignment)(void *arg, uint64_t agent_id, uint64_t package_id, uint32_t attempt,
                    bt_xp_assignment_t *out);
  /* A refused authentication or message worth an audit row: agent.auth_failed,
   * agent.bad_mac (a message of a live session that does not authenticate),
   * agent.replay (an authentic message seen before). */
  void (*rejected)(void *arg, const char *action, const char *vendor, const char *agent,
                   const char *detail);
} bt_xp_handler_t;

/* Binds endpoint (e.g. "tcp://127.0.0.1:7800") and starts serving. Returns 0 or
 * a negative code with the error logged. The endpoint is owned: bt_xp_close. */
int bt_xp_new(uv_loop_t *loop, const char *endpoint, const bt_xp_opts_t *opts,
              const bt_xp_handler_t *handler, void *arg, bt_xp_t **out);

/* Answers every open request with UNAVAILABLE, closes the socket; on_closed
 * fires from the loop once the handles are closed, and the endpoint is freed. */
void bt_xp_close(bt_xp_t *xp, void (*on_closed)(void *arg), void *arg);

/* --- what the shell tells the endpoint ------------------------------------- */

/* The agent row of session is committed (status 0) or not: Welcome or Error. */
void bt_xp_welcome(bt_xp_t *xp, uint64_t session, int status);
/* A committed assignment: goes to the agent's outbox. */
void bt_xp_dispatch(bt_xp_t *xp, uint64_t agent_id, uint64_t package_id,
                    uint32_t attempt);
/* A result is answered: code 0 = acknowledged, BT_ESTALE = refused, any other
 * code = not recorded (the agent keeps it and sends it again). */
void bt_xp_ack(bt_xp_t *xp, uint64_t agent_id, uint64_t package_id, uint32_t attempt,
               int code);
/* The agent must stop this attempt. */
void bt_xp_cancel(bt_xp_t *xp, uint64_t agent_id, uint64_t package_id, uint32_t attempt);
/* The core ended the agent's session (lost): its next message gets SESSION. */
void bt_xp_end_session(bt_xp_t *xp, uint64_t agent_id);
/* Sends every reply that is ready. */
void bt_xp_flush(bt_xp_t *xp);

/* Figures for stats and metrics. */
typedef struct {
  uint64_t received, sent, rejected, broken_connections;
  uint32_t sessions;
} bt_xp_stats_t;
void bt_xp_stats(const bt_xp_t *xp, bt_xp_stats_t *st);

#endif

/* Internals of the agent endpoint shared by its files. */
#ifndef BT_XPORT_INT_H
#define BT_XPORT_INT_H

#include "bt_auth.h"
#include "bt_idmap.h"
#include "bt_pballoc.h"
#include "bt_seal.h"
#include "baton.pb-c.h"
#include "xport.h"

#define BT_XP_MAX_CAPS 32
#define BT_XP_MAX_SLOTS 1024
#define BT_XP_MAX_HELD 4096
#define BT_XP_MAX_RESULTS 1024

/* Session states. */
typedef enum {
  BT_XS_CHALLENGED, /* Challenge sent (with our kx key); waiting for Auth */
  BT_XS_WELCOMING,  /* authenticated, session keys derived; the agent row is being
                       committed */
  BT_XS_ACTIVE,     /* serving sealed requests; every reply is sealed */
} bt_xs_state_t;

/* The request a session is answering (at most one: REQ semantics). */
typedef enum {
  BT_XR_NONE,
  BT_XR_AUTH,      /* answered by bt_xp_welcome */
  BT_XR_POLL,      /* parked until there is something to say or poll_ms */
  BT_XR_RESULTS,   /* answered once every result is acknowledged */
  BT_XR_IMMEDIATE, /* heartbeat, progress, bye: answered at the next flush */
} bt_xr_kind_t;

typedef struct {
  uint64_t seq;
  uint64_t package_id;
  uint32_t attempt;
  bool cancel; /* a cancel rather than an assignment */
} bt_xp_item_t;

typedef struct {
  uint64_t package_id;
  uint32_t attempt;
} bt_xp_pa_t;

typedef struct {
  bt_xp_pa_t *v;
  uint32_t n, cap;
} bt_xp_pavec_t;

typedef struct bt_xp_session {
  uint64_t id;
  bt_xs_state_t state;
  uint64_t agent_id;
  uint64_t vendor_id;
  uint8_t nonce[32];
  /* key exchange: our ephemeral key pair (the secret half wiped once the
   * session keys are derived), the mode announced, the signature that
   * authenticated (an Auth resent while welcoming must be the same) */
  uint8_t kx_pk[BT_SEAL_KX_BYTES], kx_sk[BT_SEAL_KX_BYTES];
  Baton__SealMode seal_mode;
  uint8_t auth_sig[BT_AUTH_SIG_BYTES];
  bt_seal_t seal; /* session keys and counters; wiped when the session ends */
  /* Refusals (0: bad MAC, 1: replay) are logged and audited at most once a
   * second each; the quiet ones are counted into the next row. */
  uint64_t reject_next_ms[2];
  uint32_t rejects_quiet[2];
  char vendor[129];
  char agent_name[129];
  char software[129];
  char **caps;
  uint32_t n_caps;
  uint32_t slots;
  uint64_t created_ms;
  uint64_t last_ms;
  /* the request being answered */
  void *ctl; /* nanomsg control chunk (owned) */
  void *ctl_dup; /* an earlier copy of the same request (an exact resend came in
                    on another pipe while it was pending): answered too */
  uint64_t req_ctr; /* Sealed.counter of that request: the replies' reply_to */
  bt_xr_kind_t kind;
  uint64_t req_ms;
  uint32_t pending_acks;
  /* what goes into the next Work */
  bt_xp_item_t *outbox; /* assignments and cancels until acknowledged */
  uint32_t n_outbox, cap_outbox;
  uint64_t next_seq;
  uint64_t acked_seq;
  bt_xp_pavec_t acked, stale;
  bool dirty;   /* in xp->dirty */
  bool leaving; /* said Bye: freed once the answer is sent */
} bt_xp_session_t;

struct bt_xp {
  uv_loop_t *loop;
  bt_xp_opts_t opts;
  bt_xp_handler_t h;
  void *arg;
  int sock;
  uv_poll_t poll;
  uv_timer_t timer;
  int open_handles;
  bool closing;
  void (*on_closed)(void *arg);
  void *closed_arg;
  bt_idmap_t by_session;
  bt_idmap_t by_agent;
  uint32_t n_sessions, n_pending_auth;
  bt_xp_session_t **dirty;
  uint32_t n_dirty, cap_dirty;
  bt_xp_stats_t stats;
  uint64_t last_broken;
  uint64_t byes; /* agents that said goodbye (their connection closes normally) */
};

/* validate.c: checks an unpacked request; returns 0 or BT_EPROTO/BT_EVERSION
 * with a reason in why. */
int bt_xp__validate(const Baton__AgentRequest *req, const bt_xp_opts_t *o, char *why,
                    size_t why_len);

/* endpoint.c: unpacks buf (borrowed) under budget and validates it. Returns 0
 * with *out (owned: baton__agent_request__free_unpacked(*out, &budget->a)), or
 * with *out NULL and the reason in why: BT_EINVAL when buf is not a protobuf
 * message at all, BT_EPROTO / BT_EVERSION when it fails validation. */
int bt_xp__decode(const bt_xp_t *xp, const uint8_t *buf, size_t len,
                  bt_pb_budget_t *budget, Baton__AgentRequest **out, char *why,
                  size_t why_len);

/* session.c */
void bt_xp__on_request(bt_xp_t *xp, Baton__AgentRequest *req, void *ctl);
/* Sends reply on *ctl (taken: NULL afterwards), and on *dup when dup is not NULL
 * and holds one. Sealed under s's keys when s is an active session, in clear
 * otherwise (s NULL: no session, or one that is not authenticated). */
void bt_xp__send(bt_xp_t *xp, bt_xp_session_t *s, void **ctl, void **dup,
                 const Baton__AgentReply *reply);
void bt_xp__reply_error(bt_xp_t *xp, bt_xp_session_t *s, void **ctl,
                        Baton__ErrorCode code, const char *message);
void bt_xp__mark(bt_xp_t *xp, bt_xp_session_t *s);
void bt_xp__expire(bt_xp_t *xp, uint64_t now_ms);
void bt_xp__session_free(bt_xp_t *xp, bt_xp_session_t *s);

#endif

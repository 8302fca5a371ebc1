/* Internals of the agent endpoint shared by its files. */
#ifndef BT_XPORT_INT_H
#define BT_XPORT_INT_H

#include "bt_idmap.h"
#include "baton.pb-c.h"
#include "xport.h"

#define BT_XP_MAX_CAPS 32
#define BT_XP_MAX_SLOTS 1024
#define BT_XP_MAX_HELD 4096
#define BT_XP_MAX_RESULTS 1024

/* Session states. */
typedef enum {
  BT_XS_CHALLENGED, /* Challenge sent; waiting for Auth */
  BT_XS_WELCOMING,  /* authenticated; the agent row is being committed */
  BT_XS_ACTIVE,     /* serving requests */
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

/* session.c */
void bt_xp__on_request(bt_xp_t *xp, Baton__AgentRequest *req, void *ctl);
void bt_xp__reply_error(bt_xp_t *xp, void **ctl, Baton__ErrorCode code,
                        const char *message);
void bt_xp__send(bt_xp_t *xp, void **ctl, const Baton__AgentReply *reply);
void bt_xp__mark(bt_xp_t *xp, bt_xp_session_t *s);
void bt_xp__expire(bt_xp_t *xp, uint64_t now_ms);
void bt_xp__session_free(bt_xp_t *xp, bt_xp_session_t *s);

#endif

/* Internals of the control socket shared by its files. */
#ifndef BT_CTL_INT_H
#define BT_CTL_INT_H

#include "baton.pb-c.h"
#include "bt_frame.h"
#include "bt_idmap.h"
#include "ctl.h"

typedef struct bt_ctl_conn bt_ctl_conn_t;

/* A control stream, listener or connection: a Unix socket or a TCP socket
 * (the endpoint's kind, ctl->tcp, says which member is live). Everything past
 * bind and accept works on .stream, so both kinds share one connection path. */
typedef union {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_pipe_t pipe;
  uv_tcp_t tcp;
} bt_ctl_stream_t;

/* The admin token of a tcp:// endpoint (auth.c). Only a keyed hash of the
 * configured token is kept; the key is random per process. */
#define BT_CTL_AUTH_HASH_BYTES 32u
#define BT_CTL_MIN_TOKEN_BYTES 16u
typedef struct {
  bool required; /* a tcp:// endpoint: every request must carry the token */
  uint8_t key[BT_CTL_AUTH_HASH_BYTES];
  uint8_t hash[BT_CTL_AUTH_HASH_BYTES];
  uint64_t window_ms;   /* start of the current refusal-report window */
  uint32_t reported;    /* refusals logged and audited in this window */
  uint32_t suppressed;  /* refusals not reported since the last report */
} bt_ctl_auth_t;

/* One request of a connection, answered in order. */
typedef struct bt_ctl_req {
  uint64_t token;
  bt_ctl_conn_t *conn; /* NULL once the connection is gone: the answer is dropped */
  struct bt_ctl_req *next;
  uint8_t *frame; /* the packed answer with its length prefix, once ready */
  size_t frame_len;
  char secret[48]; /* vendor add, rotate-secret: shown once in the answer */
  char name[136];
} bt_ctl_req_t;

/* Connection states: READING (taking requests), DRAINING (no more reading;
 * answers still go out), CLOSING (handle closing). */
struct bt_ctl_conn {
  bt_ctl_stream_t h;
  bt_ctl_t *ctl;
  bt_frame_reader_t reader;
  bt_ctl_req_t *head, *tail;
  uint32_t n_reqs;
  bool reading;
  bool draining; /* stop reading; close once every answer is written */
  bool closing;
  uint32_t writes;
  uint32_t uid;
  bool authed;           /* tcp: a request with the right token arrived */
  char peer[64];         /* tcp: the peer's address ("127.0.0.1:5000"), else "" */
  char who[80];          /* the peer as logfmt context: "uid=1000" or "peer=ADDR" */
  const char *refused;   /* set: every request is answered with this refusal */
  uint64_t last_ms;      /* last bytes received */
  bt_ctl_conn_t *prev_conn, *next_conn;
  bool flush_queued;        /* on ctl->flush_list: answers wait for this turn's write */
  bt_ctl_conn_t *next_flush;
};

struct bt_ctl {
  uv_loop_t *loop;
  bt_ctl_opts_t opts;
  bt_core_t *core;
  const bt_lanes_t *lanes; /* the shell's; see bt_ctl_new */
  bt_ctl_ops_t ops;
  void *arg;
  bt_ctl_stream_t listener;
  bool tcp;       /* a tcp:// endpoint: listener and connections are uv_tcp_t */
  bool listening;
  uv_timer_t sweep; /* closes connections that stall mid-frame or idle too long */
  char *path;     /* the Unix socket's path (removed at stop), or the tcp:// endpoint */
  bt_ctl_auth_t auth;
  bt_idmap_t reqs;
  uint64_t next_token;
  bt_ctl_conn_t *conns;
  uint32_t n_conns;
  /* Answers that became ready during a loop turn (a commit acknowledges many
   * submits at once) are written together when the turn's I/O is done: one
   * writev per connection instead of one write, and one wake-up of the client,
   * per answer. The idle handle only keeps the loop from blocking in poll
   * while answers wait (one queued by a timer or a check callback would
   * otherwise wait for the next I/O). */
  uv_check_t flush;
  uv_idle_t flush_soon;
  bt_ctl_conn_t *flush_list;
  int open_handles;
  bool closing;
  void (*on_closed)(void *arg);
  void *closed_arg;
};

/* listener.c: answers a request: packs reply for the end of this loop turn,
 * when the connection's ready answers go out in one write (frees the request
 * at once when its connection is gone). */
void bt_ctl__answer(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__CtlReply *reply);
/* Answers with an error status from a Baton code and a message. */
void bt_ctl__fail(bt_ctl_t *ctl, bt_ctl_req_t *req, int code, const char *message);
/* commands.c: the vendor ref names (id or name), borrowed from the core; or
 * NULL after answering "no vendor REF" (not found). */
const bt_core_vendor_t *bt_ctl__vendor_or_fail(bt_ctl_t *ctl, bt_ctl_req_t *req,
                                                const char *ref);
bt_ctl_req_t *bt_ctl__req_by_token(bt_ctl_t *ctl, uint64_t token);

/* A store read in flight for a request, found again by token when the rows
 * arrive (the client may have gone meanwhile). */
typedef struct {
  bt_ctl_t *ctl;
  uint64_t token;
} bt_ctl_read_t;
/* Returns a new read for req (owned by the store callback). */
bt_ctl_read_t *bt_ctl__read_new(bt_ctl_t *ctl, const bt_ctl_req_t *req);
/* In the store callback: frees the read and returns its request, or NULL when
 * there is nothing left to do (the client is gone, or status != 0 and the
 * request was answered "store unavailable"). *ctl_out gets the control socket. */
bt_ctl_req_t *bt_ctl__read_done(bt_ctl_read_t *r, int status, bt_ctl_t **ctl_out);

/* endpoint.c: the listening side, Unix socket or TCP. Parses endpoint
 * ("tcp://HOST:PORT" with a numeric HOST, "[V6]" in brackets; "unix://PATH"
 * or a PATH), initialises ctl->listener, binds and listens with cb. Sets
 * ctl->tcp and ctl->path (owned). Returns 0 or a negative code with one error
 * line logged; the listener handle is initialised (and must be closed) when
 * ctl->path is set, whatever the result. */
int bt_ctl__endpoint_listen(bt_ctl_t *ctl, const char *endpoint, uv_connection_cb cb);
/* Initialises c->h as the endpoint's kind of stream, ready for uv_accept. */
void bt_ctl__endpoint_conn_init(bt_ctl_t *ctl, bt_ctl_conn_t *c);
/* After accept: fills c->peer, c->who and c->uid. Returns 0, or BT_EAUTH with
 * the refusal to answer in *why (static) when the peer may not use the
 * endpoint (a Unix peer of another user: logged and audited here). */
int bt_ctl__endpoint_identify(bt_ctl_t *ctl, bt_ctl_conn_t *c, const char **why);
/* Removes the socket file of a Unix endpoint (nothing for TCP). */
void bt_ctl__endpoint_unlink(bt_ctl_t *ctl);

/* auth.c: the admin token. auth_init checks the token the endpoint needs
 * (token borrowed, may be NULL; required on tcp, at least
 * BT_CTL_MIN_TOKEN_BYTES) and keeps its keyed hash. Returns 0 or BT_ECONFIG
 * with one error line logged (never the token). */
int bt_ctl__auth_init(bt_ctl_auth_t *a, bool tcp, const char *token,
                      const char *endpoint);
/* Checks the token a request carried (given borrowed, may be NULL) in constant
 * time. Returns 0, or BT_EAUTH with the reason to answer in *why (static);
 * a refusal is logged and audited (control.unauthenticated, naming the peer,
 * never the token). */
int bt_ctl__auth_check(bt_ctl_t *ctl, const bt_ctl_conn_t *c, const char *given,
                       const char **why);

/* commands.c: runs one decoded request. */
void bt_ctl__dispatch(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__CtlRequest *msg);

/* packages.c */
void bt_ctl__submit(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__Submit *m);
void bt_ctl__package_show(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageRef *m);
void bt_ctl__package_list(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageQuery *m);
void bt_ctl__result(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageRef *m);
void bt_ctl__wait(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__WaitQuery *m);
/* package cancel|retry|reassign: validates m (borrowed), resolves the target
 * vendor and hands the operation to ops.package_op; errors are answered at
 * once, success later through bt_ctl_package_changed. */
void bt_ctl__package_op(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__PackageOp *m);

/* handoffs.c: validates m (borrowed), resolves the vendor filter and answers
 * from a store read (the answer follows when the read completes). */
void bt_ctl__handoffs(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__HandoffQuery *m);

/* audit.c: the audit trail and the vendor scorecard. Each validates m
 * (borrowed), resolves its vendor against the core (unknown: CTL_NOT_FOUND "no
 * vendor V") and answers from a store read when it completes (store down:
 * CTL_UNAVAILABLE "store unavailable; retry later"). */
void bt_ctl__audit(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__AuditQuery *m);
void bt_ctl__scorecard(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__ScorecardQuery *m);

/* config.c: `config get` answered from ops.config; `config set` handed to
 * ops.config_set (errors answered at once, success by bt_ctl_config_set_done). */
void bt_ctl__config_get(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__ConfigQuery *m);
void bt_ctl__config_set(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__ConfigSet *m);

/* validate.c: pure checks of control messages. Return 0 or BT_EINVAL with a
 * reason in why. */
int bt_ctl__validate_spec(const Baton__PackageSpec *s, uint32_t max_payload, char *why,
                          size_t why_len);
int bt_ctl__validate_vendor(const Baton__VendorAdd *v, char *why, size_t why_len);
/* The three below also translate the wire's enum into the core's (*op). */
int bt_ctl__validate_vendor_op(const Baton__VendorOp *m, bt_vendor_op_t *op, char *why,
                               size_t why_len);
int bt_ctl__validate_package_op(const Baton__PackageOp *m, bt_pkg_op_t *op, char *why,
                                size_t why_len);
int bt_ctl__validate_handoff_query(const Baton__HandoffQuery *m, char *why,
                                   size_t why_len);
int bt_ctl__validate_audit_query(const Baton__AuditQuery *m, char *why, size_t why_len);
int bt_ctl__validate_scorecard_query(const Baton__ScorecardQuery *m, char *why,
                                     size_t why_len);

/* The most handoff rows one answer holds (and the default of a query). */
#define BT_CTL_MAX_HANDOFFS 10000u
/* The most audit rows one answer holds, and the default of a query. */
#define BT_CTL_MAX_AUDIT 100000u
#define BT_CTL_DEFAULT_AUDIT 1000u

/* A CtlReply with version and status CTL_OK set. */
void bt_ctl__reply_init(Baton__CtlReply *r);

#endif

/* Internals of the control socket shared by its files. */
#ifndef BT_CTL_INT_H
#define BT_CTL_INT_H

#include "baton.pb-c.h"
#include "bt_frame.h"
#include "bt_idmap.h"
#include "ctl.h"

typedef struct bt_ctl_conn bt_ctl_conn_t;

/* One request of a connection, answered in order. */
typedef struct bt_ctl_req {
  uint64_t token;
  bt_ctl_conn_t *conn; /* NULL once the connection is gone: the answer is dropped */
  struct bt_ctl_req *next;
  uint8_t *frame; /* the packed answer with its length prefix, once ready */
  size_t frame_len;
  char secret[48]; /* vendor add: shown once in the answer */
  char name[136];
} bt_ctl_req_t;

/* Connection states: READING (taking requests), DRAINING (no more reading;
 * answers still go out), CLOSING (handle closing). */
struct bt_ctl_conn {
  uv_pipe_t pipe;
  bt_ctl_t *ctl;
  bt_frame_reader_t reader;
  bt_ctl_req_t *head, *tail;
  uint32_t n_reqs;
  bool reading;
  bool draining; /* stop reading; close once every answer is written */
  bool closing;
  uint32_t writes;
  uint32_t uid;
  const char *refused;   /* set: every request is answered with this refusal */
  uint64_t last_ms;      /* last bytes received */
  bt_ctl_conn_t *prev_conn, *next_conn;
};

struct bt_ctl {
  uv_loop_t *loop;
  bt_ctl_opts_t opts;
  bt_core_t *core;
  bt_store_t *store;
  bt_ctl_ops_t ops;
  void *arg;
  uv_pipe_t listener;
  bool listening;
  uv_timer_t sweep; /* closes connections that stall mid-frame or idle too long */
  char *path;
  bt_idmap_t reqs;
  uint64_t next_token;
  bt_ctl_conn_t *conns;
  uint32_t n_conns;
  int open_handles;
  bool closing;
  void (*on_closed)(void *arg);
  void *closed_arg;
};

/* listener.c: answers a request (packs reply, writes what is ready, frees the
 * request when its connection is gone). */
void bt_ctl__answer(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__CtlReply *reply);
/* Answers with an error status from a Baton code and a message. */
void bt_ctl__fail(bt_ctl_t *ctl, bt_ctl_req_t *req, int code, const char *message);
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

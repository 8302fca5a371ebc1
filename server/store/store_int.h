/* Internals shared by the store's files: operations, segments, the statement
 * table. */
#ifndef BT_STORE_INT_H
#define BT_STORE_INT_H

#include "pgwire.h"
#include "store.h"

#include <libpq-fe.h>

#define BT_STORE_MAX_Q 3

typedef struct bt_store_op bt_store_op_t;
/* Delivers an operation's outcome (parses op->res on success). Runs once. */
typedef void (*bt_store_complete_fn)(bt_store_op_t *op, int status);

struct bt_store_op {
  bt_store_op_t *next;
  uint8_t nq;               /* statements (0 = a barrier) */
  bool prepare;             /* statements are PQsendPrepare of the statement table */
  bool fail_fast;           /* fail at once while the database is down */
  bool sent_once;           /* sent before; its outcome may be unknown */
  bool unknown;             /* was in flight on a lost connection: its rows may
                             * be committed already (sent guarded, sql.def) */
  bool isolate;             /* goes alone in a segment (replay after an error) */
  uint8_t retries;
  /* Merging (engine.c): a mergeable op is one array statement of a kind that
   * may travel with others of its kind in one statement, about one package. */
  bool mergeable;
  bool merged;   /* in the segment, its row sent inside a carrier's statement */
  bool absorbed; /* a start folded into its attempt's finish: no row of its own */
  bool carrier;  /* the engine's own: carries merged rows; extra = their ops */
  bool fence;    /* the engine's own: the leader-epoch check heading a segment */
  uint8_t round;
  uint32_t merge_attempt;
  uint64_t merge_key; /* the package */
  int64_t merge_at;
  int stmt[BT_STORE_MAX_Q]; /* index into bt_store_sql */
  bt_pgparams_t params[BT_STORE_MAX_Q];
  PGresult *res[BT_STORE_MAX_Q];
  int status;               /* first error of its statements */
  char errmsg[160];
  bt_store_complete_fn complete;
  void (*cb)(void);         /* the caller's callback, cast back by complete */
  void *arg;
  void *extra;              /* owned; freed with the op */
  size_t n_extra;
};

typedef struct bt_store_seg {
  struct bt_store_seg *next;
  bt_store_op_t *head, *tail;
  uint32_t n_ops;
  bt_store_op_t *cur; /* op whose results are being read */
  uint8_t cur_q;      /* its statement */
  bool have_res;      /* a result arrived for cur/cur_q; next NULL ends it */
  bool error;
  uint64_t sent_ms;
  uint64_t sent_ns; /* uv_hrtime(): the commit-latency histogram wants sub-ms */
} bt_store_seg_t;

/* Connection states (one at a time; see engine.c). */
typedef enum {
  BT_ST_WAITING,    /* no connection; the timer will start one */
  BT_ST_CONNECTING, /* PQconnectPoll in progress */
  BT_ST_PREPARING,  /* connected; statement preparation in flight */
  BT_ST_READY,      /* serving segments */
  BT_ST_STOPPING,   /* handles closing */
} bt_store_state_t;

typedef struct {
  uv_poll_t h;
  bt_store_t *st;
} bt_store_poll_t;

struct bt_store {
  uv_loop_t *loop;
  char *dsn;
  bt_store_opts_t opts;
  bt_store_state_t state;
  PGconn *conn;
  bt_store_poll_t *poll; /* NULL when not watching */
  int poll_fd;
  int poll_events;
  uv_check_t check;
  uv_timer_t timer;
  bt_store_op_t *pend_head, *pend_tail;
  size_t n_pending;
  bt_store_seg_t *fly_head, *fly_tail;
  uint32_t n_inflight;
  bool ever_up;  /* connected at least once */
  bool down;     /* was up, lost, not back yet */
  bool fenced;   /* another broker is the leader: send nothing more */
  uint32_t backoff_ms;
  uint64_t down_since_ms;
  bool closing;
  int open_handles;
  void (*on_closed)(void *arg);
  void *closed_arg;
  bt_store_flush_cb on_flush;
  void *flush_arg;
  bool delivered; /* callbacks ran since the last on_flush */
  /* Merging state of the segment being built (engine.c). */
  bt_store_op_t **mq;         /* mergeable ops waiting for their statement */
  size_t mq_n, mq_cap;
  struct bt_store_last *last; /* package → its latest op in mq (open addressing) */
  uint32_t last_cap, last_gen;
  uint8_t rounds;             /* rounds in use (highest round + 1) */
};

/* The statement table: index, name, SQL. */
enum {
#define BT_SQL_ENUM(id, text) BT_SQL_##id,
#include "sql.def"
#undef BT_SQL_ENUM
  BT_SQL__COUNT
};
extern const char *const bt_store_sql[BT_SQL__COUNT];
extern const char *const bt_store_sql_name[BT_SQL__COUNT];
/* The most rows a statement with audit events may have and still append them
 * as one audit_batches row (its arrays' domain, migrations/0007 and 0010). */
#define BT_STORE_AUDIT_BATCH_MAX 4096
/* The statement to send for stmt with parameters p: the _GUARDED form of an
 * insert when guarded (its rows may be there already: sql.def,
 * BT_SQL_IF_THERE_ALREADY), and of that the _LARGE form of a statement with
 * audit events when its rows (the length of its first array parameter) are
 * more than BT_STORE_AUDIT_BATCH_MAX (BT_SQL_AUDIT_ONE); else stmt.
 * Borrows p. */
int bt_store__stmt_for(int stmt, const bt_pgparams_t *p, bool guarded);

/* engine.c */
bt_store_op_t *bt_store__op_new(bt_store_complete_fn complete, void (*cb)(void),
                                void *arg);
/* Adds a statement; returns its params to fill. */
bt_pgparams_t *bt_store__op_stmt(bt_store_op_t *op, int stmt);
void bt_store__enqueue(bt_store_t *st, bt_store_op_t *op);
void bt_store__op_free(bt_store_op_t *op);
/* merge.c: takes a mergeable op into the rounds being built (false: not
 * mergeable, or not now — send what waits with bt_store__merge_take first). */
bool bt_store__merge_add(bt_store_t *st, bt_store_op_t *op);
/* The carriers for what waits, in send order (linked by next); resets. */
bt_store_op_t *bt_store__merge_take(bt_store_t *st);
/* Forgets what waits (the ops stay in their segment). */
void bt_store__merge_reset(bt_store_t *st);
/* A failed or lost segment: members take their carrier's error, carriers are
 * freed, every op can be sent again on its own. */
void bt_store__merge_unwind(bt_store_seg_t *seg);
void bt_store__merge_close(bt_store_t *st);
/* pkgrow.c: parses a package row (its column order is documented there); the
 * lists are malloc'd into lists[0..3] for the caller to free. */
void bt_store__parse_pkg_row(const PGresult *r, int i, bt_pkg_row_t *row,
                             const char **lists[4]);
/* Maps a failed result to a Baton code (SQLSTATE classes). */
int bt_store__map_error(const PGresult *r);

#endif

/*
 * The store's engine: one libpq connection in pipeline mode on the loop.
 *
 * Connection state machine (bt_store_state_t):
 *   WAITING    no connection; the timer starts one after a backoff
 *   CONNECTING PQconnectPoll steps, socket watched for what libpq asks
 *   PREPARING  connected; one segment preparing every statement is in flight
 *   READY      queued operations go out as segments, results are read back
 *   STOPPING   closing handles; nothing more is sent
 * A lost connection from CONNECTING, PREPARING or READY goes to WAITING with
 * every in-flight operation back at the head of the queue.
 *
 * Reading results: inside a segment each statement yields its result(s) and
 * then a NULL; the segment ends with PGRES_PIPELINE_SYNC. A NULL is treated as
 * "end of statement" only while a statement's result is expected — after a lost
 * connection PQgetResult returns NULL forever, and counting that as success
 * would invent commits (stack-findings §6).
 */
#include "store_int.h"

#include "bt_err.h"
#include "bt_log.h"
#include "bt_time.h"

#include <stdlib.h>
#include <string.h>

static void start_connect(bt_store_t *st);
static void lose_connection(bt_store_t *st, const char *why);
static void flush_pending(bt_store_t *st);
static void watch(bt_store_t *st, int fd, int events);
static void maybe_finish_close(bt_store_t *st);

void bt_store_opts_default(bt_store_opts_t *o) {
  o->pipeline_depth = 1;
  o->overlap_min_ops = 128;
  o->max_segment_ops = 4096;
  o->reconnect_max_ms = 2000; /* a refused connect is cheap; be back soon */
  o->op_timeout_ms = 15000;
  o->on_commit = NULL;
  o->commit_arg = NULL;
  o->epoch = 0;
  o->on_fenced = NULL;
  o->fenced_arg = NULL;
}

/* --- operations ------------------------------------------------------------ */

/* Freed operations wait here to be used again, their parameter buffers with
 * them: a busy broker makes and frees a few operations a package, and malloc,
 * free and growing the buffers were a tenth of batond's time (tests/bench,
 * perf). Only the loop's thread makes operations. A buffer past
 * OP_CACHE_BUF_MAX (a carrier's, a large payload's) is not kept, so the cache
 * holds at most OP_CACHE_MAX * 3 * 4 KiB (6 MiB) and usually a tenth of
 * that (one-row statements fit in 256 or 512 bytes). Under AddressSanitizer
 * nothing is kept, so a use after free of an operation is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define OP_CACHE_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OP_CACHE_MAX 0
#endif
#endif
#ifndef OP_CACHE_MAX
#define OP_CACHE_MAX 512
#endif
#define OP_CACHE_BUF_MAX 4096u
static const size_t op_cache_max = OP_CACHE_MAX; /* a variable: 0 is no warning */
static bt_store_op_t *op_cache;
static size_t op_cache_n;

bt_store_op_t *bt_store__op_new(bt_store_complete_fn complete, void (*cb)(void),
                                void *arg) {
  bt_store_op_t *op = op_cache;
  if (op != NULL) {
    op_cache = op->next;
    op_cache_n--;
    /* Only the buffers survive; everything else starts as calloc would. */
    uint8_t *buf[BT_STORE_MAX_Q];
    size_t cap[BT_STORE_MAX_Q];
    for (int i = 0; i < BT_STORE_MAX_Q; i++) {
      buf[i] = op->params[i].buf;
      cap[i] = op->params[i].cap;
    }
    memset(op, 0, sizeof *op);
    for (int i = 0; i < BT_STORE_MAX_Q; i++) {
      op->params[i].buf = buf[i];
      op->params[i].cap = cap[i];
    }
  } else {
    op = calloc(1, sizeof *op);
    if (op == NULL)
      abort();
  }
  op->complete = complete;
  op->cb = cb;
  op->arg = arg;
  return op;
}

bt_pgparams_t *bt_store__op_stmt(bt_store_op_t *op, int stmt) {
  if (op->nq >= BT_STORE_MAX_Q)
    abort();
  bt_pgparams_t *p = &op->params[op->nq];
  bt_pgp_reset(p); /* a reused op keeps its buffer */
  op->stmt[op->nq++] = stmt;
  return p;
}

static void op_clear_results(bt_store_op_t *op) {
  for (int i = 0; i < op->nq; i++) {
    PQclear(op->res[i]);
    op->res[i] = NULL;
  }
  op->status = 0;
  op->errmsg[0] = '\0';
}

void bt_store__op_free(bt_store_op_t *op) {
  op_clear_results(op);
  free(op->extra);
  op->extra = NULL;
  bool keep = op_cache_n < op_cache_max;
  for (int i = 0; i < BT_STORE_MAX_Q; i++)
    if (!keep || op->params[i].cap > OP_CACHE_BUF_MAX)
      bt_pgp_close(&op->params[i]);
  if (!keep) {
    free(op);
    return;
  }
  op->next = op_cache;
  op_cache = op;
  op_cache_n++;
}

static void op_finish(bt_store_t *st, bt_store_op_t *op, int status) {
  if (op->complete)
    op->complete(op, status);
  st->delivered = true;
  bt_store__op_free(op);
}

void bt_store__enqueue(bt_store_t *st, bt_store_op_t *op) {
  op->next = NULL;
  if (st->pend_tail)
    st->pend_tail->next = op;
  else
    st->pend_head = op;
  st->pend_tail = op;
  st->n_pending++;
}

/* Puts a chain of operations back at the head of the queue, in order. */
static void requeue_front(bt_store_t *st, bt_store_op_t *head, bt_store_op_t *tail,
                          size_t n) {
  if (head == NULL)
    return;
  tail->next = st->pend_head;
  st->pend_head = head;
  if (st->pend_tail == NULL)
    st->pend_tail = tail;
  st->n_pending += n;
}

int bt_store__map_error(const PGresult *r) {
  const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (code == NULL)
    return BT_EDBDOWN;
  if (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0)
    return BT_EDBRETRY; /* serialization failure, deadlock: try again */
  if (strcmp(code, "23505") == 0)
    return BT_ECONFLICT;
  if (strcmp(code, "BTFEN") == 0)
    return BT_EFENCED; /* baton_fence: another broker is the leader */
  if (strncmp(code, "08", 2) == 0 || strncmp(code, "57P", 3) == 0 ||
      strcmp(code, "53300") == 0)
    return BT_EDBDOWN; /* connection, shutdown, too many connections */
  return BT_EDB;
}

bool bt_store_is_up(const bt_store_t *st) { return st->state == BT_ST_READY; }

bool bt_store_is_down(const bt_store_t *st) { return st->down; }

uint64_t bt_store_stalled_ms(const bt_store_t *st, uint64_t now_ms) {
  if (st->down)
    return now_ms > st->down_since_ms ? now_ms - st->down_since_ms : 1;
  if (st->fly_head != NULL && now_ms > st->fly_head->sent_ms)
    return now_ms - st->fly_head->sent_ms;
  return 0;
}

size_t bt_store_backlog(const bt_store_t *st) {
  size_t n = st->n_pending;
  for (bt_store_seg_t *s = st->fly_head; s; s = s->next)
    n += s->n_ops;
  return n;
}

/* --- the socket watcher ------------------------------------------------------- */

static void on_poll_closed(uv_handle_t *h) {
  bt_store_poll_t *p = h->data;
  bt_store_t *st = p->st;
  free(p);
  st->open_handles--;
  maybe_finish_close(st);
}

static void unwatch(bt_store_t *st) {
  if (st->poll == NULL)
    return;
  uv_poll_stop(&st->poll->h);
  uv_close((uv_handle_t *)&st->poll->h, on_poll_closed);
  st->poll = NULL;
  st->poll_fd = -1;
  st->poll_events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches fd for events, replacing the watcher when libpq changed sockets. */
static void watch(bt_store_t *st, int fd, int events) {
  if (st->poll != NULL && st->poll_fd != fd)
    unwatch(st);
  if (st->poll == NULL) {
    bt_store_poll_t *p = calloc(1, sizeof *p);
    if (p == NULL)
      abort();
    p->st = st;
    if (uv_poll_init(st->loop, &p->h, fd) != 0) {
      free(p);
      lose_connection(st, "could not watch the database socket");
      return;
    }
    p->h.data = p;
    st->open_handles++;
    st->poll = p;
    st->poll_fd = fd;
    st->poll_events = 0;
  }
  if (st->poll_events != events) {
    uv_poll_start(&st->poll->h, events, on_poll);
    st->poll_events = events;
  }
}

/* --- connecting ------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void schedule_reconnect(bt_store_t *st) {
  st->state = BT_ST_WAITING;
  if (st->closing) {
    maybe_finish_close(st);
    return;
  }
  uint32_t d = st->backoff_ms ? st->backoff_ms : 100;
  st->backoff_ms = d * 2 > st->opts.reconnect_max_ms ? st->opts.reconnect_max_ms : d * 2;
  uv_timer_start(&st->timer, on_timer, d, 0);
}

static void notice_processor(void *arg, const char *message) {
  (void)arg;
  char line[256];
  size_t n = strlen(message);
  if (n >= sizeof line)
    n = sizeof line - 1;
  memcpy(line, message, n);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
    n--;
  line[n] = '\0';
  bt_log_info("postgresql notice", "notice=%s", BT_Q(line));
}

static void seg_link(bt_store_seg_t *seg, bt_store_op_t *op) {
  op->next = NULL;
  if (seg->tail)
    seg->tail->next = op;
  else
    seg->head = op;
  seg->tail = op;
}

static void seg_append(bt_store_seg_t *seg, bt_store_op_t *op) {
  seg_link(seg, op);
  seg->n_ops++;
}

/* Puts a sent segment at the end of the in-flight list. */
static void fly_push(bt_store_t *st, bt_store_seg_t *seg) {
  seg->cur = seg->head;
  seg->sent_ms = bt_mono_ms();
  seg->sent_ns = uv_hrtime();
  if (st->fly_tail)
    st->fly_tail->next = seg;
  else
    st->fly_head = seg;
  st->fly_tail = seg;
  st->n_inflight++;
}

/* Sends one segment that prepares every statement; READY when its sync returns. */
static void send_prepares(bt_store_t *st) {
  bt_store_seg_t *seg = calloc(1, sizeof *seg);
  if (seg == NULL)
    abort();
  for (int i = 0; i < BT_SQL__COUNT; i++) {
    bt_store_op_t *op = bt_store__op_new(NULL, NULL, NULL);
    op->prepare = true;
    op->nq = 1;
    op->stmt[0] = i;
    bt_pgp_reset(&op->params[0]);
    if (!PQsendPrepare(st->conn, bt_store_sql_name[i], bt_store_sql[i], 0, NULL)) {
      bt_store__op_free(op);
      fly_push(st, seg); /* lose_connection frees what is in flight */
      lose_connection(st, PQerrorMessage(st->conn));
      return;
    }
    seg_append(seg, op);
  }
  /* Then the session settings, in the same segment. */
  bt_store_op_t *setup = bt_store__op_new(NULL, NULL, NULL);
  setup->prepare = true; /* freed with the prepares */
  setup->nq = 1;
  setup->stmt[0] = BT_SQL_SESSION_SETUP;
  bt_pgp_reset(&setup->params[0]);
  seg_append(seg, setup);
  if (!PQsendQueryPrepared(st->conn, bt_store_sql_name[BT_SQL_SESSION_SETUP], 0, NULL, NULL,
                           NULL, 1)) {
    fly_push(st, seg);
    lose_connection(st, PQerrorMessage(st->conn));
    return;
  }
  fly_push(st, seg);
  if (!PQpipelineSync(st->conn)) {
    lose_connection(st, PQerrorMessage(st->conn));
    return;
  }
  st->state = BT_ST_PREPARING;
}

static void connected(bt_store_t *st) {
  if (PQsetnonblocking(st->conn, 1) != 0 || PQenterPipelineMode(st->conn) != 1) {
    lose_connection(st, PQerrorMessage(st->conn));
    return;
  }
  PQsetNoticeProcessor(st->conn, notice_processor, st);
  send_prepares(st);
  if (st->state != BT_ST_PREPARING)
    return;
  int f = PQflush(st->conn);
  if (f < 0) {
    lose_connection(st, PQerrorMessage(st->conn));
    return;
  }
  watch(st, PQsocket(st->conn), UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

static void connect_step(bt_store_t *st) {
  PostgresPollingStatusType r = PQconnectPoll(st->conn);
  switch (r) {
  case PGRES_POLLING_READING:
    watch(st, PQsocket(st->conn), UV_READABLE);
    break;
  case PGRES_POLLING_WRITING:
    watch(st, PQsocket(st->conn), UV_WRITABLE);
    break;
  case PGRES_POLLING_OK:
    connected(st);
    break;
  default:
    lose_connection(st, PQerrorMessage(st->conn));
    break;
  }
}

static void start_connect(bt_store_t *st) {
  st->conn = PQconnectStart(st->dsn);
  if (st->conn == NULL || PQstatus(st->conn) == CONNECTION_BAD) {
    lose_connection(st, st->conn ? PQerrorMessage(st->conn) : "out of memory");
    return;
  }
  st->state = BT_ST_CONNECTING;
  /* libpq wants the socket writable first. */
  watch(st, PQsocket(st->conn), UV_WRITABLE);
}

/* Fails operations that should not wait for a database that is down. */
static void fail_fast_ops(bt_store_t *st) {
  bt_store_op_t **pp = &st->pend_head, *prev = NULL;
  while (*pp) {
    bt_store_op_t *op = *pp;
    if (op->fail_fast && !op->sent_once) {
      *pp = op->next;
      if (st->pend_tail == op)
        st->pend_tail = prev;
      st->n_pending--;
      op_finish(st, op, BT_EDBDOWN);
      continue;
    }
    prev = op;
    pp = &op->next;
  }
}

static void lose_connection(bt_store_t *st, const char *why) {
  char msg[200];
  size_t n = strlen(why ? why : "");
  if (n >= sizeof msg)
    n = sizeof msg - 1;
  memcpy(msg, why ? why : "", n);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
    n--;
  msg[n] = '\0';
  if (st->state == BT_ST_READY || st->state == BT_ST_PREPARING)
    bt_log_error("lost the database connection", "error=%s in_flight=%u",
                 BT_Q(msg), st->n_inflight);
  else if (!st->down || st->backoff_ms >= st->opts.reconnect_max_ms)
    bt_log_warn("could not connect to the database", "error=%s", BT_Q(msg));
  unwatch(st);
  if (st->conn) {
    PQfinish(st->conn);
    st->conn = NULL;
  }
  bt_store__merge_reset(st);
  /* Everything in flight has an unknown outcome: replay it, in order. */
  bt_store_op_t *head = NULL, *tail = NULL;
  size_t count = 0;
  while (st->fly_head) {
    bt_store_seg_t *seg = st->fly_head;
    st->fly_head = seg->next;
    for (bt_store_op_t *op = seg->head; op;) {
      bt_store_op_t *next = op->next;
      if (op->prepare || op->carrier || op->fence) {
        bt_store__op_free(op);
      } else {
        op_clear_results(op);
        op->merged = false;
        op->absorbed = false;
        op->sent_once = true;
        op->unknown = true;
        op->next = NULL;
        if (tail)
          tail->next = op;
        else
          head = op;
        tail = op;
        count++;
      }
      op = next;
    }
    free(seg);
  }
  st->fly_tail = NULL;
  st->n_inflight = 0;
  requeue_front(st, head, tail, count);
  if (st->ever_up && !st->down) {
    st->down = true;
    st->down_since_ms = bt_mono_ms();
  }
  if (st->down)
    fail_fast_ops(st);
  schedule_reconnect(st);
}

static void on_timer(uv_timer_t *t) {
  bt_store_t *st = t->data;
  if (st->state == BT_ST_WAITING) {
    if (!st->closing)
      start_connect(st);
    return;
  }
  /* Watchdog: a segment unanswered too long means a dead or hung server (a
   * half-open connection looks alive to the socket). */
  if (st->fly_head != NULL &&
      bt_mono_ms() - st->fly_head->sent_ms > st->opts.op_timeout_ms) {
    lose_connection(st, "no answer from the database");
    return;
  }
  if (st->state == BT_ST_READY || st->state == BT_ST_PREPARING)
    uv_timer_start(&st->timer, on_timer, 1000, 0);
}

/* --- results ------------------------------------------------------------------- */

/* Moves the segment cursor past ops that have no statement of their own:
 * barriers, and ops whose row went in a carrier's statement. */
static void cursor_skip_empty(bt_store_seg_t *seg) {
  while (seg->cur != NULL && (seg->cur->merged || seg->cur_q >= seg->cur->nq)) {
    seg->cur = seg->cur->next;
    seg->cur_q = 0;
  }
}

/* Puts the operations of a segment that rolled back (its carriers unwound)
 * back at the head of the queue, in order, and frees the segment. isolate:
 * each is sent alone next time. */
static void requeue_segment(bt_store_t *st, bt_store_seg_t *seg, bool isolate) {
  bt_store_op_t *tail = NULL;
  for (bt_store_op_t *op = seg->head; op; op = op->next) {
    op_clear_results(op);
    if (isolate)
      op->isolate = true;
    tail = op;
  }
  requeue_front(st, seg->head, tail, seg->n_ops);
  free(seg);
}

/* Another broker took the leader lease: this segment rolled back, and so
 * will everything after it. Its operations go back to the queue, where they
 * stay unsent (none was acknowledged; a close fails them). */
static void fenced(bt_store_t *st, bt_store_seg_t *seg) {
  bt_store__merge_unwind(seg);
  requeue_segment(st, seg, false);
  if (st->fenced)
    return;
  st->fenced = true;
  bt_log_error("write refused: another broker holds the leader lease",
               "epoch=%lld operations=%zu", (long long)st->opts.epoch, st->n_pending);
  if (st->opts.on_fenced != NULL)
    st->opts.on_fenced(st->opts.fenced_arg);
}

static void segment_done(bt_store_t *st, bt_store_seg_t *seg) {
  st->fly_head = seg->next;
  if (st->fly_head == NULL)
    st->fly_tail = NULL;
  st->n_inflight--;

  if (seg->head != NULL && seg->head->prepare) {
    for (bt_store_op_t *op = seg->head; op;) {
      bt_store_op_t *next = op->next;
      bt_store__op_free(op);
      op = next;
    }
    bool ok = !seg->error;
    free(seg);
    if (!ok) {
      lose_connection(st, "could not prepare statements");
      return;
    }
    st->state = BT_ST_READY;
    if (st->down)
      bt_log_info("database connection restored", "down_ms=%llu",
                  (unsigned long long)(bt_mono_ms() - st->down_since_ms));
    else
      bt_log_info("database connection ready", NULL);
    st->ever_up = true;
    st->down = false;
    st->backoff_ms = 0;
    uv_timer_start(&st->timer, on_timer, 1000, 0);
    return;
  }

  /* Timed whether it committed or rolled back: either way the server answered. */
  if (st->opts.on_commit != NULL) {
    uint64_t now_ns = uv_hrtime();
    uint64_t took_ns = now_ns > seg->sent_ns ? now_ns - seg->sent_ns : 0;
    st->opts.on_commit(st->opts.commit_arg, (double)took_ns / 1e9);
  }

  if (!seg->error) {
    for (bt_store_op_t *op = seg->head; op;) {
      bt_store_op_t *next = op->next;
      op_finish(st, op, 0);
      op = next;
    }
    free(seg);
    return;
  }

  /* The fence at its head is the engine's own: never replayed. */
  bt_store_op_t *fence = NULL;
  if (seg->head != NULL && seg->head->fence) {
    fence = seg->head;
    seg->head = fence->next;
    if (seg->tail == fence)
      seg->tail = NULL;
  }
  if (fence != NULL && fence->status == BT_EFENCED) {
    bt_store__op_free(fence);
    fenced(st, seg);
    return;
  }
  if (fence != NULL)
    bt_store__op_free(fence);

  /* A statement failed and the whole segment rolled back. Alone, the op fails
   * (or retries a transient error); with others, everyone is replayed alone so
   * only the culprit fails. */
  bt_store__merge_unwind(seg);
  if (seg->n_ops == 1) {
    bt_store_op_t *op = seg->head;
    int status = op->status ? op->status : BT_EDB;
    if (status == BT_EDBRETRY && op->retries < 3) {
      op->retries++;
      op_clear_results(op);
      op->next = NULL;
      requeue_front(st, op, op, 1);
    } else {
      bt_log_error("could not write to the database", "error=%s sqlstate=%s",
                   BT_Q(op->errmsg), bt_strerror(status));
      op_finish(st, op, status);
    }
    free(seg);
    return;
  }
  requeue_segment(st, seg, true);
}

/* Reads every result that is ready. Returns false when the connection died. */
static bool read_results(bt_store_t *st) {
  while (st->fly_head != NULL) {
    if (PQisBusy(st->conn))
      return true;
    bt_store_seg_t *seg = st->fly_head;
    cursor_skip_empty(seg);
    PGresult *r = PQgetResult(st->conn);
    if (seg->cur == NULL) {
      /* Every statement is done: only the sync result may come. */
      if (r == NULL)
        return PQstatus(st->conn) != CONNECTION_BAD;
      ExecStatusType s = PQresultStatus(r);
      PQclear(r);
      if (s == PGRES_PIPELINE_SYNC) {
        segment_done(st, seg);
        if (st->state != BT_ST_READY && st->state != BT_ST_PREPARING)
          return true; /* the connection was dropped meanwhile */
      } else if (s == PGRES_FATAL_ERROR) {
        seg->error = true;
      }
      continue;
    }
    bt_store_op_t *op = seg->cur;
    if (r == NULL) {
      if (!seg->have_res)
        return PQstatus(st->conn) != CONNECTION_BAD; /* nothing for us yet */
      seg->have_res = false;
      seg->cur_q++;
      continue;
    }
    seg->have_res = true;
    switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
      PQclear(op->res[seg->cur_q]);
      op->res[seg->cur_q] = r;
      break;
    case PGRES_PIPELINE_ABORTED:
      seg->error = true;
      if (op->status == 0)
        op->status = BT_EDBRETRY; /* someone else's error rolled us back */
      PQclear(r);
      break;
    default: {
      seg->error = true;
      int code = bt_store__map_error(r);
      if (op->status == 0 || op->status == BT_EDBRETRY) {
        op->status = code;
        const char *m = PQresultErrorMessage(r);
        size_t n = strlen(m);
        if (n >= sizeof op->errmsg)
          n = sizeof op->errmsg - 1;
        memcpy(op->errmsg, m, n);
        while (n > 0 && op->errmsg[n - 1] == '\n')
          n--;
        op->errmsg[n] = '\0';
      }
      PQclear(r);
      break;
    }
    }
  }
  /* Not expecting anything: drain what libpq may still hold (notices are
   * delivered through the notice processor). */
  return true;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  bt_store_poll_t *p = h->data;
  bt_store_t *st = p->st;
  if (st->poll != p)
    return; /* a watcher being replaced */
  if (st->state == BT_ST_CONNECTING) {
    connect_step(st);
    return;
  }
  if (status < 0) {
    lose_connection(st, uv_strerror(status));
    return;
  }
  if (events & UV_WRITABLE) {
    int f = PQflush(st->conn);
    if (f < 0) {
      lose_connection(st, PQerrorMessage(st->conn));
      return;
    }
    if (f == 0)
      watch(st, st->poll_fd, UV_READABLE);
  }
  if (events & UV_READABLE) {
    if (!PQconsumeInput(st->conn) || !read_results(st)) {
      lose_connection(st, PQerrorMessage(st->conn));
      goto out;
    }
  }
out:
  if (st->delivered && st->on_flush) {
    st->delivered = false;
    st->on_flush(st->flush_arg);
  }
  if (st->state == BT_ST_READY)
    flush_pending(st);
  maybe_finish_close(st);
}

/* --- sending -------------------------------------------------------------------- */

static bool send_op(bt_store_t *st, bt_store_op_t *op) {
  for (int i = 0; i < op->nq; i++) {
    const char *values[BT_PG_MAX_PARAMS];
    int lengths[BT_PG_MAX_PARAMS], formats[BT_PG_MAX_PARAMS];
    bt_pgp_vectors(&op->params[i], values, lengths, formats);
    int stmt = bt_store__stmt_for(op->stmt[i], &op->params[i], op->unknown);
    if (!PQsendQueryPrepared(st->conn, bt_store_sql_name[stmt], op->params[i].n, values,
                             lengths, formats, 1))
      return false;
  }
  return true;
}

/* Sends the carriers of the merged ops that wait (merge.c). */
static bool send_merged(bt_store_t *st, bt_store_seg_t *seg) {
  bt_store_op_t *c = bt_store__merge_take(st);
  while (c != NULL) {
    bt_store_op_t *next = c->next;
    seg_link(seg, c); /* not counted in n_ops: its members are */
    if (!send_op(st, c)) {
      while (next != NULL) { /* not in the segment: free them here */
        bt_store_op_t *n2 = next->next;
        bt_store__op_free(next);
        next = n2;
      }
      return false;
    }
    c = next;
  }
  return true;
}

/* Moves queued operations into seg and sends their statements. Returns false
 * when the connection failed (seg holds what was taken). */
static bool fill_segment(bt_store_t *st, bt_store_seg_t *seg) {
  while (st->pend_head != NULL && seg->n_ops < st->opts.max_segment_ops) {
    bt_store_op_t *op = st->pend_head;
    /* An isolated op goes alone; so does whatever follows one. */
    if (seg->n_ops > 0 && (op->isolate || seg->head->isolate))
      break;
    st->pend_head = op->next;
    if (st->pend_head == NULL)
      st->pend_tail = NULL;
    st->n_pending--;
    op->sent_once = true;
    /* The segment lists ops in the order their results come back: merged
     * ops' carriers go in when they are sent, so whatever is sent on its own
     * goes in after the carriers sent before it. */
    if (op->mergeable && bt_store__merge_add(st, op)) {
      seg_append(seg, op);
      continue;
    }
    /* Sent on its own (not mergeable, or its package has too many writes
     * waiting: its one-row arrays are a statement too). What waits goes
     * first; a barrier has no statement and need not wait. */
    bool ok = op->nq == 0 || st->mq_n == 0 || send_merged(st, seg);
    seg_append(seg, op); /* even on failure: lose_connection replays it */
    if (!ok || !send_op(st, op))
      return false;
  }
  return st->mq_n == 0 || send_merged(st, seg);
}

/* Heads a segment with the leader-epoch check (sql.def FENCE). Not counted in
 * n_ops: it belongs to no caller. */
static bool send_fence(bt_store_t *st, bt_store_seg_t *seg) {
  bt_store_op_t *op = bt_store__op_new(NULL, NULL, NULL);
  op->fence = true;
  bt_pgp_i64(bt_store__op_stmt(op, BT_SQL_FENCE), st->opts.epoch);
  seg_link(seg, op);
  return send_op(st, op);
}

/* With a transaction in flight, what waits goes out only when there is enough
 * of it (opts.overlap_min_ops). The connection's backend runs its
 * transactions one after another, so sending early gains only the broker's
 * turnaround, and each transaction costs PostgreSQL a fence, a commit and its
 * statements' start-up whatever its size: at 10,000 packages/s offered,
 * sending every loop turn's few writes as a transaction of their own cost
 * 80-85 us of PostgreSQL CPU a package against 74-76 with a floor of 64, and
 * the ack p99 went from 8-12 ms to 6-9 ms (tests/bench/run, interleaved
 * rounds). A floor of 128 did better again than 64: all-queued work 5-25 %
 * faster (seven pairs), paced 20,000/s start p99 5-7 instead of 8-10 ms
 * (three pairs), paced 10,000/s even. A big backlog still overlaps: without
 * that, processing all-queued work lost 20 %. */
static bool pipeline_has_room(const bt_store_t *st) {
  if (st->n_inflight >= st->opts.pipeline_depth)
    return false;
  return st->n_inflight == 0 || st->n_pending >= st->opts.overlap_min_ops;
}

/* Sends queued operations as segments while the pipeline has room. */
static void flush_pending(bt_store_t *st) {
  bool sent = false;
  while (st->state == BT_ST_READY && !st->fenced && st->pend_head != NULL &&
         pipeline_has_room(st)) {
    bt_store_seg_t *seg = calloc(1, sizeof *seg);
    if (seg == NULL)
      abort();
    bool ok = st->opts.epoch == 0 || send_fence(st, seg);
    ok = ok && fill_segment(st, seg);
    fly_push(st, seg); /* on failure lose_connection replays what is in flight */
    if (!ok || !PQpipelineSync(st->conn)) {
      lose_connection(st, PQerrorMessage(st->conn));
      return;
    }
    sent = true;
  }
  if (sent) {
    int f = PQflush(st->conn);
    if (f < 0) {
      lose_connection(st, PQerrorMessage(st->conn));
      return;
    }
    watch(st, st->poll_fd, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
  }
}

/* Once per loop turn, after the I/O callbacks: what this turn queued goes out
 * as one segment (group commit). */
static void on_check(uv_check_t *c) {
  bt_store_t *st = c->data;
  if (st->down)
    fail_fast_ops(st);
  if (st->state == BT_ST_READY)
    flush_pending(st);
  if (st->delivered && st->on_flush) {
    st->delivered = false;
    st->on_flush(st->flush_arg);
  }
  maybe_finish_close(st);
}

/* --- lifecycle ---------------------------------------------------------------- */

int bt_store_new(uv_loop_t *loop, const char *dsn, const bt_store_opts_t *opts,
                 bt_store_flush_cb on_flush, void *flush_arg, bt_store_t **out) {
  bt_store_t *st = calloc(1, sizeof *st);
  if (st == NULL)
    abort();
  st->loop = loop;
  st->dsn = strdup(dsn);
  if (st->dsn == NULL)
    abort();
  if (opts)
    st->opts = *opts;
  else
    bt_store_opts_default(&st->opts);
  if (st->opts.pipeline_depth == 0)
    st->opts.pipeline_depth = 1;
  if (st->opts.max_segment_ops == 0)
    st->opts.max_segment_ops = 4096;
  st->on_flush = on_flush;
  st->flush_arg = flush_arg;
  st->poll_fd = -1;
  uv_check_init(loop, &st->check);
  st->check.data = st;
  uv_check_start(&st->check, on_check);
  uv_timer_init(loop, &st->timer);
  st->timer.data = st;
  st->open_handles = 2;
  start_connect(st);
  *out = st;
  return 0;
}

static void on_handle_closed(uv_handle_t *h) {
  bt_store_t *st = h->data;
  st->open_handles--;
  maybe_finish_close(st);
}

/* Fails what waits to be sent; none of it was acknowledged. A callback may
 * queue more, which fails in turn. */
static void fail_pending(bt_store_t *st) {
  while (st->pend_head) {
    bt_store_op_t *op = st->pend_head;
    st->pend_head = op->next;
    if (st->pend_head == NULL)
      st->pend_tail = NULL;
    st->n_pending--;
    op_finish(st, op, BT_ESHUTDOWN);
  }
}

static void maybe_finish_close(bt_store_t *st) {
  if (!st->closing)
    return;
  if (st->state != BT_ST_STOPPING) {
    /* Wait while there is something to commit and a way to commit it. */
    bool can_write = !st->fenced && (st->state == BT_ST_READY ||
                                     st->state == BT_ST_PREPARING ||
                                     st->state == BT_ST_CONNECTING);
    if (can_write && bt_store_backlog(st) > 0)
      return;
    st->state = BT_ST_STOPPING;
    size_t left = bt_store_backlog(st);
    if (left > 0)
      bt_log_warn("closing the store with operations not committed",
                  "operations=%zu", left);
    /* Fail what is left; none of it was acknowledged. */
    while (st->fly_head) {
      bt_store_seg_t *seg = st->fly_head;
      st->fly_head = seg->next;
      for (bt_store_op_t *op = seg->head; op;) {
        bt_store_op_t *next = op->next;
        op_finish(st, op, BT_ESHUTDOWN);
        op = next;
      }
      free(seg);
    }
    st->fly_tail = NULL;
    st->n_inflight = 0;
    fail_pending(st);
    unwatch(st);
    if (st->conn) {
      PQfinish(st->conn);
      st->conn = NULL;
    }
    uv_check_stop(&st->check);
    uv_timer_stop(&st->timer);
    uv_close((uv_handle_t *)&st->check, on_handle_closed);
    uv_close((uv_handle_t *)&st->timer, on_handle_closed);
    return;
  }
  if (st->open_handles > 0)
    return;
  /* Queued while the handles closed, by a callback of another store (lanes:
   * a commit on one lane may write to any other). */
  fail_pending(st);
  void (*cb)(void *) = st->on_closed;
  void *arg = st->closed_arg;
  bt_store__merge_close(st);
  free(st->dsn);
  free(st);
  if (cb)
    cb(arg);
}

void bt_store_close(bt_store_t *st, void (*on_closed)(void *arg), void *arg) {
  st->closing = true;
  st->on_closed = on_closed;
  st->closed_arg = arg;
  if (st->state == BT_ST_WAITING)
    uv_timer_stop(&st->timer);
  maybe_finish_close(st);
}

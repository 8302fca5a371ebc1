/*
 * The control socket's connections: length-prefixed frames with limits on size
 * and pipelining, answers written in request order even when they complete out
 * of order, a sweep that closes stalled clients, and the object's stop/close.
 * The same code serves both endpoint kinds (a Unix socket or tcp://, see
 * endpoint.c): a connection's handle is a bt_ctl_stream_t and only bind,
 * accept and peer identification look at which kind it is. On tcp:// every
 * request must carry the admin token (auth.c) before it is decoded further.
 */
#include "ctl_int.h"

#include "bt_err.h"
#include "bt_log.h"
#include "bt_pballoc.h"
#include "bt_pbcheck.h"
#include "bt_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bt_ctl_opts_default(bt_ctl_opts_t *o) {
  o->max_frame_bytes = 16 * 1024 * 1024;
  o->max_batch = 10000;
  o->max_payload_bytes = 512 * 1024;
  o->max_pipelined = 256;
  o->max_connections = 256;
}

void bt_ctl__reply_init(Baton__CtlReply *r) {
  baton__ctl_reply__init(r);
  r->has_version = true;
  r->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  r->has_status = true;
  r->status = BATON__CTL_STATUS__CTL_OK;
}

bt_ctl_req_t *bt_ctl__req_by_token(bt_ctl_t *ctl, uint64_t token) {
  return bt_idmap_get(&ctl->reqs, token);
}

bt_ctl_read_t *bt_ctl__read_new(bt_ctl_t *ctl, const bt_ctl_req_t *req) {
  bt_ctl_read_t *r = malloc(sizeof *r);
  if (r == NULL)
    abort();
  r->ctl = ctl;
  r->token = req->token;
  return r;
}

bt_ctl_req_t *bt_ctl__read_done(bt_ctl_read_t *r, int status, bt_ctl_t **ctl_out) {
  bt_ctl_t *ctl = r->ctl;
  bt_ctl_req_t *req = bt_ctl__req_by_token(ctl, r->token);
  free(r);
  *ctl_out = ctl;
  if (req != NULL && status != 0) {
    bt_ctl__fail(ctl, req, status, "store unavailable; retry later");
    return NULL;
  }
  return req;
}

/* --- connections ------------------------------------------------------------ */

static void conn_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void conn_maybe_close(bt_ctl_conn_t *c);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = malloc(65536);
  if (buf->base == NULL)
    abort();
  buf->len = 65536;
}

static void req_free(bt_ctl_t *ctl, bt_ctl_req_t *r) {
  bt_idmap_del(&ctl->reqs, r->token);
  free(r->frame);
  free(r);
}

/* Frees the control socket once it is closing and its last handle is closed. */
static void ctl_maybe_free(bt_ctl_t *ctl) {
  if (!ctl->closing || ctl->open_handles > 0)
    return;
  void (*cb)(void *) = ctl->on_closed;
  void *arg = ctl->closed_arg;
  for (uint32_t i = 0; i < ctl->reqs.cap; i++) {
    if (bt_idmap_used(&ctl->reqs, i)) {
      bt_ctl_req_t *r = ctl->reqs.vals[i];
      free(r->frame);
      free(r);
    }
  }
  bt_idmap_close(&ctl->reqs);
  free(ctl->path);
  free(ctl);
  if (cb)
    cb(arg);
}

/* Takes c off the list of connections with answers to write. */
static void flush_list_remove(bt_ctl_t *ctl, bt_ctl_conn_t *c) {
  if (!c->flush_queued)
    return;
  for (bt_ctl_conn_t **pp = &ctl->flush_list; *pp; pp = &(*pp)->next_flush) {
    if (*pp == c) {
      *pp = c->next_flush;
      break;
    }
  }
  c->flush_queued = false;
  c->next_flush = NULL;
}

static void conn_closed_cb(uv_handle_t *h) {
  bt_ctl_conn_t *c = h->data;
  bt_ctl_t *ctl = c->ctl;
  flush_list_remove(ctl, c);
  bt_frame_reader_close(&c->reader);
  free(c);
  ctl->open_handles--;
  ctl_maybe_free(ctl);
}

/* Closes a connection now. Its unanswered requests stay until answered (the
 * shell may still hold their tokens) but their answers are dropped. */
static void conn_close(bt_ctl_conn_t *c) {
  if (c->closing)
    return;
  c->closing = true;
  bt_ctl_t *ctl = c->ctl;
  for (bt_ctl_req_t *r = c->head; r;) {
    bt_ctl_req_t *next = r->next;
    if (r->frame != NULL)
      req_free(ctl, r); /* answered, never written */
    else
      r->conn = NULL;
    r = next;
  }
  c->head = c->tail = NULL;
  if (c->prev_conn)
    c->prev_conn->next_conn = c->next_conn;
  else
    ctl->conns = c->next_conn;
  if (c->next_conn)
    c->next_conn->prev_conn = c->prev_conn;
  ctl->n_conns--;
  uv_close(&c->h.handle, conn_closed_cb);
}

static void conn_update_reading(bt_ctl_conn_t *c) {
  bool want = !c->draining && !c->closing && c->n_reqs < c->ctl->opts.max_pipelined;
  if (want && !c->reading)
    uv_read_start(&c->h.stream, alloc_cb, conn_read_cb);
  else if (!want && c->reading)
    uv_read_stop(&c->h.stream);
  c->reading = want;
}

/* One writev of the answers that were ready together; frees them when done. */
typedef struct {
  uv_write_t w;
  bt_ctl_conn_t *c;
  size_t n;
  uint8_t *frames[];
} write_req_t;

static void write_cb(uv_write_t *w, int status) {
  write_req_t *wr = (write_req_t *)w;
  bt_ctl_conn_t *c = wr->c;
  for (size_t i = 0; i < wr->n; i++)
    free(wr->frames[i]);
  free(wr);
  c->writes--;
  if (status < 0 && !c->closing) {
    conn_close(c);
    return;
  }
  conn_maybe_close(c);
}

/* Writes the n answers at the head of the queue (all ready) with one writev,
 * in request order, and frees their requests. */
static void conn_write_ready(bt_ctl_conn_t *c, size_t n) {
  write_req_t *wr = malloc(sizeof *wr + n * sizeof wr->frames[0]);
  uv_buf_t small[16];
  uv_buf_t *bufs = n <= 16 ? small : malloc(n * sizeof *bufs);
  if (wr == NULL || bufs == NULL)
    abort();
  wr->c = c;
  wr->n = n;
  for (size_t i = 0; i < n; i++) {
    bt_ctl_req_t *r = c->head;
    c->head = r->next;
    if (c->head == NULL)
      c->tail = NULL;
    c->n_reqs--;
    wr->frames[i] = r->frame;
    bufs[i] = uv_buf_init((char *)r->frame, (unsigned)r->frame_len);
    r->frame = NULL;
    req_free(c->ctl, r);
  }
  /* uv_write copies the buffer array, not the bytes: the frames live until
   * write_cb. */
  int rv = uv_write(&wr->w, &c->h.stream, bufs, (unsigned)n, write_cb);
  if (bufs != small)
    free(bufs);
  if (rv != 0) {
    for (size_t i = 0; i < n; i++)
      free(wr->frames[i]);
    free(wr);
    conn_close(c);
    return;
  }
  c->writes++;
}

/* Writes the answers at the head of the queue that are ready. */
static void conn_pump(bt_ctl_conn_t *c) {
  size_t n = 0;
  for (bt_ctl_req_t *r = c->head; r != NULL && r->frame != NULL; r = r->next)
    n++;
  if (!c->closing && n > 0)
    conn_write_ready(c, n);
  conn_update_reading(c);
  conn_maybe_close(c);
}

/* Runs once per loop turn after I/O: writes what each connection has ready. */
static void on_flush(uv_check_t *h) {
  bt_ctl_t *ctl = h->data;
  while (ctl->flush_list != NULL) {
    bt_ctl_conn_t *c = ctl->flush_list;
    ctl->flush_list = c->next_flush;
    c->next_flush = NULL;
    c->flush_queued = false;
    if (!c->closing)
      conn_pump(c);
  }
  uv_check_stop(&ctl->flush);
  uv_idle_stop(&ctl->flush_soon);
}

static void on_flush_soon(uv_idle_t *h) { (void)h; }

/* The head of c's queue may be ready: write it at the end of this turn. */
static void conn_flush_later(bt_ctl_conn_t *c) {
  bt_ctl_t *ctl = c->ctl;
  if (c->flush_queued || c->closing)
    return;
  c->flush_queued = true;
  c->next_flush = ctl->flush_list;
  ctl->flush_list = c;
  if (!ctl->closing) {
    uv_check_start(&ctl->flush, on_flush);
    uv_idle_start(&ctl->flush_soon, on_flush_soon);
  }
}

static void conn_maybe_close(bt_ctl_conn_t *c) {
  if (!c->closing && c->draining && c->head == NULL && c->writes == 0)
    conn_close(c);
}

static uint8_t *pack_frame(const Baton__CtlReply *reply, size_t *len) {
  size_t n = baton__ctl_reply__get_packed_size(reply);
  uint8_t *f = malloc(BT_FRAME_HEADER + n + 1);
  if (f == NULL)
    abort();
  bt_frame_put_header(f, (uint32_t)n);
  baton__ctl_reply__pack(reply, f + BT_FRAME_HEADER);
  *len = BT_FRAME_HEADER + n;
  return f;
}

void bt_ctl__answer(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__CtlReply *reply) {
  if (req->conn == NULL) {
    req_free(ctl, req); /* the client left */
    return;
  }
  req->frame = pack_frame(reply, &req->frame_len);
  conn_flush_later(req->conn);
}

static Baton__CtlStatus status_of(int code) {
  switch (code) {
  case BT_ENOTFOUND:
    return BATON__CTL_STATUS__CTL_NOT_FOUND;
  case BT_EINVAL:
  case BT_EPROTO:
  case BT_ELIMIT:
  case BT_EVERSION:
    return BATON__CTL_STATUS__CTL_BAD_REQUEST;
  case BT_ECONFLICT:
  case BT_ESTATE:
    return BATON__CTL_STATUS__CTL_REJECTED;
  case BT_EAUTH:
    return BATON__CTL_STATUS__CTL_UNAUTHORIZED;
  default:
    return BATON__CTL_STATUS__CTL_UNAVAILABLE;
  }
}

void bt_ctl__fail(bt_ctl_t *ctl, bt_ctl_req_t *req, int code, const char *message) {
  Baton__CtlReply reply;
  bt_ctl__reply_init(&reply);
  reply.status = status_of(code);
  reply.error = (char *)(message ? message : bt_strerror(code));
  bt_ctl__answer(ctl, req, &reply);
}

/* A request slot at the tail of the connection's queue. */
static bt_ctl_req_t *req_new(bt_ctl_conn_t *c) {
  bt_ctl_t *ctl = c->ctl;
  bt_ctl_req_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    abort();
  r->token = ++ctl->next_token;
  r->conn = c;
  bt_idmap_put(&ctl->reqs, r->token, r);
  if (c->tail)
    c->tail->next = r;
  else
    c->head = r;
  c->tail = r;
  c->n_reqs++;
  return r;
}

/* One frame from a client: decode under a budget, check, run. */
static void on_frame(bt_ctl_conn_t *c, const uint8_t *body, uint32_t len) {
  bt_ctl_t *ctl = c->ctl;
  bt_ctl_req_t *req = req_new(c);
  if (c->refused != NULL) {
    bt_ctl__fail(ctl, req, BT_EAUTH, c->refused);
    c->draining = true;
    conn_pump(c);
    return;
  }
  char why[160];
  Baton__CtlRequest *msg = NULL;
  bt_pb_budget_t budget;
  bt_pb_budget_init(&budget, bt_pb_budget_for(len));
  if (bt_pb_check(&baton__ctl_request__descriptor, body, len, why, sizeof why) == 0) {
    msg = baton__ctl_request__unpack(&budget.a, len, body);
    if (msg == NULL)
      snprintf(why, sizeof why, "protobuf-c refused it (or its size budget)");
  }
  if (msg == NULL) {
    bt_log_warn("rejected control request: not a valid protobuf message",
                "reason=%s bytes=%u %s", BT_Q(why), len, c->who);
    char text[200];
    snprintf(text, sizeof text, "could not decode the request: %s", why);
    bt_ctl__fail(ctl, req, BT_EPROTO, text);
    c->draining = true; /* the stream cannot be trusted any more */
    conn_pump(c);
    return;
  }
  /* On tcp:// the token comes first: a peer without it learns nothing more
   * than that, and its connection is closed after the answer. */
  const char *denied;
  if (bt_ctl__auth_check(ctl, c, msg->admin_token, &denied) != 0) {
    bt_ctl__fail(ctl, req, BT_EAUTH, denied);
    c->draining = true;
    conn_pump(c);
  } else if (!msg->has_version ||
             msg->version != BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
    if (msg->has_version)
      snprintf(why, sizeof why, "control protocol version %u not supported; broker speaks %d",
               msg->version, BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
    else
      snprintf(why, sizeof why, "control request without a protocol version (empty frame?)");
    bt_log_warn("rejected control request", "reason=%s bytes=%u %s", BT_Q(why), len,
                c->who);
    bt_ctl__fail(ctl, req, BT_EVERSION, why);
  } else {
    c->authed = true;
    bt_ctl__dispatch(ctl, req, msg);
  }
  baton__ctl_request__free_unpacked(msg, &budget.a);
}

static void conn_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  bt_ctl_conn_t *c = s->data;
  c->last_ms = bt_mono_ms();
  if (n < 0) {
    free(buf->base);
    /* EOF: the client is done sending; answer what is pending, then close. */
    c->draining = true;
    if (n != UV_EOF) {
      conn_close(c);
      return;
    }
    conn_update_reading(c);
    conn_maybe_close(c);
    return;
  }
  size_t off = 0;
  while (off < (size_t)n && !c->closing && !c->draining) {
    int done = 0;
    long used = bt_frame_reader_feed(&c->reader, (const uint8_t *)buf->base + off,
                                     (size_t)n - off, &done);
    if (used < 0) {
      uint32_t len = bt_frame_get_length(c->reader.hdr);
      char why[128];
      snprintf(why, sizeof why, "request of %u bytes exceeds the limit of %u bytes", len,
               c->ctl->opts.max_frame_bytes);
      bt_log_warn("rejected control request", "reason=%s %s", BT_Q(why), c->who);
      bt_ctl__fail(c->ctl, req_new(c), BT_ELIMIT, why);
      c->draining = true;
      break;
    }
    off += (size_t)used;
    if (done) {
      uint32_t len;
      uint8_t *body = bt_frame_reader_take(&c->reader, &len);
      on_frame(c, body, len);
      free(body);
    }
  }
  free(buf->base);
  if (!c->closing)
    conn_pump(c);
}

/* --- accepting ---------------------------------------------------------------- */

/* A refused client still gets to send its request, so it reads the reason as
 * the answer instead of finding the connection closed under its write. */
static void refuse_conn(bt_ctl_conn_t *c, const char *why) {
  c->refused = why;
  conn_update_reading(c);
}

static void on_connection(uv_stream_t *server, int status) {
  bt_ctl_t *ctl = server->data;
  if (status < 0) {
    bt_log_warn("control socket accept failed", "error=%s", uv_strerror(status));
    return;
  }
  bt_ctl_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    abort();
  c->ctl = ctl;
  bt_ctl__endpoint_conn_init(ctl, c);
  ctl->open_handles++;
  bt_frame_reader_init(&c->reader, ctl->opts.max_frame_bytes);
  if (uv_accept(server, &c->h.stream) != 0) {
    uv_close(&c->h.handle, conn_closed_cb);
    return;
  }
  c->next_conn = ctl->conns;
  if (ctl->conns)
    ctl->conns->prev_conn = c;
  ctl->conns = c;
  ctl->n_conns++;
  c->last_ms = bt_mono_ms();

  const char *why;
  if (bt_ctl__endpoint_identify(ctl, c, &why) != 0) {
    refuse_conn(c, why);
    return;
  }
  if (ctl->n_conns > ctl->opts.max_connections) {
    bt_log_warn("refused control connection: too many connections", "%s limit=%u",
                c->who, ctl->opts.max_connections);
    refuse_conn(c, "too many control connections; try again later");
    return;
  }
  conn_update_reading(c);
}

static void listener_closed(uv_handle_t *h) {
  bt_ctl_t *ctl = h->data;
  ctl->open_handles--;
  ctl_maybe_free(ctl);
}

/* A connection stalled in the middle of a frame for 10 s, or idle with nothing
 * pending for 10 minutes, is closed: otherwise a few silent clients could hold
 * every connection slot. A TCP client that has not yet sent one request with
 * the right token gets the short limit too: anyone can connect to that port. */
#define STALLED_MS 10000
#define IDLE_MS (10 * 60 * 1000)

static void on_sweep(uv_timer_t *t) {
  bt_ctl_t *ctl = t->data;
  uint64_t now = bt_mono_ms();
  bt_ctl_conn_t *c = ctl->conns;
  while (c != NULL) {
    bt_ctl_conn_t *next = c->next_conn;
    bool mid_frame = c->reader.hdr_have > 0;
    if (c->head == NULL && c->writes == 0 &&
        ((mid_frame && now - c->last_ms > STALLED_MS) ||
         ((c->refused || (ctl->tcp && !c->authed)) && now - c->last_ms > STALLED_MS) ||
         now - c->last_ms > IDLE_MS)) {
      bt_log_info("closing a stalled control connection", "%s idle_ms=%llu", c->who,
                  (unsigned long long)(now - c->last_ms));
      conn_close(c);
    }
    c = next;
  }
}

int bt_ctl_new(uv_loop_t *loop, const char *path, const bt_ctl_opts_t *opts,
               bt_core_t *core, const bt_lanes_t *lanes, const bt_ctl_ops_t *ops, void *arg,
               bt_ctl_t **out) {
  bt_ctl_t *ctl = calloc(1, sizeof *ctl);
  if (ctl == NULL)
    abort();
  ctl->loop = loop;
  if (opts)
    ctl->opts = *opts;
  else
    bt_ctl_opts_default(&ctl->opts);
  ctl->core = core;
  ctl->lanes = lanes;
  ctl->ops = *ops;
  ctl->arg = arg;
  bt_idmap_init(&ctl->reqs);
  uv_timer_init(loop, &ctl->sweep);
  ctl->sweep.data = ctl;
  uv_check_init(loop, &ctl->flush);
  ctl->flush.data = ctl;
  uv_idle_init(loop, &ctl->flush_soon);
  ctl->flush_soon.data = ctl;
  ctl->open_handles = 4;
  int rv = bt_ctl__endpoint_listen(ctl, path, on_connection);
  /* The configured token is not needed past the check above (only its hash is
   * kept); forget the borrowed pointer so nothing here can print it. */
  ctl->opts.admin_token = NULL;
  if (rv != 0) {
    /* Freed by the close callback when the caller runs the loop to tear down. */
    ctl->closing = true;
    uv_close(&ctl->listener.handle, listener_closed);
    uv_close((uv_handle_t *)&ctl->sweep, listener_closed);
    uv_close((uv_handle_t *)&ctl->flush, listener_closed);
    uv_close((uv_handle_t *)&ctl->flush_soon, listener_closed);
    *out = NULL;
    return rv;
  }
  ctl->listening = true;
  uv_timer_start(&ctl->sweep, on_sweep, 1000, 1000);
  if (ctl->tcp)
    bt_log_info("control endpoint ready", "control=%s auth=admin_token", BT_Q(ctl->path));
  else
    bt_log_info("control socket ready", "path=%s", BT_Q(ctl->path));
  *out = ctl;
  return 0;
}

void bt_ctl_stop_accepting(bt_ctl_t *ctl) {
  if (ctl->listening) {
    ctl->listening = false;
    uv_close(&ctl->listener.handle, listener_closed);
    uv_timer_stop(&ctl->sweep);
    uv_close((uv_handle_t *)&ctl->sweep, listener_closed);
    bt_ctl__endpoint_unlink(ctl);
  }
  for (bt_ctl_conn_t *c = ctl->conns; c; c = c->next_conn) {
    c->draining = true;
    conn_update_reading(c);
  }
}

void bt_ctl_close(bt_ctl_t *ctl, void (*on_closed)(void *arg), void *arg) {
  ctl->on_closed = on_closed;
  ctl->closed_arg = arg;
  bt_ctl_stop_accepting(ctl);
  ctl->closing = true;
  while (ctl->conns)
    conn_close(ctl->conns);
  uv_close((uv_handle_t *)&ctl->flush, listener_closed);
  uv_close((uv_handle_t *)&ctl->flush_soon, listener_closed);
  /* The last close callback frees the object; when everything is closed
   * already, that happens here. */
  ctl_maybe_free(ctl);
}

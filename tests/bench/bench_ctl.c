/* The benchmark's blocking control-socket client; see bench_ctl.h. */
#include "bench_ctl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Replies to a Submit of 10,000 packages are well under a megabyte. */
#define MAX_REPLY_BYTES (64u * 1024u * 1024u)

int bench_conn_open(bench_conn_t *c, const char *path, int timeout_ms) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return -ENAMETOOLONG;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  c->fd = fd;
  bt_frame_reader_init(&c->fr, MAX_REPLY_BYTES);
  return 0;
}

void bench_conn_close(bench_conn_t *c) {
  if (c->fd >= 0) {
    close(c->fd);
    bt_frame_reader_close(&c->fr);
  }
  c->fd = -1;
}

uint8_t *bench_frame_pack(Baton__CtlRequest *req, size_t *len) {
  req->has_version = true;
  req->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  size_t n = baton__ctl_request__get_packed_size(req);
  uint8_t *f = malloc(BT_FRAME_HEADER + n);
  if (f == NULL)
    abort();
  bt_frame_put_header(f, (uint32_t)n);
  baton__ctl_request__pack(req, f + BT_FRAME_HEADER);
  *len = BT_FRAME_HEADER + n;
  return f;
}

int bench_conn_send(bench_conn_t *c, const uint8_t *frame, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(c->fd, frame + off, len - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    off += (size_t)w;
  }
  return 0;
}

int bench_conn_recv(bench_conn_t *c, Baton__CtlReply **out) {
  for (;;) {
    if (c->pos < c->have) {
      int done = 0;
      long used = bt_frame_reader_feed(&c->fr, c->buf + c->pos, c->have - c->pos, &done);
      if (used < 0)
        return -EPROTO;
      c->pos += (size_t)used;
      if (done) {
        uint32_t blen;
        uint8_t *body = bt_frame_reader_take(&c->fr, &blen);
        *out = baton__ctl_reply__unpack(NULL, blen, body);
        free(body);
        return *out != NULL ? 0 : -EPROTO;
      }
      continue;
    }
    ssize_t r = recv(c->fd, c->buf, sizeof c->buf, 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    if (r == 0)
      return -ECONNRESET;
    c->have = (size_t)r;
    c->pos = 0;
  }
}

bool bench_conn_buffered(const bench_conn_t *c) { return c->pos < c->have; }

int bench_conn_stats(bench_conn_t *c, bench_stats_t *out) {
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  Baton__Empty empty = BATON__EMPTY__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_STATS;
  req.stats = &empty;
  size_t len;
  uint8_t *f = bench_frame_pack(&req, &len);
  int rv = bench_conn_send(c, f, len);
  free(f);
  if (rv != 0)
    return rv;
  Baton__CtlReply *rep;
  if ((rv = bench_conn_recv(c, &rep)) != 0)
    return rv;
  if (rep->status != BATON__CTL_STATUS__CTL_OK ||
      rep->body_case != BATON__CTL_REPLY__BODY_STATS) {
    baton__ctl_reply__free_unpacked(rep, NULL);
    return -EPROTO;
  }
  const Baton__Stats *s = rep->stats;
  *out = (bench_stats_t){.queued = s->queued,
                         .assigned = s->assigned,
                         .running = s->running,
                         .completed = s->completed,
                         .dead = s->dead,
                         .cancelled = s->cancelled,
                         .waiting = s->waiting,
                         .agents = s->agents};
  baton__ctl_reply__free_unpacked(rep, NULL);
  return 0;
}

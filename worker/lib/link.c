/*
 * One nanomsg NN_REQ socket in a libuv loop. Owns the socket and the uv_poll_t
 * that watches its NN_RCVFD; knows nothing about the protocol.
 *
 * Rules from notes/stack-findings.md that this file must keep:
 *  - NN_RCVFD is an eventfd: watch it for UV_READABLE only (UV_WRITABLE spins);
 *  - drain with NN_DONTWAIT in capped batches;
 *  - NN_REQ_RESEND_IVL above the broker's park time and never negative (a negative
 *    value aborts inside nanomsg at the next send);
 *  - stop and close the uv_poll_t before nn_close, which closes the fd under it.
 */
#include "agent_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <string.h>

/* REQ resends a request that got no reply after this long. It must exceed the
 * broker's poll park time, or every parked poll would be sent twice. */
#define RESEND_IVL_MS 60000
#define RECONNECT_IVL_MS 100
#define RECONNECT_IVL_MAX_MS 2000
/* Messages handled per wake-up, so one socket cannot starve the loop. */
#define RECV_BATCH 16

struct bt_agent__link {
  uv_poll_t poll; /* watches NN_RCVFD; freed in its close callback */
  int sock;
  int closing;
  bt_agent__link_msg_cb on_msg;
  bt_agent__link_closed_cb on_closed;
  void *ctx;
};

static int set_int(int sock, int level, int opt, int v) {
  return nn_setsockopt(sock, level, opt, &v, sizeof v) == 0 ? 0 : -errno;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  bt_agent__link_t *l = h->data;
  (void)events;
  if (status < 0) {
    bt_log_warn("socket watcher failed", "error=%s", BT_Q(uv_strerror(status)));
    return;
  }
  for (int i = 0; i < RECV_BATCH && !l->closing; i++) {
    void *buf = NULL;
    int n = nn_recv(l->sock, &buf, NN_MSG, NN_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != EFSM)
        bt_log_warn("could not receive from broker", "error=%s",
                    BT_Q(nn_strerror(errno)));
      return;
    }
    l->on_msg(l->ctx, buf, (size_t)n);
    nn_freemsg(buf);
  }
}

static int connect_all(int sock, const char *endpoints) {
  char *copy = bt_agent__xstrdup(endpoints);
  int rv = 0, n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ' || *tok == '\t')
      tok++;
    size_t len = strlen(tok);
    while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
      tok[--len] = '\0';
    if (len == 0)
      continue;
    if (nn_connect(sock, tok) < 0) {
      bt_log_error("invalid broker endpoint", "endpoint=%s error=%s", BT_Q(tok),
                   BT_Q(nn_strerror(errno)));
      rv = BT_EINVAL;
      break;
    }
    n++;
  }
  if (rv == 0 && n == 0) {
    bt_log_error("no broker endpoint given", NULL);
    rv = BT_EINVAL;
  }
  free(copy);
  return rv;
}

int bt_agent__link_open(uv_loop_t *loop, const char *endpoints, uint32_t max_bytes,
                        bt_agent__link_msg_cb on_msg, void *ctx,
                        bt_agent__link_t **out) {
  int rv, fd = -1;
  size_t fdsz = sizeof fd;
  int sock = nn_socket(AF_SP, NN_REQ);
  if (sock < 0)
    return -errno;
  if ((rv = set_int(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, (int)max_bytes)) != 0 ||
      (rv = set_int(sock, NN_REQ, NN_REQ_RESEND_IVL, RESEND_IVL_MS)) != 0 ||
      (rv = set_int(sock, NN_SOL_SOCKET, NN_RECONNECT_IVL, RECONNECT_IVL_MS)) != 0 ||
      (rv = set_int(sock, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)) !=
          0)
    goto fail;
  if ((rv = connect_all(sock, endpoints)) != 0)
    goto fail;
  if (nn_getsockopt(sock, NN_SOL_SOCKET, NN_RCVFD, &fd, &fdsz) != 0) {
    rv = -errno;
    goto fail;
  }
  bt_agent__link_t *l = bt_agent__xcalloc(1, sizeof *l);
  l->sock = sock;
  l->on_msg = on_msg;
  l->ctx = ctx;
  if ((rv = uv_poll_init(loop, &l->poll, fd)) != 0) {
    free(l);
    goto fail;
  }
  l->poll.data = l;
  if ((rv = uv_poll_start(&l->poll, UV_READABLE, on_readable)) != 0) {
    /* the handle is initialised: it can only go through close */
    l->closing = 1;
    uv_close((uv_handle_t *)&l->poll, (uv_close_cb)free);
    nn_close(sock);
    return rv;
  }
  *out = l;
  return 0;
fail:
  nn_close(sock);
  return rv;
}

int bt_agent__link_send(bt_agent__link_t *l, const void *buf, size_t len) {
  BT_AGENT_ASSERT(!l->closing);
  /* A cooked REQ socket is always writable: the request is queued until a pipe
   * exists, so EAGAIN here would be a surprise, not flow control. */
  if (nn_send(l->sock, buf, len, NN_DONTWAIT) < 0)
    return -errno;
  return 0;
}

int bt_agent__link_set_max(bt_agent__link_t *l, uint32_t max_bytes) {
  return set_int(l->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, (int)max_bytes);
}

static void on_poll_closed(uv_handle_t *h) {
  bt_agent__link_t *l = h->data;
  bt_agent__link_closed_cb cb = l->on_closed;
  void *ctx = l->ctx;
  free(l);
  if (cb != NULL)
    cb(ctx);
}

void bt_agent__link_close(bt_agent__link_t *l, bt_agent__link_closed_cb on_closed) {
  BT_AGENT_ASSERT(!l->closing);
  l->closing = 1;
  l->on_closed = on_closed;
  /* uv_close stops the watcher (removing the fd from epoll) at once, so closing
   * the socket right after is safe; the handle memory lives until the callback. */
  uv_close((uv_handle_t *)&l->poll, on_poll_closed);
  nn_close(l->sock);
  l->sock = -1;
}

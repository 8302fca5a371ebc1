/*
 * One nanomsg socket to the broker in a libuv loop: a raw NN_REQ socket (a
 * DEALER), with the request id kept here. Owns the socket, the uv_poll_t on its
 * NN_RCVFD and a timer; knows nothing about the protocol.
 *
 * Why raw and not a cooked NN_REQ: a cooked REQ keeps a reply that arrived
 * before the application read it, and when the application sends its next
 * request first (a Results superseding a parked Poll whose answer is already
 * on its way) nanomsg 1.1.5 overwrites that stored reply with the next one
 * without freeing it (req.c: nn_req_in receives into task.reply, DONE + SENT
 * never terminates it). Every such race leaked one message; the ASan build
 * caught it as `nn_chunk_alloc` leaks in agents. Here every message is
 * received by the application and freed, and a reply is matched to the
 * current request by its id; replies to superseded requests are dropped, as a
 * cooked REQ would.
 *
 * What a cooked REQ did that this file does instead:
 *  - the 4-byte request id (top bit set) goes in the SP header of each send;
 *  - a request made before any connection is up is queued here and sent as
 *    soon as one is (checked on the timer: a raw send gives EAGAIN);
 *  - a request is sent again when connections change while it waits for its
 *    reply (a broker restart, a dropped pipe), as REQ resends when its pipe
 *    goes away. nanomsg has no pipe events; its connection counters are the
 *    signal (notes/stack-findings.md §3). A duplicate is harmless: it is the
 *    same bytes (same seal counter), which the broker takes as an exact resend
 *    and answers on every copy; results are idempotent.
 *
 * Rules from notes/stack-findings.md that this file must keep:
 *  - NN_RCVFD is an eventfd: watch it for UV_READABLE only (UV_WRITABLE spins);
 *  - drain with NN_DONTWAIT in capped batches;
 *  - stop and close the uv_poll_t before nn_close, which closes the fd under it.
 */
#include "agent_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <string.h>

#define RECONNECT_IVL_MS 100
#define RECONNECT_IVL_MAX_MS 2000
/* Messages handled per wake-up, so one socket cannot starve the loop. */
#define RECV_BATCH 16
/* How often a request waiting for its reply checks the connection counters,
 * and how often a request with no connection to go out on tries again. */
#define WATCH_MS 100
#define UNSENT_RETRY_MS 10
#define REQ_ID_BIT 0x80000000u

struct bt_agent__link {
  uv_poll_t poll;   /* watches NN_RCVFD */
  uv_timer_t timer; /* resends; runs only while a request is unanswered */
  int open_handles; /* the link is freed when the last handle has closed */
  int sock;
  int closing;
  /* The current request, kept to send it again. */
  uint8_t *req;
  size_t req_len, req_cap;
  uint32_t req_id; /* with REQ_ID_BIT set; 0 before the first request */
  int awaiting;    /* sent or queued, no reply yet */
  int unsent;      /* waiting for a connection to take it (again) */
  int sent;        /* went out at least once */
  uint64_t conns;  /* established + broken connections when last sent */
  bt_agent__link_msg_cb on_msg;
  bt_agent__link_closed_cb on_closed;
  void *ctx;
};

static int set_int(int sock, int level, int opt, int v) {
  return nn_setsockopt(sock, level, opt, &v, sizeof v) == 0 ? 0 : -errno;
}

static uint64_t conn_changes(int sock) {
  return nn_get_statistic(sock, NN_STAT_ESTABLISHED_CONNECTIONS) +
         nn_get_statistic(sock, NN_STAT_BROKEN_CONNECTIONS);
}

/* Sends the current request with its id in the SP header (the layout a raw
 * socket reads back: [size_t length][bytes], see stack-findings §2). Returns 0,
 * -EAGAIN when no connection is up, or another -errno. */
static int send_current(bt_agent__link_t *l) {
  union {
    struct nn_cmsghdr h;
    uint8_t bytes[NN_CMSG_SPACE(sizeof(size_t) + 4)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  ctl.h.cmsg_len = NN_CMSG_LEN(sizeof(size_t) + 4);
  ctl.h.cmsg_level = PROTO_SP;
  ctl.h.cmsg_type = SP_HDR;
  uint8_t *data = NN_CMSG_DATA(&ctl.h);
  size_t four = 4;
  memcpy(data, &four, sizeof four);
  data[sizeof four + 0] = (uint8_t)(l->req_id >> 24);
  data[sizeof four + 1] = (uint8_t)(l->req_id >> 16);
  data[sizeof four + 2] = (uint8_t)(l->req_id >> 8);
  data[sizeof four + 3] = (uint8_t)l->req_id;
  struct nn_iovec iov = {.iov_base = l->req, .iov_len = l->req_len};
  struct nn_msghdr hdr;
  memset(&hdr, 0, sizeof hdr);
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  hdr.msg_control = &ctl;
  hdr.msg_controllen = sizeof ctl;
  l->conns = conn_changes(l->sock);
  if (nn_sendmsg(l->sock, &hdr, NN_DONTWAIT) < 0)
    return -errno;
  return 0;
}

static void on_timer(uv_timer_t *t) {
  bt_agent__link_t *l = t->data;
  if (l->closing || !l->awaiting) {
    uv_timer_stop(t);
    return;
  }
  if (!l->unsent && conn_changes(l->sock) == l->conns)
    return;
  int rv = send_current(l);
  if (rv == -EAGAIN) {
    if (!l->unsent)
      uv_timer_start(&l->timer, on_timer, UNSENT_RETRY_MS, UNSENT_RETRY_MS);
    l->unsent = 1;
    return;
  }
  if (rv != 0)
    bt_log_warn("could not send request again", "error=%s", BT_Q(nn_strerror(-rv)));
  else if (l->sent)
    bt_log_info("broker connection changed; request sent again", NULL);
  l->sent |= rv == 0;
  if (l->unsent)
    uv_timer_start(&l->timer, on_timer, WATCH_MS, WATCH_MS);
  l->unsent = 0;
}

/* The 4-byte request id of a received reply, or 0 if it has none. */
static uint32_t reply_id(struct nn_msghdr *hdr) {
  for (struct nn_cmsghdr *c = NN_CMSG_FIRSTHDR(hdr); c != NULL;
       c = NN_CMSG_NXTHDR(hdr, c)) {
    if (c->cmsg_level != PROTO_SP || c->cmsg_type != SP_HDR)
      continue;
    const uint8_t *d = NN_CMSG_DATA(c);
    size_t n;
    if (c->cmsg_len < NN_CMSG_LEN(sizeof n + 4))
      return 0;
    memcpy(&n, d, sizeof n);
    if (n != 4)
      return 0;
    d += sizeof n;
    return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
  }
  return 0;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  bt_agent__link_t *l = h->data;
  (void)events;
  if (status < 0) {
    bt_log_warn("socket watcher failed", "error=%s", BT_Q(uv_strerror(status)));
    return;
  }
  for (int i = 0; i < RECV_BATCH && !l->closing; i++) {
    void *buf = NULL, *ctl = NULL;
    struct nn_iovec iov = {.iov_base = &buf, .iov_len = NN_MSG};
    struct nn_msghdr hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.msg_iov = &iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = &ctl;
    hdr.msg_controllen = NN_MSG;
    int n = nn_recvmsg(l->sock, &hdr, NN_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR)
        bt_log_warn("could not receive from broker", "error=%s",
                    BT_Q(nn_strerror(errno)));
      return;
    }
    uint32_t id = ctl != NULL ? reply_id(&hdr) : 0;
    if (ctl != NULL)
      nn_freemsg(ctl);
    if (l->awaiting && id == l->req_id) {
      /* Only a reply the agent takes ends the wait: one it refuses (it does
       * not authenticate, or is a replay) must not shadow the real answer. */
      uint32_t answered = l->req_id;
      int took = l->on_msg(l->ctx, buf, (size_t)n);
      /* The callee may have sent the next request already (new id, waiting
       * again) or closed the link: only a wait still for this id ends here. */
      if (took && !l->closing && l->req_id == answered) {
        l->awaiting = l->unsent = 0;
        uv_timer_stop(&l->timer);
      }
    } else {
      /* The answer to a request since superseded, or a second copy of one
       * already answered (a request sent again): a cooked REQ drops these too. */
      bt_log_debug("dropped a reply to an earlier request", "reply_id=%08x current=%08x",
                   (unsigned)id, (unsigned)l->req_id);
    }
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

static void on_handle_closed(uv_handle_t *h) {
  bt_agent__link_t *l = h->data;
  if (--l->open_handles > 0)
    return;
  bt_agent__link_closed_cb cb = l->on_closed;
  void *ctx = l->ctx;
  free(l->req);
  free(l);
  if (cb != NULL)
    cb(ctx);
}

int bt_agent__link_open(uv_loop_t *loop, const char *endpoints, uint32_t max_bytes,
                        bt_agent__link_msg_cb on_msg, void *ctx,
                        bt_agent__link_t **out) {
  int rv, fd = -1;
  size_t fdsz = sizeof fd;
  int sock = nn_socket(AF_SP_RAW, NN_REQ);
  if (sock < 0)
    return -errno;
  if ((rv = set_int(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, (int)max_bytes)) != 0 ||
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
  /* Request ids start at a random point, as a cooked REQ's do, so a restarted
   * agent's ids do not repeat the ones its last process used. */
  uint32_t seed = (uint32_t)((uintptr_t)l >> 4) ^ (uint32_t)uv_hrtime();
  l->req_id = seed & ~REQ_ID_BIT;
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  l->open_handles = 1;
  if ((rv = uv_poll_init(loop, &l->poll, fd)) != 0) {
    l->closing = 1;
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
    nn_close(sock);
    return rv;
  }
  l->poll.data = l;
  l->open_handles = 2;
  if ((rv = uv_poll_start(&l->poll, UV_READABLE, on_readable)) != 0) {
    l->closing = 1;
    uv_close((uv_handle_t *)&l->poll, on_handle_closed);
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
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
  if (len > l->req_cap) {
    free(l->req);
    l->req = bt_agent__xcalloc(1, len);
    l->req_cap = len;
  }
  memcpy(l->req, buf, len);
  l->req_len = len;
  l->req_id = ((l->req_id + 1) & ~REQ_ID_BIT) | REQ_ID_BIT;
  l->awaiting = 1;
  int rv = send_current(l);
  if (rv != 0 && rv != -EAGAIN) {
    l->awaiting = 0;
    uv_timer_stop(&l->timer);
    return rv;
  }
  /* No connection yet (EAGAIN): queued here, sent from the timer as a cooked
   * REQ would send it once a pipe exists. */
  l->unsent = rv == -EAGAIN;
  l->sent = rv == 0;
  uint64_t ms = l->unsent ? UNSENT_RETRY_MS : WATCH_MS;
  uv_timer_start(&l->timer, on_timer, ms, ms);
  return 0;
}

int bt_agent__link_set_max(bt_agent__link_t *l, uint32_t max_bytes) {
  return set_int(l->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, (int)max_bytes);
}

void bt_agent__link_close(bt_agent__link_t *l, bt_agent__link_closed_cb on_closed) {
  BT_AGENT_ASSERT(!l->closing);
  l->closing = 1;
  l->on_closed = on_closed;
  /* uv_close stops the watcher (removing the fd from epoll) at once, so closing
   * the socket right after is safe; the memory lives until the last callback. */
  uv_close((uv_handle_t *)&l->poll, on_handle_closed);
  uv_close((uv_handle_t *)&l->timer, on_handle_closed);
  nn_close(l->sock);
  l->sock = -1;
}

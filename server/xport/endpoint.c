/*
 * The nanomsg side of the agent endpoint: an AF_SP_RAW NN_REP socket whose
 * receive eventfd the loop watches (readable only — an eventfd is always
 * writable, so watching that would spin the loop). Messages are drained in
 * capped batches with NN_DONTWAIT, decoded under an allocation budget,
 * validated, and handed to session.c with their request header, which is what
 * a reply needs to reach that exact agent later.
 */
#include "xport_int.h"

#include "bt_err.h"
#include "bt_log.h"
#include "bt_pballoc.h"
#include "bt_pbcheck.h"
#include "bt_time.h"

#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <stdlib.h>
#include <string.h>

#define RECV_BATCH 256
#define TIMER_MS 100

void bt_xp_opts_default(bt_xp_opts_t *o) {
  o->max_message_bytes = 1024 * 1024;
  o->heartbeat_ms = 1000;
  o->lease_ms = 3000;
  o->poll_ms = 1000;
  o->max_payload_bytes = 512 * 1024;
  o->max_pending_auth = 1024;
  o->max_agents_per_vendor = 1000;
  o->encrypt = true;
}

int bt_xp__decode(const bt_xp_t *xp, const uint8_t *buf, size_t len,
                  bt_pb_budget_t *budget, Baton__AgentRequest **out, char *why,
                  size_t why_len) {
  Baton__AgentRequest *req = NULL;
  *out = NULL;
  if (bt_pb_check(&baton__agent_request__descriptor, buf, len, why, why_len) == 0) {
    req = baton__agent_request__unpack(&budget->a, len, buf);
    if (req == NULL)
      snprintf(why, why_len, "protobuf-c refused it (or its size budget)");
  }
  if (req == NULL)
    return BT_EINVAL;
  int rc = bt_xp__validate(req, &xp->opts, why, why_len);
  if (rc != 0) {
    baton__agent_request__free_unpacked(req, &budget->a);
    return rc;
  }
  *out = req;
  return 0;
}

static void on_message(bt_xp_t *xp, const uint8_t *buf, size_t len, void *ctl) {
  char why[160], msg[200];
  bt_pb_budget_t budget;
  bt_pb_budget_init(&budget, bt_pb_budget_for(len));
  Baton__AgentRequest *req = NULL;
  int rc = bt_xp__decode(xp, buf, len, &budget, &req, why, sizeof why);
  if (rc == 0) {
    bt_xp__on_request(xp, req, ctl);
    baton__agent_request__free_unpacked(req, &budget.a);
    return;
  }
  if (rc == BT_EINVAL) {
    bt_log_warn("rejected agent message: not a valid protobuf message",
                "reason=%s bytes=%zu", BT_Q(why), len);
    snprintf(msg, sizeof msg, "could not decode message: %s", why);
    bt_xp__reply_error(xp, NULL, &ctl, BATON__ERROR_CODE__ERROR_PROTOCOL, msg);
    return;
  }
  bt_log_warn("rejected agent message", "reason=%s bytes=%zu", BT_Q(why), len);
  bt_xp__reply_error(xp, NULL, &ctl,
                     rc == BT_EVERSION ? BATON__ERROR_CODE__ERROR_VERSION
                                       : BATON__ERROR_CODE__ERROR_PROTOCOL,
                     why);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  bt_xp_t *xp = h->data;
  (void)events;
  if (status < 0) {
    bt_log_error("agent endpoint poll failed", "error=%s", uv_strerror(status));
    return;
  }
  for (int i = 0; i < RECV_BATCH && !xp->closing; i++) {
    void *body = NULL, *ctl = NULL;
    struct nn_iovec iov = {.iov_base = &body, .iov_len = NN_MSG};
    struct nn_msghdr hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.msg_iov = &iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = &ctl;
    hdr.msg_controllen = NN_MSG;
    int n = nn_recvmsg(xp->sock, &hdr, NN_DONTWAIT);
    if (n < 0) {
      if (nn_errno() != EAGAIN)
        bt_log_warn("agent endpoint receive failed", "error=%s",
                    BT_Q(nn_strerror(nn_errno())));
      break;
    }
    xp->stats.received++;
    on_message(xp, body, (size_t)n, ctl);
    nn_freemsg(body);
  }
  bt_xp_flush(xp);
}

static void on_timer(uv_timer_t *t) {
  bt_xp_t *xp = t->data;
  bt_xp__expire(xp, bt_mono_ms());
  /* nanomsg drops connections it cannot use (garbage bytes, a bad handshake, a
   * message over NN_RCVMAXSIZE) without telling the application, and counts a
   * peer's normal close the same way (verified: every case bumps only
   * NN_STAT_BROKEN_CONNECTIONS). Agents that leave cleanly say Bye first, so
   * closes beyond the goodbyes are the ones worth a warning. */
  uint64_t broken = nn_get_statistic(xp->sock, NN_STAT_BROKEN_CONNECTIONS);
  if (broken > xp->last_broken) {
    uint64_t n = broken - xp->last_broken;
    uint64_t unexplained = n > xp->byes ? n - xp->byes : 0;
    if (unexplained > 0)
      bt_log_warn("agent connections dropped without a goodbye (crashed agent, garbage "
                  "bytes, bad handshake or a message over max_message_bytes)",
                  "count=%llu total=%llu max_message_bytes=%u",
                  (unsigned long long)unexplained, (unsigned long long)broken,
                  xp->opts.max_message_bytes);
    xp->last_broken = broken;
    xp->byes = 0;
    xp->stats.broken_connections = broken;
  }
}

int bt_xp_new(uv_loop_t *loop, const char *endpoint, const bt_xp_opts_t *opts,
              const bt_xp_handler_t *handler, void *arg, bt_xp_t **out) {
  bt_xp_t *xp = calloc(1, sizeof *xp);
  if (xp == NULL)
    abort();
  xp->loop = loop;
  if (opts)
    xp->opts = *opts;
  else
    bt_xp_opts_default(&xp->opts);
  xp->h = *handler;
  xp->arg = arg;
  bt_idmap_init(&xp->by_session);
  bt_idmap_init(&xp->by_agent);

  xp->sock = nn_socket(AF_SP_RAW, NN_REP);
  if (xp->sock < 0) {
    bt_log_error("could not create the agent socket", "error=%s",
                 BT_Q(nn_strerror(nn_errno())));
    free(xp);
    return BT_EINVAL;
  }
  int max = (int)xp->opts.max_message_bytes;
  nn_setsockopt(xp->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof max);
  if (nn_bind(xp->sock, endpoint) < 0) {
    int e = nn_errno();
    bt_log_error("could not listen for agents", "endpoint=%s error=%s", BT_Q(endpoint),
                 BT_Q(nn_strerror(e)));
    nn_close(xp->sock);
    free(xp);
    return -e;
  }
  int fd;
  size_t sz = sizeof fd;
  nn_getsockopt(xp->sock, NN_SOL_SOCKET, NN_RCVFD, &fd, &sz);
  uv_poll_init(loop, &xp->poll, fd);
  xp->poll.data = xp;
  uv_poll_start(&xp->poll, UV_READABLE, on_readable);
  uv_timer_init(loop, &xp->timer);
  xp->timer.data = xp;
  uv_timer_start(&xp->timer, on_timer, TIMER_MS, TIMER_MS);
  xp->open_handles = 2;
  bt_log_info("listening for agents", "endpoint=%s max_message_bytes=%u sealing=%s",
              BT_Q(endpoint), xp->opts.max_message_bytes,
              xp->opts.encrypt ? "encrypt+mac" : "mac-only");
  *out = xp;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  bt_xp_t *xp = h->data;
  if (--xp->open_handles > 0)
    return;
  /* The poll handle is closed: now the socket (and its eventfd) may go. */
  nn_close(xp->sock);
  void (*cb)(void *) = xp->on_closed;
  void *arg = xp->closed_arg;
  bt_idmap_close(&xp->by_session);
  bt_idmap_close(&xp->by_agent);
  free(xp->dirty);
  free(xp);
  if (cb)
    cb(arg);
}

void bt_xp_close(bt_xp_t *xp, void (*cb)(void *arg), void *arg) {
  xp->closing = true;
  xp->on_closed = cb;
  xp->closed_arg = arg;
  for (uint32_t i = 0; i < xp->by_session.cap; i++) {
    if (!bt_idmap_used(&xp->by_session, i))
      continue;
    bt_xp_session_t *s = xp->by_session.vals[i];
    if (s->ctl)
      bt_xp__reply_error(xp, s, &s->ctl, BATON__ERROR_CODE__ERROR_UNAVAILABLE,
                         "broker shutting down");
    bt_xp__session_free(xp, s);
  }
  uv_poll_stop(&xp->poll);
  uv_timer_stop(&xp->timer);
  uv_close((uv_handle_t *)&xp->poll, on_closed);
  uv_close((uv_handle_t *)&xp->timer, on_closed);
}

void bt_xp_stats(const bt_xp_t *xp, bt_xp_stats_t *st) {
  *st = xp->stats;
  st->sessions = xp->n_sessions;
}

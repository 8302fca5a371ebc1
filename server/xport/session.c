/*
 * Agent sessions: the handshake (Hello → Challenge → Auth → Welcome), the one
 * request each session is answering, and the Work replies.
 *
 * The handshake agrees the session keys: Challenge carries our ephemeral kx
 * key, Auth the agent's, and the agent's signature covers both, so once it
 * verifies both ends hold the same keys and nobody in between does. From the
 * Welcome on every request must arrive sealed (bt_seal) and every reply to one
 * goes out sealed. A request that does not open, or opens with an old counter,
 * is refused on its own pipe, logged and audited (at most once a second per
 * session), and changes nothing in its session: it is not "seen", does not
 * supersede the parked request and does not end the session. Only an exact
 * resend of the request being answered is taken again (REQ after a reconnect).
 *
 * An outbox per session holds assignments and cancels until the agent
 * acknowledges them through ack_seq; every reply carries all of them. An agent
 * drops the answer to a request it superseded (a parked poll replaced by
 * Results), so this resending is what makes delivery reliable.
 */
#include "xport_int.h"

#include "bt_auth.h"
#include "bt_err.h"
#include "bt_log.h"
#include "bt_time.h"
#include "bt_valid.h"

#include <nanomsg/nn.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_TIMEOUT_MS 10000

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    abort();
  return p;
}

static void pa_push(bt_xp_pavec_t *v, uint64_t id, uint32_t attempt) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 8;
    v->v = realloc(v->v, v->cap * sizeof *v->v);
    if (v->v == NULL)
      abort();
  }
  v->v[v->n].package_id = id;
  v->v[v->n].attempt = attempt;
  v->n++;
}

/* --- sending ------------------------------------------------------------------- */

/* Sends len bytes of buf (borrowed) on *ctl and frees the control chunk. */
static void send_raw(bt_xp_t *xp, void **ctl, const void *buf, size_t len) {
  if (*ctl == NULL)
    return;
  struct nn_iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct nn_msghdr hdr;
  memset(&hdr, 0, sizeof hdr);
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  hdr.msg_control = ctl;
  hdr.msg_controllen = NN_MSG;
  /* A raw REP send never blocks: to a peer that is gone it is dropped. */
  if (nn_sendmsg(xp->sock, &hdr, NN_DONTWAIT) < 0) {
    bt_log_warn("could not send to agent", "error=%s", BT_Q(nn_strerror(nn_errno())));
    nn_freemsg(*ctl);
  } else {
    xp->stats.sent++;
  }
  *ctl = NULL;
}

void bt_xp__send(bt_xp_t *xp, bt_xp_session_t *s, void **ctl, void **dup,
                 const Baton__AgentReply *reply) {
  if (*ctl == NULL && (dup == NULL || *dup == NULL))
    return;
  uint8_t *buf = NULL;
  size_t n = 0;
  if (s != NULL && s->state == BT_XS_ACTIVE) {
    /* work_build keeps a reply 2 KiB under the limit, so this cannot fail. */
    if (bt_seal_pack_reply(&s->seal, s->req_ctr, reply, SIZE_MAX, &buf, &n) != 0)
      abort(); /* no size limit given: it cannot fail */
  } else {
    n = baton__agent_reply__get_packed_size(reply);
    buf = xmalloc(n);
    baton__agent_reply__pack(reply, buf);
  }
  send_raw(xp, ctl, buf, n);
  if (dup != NULL)
    send_raw(xp, dup, buf, n); /* the same bytes: the agent takes one copy at most */
  free(buf);
}

void bt_xp__reply_error(bt_xp_t *xp, bt_xp_session_t *s, void **ctl,
                        Baton__ErrorCode code, const char *message) {
  Baton__AgentReply reply = BATON__AGENT_REPLY__INIT;
  Baton__Error err = BATON__ERROR__INIT;
  reply.has_version = true;
  reply.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  err.has_code = true;
  err.code = code;
  err.message = (char *)message;
  reply.body_case = BATON__AGENT_REPLY__BODY_ERROR;
  reply.error = &err;
  xp->stats.rejected++;
  bt_xp__send(xp, s, ctl, s != NULL && ctl == &s->ctl ? &s->ctl_dup : NULL, &reply);
}

/* A refused message of a known session: logged and audited at most once a
 * second per session and kind (a forger must not be able to flood the log or the audit
 * table, which shares the store with real work), and answered in clear on the
 * pipe it came from. The session itself is left alone. */
static void refuse_message(bt_xp_t *xp, bt_xp_session_t *s, void **ctl, const char *action,
                           const char *detail, const char *answer) {
  uint64_t now = bt_mono_ms();
  int k = strcmp(action, "agent.replay") == 0;
  if (now >= s->reject_next_ms[k]) {
    char d[256];
    if (s->rejects_quiet[k] > 0)
      snprintf(d, sizeof d, "%s; %u more refused in the last second", detail,
               s->rejects_quiet[k]);
    else
      snprintf(d, sizeof d, "%s", detail);
    bt_log_warn("refused agent message", "action=%s vendor=%s agent=%s session=%016llx "
                "reason=%s", action, BT_Q(s->vendor), BT_Q(s->agent_name),
                (unsigned long long)s->id, BT_Q(d));
    if (xp->h.rejected)
      xp->h.rejected(xp->arg, action, s->vendor, s->agent_name, d);
    s->reject_next_ms[k] = now + 1000;
    s->rejects_quiet[k] = 0;
  } else {
    s->rejects_quiet[k]++;
  }
  bt_xp__reply_error(xp, NULL, ctl, BATON__ERROR_CODE__ERROR_PROTOCOL, answer);
}

/* --- session table ------------------------------------------------------------- */

void bt_xp__mark(bt_xp_t *xp, bt_xp_session_t *s) {
  if (s->dirty)
    return;
  s->dirty = true;
  if (xp->n_dirty == xp->cap_dirty) {
    xp->cap_dirty = xp->cap_dirty ? xp->cap_dirty * 2 : 64;
    xp->dirty = realloc(xp->dirty, xp->cap_dirty * sizeof *xp->dirty);
    if (xp->dirty == NULL)
      abort();
  }
  xp->dirty[xp->n_dirty++] = s;
}

static bt_xp_session_t *session_new(bt_xp_t *xp, uint64_t now) {
  bt_xp_session_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    abort();
  do
    bt_auth_random(&s->id, sizeof s->id);
  while (s->id == 0 || s->id == UINT64_MAX || bt_idmap_get(&xp->by_session, s->id));
  bt_auth_random(s->nonce, sizeof s->nonce);
  bt_seal_kx_keypair(s->kx_pk, s->kx_sk);
  s->seal_mode = xp->opts.encrypt ? BATON__SEAL_MODE__SEAL_MODE_SECRETBOX
                                  : BATON__SEAL_MODE__SEAL_MODE_MAC;
  s->created_ms = s->last_ms = now;
  bt_idmap_put(&xp->by_session, s->id, s);
  xp->n_sessions++;
  return s;
}

void bt_xp__session_free(bt_xp_t *xp, bt_xp_session_t *s) {
  bt_idmap_del(&xp->by_session, s->id);
  if (s->agent_id && bt_idmap_get(&xp->by_agent, s->agent_id) == s)
    bt_idmap_del(&xp->by_agent, s->agent_id);
  if (s->state == BT_XS_CHALLENGED)
    xp->n_pending_auth--;
  if (s->dirty) {
    for (uint32_t i = 0; i < xp->n_dirty; i++)
      if (xp->dirty[i] == s)
        xp->dirty[i] = xp->dirty[--xp->n_dirty];
  }
  if (s->ctl)
    nn_freemsg(s->ctl);
  if (s->ctl_dup)
    nn_freemsg(s->ctl_dup);
  bt_seal_wipe(&s->seal);
  sodium_memzero(s->kx_sk, sizeof s->kx_sk);
  for (uint32_t i = 0; i < s->n_caps; i++)
    free(s->caps[i]);
  free(s->caps);
  free(s->outbox);
  free(s->acked.v);
  free(s->stale.v);
  free(s);
  xp->n_sessions--;
}

/* Takes over the request slot: an unanswered earlier request is superseded
 * (the agent drops any late answer to it). */
static void take_request(bt_xp_session_t *s, void *ctl, bt_xr_kind_t kind, uint64_t now) {
  if (s->ctl)
    nn_freemsg(s->ctl);
  if (s->ctl_dup)
    nn_freemsg(s->ctl_dup);
  s->ctl = ctl;
  s->ctl_dup = NULL;
  s->kind = kind;
  s->req_ms = now;
}

/* A copy of the request still being answered came in on another pipe: a REQ
 * resend after a reconnect (the first pipe is likely dead) or someone replaying
 * it. Both copies get the answer, so whichever is the agent's gets it. */
static void add_copy(bt_xp_session_t *s, void *ctl) {
  if (s->ctl_dup)
    nn_freemsg(s->ctl_dup);
  s->ctl_dup = s->ctl;
  s->ctl = ctl;
}

/* --- the handshake ---------------------------------------------------------------- */

static void on_hello(bt_xp_t *xp, const Baton__Hello *h, void *ctl, uint64_t now) {
  if (xp->n_pending_auth >= xp->opts.max_pending_auth) {
    bt_log_warn("refused agent hello: too many authentications in progress",
                "vendor=%s agent=%s", BT_Q(h->vendor), BT_Q(h->agent_name));
    bt_xp__reply_error(xp, NULL, &ctl, BATON__ERROR_CODE__ERROR_LIMIT,
                       "too many agents authenticating; retry later");
    return;
  }
  bt_xp_session_t *s = session_new(xp, now);
  s->state = BT_XS_CHALLENGED;
  xp->n_pending_auth++;
  snprintf(s->vendor, sizeof s->vendor, "%s", h->vendor);
  snprintf(s->agent_name, sizeof s->agent_name, "%s", h->agent_name);
  snprintf(s->software, sizeof s->software, "%s", h->software ? h->software : "");
  s->caps = xmalloc(h->n_capabilities * sizeof *s->caps);
  for (size_t i = 0; i < h->n_capabilities; i++)
    s->caps[i] = strdup(h->capabilities[i]);
  s->n_caps = (uint32_t)h->n_capabilities;
  s->slots = h->slots;

  Baton__AgentReply reply = BATON__AGENT_REPLY__INIT;
  Baton__Challenge ch = BATON__CHALLENGE__INIT;
  reply.has_version = true;
  reply.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  ch.has_session = true;
  ch.session = s->id;
  ch.has_nonce = true;
  ch.nonce.data = s->nonce;
  ch.nonce.len = sizeof s->nonce;
  ch.has_kx_public_key = true;
  ch.kx_public_key.data = s->kx_pk;
  ch.kx_public_key.len = sizeof s->kx_pk;
  ch.has_seal = true;
  ch.seal = s->seal_mode;
  reply.body_case = BATON__AGENT_REPLY__BODY_CHALLENGE;
  reply.challenge = &ch;
  bt_xp__send(xp, NULL, &ctl, NULL, &reply);
}

static void refuse(bt_xp_t *xp, bt_xp_session_t *s, void **ctl, Baton__ErrorCode code,
                   const char *message, const char *audit_detail) {
  bt_log_warn("refused agent", "vendor=%s agent=%s reason=%s", BT_Q(s->vendor),
              BT_Q(s->agent_name), BT_Q(audit_detail));
  if (xp->h.rejected)
    xp->h.rejected(xp->arg, "agent.auth_failed", s->vendor, s->agent_name, audit_detail);
  bt_xp__reply_error(xp, NULL, ctl, code, message);
  bt_xp__session_free(xp, s);
}

static void on_auth(bt_xp_t *xp, bt_xp_session_t *s, const Baton__Auth *a, void *ctl,
                    uint64_t now) {
  uint64_t vendor_id = 0;
  uint8_t key[32];
  const uint8_t *agent_kx = a->has_kx_public_key ? a->kx_public_key.data : NULL;
  int rc = xp->h.vendor_key(xp->arg, s->vendor, &vendor_id, key);
  if (rc == 0) {
    /* Without the agent's kx key the signature cannot cover one: an agent that
     * does not do the key exchange fails like a wrong secret. */
    bt_auth_proof_t proof = {.session = s->id,
                             .nonce = s->nonce,
                             .vendor = s->vendor,
                             .agent_name = s->agent_name,
                             .broker_kx = s->kx_pk,
                             .agent_kx = agent_kx,
                             .seal_mode = (uint8_t)s->seal_mode};
    rc = agent_kx == NULL ? BT_EAUTH
                          : bt_auth_verify(key, &proof, a->signature.data,
                                           a->signature.len);
  }
  if (rc != 0) {
    /* One answer for unknown vendor, wrong secret and suspended vendor, so a
     * stranger learns nothing about which vendors exist. */
    refuse(xp, s, &ctl, BATON__ERROR_CODE__ERROR_AUTH, "authentication failed",
           rc == BT_ENOTFOUND ? "unknown vendor"
           : rc == BT_ESTATE  ? "vendor suspended"
                              : "bad signature");
    return;
  }
  /* The signature binds both kx keys: derive the session keys now and drop
   * our kx secret, which nothing needs any more. */
  rc = bt_seal_keys(&s->seal, BT_SEAL_BROKER, s->seal_mode, s->kx_pk, s->kx_sk, agent_kx);
  sodium_memzero(s->kx_sk, sizeof s->kx_sk);
  if (rc != 0) {
    refuse(xp, s, &ctl, BATON__ERROR_CODE__ERROR_AUTH, "authentication failed",
           "unusable key exchange key");
    return;
  }
  memcpy(s->auth_sig, a->signature.data, sizeof s->auth_sig);
  /* One live session per agent: a newer one replaces the older. */
  if (xp->opts.max_agents_per_vendor > 0) {
    uint32_t count = 0;
    for (uint32_t i = 0; i < xp->by_agent.cap; i++) {
      if (!bt_idmap_used(&xp->by_agent, i))
        continue;
      bt_xp_session_t *o = xp->by_agent.vals[i];
      if (o->vendor_id == vendor_id && strcmp(o->agent_name, s->agent_name) != 0)
        count++;
    }
    if (count >= xp->opts.max_agents_per_vendor) {
      refuse(xp, s, &ctl, BATON__ERROR_CODE__ERROR_LIMIT,
             "too many agents connected for this vendor", "agents per vendor limit");
      return;
    }
  }
  bt_held_t *held = xmalloc(a->n_held * sizeof *held);
  for (size_t i = 0; i < a->n_held; i++) {
    held[i].package_id = a->held[i]->package_id;
    held[i].attempt = a->held[i]->attempt;
  }
  bt_xp_hello_t hello = {
      .session = s->id,
      .vendor_id = vendor_id,
      .vendor = s->vendor,
      .agent_name = s->agent_name,
      .caps = (const char *const *)s->caps,
      .n_caps = s->n_caps,
      .slots = s->slots,
      .software = s->software,
      .held = held,
      .n_held = a->n_held,
  };
  s->vendor_id = vendor_id;
  uint64_t agent_id = 0;
  bt_xp_session_t *old = NULL;
  rc = xp->h.hello(xp->arg, &hello, &agent_id);
  free(held);
  if (rc != 0) {
    refuse(xp, s, &ctl,
           rc == BT_EINVAL ? BATON__ERROR_CODE__ERROR_AUTH
                           : BATON__ERROR_CODE__ERROR_UNAVAILABLE,
           rc == BT_EINVAL ? "a capability is not registered for this vendor"
                           : "the broker cannot take this agent now; retry later",
           bt_strerror(rc));
    return;
  }
  old = bt_idmap_get(&xp->by_agent, agent_id);
  if (old != NULL && old != s)
    bt_xp__session_free(xp, old);
  s->agent_id = agent_id;
  bt_idmap_put(&xp->by_agent, agent_id, s);
  s->state = BT_XS_WELCOMING;
  xp->n_pending_auth--;
  take_request(s, ctl, BT_XR_AUTH, now);
  s->req_ctr = 0; /* the Welcome answers the Auth: reply_to 0 */
  bt_log_info("agent authenticated",
              "vendor=%s agent=%s agent_id=%llu slots=%u sealing=%s", BT_Q(s->vendor),
              BT_Q(s->agent_name), (unsigned long long)agent_id, s->slots,
              s->seal_mode == BATON__SEAL_MODE__SEAL_MODE_SECRETBOX ? "encrypt+mac"
                                                                    : "mac-only");
}

/* --- requests of live sessions ------------------------------------------------------ */

/* A sealed error answering request counter on ctl (not the session's slot,
 * whose request keeps its own reply_to). */
static void reply_error_to(bt_xp_t *xp, bt_xp_session_t *s, void **ctl, uint64_t counter,
                           Baton__ErrorCode code, const char *message) {
  uint64_t kept = s->req_ctr;
  s->req_ctr = counter;
  bt_xp__reply_error(xp, s, ctl, code, message);
  s->req_ctr = kept;
}

/* Drops what the agent acknowledged through ack_seq; assignments it holds now
 * have started. */
static void apply_ack_seq(bt_xp_t *xp, bt_xp_session_t *s, uint64_t ack_seq) {
  if (ack_seq <= s->acked_seq || ack_seq >= s->next_seq + 1)
    return;
  uint32_t k = 0;
  for (uint32_t i = 0; i < s->n_outbox; i++) {
    bt_xp_item_t *it = &s->outbox[i];
    if (it->seq <= ack_seq) {
      if (!it->cancel)
        xp->h.started(xp->arg, s->agent_id, it->package_id, it->attempt);
      continue;
    }
    s->outbox[k++] = *it;
  }
  s->n_outbox = k;
  s->acked_seq = ack_seq;
}

/* One opened request of an active session (req is the inner message, counter
 * its Sealed.counter). resend: an exact copy of the last request accepted;
 * requests are idempotent, so it is served again, but it is not news of the
 * agent's liveness (a replay must not keep a dead agent's session alive). */
static void on_active(bt_xp_t *xp, bt_xp_session_t *s, const Baton__AgentRequest *req,
                      void *ctl, uint64_t counter, bool resend, uint64_t now) {
  if (resend && s->ctl != NULL && s->req_ctr == counter) {
    /* Still being answered: nothing to do again, but answer this copy too. */
    add_copy(s, ctl);
    return;
  }
  /* Handler calls may end this very session (the core can decide an agent is
   * gone), so it is looked up again after each one rather than kept. */
  uint64_t sid = s->id;
  uint64_t agent = s->agent_id;
  if (req->has_ack_seq)
    apply_ack_seq(xp, s, req->ack_seq);
  if (!resend) {
    s->last_ms = now;
    xp->h.seen(xp->arg, agent);
    if ((s = bt_idmap_get(&xp->by_session, sid)) == NULL) {
      bt_xp__reply_error(xp, NULL, &ctl, BATON__ERROR_CODE__ERROR_SESSION,
                         "session ended; send hello");
      return;
    }
  }
  switch (req->body_case) {
  case BATON__AGENT_REQUEST__BODY_POLL:
    take_request(s, ctl, BT_XR_POLL, now);
    s->req_ctr = counter;
    xp->h.ready(xp->arg, agent, req->poll->free_slots);
    break;
  case BATON__AGENT_REQUEST__BODY_HEARTBEAT:
    take_request(s, ctl, BT_XR_IMMEDIATE, now);
    s->req_ctr = counter;
    if (req->heartbeat->has_free_slots)
      xp->h.ready(xp->arg, agent, req->heartbeat->free_slots);
    break;
  case BATON__AGENT_REQUEST__BODY_PROGRESS: {
    const Baton__Progress *p = req->progress;
    take_request(s, ctl, BT_XR_IMMEDIATE, now);
    s->req_ctr = counter;
    xp->h.progress(xp->arg, agent, p->package_id, p->attempt,
                   p->has_percent ? (int)p->percent : -1,
                   p->has_checkpoint ? p->checkpoint.data : NULL,
                   p->has_checkpoint ? p->checkpoint.len : 0);
    break;
  }
  case BATON__AGENT_REQUEST__BODY_RESULTS: {
    const Baton__Results *rs = req->results;
    take_request(s, ctl, BT_XR_RESULTS, now);
    s->req_ctr = counter;
    s->pending_acks += (uint32_t)rs->n_results;
    for (size_t i = 0; i < rs->n_results; i++) {
      const Baton__Result *x = rs->results[i];
      static const bt_outcome_t map[] = {
          [BATON__OUTCOME__OUTCOME_COMPLETED] = BT_OUTCOME_COMPLETED,
          [BATON__OUTCOME__OUTCOME_FAILED] = BT_OUTCOME_FAILED,
          [BATON__OUTCOME__OUTCOME_TRANSIENT] = BT_OUTCOME_TRANSIENT,
          [BATON__OUTCOME__OUTCOME_CANCELLED] = BT_OUTCOME_CANCELLED,
          [BATON__OUTCOME__OUTCOME_HANDED_BACK] = BT_OUTCOME_HANDED_BACK,
      };
      char err[BT_TEXT_MAX + 1];
      bool too_big = x->has_output && x->output.len > xp->opts.max_payload_bytes;
      bt_result_t r = {
          .package_id = x->package_id,
          .attempt = x->attempt,
          .outcome = map[x->outcome],
          .output = x->has_output ? x->output.data : NULL,
          .output_len = x->has_output ? x->output.len : 0,
          .exit_code = x->has_exit_code ? x->exit_code : -1,
          .error = x->error ? bt_sanitize_text(x->error, err, sizeof err) : NULL,
      };
      if (too_big) {
        /* A library user without baton-agent's --max-result-bytes cap: the
         * attempt fails with the reason (and may be retried), rather than the
         * whole Results message being refused and resent for ever. */
        snprintf(err, sizeof err, "result of %zu bytes exceeds the limit of %u bytes",
                 x->output.len, xp->opts.max_payload_bytes);
        r.outcome = BT_OUTCOME_FAILED;
        r.output = NULL;
        r.output_len = 0;
        r.error = err;
        bt_log_warn("agent result too large: the attempt fails",
                    "agent_id=%llu package=%llu attempt=%u bytes=%zu limit=%u",
                    (unsigned long long)agent, (unsigned long long)x->package_id,
                    x->attempt, x->output.len, xp->opts.max_payload_bytes);
      }
      xp->h.result(xp->arg, agent, &r);
    }
    if (rs->has_free_slots)
      xp->h.ready(xp->arg, agent, rs->free_slots);
    break;
  }
  case BATON__AGENT_REQUEST__BODY_BYE:
    take_request(s, ctl, BT_XR_IMMEDIATE, now);
    s->req_ctr = counter;
    s->leaving = true;
    xp->byes++;
    bt_log_info("agent said bye", "agent_id=%llu reason=%s", (unsigned long long)agent,
                BT_Q(req->bye->reason ? req->bye->reason : ""));
    xp->h.bye(xp->arg, agent);
    break;
  default: /* on_sealed lets only the five above through */
    reply_error_to(xp, s, &ctl, counter, BATON__ERROR_CODE__ERROR_PROTOCOL,
                   "unexpected message in an active session");
    return;
  }
  if ((s = bt_idmap_get(&xp->by_session, sid)) != NULL)
    bt_xp__mark(xp, s);
}

/* A Sealed request: opened under the session's keys, the replay rule applied,
 * the inner request decoded and validated like any other, then served. */
static void on_sealed(bt_xp_t *xp, bt_xp_session_t *s, const Baton__AgentRequest *outer,
                      void *ctl, uint64_t now) {
  char why[160], detail[160];
  uint8_t *body = NULL;
  size_t len = 0;
  const Baton__Sealed *m = outer->sealed;
  if (s->state != BT_XS_ACTIVE) {
    /* No agent seals before its Welcome: not the agent's. The session is not
     * ended for it (a stranger must not be able to end one). */
    bt_xp__reply_error(xp, NULL, &ctl, BATON__ERROR_CODE__ERROR_PROTOCOL,
                       "sealed request before the welcome");
    return;
  }
  uint64_t last = s->seal.rx_ctr;
  int rc = bt_seal_open_msg(&s->seal, m, &body, &len);
  if (rc == BT_EAUTH) {
    snprintf(detail, sizeof detail, "message does not authenticate counter=%llu bytes=%zu",
             (unsigned long long)m->counter, m->box.len);
    refuse_message(xp, s, &ctl, "agent.bad_mac", detail, "message refused: bad mac");
    return;
  }
  if (rc == BT_ESTALE) {
    snprintf(detail, sizeof detail, "replayed message counter=%llu last=%llu",
             (unsigned long long)m->counter, (unsigned long long)last);
    refuse_message(xp, s, &ctl, "agent.replay", detail,
                   "message refused: replayed or out of order");
    return;
  }
  bt_pb_budget_t budget;
  bt_pb_budget_init(&budget, bt_pb_budget_for(len));
  Baton__AgentRequest *req = NULL;
  rc = bt_xp__decode(xp, body, len, &budget, &req, why, sizeof why);
  free(body);
  if (rc == 0 && (!req->has_session || req->session != outer->session)) {
    snprintf(why, sizeof why, "sealed request of another session");
    rc = BT_EPROTO;
  }
  if (rc == 0 && (req->body_case == BATON__AGENT_REQUEST__BODY_HELLO ||
                  req->body_case == BATON__AGENT_REQUEST__BODY_AUTH ||
                  req->body_case == BATON__AGENT_REQUEST__BODY_SEALED)) {
    snprintf(why, sizeof why, "hello, auth or sealed inside a sealed request");
    rc = BT_EPROTO;
  }
  if (rc != 0) {
    /* Authentic but malformed: a broken agent, answered under its keys. */
    bt_log_warn("rejected agent message", "vendor=%s agent=%s reason=%s bytes=%zu",
                BT_Q(s->vendor), BT_Q(s->agent_name), BT_Q(why), len);
    if (req != NULL)
      baton__agent_request__free_unpacked(req, &budget.a);
    reply_error_to(xp, s, &ctl, m->counter,
                   rc == BT_EVERSION ? BATON__ERROR_CODE__ERROR_VERSION
                                     : BATON__ERROR_CODE__ERROR_PROTOCOL,
                   why);
    return;
  }
  on_active(xp, s, req, ctl, m->counter, rc == BT_SEAL_RESEND, now);
  baton__agent_request__free_unpacked(req, &budget.a);
}

void bt_xp__on_request(bt_xp_t *xp, Baton__AgentRequest *req, void *ctl) {
  uint64_t now = bt_mono_ms();
  if (req->body_case == BATON__AGENT_REQUEST__BODY_HELLO) {
    on_hello(xp, req->hello, ctl, now);
    return;
  }
  bt_xp_session_t *s = bt_idmap_get(&xp->by_session, req->session);
  if (s == NULL) {
    bt_xp__reply_error(xp, NULL, &ctl, BATON__ERROR_CODE__ERROR_SESSION,
                       "unknown session; send hello");
    return;
  }
  if (req->body_case == BATON__AGENT_REQUEST__BODY_SEALED) {
    on_sealed(xp, s, req, ctl, now);
    return;
  }
  switch (s->state) {
  case BT_XS_CHALLENGED:
    s->last_ms = now;
    if (req->body_case != BATON__AGENT_REQUEST__BODY_AUTH) {
      bt_xp__reply_error(xp, NULL, &ctl, BATON__ERROR_CODE__ERROR_PROTOCOL,
                         "expected auth after the challenge");
      bt_xp__session_free(xp, s);
      return;
    }
    on_auth(xp, s, req->auth, ctl, now);
    return;
  case BT_XS_WELCOMING:
    /* REQ resends Auth after a reconnect: wait on both copies. Only the very
     * Auth that authenticated counts (Ed25519 signs deterministically). */
    if (req->body_case == BATON__AGENT_REQUEST__BODY_AUTH &&
        sodium_memcmp(req->auth->signature.data, s->auth_sig, sizeof s->auth_sig) == 0) {
      add_copy(s, ctl);
      return;
    }
    bt_xp__reply_error(xp, NULL, &ctl, BATON__ERROR_CODE__ERROR_PROTOCOL,
                       "wait for the welcome");
    return;
  case BT_XS_ACTIVE:
    break;
  }
  /* A clear request on a session whose every request is sealed: an Auth
   * replayed after its Welcome, or something forged around the MAC. */
  if (req->body_case == BATON__AGENT_REQUEST__BODY_AUTH)
    refuse_message(xp, s, &ctl, "agent.replay", "auth for a session already authenticated",
                   "message refused: this session is authenticated already");
  else
    refuse_message(xp, s, &ctl, "agent.bad_mac", "unsealed request in a sealed session",
                   "message refused: requests of this session must be sealed");
}

/* --- replies ---------------------------------------------------------------------- */

static bool has_news(const bt_xp_session_t *s) {
  return s->n_outbox > 0 || s->acked.n > 0 || s->stale.n > 0;
}

static bool should_reply(const bt_xp_t *xp, const bt_xp_session_t *s, uint64_t now) {
  if (s->ctl == NULL || s->state != BT_XS_ACTIVE)
    return false;
  switch (s->kind) {
  case BT_XR_POLL:
    return has_news(s) || now - s->req_ms >= xp->opts.poll_ms;
  case BT_XR_RESULTS:
    return s->pending_acks == 0;
  case BT_XR_IMMEDIATE:
    return true;
  default:
    return false;
  }
}

static Baton__Held **held_list(const bt_xp_pavec_t *v, Baton__Held *store) {
  Baton__Held **out = xmalloc(v->n * sizeof *out);
  for (uint32_t i = 0; i < v->n; i++) {
    baton__held__init(&store[i]);
    store[i].has_package_id = store[i].has_attempt = true;
    store[i].package_id = v->v[i].package_id;
    store[i].attempt = v->v[i].attempt;
    out[i] = &store[i];
  }
  return out;
}

/* Builds the Work for s into w (and the arrays it points to, freed by
 * work_free), dropping outbox assignments that are no longer current. */
typedef struct {
  Baton__Work w;
  Baton__Assignment *as;
  Baton__Assignment **asp;
  Baton__Held *hs;
  Baton__Held **acked, **stale, **cancel;
} work_t;

static void work_build(bt_xp_t *xp, bt_xp_session_t *s, work_t *wk) {
  memset(wk, 0, sizeof *wk);
  baton__work__init(&wk->w);
  uint32_t n_cancel = 0;
  for (uint32_t i = 0; i < s->n_outbox; i++)
    n_cancel += s->outbox[i].cancel;
  wk->as = xmalloc(s->n_outbox * sizeof *wk->as);
  wk->asp = xmalloc(s->n_outbox * sizeof *wk->asp);
  wk->hs = xmalloc((s->acked.n + s->stale.n + n_cancel) * sizeof *wk->hs);
  wk->acked = held_list(&s->acked, wk->hs);
  wk->stale = held_list(&s->stale, wk->hs + s->acked.n);
  Baton__Held *cs = wk->hs + s->acked.n + s->stale.n;
  wk->cancel = xmalloc(n_cancel * sizeof *wk->cancel);
  size_t budget = xp->opts.max_message_bytes > 4096 ? xp->opts.max_message_bytes - 2048 : 2048;
  size_t used = (s->acked.n + s->stale.n + n_cancel) * 24;
  uint32_t k = 0, na = 0, nc = 0;
  for (uint32_t i = 0; i < s->n_outbox; i++) {
    bt_xp_item_t it = s->outbox[i];
    if (it.cancel) {
      baton__held__init(&cs[nc]);
      cs[nc].has_package_id = cs[nc].has_attempt = true;
      cs[nc].package_id = it.package_id;
      cs[nc].attempt = it.attempt;
      wk->cancel[nc] = &cs[nc];
      nc++;
      s->outbox[k++] = it;
      continue;
    }
    bt_xp_assignment_t a;
    if (xp->h.assignment(xp->arg, s->agent_id, it.package_id, it.attempt, &a) != 0)
      continue; /* revoked or finished meanwhile: forget it */
    s->outbox[k++] = it;
    size_t need = a.payload_len + a.checkpoint_len + strlen(a.capability) + 64;
    if (na > 0 && used + need > budget)
      continue; /* goes in a later reply; it stays in the outbox */
    used += need;
    Baton__Assignment *x = &wk->as[na];
    baton__assignment__init(x);
    x->has_seq = x->has_package_id = x->has_attempt = x->has_payload = true;
    x->seq = it.seq;
    x->package_id = it.package_id;
    x->attempt = it.attempt;
    x->capability = (char *)a.capability;
    x->payload.data = (uint8_t *)a.payload;
    x->payload.len = a.payload_len;
    if (a.deadline_at) {
      x->has_deadline_at = true;
      x->deadline_at = a.deadline_at;
    }
    if (a.checkpoint != NULL && a.checkpoint_len > 0) {
      x->has_checkpoint = true;
      x->checkpoint.data = (uint8_t *)a.checkpoint;
      x->checkpoint.len = a.checkpoint_len;
    }
    wk->asp[na++] = x;
  }
  s->n_outbox = k;
  wk->w.n_assignments = na;
  wk->w.assignments = wk->asp;
  wk->w.n_acked = s->acked.n;
  wk->w.acked = wk->acked;
  wk->w.n_stale = s->stale.n;
  wk->w.stale = wk->stale;
  wk->w.n_cancel = nc;
  wk->w.cancel = wk->cancel;
}

static void work_free(work_t *wk) {
  free(wk->as);
  free(wk->asp);
  free(wk->hs);
  free(wk->acked);
  free(wk->stale);
  free(wk->cancel);
}

static void send_work(bt_xp_t *xp, bt_xp_session_t *s) {
  work_t wk;
  work_build(xp, s, &wk);
  Baton__AgentReply reply = BATON__AGENT_REPLY__INIT;
  reply.has_version = true;
  reply.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  reply.body_case = BATON__AGENT_REPLY__BODY_WORK;
  reply.work = &wk.w;
  bt_xp__send(xp, s, &s->ctl, &s->ctl_dup, &reply);
  work_free(&wk);
  s->acked.n = 0;
  s->stale.n = 0;
  s->kind = BT_XR_NONE;
}

void bt_xp_flush(bt_xp_t *xp) {
  uint64_t now = bt_mono_ms();
  uint32_t n_leaving = 0;
  for (uint32_t i = 0; i < xp->n_dirty; i++) {
    bt_xp_session_t *s = xp->dirty[i];
    s->dirty = false;
    if (should_reply(xp, s, now)) {
      send_work(xp, s);
      if (s->leaving)
        xp->dirty[n_leaving++] = s; /* reuse the visited part of the array */
    }
  }
  xp->n_dirty = 0;
  for (uint32_t i = 0; i < n_leaving; i++)
    bt_xp__session_free(xp, xp->dirty[i]);
}

void bt_xp_welcome(bt_xp_t *xp, uint64_t session, int status) {
  bt_xp_session_t *s = bt_idmap_get(&xp->by_session, session);
  if (s == NULL || s->state != BT_XS_WELCOMING)
    return;
  if (status != 0) {
    bt_xp__reply_error(xp, s, &s->ctl, BATON__ERROR_CODE__ERROR_UNAVAILABLE,
                       "store unavailable; retry later"); /* in clear: not yet active */
    bt_xp__session_free(xp, s);
    return;
  }
  /* Active from here: the Welcome is the first sealed reply (reply_to 0),
   * which shows the agent that we derived the same keys. */
  s->state = BT_XS_ACTIVE;
  work_t wk;
  work_build(xp, s, &wk);
  Baton__AgentReply reply = BATON__AGENT_REPLY__INIT;
  Baton__Welcome w = BATON__WELCOME__INIT;
  reply.has_version = true;
  reply.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  w.has_agent_id = w.has_heartbeat_ms = w.has_lease_ms = w.has_poll_ms = true;
  w.has_max_message_bytes = true;
  w.agent_id = s->agent_id;
  w.heartbeat_ms = xp->opts.heartbeat_ms;
  w.lease_ms = xp->opts.lease_ms;
  w.poll_ms = xp->opts.poll_ms;
  w.max_message_bytes = xp->opts.max_message_bytes;
  w.work = &wk.w;
  reply.body_case = BATON__AGENT_REPLY__BODY_WELCOME;
  reply.welcome = &w;
  bt_xp__send(xp, s, &s->ctl, &s->ctl_dup, &reply);
  work_free(&wk);
  s->acked.n = s->stale.n = 0;
  s->kind = BT_XR_NONE;
}

/* --- from the shell ------------------------------------------------------------------ */

static bt_xp_session_t *live(bt_xp_t *xp, uint64_t agent_id) {
  bt_xp_session_t *s = bt_idmap_get(&xp->by_agent, agent_id);
  return s != NULL && s->state != BT_XS_CHALLENGED ? s : NULL;
}

static void outbox_push(bt_xp_session_t *s, uint64_t id, uint32_t attempt, bool cancel) {
  if (s->n_outbox == s->cap_outbox) {
    s->cap_outbox = s->cap_outbox ? s->cap_outbox * 2 : 8;
    s->outbox = realloc(s->outbox, s->cap_outbox * sizeof *s->outbox);
    if (s->outbox == NULL)
      abort();
  }
  bt_xp_item_t *it = &s->outbox[s->n_outbox++];
  it->seq = ++s->next_seq;
  it->package_id = id;
  it->attempt = attempt;
  it->cancel = cancel;
}

void bt_xp_dispatch(bt_xp_t *xp, uint64_t agent_id, uint64_t package_id,
                    uint32_t attempt) {
  bt_xp_session_t *s = live(xp, agent_id);
  if (s == NULL)
    return; /* no session: the core notices through the lease */
  outbox_push(s, package_id, attempt, false);
  bt_xp__mark(xp, s);
}

void bt_xp_cancel(bt_xp_t *xp, uint64_t agent_id, uint64_t package_id, uint32_t attempt) {
  bt_xp_session_t *s = live(xp, agent_id);
  if (s == NULL)
    return;
  outbox_push(s, package_id, attempt, true);
  bt_xp__mark(xp, s);
}

void bt_xp_ack(bt_xp_t *xp, uint64_t agent_id, uint64_t package_id, uint32_t attempt,
               int code) {
  bt_xp_session_t *s = live(xp, agent_id);
  if (s == NULL)
    return;
  if (code == 0)
    pa_push(&s->acked, package_id, attempt);
  else if (code == BT_ESTALE)
    pa_push(&s->stale, package_id, attempt);
  if (s->pending_acks > 0)
    s->pending_acks--;
  bt_xp__mark(xp, s);
}

void bt_xp_end_session(bt_xp_t *xp, uint64_t agent_id) {
  bt_xp_session_t *s = bt_idmap_get(&xp->by_agent, agent_id);
  if (s == NULL)
    return;
  bt_log_info("agent session ended", "agent_id=%llu vendor=%s agent=%s",
              (unsigned long long)agent_id, BT_Q(s->vendor), BT_Q(s->agent_name));
  if (s->ctl)
    bt_xp__reply_error(xp, s, &s->ctl, BATON__ERROR_CODE__ERROR_SESSION,
                       "session ended; send hello");
  bt_xp__session_free(xp, s);
}

/* Periodic: parked polls that reached poll_ms, challenges never answered. */
void bt_xp__expire(bt_xp_t *xp, uint64_t now) {
  for (uint32_t i = 0; i < xp->by_session.cap; i++) {
    if (!bt_idmap_used(&xp->by_session, i))
      continue;
    bt_xp_session_t *s = xp->by_session.vals[i];
    if (s->state == BT_XS_CHALLENGED && now - s->created_ms > AUTH_TIMEOUT_MS) {
      bt_xp__session_free(xp, s);
      continue;
    }
    if (s->ctl && s->kind == BT_XR_POLL && now - s->req_ms >= xp->opts.poll_ms)
      bt_xp__mark(xp, s);
  }
  bt_xp_flush(xp);
}

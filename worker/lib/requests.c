/*
 * Building and sending the agent's requests, and choosing which one goes next
 * when the session is free to send: pending results > progress > Poll (free
 * slots, not draining) > Heartbeat (every heartbeat_ms when no poll can be
 * parked). Every request is packed and size-checked before nn_send; after Auth
 * every one is sealed (bt_seal). Borrows the attempt table; the only state it
 * changes is what is in flight and the session's seal counter.
 */
#include "agent_int.h"

#include "bt_auth.h"
#include "bt_err.h"
#include "bt_log.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#ifndef BATON_VERSION
#define BATON_VERSION "0"
#endif

/* Before Welcome the broker answers at once; after it, a reply may wait for a
 * commit, so the default allows a lease and a margin (plus the park for a Poll). */
#define PRE_WELCOME_TIMEOUT_MS 5000u
#define REPLY_MARGIN_MS 2000u
/* Room for version, session, ack_seq, the Results framing and free_slots, and
 * for sealing (counter, MAC, the outer message). */
#define REQUEST_HEADER_BYTES (128u + BT_SEAL_OVERHEAD)

const char *const bt_agent__req_names[] = {"none",      "hello",    "auth",    "poll",
                                           "heartbeat", "progress", "results", "bye"};

/* ---- sending ------------------------------------------------------------ */

static uint64_t reply_timeout(const bt_agent_t *a, bt_agent__req_t kind) {
  if (!a->session_up)
    return a->cfg_reply_timeout_ms ? a->cfg_reply_timeout_ms : PRE_WELCOME_TIMEOUT_MS;
  uint64_t t = a->cfg_reply_timeout_ms ? a->cfg_reply_timeout_ms
                                       : (uint64_t)a->lease_ms + REPLY_MARGIN_MS;
  return kind == BT_AGENT__REQ_POLL ? t + a->poll_ms : t;
}

/* Packs and sends req (header fields filled here). Returns 0, or an error after
 * which the caller must not wait for a reply. */
static int send_request(bt_agent_t *a, Baton__AgentRequest *req, bt_agent__req_t kind) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rv;
  req->has_version = 1;
  req->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  if (kind != BT_AGENT__REQ_HELLO) {
    req->has_session = 1;
    req->session = a->session;
    req->has_ack_seq = 1;
    req->ack_seq = a->ack_seq;
  }
  /* Hello and Auth go in clear (they make the keys); everything after is
   * sealed under the session keys. */
  if (kind == BT_AGENT__REQ_HELLO || kind == BT_AGENT__REQ_AUTH)
    rv = bt_agent__wire_pack(req, a->max_message, &buf, &len);
  else
    rv = bt_seal_pack_request(&a->seal, a->session, req, a->max_message, &buf, &len);
  if (rv != 0) {
    bt_log_error("request larger than the message limit; not sent",
                 "request=%s limit=%" PRIu32, bt_agent__req_names[kind],
                 a->max_message);
    return rv;
  }
  rv = bt_agent__link_send(a->link, buf, len);
  free(buf);
  if (rv != 0) {
    bt_log_warn("could not send request", "request=%s error=%s",
                bt_agent__req_names[kind], BT_Q(uv_strerror(rv)));
    return rv;
  }
  uint64_t now = bt_agent__now(a);
  a->inflight = kind;
  a->last_sent = now;
  a->reply_deadline = now + reply_timeout(a, kind);
  bt_log_debug("request sent", "request=%s bytes=%zu ack_seq=%" PRIu64,
               bt_agent__req_names[kind], len, a->ack_seq);
  return 0;
}

/* Held entries for the attempts in mask; *out owned (free both). */
static size_t held_list(const bt_agent_t *a, unsigned mask, Baton__Held **store,
                        Baton__Held ***out) {
  size_t n = bt_agent__atts_count(&a->atts, mask), k = 0;
  *store = bt_agent__xcalloc(n, sizeof **store);
  *out = bt_agent__xcalloc(n, sizeof **out);
  for (size_t i = 0; i < a->atts.n; i++) {
    const bt_agent__att_t *att = a->atts.v[i];
    if (!(mask & BT_AGENT__BIT(att->state)))
      continue;
    Baton__Held *h = &(*store)[k];
    baton__held__init(h);
    h->has_package_id = h->has_attempt = 1;
    h->package_id = att->package_id;
    h->attempt = att->attempt;
    (*out)[k++] = h;
  }
  return k;
}

void bt_agent__send_hello(bt_agent_t *a) {
  if (a->link == NULL) {
    int rv = bt_agent__link_open(a->loop, a->brokers, a->max_message,
                                 bt_agent__on_link_msg, a, &a->link);
    if (rv != 0) {
      bt_log_warn("could not open agent socket", "error=%s", BT_Q(bt_strerror(rv)));
      a->errors_in_row++;
      bt_agent__enter_backoff(a);
      return;
    }
  }
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  Baton__Hello hello = BATON__HELLO__INIT;
  hello.vendor = a->vendor;
  hello.agent_name = a->name;
  hello.capabilities = a->caps;
  hello.n_capabilities = a->n_caps;
  hello.has_slots = 1;
  hello.slots = a->slots;
  hello.software = "baton-agent/" BATON_VERSION;
  req.body_case = BATON__AGENT_REQUEST__BODY_HELLO;
  req.hello = &hello;
  a->session_up = 0;
  if (send_request(a, &req, BT_AGENT__REQ_HELLO) != 0) {
    a->errors_in_row++;
    bt_agent__close_link(a); /* reopened by the next Hello */
    bt_agent__enter_backoff(a);
    return;
  }
  a->state = BT_AGENT__S_HELLO;
}

void bt_agent__send_auth(bt_agent_t *a, const Baton__Challenge *ch) {
  uint8_t sig[BT_AUTH_SIG_BYTES];
  uint8_t kx_pk[BT_SEAL_KX_BYTES], kx_sk[BT_SEAL_KX_BYTES];
  a->session = ch->session;
  a->ack_seq = 0;
  /* An ephemeral kx key pair per session: the session keys come from it and
   * the broker's, and the signature below covers both public halves (and the
   * seal mode), which binds the keys to this authentication. */
  bt_seal_kx_keypair(kx_pk, kx_sk);
  int rv = bt_seal_keys(&a->seal, BT_SEAL_AGENT, ch->seal, kx_pk, kx_sk,
                        ch->kx_public_key.data);
  sodium_memzero(kx_sk, sizeof kx_sk);
  if (rv != 0) {
    bt_agent__reconnect(a, "unusable key exchange key in the challenge");
    return;
  }
  bt_auth_proof_t proof = {.session = ch->session,
                           .nonce = ch->nonce.data,
                           .vendor = a->vendor,
                           .agent_name = a->name,
                           .broker_kx = ch->kx_public_key.data,
                           .agent_kx = kx_pk,
                           .seal_mode = (uint8_t)ch->seal};
  bt_auth_sign(a->sk, &proof, sig);
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  Baton__Auth auth = BATON__AUTH__INIT;
  Baton__Held *store = NULL;
  auth.has_signature = 1;
  auth.signature.data = sig;
  auth.signature.len = sizeof sig;
  auth.has_kx_public_key = 1;
  auth.kx_public_key.data = kx_pk;
  auth.kx_public_key.len = sizeof kx_pk;
  /* Everything still running or unacknowledged, so the broker keeps current
   * attempts here instead of handing them off after its restart. */
  auth.n_held = held_list(a, BT_AGENT__HELD, &store, &auth.held);
  req.body_case = BATON__AGENT_REQUEST__BODY_AUTH;
  req.auth = &auth;
  rv = send_request(a, &req, BT_AGENT__REQ_AUTH);
  free(auth.held);
  free(store);
  if (rv != 0) {
    bt_agent__reconnect(a, "could not send auth");
    return;
  }
  a->state = BT_AGENT__S_AUTH;
}

static void send_poll(bt_agent_t *a) {
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  Baton__Poll poll = BATON__POLL__INIT;
  poll.has_free_slots = 1;
  poll.free_slots = bt_agent__free_slots(a);
  req.body_case = BATON__AGENT_REQUEST__BODY_POLL;
  req.poll = &poll;
  if (send_request(a, &req, BT_AGENT__REQ_POLL) != 0) {
    bt_agent__reconnect(a, "could not send poll");
    return;
  }
  a->state = BT_AGENT__S_POLL;
}

static void send_heartbeat(bt_agent_t *a) {
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  Baton__Heartbeat hb = BATON__HEARTBEAT__INIT;
  Baton__Held *store = NULL;
  hb.n_running =
      held_list(a, BT_AGENT__BIT(BT_AGENT__ATT_RUNNING), &store, &hb.running);
  hb.has_free_slots = 1;
  hb.free_slots = bt_agent__free_slots(a);
  req.body_case = BATON__AGENT_REQUEST__BODY_HEARTBEAT;
  req.heartbeat = &hb;
  int rv = send_request(a, &req, BT_AGENT__REQ_HEARTBEAT);
  free(hb.running);
  free(store);
  if (rv != 0) {
    bt_agent__reconnect(a, "could not send heartbeat");
    return;
  }
  a->state = BT_AGENT__S_BUSY;
}

static void send_progress(bt_agent_t *a, bt_agent__att_t *att) {
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  Baton__Progress p = BATON__PROGRESS__INIT;
  p.has_package_id = p.has_attempt = 1;
  p.package_id = att->package_id;
  p.attempt = att->attempt;
  if (att->percent >= 0) {
    p.has_percent = 1;
    p.percent = (uint32_t)att->percent;
  }
  if (att->checkpoint_dirty) {
    if (att->checkpoint_len + REQUEST_HEADER_BYTES > a->max_message) {
      /* only when the broker lowered the limit after the checkpoint was taken */
      bt_log_warn("checkpoint larger than the message limit; dropped",
                  "package=%" PRIu64 " attempt=%" PRIu32 " bytes=%zu", att->package_id,
                  att->attempt, att->checkpoint_len);
      att->checkpoint_dirty = 0;
    } else {
      p.has_checkpoint = 1;
      p.checkpoint.data = att->checkpoint;
      p.checkpoint.len = att->checkpoint_len;
    }
  }
  req.body_case = BATON__AGENT_REQUEST__BODY_PROGRESS;
  req.progress = &p;
  att->sent_percent = att->percent_dirty;
  att->sent_checkpoint = p.has_checkpoint;
  att->percent_dirty = att->checkpoint_dirty = 0;
  a->prog_package = att->package_id;
  a->prog_attempt = att->attempt;
  a->last_progress = bt_agent__now(a);
  if (send_request(a, &req, BT_AGENT__REQ_PROGRESS) != 0) {
    a->inflight =
        BT_AGENT__REQ_PROGRESS; /* so fail_inflight restores the dirty flags */
    bt_agent__reconnect(a, "could not send progress");
    return;
  }
  a->state = BT_AGENT__S_BUSY;
}

/* Every finished, unacknowledged result that fits, oldest first, in one
 * Results message. */
static void send_results(bt_agent_t *a) {
  size_t nd = bt_agent__atts_count(&a->atts, BT_AGENT__BIT(BT_AGENT__ATT_DONE));
  Baton__Result *store = bt_agent__xcalloc(nd, sizeof *store);
  Baton__Result **list = bt_agent__xcalloc(nd, sizeof *list);
  size_t budget = a->max_message - REQUEST_HEADER_BYTES, used = 0, k = 0;
  for (size_t i = 0; i < a->atts.n && k < nd; i++) {
    bt_agent__att_t *att = a->atts.v[i];
    if (att->state != BT_AGENT__ATT_DONE)
      continue;
    Baton__Result *r = &store[k];
    baton__result__init(r);
    r->has_package_id = r->has_attempt = r->has_outcome = r->has_exit_code = 1;
    r->package_id = att->package_id;
    r->attempt = att->attempt;
    r->outcome = (Baton__Outcome)att->outcome;
    r->exit_code = att->exit_code;
    r->has_output = 1;
    r->output.data = att->output;
    r->output.len = att->output_len;
    r->error = att->error;
    size_t sz = bt_agent__wire_result_size(r);
    if (used + sz > budget) {
      if (k > 0)
        break; /* the rest goes in the next Results */
      /* Alone too large: only when the broker lowered the limit after this result
       * was recorded (bt_agent_complete caps outputs). */
      bt_log_warn("result larger than the message limit; reporting failure",
                  "package=%" PRIu64 " attempt=%" PRIu32 " bytes=%zu", att->package_id,
                  att->attempt, att->output_len);
      free(att->output);
      att->output = NULL;
      att->output_len = 0;
      free(att->error);
      att->error = bt_agent__xstrdup("result too large");
      att->outcome = BT_AGENT_FAILED;
      r->outcome = BATON__OUTCOME__OUTCOME_FAILED;
      r->output.data = NULL;
      r->output.len = 0;
      r->error = att->error;
      sz = bt_agent__wire_result_size(r);
    }
    used += sz;
    list[k++] = r;
  }
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  Baton__Results results = BATON__RESULTS__INIT;
  results.n_results = k;
  results.results = list;
  results.has_free_slots = 1;
  results.free_slots = bt_agent__free_slots(a);
  req.body_case = BATON__AGENT_REQUEST__BODY_RESULTS;
  req.results = &results;
  int rv = send_request(a, &req, BT_AGENT__REQ_RESULTS);
  if (rv == 0) {
    for (size_t i = 0; i < k; i++) {
      bt_agent__att_t *att =
          bt_agent__atts_find(&a->atts, list[i]->package_id, list[i]->attempt);
      att->state = BT_AGENT__ATT_SENT;
    }
  }
  free(list);
  free(store);
  if (rv != 0) {
    bt_agent__reconnect(a, "could not send results");
    return;
  }
  a->state = BT_AGENT__S_BUSY;
}

static void send_bye(bt_agent_t *a) {
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  Baton__Bye bye = BATON__BYE__INIT;
  bye.reason = a->draining ? "stopping" : "stopped";
  req.body_case = BATON__AGENT_REQUEST__BODY_BYE;
  req.bye = &bye;
  if (send_request(a, &req, BT_AGENT__REQ_BYE) != 0) {
    bt_agent__close_all(a);
    return;
  }
  /* Bye's answer is a courtesy: never wait past the stop deadline for it. */
  a->reply_deadline = bt_agent__min(a->reply_deadline, a->stop_deadline);
  a->state = BT_AGENT__S_BYE;
}

/* An attempt whose checkpoint must go out: before_result selects finished
 * attempts (their checkpoint precedes their result), else running ones. */
bt_agent__att_t *bt_agent__progress_pending(const bt_agent_t *a, int before_result) {
  for (size_t i = 0; i < a->atts.n; i++) {
    bt_agent__att_t *att = a->atts.v[i];
    if (before_result) {
      if (att->state == BT_AGENT__ATT_DONE && att->checkpoint_dirty)
        return att;
    } else if (att->state == BT_AGENT__ATT_RUNNING &&
               (att->percent_dirty || att->checkpoint_dirty)) {
      return att;
    }
  }
  return NULL;
}

/* When a parked Poll should give way: results, due progress, drain or stop. */
int bt_agent__has_news(const bt_agent_t *a, uint64_t now) {
  if (a->stop_requested || a->draining)
    return 1;
  if (bt_agent__atts_count(&a->atts, BT_AGENT__BIT(BT_AGENT__ATT_DONE)) > 0)
    return 1;
  return bt_agent__progress_pending(a, 0) != NULL &&
         now >= a->last_progress + BT_AGENT__PROGRESS_MIN_MS;
}

/* Chooses and sends the next request (state BT_AGENT__S_READY, or BT_AGENT__S_POLL
 * superseding the parked poll). When nothing is due, stays BT_AGENT__S_READY with
 * ready_wake set. */
void bt_agent__send_next(bt_agent_t *a) {
  uint64_t now = bt_agent__now(a), wake = UINT64_MAX;
  bt_agent__att_t *att;
  a->ready_wake = UINT64_MAX;
  if ((att = bt_agent__progress_pending(a, 1)) != NULL) {
    send_progress(a, att);
    return;
  }
  if (bt_agent__atts_count(&a->atts, BT_AGENT__BIT(BT_AGENT__ATT_DONE)) > 0) {
    send_results(a);
    return;
  }
  if ((att = bt_agent__progress_pending(a, 0)) != NULL) {
    if (now >= a->last_progress + BT_AGENT__PROGRESS_MIN_MS) {
      send_progress(a, att);
      return;
    }
    wake = a->last_progress + BT_AGENT__PROGRESS_MIN_MS;
  }
  if (a->stop_requested) {
    send_bye(a);
    return;
  }
  if (!a->draining && bt_agent__free_slots(a) > 0) {
    send_poll(a);
    return;
  }
  /* No poll can be parked: the broker must still hear from us. A parked poll
   * being superseded (drain) is replaced at once by a heartbeat saying so. */
  if (a->state == BT_AGENT__S_POLL || now >= a->last_sent + a->heartbeat_ms) {
    send_heartbeat(a);
    return;
  }
  a->state = BT_AGENT__S_READY;
  a->ready_wake = bt_agent__min(wake, a->last_sent + a->heartbeat_ms);
}

/*
 * The agent session state machine: Hello, proof of the vendor secret, then exactly
 * one request in flight at a time, and the broker's answers applied to the
 * attempt table. Owns the transitions, the timer and the link's lifetime; the
 * requests themselves are built in requests.c. Never runs tasks (that is the
 * embedder's on_task), never blocks, never logs or keeps the secret.
 *
 * From Auth on the session has keys (bt_seal): every request goes out sealed and
 * a reply is taken only if it opens under the session's key, is newer than the
 * last one taken and answers the request in flight; a reply that fails any of
 * that is dropped and the wait goes on (the link keeps waiting), so a forged or
 * replayed reply can neither steer the agent nor end its session.
 *
 * Exchange rules (proto/README.md): a parked Poll may be superseded by any other
 * request (REQ cancels it and drops its reply; the broker resends unacknowledged
 * assignments with its next answer). Any other request waits for its reply or for
 * the reply timeout, after which the socket is replaced and a new session starts
 * with Hello. Assignments arrive at least once: the seq/attempt check in
 * apply_work() is what keeps a task from being started twice.
 *
 * The public calls (complete, progress, drain, stop) only record what happened and
 * kick the timer; the machine acts from the timer callback. That keeps every user
 * callback free to call back into the library, and batches the results of one
 * loop turn into one Results message.
 */
#include "agent_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_MAX_MS 8000u

typedef enum { EV_REPLY, EV_TIMER } ev_t;

static void on_event(bt_agent_t *a, ev_t ev, const Baton__AgentReply *r);

static uint32_t clamp_u32(uint32_t v, uint32_t lo, uint32_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

static void on_timer(uv_timer_t *t) { on_event(t->data, EV_TIMER, NULL); }

void bt_agent__kick(bt_agent_t *a) {
  if (a->timer_open && a->state != BT_AGENT__S_CLOSING &&
      a->state != BT_AGENT__S_CLOSED)
    uv_timer_start(&a->timer, on_timer, 0, 0);
}

/* ---- closing ------------------------------------------------------------ */

static void maybe_closed(bt_agent_t *a) {
  if (a->state != BT_AGENT__S_CLOSING || a->pending_closes > 0)
    return;
  a->state = BT_AGENT__S_CLOSED;
  bt_log_info("agent stopped", "agent=%s", BT_Q(a->name));
  void (*cb)(bt_agent_t *, void *) = a->on_closed;
  a->on_closed = NULL;
  if (cb != NULL)
    cb(a, a->user); /* may free a: nothing after this */
}

static void on_link_closed(void *ctx) {
  bt_agent_t *a = ctx;
  a->pending_closes--;
  maybe_closed(a);
}

static void on_timer_closed(uv_handle_t *h) {
  bt_agent_t *a = h->data;
  a->timer_open = 0;
  a->pending_closes--;
  maybe_closed(a);
}

void bt_agent__close_link(bt_agent_t *a) {
  if (a->link == NULL)
    return;
  a->pending_closes++;
  bt_agent__link_close(a->link, on_link_closed);
  a->link = NULL;
}

void bt_agent__close_all(bt_agent_t *a) {
  a->state = BT_AGENT__S_CLOSING;
  a->inflight = BT_AGENT__REQ_NONE;
  bt_agent__close_link(a);
  if (a->timer_open && !uv_is_closing((uv_handle_t *)&a->timer)) {
    a->pending_closes++;
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
  }
  maybe_closed(a);
}

/* ---- session bookkeeping ------------------------------------------------ */

/* The request in flight will get no (usable) answer: whatever it carried goes
 * back to pending. */
static void fail_inflight(bt_agent_t *a) {
  if (a->inflight == BT_AGENT__REQ_RESULTS) {
    for (size_t i = 0; i < a->atts.n; i++) {
      if (a->atts.v[i]->state == BT_AGENT__ATT_SENT)
        a->atts.v[i]->state = BT_AGENT__ATT_DONE;
    }
  } else if (a->inflight == BT_AGENT__REQ_PROGRESS) {
    bt_agent__att_t *att =
        bt_agent__atts_find(&a->atts, a->prog_package, a->prog_attempt);
    if (att != NULL &&
        (att->state == BT_AGENT__ATT_RUNNING || att->state == BT_AGENT__ATT_DONE)) {
      att->percent_dirty |= att->sent_percent;
      att->checkpoint_dirty |= att->sent_checkpoint;
    }
    if (att != NULL)
      att->sent_percent = att->sent_checkpoint = 0;
  }
  a->inflight = BT_AGENT__REQ_NONE;
}

static void reset_session(bt_agent_t *a) {
  fail_inflight(a);
  a->session_up = 0;
  a->session = 0;
  a->ack_seq = 0;
  bt_seal_wipe(&a->seal); /* the session keys die with the session */
}

void bt_agent__enter_backoff(bt_agent_t *a) {
  unsigned shift = a->errors_in_row > 0 ? a->errors_in_row - 1 : 0;
  uint64_t delay =
      shift >= 4 ? BACKOFF_MAX_MS
                 : bt_agent__min((uint64_t)BACKOFF_FIRST_MS << shift, BACKOFF_MAX_MS);
  fail_inflight(a);
  a->state = BT_AGENT__S_BACKOFF;
  a->backoff_until = bt_agent__now(a) + delay;
  bt_log_debug("backing off", "delay_ms=%" PRIu64, delay);
}

/* The link is unusable or the broker silent: replace the socket (a new socket
 * also means a fresh TCP connection) and start a new session. */
void bt_agent__reconnect(bt_agent_t *a, const char *why) {
  bt_log_warn("no usable reply from broker; reconnecting", "reason=%s request=%s",
              BT_Q(why), bt_agent__req_names[a->inflight]);
  reset_session(a);
  bt_agent__close_link(a);
  bt_agent__send_hello(a);
}

static void fatal(bt_agent_t *a, int code, const char *message) {
  bt_log_error("broker refused the agent; not retrying",
               "code=%s vendor=%s agent=%s message=%s", BT_Q(bt_strerror(code)),
               BT_Q(a->vendor), BT_Q(a->name), BT_Q(message));
  reset_session(a);
  bt_agent__close_link(a);
  if (a->timer_open)
    uv_timer_stop(&a->timer);
  a->state = BT_AGENT__S_FAILED;
  a->fatal_code = code;
  if (a->cb.on_fatal != NULL) {
    a->depth++;
    a->cb.on_fatal(a, code, message, a->user);
    a->depth--;
  }
}

/* ---- receiving ---------------------------------------------------------- */

static int has_capability(const bt_agent_t *a, const char *cap) {
  for (size_t i = 0; i < a->n_caps; i++) {
    if (strcmp(a->caps[i], cap) == 0)
      return 1;
  }
  return 0;
}

static void accept_assignment(bt_agent_t *a, const Baton__Assignment *as) {
  const char *refuse = NULL;
  bt_agent_outcome_t outcome = BT_AGENT_HANDED_BACK;
  if (a->draining || a->stop_requested) {
    refuse = "agent draining";
  } else if (!has_capability(a, as->capability)) {
    refuse = "capability not offered by this agent";
    outcome = BT_AGENT_FAILED;
  } else if (bt_agent__free_slots_raw(a) == 0) {
    refuse = "no free slot";
  }
  bt_agent__att_t *att = bt_agent__atts_add(&a->atts, as->package_id, as->attempt);
  if (refuse != NULL) {
    bt_log_warn("assignment refused",
                "package=%" PRIu64 " attempt=%" PRIu32 " capability=%s reason=%s",
                as->package_id, as->attempt, BT_Q(as->capability), BT_Q(refuse));
    att->state = BT_AGENT__ATT_DONE;
    att->outcome = outcome;
    att->error = bt_agent__xstrdup(refuse);
    return;
  }
  bt_log_info("task received",
              "package=%" PRIu64 " attempt=%" PRIu32 " capability=%s payload_bytes=%zu",
              as->package_id, as->attempt, BT_Q(as->capability),
              as->has_payload ? as->payload.len : (size_t)0);
  bt_agent_task_t task = {
      .package_id = as->package_id,
      .attempt = as->attempt,
      .capability = as->capability,
      .payload = as->has_payload ? as->payload.data : NULL,
      .payload_len = as->has_payload ? as->payload.len : 0,
      .deadline_at = as->has_deadline_at ? as->deadline_at : 0,
      .checkpoint =
          as->has_checkpoint && as->checkpoint.len > 0 ? as->checkpoint.data : NULL,
      .checkpoint_len = as->has_checkpoint ? as->checkpoint.len : 0,
  };
  if (task.checkpoint == NULL)
    task.checkpoint_len = 0;
  a->depth++;
  a->cb.on_task(a, &task, a->user);
  a->depth--;
}

/* Forgets acknowledged or refused results. */
static void forget_results(bt_agent_t *a, Baton__Held *const *v, size_t n,
                           const char *what) {
  for (size_t i = 0; i < n; i++) {
    bt_agent__att_t *att =
        bt_agent__atts_find(&a->atts, v[i]->package_id, v[i]->attempt);
    if (att == NULL ||
        (att->state != BT_AGENT__ATT_DONE && att->state != BT_AGENT__ATT_SENT))
      continue;
    bt_log_debug(what, "package=%" PRIu64 " attempt=%" PRIu32, att->package_id,
                 att->attempt);
    bt_agent__atts_remove(&a->atts, att);
  }
}

static void apply_work(bt_agent_t *a, const Baton__Work *w) {
  forget_results(a, w->acked, w->n_acked, "result acknowledged");
  forget_results(a, w->stale, w->n_stale, "result refused as stale");
  for (size_t i = 0; i < w->n_cancel; i++) {
    uint64_t pkg = w->cancel[i]->package_id;
    uint32_t attempt = w->cancel[i]->attempt;
    bt_agent__att_t *att = bt_agent__atts_find(&a->atts, pkg, attempt);
    if (att == NULL || att->state == BT_AGENT__ATT_CANCELLED)
      continue;
    bt_log_info("task cancelled by broker", "package=%" PRIu64 " attempt=%" PRIu32, pkg,
                attempt);
    if (att->state != BT_AGENT__ATT_RUNNING) {
      bt_agent__atts_remove(&a->atts, att); /* its result is not wanted */
      continue;
    }
    att->state = BT_AGENT__ATT_CANCELLED;
    att->percent_dirty = att->checkpoint_dirty = 0;
    if (a->cb.on_cancel != NULL) {
      a->depth++;
      a->cb.on_cancel(a, pkg, attempt, a->user);
      a->depth--;
    }
  }
  /* At-least-once delivery: every answer repeats what ack_seq has not covered.
   * An assignment seen before (by seq, or by attempt for one resent under a new
   * seq after a bt_agent__reconnect) is not started twice. */
  uint64_t seen = a->ack_seq;
  for (size_t i = 0; i < w->n_assignments; i++) {
    const Baton__Assignment *as = w->assignments[i];
    if (as->seq > a->ack_seq)
      a->ack_seq = as->seq;
    if (as->seq <= seen ||
        bt_agent__atts_find(&a->atts, as->package_id, as->attempt) != NULL) {
      bt_log_debug("assignment already known",
                   "package=%" PRIu64 " attempt=%" PRIu32 " seq=%" PRIu64,
                   as->package_id, as->attempt, as->seq);
      continue;
    }
    accept_assignment(a, as);
  }
}

static void on_welcome(bt_agent_t *a, const Baton__Welcome *w) {
  a->session_up = 1;
  a->errors_in_row = 0;
  a->inflight = BT_AGENT__REQ_NONE;
  a->agent_id = w->has_agent_id ? w->agent_id : 0;
  a->lease_ms = w->has_lease_ms ? clamp_u32(w->lease_ms, 100, 3600000)
                                : BT_AGENT__DEFAULT_LEASE_MS;
  a->heartbeat_ms = w->has_heartbeat_ms ? clamp_u32(w->heartbeat_ms, 50, 600000)
                                        : BT_AGENT__DEFAULT_HEARTBEAT_MS;
  if (a->heartbeat_ms >= a->lease_ms)
    a->heartbeat_ms =
        a->lease_ms / 3; /* a heartbeat slower than the lease loses work */
  a->poll_ms =
      w->has_poll_ms ? clamp_u32(w->poll_ms, 0, 600000) : BT_AGENT__DEFAULT_POLL_MS;
  uint32_t max = a->cfg_max_message;
  if (w->has_max_message_bytes && w->max_message_bytes >= BT_AGENT__MIN_MESSAGE)
    max = clamp_u32(w->max_message_bytes, BT_AGENT__MIN_MESSAGE, INT32_MAX);
  if (max != a->max_message) {
    a->max_message = max;
    if (a->link != NULL)
      bt_agent__link_set_max(a->link, max);
  }
  bt_log_info("session established",
              "vendor=%s agent=%s agent_id=%" PRIu64 " session=%016" PRIx64
              " heartbeat_ms=%" PRIu32 " lease_ms=%" PRIu32 " poll_ms=%" PRIu32
              " max_message_bytes=%" PRIu32 " held=%zu",
              BT_Q(a->vendor), BT_Q(a->name), a->agent_id, a->session, a->heartbeat_ms,
              a->lease_ms, a->poll_ms, a->max_message,
              bt_agent__atts_count(&a->atts, BT_AGENT__HELD));
  a->state = BT_AGENT__S_READY;
  if (w->work != NULL)
    apply_work(a, w->work);
}

static const char *error_code_name(Baton__ErrorCode c) {
  switch (c) {
  case BATON__ERROR_CODE__ERROR_PROTOCOL:
    return "protocol";
  case BATON__ERROR_CODE__ERROR_VERSION:
    return "version";
  case BATON__ERROR_CODE__ERROR_AUTH:
    return "auth";
  case BATON__ERROR_CODE__ERROR_SESSION:
    return "session";
  case BATON__ERROR_CODE__ERROR_LIMIT:
    return "limit";
  case BATON__ERROR_CODE__ERROR_UNAVAILABLE:
    return "unavailable";
  default:
    return "unspecified";
  }
}

static void on_error_reply(bt_agent_t *a, const Baton__Error *e) {
  const char *msg = e->message ? e->message : "";
  switch (e->code) {
  case BATON__ERROR_CODE__ERROR_VERSION:
    fatal(a, BT_EVERSION, msg);
    return;
  case BATON__ERROR_CODE__ERROR_AUTH:
    fatal(a, BT_EAUTH, msg);
    return;
  case BATON__ERROR_CODE__ERROR_SESSION:
    /* The broker restarted or our session expired: a new session reports what we
     * hold in Auth.held; results stay until acknowledged. */
    bt_log_info("broker does not know the session; starting a new one",
                "request=%s session=%016" PRIx64, bt_agent__req_names[a->inflight],
                a->session);
    reset_session(a);
    if (a->errors_in_row++ == 0)
      bt_agent__send_hello(a);
    else
      bt_agent__enter_backoff(a);
    return;
  default:
    bt_log_warn("broker refused the request; retrying", "request=%s code=%s message=%s",
                bt_agent__req_names[a->inflight], error_code_name(e->code), BT_Q(msg));
    a->errors_in_row++;
    if (!a->session_up)
      reset_session(a); /* a half-done handshake starts over with Hello */
    bt_agent__enter_backoff(a);
    return;
  }
}

/* Opens a Sealed reply: it must authenticate under the session's receive key,
 * carry a counter above the last reply taken, and answer the request in flight
 * (reply_to is part of the nonce, so it cannot be altered). Returns the inner
 * reply (owned: free it with &budget->a; budget must outlive it) or NULL when
 * the reply is to be dropped (logged). */
static Baton__AgentReply *open_reply(bt_agent_t *a, const Baton__Sealed *m,
                                     bt_pb_budget_t *budget) {
  uint8_t *body = NULL;
  size_t len = 0;
  const char *why = NULL;
  uint64_t reply_to = m->has_reply_to ? m->reply_to : 0;
  if (!bt_seal_ready(&a->seal)) {
    bt_log_warn("dropped a sealed reply: no session keys yet", "request=%s",
                bt_agent__req_names[a->inflight]);
    return NULL;
  }
  int rc = bt_seal_open_msg(&a->seal, m, &body, &len);
  if (rc == BT_EAUTH) {
    bt_log_warn("dropped a reply that does not authenticate", "counter=%" PRIu64
                " bytes=%zu request=%s", m->counter, m->box.len,
                bt_agent__req_names[a->inflight]);
    return NULL;
  }
  if (rc != 0) { /* BT_ESTALE or an exact copy of the last reply taken */
    free(body);
    bt_log_warn("dropped a replayed reply", "counter=%" PRIu64 " last=%" PRIu64,
                m->counter, a->seal.rx_ctr);
    return NULL;
  }
  if (reply_to != a->seal.tx_ctr) {
    /* Authentic, but the answer to another request than the one in flight. */
    free(body);
    bt_log_warn("dropped a reply to an earlier request", "reply_to=%" PRIu64
                " current=%" PRIu64, reply_to, a->seal.tx_ctr);
    return NULL;
  }
  Baton__AgentReply *r = NULL;
  if (bt_agent__wire_unpack(body, len, budget, &r, &why) == 0 &&
      r->body_case == BATON__AGENT_REPLY__BODY_SEALED) {
    baton__agent_reply__free_unpacked(r, &budget->a);
    r = NULL;
    why = "sealed reply inside a sealed reply";
  }
  free(body);
  if (r == NULL)
    bt_log_warn("invalid sealed reply from broker", "reason=%s request=%s", BT_Q(why),
                bt_agent__req_names[a->inflight]);
  return r;
}

/* Whether a reply in clear may be taken now. Before Auth everything is clear.
 * From Auth on the broker seals every answer to an authenticated request; what
 * it cannot seal is an answer to a request it could not authenticate: an
 * unknown session (it restarted or ended ours) and the refusal of the Auth
 * itself. Anything else in clear is someone else's and is dropped. */
static int clear_ok(const bt_agent_t *a, const Baton__AgentReply *r) {
  if (!bt_seal_ready(&a->seal))
    return 1;
  if (r->body_case != BATON__AGENT_REPLY__BODY_ERROR)
    return 0;
  if (r->error->code == BATON__ERROR_CODE__ERROR_SESSION)
    return 1;
  return !a->session_up && a->state == BT_AGENT__S_AUTH;
}

int bt_agent__on_link_msg(void *ctx, const uint8_t *buf, size_t len) {
  bt_agent_t *a = ctx;
  Baton__AgentReply *r = NULL;
  const char *why = NULL;
  bt_pb_budget_t outer, inner_budget;
  bt_pb_budget_t *budget = &outer; /* the one r was decoded under */
  if (bt_agent__wire_unpack(buf, len, &outer, &r, &why) != 0) {
    bt_log_warn("invalid reply from broker", "reason=%s bytes=%zu request=%s",
                BT_Q(why), len, bt_agent__req_names[a->inflight]);
    if (bt_seal_ready(&a->seal) && a->session_up)
      return 0; /* not from our broker (it seals): keep waiting for the answer */
    if (a->state == BT_AGENT__S_BYE) {
      bt_agent__close_all(a);
      return 1;
    }
    /* Something that is not a Baton broker of our version answers: start over on
     * a fresh socket, slowly. */
    a->errors_in_row++;
    reset_session(a);
    bt_agent__close_link(a);
    bt_agent__enter_backoff(a);
    bt_agent__arm(a);
    return 1;
  }
  if (r->body_case == BATON__AGENT_REPLY__BODY_SEALED) {
    Baton__AgentReply *inner = open_reply(a, r->sealed, &inner_budget);
    baton__agent_reply__free_unpacked(r, &outer.a);
    if (inner == NULL)
      return 0;
    r = inner;
    budget = &inner_budget;
  } else if (!clear_ok(a, r)) {
    bt_log_warn("dropped an unsealed reply in a sealed session", "body=%d request=%s",
                (int)r->body_case, bt_agent__req_names[a->inflight]);
    baton__agent_reply__free_unpacked(r, &outer.a);
    return 0;
  }
  on_event(a, EV_REPLY, r);
  baton__agent_reply__free_unpacked(r, &budget->a);
  return 1;
}

/* ---- the state machine -------------------------------------------------- */

void bt_agent__arm(bt_agent_t *a) {
  uint64_t now = bt_agent__now(a), t = UINT64_MAX;
  switch (a->state) {
  case BT_AGENT__S_HELLO:
  case BT_AGENT__S_AUTH:
  case BT_AGENT__S_BUSY:
  case BT_AGENT__S_BYE:
    t = a->reply_deadline;
    break;
  case BT_AGENT__S_POLL:
    t = a->reply_deadline;
    if (bt_agent__progress_pending(a, 0) != NULL)
      t = bt_agent__min(t, a->last_progress + BT_AGENT__PROGRESS_MIN_MS);
    break;
  case BT_AGENT__S_READY:
    t = a->ready_wake;
    break;
  case BT_AGENT__S_BACKOFF:
    t = a->backoff_until;
    break;
  case BT_AGENT__S_FAILED:
    if (a->stop_requested)
      t = now;
    break;
  default:
    return;
  }
  if (a->stop_requested)
    t = bt_agent__min(t, a->stop_deadline);
  if (t == UINT64_MAX)
    uv_timer_stop(&a->timer);
  else
    uv_timer_start(&a->timer, on_timer, t > now ? t - now : 0, 0);
}

/* Whether stopping still has something to tell a broker. */
static int has_results(const bt_agent_t *a) {
  return bt_agent__atts_count(&a->atts, BT_AGENT__BIT(BT_AGENT__ATT_DONE) |
                                            BT_AGENT__BIT(BT_AGENT__ATT_SENT)) > 0;
}

static void on_event(bt_agent_t *a, ev_t ev, const Baton__AgentReply *r) {
  uint64_t now = bt_agent__now(a);
  if (ev == EV_TIMER && a->stop_requested && a->state != BT_AGENT__S_CLOSING &&
      a->state != BT_AGENT__S_CLOSED) {
    /* Stopping without a session and nothing to report, or out of time. */
    if (a->state == BT_AGENT__S_FAILED || now >= a->stop_deadline ||
        (!a->session_up && !has_results(a))) {
      if (now >= a->stop_deadline && a->state != BT_AGENT__S_FAILED)
        bt_log_warn(
            "stop timeout; closing without a goodbye", "unsent_results=%zu",
            bt_agent__atts_count(&a->atts, BT_AGENT__BIT(BT_AGENT__ATT_DONE) |
                                               BT_AGENT__BIT(BT_AGENT__ATT_SENT)));
      bt_agent__close_all(a); /* on_closed may free a: return at once */
      return;
    }
  }
  switch (a->state) {
  case BT_AGENT__S_NEW: /* configured, not started: no handle exists */
    break;
  case BT_AGENT__S_HELLO: /* Hello in flight: waiting for Challenge */
    if (ev == EV_REPLY) {
      if (r->body_case == BATON__AGENT_REPLY__BODY_CHALLENGE)
        bt_agent__send_auth(a, r->challenge);
      else if (r->body_case == BATON__AGENT_REPLY__BODY_ERROR)
        on_error_reply(a, r->error);
      else
        bt_agent__reconnect(a, "unexpected answer to hello");
    } else if (now >= a->reply_deadline) {
      bt_agent__reconnect(a, "no answer to hello");
    }
    break;
  case BT_AGENT__S_AUTH: /* Auth in flight: waiting for Welcome */
    if (ev == EV_REPLY) {
      if (r->body_case == BATON__AGENT_REPLY__BODY_WELCOME) {
        on_welcome(a, r->welcome);
        if (a->state == BT_AGENT__S_READY)
          bt_agent__send_next(a);
      } else if (r->body_case == BATON__AGENT_REPLY__BODY_ERROR) {
        on_error_reply(a, r->error);
      } else {
        bt_agent__reconnect(a, "unexpected answer to auth");
      }
    } else if (now >= a->reply_deadline) {
      bt_agent__reconnect(a, "no answer to auth");
    }
    break;
  case BT_AGENT__S_READY: /* session up, nothing in flight: waiting for something to say
                           */
    if (ev == EV_TIMER)
      bt_agent__send_next(a);
    break;
  case BT_AGENT__S_POLL: /* Poll parked at the broker: superseded as soon as there is
                            news */
  case BT_AGENT__S_BUSY: /* Heartbeat, Progress or Results in flight: never superseded
                          */
    if (ev == EV_REPLY) {
      if (r->body_case == BATON__AGENT_REPLY__BODY_WORK) {
        bt_agent__req_t done = a->inflight;
        a->inflight = BT_AGENT__REQ_NONE;
        a->errors_in_row = 0;
        apply_work(a, r->work);
        for (size_t i = 0; i < a->atts.n; i++) {
          bt_agent__att_t *att = a->atts.v[i];
          if (done == BT_AGENT__REQ_RESULTS && att->state == BT_AGENT__ATT_SENT)
            att->state = BT_AGENT__ATT_DONE; /* neither acked nor stale: resend */
          if (done == BT_AGENT__REQ_PROGRESS)
            att->sent_percent = att->sent_checkpoint = 0;
        }
        a->state = BT_AGENT__S_READY;
        bt_agent__send_next(a);
      } else if (r->body_case == BATON__AGENT_REPLY__BODY_ERROR) {
        on_error_reply(a, r->error);
      } else {
        bt_agent__reconnect(a, "unexpected answer");
      }
    } else if (now >= a->reply_deadline) {
      bt_agent__reconnect(a, "reply timeout");
    } else if (a->state == BT_AGENT__S_POLL && bt_agent__has_news(a, now)) {
      bt_agent__send_next(a); /* REQ cancels the parked poll; its answer is dropped */
    }
    break;
  case BT_AGENT__S_BACKOFF: /* an error answer: nothing in flight until backoff_until */
    if (ev == EV_TIMER && now >= a->backoff_until) {
      if (a->session_up) {
        a->state = BT_AGENT__S_READY;
        bt_agent__send_next(a);
      } else {
        bt_agent__send_hello(a);
      }
    }
    break;
  case BT_AGENT__S_BYE: /* stopping: Bye in flight; close on its reply or at the timeout
                         */
    if (ev == EV_REPLY || now >= a->reply_deadline) {
      bt_agent__close_all(a); /* on_closed may free a: return at once */
      return;
    }
    break;
  case BT_AGENT__S_FAILED:  /* fatal answer reported: waiting for bt_agent_stop */
  case BT_AGENT__S_CLOSING: /* handles closing: on_closed fires after the last close
                               callback */
  case BT_AGENT__S_CLOSED:  /* nothing open: only bt_agent_free remains */
    break;
  }
  bt_agent__arm(a);
}

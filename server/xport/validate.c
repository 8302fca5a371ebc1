/*
 * Validation of agent messages after unpack. protobuf-c accepts empty and some
 * random buffers as valid messages and truncates strings at NUL, so nothing is
 * used before its version, body, required fields, ranges and lengths pass here.
 * Pure: no I/O, testable and fuzzable on its own.
 */
#include "xport_int.h"

#include "bt_err.h"
#include "bt_valid.h"

#include <stdio.h>
#include <string.h>

#define FAIL(...)                                                              \
  do {                                                                         \
    snprintf(why, why_len, __VA_ARGS__);                                       \
    return BT_EPROTO;                                                          \
  } while (0)

static int check_held(Baton__Held **v, size_t n, const char *what, char *why,
                      size_t why_len) {
  if (n > BT_XP_MAX_HELD)
    FAIL("too many %s entries (%zu > %d)", what, n, BT_XP_MAX_HELD);
  for (size_t i = 0; i < n; i++)
    if (!v[i]->has_package_id || v[i]->package_id == 0 || !v[i]->has_attempt ||
        v[i]->attempt == 0)
      FAIL("%s entry %zu lacks package_id or attempt", what, i);
  return 0;
}

static int check_pa(bool has_id, uint64_t id, bool has_attempt, uint32_t attempt,
                    char *why, size_t why_len) {
  if (!has_id || id == 0)
    FAIL("package_id missing");
  if (!has_attempt || attempt == 0)
    FAIL("attempt missing");
  return 0;
}

int bt_xp__validate(const Baton__AgentRequest *req, const bt_xp_opts_t *o, char *why,
                    size_t why_len) {
  if (!req->has_version)
    FAIL("message has no protocol version");
  if (req->version != BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
    snprintf(why, why_len, "protocol version %u not supported; this broker speaks %d",
             req->version, BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
    return BT_EVERSION;
  }
  if (req->body_case == BATON__AGENT_REQUEST__BODY__NOT_SET)
    FAIL("message has no body");
  if (req->body_case != BATON__AGENT_REQUEST__BODY_HELLO &&
      (!req->has_session || req->session == 0))
    FAIL("session missing");
  switch (req->body_case) {
  case BATON__AGENT_REQUEST__BODY_HELLO: {
    const Baton__Hello *h = req->hello;
    if (!bt_valid_name(h->vendor))
      FAIL("vendor name missing or invalid");
    if (!bt_valid_name(h->agent_name))
      FAIL("agent name missing or invalid");
    if (h->n_capabilities == 0 || h->n_capabilities > BT_XP_MAX_CAPS)
      FAIL("an agent offers 1 to %d capabilities, not %zu", BT_XP_MAX_CAPS,
           h->n_capabilities);
    for (size_t i = 0; i < h->n_capabilities; i++)
      if (!bt_valid_name(h->capabilities[i]))
        FAIL("capability %zu invalid", i);
    if (!h->has_slots || h->slots == 0 || h->slots > BT_XP_MAX_SLOTS)
      FAIL("slots must be 1 to %d", BT_XP_MAX_SLOTS);
    if (h->software != NULL && !bt_valid_text(h->software, BT_NAME_MAX))
      FAIL("software string invalid");
    return 0;
  }
  case BATON__AGENT_REQUEST__BODY_AUTH:
    if (!req->auth->has_signature || req->auth->signature.len != 64)
      FAIL("signature missing or of the wrong size");
    /* An absent key is the broker's to refuse (the signature cannot cover it);
     * a present one has one size. */
    if (req->auth->has_kx_public_key && req->auth->kx_public_key.len != BT_SEAL_KX_BYTES)
      FAIL("key exchange key of the wrong size");
    return check_held(req->auth->held, req->auth->n_held, "held", why, why_len);
  case BATON__AGENT_REQUEST__BODY_SEALED: {
    const Baton__Sealed *m = req->sealed;
    if (!m->has_counter || m->counter == 0)
      FAIL("sealed message without a counter");
    if (!m->has_box || m->box.len < 16)
      FAIL("sealed message without a box");
    if (m->has_reply_to)
      FAIL("a request answers nothing (reply_to set)");
    return 0;
  }
  case BATON__AGENT_REQUEST__BODY_POLL:
    if (!req->poll->has_free_slots || req->poll->free_slots > BT_XP_MAX_SLOTS)
      FAIL("poll without a valid free_slots");
    return 0;
  case BATON__AGENT_REQUEST__BODY_HEARTBEAT:
    if (req->heartbeat->has_free_slots && req->heartbeat->free_slots > BT_XP_MAX_SLOTS)
      FAIL("free_slots out of range");
    return check_held(req->heartbeat->running, req->heartbeat->n_running, "running",
                      why, why_len);
  case BATON__AGENT_REQUEST__BODY_PROGRESS: {
    const Baton__Progress *p = req->progress;
    if (check_pa(p->has_package_id, p->package_id, p->has_attempt, p->attempt, why,
                 why_len))
      return BT_EPROTO;
    if (p->has_percent && p->percent > 100)
      FAIL("percent %u out of range 0-100", p->percent);
    if (p->has_checkpoint && p->checkpoint.len > o->max_payload_bytes)
      FAIL("checkpoint of %zu bytes exceeds the limit of %u", p->checkpoint.len,
           o->max_payload_bytes);
    return 0;
  }
  case BATON__AGENT_REQUEST__BODY_RESULTS: {
    const Baton__Results *r = req->results;
    if (r->n_results == 0 || r->n_results > BT_XP_MAX_RESULTS)
      FAIL("results must hold 1 to %d entries", BT_XP_MAX_RESULTS);
    if (r->has_free_slots && r->free_slots > BT_XP_MAX_SLOTS)
      FAIL("free_slots out of range");
    for (size_t i = 0; i < r->n_results; i++) {
      const Baton__Result *x = r->results[i];
      if (check_pa(x->has_package_id, x->package_id, x->has_attempt, x->attempt, why,
                   why_len))
        return BT_EPROTO;
      if (!x->has_outcome || x->outcome < BATON__OUTCOME__OUTCOME_COMPLETED ||
          x->outcome > BATON__OUTCOME__OUTCOME_HANDED_BACK)
        FAIL("result %zu has no valid outcome", i);
      /* An output over max_payload_bytes is not refused here: refusing the
       * message would make the agent send it again for ever. The session
       * turns that result into a failed attempt instead (session.c). */
    }
    return 0;
  }
  case BATON__AGENT_REQUEST__BODY_BYE:
    return 0;
  default:
    FAIL("unknown message body %d", (int)req->body_case);
  }
}

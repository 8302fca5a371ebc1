/*
 * Agent-side protobuf handling: packing requests with the size check that must
 * precede every nn_send (an oversized message makes the broker drop the
 * connection and REQ resend it for ever), and validating replies before the state
 * machine sees them (protobuf-c accepts empty and some random buffers as valid).
 * Pure: no I/O, no state.
 */
#include "agent_int.h"

#include "bt_auth.h"
#include "bt_err.h"
#include "bt_pbcheck.h"

#include <string.h>

#define CAPABILITY_MAX 256u

int bt_agent__wire_pack(const Baton__AgentRequest *req, size_t max_bytes, uint8_t **out,
                        size_t *len) {
  size_t n = baton__agent_request__get_packed_size(req);
  if (n > max_bytes)
    return BT_ELIMIT;
  uint8_t *buf = bt_agent__xmalloc(n);
  size_t w = baton__agent_request__pack(req, buf);
  BT_AGENT_ASSERT(w == n);
  *out = buf;
  *len = n;
  return 0;
}

static size_t varint_len(size_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t bt_agent__wire_result_size(const Baton__Result *r) {
  size_t n = baton__result__get_packed_size(r);
  return 1 + varint_len(n) + n;
}

static int held_ok(Baton__Held *const *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (v[i] == NULL || !v[i]->has_package_id || !v[i]->has_attempt)
      return 0;
  }
  return 1;
}

static int work_ok(const Baton__Work *w, const char **why) {
  if (!held_ok(w->acked, w->n_acked) || !held_ok(w->stale, w->n_stale) ||
      !held_ok(w->cancel, w->n_cancel)) {
    *why = "work names an attempt without package or attempt";
    return 0;
  }
  for (size_t i = 0; i < w->n_assignments; i++) {
    const Baton__Assignment *as = w->assignments[i];
    if (as == NULL || !as->has_seq || !as->has_package_id || !as->has_attempt) {
      *why = "assignment without seq, package or attempt";
      return 0;
    }
    size_t cl = as->capability ? strlen(as->capability) : 0;
    if (cl == 0 || cl > CAPABILITY_MAX) {
      *why = "assignment with a missing or overlong capability";
      return 0;
    }
    if (as->has_deadline_at && as->deadline_at < 0) {
      *why = "assignment with a negative deadline";
      return 0;
    }
  }
  return 1;
}

int bt_agent__wire_unpack(const uint8_t *buf, size_t len, bt_pb_budget_t *budget,
                          Baton__AgentReply **out, const char **why) {
  /* protobuf-c alone accepts malformed tags and cuts strings at a NUL (found
   * by tests/fuzz/fuzz_agent_reply): the broker's decoder checks the wire form
   * first, and so does the agent. */
  char check[128];
  if (bt_pb_check(&baton__agent_reply__descriptor, buf, len, check, sizeof check) != 0) {
    *why = "malformed reply";
    return BT_EPROTO;
  }
  /* Decoded under a budget, as the broker decodes agents' requests: hostile
   * bytes cannot make the agent allocate without bound (stack-findings §5). */
  bt_pb_budget_init(budget, bt_pb_budget_for(len));
  Baton__AgentReply *r = baton__agent_reply__unpack(&budget->a, len, buf);
  if (r == NULL) {
    *why = "undecodable reply (or over its decoding budget)";
    return BT_EPROTO;
  }
  *why = NULL;
  /* An Error{VERSION} from a broker of another version may carry its own version
   * number: accept it so the agent can report the real problem. */
  int version_error = r->body_case == BATON__AGENT_REPLY__BODY_ERROR &&
                      r->error->has_code &&
                      r->error->code == BATON__ERROR_CODE__ERROR_VERSION;
  if (!version_error &&
      (!r->has_version ||
       r->version != BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT))
    *why = "reply with a missing or unsupported version";
  else {
    switch (r->body_case) {
    case BATON__AGENT_REPLY__BODY_CHALLENGE:
      if (!r->challenge->has_session || !r->challenge->has_nonce ||
          r->challenge->nonce.len != BT_AUTH_NONCE_BYTES)
        *why = "challenge without session or with a bad nonce";
      else if (!r->challenge->has_kx_public_key ||
               r->challenge->kx_public_key.len != BT_SEAL_KX_BYTES ||
               !r->challenge->has_seal ||
               (r->challenge->seal != BATON__SEAL_MODE__SEAL_MODE_SECRETBOX &&
                r->challenge->seal != BATON__SEAL_MODE__SEAL_MODE_MAC))
        *why = "challenge without key exchange (a broker that does not seal messages)";
      break;
    case BATON__AGENT_REPLY__BODY_SEALED:
      if (!r->sealed->has_counter || r->sealed->counter == 0 || !r->sealed->has_box)
        *why = "sealed reply without counter or box";
      break;
    case BATON__AGENT_REPLY__BODY_WELCOME:
      if (r->welcome->work != NULL)
        work_ok(r->welcome->work, why);
      break;
    case BATON__AGENT_REPLY__BODY_WORK:
      work_ok(r->work, why);
      break;
    case BATON__AGENT_REPLY__BODY_ERROR:
      if (!r->error->has_code)
        *why = "error without a code";
      break;
    default:
      *why = "reply without a body";
      break;
    }
  }
  if (*why != NULL) {
    baton__agent_reply__free_unpacked(r, &budget->a);
    return BT_EPROTO;
  }
  *out = r;
  return 0;
}

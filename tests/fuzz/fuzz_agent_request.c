/*
 * Fuzz target: an agent message as the broker decodes it (server/xport
 * endpoint.c bt_xp__decode: bt_pb_check, unpack under the size budget, then
 * bt_xp__validate). Input: the raw bytes of one nanomsg message. (What a
 * Sealed holds is decoded the same way once opened: fuzz_agent_sealed.)
 *
 * Invariants beyond "no crash":
 *   - an accepted message has every required field of its body (an oracle
 *     written here from proto/baton.proto, independent of validate.c);
 *   - an accepted message packed again decodes and validates again (the
 *     verdict does not depend on how the bytes were laid out);
 *   - the budgeted allocator gets every byte back (used == 0 after free).
 */
#include "fuzz_util.h"

#include "bt_err.h"
#include "bt_pballoc.h"
#include "bt_pbcheck.h"
#include "bt_valid.h"
#include "xport_int.h"

#define MAX_PAYLOAD 1024u

static bool held_ok(Baton__Held *const *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == NULL || !v[i]->has_package_id || v[i]->package_id == 0 ||
        !v[i]->has_attempt || v[i]->attempt == 0)
      return false;
  return n <= BT_XP_MAX_HELD;
}

/* What the protocol requires of a message the broker acts on. */
static void check_required(const Baton__AgentRequest *r) {
  FUZZ_CHECK(r->has_version && r->version == BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT,
             "accepted without the current version");
  FUZZ_CHECK(r->body_case != BATON__AGENT_REQUEST__BODY__NOT_SET, "accepted without a body");
  if (r->body_case != BATON__AGENT_REQUEST__BODY_HELLO)
    FUZZ_CHECK(r->has_session && r->session != 0, "accepted without a session");
  switch (r->body_case) {
  case BATON__AGENT_REQUEST__BODY_HELLO:
    FUZZ_CHECK(r->hello != NULL && r->hello->vendor != NULL && r->hello->agent_name != NULL,
               "hello without vendor or agent name");
    FUZZ_CHECK(bt_valid_name(r->hello->vendor) && bt_valid_name(r->hello->agent_name),
               "hello with an invalid name");
    FUZZ_CHECK(r->hello->n_capabilities >= 1 && r->hello->n_capabilities <= BT_XP_MAX_CAPS,
               "hello with %zu capabilities", r->hello->n_capabilities);
    for (size_t i = 0; i < r->hello->n_capabilities; i++)
      FUZZ_CHECK(bt_valid_name(r->hello->capabilities[i]), "capability %zu invalid", i);
    FUZZ_CHECK(r->hello->has_slots && r->hello->slots >= 1 &&
                   r->hello->slots <= BT_XP_MAX_SLOTS,
               "hello with bad slots");
    break;
  case BATON__AGENT_REQUEST__BODY_AUTH:
    FUZZ_CHECK(r->auth != NULL && r->auth->has_signature && r->auth->signature.len == 64,
               "auth without a 64-byte signature");
    FUZZ_CHECK(held_ok(r->auth->held, r->auth->n_held), "auth with a bad held entry");
    break;
  case BATON__AGENT_REQUEST__BODY_POLL:
    FUZZ_CHECK(r->poll != NULL && r->poll->has_free_slots &&
                   r->poll->free_slots <= BT_XP_MAX_SLOTS,
               "poll without valid free_slots");
    break;
  case BATON__AGENT_REQUEST__BODY_HEARTBEAT:
    FUZZ_CHECK(r->heartbeat != NULL &&
                   held_ok(r->heartbeat->running, r->heartbeat->n_running),
               "heartbeat with a bad running entry");
    break;
  case BATON__AGENT_REQUEST__BODY_PROGRESS: {
    const Baton__Progress *p = r->progress;
    FUZZ_CHECK(p != NULL && p->has_package_id && p->package_id != 0 && p->has_attempt &&
                   p->attempt != 0,
               "progress without package or attempt");
    FUZZ_CHECK(!p->has_percent || p->percent <= 100, "percent %u", p->percent);
    FUZZ_CHECK(!p->has_checkpoint || p->checkpoint.len <= MAX_PAYLOAD,
               "checkpoint over the limit");
    break;
  }
  case BATON__AGENT_REQUEST__BODY_RESULTS:
    FUZZ_CHECK(r->results != NULL && r->results->n_results >= 1 &&
                   r->results->n_results <= BT_XP_MAX_RESULTS,
               "results with %zu entries", r->results ? r->results->n_results : 0);
    for (size_t i = 0; i < r->results->n_results; i++) {
      const Baton__Result *x = r->results->results[i];
      FUZZ_CHECK(x->has_package_id && x->package_id != 0 && x->has_attempt &&
                     x->attempt != 0,
                 "result %zu without package or attempt", i);
      FUZZ_CHECK(x->has_outcome && x->outcome >= BATON__OUTCOME__OUTCOME_COMPLETED &&
                     x->outcome <= BATON__OUTCOME__OUTCOME_HANDED_BACK,
                 "result %zu with outcome %d", i, (int)x->outcome);
      FUZZ_CHECK(!x->has_output || x->output.len <= MAX_PAYLOAD, "output over the limit");
    }
    break;
  case BATON__AGENT_REQUEST__BODY_BYE:
    FUZZ_CHECK(r->bye != NULL, "bye without its message");
    break;
  case BATON__AGENT_REQUEST__BODY_SEALED:
    FUZZ_CHECK(r->sealed != NULL && r->sealed->has_counter && r->sealed->counter != 0 &&
                   r->sealed->has_box && !r->sealed->has_reply_to,
               "sealed request without counter or box, or with reply_to");
    break;
  default:
    FUZZ_CHECK(0, "accepted unknown body %d", (int)r->body_case);
  }
}

/* endpoint.c's decode path. Returns the request when it is valid, else NULL
 * with the verdict in *rc. */
static Baton__AgentRequest *decode(const uint8_t *buf, size_t len, bt_pb_budget_t *budget,
                                   const bt_xp_t *xp, int *rc) {
  char why[160];
  Baton__AgentRequest *req = NULL;
  why[0] = '\0';
  *rc = bt_xp__decode(xp, buf, len, budget, &req, why, sizeof why);
  FUZZ_CHECK(*rc == 0 || *rc == BT_EINVAL || *rc == BT_EPROTO || *rc == BT_EVERSION,
             "rc %d", *rc);
  FUZZ_CHECK((*rc == 0) == (req != NULL), "rc %d with request %p", *rc, (void *)req);
  FUZZ_CHECK(*rc == 0 || why[0] != '\0', "refused without a reason");
  return req;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bt_xp_t xp; /* decode reads only the options */
  bt_xp_opts_default(&xp.opts);
  xp.opts.max_payload_bytes = MAX_PAYLOAD;

  bt_pb_budget_t budget;
  bt_pb_budget_init(&budget, bt_pb_budget_for(size));
  int rc;
  Baton__AgentRequest *req = decode(data, size, &budget, &xp, &rc);
  if (req == NULL) {
    FUZZ_CHECK(budget.used == 0, "budget leaked %zu bytes", budget.used);
    return 0;
  }
  /* A valid request: its required fields, then the same verdict once repacked. */
  check_required(req);
  size_t n = baton__agent_request__get_packed_size(req);
  uint8_t *again = malloc(n ? n : 1);
  FUZZ_CHECK(again != NULL, "out of memory");
  FUZZ_CHECK(baton__agent_request__pack(req, again) == n, "pack size differs");
  bt_pb_budget_t b2;
  bt_pb_budget_init(&b2, bt_pb_budget_for(n > size ? n : size));
  int rc2;
  Baton__AgentRequest *req2 = decode(again, n, &b2, &xp, &rc2);
  FUZZ_CHECK(req2 != NULL && rc2 == 0, "a repacked valid message is refused (rc=%d)", rc2);
  FUZZ_CHECK(req2->body_case == req->body_case, "body changed on repack");
  baton__agent_request__free_unpacked(req2, &b2.a);
  FUZZ_CHECK(b2.used == 0, "budget leaked %zu bytes", b2.used);
  free(again);
  baton__agent_request__free_unpacked(req, &budget.a);
  FUZZ_CHECK(budget.used == 0, "budget leaked %zu bytes", budget.used);
  return 0;
}

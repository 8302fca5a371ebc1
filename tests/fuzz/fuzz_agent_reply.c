/*
 * Fuzz target: a broker reply as the agent library decodes it
 * (worker/lib/wire.c bt_agent__wire_unpack: unpack, then the checks before the
 * agent's state machine sees it). Input: the raw bytes of one nanomsg reply.
 *
 * Invariants beyond "no crash":
 *   - an accepted reply has the fields the agent's state machine relies on
 *     (an oracle written here from proto/baton.proto): the current version
 *     (or an Error{VERSION}), a body, a 32-byte nonce in a Challenge, and a
 *     seq, package, attempt and capability in every Assignment;
 *   - an accepted reply is well-formed protobuf (bt_pb_check: no malformed
 *     tag, no NUL inside a string) and is accepted again once packed again.
 *     This target found wire.c taking an overlong tag of field 0 ("80 00")
 *     that protobuf-c refuses once repacked ("00"); wire.c now runs
 *     bt_pb_check first, as the broker does.
 */
#include "fuzz_util.h"

#include "agent_int.h"
#include "bt_auth.h"
#include "bt_err.h"
#include "bt_pbcheck.h"

static void check_held(Baton__Held *const *v, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK(v[i] != NULL && v[i]->has_package_id && v[i]->has_attempt,
               "%s entry %zu lacks package or attempt", what, i);
}

static void check_work(const Baton__Work *w) {
  check_held(w->acked, w->n_acked, "acked");
  check_held(w->stale, w->n_stale, "stale");
  check_held(w->cancel, w->n_cancel, "cancel");
  for (size_t i = 0; i < w->n_assignments; i++) {
    const Baton__Assignment *a = w->assignments[i];
    FUZZ_CHECK(a != NULL && a->has_seq && a->has_package_id && a->has_attempt,
               "assignment %zu lacks seq, package or attempt", i);
    FUZZ_CHECK(a->capability != NULL && a->capability[0] != '\0' &&
                   strlen(a->capability) <= 256,
               "assignment %zu without a usable capability", i);
    FUZZ_CHECK(!a->has_deadline_at || a->deadline_at >= 0, "negative deadline");
  }
}

static void check_required(const Baton__AgentReply *r) {
  bool version_error = r->body_case == BATON__AGENT_REPLY__BODY_ERROR &&
                       r->error->has_code &&
                       r->error->code == BATON__ERROR_CODE__ERROR_VERSION;
  FUZZ_CHECK(version_error ||
                 (r->has_version &&
                  r->version == BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT),
             "accepted with version %u", r->version);
  switch (r->body_case) {
  case BATON__AGENT_REPLY__BODY_CHALLENGE:
    FUZZ_CHECK(r->challenge->has_session && r->challenge->has_nonce &&
                   r->challenge->nonce.len == BT_AUTH_NONCE_BYTES,
               "challenge without session or 32-byte nonce");
    FUZZ_CHECK(r->challenge->has_kx_public_key && r->challenge->kx_public_key.len == 32 &&
                   r->challenge->has_seal &&
                   (r->challenge->seal == BATON__SEAL_MODE__SEAL_MODE_SECRETBOX ||
                    r->challenge->seal == BATON__SEAL_MODE__SEAL_MODE_MAC),
               "challenge without a key exchange key or seal mode");
    break;
  case BATON__AGENT_REPLY__BODY_WELCOME:
    if (r->welcome->work != NULL)
      check_work(r->welcome->work);
    break;
  case BATON__AGENT_REPLY__BODY_WORK:
    check_work(r->work);
    break;
  case BATON__AGENT_REPLY__BODY_ERROR:
    FUZZ_CHECK(r->error->has_code, "error without a code");
    break;
  case BATON__AGENT_REPLY__BODY_SEALED:
    FUZZ_CHECK(r->sealed->has_counter && r->sealed->counter != 0 && r->sealed->has_box,
               "sealed reply without counter or box");
    break;
  default:
    FUZZ_CHECK(0, "accepted a reply with body %d", (int)r->body_case);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Baton__AgentReply *r = NULL;
  const char *why = NULL;
  bt_pb_budget_t budget, budget2;
  int rc = bt_agent__wire_unpack(data, size, &budget, &r, &why);
  if (rc != 0) {
    FUZZ_CHECK(rc == BT_EPROTO && why != NULL && why[0] != '\0',
               "refused without a reason (rc=%d)", rc);
    return 0;
  }
  FUZZ_CHECK(r != NULL, "accepted without a message");
  check_required(r);

  char pb_why[160];
  FUZZ_CHECK(bt_pb_check(&baton__agent_reply__descriptor, data, size, pb_why,
                         sizeof pb_why) == 0,
             "accepted a malformed reply: %s", pb_why);
  size_t n = baton__agent_reply__get_packed_size(r);
  uint8_t *again = malloc(n ? n : 1);
  FUZZ_CHECK(again != NULL, "out of memory");
  FUZZ_CHECK(baton__agent_reply__pack(r, again) == n, "pack size differs");
  Baton__AgentReply *r2 = NULL;
  rc = bt_agent__wire_unpack(again, n, &budget2, &r2, &why);
  FUZZ_CHECK(rc == 0, "a repacked valid reply is refused: %s", why ? why : "?");
  FUZZ_CHECK(r2->body_case == r->body_case, "body changed on repack");
  baton__agent_reply__free_unpacked(r2, &budget2.a);
  FUZZ_CHECK(budget2.used == 0, "the budget is not given back on free");
  free(again);
  baton__agent_reply__free_unpacked(r, &budget.a);
  return 0;
}

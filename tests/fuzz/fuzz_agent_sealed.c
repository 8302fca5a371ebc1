/*
 * Fuzz target: sealed agent messages (proto/bt_seal.c) and what they carry.
 * Every agent request after Welcome, and every answer to one, is an inner
 * message sealed under the session key of its direction. A fuzzer cannot forge
 * a MAC, so this target seals the input itself with fixed session keys and
 * drives the receiving side as the broker (server/xport: bt_xp__decode of the
 * outer request, bt_seal_open_msg, bt_xp__decode of the inner one) or as the
 * agent (worker/lib: bt_agent__wire_unpack, open, unpack again) would.
 *
 * Input: byte 0 chooses the mode (bit 0: SECRETBOX or MAC) and the direction
 * (bit 1: request to the broker or reply to the agent); byte 1 chooses where
 * to tamper; the rest is the packed inner message (any bytes: an
 * authenticated but broken peer).
 *
 * Invariants beyond "no crash":
 *   - the sealed outer message passes the receiver's validation, opens, and
 *     gives back exactly the bytes that were sealed;
 *   - an exact resend opens as BT_SEAL_RESEND, an older message after a newer
 *     one is BT_ESTALE;
 *   - nothing that did not authenticate opens: a flipped bit anywhere in the
 *     box, a truncated box, another counter or reply_to, or the message
 *     reflected back to its sender all give BT_EAUTH.
 */
#include "fuzz_util.h"

#include "agent_int.h"
#include "bt_err.h"
#include "bt_pballoc.h"
#include "bt_seal.h"
#include "xport_int.h"

#include <sodium.h>

#define SESSION 0x1122334455667788ull
#define REPLY_TO 7u

/* Pristine contexts per mode (0 SECRETBOX, 1 MAC): agent and broker ends. */
static bt_seal_t agent0[2], broker0[2];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sodium_init() < 0)
    abort();
  uint8_t seed_a[crypto_kx_SEEDBYTES], seed_b[crypto_kx_SEEDBYTES];
  uint8_t apk[32], ask[32], bpk[32], bsk[32];
  memset(seed_a, 'a', sizeof seed_a);
  memset(seed_b, 'b', sizeof seed_b);
  crypto_kx_seed_keypair(apk, ask, seed_a);
  crypto_kx_seed_keypair(bpk, bsk, seed_b);
  static const Baton__SealMode modes[2] = {BATON__SEAL_MODE__SEAL_MODE_SECRETBOX,
                                           BATON__SEAL_MODE__SEAL_MODE_MAC};
  for (int m = 0; m < 2; m++)
    if (bt_seal_keys(&agent0[m], BT_SEAL_AGENT, modes[m], apk, ask, bpk) != 0 ||
        bt_seal_keys(&broker0[m], BT_SEAL_BROKER, modes[m], bpk, bsk, apk) != 0)
      abort();
  return 0;
}

/* Opens m on a copy of the pristine receiver rx0; returns the code. */
static int open_fresh(const bt_seal_t *rx0, const Baton__Sealed *m) {
  bt_seal_t rx = *rx0;
  uint8_t *body = NULL;
  size_t len = 0;
  int rc = bt_seal_open_msg(&rx, m, &body, &len);
  if (rc == 0 || rc == BT_SEAL_RESEND)
    free(body);
  return rc;
}

/* Everything that must not open. m is an authentic message for rx0 from tx0. */
static void check_forgeries(const bt_seal_t *rx0, const bt_seal_t *tx0,
                            const Baton__Sealed *m, uint8_t where) {
  Baton__Sealed f = *m;
  uint8_t *box = malloc(m->box.len);
  FUZZ_CHECK(box != NULL, "out of memory");
  memcpy(box, m->box.data, m->box.len);
  f.box.data = box;
  size_t at = (size_t)where * 7 % m->box.len;
  box[at] ^= (uint8_t)(1u << (where % 8));
  FUZZ_CHECK(open_fresh(rx0, &f) == BT_EAUTH, "a box with byte %zu flipped opens", at);
  box[at] ^= (uint8_t)(1u << (where % 8));
  f.box.len = (size_t)where % m->box.len;
  FUZZ_CHECK(open_fresh(rx0, &f) == BT_EAUTH, "a box cut to %zu bytes opens", f.box.len);
  f.box.len = m->box.len;
  f.counter = m->counter + 1 + where;
  FUZZ_CHECK(open_fresh(rx0, &f) == BT_EAUTH, "another counter opens");
  f.counter = m->counter;
  f.has_reply_to = 1;
  f.reply_to = (m->has_reply_to ? m->reply_to : 0) + 1 + where;
  FUZZ_CHECK(open_fresh(rx0, &f) == BT_EAUTH, "another reply_to opens");
  f.has_reply_to = m->has_reply_to;
  f.reply_to = m->reply_to;
  FUZZ_CHECK(open_fresh(tx0, &f) == BT_EAUTH, "a message reflected to its sender opens");
  FUZZ_CHECK(open_fresh(rx0, &f) == 0, "the untouched message does not open");
  free(box);
}

/* Seals body from tx into a Sealed (box owned by the caller). */
static void seal(bt_seal_t *tx, uint64_t reply_to, const uint8_t *body, size_t len,
                 Baton__Sealed *m) {
  baton__sealed__init(m);
  m->box.len = bt_seal_box_len(tx, len);
  m->box.data = malloc(m->box.len);
  FUZZ_CHECK(m->box.data != NULL, "out of memory");
  m->has_counter = m->has_box = 1;
  m->counter = bt_seal_seal(tx, reply_to, body, len, m->box.data);
  if (reply_to != 0) {
    m->has_reply_to = 1;
    m->reply_to = reply_to;
  }
}

/* Receiving side: open m into a copy of rx0, check it gives body back, its
 * resend and its replay after a newer message. Returns the opened bytes. */
static uint8_t *open_checked(const bt_seal_t *rx0, bt_seal_t *tx, const Baton__Sealed *m,
                             const uint8_t *body, size_t len) {
  bt_seal_t rx = *rx0;
  uint8_t *got = NULL, *again = NULL;
  size_t n = 0, n2 = 0;
  FUZZ_CHECK(bt_seal_open_msg(&rx, m, &got, &n) == 0, "an authentic message does not open");
  FUZZ_CHECK(n == len && (len == 0 || memcmp(got, body, len) == 0),
             "opened %zu bytes, sealed %zu (or other bytes)", n, len);
  FUZZ_CHECK(bt_seal_open_msg(&rx, m, &again, &n2) == BT_SEAL_RESEND,
             "an exact resend is not recognised");
  FUZZ_CHECK(n2 == len && (len == 0 || memcmp(again, body, len) == 0), "resend bytes");
  free(again);
  Baton__Sealed newer;
  seal(tx, m->has_reply_to ? m->reply_to : 0, body, len, &newer);
  FUZZ_CHECK(bt_seal_open_msg(&rx, &newer, &again, &n2) == 0, "the next message");
  free(again);
  FUZZ_CHECK(open_fresh(&rx, m) == BT_ESTALE, "a replay after a newer message opens");
  free(newer.box.data);
  return got;
}

static void to_broker(int mode, uint8_t where, const uint8_t *body, size_t len) {
  static bt_xp_t xp; /* bt_xp__decode reads only the options */
  bt_xp_opts_default(&xp.opts);
  bt_seal_t tx = agent0[mode];
  Baton__Sealed m;
  seal(&tx, 0, body, len, &m);
  Baton__AgentRequest outer = BATON__AGENT_REQUEST__INIT;
  outer.has_version = outer.has_session = 1;
  outer.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  outer.session = SESSION;
  outer.body_case = BATON__AGENT_REQUEST__BODY_SEALED;
  outer.sealed = &m;
  size_t n = baton__agent_request__get_packed_size(&outer);
  uint8_t *wire = malloc(n);
  FUZZ_CHECK(wire != NULL, "out of memory");
  baton__agent_request__pack(&outer, wire);

  char why[160] = "";
  bt_pb_budget_t budget;
  bt_pb_budget_init(&budget, bt_pb_budget_for(n));
  Baton__AgentRequest *req = NULL;
  int rc = bt_xp__decode(&xp, wire, n, &budget, &req, why, sizeof why);
  FUZZ_CHECK(rc == 0 && req->body_case == BATON__AGENT_REQUEST__BODY_SEALED,
             "the broker refuses a well-formed sealed request (%d): %s", rc, why);
  check_forgeries(&broker0[mode], &agent0[mode], req->sealed, where);
  uint8_t *inner = open_checked(&broker0[mode], &tx, req->sealed, body, len);
  baton__agent_request__free_unpacked(req, &budget.a);
  FUZZ_CHECK(budget.used == 0, "budget leaked");

  /* The inner request goes through the same decoder as a clear one. */
  bt_pb_budget_init(&budget, bt_pb_budget_for(len));
  why[0] = '\0';
  rc = bt_xp__decode(&xp, inner, len, &budget, &req, why, sizeof why);
  FUZZ_CHECK(rc == 0 || why[0] != '\0', "inner refused without a reason");
  if (rc == 0) {
    FUZZ_CHECK(req->has_version && req->body_case != BATON__AGENT_REQUEST__BODY__NOT_SET,
               "inner accepted without version or body");
    baton__agent_request__free_unpacked(req, &budget.a);
  }
  FUZZ_CHECK(budget.used == 0, "budget leaked");
  free(inner);
  free(wire);
  free(m.box.data);
}

static void to_agent(int mode, uint8_t where, const uint8_t *body, size_t len) {
  bt_seal_t tx = broker0[mode];
  Baton__Sealed m;
  seal(&tx, REPLY_TO, body, len, &m);
  Baton__AgentReply outer = BATON__AGENT_REPLY__INIT;
  outer.has_version = 1;
  outer.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  outer.body_case = BATON__AGENT_REPLY__BODY_SEALED;
  outer.sealed = &m;
  size_t n = baton__agent_reply__get_packed_size(&outer);
  uint8_t *wire = malloc(n);
  FUZZ_CHECK(wire != NULL, "out of memory");
  baton__agent_reply__pack(&outer, wire);

  Baton__AgentReply *r = NULL;
  const char *why = NULL;
  bt_pb_budget_t budget, budget2;
  int rc = bt_agent__wire_unpack(wire, n, &budget, &r, &why);
  FUZZ_CHECK(rc == 0 && r->body_case == BATON__AGENT_REPLY__BODY_SEALED,
             "the agent refuses a well-formed sealed reply: %s", why ? why : "?");
  check_forgeries(&agent0[mode], &broker0[mode], r->sealed, where);
  uint8_t *inner = open_checked(&agent0[mode], &tx, r->sealed, body, len);
  baton__agent_reply__free_unpacked(r, &budget.a);

  Baton__AgentReply *r2 = NULL;
  why = NULL;
  rc = bt_agent__wire_unpack(inner, len, &budget2, &r2, &why);
  FUZZ_CHECK(rc == 0 || (why != NULL && why[0] != '\0'), "inner refused without a reason");
  if (rc == 0)
    baton__agent_reply__free_unpacked(r2, &budget2.a);
  free(inner);
  free(wire);
  free(m.box.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_bytes_t in = {data, size};
  uint8_t how = (uint8_t)fuzz_take(&in, 1), where = (uint8_t)fuzz_take(&in, 1);
  if (in.n > 65536)
    return 0; /* a message limit applies long before */
  if (how & 2)
    to_agent(how & 1, where, in.p, in.n);
  else
    to_broker(how & 1, where, in.p, in.n);
  return 0;
}

/*
 * proto/bt_seal: the session keys of an agent session and the sealing of each
 * message. A message sealed by one end opens at the other and nowhere else: a
 * flipped byte, the other direction's key, an altered counter or reply_to, or
 * an old counter is refused; the exact resend of the last message is accepted
 * as such. Both modes (secretbox, MAC only) keep every rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_auth.h"
#include "bt_err.h"
#include "bt_seal.h"

#include <stdlib.h>
#include <string.h>

static const Baton__SealMode MODES[] = {BATON__SEAL_MODE__SEAL_MODE_SECRETBOX,
                                        BATON__SEAL_MODE__SEAL_MODE_MAC};

typedef struct {
  bt_seal_t agent, broker;
} pair_t;

/* A completed key exchange: both ends keyed for mode. */
static void keyed(pair_t *p, Baton__SealMode mode) {
  uint8_t apk[BT_SEAL_KX_BYTES], ask[BT_SEAL_KX_BYTES];
  uint8_t bpk[BT_SEAL_KX_BYTES], bsk[BT_SEAL_KX_BYTES];
  memset(p, 0, sizeof *p);
  bt_seal_kx_keypair(apk, ask);
  bt_seal_kx_keypair(bpk, bsk);
  assert_int_equal(bt_seal_keys(&p->agent, BT_SEAL_AGENT, mode, apk, ask, bpk), 0);
  assert_int_equal(bt_seal_keys(&p->broker, BT_SEAL_BROKER, mode, bpk, bsk, apk), 0);
  assert_true(bt_seal_ready(&p->agent) && bt_seal_ready(&p->broker));
}

typedef struct {
  uint64_t counter, reply_to;
  uint8_t box[256];
  size_t len;
} msg_t;

static msg_t seal(bt_seal_t *s, uint64_t reply_to, const char *text) {
  msg_t m;
  size_t n = strlen(text);
  m.reply_to = reply_to;
  m.len = bt_seal_box_len(s, n);
  assert_true(m.len <= sizeof m.box);
  m.counter = bt_seal_seal(s, reply_to, (const uint8_t *)text, n, m.box);
  return m;
}

/* Opens m at s; on success the body must be text. Returns bt_seal_open's code. */
static int open_msg(bt_seal_t *s, const msg_t *m, const char *text) {
  uint8_t body[256];
  int rc = bt_seal_open(s, m->counter, m->reply_to, m->box, m->len, body);
  if (rc == 0 || rc == BT_SEAL_RESEND) {
    assert_int_equal(bt_seal_body_len(s, m->len), strlen(text));
    assert_memory_equal(body, text, strlen(text));
  }
  return rc;
}

static int setup(void **state) {
  (void)state;
  return bt_auth_init();
}

static void test_seal_round_trip(void **state) {
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    pair_t p;
    keyed(&p, MODES[k]);
    /* requests count up from 1, replies from 1, each answering its request */
    for (uint64_t i = 1; i <= 5; i++) {
      msg_t q = seal(&p.agent, 0, "poll free_slots=2");
      assert_int_equal(q.counter, i);
      assert_int_equal(open_msg(&p.broker, &q, "poll free_slots=2"), 0);
      msg_t r = seal(&p.broker, q.counter, "work {assignment}");
      assert_int_equal(r.counter, i);
      assert_int_equal(open_msg(&p.agent, &r, "work {assignment}"), 0);
    }
    /* an empty body seals and opens too */
    msg_t e = seal(&p.agent, 0, "");
    assert_int_equal(e.len, bt_seal_box_len(&p.agent, 0));
    assert_int_equal(open_msg(&p.broker, &e, ""), 0);
    bt_seal_wipe(&p.agent);
    bt_seal_wipe(&p.broker);
    assert_false(bt_seal_ready(&p.agent));
  }
}

/* Encryption hides the body; the MAC-only mode carries it in clear (and still
 * authenticates it: see the tamper test). */
static void test_seal_encrypts_only_in_secretbox_mode(void **state) {
  (void)state;
  const char *secret = "payload: account 4711 balance";
  pair_t p;
  keyed(&p, BATON__SEAL_MODE__SEAL_MODE_SECRETBOX);
  msg_t m = seal(&p.agent, 0, secret);
  assert_null(memmem(m.box, m.len, "account 4711", 12));
  keyed(&p, BATON__SEAL_MODE__SEAL_MODE_MAC);
  m = seal(&p.agent, 0, secret);
  assert_non_null(memmem(m.box, m.len, "account 4711", 12));
}

static void test_seal_tampered_byte_refused(void **state) {
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    pair_t p;
    keyed(&p, MODES[k]);
    msg_t m = seal(&p.agent, 0, "results package=42 output=HELLO");
    for (size_t i = 0; i < m.len; i++) {
      for (int bit = 0; bit < 8; bit += 3) {
        msg_t t = m;
        t.box[i] ^= (uint8_t)(1u << bit);
        if (open_msg(&p.broker, &t, "") != BT_EAUTH)
          fail_msg("mode %zu: box with byte %zu bit %d flipped opened", k, i, bit);
      }
    }
    /* truncated, extended, empty */
    msg_t t = m;
    t.len--;
    assert_int_equal(open_msg(&p.broker, &t, ""), BT_EAUTH);
    t.len = m.len + 1;
    t.box[m.len] = 0;
    assert_int_equal(open_msg(&p.broker, &t, ""), BT_EAUTH);
    t.len = 0;
    assert_int_equal(open_msg(&p.broker, &t, ""), BT_EAUTH);
    /* counter and reply_to are in the nonce: changing either breaks it */
    t = m;
    t.counter++;
    assert_int_equal(open_msg(&p.broker, &t, ""), BT_EAUTH);
    t = m;
    t.reply_to = 1;
    assert_int_equal(open_msg(&p.broker, &t, ""), BT_EAUTH);
    /* the genuine message still opens: refusals changed nothing */
    assert_int_equal(open_msg(&p.broker, &m, "results package=42 output=HELLO"), 0);
  }
}

static void test_seal_wrong_key_or_direction_refused(void **state) {
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    pair_t p, other;
    keyed(&p, MODES[k]);
    keyed(&other, MODES[k]);
    msg_t m = seal(&p.agent, 0, "heartbeat");
    /* reflected back to its sender, which holds the other direction's key */
    assert_int_equal(open_msg(&p.agent, &m, ""), BT_EAUTH);
    /* another session's broker */
    assert_int_equal(open_msg(&other.broker, &m, ""), BT_EAUTH);
    /* a reply opened by the broker itself */
    msg_t r = seal(&p.broker, 1, "work");
    assert_int_equal(open_msg(&p.broker, &r, ""), BT_EAUTH);
    /* the same keys with the direction bytes swapped: the nonce differs */
    bt_seal_t swapped = p.broker;
    swapped.dir_rx = BT_SEAL_DIR_TO_AGENT;
    assert_int_equal(open_msg(&swapped, &m, ""), BT_EAUTH);
    /* the other mode under the same keys */
    bt_seal_t mode = p.broker;
    mode.mode = MODES[1 - k];
    assert_int_equal(open_msg(&mode, &m, ""), BT_EAUTH);
    assert_int_equal(open_msg(&p.broker, &m, "heartbeat"), 0);
    /* no keys at all */
    bt_seal_t none;
    memset(&none, 0, sizeof none);
    assert_int_equal(open_msg(&none, &m, ""), BT_EAUTH);
  }
}

static void test_seal_replay_refused_resend_accepted(void **state) {
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    pair_t p;
    keyed(&p, MODES[k]);
    msg_t m1 = seal(&p.agent, 0, "results #1");
    msg_t m2 = seal(&p.agent, 0, "poll #2");
    msg_t m3 = seal(&p.agent, 0, "poll #3");
    assert_int_equal(open_msg(&p.broker, &m1, "results #1"), 0);
    /* the exact resend of the last one: accepted as such, any number of times */
    assert_int_equal(open_msg(&p.broker, &m1, "results #1"), BT_SEAL_RESEND);
    assert_int_equal(open_msg(&p.broker, &m1, "results #1"), BT_SEAL_RESEND);
    /* a gap is fine (superseded requests never arrive) */
    assert_int_equal(open_msg(&p.broker, &m3, "poll #3"), 0);
    /* older ones are replays, authentic or not */
    assert_int_equal(open_msg(&p.broker, &m1, ""), BT_ESTALE);
    assert_int_equal(open_msg(&p.broker, &m2, ""), BT_ESTALE);
    assert_int_equal(p.broker.rx_ctr, 3);
    assert_int_equal(open_msg(&p.broker, &m3, "poll #3"), BT_SEAL_RESEND);
    /* counter 0 never opens as new */
    pair_t q;
    keyed(&q, MODES[k]);
    uint8_t box[64], body[64];
    q.agent.tx_ctr = (uint64_t)-1; /* the next seal would wrap to 0 */
    uint64_t c = bt_seal_seal(&q.agent, 0, (const uint8_t *)"x", 1, box);
    assert_int_equal(c, 0);
    assert_int_equal(bt_seal_open(&q.broker, c, 0, box, bt_seal_box_len(&q.agent, 1), body),
                     BT_ESTALE);
    /* replies: the agent refuses the same reply twice and an older one */
    msg_t r1 = seal(&p.broker, 3, "work a");
    msg_t r2 = seal(&p.broker, 4, "work b");
    assert_int_equal(open_msg(&p.agent, &r2, "work b"), 0);
    assert_int_equal(open_msg(&p.agent, &r1, ""), BT_ESTALE);
    assert_int_equal(open_msg(&p.agent, &r2, "work b"), BT_SEAL_RESEND);
  }
}

/* The Baton framing: an inner AgentRequest packed, sealed and carried in an
 * outer one's Sealed body; an inner AgentReply likewise with its reply_to. */
static void test_seal_framing(void **state) {
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    pair_t p;
    keyed(&p, MODES[k]);
    Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
    Baton__Poll poll = BATON__POLL__INIT;
    req.has_version = req.has_session = req.has_ack_seq = 1;
    req.version = 1;
    req.session = 0x1234;
    req.ack_seq = 9;
    poll.has_free_slots = 1;
    poll.free_slots = 3;
    req.body_case = BATON__AGENT_REQUEST__BODY_POLL;
    req.poll = &poll;
    uint8_t *out = NULL;
    size_t len = 0;
    size_t inner_len = baton__agent_request__get_packed_size(&req);
    /* too large for the limit: refused before anything is sealed */
    assert_int_equal(bt_seal_pack_request(&p.agent, 0x1234, &req, inner_len, &out, &len),
                     BT_ELIMIT);
    assert_int_equal(p.agent.tx_ctr, 0);
    assert_int_equal(bt_seal_pack_request(&p.agent, 0x1234, &req, 1 << 20, &out, &len), 0);
    assert_true(len <= inner_len + BT_SEAL_OVERHEAD);
    Baton__AgentRequest *outer = baton__agent_request__unpack(NULL, len, out);
    free(out);
    assert_non_null(outer);
    assert_int_equal(outer->body_case, BATON__AGENT_REQUEST__BODY_SEALED);
    assert_true(outer->has_session && outer->session == 0x1234);
    assert_int_equal(outer->sealed->counter, 1);
    assert_false(outer->sealed->has_reply_to);
    uint8_t *body = NULL;
    size_t blen = 0;
    assert_int_equal(bt_seal_open_msg(&p.broker, outer->sealed, &body, &blen), 0);
    Baton__AgentRequest *inner = baton__agent_request__unpack(NULL, blen, body);
    free(body);
    assert_non_null(inner);
    assert_int_equal(inner->body_case, BATON__AGENT_REQUEST__BODY_POLL);
    assert_int_equal(inner->ack_seq, 9);
    assert_int_equal(inner->poll->free_slots, 3);
    baton__agent_request__free_unpacked(inner, NULL);
    /* the same outer message again: an exact resend */
    assert_int_equal(bt_seal_open_msg(&p.broker, outer->sealed, &body, &blen),
                     BT_SEAL_RESEND);
    free(body);
    /* no counter or no box */
    outer->sealed->has_counter = 0;
    assert_int_equal(bt_seal_open_msg(&p.broker, outer->sealed, &body, &blen), BT_EAUTH);
    outer->sealed->has_counter = 1;
    outer->sealed->has_box = 0;
    assert_int_equal(bt_seal_open_msg(&p.broker, outer->sealed, &body, &blen), BT_EAUTH);
    baton__agent_request__free_unpacked(outer, NULL);

    Baton__AgentReply rep = BATON__AGENT_REPLY__INIT;
    Baton__Work work = BATON__WORK__INIT;
    rep.has_version = 1;
    rep.version = 1;
    rep.body_case = BATON__AGENT_REPLY__BODY_WORK;
    rep.work = &work;
    assert_int_equal(bt_seal_pack_reply(&p.broker, 1, &rep, 1 << 20, &out, &len), 0);
    Baton__AgentReply *ro = baton__agent_reply__unpack(NULL, len, out);
    free(out);
    assert_non_null(ro);
    assert_int_equal(ro->body_case, BATON__AGENT_REPLY__BODY_SEALED);
    assert_true(ro->sealed->has_reply_to && ro->sealed->reply_to == 1);
    ro->sealed->reply_to = 2; /* claimed to answer another request */
    assert_int_equal(bt_seal_open_msg(&p.agent, ro->sealed, &body, &blen), BT_EAUTH);
    ro->sealed->reply_to = 1;
    assert_int_equal(bt_seal_open_msg(&p.agent, ro->sealed, &body, &blen), 0);
    Baton__AgentReply *ri = baton__agent_reply__unpack(NULL, blen, body);
    free(body);
    assert_non_null(ri);
    assert_int_equal(ri->body_case, BATON__AGENT_REPLY__BODY_WORK);
    baton__agent_reply__free_unpacked(ri, NULL);
    baton__agent_reply__free_unpacked(ro, NULL);
  }
}

/* A peer kx key libsodium refuses (a low-order point giving an all-zero
 * shared secret) fails the handshake instead of giving guessable keys; an
 * unknown mode is refused. */
static void test_seal_bad_peer_key_refused(void **state) {
  (void)state;
  uint8_t pk[BT_SEAL_KX_BYTES], sk[BT_SEAL_KX_BYTES], zero[BT_SEAL_KX_BYTES] = {0};
  bt_seal_t s;
  memset(&s, 0, sizeof s);
  bt_seal_kx_keypair(pk, sk);
  assert_int_equal(bt_seal_keys(&s, BT_SEAL_BROKER, BATON__SEAL_MODE__SEAL_MODE_SECRETBOX,
                                pk, sk, zero),
                   BT_EAUTH);
  assert_false(bt_seal_ready(&s));
  assert_int_equal(bt_seal_keys(&s, BT_SEAL_AGENT, BATON__SEAL_MODE__SEAL_MODE_MAC, pk, sk,
                                zero),
                   BT_EAUTH);
  assert_int_equal(bt_seal_keys(&s, BT_SEAL_AGENT, (Baton__SealMode)0, pk, sk, pk),
                   BT_EINVAL);
  assert_int_equal(bt_seal_keys(&s, BT_SEAL_AGENT, (Baton__SealMode)3, pk, sk, pk),
                   BT_EINVAL);
  assert_false(bt_seal_ready(&s));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seal_round_trip),
      cmocka_unit_test(test_seal_encrypts_only_in_secretbox_mode),
      cmocka_unit_test(test_seal_tampered_byte_refused),
      cmocka_unit_test(test_seal_wrong_key_or_direction_refused),
      cmocka_unit_test(test_seal_replay_refused_resend_accepted),
      cmocka_unit_test(test_seal_framing),
      cmocka_unit_test(test_seal_bad_peer_key_refused),
  };
  return cmocka_run_group_tests_name("seal", tests, setup, NULL);
}

/*
 * libbaton-agent's decoder of broker replies (worker/lib/wire.c): what it
 * allocates is bounded by a budget, as the broker's decoders are. protobuf-c
 * turns an empty submessage (2 bytes on the wire) into a whole struct plus a
 * pointer; a reply of nothing but empty assignments would otherwise cost the
 * agent ~70 times its size before any check could refuse it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent_int.h"
#include "bt_err.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* An AgentReply{version, work{n empty assignments}} written by hand, so the
 * test does not need the n structs it is about. Returns its length. */
static size_t empty_assignments_reply(uint8_t **out, size_t n) {
  size_t body = 2 * n; /* each: tag 0x0a (field 1, bytes), length 0 */
  uint8_t *b = malloc(16 + body);
  assert_non_null(b);
  size_t len = 0;
  b[len++] = 0x08; /* field 1 (version), varint */
  b[len++] = (uint8_t)BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  b[len++] = 0x62; /* field 12 (work), bytes */
  for (size_t v = body; ; v >>= 7) {
    b[len++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    if (v <= 0x7f)
      break;
  }
  for (size_t i = 0; i < n; i++) {
    b[len++] = 0x0a;
    b[len++] = 0x00;
  }
  *out = b;
  return len;
}

/* Enough empty assignments to need more than the budget: the refusal is the
 * budget's, not the check that every assignment has a seq. */
static void test_agent_wire_budget_refuses_amplification(void **state) {
  (void)state;
  size_t n = 600000;
  size_t decoded = n * (sizeof(Baton__Assignment) + sizeof(Baton__Assignment *));
  uint8_t *wire;
  size_t len = empty_assignments_reply(&wire, n);
  /* The premise: decoding all of it would pass the budget for its size. */
  assert_true(decoded > bt_pb_budget_for(len));

  bt_pb_budget_t budget;
  Baton__AgentReply *r = NULL;
  const char *why = NULL;
  assert_int_equal(bt_agent__wire_unpack(wire, len, &budget, &r, &why), BT_EPROTO);
  assert_null(r);
  assert_non_null(why);
  assert_non_null(strstr(why, "budget"));
  assert_int_equal(budget.used, 0); /* what was allocated is given back */
  free(wire);
}

/* The same shape, small: it decodes, and is refused by the checks that
 * follow (an assignment without a seq), with the budget given back. */
static void test_agent_wire_small_reply_decodes_then_checked(void **state) {
  (void)state;
  uint8_t *wire;
  size_t len = empty_assignments_reply(&wire, 3);
  bt_pb_budget_t budget;
  Baton__AgentReply *r = NULL;
  const char *why = NULL;
  assert_int_equal(bt_agent__wire_unpack(wire, len, &budget, &r, &why), BT_EPROTO);
  assert_non_null(why);
  assert_non_null(strstr(why, "without seq"));
  assert_int_equal(budget.used, 0);
  free(wire);

  /* A valid reply: decoded under the budget and freed through it. */
  Baton__AgentReply reply = BATON__AGENT_REPLY__INIT;
  Baton__Work work = BATON__WORK__INIT;
  reply.has_version = true;
  reply.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  reply.body_case = BATON__AGENT_REPLY__BODY_WORK;
  reply.work = &work;
  uint8_t packed[64];
  len = baton__agent_reply__pack(&reply, packed);
  assert_int_equal(bt_agent__wire_unpack(packed, len, &budget, &r, &why), 0);
  assert_non_null(r);
  assert_int_equal(r->body_case, BATON__AGENT_REPLY__BODY_WORK);
  assert_true(budget.used > 0);
  baton__agent_reply__free_unpacked(r, &budget.a);
  assert_int_equal(budget.used, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agent_wire_budget_refuses_amplification),
      cmocka_unit_test(test_agent_wire_small_reply_decodes_then_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * proto/bt_pballoc: the budgeted protobuf-c allocator. A normal message unpacks
 * within bt_pb_budget_for(len); hostile ~1 MiB messages of tiny repeated entries
 * or unknown fields (24-36x amplification, stack-findings §5) fail to unpack
 * under a small budget instead of allocating; every path returns the budget to
 * zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "baton.pb-c.h"
#include "bt_pballoc.h"

#include <stdlib.h>
#include <string.h>

#define MIB (1024u * 1024u)

static void test_pballoc_budget_for(void **state) {
  (void)state;
  const size_t cap = 256u * MIB;
  assert_int_equal(bt_pb_budget_for(0), MIB);
  assert_int_equal(bt_pb_budget_for(1), 64 + MIB);
  assert_int_equal(bt_pb_budget_for(1000), 64000 + MIB);
  assert_int_equal(bt_pb_budget_for(MIB), 65u * MIB);
  size_t edge = (cap - MIB) / 64; /* the largest len below the cap */
  assert_int_equal(bt_pb_budget_for(edge), edge * 64 + MIB);
  assert_true(bt_pb_budget_for(edge) <= cap);
  assert_int_equal(bt_pb_budget_for(edge + 1), cap);
  assert_int_equal(bt_pb_budget_for(SIZE_MAX), cap); /* no overflow */
  assert_int_equal(bt_pb_budget_for(SIZE_MAX / 64 + 1), cap);
}

static void test_pballoc_alloc_respects_limit(void **state) {
  (void)state;
  bt_pb_budget_t b;
  bt_pb_budget_init(&b, 1000);
  void *p = b.a.alloc(b.a.allocator_data, 600);
  assert_non_null(p);
  memset(p, 1, 600);
  assert_int_equal(b.used, 600);
  assert_null(b.a.alloc(b.a.allocator_data, 401)); /* 1001 > 1000 */
  void *q = b.a.alloc(b.a.allocator_data, 400);     /* exactly the limit */
  assert_non_null(q);
  assert_int_equal(b.used, 1000);
  assert_null(b.a.alloc(b.a.allocator_data, 1));
  assert_null(b.a.alloc(b.a.allocator_data, SIZE_MAX)); /* no wrap-around */
  b.a.free(b.a.allocator_data, p);
  assert_int_equal(b.used, 400);
  b.a.free(b.a.allocator_data, NULL);
  b.a.free(b.a.allocator_data, q);
  assert_int_equal(b.used, 0);
  /* blocks are aligned for any type */
  void *r = b.a.alloc(b.a.allocator_data, 8);
  assert_int_equal((uintptr_t)r % _Alignof(max_align_t), 0);
  b.a.free(b.a.allocator_data, r);
}

/* Packs a typical Hello and a typical Results; both unpack within the budget for
 * their size and give every byte back. */
static void test_pballoc_normal_messages(void **state) {
  (void)state;
  char *caps[3] = {"ocr", "translate:de", "render/4k"};
  Baton__Hello hello = BATON__HELLO__INIT;
  hello.vendor = "acme";
  hello.agent_name = "ocr-1";
  hello.n_capabilities = 3;
  hello.capabilities = caps;
  hello.has_slots = 1;
  hello.slots = 4;
  hello.software = "baton-agent/0.1.0";
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  req.has_version = 1;
  req.version = 1;
  req.body_case = BATON__AGENT_REQUEST__BODY_HELLO;
  req.hello = &hello;

  size_t len = baton__agent_request__get_packed_size(&req);
  uint8_t *buf = test_malloc(len);
  assert_int_equal(baton__agent_request__pack(&req, buf), len);
  bt_pb_budget_t b;
  bt_pb_budget_init(&b, bt_pb_budget_for(len));
  Baton__AgentRequest *got = baton__agent_request__unpack(&b.a, len, buf);
  assert_non_null(got);
  assert_true(b.used > 0 && b.used <= b.limit);
  assert_int_equal(got->body_case, BATON__AGENT_REQUEST__BODY_HELLO);
  assert_string_equal(got->hello->vendor, "acme");
  assert_int_equal(got->hello->n_capabilities, 3);
  assert_string_equal(got->hello->capabilities[2], "render/4k");
  baton__agent_request__free_unpacked(got, &b.a);
  assert_int_equal(b.used, 0);
  test_free(buf);

  /* Results: 100 results with 4 KiB outputs each */
  enum { N = 100 };
  static uint8_t out[4096];
  memset(out, 'o', sizeof out);
  Baton__Result rs[N];
  Baton__Result *rp[N];
  for (int i = 0; i < N; i++) {
    baton__result__init(&rs[i]);
    rs[i].has_package_id = 1;
    rs[i].package_id = (uint64_t)i + 1;
    rs[i].has_attempt = 1;
    rs[i].attempt = 1;
    rs[i].has_outcome = 1;
    rs[i].outcome = BATON__OUTCOME__OUTCOME_COMPLETED;
    rs[i].has_output = 1;
    rs[i].output.data = out;
    rs[i].output.len = sizeof out;
    rs[i].error = "exit 0";
    rp[i] = &rs[i];
  }
  Baton__Results results = BATON__RESULTS__INIT;
  results.n_results = N;
  results.results = rp;
  Baton__AgentRequest req2 = BATON__AGENT_REQUEST__INIT;
  req2.has_version = 1;
  req2.version = 1;
  req2.has_session = 1;
  req2.session = 99;
  req2.body_case = BATON__AGENT_REQUEST__BODY_RESULTS;
  req2.results = &results;
  len = baton__agent_request__get_packed_size(&req2);
  buf = test_malloc(len);
  baton__agent_request__pack(&req2, buf);
  bt_pb_budget_init(&b, bt_pb_budget_for(len));
  got = baton__agent_request__unpack(&b.a, len, buf);
  assert_non_null(got);
  assert_int_equal(got->results->n_results, N);
  assert_memory_equal(got->results->results[N - 1]->output.data, out, sizeof out);
  baton__agent_request__free_unpacked(got, &b.a);
  assert_int_equal(b.used, 0);
  test_free(buf);
}

/* ~1 MiB AgentRequest whose Hello holds n empty capability strings (2 bytes on
 * the wire each). */
static uint8_t *hostile_empty_strings(size_t n, size_t *len) {
  size_t inner = 2 * n;
  uint8_t *b = test_malloc(inner + 16);
  size_t o = 0;
  b[o++] = 0x08; /* version = 1 */
  b[o++] = 0x01;
  b[o++] = 0x52; /* field 10 (hello), length-delimited */
  for (size_t v = inner; ; v >>= 7) {
    if (v < 0x80) {
      b[o++] = (uint8_t)v;
      break;
    }
    b[o++] = (uint8_t)(v | 0x80);
  }
  for (size_t i = 0; i < n; i++) {
    b[o++] = 0x1a; /* field 3 (capabilities), length 0 */
    b[o++] = 0x00;
  }
  *len = o;
  return b;
}

/* ~1 MiB of unknown varint fields (field 100 = 0): 3 bytes each. */
static uint8_t *hostile_unknown_fields(size_t n, size_t *len) {
  uint8_t *b = test_malloc(3 * n + 2);
  size_t o = 0;
  b[o++] = 0x08;
  b[o++] = 0x01;
  for (size_t i = 0; i < n; i++) {
    b[o++] = 0xa0; /* (100 << 3 | 0) as a varint */
    b[o++] = 0x06;
    b[o++] = 0x00;
  }
  *len = o;
  return b;
}

static void expect_refused(const uint8_t *buf, size_t len, size_t limit) {
  bt_pb_budget_t b;
  bt_pb_budget_init(&b, limit);
  Baton__AgentRequest *got = baton__agent_request__unpack(&b.a, len, buf);
  if (got != NULL) {
    size_t used = b.used;
    baton__agent_request__free_unpacked(got, &b.a);
    fail_msg("%zu-byte message unpacked in a %zu-byte budget (used %zu)", len, limit,
             used);
  }
  assert_int_equal(b.used, 0); /* whatever was allocated on the way is back */
}

static void test_pballoc_repeated_entries_refused(void **state) {
  (void)state;
  size_t len;
  uint8_t *buf = hostile_empty_strings(MIB / 2, &len);
  assert_true(len > MIB);

  /* Without a budget it unpacks into far more than its size (the finding). */
  bt_pb_budget_t big;
  bt_pb_budget_init(&big, SIZE_MAX / 2);
  Baton__AgentRequest *got = baton__agent_request__unpack(&big.a, len, buf);
  assert_non_null(got);
  assert_int_equal(got->hello->n_capabilities, MIB / 2);
  size_t need = big.used;
  assert_true(need > 4 * len);
  baton__agent_request__free_unpacked(got, &big.a);
  assert_int_equal(big.used, 0);

  /* A small budget refuses it: at the pointer array, and half way through the
   * strings (protobuf-c must free what it allocated before failing). */
  expect_refused(buf, len, MIB);
  expect_refused(buf, len, need / 2);
  expect_refused(buf, len, need - 1);
  expect_refused(buf, len, 2 * len);
  test_free(buf);
}

static void test_pballoc_unknown_fields_refused(void **state) {
  (void)state;
  size_t len;
  uint8_t *buf = hostile_unknown_fields(MIB / 3, &len);
  bt_pb_budget_t big;
  bt_pb_budget_init(&big, SIZE_MAX / 2);
  Baton__AgentRequest *got = baton__agent_request__unpack(&big.a, len, buf);
  assert_non_null(got);
  size_t need = big.used;
  assert_true(need > 4 * len);
  baton__agent_request__free_unpacked(got, &big.a);
  assert_int_equal(big.used, 0);

  expect_refused(buf, len, MIB);
  expect_refused(buf, len, need / 2);
  expect_refused(buf, len, need - 1);
  test_free(buf);
}

/* Every budget between nothing and enough either unpacks or fails cleanly, and
 * always gives every byte back (a sweep over the failure points of a small
 * message with strings, bytes and repeated submessages). */
static void test_pballoc_every_failure_point(void **state) {
  (void)state;
  Baton__Held h1 = BATON__HELD__INIT, h2 = BATON__HELD__INIT;
  h1.has_package_id = h2.has_package_id = 1;
  h1.package_id = 1;
  h2.package_id = 2;
  h1.has_attempt = h2.has_attempt = 1;
  h1.attempt = h2.attempt = 3;
  Baton__Held *held[2] = {&h1, &h2};
  uint8_t sig[64];
  memset(sig, 's', sizeof sig);
  Baton__Auth auth = BATON__AUTH__INIT;
  auth.has_signature = 1;
  auth.signature.data = sig;
  auth.signature.len = sizeof sig;
  auth.n_held = 2;
  auth.held = held;
  Baton__AgentRequest req = BATON__AGENT_REQUEST__INIT;
  req.has_version = 1;
  req.version = 1;
  req.has_session = 1;
  req.session = 5;
  req.body_case = BATON__AGENT_REQUEST__BODY_AUTH;
  req.auth = &auth;
  size_t len = baton__agent_request__get_packed_size(&req);
  uint8_t *buf = test_malloc(len);
  baton__agent_request__pack(&req, buf);

  bt_pb_budget_t b;
  bt_pb_budget_init(&b, SIZE_MAX / 2);
  Baton__AgentRequest *got = baton__agent_request__unpack(&b.a, len, buf);
  assert_non_null(got);
  size_t need = b.used;
  baton__agent_request__free_unpacked(got, &b.a);
  for (size_t limit = 0; limit <= need; limit++) {
    bt_pb_budget_init(&b, limit);
    got = baton__agent_request__unpack(&b.a, len, buf);
    if (limit < need)
      assert_null(got);
    else
      assert_non_null(got);
    if (got)
      baton__agent_request__free_unpacked(got, &b.a);
    if (b.used != 0)
      fail_msg("budget %zu: %zu bytes not given back", limit, b.used);
  }
  test_free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pballoc_budget_for),
      cmocka_unit_test(test_pballoc_alloc_respects_limit),
      cmocka_unit_test(test_pballoc_normal_messages),
      cmocka_unit_test(test_pballoc_repeated_entries_refused),
      cmocka_unit_test(test_pballoc_unknown_fields_refused),
      cmocka_unit_test(test_pballoc_every_failure_point),
  };
  return cmocka_run_group_tests_name("pballoc", tests, NULL, NULL);
}

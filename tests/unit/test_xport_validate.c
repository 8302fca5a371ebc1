/*
 * server/xport/validate.c (bt_xp__validate): every rule an unpacked agent
 * message must pass, on Baton__AgentRequest structs built in C. Each test starts
 * from a valid message of its body, checks it passes, then breaks one field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "bt_valid.h"
#include "xport_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAYLOAD 1000u

static bt_xp_opts_t opts;
static char why[256];

static int setup(void **state) {
  (void)state;
  bt_xp_opts_default(&opts);
  opts.max_payload_bytes = MAX_PAYLOAD;
  return 0;
}

static void base(Baton__AgentRequest *r, Baton__AgentRequest__BodyCase body) {
  baton__agent_request__init(r);
  r->has_version = 1;
  r->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  r->has_session = 1;
  r->session = 0x1122334455667788ull;
  r->body_case = body;
}

static int check(const Baton__AgentRequest *r) {
  memset(why, 0, sizeof why);
  return bt_xp__validate(r, &opts, why, sizeof why);
}

/* Refused with code and a readable reason containing needle (may be NULL). */
static void refused(int line, int rc, int code, const char *needle) {
  if (rc != code)
    fail_msg("line %d: rc=%d (%s), want %d", line, rc, why, code);
  if (why[0] == '\0' || !islower((unsigned char)why[0]))
    fail_msg("line %d: reason \"%s\" is not a lowercase sentence", line, why);
  if (needle != NULL && strstr(why, needle) == NULL)
    fail_msg("line %d: reason \"%s\" lacks \"%s\"", line, why, needle);
}

#define REFUSED(r, code, needle) refused(__LINE__, check(r), (code), (needle))

#define PASSES(r)                                                                \
  do {                                                                           \
    int rc_ = check(r);                                                          \
    if (rc_ != 0)                                                                \
      fail_msg("line %d: refused (%d): %s", __LINE__, rc_, why);                 \
  } while (0)

static void test_xport_validate_version(void **state) {
  (void)state;
  Baton__AgentRequest r;
  Baton__Bye bye = BATON__BYE__INIT;
  base(&r, BATON__AGENT_REQUEST__BODY_BYE);
  r.bye = &bye;
  PASSES(&r);

  /* no version at all: a malformed message, not a version mismatch */
  r.has_version = 0;
  REFUSED(&r, BT_EPROTO, "no protocol version");
  r.has_version = 1;
  r.version = 2;
  REFUSED(&r, BT_EVERSION, "version 2");
  assert_non_null(strstr(why, "1")); /* and says which one the broker speaks */
  r.version = 0;
  REFUSED(&r, BT_EVERSION, "version 0");
  r.version = UINT32_MAX;
  REFUSED(&r, BT_EVERSION, "version 4294967295");
  /* the version is checked before anything else */
  r.version = 2;
  r.body_case = BATON__AGENT_REQUEST__BODY__NOT_SET;
  r.has_session = 0;
  REFUSED(&r, BT_EVERSION, NULL);
}

static void test_xport_validate_body_and_session(void **state) {
  (void)state;
  Baton__AgentRequest r;
  base(&r, BATON__AGENT_REQUEST__BODY__NOT_SET);
  REFUSED(&r, BT_EPROTO, "no body");

  Baton__Poll poll = BATON__POLL__INIT;
  poll.has_free_slots = 1;
  poll.free_slots = 2;
  base(&r, BATON__AGENT_REQUEST__BODY_POLL);
  r.poll = &poll;
  PASSES(&r);
  r.has_session = 0;
  REFUSED(&r, BT_EPROTO, "session");
  r.has_session = 1;
  r.session = 0;
  REFUSED(&r, BT_EPROTO, "session");

  /* every body but Hello needs a session */
  Baton__Bye bye = BATON__BYE__INIT;
  base(&r, BATON__AGENT_REQUEST__BODY_BYE);
  r.bye = &bye;
  r.has_session = 0;
  REFUSED(&r, BT_EPROTO, "session");

  /* an unknown body number */
  base(&r, (Baton__AgentRequest__BodyCase)99);
  r.bye = &bye;
  REFUSED(&r, BT_EPROTO, NULL);
}

static char *caps_ok[] = {"ocr", "translate:de"};

static void hello_base(Baton__AgentRequest *r, Baton__Hello *h) {
  baton__hello__init(h);
  h->vendor = "acme";
  h->agent_name = "ocr-1";
  h->n_capabilities = 2;
  h->capabilities = caps_ok;
  h->has_slots = 1;
  h->slots = 4;
  h->software = "baton-agent/0.1.0";
  base(r, BATON__AGENT_REQUEST__BODY_HELLO);
  r->has_session = 0; /* Hello comes before any session */
  r->session = 0;
  r->hello = h;
}

static void test_xport_validate_hello(void **state) {
  (void)state;
  Baton__AgentRequest r;
  Baton__Hello h;
  hello_base(&r, &h);
  PASSES(&r);
  r.has_session = 1; /* a stale session on Hello is harmless */
  r.session = 5;
  PASSES(&r);
  h.software = NULL; /* optional */
  PASSES(&r);

  static const char *const bad_names[] = {NULL, "", "ac me", "acme\n", "a,b", "a\x1f"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    hello_base(&r, &h);
    h.vendor = (char *)bad_names[i];
    REFUSED(&r, BT_EPROTO, "vendor");
    hello_base(&r, &h);
    h.agent_name = (char *)bad_names[i];
    REFUSED(&r, BT_EPROTO, "agent name");
  }
  char long_name[BT_NAME_MAX + 2];
  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  hello_base(&r, &h);
  h.agent_name = long_name; /* 129 bytes */
  REFUSED(&r, BT_EPROTO, "agent name");
  long_name[BT_NAME_MAX] = '\0'; /* 128 bytes */
  PASSES(&r);

  /* capabilities: 1..32 valid names */
  char *caps[BT_XP_MAX_CAPS + 1];
  char capbuf[BT_XP_MAX_CAPS + 1][8];
  for (int i = 0; i <= BT_XP_MAX_CAPS; i++) {
    snprintf(capbuf[i], sizeof capbuf[i], "cap%d", i);
    caps[i] = capbuf[i];
  }
  hello_base(&r, &h);
  h.n_capabilities = 0;
  h.capabilities = NULL;
  REFUSED(&r, BT_EPROTO, "capabilities");
  h.capabilities = caps;
  h.n_capabilities = BT_XP_MAX_CAPS + 1; /* 33 */
  REFUSED(&r, BT_EPROTO, "33");
  h.n_capabilities = BT_XP_MAX_CAPS; /* 32 */
  PASSES(&r);
  h.n_capabilities = 1;
  PASSES(&r);
  char *bad_cap[] = {"ocr", "has space"};
  h.capabilities = bad_cap;
  h.n_capabilities = 2;
  REFUSED(&r, BT_EPROTO, "capability 1");
  char *empty_cap[] = {""};
  h.capabilities = empty_cap;
  h.n_capabilities = 1;
  REFUSED(&r, BT_EPROTO, "capability");

  /* slots: 1..1024 */
  hello_base(&r, &h);
  h.slots = 0;
  REFUSED(&r, BT_EPROTO, "slots");
  h.slots = BT_XP_MAX_SLOTS + 1;
  REFUSED(&r, BT_EPROTO, "slots");
  h.slots = BT_XP_MAX_SLOTS;
  PASSES(&r);
  h.slots = 1;
  PASSES(&r);
  h.has_slots = 0;
  REFUSED(&r, BT_EPROTO, "slots");

  /* software: text of at most 128 bytes */
  hello_base(&r, &h);
  h.software = "agent\n";
  REFUSED(&r, BT_EPROTO, "software");
  h.software = "bad \xff";
  REFUSED(&r, BT_EPROTO, "software");
  char sw[BT_NAME_MAX + 2];
  memset(sw, 's', sizeof sw - 1);
  sw[sizeof sw - 1] = '\0';
  h.software = sw;
  REFUSED(&r, BT_EPROTO, "software");
  sw[BT_NAME_MAX] = '\0';
  PASSES(&r);
}

static void test_xport_validate_auth(void **state) {
  (void)state;
  uint8_t sig[65];
  memset(sig, 7, sizeof sig);
  Baton__Auth a = BATON__AUTH__INIT;
  a.has_signature = 1;
  a.signature.data = sig;
  a.signature.len = 64;
  Baton__AgentRequest r;
  base(&r, BATON__AGENT_REQUEST__BODY_AUTH);
  r.auth = &a;
  PASSES(&r);

  a.signature.len = 63;
  REFUSED(&r, BT_EPROTO, "signature");
  a.signature.len = 65;
  REFUSED(&r, BT_EPROTO, "signature");
  a.signature.len = 0;
  REFUSED(&r, BT_EPROTO, "signature");
  a.signature.len = 64;
  a.has_signature = 0;
  REFUSED(&r, BT_EPROTO, "signature");
  a.has_signature = 1;

  /* held entries need both ids */
  enum { N = BT_XP_MAX_HELD + 1 };
  Baton__Held *hs = test_calloc(N, sizeof *hs);
  Baton__Held **hp = test_calloc(N, sizeof *hp);
  for (int i = 0; i < N; i++) {
    baton__held__init(&hs[i]);
    hs[i].has_package_id = 1;
    hs[i].package_id = (uint64_t)i + 1;
    hs[i].has_attempt = 1;
    hs[i].attempt = 1;
    hp[i] = &hs[i];
  }
  a.held = hp;
  a.n_held = 3;
  PASSES(&r);
  hs[1].package_id = 0;
  REFUSED(&r, BT_EPROTO, "held entry 1");
  hs[1].package_id = 2;
  hs[2].has_attempt = 0;
  REFUSED(&r, BT_EPROTO, "held entry 2");
  hs[2].has_attempt = 1;
  hs[0].attempt = 0;
  REFUSED(&r, BT_EPROTO, "held entry 0");
  hs[0].attempt = 1;
  hs[0].has_package_id = 0;
  REFUSED(&r, BT_EPROTO, "held");
  hs[0].has_package_id = 1;

  a.n_held = BT_XP_MAX_HELD; /* 4096 */
  PASSES(&r);
  a.n_held = BT_XP_MAX_HELD + 1; /* 4097 */
  REFUSED(&r, BT_EPROTO, "4097");
  test_free(hs);
  test_free(hp);
}

static void test_xport_validate_poll_and_heartbeat(void **state) {
  (void)state;
  Baton__Poll p = BATON__POLL__INIT;
  Baton__AgentRequest r;
  base(&r, BATON__AGENT_REQUEST__BODY_POLL);
  r.poll = &p;
  REFUSED(&r, BT_EPROTO, "free_slots"); /* without free_slots */
  p.has_free_slots = 1;
  p.free_slots = 0;
  PASSES(&r);
  p.free_slots = BT_XP_MAX_SLOTS;
  PASSES(&r);
  p.free_slots = BT_XP_MAX_SLOTS + 1;
  REFUSED(&r, BT_EPROTO, "free_slots");

  Baton__Held h = BATON__HELD__INIT;
  Baton__Held *hp[1] = {&h};
  Baton__Heartbeat hb = BATON__HEARTBEAT__INIT;
  base(&r, BATON__AGENT_REQUEST__BODY_HEARTBEAT);
  r.heartbeat = &hb;
  PASSES(&r); /* nothing running is fine */
  hb.running = hp;
  hb.n_running = 1;
  REFUSED(&r, BT_EPROTO, "running entry 0");
  h.has_package_id = 1;
  h.package_id = 9;
  h.has_attempt = 1;
  h.attempt = 2;
  PASSES(&r);
}

static void test_xport_validate_progress(void **state) {
  (void)state;
  static uint8_t cp[MAX_PAYLOAD + 1];
  Baton__Progress p = BATON__PROGRESS__INIT;
  p.has_package_id = 1;
  p.package_id = 42;
  p.has_attempt = 1;
  p.attempt = 3;
  Baton__AgentRequest r;
  base(&r, BATON__AGENT_REQUEST__BODY_PROGRESS);
  r.progress = &p;
  PASSES(&r); /* neither percent nor checkpoint: allowed */
  p.has_percent = 1;
  p.percent = 0;
  PASSES(&r);
  p.percent = 100;
  PASSES(&r);
  p.percent = 101;
  REFUSED(&r, BT_EPROTO, "101");
  p.percent = 50;

  p.has_checkpoint = 1;
  p.checkpoint.data = cp;
  p.checkpoint.len = MAX_PAYLOAD;
  PASSES(&r);
  p.checkpoint.len = MAX_PAYLOAD + 1;
  REFUSED(&r, BT_EPROTO, "checkpoint");
  assert_non_null(strstr(why, "1001"));
  p.checkpoint.len = 0;
  PASSES(&r);

  p.has_package_id = 0;
  REFUSED(&r, BT_EPROTO, "package_id");
  p.has_package_id = 1;
  p.package_id = 0;
  REFUSED(&r, BT_EPROTO, "package_id");
  p.package_id = 42;
  p.attempt = 0;
  REFUSED(&r, BT_EPROTO, "attempt");
  p.has_attempt = 0;
  p.attempt = 3;
  REFUSED(&r, BT_EPROTO, "attempt");
}

static void test_xport_validate_results(void **state) {
  (void)state;
  static uint8_t out[MAX_PAYLOAD + 1];
  enum { N = BT_XP_MAX_RESULTS + 1 };
  Baton__Result *rs = test_calloc(N, sizeof *rs);
  Baton__Result **rp = test_calloc(N, sizeof *rp);
  for (int i = 0; i < N; i++) {
    baton__result__init(&rs[i]);
    rs[i].has_package_id = 1;
    rs[i].package_id = (uint64_t)i + 1;
    rs[i].has_attempt = 1;
    rs[i].attempt = 1;
    rs[i].has_outcome = 1;
    rs[i].outcome = BATON__OUTCOME__OUTCOME_COMPLETED;
    rp[i] = &rs[i];
  }
  Baton__Results res = BATON__RESULTS__INIT;
  res.results = rp;
  Baton__AgentRequest r;
  base(&r, BATON__AGENT_REQUEST__BODY_RESULTS);
  r.results = &res;

  res.n_results = 0;
  REFUSED(&r, BT_EPROTO, "results");
  res.n_results = 1;
  PASSES(&r);
  res.n_results = BT_XP_MAX_RESULTS; /* 1024 */
  PASSES(&r);
  res.n_results = BT_XP_MAX_RESULTS + 1; /* 1025 */
  REFUSED(&r, BT_EPROTO, "1024");
  res.n_results = 3;

  /* every outcome in range passes; 0, 6 and absent do not */
  for (int o = BATON__OUTCOME__OUTCOME_COMPLETED; o <= BATON__OUTCOME__OUTCOME_HANDED_BACK;
       o++) {
    rs[2].outcome = (Baton__Outcome)o;
    PASSES(&r);
  }
  rs[2].outcome = BATON__OUTCOME__OUTCOME_UNSPECIFIED;
  REFUSED(&r, BT_EPROTO, "result 2");
  rs[2].outcome = (Baton__Outcome)6;
  REFUSED(&r, BT_EPROTO, "outcome");
  rs[2].outcome = (Baton__Outcome)-1;
  REFUSED(&r, BT_EPROTO, "outcome");
  rs[2].outcome = BATON__OUTCOME__OUTCOME_FAILED;
  rs[2].has_outcome = 0;
  REFUSED(&r, BT_EPROTO, "outcome");
  rs[2].has_outcome = 1;

  /* output up to the payload limit; one over it passes too: the session
   * fails that attempt (refusing the message would have it resent for ever) */
  rs[1].has_output = 1;
  rs[1].output.data = out;
  rs[1].output.len = MAX_PAYLOAD;
  PASSES(&r);
  rs[1].output.len = MAX_PAYLOAD + 1;
  PASSES(&r);
  rs[1].output.len = 10;

  /* ids */
  rs[0].package_id = 0;
  REFUSED(&r, BT_EPROTO, "package_id");
  rs[0].package_id = 1;
  rs[0].has_attempt = 0;
  REFUSED(&r, BT_EPROTO, "attempt");
  rs[0].has_attempt = 1;

  /* exit codes and error text are free */
  rs[0].has_exit_code = 1;
  rs[0].exit_code = -9;
  rs[0].error = "killed by signal 9";
  PASSES(&r);
  test_free(rs);
  test_free(rp);
}

static void test_xport_validate_bye(void **state) {
  (void)state;
  Baton__Bye bye = BATON__BYE__INIT;
  Baton__AgentRequest r;
  base(&r, BATON__AGENT_REQUEST__BODY_BYE);
  r.bye = &bye;
  PASSES(&r);
  bye.reason = "draining";
  PASSES(&r);
  r.has_ack_seq = 1;
  r.ack_seq = 12;
  PASSES(&r);
}

/* A short why buffer is never overrun and stays terminated. */
static void test_xport_validate_short_reason_buffer(void **state) {
  (void)state;
  Baton__AgentRequest r;
  base(&r, BATON__AGENT_REQUEST__BODY_POLL);
  r.has_version = 0;
  char small[8];
  memset(small, 'x', sizeof small);
  assert_int_equal(bt_xp__validate(&r, &opts, small, 5), BT_EPROTO);
  assert_int_equal(strlen(small), 4);
  assert_int_equal(small[5], 'x');
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_xport_validate_version),
      cmocka_unit_test(test_xport_validate_body_and_session),
      cmocka_unit_test(test_xport_validate_hello),
      cmocka_unit_test(test_xport_validate_auth),
      cmocka_unit_test(test_xport_validate_poll_and_heartbeat),
      cmocka_unit_test(test_xport_validate_progress),
      cmocka_unit_test(test_xport_validate_results),
      cmocka_unit_test(test_xport_validate_bye),
      cmocka_unit_test(test_xport_validate_short_reason_buffer),
  };
  return cmocka_run_group_tests_name("xport_validate", tests, setup, NULL);
}

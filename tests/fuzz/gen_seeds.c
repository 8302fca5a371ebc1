/*
 * Writes the binary seed corpora of the fuzz targets: packed agent requests
 * and replies, control requests, and control-socket byte streams, each a
 * valid example or a near miss (one field wrong). Packed with the generated
 * protobuf-c code, so the seeds follow proto/baton.proto. The text corpora
 * (batch, config, time, hours) are plain files written by hand.
 *
 *   build-fuzz/tests/fuzz/fuzz_gen_seeds tests/fuzz/corpus
 *
 * Run it again after a change to baton.proto and commit the files.
 */
#include "baton.pb-c.h"
#include "bt_frame.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *out_dir;
static int written;

static void put(const char *target, const char *name, const uint8_t *buf, size_t len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", out_dir, target);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    perror(path);
    exit(1);
  }
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
  written++;
}

#define PACK(target, name, type, msg)                                          \
  do {                                                                         \
    size_t n_ = type##__get_packed_size(msg);                                  \
    uint8_t *b_ = malloc(n_ + 1);                                              \
    type##__pack(msg, b_);                                                     \
    put(target, name, b_, n_);                                                 \
    maybe_sealed(target, name, b_, n_);                                        \
    free(b_);                                                                  \
  } while (0)

static uint8_t bytes64[64], bytes32[32];

/* A fuzz_agent_sealed input: mode/direction byte, tamper byte, inner message. */
static void sealed_seed(const char *name, uint8_t how, const uint8_t *buf, size_t len) {
  uint8_t *b = malloc(len + 2);
  b[0] = how;
  b[1] = (uint8_t)(len * 13 + how);
  if (len > 0)
    memcpy(b + 2, buf, len);
  put("agent_sealed", name, b, len + 2);
  free(b);
}

/* Inner messages that also go into the sealed corpus, and how (bit 0: MAC,
 * bit 1: a reply to the agent). */
static const struct {
  const char *name;
  uint8_t how;
} sealed_too[] = {
    {"poll", 0},      {"heartbeat", 1}, {"progress", 0},      {"results", 1},
    {"bye", 0},       {"hello", 0},     {"progress-percent-101", 1},
    {"work", 2},      {"welcome-with-work", 3}, {"error-session", 2},
    {"challenge", 3}, {"work-no-capability", 2},
};

static void maybe_sealed(const char *target, const char *name, const uint8_t *buf,
                         size_t len) {
  bool reply = strcmp(target, "agent_reply") == 0;
  for (size_t i = 0; i < sizeof sealed_too / sizeof sealed_too[0]; i++)
    if (strcmp(sealed_too[i].name, name) == 0 && ((sealed_too[i].how & 2) != 0) == reply) {
      char n[128];
      snprintf(n, sizeof n, "%s-%s", reply ? "reply" : "request", name);
      sealed_seed(n, sealed_too[i].how, buf, len);
    }
}

/* --- agent requests (server/xport) --------------------------------------- */

static void areq(const char *name, Baton__AgentRequest *r) {
  PACK("agent_request", name, baton__agent_request, r);
}

static void base_req(Baton__AgentRequest *r, Baton__AgentRequest__BodyCase body) {
  baton__agent_request__init(r);
  r->has_version = 1;
  r->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  if (body != BATON__AGENT_REQUEST__BODY_HELLO) {
    r->has_session = 1;
    r->session = 0x1122334455667788ull;
  }
  r->body_case = body;
}

static void agent_requests(void) {
  Baton__AgentRequest r;
  char *caps[] = {"upper", "wordcount"}, *bad_caps[] = {"upper", "word count"};
  Baton__Hello hello = BATON__HELLO__INIT;
  hello.vendor = "acme-eu";
  hello.agent_name = "acme-1";
  hello.capabilities = caps;
  hello.n_capabilities = 2;
  hello.has_slots = 1;
  hello.slots = 2;
  hello.software = "baton-agent/0.1.0";
  base_req(&r, BATON__AGENT_REQUEST__BODY_HELLO);
  r.hello = &hello;
  areq("hello", &r);
  hello.has_slots = 0;
  areq("hello-no-slots", &r);
  hello.has_slots = 1;
  r.version = 2;
  areq("hello-version-2", &r);
  r.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  hello.capabilities = bad_caps;
  areq("hello-bad-capability", &r);
  hello.capabilities = caps;
  hello.n_capabilities = 0;
  areq("hello-no-capabilities", &r);
  hello.n_capabilities = 2;

  Baton__Held h1 = BATON__HELD__INIT, h2 = BATON__HELD__INIT, h0 = BATON__HELD__INIT;
  h1.has_package_id = h1.has_attempt = 1;
  h1.package_id = 42;
  h1.attempt = 1;
  h2.has_package_id = h2.has_attempt = 1;
  h2.package_id = 43;
  h2.attempt = 2;
  h0.has_package_id = h0.has_attempt = 1;
  h0.package_id = 44;
  h0.attempt = 0;
  Baton__Held *held[] = {&h1, &h2}, *held_bad[] = {&h1, &h0};
  Baton__Auth auth = BATON__AUTH__INIT;
  auth.has_signature = 1;
  auth.signature.data = bytes64;
  auth.signature.len = 64;
  auth.held = held;
  auth.n_held = 2;
  auth.has_kx_public_key = 1;
  auth.kx_public_key.data = bytes32;
  auth.kx_public_key.len = 32;
  base_req(&r, BATON__AGENT_REQUEST__BODY_AUTH);
  r.auth = &auth;
  areq("auth", &r);
  auth.signature.len = 63;
  areq("auth-short-signature", &r);
  auth.signature.len = 64;
  auth.held = held_bad;
  areq("auth-held-attempt-0", &r);

  Baton__Poll poll = BATON__POLL__INIT;
  poll.has_free_slots = 1;
  poll.free_slots = 2;
  base_req(&r, BATON__AGENT_REQUEST__BODY_POLL);
  r.poll = &poll;
  r.has_ack_seq = 1;
  r.ack_seq = 7;
  areq("poll", &r);
  r.has_session = 0;
  areq("poll-no-session", &r);
  r.has_session = 1;
  poll.has_free_slots = 0;
  areq("poll-no-free-slots", &r);

  Baton__Heartbeat hb = BATON__HEARTBEAT__INIT;
  hb.running = held;
  hb.n_running = 2;
  hb.has_free_slots = 1;
  hb.free_slots = 0;
  base_req(&r, BATON__AGENT_REQUEST__BODY_HEARTBEAT);
  r.heartbeat = &hb;
  areq("heartbeat", &r);
  hb.free_slots = 5000;
  areq("heartbeat-too-many-slots", &r);

  Baton__Progress pr = BATON__PROGRESS__INIT;
  pr.has_package_id = pr.has_attempt = pr.has_percent = pr.has_checkpoint = 1;
  pr.package_id = 42;
  pr.attempt = 1;
  pr.percent = 50;
  pr.checkpoint.data = (uint8_t *)"page=17";
  pr.checkpoint.len = 7;
  base_req(&r, BATON__AGENT_REQUEST__BODY_PROGRESS);
  r.progress = &pr;
  areq("progress", &r);
  pr.percent = 101;
  areq("progress-percent-101", &r);
  pr.percent = 50;
  pr.has_attempt = 0;
  areq("progress-no-attempt", &r);

  Baton__Result x1 = BATON__RESULT__INIT, x2 = BATON__RESULT__INIT;
  x1.has_package_id = x1.has_attempt = x1.has_outcome = x1.has_output = 1;
  x1.package_id = 42;
  x1.attempt = 1;
  x1.outcome = BATON__OUTCOME__OUTCOME_COMPLETED;
  x1.output.data = (uint8_t *)"HELLO BATON\n";
  x1.output.len = 12;
  x2.has_package_id = x2.has_attempt = x2.has_outcome = x2.has_exit_code = 1;
  x2.package_id = 43;
  x2.attempt = 2;
  x2.outcome = BATON__OUTCOME__OUTCOME_FAILED;
  x2.exit_code = 3;
  x2.error = "exit 3";
  Baton__Result *xs[] = {&x1, &x2};
  Baton__Results rs = BATON__RESULTS__INIT;
  rs.results = xs;
  rs.n_results = 2;
  rs.has_free_slots = 1;
  rs.free_slots = 2;
  base_req(&r, BATON__AGENT_REQUEST__BODY_RESULTS);
  r.results = &rs;
  areq("results", &r);
  x2.outcome = (Baton__Outcome)99;
  areq("results-bad-outcome", &r);
  rs.n_results = 0;
  areq("results-empty", &r);

  Baton__Bye bye = BATON__BYE__INIT;
  bye.reason = "shutdown";
  base_req(&r, BATON__AGENT_REQUEST__BODY_BYE);
  r.bye = &bye;
  areq("bye", &r);

  Baton__Sealed sealed = BATON__SEALED__INIT;
  sealed.has_counter = sealed.has_box = 1;
  sealed.counter = 1;
  sealed.box.data = bytes64;
  sealed.box.len = 48;
  base_req(&r, BATON__AGENT_REQUEST__BODY_SEALED);
  r.sealed = &sealed;
  areq("sealed", &r);

  put("agent_request", "empty", (const uint8_t *)"", 0);
  /* Hello whose vendor holds a NUL ("ac\0me"): bt_pb_check refuses it. */
  static const uint8_t nul_vendor[] = {0x08, 0x01, 0x52, 0x12, 0x0a, 0x05, 'a', 'c',
                                       0x00, 'm',  'e',  0x12, 0x01, 'a',  0x1a, 0x01,
                                       'u',  0x20, 0x01, 0x2a, 0x01, 'x'};
  put("agent_request", "hello-nul-in-vendor", nul_vendor, sizeof nul_vendor);
}

/* --- agent replies (worker/lib) ------------------------------------------- */

static void arep(const char *name, Baton__AgentReply *r) {
  PACK("agent_reply", name, baton__agent_reply, r);
}

static void base_rep(Baton__AgentReply *r, Baton__AgentReply__BodyCase body) {
  baton__agent_reply__init(r);
  r->has_version = 1;
  r->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  r->body_case = body;
}

static void agent_replies(void) {
  Baton__AgentReply r;
  Baton__Challenge ch = BATON__CHALLENGE__INIT;
  ch.has_session = ch.has_nonce = ch.has_kx_public_key = ch.has_seal = 1;
  ch.session = 0x1122334455667788ull;
  ch.nonce.data = bytes32;
  ch.nonce.len = 32;
  ch.kx_public_key.data = bytes32;
  ch.kx_public_key.len = 32;
  ch.seal = BATON__SEAL_MODE__SEAL_MODE_SECRETBOX;
  base_rep(&r, BATON__AGENT_REPLY__BODY_CHALLENGE);
  r.challenge = &ch;
  arep("challenge", &r);
  ch.nonce.len = 16;
  arep("challenge-short-nonce", &r);

  Baton__Assignment a1 = BATON__ASSIGNMENT__INIT, a2 = BATON__ASSIGNMENT__INIT;
  a1.has_seq = a1.has_package_id = a1.has_attempt = a1.has_payload = a1.has_deadline_at = 1;
  a1.seq = 1;
  a1.package_id = 42;
  a1.attempt = 1;
  a1.capability = "upper";
  a1.payload.data = (uint8_t *)"hello baton";
  a1.payload.len = 11;
  a1.deadline_at = 1800000000000LL;
  a2.has_seq = a2.has_package_id = a2.has_attempt = a2.has_checkpoint = 1;
  a2.seq = 2;
  a2.package_id = 43;
  a2.attempt = 3;
  a2.capability = "wordcount";
  a2.checkpoint.data = (uint8_t *)"page=17";
  a2.checkpoint.len = 7;
  Baton__Assignment *as[] = {&a1, &a2};
  Baton__Held h1 = BATON__HELD__INIT;
  h1.has_package_id = h1.has_attempt = 1;
  h1.package_id = 40;
  h1.attempt = 1;
  Baton__Held *held[] = {&h1};
  Baton__Work w = BATON__WORK__INIT;
  w.assignments = as;
  w.n_assignments = 2;
  w.acked = held;
  w.n_acked = 1;
  w.cancel = held;
  w.n_cancel = 1;
  base_rep(&r, BATON__AGENT_REPLY__BODY_WORK);
  r.work = &w;
  arep("work", &r);
  a2.capability = NULL;
  arep("work-no-capability", &r);
  a2.capability = "wordcount";
  a1.deadline_at = -5;
  arep("work-negative-deadline", &r);
  a1.deadline_at = 1800000000000LL;
  r.has_version = 0;
  arep("work-no-version", &r);

  Baton__Welcome wel = BATON__WELCOME__INIT;
  wel.has_agent_id = wel.has_heartbeat_ms = wel.has_lease_ms = wel.has_poll_ms =
      wel.has_max_message_bytes = 1;
  wel.agent_id = 7;
  wel.heartbeat_ms = 1000;
  wel.lease_ms = 3000;
  wel.poll_ms = 1000;
  wel.max_message_bytes = 1 << 20;
  base_rep(&r, BATON__AGENT_REPLY__BODY_WELCOME);
  r.welcome = &wel;
  arep("welcome", &r);
  wel.work = &w;
  arep("welcome-with-work", &r);

  Baton__Error e = BATON__ERROR__INIT;
  e.has_code = 1;
  e.code = BATON__ERROR_CODE__ERROR_VERSION;
  e.message = "protocol version 2 not supported; this broker speaks 1";
  base_rep(&r, BATON__AGENT_REPLY__BODY_ERROR);
  r.error = &e;
  r.version = 2;
  arep("error-version", &r);
  r.version = 1;
  e.code = BATON__ERROR_CODE__ERROR_SESSION;
  arep("error-session", &r);
  e.has_code = 0;
  arep("error-no-code", &r);

  Baton__Sealed sealed = BATON__SEALED__INIT;
  sealed.has_counter = sealed.has_reply_to = sealed.has_box = 1;
  sealed.counter = 1;
  sealed.reply_to = 1;
  sealed.box.data = bytes64;
  sealed.box.len = 40;
  base_rep(&r, BATON__AGENT_REPLY__BODY_SEALED);
  r.sealed = &sealed;
  arep("sealed", &r);
  put("agent_reply", "empty", (const uint8_t *)"", 0);
}

/* --- control requests (server/ctl) ---------------------------------------- */

static void creq(const char *name, Baton__CtlRequest *r) {
  PACK("ctl_request", name, baton__ctl_request, r);
}

static void base_ctl(Baton__CtlRequest *r, Baton__CtlRequest__BodyCase body) {
  baton__ctl_request__init(r);
  r->has_version = 1;
  r->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  r->body_case = body;
}

static void ctl_requests(void) {
  Baton__CtlRequest r;
  char *caps[] = {"upper", "wordcount"}, *certs[] = {"iso27001", "soc2"};
  char *regions[] = {"EU-DE", "EU-FR"}, *bad[] = {"EU DE"};
  Baton__VendorAdd va = BATON__VENDOR_ADD__INIT;
  va.name = "acme-eu";
  va.region = "EU-DE";
  va.model = "nearshore";
  va.capabilities = caps;
  va.n_capabilities = 2;
  va.certs = certs;
  va.n_certs = 2;
  va.has_capacity = va.has_cost = va.has_weight = 1;
  va.capacity = 4;
  va.cost = 1.5;
  va.weight = 1.0;
  va.hours = "Mon-Fri 08:00-18:00 Europe/Berlin";
  base_ctl(&r, BATON__CTL_REQUEST__BODY_VENDOR_ADD);
  r.vendor_add = &va;
  creq("vendor-add", &r);
  va.hours = "Sat-Mon 22:00-06:00, Wed 12:00-24:00 America/New_York";
  creq("vendor-add-hours-wrap", &r);
  va.hours = "Mon-Fri 25:00-18:00 Mars/Base";
  creq("vendor-add-bad-hours", &r);
  va.hours = NULL;
  va.n_capabilities = 0;
  creq("vendor-add-no-capability", &r);
  va.n_capabilities = 2;
  va.model = "somewhere";
  creq("vendor-add-bad-model", &r);

  Baton__PackageSpec p1 = BATON__PACKAGE_SPEC__INIT, p2 = BATON__PACKAGE_SPEC__INIT;
  p1.capability = "upper";
  p1.has_payload = p1.has_priority = p1.has_deadline_at = p1.has_not_before_at = 1;
  p1.payload.data = (uint8_t *)"hello baton";
  p1.payload.len = 11;
  p1.priority = 3;
  p1.deadline_at = 1800000000000LL;
  p1.not_before_at = 1790000000000LL;
  p1.regions = regions;
  p1.n_regions = 2;
  p1.certs = certs;
  p1.n_certs = 1;
  p1.has_max_cost = p1.has_max_attempts = 1;
  p1.max_cost = 2.5;
  p1.max_attempts = 5;
  p1.prefer = caps;
  p1.n_prefer = 1;
  p1.avoid = caps + 1;
  p1.n_avoid = 1;
  p1.key = "inv-42";
  p2.capability = "wordcount";
  Baton__PackageSpec *ps[] = {&p1, &p2};
  Baton__Submit sub = BATON__SUBMIT__INIT;
  sub.packages = ps;
  sub.n_packages = 2;
  base_ctl(&r, BATON__CTL_REQUEST__BODY_SUBMIT);
  r.submit = &sub;
  creq("submit", &r);
  p1.priority = 12;
  creq("submit-priority-12", &r);
  p1.priority = 3;
  p1.regions = bad;
  p1.n_regions = 1;
  creq("submit-bad-region", &r);
  p1.regions = regions;
  p1.max_cost = -1;
  creq("submit-negative-cost", &r);
  p1.max_cost = 2.5;
  p2.capability = NULL;
  creq("submit-no-capability", &r);
  p2.capability = "wordcount";
  r.admin_token = "s3cret-token";
  creq("submit-with-token", &r);
  r.has_version = 0;
  creq("submit-no-version", &r);

  Baton__VendorOp vo = BATON__VENDOR_OP__INIT;
  vo.vendor = "acme-eu";
  vo.has_op = 1;
  vo.op = BATON__VENDOR_OP_KIND__VENDOR_OP_DRAIN;
  base_ctl(&r, BATON__CTL_REQUEST__BODY_VENDOR_OP);
  r.vendor_op = &vo;
  creq("vendor-op-drain", &r);
  vo.op = (Baton__VendorOpKind)9;
  creq("vendor-op-unknown", &r);

  Baton__PackageOp po = BATON__PACKAGE_OP__INIT;
  po.has_id = po.has_op = 1;
  po.id = 42;
  po.op = BATON__PACKAGE_OP_KIND__PACKAGE_OP_REASSIGN;
  po.to = "globex-in";
  base_ctl(&r, BATON__CTL_REQUEST__BODY_PACKAGE_OP);
  r.package_op = &po;
  creq("package-op-reassign", &r);
  po.op = BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL;
  creq("package-op-cancel-with-to", &r);
  po.to = NULL;
  po.id = 0x8000000000000000ull;
  creq("package-op-id-too-big", &r);

  Baton__HandoffQuery hq = BATON__HANDOFF_QUERY__INIT;
  hq.vendor = "acme-eu";
  hq.has_package_id = hq.has_since_at = hq.has_limit = 1;
  hq.package_id = 42;
  hq.since_at = 1700000000000LL;
  hq.limit = 100;
  base_ctl(&r, BATON__CTL_REQUEST__BODY_HANDOFFS);
  r.handoffs = &hq;
  creq("handoffs", &r);
  hq.limit = 0;
  creq("handoffs-limit-0", &r);

  Baton__AuditQuery aq = BATON__AUDIT_QUERY__INIT;
  aq.vendor = "acme-eu";
  aq.has_limit = 1;
  aq.limit = 1000;
  base_ctl(&r, BATON__CTL_REQUEST__BODY_AUDIT);
  r.audit = &aq;
  creq("audit", &r);

  Baton__ScorecardQuery sq = BATON__SCORECARD_QUERY__INIT;
  sq.vendor = "acme-eu";
  base_ctl(&r, BATON__CTL_REQUEST__BODY_SCORECARD);
  r.scorecard = &sq;
  creq("scorecard", &r);

  Baton__ConfigSet cs = BATON__CONFIG_SET__INIT;
  cs.key = "retry_base";
  cs.value = "2s";
  base_ctl(&r, BATON__CTL_REQUEST__BODY_CONFIG_SET);
  r.config_set = &cs;
  creq("config-set-duration", &r);
  cs.key = "share_cap";
  cs.value = "0.25";
  creq("config-set-real", &r);
  cs.key = "max_payload_bytes";
  cs.value = "512k";
  creq("config-set-bytes", &r);
  cs.key = "no_such_key";
  creq("config-set-unknown", &r);

  Baton__ConfigQuery cq = BATON__CONFIG_QUERY__INIT;
  cq.key = "lease";
  base_ctl(&r, BATON__CTL_REQUEST__BODY_CONFIG_GET);
  r.config_get = &cq;
  creq("config-get", &r);

  Baton__Empty empty = BATON__EMPTY__INIT;
  base_ctl(&r, BATON__CTL_REQUEST__BODY_STATS);
  r.stats = &empty;
  creq("stats", &r);

  uint64_t ids[] = {42, 43};
  Baton__WaitQuery wq = BATON__WAIT_QUERY__INIT;
  wq.ids = ids;
  wq.n_ids = 2;
  base_ctl(&r, BATON__CTL_REQUEST__BODY_WAIT);
  r.wait = &wq;
  creq("wait", &r);
  put("ctl_request", "empty", (const uint8_t *)"", 0);
}

/* --- control streams (proto/bt_frame) ------------------------------------- */

/* A fuzz_ctl_frame input: the limit, then the stream cut into chunks of at
 * most `chunk` bytes (1..63). */
static void frame_seed(const char *name, uint32_t limit, const uint8_t *stream, size_t len,
                       unsigned chunk, const uint8_t *tail, size_t tail_len) {
  size_t cap = 3 + len + len / chunk + 2 + tail_len;
  uint8_t *b = malloc(cap), *p = b;
  *p++ = (uint8_t)(limit >> 16);
  *p++ = (uint8_t)(limit >> 8);
  *p++ = (uint8_t)limit;
  for (size_t o = 0; o < len; o += chunk) {
    size_t n = len - o < chunk ? len - o : chunk;
    *p++ = (uint8_t)n;
    memcpy(p, stream + o, n);
    p += n;
  }
  if (tail_len > 0) {
    memcpy(p, tail, tail_len);
    p += tail_len;
  }
  put("ctl_frame", name, b, (size_t)(p - b));
  free(b);
}

static size_t framed(uint8_t *out, const uint8_t *body, uint32_t len) {
  bt_frame_put_header(out, len);
  memcpy(out + BT_FRAME_HEADER, body, len);
  return BT_FRAME_HEADER + len;
}

static void ctl_frames(void) {
  Baton__CtlRequest r;
  Baton__Empty empty = BATON__EMPTY__INIT;
  base_ctl(&r, BATON__CTL_REQUEST__BODY_STATS);
  r.stats = &empty;
  uint8_t body[64], stream[256];
  uint32_t n = (uint32_t)baton__ctl_request__pack(&r, body);
  size_t len = framed(stream, body, n);
  frame_seed("one-frame", 1 << 20, stream, len, 63, NULL, 0);
  frame_seed("one-frame-bytewise", 1 << 20, stream, len, 1, NULL, 0);
  len += framed(stream + len, body, n);
  len += framed(stream + len, body, 0);
  len += framed(stream + len, body, n);
  frame_seed("three-frames-and-empty", 1 << 20, stream, len, 5, NULL, 0);
  frame_seed("over-limit", 3, stream, len, 7, NULL, 0);
  frame_seed("truncated", 1 << 20, stream, len - 3, 63, NULL, 0);
  /* A 64 KiB frame whose body is filler, then a second filler header that is
   * over the limit. */
  static const uint8_t big_hdr[] = {0x00, 0x01, 0x00, 0x00};
  static const uint8_t fill[] = {0xc0 | 16, 0xc0 | 1};
  frame_seed("64k-then-over-limit", 1 << 20, big_hdr, 4, 4, fill, sizeof fill);
  /* A 300 KiB frame arriving in 4 KiB to 252 KiB pieces: the body grows. */
  static const uint8_t grow_hdr[] = {0x00, 0x04, 0xb0, 0x00};
  static const uint8_t grow[] = {0xc0 | 1, 0xc0 | 3, 0xc0 | 63, 0xc0 | 8};
  frame_seed("300k-growing", 1 << 20, grow_hdr, 4, 4, grow, sizeof grow);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  for (int i = 0; i < 64; i++)
    bytes64[i] = (uint8_t)(i * 37 + 11);
  for (int i = 0; i < 32; i++)
    bytes32[i] = (uint8_t)(i * 53 + 7);
  agent_requests();
  agent_replies();
  ctl_requests();
  ctl_frames();
  sealed_seed("request-garbage", 1, (const uint8_t *)"\xff\x01garbage", 9);
  printf("%d seed files written under %s\n", written, out_dir);
  return 0;
}

/*
 * server/ctl/validate.c: bt_ctl__validate_spec, bt_ctl__validate_vendor and
 * the checks of vendor/package operations and handoff queries on messages
 * built in C. Each case starts from a valid message, breaks one field
 * and expects BT_EINVAL with a readable reason that points at the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "ctl_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAYLOAD 1000u
#define MAX_AT 253402300799999LL /* 9999-12-31T23:59:59.999Z */

static char why[256];

/* A readable reason: lowercase sentence, no function names. */
static void readable(int line, const char *needle) {
  if (why[0] == '\0' || !islower((unsigned char)why[0]))
    fail_msg("line %d: reason \"%s\" is not a lowercase sentence", line, why);
  if (strstr(why, "bt_") != NULL || strstr(why, "()") != NULL)
    fail_msg("line %d: reason \"%s\" names code", line, why);
  if (needle != NULL && strstr(why, needle) == NULL)
    fail_msg("line %d: reason \"%s\" lacks \"%s\"", line, why, needle);
}

#define SPEC_REFUSED(s, needle)                                                  \
  do {                                                                           \
    memset(why, 0, sizeof why);                                                  \
    int rc_ = bt_ctl__validate_spec((s), MAX_PAYLOAD, why, sizeof why);          \
    if (rc_ != BT_EINVAL)                                                        \
      fail_msg("line %d: spec accepted (rc=%d)", __LINE__, rc_);                 \
    readable(__LINE__, (needle));                                                \
  } while (0)

#define SPEC_PASSES(s)                                                           \
  do {                                                                           \
    memset(why, 0, sizeof why);                                                  \
    int rc_ = bt_ctl__validate_spec((s), MAX_PAYLOAD, why, sizeof why);          \
    if (rc_ != 0)                                                                \
      fail_msg("line %d: spec refused (%d): %s", __LINE__, rc_, why);            \
  } while (0)

#define VENDOR_REFUSED(v, needle)                                                \
  do {                                                                           \
    memset(why, 0, sizeof why);                                                  \
    int rc_ = bt_ctl__validate_vendor((v), why, sizeof why);                     \
    if (rc_ != BT_EINVAL)                                                        \
      fail_msg("line %d: vendor accepted (rc=%d)", __LINE__, rc_);               \
    readable(__LINE__, (needle));                                                \
  } while (0)

#define VENDOR_PASSES(v)                                                         \
  do {                                                                           \
    memset(why, 0, sizeof why);                                                  \
    int rc_ = bt_ctl__validate_vendor((v), why, sizeof why);                     \
    if (rc_ != 0)                                                                \
      fail_msg("line %d: vendor refused (%d): %s", __LINE__, rc_, why);          \
  } while (0)

/* --- package specs ----------------------------------------------------------- */

static char *regions_ok[] = {"eu-west", "eu-central"};
static char *certs_ok[] = {"iso27001"};
static char *prefer_ok[] = {"acme"};
static char *avoid_ok[] = {"globex"};

static void spec_base(Baton__PackageSpec *s) {
  baton__package_spec__init(s);
  s->capability = "ocr";
}

static void spec_full(Baton__PackageSpec *s) {
  static uint8_t payload[MAX_PAYLOAD];
  spec_base(s);
  s->has_payload = 1;
  s->payload.data = payload;
  s->payload.len = 10;
  s->has_priority = 1;
  s->priority = 5;
  s->has_deadline_at = 1;
  s->deadline_at = 1795341600000LL;
  s->has_not_before_at = 1;
  s->not_before_at = 1795340000000LL;
  s->n_regions = 2;
  s->regions = regions_ok;
  s->n_certs = 1;
  s->certs = certs_ok;
  s->n_prefer = 1;
  s->prefer = prefer_ok;
  s->n_avoid = 1;
  s->avoid = avoid_ok;
  s->has_max_cost = 1;
  s->max_cost = 2.5;
  s->has_max_attempts = 1;
  s->max_attempts = 5;
  s->key = "order-2026-11-22/42";
}

static void test_ctl_validate_spec_valid(void **state) {
  (void)state;
  Baton__PackageSpec s;
  spec_base(&s);
  SPEC_PASSES(&s); /* only a capability */
  spec_full(&s);
  SPEC_PASSES(&s);

  /* boundaries that pass */
  s.payload.len = MAX_PAYLOAD;
  s.priority = 0;
  SPEC_PASSES(&s);
  s.priority = 9;
  s.deadline_at = 1;
  s.not_before_at = 0;
  SPEC_PASSES(&s);
  s.deadline_at = MAX_AT;
  s.not_before_at = MAX_AT;
  SPEC_PASSES(&s);
  s.max_cost = 0;
  s.max_attempts = 1;
  SPEC_PASSES(&s);
  s.max_attempts = 1000;
  s.key = "free text, with spaces and caf\xc3\xa9";
  SPEC_PASSES(&s);
  /* an empty payload is a payload */
  s.payload.len = 0;
  SPEC_PASSES(&s);
}

static void test_ctl_validate_spec_capability_and_payload(void **state) {
  (void)state;
  Baton__PackageSpec s;
  spec_full(&s);
  s.capability = NULL;
  SPEC_REFUSED(&s, "capability");
  s.capability = "";
  SPEC_REFUSED(&s, "capability");
  s.capability = "o c r";
  SPEC_REFUSED(&s, "capability");
  s.capability = "ocr\x1f";
  SPEC_REFUSED(&s, "capability");

  spec_full(&s);
  s.payload.len = MAX_PAYLOAD + 1;
  SPEC_REFUSED(&s, "payload of 1001 bytes");
  assert_non_null(strstr(why, "1000")); /* and the limit */
}

static void test_ctl_validate_spec_priority_and_times(void **state) {
  (void)state;
  Baton__PackageSpec s;
  spec_full(&s);
  s.priority = 10;
  SPEC_REFUSED(&s, "priority 10");
  s.priority = UINT32_MAX;
  SPEC_REFUSED(&s, "priority");

  static const int64_t bad_deadlines[] = {0, -1, INT64_MIN, MAX_AT + 1, INT64_MAX};
  for (size_t i = 0; i < sizeof bad_deadlines / sizeof bad_deadlines[0]; i++) {
    spec_full(&s);
    s.deadline_at = bad_deadlines[i];
    SPEC_REFUSED(&s, "deadline");
  }
  static const int64_t bad_nb[] = {-1, INT64_MIN, MAX_AT + 1};
  for (size_t i = 0; i < sizeof bad_nb / sizeof bad_nb[0]; i++) {
    spec_full(&s);
    s.not_before_at = bad_nb[i];
    SPEC_REFUSED(&s, "not-before");
  }
  /* absent fields are not checked */
  spec_full(&s);
  s.has_deadline_at = 0;
  s.deadline_at = -5;
  s.has_not_before_at = 0;
  s.not_before_at = -5;
  s.has_priority = 0;
  s.priority = 99;
  SPEC_PASSES(&s);
}

static void test_ctl_validate_spec_lists(void **state) {
  (void)state;
  Baton__PackageSpec s;
  char *many[BT_CORE_MAX_LIST + 1];
  char buf[BT_CORE_MAX_LIST + 1][12];
  for (int i = 0; i <= BT_CORE_MAX_LIST; i++) {
    snprintf(buf[i], sizeof buf[i], "region-%d", i);
    many[i] = buf[i];
  }
  spec_full(&s);
  s.regions = many;
  s.n_regions = BT_CORE_MAX_LIST; /* 32 */
  SPEC_PASSES(&s);
  s.n_regions = BT_CORE_MAX_LIST + 1; /* 33 */
  SPEC_REFUSED(&s, "region");
  assert_non_null(strstr(why, "33"));

  char *bad_region[] = {"eu-west", "eu west"};
  spec_full(&s);
  s.regions = bad_region;
  s.n_regions = 2;
  SPEC_REFUSED(&s, "region");
  assert_non_null(strstr(why, "eu west")); /* quotes the offending name */
  char *null_region[] = {NULL};
  s.regions = null_region;
  s.n_regions = 1;
  SPEC_REFUSED(&s, "region");
  char *sep_region[] = {"eu\x1fwest"};
  s.regions = sep_region;
  SPEC_REFUSED(&s, "region");

  /* the same rules for certs, prefer and avoid */
  char *bad[] = {"a,b"};
  spec_full(&s);
  s.certs = bad;
  SPEC_REFUSED(&s, "cert");
  spec_full(&s);
  s.prefer = bad;
  SPEC_REFUSED(&s, "prefer");
  spec_full(&s);
  s.avoid = bad;
  SPEC_REFUSED(&s, "avoid");
  spec_full(&s);
  s.avoid = many;
  s.n_avoid = BT_CORE_MAX_LIST + 1;
  SPEC_REFUSED(&s, "avoid");

  /* a long invalid name is cut in the reason, which stays terminated */
  char longname[300];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  longname[3] = ' ';
  char *lr[] = {longname};
  spec_full(&s);
  s.regions = lr;
  s.n_regions = 1;
  SPEC_REFUSED(&s, "region");
  assert_true(strlen(why) < 200);
}

static void test_ctl_validate_spec_cost_attempts_key(void **state) {
  (void)state;
  Baton__PackageSpec s;
  static const double bad_costs[] = {-1.0, -0.001, NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof bad_costs / sizeof bad_costs[0]; i++) {
    spec_full(&s);
    s.max_cost = bad_costs[i];
    SPEC_REFUSED(&s, "max cost");
  }
  spec_full(&s);
  s.max_cost = 1e300;
  SPEC_PASSES(&s);

  spec_full(&s);
  s.max_attempts = 0;
  SPEC_REFUSED(&s, "max attempts");
  s.max_attempts = 1001;
  SPEC_REFUSED(&s, "max attempts");

  char k257[258], k256[257];
  memset(k257, 'k', 257);
  k257[257] = '\0';
  memset(k256, 'k', 256);
  k256[256] = '\0';
  static const char *const bad_keys[] = {"", "a\tb", "line\n", "esc\x1b[0m", "del\x7f",
                                         "bad \xff utf8"};
  for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
    spec_full(&s);
    s.key = (char *)bad_keys[i];
    SPEC_REFUSED(&s, "key");
  }
  spec_full(&s);
  s.key = k257;
  SPEC_REFUSED(&s, "key");
  s.key = k256;
  SPEC_PASSES(&s);
  s.key = NULL; /* no key at all */
  SPEC_PASSES(&s);
}

/* --- vendors ------------------------------------------------------------------ */

static char *vcaps_ok[] = {"ocr", "translate:de"};

static void vendor_base(Baton__VendorAdd *v) {
  baton__vendor_add__init(v);
  v->name = "acme";
  v->region = "eu-west";
  v->n_capabilities = 2;
  v->capabilities = vcaps_ok;
}

static void vendor_full(Baton__VendorAdd *v) {
  vendor_base(v);
  v->model = "nearshore";
  v->n_certs = 1;
  v->certs = certs_ok;
  v->has_capacity = 1;
  v->capacity = 10;
  v->has_cost = 1;
  v->cost = 1.0;
  v->hours = "Mon-Fri 08:00-18:00 Europe/Berlin";
  v->has_weight = 1;
  v->weight = 1.0;
}

static void test_ctl_validate_vendor_valid(void **state) {
  (void)state;
  Baton__VendorAdd v;
  vendor_base(&v);
  VENDOR_PASSES(&v);
  vendor_full(&v);
  VENDOR_PASSES(&v);
  static const char *const models[] = {"onshore", "nearshore", "offshore", "captive"};
  for (size_t i = 0; i < 4; i++) {
    v.model = (char *)models[i];
    VENDOR_PASSES(&v);
  }
  v.capacity = 1;
  v.cost = 0;
  v.weight = 1000;
  VENDOR_PASSES(&v);
  v.capacity = 1000000;
  v.weight = 0.001;
  VENDOR_PASSES(&v);
  v.hours = "";
  VENDOR_PASSES(&v);
}

static void test_ctl_validate_vendor_name_region_model(void **state) {
  (void)state;
  Baton__VendorAdd v;
  char n129[130];
  memset(n129, 'n', 129);
  n129[129] = '\0';
  static const char *const bad_names[] = {NULL, "", "ac me", "acme\n", "a;b", "caf\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    vendor_full(&v);
    v.name = (char *)bad_names[i];
    VENDOR_REFUSED(&v, "vendor name");
    vendor_full(&v);
    v.region = (char *)bad_names[i];
    VENDOR_REFUSED(&v, "region");
  }
  vendor_full(&v);
  v.name = n129;
  VENDOR_REFUSED(&v, "vendor name");

  static const char *const bad_models[] = {"", "inshore", "Onshore", "onshore ", "captive\n"};
  for (size_t i = 0; i < sizeof bad_models / sizeof bad_models[0]; i++) {
    vendor_full(&v);
    v.model = (char *)bad_models[i];
    VENDOR_REFUSED(&v, "model");
    assert_non_null(strstr(why, "onshore")); /* lists the choices */
  }
}

static void test_ctl_validate_vendor_capabilities(void **state) {
  (void)state;
  Baton__VendorAdd v;
  vendor_full(&v);
  v.n_capabilities = 0;
  v.capabilities = NULL;
  VENDOR_REFUSED(&v, "capability");

  char *bad[] = {"ocr", "o cr"};
  vendor_full(&v);
  v.capabilities = bad;
  VENDOR_REFUSED(&v, "capability");
  assert_non_null(strstr(why, "o cr"));

  char *many[BT_CORE_MAX_LIST + 1];
  char buf[BT_CORE_MAX_LIST + 1][8];
  for (int i = 0; i <= BT_CORE_MAX_LIST; i++) {
    snprintf(buf[i], sizeof buf[i], "c%d", i);
    many[i] = buf[i];
  }
  vendor_full(&v);
  v.capabilities = many;
  v.n_capabilities = BT_CORE_MAX_LIST;
  VENDOR_PASSES(&v);
  v.n_capabilities = BT_CORE_MAX_LIST + 1;
  VENDOR_REFUSED(&v, "capability");

  char *bad_cert[] = {"iso 27001"};
  vendor_full(&v);
  v.certs = bad_cert;
  VENDOR_REFUSED(&v, "cert");
}

static void test_ctl_validate_vendor_numbers_and_hours(void **state) {
  (void)state;
  Baton__VendorAdd v;
  vendor_full(&v);
  v.capacity = 0;
  VENDOR_REFUSED(&v, "capacity");
  v.capacity = 1000001;
  VENDOR_REFUSED(&v, "capacity");
  v.has_capacity = 0; /* absent: the default applies */
  VENDOR_PASSES(&v);

  static const double bad_costs[] = {-1.0, -0.5, NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof bad_costs / sizeof bad_costs[0]; i++) {
    vendor_full(&v);
    v.cost = bad_costs[i];
    VENDOR_REFUSED(&v, "cost");
  }
  static const double bad_weights[] = {0.0, -1.0, 1000.001, 1001.0, NAN, INFINITY};
  for (size_t i = 0; i < sizeof bad_weights / sizeof bad_weights[0]; i++) {
    vendor_full(&v);
    v.weight = bad_weights[i];
    VENDOR_REFUSED(&v, "weight");
  }

  static const char *const bad_hours[] = {"Mon-Fri\n08:00-18:00", "Mon-Fri 08:00\r",
                                          "tab\there", "bad \xff"};
  for (size_t i = 0; i < sizeof bad_hours / sizeof bad_hours[0]; i++) {
    vendor_full(&v);
    v.hours = (char *)bad_hours[i];
    VENDOR_REFUSED(&v, "hours");
  }
  char h129[130], h128[129];
  memset(h129, 'h', 129);
  h129[129] = '\0';
  memset(h128, 'h', 128);
  h128[128] = '\0';
  vendor_full(&v);
  v.hours = h129;
  VENDOR_REFUSED(&v, "hours");
  /* Within the length limit but not hours: refused by the parser now. */
  v.hours = h128;
  VENDOR_REFUSED(&v, "hours");
  v.hours = "Mon-Fri 09:00-17:30, Sat 10:00-14:00 America/New_York";
  VENDOR_PASSES(&v);
}

/* --- vendor and package operations, handoff queries ------------------------- */

#define CHECK_REFUSED(call, needle)                                              \
  do {                                                                           \
    memset(why, 0, sizeof why);                                                  \
    int rc_ = (call);                                                            \
    if (rc_ != BT_EINVAL)                                                        \
      fail_msg("line %d: accepted (rc=%d)", __LINE__, rc_);                      \
    readable(__LINE__, (needle));                                                \
  } while (0)

#define CHECK_PASSES(call)                                                       \
  do {                                                                           \
    memset(why, 0, sizeof why);                                                  \
    int rc_ = (call);                                                            \
    if (rc_ != 0)                                                                \
      fail_msg("line %d: refused (%d): %s", __LINE__, rc_, why);                 \
  } while (0)

static void test_ctl_validate_vendor_op(void **state) {
  (void)state;
  static const struct {
    Baton__VendorOpKind wire;
    bt_vendor_op_t core;
  } ops[] = {
      {BATON__VENDOR_OP_KIND__VENDOR_OP_DRAIN, BT_VENDOR_OP_DRAIN},
      {BATON__VENDOR_OP_KIND__VENDOR_OP_SUSPEND, BT_VENDOR_OP_SUSPEND},
      {BATON__VENDOR_OP_KIND__VENDOR_OP_RESUME, BT_VENDOR_OP_RESUME},
      {BATON__VENDOR_OP_KIND__VENDOR_OP_FAIL, BT_VENDOR_OP_FAIL},
  };
  Baton__VendorOp m;
  bt_vendor_op_t op;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    baton__vendor_op__init(&m);
    m.vendor = i % 2 ? "acme" : "42"; /* a name or an id */
    m.has_op = 1;
    m.op = ops[i].wire;
    op = (bt_vendor_op_t)-1;
    CHECK_PASSES(bt_ctl__validate_vendor_op(&m, &op, why, sizeof why));
    assert_int_equal(op, ops[i].core);
  }

  static const char *const bad_refs[] = {NULL, "", "ac me", "acme\n", "a;b"};
  for (size_t i = 0; i < sizeof bad_refs / sizeof bad_refs[0]; i++) {
    baton__vendor_op__init(&m);
    m.vendor = (char *)bad_refs[i];
    m.has_op = 1;
    m.op = BATON__VENDOR_OP_KIND__VENDOR_OP_FAIL;
    CHECK_REFUSED(bt_ctl__validate_vendor_op(&m, &op, why, sizeof why), "vendor");
  }

  baton__vendor_op__init(&m);
  m.vendor = "acme";
  CHECK_REFUSED(bt_ctl__validate_vendor_op(&m, &op, why, sizeof why),
                "vendor operation required");
  m.has_op = 1; /* present but UNSPECIFIED */
  CHECK_REFUSED(bt_ctl__validate_vendor_op(&m, &op, why, sizeof why),
                "unknown vendor operation 0");
  m.op = (Baton__VendorOpKind)99; /* from a newer client */
  CHECK_REFUSED(bt_ctl__validate_vendor_op(&m, &op, why, sizeof why),
                "unknown vendor operation 99");
  assert_non_null(strstr(why, "drain, suspend, resume or fail"));
}

static void test_ctl_validate_package_op(void **state) {
  (void)state;
  static const struct {
    Baton__PackageOpKind wire;
    bt_pkg_op_t core;
  } ops[] = {
      {BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL, BT_PKG_OP_CANCEL},
      {BATON__PACKAGE_OP_KIND__PACKAGE_OP_RETRY, BT_PKG_OP_RETRY},
      {BATON__PACKAGE_OP_KIND__PACKAGE_OP_REASSIGN, BT_PKG_OP_REASSIGN},
  };
  Baton__PackageOp m;
  bt_pkg_op_t op;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    baton__package_op__init(&m);
    m.has_id = m.has_op = 1;
    m.id = i == 0 ? 1 : (uint64_t)INT64_MAX; /* both ends of the id range */
    m.op = ops[i].wire;
    op = (bt_pkg_op_t)-1;
    CHECK_PASSES(bt_ctl__validate_package_op(&m, &op, why, sizeof why));
    assert_int_equal(op, ops[i].core);
  }
  /* reassign --to V: an id or a name */
  m.to = "acme";
  CHECK_PASSES(bt_ctl__validate_package_op(&m, &op, why, sizeof why));
  m.to = "7";
  CHECK_PASSES(bt_ctl__validate_package_op(&m, &op, why, sizeof why));
  m.to = "ac me";
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why), "target vendor");
  m.to = "";
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why), "target vendor");

  /* a target only with reassign */
  m.to = "acme";
  m.op = BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why),
                "only allowed with reassign");
  m.op = BATON__PACKAGE_OP_KIND__PACKAGE_OP_RETRY;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why),
                "only allowed with reassign");

  /* ids */
  baton__package_op__init(&m);
  m.has_op = 1;
  m.op = BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why), "package id");
  m.has_id = 1;
  m.id = 0;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why), "package id");
  m.id = (uint64_t)INT64_MAX + 1;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why), "package id");

  /* operations */
  m.id = 5;
  m.has_op = 0;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why),
                "package operation required");
  m.has_op = 1;
  m.op = BATON__PACKAGE_OP_KIND__PACKAGE_OP_UNSPECIFIED;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why),
                "unknown package operation 0");
  m.op = (Baton__PackageOpKind)4;
  CHECK_REFUSED(bt_ctl__validate_package_op(&m, &op, why, sizeof why),
                "cancel, retry or reassign");
}

static void test_ctl_validate_handoff_query(void **state) {
  (void)state;
  Baton__HandoffQuery q;
  baton__handoff_query__init(&q);
  CHECK_PASSES(bt_ctl__validate_handoff_query(&q, why, sizeof why)); /* no filter */
  q.vendor = "acme";
  q.has_package_id = q.has_since_at = q.has_limit = 1;
  q.package_id = (uint64_t)INT64_MAX;
  q.since_at = MAX_AT;
  q.limit = BT_CTL_MAX_HANDOFFS;
  CHECK_PASSES(bt_ctl__validate_handoff_query(&q, why, sizeof why));
  q.since_at = 0;
  q.limit = 1;
  q.package_id = 1;
  CHECK_PASSES(bt_ctl__validate_handoff_query(&q, why, sizeof why));

  q.vendor = "no such";
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "vendor");
  q.vendor = "";
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "vendor");
  q.vendor = NULL;

  q.package_id = 0;
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "package id");
  q.package_id = (uint64_t)INT64_MAX + 1;
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "package id");
  q.package_id = 1;

  q.since_at = -1;
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "since");
  q.since_at = MAX_AT + 1;
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "since");
  q.since_at = 0;

  q.limit = 0;
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "limit");
  q.limit = BT_CTL_MAX_HANDOFFS + 1;
  CHECK_REFUSED(bt_ctl__validate_handoff_query(&q, why, sizeof why), "limit must be 1-10000");
}

static void test_ctl_validate_audit_query(void **state) {
  (void)state;
  Baton__AuditQuery q;
  baton__audit_query__init(&q);
  CHECK_PASSES(bt_ctl__validate_audit_query(&q, why, sizeof why)); /* no filter */
  q.vendor = "acme";
  q.has_package_id = q.has_since_at = q.has_limit = 1;
  q.package_id = (uint64_t)INT64_MAX;
  q.since_at = MAX_AT;
  q.limit = BT_CTL_MAX_AUDIT;
  CHECK_PASSES(bt_ctl__validate_audit_query(&q, why, sizeof why));
  q.since_at = 0;
  q.limit = 1;
  q.package_id = 1;
  CHECK_PASSES(bt_ctl__validate_audit_query(&q, why, sizeof why));

  q.vendor = "no such";
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why), "vendor");
  q.vendor = "";
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why), "vendor");
  q.vendor = NULL;

  q.package_id = 0;
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why), "package id");
  q.package_id = (uint64_t)INT64_MAX + 1;
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why), "package id");
  q.package_id = 1;

  q.since_at = -1;
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why), "since");
  q.since_at = MAX_AT + 1;
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why), "since");
  q.since_at = 0;

  q.limit = 0;
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why), "limit");
  q.limit = BT_CTL_MAX_AUDIT + 1;
  CHECK_REFUSED(bt_ctl__validate_audit_query(&q, why, sizeof why),
                "limit must be 1-100000");
}

static void test_ctl_validate_scorecard_query(void **state) {
  (void)state;
  Baton__ScorecardQuery q;
  baton__scorecard_query__init(&q);
  CHECK_PASSES(bt_ctl__validate_scorecard_query(&q, why, sizeof why)); /* every vendor */
  q.vendor = "acme";
  CHECK_PASSES(bt_ctl__validate_scorecard_query(&q, why, sizeof why));
  q.vendor = "12";
  CHECK_PASSES(bt_ctl__validate_scorecard_query(&q, why, sizeof why));
  q.vendor = "no such";
  CHECK_REFUSED(bt_ctl__validate_scorecard_query(&q, why, sizeof why), "vendor");
  q.vendor = "";
  CHECK_REFUSED(bt_ctl__validate_scorecard_query(&q, why, sizeof why), "vendor");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ctl_validate_spec_valid),
      cmocka_unit_test(test_ctl_validate_spec_capability_and_payload),
      cmocka_unit_test(test_ctl_validate_spec_priority_and_times),
      cmocka_unit_test(test_ctl_validate_spec_lists),
      cmocka_unit_test(test_ctl_validate_spec_cost_attempts_key),
      cmocka_unit_test(test_ctl_validate_vendor_valid),
      cmocka_unit_test(test_ctl_validate_vendor_name_region_model),
      cmocka_unit_test(test_ctl_validate_vendor_capabilities),
      cmocka_unit_test(test_ctl_validate_vendor_numbers_and_hours),
      cmocka_unit_test(test_ctl_validate_vendor_op),
      cmocka_unit_test(test_ctl_validate_package_op),
      cmocka_unit_test(test_ctl_validate_handoff_query),
      cmocka_unit_test(test_ctl_validate_audit_query),
      cmocka_unit_test(test_ctl_validate_scorecard_query),
  };
  return cmocka_run_group_tests_name("ctl_validate", tests, NULL, NULL);
}

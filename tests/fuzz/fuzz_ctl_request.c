/*
 * Fuzz target: one control request as the broker decodes it (server/ctl
 * listener.c on_frame, then the validation bt_ctl__dispatch's handlers run
 * before they touch the core): bt_pb_check, unpack under the size budget, the
 * version check, then bt_ctl__validate_* for the body (every package of a
 * Submit), and bt_cfg_set for a ConfigSet. Input: one frame body (no length
 * prefix: fuzz_ctl_frame covers the framing).
 *
 * Invariants beyond "no crash":
 *   - what validation accepts has its required fields (an oracle written here
 *     from proto/baton.proto): a Submit's packages a capability name, priority
 *     0-9, payload within the limit; a VendorAdd a name, a region and a
 *     capability; operations a known kind and an id in 1..2^63-1;
 *   - every refusal comes with a reason;
 *   - an accepted request packed again is accepted again;
 *   - a config value that bt_cfg_set takes prints (bt_cfg_get) as text that
 *     sets the same value (cfg.h's promise), secrets and conninfo aside;
 *   - the budgeted allocator gets every byte back.
 */
#include "fuzz_util.h"

#include "bt_err.h"
#include "bt_hours.h"
#include "bt_log.h"
#include "bt_pballoc.h"
#include "bt_pbcheck.h"
#include "bt_valid.h"
#include "cfg.h"
#include "ctl_int.h"

#include <math.h>

#define MAX_PAYLOAD 1024u
#define MAX_BATCH 64u

static int reason(int rc, const char *why) {
  FUZZ_CHECK(rc == 0 || rc == BT_EINVAL, "rc %d", rc);
  FUZZ_CHECK(rc == 0 || why[0] != '\0', "refused without a reason");
  return rc;
}

static void names_ok(char **v, size_t n, const char *what) {
  FUZZ_CHECK(n <= BT_CORE_MAX_LIST, "%s: %zu entries", what, n);
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK(bt_valid_name(v[i]), "%s %zu is not a name", what, i);
}

static void spec_ok(const Baton__PackageSpec *s) {
  FUZZ_CHECK(s->capability != NULL && bt_valid_name(s->capability), "capability");
  FUZZ_CHECK(!s->has_payload || s->payload.len <= MAX_PAYLOAD, "payload over the limit");
  FUZZ_CHECK(!s->has_priority || s->priority <= 9, "priority %u", s->priority);
  FUZZ_CHECK(!s->has_deadline_at || s->deadline_at > 0, "deadline %lld",
             (long long)s->deadline_at);
  FUZZ_CHECK(!s->has_max_cost || (isfinite(s->max_cost) && s->max_cost >= 0), "max cost");
  FUZZ_CHECK(!s->has_max_attempts || (s->max_attempts >= 1 && s->max_attempts <= 1000),
             "max attempts %u", s->max_attempts);
  names_ok(s->regions, s->n_regions, "region");
  names_ok(s->certs, s->n_certs, "cert");
  names_ok(s->prefer, s->n_prefer, "prefer");
  names_ok(s->avoid, s->n_avoid, "avoid");
}

static void vendor_ok(const Baton__VendorAdd *v) {
  FUZZ_CHECK(v->name != NULL && bt_valid_name(v->name), "vendor name");
  FUZZ_CHECK(v->region != NULL && bt_valid_name(v->region), "region");
  FUZZ_CHECK(v->n_capabilities >= 1, "vendor without capabilities");
  names_ok(v->capabilities, v->n_capabilities, "capability");
  names_ok(v->certs, v->n_certs, "cert");
  FUZZ_CHECK(!v->has_weight || (v->weight > 0 && v->weight <= 1000), "weight");
  if (v->hours != NULL) {
    bt_hours_t h;
    FUZZ_CHECK(bt_hours_parse(v->hours, &h, NULL, 0) == 0, "hours accepted unparsed");
  }
}

/* bt_cfg_set then bt_cfg_get then bt_cfg_set again: the same value. */
static void config_set(const Baton__ConfigSet *m) {
  if (m->key == NULL || m->value == NULL)
    return;
  bt_config_t a, b;
  char err[256], text[1024];
  bt_cfg_init(&a);
  err[0] = '\0';
  int rc = bt_cfg_set(&a, m->key, m->value, err, sizeof err);
  FUZZ_CHECK(rc == 0 || rc == BT_EINVAL || rc == BT_ENOTFOUND, "rc %d", rc);
  FUZZ_CHECK(rc == 0 || err[0] != '\0', "config refused without a reason");
  const bt_cfg_key_t *k = bt_cfg_key(m->key);
  if (rc == 0 && !(k->flags & (BT_CFG_SECRET | BT_CFG_CONNINFO))) {
    FUZZ_CHECK(bt_cfg_get(&a, m->key, text, sizeof text) == 0, "get of a set key");
    memset(&b, 0, sizeof b); /* one key is compared */
    FUZZ_CHECK(bt_cfg_set(&b, m->key, text, err, sizeof err) == 0,
               "%s: its own text \"%s\" is refused: %s", m->key, text, err);
    FUZZ_CHECK(bt_cfg_same(&a, &b, k), "%s: \"%s\" reads back as another value", m->key,
               text);
    bt_cfg_free(&b);
  }
  bt_cfg_free(&a);
}

/* The validation the handlers run. Returns 0 when the request would reach the
 * core (or the store). */
static int validate(const Baton__CtlRequest *m) {
  char why[256];
  why[0] = '\0';
  if (!m->has_version || m->version != BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT)
    return BT_EVERSION;
  switch (m->body_case) {
  case BATON__CTL_REQUEST__BODY_VENDOR_ADD:
    if (reason(bt_ctl__validate_vendor(m->vendor_add, why, sizeof why), why) != 0)
      return BT_EINVAL;
    vendor_ok(m->vendor_add);
    return 0;
  case BATON__CTL_REQUEST__BODY_SUBMIT: {
    const Baton__Submit *s = m->submit;
    if (s->n_packages == 0 || s->n_packages > MAX_BATCH)
      return BT_ELIMIT;
    for (size_t i = 0; i < s->n_packages; i++) {
      why[0] = '\0';
      if (reason(bt_ctl__validate_spec(s->packages[i], MAX_PAYLOAD, why, sizeof why), why))
        return BT_EINVAL;
      spec_ok(s->packages[i]);
    }
    return 0;
  }
  case BATON__CTL_REQUEST__BODY_VENDOR_OP: {
    bt_vendor_op_t op = (bt_vendor_op_t)-1;
    if (reason(bt_ctl__validate_vendor_op(m->vendor_op, &op, why, sizeof why), why))
      return BT_EINVAL;
    FUZZ_CHECK(m->vendor_op->vendor != NULL && bt_valid_name(m->vendor_op->vendor),
               "vendor op without a vendor");
    FUZZ_CHECK(op == BT_VENDOR_OP_DRAIN || op == BT_VENDOR_OP_SUSPEND ||
                   op == BT_VENDOR_OP_RESUME || op == BT_VENDOR_OP_FAIL,
               "vendor op %d", (int)op);
    return 0;
  }
  case BATON__CTL_REQUEST__BODY_PACKAGE_OP: {
    bt_pkg_op_t op = (bt_pkg_op_t)-1;
    const Baton__PackageOp *p = m->package_op;
    if (reason(bt_ctl__validate_package_op(p, &op, why, sizeof why), why))
      return BT_EINVAL;
    FUZZ_CHECK(p->has_id && p->id >= 1 && p->id <= (uint64_t)INT64_MAX, "package id");
    FUZZ_CHECK(op == BT_PKG_OP_CANCEL || op == BT_PKG_OP_RETRY || op == BT_PKG_OP_REASSIGN,
               "package op %d", (int)op);
    FUZZ_CHECK(p->to == NULL || (op == BT_PKG_OP_REASSIGN && bt_valid_name(p->to)),
               "a target vendor without reassign");
    return 0;
  }
  case BATON__CTL_REQUEST__BODY_HANDOFFS:
    if (reason(bt_ctl__validate_handoff_query(m->handoffs, why, sizeof why), why))
      return BT_EINVAL;
    FUZZ_CHECK(!m->handoffs->has_limit ||
                   (m->handoffs->limit >= 1 && m->handoffs->limit <= BT_CTL_MAX_HANDOFFS),
               "handoff limit");
    return 0;
  case BATON__CTL_REQUEST__BODY_AUDIT:
    if (reason(bt_ctl__validate_audit_query(m->audit, why, sizeof why), why))
      return BT_EINVAL;
    FUZZ_CHECK(!m->audit->has_limit ||
                   (m->audit->limit >= 1 && m->audit->limit <= BT_CTL_MAX_AUDIT),
               "audit limit");
    return 0;
  case BATON__CTL_REQUEST__BODY_SCORECARD:
    if (reason(bt_ctl__validate_scorecard_query(m->scorecard, why, sizeof why), why))
      return BT_EINVAL;
    FUZZ_CHECK(m->scorecard->vendor == NULL || bt_valid_name(m->scorecard->vendor),
               "scorecard vendor");
    return 0;
  case BATON__CTL_REQUEST__BODY_CONFIG_SET:
    config_set(m->config_set);
    return 0;
  default:
    return 0; /* reads with no field to check here */
  }
}

static Baton__CtlRequest *decode(const uint8_t *buf, size_t len, bt_pb_budget_t *budget) {
  char why[160];
  why[0] = '\0';
  if (bt_pb_check(&baton__ctl_request__descriptor, buf, len, why, sizeof why) != 0) {
    FUZZ_CHECK(why[0] != '\0', "bt_pb_check refused without a reason");
    return NULL;
  }
  return baton__ctl_request__unpack(&budget->a, len, buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  bt_log_set_level(BT_LOG_ERROR);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bt_pb_budget_t budget;
  bt_pb_budget_init(&budget, bt_pb_budget_for(size));
  Baton__CtlRequest *m = decode(data, size, &budget);
  if (m == NULL) {
    FUZZ_CHECK(budget.used == 0, "budget leaked %zu bytes", budget.used);
    return 0;
  }
  if (validate(m) == 0) {
    size_t n = baton__ctl_request__get_packed_size(m);
    uint8_t *again = malloc(n ? n : 1);
    FUZZ_CHECK(again != NULL, "out of memory");
    FUZZ_CHECK(baton__ctl_request__pack(m, again) == n, "pack size differs");
    bt_pb_budget_t b2;
    bt_pb_budget_init(&b2, bt_pb_budget_for(n > size ? n : size));
    Baton__CtlRequest *m2 = decode(again, n, &b2);
    FUZZ_CHECK(m2 != NULL, "a repacked valid request does not decode");
    FUZZ_CHECK(m2->body_case == m->body_case, "body changed on repack");
    FUZZ_CHECK(validate(m2) == 0, "a repacked valid request is refused");
    baton__ctl_request__free_unpacked(m2, &b2.a);
    FUZZ_CHECK(b2.used == 0, "budget leaked %zu bytes", b2.used);
    free(again);
  }
  baton__ctl_request__free_unpacked(m, &budget.a);
  FUZZ_CHECK(budget.used == 0, "budget leaked %zu bytes", budget.used);
  return 0;
}

/*
 * Validation of control requests: package specs, vendor registrations, the
 * admin operations on vendors and packages, and handoff queries. Pure
 * functions of the decoded message and the limits, so they can be tested and
 * fuzzed without a socket. Names must pass bt_valid_name (no separators, no
 * spaces); the store relies on that for the lists it joins.
 */
#include "ctl_int.h"

#include "bt_err.h"
#include "bt_hours.h"
#include "bt_valid.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FAIL(...)                                                              \
  do {                                                                         \
    snprintf(why, why_len, __VA_ARGS__);                                       \
    return BT_EINVAL;                                                          \
  } while (0)

/* Latest time accepted: 9999-12-31, so every time prints as RFC 3339. */
#define MAX_AT 253402300799999LL

static int check_names(char **v, size_t n, const char *what, char *why,
                       size_t why_len) {
  if (n > BT_CORE_MAX_LIST)
    FAIL("%s: at most %d entries, got %zu", what, BT_CORE_MAX_LIST, n);
  for (size_t i = 0; i < n; i++)
    if (!bt_valid_name(v[i]))
      FAIL("%s: invalid name \"%.40s\" (letters, digits and . _ - : / @ + only)", what,
           v[i] ? v[i] : "");
  return 0;
}

int bt_ctl__validate_spec(const Baton__PackageSpec *s, uint32_t max_payload, char *why,
                          size_t why_len) {
  if (!bt_valid_name(s->capability))
    FAIL("capability missing or invalid");
  if (s->has_payload && s->payload.len > max_payload)
    FAIL("payload of %zu bytes exceeds the limit of %u", s->payload.len, max_payload);
  if (s->has_priority && s->priority > 9)
    FAIL("priority %u out of range 0-9", s->priority);
  if (s->has_deadline_at && (s->deadline_at <= 0 || s->deadline_at > MAX_AT))
    FAIL("deadline out of range");
  if (s->has_not_before_at && (s->not_before_at < 0 || s->not_before_at > MAX_AT))
    FAIL("not-before out of range");
  if (check_names(s->regions, s->n_regions, "region", why, why_len) ||
      check_names(s->certs, s->n_certs, "cert", why, why_len) ||
      check_names(s->prefer, s->n_prefer, "prefer", why, why_len) ||
      check_names(s->avoid, s->n_avoid, "avoid", why, why_len))
    return BT_EINVAL;
  if (s->has_max_cost && (!isfinite(s->max_cost) || s->max_cost < 0))
    FAIL("max cost must be a number >= 0");
  if (s->has_max_attempts && (s->max_attempts < 1 || s->max_attempts > 1000))
    FAIL("max attempts must be 1-1000");
  if (s->key != NULL && (s->key[0] == '\0' || !bt_valid_text(s->key, 256)))
    FAIL("key must be 1-256 bytes of text without control characters");
  return 0;
}

int bt_ctl__validate_vendor(const Baton__VendorAdd *v, char *why, size_t why_len) {
  if (!bt_valid_name(v->name))
    FAIL("vendor name missing or invalid (letters, digits and . _ - : / @ + only)");
  if (!bt_valid_name(v->region))
    FAIL("region missing or invalid");
  if (v->model != NULL) {
    bt_model_t m;
    if (bt_model_parse(v->model, &m) != 0)
      FAIL("model must be onshore, nearshore, offshore or captive");
  }
  if (v->n_capabilities == 0)
    FAIL("at least one capability is required");
  if (check_names(v->capabilities, v->n_capabilities, "capability", why, why_len) ||
      check_names(v->certs, v->n_certs, "cert", why, why_len))
    return BT_EINVAL;
  if (v->has_capacity && (v->capacity < 1 || v->capacity > 1000000))
    FAIL("capacity must be 1-1000000");
  if (v->has_cost && (!isfinite(v->cost) || v->cost < 0))
    FAIL("cost must be a number >= 0");
  if (v->has_weight && (!isfinite(v->weight) || v->weight <= 0 || v->weight > 1000))
    FAIL("weight must be a number > 0 and <= 1000");
  if (v->hours != NULL && !bt_valid_text(v->hours, 128))
    FAIL("hours must be text of at most 128 bytes");
  if (v->hours != NULL) {
    bt_hours_t h;
    char err[120];
    if (bt_hours_parse(v->hours, &h, err, sizeof err) != 0)
      FAIL("hours: %s (e.g. \"Mon-Fri 08:00-18:00 Europe/Berlin\")", err);
  }
  return 0;
}

/* Ids are int8 in the database: 1 .. 2^63-1. */
static bool valid_id(uint64_t id) { return id >= 1 && id <= (uint64_t)INT64_MAX; }

int bt_ctl__validate_vendor_op(const Baton__VendorOp *m, bt_vendor_op_t *op, char *why,
                               size_t why_len) {
  if (m->vendor == NULL || m->vendor[0] == '\0')
    FAIL("vendor id or name required");
  if (!bt_valid_name(m->vendor))
    FAIL("vendor \"%.40s\" is not a valid id or name", m->vendor);
  if (!m->has_op)
    FAIL("vendor operation required (drain, suspend, resume or fail)");
  switch (m->op) {
  case BATON__VENDOR_OP_KIND__VENDOR_OP_DRAIN:
    *op = BT_VENDOR_OP_DRAIN;
    return 0;
  case BATON__VENDOR_OP_KIND__VENDOR_OP_SUSPEND:
    *op = BT_VENDOR_OP_SUSPEND;
    return 0;
  case BATON__VENDOR_OP_KIND__VENDOR_OP_RESUME:
    *op = BT_VENDOR_OP_RESUME;
    return 0;
  case BATON__VENDOR_OP_KIND__VENDOR_OP_FAIL:
    *op = BT_VENDOR_OP_FAIL;
    return 0;
  default:
    FAIL("unknown vendor operation %d (drain, suspend, resume or fail)", (int)m->op);
  }
}

int bt_ctl__validate_package_op(const Baton__PackageOp *m, bt_pkg_op_t *op, char *why,
                                size_t why_len) {
  if (!m->has_id || !valid_id(m->id))
    FAIL("package id required (1 to 2^63-1)");
  if (!m->has_op)
    FAIL("package operation required (cancel, retry or reassign)");
  switch (m->op) {
  case BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL:
    *op = BT_PKG_OP_CANCEL;
    break;
  case BATON__PACKAGE_OP_KIND__PACKAGE_OP_RETRY:
    *op = BT_PKG_OP_RETRY;
    break;
  case BATON__PACKAGE_OP_KIND__PACKAGE_OP_REASSIGN:
    *op = BT_PKG_OP_REASSIGN;
    break;
  default:
    FAIL("unknown package operation %d (cancel, retry or reassign)", (int)m->op);
  }
  if (m->to != NULL) {
    if (*op != BT_PKG_OP_REASSIGN)
      FAIL("a target vendor (to) is only allowed with reassign");
    if (!bt_valid_name(m->to))
      FAIL("target vendor \"%.40s\" is not a valid id or name", m->to);
  }
  return 0;
}

/* The filters `handoffs` and `audit` share: vendor, package, since, and a limit
 * of at most max. */
static int validate_history(const char *vendor, bool has_package_id, uint64_t package_id,
                            bool has_since_at, int64_t since_at, bool has_limit,
                            uint32_t limit, uint32_t max, char *why, size_t why_len) {
  if (vendor != NULL && !bt_valid_name(vendor))
    FAIL("vendor \"%.40s\" is not a valid id or name", vendor);
  if (has_package_id && !valid_id(package_id))
    FAIL("package id out of range (1 to 2^63-1)");
  if (has_since_at && (since_at < 0 || since_at > MAX_AT))
    FAIL("since out of range");
  if (has_limit && (limit < 1 || limit > max))
    FAIL("limit must be 1-%u, got %" PRIu32, max, limit);
  return 0;
}

int bt_ctl__validate_handoff_query(const Baton__HandoffQuery *m, char *why,
                                   size_t why_len) {
  return validate_history(m->vendor, m->has_package_id, m->package_id, m->has_since_at,
                          m->since_at, m->has_limit, m->limit, BT_CTL_MAX_HANDOFFS, why,
                          why_len);
}

int bt_ctl__validate_audit_query(const Baton__AuditQuery *m, char *why, size_t why_len) {
  return validate_history(m->vendor, m->has_package_id, m->package_id, m->has_since_at,
                          m->since_at, m->has_limit, m->limit, BT_CTL_MAX_AUDIT, why,
                          why_len);
}

int bt_ctl__validate_scorecard_query(const Baton__ScorecardQuery *m, char *why,
                                     size_t why_len) {
  if (m->vendor != NULL && !bt_valid_name(m->vendor))
    FAIL("vendor \"%.40s\" is not a valid id or name", m->vendor);
  return 0;
}

/*
 * Validation of control requests: package specs and vendor registrations. Pure
 * functions of the decoded message and the limits, so they can be tested and
 * fuzzed without a socket. Names must pass bt_valid_name (no separators, no
 * spaces); the store relies on that for the lists it joins.
 */
#include "ctl_int.h"

#include "bt_err.h"
#include "bt_hours.h"
#include "bt_valid.h"

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

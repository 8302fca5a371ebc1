/* Names of the core's enumerations as they appear in the database, on the wire
 * and in the CLI. One table each so a name cannot drift between directions. */
#include "core_int.h"

#include "bt_err.h"

#include <string.h>

static const char *const pkg_states[BT_PKG__COUNT] = {
    "queued", "assigned", "running", "completed", "dead", "cancelled"};
static const char *const vendor_states[BT_VENDOR__COUNT] = {
    "active", "degraded", "failed", "draining", "suspended"};
static const char *const models[BT_MODEL__COUNT] = {"onshore", "nearshore",
                                                    "offshore", "captive"};
static const char *const outcomes[BT_OUTCOME__COUNT] = {
    "completed", "failed", "transient", "lost", "cancelled", "handed-back", "revoked"};
static const char *const agent_states[] = {"connected", "lost", "gone"};
static const char *const handoff_reasons[] = {"vendor-failed", "agent-lost",
                                              "lease-expired", "drain",
                                              "sla-risk",      "admin"};

static int parse(const char *const *names, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], s) == 0)
      return i;
  return -1;
}

const char *bt_pkg_state_name(bt_pkg_state_t s) {
  return (unsigned)s < BT_PKG__COUNT ? pkg_states[s] : "unknown";
}

int bt_pkg_state_parse(const char *s, bt_pkg_state_t *out) {
  int i = parse(pkg_states, BT_PKG__COUNT, s);
  if (i < 0)
    return BT_EINVAL;
  *out = (bt_pkg_state_t)i;
  return 0;
}

const char *bt_vendor_state_name(bt_vendor_state_t s) {
  return (unsigned)s < BT_VENDOR__COUNT ? vendor_states[s] : "unknown";
}

int bt_vendor_state_parse(const char *s, bt_vendor_state_t *out) {
  int i = parse(vendor_states, BT_VENDOR__COUNT, s);
  if (i < 0)
    return BT_EINVAL;
  *out = (bt_vendor_state_t)i;
  return 0;
}

const char *bt_model_name(bt_model_t m) {
  return (unsigned)m < BT_MODEL__COUNT ? models[m] : "unknown";
}

int bt_model_parse(const char *s, bt_model_t *out) {
  int i = parse(models, BT_MODEL__COUNT, s);
  if (i < 0)
    return BT_EINVAL;
  *out = (bt_model_t)i;
  return 0;
}

const char *bt_outcome_name(bt_outcome_t o) {
  return (unsigned)o < BT_OUTCOME__COUNT ? outcomes[o] : "unknown";
}

const char *bt_agent_state_name(bt_agent_state_t s) {
  return (unsigned)s < sizeof agent_states / sizeof *agent_states ? agent_states[s]
                                                                  : "unknown";
}

const char *bt_handoff_reason_name(bt_handoff_reason_t r) {
  return (unsigned)r < sizeof handoff_reasons / sizeof *handoff_reasons
             ? handoff_reasons[r]
             : "unknown";
}

/* --- action lists --------------------------------------------------------- */

void bt_actions_init(bt_actions_t *a) { memset(a, 0, sizeof *a); }
void bt_actions_clear(bt_actions_t *a) { a->n = 0; }

void bt_actions_close(bt_actions_t *a) {
  free(a->v);
  memset(a, 0, sizeof *a);
}

bt_action_t *bt_core__push(bt_actions_t *out, bt_act_kind_t kind) {
  if (out->n == out->cap) {
    out->cap = out->cap ? out->cap * 2 : 32;
    out->v = bt_xrealloc(out->v, out->cap * sizeof *out->v);
  }
  bt_action_t *a = &out->v[out->n++];
  memset(a, 0, sizeof *a);
  a->kind = kind;
  a->progress = -1;
  return a;
}

/* Shared helpers for the core's unit tests; see core_fixture.h. */
#include "core_fixture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fx_setup(void **state) {
  *state = fx_new(NULL);
  return 0;
}

int fx_teardown(void **state) {
  fx_free(*state);
  *state = NULL;
  return 0;
}

fx_t *fx_new(const bt_core_config_t *cfg) {
  fx_t *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  if (cfg != NULL)
    fx->cfg = *cfg;
  else
    bt_core_config_default(&fx->cfg);
  fx->core = bt_core_new(&fx->cfg);
  fx->now.ms = FX_T0_MS;
  fx->now.at = FX_T0_AT;
  fx->token = 100;
  bt_actions_init(&fx->out);
  bt_actions_init(&fx->scratch);
  return fx;
}

void fx_free(fx_t *fx) {
  if (fx == NULL)
    return;
  bt_core_free(fx->core);
  bt_actions_close(&fx->out);
  bt_actions_close(&fx->scratch);
  free(fx);
}

void fx_reconfigure(fx_t *fx, const bt_core_config_t *cfg) {
  bt_core_free(fx->core);
  fx->cfg = *cfg;
  fx->core = bt_core_new(&fx->cfg);
  bt_actions_clear(&fx->out);
}

void fx_advance(fx_t *fx, uint64_t ms) {
  fx->now.ms += ms;
  fx->now.at += (int64_t)ms;
}

void fx_clear(fx_t *fx) { bt_actions_clear(&fx->out); }

void fx_split(fx_list_t *l, const char *csv) {
  l->n = 0;
  l->buf[0] = '\0';
  if (csv == NULL || *csv == '\0')
    return;
  size_t len = strlen(csv);
  assert_true(len < sizeof l->buf);
  memcpy(l->buf, csv, len + 1);
  char *save = NULL;
  for (char *t = strtok_r(l->buf, ",", &save); t != NULL;
       t = strtok_r(NULL, ",", &save)) {
    assert_true(l->n < BT_CORE_MAX_LIST);
    l->v[l->n++] = t;
  }
}

void fx_spec(const fx_t *fx, const fx_pkg_t *p, fx_spec_t *out) {
  memset(out, 0, sizeof *out);
  fx_split(&out->regions, p->regions);
  fx_split(&out->certs, p->certs);
  fx_split(&out->prefer, p->prefer);
  fx_split(&out->avoid, p->avoid);
  bt_pkg_spec_t *s = &out->spec;
  s->capability = p->cap ? p->cap : "translate";
  s->payload = p->payload ? p->payload : "payload";
  s->payload_len = strlen(s->payload);
  s->priority = p->priority;
  s->deadline_at = p->deadline_in ? fx->now.at + p->deadline_in : 0;
  s->not_before_at = p->not_before_in ? fx->now.at + p->not_before_in : 0;
  s->regions = out->regions.v;
  s->n_regions = out->regions.n;
  s->certs = out->certs.v;
  s->n_certs = out->certs.n;
  s->prefer = out->prefer.v;
  s->n_prefer = out->prefer.n;
  s->avoid = out->avoid.v;
  s->n_avoid = out->avoid.n;
  s->max_cost = p->has_max_cost ? p->max_cost : -1.0;
  s->max_attempts = p->max_attempts;
  s->key = p->key;
}

uint64_t fx_vendor(fx_t *fx, const fx_vendor_t *v) {
  fx_list_t caps, certs;
  fx_split(&caps, v->caps ? v->caps : "translate");
  fx_split(&certs, v->certs);
  uint8_t key[32];
  memset(key, 0x5a, sizeof key);
  fx_clear(fx);
  double weight = v->weight != 0 ? v->weight : 1.0;
  uint64_t id = 0;
  if (v->state == BT_VENDOR_ACTIVE && v->on_time == 0 && v->with_deadline == 0) {
    bt_vendor_spec_t spec = {
        .name = v->name,
        .region = v->region ? v->region : "EU-DE",
        .model = BT_MODEL_NEARSHORE,
        .caps = caps.v,
        .n_caps = caps.n,
        .certs = certs.v,
        .n_certs = certs.n,
        .capacity = v->capacity ? v->capacity : 100,
        .cost = v->cost,
        .weight = weight,
        .hours = v->hours,
    };
    memcpy(spec.auth_key, key, sizeof key);
    assert_int_equal(bt_core_vendor_add(fx->core, &spec, fx->token++, &fx->now, &id,
                                        &fx->out),
                     0);
    if (v->out_of_hours)
      bt_core_vendor_set_in_hours(fx->core, id, false);
    return id;
  }
  size_t n = bt_core_vendor_count(fx->core);
  id = n ? bt_core_vendor_at(fx->core, n - 1)->id + 1 : 1;
  bt_vendor_row_t row = {
      .spec = {
          .name = v->name,
          .region = v->region ? v->region : "EU-DE",
          .model = BT_MODEL_NEARSHORE,
          .caps = caps.v,
          .n_caps = caps.n,
          .certs = certs.v,
          .n_certs = certs.n,
          .capacity = v->capacity ? v->capacity : 100,
          .cost = v->cost,
          .weight = weight,
          .hours = v->hours,
      },
      .id = id,
      .state = v->state,
      .state_reason = v->state_reason,
      .created_at = fx->now.at,
      .completed = v->with_deadline,
      .on_time = v->on_time,
      .with_deadline = v->with_deadline,
  };
  memcpy(row.spec.auth_key, key, sizeof key);
  assert_int_equal(bt_core_load_vendor(fx->core, &row), 0);
  if (v->out_of_hours)
    bt_core_vendor_set_in_hours(fx->core, id, false);
  return id;
}

int fx_hello(fx_t *fx, uint64_t vendor_id, const char *name, const char *caps,
             uint32_t slots, const bt_held_t *held, size_t n_held,
             uint64_t *agent_id) {
  fx_list_t c;
  fx_split(&c, caps);
  bt_agent_hello_t h = {
      .vendor_id = vendor_id,
      .name = name,
      .caps = c.v,
      .n_caps = c.n,
      .slots = slots,
      .held = held,
      .n_held = n_held,
  };
  fx_clear(fx);
  uint64_t id = 0;
  int rv = bt_core_agent_hello(fx->core, &h, &fx->now, &id, &fx->out);
  if (agent_id != NULL)
    *agent_id = id;
  return rv;
}

uint64_t fx_agent(fx_t *fx, uint64_t vendor_id, const char *name, const char *caps,
                  uint32_t slots) {
  uint64_t id = 0;
  int rv = fx_hello(fx, vendor_id, name, caps, slots, NULL, 0, &id);
  if (rv != 0)
    fail_msg("hello %s: %s", name, bt_strerror(rv));
  assert_int_not_equal(id, 0);
  return id;
}

uint64_t fx_submit_unpersisted(fx_t *fx, const fx_pkg_t *p) {
  fx_spec_t s;
  fx_spec(fx, p, &s);
  bt_submit_result_t r;
  fx_clear(fx);
  assert_int_equal(bt_core_submit(fx->core, &s.spec, 1, fx->token++, &fx->now, &r,
                                  &fx->out),
                   0);
  return r.id;
}

uint64_t fx_submit(fx_t *fx, const fx_pkg_t *p) {
  uint64_t id = fx_submit_unpersisted(fx, p);
  fx_clear(fx);
  bt_core_package_persisted(fx->core, id, true, 0, &fx->now, &fx->out);
  return id;
}

void fx_confirm_assigns(fx_t *fx) {
  for (size_t i = 0; i < fx->out.n; i++) {
    const bt_action_t *a = &fx->out.v[i];
    if (a->kind != BT_ACT_ASSIGN)
      continue;
    bt_actions_clear(&fx->scratch);
    bt_core_assign_persisted(fx->core, a->package_id, a->attempt, true, &fx->now,
                             &fx->scratch);
    assert_int_equal(fx->scratch.n, 0);
  }
}

uint64_t fx_tick(fx_t *fx) {
  fx_clear(fx);
  return bt_core_tick(fx->core, &fx->now, &fx->out);
}

int fx_result(fx_t *fx, uint64_t agent_id, uint64_t pkg, uint32_t attempt,
              bt_outcome_t outcome, const char *output) {
  bt_result_t r = {
      .package_id = pkg,
      .attempt = attempt,
      .outcome = outcome,
      .output = output,
      .output_len = output ? strlen(output) : 0,
      .exit_code = outcome == BT_OUTCOME_COMPLETED ? 0 : 1,
      .error = outcome == BT_OUTCOME_COMPLETED ? NULL : "handler failed",
  };
  fx_clear(fx);
  return bt_core_agent_result(fx->core, agent_id, &r, fx->token++, &fx->now,
                              &fx->out);
}

void fx_started(fx_t *fx, uint64_t agent_id, uint64_t pkg, uint32_t attempt) {
  fx_clear(fx);
  bt_core_agent_started(fx->core, agent_id, pkg, attempt, &fx->now, &fx->out);
}

void fx_finish_persisted(fx_t *fx, uint64_t pkg, uint32_t attempt) {
  fx_clear(fx);
  bt_core_finish_persisted(fx->core, pkg, attempt, true, &fx->now, &fx->out);
}

bt_pkg_state_t fx_state(const fx_t *fx, uint64_t pkg) {
  bt_pkg_view_t v;
  if (bt_core_package_view(fx->core, pkg, &v) != 0)
    return BT_PKG__COUNT;
  return v.state;
}

static void view_ok(const fx_t *fx, uint64_t pkg, bt_pkg_view_t *v) {
  int rv = bt_core_package_view(fx->core, pkg, v);
  if (rv != 0)
    fail_msg("package %" PRIu64 " is not open", pkg);
}

uint32_t fx_attempt(const fx_t *fx, uint64_t pkg) {
  bt_pkg_view_t v;
  view_ok(fx, pkg, &v);
  return v.attempt;
}

uint64_t fx_agent_of(const fx_t *fx, uint64_t pkg) {
  bt_pkg_view_t v;
  view_ok(fx, pkg, &v);
  return v.agent_id;
}

uint64_t fx_vendor_of(const fx_t *fx, uint64_t pkg) {
  bt_pkg_view_t v;
  view_ok(fx, pkg, &v);
  return v.vendor_id;
}

uint32_t fx_busy(const fx_t *fx, uint64_t agent_id) {
  bt_agent_view_t v;
  assert_int_equal(bt_core_agent_view(fx->core, agent_id, &v), 0);
  return v.busy;
}

const char *fx_reason(const fx_t *fx, uint64_t pkg) {
  static char buf[512];
  return bt_core_waiting_reason(fx->core, pkg, &fx->now, buf, sizeof buf);
}

size_t fx_count(const bt_actions_t *a, bt_act_kind_t kind) {
  return fx_count_pkg(a, kind, 0);
}

size_t fx_count_pkg(const bt_actions_t *a, bt_act_kind_t kind, uint64_t pkg) {
  size_t n = 0;
  for (size_t i = 0; i < a->n; i++)
    if (a->v[i].kind == kind && (pkg == 0 || a->v[i].package_id == pkg))
      n++;
  return n;
}

const bt_action_t *fx_find(const bt_actions_t *a, bt_act_kind_t kind, uint64_t pkg) {
  for (size_t i = 0; i < a->n; i++)
    if (a->v[i].kind == kind && (pkg == 0 || a->v[i].package_id == pkg))
      return &a->v[i];
  return NULL;
}

const bt_action_t *fx_one(const bt_actions_t *a, bt_act_kind_t kind, uint64_t pkg) {
  size_t n = fx_count_pkg(a, kind, pkg);
  if (n != 1) {
    fx_dump(a, "actions");
    fail_msg("expected one %s for package %" PRIu64 ", got %zu", fx_kind_name(kind),
             pkg, n);
  }
  return fx_find(a, kind, pkg);
}

const char *fx_kind_name(bt_act_kind_t kind) {
  static const char *const names[] = {
      "PERSIST_VENDOR", "PERSIST_AGENT", "PERSIST_PACKAGE", "ASSIGN",
      "START",          "PROGRESS",      "FINISH",          "HANDOFF",
      "ACK_RESULT",     "CANCEL",        "END_SESSION",     "AUDIT"};
  return (unsigned)kind < sizeof names / sizeof *names ? names[kind] : "?";
}

void fx_dump(const bt_actions_t *a, const char *label) {
  fprintf(stderr, "-- %s (%zu)\n", label, a->n);
  for (size_t i = 0; i < a->n; i++) {
    const bt_action_t *x = &a->v[i];
    fprintf(stderr,
            "  %-15s pkg=%" PRIu64 " attempt=%u agent=%" PRIu64 " vendor=%" PRIu64
            " code=%d outcome=%s state=%s retry_at=%" PRId64 " reason=%s text=%s\n",
            fx_kind_name(x->kind), x->package_id, x->attempt, x->agent_id,
            x->vendor_id, x->code, bt_outcome_name(x->outcome),
            bt_pkg_state_name(x->state), x->retry_at,
            bt_handoff_reason_name(x->reason), x->text ? x->text : "-");
  }
}

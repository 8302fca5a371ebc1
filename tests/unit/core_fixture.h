/*
 * Shared helpers for the unit tests of server/core (test_core_*.c).
 *
 * The core is pure: a test builds state through the public API, feeds events
 * with a clock it controls, and asserts on the actions and the views. This
 * fixture holds one core, the clock and the action list of the last call made
 * through it, and turns short table rows (comma-separated lists, times
 * relative to now) into the core's specs. Nothing here reaches into the core's
 * internals: a test that needs a fact the public API does not show is a sign
 * the API is missing something.
 *
 * Every fx_* call that feeds the core clears fx->out first, so fx->out always
 * holds the actions of the latest event only.
 */
#ifndef BT_CORE_FIXTURE_H
#define BT_CORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "core.h"

/* The fixture's clock starts here: monotonic 1,000 s, wall 2027-01-15T08:00:00Z. */
#define FX_T0_MS 1000000u
#define FX_T0_AT INT64_C(1800000000000)

typedef struct {
  bt_core_t *core;
  bt_core_config_t cfg;
  bt_now_t now;
  bt_actions_t out; /* actions of the last call made through the fixture */
  bt_actions_t scratch;
  uint64_t token;   /* next correlation token */
} fx_t;

/* A comma-separated list split into the const char *const * the core takes. */
typedef struct {
  char buf[512];
  const char *v[BT_CORE_MAX_LIST];
  size_t n;
} fx_list_t;

/* A vendor as a table row. Defaults: region "EU-DE", caps "translate",
 * capacity 100, weight 1. A state other than active (or an SLA history) is set
 * by loading the vendor (bt_core_load_vendor), the only way the core's API
 * takes a state. */
typedef struct {
  const char *name;
  const char *region;
  const char *caps;  /* comma-separated */
  const char *certs; /* comma-separated, NULL none */
  uint32_t capacity; /* 0 = 100 */
  double cost;
  bt_vendor_state_t state;
  /* Routing score inputs (test_core_score.c). A vendor with an on-time history
   * is loaded (bt_core_load_vendor), like a non-active state. */
  double weight;          /* 0 = 1.0 */
  const char *hours;      /* NULL none */
  bool out_of_hours;      /* bt_core_vendor_set_in_hours(false) after adding */
  uint64_t on_time;       /* completed with a deadline, on time */
  uint64_t with_deadline; /* completed with a deadline */
  const char *state_reason; /* loaded with the state; NULL none */
} fx_vendor_t;

/* A package as a table row. Times are relative to fx->now.at. */
typedef struct {
  const char *cap;       /* NULL = "translate" */
  uint32_t priority;
  int64_t deadline_in;   /* ms from now; 0 = none */
  int64_t not_before_in; /* ms from now; 0 = none */
  const char *regions;   /* comma-separated lists, NULL none */
  const char *certs;
  const char *prefer;
  const char *avoid;
  bool has_max_cost;     /* max_cost applies only when set */
  double max_cost;
  uint32_t max_attempts; /* 0 = the configured default */
  const char *key;       /* NULL none */
  const char *payload;   /* NULL = "payload" */
} fx_pkg_t;

/* A package row turned into a spec (the spec points into this struct). */
typedef struct {
  bt_pkg_spec_t spec;
  fx_list_t regions, certs, prefer, avoid;
} fx_spec_t;

/* cmocka setup/teardown: *state becomes an fx_t with the default config. */
int fx_setup(void **state);
int fx_teardown(void **state);

/* Returns a new fixture (owned; fx_free). cfg NULL = bt_core_config_default. */
fx_t *fx_new(const bt_core_config_t *cfg);
void fx_free(fx_t *fx);
/* Replaces the core with a fresh one built from cfg (the clock is kept). */
void fx_reconfigure(fx_t *fx, const bt_core_config_t *cfg);

void fx_advance(fx_t *fx, uint64_t ms);
void fx_clear(fx_t *fx);

void fx_split(fx_list_t *l, const char *csv);
void fx_spec(const fx_t *fx, const fx_pkg_t *p, fx_spec_t *out);

/* Adds (or, for a non-active state, loads) a vendor; asserts success and
 * returns its id. */
uint64_t fx_vendor(fx_t *fx, const fx_vendor_t *v);

/* Hello. caps comma-separated. Returns the core's return code. */
int fx_hello(fx_t *fx, uint64_t vendor_id, const char *name, const char *caps,
             uint32_t slots, const bt_held_t *held, size_t n_held,
             uint64_t *agent_id);
/* Hello that must succeed; returns the agent id. */
uint64_t fx_agent(fx_t *fx, uint64_t vendor_id, const char *name, const char *caps,
                  uint32_t slots);

/* Submits one package without committing it; returns its id. */
uint64_t fx_submit_unpersisted(fx_t *fx, const fx_pkg_t *p);
/* Submits one package and commits it (persisted ok); fx->out holds what the
 * commit routed. Returns its id. */
uint64_t fx_submit(fx_t *fx, const fx_pkg_t *p);
/* Commits every ASSIGN in fx->out (assign_persisted ok); fx->out is kept. */
void fx_confirm_assigns(fx_t *fx);

uint64_t fx_tick(fx_t *fx);
int fx_result(fx_t *fx, uint64_t agent_id, uint64_t pkg, uint32_t attempt,
              bt_outcome_t outcome, const char *output);
void fx_started(fx_t *fx, uint64_t agent_id, uint64_t pkg, uint32_t attempt);
void fx_finish_persisted(fx_t *fx, uint64_t pkg, uint32_t attempt);

/* Views (asserting the package is open unless noted). */
bt_pkg_state_t fx_state(const fx_t *fx, uint64_t pkg); /* BT_PKG__COUNT if not open */
uint32_t fx_attempt(const fx_t *fx, uint64_t pkg);
uint64_t fx_agent_of(const fx_t *fx, uint64_t pkg);
uint64_t fx_vendor_of(const fx_t *fx, uint64_t pkg);
uint32_t fx_busy(const fx_t *fx, uint64_t agent_id);
const char *fx_reason(const fx_t *fx, uint64_t pkg); /* static buffer */

/* Actions. pkg 0 = any package. */
size_t fx_count(const bt_actions_t *a, bt_act_kind_t kind);
size_t fx_count_pkg(const bt_actions_t *a, bt_act_kind_t kind, uint64_t pkg);
const bt_action_t *fx_find(const bt_actions_t *a, bt_act_kind_t kind, uint64_t pkg);
/* The only action of kind for pkg; fails the test when there is not exactly one. */
const bt_action_t *fx_one(const bt_actions_t *a, bt_act_kind_t kind, uint64_t pkg);
const char *fx_kind_name(bt_act_kind_t kind);
/* Prints the actions to stderr, one a line (for failing tests). */
void fx_dump(const bt_actions_t *a, const char *label);

#endif

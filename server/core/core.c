/*
 * The core's state container: creation, string interning, vendors, loading
 * state at start, and figures. Packages live in packages.c, agents and results
 * in agents.c, routing in sched.c.
 */
#include "core_int.h"

#include "bt_err.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void bt_core_config_default(bt_core_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->lease_ms = 3000;
  cfg->restart_grace_ms = 10000;
  cfg->retry_base_ms = 1000;
  cfg->retry_max_ms = 60000;
  cfg->default_max_attempts = 3;
  cfg->seed = 0x9e3779b97f4a7c15ull;
  cfg->w_cost = 1.0;
  cfg->w_sla = 1.0;
  cfg->w_util = 1.0;
  cfg->w_prefer = 1.0;
  cfg->w_hours = 0.5;
  cfg->cost_ref = 1.0;
  cfg->share_cap = 0.7;
  cfg->aging_bound_ms = 300000;
  cfg->breaker_window_ms = 60000;
  cfg->breaker_min_attempts = 5;
  cfg->breaker_threshold = 0.5;
  cfg->degrade_threshold = 0.2;
  cfg->breaker_cooldown_ms = 10000;
  cfg->probe_packages = 1;
  cfg->degraded_factor = 0.5;
}

bt_core_t *bt_core_new(const bt_core_config_t *cfg) {
  bt_core_t *core = bt_xcalloc(1, sizeof *core);
  core->cfg = *cfg;
  if (core->cfg.default_max_attempts == 0)
    core->cfg.default_max_attempts = 1;
  bt_strmap_init(&core->strs.map);
  bt_idmap_init(&core->agent_by_id);
  bt_idmap_init(&core->pkg_by_id);
  bt_strmap_init(&core->pkg_by_key);
  bt_pheap_init(&core->delayed, bt_core__pkg_earlier, offsetof(bt_core_pkg_t, heap_pos));
  core->next_vendor_id = core->next_agent_id = core->next_pkg_id = 1;
  core->rng = cfg->seed ? cfg->seed : 1;
  /* Symbol 0 is "none". */
  core->strs.strs = bt_xmalloc(16 * sizeof(char *));
  core->strs.cap = 16;
  core->strs.strs[0] = bt_xstrdup("");
  core->strs.n = 1;
  return core;
}

static void vendor_free(bt_core_vendor_t *v) {
  free(v->name);
  free(v->region);
  free(v->cap_in_flight);
  free(v->caps);
  free(v->certs);
  free(v->hours);
  free(v->win);
  free(v);
}

void bt_core_free(bt_core_t *core) {
  if (core == NULL)
    return;
  /* Packages first: they hold class references. */
  for (uint32_t i = 0; i < core->pkg_by_id.cap; i++) {
    uint64_t k = core->pkg_by_id.keys[i];
    if (k != 0 && k != UINT64_MAX) {
      bt_core_pkg_t *p = core->pkg_by_id.vals[i];
      bt_core__dequeue(core, p);
      bt_core__pkg_free(core, p);
    }
  }
  for (uint32_t i = 0; i < core->n_agents; i++) {
    bt_core_agent_t *a = core->agents[i];
    free(a->name);
    free(a->caps);
    free(a->held);
    free(a->links);
    free(a);
  }
  free(core->agents);
  for (uint32_t i = 0; i < core->n_vendors; i++)
    vendor_free(core->vendors[i]);
  free(core->vendors);
  for (uint32_t i = 0; i < core->n_capqs; i++) {
    /* Classes still referenced only by finished-but-freed packages are gone;
     * what is left here has no packages. */
    for (uint32_t j = 0; j < core->capqs[i].n_classes; j++) {
      bt_classq_close(&core->capqs[i].classes[j]->q);
      free(core->capqs[i].classes[j]);
    }
    free(core->capqs[i].classes);
  }
  free(core->capqs);
  bt_core__reqs_free_all(core);
  bt_idmap_close(&core->agent_by_id);
  bt_idmap_close(&core->pkg_by_id);
  bt_strmap_close(&core->pkg_by_key);
  bt_pheap_close(&core->delayed);
  for (uint32_t i = 0; i < core->strs.n; i++)
    free(core->strs.strs[i]);
  free(core->strs.strs);
  bt_strmap_close(&core->strs.map);
  free(core->dirty_caps);
  free(core->dirty_agents);
  free(core->sched_buf);
  free(core);
}

/* --- symbols ------------------------------------------------------------------- */

bt_sym_t bt_core_intern(bt_core_t *core, const char *s) {
  if (s == NULL || *s == '\0')
    return 0;
  void *v = bt_strmap_get(&core->strs.map, s);
  if (v != NULL)
    return (bt_sym_t)(uintptr_t)v;
  if (core->strs.n == core->strs.cap) {
    core->strs.cap *= 2;
    core->strs.strs = bt_xrealloc(core->strs.strs, core->strs.cap * sizeof(char *));
  }
  bt_sym_t sym = core->strs.n;
  core->strs.strs[core->strs.n++] = bt_xstrdup(s);
  bt_strmap_put(&core->strs.map, core->strs.strs[sym], (void *)(uintptr_t)sym);
  return sym;
}

const char *bt_core_sym(const bt_core_t *core, bt_sym_t sym) {
  return sym < core->strs.n ? core->strs.strs[sym] : "";
}

bt_core_capq_t *bt_core__capq(bt_core_t *core, bt_sym_t cap) {
  if (cap >= core->n_capqs) {
    uint32_t n = core->n_capqs ? core->n_capqs : 16;
    while (n <= cap)
      n *= 2;
    core->capqs = bt_xrealloc(core->capqs, n * sizeof *core->capqs);
    memset(core->capqs + core->n_capqs, 0,
           (n - core->n_capqs) * sizeof *core->capqs);
    core->n_capqs = n;
  }
  return &core->capqs[cap];
}

uint64_t bt_core__rand(bt_core_t *core) {
  /* splitmix64: deterministic for a given seed, which keeps replays exact. */
  uint64_t z = (core->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* --- vendors -------------------------------------------------------------------- */

bt_core_vendor_t *bt_core__vendor(const bt_core_t *core, uint64_t id) {
  uint32_t lo = 0, hi = core->n_vendors;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    uint64_t mid_id = core->vendors[mid]->id;
    if (mid_id == id)
      return core->vendors[mid];
    if (mid_id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const bt_core_vendor_t *bt_core_vendor(const bt_core_t *core, uint64_t id) {
  return bt_core__vendor(core, id);
}

const bt_core_vendor_t *bt_core_vendor_by_name(const bt_core_t *core,
                                               const char *name) {
  for (uint32_t i = 0; i < core->n_vendors; i++)
    if (strcmp(core->vendors[i]->name, name) == 0)
      return core->vendors[i];
  return NULL;
}

const bt_core_vendor_t *bt_core_vendor_by_ref(const bt_core_t *core,
                                              const char *ref) {
  const bt_core_vendor_t *v = bt_core_vendor_by_name(core, ref);
  if (v != NULL)
    return v;
  char *end;
  unsigned long long id = strtoull(ref, &end, 10);
  if (*ref != '\0' && *end == '\0')
    return bt_core__vendor(core, id);
  return NULL;
}

size_t bt_core_vendor_count(const bt_core_t *core) { return core->n_vendors; }

const bt_core_vendor_t *bt_core_vendor_at(const bt_core_t *core, size_t i) {
  return i < core->n_vendors ? core->vendors[i] : NULL;
}

static int sym_cmp(const void *a, const void *b) {
  bt_sym_t x = *(const bt_sym_t *)a, y = *(const bt_sym_t *)b;
  return x < y ? -1 : x > y;
}

static bt_sym_t *sorted_syms(bt_core_t *core, const char *const *v, size_t n,
                             uint32_t *out_n) {
  bt_sym_t *s = bt_xmalloc((n + 1) * sizeof *s);
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++)
    s[k++] = bt_core_intern(core, v[i]);
  qsort(s, k, sizeof *s, sym_cmp);
  uint32_t u = 0;
  for (uint32_t i = 0; i < k; i++)
    if (u == 0 || s[u - 1] != s[i])
      s[u++] = s[i];
  *out_n = u;
  return s;
}

/* Creates the vendor object from a spec (no checks, no actions). */
static bt_core_vendor_t *vendor_make(bt_core_t *core, uint64_t id,
                                     const bt_vendor_spec_t *spec) {
  bt_core_vendor_t *v = bt_xcalloc(1, sizeof *v);
  v->id = id;
  v->name = bt_xstrdup(spec->name);
  v->region = bt_xstrdup(spec->region);
  v->region_sym = bt_core_intern(core, spec->region);
  v->model = spec->model;
  v->caps = sorted_syms(core, spec->caps, spec->n_caps, &v->n_caps);
  v->certs = sorted_syms(core, spec->certs, spec->n_certs, &v->n_certs);
  v->capacity = spec->capacity;
  v->cost = spec->cost;
  v->weight = spec->weight;
  v->hours = spec->hours && *spec->hours ? bt_xstrdup(spec->hours) : NULL;
  v->cap_in_flight = bt_xcalloc(v->n_caps + 1, sizeof *v->cap_in_flight);
  v->state = BT_VENDOR_ACTIVE;
  v->in_hours = true;
  memcpy(v->auth_key, spec->auth_key, sizeof v->auth_key);
  /* Vendor names are what packages' prefer/avoid lists name. */
  v->name_sym = bt_core_intern(core, spec->name);
  bt_core__health_init(core, v);
  return v;
}

static void vendor_insert(bt_core_t *core, bt_core_vendor_t *v) {
  if (core->n_vendors == core->cap_vendors) {
    core->cap_vendors = core->cap_vendors ? core->cap_vendors * 2 : 16;
    core->vendors =
        bt_xrealloc(core->vendors, core->cap_vendors * sizeof *core->vendors);
  }
  /* ids only grow, so appending keeps id order */
  BT_ASSERT(core->n_vendors == 0 || core->vendors[core->n_vendors - 1]->id < v->id);
  core->vendors[core->n_vendors++] = v;
  if (v->id >= core->next_vendor_id)
    core->next_vendor_id = v->id + 1;
}

int bt_core_vendor_add(bt_core_t *core, const bt_vendor_spec_t *spec,
                       uint64_t token, const bt_now_t *now, uint64_t *out_id,
                       bt_actions_t *out) {
  if (bt_core_vendor_by_name(core, spec->name) != NULL)
    return BT_ECONFLICT;
  bt_core_vendor_t *v = vendor_make(core, core->next_vendor_id, spec);
  v->created_at = now->at;
  vendor_insert(core, v);
  *out_id = v->id;
  bt_action_t *a = bt_core__push(out, BT_ACT_PERSIST_VENDOR);
  a->vendor_id = v->id;
  a->token = token;
  a->at = now->at;
  a = bt_core__push(out, BT_ACT_AUDIT);
  a->vendor_id = v->id;
  a->at = now->at;
  a->text = "vendor.add";
  a->by_admin = true;
  a->text2 = v->name;
  a->text3 = v->region;
  return 0;
}

void bt_core_vendor_set_in_hours(bt_core_t *core, uint64_t vendor_id, bool in_hours) {
  bt_core_vendor_t *v = bt_core__vendor(core, vendor_id);
  if (v != NULL)
    v->in_hours = in_hours;
}

void bt_core_vendor_persist_failed(bt_core_t *core, uint64_t vendor_id) {
  for (uint32_t i = 0; i < core->n_vendors; i++) {
    bt_core_vendor_t *v = core->vendors[i];
    if (v->id != vendor_id)
      continue;
    if (v->in_flight > 0 || v->agents_connected > 0)
      return; /* cannot happen before the row exists; keep it rather than dangle */
    memmove(&core->vendors[i], &core->vendors[i + 1],
            (core->n_vendors - i - 1) * sizeof *core->vendors);
    core->n_vendors--;
    vendor_free(v);
    return;
  }
}

/* --- loading at start ------------------------------------------------------------ */

int bt_core_load_vendor(bt_core_t *core, const bt_vendor_row_t *row) {
  if (row->id == 0 || bt_core__vendor(core, row->id) != NULL ||
      (core->n_vendors > 0 && core->vendors[core->n_vendors - 1]->id > row->id))
    return BT_EINVAL;
  bt_core_vendor_t *v = vendor_make(core, row->id, &row->spec);
  v->state = row->state;
  if (row->state_reason != NULL)
    snprintf(v->state_reason, sizeof v->state_reason, "%s", row->state_reason);
  v->created_at = row->created_at;
  v->completed = row->completed;
  v->failed = row->failed;
  v->on_time = row->on_time;
  v->with_deadline = row->with_deadline;
  vendor_insert(core, v);
  return 0;
}

void bt_core_load_max_ids(bt_core_t *core, uint64_t vendor_id, uint64_t agent_id,
                          uint64_t package_id) {
  if (vendor_id >= core->next_vendor_id)
    core->next_vendor_id = vendor_id + 1;
  if (agent_id >= core->next_agent_id)
    core->next_agent_id = agent_id + 1;
  if (package_id >= core->next_pkg_id)
    core->next_pkg_id = package_id + 1;
}

void bt_core_load_listed_through(bt_core_t *core, uint64_t listed_through) {
  core->listed_through = listed_through;
  if (listed_through >= core->next_pkg_id)
    core->next_pkg_id = listed_through + 1;
}

/* --- figures ------------------------------------------------------------------------ */

void bt_core_set_finished_counts(bt_core_t *core, uint64_t completed, uint64_t dead,
                                 uint64_t cancelled) {
  core->finished[BT_PKG_COMPLETED] = completed;
  core->finished[BT_PKG_DEAD] = dead;
  core->finished[BT_PKG_CANCELLED] = cancelled;
}

void bt_core_stats(const bt_core_t *core, const bt_now_t *now, bt_core_stats_t *st) {
  memset(st, 0, sizeof *st);
  /* A final state counts once its FINISH is committed: until then a client
   * that waits for it (wait --all) or reads it back must not see it done. */
  for (int s = 0; s < BT_PKG__COUNT; s++) {
    st->by_state[s] = core->open_by_state[s] - core->finishing[s] + core->finished[s];
    st->finishing += core->finishing[s];
  }
  for (uint32_t i = 0; i < core->n_vendors; i++)
    st->vendors_by_state[core->vendors[i]->state]++;
  for (uint32_t i = 0; i < core->n_agents; i++)
    if (core->agents[i]->state == BT_AGENT_CONNECTED)
      st->agents_connected++;
  /* Waiting: queued packages whose class no vendor may serve. One check per
   * class, not per package. */
  char buf[256];
  for (uint32_t c = 0; c < core->n_capqs; c++) {
    const bt_core_capq_t *q = &core->capqs[c];
    for (uint32_t j = 0; j < q->n_classes; j++) {
      const bt_core_class_t *cls = q->classes[j];
      if (cls->q.n == 0)
        continue;
      bt_core_waiting_reason(core, bt_classq_any(&cls->q)->id, now, buf, sizeof buf);
      if (buf[0] != '\0')
        st->waiting += cls->q.n;
    }
  }
}

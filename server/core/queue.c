/*
 * The routing indexes. Queued packages are grouped into classes: one class per
 * (capability, requirement set), each with its own queue (classq.c). A routing
 * decision looks only at the best and the oldest package of each class its
 * agent could serve, so its cost depends on the number of classes, never on the
 * number of queued packages.
 * Requirement sets are interned so packages asking for the same regions,
 * certifications, cost cap and vendor lists share one set and one class.
 */
#include "core_int.h"

#include <math.h>
#include <string.h>

/* --- order ----------------------------------------------------------------- */

/* Delayed order: earliest not-before time, then id. */
int bt_core__pkg_earlier(const bt_core_pkg_t *a, const bt_core_pkg_t *b) {
  if (a->not_before_at != b->not_before_at)
    return a->not_before_at < b->not_before_at;
  return a->id < b->id;
}

/* --- requirement sets -------------------------------------------------------- */

static int sym_cmp(const void *a, const void *b) {
  bt_sym_t x = *(const bt_sym_t *)a, y = *(const bt_sym_t *)b;
  return x < y ? -1 : x > y;
}

/* Interns, sorts and deduplicates a list of strings into syms. */
static uint32_t sym_list(bt_core_t *core, const char *const *v, size_t n,
                         bt_sym_t *out) {
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++)
    out[k++] = bt_core_intern(core, v[i]);
  qsort(out, k, sizeof *out, sym_cmp);
  uint32_t u = 0;
  for (uint32_t i = 0; i < k; i++)
    if (u == 0 || out[u - 1] != out[i])
      out[u++] = out[i];
  return u;
}

static bool sym_in(const bt_sym_t *v, uint32_t n, bt_sym_t s) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (v[mid] == s)
      return true;
    if (v[mid] < s)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

static bool lists_equal(const bt_sym_t *a, uint32_t na, const bt_sym_t *b,
                        uint32_t nb) {
  return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static bt_sym_t *dup_syms(const bt_sym_t *v, uint32_t n) {
  if (n == 0)
    return NULL;
  bt_sym_t *d = bt_xmalloc(n * sizeof *d);
  memcpy(d, v, n * sizeof *d);
  return d;
}

bt_core_reqs_t *bt_core__reqs_intern(bt_core_t *core, const bt_pkg_spec_t *spec) {
  bool has_cost = spec->max_cost >= 0 && !isnan(spec->max_cost);
  bt_sym_t only = spec->only_vendor ? bt_core_intern(core, spec->only_vendor) : 0;
  if (spec->n_regions == 0 && spec->n_certs == 0 && spec->n_prefer == 0 &&
      spec->n_avoid == 0 && !has_cost && only == 0)
    return NULL;
  size_t most = spec->n_regions + spec->n_certs + spec->n_prefer + spec->n_avoid;
  bt_sym_t *tmp = bt_xmalloc((most + 1) * sizeof *tmp);
  bt_core_reqs_t key = {0};
  bt_sym_t *p = tmp;
  key.regions = p;
  key.n_regions = sym_list(core, spec->regions, spec->n_regions, p);
  p += key.n_regions;
  key.certs = p;
  key.n_certs = sym_list(core, spec->certs, spec->n_certs, p);
  p += key.n_certs;
  key.prefer = p;
  key.n_prefer = sym_list(core, spec->prefer, spec->n_prefer, p);
  p += key.n_prefer;
  key.avoid = p;
  key.n_avoid = sym_list(core, spec->avoid, spec->n_avoid, p);
  key.max_cost = has_cost ? spec->max_cost : -1.0;
  key.only = only;

  uint64_t h = bt_hash_bytes(tmp, (size_t)(p + key.n_avoid - tmp) * sizeof *tmp, 0);
  uint32_t counts[4] = {key.n_regions, key.n_certs, key.n_prefer, key.n_avoid};
  h = bt_hash_bytes(counts, sizeof counts, h);
  h = bt_hash_bytes(&key.max_cost, sizeof key.max_cost, h);
  h = bt_hash_bytes(&key.only, sizeof key.only, h);

  if (core->reqs_nbuckets == 0) {
    core->reqs_nbuckets = 256;
    core->reqs_buckets = bt_xcalloc(core->reqs_nbuckets, sizeof *core->reqs_buckets);
  }
  bt_core_reqs_t **bucket = &core->reqs_buckets[h % core->reqs_nbuckets];
  for (bt_core_reqs_t *r = *bucket; r; r = r->next) {
    if (r->hash == h && r->max_cost == key.max_cost && r->only == key.only &&
        lists_equal(r->regions, r->n_regions, key.regions, key.n_regions) &&
        lists_equal(r->certs, r->n_certs, key.certs, key.n_certs) &&
        lists_equal(r->prefer, r->n_prefer, key.prefer, key.n_prefer) &&
        lists_equal(r->avoid, r->n_avoid, key.avoid, key.n_avoid)) {
      r->refs++;
      free(tmp);
      return r;
    }
  }
  bt_core_reqs_t *r = bt_xcalloc(1, sizeof *r);
  r->regions = dup_syms(key.regions, key.n_regions);
  r->n_regions = key.n_regions;
  r->certs = dup_syms(key.certs, key.n_certs);
  r->n_certs = key.n_certs;
  r->prefer = dup_syms(key.prefer, key.n_prefer);
  r->n_prefer = key.n_prefer;
  r->avoid = dup_syms(key.avoid, key.n_avoid);
  r->n_avoid = key.n_avoid;
  r->max_cost = key.max_cost;
  r->only = key.only;
  r->hash = h;
  r->refs = 1;
  r->next = *bucket;
  *bucket = r;
  free(tmp);
  return r;
}

static void reqs_destroy(bt_core_reqs_t *r) {
  free(r->regions);
  free(r->certs);
  free(r->prefer);
  free(r->avoid);
  free(r);
}

void bt_core__reqs_release(bt_core_t *core, bt_core_reqs_t *r) {
  if (r == NULL || --r->refs > 0)
    return;
  bt_core_reqs_t **pp = &core->reqs_buckets[r->hash % core->reqs_nbuckets];
  while (*pp != r)
    pp = &(*pp)->next;
  *pp = r->next;
  reqs_destroy(r);
}

void bt_core__reqs_free_all(bt_core_t *core) {
  for (uint32_t i = 0; i < core->reqs_nbuckets; i++) {
    bt_core_reqs_t *r = core->reqs_buckets[i];
    while (r) {
      bt_core_reqs_t *next = r->next;
      reqs_destroy(r);
      r = next;
    }
  }
  free(core->reqs_buckets);
  core->reqs_buckets = NULL;
  core->reqs_nbuckets = 0;
}

/* --- eligibility (hard constraints; never relaxed) ---------------------------- */

bool bt_core__vendor_has_cap(const bt_core_vendor_t *v, bt_sym_t cap) {
  return sym_in(v->caps, v->n_caps, cap);
}

uint32_t bt_core__vendor_cap_index(const bt_core_vendor_t *v, bt_sym_t cap) {
  uint32_t lo = 0, hi = v->n_caps;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (v->caps[mid] == cap)
      return mid;
    if (v->caps[mid] < cap)
      lo = mid + 1;
    else
      hi = mid;
  }
  return BT_NOPOS;
}

bool bt_core__reqs_prefer(const bt_core_reqs_t *r, const bt_core_vendor_t *v) {
  return r != NULL && sym_in(r->prefer, r->n_prefer, v->name_sym);
}

bool bt_core__vendor_accepts(const bt_core_vendor_t *v) {
  return v->state == BT_VENDOR_ACTIVE || v->state == BT_VENDOR_DEGRADED;
}

bool bt_core__reqs_allow(const bt_core_t *core, const bt_core_reqs_t *r,
                         const bt_core_vendor_t *v) {
  if (r == NULL)
    return true;
  if (r->n_regions > 0 && !sym_in(r->regions, r->n_regions, v->region_sym))
    return false;
  for (uint32_t i = 0; i < r->n_certs; i++)
    if (!sym_in(v->certs, v->n_certs, r->certs[i]))
      return false;
  if (r->max_cost >= 0 && v->cost > r->max_cost)
    return false;
  if (r->only != 0 && r->only != v->name_sym)
    return false;
  (void)core;
  /* Vendor names are interned (name_sym), so avoiding is a lookup. */
  if (r->n_avoid > 0 && sym_in(r->avoid, r->n_avoid, v->name_sym))
    return false;
  return true;
}

/* --- classes ------------------------------------------------------------------ */

bt_core_class_t *bt_core__class_get(bt_core_t *core, bt_sym_t cap,
                                    bt_core_reqs_t *reqs) {
  bt_core_capq_t *q = bt_core__capq(core, cap);
  for (uint32_t i = 0; i < q->n_classes; i++) {
    bt_core_class_t *c = q->classes[i];
    if (c->reqs == reqs) {
      c->refs++;
      bt_core__reqs_release(core, reqs); /* the class holds one reference */
      return c;
    }
  }
  bt_core_class_t *c = bt_xcalloc(1, sizeof *c);
  c->cap = cap;
  c->reqs = reqs;
  c->refs = 1;
  bt_classq_init(&c->q);
  if (q->n_classes == q->cap_classes) {
    q->cap_classes = q->cap_classes ? q->cap_classes * 2 : 4;
    q->classes = bt_xrealloc(q->classes, q->cap_classes * sizeof *q->classes);
  }
  c->index = q->n_classes;
  q->classes[q->n_classes++] = c;
  return c;
}

void bt_core__class_release(bt_core_t *core, bt_core_class_t *c) {
  if (--c->refs > 0)
    return;
  BT_ASSERT(c->q.n == 0);
  bt_core_capq_t *q = bt_core__capq(core, c->cap);
  uint32_t i = c->index;
  q->classes[i] = q->classes[--q->n_classes];
  q->classes[i]->index = i;
  bt_core__reqs_release(core, c->reqs);
  bt_classq_close(&c->q);
  free(c);
}

/* --- placement ------------------------------------------------------------------ */

void bt_core__enqueue(bt_core_t *core, bt_core_pkg_t *p, const bt_now_t *now) {
  BT_ASSERT(p->heap_pos == BT_NOPOS && !(p->flags & BT_PKGF_QUEUED));
  /* A package whose insert is not committed is placed only inside its own
   * submit (route_at_submit); one requeued before that commit waits for it
   * (bt_core_package_persisted enqueues it then). */
  if ((p->flags & BT_PKGF_UNPERSISTED) && !core->routing_submit)
    return;
  if (p->not_before_at > now->at) {
    p->flags |= BT_PKGF_DELAYED;
    bt_pheap_push(&core->delayed, p);
    return;
  }
  p->flags &= (uint8_t)~BT_PKGF_DELAYED;
  /* Its age counts from when it became routable; a package loaded at start
   * keeps the time it was already waiting (bt_core_load_package sets it). */
  if (p->ready_at == 0)
    p->ready_at = now->at;
  p->flags |= BT_PKGF_QUEUED;
  bt_classq_push(&p->cls->q, p);
  bt_core__mark_cap(core, p->cls->cap);
}

void bt_core__dequeue(bt_core_t *core, bt_core_pkg_t *p) {
  if (p->flags & BT_PKGF_DELAYED) {
    bt_pheap_remove(&core->delayed, p);
  } else if (p->flags & BT_PKGF_QUEUED) {
    bt_classq_remove(&p->cls->q, p);
    p->ready_at = 0;
  }
  p->flags &= (uint8_t) ~(BT_PKGF_DELAYED | BT_PKGF_QUEUED);
}

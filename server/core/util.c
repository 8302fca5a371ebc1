/* Allocation helpers, the assertion hook, the id and string maps and the
 * package heap: the plain data structures the core is built from. */
#include "core_int.h"

#include <stdio.h>
#include <string.h>

_Noreturn void bt_core__assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "baton: assertion failed: %s (%s:%d)\n", what, file, line);
  abort();
}

void *bt_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    abort();
  return p;
}

void *bt_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL)
    abort();
  return p;
}

void *bt_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL)
    abort();
  return q;
}

char *bt_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = bt_xmalloc(n);
  memcpy(d, s, n);
  return d;
}

/* FNV-1a folded through a 64-bit finaliser: cheap and good enough for maps
 * keyed by our own ids and short strings. */
uint64_t bt_hash_bytes(const void *p, size_t n, uint64_t seed) {
  const uint8_t *b = p;
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

/* --- strmap ---------------------------------------------------------------- */

#define TOMB_STR ((const char *)1)

void bt_strmap_init(bt_strmap_t *m) { memset(m, 0, sizeof *m); }

void bt_strmap_close(bt_strmap_t *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

static uint64_t hash_str(const char *s) { return bt_hash_bytes(s, strlen(s), 0); }

static void strmap_grow(bt_strmap_t *m) {
  uint32_t ncap = m->cap ? m->cap * 2 : 64;
  if ((uint64_t)m->n * 4 < (uint64_t)m->cap)
    ncap = m->cap;
  const char **ok = m->keys;
  void **ov = m->vals;
  uint32_t ocap = m->cap;
  m->keys = bt_xcalloc(ncap, sizeof *m->keys);
  m->vals = bt_xcalloc(ncap, sizeof *m->vals);
  m->cap = ncap;
  m->n = 0;
  m->tomb = 0;
  for (uint32_t i = 0; i < ocap; i++)
    if (ok[i] != NULL && ok[i] != TOMB_STR)
      bt_strmap_put(m, ok[i], ov[i]);
  free(ok);
  free(ov);
}

void *bt_strmap_get(const bt_strmap_t *m, const char *key) {
  if (m->cap == 0)
    return NULL;
  uint32_t mask = m->cap - 1;
  for (uint32_t i = (uint32_t)hash_str(key) & mask;; i = (i + 1) & mask) {
    const char *k = m->keys[i];
    if (k == NULL)
      return NULL;
    if (k != TOMB_STR && strcmp(k, key) == 0)
      return m->vals[i];
  }
}

void bt_strmap_put(bt_strmap_t *m, const char *key, void *val) {
  if ((uint64_t)(m->n + m->tomb + 1) * 4 >= (uint64_t)m->cap * 3)
    strmap_grow(m);
  uint32_t mask = m->cap - 1;
  uint32_t tomb = BT_NOPOS;
  for (uint32_t i = (uint32_t)hash_str(key) & mask;; i = (i + 1) & mask) {
    const char *k = m->keys[i];
    if (k == TOMB_STR) {
      if (tomb == BT_NOPOS)
        tomb = i;
      continue;
    }
    if (k == NULL) {
      if (tomb != BT_NOPOS) {
        i = tomb;
        m->tomb--;
      }
      m->keys[i] = key;
      m->vals[i] = val;
      m->n++;
      return;
    }
    if (strcmp(k, key) == 0) {
      m->keys[i] = key; /* the new owner's storage */
      m->vals[i] = val;
      return;
    }
  }
}

void *bt_strmap_del(bt_strmap_t *m, const char *key) {
  if (m->cap == 0)
    return NULL;
  uint32_t mask = m->cap - 1;
  for (uint32_t i = (uint32_t)hash_str(key) & mask;; i = (i + 1) & mask) {
    const char *k = m->keys[i];
    if (k == NULL)
      return NULL;
    if (k != TOMB_STR && strcmp(k, key) == 0) {
      void *v = m->vals[i];
      m->keys[i] = TOMB_STR;
      m->vals[i] = NULL;
      m->n--;
      m->tomb++;
      return v;
    }
  }
}

/* --- package heap ---------------------------------------------------------- */
/* Each package records its position (heap_pos) so it can leave from anywhere. */

void bt_pheap_init(bt_pheap_t *h, bt_pheap_less_fn less, size_t pos_off) {
  memset(h, 0, sizeof *h);
  h->less = less;
  h->pos_off = pos_off;
}

static uint32_t *pos_of(const bt_pheap_t *h, bt_core_pkg_t *p) {
  return (uint32_t *)((char *)p + h->pos_off);
}

void bt_pheap_close(bt_pheap_t *h) {
  free(h->v);
  h->v = NULL;
  h->n = h->cap = 0;
}

static void heap_set(bt_pheap_t *h, uint32_t i, bt_core_pkg_t *p) {
  h->v[i] = p;
  *pos_of(h, p) = i;
}

static void sift_up(bt_pheap_t *h, uint32_t i) {
  bt_core_pkg_t *p = h->v[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!h->less(p, h->v[parent]))
      break;
    heap_set(h, i, h->v[parent]);
    i = parent;
  }
  heap_set(h, i, p);
}

static void sift_down(bt_pheap_t *h, uint32_t i) {
  bt_core_pkg_t *p = h->v[i];
  for (;;) {
    uint32_t l = 2 * i + 1, best = i;
    bt_core_pkg_t *bp = p;
    if (l < h->n && h->less(h->v[l], bp)) {
      best = l;
      bp = h->v[l];
    }
    if (l + 1 < h->n && h->less(h->v[l + 1], bp)) {
      best = l + 1;
      bp = h->v[l + 1];
    }
    if (best == i)
      break;
    heap_set(h, i, bp);
    i = best;
  }
  heap_set(h, i, p);
}

void bt_pheap_push(bt_pheap_t *h, bt_core_pkg_t *p) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 16;
    h->v = bt_xrealloc(h->v, (size_t)h->cap * sizeof *h->v);
  }
  heap_set(h, h->n++, p);
  sift_up(h, h->n - 1);
}

bt_core_pkg_t *bt_pheap_top(const bt_pheap_t *h) { return h->n ? h->v[0] : NULL; }

void bt_pheap_remove(bt_pheap_t *h, bt_core_pkg_t *p) {
  uint32_t i = *pos_of(h, p);
  BT_ASSERT(i < h->n && h->v[i] == p);
  *pos_of(h, p) = BT_NOPOS;
  h->n--;
  if (i == h->n)
    return;
  heap_set(h, i, h->v[h->n]);
  if (i > 0 && h->less(h->v[i], h->v[(i - 1) / 2]))
    sift_up(h, i);
  else
    sift_down(h, i);
}

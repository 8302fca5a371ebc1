/* The id map; see bt_idmap.h. */
#include "bt_idmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (p == NULL)
    abort();
  return p;
}

/* --- idmap ----------------------------------------------------------------- */

#define TOMB_U64 UINT64_MAX

void bt_idmap_init(bt_idmap_t *m) { memset(m, 0, sizeof *m); }

void bt_idmap_close(bt_idmap_t *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

static void idmap_grow(bt_idmap_t *m) {
  uint32_t ncap = m->cap ? m->cap * 2 : 64;
  if ((uint64_t)(m->n) * 4 < (uint64_t)m->cap) /* mostly tombstones: rehash same size */
    ncap = m->cap;
  uint64_t *ok = m->keys;
  void **ov = m->vals;
  uint32_t ocap = m->cap;
  m->keys = xcalloc(ncap, sizeof *m->keys);
  m->vals = xcalloc(ncap, sizeof *m->vals);
  m->cap = ncap;
  m->n = 0;
  m->tomb = 0;
  for (uint32_t i = 0; i < ocap; i++)
    if (ok[i] != 0 && ok[i] != TOMB_U64)
      bt_idmap_put(m, ok[i], ov[i]);
  free(ok);
  free(ov);
}

void *bt_idmap_get(const bt_idmap_t *m, uint64_t key) {
  if (m->cap == 0)
    return NULL;
  uint32_t mask = m->cap - 1;
  for (uint32_t i = (uint32_t)hash_u64(key) & mask;; i = (i + 1) & mask) {
    if (m->keys[i] == key)
      return m->vals[i];
    if (m->keys[i] == 0)
      return NULL;
  }
}

void bt_idmap_put(bt_idmap_t *m, uint64_t key, void *val) {
  if (key == 0 || key == TOMB_U64)
    abort();
  if ((uint64_t)(m->n + m->tomb + 1) * 4 >= (uint64_t)m->cap * 3)
    idmap_grow(m);
  uint32_t mask = m->cap - 1;
  uint32_t tomb = UINT32_MAX;
  for (uint32_t i = (uint32_t)hash_u64(key) & mask;; i = (i + 1) & mask) {
    if (m->keys[i] == key) {
      m->vals[i] = val;
      return;
    }
    if (m->keys[i] == TOMB_U64 && tomb == UINT32_MAX)
      tomb = i;
    if (m->keys[i] == 0) {
      if (tomb != UINT32_MAX) {
        i = tomb;
        m->tomb--;
      }
      m->keys[i] = key;
      m->vals[i] = val;
      m->n++;
      return;
    }
  }
}

void *bt_idmap_del(bt_idmap_t *m, uint64_t key) {
  if (m->cap == 0)
    return NULL;
  uint32_t mask = m->cap - 1;
  for (uint32_t i = (uint32_t)hash_u64(key) & mask;; i = (i + 1) & mask) {
    if (m->keys[i] == key) {
      void *v = m->vals[i];
      m->keys[i] = TOMB_U64;
      m->vals[i] = NULL;
      m->n--;
      m->tomb++;
      return v;
    }
    if (m->keys[i] == 0)
      return NULL;
  }
}


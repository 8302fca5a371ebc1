/*
 * A map from non-zero uint64_t ids to pointers: open addressing, linear probing,
 * tombstones on delete. Used wherever the broker looks things up by id on a hot
 * path (sessions, agents, packages).
 */
#ifndef BT_IDMAP_H
#define BT_IDMAP_H

#include <stdint.h>

typedef struct {
  uint64_t *keys; /* 0 = empty, UINT64_MAX = deleted */
  void **vals;
  uint32_t cap, n, tomb;
} bt_idmap_t;

void bt_idmap_init(bt_idmap_t *m);
void bt_idmap_close(bt_idmap_t *m);
/* The value for key, or NULL. */
void *bt_idmap_get(const bt_idmap_t *m, uint64_t key);
/* Sets key (neither 0 nor UINT64_MAX) to val. Aborts on out of memory. */
void bt_idmap_put(bt_idmap_t *m, uint64_t key, void *val);
/* Removes key; returns its value or NULL. */
void *bt_idmap_del(bt_idmap_t *m, uint64_t key);

/* Iteration: for (uint32_t i = 0; i < m->cap; i++) if (bt_idmap_used(m, i)) … */
#define bt_idmap_used(m, i) ((m)->keys[i] != 0 && (m)->keys[i] != UINT64_MAX)

#endif

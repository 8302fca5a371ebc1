/* Budgeted allocator for protobuf-c; see bt_pballoc.h. Each block carries its
 * size in front so free can give the budget back. */
#include "bt_pballoc.h"

#include <stdlib.h>

typedef union {
  size_t size;
  max_align_t align;
} block_head_t;

static void *budget_alloc(void *data, size_t size) {
  bt_pb_budget_t *b = data;
  if (size > b->limit || b->used + size > b->limit)
    return NULL;
  block_head_t *h = malloc(sizeof *h + size);
  if (h == NULL)
    return NULL;
  h->size = size;
  b->used += size;
  return h + 1;
}

static void budget_free(void *data, void *p) {
  bt_pb_budget_t *b = data;
  if (p == NULL)
    return;
  block_head_t *h = (block_head_t *)p - 1;
  b->used -= h->size;
  free(h);
}

void bt_pb_budget_init(bt_pb_budget_t *b, size_t limit) {
  b->a.alloc = budget_alloc;
  b->a.free = budget_free;
  b->a.allocator_data = b;
  b->used = 0;
  b->limit = limit;
}

size_t bt_pb_budget_for(size_t len) {
  /* A small repeated submessage unpacks into a struct ~40x its wire size (a
   * 7-byte PackageSpec becomes ~200 bytes plus its strings), so legitimate
   * messages need a generous factor; the cap bounds the worst case. */
  const size_t cap = 256u * 1024 * 1024;
  return len > (cap - (1u << 20)) / 64 ? cap : len * 64 + (1u << 20);
}

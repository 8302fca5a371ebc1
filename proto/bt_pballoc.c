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

size_t bt_pb_budget_for(size_t len) { return len * 8 + 65536; }

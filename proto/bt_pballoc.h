/*
 * A protobuf-c allocator with a budget. protobuf-c turns 1 MiB of hostile input
 * (unknown fields, empty repeated strings) into 24-36 MiB of heap while
 * unpacking (stack-findings §5); with a budget proportional to the message
 * size, runaway input fails to decode instead of growing without bound. Used
 * for every message from outside.
 */
#ifndef BT_PBALLOC_H
#define BT_PBALLOC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct {
  ProtobufCAllocator a; /* pass &budget.a to unpack and free_unpacked */
  size_t used;
  size_t limit;
} bt_pb_budget_t;

/* Prepares a budget of limit bytes. */
void bt_pb_budget_init(bt_pb_budget_t *b, size_t limit);

/* The budget for decoding a message of len bytes: 64x plus 1 MiB, at most
 * 256 MiB. */
size_t bt_pb_budget_for(size_t len);

#endif

/* Lanes: one package's writes on one of several store connections (store.h). */
#include "store.h"

#include <stdlib.h>

void bt_lanes_init(bt_lanes_t *l, size_t n) {
  *l = (bt_lanes_t){.n = n >= 1 && n <= BT_STORE_MAX_LANES ? n : 1};
  l->open = l->n;
}

bt_store_t *bt_lanes_for(const bt_lanes_t *l, uint64_t package_id) {
  /* Package ids are handed out in sequence, so the remainder spreads a burst
   * of submits evenly over the lanes. A lane closed already (bt_lanes_close)
   * hands its packages to lane 0: everything it had is committed or failed. */
  size_t i = (size_t)(package_id % l->n);
  return i < l->open ? l->lane[i] : l->lane[0];
}

typedef struct {
  size_t left;
  int status;
  bt_store_cb cb;
  void *arg;
} lanes_barrier_t;

static void on_lane_barrier(void *arg, int status) {
  lanes_barrier_t *b = arg;
  if (status != 0 && b->status == 0)
    b->status = status;
  if (--b->left > 0)
    return;
  bt_store_cb cb = b->cb;
  void *cb_arg = b->arg;
  status = b->status;
  free(b);
  cb(cb_arg, status);
}

void bt_lanes_barrier(const bt_lanes_t *l, bt_store_cb cb, void *arg) {
  if (l->open <= 1) {
    bt_store_barrier(l->lane[0], cb, arg);
    return;
  }
  lanes_barrier_t *b = malloc(sizeof *b);
  if (b == NULL)
    abort();
  *b = (lanes_barrier_t){.left = l->open, .cb = cb, .arg = arg};
  /* A barrier answers from the loop, never from inside bt_store_barrier, so
   * the count cannot reach zero before every lane has its barrier. */
  for (size_t i = 0; i < l->open; i++)
    bt_store_barrier(l->lane[i], on_lane_barrier, b);
}

bool bt_lanes_down(const bt_lanes_t *l) {
  for (size_t i = 0; i < l->open; i++)
    if (bt_store_is_down(l->lane[i]))
      return true;
  return false;
}

uint64_t bt_lanes_stalled_ms(const bt_lanes_t *l, uint64_t now_ms) {
  uint64_t worst = 0;
  for (size_t i = 0; i < l->open; i++) {
    uint64_t s = bt_store_stalled_ms(l->lane[i], now_ms);
    if (s > worst)
      worst = s;
  }
  return worst;
}

size_t bt_lanes_backlog(const bt_lanes_t *l) {
  size_t n = 0;
  for (size_t i = 0; i < l->open; i++)
    n += bt_store_backlog(l->lane[i]);
  return n;
}

/* Lanes close one at a time, the last first and lane 0 at the end. A commit
 * callback on any lane may write to any other (a finished package frees an
 * agent slot, the next package is assigned): a lane being closed still takes
 * those writes and drains them, and a lane closed already is never written
 * again, because bt_lanes_for sends its packages to lane 0, which is open
 * until the end. */
static void close_next(bt_lanes_t *l);

static void on_lane_closed(void *arg) {
  bt_lanes_t *l = arg;
  l->open--;
  close_next(l);
}

static void close_next(bt_lanes_t *l) {
  if (l->open > 0) {
    bt_store_close(l->lane[l->open - 1], on_lane_closed, l);
    return;
  }
  void (*cb)(void *) = l->on_closed;
  void *cb_arg = l->closed_arg;
  for (size_t i = 0; i < l->n; i++)
    l->lane[i] = NULL;
  if (cb)
    cb(cb_arg);
}

void bt_lanes_close(bt_lanes_t *l, void (*on_closed)(void *arg), void *arg) {
  l->on_closed = on_closed;
  l->closed_arg = arg;
  close_next(l);
}

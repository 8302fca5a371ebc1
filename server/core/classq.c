/*
 * The queue of one class (capability + requirement set): its routable
 * packages in ready order, and the oldest of them for aging.
 *
 * Ready order is priority, then deadline (none last), then id; aging order is
 * ready time, then id. A routing decision reads the best and the oldest of
 * every class it looks at, so both must be cheap, and the common case —
 * packages without a deadline, submitted one after another — must cost the
 * same with a thousand or a million queued. Hence, per priority level:
 *
 *  - a FIFO (doubly linked through the packages) that takes a package only if
 *    it sorts after the tail in both orders: a later (deadline, id) and a
 *    later (ready time, id). New submissions without a deadline always
 *    qualify, and so do those whose deadline is a fixed time after submission
 *    (the usual SLA): push and pop are O(1). Because the FIFO is in both
 *    orders at once, its head is both its best and its oldest, and aging needs
 *    nothing more for it;
 *  - a heap for the rest (deadlines out of order; a requeued package with a
 *    lower id than the tail; a package loaded at start with an older ready
 *    time), keyed by (deadline, id), with its packages also in one aging heap
 *    per class keyed by (ready time, id).
 *
 * Keys sit in the heap entries and the FIFO ends, so comparing classes and
 * sifting a heap read no package (at a million queued every package read is a
 * cache miss); only moving an entry writes its package's position.
 */
#include "core_int.h"

#include <string.h>

#define NO_DEADLINE INT64_MAX

/* --- a 4-ary heap with the key inline --------------------------------------- */

static bool kent_less(const bt_kent_t *a, const bt_kent_t *b) {
  return a->k1 != b->k1 ? a->k1 < b->k1 : a->k2 < b->k2;
}

static void kh_set(bt_kheap_t *h, uint32_t i, bt_kent_t e) {
  h->v[i] = e;
  *(uint32_t *)((char *)e.p + h->pos_off) = i;
}

static void kh_sift_up(bt_kheap_t *h, uint32_t i) {
  bt_kent_t e = h->v[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 4;
    if (!kent_less(&e, &h->v[parent]))
      break;
    kh_set(h, i, h->v[parent]);
    i = parent;
  }
  kh_set(h, i, e);
}

static void kh_sift_down(bt_kheap_t *h, uint32_t i) {
  bt_kent_t e = h->v[i];
  for (;;) {
    uint32_t first = 4 * i + 1, best = i;
    const bt_kent_t *bp = &e;
    for (uint32_t c = first; c < first + 4 && c < h->n; c++)
      if (kent_less(&h->v[c], bp)) {
        best = c;
        bp = &h->v[c];
      }
    if (best == i)
      break;
    kh_set(h, i, *bp);
    i = best;
  }
  kh_set(h, i, e);
}

static void kh_push(bt_kheap_t *h, int64_t k1, uint64_t k2, bt_core_pkg_t *p) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 8;
    h->v = bt_xrealloc(h->v, (size_t)h->cap * sizeof *h->v);
  }
  h->v[h->n] = (bt_kent_t){k1, k2, p};
  kh_sift_up(h, h->n++);
}

static void kh_remove(bt_kheap_t *h, bt_core_pkg_t *p) {
  uint32_t *pos = (uint32_t *)((char *)p + h->pos_off);
  uint32_t i = *pos;
  BT_ASSERT(i < h->n && h->v[i].p == p);
  *pos = BT_NOPOS;
  if (i == --h->n)
    return;
  kh_set(h, i, h->v[h->n]);
  if (i > 0 && kent_less(&h->v[i], &h->v[(i - 1) / 4]))
    kh_sift_up(h, i);
  else
    kh_sift_down(h, i);
}

static void kh_close(bt_kheap_t *h) {
  free(h->v);
  memset(h, 0, sizeof *h);
}

/* --- the class queue ----------------------------------------------------------- */

void bt_classq_init(bt_classq_t *q) {
  memset(q, 0, sizeof *q);
  for (int i = 0; i < BT_PRIORITIES; i++)
    q->prio[i].heap.pos_off = offsetof(bt_core_pkg_t, rq_pos);
  q->age.pos_off = offsetof(bt_core_pkg_t, ag_pos);
}

void bt_classq_close(bt_classq_t *q) {
  for (int i = 0; i < BT_PRIORITIES; i++)
    kh_close(&q->prio[i].heap);
  kh_close(&q->age);
}

static int64_t deadline_key(const bt_core_pkg_t *p) {
  return p->deadline_at ? p->deadline_at : NO_DEADLINE;
}

static bool fifo_takes(const bt_prioq_t *l, const bt_core_pkg_t *p) {
  if (l->head == NULL)
    return true;
  /* After the tail in ready order and in aging order, ties broken by id in
   * both (a lower id at the same ready time would be older than the tail). */
  int64_t d = deadline_key(p);
  return (d > l->tail_deadline || (d == l->tail_deadline && p->id > l->tail_id)) &&
         (p->ready_at > l->tail_ready_at ||
          (p->ready_at == l->tail_ready_at && p->id > l->tail_id));
}

void bt_classq_push(bt_classq_t *q, bt_core_pkg_t *p) {
  BT_ASSERT(p->priority < BT_PRIORITIES);
  bt_prioq_t *l = &q->prio[p->priority];
  if (fifo_takes(l, p)) {
    p->rq_prev = l->tail;
    p->rq_next = NULL;
    p->rq_pos = BT_NOPOS;
    if (l->tail != NULL) {
      l->tail->rq_next = p;
    } else {
      l->head = p;
      l->head_id = p->id;
      l->head_deadline = deadline_key(p);
      l->head_ready_at = p->ready_at;
    }
    l->tail = p;
    l->tail_id = p->id;
    l->tail_deadline = deadline_key(p);
    l->tail_ready_at = p->ready_at;
  } else {
    p->rq_prev = p->rq_next = NULL;
    kh_push(&l->heap, deadline_key(p), p->id, p);
    kh_push(&q->age, p->ready_at, p->id, p);
  }
  q->nonempty |= (uint16_t)(1u << p->priority);
  q->n++;
}

void bt_classq_remove(bt_classq_t *q, bt_core_pkg_t *p) {
  bt_prioq_t *l = &q->prio[p->priority];
  if (p->rq_pos != BT_NOPOS) {
    kh_remove(&l->heap, p);
    kh_remove(&q->age, p);
  } else {
    if (p->rq_prev != NULL)
      p->rq_prev->rq_next = p->rq_next;
    else
      l->head = p->rq_next;
    if (p->rq_next != NULL)
      p->rq_next->rq_prev = p->rq_prev;
    else
      l->tail = p->rq_prev;
    /* The new ends' keys; a package read only when an end changed. */
    if (l->head != NULL && p->rq_prev == NULL) {
      l->head_id = l->head->id;
      l->head_deadline = deadline_key(l->head);
      l->head_ready_at = l->head->ready_at;
    }
    if (l->tail != NULL && p->rq_next == NULL) {
      l->tail_id = l->tail->id;
      l->tail_deadline = deadline_key(l->tail);
      l->tail_ready_at = l->tail->ready_at;
    }
    p->rq_prev = p->rq_next = NULL;
  }
  if (l->head == NULL && l->heap.n == 0)
    q->nonempty &= (uint16_t) ~(1u << p->priority);
  q->n--;
}

bool bt_classq_best(const bt_classq_t *q, bt_qkey_t *out) {
  if (q->nonempty == 0)
    return false;
  int prio = 31 - __builtin_clz((unsigned)q->nonempty);
  const bt_prioq_t *l = &q->prio[prio];
  const bt_kent_t *top = l->heap.n ? &l->heap.v[0] : NULL;
  if (l->head != NULL &&
      (top == NULL || l->head_deadline < top->k1 ||
       (l->head_deadline == top->k1 && l->head_id < top->k2))) {
    *out = (bt_qkey_t){l->head, l->head_deadline, l->head_id, (uint8_t)prio};
  } else {
    *out = (bt_qkey_t){top->p, top->k1, top->k2, (uint8_t)prio};
  }
  return true;
}

bool bt_classq_oldest(const bt_classq_t *q, bt_agekey_t *out) {
  bool found = false;
  if (q->age.n > 0) {
    *out = (bt_agekey_t){q->age.v[0].p, q->age.v[0].k1, q->age.v[0].k2};
    found = true;
  }
  for (unsigned bits = q->nonempty; bits != 0; bits &= bits - 1) {
    const bt_prioq_t *l = &q->prio[__builtin_ctz(bits)];
    if (l->head == NULL)
      continue;
    if (!found || l->head_ready_at < out->ready_at ||
        (l->head_ready_at == out->ready_at && l->head_id < out->id)) {
      *out = (bt_agekey_t){l->head, l->head_ready_at, l->head_id};
      found = true;
    }
  }
  return found;
}

bt_core_pkg_t *bt_classq_any(const bt_classq_t *q) {
  bt_qkey_t k;
  return bt_classq_best(q, &k) ? k.p : NULL;
}

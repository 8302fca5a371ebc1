/*
 * server/core/classq.c, the queue of one class, against a brute-force model:
 * after every push and removal the best package (priority, deadline, id) and
 * the oldest (ready_at, id) are the ones a scan of every queued package gives.
 * The streams mix what the FIFO fast path takes (increasing ids, ready times
 * that do not go back) with what it must leave to the heaps: deadlines,
 * requeued packages with low ids, ready times from before (loaded at start),
 * removals from the middle, the head and the tail.
 *
 * This one test reads the core's internals (core_int.h): the class queue has
 * no public API of its own, and its orders are easier to pin down here than
 * through routing decisions (test_core_property checks those).
 */
#include "core_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define MAXP 600

typedef struct {
  bt_classq_t q;
  bt_core_pkg_t *pkgs[MAXP];
  bool in[MAXP];
  uint64_t rng;
  uint64_t next_id, low_id;
  int64_t clock;
} world_t;

static uint64_t rnd(world_t *w) {
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 7;
  w->rng ^= w->rng << 17;
  return w->rng;
}

static uint32_t below(world_t *w, uint32_t n) { return (uint32_t)(rnd(w) % n); }

static bool model_better(const bt_core_pkg_t *a, const bt_core_pkg_t *b) {
  if (a->priority != b->priority)
    return a->priority > b->priority;
  int64_t da = a->deadline_at ? a->deadline_at : INT64_MAX;
  int64_t db = b->deadline_at ? b->deadline_at : INT64_MAX;
  if (da != db)
    return da < db;
  return a->id < b->id;
}

static bool model_older(const bt_core_pkg_t *a, const bt_core_pkg_t *b) {
  if (a->ready_at != b->ready_at)
    return a->ready_at < b->ready_at;
  return a->id < b->id;
}

static void check(world_t *w) {
  const bt_core_pkg_t *best = NULL, *oldest = NULL;
  uint32_t n = 0;
  for (int i = 0; i < MAXP; i++) {
    if (!w->in[i])
      continue;
    n++;
    const bt_core_pkg_t *p = w->pkgs[i];
    if (best == NULL || model_better(p, best))
      best = p;
    if (oldest == NULL || model_older(p, oldest))
      oldest = p;
  }
  assert_int_equal(w->q.n, n);
  bt_qkey_t k;
  bt_agekey_t a;
  assert_int_equal(bt_classq_best(&w->q, &k), n > 0);
  assert_int_equal(bt_classq_oldest(&w->q, &a), n > 0);
  if (n == 0) {
    assert_null(bt_classq_any(&w->q));
    return;
  }
  assert_ptr_equal(k.p, best);
  assert_int_equal(k.id, best->id);
  assert_int_equal(k.priority, best->priority);
  assert_true(k.deadline == (best->deadline_at ? best->deadline_at : INT64_MAX));
  assert_ptr_equal(a.p, oldest);
  assert_int_equal(a.id, oldest->id);
  assert_true(a.ready_at == oldest->ready_at);
}

static void push(world_t *w, int slot, uint64_t id, uint8_t prio, int64_t deadline,
                 int64_t ready_at) {
  bt_core_pkg_t *p = w->pkgs[slot];
  memset(p, 0, sizeof *p);
  p->id = id;
  p->priority = prio;
  p->deadline_at = deadline;
  p->ready_at = ready_at;
  p->rq_pos = p->ag_pos = BT_NOPOS;
  bt_classq_push(&w->q, p);
  w->in[slot] = true;
}

/* slots: how many packages may be queued at once (up to MAXP); tick: the clock
 * moves on average every tick pushes (1 = every push, more = many packages in
 * the same millisecond, where ids break the ties). */
static void run(uint64_t seed, uint32_t steps, uint32_t prios, uint32_t slots,
                uint32_t tick) {
  world_t *w = calloc(1, sizeof *w);
  assert_non_null(w);
  bt_classq_init(&w->q);
  for (int i = 0; i < MAXP; i++) {
    w->pkgs[i] = calloc(1, sizeof(bt_core_pkg_t));
    assert_non_null(w->pkgs[i]);
  }
  w->rng = seed * 0x9E3779B97F4A7C15ull + 1;
  w->next_id = 1000000;
  w->low_id = 999999;
  w->clock = 1000000;
  for (uint32_t s = 0; s < steps; s++) {
    int slot = (int)below(w, slots);
    if (w->in[slot]) {
      bt_classq_remove(&w->q, w->pkgs[slot]);
      w->in[slot] = false;
    } else {
      w->clock += below(w, tick) == 0 ? 1 + below(w, 2) : 0;
      uint32_t kind = below(w, 10);
      uint64_t id = w->next_id++;
      int64_t ready = w->clock, deadline = 0;
      if (kind == 0) /* requeued: an old id (ids stay unique) */
        id = w->low_id--;
      else if (kind == 1) /* loaded at start: it was ready long ago */
        ready = w->clock - below(w, 100000);
      else if (kind <= 3) /* with a deadline, some equal */
        deadline = w->clock + 1000 * below(w, 20);
      else if (kind <= 5) /* a fixed SLA: deadlines in submission order */
        deadline = w->clock + 60000;
      push(w, slot, id, (uint8_t)below(w, prios), deadline, ready);
    }
    check(w);
  }
  /* Drain through best, then through oldest: the orders hold to the end. */
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < MAXP; i++)
      if (!w->in[i] && below(w, 2) == 0)
        push(w, i, w->next_id++, (uint8_t)below(w, prios),
             below(w, 3) == 0 ? w->clock + below(w, 5000) : 0, w->clock - below(w, 50));
    check(w);
    bt_qkey_t k;
    bt_agekey_t a;
    const bt_core_pkg_t *prev = NULL;
    while (round == 0 ? bt_classq_best(&w->q, &k) : bt_classq_oldest(&w->q, &a)) {
      bt_core_pkg_t *p = round == 0 ? k.p : a.p;
      if (prev != NULL)
        assert_false(round == 0 ? model_better(p, prev) : model_older(p, prev));
      prev = p;
      bt_classq_remove(&w->q, p);
      for (int i = 0; i < MAXP; i++)
        if (w->pkgs[i] == p)
          w->in[i] = false;
      check(w);
    }
    assert_int_equal(w->q.nonempty, 0);
  }
  bt_classq_close(&w->q);
  for (int i = 0; i < MAXP; i++)
    free(w->pkgs[i]);
  free(w);
}

static void test_classq_one_priority(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 4; seed++)
    run(seed, 20000, 1, MAXP, 2);
  for (uint64_t seed = 5; seed <= 12; seed++)
    run(seed, 5000, 1, 12, 8);
}

static void test_classq_ten_priorities(void **state) {
  (void)state;
  for (uint64_t seed = 21; seed <= 24; seed++)
    run(seed, 20000, BT_PRIORITIES, MAXP, 2);
  for (uint64_t seed = 25; seed <= 32; seed++)
    run(seed, 5000, 3, 30, 8);
}

/* The fast path: plain submissions stay in the FIFOs (no heap entry), and a
 * FIFO head removed in the middle of the stream keeps both orders. So do
 * deadlines a fixed time after submission; one out of order goes to the heap. */
static void test_classq_plain_stream_uses_no_heap(void **state) {
  (void)state;
  bt_classq_t q;
  bt_classq_init(&q);
  bt_core_pkg_t pk[100];
  memset(pk, 0, sizeof pk);
  for (int i = 0; i < 100; i++) {
    pk[i].id = (uint64_t)i + 1;
    pk[i].priority = (uint8_t)(i % 3);
    pk[i].ready_at = 5000 + i / 10;
    pk[i].rq_pos = pk[i].ag_pos = BT_NOPOS;
    bt_classq_push(&q, &pk[i]);
  }
  for (int l = 0; l < BT_PRIORITIES; l++)
    assert_int_equal(q.prio[l].heap.n, 0);
  assert_int_equal(q.age.n, 0);
  bt_qkey_t k;
  bt_agekey_t a;
  assert_true(bt_classq_best(&q, &k));
  assert_ptr_equal(k.p, &pk[2]); /* priority 2, lowest id */
  assert_true(bt_classq_oldest(&q, &a));
  assert_ptr_equal(a.p, &pk[0]);
  bt_classq_remove(&q, &pk[0]);
  bt_classq_remove(&q, &pk[2]);
  assert_true(bt_classq_best(&q, &k));
  assert_ptr_equal(k.p, &pk[5]);
  assert_true(bt_classq_oldest(&q, &a));
  assert_ptr_equal(a.p, &pk[1]);
  /* A requeued package with a low id goes to the heap and still wins. */
  pk[2].ready_at = 9000;
  bt_classq_push(&q, &pk[2]);
  assert_int_equal(q.prio[2].heap.n, 1);
  assert_true(bt_classq_best(&q, &k));
  assert_ptr_equal(k.p, &pk[2]);
  bt_classq_close(&q);

  bt_classq_init(&q);
  memset(pk, 0, sizeof pk);
  for (int i = 0; i < 50; i++) {
    pk[i].id = (uint64_t)i + 1;
    pk[i].priority = 4;
    pk[i].ready_at = 7000 + i;
    pk[i].deadline_at = 7000 + i + 3600000; /* submitted + 1 h */
    pk[i].rq_pos = pk[i].ag_pos = BT_NOPOS;
    bt_classq_push(&q, &pk[i]);
  }
  assert_int_equal(q.prio[4].heap.n, 0);
  pk[50] = (bt_core_pkg_t){.id = 51, .priority = 4, .ready_at = 7100,
                           .deadline_at = 7010, .rq_pos = BT_NOPOS, .ag_pos = BT_NOPOS};
  bt_classq_push(&q, &pk[50]);
  assert_int_equal(q.prio[4].heap.n, 1);
  assert_true(bt_classq_best(&q, &k));
  assert_ptr_equal(k.p, &pk[50]); /* the earliest deadline */
  assert_true(bt_classq_oldest(&q, &a));
  assert_ptr_equal(a.p, &pk[0]);
  bt_classq_close(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classq_one_priority),
      cmocka_unit_test(test_classq_ten_priorities),
      cmocka_unit_test(test_classq_plain_stream_uses_no_heap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

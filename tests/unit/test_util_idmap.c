/*
 * server/util/bt_idmap: put/get/del, growth, tombstones and their reuse, and a
 * seeded random walk of 1e5 operations per seed checked against a plain array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_idmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Distinct fake pointers for values. */
#define VAL(k) ((void *)(uintptr_t)((k) * 16 + 8))

static uint32_t count_used(const bt_idmap_t *m) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < m->cap; i++)
    if (bt_idmap_used(m, i))
      n++;
  return n;
}

static void test_util_idmap_basic(void **state) {
  (void)state;
  bt_idmap_t m;
  bt_idmap_init(&m);
  assert_null(bt_idmap_get(&m, 1));   /* empty map, no table yet */
  assert_null(bt_idmap_del(&m, 1));

  bt_idmap_put(&m, 1, VAL(1));
  bt_idmap_put(&m, 42, VAL(42));
  bt_idmap_put(&m, UINT64_MAX - 1, VAL(7));
  assert_int_equal(m.n, 3);
  assert_ptr_equal(bt_idmap_get(&m, 1), VAL(1));
  assert_ptr_equal(bt_idmap_get(&m, 42), VAL(42));
  assert_ptr_equal(bt_idmap_get(&m, UINT64_MAX - 1), VAL(7));
  assert_null(bt_idmap_get(&m, 2));

  /* put on an existing key replaces the value */
  bt_idmap_put(&m, 42, VAL(43));
  assert_int_equal(m.n, 3);
  assert_ptr_equal(bt_idmap_get(&m, 42), VAL(43));

  assert_ptr_equal(bt_idmap_del(&m, 42), VAL(43));
  assert_null(bt_idmap_get(&m, 42));
  assert_null(bt_idmap_del(&m, 42)); /* twice: not there any more */
  assert_int_equal(m.n, 2);
  assert_int_equal(m.tomb, 1);
  assert_int_equal(count_used(&m), 2);

  bt_idmap_close(&m);
  assert_int_equal(m.cap, 0);
  assert_null(m.keys);
  assert_null(bt_idmap_get(&m, 1)); /* a closed map reads as empty */
}

static void test_util_idmap_growth(void **state) {
  (void)state;
  bt_idmap_t m;
  bt_idmap_init(&m);
  const uint64_t n = 200000;
  for (uint64_t k = 1; k <= n; k++) {
    bt_idmap_put(&m, k, VAL(k));
    /* the load factor stays under 3/4 and the capacity a power of two */
    assert_true((uint64_t)(m.n + m.tomb) * 4 < (uint64_t)m.cap * 3);
  }
  assert_int_equal(m.n, n);
  assert_int_equal(m.cap & (m.cap - 1), 0);
  for (uint64_t k = 1; k <= n; k++)
    if (bt_idmap_get(&m, k) != VAL(k))
      fail_msg("key %llu lost after growth", (unsigned long long)k);
  assert_null(bt_idmap_get(&m, n + 1));
  assert_int_equal(count_used(&m), n);

  /* sparse, large ids too */
  for (uint64_t k = 1; k <= 1000; k++)
    bt_idmap_put(&m, k << 40, VAL(k));
  for (uint64_t k = 1; k <= 1000; k++)
    assert_ptr_equal(bt_idmap_get(&m, k << 40), VAL(k));
  bt_idmap_close(&m);
}

/* Deleting leaves tombstones; putting the same keys again reuses them instead of
 * filling empty slots, so the table does not grow. */
static void test_util_idmap_tombstone_reuse(void **state) {
  (void)state;
  bt_idmap_t m;
  bt_idmap_init(&m);
  for (uint64_t k = 1; k <= 40; k++)
    bt_idmap_put(&m, k, VAL(k));
  uint32_t cap = m.cap;
  assert_int_equal(cap, 64);
  for (uint64_t k = 1; k <= 40; k++)
    assert_ptr_equal(bt_idmap_del(&m, k), VAL(k));
  assert_int_equal(m.n, 0);
  assert_int_equal(m.tomb, 40);
  for (uint64_t k = 1; k <= 40; k++)
    assert_null(bt_idmap_get(&m, k)); /* a lookup walks past tombstones */
  for (uint64_t k = 1; k <= 40; k++)
    bt_idmap_put(&m, k, VAL(k + 1));
  assert_int_equal(m.cap, cap);
  assert_int_equal(m.n, 40);
  assert_int_equal(m.tomb, 0);
  for (uint64_t k = 1; k <= 40; k++)
    assert_ptr_equal(bt_idmap_get(&m, k), VAL(k + 1));
  bt_idmap_close(&m);
}

/* Churn of short-lived ids (sessions come and go) must not grow the table: a
 * table of mostly tombstones is rehashed at the same size. */
static void test_util_idmap_churn_bounded(void **state) {
  (void)state;
  bt_idmap_t m;
  bt_idmap_init(&m);
  for (uint64_t k = 1; k <= 5; k++)
    bt_idmap_put(&m, k, VAL(k));
  for (uint64_t k = 100; k < 100100; k++) {
    bt_idmap_put(&m, k, VAL(k));
    assert_ptr_equal(bt_idmap_del(&m, k), VAL(k));
  }
  assert_true(m.cap <= 128);
  assert_int_equal(m.n, 5);
  for (uint64_t k = 1; k <= 5; k++)
    assert_ptr_equal(bt_idmap_get(&m, k), VAL(k));
  bt_idmap_close(&m);
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* 1e5 random operations per seed against a reference array; the key universe
 * is small enough that keys come back after being deleted. */
static void test_util_idmap_random_vs_reference(void **state) {
  (void)state;
  static const uint64_t seeds[] = {1, 0xdeadbeefull, 20261122ull};
  enum { UNIVERSE = 3000, OPS = 100000 };
  for (size_t si = 0; si < sizeof seeds / sizeof seeds[0]; si++) {
    uint64_t s = seeds[si] * 0x9e3779b97f4a7c15ull + 1;
    uint64_t *keys = test_malloc(UNIVERSE * sizeof *keys);
    void **ref = test_calloc(UNIVERSE, sizeof *ref);
    for (int i = 0; i < UNIVERSE; i++) {
      uint64_t k;
      do {
        /* half small dense ids, half anywhere in the 64-bit space */
        k = (i & 1) ? xorshift(&s) : (uint64_t)i + 1;
      } while (k == 0 || k == UINT64_MAX);
      keys[i] = k;
    }
    bt_idmap_t m;
    bt_idmap_init(&m);
    uint32_t live = 0;
    for (int op = 0; op < OPS; op++) {
      uint64_t r = xorshift(&s);
      int i = (int)((r >> 8) % UNIVERSE);
      switch (r % 10) {
      case 0: case 1: case 2: case 3: case 4: { /* put */
        void *v = (void *)(uintptr_t)(((r >> 20) | 1) << 3);
        if (ref[i] == NULL)
          live++;
        ref[i] = v;
        bt_idmap_put(&m, keys[i], v);
        break;
      }
      case 5: case 6: case 7: { /* del */
        void *got = bt_idmap_del(&m, keys[i]);
        if (got != ref[i])
          fail_msg("seed %zu op %d: del returned %p, want %p", si, op, got, ref[i]);
        if (ref[i] != NULL)
          live--;
        ref[i] = NULL;
        break;
      }
      default: { /* get */
        void *got = bt_idmap_get(&m, keys[i]);
        if (got != ref[i])
          fail_msg("seed %zu op %d: get returned %p, want %p", si, op, got, ref[i]);
      }
      }
      if (m.n != live)
        fail_msg("seed %zu op %d: n=%u, want %u", si, op, m.n, live);
    }
    for (int i = 0; i < UNIVERSE; i++)
      assert_ptr_equal(bt_idmap_get(&m, keys[i]), ref[i]);
    assert_int_equal(count_used(&m), live);
    bt_idmap_close(&m);
    test_free(keys);
    test_free(ref);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util_idmap_basic),
      cmocka_unit_test(test_util_idmap_growth),
      cmocka_unit_test(test_util_idmap_tombstone_reuse),
      cmocka_unit_test(test_util_idmap_churn_bounded),
      cmocka_unit_test(test_util_idmap_random_vs_reference),
  };
  return cmocka_run_group_tests_name("util_idmap", tests, NULL, NULL);
}

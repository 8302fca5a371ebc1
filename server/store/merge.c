/*
 * Merging: package writes leave the broker as one array statement per kind
 * and round instead of one statement per write. Keyless submits, assigns,
 * starts and finishes are array statements (sql.def); each op carries its
 * row as one-element arrays, and the ops of one kind and round are sent as
 * one statement whose arrays are their arrays concatenated (a "carrier").
 * tests/bench found a statement costs the backend about 100 µs of fixed work
 * (executor start-up, the CHECK constraints read back from the catalog
 * before migrations/0010 made them domains, the CTE machinery) and a row
 * inside an array a few µs.
 *
 * Order is what makes this safe. The statements of a segment run in one
 * transaction, in the order sent. Writes about different packages do not
 * depend on each other; writes about one package must keep their order. So
 * an op goes to the round after the one holding its package's latest op,
 * rounds go out in order, and inside a round the kinds go out as submit,
 * assign, start, finish, complete (a completion is a finish with a statement
 * of its own; a package is in a round at most once, except that a package
 * submitted and assigned in one segment has both in round 0: submit first).
 * An op that cannot be merged (a handoff, an audit row, a read, a keyed
 * submit) closes the rounds: the engine sends what waits before it.
 *
 * A start followed by the finish (or completion) of the same attempt in one
 * segment is folded into it (it sets started_at), one row update per table
 * instead of two: a quick handler's start and result usually arrive in one
 * loop turn.
 */
#include "store_int.h"

#include "bt_err.h"

#include <stdlib.h>
#include <string.h>

/* The kinds in the order they go out inside a round. */
static const int kind_stmt[] = {BT_SQL_PACKAGES_INSERT, BT_SQL_ASSIGN, BT_SQL_START,
                                BT_SQL_FINISH, BT_SQL_COMPLETE};
#define N_KINDS (int)(sizeof kind_stmt / sizeof kind_stmt[0])
/* A package with more writes than this in one segment closes the rounds. */
#define MAX_ROUNDS 16

struct bt_store_last {
  uint64_t key;
  uint32_t gen; /* an entry of another generation is free */
  uint8_t round;
  bt_store_op_t *op;
};

static int kind_of(const bt_store_op_t *op) {
  if (!op->mergeable || op->nq != 1)
    return -1;
  for (int k = 0; k < N_KINDS; k++)
    if (op->stmt[0] == kind_stmt[k])
      return k;
  return -1;
}

static uint32_t hash64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return (uint32_t)k;
}

/* The package's entry, or the free slot where it would go. */
static struct bt_store_last *slot_for(bt_store_t *st, uint64_t key) {
  uint32_t mask = st->last_cap - 1;
  for (uint32_t i = hash64(key) & mask;; i = (i + 1) & mask) {
    struct bt_store_last *e = &st->last[i];
    if (e->gen != st->last_gen || e->key == key)
      return e;
  }
}

static void ensure_table(bt_store_t *st) {
  if (st->last != NULL)
    return;
  uint32_t cap = 64;
  while (cap < 2 * st->opts.max_segment_ops)
    cap *= 2;
  st->last = calloc(cap, sizeof *st->last);
  if (st->last == NULL)
    abort();
  st->last_cap = cap;
  st->last_gen = 1;
}

static void push(bt_store_t *st, bt_store_op_t *op) {
  if (st->mq_n == st->mq_cap) {
    st->mq_cap = st->mq_cap ? st->mq_cap * 2 : 256;
    st->mq = realloc(st->mq, st->mq_cap * sizeof *st->mq);
    if (st->mq == NULL)
      abort();
  }
  st->mq[st->mq_n++] = op;
}

bool bt_store__merge_add(bt_store_t *st, bt_store_op_t *op) {
  int kind = kind_of(op);
  if (kind < 0)
    return false;
  uint8_t round = 0;
  if (op->stmt[0] != BT_SQL_PACKAGES_INSERT) {
    ensure_table(st);
    /* Each op adds at most one entry and a segment holds at most
     * max_segment_ops ops, so the table is never more than half full. */
    struct bt_store_last *e = slot_for(st, op->merge_key);
    bool known = e->gen == st->last_gen;
    if (known) {
      bt_store_op_t *prev = e->op;
      bool ends = op->stmt[0] == BT_SQL_FINISH || op->stmt[0] == BT_SQL_COMPLETE;
      if (ends && prev->stmt[0] == BT_SQL_START && prev->merge_attempt == op->merge_attempt) {
        prev->absorbed = true;
        round = e->round;
        /* FINISH's and COMPLETE's last column is the start time. */
        bt_pgparams_t *p = &op->params[0];
        bt_pgp_truncate(p, p->n - 1);
        bt_pgarr_t a;
        bt_pga_begin(&a, p, BT_PG_OID_TIMESTAMPTZ);
        bt_pga_ts(&a, prev->merge_at);
        bt_pga_end(&a);
      } else {
        if (e->round + 1 >= MAX_ROUNDS)
          return false;
        round = (uint8_t)(e->round + 1);
      }
    }
    e->key = op->merge_key;
    e->gen = st->last_gen;
    e->round = round;
    e->op = op;
  }
  op->round = round;
  op->merged = true;
  if (round + 1 > st->rounds)
    st->rounds = (uint8_t)(round + 1);
  push(st, op);
  return true;
}

static bt_store_op_t *carrier_of(bt_store_op_t **members, size_t n, int stmt) {
  bt_store_op_t *c = bt_store__op_new(NULL, NULL, NULL);
  c->carrier = true;
  bt_pgparams_t *p = bt_store__op_stmt(c, stmt);
  c->extra = members; /* owned: the member list, freed with the carrier */
  c->n_extra = n;
  const bt_pgparams_t **src = malloc(n * sizeof *src);
  if (src == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    src[i] = &members[i]->params[0];
    /* One member that may be there already makes the statement guarded. */
    c->unknown = c->unknown || members[i]->unknown;
  }
  for (int j = 0; j < src[0]->n; j++)
    bt_pgp_concat_arrays(p, src, n, j);
  free(src);
  return c;
}

bt_store_op_t *bt_store__merge_take(bt_store_t *st) {
  bt_store_op_t *head = NULL, *tail = NULL;
  for (uint8_t r = 0; r < st->rounds; r++) {
    for (int k = 0; k < N_KINDS; k++) {
      bt_store_op_t **members = NULL;
      size_t n = 0;
      for (size_t i = 0; i < st->mq_n; i++) {
        bt_store_op_t *op = st->mq[i];
        if (op->round != r || op->absorbed || op->stmt[0] != kind_stmt[k])
          continue;
        if (members == NULL) {
          members = malloc((st->mq_n - i) * sizeof *members);
          if (members == NULL)
            abort();
        }
        members[n++] = op;
      }
      if (n == 0)
        continue;
      bt_store_op_t *c = carrier_of(members, n, kind_stmt[k]);
      if (tail)
        tail->next = c;
      else
        head = c;
      tail = c;
    }
  }
  bt_store__merge_reset(st);
  return head;
}

void bt_store__merge_reset(bt_store_t *st) {
  st->mq_n = 0;
  st->rounds = 0;
  if (st->last != NULL && ++st->last_gen == 0) {
    memset(st->last, 0, st->last_cap * sizeof *st->last);
    st->last_gen = 1;
  }
}

void bt_store__merge_unwind(bt_store_seg_t *seg) {
  bt_store_op_t **pp = &seg->head, *prev = NULL;
  while (*pp != NULL) {
    bt_store_op_t *op = *pp;
    if (!op->carrier) {
      op->merged = false;
      op->absorbed = false;
      prev = op;
      pp = &op->next;
      continue;
    }
    /* Its members take its error, the first cause over "rolled back by
     * someone else's error". */
    bt_store_op_t **members = op->extra;
    for (size_t i = 0; op->status != 0 && i < op->n_extra; i++) {
      bt_store_op_t *m = members[i];
      if (m->status == 0 || (m->status == BT_EDBRETRY && op->status != BT_EDBRETRY)) {
        m->status = op->status;
        memcpy(m->errmsg, op->errmsg, sizeof m->errmsg);
      }
    }
    *pp = op->next;
    if (seg->tail == op)
      seg->tail = prev;
    bt_store__op_free(op);
  }
  seg->cur = NULL;
}

void bt_store__merge_close(bt_store_t *st) {
  free(st->mq);
  free(st->last);
  st->mq = NULL;
  st->last = NULL;
  st->mq_n = st->mq_cap = 0;
}

/*
 * The attempts this agent holds: running tasks, tasks the broker cancelled that
 * have not stopped yet, and finished tasks whose result the broker has not
 * acknowledged. A small array scanned linearly: it holds at most the slots plus
 * the results waiting for a broker, a handful in practice. Owns the outputs,
 * errors and checkpoints it stores; never does I/O.
 */
#include "agent_int.h"

#include <string.h>

void *bt_agent__xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  BT_AGENT_ASSERT(p != NULL);
  return p;
}

void *bt_agent__xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  BT_AGENT_ASSERT(p != NULL);
  return p;
}

void *bt_agent__xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  BT_AGENT_ASSERT(q != NULL);
  return q;
}

char *bt_agent__xstrdup(const char *s) { return bt_agent__xmemdup(s, strlen(s) + 1); }

void *bt_agent__xmemdup(const void *p, size_t n) {
  void *q = bt_agent__xmalloc(n);
  if (n > 0)
    memcpy(q, p, n);
  return q;
}

bt_agent__att_t *bt_agent__atts_find(const bt_agent__atts_t *t, uint64_t package_id,
                                     uint32_t attempt) {
  for (size_t i = 0; i < t->n; i++) {
    if (t->v[i]->package_id == package_id && t->v[i]->attempt == attempt)
      return t->v[i];
  }
  return NULL;
}

bt_agent__att_t *bt_agent__atts_add(bt_agent__atts_t *t, uint64_t package_id,
                                    uint32_t attempt) {
  BT_AGENT_ASSERT(bt_agent__atts_find(t, package_id, attempt) == NULL);
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 8;
    t->v = bt_agent__xrealloc(t->v, t->cap * sizeof *t->v);
  }
  bt_agent__att_t *att = bt_agent__xcalloc(1, sizeof *att);
  att->package_id = package_id;
  att->attempt = attempt;
  att->state = BT_AGENT__ATT_RUNNING;
  att->percent = -1;
  t->v[t->n++] = att;
  return att;
}

static void att_free(bt_agent__att_t *att) {
  free(att->output);
  free(att->error);
  free(att->checkpoint);
  free(att);
}

void bt_agent__atts_remove(bt_agent__atts_t *t, bt_agent__att_t *att) {
  for (size_t i = 0; i < t->n; i++) {
    if (t->v[i] == att) {
      /* keep arrival order: results are reported oldest first */
      memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof *t->v);
      t->n--;
      att_free(att);
      return;
    }
  }
  BT_AGENT_ASSERT(!"attempt not in table");
}

size_t bt_agent__atts_count(const bt_agent__atts_t *t, unsigned mask) {
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++)
    n += (mask & BT_AGENT__BIT(t->v[i]->state)) != 0;
  return n;
}

void bt_agent__atts_clear(bt_agent__atts_t *t) {
  for (size_t i = 0; i < t->n; i++)
    att_free(t->v[i]);
  free(t->v);
  t->v = NULL;
  t->n = t->cap = 0;
}

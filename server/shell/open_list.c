/*
 * Listing rounds: the packages still open a while after their submit go into
 * open_packages, the list a restart reads (migrations/0011 says why a submit
 * no longer lists its packages, and what holds instead).
 *
 * One round at a time, started from the tick about every store_list_interval:
 * the core walks the ids above the list's floor and names the stretch that may
 * be listed (bt_core_open_unlisted); each id's listing goes on the connection
 * of that package's writes, and the floor moves to the end of the stretch
 * once every listing committed, in the same transaction when they all went to
 * lane 0 (the rule with one lane). A round that failed leaves the floor where
 * it was, and the next one walks the same stretch again: listing twice is
 * harmless.
 *
 * This file never decides what is listed (the core does) and never moves the
 * floor before the listings below it committed.
 */
#include "shell_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <stdlib.h>
#include <string.h>

/* Ids walked in one round. A round that walked this many goes on at once, so
 * the list keeps up with any submit rate in steps of this size; each step is
 * one statement of at most this many rows (a few ms of PostgreSQL), and the
 * walk itself is one map lookup an id. */
#define LIST_MAX_WALK 8192

/* At most one group per connection: every lane and every submit lane. */
#define LIST_MAX_GROUPS (2 * BT_STORE_MAX_LANES)

typedef struct {
  bt_store_t *st;
  size_t n;
} group_t;

/* The round's last write answered (the floor moved, or a listing failed). */
static void on_round_done(void *arg, int status) {
  bt_shell_t *sh = arg;
  bt_shell_listing_t *l = &sh->listing;
  uint64_t now_ms = bt_mono_ms();
  l->busy = false;
  if (status != 0) {
    /* The store says why (it is down, or the statement failed); the next
     * round walks the same stretch again. */
    bt_log_warn("could not list open packages; trying again next round",
                "through=%llu error=%s", (unsigned long long)l->through,
                bt_strerror(status));
    l->next_ms = now_ms + sh->cfg.store_list_interval_ms;
    return;
  }
  bt_core_open_listed(sh->core, l->through);
  if (l->full) {
    l->next_ms = now_ms;
    bt_shell__list_tick(sh, now_ms);
    return;
  }
  l->next_ms = now_ms + sh->cfg.store_list_interval_ms;
}

/* One lane's listing answered (several groups). */
static void on_group_listed(void *arg, int status) {
  bt_shell_t *sh = arg;
  bt_shell_listing_t *l = &sh->listing;
  if (status != 0 && l->status == 0)
    l->status = status;
  if (--l->pending > 0)
    return;
  if (l->status != 0 || sh->lanes.lane[0] == NULL) {
    on_round_done(sh, l->status != 0 ? l->status : BT_ESHUTDOWN);
    return;
  }
  bt_store_list_open(sh->lanes.lane[0], NULL, 0, l->through, on_round_done, sh);
}

/* Sorts ids into one group per connection, keeping their order inside each:
 * ids[] ends up grouped, groups[k].n ids each (scratch: room for n ids).
 * Returns the number of groups. */
static size_t group_by_lane(bt_shell_t *sh, uint64_t *ids, size_t n, group_t *groups,
                            uint64_t *scratch) {
  uint8_t *group_of = sh->listing.group_of;
  size_t n_groups = 0;
  for (size_t i = 0; i < n; i++) {
    bt_store_t *st = bt_shell__package_lane(sh, ids[i]);
    size_t k = 0;
    while (k < n_groups && groups[k].st != st)
      k++;
    if (k == LIST_MAX_GROUPS)
      abort(); /* every connection is a group: there are no more */
    if (k == n_groups)
      groups[n_groups++] = (group_t){.st = st, .n = 0};
    groups[k].n++;
    group_of[i] = (uint8_t)k;
  }
  if (n_groups <= 1)
    return n_groups;
  size_t next[LIST_MAX_GROUPS], at = 0;
  for (size_t k = 0; k < n_groups; k++) {
    next[k] = at;
    at += groups[k].n;
  }
  for (size_t i = 0; i < n; i++)
    scratch[next[group_of[i]]++] = ids[i];
  memcpy(ids, scratch, n * sizeof *ids);
  return n_groups;
}

void bt_shell__list_tick(bt_shell_t *sh, uint64_t now_ms) {
  bt_shell_listing_t *l = &sh->listing;
  if (l->busy || sh->stopping || now_ms < l->next_ms || sh->lanes.lane[0] == NULL ||
      bt_lanes_down(&sh->lanes))
    return;
  if (l->ids == NULL) {
    l->ids = malloc(2 * LIST_MAX_WALK * sizeof *l->ids);
    l->group_of = malloc(LIST_MAX_WALK);
    if (l->ids == NULL || l->group_of == NULL)
      abort();
  }
  uint64_t *ids = l->ids;
  size_t n = bt_core_open_unlisted(sh->core, LIST_MAX_WALK, ids, &l->through);
  if (l->through == bt_core_listed_through(sh->core)) {
    /* Nothing new, or the first id above the floor is still in flight. */
    l->next_ms = now_ms + sh->cfg.store_list_interval_ms;
    return;
  }
  l->full = l->through - bt_core_listed_through(sh->core) >= LIST_MAX_WALK;
  l->busy = true;
  l->status = 0;
  group_t groups[LIST_MAX_GROUPS];
  size_t n_groups = group_by_lane(sh, ids, n, groups, ids + LIST_MAX_WALK);
  if (n_groups == 0 || (n_groups == 1 && groups[0].st == sh->lanes.lane[0])) {
    bt_store_list_open(sh->lanes.lane[0], ids, n, l->through, on_round_done, sh);
    return;
  }
  l->pending = n_groups;
  size_t at = 0;
  for (size_t k = 0; k < n_groups; k++) {
    bt_store_list_open(groups[k].st, ids + at, groups[k].n, 0, on_group_listed, sh);
    at += groups[k].n;
  }
}

void bt_shell__list_close(bt_shell_t *sh) {
  free(sh->listing.ids);
  free(sh->listing.group_of);
  sh->listing.ids = NULL;
  sh->listing.group_of = NULL;
}

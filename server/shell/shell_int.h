/*
 * The shell's state, shared by its files: shell.c (events in, actions out) and
 * shell_admin.c (the admin's vendor and package operations). Nothing outside
 * server/shell includes this.
 */
#ifndef BT_SHELL_INT_H
#define BT_SHELL_INT_H

#include "shell.h"

#include "bt_idmap.h"
#include "bt_time.h"
#include "core.h"
#include "ctl.h"
#include "metrics.h"
#include "store.h"
#include "xport.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define TICK_MAX_MS 100
/* A commit outstanding this long (or the store down): leases are held. */
#define STORE_STALL_MS 1000
/* bt_handoff_reason_t has no count: its last member is BT_HANDOFF_ADMIN. */
#define N_HANDOFF_REASONS ((int)BT_HANDOFF_ADMIN + 1)

/* open_list.c: the listing rounds (migrations/0011). */
typedef struct {
  bool busy;          /* a round is in flight */
  bool full;          /* it walked as far as a round may: the next starts at once */
  uint64_t next_ms;   /* no round starts before this */
  uint64_t through;   /* the round in flight moves the floor here */
  size_t pending;     /* its listings on other connections not answered yet */
  int status;         /* the first of them that failed */
  uint64_t *ids;      /* the round's ids and room to group them */
  uint8_t *group_of;
} bt_shell_listing_t;

struct bt_shell {
  uv_loop_t *loop;
  void (*lead_check)(void *arg); /* bt_shell_lead_t.check; NULL = none */
  int64_t epoch;                 /* the leader epoch (0 = not fenced) */
  void *lead_arg;
  bt_config_t cfg; /* the live configuration (shell_config.c owns it) */
  bt_core_t *core;
  /* The main connections (store.h, "lanes"): a package's writes go to the
   * lane of its id, everything else to lane.lane[0] (NULL before the lanes
   * are opened and once they are closed). */
  bt_lanes_t lanes;
  /* Large submits' inserts (SUBMIT_SPREAD_MIN packages or more) have
   * connections of their own: a package is cancelled or changed only once
   * its insert committed (the core refuses the rest while it is
   * unpersisted), and routed then or in its submit, when its assignment goes
   * in with its insert (route_at_submit), so no other write depends on their
   * order. Nor does one submit's insert depend on another's, so large
   * requests take turns over store_submit_lanes connections (submit_turn;
   * shell.c, submit_lane): a burst of bulk submits runs on as many
   * PostgreSQL backends. Small submits go with the other writes on
   * lanes.lane[0] (shell.c, submit_store_for says why). */
  bt_lanes_t submit_lanes;
  uint64_t submit_turn;
  /* Package id → the connection of its insert (submit lane i as i + 1,
   * lanes.lane[0] as EARLY_MAIN_LANE), for packages assigned in their submit
   * whose insert has not answered yet: a write about one meanwhile (its
   * attempt lost with its agent) must follow the insert on that connection. */
  bt_idmap_t early;
  bt_xp_t *xp;
  bt_ctl_t *ctl;
  bt_met_t *met;
  uv_timer_t tick;
  uv_timer_t hours; /* re-evaluates vendors' working hours once a minute */
  bt_actions_t acts;
  bool applying;
  /* set while a hello is processed: the session its PERSIST_AGENT answers */
  uint64_t hello_session;
  const char *hello_software;
  bool stopping;
  int closing_parts;
  bt_shell_listing_t listing;
  /* Metrics counted where the actions are carried out (render_metrics in
   * shell.c says what each means). Since this process started. */
  struct {
    uint64_t submits;     /* new packages committed */
    uint64_t completions; /* FINISH completed */
    uint64_t failures;    /* FINISH failed or transient */
    uint64_t handoffs[N_HANDOFF_REASONS];
    uint64_t stale;       /* AUDIT *.stale: a report for an attempt no longer current */
    bt_met_hist_t assign_latency; /* ASSIGN applied → dispatched after its commit */
    bt_met_hist_t store_commit;   /* segment sent → its sync result */
  } stats;
  void (*on_stopped)(void *arg);
  void *stopped_arg;
};

/* Both clocks, read once per event. */
static inline bt_now_t bt_shell__now(void) {
  bt_now_t n = {.ms = bt_mono_ms(), .at = bt_wall_ms()};
  return n;
}

/* Carries out sh->acts (persist first, then send) and clears it. */
void bt_shell__apply(bt_shell_t *sh);

/* The connection for a write about a package (shell.c says which). */
bt_store_t *bt_shell__package_lane(bt_shell_t *sh, uint64_t package_id);

/* open_list.c: starts a listing round when one is due (from the tick), and
 * frees its buffers once the store is closed. */
void bt_shell__list_tick(bt_shell_t *sh, uint64_t now_ms);
void bt_shell__list_close(bt_shell_t *sh);

/* shell_admin.c: the control ops for vendor and package operations. */
int bt_shell__vendor_op(void *arg, uint64_t vendor_id, bt_vendor_op_t op, uint64_t token);
/* `vendor rotate-secret`: the control op (key borrowed), and the VENDOR_KEY
 * action it leads to (apply calls it: writes the key, then lets the core end
 * the vendor's sessions and answers the admin). */
int bt_shell__vendor_rotate_secret(void *arg, uint64_t vendor_id, const uint8_t key[32],
                                   uint64_t token);
void bt_shell__vendor_key(bt_shell_t *sh, const bt_action_t *a);
int bt_shell__package_op(void *arg, uint64_t package_id, bt_pkg_op_t op,
                         uint64_t to_vendor_id, uint64_t token);

/* shell_config.c: the live configuration. core_config fills cc from cfg (the
 * seed is left at its default); config and config_set are the control ops of
 * `config get|set`. */
void bt_shell__core_config(const bt_config_t *cfg, bt_core_config_t *cc);
const bt_config_t *bt_shell__config(void *arg);
int bt_shell__config_set(void *arg, const char *key, const char *value, uint64_t token,
                         char *err, size_t err_len);

#endif

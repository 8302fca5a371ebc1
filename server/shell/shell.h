/*
 * The shell: wires the pure core to its edges. It turns agent messages and
 * control requests into core events, and the core's actions into effects —
 * persist first, then send: an assignment reaches its agent, a submit its
 * answer, a result its acknowledgement only after the store committed it. It
 * decides no business rule; every "whether" and "whom" is the core's.
 */
#ifndef BT_SHELL_H
#define BT_SHELL_H

#include "cfg.h"
#include "core.h"

#include <uv.h>

typedef struct bt_shell bt_shell_t;

/* Broker HA: this broker's leader epoch and what to do when a write finds
 * another broker took the lease (called once, on the loop). */
typedef struct {
  int64_t epoch;   /* fences every transaction; 0 = none */
  const char *holder;   /* this broker's name in broker_lease (audited) */
  const char *previous; /* the holder before this one, "" for none (audited) */
  void (*fenced)(void *arg);
  /* Called before every decision tick (may be NULL). After a stall (a
   * SIGSTOP, a frozen VM) the core's clock-driven decisions — agents silent,
   * leases expired — come due at once; a broker whose lease lapsed meanwhile
   * must step down here, before it makes (and logs) any of them. */
  void (*check)(void *arg);
  void *arg;
} bt_shell_lead_t;

/* Creates the core, loads state from dsn (blocking, before the loop serves),
 * opens the store, the agent endpoint and the control socket. lead may be
 * NULL (no fencing). Returns 0 or a negative code (logged); on failure
 * everything created is closed again and the caller should run the loop until
 * it is empty. */
int bt_shell_new(uv_loop_t *loop, const bt_config_t *cfg, const char *dsn,
                 const char *control_path, const bt_shell_lead_t *lead,
                 bt_shell_t **out);

/* SIGHUP: loaded is the configuration read again (defaults, file,
 * environment, flags; borrowed). Every runtime key that differs from the live
 * value is applied (logged, audited `config.reload`); a restart-only key that
 * differs is named in a warning and keeps its running value. Returns 0, or a
 * negative code (logged) with nothing changed. */
int bt_shell_reload(bt_shell_t *sh, const bt_config_t *loaded);

/* Graceful stop: no new requests, agents told the broker is going, pending
 * commits flushed, then everything closed. on_stopped fires once the shell is
 * freed. */
void bt_shell_stop(bt_shell_t *sh, void (*on_stopped)(void *arg), void *arg);

#endif

/*
 * ctl: the control endpoint. By default a Unix socket (uv_pipe_t) created 0600
 * in a private directory; each connection's peer uid is checked (root or the
 * broker's own user). With tcp://HOST:PORT a TCP listener instead, where every
 * request must carry the admin token (auth.c; endpoint.c says how each kind is
 * opened and its peer named). Frames are a 4-byte length and a CtlRequest; a
 * client may pipeline requests and replies return in request order.
 *
 * The command handlers live here too: they validate requests, answer reads from
 * the core's memory or the store, and hand the writes that need the core's
 * decisions (vendor add and operations, submit, package operations, secret
 * rotation, config set) to the shell through bt_ctl_ops_t; the shell answers
 * each once what it caused is committed. Protobuf types never leave this
 * module.
 */
#ifndef BT_CTL_H
#define BT_CTL_H

#include "cfg.h"
#include "core.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct bt_ctl bt_ctl_t;

typedef struct {
  uint32_t max_frame_bytes;   /* larger frames are refused and the connection closed */
  uint32_t max_batch;         /* packages in one submit */
  uint32_t max_payload_bytes; /* one package's payload */
  uint32_t max_pipelined;     /* requests in flight per connection before reading pauses */
  uint32_t max_connections;
  const char *admin_token;    /* borrowed; required of every request on a tcp:// endpoint */
} bt_ctl_opts_t;

void bt_ctl_opts_default(bt_ctl_opts_t *o);

typedef enum {
  BT_PKG_OP_CANCEL = 0,
  BT_PKG_OP_RETRY,
  BT_PKG_OP_REASSIGN,
} bt_pkg_op_t;

typedef struct {
  /* Registers a vendor (spec borrowed). Returns 0 — the answer follows through
   * bt_ctl_vendor_added — or a negative code answered at once. */
  int (*vendor_add)(void *arg, const bt_vendor_spec_t *spec, uint64_t token);
  /* Submits packages (borrowed). Returns 0 — answered later through
   * bt_ctl_submitted — or a negative code (e.g. BT_EDBDOWN) answered at once. */
  int (*submit)(void *arg, const bt_pkg_spec_t *specs, size_t n, uint64_t token);
  /* Changes a vendor's state (vendor drain|suspend|resume|fail). Returns 0 —
   * the answer follows through bt_ctl_vendor_changed — or a negative code
   * answered at once (BT_ENOTFOUND, BT_EDBDOWN). */
  int (*vendor_op)(void *arg, uint64_t vendor_id, bt_vendor_op_t op, uint64_t token);
  /* package cancel|retry|reassign; to_vendor_id (reassign --to) 0 = any.
   * Returns 0 — answered through bt_ctl_package_changed — or a negative code
   * answered at once (BT_ENOTFOUND, BT_ESTATE, BT_EINVAL, BT_EDBDOWN). */
  int (*package_op)(void *arg, uint64_t package_id, bt_pkg_op_t op,
                    uint64_t to_vendor_id, uint64_t token);
  /* `vendor rotate-secret`: key (borrowed) is the public key of the new
   * secret, which only ctl holds. Returns 0 — answered through
   * bt_ctl_vendor_rotated once the key is committed — or a negative code
   * answered at once (BT_ENOTFOUND, BT_EDBDOWN). NULL op: refused. */
  int (*vendor_rotate_secret)(void *arg, uint64_t vendor_id, const uint8_t key[32],
                              uint64_t token);
  /* Audits a refused connection or request. */
  void (*rejected)(void *arg, const char *action, const char *detail);
  /* `config get`: the configuration the broker runs with now (borrowed until
   * the next change). NULL op: config requests are refused. */
  const bt_config_t *(*config)(void *arg);
  /* `config set`: changes one key of the running broker. Returns 0 — answered
   * through bt_ctl_config_set_done once its audit row is committed — or a
   * negative code answered at once with the reason in err: BT_ENOTFOUND
   * (unknown key), BT_EINVAL (bad value; err names the bound), BT_ESTATE (a
   * key that needs a restart), BT_EDBDOWN. */
  int (*config_set)(void *arg, const char *key, const char *value, uint64_t token,
                    char *err, size_t err_len);
} bt_ctl_ops_t;

/* Listens on path. A stale socket file of a dead broker is removed; a live one
 * is an error. core and lanes are borrowed for the life of the control socket:
 * a one-package read goes to that package's lane, so it comes after the
 * package's writes; a list read goes to lane 0 and sees what is committed.
 * Returns 0 or a negative code with the error logged. */
int bt_ctl_new(uv_loop_t *loop, const char *path, const bt_ctl_opts_t *opts,
               bt_core_t *core, const bt_lanes_t *lanes, const bt_ctl_ops_t *ops, void *arg,
               bt_ctl_t **out);

/* Stops taking requests (the listener closes, connections stop reading) while
 * answers still pending may be written. */
void bt_ctl_stop_accepting(bt_ctl_t *ctl);

/* Closes connections and removes the socket file; on_closed fires once every
 * handle is closed and the object is freed (before this returns when nothing
 * was open any more). Tokens the shell still holds must not be answered after
 * this call. */
void bt_ctl_close(bt_ctl_t *ctl, void (*on_closed)(void *arg), void *arg);

/* The answer to a vendor_add: status 0 with the new id, or an error. */
void bt_ctl_vendor_added(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id);
/* The answer to a submit: ids and states in request order, or an error. */
void bt_ctl_submitted(bt_ctl_t *ctl, uint64_t token, int status,
                      const bt_submit_result_t *results, size_t n);

/* The answer to a vendor_op: status 0 with the vendor's state now, or an error
 * (message: a reason for the operator, may be NULL). */
void bt_ctl_vendor_changed(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id,
                           bt_vendor_state_t state, const char *message);
/* The answer to a vendor_rotate_secret: status 0 once the new key is
 * committed (the answer carries the new secret, shown this once), or an error
 * (message may be NULL); either way ctl forgets the secret. */
void bt_ctl_vendor_rotated(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id,
                           bt_vendor_state_t state, const char *message);
/* The answer to a package_op: status 0 with the package's state now, or an
 * error (message may be NULL). */
void bt_ctl_package_changed(bt_ctl_t *ctl, uint64_t token, int status, uint64_t id,
                            bt_pkg_state_t state, const char *message);
/* The answer to a config_set: status 0 with the key's value before (previous,
 * borrowed; its value now is read from ops.config), or an error (message may
 * be NULL). */
void bt_ctl_config_set_done(bt_ctl_t *ctl, uint64_t token, int status, const char *key,
                            const char *previous, const char *message);

#endif

/*
 * The admin token of a remote (tcp://) control endpoint: checked at start,
 * then required of every request that arrives over TCP. A Unix-socket peer is
 * vouched for by the socket's mode and its uid (endpoint.c) and never needs it.
 *
 * Owns only a keyed hash of the configured token (the key is random per
 * process). The token itself, configured or given, is never logged, audited,
 * echoed in an answer or kept past the check.
 */
#include "ctl_int.h"

#include "bt_err.h"
#include "bt_log.h"
#include "bt_time.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

_Static_assert(crypto_generichash_BYTES == BT_CTL_AUTH_HASH_BYTES, "hash size");
_Static_assert(crypto_generichash_KEYBYTES == BT_CTL_AUTH_HASH_BYTES, "key size");

/* Refusals reported (log line + audit row) per second. Each refusal closes its
 * connection, but a peer that reconnects in a loop could otherwise write audit
 * rows as fast as it can connect; past this, refusals are only counted and the
 * count goes with the next report. */
#define REPORTS_PER_SECOND 20u

static void token_hash(const bt_ctl_auth_t *a, const char *token,
                       uint8_t out[BT_CTL_AUTH_HASH_BYTES]) {
  crypto_generichash(out, BT_CTL_AUTH_HASH_BYTES, (const unsigned char *)token,
                     strlen(token), a->key, sizeof a->key);
}

int bt_ctl__auth_init(bt_ctl_auth_t *a, bool tcp, const char *token,
                      const char *endpoint) {
  memset(a, 0, sizeof *a);
  if (!tcp) {
    if (token != NULL && token[0] != '\0')
      bt_log_info("admin token set but not used: the control endpoint is a Unix socket",
                  "control=%s", BT_Q(endpoint));
    return 0;
  }
  if (token == NULL || token[0] == '\0') {
    bt_log_error("a tcp:// control endpoint needs an admin token; set admin_token, "
                 "BATON_ADMIN_TOKEN or --admin-token",
                 "control=%s", BT_Q(endpoint));
    return BT_ECONFIG;
  }
  if (strlen(token) < BT_CTL_MIN_TOKEN_BYTES) {
    bt_log_error("admin token too short for a tcp:// control endpoint", "control=%s min_bytes=%u",
                 BT_Q(endpoint), BT_CTL_MIN_TOKEN_BYTES);
    return BT_ECONFIG;
  }
  if (sodium_init() < 0) {
    bt_log_error("could not initialise libsodium", NULL);
    return BT_ECONFIG;
  }
  a->required = true;
  randombytes_buf(a->key, sizeof a->key);
  token_hash(a, token, a->hash);
  return 0;
}

/* Logs and audits one refusal unless this second's reports are used up. */
static void report(bt_ctl_t *ctl, const bt_ctl_conn_t *c, const char *why) {
  bt_ctl_auth_t *a = &ctl->auth;
  uint64_t now = bt_mono_ms();
  if (now - a->window_ms >= 1000) {
    a->window_ms = now;
    a->reported = 0;
  }
  if (a->reported >= REPORTS_PER_SECOND) {
    a->suppressed++;
    return;
  }
  a->reported++;
  if (a->suppressed > 0)
    bt_log_warn("refused control request: bad admin token",
                "reason=%s peer=%s not_reported_before=%u", BT_Q(why), BT_Q(c->peer),
                a->suppressed);
  else
    bt_log_warn("refused control request: bad admin token", "reason=%s peer=%s", BT_Q(why),
                BT_Q(c->peer));
  if (ctl->ops.rejected) {
    char detail[160];
    snprintf(detail, sizeof detail, "%s peer=%s", why, c->peer);
    ctl->ops.rejected(ctl->arg, "control.unauthenticated", detail);
  }
  a->suppressed = 0;
}

int bt_ctl__auth_check(bt_ctl_t *ctl, const bt_ctl_conn_t *c, const char *given,
                       const char **why) {
  const bt_ctl_auth_t *a = &ctl->auth;
  *why = NULL;
  if (!a->required)
    return 0;
  if (given == NULL || given[0] == '\0') {
    *why = "admin token required";
  } else {
    /* Hashing first makes the comparison constant-time in the length too: the
     * time taken says nothing about how long the right token is. */
    uint8_t h[BT_CTL_AUTH_HASH_BYTES];
    token_hash(a, given, h);
    int diff = crypto_verify_32(h, a->hash);
    sodium_memzero(h, sizeof h);
    if (diff == 0)
      return 0;
    *why = "admin token does not match";
  }
  report(ctl, c, *why);
  return BT_EAUTH;
}

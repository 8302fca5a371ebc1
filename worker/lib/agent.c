/*
 * The public API of libbaton-agent (baton_agent.h): configuration, lifecycle and
 * the calls through which the embedder reports its tasks. Each call records what
 * happened in the attempt table and kicks the state machine (session.c); none
 * sends anything itself. Owns the agent object, its configuration copies, the
 * key derived from the secret and the session keys (wiped on free).
 */
#include "agent_int.h"

#include "bt_auth.h"
#include "bt_err.h"
#include "bt_log.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

_Static_assert(BT_AGENT_EPROTO == BT_EPROTO, "public error codes drifted");
_Static_assert(BT_AGENT_EVERSION == BT_EVERSION, "public error codes drifted");
_Static_assert(BT_AGENT_EAUTH == BT_EAUTH, "public error codes drifted");
_Static_assert(BT_AGENT_ENOTFOUND == BT_ENOTFOUND, "public error codes drifted");
_Static_assert(BT_AGENT_ELIMIT == BT_ELIMIT, "public error codes drifted");
_Static_assert(BT_AGENT_EINVAL == BT_EINVAL, "public error codes drifted");
_Static_assert(BT_AGENT_ESTATE == BT_ESTATE, "public error codes drifted");
_Static_assert((int)BT_AGENT_COMPLETED == BATON__OUTCOME__OUTCOME_COMPLETED &&
                   (int)BT_AGENT_FAILED == BATON__OUTCOME__OUTCOME_FAILED &&
                   (int)BT_AGENT_TRANSIENT == BATON__OUTCOME__OUTCOME_TRANSIENT &&
                   (int)BT_AGENT_CANCELLED == BATON__OUTCOME__OUTCOME_CANCELLED &&
                   (int)BT_AGENT_HANDED_BACK == BATON__OUTCOME__OUTCOME_HANDED_BACK,
               "outcome values must match the wire");
_Static_assert(sizeof(((bt_agent_t *)0)->sk) == BT_AUTH_SK_BYTES, "key size");

#define NAME_MAX_LEN 256u

/* ---- public API --------------------------------------------------------- */

static const char *outcome_name(bt_agent_outcome_t o) {
  static const char *const names[] = {"?",         "completed", "failed",
                                      "transient", "cancelled", "handed_back"};
  return o >= BT_AGENT_COMPLETED && o <= BT_AGENT_HANDED_BACK ? names[o] : "?";
}

static int valid_name(const char *s) {
  return s != NULL && *s != '\0' && strlen(s) <= NAME_MAX_LEN;
}

int bt_agent_new(uv_loop_t *loop, const bt_agent_config_t *cfg,
                 const bt_agent_callbacks_t *cbs, void *user, bt_agent_t **out) {
  uint8_t pk[BT_AUTH_PK_BYTES];
  if (cfg == NULL || cbs == NULL || cbs->on_task == NULL || out == NULL)
    return BT_EINVAL;
  if (cfg->brokers == NULL || *cfg->brokers == '\0' || !valid_name(cfg->vendor) ||
      (cfg->name != NULL && !valid_name(cfg->name)) || cfg->n_capabilities == 0 ||
      cfg->capabilities == NULL) {
    bt_log_error("invalid agent configuration",
                 "reason=\"brokers, vendor and at least one capability are required\"");
    return BT_EINVAL;
  }
  for (size_t i = 0; i < cfg->n_capabilities; i++) {
    if (!valid_name(cfg->capabilities[i])) {
      bt_log_error("invalid agent configuration",
                   "reason=\"empty or overlong capability\"");
      return BT_EINVAL;
    }
  }
  uint32_t max =
      cfg->max_message_bytes ? cfg->max_message_bytes : BT_AGENT__DEFAULT_MAX_MESSAGE;
  if (max < BT_AGENT__MIN_MESSAGE || max > INT32_MAX) {
    bt_log_error("invalid agent configuration", "max_message_bytes=%" PRIu32, max);
    return BT_EINVAL;
  }
  if (bt_auth_init() != 0) {
    bt_log_error("could not initialise libsodium", NULL);
    return BT_ESTATE;
  }
  bt_agent_t *a = bt_agent__xcalloc(1, sizeof *a);
  if (bt_auth_keypair(cfg->secret, pk, a->sk) != 0) {
    bt_log_error("malformed vendor secret", "vendor=%s", BT_Q(cfg->vendor));
    free(a);
    return BT_EINVAL;
  }
  if (loop == NULL) {
    a->own_loop = bt_agent__xmalloc(sizeof *a->own_loop);
    int rv = uv_loop_init(a->own_loop);
    if (rv != 0) {
      sodium_memzero(a->sk, sizeof a->sk);
      free(a->own_loop);
      free(a);
      return rv;
    }
    loop = a->own_loop;
  }
  a->loop = loop;
  a->cb = *cbs;
  a->user = user;
  a->brokers = bt_agent__xstrdup(cfg->brokers);
  a->vendor = bt_agent__xstrdup(cfg->vendor);
  if (cfg->name != NULL) {
    a->name = bt_agent__xstrdup(cfg->name);
  } else {
    char host[128] = "agent", buf[160];
    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
      strcpy(host, "agent");
    host[sizeof host - 1] = '\0';
    snprintf(buf, sizeof buf, "%s-%ld", host, (long)getpid());
    a->name = bt_agent__xstrdup(buf);
  }
  a->caps = bt_agent__xcalloc(cfg->n_capabilities, sizeof *a->caps);
  for (size_t i = 0; i < cfg->n_capabilities; i++)
    a->caps[i] = bt_agent__xstrdup(cfg->capabilities[i]);
  a->n_caps = cfg->n_capabilities;
  a->slots = cfg->slots ? cfg->slots : 1;
  a->cfg_max_message = a->max_message = max;
  a->cfg_reply_timeout_ms = cfg->reply_timeout_ms;
  a->stop_timeout_ms =
      cfg->stop_timeout_ms ? cfg->stop_timeout_ms : BT_AGENT__DEFAULT_STOP_TIMEOUT_MS;
  a->heartbeat_ms = BT_AGENT__DEFAULT_HEARTBEAT_MS;
  a->lease_ms = BT_AGENT__DEFAULT_LEASE_MS;
  a->poll_ms = BT_AGENT__DEFAULT_POLL_MS;
  a->state = BT_AGENT__S_NEW;
  *out = a;
  return 0;
}

int bt_agent_start(bt_agent_t *a) {
  if (a->state != BT_AGENT__S_NEW)
    return BT_ESTATE;
  int rv = bt_agent__link_open(a->loop, a->brokers, a->max_message,
                               bt_agent__on_link_msg, a, &a->link);
  if (rv != 0)
    return rv;
  uv_timer_init(a->loop, &a->timer);
  a->timer.data = a;
  a->timer_open = 1;
  bt_log_info("agent starting", "vendor=%s agent=%s brokers=%s slots=%" PRIu32,
              BT_Q(a->vendor), BT_Q(a->name), BT_Q(a->brokers), a->slots);
  bt_agent__send_hello(a);
  bt_agent__arm(a);
  return 0;
}

int bt_agent_run(bt_agent_t *a) {
  if (a->state == BT_AGENT__S_NEW) {
    int rv = bt_agent_start(a);
    if (rv != 0)
      return rv;
  }
  uv_run(a->loop, UV_RUN_DEFAULT);
  return a->fatal_code;
}

static char *copy_error(const char *e) {
  if (e == NULL)
    return NULL;
  size_t n = strlen(e);
  if (n > BT_AGENT__ERROR_MAX) {
    n = BT_AGENT__ERROR_MAX;
    while (n > 0 && ((unsigned char)e[n] & 0xC0) == 0x80)
      n--; /* do not cut a UTF-8 sequence */
  }
  char *s = bt_agent__xmalloc(n + 1);
  memcpy(s, e, n);
  s[n] = '\0';
  return s;
}

int bt_agent_complete(bt_agent_t *a, uint64_t package_id, uint32_t attempt,
                      bt_agent_outcome_t outcome, const void *output, size_t len,
                      int exit_code, const char *error) {
  if (a->state == BT_AGENT__S_CLOSING || a->state == BT_AGENT__S_CLOSED)
    return BT_ESTATE;
  if (outcome < BT_AGENT_COMPLETED || outcome > BT_AGENT_HANDED_BACK ||
      (output == NULL && len > 0))
    return BT_EINVAL;
  bt_agent__att_t *att = bt_agent__atts_find(&a->atts, package_id, attempt);
  if (att == NULL)
    return BT_ENOTFOUND;
  switch (att->state) {
  case BT_AGENT__ATT_CANCELLED:
    bt_agent__atts_remove(&a->atts, att); /* the broker does not want its result */
    bt_agent__kick(a);
    return 0;
  case BT_AGENT__ATT_DONE:
  case BT_AGENT__ATT_SENT:
    return BT_ESTATE;
  case BT_AGENT__ATT_RUNNING:
    break;
  }
  int rv = 0;
  if (len > bt_agent__max_output(a)) {
    bt_log_warn("result too large; reporting failure",
                "package=%" PRIu64 " attempt=%" PRIu32 " bytes=%zu limit=%zu",
                package_id, attempt, len, bt_agent__max_output(a));
    outcome = BT_AGENT_FAILED;
    error = "result too large";
    output = NULL;
    len = 0;
    rv = BT_ELIMIT;
  }
  att->outcome = outcome;
  att->output = len > 0 ? bt_agent__xmemdup(output, len) : NULL;
  att->output_len = len;
  att->exit_code = exit_code;
  att->error = copy_error(error);
  att->percent_dirty = 0; /* the result supersedes any percentage */
  if (outcome == BT_AGENT_COMPLETED)
    att->checkpoint_dirty = 0; /* nobody continues a completed package */
  att->state = BT_AGENT__ATT_DONE;
  bt_log_info("task finished",
              "package=%" PRIu64 " attempt=%" PRIu32
              " outcome=%s exit_code=%d output_bytes=%zu",
              package_id, attempt, outcome_name(outcome), exit_code, len);
  bt_agent__kick(a);
  return rv;
}

int bt_agent_progress(bt_agent_t *a, uint64_t package_id, uint32_t attempt, int percent,
                      const void *checkpoint, size_t len) {
  if (percent < -1 || percent > 100 || (checkpoint == NULL && len > 0))
    return BT_EINVAL;
  bt_agent__att_t *att = bt_agent__atts_find(&a->atts, package_id, attempt);
  if (att == NULL)
    return BT_ENOTFOUND;
  if (att->state != BT_AGENT__ATT_RUNNING || a->state == BT_AGENT__S_CLOSING ||
      a->state == BT_AGENT__S_CLOSED)
    return BT_ESTATE;
  if (len > bt_agent__max_output(a))
    return BT_ELIMIT;
  if (percent >= 0) {
    att->percent = percent;
    att->percent_dirty = 1;
  }
  if (len > 0) {
    free(att->checkpoint);
    att->checkpoint = bt_agent__xmemdup(checkpoint, len);
    att->checkpoint_len = len;
    att->checkpoint_dirty = 1;
  }
  if (percent >= 0 || len > 0)
    bt_agent__kick(a);
  return 0;
}

void bt_agent_drain(bt_agent_t *a) {
  if (a->draining)
    return;
  a->draining = 1;
  bt_log_info("agent draining; asking for no more work", "running=%zu",
              bt_agent__atts_count(&a->atts, BT_AGENT__BUSY));
  bt_agent__kick(a);
}

void bt_agent_stop(bt_agent_t *a, void (*on_closed)(bt_agent_t *, void *)) {
  a->on_closed = on_closed;
  if (a->state == BT_AGENT__S_NEW || a->state == BT_AGENT__S_CLOSED) {
    a->state = BT_AGENT__S_CLOSED;
    a->on_closed = NULL;
    if (on_closed != NULL)
      on_closed(a, a->user);
    return;
  }
  if (a->state == BT_AGENT__S_CLOSING || a->stop_requested)
    return;
  a->stop_requested = 1;
  a->draining = 1;
  a->stop_deadline = bt_agent__now(a) + a->stop_timeout_ms;
  bt_agent__kick(a);
}

void bt_agent_free(bt_agent_t *a) {
  if (a == NULL)
    return;
  BT_AGENT_ASSERT(a->depth == 0); /* never from inside a callback */
  if (a->state != BT_AGENT__S_NEW && a->state != BT_AGENT__S_CLOSED) {
    if (a->own_loop == NULL) {
      fprintf(stderr, "baton-agent: bt_agent_free on a live agent; call "
                      "bt_agent_stop and wait for on_closed\n");
      abort();
    }
    a->on_closed = NULL;
    if (a->state != BT_AGENT__S_CLOSING)
      bt_agent__close_all(a);
    while (a->state != BT_AGENT__S_CLOSED)
      uv_run(a->loop, UV_RUN_ONCE);
  }
  if (a->own_loop != NULL) {
    uv_run(a->own_loop, UV_RUN_NOWAIT);
    uv_loop_close(a->own_loop);
    free(a->own_loop);
  }
  bt_agent__atts_clear(&a->atts);
  for (size_t i = 0; i < a->n_caps; i++)
    free(a->caps[i]);
  free(a->caps);
  free(a->brokers);
  free(a->vendor);
  free(a->name);
  sodium_memzero(a->sk, sizeof a->sk);
  bt_seal_wipe(&a->seal);
  free(a);
}

size_t bt_agent_max_output(const bt_agent_t *a) { return bt_agent__max_output(a); }

uv_loop_t *bt_agent_loop(const bt_agent_t *a) { return a->loop; }

const char *bt_agent_strerror(int code) { return bt_strerror(code); }

void bt_agent_set_log_level(int level) {
  bt_log_set_level(level <= 0   ? BT_LOG_DEBUG
                   : level == 1 ? BT_LOG_INFO
                   : level == 2 ? BT_LOG_WARN
                                : BT_LOG_ERROR);
}

/*
 * libbaton-agent against a fake broker (agent_fake_broker.c) on a free loopback
 * port. The agent runs on this thread's uv loop; each scenario script drives the
 * broker side from its own thread with blocking receives, and talks to the loop
 * only through a uv_async (drain, stop). The script records failures; cmocka
 * asserts happen on the main thread after the join. A watchdog stops a hung
 * scenario.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent_fake_broker.h"
#include "baton_agent.h"
#include "bt_auth.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define WAIT_MS 3000
#define WATCHDOG_MS 20000

enum { CMD_NONE, CMD_DRAIN, CMD_STOP };

typedef struct h h_t;
struct h {
  uv_loop_t loop;
  fb_t *fb;
  char secret[BT_AUTH_SECRET_CHARS + 1];
  uint8_t pk[BT_AUTH_PK_BYTES];
  bt_agent_t *agent;
  void (*script)(h_t *);
  fb_status_t st;
  pthread_t thread;
  uv_async_t cmd_async;
  _Atomic int cmd;
  uv_timer_t watchdog;
  int timed_out;
  int closed;
  /* agent-side observations (loop thread) */
  int tasks;
  uint64_t task_pkg[16];
  char task_payload[16][64];
  int cancels;
  int fatals, fatal_code;
};

/* ---- agent side (loop thread) ------------------------------------------- */

typedef struct {
  uv_timer_t t;
  h_t *h;
  uint64_t pkg;
  uint32_t att;
  char out[64];
} later_t;

static void later_closed(uv_handle_t *t) { free(t->data); }

static void later_fire(uv_timer_t *t) {
  later_t *l = t->data;
  bt_agent_complete(l->h->agent, l->pkg, l->att, BT_AGENT_COMPLETED, l->out,
                    strlen(l->out), 0, NULL);
  uv_close((uv_handle_t *)t, later_closed);
}

static void on_task(bt_agent_t *a, const bt_agent_task_t *t, void *user) {
  h_t *h = user;
  if (h->tasks < 16) {
    h->task_pkg[h->tasks] = t->package_id;
    snprintf(h->task_payload[h->tasks], 64, "%.*s", (int)t->payload_len,
             (const char *)t->payload);
  }
  h->tasks++;
  if (strcmp(t->capability, "upper") == 0) {
    later_t *l = calloc(1, sizeof *l);
    l->h = h;
    l->pkg = t->package_id;
    l->att = t->attempt;
    for (size_t i = 0; i < t->payload_len && i < sizeof l->out - 1; i++)
      l->out[i] = (char)toupper(t->payload[i]);
    uv_timer_init(&h->loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, 50, 0);
  } else if (strcmp(t->capability, "ckpt") == 0) {
    /* both at once: the checkpoint must still reach the broker before the result */
    bt_agent_progress(a, t->package_id, t->attempt, 50, "state1", 6);
    bt_agent_complete(a, t->package_id, t->attempt, BT_AGENT_TRANSIENT, NULL, 0, 75,
                      "exit 75");
  } /* "hold": runs until cancelled */
}

static void on_cancel(bt_agent_t *a, uint64_t pkg, uint32_t att, void *user) {
  h_t *h = user;
  h->cancels++;
  bt_agent_complete(a, pkg, att, BT_AGENT_CANCELLED, NULL, 0, -15, "cancelled");
}

static void on_closed(bt_agent_t *a, void *user) {
  h_t *h = user;
  (void)a;
  h->closed = 1;
  uv_stop(&h->loop);
}

static void on_fatal(bt_agent_t *a, int code, const char *msg, void *user) {
  h_t *h = user;
  (void)msg;
  h->fatals++;
  h->fatal_code = code;
  bt_agent_stop(a, on_closed);
}

static void on_cmd(uv_async_t *as) {
  h_t *h = as->data;
  int c = atomic_exchange(&h->cmd, CMD_NONE);
  if (c == CMD_DRAIN)
    bt_agent_drain(h->agent);
  else if (c == CMD_STOP)
    bt_agent_stop(h->agent, on_closed);
}

static void on_watchdog(uv_timer_t *t) {
  h_t *h = t->data;
  h->timed_out = 1;
  bt_agent_stop(h->agent, on_closed);
}

/* ---- broker side (script thread) ---------------------------------------- */

static void command(h_t *h, int c) {
  atomic_store(&h->cmd, c);
  uv_async_send(&h->cmd_async);
}

static void *script_main(void *arg) {
  h_t *h = arg;
  h->script(h);
  if (h->st.failed)
    command(h, CMD_STOP);
  return NULL;
}

/* Stops the agent and answers its Bye. */
static void stop_and_bye(h_t *h) {
  command(h, CMD_STOP);
  Baton__AgentRequest *bye =
      fb_expect(h->fb, BATON__AGENT_REQUEST__BODY_BYE, WAIT_MS, 0);
  FB_CHECK(&h->st, bye != NULL);
  fb_reply_work(h->fb, NULL);
  fb_req_free(bye);
}

static Baton__AgentRequest *handshake(h_t *h, uint64_t session) {
  const char *why = "";
  Baton__AgentRequest *auth =
      fb_handshake(h->fb, h->pk, session, "acme", WAIT_MS, &why);
  if (auth == NULL)
    fb_fail(&h->st, __FILE__, __LINE__, why);
  return auth;
}

static void reply_assignments(h_t *h, Baton__Assignment **as, size_t n) {
  Baton__Work w = BATON__WORK__INIT;
  w.assignments = as;
  w.n_assignments = n;
  fb_reply_work(h->fb, &w);
}

static void reply_held(h_t *h, int which, uint64_t pkg, uint32_t att) {
  Baton__Work w = BATON__WORK__INIT;
  Baton__Held held, *hp = &held;
  fb_held(&held, pkg, att);
  if (which == 0) {
    w.acked = &hp;
    w.n_acked = 1;
  } else {
    w.cancel = &hp;
    w.n_cancel = 1;
  }
  fb_reply_work(h->fb, &w);
}

/* ---- harness -------------------------------------------------------------- */

static void run(h_t *h, void (*script)(h_t *), uint32_t slots,
                uint32_t reply_timeout_ms, int wrong_secret) {
  const char *caps[] = {"upper", "hold", "ckpt"};
  memset(h, 0, sizeof *h);
  assert_int_equal(bt_auth_init(), 0);
  assert_int_equal(uv_loop_init(&h->loop), 0);
  h->fb = fb_new();
  assert_non_null(h->fb);
  bt_auth_new_secret(h->secret, h->pk);
  char other[BT_AUTH_SECRET_CHARS + 1];
  uint8_t other_pk[BT_AUTH_PK_BYTES];
  bt_auth_new_secret(other, other_pk);
  /* the first endpoint never answers: requests go to whichever is connected */
  char brokers[128];
  snprintf(brokers, sizeof brokers, "tcp://127.0.0.1:1, %s", fb_endpoint(h->fb));
  bt_agent_config_t cfg = {
      .brokers = brokers,
      .vendor = "acme",
      .secret = wrong_secret ? other : h->secret,
      .name = "agent-1",
      .capabilities = caps,
      .n_capabilities = 3,
      .slots = slots,
      .reply_timeout_ms = reply_timeout_ms,
      .stop_timeout_ms = 1500,
  };
  bt_agent_callbacks_t cbs = {on_task, on_cancel, on_fatal};
  assert_int_equal(bt_agent_new(&h->loop, &cfg, &cbs, h, &h->agent), 0);
  uv_async_init(&h->loop, &h->cmd_async, on_cmd);
  h->cmd_async.data = h;
  uv_timer_init(&h->loop, &h->watchdog);
  h->watchdog.data = h;
  uv_timer_start(&h->watchdog, on_watchdog, WATCHDOG_MS, 0);
  assert_int_equal(bt_agent_start(h->agent), 0);
  h->script = script;
  assert_int_equal(pthread_create(&h->thread, NULL, script_main, h), 0);
  while (!h->closed)
    uv_run(&h->loop, UV_RUN_DEFAULT);
  pthread_join(h->thread, NULL);
  uv_close((uv_handle_t *)&h->cmd_async, NULL);
  uv_close((uv_handle_t *)&h->watchdog, NULL);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  bt_agent_free(h->agent);
  assert_int_equal(uv_loop_close(&h->loop), 0);
  fb_free(h->fb);
  if (h->st.failed)
    fail_msg("%s", h->st.msg);
  assert_false(h->timed_out);
}

/* ---- scenarios ------------------------------------------------------------- */

/* Hello/Challenge/Auth (signature verified), Poll answered with an assignment,
 * the result supersedes the parked poll and arrives with the right output; Work
 * {acked}; Bye. */
static void script_basic(h_t *h) {
  Baton__AgentRequest *auth = handshake(h, 0x1111);
  FB_CHECK(&h->st, auth != NULL);
  FB_CHECK(&h->st, auth->auth->n_held == 0);
  fb_req_free(auth);
  Baton__AgentRequest *poll = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, poll != NULL && poll->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, poll->has_session && poll->session == 0x1111);
  FB_CHECK(&h->st, poll->has_ack_seq && poll->ack_seq == 0);
  FB_CHECK(&h->st, poll->poll->free_slots == 2);
  fb_req_free(poll);
  Baton__Assignment a1, *list[] = {&a1};
  fb_assignment(&a1, 1, 11, 1, "upper", "hello");
  reply_assignments(h, list, 1);
  /* the agent polls again with its free slot; we park that poll */
  poll = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, poll != NULL && poll->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, poll->ack_seq == 1 && poll->poll->free_slots == 1);
  fb_req_free(poll);
  fb_hdr_t parked = fb_current(h->fb);
  /* the result supersedes the parked poll */
  Baton__AgentRequest *res = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, res != NULL && res->body_case == BATON__AGENT_REQUEST__BODY_RESULTS);
  FB_CHECK(&h->st, res->ack_seq == 1 && res->results->n_results == 1);
  Baton__Result *r = res->results->results[0];
  FB_CHECK(&h->st, r->package_id == 11 && r->attempt == 1);
  FB_CHECK(&h->st,
           r->outcome == BATON__OUTCOME__OUTCOME_COMPLETED && r->exit_code == 0);
  FB_CHECK(&h->st, r->output.len == 5 && memcmp(r->output.data, "HELLO", 5) == 0);
  FB_CHECK(&h->st, res->results->free_slots == 2);
  fb_req_free(res);
  /* A late answer to the superseded poll is dropped by the agent (its id is old)... */
  Baton__Assignment a2, *l2[] = {&a2};
  Baton__Work late = BATON__WORK__INIT;
  fb_assignment(&a2, 2, 12, 1, "hold", "late");
  late.assignments = l2;
  late.n_assignments = 1;
  Baton__AgentReply lr = BATON__AGENT_REPLY__INIT;
  lr.has_version = 1;
  lr.version = 1;
  lr.body_case = BATON__AGENT_REPLY__BODY_WORK;
  lr.work = &late;
  FB_CHECK(&h->st, fb_reply_to(h->fb, &parked, &lr) == 0);
  /* ...so the broker repeats what ack_seq has not covered in the next answer */
  Baton__Held ack, *ackp = &ack;
  fb_held(&ack, 11, 1);
  late.acked = &ackp;
  late.n_acked = 1;
  fb_reply_work(h->fb, &late);
  /* acknowledged: the next request is a poll (12 holds one slot), not the same
   * result again, and it acknowledges seq 2 */
  poll = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, poll != NULL && poll->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, poll->ack_seq == 2 && poll->poll->free_slots == 1);
  fb_req_free(poll);
  stop_and_bye(h);
}

static void test_agent_protocol_task_and_result(void **state) {
  (void)state;
  h_t h;
  run(&h, script_basic, 2, 0, 0);
  assert_int_equal(h.tasks, 2); /* 11, then 12 exactly once */
  assert_int_equal(h.task_pkg[0], 11);
  assert_string_equal(h.task_payload[0], "hello");
  assert_int_equal(h.task_pkg[1], 12);
  assert_int_equal(h.fatals, 0);
}

/* An assignment delivered again (same seq, or a new seq for a known attempt) is
 * not started twice; a cancel reaches on_cancel and drops the result. */
static void script_redelivery(h_t *h) {
  fb_req_free(handshake(h, 0x2222));
  FB_CHECK(&h->st, !h->st.failed);
  Baton__AgentRequest *req =
      fb_expect(h->fb, BATON__AGENT_REQUEST__BODY_POLL, WAIT_MS, 0);
  FB_CHECK(&h->st, req != NULL);
  fb_req_free(req);
  Baton__Assignment a1, a2, a1b, *l1[] = {&a1}, *l2[] = {&a1, &a2}, *l3[] = {&a1b};
  fb_assignment(&a1, 1, 21, 1, "hold", "x");
  fb_assignment(&a2, 2, 22, 1, "hold", "y");
  fb_assignment(&a1b, 3, 21, 1, "hold", "x");
  reply_assignments(h, l1, 1);
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, req->ack_seq == 1);
  fb_req_free(req);
  reply_assignments(h, l2, 2); /* seq 1 again plus seq 2 */
  /* all slots busy: heartbeats, which list both running attempts */
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st,
           req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_HEARTBEAT);
  FB_CHECK(&h->st, req->ack_seq == 2 && req->heartbeat->free_slots == 0);
  FB_CHECK(&h->st, req->heartbeat->n_running == 2);
  fb_req_free(req);
  reply_assignments(h, l3, 1); /* a known attempt under a new seq */
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st,
           req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_HEARTBEAT);
  FB_CHECK(&h->st, req->ack_seq == 3 && req->heartbeat->n_running == 2);
  fb_req_free(req);
  reply_held(h, 1, 21, 1); /* cancel 21 */
  /* 21 is cancelled and completed by on_cancel: a slot frees, no result is sent */
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, req->poll->free_slots == 1);
  fb_req_free(req);
  stop_and_bye(h);
}

static void test_agent_protocol_redelivery_ignored(void **state) {
  (void)state;
  h_t h;
  run(&h, script_redelivery, 2, 0, 0);
  assert_int_equal(h.tasks, 2);
  assert_int_equal(h.task_pkg[0], 21);
  assert_int_equal(h.task_pkg[1], 22);
  assert_int_equal(h.cancels, 1);
}

/* Error{SESSION} on Results: a new Hello; Auth.held names the unacknowledged
 * result and the running task; Welcome.work cancels the running one; the result
 * is sent again in the new session. */
static void script_session(h_t *h) {
  fb_req_free(handshake(h, 0x3333));
  FB_CHECK(&h->st, !h->st.failed);
  Baton__AgentRequest *req =
      fb_expect(h->fb, BATON__AGENT_REQUEST__BODY_POLL, WAIT_MS, 0);
  FB_CHECK(&h->st, req != NULL);
  fb_req_free(req);
  Baton__Assignment a1, a2, *l1[] = {&a1, &a2};
  fb_assignment(&a1, 1, 31, 2, "upper", "abc");
  fb_assignment(&a2, 2, 32, 1, "hold", "x");
  reply_assignments(h, l1, 2);
  req = fb_expect(h->fb, BATON__AGENT_REQUEST__BODY_RESULTS, WAIT_MS, 1);
  FB_CHECK(&h->st, req != NULL);
  fb_req_free(req);
  fb_reply_error(h->fb, BATON__ERROR_CODE__ERROR_SESSION, "unknown session");
  /* the new session no longer wants 32 */
  const char *why = "";
  Baton__Work ww = BATON__WORK__INIT;
  Baton__Held c32, *cp = &c32;
  fb_held(&c32, 32, 1);
  ww.cancel = &cp;
  ww.n_cancel = 1;
  Baton__AgentRequest *auth =
      fb_handshake_work(h->fb, h->pk, 0x4444, "acme", WAIT_MS, &ww, &why);
  FB_CHECK(&h->st, auth != NULL);
  int held31 = 0, held32 = 0;
  for (size_t i = 0; i < auth->auth->n_held; i++) {
    held31 |=
        auth->auth->held[i]->package_id == 31 && auth->auth->held[i]->attempt == 2;
    held32 |=
        auth->auth->held[i]->package_id == 32 && auth->auth->held[i]->attempt == 1;
  }
  size_t n_held = auth->auth->n_held;
  fb_req_free(auth);
  FB_CHECK(&h->st, n_held == 2 && held31 && held32);
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_RESULTS);
  FB_CHECK(&h->st, req->session == 0x4444 && req->ack_seq == 0);
  FB_CHECK(&h->st, req->results->n_results == 1); /* 32's result is dropped */
  Baton__Result *r = req->results->results[0];
  FB_CHECK(&h->st, r->package_id == 31 && r->attempt == 2 && r->output.len == 3 &&
                       memcmp(r->output.data, "ABC", 3) == 0);
  fb_req_free(req);
  reply_held(h, 0, 31, 2);
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, req->poll->free_slots == 2);
  fb_req_free(req);
  stop_and_bye(h);
}

static void test_agent_protocol_session_lost(void **state) {
  (void)state;
  h_t h;
  run(&h, script_session, 2, 0, 0);
  assert_int_equal(h.tasks, 2);
  assert_int_equal(h.cancels, 1);
  assert_int_equal(h.fatals, 0);
}

/* Error{VERSION}: on_fatal, and the agent does not say Hello again. */
static void script_version(h_t *h) {
  Baton__AgentRequest *req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_HELLO);
  fb_req_free(req);
  fb_reply_error(h->fb, BATON__ERROR_CODE__ERROR_VERSION, "speaks version 2");
  req = fb_recv(h->fb, 1500);
  int silent = req == NULL;
  fb_req_free(req);
  FB_CHECK(&h->st, silent);
}

static void test_agent_protocol_version_fatal(void **state) {
  (void)state;
  h_t h;
  run(&h, script_version, 1, 0, 0);
  assert_int_equal(h.fatals, 1);
  assert_int_equal(h.fatal_code, BT_AGENT_EVERSION);
}

/* A wrong secret: the broker cannot verify the signature and says Error{AUTH}. */
static void script_bad_secret(h_t *h) {
  const char *why = "";
  Baton__AgentRequest *auth = fb_handshake(h->fb, h->pk, 0x5555, "acme", WAIT_MS, &why);
  FB_CHECK(&h->st, auth == NULL && strcmp(why, "bad auth signature or session") == 0);
  Baton__AgentRequest *req = fb_recv(h->fb, 1500);
  int silent = req == NULL;
  fb_req_free(req);
  FB_CHECK(&h->st, silent);
}

static void test_agent_protocol_bad_secret_fatal(void **state) {
  (void)state;
  h_t h;
  run(&h, script_bad_secret, 1, 0, 1);
  assert_int_equal(h.fatals, 1);
  assert_int_equal(h.fatal_code, BT_AGENT_EAUTH);
}

/* No answer to Hello: after the reply timeout the agent starts again on a new
 * socket. */
static void script_timeout(h_t *h) {
  Baton__AgentRequest *req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_HELLO);
  fb_req_free(req); /* never answered */
  fb_req_free(handshake(h, 0x6666));
  FB_CHECK(&h->st, !h->st.failed);
  req = fb_expect(h->fb, BATON__AGENT_REQUEST__BODY_POLL, WAIT_MS, 0);
  FB_CHECK(&h->st, req != NULL);
  fb_req_free(req);
  stop_and_bye(h);
}

static void test_agent_protocol_reply_timeout_reconnects(void **state) {
  (void)state;
  h_t h;
  run(&h, script_timeout, 1, 400, 0);
  assert_int_equal(h.fatals, 0);
}

/* Drain supersedes the parked poll with a heartbeat saying free_slots 0; an
 * assignment that arrives anyway is handed back at once. */
static void script_drain(h_t *h) {
  fb_req_free(handshake(h, 0x7777));
  FB_CHECK(&h->st, !h->st.failed);
  Baton__AgentRequest *req =
      fb_expect(h->fb, BATON__AGENT_REQUEST__BODY_POLL, WAIT_MS, 0);
  FB_CHECK(&h->st, req != NULL);
  fb_req_free(req);
  Baton__Assignment a1, a2, *l1[] = {&a1}, *l2[] = {&a2};
  fb_assignment(&a1, 1, 41, 1, "hold", "x");
  fb_assignment(&a2, 2, 42, 1, "upper", "y");
  reply_assignments(h, l1, 1);
  req = fb_recv(h->fb, WAIT_MS); /* poll for the second slot: parked */
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  fb_req_free(req);
  command(h, CMD_DRAIN);
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st,
           req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_HEARTBEAT);
  FB_CHECK(&h->st, req->heartbeat->free_slots == 0 && req->heartbeat->n_running == 1);
  fb_req_free(req);
  reply_assignments(h, l2, 1);
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_RESULTS);
  FB_CHECK(&h->st, req->results->n_results == 1);
  FB_CHECK(&h->st, req->results->results[0]->package_id == 42 &&
                       req->results->results[0]->outcome ==
                           BATON__OUTCOME__OUTCOME_HANDED_BACK);
  fb_req_free(req);
  reply_held(h, 0, 42, 1);
  req = fb_recv(h->fb, WAIT_MS); /* draining and busy: heartbeat, never a poll */
  FB_CHECK(&h->st,
           req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_HEARTBEAT);
  fb_req_free(req);
  fb_reply_work(h->fb, NULL);
  stop_and_bye(h);
}

static void test_agent_protocol_drain(void **state) {
  (void)state;
  h_t h;
  run(&h, script_drain, 2, 0, 0);
  assert_int_equal(h.tasks, 1);
  assert_int_equal(h.task_pkg[0], 41);
}

/* A checkpoint reported together with a non-completed result goes first. */
static void script_checkpoint(h_t *h) {
  fb_req_free(handshake(h, 0x8888));
  FB_CHECK(&h->st, !h->st.failed);
  Baton__AgentRequest *req =
      fb_expect(h->fb, BATON__AGENT_REQUEST__BODY_POLL, WAIT_MS, 0);
  FB_CHECK(&h->st, req != NULL);
  fb_req_free(req);
  Baton__Assignment a1, *l1[] = {&a1};
  fb_assignment(&a1, 1, 51, 3, "ckpt", "");
  reply_assignments(h, l1, 1);
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st,
           req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_PROGRESS);
  FB_CHECK(&h->st, req->progress->package_id == 51 && req->progress->attempt == 3);
  FB_CHECK(&h->st, req->progress->has_checkpoint &&
                       req->progress->checkpoint.len == 6 &&
                       memcmp(req->progress->checkpoint.data, "state1", 6) == 0);
  fb_req_free(req);
  fb_reply_work(h->fb, NULL);
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_RESULTS);
  FB_CHECK(&h->st,
           req->results->results[0]->outcome == BATON__OUTCOME__OUTCOME_TRANSIENT &&
               req->results->results[0]->exit_code == 75 &&
               strcmp(req->results->results[0]->error, "exit 75") == 0);
  fb_req_free(req);
  reply_held(h, 0, 51, 3);
  stop_and_bye(h);
}

static void test_agent_protocol_checkpoint_before_result(void **state) {
  (void)state;
  h_t h;
  run(&h, script_checkpoint, 1, 0, 0);
  assert_int_equal(h.tasks, 1);
}

/* Every request after Auth reaches the broker sealed, and the agent takes only
 * replies that open under the session key, are newer than the last one and
 * answer the request in flight: a tampered reply, a reply in clear and a
 * replayed earlier reply are all dropped without ending the session (the
 * genuine answer that follows is taken), and a resent request opens as an
 * exact resend. */
static void script_forged_replies(h_t *h) {
  fb_req_free(handshake(h, 0x9999));
  FB_CHECK(&h->st, !h->st.failed);
  Baton__AgentRequest *req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, fb_last_open(h->fb) == 0); /* it came sealed, and opened */
  FB_CHECK(&h->st, req->session == 0x9999);
  fb_req_free(req);
  Baton__Assignment a1, a2, *l1[] = {&a1}, *l2[] = {&a2};
  fb_assignment(&a1, 1, 61, 1, "hold", "forged");
  fb_assignment(&a2, 1, 62, 1, "hold", "genuine");
  /* a forged answer (one byte of the box flipped) and one in clear: dropped */
  fb_tamper_next(h->fb);
  reply_assignments(h, l1, 1);
  Baton__Work w = BATON__WORK__INIT;
  w.assignments = l1;
  w.n_assignments = 1;
  Baton__AgentReply clear = BATON__AGENT_REPLY__INIT;
  clear.has_version = 1;
  clear.version = 1;
  clear.body_case = BATON__AGENT_REPLY__BODY_WORK;
  clear.work = &w;
  FB_CHECK(&h->st, fb_reply_clear(h->fb, &clear) == 0);
  /* the agent is still waiting on its poll: the genuine answer is taken */
  reply_assignments(h, l2, 1);
  size_t old_len = 0;
  const uint8_t *old = fb_last_reply(h->fb, &old_len);
  uint8_t *saved = malloc(old_len);
  memcpy(saved, old, old_len);
  req = fb_recv(h->fb, WAIT_MS);
  int is_poll = req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_POLL &&
                req->ack_seq == 1 && req->session == 0x9999;
  fb_req_free(req);
  if (!is_poll)
    free(saved);
  FB_CHECK(&h->st, is_poll);
  /* the earlier genuine reply replayed as the answer to this poll: dropped */
  fb_hdr_t cur = fb_current(h->fb);
  int sent = fb_send_raw(h->fb, &cur, saved, old_len);
  free(saved);
  FB_CHECK(&h->st, sent == 0);
  reply_assignments(h, NULL, 0);
  /* same session, no reconnect: the next request is a poll again */
  req = fb_recv(h->fb, WAIT_MS);
  FB_CHECK(&h->st, req != NULL && req->body_case == BATON__AGENT_REQUEST__BODY_POLL);
  FB_CHECK(&h->st, req->session == 0x9999 && req->ack_seq == 1);
  fb_req_free(req);
  stop_and_bye(h);
}

static void test_agent_protocol_forged_replies_dropped(void **state) {
  (void)state;
  h_t h;
  run(&h, script_forged_replies, 2, 0, 0);
  assert_int_equal(h.tasks, 1); /* only the genuine assignment ran */
  assert_int_equal(h.task_pkg[0], 62);
  assert_string_equal(h.task_payload[0], "genuine");
  assert_int_equal(h.fatals, 0);
}

/* Configuration errors are reported by bt_agent_new, never later. */
static void test_agent_protocol_bad_config(void **state) {
  (void)state;
  const char *caps[] = {"upper"};
  char secret[BT_AUTH_SECRET_CHARS + 1];
  uint8_t pk[BT_AUTH_PK_BYTES];
  bt_agent_t *a = NULL;
  bt_agent_callbacks_t cbs = {on_task, NULL, NULL};
  assert_int_equal(bt_auth_init(), 0);
  bt_auth_new_secret(secret, pk);
  bt_agent_config_t cfg = {.brokers = "tcp://127.0.0.1:1",
                           .vendor = "acme",
                           .secret = "not-a-secret",
                           .capabilities = caps,
                           .n_capabilities = 1};
  assert_int_equal(bt_agent_new(NULL, &cfg, &cbs, NULL, &a), BT_AGENT_EINVAL);
  cfg.secret = secret;
  cfg.n_capabilities = 0;
  assert_int_equal(bt_agent_new(NULL, &cfg, &cbs, NULL, &a), BT_AGENT_EINVAL);
  cfg.n_capabilities = 1;
  cfg.max_message_bytes = 100;
  assert_int_equal(bt_agent_new(NULL, &cfg, &cbs, NULL, &a), BT_AGENT_EINVAL);
  cfg.max_message_bytes = 0;
  cfg.brokers = "nonsense://x";
  assert_int_equal(bt_agent_new(NULL, &cfg, &cbs, NULL, &a), 0);
  assert_int_equal(bt_agent_start(a), BT_AGENT_EINVAL);
  assert_int_equal(bt_agent_max_output(a), (1u << 20) - 1024);
  bt_agent_free(a); /* never started: no handle to close */
}

static void stop_from_loop(uv_timer_t *t) {
  bt_agent_stop(t->data, NULL);
  uv_close((uv_handle_t *)t, NULL);
}

/* The library's own loop: bt_agent_run until a stop, and bt_agent_free of a live
 * agent (nobody answers here: it is still saying Hello). */
static void test_agent_protocol_own_loop(void **state) {
  (void)state;
  const char *caps[] = {"upper"};
  char secret[BT_AUTH_SECRET_CHARS + 1];
  uint8_t pk[BT_AUTH_PK_BYTES];
  bt_agent_t *a = NULL;
  bt_agent_callbacks_t cbs = {on_task, NULL, NULL};
  fb_t *fb = fb_new(); /* a port nobody answers on */
  assert_non_null(fb);
  assert_int_equal(bt_auth_init(), 0);
  bt_auth_new_secret(secret, pk);
  bt_agent_config_t cfg = {.brokers = fb_endpoint(fb),
                           .vendor = "acme",
                           .secret = secret,
                           .capabilities = caps,
                           .n_capabilities = 1,
                           .stop_timeout_ms = 500};
  assert_int_equal(bt_agent_new(NULL, &cfg, &cbs, NULL, &a), 0);
  uv_timer_t t;
  uv_timer_init(bt_agent_loop(a), &t);
  t.data = a;
  uv_timer_start(&t, stop_from_loop, 200, 0);
  assert_int_equal(bt_agent_run(a), 0); /* returns once stopped */
  bt_agent_free(a);

  assert_int_equal(bt_agent_new(NULL, &cfg, &cbs, NULL, &a), 0);
  assert_int_equal(bt_agent_start(a), 0);
  for (int i = 0; i < 5; i++)
    uv_run(bt_agent_loop(a), UV_RUN_NOWAIT);
  bt_agent_free(a); /* live, on its own loop: stopped and closed here */
  fb_free(fb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agent_protocol_task_and_result),
      cmocka_unit_test(test_agent_protocol_redelivery_ignored),
      cmocka_unit_test(test_agent_protocol_session_lost),
      cmocka_unit_test(test_agent_protocol_version_fatal),
      cmocka_unit_test(test_agent_protocol_bad_secret_fatal),
      cmocka_unit_test(test_agent_protocol_reply_timeout_reconnects),
      cmocka_unit_test(test_agent_protocol_drain),
      cmocka_unit_test(test_agent_protocol_checkpoint_before_result),
      cmocka_unit_test(test_agent_protocol_forged_replies_dropped),
      cmocka_unit_test(test_agent_protocol_bad_config),
      cmocka_unit_test(test_agent_protocol_own_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

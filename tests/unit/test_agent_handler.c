/*
 * The handler runner (worker/agentd/handler.c) against real /bin/sh commands:
 * outcomes by exit status and signal, environment, checkpoint-in file, fd-3
 * progress, stdin not read, SIGTERM then SIGKILL, oversized results, and pipes
 * held open by a leftover child. Each run has a watchdog.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_time.h"
#include "handler.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WATCHDOG_MS 15000

typedef struct {
  uv_loop_t loop;
  bt_handler_t *h;
  int done;
  bt_agent_outcome_t outcome;
  char *output;
  size_t output_len;
  int exit_code;
  char error[400];
  int has_error;
  int n_percent;
  int percents[16];
  int n_ckpt;
  char ckpt[64];
  size_t ckpt_len;
  uv_timer_t stop_timer;
  bt_agent_outcome_t stop_reason;
  uv_timer_t watchdog;
  int timed_out;
  uint64_t elapsed_ms;
} hr_t;

static void on_progress(bt_handler_t *h, int percent, const uint8_t *ckpt, size_t len,
                        void *user) {
  hr_t *r = user;
  (void)h;
  if (percent >= 0 && r->n_percent < 16)
    r->percents[r->n_percent++] = percent;
  if (ckpt != NULL) {
    r->n_ckpt++;
    r->ckpt_len = len < sizeof r->ckpt ? len : sizeof r->ckpt;
    memcpy(r->ckpt, ckpt, r->ckpt_len);
  }
}

static void on_done(bt_handler_t *h, const bt_handler_result_t *res, void *user) {
  hr_t *r = user;
  r->done = 1;
  r->outcome = res->outcome;
  r->exit_code = res->exit_code;
  r->output_len = res->output_len;
  r->output = res->output ? calloc(1, res->output_len + 1) : NULL;
  if (res->output)
    memcpy(r->output, res->output, res->output_len);
  r->has_error = res->error != NULL;
  snprintf(r->error, sizeof r->error, "%s", res->error ? res->error : "");
  bt_handler_free(h); /* allowed inside on_done */
  uv_close((uv_handle_t *)&r->watchdog, NULL);
  uv_close((uv_handle_t *)&r->stop_timer, NULL);
}

static void on_stop_timer(uv_timer_t *t) {
  hr_t *r = t->data;
  if (!r->done)
    bt_handler_stop(r->h, r->stop_reason);
}

static void on_watchdog(uv_timer_t *t) {
  hr_t *r = t->data;
  r->timed_out = 1;
  bt_handler_stop(r->h, BT_AGENT_CANCELLED);
}

static bt_handler_spec_t spec_for(const char *cmd, const char *payload) {
  bt_handler_spec_t s = {
      .package_id = 42,
      .attempt = 3,
      .capability = "cap",
      .command = cmd,
      .payload = (const uint8_t *)payload,
      .payload_len = payload ? strlen(payload) : 0,
      .max_output = 1 << 20,
      .max_checkpoint = 4096,
      .kill_grace_ms = 5000,
  };
  return s;
}

/* Runs one handler to its end; stop_after_ms > 0 stops it with reason then. */
static void run(hr_t *r, const bt_handler_spec_t *spec, uint64_t stop_after_ms,
                bt_agent_outcome_t reason) {
  memset(r, 0, sizeof *r);
  assert_int_equal(uv_loop_init(&r->loop), 0);
  uv_timer_init(&r->loop, &r->watchdog);
  uv_timer_init(&r->loop, &r->stop_timer);
  r->watchdog.data = r->stop_timer.data = r;
  uv_timer_start(&r->watchdog, on_watchdog, WATCHDOG_MS, 0);
  r->stop_reason = reason;
  if (stop_after_ms > 0)
    uv_timer_start(&r->stop_timer, on_stop_timer, stop_after_ms, 0);
  bt_handler_callbacks_t cbs = {on_progress, on_done};
  uint64_t t0 = bt_mono_ms();
  assert_int_equal(bt_handler_start(&r->loop, spec, &cbs, r, &r->h), 0);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  r->elapsed_ms = bt_mono_ms() - t0;
  assert_int_equal(uv_loop_close(&r->loop), 0);
  assert_true(r->done);
  assert_false(r->timed_out);
}

static void done(hr_t *r) { free(r->output); }

static void test_agent_handler_completed(void **state) {
  (void)state;
  hr_t r;
  bt_handler_spec_t s = spec_for("tr a-z A-Z", "hello world");
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_int_equal(r.exit_code, 0);
  assert_false(r.has_error);
  assert_string_equal(r.output, "HELLO WORLD");
  done(&r);
}

static void test_agent_handler_transient(void **state) {
  (void)state;
  hr_t r;
  bt_handler_spec_t s = spec_for("exit 75", NULL);
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_TRANSIENT);
  assert_int_equal(r.exit_code, 75);
  assert_string_equal(r.error, "exit 75");
  done(&r);
}

static void test_agent_handler_failed_with_stderr(void **state) {
  (void)state;
  hr_t r;
  bt_handler_spec_t s =
      spec_for("echo partial; echo first >&2; echo 'disk full' >&2; exit 3", NULL);
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_FAILED);
  assert_int_equal(r.exit_code, 3);
  assert_string_equal(r.error, "exit 3: disk full");
  assert_string_equal(r.output, "partial\n");
  done(&r);
}

static void test_agent_handler_killed_by_signal(void **state) {
  (void)state;
  hr_t r;
  bt_handler_spec_t s = spec_for("kill -9 $$", NULL);
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_FAILED);
  assert_int_equal(r.exit_code, 128 + 9);
  assert_string_equal(r.error, "killed by signal 9");
  done(&r);
}

static void test_agent_handler_environment(void **state) {
  (void)state;
  hr_t r;
  int64_t deadline = 0;
  assert_int_equal(bt_parse_time("2026-11-22T10:00:00Z", &deadline), 0);
  setenv("BATON_SECRET", "must-not-leak", 1);
  setenv("BATON_TEST_INHERITED", "yes", 1);
  bt_handler_spec_t s =
      spec_for("printf '%s|%s|%s|%s|%s|%s|%s' \"$BATON_PACKAGE_ID\" \"$BATON_ATTEMPT\" "
               "\"$BATON_CAPABILITY\" \"$BATON_DEADLINE\" \"${BATON_SECRET-unset}\" "
               "\"${BATON_CHECKPOINT_IN-none}\" \"$BATON_TEST_INHERITED\"",
               NULL);
  s.deadline_at = deadline;
  run(&r, &s, 0, 0);
  unsetenv("BATON_SECRET");
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_string_equal(r.output, "42|3|cap|2026-11-22T10:00:00.000Z|unset|none|yes");
  done(&r);

  /* no deadline: BATON_DEADLINE is set but empty */
  s = spec_for("printf '[%s]' \"${BATON_DEADLINE-unset}\"", NULL);
  run(&r, &s, 0, 0);
  assert_string_equal(r.output, "[]");
  done(&r);
}

static void test_agent_handler_checkpoint_in(void **state) {
  (void)state;
  hr_t r;
  bt_handler_spec_t s = spec_for("F=\"$BATON_CHECKPOINT_IN\"; cat \"$F\"; "
                                 "printf '|%s|%s' \"$(stat -c %a \"$F\")\" \"$F\"",
                                 NULL);
  s.checkpoint = (const uint8_t *)"saved-state";
  s.checkpoint_len = 11;
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_memory_equal(r.output, "saved-state|600|", 16);
  const char *path = r.output + 16;
  assert_true(strlen(path) > 0);
  assert_int_not_equal(access(path, F_OK), 0); /* removed afterwards */
  done(&r);
}

static void test_agent_handler_fd3_progress(void **state) {
  (void)state;
  hr_t r;
  bt_handler_spec_t s =
      spec_for("echo 'progress 10' >&3; echo 'checkpoint aGVsbG8=' >&3; "
               "echo 'garbage line' >&3; echo 'progress 200' >&3; "
               "echo 'checkpoint !!!' >&3; printf 'progress 90' >&3; "
               "echo done",
               NULL);
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_string_equal(r.output, "done\n");
  assert_int_equal(r.n_percent, 2);
  assert_int_equal(r.percents[0], 10);
  assert_int_equal(r.percents[1], 90);
  assert_int_equal(r.n_ckpt, 1);
  assert_int_equal(r.ckpt_len, 5);
  assert_memory_equal(r.ckpt, "hello", 5);
  done(&r);
}

static void test_agent_handler_ignores_stdin(void **state) {
  (void)state;
  hr_t r;
  size_t n = 4 << 20; /* far beyond a pipe buffer */
  char *big = malloc(n + 1);
  memset(big, 'x', n);
  big[n] = '\0';
  bt_handler_spec_t s = spec_for("echo ignored", big);
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_string_equal(r.output, "ignored\n");
  done(&r);
  s = spec_for("exec 0<&-; exit 0", big); /* closes stdin at once */
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  done(&r);
  /* and one that reads it all */
  s = spec_for("wc -c", big);
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_int_equal(atoi(r.output), (int)n);
  done(&r);
  free(big);
}

static void test_agent_handler_term_then_kill(void **state) {
  (void)state;
  hr_t r;
  /* ignores SIGTERM (sleep inherits the ignored disposition): needs SIGKILL */
  bt_handler_spec_t s = spec_for("trap '' TERM; echo 'progress 5' >&3; sleep 30", NULL);
  s.kill_grace_ms = 300;
  run(&r, &s, 300, BT_AGENT_CANCELLED);
  assert_int_equal(r.outcome, BT_AGENT_CANCELLED);
  assert_string_equal(r.error, "cancelled (killed by signal 9)");
  assert_int_equal(r.exit_code, 137);
  assert_null(r.output);
  assert_true(r.elapsed_ms >= 550 && r.elapsed_ms < 5000);
  done(&r);

  /* an ordinary handler stops at SIGTERM, its whole process group with it */
  s = spec_for("sleep 30 & sleep 30; wait", NULL);
  s.kill_grace_ms = 5000;
  run(&r, &s, 200, BT_AGENT_HANDED_BACK);
  assert_int_equal(r.outcome, BT_AGENT_HANDED_BACK);
  assert_string_equal(r.error, "handed back (killed by signal 15)");
  assert_true(r.elapsed_ms < 2000); /* no SIGKILL grace, no pipe linger */
  done(&r);
}

static void test_agent_handler_result_too_large(void **state) {
  (void)state;
  hr_t r;
  bt_handler_spec_t s = spec_for("head -c 300000 /dev/zero", NULL);
  s.max_output = 1000;
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_FAILED);
  assert_string_equal(r.error, "result too large (over 1000 bytes)");
  assert_null(r.output);
  done(&r);
  /* exactly at the cap is fine */
  s = spec_for("head -c 1000 /dev/zero", NULL);
  s.max_output = 1000;
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_int_equal(r.output_len, 1000);
  done(&r);
}

static void test_agent_handler_leftover_child(void **state) {
  (void)state;
  hr_t r;
  /* the background sleep keeps stdout open after the shell exits: the runner
   * waits a bounded time, then kills the group and reports the result */
  bt_handler_spec_t s = spec_for("sleep 20 & echo hi", NULL);
  run(&r, &s, 0, 0);
  assert_int_equal(r.outcome, BT_AGENT_COMPLETED);
  assert_string_equal(r.output, "hi\n");
  assert_true(r.elapsed_ms < 6000);
  done(&r);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as baton-agent does */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agent_handler_completed),
      cmocka_unit_test(test_agent_handler_transient),
      cmocka_unit_test(test_agent_handler_failed_with_stderr),
      cmocka_unit_test(test_agent_handler_killed_by_signal),
      cmocka_unit_test(test_agent_handler_environment),
      cmocka_unit_test(test_agent_handler_checkpoint_in),
      cmocka_unit_test(test_agent_handler_fd3_progress),
      cmocka_unit_test(test_agent_handler_ignores_stdin),
      cmocka_unit_test(test_agent_handler_term_then_kill),
      cmocka_unit_test(test_agent_handler_result_too_large),
      cmocka_unit_test(test_agent_handler_leftover_child),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

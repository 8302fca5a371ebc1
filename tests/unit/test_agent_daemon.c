/*
 * The baton-agent binary end to end against the fake broker: a real handler
 * result, a checkpoint from fd 3, SIGTERM -> drain -> hand back (the handler's
 * TERM trap writes a last checkpoint, which goes out before the result) -> Bye ->
 * exit 0; a refused secret
 * -> exit 1; a bad flag -> exit 2; and the secret never in ps or the log.
 * The agent is started with posix_spawn (fork+exec: this process has nanomsg
 * sockets and must not fork without exec).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent_fake_broker.h"
#include "bt_auth.h"
#include "bt_time.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 5000

extern char **environ;

typedef struct {
  fb_t *fb;
  char secret[BT_AUTH_SECRET_CHARS + 1];
  uint8_t pk[BT_AUTH_PK_BYTES];
  pid_t pid;
  char log[64];
} d_t;

/* Spawns baton-agent with args (NULL-terminated); its stderr goes to d->log. The
 * secret goes through BATON_SECRET unless secret_flag. */
static void spawn_agent(d_t *d, int secret_flag, const char *const *args) {
  char *argv[40];
  int n = 0;
  char env_secret[80];
  char *envp[] = {env_secret, "PATH=/usr/bin:/bin", NULL};
  snprintf(env_secret, sizeof env_secret, "BATON_SECRET=%s",
           secret_flag ? "" : d->secret);
  argv[n++] = BATON_AGENT_BIN;
  argv[n++] = "--broker";
  argv[n++] = (char *)fb_endpoint(d->fb);
  if (secret_flag) {
    argv[n++] = "--secret";
    argv[n++] = d->secret;
  }
  for (int i = 0; args[i] != NULL; i++)
    argv[n++] = (char *)args[i];
  argv[n] = NULL;
  strcpy(d->log, "/tmp/test_agent_daemon_XXXXXX");
  int fd = mkstemp(d->log);
  assert_true(fd >= 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, STDERR_FILENO);
  assert_int_equal(posix_spawn(&d->pid, BATON_AGENT_BIN, &fa, NULL, argv, envp), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(fd);
}

/* Waits for the agent to exit; returns its exit status, or -1 on timeout (then
 * kills it). */
static int wait_agent(d_t *d, int timeout_ms) {
  int status = 0;
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    pid_t r = waitpid(d->pid, &status, WNOHANG);
    if (r == d->pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    usleep(20000);
  }
  kill(d->pid, SIGKILL);
  waitpid(d->pid, &status, 0);
  return -1;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  static char buf[1 << 16];
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = '\0';
  if (f)
    fclose(f);
  return buf;
}

static void setup_d(d_t *d) {
  memset(d, 0, sizeof *d);
  assert_int_equal(bt_auth_init(), 0);
  d->fb = fb_new();
  assert_non_null(d->fb);
  bt_auth_new_secret(d->secret, d->pk);
}

static void teardown_d(d_t *d) {
  if (getenv("BATON_TEST_KEEP_LOG") != NULL) /* debugging: leave the agent's log */
    fprintf(stderr, "agent log kept: %s\n", d->log);
  else
    unlink(d->log);
  fb_free(d->fb);
}

static Baton__AgentRequest *must_handshake(d_t *d, uint64_t session) {
  const char *why = "";
  Baton__AgentRequest *auth =
      fb_handshake(d->fb, d->pk, session, "acme", WAIT_MS, &why);
  if (auth == NULL) {
    kill(d->pid, SIGKILL);
    fail_msg("handshake: %s; agent log:\n%s", why, slurp(d->log));
  }
  return auth;
}

static void reply_one(d_t *d, uint64_t seq, uint64_t pkg, const char *cap,
                      const char *payload) {
  Baton__Assignment a, *l[] = {&a};
  Baton__Work w = BATON__WORK__INIT;
  fb_assignment(&a, seq, pkg, 1, cap, payload);
  w.assignments = l;
  w.n_assignments = 1;
  fb_reply_work(d->fb, &w);
}

static void ack(d_t *d, uint64_t pkg) {
  Baton__Held h, *hp = &h;
  Baton__Work w = BATON__WORK__INIT;
  fb_held(&h, pkg, 1);
  w.acked = &hp;
  w.n_acked = 1;
  fb_reply_work(d->fb, &w);
}

static void test_agent_daemon_run_and_drain(void **state) {
  (void)state;
  d_t d;
  setup_d(&d);
  const char *args[] = {"--vendor",
                        "acme",
                        "--name",
                        "d1",
                        "--slots",
                        "2",
                        "--handler",
                        "upper=tr a-z A-Z",
                        "--handler",
                        "slow=trap 'echo checkpoint ZmluYWw= >&3; exit 1' TERM; "
                        "echo 'checkpoint c3RhdGU=' >&3; while :; do sleep 0.05; done",
                        "--drain-timeout",
                        "500ms",
                        "--kill-grace",
                        "300ms",
                        NULL};
  spawn_agent(&d, 0, args);
  fb_req_free(must_handshake(&d, 0xd1));
  Baton__AgentRequest *req =
      fb_expect(d.fb, BATON__AGENT_REQUEST__BODY_POLL, WAIT_MS, 0);
  assert_non_null(req);
  fb_req_free(req);
  reply_one(&d, 1, 101, "upper", "abc");
  /* the result supersedes the parked poll */
  req = fb_expect(d.fb, BATON__AGENT_REQUEST__BODY_RESULTS, WAIT_MS, 1);
  assert_non_null(req);
  assert_int_equal(req->results->n_results, 1);
  Baton__Result *r = req->results->results[0];
  assert_int_equal(r->package_id, 101);
  assert_int_equal(r->outcome, BATON__OUTCOME__OUTCOME_COMPLETED);
  assert_int_equal(r->output.len, 3);
  assert_memory_equal(r->output.data, "ABC", 3);
  fb_req_free(req);
  ack(&d, 101);
  req = fb_expect(d.fb, BATON__AGENT_REQUEST__BODY_POLL, WAIT_MS, 0);
  assert_non_null(req);
  fb_req_free(req);
  reply_one(&d, 2, 102, "slow", "");
  /* the handler's fd-3 checkpoint is forwarded */
  req = fb_expect(d.fb, BATON__AGENT_REQUEST__BODY_PROGRESS, WAIT_MS, 1);
  assert_non_null(req);
  assert_int_equal(req->progress->package_id, 102);
  assert_true(req->progress->has_checkpoint);
  assert_int_equal(req->progress->checkpoint.len, 5);
  assert_memory_equal(req->progress->checkpoint.data, "state", 5);
  fb_req_free(req);
  fb_reply_work(d.fb, NULL);
  /* SIGTERM: drain; after 500 ms the handler gets SIGTERM, writes its last
   * checkpoint and exits; it is handed back, the checkpoint first */
  uint64_t t0 = bt_mono_ms();
  assert_int_equal(kill(d.pid, SIGTERM), 0);
  req = fb_expect(d.fb, BATON__AGENT_REQUEST__BODY_PROGRESS, WAIT_MS, 0);
  assert_non_null(req);
  assert_true(req->progress->has_checkpoint);
  assert_int_equal(req->progress->checkpoint.len, 5);
  assert_memory_equal(req->progress->checkpoint.data, "final", 5);
  fb_req_free(req);
  fb_reply_work(d.fb, NULL);
  req = fb_recv(d.fb, WAIT_MS);
  assert_non_null(req);
  assert_int_equal(req->body_case, BATON__AGENT_REQUEST__BODY_RESULTS);
  assert_non_null(req);
  uint64_t took = bt_mono_ms() - t0;
  r = req->results->results[0];
  assert_int_equal(r->package_id, 102);
  assert_int_equal(r->outcome, BATON__OUTCOME__OUTCOME_HANDED_BACK);
  assert_int_equal(req->results->free_slots, 0);
  assert_true(took >= 500);
  fb_req_free(req);
  ack(&d, 102);
  req = fb_expect(d.fb, BATON__AGENT_REQUEST__BODY_BYE, WAIT_MS, 0);
  assert_non_null(req);
  fb_req_free(req);
  fb_reply_work(d.fb, NULL);
  assert_int_equal(wait_agent(&d, WAIT_MS), 0);
  const char *log = slurp(d.log);
  assert_non_null(strstr(log, "signal received; draining"));
  assert_null(strstr(log, d.secret));
  teardown_d(&d);
}

static void test_agent_daemon_refused_secret(void **state) {
  (void)state;
  d_t d;
  setup_d(&d);
  const char *args[] = {"--vendor", "acme", "--handler", "upper=cat", NULL};
  spawn_agent(&d, 1, args);
  uint8_t other_pk[BT_AUTH_PK_BYTES];
  char other[BT_AUTH_SECRET_CHARS + 1];
  bt_auth_new_secret(other, other_pk);
  const char *why = "";
  /* the broker knows another key: the signature does not verify -> Error{AUTH} */
  Baton__AgentRequest *auth = fb_handshake(d.fb, other_pk, 0xd2, "acme", WAIT_MS, &why);
  assert_null(auth);
  assert_string_equal(why, "bad auth signature or session");
  /* --secret was blanked in the command line */
  char path[64], cmdline[4096];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)d.pid);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(cmdline, 1, sizeof cmdline - 1, f) : 0;
  if (f)
    fclose(f);
  cmdline[n] = '\0';
  for (size_t i = 0; i < n; i++)
    cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
  if (n > 0)
    assert_null(strstr(cmdline, d.secret));
  assert_int_equal(wait_agent(&d, WAIT_MS), 1);
  const char *log = slurp(d.log);
  assert_non_null(strstr(log, "authentication failed"));
  assert_null(strstr(log, d.secret));
  teardown_d(&d);
}

static void test_agent_daemon_usage_error(void **state) {
  (void)state;
  d_t d;
  setup_d(&d);
  const char *args[] = {"--vendor", "acme", "--handler", "upper=cat", "--bogus", NULL};
  spawn_agent(&d, 0, args);
  assert_int_equal(wait_agent(&d, WAIT_MS), 2);
  assert_non_null(strstr(slurp(d.log), "unknown option --bogus"));
  teardown_d(&d);
  setup_d(&d);
  const char *args2[] = {"--vendor", "acme", "--handler", "upper=cat", NULL};
  strcpy(d.secret, "not-a-valid-secret"); /* malformed: refused before connecting */
  spawn_agent(&d, 0, args2);
  assert_int_equal(wait_agent(&d, WAIT_MS), 2);
  assert_non_null(strstr(slurp(d.log), "malformed vendor secret"));
  teardown_d(&d);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agent_daemon_run_and_drain),
      cmocka_unit_test(test_agent_daemon_refused_secret),
      cmocka_unit_test(test_agent_daemon_usage_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

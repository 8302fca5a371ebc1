/*
 * server/util/bt_err and bt_log: bt_strerror for both code ranges, level
 * parsing and filtering, logfmt quoting, and the lines bt_log writes (stderr is
 * redirected into a pipe for the duration of each capture).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "bt_log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_util_log_strerror(void **state) {
  (void)state;
  assert_string_equal(bt_strerror(0), "success");
  assert_string_equal(bt_strerror(BT_EPROTO), "malformed or invalid message");
  assert_string_equal(bt_strerror(BT_EINVAL), "invalid argument");
  assert_string_equal(bt_strerror(BT_ESHUTDOWN), "shutting down");
  assert_string_equal(bt_strerror(-ENOENT), strerror(ENOENT));
  assert_string_equal(bt_strerror(BT_ERR_BASE), "unknown error");
  assert_string_equal(bt_strerror(BT_ERR_BASE - 1), "unknown error");
  assert_non_null(bt_strerror(BT__ERR_LAST)); /* unassigned: some message */
  assert_string_equal(bt_strerror(5), "unknown error");
  /* every Baton code has its own message */
  for (int c = BT_ERR_BASE + 1; c < BT__ERR_LAST; c++) {
    const char *m = bt_strerror(c);
    assert_string_not_equal(m, "unknown error");
    assert_true(strlen(m) > 0);
  }
  /* the two ranges do not collide */
  assert_true(BT_ERR_BASE < -4096);
}

static void test_util_log_parse_level(void **state) {
  (void)state;
  static const struct {
    const char *s;
    bt_log_level_t l;
  } good[] = {{"debug", BT_LOG_DEBUG}, {"info", BT_LOG_INFO}, {"warn", BT_LOG_WARN},
              {"warning", BT_LOG_WARN}, {"error", BT_LOG_ERROR}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    bt_log_level_t l = (bt_log_level_t)99;
    assert_int_equal(bt_log_parse_level(good[i].s, &l), 0);
    assert_int_equal(l, good[i].l);
  }
  static const char *const bad[] = {"", "INFO", "Info", "trace", "info ", "err", "5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    bt_log_level_t l = BT_LOG_ERROR;
    assert_int_equal(bt_log_parse_level(bad[i], &l), BT_EINVAL);
    assert_int_equal(l, BT_LOG_ERROR);
  }
}

static void test_util_log_quote(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"plain", "plain"},
      {"acme-eu:1/x@y", "acme-eu:1/x@y"},
      {"", "\"\""},
      {"two words", "\"two words\""},
      {"a=b", "\"a=b\""},
      {"say \"hi\"", "\"say \\\"hi\\\"\""},
      {"back\\slash", "\"back\\\\slash\""},
      {"line\nbreak", "\"line\\nbreak\""},
      {"tab\there", "\"tab\\x09here\""},
      {"del\x7f", "\"del\\x7f\""},
      {"esc\x1b[0m", "\"esc\\x1b[0m\""},
      {"caf\xc3\xa9", "caf\xc3\xa9"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *q = bt_log_quote(cases[i].in);
    if (strcmp(q, cases[i].want) != 0)
      fail_msg("quote case %zu: got %s want %s", i, q, cases[i].want);
  }
  assert_string_equal(bt_log_quote(NULL), "\"\"");
  /* eight results stay valid at once */
  const char *q[8];
  char in[8][8];
  for (int i = 0; i < 8; i++) {
    snprintf(in[i], sizeof in[i], "a b%d", i);
    q[i] = BT_Q(in[i]);
  }
  for (int i = 0; i < 8; i++) {
    char want[16];
    snprintf(want, sizeof want, "\"a b%d\"", i);
    assert_string_equal(q[i], want);
  }
}

/* Long values are cut near 512 bytes and the result stays a closed quote, even
 * when the cut falls in a 4-byte escape. */
static void test_util_log_quote_long(void **state) {
  (void)state;
  char in[2048];
  for (int fill = 0; fill < 3; fill++) {
    for (size_t i = 0; i < sizeof in - 1; i++)
      in[i] = fill == 0 ? ' ' : fill == 1 ? '\x01' : '"';
    in[sizeof in - 1] = '\0';
    const char *q = bt_log_quote(in);
    size_t n = strlen(q);
    assert_true(n >= 500 && n <= 519);
    assert_int_equal(q[0], '"');
    assert_int_equal(q[n - 1], '"');
  }
}

/* Runs fn with stderr going into a pipe; returns what was written (static). */
static const char *capture(void (*fn)(void)) {
  static char out[8192];
  int p[2];
  assert_int_equal(pipe(p), 0);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(p[1], STDERR_FILENO) >= 0);
  close(p[1]);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  size_t o = 0;
  ssize_t r;
  while (o < sizeof out - 1 && (r = read(p[0], out + o, sizeof out - 1 - o)) > 0)
    o += (size_t)r;
  out[o] = '\0';
  close(p[0]);
  return out;
}

static void log_some(void) {
  bt_log_set_level(BT_LOG_INFO);
  bt_log_debug("hidden", "k=%d", 1);
  bt_log_info("agent connected", "vendor=%s agent=%d", BT_Q("acme"), 7);
  bt_log_warn("no context", NULL);
  bt_log_error("name with spaces", "why=%s", BT_Q("a b"));
}

static void test_util_log_lines(void **state) {
  (void)state;
  const char *out = capture(log_some);
  assert_null(strstr(out, "hidden"));
  /* three lines, each "ts=... level=... msg=..." */
  int lines = 0;
  for (const char *p = out; *p; p++)
    lines += *p == '\n';
  assert_int_equal(lines, 3);
  assert_int_equal(strncmp(out, "ts=", 3), 0);
  assert_non_null(strstr(out, "Z level=info msg=\"agent connected\" vendor=acme agent=7\n"));
  assert_non_null(strstr(out, "level=warn msg=\"no context\"\n"));
  assert_non_null(strstr(out, "level=error msg=\"name with spaces\" why=\"a b\"\n"));
  assert_int_equal(bt_log_get_level(), BT_LOG_INFO);
}

static void log_long(void) {
  static char big[10000];
  memset(big, 'v', sizeof big - 1);
  bt_log_set_level(BT_LOG_DEBUG);
  bt_log_debug("long", "v=%s", big);
  bt_log_set_level(BT_LOG_INFO);
}

/* A line longer than the buffer is cut and still ends with one newline. */
static void test_util_log_long_line(void **state) {
  (void)state;
  const char *out = capture(log_long);
  size_t n = strlen(out);
  assert_true(n > 4000 && n <= 4096);
  assert_int_equal(out[n - 1], '\n');
  assert_null(memchr(out, '\n', n - 1));
}

/* In a child (the output mode is process-wide): stderr is the write end of
 * fds[1], nobody reads fds[0] while 3,000 lines of ~300 bytes are logged
 * (more than a pipe or a socket buffer holds). Exits 0 when logging never
 * blocked (an alarm kills a blocked child), only whole lines came out, fewer
 * than all of them, and the next line after draining was preceded by the
 * count of the dropped ones. */
static void never_blocks_child(int fds[2]) {
  alarm(20);
  if (dup2(fds[1], STDERR_FILENO) < 0)
    _exit(10);
  close(fds[1]);
  bt_log_set_level(BT_LOG_INFO);
  bt_log_nonblocking();
  char pad[300];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  const int n = 3000;
  for (int i = 0; i < n; i++)
    bt_log_info("filler", "i=%d pad=%s", i, pad);

  int fl = fcntl(fds[0], F_GETFL);
  fcntl(fds[0], F_SETFL, fl | O_NONBLOCK);
  static char got[4 << 20];
  size_t o = 0;
  ssize_t r;
  while (o < sizeof got - 1 && (r = read(fds[0], got + o, sizeof got - 1 - o)) > 0)
    o += (size_t)r;
  got[o] = '\0';
  int lines = 0;
  for (const char *p = got; *p; p++) {
    if (strncmp(p, "ts=", 3) != 0 || strstr(p, " msg=filler i=") == NULL)
      _exit(11); /* a cut or mixed line */
    const char *nl = strchr(p, '\n');
    if (nl == NULL)
      _exit(12);
    lines++;
    p = nl;
  }
  if (lines == 0 || lines >= n)
    _exit(13); /* the buffer should have filled, and taken something */

  bt_log_info("after", "k=%d", 1);
  o = 0;
  while (o < sizeof got - 1 && (r = read(fds[0], got + o, sizeof got - 1 - o)) > 0)
    o += (size_t)r;
  got[o] = '\0';
  char want[64];
  snprintf(want, sizeof want, "count=%d\n", n - lines);
  if (strstr(got, "msg=\"log lines dropped: stderr was not ready\"") == NULL ||
      strstr(got, want) == NULL)
    _exit(14);
  if (strstr(got, "msg=after k=1\n") == NULL)
    _exit(15);
  _exit(0);
}

static void expect_never_blocks(int fds[2]) {
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    never_blocks_child(fds);
  close(fds[0]);
  close(fds[1]);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (WIFSIGNALED(st))
    fail_msg("logging blocked (child killed by signal %d)", WTERMSIG(st));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* bt_log_nonblocking: a stderr nobody reads drops lines, never blocks. */
static void test_util_log_pipe_never_blocks(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  expect_never_blocks(fds);
}

static void test_util_log_socket_never_blocks(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  expect_never_blocks(sv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util_log_strerror),
      cmocka_unit_test(test_util_log_parse_level),
      cmocka_unit_test(test_util_log_quote),
      cmocka_unit_test(test_util_log_quote_long),
      cmocka_unit_test(test_util_log_lines),
      cmocka_unit_test(test_util_log_long_line),
      cmocka_unit_test(test_util_log_pipe_never_blocks),
      cmocka_unit_test(test_util_log_socket_never_blocks),
  };
  return cmocka_run_group_tests_name("util_log", tests, NULL, NULL);
}

/*
 * batonctl as a process: the real binary (BATONCTL_BIN) is run against a FAKE
 * control server, a listener in a thread of this test that reads frames,
 * records the decoded CtlRequests and answers canned CtlReplies. Checks exit
 * codes, stdout/stderr, and what went over the wire.
 *
 * Each test gets its own temp dir (socket path) and, for TCP, a kernel-chosen
 * port, so tests may run in parallel with anything else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "baton.pb-c.h"
#include "bt_frame.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_REQS 64
#define RUN_DEADLINE_MS 20000

/* ---------------------------------------------------------------- fake broker */

typedef enum {
  FAKE_REPLY,        /* answer every request with handler() */
  FAKE_CLOSE,        /* read one request, close without replying */
  FAKE_HANG,         /* read requests, never reply */
} fake_mode_t;

typedef struct fake fake_t;
/* Fills *reply for the n-th request (0-based) of this test. */
typedef void (*fake_handler_fn)(fake_t *f, const Baton__CtlRequest *req, int n,
                                Baton__CtlReply *reply);

struct fake {
  char dir[64];
  char sock[128];
  int lfd;
  int port; /* TCP fakes only */
  fake_mode_t mode;
  fake_handler_fn handler;
  void *ud;
  pthread_t th;
  bool running; /* the thread was started and not yet joined */
  atomic_int stop;
  /* Written by the server thread, read after the join. */
  int n_conn;
  int n_req;
  Baton__CtlRequest *reqs[MAX_REQS];
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Reads exactly n bytes, giving up when the peer closes or the test stops. */
static int read_exact(fake_t *f, int fd, uint8_t *buf, size_t n) {
  while (n > 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 50);
    if (atomic_load(&f->stop))
      return -1;
    if (r <= 0)
      continue;
    ssize_t k = read(fd, buf, n);
    if (k <= 0)
      return -1;
    buf += k;
    n -= (size_t)k;
  }
  return 0;
}

static void write_exact(int fd, const uint8_t *buf, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
    if (k <= 0)
      return;
    buf += k;
    n -= (size_t)k;
  }
}

static void serve_conn(fake_t *f, int fd) {
  for (;;) {
    uint8_t hdr[BT_FRAME_HEADER];
    if (read_exact(f, fd, hdr, sizeof hdr) != 0)
      return;
    uint32_t len = bt_frame_get_length(hdr);
    uint8_t *body = malloc(len + 1u);
    if (body == NULL)
      abort(); /* no cmocka asserts off the test thread */
    if (read_exact(f, fd, body, len) != 0) {
      free(body);
      return;
    }
    Baton__CtlRequest *req = baton__ctl_request__unpack(NULL, len, body);
    free(body);
    int n = f->n_req++;
    if (req != NULL && n < MAX_REQS)
      f->reqs[n] = req;
    else if (req != NULL)
      baton__ctl_request__free_unpacked(req, NULL);
    if (f->mode == FAKE_CLOSE)
      return;
    if (f->mode == FAKE_HANG || req == NULL)
      continue;
    Baton__CtlReply reply = BATON__CTL_REPLY__INIT;
    reply.has_version = 1;
    reply.version = 1;
    reply.has_status = 1;
    reply.status = BATON__CTL_STATUS__CTL_OK;
    f->handler(f, req, n, &reply);
    size_t plen = baton__ctl_reply__get_packed_size(&reply);
    uint8_t *out = malloc(BT_FRAME_HEADER + plen);
    if (out == NULL)
      abort();
    bt_frame_put_header(out, (uint32_t)plen);
    baton__ctl_reply__pack(&reply, out + BT_FRAME_HEADER);
    write_exact(fd, out, BT_FRAME_HEADER + plen);
    free(out);
  }
}

static void *fake_main(void *arg) {
  fake_t *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0)
      continue;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
      continue;
    f->n_conn++;
    serve_conn(f, fd);
    close(fd);
  }
  return NULL;
}

static void fake_start_common(fake_t *f, fake_handler_fn handler) {
  f->handler = handler;
  atomic_store(&f->stop, 0);
  assert_int_equal(listen(f->lfd, 8), 0);
  assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
  f->running = true;
}

static void fake_init_dir(fake_t *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/bt-ctl-test-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->sock, sizeof f->sock, "%s/baton.sock", f->dir);
}

/* A Unix-socket fake broker at f->sock behaving as mode says. */
static void fake_start_mode(fake_t *f, fake_handler_fn handler, fake_mode_t mode) {
  fake_init_dir(f);
  f->mode = mode;
  f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(f->lfd >= 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  assert_true(strlen(f->sock) < sizeof sa.sun_path);
  memcpy(sa.sun_path, f->sock, strlen(f->sock) + 1);
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  fake_start_common(f, handler);
}

static void fake_start(fake_t *f, fake_handler_fn handler) {
  fake_start_mode(f, handler, FAKE_REPLY);
}

/* A TCP fake broker on 127.0.0.1:f->port (a free port the kernel picks). */
static void fake_start_tcp(fake_t *f, fake_handler_fn handler) {
  fake_init_dir(f);
  f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(f->lfd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t sl = sizeof sa;
  assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
  f->port = ntohs(sa.sin_port);
  fake_start_common(f, handler);
}

/* Stops the server thread; the recorded requests stay readable. */
static void fake_stop(fake_t *f) {
  atomic_store(&f->stop, 1);
  pthread_join(f->th, NULL);
  f->running = false;
  close(f->lfd);
  unlink(f->sock);
}

/* Frees the recorded requests and removes the temp dir (after fake_stop). */
static void fake_free(fake_t *f) {
  for (int i = 0; i < f->n_req && i < MAX_REQS; i++)
    if (f->reqs[i] != NULL)
      baton__ctl_request__free_unpacked(f->reqs[i], NULL);
  f->n_req = 0;
  if (f->dir[0] != '\0')
    rmdir(f->dir);
  f->dir[0] = '\0';
}

/* ------------------------------------------------------------- running batonctl */

typedef struct {
  int status; /* exit status, or -1 if killed/timed out */
  char *out;
  size_t out_len;
  char *err;
  size_t err_len;
} run_t;

static void run_free(run_t *r) {
  free(r->out);
  free(r->err);
  memset(r, 0, sizeof *r);
}

static void append(char **buf, size_t *len, const char *data, size_t n) {
  *buf = realloc(*buf, *len + n + 1);
  assert_non_null(*buf);
  memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = '\0';
}

/* Runs batonctl with argv (NULL-terminated, without the program name), feeding
 * stdin_data (may be NULL: empty stdin) and collecting stdout and stderr. */
static void run_ctl(run_t *r, const char *stdin_data, size_t stdin_len,
                    const char *const *argv) {
  memset(r, 0, sizeof *r);
  append(&r->out, &r->out_len, "", 0);
  append(&r->err, &r->err_len, "", 0);
  const char *av[64];
  size_t n = 0;
  av[n++] = BATONCTL_BIN;
  for (size_t i = 0; argv[i] != NULL; i++) {
    assert_true(n < 63);
    av[n++] = argv[i];
  }
  av[n] = NULL;

  int in[2], out[2], err[2];
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  assert_int_equal(pipe2(err, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  pid_t pid;
  assert_int_equal(
      posix_spawn(&pid, BATONCTL_BIN, &fa, NULL, (char *const *)av, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  close(err[1]);

  /* Feed stdin and drain both outputs together so no pipe fills up. */
  size_t in_off = 0;
  int in_fd = in[1];
  if (stdin_data == NULL || stdin_len == 0) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  int open_fds = 2;
  uint64_t deadline = now_ms() + RUN_DEADLINE_MS;
  bool killed = false;
  while (open_fds > 0 || in_fd >= 0) {
    struct pollfd p[3] = {{.fd = out[0], .events = POLLIN},
                          {.fd = err[0], .events = POLLIN},
                          {.fd = in_fd, .events = POLLOUT}};
    uint64_t now = now_ms();
    if (now >= deadline) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
    if (poll(p, 3, (int)(deadline - now)) < 0)
      continue;
    char buf[65536];
    for (int k = 0; k < 2; k++) {
      if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t got = read(p[k].fd, buf, sizeof buf);
      if (got <= 0) {
        close(p[k].fd);
        if (k == 0)
          out[0] = -1;
        else
          err[0] = -1;
        open_fds--;
      } else if (k == 0) {
        append(&r->out, &r->out_len, buf, (size_t)got);
      } else {
        append(&r->err, &r->err_len, buf, (size_t)got);
      }
    }
    if (in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in_fd, stdin_data + in_off, stdin_len - in_off);
      if (w > 0)
        in_off += (size_t)w;
      if (w < 0 || in_off == stdin_len) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (out[0] >= 0)
    close(out[0]);
  if (err[0] >= 0)
    close(err[0]);
  if (in_fd >= 0)
    close(in_fd);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  r->status = !killed && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (killed)
    fail_msg("batonctl did not finish within %d ms; stderr: %s", RUN_DEADLINE_MS,
             r->err);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_contains(const char *hay, const char *needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("\"%s\" not found in:\n%s", needle, hay);
}

/* ------------------------------------------------------------ canned replies */

/* Handlers run on the fake's thread, where cmocka's asserts must not be used
 * (they longjmp into the test thread); a broken expectation aborts instead,
 * and the tests re-check the recorded requests on their own thread. */
#define SRV_CHECK(cond)                                                        \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fake broker: check failed: %s\n", #cond);               \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void reply_submitted_seq(fake_t *f, const Baton__CtlRequest *req, int n,
                                Baton__CtlReply *reply) {
  (void)n;
  /* ids from 100 on, continuing across chunks; freed by the next call/test */
  static Baton__SubmittedPackage pk[6000];
  static Baton__SubmittedPackage *pp[6000];
  static Baton__Submitted sub;
  static uint64_t next_id;
  if (f->n_req == 1)
    next_id = 100;
  SRV_CHECK(req->body_case == BATON__CTL_REQUEST__BODY_SUBMIT);
  size_t k = req->submit->n_packages;
  SRV_CHECK(k <= 6000);
  for (size_t i = 0; i < k; i++) {
    baton__submitted_package__init(&pk[i]);
    pk[i].has_id = 1;
    pk[i].id = next_id++;
    pk[i].state = "queued";
    pp[i] = &pk[i];
  }
  baton__submitted__init(&sub);
  sub.n_packages = k;
  sub.packages = pp;
  reply->body_case = BATON__CTL_REPLY__BODY_SUBMITTED;
  reply->submitted = &sub;
}

static void reply_submitted_42(fake_t *f, const Baton__CtlRequest *req, int n,
                               Baton__CtlReply *reply) {
  (void)f;
  (void)req;
  (void)n;
  static Baton__SubmittedPackage pk = BATON__SUBMITTED_PACKAGE__INIT;
  static Baton__SubmittedPackage *pp[1] = {&pk};
  static Baton__Submitted sub = BATON__SUBMITTED__INIT;
  pk.has_id = 1;
  pk.id = 42;
  pk.state = "queued";
  sub.n_packages = 1;
  sub.packages = pp;
  reply->body_case = BATON__CTL_REPLY__BODY_SUBMITTED;
  reply->submitted = &sub;
}

static void reply_not_found(fake_t *f, const Baton__CtlRequest *req, int n,
                            Baton__CtlReply *reply) {
  (void)f;
  (void)req;
  (void)n;
  reply->status = BATON__CTL_STATUS__CTL_NOT_FOUND;
  reply->error = "package 7 not found";
}

static void reply_vendors(fake_t *f, const Baton__CtlRequest *req, int n,
                          Baton__CtlReply *reply) {
  (void)f;
  (void)req;
  (void)n;
  static char *caps1[] = {"ocr", "translate"};
  static char *certs1[] = {"iso27001"};
  static char *caps2[] = {"ocr"};
  static Baton__VendorInfo v1 = BATON__VENDOR_INFO__INIT;
  static Baton__VendorInfo v2 = BATON__VENDOR_INFO__INIT;
  static Baton__VendorInfo *vs[2] = {&v1, &v2};
  static Baton__VendorList vl = BATON__VENDOR_LIST__INIT;
  v1.has_id = 1, v1.id = 1, v1.name = "acme", v1.region = "EU-DE";
  v1.model = "nearshore", v1.n_capabilities = 2, v1.capabilities = caps1;
  v1.n_certs = 1, v1.certs = certs1, v1.has_capacity = 1, v1.capacity = 10;
  v1.has_cost = 1, v1.cost = 1.5, v1.state = "active", v1.has_agents = 1;
  v1.agents = 3, v1.has_in_flight = 1, v1.in_flight = 4, v1.has_completed = 1;
  v1.completed = 120, v1.has_failed = 1, v1.failed = 2;
  v1.has_on_time_rate = 1, v1.on_time_rate = 0.95;
  v1.hours = "Mon-Fri 08:00-18:00 Europe/Berlin";
  v1.has_weight = 1, v1.weight = 1.0;
  v1.has_created_at = 1, v1.created_at = INT64_C(1763805600000);
  v2.has_id = 1, v2.id = 12, v2.name = "zeta-offshore", v2.region = "IN";
  v2.model = "offshore", v2.n_capabilities = 1, v2.capabilities = caps2;
  v2.has_capacity = 1, v2.capacity = 4000, v2.has_cost = 1, v2.cost = 0.1;
  v2.state = "degraded"; /* no on_time_rate, counters left absent */
  v1.has_limit = 1, v1.limit = 10, v1.has_probing = 1, v1.probing = 0;
  v2.state_reason = "slow", v2.has_limit = 1, v2.limit = 500;
  v2.has_probing = 1, v2.probing = 1;
  vl.n_vendors = 2;
  vl.vendors = vs;
  reply->body_case = BATON__CTL_REPLY__BODY_VENDORS;
  reply->vendors = &vl;
}

/* ------------------------------------------------------------------- tests */

/* One fake at a time, outside any test's stack frame: a failing assert leaves
 * its test by longjmp, and teardown_fake() must still stop the thread. */
static fake_t g_fake;

static int teardown_fake(void **state) {
  (void)state;
  if (g_fake.running)
    fake_stop(&g_fake);
  fake_free(&g_fake);
  return 0;
}

static void test_batonctl_cli_help_exits_0(void **state) {
  (void)state;
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--help"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "usage: batonctl");
  expect_contains(r.out, "vendor add");
  expect_contains(r.out, "stats");
  static const char *const added[] = {"vendor drain", "vendor suspend", "vendor resume",
                                      "vendor fail", "package cancel", "package retry",
                                      "package reassign", "handoffs", "audit",
                                      "scorecard"};
  for (size_t i = 0; i < sizeof added / sizeof added[0]; i++)
    expect_contains(r.out, added[i]);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("help", "package", "reassign"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "usage: batonctl package reassign ID [--to V]");
  expect_contains(r.out, "JSON: {id, state}");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("handoffs", "--help"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "usage: batonctl handoffs [--vendor V] [--package ID] [--since T]");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("audit", "--help"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out,
                  "usage: batonctl audit [--since T] [--package ID] [--vendor V] [--limit N]");
  expect_contains(r.out, "JSON: array of {at, actor, action, subject, detail}");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("help", "scorecard"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "usage: batonctl scorecard [V]");
  expect_contains(r.out, "turnaround_p50_ms, turnaround_p95_ms, cost_total");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("submit", "--help"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "usage: batonctl submit --capability C");
  expect_contains(r.out, "--batch FILE");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("help", "submit"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "usage: batonctl submit --capability C");
  run_free(&r);

  /* --help wins even next to an otherwise bad line. */
  run_ctl(&r, NULL, 0, ARGV("package", "show", "--help"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "usage: batonctl package show ID");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("help", "vendor"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "vendor add");
  expect_contains(r.out, "vendor show");
  run_free(&r);
}

static void test_batonctl_cli_usage_errors_exit_2(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_submitted_42);
  const char *s = f->sock;
  struct {
    const char *const *argv;
    const char *want; /* in stderr */
  } cases[] = {
      {ARGV("--control", "x"), "missing command"},
      {ARGV("--control", s, "frobnicate"), "unknown command 'frobnicate'"},
      {ARGV("--control", s, "vendor", "explode"), "unknown command 'vendor explode'"},
      {ARGV("--control", s, "vendor"), "missing subcommand"},
      {ARGV("--control", s, "submit", "--capability", "x", "--bogus"),
       "usage: batonctl submit --capability C"},
      {ARGV("--control", s, "submit", "--payload", "p"), "missing --capability"},
      {ARGV("--control", s, "submit", "--capability", "x", "--priority", "10"),
       "bad --priority \"10\""},
      {ARGV("--control", s, "submit", "--capability", "x", "--priority", "-1"),
       "usage: batonctl submit"},
      {ARGV("--control", s, "submit", "--capability", "x", "--deadline", "soon"),
       "bad --deadline \"soon\""},
      {ARGV("--control", s, "submit", "--capability", "x", "--region", "A,,B"),
       "bad --region"},
      {ARGV("--control", s, "submit", "--capability", "x", "--payload", "a",
            "--payload-file", "/dev/null"),
       "exclude each other"},
      {ARGV("--control", s, "submit", "--batch", "-", "--capability", "x"),
       "--batch and --capability exclude each other"},
      {ARGV("--control", s, "submit", "--capability"), "needs a value"},
      {ARGV("--control", s, "package", "show"), "usage: batonctl package show ID"},
      {ARGV("--control", s, "package", "show", "abc"), "bad package id \"abc\""},
      {ARGV("--control", s, "package", "show", "1", "2"), "unexpected argument '2'"},
      {ARGV("--control", s, "package", "list", "--state", "lost"), "bad --state"},
      {ARGV("--control", s, "vendor", "add", "acme", "--capability", "x"),
       "missing --region"},
      {ARGV("--control", s, "vendor", "add", "acme", "--region", "EU"),
       "missing --capability"},
      {ARGV("--control", s, "vendor", "add", "acme", "--region", "EU",
            "--capability", "x", "--model", "moon"),
       "bad --model"},
      {ARGV("--control", s, "wait"), "missing package ids"},
      {ARGV("--control", s, "wait", "1", "--all"), "not both"},
      {ARGV("--control", s, "wait", "1", "--timeout", "later"), "bad --timeout"},
      {ARGV("--control", s, "--json=yes", "stats"), "takes no value"},
      {ARGV("--control", s, "stats", "extra"), "unexpected argument 'extra'"},
      {ARGV("--control", "tcp://no-port", "stats"), "bad control endpoint"},
      {ARGV("--control", s, "submit", "--capability", "a b"),
       "--capability \"a b\" is not a valid name"},
      {ARGV("--control", s, "submit", "--capability", "x", "--cert", "iso 27001"),
       "bad --cert"},
      {ARGV("--control", s, "vendor", "add", "bad/na me", "--region", "EU",
            "--capability", "x"),
       "vendor name \"bad/na me\" is not a valid name"},
      {ARGV("vendor", "--json", "list", "--control", ""), "bad control endpoint"},
      {ARGV("--control", s, "vendor", "drain"), "usage: batonctl vendor drain V"},
      {ARGV("--control", s, "vendor", "fail", "a", "b"), "unexpected argument 'b'"},
      {ARGV("--control", s, "vendor", "suspend", "ac me"),
       "vendor \"ac me\" is not a valid name"},
      {ARGV("--control", s, "vendor", "resume", "--to", "x"), "unknown option --to"},
      {ARGV("--control", s, "package", "cancel"), "usage: batonctl package cancel ID"},
      {ARGV("--control", s, "package", "retry", "x1"), "bad package id \"x1\""},
      {ARGV("--control", s, "package", "cancel", "0"), "bad package id \"0\""},
      {ARGV("--control", s, "package", "cancel", "1", "--to", "acme"),
       "unknown option --to"},
      {ARGV("--control", s, "package", "reassign", "1", "--to"), "needs a value"},
      {ARGV("--control", s, "package", "reassign", "1", "--to", "a b"),
       "--to \"a b\" is not a valid name"},
      {ARGV("--control", s, "handoffs", "extra"), "unexpected argument 'extra'"},
      {ARGV("--control", s, "handoffs", "--package", "seven"), "bad --package \"seven\""},
      {ARGV("--control", s, "handoffs", "--since", "soonish"), "bad --since \"soonish\""},
      {ARGV("--control", s, "handoffs", "--vendor", "x y"),
       "--vendor \"x y\" is not a valid name"},
      {ARGV("--control", s, "--json", "handoffs", "--since", "-5m"), "bad --since"},
      {ARGV("--control", s, "audit", "extra"), "unexpected argument 'extra'"},
      {ARGV("--control", s, "audit", "--bogus"), "usage: batonctl audit"},
      {ARGV("--control", s, "audit", "--package", "seven"), "bad --package \"seven\""},
      {ARGV("--control", s, "audit", "--package", "0"), "bad --package \"0\""},
      {ARGV("--control", s, "audit", "--since", "soonish"), "bad --since \"soonish\""},
      {ARGV("--control", s, "audit", "--vendor", "x y"),
       "--vendor \"x y\" is not a valid name"},
      {ARGV("--control", s, "audit", "--limit", "0"), "bad --limit \"0\": expected 1-100000"},
      {ARGV("--control", s, "audit", "--limit", "100001"), "bad --limit \"100001\""},
      {ARGV("--control", s, "audit", "--limit"), "needs a value"},
      {ARGV("--control", s, "--json", "audit", "--limit", "x"), "bad --limit"},
      {ARGV("--control", s, "scorecard", "a", "b"), "unexpected argument 'b'"},
      {ARGV("--control", s, "scorecard", "x y"), "\"x y\" is not a valid name"},
      {ARGV("--control", s, "scorecard", "--vendor", "a"), "usage: batonctl scorecard"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_t r;
    run_ctl(&r, NULL, 0, cases[i].argv);
    if (r.status != 2)
      fail_msg("case %zu: exit %d, stderr: %s", i, r.status, r.err);
    expect_contains(r.err, cases[i].want);
    expect_contains(r.err, "usage: batonctl");
    bool json = false;
    for (size_t k = 0; cases[i].argv[k] != NULL; k++)
      json = json || strcmp(cases[i].argv[k], "--json") == 0;
    if (!json) {
      assert_int_equal(r.out_len, 0); /* usage errors print nothing on stdout */
    } else {
      /* --json: still exactly one JSON document, naming the error */
      json_error_t je;
      json_t *doc = json_loadb(r.out, r.out_len, 0, &je);
      if (doc == NULL)
        fail_msg("case %zu: stdout is not one JSON document: %s", i, r.out);
      assert_int_equal(json_integer_value(json_object_get(doc, "exit_code")), 2);
      expect_contains(json_string_value(json_object_get(doc, "error")), cases[i].want);
      json_decref(doc);
    }
    run_free(&r);
  }
  fake_stop(f);
  /* A usage error is found before anything is sent. */
  assert_int_equal(f->n_conn, 0);
  fake_free(f);
}

static void test_batonctl_cli_unreachable_exit_3(void **state) {
  (void)state;
  char dir[] = "/tmp/bt-ctl-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/missing.sock", dir);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", path, "stats"));
  assert_int_equal(r.status, 3);
  char want[256];
  snprintf(want, sizeof want,
           "batonctl: cannot reach the broker at %s: No such file or directory "
           "(is batond running?)",
           path);
  expect_contains(r.err, want);
  assert_int_equal(r.out_len, 0);
  run_free(&r);

  /* BATON_CONTROL is the endpoint when --control is absent. */
  setenv("BATON_CONTROL", path, 1);
  run_ctl(&r, NULL, 0, ARGV("vendor", "list", "--json"));
  unsetenv("BATON_CONTROL");
  assert_int_equal(r.status, 3);
  expect_contains(r.err, path);
  run_free(&r);

  /* A socket file nobody listens on: connection refused, still exit 3. */
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/dead.sock", dir);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(fd);
  run_ctl(&r, NULL, 0, ARGV("--control", sa.sun_path, "stats"));
  assert_int_equal(r.status, 3);
  expect_contains(r.err, "Connection refused (is batond running?)");
  run_free(&r);
  unlink(sa.sun_path);
  rmdir(dir);
}

static void test_batonctl_cli_submit_sends_package_spec(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_submitted_42);
  run_t r;
  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "submit", "--capability", "x", "--payload", "hi",
               "--priority", "3", "--key", "k"));
  fake_stop(f);
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  assert_string_equal(r.out, "42\n"); /* only the id: id=$(batonctl submit) */
  assert_int_equal(f->n_conn, 1);
  assert_int_equal(f->n_req, 1);
  const Baton__CtlRequest *q = f->reqs[0];
  assert_non_null(q);
  assert_true(q->has_version);
  assert_int_equal(q->version, 1);
  assert_null(q->admin_token); /* never sent on a local socket */
  assert_int_equal(q->body_case, BATON__CTL_REQUEST__BODY_SUBMIT);
  assert_int_equal(q->submit->n_packages, 1);
  const Baton__PackageSpec *p = q->submit->packages[0];
  assert_string_equal(p->capability, "x");
  assert_true(p->has_payload);
  assert_int_equal(p->payload.len, 2);
  assert_memory_equal(p->payload.data, "hi", 2);
  assert_true(p->has_priority);
  assert_int_equal(p->priority, 3);
  assert_string_equal(p->key, "k");
  assert_false(p->has_deadline_at);
  assert_false(p->has_not_before_at);
  assert_false(p->has_max_cost);
  assert_false(p->has_max_attempts);
  assert_int_equal(p->n_regions, 0);
  assert_int_equal(p->n_certs, 0);
  assert_int_equal(p->n_prefer, 0);
  assert_int_equal(p->n_avoid, 0);
  run_free(&r);
  fake_free(f);
}

static void test_batonctl_cli_submit_flags_lists_and_json(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_submitted_42);
  run_t r;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  /* Global --json after the command; lists repeated and comma-separated;
   * payload from stdin. */
  run_ctl(&r, "bytes\0in", 8,
          ARGV("--control", f->sock, "submit", "--capability", "ocr", "--json",
               "--payload-file", "-", "--region", "EU-DE,EU-FR", "--region", "US",
               "--cert", "soc2", "--prefer=acme", "--avoid", "zeta,omega",
               "--deadline", "1h", "--not-before", "2025-11-22T10:00:00Z",
               "--max-cost", "2.5", "--max-attempts", "5"));
  fake_stop(f);
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  json_error_t je;
  json_t *doc = json_loads(r.out, 0, &je);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "id")), 42);
  assert_string_equal(json_string_value(json_object_get(doc, "state")), "queued");
  json_decref(doc);

  const Baton__PackageSpec *p = f->reqs[0]->submit->packages[0];
  assert_string_equal(p->capability, "ocr");
  assert_int_equal(p->payload.len, 8);
  assert_memory_equal(p->payload.data, "bytes\0in", 8);
  assert_int_equal(p->n_regions, 3);
  assert_string_equal(p->regions[0], "EU-DE");
  assert_string_equal(p->regions[1], "EU-FR");
  assert_string_equal(p->regions[2], "US");
  assert_int_equal(p->n_certs, 1);
  assert_int_equal(p->n_prefer, 1);
  assert_string_equal(p->prefer[0], "acme");
  assert_int_equal(p->n_avoid, 2);
  assert_true(p->has_deadline_at);
  assert_true(p->deadline_at >= before + 3600 * 1000 &&
              p->deadline_at <= before + 3600 * 1000 + 10000);
  assert_true(p->has_not_before_at);
  assert_int_equal(p->not_before_at, INT64_C(1763805600000));
  assert_true(p->has_max_cost && p->max_cost == 2.5);
  assert_true(p->has_max_attempts);
  assert_int_equal(p->max_attempts, 5);
  assert_false(p->has_priority);
  assert_null(p->key);
  run_free(&r);
  fake_free(f);
}

static void test_batonctl_cli_not_found_exit_1(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_not_found);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "package", "show", "7"));
  fake_stop(f);
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "batonctl: package 7 not found");
  assert_int_equal(r.out_len, 0);
  assert_int_equal(f->reqs[0]->body_case, BATON__CTL_REQUEST__BODY_PACKAGE_SHOW);
  assert_true(f->reqs[0]->package_show->has_id);
  assert_int_equal(f->reqs[0]->package_show->id, 7);
  run_free(&r);
  fake_free(f);
}

static void test_batonctl_cli_vendor_list_json_fields(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_vendors);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("vendor", "list", "--json", "--control", f->sock));
  fake_stop(f);
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  assert_int_equal(f->reqs[0]->body_case, BATON__CTL_REQUEST__BODY_VENDOR_LIST);
  json_error_t je;
  json_t *doc = json_loads(r.out, 0, &je); /* exactly one document */
  if (doc == NULL)
    fail_msg("not one JSON document: %s\n%s", je.text, r.out);
  assert_true(json_is_array(doc));
  assert_int_equal(json_array_size(doc), 2);
  static const char *fields[] = {
      "id",     "name",  "region", "model",     "capabilities", "certs",
      "capacity", "cost", "state", "agents",    "in_flight",    "completed",
      "failed", "on_time_rate", "hours", "weight", "created_at",
      "state_reason", "limit", "probing",
  };
  for (size_t i = 0; i < 2; i++)
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
      if (json_object_get(json_array_get(doc, i), fields[k]) == NULL)
        fail_msg("vendor %zu lacks field %s", i, fields[k]);
  json_t *a = json_array_get(doc, 0);
  assert_int_equal(json_integer_value(json_object_get(a, "id")), 1);
  assert_string_equal(json_string_value(json_object_get(a, "name")), "acme");
  assert_string_equal(json_string_value(json_object_get(a, "region")), "EU-DE");
  assert_string_equal(json_string_value(json_object_get(a, "model")), "nearshore");
  json_t *caps = json_object_get(a, "capabilities");
  assert_int_equal(json_array_size(caps), 2);
  assert_string_equal(json_string_value(json_array_get(caps, 1)), "translate");
  assert_string_equal(json_string_value(json_array_get(json_object_get(a, "certs"), 0)),
                      "iso27001");
  assert_int_equal(json_integer_value(json_object_get(a, "capacity")), 10);
  assert_true(json_number_value(json_object_get(a, "cost")) == 1.5);
  assert_string_equal(json_string_value(json_object_get(a, "state")), "active");
  assert_int_equal(json_integer_value(json_object_get(a, "agents")), 3);
  assert_int_equal(json_integer_value(json_object_get(a, "in_flight")), 4);
  assert_int_equal(json_integer_value(json_object_get(a, "completed")), 120);
  assert_int_equal(json_integer_value(json_object_get(a, "failed")), 2);
  assert_true(json_number_value(json_object_get(a, "on_time_rate")) == 0.95);
  assert_string_equal(json_string_value(json_object_get(a, "created_at")),
                      "2025-11-22T10:00:00.000Z");
  assert_true(json_is_null(json_object_get(a, "state_reason"))); /* active */
  assert_int_equal(json_integer_value(json_object_get(a, "limit")), 10);
  assert_true(json_is_false(json_object_get(a, "probing")));
  json_t *z = json_array_get(doc, 1);
  assert_string_equal(json_string_value(json_object_get(z, "state_reason")), "slow");
  assert_int_equal(json_integer_value(json_object_get(z, "limit")), 500);
  assert_true(json_is_true(json_object_get(z, "probing")));
  assert_true(json_is_null(json_object_get(z, "on_time_rate")));
  assert_true(json_is_null(json_object_get(z, "hours")));
  assert_int_equal(json_array_size(json_object_get(z, "certs")), 0);
  assert_int_equal(json_integer_value(json_object_get(z, "completed")), 0);
  assert_true(json_number_value(json_object_get(z, "cost")) == 0.1);
  json_decref(doc);
  run_free(&r);
  fake_free(f);
}

/* The column of the first occurrence of word in line, or -1. */
static long column_of(const char *line, const char *word) {
  const char *p = strstr(line, word);
  return p ? p - line : -1;
}

static void test_batonctl_cli_vendor_list_table(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_vendors);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "vendor", "list"));
  fake_stop(f);
  assert_int_equal(r.status, 0);
  char *l1 = r.out, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
  assert_true(strncmp(l1, "ID  NAME", 8) == 0);
  /* Left-aligned NAME column starts at the same offset on every line. */
  assert_int_equal(column_of(l1, "NAME"), column_of(l2, "acme"));
  assert_int_equal(column_of(l1, "NAME"), column_of(l3, "zeta-offshore"));
  /* Right-aligned numbers end where their header ends. */
  long cap_end = column_of(l1, "CAPACITY") + 8;
  assert_int_equal(column_of(l2, " 10 ") + 3, cap_end);
  assert_int_equal(column_of(l3, " 4000 ") + 5, cap_end);
  expect_contains(l2, "95.0%  -\n"); /* active: no reason, last column */
  /* An absent on-time rate is "-"; the state's reason ends the line. */
  assert_true(strstr(l3, " -  slow\n") != NULL);
  run_free(&r);
  fake_free(f);
}

static void test_batonctl_cli_batch_from_stdin(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_submitted_seq);
  const char *lines = "{\"capability\":\"ocr\",\"payload\":\"one\",\"priority\":2}\n"
                      "\n"
                      "{\"capability\":\"tr\",\"payload_b64\":\"AAE=\","
                      "\"region\":\"EU-DE,EU-FR\",\"key\":\"b\"}\n";
  run_t r;
  run_ctl(&r, lines, strlen(lines),
          ARGV("--json", "--control", f->sock, "submit", "--batch", "-"));
  fake_stop(f);
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  json_t *ids = json_object_get(doc, "ids");
  assert_int_equal(json_array_size(ids), 2);
  assert_int_equal(json_integer_value(json_array_get(ids, 0)), 100);
  assert_int_equal(json_integer_value(json_array_get(ids, 1)), 101);
  json_decref(doc);
  assert_int_equal(f->n_req, 1);
  const Baton__Submit *s = f->reqs[0]->submit;
  assert_int_equal(s->n_packages, 2);
  assert_string_equal(s->packages[0]->capability, "ocr");
  assert_memory_equal(s->packages[0]->payload.data, "one", 3);
  assert_int_equal(s->packages[0]->priority, 2);
  assert_string_equal(s->packages[1]->capability, "tr");
  assert_int_equal(s->packages[1]->payload.len, 2);
  assert_memory_equal(s->packages[1]->payload.data, "\0\1", 2);
  assert_int_equal(s->packages[1]->n_regions, 2);
  assert_string_equal(s->packages[1]->key, "b");
  run_free(&r);
  fake_free(f);
}

static void test_batonctl_cli_batch_bad_line_sends_nothing(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_submitted_seq);
  char path[1024];
  snprintf(path, sizeof path, "%s/batch.jsonl", f->dir);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("{\"capability\":\"ocr\"}\n{\"capability\":\"ocr\",\"priority\":10}\n"
        "{\"capability\":\"ocr\"}\n",
        fp);
  fclose(fp);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "submit", "--batch", path));
  fake_stop(f);
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "line 2: priority must be an integer 0-9");
  assert_int_equal(r.out_len, 0);
  assert_int_equal(f->n_conn, 0); /* the whole batch is rejected locally */
  unlink(path);
  run_free(&r);
  fake_free(f);
}

static void test_batonctl_cli_batch_is_chunked(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_submitted_seq);
  size_t n = 12001, cap = n * 40, used = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  for (size_t i = 0; i < n; i++)
    used += (size_t)snprintf(text + used, cap - used,
                             "{\"capability\":\"c\",\"key\":\"k%zu\"}\n", i);
  run_t r;
  run_ctl(&r, text, used, ARGV("--control", f->sock, "submit", "--batch", "-"));
  fake_stop(f);
  free(text);
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  /* At most 5000 packages per Submit, in file order, over one connection. */
  assert_int_equal(f->n_conn, 1);
  assert_int_equal(f->n_req, 3);
  assert_int_equal(f->reqs[0]->submit->n_packages, 5000);
  assert_int_equal(f->reqs[1]->submit->n_packages, 5000);
  assert_int_equal(f->reqs[2]->submit->n_packages, 2001);
  assert_string_equal(f->reqs[1]->submit->packages[0]->key, "k5000");
  assert_string_equal(f->reqs[2]->submit->packages[2000]->key, "k12000");
  /* Plain output: one id per line, in file order. */
  size_t lines = 0;
  for (char *p = r.out; *p; p++)
    lines += *p == '\n';
  assert_int_equal(lines, n);
  assert_true(strncmp(r.out, "100\n101\n", 8) == 0);
  expect_contains(r.out, "\n12100\n");
  run_free(&r);
  fake_free(f);
}

static void reply_wait_progress(fake_t *f, const Baton__CtlRequest *req, int n,
                                Baton__CtlReply *reply) {
  (void)f;
  static Baton__WaitStatus w;
  baton__wait_status__init(&w);
  SRV_CHECK(req->body_case == BATON__CTL_REQUEST__BODY_WAIT);
  w.has_completed = w.has_pending = w.has_dead = 1;
  w.completed = (uint64_t)n;
  w.dead = n >= 2 ? 1 : 0;
  w.pending = n >= 2 ? 0 : 3 - (uint64_t)n;
  reply->body_case = BATON__CTL_REPLY__BODY_WAIT;
  reply->wait = &w;
}

static void test_batonctl_cli_wait_polls_until_done(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_wait_progress);
  run_t r;
  uint64_t t0 = now_ms();
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "--json", "wait", "5", "6", "5"));
  uint64_t took = now_ms() - t0;
  fake_stop(f);
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  assert_int_equal(f->n_conn, 1); /* polls reuse one connection */
  assert_int_equal(f->n_req, 3);
  assert_true(took >= 300); /* ~200 ms between polls */
  const Baton__WaitQuery *q = f->reqs[0]->wait;
  assert_int_equal(q->n_ids, 2); /* duplicates dropped */
  assert_int_equal(q->ids[0], 5);
  assert_int_equal(q->ids[1], 6);
  assert_false(q->has_all && q->all);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "completed")), 2);
  assert_int_equal(json_integer_value(json_object_get(doc, "dead")), 1);
  assert_int_equal(json_integer_value(json_object_get(doc, "cancelled")), 0);
  assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 0);
  json_decref(doc);
  run_free(&r);
  fake_free(f);
}

static void reply_wait_pending(fake_t *f, const Baton__CtlRequest *req, int n,
                               Baton__CtlReply *reply) {
  (void)f;
  (void)req;
  (void)n;
  static Baton__WaitStatus w;
  baton__wait_status__init(&w);
  w.has_pending = 1;
  w.pending = 4;
  reply->body_case = BATON__CTL_REPLY__BODY_WAIT;
  reply->wait = &w;
}

static void reply_wait_unknown(fake_t *f, const Baton__CtlRequest *req, int n,
                               Baton__CtlReply *reply) {
  (void)f;
  (void)req;
  (void)n;
  static Baton__WaitStatus w;
  baton__wait_status__init(&w);
  w.has_pending = w.has_unknown = 1;
  w.pending = 1;
  w.unknown = 1;
  reply->body_case = BATON__CTL_REPLY__BODY_WAIT;
  reply->wait = &w;
}

static void test_batonctl_cli_wait_timeout_and_unknown_exit_1(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_wait_pending);
  run_t r;
  uint64_t t0 = now_ms();
  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "wait", "--all", "--timeout", "700ms"));
  uint64_t took = now_ms() - t0;
  fake_stop(f);
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "timed out after");
  expect_contains(r.out, "PENDING"); /* the last status is still printed */
  assert_true(took >= 650 && took < 5000);
  assert_true(f->reqs[0]->wait->has_all && f->reqs[0]->wait->all);
  assert_int_equal(f->reqs[0]->wait->n_ids, 0);
  run_free(&r);

  fake_free(f);
  fake_start(f, reply_wait_unknown);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "wait", "1", "999"));
  fake_stop(f);
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "1 of the package ids do not exist");
  assert_int_equal(f->n_req, 1); /* no point polling for an id that is not there */
  run_free(&r);
  fake_free(f);
}

static void reply_result(fake_t *f, const Baton__CtlRequest *req, int n,
                         Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__ResultData rd;
  baton__result_data__init(&rd);
  rd.has_id = 1;
  rd.id = req->result->id;
  if (req->result->id == 1) {
    rd.state = "completed";
    rd.has_result = 1;
    rd.result.data = (uint8_t *)"res\0ult\n";
    rd.result.len = 8;
  } else if (req->result->id == 2) {
    rd.state = "running"; /* state without a result */
  } else {
    reply->status = BATON__CTL_STATUS__CTL_REJECTED;
    reply->error = "package 3 is not completed";
    return;
  }
  reply->body_case = BATON__CTL_REPLY__BODY_RESULT;
  reply->result = &rd;
}

static void test_batonctl_cli_result(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_result);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "result", "1"));
  assert_int_equal(r.status, 0);
  assert_int_equal(r.out_len, 8); /* raw bytes, NUL included */
  assert_memory_equal(r.out, "res\0ult\n", 8);
  run_free(&r);

  char out_path[1024];
  snprintf(out_path, sizeof out_path, "%s/result.bin", f->dir);
  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "result", "1", "--out", out_path, "--json"));
  assert_int_equal(r.status, 0);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  assert_string_equal(json_string_value(json_object_get(doc, "result_b64")),
                      "cmVzAHVsdAo=");
  assert_int_equal(json_integer_value(json_object_get(doc, "id")), 1);
  json_decref(doc);
  FILE *fp = fopen(out_path, "rb");
  assert_non_null(fp);
  char buf[16];
  assert_int_equal(fread(buf, 1, sizeof buf, fp), 8);
  assert_memory_equal(buf, "res\0ult\n", 8);
  fclose(fp);
  unlink(out_path);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "result", "2"));
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "package 2 has no result: it is running, not completed");
  assert_int_equal(r.out_len, 0);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "result", "3"));
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "batonctl: package 3 is not completed");
  run_free(&r);
  fake_stop(f);
  fake_free(f);
}

static void test_batonctl_cli_broken_broker_exit_3(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  run_t r;
  fake_start_mode(f, reply_vendors, FAKE_CLOSE);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "vendor", "list"));
  fake_stop(f);
  assert_int_equal(r.status, 3);
  expect_contains(r.err, "closed the connection before replying");
  run_free(&r);

  fake_free(f);
  fake_start_mode(f, reply_vendors, FAKE_HANG);
  setenv("BATON_CTL_TIMEOUT", "500ms", 1);
  uint64_t t0 = now_ms();
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "stats"));
  uint64_t took = now_ms() - t0;
  unsetenv("BATON_CTL_TIMEOUT");
  fake_stop(f);
  assert_int_equal(r.status, 3);
  expect_contains(r.err, "no answer from the broker");
  assert_true(took >= 450 && took < 5000);
  run_free(&r);
  fake_free(f);
}

static void reply_bad_version(fake_t *f, const Baton__CtlRequest *req, int n,
                              Baton__CtlReply *reply) {
  reply_vendors(f, req, n, reply);
  reply->version = 2;
}

static void reply_wrong_body(fake_t *f, const Baton__CtlRequest *req, int n,
                             Baton__CtlReply *reply) {
  reply_submitted_42(f, req, n, reply); /* answers stats with Submitted */
}

static void test_batonctl_cli_bad_reply_exit_3(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  run_t r;
  fake_start(f, reply_bad_version);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "vendor", "list"));
  fake_stop(f);
  assert_int_equal(r.status, 3);
  expect_contains(r.err, "protocol version 2");
  run_free(&r);

  fake_free(f);
  fake_start(f, reply_wrong_body);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "stats"));
  fake_stop(f);
  assert_int_equal(r.status, 3);
  expect_contains(r.err, "unexpected reply");
  run_free(&r);
  fake_free(f);
}

static void reply_stats(fake_t *f, const Baton__CtlRequest *req, int n,
                        Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__StateCount a = BATON__STATE_COUNT__INIT, d = BATON__STATE_COUNT__INIT;
  static Baton__StateCount *vs[2] = {&a, &d};
  static Baton__Stats s;
  SRV_CHECK(req->body_case == BATON__CTL_REQUEST__BODY_STATS);
  baton__stats__init(&s);
  a.state = "active", a.has_count = 1, a.count = 3;
  d.state = "failed", d.has_count = 1, d.count = 1;
  s.has_queued = 1, s.queued = 10, s.has_running = 1, s.running = 2;
  s.has_completed = 1, s.completed = 99, s.has_waiting = 1, s.waiting = 4;
  s.n_vendors = 2, s.vendors = vs, s.has_agents = 1, s.agents = 5;
  reply->body_case = BATON__CTL_REPLY__BODY_STATS;
  reply->stats = &s;
}

static void test_batonctl_cli_stats_json(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_stats);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "stats", "--json"));
  fake_stop(f);
  assert_int_equal(r.status, 0);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  static const char *keys[] = {"queued", "assigned", "running", "completed",
                               "dead",   "cancelled", "waiting"};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
    assert_true(json_is_integer(json_object_get(doc, keys[k])));
  assert_int_equal(json_integer_value(json_object_get(doc, "queued")), 10);
  assert_int_equal(json_integer_value(json_object_get(doc, "assigned")), 0);
  json_t *v = json_object_get(doc, "vendors");
  assert_int_equal(json_integer_value(json_object_get(v, "active")), 3);
  assert_int_equal(json_integer_value(json_object_get(v, "failed")), 1);
  assert_int_equal(json_integer_value(json_object_get(doc, "agents")), 5);
  json_decref(doc);
  run_free(&r);
  fake_free(f);
}

static void reply_package(fake_t *f, const Baton__CtlRequest *req, int n,
                          Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__AttemptInfo a1 = BATON__ATTEMPT_INFO__INIT;
  static Baton__AttemptInfo *as[1] = {&a1};
  static Baton__HandoffInfo h1 = BATON__HANDOFF_INFO__INIT;
  static Baton__HandoffInfo *hs[1] = {&h1};
  static Baton__PackageInfo p = BATON__PACKAGE_INFO__INIT;
  static Baton__PackageInfo *ps[1] = {&p};
  static Baton__PackageList pl = BATON__PACKAGE_LIST__INIT;
  static char *regions[] = {"EU-DE"};
  p.has_id = 1, p.id = req->package_show->id, p.capability = "ocr";
  p.state = "running", p.has_priority = 1, p.priority = 3;
  p.has_deadline_at = 1, p.deadline_at = INT64_C(1763805600000);
  p.vendor = "beta", p.agent = "beta-1", p.has_attempt = 1, p.attempt = 2;
  p.has_progress = 1, p.progress = 40, p.n_regions = 1, p.regions = regions;
  a1.has_attempt = 1, a1.attempt = 1, a1.vendor = "acme", a1.agent = "acme-1";
  a1.has_started_at = 1, a1.started_at = INT64_C(1763805000000);
  a1.has_ended_at = 1, a1.ended_at = INT64_C(1763805060000);
  a1.outcome = "handed_off";
  h1.from_vendor = "acme", h1.to_vendor = "beta", h1.reason = "vendor-failed";
  h1.has_at = 1, h1.at = INT64_C(1763805060000);
  h1.has_checkpoint_bytes = 1, h1.checkpoint_bytes = 17;
  p.n_attempts = 1, p.attempts = as, p.n_handoffs = 1, p.handoffs = hs;
  pl.n_packages = 1, pl.packages = ps;
  reply->body_case = BATON__CTL_REPLY__BODY_PACKAGES;
  reply->packages = &pl;
}

static void test_batonctl_cli_package_show_json(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_package);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "--json", "package", "show", "9"));
  assert_int_equal(r.status, 0);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  static const char *fields[] = {
      "id",       "capability",     "state",    "priority",     "deadline",
      "vendor",   "agent",          "attempt",  "waiting_reason", "progress",
      "result_bytes", "attempts",   "handoffs", "key",          "submitted_at",
      "completed_at", "regions",    "certs",    "max_cost",     "prefer",
      "avoid",    "max_attempts",   "payload_bytes", "error",   "not_before",
  };
  for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
    if (json_object_get(doc, fields[k]) == NULL)
      fail_msg("package lacks field %s", fields[k]);
  assert_int_equal(json_integer_value(json_object_get(doc, "id")), 9);
  assert_string_equal(json_string_value(json_object_get(doc, "deadline")),
                      "2025-11-22T10:00:00.000Z");
  assert_true(json_is_null(json_object_get(doc, "waiting_reason")));
  assert_true(json_is_null(json_object_get(doc, "completed_at")));
  assert_int_equal(json_integer_value(json_object_get(doc, "progress")), 40);
  json_t *a = json_array_get(json_object_get(doc, "attempts"), 0);
  assert_non_null(a);
  static const char *afields[] = {"attempt", "vendor", "agent",
                                  "started", "ended",  "outcome"};
  for (size_t k = 0; k < sizeof afields / sizeof afields[0]; k++)
    assert_non_null(json_object_get(a, afields[k]));
  assert_string_equal(json_string_value(json_object_get(a, "started")),
                      "2025-11-22T09:50:00.000Z");
  json_t *h = json_array_get(json_object_get(doc, "handoffs"), 0);
  assert_non_null(h);
  assert_string_equal(json_string_value(json_object_get(h, "from_vendor")), "acme");
  assert_string_equal(json_string_value(json_object_get(h, "to_vendor")), "beta");
  assert_string_equal(json_string_value(json_object_get(h, "reason")),
                      "vendor-failed");
  assert_string_equal(json_string_value(json_object_get(h, "at")),
                      "2025-11-22T09:51:00.000Z");
  assert_int_equal(json_integer_value(json_object_get(h, "checkpoint_bytes")), 17);
  json_decref(doc);
  run_free(&r);

  /* The plain view lists the history too. */
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "package", "show", "9"));
  fake_stop(f);
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "capability ");
  expect_contains(r.out, "vendor-failed");
  expect_contains(r.out, "handed_off");
  run_free(&r);
  fake_free(f);
}

static void reply_vendor_created(fake_t *f, const Baton__CtlRequest *req, int n,
                                 Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__VendorCreated vc = BATON__VENDOR_CREATED__INIT;
  vc.has_id = 1;
  vc.id = 7;
  vc.name = req->vendor_add->name;
  vc.secret = "c2VjcmV0LXNob3duLW9uY2UtMDEyMzQ1Njc4OWFiY2Rl";
  reply->body_case = BATON__CTL_REPLY__BODY_VENDOR_CREATED;
  reply->vendor_created = &vc;
}

static void test_batonctl_cli_vendor_add(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_vendor_created);
  run_t r;
  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "vendor", "add", "acme", "--region", "EU-DE",
               "--model", "nearshore", "--capability", "ocr,translate",
               "--capability", "summarize", "--cert", "iso27001", "--capacity", "20",
               "--cost", "1.25", "--hours", "Mon-Fri 08:00-18:00 Europe/Berlin",
               "--weight", "2", "--json"));
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "id")), 7);
  assert_string_equal(json_string_value(json_object_get(doc, "name")), "acme");
  assert_string_equal(json_string_value(json_object_get(doc, "secret")),
                      "c2VjcmV0LXNob3duLW9uY2UtMDEyMzQ1Njc4OWFiY2Rl");
  json_decref(doc);
  const Baton__VendorAdd *va = f->reqs[0]->vendor_add;
  assert_string_equal(va->name, "acme");
  assert_string_equal(va->region, "EU-DE");
  assert_string_equal(va->model, "nearshore");
  assert_int_equal(va->n_capabilities, 3);
  assert_string_equal(va->capabilities[2], "summarize");
  assert_int_equal(va->n_certs, 1);
  assert_true(va->has_capacity && va->capacity == 20);
  assert_true(va->has_cost && va->cost == 1.25);
  assert_true(va->has_weight && va->weight == 2.0);
  assert_string_equal(va->hours, "Mon-Fri 08:00-18:00 Europe/Berlin");
  run_free(&r);

  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "vendor", "add", "beta", "--region", "IN",
               "--capability", "ocr"));
  fake_stop(f);
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "c2VjcmV0LXNob3duLW9uY2UtMDEyMzQ1Njc4OWFiY2Rl");
  expect_contains(r.out, "shown only this once");
  run_free(&r);
  fake_free(f);
}

static void test_batonctl_cli_tcp_sends_admin_token(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start_tcp(f, reply_stats);
  char ep[64];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", f->port);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", ep, "--admin-token", "s3cret", "stats"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "agents connected");
  run_free(&r);
  setenv("BATON_ADMIN_TOKEN", "from-env", 1);
  run_ctl(&r, NULL, 0, ARGV("--control", ep, "stats"));
  unsetenv("BATON_ADMIN_TOKEN");
  fake_stop(f);
  assert_int_equal(r.status, 0);
  assert_int_equal(f->n_req, 2);
  assert_string_equal(f->reqs[0]->admin_token, "s3cret");
  assert_string_equal(f->reqs[1]->admin_token, "from-env");
  run_free(&r);
  fake_free(f);
}

/* --- vendor drain|suspend|resume|fail, package cancel|retry|reassign, handoffs */

static void reply_vendor_state(fake_t *f, const Baton__CtlRequest *req, int n,
                               Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__VendorState vs;
  static char err[160];
  SRV_CHECK(req->body_case == BATON__CTL_REQUEST__BODY_VENDOR_OP);
  const Baton__VendorOp *m = req->vendor_op;
  if (strcmp(m->vendor, "nosuch") == 0) {
    snprintf(err, sizeof err, "no vendor %s", m->vendor);
    reply->status = BATON__CTL_STATUS__CTL_NOT_FOUND;
    reply->error = err;
    return;
  }
  baton__vendor_state__init(&vs);
  vs.has_id = 1;
  vs.id = 1;
  vs.name = "acme"; /* as the broker names it, whatever the client typed */
  switch (m->op) {
  case BATON__VENDOR_OP_KIND__VENDOR_OP_DRAIN:
    vs.state = "draining";
    vs.state_reason = "admin: drain";
    break;
  case BATON__VENDOR_OP_KIND__VENDOR_OP_SUSPEND:
    vs.state = "suspended";
    vs.state_reason = "admin: suspend";
    break;
  case BATON__VENDOR_OP_KIND__VENDOR_OP_RESUME:
    vs.state = "active";
    break;
  case BATON__VENDOR_OP_KIND__VENDOR_OP_FAIL:
    vs.state = "failed";
    vs.state_reason = "admin: fail";
    break;
  default:
    SRV_CHECK(!"unknown vendor op");
  }
  reply->body_case = BATON__CTL_REPLY__BODY_VENDOR_STATE;
  reply->vendor_state = &vs;
}

static void test_batonctl_cli_vendor_ops(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_vendor_state);
  static const struct {
    const char *cmd;
    Baton__VendorOpKind op;
    const char *state;
    const char *reason; /* NULL: null in JSON */
  } cases[] = {
      {"drain", BATON__VENDOR_OP_KIND__VENDOR_OP_DRAIN, "draining", "admin: drain"},
      {"suspend", BATON__VENDOR_OP_KIND__VENDOR_OP_SUSPEND, "suspended", "admin: suspend"},
      {"resume", BATON__VENDOR_OP_KIND__VENDOR_OP_RESUME, "active", NULL},
      {"fail", BATON__VENDOR_OP_KIND__VENDOR_OP_FAIL, "failed", "admin: fail"},
  };
  run_t r;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "--json", "vendor", cases[i].cmd,
                              i % 2 ? "1" : "acme"));
    if (r.status != 0)
      fail_msg("vendor %s: exit %d: %s", cases[i].cmd, r.status, r.err);
    json_error_t je;
    json_t *doc = json_loads(r.out, 0, &je); /* exactly one document */
    if (doc == NULL)
      fail_msg("not one JSON document: %s\n%s", je.text, r.out);
    assert_int_equal(json_integer_value(json_object_get(doc, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(doc, "name")), "acme");
    assert_string_equal(json_string_value(json_object_get(doc, "state")), cases[i].state);
    json_t *reason = json_object_get(doc, "state_reason");
    if (cases[i].reason)
      assert_string_equal(json_string_value(reason), cases[i].reason);
    else
      assert_true(json_is_null(reason));
    json_decref(doc);
    run_free(&r);
  }

  /* The plain answer is one line. */
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "vendor", "fail", "acme"));
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "vendor acme: failed\n");
  run_free(&r);

  /* Unknown vendor: the broker's text, exit 1; with --json one error document. */
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "vendor", "drain", "nosuch"));
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "batonctl: no vendor nosuch");
  assert_int_equal(r.out_len, 0);
  run_free(&r);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "--json", "vendor", "drain", "nosuch"));
  assert_int_equal(r.status, 1);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "exit_code")), 1);
  expect_contains(json_string_value(json_object_get(doc, "error")), "no vendor nosuch");
  json_decref(doc);
  run_free(&r);
  fake_stop(f);

  /* What went over the wire: the vendor as typed and the operation. */
  assert_int_equal(f->n_req, 7);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const Baton__CtlRequest *q = f->reqs[i];
    assert_int_equal(q->body_case, BATON__CTL_REQUEST__BODY_VENDOR_OP);
    assert_string_equal(q->vendor_op->vendor, i % 2 ? "1" : "acme");
    assert_true(q->vendor_op->has_op);
    assert_int_equal(q->vendor_op->op, cases[i].op);
  }
  fake_free(f);
}

static void reply_package_state(fake_t *f, const Baton__CtlRequest *req, int n,
                                Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__PackageState ps;
  SRV_CHECK(req->body_case == BATON__CTL_REQUEST__BODY_PACKAGE_OP);
  const Baton__PackageOp *m = req->package_op;
  if (m->id == 999) {
    reply->status = BATON__CTL_STATUS__CTL_NOT_FOUND;
    reply->error = "could not cancel package 999: no such open package";
    return;
  }
  if (m->id == 998) {
    reply->status = BATON__CTL_STATUS__CTL_REJECTED;
    reply->error = "could not retry package 998: not allowed in the current state";
    return;
  }
  baton__package_state__init(&ps);
  ps.has_id = 1;
  ps.id = m->id;
  ps.state = m->op == BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL ? "cancelled" : "queued";
  reply->body_case = BATON__CTL_REPLY__BODY_PACKAGE_STATE;
  reply->package_state = &ps;
}

static void test_batonctl_cli_package_ops(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_package_state);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "--json", "package", "cancel", "42"));
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  json_t *doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "id")), 42);
  assert_string_equal(json_string_value(json_object_get(doc, "state")), "cancelled");
  json_decref(doc);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "package", "retry", "43"));
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "package 43: queued\n");
  run_free(&r);

  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "package", "reassign", "44", "--to", "beta", "--json"));
  assert_int_equal(r.status, 0);
  doc = json_loads(r.out, 0, NULL);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "id")), 44);
  assert_string_equal(json_string_value(json_object_get(doc, "state")), "queued");
  json_decref(doc);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "package", "reassign", "45"));
  assert_int_equal(r.status, 0);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "package", "cancel", "999"));
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "batonctl: could not cancel package 999: no such open package");
  assert_int_equal(r.out_len, 0);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "package", "retry", "998"));
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "not allowed in the current state");
  run_free(&r);
  fake_stop(f);

  assert_int_equal(f->n_req, 6);
  static const struct {
    uint64_t id;
    Baton__PackageOpKind op;
    const char *to;
  } want[] = {
      {42, BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL, NULL},
      {43, BATON__PACKAGE_OP_KIND__PACKAGE_OP_RETRY, NULL},
      {44, BATON__PACKAGE_OP_KIND__PACKAGE_OP_REASSIGN, "beta"},
      {45, BATON__PACKAGE_OP_KIND__PACKAGE_OP_REASSIGN, NULL},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const Baton__PackageOp *m = f->reqs[i]->package_op;
    assert_int_equal(f->reqs[i]->body_case, BATON__CTL_REQUEST__BODY_PACKAGE_OP);
    assert_true(m->has_id && m->has_op);
    assert_int_equal(m->id, want[i].id);
    assert_int_equal(m->op, want[i].op);
    if (want[i].to)
      assert_string_equal(m->to, want[i].to);
    else
      assert_null(m->to);
  }
  fake_free(f);
}

static void reply_handoffs(fake_t *f, const Baton__CtlRequest *req, int n,
                           Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__HandoffInfo h1, h2;
  static Baton__HandoffInfo *hs[2] = {&h1, &h2};
  static Baton__HandoffList hl;
  SRV_CHECK(req->body_case == BATON__CTL_REQUEST__BODY_HANDOFFS);
  baton__handoff_list__init(&hl);
  reply->body_case = BATON__CTL_REPLY__BODY_HANDOFFS;
  reply->handoffs = &hl;
  if (req->handoffs->vendor != NULL && strcmp(req->handoffs->vendor, "quiet") == 0)
    return; /* nothing handed off */
  baton__handoff_info__init(&h1);
  baton__handoff_info__init(&h2);
  h1.has_package_id = 1, h1.package_id = 9, h1.has_attempt = 1, h1.attempt = 1;
  h1.from_vendor = "acme", h1.to_vendor = "beta", h1.reason = "vendor-failed";
  h1.has_at = 1, h1.at = INT64_C(1763805060000);
  h1.has_checkpoint_bytes = 1, h1.checkpoint_bytes = 17;
  h2.has_package_id = 1, h2.package_id = 11, h2.has_attempt = 2, h2.attempt = 2;
  h2.from_vendor = "beta", h2.reason = "admin"; /* not routed again yet */
  h2.has_at = 1, h2.at = INT64_C(1763805120000);
  hl.n_handoffs = 2;
  hl.handoffs = hs;
}

static void test_batonctl_cli_handoffs(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_handoffs);
  run_t r;
  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "handoffs", "--json", "--vendor", "acme", "--package",
               "9", "--since", "2025-11-22T10:00:00Z"));
  if (r.status != 0)
    fail_msg("exit %d: %s", r.status, r.err);
  json_error_t je;
  json_t *doc = json_loads(r.out, 0, &je);
  if (doc == NULL)
    fail_msg("not one JSON document: %s\n%s", je.text, r.out);
  assert_true(json_is_array(doc));
  assert_int_equal(json_array_size(doc), 2);
  static const char *fields[] = {"package", "attempt", "from_vendor", "to_vendor",
                                 "reason", "at", "checkpoint_bytes"};
  for (size_t i = 0; i < 2; i++)
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
      if (json_object_get(json_array_get(doc, i), fields[k]) == NULL)
        fail_msg("handoff %zu lacks field %s", i, fields[k]);
  json_t *h = json_array_get(doc, 0);
  assert_int_equal(json_integer_value(json_object_get(h, "package")), 9);
  assert_int_equal(json_integer_value(json_object_get(h, "attempt")), 1);
  assert_string_equal(json_string_value(json_object_get(h, "from_vendor")), "acme");
  assert_string_equal(json_string_value(json_object_get(h, "to_vendor")), "beta");
  assert_string_equal(json_string_value(json_object_get(h, "reason")), "vendor-failed");
  assert_string_equal(json_string_value(json_object_get(h, "at")),
                      "2025-11-22T09:51:00.000Z");
  assert_int_equal(json_integer_value(json_object_get(h, "checkpoint_bytes")), 17);
  h = json_array_get(doc, 1);
  assert_true(json_is_null(json_object_get(h, "to_vendor")));
  assert_int_equal(json_integer_value(json_object_get(h, "checkpoint_bytes")), 0);
  json_decref(doc);
  run_free(&r);

  /* --since as a duration means that long ago. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now_at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "handoffs", "--since", "2h"));
  assert_int_equal(r.status, 0);
  /* The table: a header and one row per handoff, "-" for no target yet. */
  expect_contains(r.out, "AT");
  expect_contains(r.out, "REASON");
  expect_contains(r.out, "2025-11-22T09:51:00.000Z");
  expect_contains(r.out, "vendor-failed");
  expect_contains(r.out, "  beta  -     admin  ");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "handoffs"));
  assert_int_equal(r.status, 0);
  run_free(&r);

  /* Nothing handed off: an empty array, or a line saying so. */
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "handoffs", "--vendor", "quiet", "--json"));
  assert_int_equal(r.status, 0);
  doc = json_loads(r.out, 0, NULL);
  assert_true(json_is_array(doc) && json_array_size(doc) == 0);
  json_decref(doc);
  run_free(&r);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "handoffs", "--vendor", "quiet"));
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "no handoffs\n");
  run_free(&r);
  fake_stop(f);

  assert_int_equal(f->n_req, 5);
  const Baton__HandoffQuery *q = f->reqs[0]->handoffs;
  assert_string_equal(q->vendor, "acme");
  assert_true(q->has_package_id);
  assert_int_equal(q->package_id, 9);
  assert_true(q->has_since_at);
  assert_int_equal(q->since_at, INT64_C(1763805600000));
  assert_false(q->has_limit);
  q = f->reqs[1]->handoffs;
  assert_null(q->vendor);
  assert_false(q->has_package_id);
  assert_true(q->has_since_at);
  assert_true(q->since_at >= now_at - 2 * 3600 * 1000 &&
              q->since_at <= now_at - 2 * 3600 * 1000 + 10000);
  q = f->reqs[2]->handoffs;
  assert_null(q->vendor);
  assert_false(q->has_package_id || q->has_since_at || q->has_limit);
  fake_free(f);
}

static void reply_history(fake_t *f, const Baton__CtlRequest *req, int n,
                          Baton__CtlReply *reply) {
  (void)f;
  (void)n;
  static Baton__AuditEvent e1 = BATON__AUDIT_EVENT__INIT, e2 = BATON__AUDIT_EVENT__INIT;
  static Baton__AuditEvent *es[2] = {&e1, &e2};
  static Baton__AuditList al = BATON__AUDIT_LIST__INIT;
  static Baton__VendorScore s1 = BATON__VENDOR_SCORE__INIT, s2 = BATON__VENDOR_SCORE__INIT;
  static Baton__VendorScore *ss[2] = {&s1, &s2};
  static Baton__ScorecardList sl = BATON__SCORECARD_LIST__INIT;
  bool empty = false;
  if (req->body_case == BATON__CTL_REQUEST__BODY_AUDIT) {
    empty = req->audit->vendor != NULL && strcmp(req->audit->vendor, "quiet") == 0;
    e1.has_id = 1, e1.id = 1, e1.has_at = 1, e1.at = INT64_C(1763805600000);
    e1.actor = "admin", e1.action = "vendor.add", e1.subject = "vendor:acme";
    e1.detail = "vendor_id=1 region=EU-DE";
    e2.has_id = 1, e2.id = 2, e2.has_at = 1, e2.at = INT64_C(1763805660000);
    e2.actor = "admin", e2.action = "package.cancel", e2.subject = "package:7";
    e2.detail = ""; /* detail is NOT NULL DEFAULT '' */
    al.n_events = empty ? 0 : 2;
    al.events = es;
    reply->body_case = BATON__CTL_REPLY__BODY_AUDIT;
    reply->audit = &al;
    return;
  }
  SRV_CHECK(req->body_case == BATON__CTL_REQUEST__BODY_SCORECARD);
  s1.vendor = "acme", s1.has_completed = 1, s1.completed = 3, s1.has_failed = 1;
  s1.failed = 1, s1.has_handed_off = 1, s1.handed_off = 2;
  s1.has_on_time_rate = 1, s1.on_time_rate = 0.5;
  s1.has_turnaround_p50_ms = 1, s1.turnaround_p50_ms = 1200.5;
  s1.has_turnaround_p95_ms = 1, s1.turnaround_p95_ms = 4000;
  s1.has_cost_total = 1, s1.cost_total = 7.5;
  s2.vendor = "beta", s2.has_completed = 1, s2.has_failed = 1, s2.failed = 4;
  s2.has_handed_off = 1, s2.has_cost_total = 1; /* nothing completed: nulls */
  sl.n_vendors = req->scorecard->vendor != NULL ? 1 : 2;
  sl.vendors = ss;
  reply->body_case = BATON__CTL_REPLY__BODY_SCORECARD;
  reply->scorecard = &sl;
}

static json_t *load_json(const run_t *r) {
  if (r->status != 0)
    fail_msg("exit %d: %s", r->status, r->err);
  json_error_t je;
  json_t *doc = json_loads(r->out, 0, &je); /* exactly one document */
  if (doc == NULL)
    fail_msg("not one JSON document: %s\n%s", je.text, r->out);
  return doc;
}

static void test_batonctl_cli_audit(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_history);
  run_t r;
  run_ctl(&r, NULL, 0,
          ARGV("--control", f->sock, "audit", "--json", "--since", "2025-11-22T10:00:00Z",
               "--package", "7", "--vendor", "acme", "--limit", "100000"));
  json_t *doc = load_json(&r);
  assert_true(json_is_array(doc));
  assert_int_equal(json_array_size(doc), 2);
  static const char *fields[] = {"at", "actor", "action", "subject", "detail"};
  for (size_t i = 0; i < 2; i++)
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
      if (json_object_get(json_array_get(doc, i), fields[k]) == NULL)
        fail_msg("event %zu lacks field %s", i, fields[k]);
  json_t *e = json_array_get(doc, 0);
  assert_string_equal(json_string_value(json_object_get(e, "at")),
                      "2025-11-22T10:00:00.000Z");
  assert_string_equal(json_string_value(json_object_get(e, "actor")), "admin");
  assert_string_equal(json_string_value(json_object_get(e, "action")), "vendor.add");
  assert_string_equal(json_string_value(json_object_get(e, "subject")), "vendor:acme");
  assert_string_equal(json_string_value(json_object_get(e, "detail")),
                      "vendor_id=1 region=EU-DE");
  e = json_array_get(doc, 1);
  assert_string_equal(json_string_value(json_object_get(e, "action")), "package.cancel");
  assert_string_equal(json_string_value(json_object_get(e, "detail")), ""); /* not null */
  json_decref(doc);
  run_free(&r);

  /* --since as a duration means that long ago. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now_at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "audit", "--since", "15m"));
  assert_int_equal(r.status, 0);
  /* The table: a header, one aligned row per event. */
  char *l1 = r.out, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
  assert_true(strncmp(l1, "AT", 2) == 0);
  assert_int_equal(column_of(l1, "ACTION"), column_of(l2, "vendor.add"));
  assert_int_equal(column_of(l1, "ACTION"), column_of(l3, "package.cancel"));
  assert_int_equal(column_of(l1, "SUBJECT"), column_of(l3, "package:7"));
  expect_contains(l2, "vendor_id=1 region=EU-DE\n");
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "audit", "--vendor", "quiet", "--json"));
  doc = load_json(&r);
  assert_true(json_is_array(doc) && json_array_size(doc) == 0);
  json_decref(doc);
  run_free(&r);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "audit", "--vendor", "quiet"));
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "no audit events\n");
  run_free(&r);
  fake_stop(f);

  assert_int_equal(f->n_req, 4);
  const Baton__AuditQuery *q = f->reqs[0]->audit;
  assert_int_equal(f->reqs[0]->body_case, BATON__CTL_REQUEST__BODY_AUDIT);
  assert_string_equal(q->vendor, "acme");
  assert_true(q->has_package_id && q->package_id == 7);
  assert_true(q->has_since_at && q->since_at == INT64_C(1763805600000));
  assert_true(q->has_limit && q->limit == 100000);
  q = f->reqs[1]->audit;
  assert_null(q->vendor);
  assert_false(q->has_package_id);
  assert_false(q->has_limit); /* the broker's default applies */
  assert_true(q->has_since_at);
  int64_t want = now_at - 15 * 60 * 1000;
  assert_true(q->since_at >= want - 5000 && q->since_at <= want + 5000);
  fake_free(f);
}

static void test_batonctl_cli_scorecard(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_history);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "--json", "scorecard"));
  json_t *doc = load_json(&r);
  assert_true(json_is_array(doc));
  assert_int_equal(json_array_size(doc), 2);
  static const char *fields[] = {"vendor",       "completed",         "failed",
                                 "handed_off",   "on_time_rate",      "turnaround_p50_ms",
                                 "turnaround_p95_ms", "cost_total"};
  for (size_t i = 0; i < 2; i++)
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
      if (json_object_get(json_array_get(doc, i), fields[k]) == NULL)
        fail_msg("score %zu lacks field %s", i, fields[k]);
  json_t *a = json_array_get(doc, 0);
  assert_string_equal(json_string_value(json_object_get(a, "vendor")), "acme");
  assert_int_equal(json_integer_value(json_object_get(a, "completed")), 3);
  assert_int_equal(json_integer_value(json_object_get(a, "failed")), 1);
  assert_int_equal(json_integer_value(json_object_get(a, "handed_off")), 2);
  assert_true(json_number_value(json_object_get(a, "on_time_rate")) == 0.5);
  assert_true(json_number_value(json_object_get(a, "turnaround_p50_ms")) == 1200.5);
  assert_true(json_number_value(json_object_get(a, "turnaround_p95_ms")) == 4000);
  assert_true(json_number_value(json_object_get(a, "cost_total")) == 7.5);
  json_t *b = json_array_get(doc, 1);
  assert_int_equal(json_integer_value(json_object_get(b, "completed")), 0);
  assert_int_equal(json_integer_value(json_object_get(b, "failed")), 4);
  assert_true(json_is_null(json_object_get(b, "on_time_rate")));
  assert_true(json_is_null(json_object_get(b, "turnaround_p50_ms")));
  assert_true(json_is_null(json_object_get(b, "turnaround_p95_ms")));
  assert_true(json_number_value(json_object_get(b, "cost_total")) == 0);
  json_decref(doc);
  run_free(&r);

  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "scorecard", "acme"));
  assert_int_equal(r.status, 0);
  char *l1 = r.out, *l2 = strchr(l1, '\n') + 1;
  assert_true(strncmp(l1, "VENDOR", 6) == 0);
  /* Right-aligned numbers end where their header ends. */
  long end = column_of(l1, "COST_TOTAL") + 10;
  assert_int_equal(column_of(l2, "7.50") + 4, end);
  expect_contains(l2, "50.0%");
  expect_contains(l2, "1200");
  assert_null(strstr(r.out, "beta")); /* one vendor asked, one row */
  run_free(&r);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "scorecard"));
  assert_int_equal(r.status, 0);
  expect_contains(r.out, "beta");
  run_free(&r);
  fake_stop(f);

  assert_int_equal(f->n_req, 3);
  assert_int_equal(f->reqs[0]->body_case, BATON__CTL_REQUEST__BODY_SCORECARD);
  assert_null(f->reqs[0]->scorecard->vendor);
  assert_string_equal(f->reqs[1]->scorecard->vendor, "acme");
  fake_free(f);
}

static void reply_no_vendor(fake_t *f, const Baton__CtlRequest *req, int n,
                            Baton__CtlReply *reply) {
  (void)f;
  (void)req;
  (void)n;
  reply->status = BATON__CTL_STATUS__CTL_NOT_FOUND;
  reply->error = "no vendor nope";
}

static void test_batonctl_cli_history_unknown_vendor_exit_1(void **state) {
  (void)state;
  fake_t *f = &g_fake;
  fake_start(f, reply_no_vendor);
  run_t r;
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "scorecard", "nope"));
  assert_int_equal(r.status, 1);
  expect_contains(r.err, "no vendor nope");
  assert_int_equal(r.out_len, 0);
  run_free(&r);
  run_ctl(&r, NULL, 0, ARGV("--control", f->sock, "--json", "audit", "--vendor", "nope"));
  assert_int_equal(r.status, 1);
  json_t *doc = json_loadb(r.out, r.out_len, 0, NULL);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "exit_code")), 1);
  json_decref(doc);
  run_free(&r);
  fake_stop(f);
  fake_free(f);
}

int main(void) {
  /* The caller's environment must not point tests at a real broker. */
  unsetenv("BATON_CONTROL");
  unsetenv("BATON_ADMIN_TOKEN");
  unsetenv("BATON_CTL_TIMEOUT");
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_batonctl_cli_help_exits_0, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_usage_errors_exit_2, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_unreachable_exit_3, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_submit_sends_package_spec, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_submit_flags_lists_and_json, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_not_found_exit_1, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_vendor_list_json_fields, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_vendor_list_table, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_batch_from_stdin, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_batch_bad_line_sends_nothing, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_batch_is_chunked, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_wait_polls_until_done, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_wait_timeout_and_unknown_exit_1, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_result, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_broken_broker_exit_3, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_bad_reply_exit_3, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_stats_json, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_package_show_json, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_vendor_add, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_tcp_sends_admin_token, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_vendor_ops, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_package_ops, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_handoffs, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_audit, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_scorecard, teardown_fake),
      cmocka_unit_test_teardown(test_batonctl_cli_history_unknown_vendor_exit_1,
                                teardown_fake),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

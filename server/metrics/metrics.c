/* The /metrics endpoint; see metrics.h. */
#include "metrics.h"

#include "bt_err.h"
#include "bt_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bt_met {
  uv_loop_t *loop;
  struct MHD_Daemon *d;
  uv_poll_t poll;
  uv_timer_t timer;
  int open_handles;
  bt_met_render_fn render;
  void *arg;
  void (*on_closed)(void *arg);
  void *closed_arg;
};

/* --- text format ------------------------------------------------------------ */

static void put(bt_met_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(bt_met_buf_t *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    b->cap = b->cap * 2 + (n > 0 ? (size_t)n : 0) + 256;
    b->s = realloc(b->s, b->cap);
    if (b->s == NULL)
      abort();
  }
}

void bt_met_family(bt_met_buf_t *b, const char *name, const char *type,
                   const char *help) {
  put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escape backslash, double quote and newline. */
static void put_label(bt_met_buf_t *b, const char *label, const char *value) {
  put(b, "%s=\"", label);
  for (const char *p = value ? value : ""; *p; p++) {
    if (*p == '\\' || *p == '"')
      put(b, "\\%c", *p);
    else if (*p == '\n')
      put(b, "\\n");
    else
      put(b, "%c", *p);
  }
  put(b, "\"");
}

static void put_value(bt_met_buf_t *b, double v) {
  if (isnan(v))
    put(b, " NaN\n");
  else if (isinf(v))
    put(b, v > 0 ? " +Inf\n" : " -Inf\n");
  else if (v == floor(v) && fabs(v) < 1e15)
    put(b, " %.0f\n", v);
  else
    put(b, " %.17g\n", v);
}

void bt_met_sample(bt_met_buf_t *b, const char *name, const char *label,
                   const char *label_value, double v) {
  put(b, "%s", name);
  if (label != NULL) {
    put(b, "{");
    put_label(b, label, label_value);
    put(b, "}");
  }
  put_value(b, v);
}

void bt_met_sample2(bt_met_buf_t *b, const char *name, const char *l1, const char *v1,
                    const char *l2, const char *v2, double v) {
  put(b, "%s{", name);
  put_label(b, l1, v1);
  put(b, ",");
  put_label(b, l2, v2);
  put(b, "}");
  put_value(b, v);
}

/* --- histograms ------------------------------------------------------------------ */

/* Upper bounds in seconds: from a local commit (~1 ms) to a stalled database. */
static const double bucket_le[BT_MET_N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,  0.1,    0.25,  0.5,  1,
                                                   2.5,   5,      10,    30};

void bt_met_hist_init(bt_met_hist_t *h) { memset(h, 0, sizeof *h); }

void bt_met_hist_observe(bt_met_hist_t *h, double seconds) {
  if (!(seconds > 0))
    seconds = 0; /* also NaN */
  size_t i = 0;
  while (i < BT_MET_N_BUCKETS && seconds > bucket_le[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum += seconds;
}

void bt_met_hist_render(bt_met_buf_t *b, const char *name, const char *help,
                        const bt_met_hist_t *h) {
  bt_met_family(b, name, "histogram", help);
  char bucket[128], le[32];
  snprintf(bucket, sizeof bucket, "%s_bucket", name);
  uint64_t cum = 0;
  for (size_t i = 0; i < BT_MET_N_BUCKETS; i++) {
    cum += h->counts[i];
    snprintf(le, sizeof le, "%g", bucket_le[i]);
    bt_met_sample(b, bucket, "le", le, (double)cum);
  }
  cum += h->counts[BT_MET_N_BUCKETS];
  bt_met_sample(b, bucket, "le", "+Inf", (double)cum);
  put(b, "%s_sum", name);
  put_value(b, h->sum);
  put(b, "%s_count", name);
  put_value(b, (double)h->count);
}

/* --- HTTP ---------------------------------------------------------------------- */

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
  bt_met_t *m = cls;
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  struct MHD_Response *r;
  unsigned status;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char msg[] = "only GET\n";
    r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
  } else if (strcmp(url, "/metrics") != 0) {
    static const char msg[] = "not found: try /metrics\n";
    r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    status = MHD_HTTP_NOT_FOUND;
  } else {
    bt_met_buf_t b = {NULL, 0, 0};
    put(&b, "%s", "");
    m->render(m->arg, &b);
    r = MHD_create_response_from_buffer(b.len, b.s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    status = MHD_HTTP_OK;
  }
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

static void arm_timer(bt_met_t *m);

static void run(bt_met_t *m) {
  MHD_run(m->d);
  arm_timer(m);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  run(h->data);
}

static void on_timer(uv_timer_t *t) { run(t->data); }

/* MHD's own timeouts (idle connections) need a call even without traffic. */
static void arm_timer(bt_met_t *m) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(m->d, &ms) == MHD_YES)
    uv_timer_start(&m->timer, on_timer, ms, 0);
  else
    uv_timer_stop(&m->timer);
}

static int parse_hostport(const char *s, struct sockaddr_in *sa) {
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s)
    return BT_EINVAL;
  char host[64];
  size_t hl = (size_t)(colon - s);
  if (hl >= sizeof host)
    return BT_EINVAL;
  memcpy(host, s, hl);
  host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    return BT_EINVAL;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
    return BT_EINVAL;
  return 0;
}

int bt_met_new(uv_loop_t *loop, const char *hostport, bt_met_render_fn render, void *arg,
               bt_met_t **out) {
  struct sockaddr_in sa;
  if (parse_hostport(hostport, &sa) != 0) {
    bt_log_error("metrics address must be a numeric HOST:PORT", "metrics=%s",
                 BT_Q(hostport));
    return BT_ECONFIG;
  }
  bt_met_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    abort();
  m->loop = loop;
  m->render = render;
  m->arg = arg;
  /* No internal thread: MHD_USE_EPOLL gives one fd for the loop to watch. */
  m->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, m,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
  if (m->d == NULL) {
    bt_log_error("could not serve metrics", "metrics=%s error=%s", BT_Q(hostport),
                 strerror(errno));
    free(m);
    return BT_ECONFIG;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
  uv_poll_init(loop, &m->poll, info->epoll_fd);
  m->poll.data = m;
  uv_poll_start(&m->poll, UV_READABLE, on_readable);
  uv_timer_init(loop, &m->timer);
  m->timer.data = m;
  m->open_handles = 2;
  bt_log_info("serving metrics", "url=http://%s/metrics", hostport);
  *out = m;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  bt_met_t *m = h->data;
  if (--m->open_handles > 0)
    return;
  /* Both handles are closed: the epoll fd may go with the daemon. */
  MHD_stop_daemon(m->d);
  void (*cb)(void *) = m->on_closed;
  void *arg = m->closed_arg;
  free(m);
  if (cb)
    cb(arg);
}

void bt_met_close(bt_met_t *m, void (*cb)(void *arg), void *arg) {
  m->on_closed = cb;
  m->closed_arg = arg;
  uv_poll_stop(&m->poll);
  uv_timer_stop(&m->timer);
  uv_close((uv_handle_t *)&m->poll, on_closed);
  uv_close((uv_handle_t *)&m->timer, on_closed);
}

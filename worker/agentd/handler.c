/*
 * The handler process runner (see handler.h for the protocol). Owns one child
 * process, its four pipes, one timer, the collected stdout and the checkpoint
 * temp file. Never talks to the broker: it reports to its owner through the
 * callbacks. Never blocks the loop except for writing the checkpoint-in file
 * (local, bounded by the message limit).
 */
#include "handler.h"

#include "bt_log.h"
#include "bt_time.h"
#include "fd3.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* After the process exits, how long its pipes may stay open (a background
 * grandchild holding stdout) before the rest of its group is killed. */
#define LINGER_MS 2000
#define ERR_LINE_MAX 200
#define READ_CHUNK 65536

typedef enum {
  H_RUNNING,     /* child alive: payload going to stdin; reading stdout, stderr, fd 3 */
  H_TERMINATING, /* SIGTERM sent (cancel or hand back); SIGKILL when the timer fires */
  H_EXITED,  /* child reaped: reading its pipes to EOF, bounded by the linger timer */
  H_CLOSING, /* handles closing: on_done fires after the last close callback */
  H_DONE,    /* on_done fired (or start failed): only freeing remains */
} hstate_t;

struct bt_handler {
  uv_loop_t *loop;
  hstate_t state;
  uv_process_t proc;
  uv_pipe_t in, out, err, fd3;
  uv_timer_t timer;
  uv_write_t wreq;
  int pending_closes;
  int in_closed;
  int out_eof, err_eof, fd3_eof;
  int start_failed; /* no callback fires; the last close callback frees */
  int pid;
  uint64_t package_id;
  uint32_t attempt;
  char *capability;
  uint8_t *payload;
  size_t payload_len;
  char ckpt_path[512]; /* BATON_CHECKPOINT_IN, "" when none */
  size_t max_output, max_checkpoint;
  uint64_t kill_grace_ms;
  uint8_t *out_buf;
  size_t out_len, out_cap;
  int too_large;
  char err_cur[ERR_LINE_MAX + 1]; /* the stderr line being read */
  size_t err_cur_len;
  char err_last[ERR_LINE_MAX + 1]; /* the last non-empty stderr line */
  bt_fd3_lines_t lines;
  uint8_t *ckpt_buf;
  int64_t exit_status;
  int term_signal;
  bt_agent_outcome_t stop_reason; /* 0: not stopped */
  bt_agent_outcome_t outcome;     /* the result, set by finish() */
  int exit_code;
  bt_handler_callbacks_t cb;
  void *user;
  char error[ERR_LINE_MAX + 128];
  char readbuf[READ_CHUNK];
};

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    abort();
  return p;
}

static const char *outcome_name(bt_agent_outcome_t o) {
  switch (o) {
  case BT_AGENT_COMPLETED:
    return "completed";
  case BT_AGENT_FAILED:
    return "failed";
  case BT_AGENT_TRANSIENT:
    return "transient";
  case BT_AGENT_CANCELLED:
    return "cancelled";
  case BT_AGENT_HANDED_BACK:
    return "handed_back";
  }
  return "unknown";
}

/* ---- closing ------------------------------------------------------------- */

static void on_closed(uv_handle_t *handle) {
  bt_handler_t *h = handle->data;
  /* stdin closes early (after the payload): only the last close after finish()
   * ends the handler */
  if (--h->pending_closes > 0 || h->state != H_CLOSING)
    return;
  if (h->start_failed) {
    bt_handler_free(h);
    return;
  }
  h->state = H_DONE;
  int keep_output = !h->too_large && h->outcome != BT_AGENT_CANCELLED &&
                    h->outcome != BT_AGENT_HANDED_BACK;
  bt_handler_result_t r = {
      .outcome = h->outcome,
      .output = keep_output ? h->out_buf : NULL,
      .output_len = keep_output ? h->out_len : 0,
      .exit_code = h->exit_code,
      .error = h->error[0] ? h->error : NULL,
  };
  h->cb.on_done(h, &r, h->user); /* may free h */
}

static void close_handle(bt_handler_t *h, uv_handle_t *handle) {
  if (uv_is_closing(handle))
    return;
  h->pending_closes++;
  uv_close(handle, on_closed);
}

static void close_all(bt_handler_t *h) {
  h->state = H_CLOSING;
  h->in_closed = 1;
  close_handle(h, (uv_handle_t *)&h->in);
  close_handle(h, (uv_handle_t *)&h->out);
  close_handle(h, (uv_handle_t *)&h->err);
  close_handle(h, (uv_handle_t *)&h->fd3);
  close_handle(h, (uv_handle_t *)&h->timer);
  close_handle(h, (uv_handle_t *)&h->proc);
}

static void remove_checkpoint_file(bt_handler_t *h) {
  if (h->ckpt_path[0] != '\0') {
    unlink(h->ckpt_path);
    h->ckpt_path[0] = '\0';
  }
}

/* The process is gone and its pipes are drained (or lingered too long): decide
 * the outcome and close everything. */
static void finish(bt_handler_t *h) {
  const char *why = NULL;
  char what[64] = "";
  remove_checkpoint_file(h);
  h->exit_code = h->term_signal ? 128 + h->term_signal : (int)h->exit_status;
  if (h->term_signal)
    snprintf(what, sizeof what, "killed by signal %d", h->term_signal);
  else
    snprintf(what, sizeof what, "exit %d", (int)h->exit_status);
  if (h->stop_reason != 0) {
    /* a stopped handler did not finish its work, whatever it exited with */
    h->outcome = h->stop_reason;
    why = h->stop_reason == BT_AGENT_CANCELLED ? "cancelled" : "handed back";
    snprintf(h->error, sizeof h->error, "%s (%s)", why, what);
  } else if (h->too_large) {
    h->outcome = BT_AGENT_FAILED;
    /* Say which limit: the operator raises --max-result-bytes (and the broker's
     * max_payload_bytes) or moves large results out of band. */
    snprintf(h->error, sizeof h->error, "result too large (over %zu bytes)", h->max_output);
  } else if (!h->term_signal && h->exit_status == 0) {
    h->outcome = BT_AGENT_COMPLETED;
    h->error[0] = '\0';
  } else {
    h->outcome =
        !h->term_signal && h->exit_status == 75 ? BT_AGENT_TRANSIENT : BT_AGENT_FAILED;
    if (h->err_last[0] != '\0')
      snprintf(h->error, sizeof h->error, "%s: %s", what, h->err_last);
    else
      snprintf(h->error, sizeof h->error, "%s", what);
  }
  bt_log_info("handler finished",
              "package=%" PRIu64 " attempt=%" PRIu32 " pid=%d outcome=%s exit_code=%d "
              "output_bytes=%zu error=%s",
              h->package_id, h->attempt, h->pid, outcome_name(h->outcome), h->exit_code,
              h->out_len, BT_Q(h->error));
  close_all(h);
}

static void maybe_finish(bt_handler_t *h) {
  if (h->state == H_EXITED && h->out_eof && h->err_eof && h->fd3_eof)
    finish(h);
}

/* ---- events ---------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  bt_handler_t *h = t->data;
  switch (h->state) {
  case H_TERMINATING:
    bt_log_warn("handler ignored SIGTERM; killing it",
                "package=%" PRIu64 " attempt=%" PRIu32 " pid=%d", h->package_id,
                h->attempt, h->pid);
    uv_kill(-h->pid, SIGKILL);
    break;
  case H_EXITED:
    /* Something the handler left behind still holds its pipes open. */
    bt_log_warn("handler exited but its pipes stayed open; killing its group",
                "package=%" PRIu64 " attempt=%" PRIu32 " pid=%d", h->package_id,
                h->attempt, h->pid);
    uv_kill(-h->pid, SIGKILL);
    finish(h);
    break;
  default:
    break;
  }
}

static void on_process_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  bt_handler_t *h = p->data;
  h->exit_status = exit_status;
  h->term_signal = term_signal;
  if (h->state != H_RUNNING && h->state != H_TERMINATING)
    return;
  h->state = H_EXITED;
  uv_timer_start(&h->timer, on_timer, LINGER_MS, 0);
  maybe_finish(h);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  bt_handler_t *h = handle->data;
  (void)suggested;
  /* one buffer is enough: libuv reads one stream at a time and each read is
   * consumed before the next allocation */
  *buf = uv_buf_init(h->readbuf, sizeof h->readbuf);
}

static void on_eof(bt_handler_t *h, uv_stream_t *s, int *eof) {
  uv_read_stop(s);
  *eof = 1;
  maybe_finish(h);
}

static void on_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  bt_handler_t *h = s->data;
  if (n < 0) {
    on_eof(h, s, &h->out_eof);
    return;
  }
  if (n == 0 || h->too_large)
    return; /* beyond the cap: keep reading so the handler never blocks */
  if (h->out_len + (size_t)n > h->max_output) {
    h->too_large = 1;
    free(h->out_buf);
    h->out_buf = NULL;
    return;
  }
  if (h->out_len + (size_t)n > h->out_cap) {
    size_t cap = h->out_cap ? h->out_cap : 4096;
    while (cap < h->out_len + (size_t)n)
      cap *= 2;
    h->out_buf = realloc(h->out_buf, cap);
    if (h->out_buf == NULL)
      abort();
    h->out_cap = cap;
  }
  memcpy(h->out_buf + h->out_len, buf->base, (size_t)n);
  h->out_len += (size_t)n;
}

static void on_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  bt_handler_t *h = s->data;
  if (n < 0) {
    if (h->err_cur_len > 0) {
      memcpy(h->err_last, h->err_cur, h->err_cur_len);
      h->err_last[h->err_cur_len] = '\0';
    }
    on_eof(h, s, &h->err_eof);
    return;
  }
  /* pass through as written, and keep the last line for the error text */
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(STDERR_FILENO, buf->base + off, (size_t)(n - off));
    if (w <= 0)
      break;
    off += w;
  }
  for (ssize_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)buf->base[i];
    if (c == '\n') {
      if (h->err_cur_len > 0) {
        memcpy(h->err_last, h->err_cur, h->err_cur_len);
        h->err_last[h->err_cur_len] = '\0';
      }
      h->err_cur_len = 0;
    } else if (h->err_cur_len < ERR_LINE_MAX && c != '\r') {
      /* printable ASCII only: the text travels in a protobuf string and a log */
      h->err_cur[h->err_cur_len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
  }
}

static void on_fd3_line(void *user, const char *line, size_t len) {
  bt_handler_t *h = user;
  bt_fd3_msg_t msg;
  const char *why = NULL;
  if (line == NULL) {
    bt_log_warn("handler fd 3 line too long; ignored",
                "package=%" PRIu64 " attempt=%" PRIu32, h->package_id, h->attempt);
    return;
  }
  if (bt_fd3_parse_line(line, len, h->ckpt_buf, h->max_checkpoint, &msg, &why) != 0) {
    char head[41];
    size_t k = 0;
    for (; k < len && k < sizeof head - 1; k++)
      head[k] = line[k] >= 0x20 && line[k] < 0x7f ? line[k] : '?';
    head[k] = '\0';
    bt_log_warn("malformed handler fd 3 line; ignored",
                "package=%" PRIu64 " attempt=%" PRIu32 " reason=%s line=%s",
                h->package_id, h->attempt, BT_Q(why), BT_Q(head));
    return;
  }
  /* A handler being handed back may still write a last checkpoint (e.g. from a
   * TERM trap): the next vendor continues from it. A cancelled one's is moot. */
  if (h->cb.on_progress == NULL || h->stop_reason == BT_AGENT_CANCELLED)
    return;
  if (msg.kind == BT_FD3_PROGRESS)
    h->cb.on_progress(h, msg.percent, NULL, 0, h->user);
  else
    h->cb.on_progress(h, -1, h->ckpt_buf, msg.len, h->user);
}

static void on_fd3_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  bt_handler_t *h = s->data;
  if (n < 0) {
    bt_fd3_lines_finish(&h->lines, on_fd3_line, h);
    on_eof(h, s, &h->fd3_eof);
    return;
  }
  bt_fd3_lines_feed(&h->lines, buf->base, (size_t)n, on_fd3_line, h);
}

static void on_written(uv_write_t *req, int status) {
  bt_handler_t *h = req->data;
  /* EPIPE: the handler exited or closed stdin without reading it all. That is
   * its business; its exit status tells the outcome. */
  if (status < 0 && status != UV_EPIPE && status != UV_ECANCELED)
    bt_log_warn("could not write payload to handler",
                "package=%" PRIu64 " attempt=%" PRIu32 " error=%s", h->package_id,
                h->attempt, BT_Q(uv_strerror(status)));
  free(h->payload);
  h->payload = NULL;
  if (!h->in_closed) {
    h->in_closed = 1;
    close_handle(h, (uv_handle_t *)&h->in);
  }
}

/* ---- start ----------------------------------------------------------------- */

static int write_checkpoint_file(bt_handler_t *h, const bt_handler_spec_t *spec) {
  const char *dir = spec->tmp_dir ? spec->tmp_dir : getenv("TMPDIR");
  if (dir == NULL || *dir == '\0')
    dir = "/tmp";
  int n = snprintf(h->ckpt_path, sizeof h->ckpt_path, "%s/baton-ckpt-XXXXXX", dir);
  if (n < 0 || (size_t)n >= sizeof h->ckpt_path)
    return -ENAMETOOLONG;
  int fd = mkstemp(h->ckpt_path); /* mode 0600: the checkpoint is private */
  if (fd < 0) {
    h->ckpt_path[0] = '\0';
    return -errno;
  }
  size_t off = 0;
  while (off < spec->checkpoint_len) {
    ssize_t w = write(fd, spec->checkpoint + off, spec->checkpoint_len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int rv = -errno;
      close(fd);
      remove_checkpoint_file(h);
      return rv;
    }
    off += (size_t)w;
  }
  close(fd);
  return 0;
}

static int skip_env(const char *e) {
  static const char *const own[] = {
      "BATON_PACKAGE_ID=", "BATON_ATTEMPT=",       "BATON_CAPABILITY=",
      "BATON_DEADLINE=",   "BATON_CHECKPOINT_IN=", "BATON_SECRET="};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
    if (strncmp(e, own[i], strlen(own[i])) == 0)
      return 1;
  }
  return 0;
}

/* The agent's environment without its secret and with the task's variables.
 * Returns an owned NULL-terminated array; *extra holds the strings we made. */
static char **build_env(const bt_handler_t *h, const bt_handler_spec_t *spec,
                        char *extra[5]) {
  size_t n = 0, k = 0;
  while (environ[n] != NULL)
    n++;
  char **env = xmalloc((n + 6) * sizeof *env);
  for (size_t i = 0; i < n; i++) {
    if (!skip_env(environ[i]))
      env[k++] = environ[i];
  }
  char deadline[40] = "";
  if (spec->deadline_at > 0)
    bt_time_format(spec->deadline_at, deadline, sizeof deadline);
  size_t cap_len = strlen(spec->capability) + 32;
  extra[0] = xmalloc(48);
  snprintf(extra[0], 48, "BATON_PACKAGE_ID=%" PRIu64, spec->package_id);
  extra[1] = xmalloc(32);
  snprintf(extra[1], 32, "BATON_ATTEMPT=%" PRIu32, spec->attempt);
  extra[2] = xmalloc(cap_len);
  snprintf(extra[2], cap_len, "BATON_CAPABILITY=%s", spec->capability);
  extra[3] = xmalloc(64);
  snprintf(extra[3], 64, "BATON_DEADLINE=%s", deadline);
  extra[4] = NULL;
  if (h->ckpt_path[0] != '\0') {
    size_t l = strlen(h->ckpt_path) + 32;
    extra[4] = xmalloc(l);
    snprintf(extra[4], l, "BATON_CHECKPOINT_IN=%s", h->ckpt_path);
  }
  for (int i = 0; i < 5; i++) {
    if (extra[i] != NULL)
      env[k++] = extra[i];
  }
  env[k] = NULL;
  return env;
}

int bt_handler_start(uv_loop_t *loop, const bt_handler_spec_t *spec,
                     const bt_handler_callbacks_t *cbs, void *user,
                     bt_handler_t **out) {
  int rv;
  bt_handler_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    abort();
  h->loop = loop;
  h->package_id = spec->package_id;
  h->attempt = spec->attempt;
  h->capability = strdup(spec->capability);
  h->max_output = spec->max_output;
  h->max_checkpoint = spec->max_checkpoint;
  h->kill_grace_ms = spec->kill_grace_ms;
  h->cb = *cbs;
  h->user = user;
  h->ckpt_buf = xmalloc(spec->max_checkpoint);
  bt_fd3_lines_init(&h->lines, bt_fd3_max_line(spec->max_checkpoint));
  if (spec->checkpoint != NULL && spec->checkpoint_len > 0 &&
      (rv = write_checkpoint_file(h, spec)) != 0) {
    bt_log_error("could not write the checkpoint file for a handler",
                 "package=%" PRIu64 " error=%s", spec->package_id,
                 BT_Q(uv_strerror(rv)));
    h->state = H_DONE;
    bt_handler_free(h);
    return rv;
  }

  uv_pipe_init(loop, &h->in, 0);
  uv_pipe_init(loop, &h->out, 0);
  uv_pipe_init(loop, &h->err, 0);
  uv_pipe_init(loop, &h->fd3, 0);
  uv_timer_init(loop, &h->timer);
  h->in.data = h->out.data = h->err.data = h->fd3.data = h->timer.data = h;
  h->proc.data = h->wreq.data = h;

  char *extra[5] = {0};
  char **env = build_env(h, spec, extra);
  char *args[] = {"/bin/sh", "-c", (char *)spec->command, NULL};
  uv_stdio_container_t stdio[4];
  stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
  stdio[0].data.stream = (uv_stream_t *)&h->in;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&h->out;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&h->err;
  stdio[3].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[3].data.stream = (uv_stream_t *)&h->fd3;
  uv_process_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.file = "/bin/sh";
  opts.args = args;
  opts.env = env;
  opts.exit_cb = on_process_exit;
  opts.stdio = stdio;
  opts.stdio_count = 4;
  /* its own session and process group: see handler.h */
  opts.flags = UV_PROCESS_DETACHED;
  rv = uv_spawn(loop, &h->proc, &opts);
  for (int i = 0; i < 5; i++)
    free(extra[i]);
  free(env);
  if (rv != 0) {
    bt_log_error("could not start handler", "package=%" PRIu64 " error=%s",
                 spec->package_id, BT_Q(uv_strerror(rv)));
    remove_checkpoint_file(h);
    h->start_failed = 1; /* the struct is freed by the last close callback */
    close_all(h);
    return rv;
  }
  h->pid = h->proc.pid;
  h->state = H_RUNNING;
  bt_log_info("handler started",
              "package=%" PRIu64 " attempt=%" PRIu32 " capability=%s pid=%d",
              h->package_id, h->attempt, BT_Q(h->capability), h->pid);
  uv_read_start((uv_stream_t *)&h->out, on_alloc, on_out_read);
  uv_read_start((uv_stream_t *)&h->err, on_alloc, on_err_read);
  uv_read_start((uv_stream_t *)&h->fd3, on_alloc, on_fd3_read);
  if (spec->payload_len > 0) {
    h->payload = xmalloc(spec->payload_len);
    memcpy(h->payload, spec->payload, spec->payload_len);
    h->payload_len = spec->payload_len;
    uv_buf_t b = uv_buf_init((char *)h->payload, (unsigned)h->payload_len);
    rv = uv_write(&h->wreq, (uv_stream_t *)&h->in, &b, 1, on_written);
    if (rv != 0)
      on_written(&h->wreq, rv);
  } else {
    h->in_closed = 1;
    close_handle(h, (uv_handle_t *)&h->in); /* EOF right away */
  }
  *out = h;
  return 0;
}

/* ---- control --------------------------------------------------------------- */

void bt_handler_stop(bt_handler_t *h, bt_agent_outcome_t reason) {
  if (h->state != H_RUNNING)
    return; /* already stopping, or it exited on its own: its result stands */
  h->stop_reason = reason;
  h->state = H_TERMINATING;
  bt_log_info(
      "stopping handler",
      "package=%" PRIu64 " attempt=%" PRIu32 " pid=%d reason=%s grace_ms=%" PRIu64,
      h->package_id, h->attempt, h->pid, outcome_name(reason), h->kill_grace_ms);
  if (h->kill_grace_ms == 0) {
    uv_kill(-h->pid, SIGKILL);
    return;
  }
  uv_kill(-h->pid, SIGTERM);
  uv_timer_start(&h->timer, on_timer, h->kill_grace_ms, 0);
}

void bt_handler_free(bt_handler_t *h) {
  if (h == NULL)
    return;
  if (h->state != H_DONE && !h->start_failed) {
    fprintf(stderr, "baton-agent: bt_handler_free before on_done\n");
    abort();
  }
  remove_checkpoint_file(h);
  bt_fd3_lines_close(&h->lines);
  free(h->ckpt_buf);
  free(h->out_buf);
  free(h->payload);
  free(h->capability);
  free(h);
}

uint64_t bt_handler_package_id(const bt_handler_t *h) { return h->package_id; }
uint32_t bt_handler_attempt(const bt_handler_t *h) { return h->attempt; }
int bt_handler_pid(const bt_handler_t *h) { return h->pid; }

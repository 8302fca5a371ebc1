/*
 * `wait`: polls the broker with WaitQuery every POLL_MS over one connection
 * until no package of the set is pending, the timeout passes, or an id turns
 * out not to exist. Progress goes to stderr: a bar redrawn in place on a
 * terminal, a plain line every PLAIN_EVERY_MS otherwise (logs, CI), so stdout
 * keeps only the final answer.
 */
#include "commands.h"
#include "output.h"

#include "bt_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 200
#define PLAIN_EVERY_MS 2000
#define BAR_WIDTH 30

typedef struct {
  bool tty;
  bool drawn;            /* a bar is on the terminal and must be cleared */
  uint64_t start_ms;
  uint64_t start_done;   /* done count at the first answer: the rate base */
  bool have_start;
  uint64_t last_plain_ms;
} progress_t;

static void sleep_ms(uint64_t ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                        .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void progress_update(progress_t *pg, const Baton__WaitStatus *w,
                            uint64_t now_ms) {
  uint64_t done = w->completed + w->dead + w->cancelled;
  uint64_t total = done + w->pending;
  if (!pg->have_start) {
    pg->have_start = true;
    pg->start_ms = now_ms;
    pg->start_done = done;
    pg->last_plain_ms = now_ms;
  }
  double secs = (double)(now_ms - pg->start_ms) / 1000.0;
  double rate = secs >= 0.5 ? (double)(done - pg->start_done) / secs : 0.0;
  char eta[32] = "-";
  if (rate > 0.0)
    bt_duration_format((uint64_t)((double)w->pending / rate * 1000.0), eta,
                       sizeof eta);
  if (pg->tty) {
    int fill = total ? (int)((double)done / (double)total * BAR_WIDTH) : 0;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
      bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %" PRIu64 "/%" PRIu64 "  %.1f/s  eta %s\033[K", bar,
            done, total, rate, eta);
    fflush(stderr);
    pg->drawn = true;
  } else if (now_ms - pg->last_plain_ms >= PLAIN_EVERY_MS) {
    fprintf(stderr,
            "batonctl: wait: %" PRIu64 "/%" PRIu64 " done (%" PRIu64
            " dead, %" PRIu64 " cancelled), %" PRIu64 " pending, %.1f/s, eta %s\n",
            done, total, w->dead, w->cancelled, w->pending, rate, eta);
    pg->last_plain_ms = now_ms;
  }
}

static void progress_clear(progress_t *pg) {
  if (pg->drawn) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    pg->drawn = false;
  }
}

static void print_status(const bt_cli_t *cli, const Baton__WaitStatus *w) {
  if (cli->json) {
    json_t *o = json_object();
    bt_cli_json_set(o, "completed", bt_cli_json_u64(w->completed));
    bt_cli_json_set(o, "dead", bt_cli_json_u64(w->dead));
    bt_cli_json_set(o, "cancelled", bt_cli_json_u64(w->cancelled));
    bt_cli_json_set(o, "pending", bt_cli_json_u64(w->pending));
    bt_cli_json_set(o, "unknown", bt_cli_json_u64(w->unknown));
    bt_cli_json_print(o);
    return;
  }
  static const bt_cli_col_t cols[] = {
      {"COMPLETED", true}, {"DEAD", true},    {"CANCELLED", true},
      {"PENDING", true},   {"UNKNOWN", true},
  };
  bt_cli_table_t t;
  bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
  bt_cli_table_cellf(&t, "%" PRIu64, w->completed);
  bt_cli_table_cellf(&t, "%" PRIu64, w->dead);
  bt_cli_table_cellf(&t, "%" PRIu64, w->cancelled);
  bt_cli_table_cellf(&t, "%" PRIu64, w->pending);
  bt_cli_table_cellf(&t, "%" PRIu64, w->unknown);
  bt_cli_table_print(&t);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int bt_cli_cmd_wait(bt_cli_t *cli, const bt_cli_args_t *args) {
  bool all = bt_cli_arg(args, "all") != NULL;
  const char *tv = bt_cli_arg(args, "timeout");
  uint64_t timeout_ms = 0;
  if (all && args->n_pos > 0)
    return bt_cli_usage_error(args->cmd, "give package ids or --all, not both");
  if (!all && args->n_pos == 0)
    return bt_cli_usage_error(args->cmd, "missing package ids (or --all)");
  if (tv != NULL && (bt_parse_duration(tv, &timeout_ms) != 0 || timeout_ms == 0))
    return bt_cli_usage_error(args->cmd,
                              "bad --timeout \"%s\": expected a duration such "
                              "as 90s, 15m or 2h",
                              tv);

  uint64_t *ids = NULL;
  size_t n = 0;
  if (args->n_pos > 0) {
    ids = calloc(args->n_pos, sizeof *ids);
    if (ids == NULL)
      abort();
    for (size_t i = 0; i < args->n_pos; i++) {
      int rc = bt_cli_arg_id(args, args->pos[i], "package id", &ids[i]);
      if (rc != 0) {
        free(ids);
        return rc;
      }
    }
    /* The same id twice would be counted twice by the broker. */
    qsort(ids, args->n_pos, sizeof *ids, cmp_u64);
    for (size_t i = 0; i < args->n_pos; i++)
      if (n == 0 || ids[n - 1] != ids[i])
        ids[n++] = ids[i];
  }

  Baton__WaitQuery q = BATON__WAIT_QUERY__INIT;
  q.n_ids = n;
  q.ids = ids;
  q.has_all = all;
  q.all = all;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_WAIT;
  req.wait = &q;

  progress_t pg;
  memset(&pg, 0, sizeof pg);
  pg.tty = isatty(STDERR_FILENO);
  uint64_t start = bt_mono_ms();
  int rc;
  for (;;) {
    Baton__CtlReply *reply;
    rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_WAIT, NULL,
                          &reply);
    if (rc != BT_CLI_EXIT_OK) {
      progress_clear(&pg);
      break;
    }
    const Baton__WaitStatus *w = reply->wait;
    uint64_t now = bt_mono_ms();
    bool timed_out = timeout_ms > 0 && now - start >= timeout_ms;
    if (w->unknown > 0 || w->pending == 0 || timed_out) {
      progress_clear(&pg);
      if (w->unknown > 0) {
        bt_cli_errorf("%" PRIu64 " of the package ids do not exist", w->unknown);
        rc = BT_CLI_EXIT_FAIL;
      } else if (w->pending > 0) {
        char d[32];
        bt_cli_errorf("timed out after %s with %" PRIu64 " packages pending",
                      bt_duration_format(timeout_ms, d, sizeof d), w->pending);
        rc = BT_CLI_EXIT_FAIL;
      }
      print_status(cli, w);
      baton__ctl_reply__free_unpacked(reply, NULL);
      break;
    }
    progress_update(&pg, w, now);
    baton__ctl_reply__free_unpacked(reply, NULL);
    uint64_t nap = POLL_MS;
    if (timeout_ms > 0 && timeout_ms - (now - start) < nap)
      nap = timeout_ms - (now - start);
    sleep_ms(nap);
  }
  free(ids);
  return rc;
}

/*
 * metrics: Prometheus text exposition over HTTP (GET /metrics), served by
 * libmicrohttpd on the broker's loop: the daemon runs without a thread of its
 * own, its epoll fd is watched by a uv_poll and MHD_run() is called when it is
 * readable, so rendering reads the broker's state directly on the loop thread
 * with no locking.
 *
 * What is exposed is rendered by a callback the shell provides; this module
 * owns the HTTP side and the text format (names, labels, escaping).
 */
#ifndef BT_METRICS_H
#define BT_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct bt_met bt_met_t;

/* A text buffer being rendered. */
typedef struct {
  char *s;
  size_t len, cap;
} bt_met_buf_t;

/* Writes "# HELP name help" and "# TYPE name type" once per family. */
void bt_met_family(bt_met_buf_t *b, const char *name, const char *type,
                   const char *help);
/* Writes one sample: name{label="value"} v (label may be NULL). The label value
 * is escaped as the exposition format requires. */
void bt_met_sample(bt_met_buf_t *b, const char *name, const char *label,
                   const char *label_value, double v);

/* Writes one sample with two labels: name{l1="v1",l2="v2"} v (values escaped). */
void bt_met_sample2(bt_met_buf_t *b, const char *name, const char *l1, const char *v1,
                    const char *l2, const char *v2, double v);

/* A histogram of durations in seconds over fixed buckets (BT_MET_N_BUCKETS bounds,
 * 1 ms to 30 s); observations above the last bound land only in +Inf. Embed it
 * and zero it (bt_met_hist_init); it owns no memory. */
#define BT_MET_N_BUCKETS 14
typedef struct {
  uint64_t counts[BT_MET_N_BUCKETS + 1]; /* per bucket, not cumulative; last = above */
  uint64_t count;
  double sum;
} bt_met_hist_t;

void bt_met_hist_init(bt_met_hist_t *h);
/* Records one duration (negative values count as 0). */
void bt_met_hist_observe(bt_met_hist_t *h, double seconds);
/* Writes the family: HELP, TYPE histogram, cumulative name_bucket{le=...}
 * ending in le="+Inf", then name_sum and name_count. */
void bt_met_hist_render(bt_met_buf_t *b, const char *name, const char *help,
                        const bt_met_hist_t *h);

/* Fills b with every family (called per scrape, on the loop). */
typedef void (*bt_met_render_fn)(void *arg, bt_met_buf_t *b);

/* Listens on "HOST:PORT" (numeric IPv4 host). Returns 0 or a negative code
 * with the error logged. Owned: bt_met_close. */
int bt_met_new(uv_loop_t *loop, const char *hostport, bt_met_render_fn render, void *arg,
               bt_met_t **out);

/* Stops serving; on_closed fires once the handles are closed and it is freed. */
void bt_met_close(bt_met_t *m, void (*on_closed)(void *arg), void *arg);

#endif

/*
 * The benchmark's submitters: S control connections, each keeping up to W
 * Submit requests of B packages in flight (the broker answers in request
 * order), closed loop or paced, until a phase's P packages are submitted.
 *
 * The connections are driven by a few threads (bench_submit_start's threads),
 * each multiplexing its share of them with ppoll. One thread per connection
 * put eight runnable threads of the load generator on a 2-core machine
 * beside the broker and PostgreSQL: at 20,000 single submits a second the
 * scheduler's wake-ups were two fifths of bt_bench's time, and the measured
 * submit-to-start p99 was the generator's own queueing (tests/bench/README.md).
 */
#ifndef BT_BENCH_SUBMIT_H
#define BT_BENCH_SUBMIT_H

#include "bench_ctl.h"
#include "bench_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* What all the submitters of a phase share. */
typedef struct {
  const char *control;    /* control socket path */
  const char *capability; /* of every package */
  uint32_t payload_bytes;
  uint64_t total;        /* packages to submit, over all submitters */
  uint32_t batch, window;
  double rate; /* packages/s offered by all submitters together; 0 = closed loop */
  uint64_t tick_ns; /* paced: sends wake on this grid (0: at each due time) */
  uint32_t submitters; /* set by bench_submit_start */
  _Atomic uint64_t claimed;
  _Atomic uint64_t acked;
  atomic_int failed;
} bench_phase_t;

/* One inflight request: when it was sent (or due, when paced) and its size. */
typedef struct {
  uint64_t ns;
  uint32_t n;
} bench_request_t;

/* One connection and what it measured. */
typedef struct {
  bench_phase_t *ph;
  uint32_t index;
  bench_conn_t conn;
  bool open;
  uint8_t *fulls; /* window copies of the frame of a whole batch, packed once */
  size_t full_len; /* of one copy */
  bench_request_t *ring; /* window entries */
  uint32_t head, inflight;
  bool more;      /* packages left to claim */
  uint64_t every; /* ns between its requests when paced, else 0 */
  uint64_t due;   /* when its next request is due (paced) */
  bench_samples_t ack_ms; /* per request */
  bench_marks_t sent;     /* per package: id, its request's send time */
  uint64_t requests;
  uint64_t first_send_ns, last_ack_ns;
  char err[300];
} bench_submitter_t;

typedef struct bench_submit_thread bench_submit_thread_t;

typedef struct {
  bench_submitter_t *subs; /* n of them */
  uint32_t n;
  bench_submit_thread_t *threads;
  uint32_t n_threads;
} bench_submit_group_t;

/* Starts n submitters over min(n, threads) threads. ph is borrowed and must
 * outlive bench_submit_join. Returns the group (owned: bench_submit_free). */
bench_submit_group_t *bench_submit_start(bench_phase_t *ph, uint32_t n, uint32_t threads);

/* Waits for every thread. Returns the first submitter's error text (borrowed
 * from the group), or NULL when all of them finished cleanly. */
const char *bench_submit_join(bench_submit_group_t *g);

/* Frees the group and what its submitters measured. */
void bench_submit_free(bench_submit_group_t *g);

#endif

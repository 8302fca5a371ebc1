/*
 * The benchmark's submitters (bench_submit.h): connections multiplexed over a
 * few threads. Each thread loops: send what its connections may send (the
 * window has room and, when paced, the request is due), then ppoll until a
 * reply arrives or the next request falls due, then read the replies.
 */
#include "bench_submit.h"

#include "baton.pb-c.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTL_TIMEOUT_MS 60000

struct bench_submit_thread {
  bench_phase_t *ph;
  bench_submitter_t **mine; /* the connections this thread drives */
  uint32_t n;
  pthread_t thread;
};

/* A whole Submit frame of n identical packages (returned owned). */
static uint8_t *pack_submit(const char *capability, uint32_t payload_bytes, uint32_t n,
                            size_t *len) {
  uint8_t *payload = malloc(payload_bytes ? payload_bytes : 1);
  Baton__PackageSpec *specs = calloc(n, sizeof *specs);
  Baton__PackageSpec **ptrs = calloc(n, sizeof *ptrs);
  if (payload == NULL || specs == NULL || ptrs == NULL)
    abort();
  memset(payload, 'x', payload_bytes);
  for (uint32_t i = 0; i < n; i++) {
    baton__package_spec__init(&specs[i]);
    specs[i].capability = (char *)capability;
    specs[i].has_payload = true;
    specs[i].payload.data = payload;
    specs[i].payload.len = payload_bytes;
    ptrs[i] = &specs[i];
  }
  Baton__Submit sub = BATON__SUBMIT__INIT;
  sub.n_packages = n;
  sub.packages = ptrs;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_SUBMIT;
  req.submit = &sub;
  uint8_t *frame = bench_frame_pack(&req, len);
  free(ptrs);
  free(specs);
  free(payload);
  return frame;
}

static int fail(bench_submitter_t *s, const char *what, int err) {
  snprintf(s->err, sizeof s->err, "%s: %s", what, strerror(err));
  return -1;
}

/* Connects and packs the batch frame. Open loop (rate): each connection sends
 * a request every `every` ns, staggered over the connections, and a
 * request's latency counts from when it was due, so a broker that falls
 * behind is charged for the wait (no coordinated omission). */
static int sub_open(bench_submitter_t *s, uint64_t start_ns) {
  bench_phase_t *ph = s->ph;
  int rv = bench_conn_open(&s->conn, ph->control, CTL_TIMEOUT_MS);
  if (rv != 0)
    return fail(s, "could not connect to the control socket", -rv);
  s->open = true;
  uint8_t *full = pack_submit(ph->capability, ph->payload_bytes, ph->batch, &s->full_len);
  s->fulls = malloc(s->full_len * ph->window);
  s->ring = calloc(ph->window, sizeof *s->ring);
  if (s->fulls == NULL || s->ring == NULL)
    abort();
  for (uint32_t i = 0; i < ph->window; i++)
    memcpy(s->fulls + i * s->full_len, full, s->full_len);
  free(full);
  s->more = true;
  s->every = ph->rate > 0 ? (uint64_t)(1e9 * ph->submitters * ph->batch / ph->rate) : 0;
  s->due = start_ns + s->every * s->index / ph->submitters;
  return 0;
}

/* Sends while the window has room and (paced) a request is due: the whole
 * frames due go out in one send (copies of the batch frame side by side in
 * `fulls`), so a submitter behind its schedule catches up in one call. */
static int sub_send(bench_submitter_t *s) {
  bench_phase_t *ph = s->ph;
  uint32_t k = 0; /* whole frames gathered, not sent yet */
  int rv = 0;
  while (s->more && s->inflight < ph->window) {
    if (s->every && bench_now_ns() < s->due)
      break;
    uint64_t start = atomic_fetch_add(&ph->claimed, ph->batch);
    if (start >= ph->total) {
      s->more = false;
      break;
    }
    uint32_t n = ph->total - start < ph->batch ? (uint32_t)(ph->total - start) : ph->batch;
    uint64_t t = s->every ? s->due : bench_now_ns();
    s->due += s->every;
    if (s->first_send_ns == 0)
      s->first_send_ns = t;
    s->ring[(s->head + s->inflight) % ph->window] = (bench_request_t){t, n};
    s->inflight++;
    if (n == ph->batch) {
      k++;
      continue;
    }
    /* The last, short request: what was gathered goes first, in order. */
    if (k > 0 && (rv = bench_conn_send(&s->conn, s->fulls, k * s->full_len)) != 0)
      return fail(s, "send failed", -rv);
    k = 0;
    size_t len;
    uint8_t *frame = pack_submit(ph->capability, ph->payload_bytes, n, &len);
    rv = bench_conn_send(&s->conn, frame, len);
    free(frame);
    if (rv != 0)
      return fail(s, "send failed", -rv);
  }
  if (k > 0 && (rv = bench_conn_send(&s->conn, s->fulls, k * s->full_len)) != 0)
    return fail(s, "send failed", -rv);
  return 0;
}

/* Reads one reply (the oldest request's: the broker answers in order). */
static int sub_read(bench_submitter_t *s) {
  bench_phase_t *ph = s->ph;
  Baton__CtlReply *rep;
  int rv = bench_conn_recv(&s->conn, &rep);
  if (rv != 0)
    return fail(s, "reading a reply failed", -rv);
  uint64_t t = bench_now_ns();
  bench_request_t e = s->ring[s->head];
  s->head = (s->head + 1) % ph->window;
  s->inflight--;
  if (rep->status != BATON__CTL_STATUS__CTL_OK ||
      rep->body_case != BATON__CTL_REPLY__BODY_SUBMITTED ||
      rep->submitted->n_packages != e.n) {
    snprintf(s->err, sizeof s->err, "submit refused: status %d: %s", (int)rep->status,
             rep->error ? rep->error : "(no error text, or wrong package count)");
    baton__ctl_reply__free_unpacked(rep, NULL);
    return -1;
  }
  for (size_t i = 0; i < rep->submitted->n_packages; i++)
    bench_marks_push(&s->sent, rep->submitted->packages[i]->id, e.ns);
  baton__ctl_reply__free_unpacked(rep, NULL);
  bench_samples_push(&s->ack_ms, (double)(t - e.ns) / 1e6);
  s->requests++;
  s->last_ack_ns = t;
  atomic_fetch_add_explicit(&ph->acked, e.n, memory_order_relaxed);
  return 0;
}

static void sub_close(bench_submitter_t *s) {
  if (s->open)
    bench_conn_close(&s->conn);
  s->open = false;
  free(s->ring);
  s->ring = NULL;
  free(s->fulls);
  s->fulls = NULL;
}

/* One round: send, then wait for replies or the next due request, then read.
 * Returns 1 while there is more to do, 0 when every connection is done, -1
 * on an error (in the failing submitter's err). */
static int thread_round(bench_submit_thread_t *t, struct pollfd *pfd,
                        bench_submitter_t **polled) {
  bench_phase_t *ph = t->ph;
  uint64_t next_due = UINT64_MAX;
  bool active = false, buffered = false;
  nfds_t nfd = 0;
  for (uint32_t i = 0; i < t->n; i++) {
    bench_submitter_t *s = t->mine[i];
    if (sub_send(s) != 0)
      return -1;
    if (s->inflight == 0 && !s->more)
      continue;
    active = true;
    if (s->every && s->more && s->inflight < ph->window && s->due < next_due)
      next_due = s->due;
    if (s->inflight > 0) {
      buffered = buffered || bench_conn_buffered(&s->conn);
      pfd[nfd] = (struct pollfd){.fd = s->conn.fd, .events = POLLIN};
      polled[nfd++] = s;
    }
  }
  if (!active)
    return 0;
  uint64_t now = bench_now_ns();
  /* Paced sends wake on a grid of tick_ns (the next request's due time
   * rounded up), so each wake sends every request then due: a request sent
   * late is charged for it (its latency counts from when it was due). */
  uint64_t tick = ph->tick_ns;
  if (tick > 0 && next_due != UINT64_MAX)
    next_due = (next_due + tick - 1) / tick * tick;
  uint64_t wait_ns = buffered                 ? 0
                     : next_due == UINT64_MAX ? (uint64_t)CTL_TIMEOUT_MS * 1000000u
                     : next_due > now         ? next_due - now
                                              : 0;
  struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000u),
                        .tv_nsec = (long)(wait_ns % 1000000000u)};
  int n = ppoll(pfd, nfd, &ts, NULL);
  if (n < 0 && errno != EINTR)
    return fail(t->mine[0], "poll failed", errno); /* the thread's, not one connection's */
  if (n == 0 && !buffered && next_due == UINT64_MAX)
    return fail(polled[0], "no reply from the broker", ETIMEDOUT);
  for (nfds_t k = 0; k < nfd; k++) {
    bench_submitter_t *s = polled[k];
    if (!(n > 0 && pfd[k].revents != 0) && !bench_conn_buffered(&s->conn))
      continue;
    /* Everything that arrived: the broker writes a loop turn's answers at once. */
    do {
      if (sub_read(s) != 0)
        return -1;
    } while (s->inflight > 0 && bench_conn_buffered(&s->conn));
  }
  return 1;
}

static void *thread_main(void *arg) {
  bench_submit_thread_t *t = arg;
  bench_phase_t *ph = t->ph;
  struct pollfd *pfd = calloc(t->n, sizeof *pfd);
  bench_submitter_t **polled = calloc(t->n, sizeof *polled);
  if (pfd == NULL || polled == NULL)
    abort();
  uint64_t start = bench_now_ns();
  int rv = 0;
  for (uint32_t i = 0; i < t->n && rv == 0; i++)
    rv = sub_open(t->mine[i], start);
  while (rv == 0 && !atomic_load(&ph->failed)) {
    int r = thread_round(t, pfd, polled);
    if (r <= 0) {
      rv = r;
      break;
    }
  }
  if (rv != 0)
    atomic_store(&ph->failed, 1);
  for (uint32_t i = 0; i < t->n; i++)
    sub_close(t->mine[i]);
  free(pfd);
  free(polled);
  return NULL;
}

bench_submit_group_t *bench_submit_start(bench_phase_t *ph, uint32_t n, uint32_t threads) {
  bench_submit_group_t *g = calloc(1, sizeof *g);
  if (g == NULL || n == 0)
    abort();
  ph->submitters = n;
  g->n = n;
  g->n_threads = threads == 0 ? 1 : threads < n ? threads : n;
  g->subs = calloc(n, sizeof *g->subs);
  g->threads = calloc(g->n_threads, sizeof *g->threads);
  if (g->subs == NULL || g->threads == NULL)
    abort();
  for (uint32_t i = 0; i < n; i++) {
    g->subs[i].ph = ph;
    g->subs[i].index = i;
  }
  /* Connection i goes to thread i mod T, so paced connections, staggered by
   * index, spread their due times over the threads. */
  for (uint32_t k = 0; k < g->n_threads; k++) {
    bench_submit_thread_t *t = &g->threads[k];
    t->ph = ph;
    t->mine = calloc(n / g->n_threads + 1, sizeof *t->mine);
    if (t->mine == NULL)
      abort();
    for (uint32_t i = k; i < n; i += g->n_threads)
      t->mine[t->n++] = &g->subs[i];
    if (pthread_create(&t->thread, NULL, thread_main, t) != 0)
      abort();
  }
  return g;
}

const char *bench_submit_join(bench_submit_group_t *g) {
  for (uint32_t k = 0; k < g->n_threads; k++)
    pthread_join(g->threads[k].thread, NULL);
  for (uint32_t i = 0; i < g->n; i++)
    if (g->subs[i].err[0] != '\0')
      return g->subs[i].err;
  return NULL;
}

void bench_submit_free(bench_submit_group_t *g) {
  for (uint32_t i = 0; i < g->n; i++) {
    bench_samples_free(&g->subs[i].ack_ms);
    bench_marks_free(&g->subs[i].sent);
  }
  for (uint32_t k = 0; k < g->n_threads; k++)
    free(g->threads[k].mine);
  free(g->threads);
  free(g->subs);
  free(g);
}

/*
 * The benchmark's control-socket client: one blocking AF_UNIX connection per
 * thread, frames written whole, replies read through an incremental frame
 * reader so a client can keep several requests in flight (the broker answers in
 * request order). Nothing here is shared between threads.
 */
#ifndef BT_BENCH_CTL_H
#define BT_BENCH_CTL_H

#include "baton.pb-c.h"
#include "bt_frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int fd;
  uint8_t buf[65536]; /* bytes read and not yet fed to the frame reader */
  size_t have;
  size_t pos;
  bt_frame_reader_t fr;
} bench_conn_t;

/* Connects to the control socket at path (timeouts of timeout_ms on every read
 * and write, so a hung broker ends the benchmark instead of hanging it).
 * Returns 0 or -errno. */
int bench_conn_open(bench_conn_t *c, const char *path, int timeout_ms);

/* Closes the socket and frees the reader. */
void bench_conn_close(bench_conn_t *c);

/* Packs req (version set here) into a whole frame: header and body. Returns the
 * frame (owned: free()) and its length in *len. */
uint8_t *bench_frame_pack(Baton__CtlRequest *req, size_t *len);

/* Writes a whole frame (borrowed). Returns 0 or -errno. */
int bench_conn_send(bench_conn_t *c, const uint8_t *frame, size_t len);

/* Reads the next reply. Returns 0 with *out (owned: free with
 * baton__ctl_reply__free_unpacked(*out, NULL)), or -errno / -EPROTO. */
int bench_conn_recv(bench_conn_t *c, Baton__CtlReply **out);

/* Whether bytes of a reply were read already and wait in the buffer: then
 * the socket may stay quiet while a reply is still there to take. */
bool bench_conn_buffered(const bench_conn_t *c);

/* One Stats round trip on an otherwise idle connection. Returns 0 with the
 * counters, or a negative error (a non-OK reply is -EPROTO). */
typedef struct {
  uint64_t queued, assigned, running, completed, dead, cancelled, waiting;
  uint32_t agents;
} bench_stats_t;
int bench_conn_stats(bench_conn_t *c, bench_stats_t *out);

#endif

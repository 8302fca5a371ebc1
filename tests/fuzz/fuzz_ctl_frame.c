/*
 * Fuzz target: the control socket's incremental frame reader (proto/bt_frame.c)
 * fed a byte stream split at arbitrary points, as libuv's reads split it.
 *
 * Input: 3 bytes of frame limit (max_body, at most 1 MiB), then commands:
 *   c & 0xc0 == 0xc0   a chunk of (c & 0x3f) * 4096 filler bytes (0xab), so
 *                      large frames and the body's growth are reachable with
 *                      small inputs;
 *   otherwise          a chunk of the next (c & 0x3f) input bytes (0 = 1 byte).
 * The chunks, concatenated, are the stream the reader sees, one chunk per
 * feed call (or more calls, when the reader stops at a frame's end).
 *
 * Invariants beyond "no crash":
 *   - the frames the reader yields are exactly those a one-shot parse of the
 *     whole stream finds, whatever the split points, and it refuses (-1)
 *     exactly where that parse meets a length above the limit;
 *   - no frame is larger than the limit, every feed consumes at most what it
 *     was given and makes progress;
 *   - the body buffer grows with the bytes that arrived, never beyond the
 *     announced length (+1) and never past twice what it holds (or 64 KiB);
 *   - bytes left at the end are exactly the reader's partial frame.
 */
#include "fuzz_util.h"

#include "bt_frame.h"

#define MAX_LIMIT (1u << 20)
#define MAX_STREAM (4u << 20)
#define FILL 0xab

typedef struct {
  const uint8_t *p;
  size_t len;
} chunk_t;

static void check_buffer(const bt_frame_reader_t *r) {
  if (r->body == NULL)
    return;
  FUZZ_CHECK(r->body_have <= r->body_len, "have %u > len %u", r->body_have, r->body_len);
  FUZZ_CHECK(r->body_cap <= (uint64_t)r->body_len + 1, "cap %u > len %u + 1", r->body_cap,
             r->body_len);
  uint64_t grown = 2 * ((uint64_t)r->body_have + 1);
  FUZZ_CHECK(r->body_cap <= 65536 || r->body_cap <= grown,
             "cap %u for %u bytes received", r->body_cap, r->body_have);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_bytes_t in = {data, size};
  uint32_t max_body = fuzz_take(&in, 3) % (MAX_LIMIT + 1);

  /* Cut the input into chunks and build the whole stream. */
  size_t cap_chunks = in.n + 1, n_chunks = 0, total = 0;
  chunk_t *chunks = calloc(cap_chunks, sizeof *chunks);
  uint8_t *stream = NULL;
  FUZZ_CHECK(chunks != NULL, "out of memory");
  while (in.n > 0 && total < MAX_STREAM) {
    uint8_t c = (uint8_t)fuzz_take(&in, 1);
    chunk_t ch;
    if ((c & 0xc0) == 0xc0) {
      ch.p = NULL; /* filler, placed once the stream is built */
      ch.len = (size_t)(c & 0x3f) * 4096;
    } else {
      size_t want = (c & 0x3f) ? (c & 0x3f) : 1;
      ch.len = want < in.n ? want : in.n;
      ch.p = in.p;
      in.p += ch.len;
      in.n -= ch.len;
    }
    if (ch.len == 0)
      continue;
    chunks[n_chunks++] = ch;
    total += ch.len;
  }
  stream = malloc(total ? total : 1);
  FUZZ_CHECK(stream != NULL, "out of memory");
  size_t o = 0;
  for (size_t i = 0; i < n_chunks; i++) {
    if (chunks[i].p == NULL)
      memset(stream + o, FILL, chunks[i].len);
    else
      memcpy(stream + o, chunks[i].p, chunks[i].len);
    chunks[i].p = stream + o;
    o += chunks[i].len;
  }

  /* Feed it chunk by chunk; compare every frame with a one-shot parse. */
  bt_frame_reader_t r;
  bt_frame_reader_init(&r, max_body);
  size_t ref = 0; /* where the next frame starts in the stream */
  bool refused = false;
  for (size_t i = 0; i < n_chunks && !refused; i++) {
    const uint8_t *p = chunks[i].p;
    size_t left = chunks[i].len;
    while (left > 0) {
      int done = -1;
      long used = bt_frame_reader_feed(&r, p, left, &done);
      if (used < 0) {
        FUZZ_CHECK(used == -1, "feed returned %ld", used);
        FUZZ_CHECK(ref + BT_FRAME_HEADER <= total &&
                       bt_frame_get_length(stream + ref) > max_body,
                   "refused a frame within the limit");
        refused = true;
        break;
      }
      FUZZ_CHECK((size_t)used <= left, "consumed %ld of %zu bytes", used, left);
      FUZZ_CHECK(done == 0 || done == 1, "done=%d", done);
      FUZZ_CHECK(used > 0 || done, "no progress on %zu bytes", left);
      check_buffer(&r);
      p += used;
      left -= (size_t)used;
      if (done) {
        FUZZ_CHECK(ref + BT_FRAME_HEADER <= total, "a frame before its header");
        uint32_t want = bt_frame_get_length(stream + ref);
        FUZZ_CHECK(want <= max_body, "frame of %u bytes over the limit %u", want, max_body);
        uint32_t len = 0;
        uint8_t *body = bt_frame_reader_take(&r, &len);
        FUZZ_CHECK(body != NULL, "a finished frame without a body");
        FUZZ_CHECK(len == want, "frame of %u bytes, the stream says %u", len, want);
        FUZZ_CHECK(ref + BT_FRAME_HEADER + len <= total, "frame runs past the stream");
        FUZZ_CHECK(memcmp(body, stream + ref + BT_FRAME_HEADER, len) == 0,
                   "frame bytes differ from the stream");
        uint8_t hdr[BT_FRAME_HEADER];
        bt_frame_put_header(hdr, len);
        FUZZ_CHECK(memcmp(hdr, stream + ref, BT_FRAME_HEADER) == 0, "header round trip");
        free(body);
        ref += BT_FRAME_HEADER + len;
      }
    }
  }
  if (!refused) {
    /* Whatever the reader holds is the unfinished tail of the stream. */
    size_t tail = total - ref;
    FUZZ_CHECK(r.hdr_have + (r.hdr_have == BT_FRAME_HEADER ? r.body_have : 0) == tail,
               "reader holds %u+%u bytes, the stream has %zu left", r.hdr_have,
               r.body_have, tail);
    if (tail >= BT_FRAME_HEADER) {
      uint32_t want = bt_frame_get_length(stream + ref);
      FUZZ_CHECK(want <= max_body, "an unfinished frame over the limit was not refused");
      FUZZ_CHECK(tail - BT_FRAME_HEADER < want, "a complete frame was not yielded");
    }
  }
  bt_frame_reader_close(&r);
  free(stream);
  free(chunks);
  return 0;
}

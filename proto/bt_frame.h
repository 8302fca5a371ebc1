/*
 * Control-socket framing: a 4-byte big-endian length, then that many bytes of one
 * packed CtlRequest or CtlReply. The reader side is incremental so a frame may
 * arrive in any number of pieces; the length is checked against the limit before
 * anything is allocated, and the body buffer grows with the bytes that actually
 * arrive, so announcing a large frame costs nothing until it is sent.
 */
#ifndef BT_FRAME_H
#define BT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define BT_FRAME_HEADER 4u

/* Writes the 4-byte header for a body of len bytes into hdr. */
void bt_frame_put_header(uint8_t hdr[BT_FRAME_HEADER], uint32_t len);

/* Reads the length from a 4-byte header. */
uint32_t bt_frame_get_length(const uint8_t hdr[BT_FRAME_HEADER]);

/* An incremental frame reader. */
typedef struct {
  uint8_t hdr[BT_FRAME_HEADER];
  uint32_t hdr_have;
  uint32_t body_len;
  uint32_t body_have;
  uint8_t *body; /* owned; grows with the bytes that arrive, never beyond body_len */
  uint32_t body_cap;
  uint32_t max_body;
} bt_frame_reader_t;

void bt_frame_reader_init(bt_frame_reader_t *r, uint32_t max_body);
void bt_frame_reader_close(bt_frame_reader_t *r);

/* Feeds bytes. Returns the number of bytes consumed (<= len) and sets *done when a
 * whole frame is ready in r->body/r->body_len; the caller then takes the body with
 * bt_frame_reader_take() before feeding more. Returns -1 when the announced length
 * exceeds max_body (the connection should be closed after an error reply). */
long bt_frame_reader_feed(bt_frame_reader_t *r, const uint8_t *buf, size_t len,
                          int *done);

/* Takes ownership of the finished body (free() it) and resets for the next frame. */
uint8_t *bt_frame_reader_take(bt_frame_reader_t *r, uint32_t *len);

#endif

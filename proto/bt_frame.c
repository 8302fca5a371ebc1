/* Length-prefixed frames for the control socket; see bt_frame.h. */
#include "bt_frame.h"

#include <stdlib.h>
#include <string.h>

void bt_frame_put_header(uint8_t hdr[BT_FRAME_HEADER], uint32_t len) {
  hdr[0] = (uint8_t)(len >> 24);
  hdr[1] = (uint8_t)(len >> 16);
  hdr[2] = (uint8_t)(len >> 8);
  hdr[3] = (uint8_t)len;
}

uint32_t bt_frame_get_length(const uint8_t hdr[BT_FRAME_HEADER]) {
  return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
         (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
}

void bt_frame_reader_init(bt_frame_reader_t *r, uint32_t max_body) {
  memset(r, 0, sizeof *r);
  r->max_body = max_body;
}

void bt_frame_reader_close(bt_frame_reader_t *r) {
  free(r->body);
  r->body = NULL;
}

long bt_frame_reader_feed(bt_frame_reader_t *r, const uint8_t *buf, size_t len,
                          int *done) {
  size_t used = 0;
  *done = 0;
  while (used < len && r->hdr_have < BT_FRAME_HEADER)
    r->hdr[r->hdr_have++] = buf[used++];
  if (r->hdr_have < BT_FRAME_HEADER)
    return (long)used;
  if (r->body == NULL) {
    r->body_len = bt_frame_get_length(r->hdr);
    if (r->body_len > r->max_body)
      return -1;
    /* One extra byte so an empty body still has a distinct allocation. */
    r->body_cap = r->body_len < 65536 ? r->body_len + 1u : 65536;
    r->body = malloc(r->body_cap);
    if (r->body == NULL)
      abort();
    r->body_have = 0;
  }
  size_t want = r->body_len - r->body_have;
  size_t take = len - used < want ? len - used : want;
  if (r->body_have + take + 1 > r->body_cap) {
    uint64_t cap = r->body_cap;
    while (cap < (uint64_t)r->body_have + take + 1)
      cap *= 2;
    if (cap > (uint64_t)r->body_len + 1)
      cap = (uint64_t)r->body_len + 1;
    r->body = realloc(r->body, (size_t)cap);
    if (r->body == NULL)
      abort();
    r->body_cap = (uint32_t)cap;
  }
  memcpy(r->body + r->body_have, buf + used, take);
  r->body_have += (uint32_t)take;
  used += take;
  if (r->body_have == r->body_len)
    *done = 1;
  return (long)used;
}

uint8_t *bt_frame_reader_take(bt_frame_reader_t *r, uint32_t *len) {
  uint8_t *b = r->body;
  *len = r->body_len;
  r->body = NULL;
  r->body_cap = 0;
  r->hdr_have = 0;
  r->body_len = 0;
  r->body_have = 0;
  return b;
}

/* Wire walk for NULs in string fields; see bt_pbcheck.h. */
#include "bt_pbcheck.h"

#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 16

static int varint(const uint8_t *buf, size_t len, size_t *o, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*o >= len)
      return -1;
    uint8_t b = buf[(*o)++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                int depth, char *why, size_t why_len) {
  if (depth > MAX_DEPTH) {
    snprintf(why, why_len, "messages nested too deep");
    return -1;
  }
  size_t o = 0;
  while (o < len) {
    uint64_t tag;
    if (varint(buf, len, &o, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
      snprintf(why, why_len, "malformed field tag");
      return -1;
    }
    uint32_t number = (uint32_t)(tag >> 3);
    uint64_t skip = 0;
    switch (tag & 7) {
    case 0: /* varint */
      if (varint(buf, len, &o, &skip) != 0) {
        snprintf(why, why_len, "malformed varint in field %u", number);
        return -1;
      }
      continue;
    case 1:
      skip = 8;
      break;
    case 5:
      skip = 4;
      break;
    case 2: {
      if (varint(buf, len, &o, &skip) != 0 || skip > len - o) {
        snprintf(why, why_len, "length of field %u runs past the message", number);
        return -1;
      }
      const ProtobufCFieldDescriptor *f =
          d ? protobuf_c_message_descriptor_get_field(d, number) : NULL;
      if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
          memchr(buf + o, 0, (size_t)skip) != NULL) {
        snprintf(why, why_len, "field %s holds a NUL byte", f->name);
        return -1;
      }
      if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
          walk(f->descriptor, buf + o, (size_t)skip, depth + 1, why, why_len) != 0)
        return -1;
      break;
    }
    default:
      snprintf(why, why_len, "unsupported wire type %u in field %u",
               (unsigned)(tag & 7), number);
      return -1;
    }
    if (skip > len - o) {
      snprintf(why, why_len, "field %u runs past the message", number);
      return -1;
    }
    o += (size_t)skip;
  }
  return 0;
}

int bt_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                char *why, size_t why_len) {
  return walk(d, buf, len, 0, why, why_len);
}

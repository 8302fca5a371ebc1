/*
 * A wire-level check protobuf-c does not make: a string field holding a NUL
 * byte. protobuf-c copies such a string and the C side sees it cut at the NUL
 * ("ac\0me" becomes "ac"), so a name could pass validation as something else.
 * This walks the encoded message with the generated descriptors and refuses
 * NULs in string fields (recursively), malformed tags and lengths, and nesting
 * deeper than a limit. Run it on every message from outside before unpacking.
 */
#ifndef BT_PBCHECK_H
#define BT_PBCHECK_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Returns 0 when buf is well-formed for d with no NUL in any string field, or
 * -1 with a short reason in why. */
int bt_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                char *why, size_t why_len);

#endif

/*
 * Validation of names and text that arrive from outside (agents, the control
 * socket, batch files) before they reach the core or the database. A name
 * (vendor, agent, capability, region, certification, idempotency key) is
 * 1..BT_NAME_MAX bytes of letters, digits and . _ - : / @ + — no spaces, no
 * separators, nothing a log line or an SQL array could misread. Free text
 * (errors, hours) must be valid UTF-8 without control characters (C0, DEL or C1).
 */
#ifndef BT_VALID_H
#define BT_VALID_H

#include <stdbool.h>
#include <stddef.h>

#define BT_NAME_MAX 128
#define BT_TEXT_MAX 1024

/* True when s is a valid name (see above). */
bool bt_valid_name(const char *s);

/* True when the len bytes at s are valid UTF-8 with no NUL. */
bool bt_valid_utf8(const char *s, size_t len);

/* True when s is valid UTF-8, has no control characters and is at most max
 * bytes long. */
bool bt_valid_text(const char *s, size_t max);

/* Copies s into dst (size cap) as safe text: invalid UTF-8 and control
 * characters become '?', and it is cut at a character boundary. Returns dst. */
char *bt_sanitize_text(const char *s, char *dst, size_t cap);

#endif

/*
 * The `submit --batch` file format: JSON Lines, one package per line, keys named
 * after the submit flags with '_' for '-':
 *
 *   {"capability":"ocr","payload":"hello","priority":3,"deadline":"2h",
 *    "region":["EU-DE","EU-FR"],"cert":"iso27001,soc2","key":"inv-42"}
 *
 *   capability          string, required
 *   payload             string (its UTF-8 bytes)      } at most one of the two;
 *   payload_b64         string, standard base64       } neither: empty payload
 *   priority            integer 0-9
 *   deadline, not_before  string: a duration from now ("90s", "2h") or RFC 3339
 *   region, cert, prefer, avoid  array of strings or one comma-separated string
 *   max_cost            number >= 0
 *   max_attempts        integer 1-1000
 *   key                 string (idempotency key)
 *
 * Capabilities, keys and list items must be Baton names (bt_valid_name).
 * A null value means the key is absent. Blank lines are skipped. Any error
 * (invalid JSON, unknown or duplicate key, wrong type, value out of range,
 * missing capability) rejects the whole batch with "line N: reason".
 *
 * Pure: text and a clock reading in, specs or an error out. This is the fuzz
 * target for batch input.
 */
#ifndef BT_CLI_BATCH_H
#define BT_CLI_BATCH_H

#include "spec.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
  bt_cli_spec_t *specs; /* owned, in file order */
  size_t n;
  size_t cap;
} bt_cli_batch_t;

void bt_cli_batch_init(bt_cli_batch_t *b);
void bt_cli_batch_close(bt_cli_batch_t *b);

/* Parses one line (no newline) into *out, which must be initialised. now_at
 * anchors relative deadlines. Returns 0, or BT_EINVAL with the reason (no line
 * number) in err; *out is then closed. A blank line is an error here: callers
 * skip blank lines. */
int bt_cli_batch_parse_line(const char *line, size_t len, int64_t now_at,
                            bt_cli_spec_t *out, char *err, size_t errlen);

/* Parses a whole JSON Lines text (any bytes, need not be NUL-terminated) and
 * appends its packages to *out. Returns 0, or BT_EINVAL with "line N: reason"
 * in err and *out as it was. Borrows text. */
int bt_cli_batch_parse(const char *text, size_t len, int64_t now_at,
                       bt_cli_batch_t *out, char *err, size_t errlen);

#endif

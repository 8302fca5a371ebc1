/*
 * The handler's file descriptor 3: a line protocol by which a running handler
 * reports progress to the agent.
 *   progress N         N is an integer 0..100
 *   checkpoint BASE64  opaque bytes in standard base64 (padding optional)
 * Everything here is pure (no I/O, no globals) so it can be unit-tested and
 * fuzzed: a line splitter that bounds memory, and a parser for one line.
 */
#ifndef BT_FD3_H
#define BT_FD3_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  BT_FD3_PROGRESS = 1,
  BT_FD3_CHECKPOINT = 2,
} bt_fd3_kind_t;

typedef struct {
  bt_fd3_kind_t kind;
  int percent; /* BT_FD3_PROGRESS */
  size_t len;  /* BT_FD3_CHECKPOINT: bytes decoded into the caller's buffer */
} bt_fd3_msg_t;

/* Parses one line, without its newline (a trailing CR is ignored). The keyword
 * and its argument are separated by spaces or tabs; trailing blanks are allowed.
 * A checkpoint is decoded into buf (cap bytes). Borrows everything.
 * Returns 0 with *out filled, or BT_EINVAL with *why set to a static reason. */
int bt_fd3_parse_line(const char *line, size_t len, uint8_t *buf, size_t cap,
                      bt_fd3_msg_t *out, const char **why);

/* The base64 text of a checkpoint of at most cap bytes, plus the keyword: the
 * longest line worth keeping for that cap. */
size_t bt_fd3_max_line(size_t cap);

/* Splits a byte stream into lines of at most max bytes. */
typedef struct {
  char *buf;
  size_t len, cap, max;
  int overflow; /* the current line exceeded max: dropping until its newline */
} bt_fd3_lines_t;

/* Called for each complete line (without its newline), borrowed for the call;
 * line is NULL for a line longer than max, which is dropped. */
typedef void (*bt_fd3_line_cb)(void *user, const char *line, size_t len);

void bt_fd3_lines_init(bt_fd3_lines_t *l, size_t max);
/* Feeds n bytes; on_line fires for every line they complete. */
void bt_fd3_lines_feed(bt_fd3_lines_t *l, const char *data, size_t n,
                       bt_fd3_line_cb on_line, void *user);
/* End of stream: a last line without newline is delivered too. */
void bt_fd3_lines_finish(bt_fd3_lines_t *l, bt_fd3_line_cb on_line, void *user);
/* Frees the buffer. */
void bt_fd3_lines_close(bt_fd3_lines_t *l);

#endif

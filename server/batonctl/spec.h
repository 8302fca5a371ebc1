/*
 * A work package as batonctl builds it before sending: the fields of the wire
 * PackageSpec in plain C, shared by `submit` flags and `submit --batch` lines so
 * both validate the same way. Pure: no I/O, no protobuf, no clock reads.
 */
#ifndef BT_CLI_SPEC_H
#define BT_CLI_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Client-side bounds; the broker validates again with its own limits. */
#define BT_CLI_PRIORITY_MAX 9u
#define BT_CLI_MAX_ATTEMPTS_MAX 1000u

/* A growable list of owned strings. */
typedef struct {
  char **v;
  size_t n;
  size_t cap;
} bt_cli_strv_t;

typedef struct {
  char *capability; /* owned; required */
  uint8_t *payload; /* owned; NULL when empty */
  size_t payload_len;
  bool has_priority;
  uint32_t priority;
  bool has_deadline;
  int64_t deadline_at;
  bool has_not_before;
  int64_t not_before_at;
  bt_cli_strv_t regions;
  bt_cli_strv_t certs;
  bool has_max_cost;
  double max_cost;
  bt_cli_strv_t prefer;
  bt_cli_strv_t avoid;
  bool has_max_attempts;
  uint32_t max_attempts;
  char *key; /* owned; NULL when absent */
} bt_cli_spec_t;

void bt_cli_spec_init(bt_cli_spec_t *s);
/* Frees everything the spec owns and leaves it initialised. */
void bt_cli_spec_close(bt_cli_spec_t *s);

void bt_cli_strv_init(bt_cli_strv_t *v);
void bt_cli_strv_close(bt_cli_strv_t *v);
/* Appends a copy of s[0..len). */
void bt_cli_strv_push(bt_cli_strv_t *v, const char *s, size_t len);

/* Appends the comma-separated items of s[0..len), each trimmed of blanks. An
 * empty item ("a,,b", a trailing comma, or an empty s) is refused: a typo in a
 * data-residency list must not silently widen it. Returns 0, or BT_EINVAL with
 * a reason in err. */
int bt_cli_strv_split(bt_cli_strv_t *v, const char *s, size_t len, char *err,
                      size_t errlen);

/* Checks that s is a Baton name (bt_valid_name: 1-128 bytes of letters, digits
 * and . _ - : / @ +) so a typo is reported here, with its line or flag, rather
 * than by the broker for a whole request. what names the field in the message.
 * Returns 0, or BT_EINVAL with a reason in err. */
int bt_cli_check_name(const char *what, const char *s, char *err, size_t errlen);

/* bt_cli_check_name() for every item of v. */
int bt_cli_check_names(const char *what, const bt_cli_strv_t *v, char *err,
                       size_t errlen);

#endif

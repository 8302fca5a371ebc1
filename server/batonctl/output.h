/*
 * What batonctl writes: the JSON document of --json (jansson), tables and
 * key/value views on stdout, and "batonctl: …" messages on stderr.
 *
 * JSON conventions shared by every command: absent optional values are null,
 * times are RFC 3339 strings in UTC ("2026-11-22T10:00:00.000Z"), lists are
 * arrays (empty when absent), counters absent on the wire are 0.
 */
#ifndef BT_CLI_OUTPUT_H
#define BT_CLI_OUTPUT_H

#include "table.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Prints "batonctl: <message>\n" on stderr and remembers the message. */
void bt_cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message of bt_cli_errorf ("" when none). */
const char *bt_cli_last_error(void);
/* With --json, a failure still prints exactly one JSON document on stdout:
 * {"error": <last message>, "exit_code": N} — unless a document was printed
 * already (e.g. wait's last status on a timeout). */
void bt_cli_json_error(int exit_code);

/* Writes doc to stdout as one JSON document and a newline; takes ownership. */
void bt_cli_json_print(json_t *doc);

/* JSON value constructors; each returns a new reference. */
json_t *bt_cli_json_str(const char *s); /* NULL or "" -> null; bad UTF-8 -> '?' */
json_t *bt_cli_json_u64(uint64_t v);
json_t *bt_cli_json_opt_u64(bool has, uint64_t v);   /* null when !has */
json_t *bt_cli_json_opt_real(bool has, double v);    /* null when !has */
json_t *bt_cli_json_time(bool has, int64_t at);      /* RFC 3339 or null */
json_t *bt_cli_json_strv(char *const *v, size_t n);  /* array of strings */

/* Sets key in obj to v, taking ownership of v (a NULL v aborts: out of memory). */
void bt_cli_json_set(json_t *obj, const char *key, json_t *v);

/* Text helpers for tables; each writes into buf and returns it, or returns NULL
 * for an absent value (which a table shows as "-"). */
const char *bt_cli_fmt_time(bool has, int64_t at, char *buf, size_t len);
const char *bt_cli_fmt_list(char *const *v, size_t n, char *buf, size_t len);

/* Renders t to stdout and closes it. */
void bt_cli_table_print(bt_cli_table_t *t);

/* Standard base64 of bin[0..len). Returns an owned string. */
char *bt_cli_b64_encode(const uint8_t *bin, size_t len);

#endif

/* stdout/stderr writing and JSON helpers; see output.h. */
#include "output.h"

#include "bt_time.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last error said, for the JSON error document of --json. */
static char last_error[512];
static bool json_printed;

void bt_cli_errorf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  fprintf(stderr, "batonctl: %s\n", last_error);
}

const char *bt_cli_last_error(void) { return last_error; }

void bt_cli_json_error(int exit_code) {
  if (json_printed)
    return;
  json_t *doc = json_object();
  bt_cli_json_set(doc, "error", json_string(last_error[0] ? last_error : "failed"));
  bt_cli_json_set(doc, "exit_code", json_integer(exit_code));
  bt_cli_json_print(doc);
}

void bt_cli_json_print(json_t *doc) {
  json_printed = true;
  /* 15 significant digits print a cost of 0.1 as 0.1, not 0.10000000000000001. */
  json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
  fputc('\n', stdout);
  json_decref(doc);
}

static json_t *must(json_t *v) {
  if (v == NULL)
    abort(); /* jansson returns NULL only on allocation failure here */
  return v;
}

json_t *bt_cli_json_str(const char *s) {
  if (s == NULL || *s == '\0')
    return must(json_null());
  json_t *v = json_string(s);
  if (v != NULL)
    return v;
  /* Not UTF-8 (protobuf-c does not check): keep the ASCII, mark the rest. */
  char *c = strdup(s);
  if (c == NULL)
    abort();
  for (char *p = c; *p; p++)
    if ((unsigned char)*p >= 0x80)
      *p = '?';
  v = must(json_string(c));
  free(c);
  return v;
}

json_t *bt_cli_json_u64(uint64_t v) {
  /* json_int_t is signed 64-bit; no counter or id comes near 2^63. */
  return must(json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

json_t *bt_cli_json_opt_u64(bool has, uint64_t v) {
  return has ? bt_cli_json_u64(v) : must(json_null());
}

json_t *bt_cli_json_opt_real(bool has, double v) {
  return has ? must(json_real(v)) : must(json_null());
}

json_t *bt_cli_json_time(bool has, int64_t at) {
  char buf[40];
  if (!has)
    return must(json_null());
  return must(json_string(bt_time_format(at, buf, sizeof buf)));
}

json_t *bt_cli_json_strv(char *const *v, size_t n) {
  json_t *a = must(json_array());
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, v[i] ? bt_cli_json_str(v[i]) : must(json_null()));
  return a;
}

void bt_cli_json_set(json_t *obj, const char *key, json_t *v) {
  if (v == NULL || json_object_set_new(obj, key, v) != 0)
    abort();
}

const char *bt_cli_fmt_time(bool has, int64_t at, char *buf, size_t len) {
  return has ? bt_time_format(at, buf, len) : NULL;
}

const char *bt_cli_fmt_list(char *const *v, size_t n, char *buf, size_t len) {
  if (n == 0 || len == 0)
    return NULL;
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(buf + used, len - used, "%s%s", i ? "," : "", v[i]);
    if (w < 0 || (size_t)w >= len - used) {
      /* Truncated: end with an ellipsis the reader recognises. */
      if (len >= 4)
        memcpy(buf + len - 4, "...", 4);
      return buf;
    }
    used += (size_t)w;
  }
  return buf;
}

void bt_cli_table_print(bt_cli_table_t *t) {
  char *s = bt_cli_table_render(t);
  fputs(s, stdout);
  free(s);
  bt_cli_table_close(t);
}

char *bt_cli_b64_encode(const uint8_t *bin, size_t len) {
  size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
  char *out = malloc(n);
  if (out == NULL)
    abort();
  sodium_bin2base64(out, n, bin, len, sodium_base64_VARIANT_ORIGINAL);
  return out;
}

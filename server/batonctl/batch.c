/*
 * The JSON Lines batch parser; the format is described in batch.h. Each key has
 * one row in a table of (name, parser) so the accepted keys are visible in one
 * place and match the flags of `submit`.
 *
 * Pure: must never do I/O or read the clock (now_at comes in), so it can be
 * unit-tested and fuzzed.
 */
#include "batch.h"

#include "bt_err.h"
#include "bt_time.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*key_parse_fn)(const char *key, json_t *v, int64_t now_at,
                            bt_cli_spec_t *s, char *err, size_t errlen);

static int want_string(const char *key, json_t *v, char *err, size_t errlen) {
  if (!json_is_string(v)) {
    snprintf(err, errlen, "%s must be a string", key);
    return BT_EINVAL;
  }
  return 0;
}

/* A string field holding a Baton name (capability, key). */
static int name_string(const char *key, json_t *v, char **out, char *err,
                       size_t errlen) {
  if (want_string(key, v, err, errlen) != 0)
    return BT_EINVAL;
  if (json_string_length(v) == 0) {
    snprintf(err, errlen, "%s must not be empty", key);
    return BT_EINVAL;
  }
  if (bt_cli_check_name(key, json_string_value(v), err, errlen) != 0)
    return BT_EINVAL;
  free(*out);
  *out = strdup(json_string_value(v));
  if (*out == NULL)
    abort();
  return 0;
}

static int parse_capability(const char *key, json_t *v, int64_t now_at,
                            bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return name_string(key, v, &s->capability, err, errlen);
}

static int parse_key(const char *key, json_t *v, int64_t now_at,
                     bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return name_string(key, v, &s->key, err, errlen);
}

static void set_payload(bt_cli_spec_t *s, const void *p, size_t len) {
  free(s->payload);
  s->payload = NULL;
  s->payload_len = len;
  if (len == 0)
    return;
  s->payload = malloc(len);
  if (s->payload == NULL)
    abort();
  memcpy(s->payload, p, len);
}

static int parse_payload(const char *key, json_t *v, int64_t now_at,
                         bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  if (want_string(key, v, err, errlen) != 0)
    return BT_EINVAL;
  set_payload(s, json_string_value(v), json_string_length(v));
  return 0;
}

static int parse_payload_b64(const char *key, json_t *v, int64_t now_at,
                             bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  if (want_string(key, v, err, errlen) != 0)
    return BT_EINVAL;
  const char *b64 = json_string_value(v);
  size_t len = json_string_length(v);
  size_t max = len / 4 * 3 + 3;
  uint8_t *bin = malloc(max + 1);
  if (bin == NULL)
    abort();
  size_t bin_len = 0;
  /* Standard alphabet, padded or not; line breaks from `base64` are tolerated. */
  if (len > 0 &&
      sodium_base642bin(bin, max, b64, len, " \t\r\n", &bin_len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 &&
      sodium_base642bin(bin, max, b64, len, " \t\r\n", &bin_len, NULL,
                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0) {
    free(bin);
    snprintf(err, errlen, "%s is not valid base64", key);
    return BT_EINVAL;
  }
  set_payload(s, bin, bin_len);
  free(bin);
  return 0;
}

static int parse_int(const char *key, json_t *v, json_int_t min, json_int_t max,
                     uint32_t *out, bool *has, char *err, size_t errlen) {
  if (!json_is_integer(v) || json_integer_value(v) < min ||
      json_integer_value(v) > max) {
    snprintf(err, errlen, "%s must be an integer %lld-%lld", key, (long long)min,
             (long long)max);
    return BT_EINVAL;
  }
  *out = (uint32_t)json_integer_value(v);
  *has = true;
  return 0;
}

static int parse_priority(const char *key, json_t *v, int64_t now_at,
                          bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return parse_int(key, v, 0, BT_CLI_PRIORITY_MAX, &s->priority,
                   &s->has_priority, err, errlen);
}

static int parse_max_attempts(const char *key, json_t *v, int64_t now_at,
                              bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return parse_int(key, v, 1, BT_CLI_MAX_ATTEMPTS_MAX, &s->max_attempts,
                   &s->has_max_attempts, err, errlen);
}

static int parse_max_cost(const char *key, json_t *v, int64_t now_at,
                          bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  if (!json_is_number(v) || json_number_value(v) < 0) {
    snprintf(err, errlen, "%s must be a number >= 0", key);
    return BT_EINVAL;
  }
  s->max_cost = json_number_value(v);
  s->has_max_cost = true;
  return 0;
}

static int parse_when(const char *key, json_t *v, int64_t now_at,
                      int64_t *out, bool *has, char *err, size_t errlen) {
  if (want_string(key, v, err, errlen) != 0)
    return BT_EINVAL;
  if (bt_parse_when(json_string_value(v), now_at, out) != 0) {
    snprintf(err, errlen,
             "%s must be a duration (90s, 15m, 2h, 3d) or an RFC 3339 time, "
             "not \"%.64s\"",
             key, json_string_value(v));
    return BT_EINVAL;
  }
  *has = true;
  return 0;
}

static int parse_deadline(const char *key, json_t *v, int64_t now_at,
                          bt_cli_spec_t *s, char *err, size_t errlen) {
  return parse_when(key, v, now_at, &s->deadline_at, &s->has_deadline, err,
                    errlen);
}

static int parse_not_before(const char *key, json_t *v, int64_t now_at,
                            bt_cli_spec_t *s, char *err, size_t errlen) {
  return parse_when(key, v, now_at, &s->not_before_at, &s->has_not_before, err,
                    errlen);
}

/* A list: an array of non-empty strings, or one comma-separated string. */
static int parse_list(const char *key, json_t *v, bt_cli_strv_t *out, char *err,
                      size_t errlen) {
  char why[160];
  bt_cli_strv_close(out); /* a repeated key cannot occur (duplicates are refused) */
  if (json_is_string(v)) {
    if (bt_cli_strv_split(out, json_string_value(v), json_string_length(v), why,
                          sizeof why) != 0) {
      snprintf(err, errlen, "%s: %s", key, why);
      return BT_EINVAL;
    }
    return bt_cli_check_names(key, out, err, errlen);
  }
  if (!json_is_array(v)) {
    snprintf(err, errlen,
             "%s must be an array of strings or a comma-separated string", key);
    return BT_EINVAL;
  }
  size_t i;
  json_t *item;
  json_array_foreach(v, i, item) {
    if (!json_is_string(item) || json_string_length(item) == 0) {
      snprintf(err, errlen, "%s[%zu] must be a non-empty string", key, i);
      return BT_EINVAL;
    }
    bt_cli_strv_push(out, json_string_value(item), json_string_length(item));
  }
  return bt_cli_check_names(key, out, err, errlen);
}

static int parse_region(const char *key, json_t *v, int64_t now_at,
                        bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return parse_list(key, v, &s->regions, err, errlen);
}

static int parse_cert(const char *key, json_t *v, int64_t now_at,
                      bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return parse_list(key, v, &s->certs, err, errlen);
}

static int parse_prefer(const char *key, json_t *v, int64_t now_at,
                        bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return parse_list(key, v, &s->prefer, err, errlen);
}

static int parse_avoid(const char *key, json_t *v, int64_t now_at,
                       bt_cli_spec_t *s, char *err, size_t errlen) {
  (void)now_at;
  return parse_list(key, v, &s->avoid, err, errlen);
}

/* Every key a batch line may hold: the submit flags with '_' for '-'. */
static const struct {
  const char *name;
  key_parse_fn parse;
} batch_keys[] = {
    {"capability", parse_capability},
    {"payload", parse_payload},
    {"payload_b64", parse_payload_b64},
    {"priority", parse_priority},
    {"deadline", parse_deadline},
    {"not_before", parse_not_before},
    {"region", parse_region},
    {"cert", parse_cert},
    {"max_cost", parse_max_cost},
    {"prefer", parse_prefer},
    {"avoid", parse_avoid},
    {"max_attempts", parse_max_attempts},
    {"key", parse_key},
};

int bt_cli_batch_parse_line(const char *line, size_t len, int64_t now_at,
                            bt_cli_spec_t *out, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (obj == NULL) {
    snprintf(err, errlen, "invalid JSON at column %d: %s", jerr.column,
             jerr.text);
    return BT_EINVAL;
  }
  int rv = BT_EINVAL;
  if (!json_is_object(obj)) {
    snprintf(err, errlen, "not a JSON object");
    goto out;
  }
  if (json_object_get(obj, "payload") != NULL &&
      !json_is_null(json_object_get(obj, "payload")) &&
      json_object_get(obj, "payload_b64") != NULL &&
      !json_is_null(json_object_get(obj, "payload_b64"))) {
    snprintf(err, errlen, "payload and payload_b64 exclude each other");
    goto out;
  }
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    size_t k = 0;
    while (k < sizeof batch_keys / sizeof batch_keys[0] &&
           strcmp(batch_keys[k].name, key) != 0)
      k++;
    if (k == sizeof batch_keys / sizeof batch_keys[0]) {
      snprintf(err, errlen, "unknown key \"%.64s\"", key);
      goto out;
    }
    if (json_is_null(v))
      continue;
    if (batch_keys[k].parse(key, v, now_at, out, err, errlen) != 0)
      goto out;
  }
  if (out->capability == NULL) {
    snprintf(err, errlen, "missing capability");
    goto out;
  }
  rv = 0;
out:
  json_decref(obj);
  if (rv != 0)
    bt_cli_spec_close(out);
  return rv;
}

void bt_cli_batch_init(bt_cli_batch_t *b) { memset(b, 0, sizeof *b); }

void bt_cli_batch_close(bt_cli_batch_t *b) {
  for (size_t i = 0; i < b->n; i++)
    bt_cli_spec_close(&b->specs[i]);
  free(b->specs);
  memset(b, 0, sizeof *b);
}

static bool is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' &&
        s[i] != '\v')
      return false;
  return true;
}

int bt_cli_batch_parse(const char *text, size_t len, int64_t now_at,
                       bt_cli_batch_t *out, char *err, size_t errlen) {
  size_t pos = 0, line_no = 0;
  size_t first = out->n;
  /* A UTF-8 byte order mark from an editor is not part of the first line. */
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
    pos = 3;
  while (pos < len) {
    line_no++;
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - text) : len;
    const char *line = text + pos;
    size_t llen = end - pos;
    pos = nl ? end + 1 : len;
    if (llen > 0 && line[llen - 1] == '\r')
      llen--;
    if (is_blank(line, llen))
      continue;
    if (out->n == out->cap) {
      out->cap = out->cap ? out->cap * 2 : 64;
      out->specs = realloc(out->specs, out->cap * sizeof *out->specs);
      if (out->specs == NULL)
        abort();
    }
    bt_cli_spec_t *s = &out->specs[out->n];
    bt_cli_spec_init(s);
    char why[256];
    if (bt_cli_batch_parse_line(line, llen, now_at, s, why, sizeof why) != 0) {
      snprintf(err, errlen, "line %zu: %s", line_no, why);
      while (out->n > first)
        bt_cli_spec_close(&out->specs[--out->n]);
      return BT_EINVAL;
    }
    out->n++;
  }
  return 0;
}

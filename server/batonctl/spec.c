/* Package specs and string lists; see spec.h. Pure. */
#include "spec.h"

#include "bt_err.h"
#include "bt_valid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bt_cli_strv_init(bt_cli_strv_t *v) { memset(v, 0, sizeof *v); }

void bt_cli_strv_close(bt_cli_strv_t *v) {
  for (size_t i = 0; i < v->n; i++)
    free(v->v[i]);
  free(v->v);
  memset(v, 0, sizeof *v);
}

void bt_cli_strv_push(bt_cli_strv_t *v, const char *s, size_t len) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 4;
    v->v = realloc(v->v, v->cap * sizeof *v->v);
    if (v->v == NULL)
      abort();
  }
  char *c = malloc(len + 1);
  if (c == NULL)
    abort();
  memcpy(c, s, len);
  c[len] = '\0';
  v->v[v->n++] = c;
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

int bt_cli_strv_split(bt_cli_strv_t *v, const char *s, size_t len, char *err,
                      size_t errlen) {
  size_t i = 0;
  for (;;) {
    size_t start = i;
    while (i < len && s[i] != ',')
      i++;
    size_t a = start, b = i;
    while (a < b && blank(s[a]))
      a++;
    while (b > a && blank(s[b - 1]))
      b--;
    if (a == b) {
      snprintf(err, errlen, "empty item in list \"%.*s\"", (int)(len > 64 ? 64 : len),
               s);
      return BT_EINVAL;
    }
    if (memchr(s + a, '\0', b - a) != NULL) {
      snprintf(err, errlen, "NUL byte in list item");
      return BT_EINVAL;
    }
    bt_cli_strv_push(v, s + a, b - a);
    if (i == len)
      return 0;
    i++; /* past the comma */
  }
}

void bt_cli_spec_init(bt_cli_spec_t *s) {
  memset(s, 0, sizeof *s);
  bt_cli_strv_init(&s->regions);
  bt_cli_strv_init(&s->certs);
  bt_cli_strv_init(&s->prefer);
  bt_cli_strv_init(&s->avoid);
}

void bt_cli_spec_close(bt_cli_spec_t *s) {
  free(s->capability);
  free(s->payload);
  free(s->key);
  bt_cli_strv_close(&s->regions);
  bt_cli_strv_close(&s->certs);
  bt_cli_strv_close(&s->prefer);
  bt_cli_strv_close(&s->avoid);
  bt_cli_spec_init(s);
}

int bt_cli_check_name(const char *what, const char *s, char *err, size_t errlen) {
  if (bt_valid_name(s))
    return 0;
  snprintf(err, errlen,
           "%s \"%.64s\" is not a valid name (1-%d letters, digits and . _ - : / "
           "@ +)",
           what, s, BT_NAME_MAX);
  return BT_EINVAL;
}

int bt_cli_check_names(const char *what, const bt_cli_strv_t *v, char *err,
                       size_t errlen) {
  for (size_t i = 0; i < v->n; i++)
    if (bt_cli_check_name(what, v->v[i], err, errlen) != 0)
      return BT_EINVAL;
  return 0;
}

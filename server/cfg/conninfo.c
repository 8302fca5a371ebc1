/*
 * Hiding the password in a PostgreSQL connection string before it is shown
 * (`batonctl config get`, the config dump). The broker needs the password to
 * connect, so it keeps the string whole; only what it prints is redacted.
 * Both libpq forms: keyword/value ("host=db password=s3cret") and URIs
 * ("postgresql://baton:s3cret@db/baton?password=..." — user info and query).
 */
#include "cfg.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MASK "***"

/* Appends n bytes of s to out (at *o, capacity len), always terminated. */
static void put(char *out, size_t len, size_t *o, const char *s, size_t n) {
  for (size_t i = 0; i < n && *o + 1 < len; i++)
    out[(*o)++] = s[i];
  out[*o < len ? *o : len - 1] = '\0';
}

/* Length of the value at s: a '…' quoted one (backslash escapes) in
 * keyword/value form, else up to white space (or '&' in a URI query). */
static size_t value_len(const char *s, bool uri) {
  size_t i = 0;
  if (!uri && s[0] == '\'') {
    for (i = 1; s[i] != '\0' && s[i] != '\''; i++)
      if (s[i] == '\\' && s[i + 1] != '\0')
        i++;
    return s[i] == '\'' ? i + 1 : i;
  }
  while (s[i] != '\0' && !isspace((unsigned char)s[i]) && !(uri && s[i] == '&'))
    i++;
  return i;
}

void bt_cfg_redact_conninfo(const char *in, char *out, size_t len) {
  if (len == 0)
    return;
  out[0] = '\0';
  size_t o = 0, i = 0;
  bool uri = strncmp(in, "postgresql://", 13) == 0 || strncmp(in, "postgres://", 11) == 0;
  if (uri) {
    /* user:password@ in the authority (before the first '/', '?' or '#'). */
    const char *auth = strstr(in, "://") + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL) {
      put(out, len, &o, in, (size_t)(colon + 1 - in));
      put(out, len, &o, MASK, strlen(MASK));
      i = (size_t)(at - in);
    }
  }
  while (in[i] != '\0') {
    /* "password" starting a keyword: at the start, after white space, or
     * after '?' / '&' in a URI's query. */
    bool starts = i == 0 || isspace((unsigned char)in[i - 1]) ||
                  (uri && (in[i - 1] == '?' || in[i - 1] == '&'));
    if (starts && strncmp(in + i, "password", 8) == 0) {
      size_t j = i + 8;
      while (!uri && (in[j] == ' ' || in[j] == '\t'))
        j++;
      if (in[j] == '=') {
        j++;
        while (!uri && (in[j] == ' ' || in[j] == '\t'))
          j++;
        put(out, len, &o, in + i, j - i);
        put(out, len, &o, MASK, strlen(MASK));
        i = j + value_len(in + j, uri);
        continue;
      }
    }
    put(out, len, &o, in + i, 1);
    i++;
  }
}

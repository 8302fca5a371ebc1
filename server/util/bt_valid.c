/* Name and text validation; see bt_valid.h. */
#include "bt_valid.h"

#include <string.h>

static bool name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-' || c == ':' || c == '/' || c == '@' ||
         c == '+';
}

bool bt_valid_name(const char *s) {
  if (s == NULL || *s == '\0')
    return false;
  size_t n = 0;
  for (; s[n]; n++)
    if (n >= BT_NAME_MAX || !name_char((unsigned char)s[n]))
      return false;
  return true;
}

/* Length of the UTF-8 sequence at s (at most len bytes), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len) {
  unsigned char c = s[0];
  size_t n;
  unsigned min;
  unsigned cp;
  if (c < 0x80)
    return c == 0 ? 0 : 1;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    cp = c & 0x1f;
    min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    cp = c & 0x0f;
    min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    cp = c & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (n > len)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

bool bt_valid_utf8(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < len;) {
    size_t n = utf8_seq(u + i, len - i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

bool bt_valid_text(const char *s, size_t max) {
  if (s == NULL)
    return false;
  size_t len = strlen(s);
  if (len > max || !bt_valid_utf8(s, len))
    return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f)
      return false;
    /* U+0080..U+009F (C1 controls: NEL, CSI, …) are 0xC2 0x80..0x9F in UTF-8 */
    if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9f)
      return false;
  }
  return true;
}

char *bt_sanitize_text(const char *s, char *dst, size_t cap) {
  size_t o = 0;
  if (cap == 0)
    return dst;
  const unsigned char *u = (const unsigned char *)(s ? s : "");
  size_t len = strlen((const char *)u);
  for (size_t i = 0; i < len && o + 1 < cap;) {
    size_t n = utf8_seq(u + i, len - i);
    bool control = (n == 1 && (u[i] < 0x20 || u[i] == 0x7f)) ||
                   (n == 2 && u[i] == 0xc2 && u[i + 1] <= 0x9f);
    if (n == 0 || control) {
      dst[o++] = '?';
      i += n ? n : 1;
      continue;
    }
    if (o + n >= cap)
      break;
    memcpy(dst + o, u + i, n);
    o += n;
    i += n;
  }
  dst[o] = '\0';
  return dst;
}

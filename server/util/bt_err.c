/* bt_strerror(): messages for Baton's own codes and for negative errno values. */
#include "bt_err.h"

#include <string.h>

const char *bt_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
#define BT_ERR_CASE(name, msg)                                                 \
  case BT_##name:                                                              \
    return msg;
    BT_ERRNO_MAP(BT_ERR_CASE)
#undef BT_ERR_CASE
  default:
    break;
  }
  if (code < 0 && code > BT_ERR_BASE)
    return strerror(-code);
  return "unknown error";
}

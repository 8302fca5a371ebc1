/* The statement table, generated from sql.def. */
#include "store_int.h"

const char *const bt_store_sql[BT_SQL__COUNT] = {
#define BT_SQL_ENUM(id, text) text,
#include "sql.def"
#undef BT_SQL_ENUM
};

const char *const bt_store_sql_name[BT_SQL__COUNT] = {
#define BT_SQL_ENUM(id, text) "bt_" #id,
#include "sql.def"
#undef BT_SQL_ENUM
};

/* The first dimension's length of parameter 0, a one-dimensional array in the
 * wire format (ndim, flags, element type, then length and lower bound per
 * dimension, all big-endian int32); 0 for an empty array or anything else. */
static uint32_t first_array_len(const bt_pgparams_t *p) {
  if (p->n < 1 || p->lens[0] < 20)
    return 0;
  const uint8_t *b = p->buf + p->off[0];
  uint32_t ndim = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
  if (ndim != 1)
    return 0;
  return (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
}

int bt_store__sized_stmt(int stmt, const bt_pgparams_t *p) {
  int large;
  switch (stmt) {
  case BT_SQL_PACKAGES_INSERT:
    large = BT_SQL_PACKAGES_INSERT_LARGE;
    break;
  case BT_SQL_PACKAGES_INSERT_KEYED:
    large = BT_SQL_PACKAGES_INSERT_KEYED_LARGE;
    break;
  case BT_SQL_FINISH:
    large = BT_SQL_FINISH_LARGE;
    break;
  default:
    return stmt;
  }
  return first_array_len(p) > BT_STORE_AUDIT_BATCH_MAX ? large : stmt;
}

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
  return bt_pgp_array_len(p, 0) > BT_STORE_AUDIT_BATCH_MAX ? large : stmt;
}

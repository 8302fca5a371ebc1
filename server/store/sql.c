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

int bt_store__stmt_for(int stmt, const bt_pgparams_t *p, bool guarded) {
  if (guarded && stmt == BT_SQL_ASSIGN)
    return BT_SQL_ASSIGN_GUARDED;
  if (guarded && stmt == BT_SQL_PACKAGES_INSERT)
    stmt = BT_SQL_PACKAGES_INSERT_GUARDED;
  int large;
  switch (stmt) {
  case BT_SQL_PACKAGES_INSERT:
    large = BT_SQL_PACKAGES_INSERT_LARGE;
    break;
  case BT_SQL_PACKAGES_INSERT_GUARDED:
    large = BT_SQL_PACKAGES_INSERT_GUARDED_LARGE;
    break;
  case BT_SQL_PACKAGES_INSERT_KEYED:
    large = BT_SQL_PACKAGES_INSERT_KEYED_LARGE;
    break;
  case BT_SQL_FINISH:
    large = BT_SQL_FINISH_LARGE;
    break;
  case BT_SQL_COMPLETE:
    large = BT_SQL_COMPLETE_LARGE;
    break;
  default:
    return stmt;
  }
  return bt_pgp_array_len(p, 0) > BT_STORE_AUDIT_BATCH_MAX ? large : stmt;
}

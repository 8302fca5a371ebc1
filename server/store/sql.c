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

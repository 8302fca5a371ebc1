# server/store's engine against a real PostgreSQL (pgembed): merged writes.
bt_add_unit_test(NAME test_store_merge SOURCES test_store_merge.c
                 LIBS bt_store bt_pgembed bt_util PkgConfig::LIBPQ PkgConfig::LIBUV
                 TIMEOUT 120)

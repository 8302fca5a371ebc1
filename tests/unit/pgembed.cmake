# server/pgembed against a real PostgreSQL (initdb, pg_ctl): a few clusters,
# crashes simulated with fork + _exit, a path too long for sun_path.
bt_add_unit_test(NAME test_pgembed SOURCES test_pgembed.c
                 LIBS bt_pgembed bt_util PkgConfig::LIBPQ TIMEOUT 120)

# server/store's engine against a real PostgreSQL (pgembed): merged writes, the
# leader fence of broker HA, lanes (package writes over several
# connections), the pipeline and replays. store_fixture.c: the cluster and the loop.
bt_add_unit_test(NAME test_store_merge SOURCES test_store_merge.c store_fixture.c
                 LIBS bt_store bt_pgembed bt_util PkgConfig::LIBPQ PkgConfig::LIBUV
                 TIMEOUT 120)
bt_add_unit_test(NAME test_store_fence SOURCES test_store_fence.c store_fixture.c
                 LIBS bt_store bt_pgembed bt_util PkgConfig::LIBPQ PkgConfig::LIBUV
                 TIMEOUT 120)
bt_add_unit_test(NAME test_store_lanes SOURCES test_store_lanes.c store_fixture.c
                 LIBS bt_store bt_pgembed bt_util PkgConfig::LIBPQ PkgConfig::LIBUV
                 TIMEOUT 120)
bt_add_unit_test(NAME test_store_pipeline SOURCES test_store_pipeline.c store_fixture.c
                 LIBS bt_store bt_pgembed bt_util PkgConfig::LIBPQ PkgConfig::LIBUV
                 TIMEOUT 120)
bt_add_unit_test(NAME test_store_replay SOURCES test_store_replay.c store_fixture.c
                 LIBS bt_store bt_pgembed bt_util PkgConfig::LIBPQ PkgConfig::LIBUV
                 TIMEOUT 120)

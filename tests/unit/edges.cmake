# The edge helpers: util (time, names/text, id map, errors/logging), the wire
# helpers in proto/ (framing, auth, the budgeted allocator), the config table,
# the validation of agent and control messages, and the PostgreSQL binary
# encoders/decoders. Pure unit tests: no sockets, no database; test_cfg writes
# into its own mkdtemp dir.
set(BT_EDGE_TEST_DIR ${CMAKE_CURRENT_LIST_DIR})

foreach(t time valid idmap log)
  bt_add_unit_test(NAME test_util_${t}
                   SOURCES ${BT_EDGE_TEST_DIR}/test_util_${t}.c
                   LIBS bt_util TIMEOUT 60)
endforeach()

foreach(t frame auth pballoc)
  bt_add_unit_test(NAME test_${t}
                   SOURCES ${BT_EDGE_TEST_DIR}/test_${t}.c
                   LIBS bt_proto TIMEOUT 60)
endforeach()

bt_add_unit_test(NAME test_cfg SOURCES ${BT_EDGE_TEST_DIR}/test_cfg.c
                 LIBS bt_cfg TIMEOUT 30)

# Internal headers (xport_int.h, ctl_int.h, pgwire.h) live in the module folders,
# which the libraries already export as include directories.
bt_add_unit_test(NAME test_xport_validate SOURCES ${BT_EDGE_TEST_DIR}/test_xport_validate.c
                 LIBS bt_xport TIMEOUT 30)

bt_add_unit_test(NAME test_ctl_validate SOURCES ${BT_EDGE_TEST_DIR}/test_ctl_validate.c
                 LIBS bt_ctl m TIMEOUT 30)

bt_add_unit_test(NAME test_pgwire SOURCES ${BT_EDGE_TEST_DIR}/test_pgwire.c
                 LIBS bt_store TIMEOUT 60)

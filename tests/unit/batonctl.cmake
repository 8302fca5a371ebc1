# batonctl (server/batonctl): the batch parser and the table renderer as pure
# unit tests, and the real binary run as a process against a fake control
# server living in a thread of the test.
find_package(Threads REQUIRED)

bt_add_unit_test(NAME test_batonctl_batch
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_batonctl_batch.c
  LIBS bt_batonctl_pure
  TIMEOUT 30)

bt_add_unit_test(NAME test_batonctl_table
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_batonctl_table.c
  LIBS bt_batonctl_pure
  TIMEOUT 30)

bt_add_unit_test(NAME test_batonctl_cli
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_batonctl_cli.c
  LIBS bt_proto PkgConfig::JANSSON Threads::Threads
  TIMEOUT 120)
target_compile_definitions(test_batonctl_cli PRIVATE
  BATONCTL_BIN="$<TARGET_FILE:batonctl>")
add_dependencies(test_batonctl_cli batonctl)

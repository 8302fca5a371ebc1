# server/util/bt_hours: the working-hours parser and matcher, and the TZif
# reader, cross-checked against glibc over every installed zone. Writes its
# hand-built zone files into its own mkdtemp dir.
bt_add_unit_test(NAME test_util_hours
                 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_util_hours.c
                 LIBS bt_util TIMEOUT 120)

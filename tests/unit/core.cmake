# server/core: the pure core, driven through its public API with a clock the
# tests control (no mocks). core_fixture.c holds the shared helpers.
foreach(t vendors packages sched agents recovery score health reconfig)
  bt_add_unit_test(NAME test_core_${t}
                   SOURCES test_core_${t}.c core_fixture.c
                   LIBS bt_core bt_util TIMEOUT 60)
endforeach()
# The class queue (classq.c) against a brute-force model; reads core_int.h.
bt_add_unit_test(NAME test_core_classq SOURCES test_core_classq.c
                 LIBS bt_core bt_util TIMEOUT 60)
# Seeded randomized property tests, one program in two CTest entries:
#   test_core_property        small worlds: five seeds × 4,000 events with an
#                             oracle on every assignment, plus a replay;
#   test_core_property_world  350 vendors, ~1,000 agents, 50,000 events and
#                             ~10,000 packages, run twice (same stream) and
#                             with another seed.
bt_add_unit_test(NAME test_core_property
                 SOURCES test_core_property.c core_fixture.c
                 LIBS bt_core bt_util TIMEOUT 300)
add_test(NAME test_core_property_world COMMAND test_core_property world)
set_tests_properties(test_core_property_world PROPERTIES TIMEOUT 300 LABELS unit)

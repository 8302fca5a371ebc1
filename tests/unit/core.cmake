# server/core: the pure core, driven through its public API with a clock the
# tests control (no mocks). core_fixture.c holds the shared helpers.
foreach(t vendors packages sched agents recovery)
  bt_add_unit_test(NAME test_core_${t}
                   SOURCES test_core_${t}.c core_fixture.c
                   LIBS bt_core bt_util TIMEOUT 60)
endforeach()
# Seeded randomized property test: ~25k events over five seeds, plus a replay.
bt_add_unit_test(NAME test_core_property
                 SOURCES test_core_property.c core_fixture.c
                 LIBS bt_core bt_util TIMEOUT 300)

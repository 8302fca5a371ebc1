# The failover benchmark (tests/bench/README.md, "Failover benchmark"):
# bt_failover, the agent process tests/bench/failover starts once per vendor, and
# one CTest smoke entry.
#
# This file has two modes. Included by CMakeLists.txt (the usual case) it
# registers the target and the test. Run as `cmake -P failover.cmake` (which the
# test does) it runs the benchmark small and checks that it exited 0 — the driver
# exits non-zero when a package was lost or completed twice — and that its JSON
# has every key. A benchmark never fails on time, so no figure is checked; a
# detection that never happens shows as null, not as a failure.
if(CMAKE_SCRIPT_MODE_FILE)
  execute_process(
    COMMAND ${BT_PYTHON3} -u ${BT_FAILOVER_RUN} --packages 300 --hold 8s --json
    OUTPUT_VARIABLE out
    RESULT_VARIABLE rc)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "tests/bench/failover exited with ${rc} (lost or duplicated "
                        "packages, or the run failed: see above)")
  endif()
  foreach(key packages vendors agents_per_vendor slots killed_vendor in_flight_at_kill
              killed_in_flight detection_s vendor_failed_s all_reassigned_s all_started_s lost
              completed_twice handoffs_from_killed)
    string(JSON value ERROR_VARIABLE err GET "${out}" ${key})
    if(err)
      message(FATAL_ERROR "the benchmark's JSON lacks \"${key}\": ${err}")
    endif()
  endforeach()
  return()
endif()

add_executable(bt_failover ${CMAKE_CURRENT_LIST_DIR}/bt_failover.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_util.c)
target_link_libraries(bt_failover PRIVATE bt_agent PkgConfig::LIBUV)

add_test(NAME failover_smoke
         COMMAND ${CMAKE_COMMAND} -DBT_PYTHON3=${PYTHON3}
                 -DBT_FAILOVER_RUN=${CMAKE_CURRENT_LIST_DIR}/failover
                 -P ${CMAKE_CURRENT_LIST_FILE})
set_tests_properties(failover_smoke PROPERTIES TIMEOUT 180 LABELS bench
  ENVIRONMENT "BATON_BUILD_DIR=${CMAKE_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")

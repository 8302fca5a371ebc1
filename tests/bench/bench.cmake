# The broker benchmark (tests/bench/README.md): bt_bench, the load generator that
# tests/bench/run drives, and one CTest smoke entry.
#
# This file has two modes. Included by CMakeLists.txt (the usual case) it
# registers the target and the test. Run as `cmake -P bench.cmake` (which the
# test does) it runs the benchmark small and checks that it exited 0 and that its
# JSON has every key; a benchmark never fails on time, so no figure is checked.
if(CMAKE_SCRIPT_MODE_FILE)
  execute_process(
    COMMAND ${BT_PYTHON3} -u ${BT_BENCH_RUN} --packages 2000 --queued 5000 --wal-warmup-mb 32 --json
    OUTPUT_VARIABLE out
    RESULT_VARIABLE rc)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "tests/bench/run exited with ${rc}")
  endif()
  foreach(key packages packages_per_s process_per_s mixed_packages_per_s
              submit_ack_p50_ms submit_ack_p99_ms submit_to_start_p50_ms
              submit_to_start_p99_ms broker_peak_rss_mb broker_bytes_per_queued_package
              agents slots submitters window batch bulk_batch payload_bytes queued)
    string(JSON value ERROR_VARIABLE err GET "${out}" ${key})
    if(err)
      message(FATAL_ERROR "the benchmark's JSON lacks \"${key}\": ${err}")
    endif()
  endforeach()
  return()
endif()

find_package(Threads REQUIRED)

add_executable(bt_bench
  ${CMAKE_CURRENT_LIST_DIR}/bt_bench.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_ctl.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_submit.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_util.c)
target_link_libraries(bt_bench PRIVATE bt_agent bt_proto bt_util PkgConfig::LIBUV
                      Threads::Threads)

add_test(NAME bench_smoke
         COMMAND ${CMAKE_COMMAND} -DBT_PYTHON3=${PYTHON3}
                 -DBT_BENCH_RUN=${CMAKE_CURRENT_LIST_DIR}/run
                 -P ${CMAKE_CURRENT_LIST_FILE})
set_tests_properties(bench_smoke PROPERTIES TIMEOUT 300 LABELS bench
  ENVIRONMENT "BATON_BUILD_DIR=${CMAKE_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")

# The scheduler micro-benchmark (tests/bench/README.md, "Scheduler
# micro-benchmark"): bt_bench_sched drives the pure core directly and prints the
# cost of a routing decision with 1k-1M queued packages and 10-1,000 vendors.
# The CTest entry runs it small (--quick) and only checks that it exits 0: a
# benchmark never fails on time.
add_executable(bt_bench_sched
  ${CMAKE_CURRENT_LIST_DIR}/bench_sched.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_util.c)
target_link_libraries(bt_bench_sched PRIVATE bt_core bt_util)

add_test(NAME bench_sched_smoke COMMAND bt_bench_sched --quick)
set_tests_properties(bench_sched_smoke PROPERTIES TIMEOUT 300 LABELS bench)

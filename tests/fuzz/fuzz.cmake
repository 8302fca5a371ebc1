# libFuzzer targets, one per decoder (DESIGN.md "Security"). Built only with
# -DBATON_FUZZ=ON and clang: the top level then compiles every library with
# -fsanitize=fuzzer-no-link,address,undefined and these executables link
# libFuzzer (-fsanitize=fuzzer).
#
# Each target NAME is tests/fuzz/fuzz_NAME.c with its seed corpus in
# tests/fuzz/corpus/NAME/ and, when present, a dictionary tests/fuzz/NAME.dict.
# CTest runs each for BATON_FUZZ_SECONDS (label "fuzz"): the seeds first, then
# new inputs, which go to the build tree (fuzz-corpus/NAME), never to the seeds.
# `cmake --build DIR --target baton_fuzz` builds only the fuzz targets.
#
# By hand, e.g. a long run (libFuzzer writes new inputs into the FIRST directory:
# give it a scratch one, never the seeds):
#   build-fuzz/tests/fuzz/fuzz_batch -max_total_time=600 -dict=tests/fuzz/batch.dict \
#     /tmp/batch-corpus tests/fuzz/corpus/batch
# Reproduce a crash: build-fuzz/tests/fuzz/fuzz_batch FILE (see fuzz-artifacts/).
# 8 s a target keeps the whole suite inside CI's budget; the seeds run first
# either way, and a long run by hand (below) is where new inputs are hunted.
set(BATON_FUZZ_SECONDS 8 CACHE STRING "seconds each fuzz target runs under ctest")

add_custom_target(baton_fuzz)

# bt_add_fuzz_target(NAME name LIBS lib ...)
function(bt_add_fuzz_target)
  cmake_parse_arguments(F "" "NAME" "LIBS" ${ARGN})
  set(exe fuzz_${F_NAME})
  set(dir ${CMAKE_CURRENT_LIST_DIR})
  add_executable(${exe} ${dir}/fuzz_${F_NAME}.c)
  target_include_directories(${exe} PRIVATE ${dir})
  target_link_libraries(${exe} PRIVATE ${F_LIBS})
  target_link_options(${exe} PRIVATE -fsanitize=fuzzer)
  add_dependencies(baton_fuzz ${exe})

  set(work ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/${F_NAME})
  set(artifacts ${CMAKE_CURRENT_BINARY_DIR}/fuzz-artifacts)
  file(MAKE_DIRECTORY ${work} ${artifacts})
  set(args -max_total_time=${BATON_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048
           -print_final_stats=1 -artifact_prefix=${artifacts}/${F_NAME}-)
  if(EXISTS ${dir}/${F_NAME}.dict)
    list(APPEND args -dict=${dir}/${F_NAME}.dict)
  endif()
  # The first directory receives new inputs; the seeds are only read.
  add_test(NAME ${exe} COMMAND ${exe} ${args} ${work} ${dir}/corpus/${F_NAME})
  set_tests_properties(${exe} PROPERTIES LABELS fuzz TIMEOUT 120
    ENVIRONMENT "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1;ASAN_OPTIONS=detect_leaks=1")
endfunction()

bt_add_fuzz_target(NAME agent_request LIBS bt_xport)    # server/xport/validate.c
bt_add_fuzz_target(NAME agent_reply LIBS bt_agent)      # worker/lib/wire.c
bt_add_fuzz_target(NAME agent_sealed LIBS bt_xport bt_agent)  # proto/bt_seal.c + both ends
bt_add_fuzz_target(NAME ctl_frame LIBS bt_proto)        # proto/bt_frame.c
bt_add_fuzz_target(NAME ctl_request LIBS bt_ctl m)      # server/ctl/validate.c
bt_add_fuzz_target(NAME batch LIBS bt_batonctl_pure m)  # server/batonctl/batch.c
bt_add_fuzz_target(NAME cfg_file LIBS bt_cfg)           # server/cfg/cfg.c
bt_add_fuzz_target(NAME agent_config LIBS bt_agentd)    # worker/agentd/options.c
bt_add_fuzz_target(NAME time LIBS bt_util)              # server/util/bt_time.c
bt_add_fuzz_target(NAME hours LIBS bt_util)             # server/util/bt_hours.c (text)
bt_add_fuzz_target(NAME tzif LIBS bt_util)              # server/util/bt_hours.c (zone files)

# The generator of the binary seeds (see gen_seeds.c); not run by the tests.
add_executable(fuzz_gen_seeds ${CMAKE_CURRENT_LIST_DIR}/gen_seeds.c)
target_link_libraries(fuzz_gen_seeds PRIVATE bt_proto)

# Tests of libbaton-agent (worker/lib) and baton-agent (worker/agentd).
find_package(Threads REQUIRED)
set(BT_AGENT_TEST_DIR ${CMAKE_CURRENT_SOURCE_DIR})

# The session keys and per-message sealing both ends share (proto/bt_seal).
bt_add_unit_test(NAME test_seal
  SOURCES ${BT_AGENT_TEST_DIR}/test_seal.c
  LIBS bt_proto
  TIMEOUT 60)

bt_add_unit_test(NAME test_agent_protocol
  SOURCES ${BT_AGENT_TEST_DIR}/test_agent_protocol.c ${BT_AGENT_TEST_DIR}/agent_fake_broker.c
  LIBS bt_agent Threads::Threads
  TIMEOUT 120)

# Decoding broker replies under an allocation budget (worker/lib/wire.c).
bt_add_unit_test(NAME test_agent_wire
  SOURCES ${BT_AGENT_TEST_DIR}/test_agent_wire.c
  LIBS bt_agent
  TIMEOUT 30)

bt_add_unit_test(NAME test_agent_fd3
  SOURCES ${BT_AGENT_TEST_DIR}/test_agent_fd3.c
  LIBS bt_agentd
  TIMEOUT 30)

bt_add_unit_test(NAME test_agent_handler
  SOURCES ${BT_AGENT_TEST_DIR}/test_agent_handler.c
  LIBS bt_agentd
  TIMEOUT 120)

bt_add_unit_test(NAME test_agent_options
  SOURCES ${BT_AGENT_TEST_DIR}/test_agent_options.c
  LIBS bt_agentd
  TIMEOUT 30)

# The daemon end to end: spawns the real baton-agent binary.
bt_add_unit_test(NAME test_agent_daemon
  SOURCES ${BT_AGENT_TEST_DIR}/test_agent_daemon.c ${BT_AGENT_TEST_DIR}/agent_fake_broker.c
  LIBS bt_agent
  TIMEOUT 120)
target_compile_definitions(test_agent_daemon PRIVATE
  BATON_AGENT_BIN="$<TARGET_FILE:baton-agent>")
add_dependencies(test_agent_daemon baton-agent)

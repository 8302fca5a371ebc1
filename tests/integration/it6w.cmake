# Issue 6: sealed agent messages (per-session keys bound to the authentication,
# counters, secretbox or MAC-only). A TCP tap records a real agent's frames;
# replays and forgeries go through tests/tools/bt_nnsend (tools.cmake).
bt_add_integration_test(NAME it_wire_security SCRIPT test_wire_security.py TIMEOUT 150)
set_tests_properties(it_wire_security PROPERTIES LABELS "integration;it6")

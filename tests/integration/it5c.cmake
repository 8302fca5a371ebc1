# The remote control endpoint: batond --control tcp://127.0.0.1:PORT with an
# admin token; batonctl with, without and with a wrong token (exit codes,
# stderr, control.unauthenticated audit rows, no token in any log), hostile
# bytes on the port, and the start-up refusals (no token, a short token, a bad
# endpoint). About 30 s, mostly the 10 s stall sweep.
bt_add_integration_test(NAME it_control_tcp SCRIPT test_control_tcp.py TIMEOUT 120)
set_tests_properties(it_control_tcp PROPERTIES LABELS "integration;it5")

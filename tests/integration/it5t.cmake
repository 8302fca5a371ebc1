# `batonctl top`: two vendors with agents, finished work and a handoff made by
# `vendor fail`; then one plain frame (--once) and the live view under a
# pseudo-terminal (redraws, q and SIGTERM restore the screen). Helpers:
# fixtures_it4.py. About 10 s on a 2-core machine.
bt_add_integration_test(NAME it_top SCRIPT test_top.py TIMEOUT 120)
set_tests_properties(it_top PROPERTIES LABELS "integration;it5")

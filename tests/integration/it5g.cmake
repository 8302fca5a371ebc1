# `batonctl config get|set` and SIGHUP reload (issue 5, "Config"): one broker
# with a config file and two vendors' agents; routing, max_attempts and
# log_level changed at run time, refusals with their exit codes, audit rows,
# the file re-read on SIGHUP (and a broken one ignored). About 15 s.
bt_add_integration_test(NAME it_config SCRIPT test_config.py TIMEOUT 150)
set_tests_properties(it_config PROPERTIES LABELS "integration;it5")

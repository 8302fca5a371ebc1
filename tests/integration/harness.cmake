# The integration-test harness (harness.py) tested on what exists without the
# broker: a private PostgreSQL, the process helpers, wait_for, teardown, the
# runner, and the Broker/Agent/ctl plumbing against stand-in scripts.
bt_add_integration_test(NAME harness_selftest SCRIPT test_harness_selftest.py
                        TIMEOUT 120)

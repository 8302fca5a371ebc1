# End-to-end and fault tests on real processes (harness.py): 2,000 packages over
# two vendors, kill -9 of the broker under load, idempotency keys, the embedded
# PostgreSQL default, and `batond migrate`. Each runs in 5-15 s on a 2-core
# machine; the harness's per-test @test(timeout=...) (summed per script) stays
# below the CTest TIMEOUT, so a hang is torn down and reported with its logs
# before CTest kills the script.
bt_add_integration_test(NAME it_e2e SCRIPT test_e2e.py TIMEOUT 150)
bt_add_integration_test(NAME it_crash_restart SCRIPT test_crash_restart.py TIMEOUT 180)
bt_add_integration_test(NAME it_idempotency SCRIPT test_idempotency.py TIMEOUT 90)
bt_add_integration_test(NAME it_embedded SCRIPT test_embedded.py TIMEOUT 150)
bt_add_integration_test(NAME it_migrate SCRIPT test_migrate.py TIMEOUT 150)
set_tests_properties(it_e2e it_idempotency it_migrate
                     PROPERTIES LABELS "integration;it1")
set_tests_properties(it_crash_restart it_embedded
                     PROPERTIES LABELS "integration;it1;fault")

# Routing, waiting and ordering on real processes (helpers: fixtures_it3.py):
# eligibility over 1,000 mixed packages and the cost weight's direction, work no
# vendor may take waiting with its reason until one can, and priority with aging
# and not-before times. Each test function takes 3-20 s on a 2-core machine; the
# per-test @test(timeout=...) (summed per script) stays below the CTest TIMEOUT,
# so a hang is torn down and reported with its logs before CTest kills the script.
bt_add_integration_test(NAME it_routing SCRIPT test_routing.py TIMEOUT 400)
bt_add_integration_test(NAME it_waiting SCRIPT test_waiting.py TIMEOUT 120)
bt_add_integration_test(NAME it_aging SCRIPT test_aging.py TIMEOUT 260)
set_tests_properties(it_routing it_waiting it_aging
                     PROPERTIES LABELS "integration;it3")

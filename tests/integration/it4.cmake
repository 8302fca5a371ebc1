# Continuity acceptance tests (DESIGN.md "Continuity"): fault injection on real
# processes and a real PostgreSQL. Helpers: fixtures_it4.py, whose
# check_continuity() every test runs (nothing acknowledged lost, nothing
# completed twice, no constraint violated, handoff rows matching the attempts).
#   it_continuity_agents   kill -9 of an agent, a SIGSTOPped agent's stale
#                          results, a checkpoint carried across a handoff
#   it_continuity_vendors  a vendor losing every agent, the circuit breaker and
#                          its probe, data residency during failover
#   it_continuity_broker   kill -9 of batond under work, PostgreSQL down 10 s
#   it_continuity_ops      package cancel (SIGTERM, then SIGKILL), reassign --to
#                          with its checkpoint, vendor drain and resume
# Each script takes 25-45 s on a 2-core machine and they may run in parallel.
# The per-test @test(timeout=...) (summed per script) stays below the CTest
# TIMEOUT, so a hang is torn down and reported with its logs before CTest
# kills the script.
bt_add_integration_test(NAME it_continuity_agents SCRIPT test_continuity_agents.py
                        TIMEOUT 300)
bt_add_integration_test(NAME it_continuity_vendors SCRIPT test_continuity_vendors.py
                        TIMEOUT 340)
bt_add_integration_test(NAME it_continuity_broker SCRIPT test_continuity_broker.py
                        TIMEOUT 240)
bt_add_integration_test(NAME it_continuity_ops SCRIPT test_continuity_ops.py
                        TIMEOUT 300)
set_tests_properties(it_continuity_agents it_continuity_vendors it_continuity_broker
                     it_continuity_ops PROPERTIES LABELS "integration;it4;fault")

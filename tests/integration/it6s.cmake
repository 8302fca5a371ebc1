# Issue 6, security: authorization, limits, hostile input and hardening, with
# real processes. Each script picks its own free ports and temp dirs (harness),
# so they run in parallel with everything else.
#   it_security_authz    wrong secret gets no work, a capability the vendor is
#                        not registered for is refused and audited, the secret
#                        appears nowhere (pg_dump, logs, batonctl) but once;
#                        BATON_SECRET beats --secret (~25 s)
#   it_security_hostile  every configurable limit answers with a clear error
#                        (payload, batch, lists, names, agents per vendor, a
#                        handler result over the payload limit); 3 × 1,000
#                        connections dropped on the control socket and on the
#                        agent endpoint: RSS bounded, nothing lost (~20 s)
#   it_security_user     --user: batond (external and embedded PostgreSQL) and
#                        baton-agent drop to nobody and serve; refusals when
#                        not root (~45 s; checks skip when not root)
# A result for another vendor's package cannot be sent through libbaton-agent;
# that rule is covered by test_core_agents (test_core_authz_*).
bt_add_integration_test(NAME it_security_authz SCRIPT test_security_authz.py TIMEOUT 150)
bt_add_integration_test(NAME it_security_hostile SCRIPT test_security_hostile.py TIMEOUT 180)
bt_add_integration_test(NAME it_security_user SCRIPT test_security_user.py TIMEOUT 180)
set_tests_properties(it_security_authz it_security_hostile it_security_user
                     PROPERTIES LABELS "integration;it6")

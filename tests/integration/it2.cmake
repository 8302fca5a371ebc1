# Hostile input, the batonctl contract, a frozen/stopped database and the agent
# protocol spoken by hand. Helpers: fixtures_it2.py; nanomsg from Python goes
# through tests/tools/bt_nnsend (tools.cmake), which these tests need built.
bt_add_integration_test(NAME it_bad_input SCRIPT test_bad_input.py TIMEOUT 240)
bt_add_integration_test(NAME it_cli_contract SCRIPT test_cli_contract.py TIMEOUT 180)
bt_add_integration_test(NAME it_no_blocking SCRIPT test_no_blocking.py TIMEOUT 240)
bt_add_integration_test(NAME it_protocol SCRIPT test_protocol.py TIMEOUT 180)
set_tests_properties(it_bad_input it_cli_contract it_no_blocking it_protocol
                     PROPERTIES LABELS "integration;it2")
set_tests_properties(it_no_blocking PROPERTIES LABELS "integration;it2;fault")

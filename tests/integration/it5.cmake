# History reads answered from the store: `batonctl audit` (the append-only
# audit trail and its filters) and `batonctl scorecard` (vendor KPIs computed
# in SQL), on real processes and a real PostgreSQL. Helpers: fixtures_it4.py.
bt_add_integration_test(NAME it_audit_scorecard SCRIPT test_audit_scorecard.py
                        TIMEOUT 240)
set_tests_properties(it_audit_scorecard PROPERTIES LABELS "integration;it5")

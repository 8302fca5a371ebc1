# The Prometheus endpoint (DESIGN.md "Observability"): two vendors with agents,
# completed, failed and handed-off work, then /metrics parsed strictly (HELP and
# TYPE before every sample, cumulative histograms ending in +Inf) and compared
# with what happened and with the database. About 10 s on a 2-core machine.
bt_add_integration_test(NAME it_metrics SCRIPT test_metrics.py TIMEOUT 120)
set_tests_properties(it_metrics PROPERTIES LABELS "integration;it5")

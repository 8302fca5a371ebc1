# Broker high availability (issue 8): two batond on one PostgreSQL, a leader
# and a standby (test_ha.py). kill -9 of the leader under load (the standby
# serves within 5 s; every acknowledged package completes once, no handoff),
# a SIGSTOPped leader fenced off by the lease (it exits 75 when it wakes and
# writes nothing), a running leader whose lease is taken (its write is
# refused), and batonctl --control A,B. About 45 s in all on a 2-core machine
# (4-30 s each); the per-test timeouts (420 s summed) stay below the CTest
# TIMEOUT.
bt_add_integration_test(NAME it_ha SCRIPT test_ha.py TIMEOUT 480)
set_tests_properties(it_ha PROPERTIES LABELS "integration;it8")

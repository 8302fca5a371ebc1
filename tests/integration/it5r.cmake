# `batonctl vendor rotate-secret`: a new secret shown once, the old one refused,
# the vendor's agents forced to authenticate again, their running work handed
# off after the lease and nothing lost; audit without secrets; CLI errors.
# About 30 s on a 2-core machine.
bt_add_integration_test(NAME it_rotate_secret SCRIPT test_rotate_secret.py TIMEOUT 150)
set_tests_properties(it_rotate_secret PROPERTIES LABELS "integration;it5")

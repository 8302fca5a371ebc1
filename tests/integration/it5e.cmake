# Every batonctl command of `batonctl --help` (the list is read from the
# binary, so a new command without a test fails): help and usage for each
# (exit 2), nobody listening (exit 3), then each run against a real broker
# with --json checked for CONTRACT.md's fields (exit 0) and, where it names a
# vendor, package or key, one that does not exist (exit 1). About 20 s.
bt_add_integration_test(NAME it_cli_every_command SCRIPT test_cli_every_command.py
                        TIMEOUT 240)
set_tests_properties(it_cli_every_command PROPERTIES LABELS "integration;it5")

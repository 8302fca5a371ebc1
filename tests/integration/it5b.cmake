# Bash completion for batonctl (deploy/bash-completion/batonctl): bash run
# non-interactively with COMP_WORDS set, against the built batonctl's --help and
# `help CMD` (every command, subcommand and option must be offered) and one real
# broker for vendor names; nothing offered, nothing on stderr when none answers.
bt_add_integration_test(NAME it_completion SCRIPT test_completion.py TIMEOUT 60)
set_tests_properties(it_completion PROPERTIES LABELS "integration;it5")

/*
 * Command handlers, one group per commands_<group>.c file, referenced by the
 * table in commands.c. Each takes the invocation and its parsed arguments
 * (borrowed), sends its control request(s), prints the answer, and returns the
 * process exit status (BT_CLI_EXIT_*).
 */
#ifndef BT_CLI_COMMANDS_H
#define BT_CLI_COMMANDS_H

#include "cli.h"

int bt_cli_cmd_vendor_add(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_vendor_list(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_vendor_show(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_vendor_drain(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_vendor_suspend(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_vendor_resume(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_vendor_fail(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_vendor_rotate_secret(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_agent_list(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_submit(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_package_show(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_package_list(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_package_cancel(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_package_retry(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_package_reassign(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_handoffs(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_result(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_wait(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_stats(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_audit(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_scorecard(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_top(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_config_get(bt_cli_t *cli, const bt_cli_args_t *args);
int bt_cli_cmd_config_set(bt_cli_t *cli, const bt_cli_args_t *args);

#endif

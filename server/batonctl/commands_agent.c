/*
 * `agent list`: the agents the broker knows, live and recently seen. Prints
 * AgentInfo as a table or JSON.
 */
#include "commands.h"
#include "output.h"

#include "bt_time.h"

#include <inttypes.h>
#include <stdio.h>

int bt_cli_cmd_agent_list(bt_cli_t *cli, const bt_cli_args_t *args) {
  (void)args;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  Baton__Empty empty = BATON__EMPTY__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_AGENT_LIST;
  req.agent_list = &empty;
  Baton__CtlReply *reply;
  int rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_AGENTS,
                            NULL, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__AgentList *al = reply->agents;
  if (cli->json) {
    json_t *a = json_array();
    for (size_t i = 0; i < al->n_agents; i++) {
      const Baton__AgentInfo *g = al->agents[i];
      json_t *o = json_object();
      bt_cli_json_set(o, "id", bt_cli_json_u64(g->id));
      bt_cli_json_set(o, "vendor", bt_cli_json_str(g->vendor));
      bt_cli_json_set(o, "name", bt_cli_json_str(g->name));
      bt_cli_json_set(o, "capabilities",
                      bt_cli_json_strv(g->capabilities, g->n_capabilities));
      bt_cli_json_set(o, "slots", bt_cli_json_u64(g->slots));
      bt_cli_json_set(o, "busy", bt_cli_json_u64(g->busy));
      bt_cli_json_set(o, "last_seen_ms",
                      bt_cli_json_opt_u64(g->has_last_seen_ms, g->last_seen_ms));
      bt_cli_json_set(o, "state", bt_cli_json_str(g->state));
      json_array_append_new(a, o);
    }
    bt_cli_json_print(a);
  } else {
    static const bt_cli_col_t cols[] = {
        {"ID", true},    {"VENDOR", false}, {"NAME", false},
        {"STATE", false}, {"SLOTS", true},   {"BUSY", true},
        {"LAST_SEEN", true}, {"CAPABILITIES", false},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    char buf[512];
    for (size_t i = 0; i < al->n_agents; i++) {
      const Baton__AgentInfo *g = al->agents[i];
      bt_cli_table_cellf(&t, "%" PRIu64, g->id);
      bt_cli_table_cell(&t, g->vendor);
      bt_cli_table_cell(&t, g->name);
      bt_cli_table_cell(&t, g->state);
      bt_cli_table_cellf(&t, "%u", g->slots);
      bt_cli_table_cellf(&t, "%u", g->busy);
      if (g->has_last_seen_ms) {
        char d[32];
        bt_cli_table_cellf(&t, "%s ago",
                           bt_duration_format(g->last_seen_ms, d, sizeof d));
      } else {
        bt_cli_table_cell(&t, NULL);
      }
      bt_cli_table_cell(
          &t, bt_cli_fmt_list(g->capabilities, g->n_capabilities, buf, sizeof buf));
    }
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

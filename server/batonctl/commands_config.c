/*
 * `config get [KEY]` and `config set KEY VALUE`: the running broker's
 * configuration. Builds ConfigQuery/ConfigSet and prints ConfigList as a
 * table or JSON. Values are the broker's text forms (they round-trip through
 * `config set`); a secret comes back as "(set)" and is printed as such.
 */
#include "commands.h"
#include "output.h"

#include <stdio.h>
#include <string.h>

static json_t *entry_json(const Baton__ConfigEntry *e, bool with_previous) {
  json_t *o = json_object();
  bt_cli_json_set(o, "key", bt_cli_json_str(e->key));
  /* "" is a real value here (an unset key), not an absent one. */
  bt_cli_json_set(o, "value", json_string(e->value ? e->value : ""));
  if (with_previous) {
    bt_cli_json_set(o, "previous", json_string(e->previous ? e->previous : ""));
  } else {
    bt_cli_json_set(o, "default", json_string(e->default_value ? e->default_value : ""));
    bt_cli_json_set(o, "runtime", json_boolean(e->runtime));
    bt_cli_json_set(o, "help", bt_cli_json_str(e->help));
  }
  return o;
}

/* Sends req and checks that the answer holds `want` entries (0: any). */
static int call(bt_cli_t *cli, Baton__CtlRequest *req, const char *what, size_t want,
                Baton__CtlReply **reply) {
  int rc = bt_cli_conn_call(&cli->conn, req, BATON__CTL_REPLY__BODY_CONFIG, what, reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  if (want != 0 && (*reply)->config->n_entries != want) {
    bt_cli_errorf("unexpected reply from the broker at %s (%zu entries)", cli->conn.endpoint,
                  (*reply)->config->n_entries);
    baton__ctl_reply__free_unpacked(*reply, NULL);
    return BT_CLI_EXIT_UNREACHABLE;
  }
  return BT_CLI_EXIT_OK;
}

int bt_cli_cmd_config_get(bt_cli_t *cli, const bt_cli_args_t *args) {
  const char *key = args->n_pos > 0 ? args->pos[0] : NULL;
  if (key != NULL && *key == '\0')
    return bt_cli_usage_error(args->cmd, "empty KEY");
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  Baton__ConfigQuery q = BATON__CONFIG_QUERY__INIT;
  q.key = (char *)key;
  req.body_case = BATON__CTL_REQUEST__BODY_CONFIG_GET;
  req.config_get = &q;
  Baton__CtlReply *reply;
  int rc = call(cli, &req, key, key ? 1 : 0, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__ConfigList *cl = reply->config;
  if (cli->json) {
    if (key != NULL) {
      bt_cli_json_print(entry_json(cl->entries[0], false));
    } else {
      json_t *a = json_array();
      for (size_t i = 0; i < cl->n_entries; i++)
        json_array_append_new(a, entry_json(cl->entries[i], false));
      bt_cli_json_print(a);
    }
  } else {
    static const bt_cli_col_t cols[] = {
        {"KEY", false}, {"VALUE", false}, {"DEFAULT", false}, {"RUNTIME", false}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    for (size_t i = 0; i < cl->n_entries; i++) {
      const Baton__ConfigEntry *e = cl->entries[i];
      bt_cli_table_cell(&t, e->key);
      bt_cli_table_cell(&t, e->value);
      bt_cli_table_cell(&t, e->default_value);
      bt_cli_table_cell(&t, e->runtime ? "yes" : "restart");
    }
    bt_cli_table_print(&t);
    if (key != NULL && cl->entries[0]->help != NULL)
      printf("%s\n", cl->entries[0]->help);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

int bt_cli_cmd_config_set(bt_cli_t *cli, const bt_cli_args_t *args) {
  const char *key = args->pos[0], *value = args->pos[1];
  if (*key == '\0')
    return bt_cli_usage_error(args->cmd, "empty KEY");
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  Baton__ConfigSet cs = BATON__CONFIG_SET__INIT;
  cs.key = (char *)key;
  cs.value = (char *)value;
  req.body_case = BATON__CTL_REQUEST__BODY_CONFIG_SET;
  req.config_set = &cs;
  Baton__CtlReply *reply;
  int rc = call(cli, &req, key, 1, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__ConfigEntry *e = reply->config->entries[0];
  if (cli->json) {
    bt_cli_json_print(entry_json(e, true));
  } else {
    static const bt_cli_col_t cols[] = {{"", false}, {"", false}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, 2, false);
    bt_cli_table_cell(&t, "key");
    bt_cli_table_cell(&t, e->key);
    bt_cli_table_cell(&t, "value");
    bt_cli_table_cell(&t, e->value);
    bt_cli_table_cell(&t, "previous");
    bt_cli_table_cell(&t, e->previous);
    bt_cli_table_print(&t);
    printf("(not saved to the config file: the next SIGHUP or restart reads the file "
           "again)\n");
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

/*
 * `handoffs [--vendor V] [--package ID] [--since T]`: the handoff history,
 * oldest first, as a table or a JSON array. --since takes an RFC 3339 time or
 * a duration meaning "that long ago" (--since 1h).
 */
#include "commands.h"
#include "output.h"

#include "bt_err.h"

#include <inttypes.h>
#include <stdio.h>

static json_t *handoff_json(const Baton__HandoffInfo *h) {
  json_t *o = json_object();
  bt_cli_json_set(o, "package", bt_cli_json_opt_u64(h->has_package_id, h->package_id));
  bt_cli_json_set(o, "attempt", bt_cli_json_opt_u64(h->has_attempt, h->attempt));
  bt_cli_json_set(o, "from_vendor", bt_cli_json_str(h->from_vendor));
  bt_cli_json_set(o, "to_vendor", bt_cli_json_str(h->to_vendor));
  bt_cli_json_set(o, "reason", bt_cli_json_str(h->reason));
  bt_cli_json_set(o, "at", bt_cli_json_time(h->has_at, h->at));
  bt_cli_json_set(o, "checkpoint_bytes", bt_cli_json_u64(h->checkpoint_bytes));
  return o;
}

int bt_cli_cmd_handoffs(bt_cli_t *cli, const bt_cli_args_t *args) {
  Baton__HandoffQuery q = BATON__HANDOFF_QUERY__INIT;
  bt_cli_history_t hf;
  int urc = bt_cli_history_filter(args, &hf);
  if (urc != 0)
    return urc;
  q.package_id = hf.package_id;
  q.has_package_id = hf.has_package_id;
  q.since_at = hf.since_at;
  q.has_since_at = hf.has_since_at;
  q.vendor = (char *)hf.vendor;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_HANDOFFS;
  req.handoffs = &q;
  Baton__CtlReply *reply;
  int rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_HANDOFFS, NULL,
                            &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__HandoffList *hl = reply->handoffs;
  if (cli->json) {
    json_t *a = json_array();
    for (size_t i = 0; i < hl->n_handoffs; i++)
      json_array_append_new(a, handoff_json(hl->handoffs[i]));
    bt_cli_json_print(a);
  } else if (hl->n_handoffs == 0) {
    printf("no handoffs\n");
  } else {
    static const bt_cli_col_t cols[] = {
        {"AT", false},   {"PACKAGE", true}, {"ATTEMPT", true},
        {"FROM", false}, {"TO", false},     {"REASON", false},
        {"CHECKPOINT_BYTES", true},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    char buf[40];
    for (size_t i = 0; i < hl->n_handoffs; i++) {
      const Baton__HandoffInfo *h = hl->handoffs[i];
      bt_cli_table_cell(&t, bt_cli_fmt_time(h->has_at, h->at, buf, sizeof buf));
      if (h->has_package_id)
        bt_cli_table_cellf(&t, "%" PRIu64, h->package_id);
      else
        bt_cli_table_cell(&t, NULL);
      if (h->has_attempt)
        bt_cli_table_cellf(&t, "%u", h->attempt);
      else
        bt_cli_table_cell(&t, NULL);
      bt_cli_table_cell(&t, h->from_vendor);
      bt_cli_table_cell(&t, h->to_vendor);
      bt_cli_table_cell(&t, h->reason);
      bt_cli_table_cellf(&t, "%u", h->checkpoint_bytes);
    }
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

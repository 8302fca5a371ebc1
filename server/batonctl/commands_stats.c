/*
 * `stats`: whole-system counters (packages by state, vendors by state,
 * connected agents) as one table or one JSON object. "finishing" packages
 * have their final state decided but not yet committed; they count in no
 * other state until it is.
 */
#include "commands.h"
#include "output.h"

#include <inttypes.h>
#include <stdio.h>

int bt_cli_cmd_stats(bt_cli_t *cli, const bt_cli_args_t *args) {
  (void)args;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  Baton__Empty empty = BATON__EMPTY__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_STATS;
  req.stats = &empty;
  Baton__CtlReply *reply;
  int rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_STATS, NULL,
                            &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__Stats *s = reply->stats;
  const struct {
    const char *name;
    uint64_t v;
  } counts[] = {
      {"queued", s->queued},       {"waiting", s->waiting},
      {"assigned", s->assigned},   {"running", s->running},
      {"finishing", s->finishing}, {"completed", s->completed},
      {"dead", s->dead},           {"cancelled", s->cancelled},
  };
  size_t n_counts = sizeof counts / sizeof counts[0];
  if (cli->json) {
    json_t *o = json_object();
    for (size_t i = 0; i < n_counts; i++)
      bt_cli_json_set(o, counts[i].name, bt_cli_json_u64(counts[i].v));
    json_t *vs = json_object();
    for (size_t i = 0; i < s->n_vendors; i++) {
      const Baton__StateCount *sc = s->vendors[i];
      if (sc->state != NULL && *sc->state != '\0')
        bt_cli_json_set(vs, sc->state, bt_cli_json_u64(sc->count));
    }
    bt_cli_json_set(o, "vendors", vs);
    bt_cli_json_set(o, "agents", bt_cli_json_u64(s->agents));
    bt_cli_json_print(o);
  } else {
    static const bt_cli_col_t cols[] = {{"COUNTER", false}, {"VALUE", true}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, 2, true);
    for (size_t i = 0; i < n_counts; i++) {
      /* "waiting" is a subset of "queued"; say so in the name. */
      bt_cli_table_cell(&t, i == 1 ? "queued, waiting" : counts[i].name);
      bt_cli_table_cellf(&t, "%" PRIu64, counts[i].v);
    }
    for (size_t i = 0; i < s->n_vendors; i++) {
      const Baton__StateCount *sc = s->vendors[i];
      bt_cli_table_cellf(&t, "vendors %s", sc->state ? sc->state : "-");
      bt_cli_table_cellf(&t, "%" PRIu64, sc->count);
    }
    bt_cli_table_cell(&t, "agents connected");
    bt_cli_table_cellf(&t, "%u", s->agents);
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

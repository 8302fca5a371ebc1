/*
 * History from the store: `audit [--since T] [--package ID] [--vendor V]
 * [--limit N]` (the append-only audit trail, oldest first) and `scorecard [V]`
 * (vendor KPIs computed from attempts, packages and handoffs). Each prints an
 * aligned table, or with --json a JSON array (CONTRACT.md field names).
 */
#include "commands.h"
#include "output.h"
#include "spec.h"

#include "bt_err.h"

#include <inttypes.h>
#include <stdio.h>

/* The most audit rows one answer may hold, and the default (the broker's
 * BT_CTL_MAX_AUDIT / BT_CTL_DEFAULT_AUDIT). */
#define AUDIT_MAX_LIMIT 100000u

/* --- audit -------------------------------------------------------------------- */

static json_t *audit_json(const Baton__AuditEvent *e) {
  json_t *o = json_object();
  bt_cli_json_set(o, "at", bt_cli_json_time(e->has_at, e->at));
  bt_cli_json_set(o, "actor", bt_cli_json_str(e->actor));
  bt_cli_json_set(o, "action", bt_cli_json_str(e->action));
  bt_cli_json_set(o, "subject", bt_cli_json_str(e->subject));
  /* The column is NOT NULL DEFAULT '': an empty detail stays a string. */
  bt_cli_json_set(o, "detail", e->detail != NULL && *e->detail != '\0'
                                   ? bt_cli_json_str(e->detail)
                                   : json_string(""));
  return o;
}

int bt_cli_cmd_audit(bt_cli_t *cli, const bt_cli_args_t *args) {
  Baton__AuditQuery q = BATON__AUDIT_QUERY__INIT;
  const char *limit = bt_cli_arg(args, "limit");
  bt_cli_history_t hf;
  int urc = bt_cli_history_filter(args, &hf);
  if (urc != 0)
    return urc;
  q.package_id = hf.package_id;
  q.has_package_id = hf.has_package_id;
  q.since_at = hf.since_at;
  q.has_since_at = hf.has_since_at;
  if (limit != NULL) {
    if (bt_cli_parse_u32(limit, 1, AUDIT_MAX_LIMIT, &q.limit) != 0)
      return bt_cli_usage_error(args->cmd, "bad --limit \"%s\": expected 1-%u", limit,
                                AUDIT_MAX_LIMIT);
    q.has_limit = 1;
  }
  q.vendor = (char *)hf.vendor;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_AUDIT;
  req.audit = &q;
  Baton__CtlReply *reply;
  int rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_AUDIT, NULL, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__AuditList *al = reply->audit;
  if (cli->json) {
    json_t *a = json_array();
    for (size_t i = 0; i < al->n_events; i++)
      json_array_append_new(a, audit_json(al->events[i]));
    bt_cli_json_print(a);
  } else if (al->n_events == 0) {
    printf("no audit events\n");
  } else {
    static const bt_cli_col_t cols[] = {
        {"AT", false},      {"ACTOR", false},  {"ACTION", false},
        {"SUBJECT", false}, {"DETAIL", false},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    char buf[40];
    for (size_t i = 0; i < al->n_events; i++) {
      const Baton__AuditEvent *e = al->events[i];
      bt_cli_table_cell(&t, bt_cli_fmt_time(e->has_at, e->at, buf, sizeof buf));
      bt_cli_table_cell(&t, e->actor);
      bt_cli_table_cell(&t, e->action);
      bt_cli_table_cell(&t, e->subject);
      bt_cli_table_cell(&t, e->detail);
    }
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

/* --- scorecard ---------------------------------------------------------------- */

static json_t *score_json(const Baton__VendorScore *s) {
  json_t *o = json_object();
  bt_cli_json_set(o, "vendor", bt_cli_json_str(s->vendor));
  bt_cli_json_set(o, "completed", bt_cli_json_u64(s->completed));
  bt_cli_json_set(o, "failed", bt_cli_json_u64(s->failed));
  bt_cli_json_set(o, "handed_off", bt_cli_json_u64(s->handed_off));
  bt_cli_json_set(o, "on_time_rate", bt_cli_json_opt_real(s->has_on_time_rate, s->on_time_rate));
  bt_cli_json_set(o, "turnaround_p50_ms",
                  bt_cli_json_opt_real(s->has_turnaround_p50_ms, s->turnaround_p50_ms));
  bt_cli_json_set(o, "turnaround_p95_ms",
                  bt_cli_json_opt_real(s->has_turnaround_p95_ms, s->turnaround_p95_ms));
  bt_cli_json_set(o, "cost_total", bt_cli_json_opt_real(true, s->cost_total));
  return o;
}

int bt_cli_cmd_scorecard(bt_cli_t *cli, const bt_cli_args_t *args) {
  Baton__ScorecardQuery q = BATON__SCORECARD_QUERY__INIT;
  if (args->n_pos > 0) {
    char why[200];
    if (bt_cli_check_name("vendor", args->pos[0], why, sizeof why) != 0)
      return bt_cli_usage_error(args->cmd, "%s", why);
    q.vendor = (char *)args->pos[0];
  }
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_SCORECARD;
  req.scorecard = &q;
  Baton__CtlReply *reply;
  int rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_SCORECARD, NULL,
                            &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__ScorecardList *sl = reply->scorecard;
  if (cli->json) {
    json_t *a = json_array();
    for (size_t i = 0; i < sl->n_vendors; i++)
      json_array_append_new(a, score_json(sl->vendors[i]));
    bt_cli_json_print(a);
  } else if (sl->n_vendors == 0) {
    printf("no vendors\n");
  } else {
    static const bt_cli_col_t cols[] = {
        {"VENDOR", false},  {"COMPLETED", true}, {"FAILED", true},
        {"HANDED_OFF", true}, {"ON_TIME", true}, {"P50_MS", true},
        {"P95_MS", true},   {"COST_TOTAL", true},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    for (size_t i = 0; i < sl->n_vendors; i++) {
      const Baton__VendorScore *s = sl->vendors[i];
      bt_cli_table_cell(&t, s->vendor);
      bt_cli_table_cellf(&t, "%" PRIu64, s->completed);
      bt_cli_table_cellf(&t, "%" PRIu64, s->failed);
      bt_cli_table_cellf(&t, "%" PRIu64, s->handed_off);
      if (s->has_on_time_rate)
        bt_cli_table_cellf(&t, "%.1f%%", s->on_time_rate * 100.0);
      else
        bt_cli_table_cell(&t, NULL);
      if (s->has_turnaround_p50_ms)
        bt_cli_table_cellf(&t, "%.0f", s->turnaround_p50_ms);
      else
        bt_cli_table_cell(&t, NULL);
      if (s->has_turnaround_p95_ms)
        bt_cli_table_cellf(&t, "%.0f", s->turnaround_p95_ms);
      else
        bt_cli_table_cell(&t, NULL);
      bt_cli_table_cellf(&t, "%.2f", s->cost_total);
    }
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

/*
 * `package show`, `package list` and `result`: reading packages, their history
 * and their result bytes. PackageInfo is printed by one JSON builder and one
 * table row builder so show and list stay consistent.
 * `package cancel|retry|reassign`: controlling one package (PackageOp).
 */
#include "commands.h"
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const package_states[] = {
    "queued", "assigned", "running", "completed", "dead", "cancelled", NULL,
};

static json_t *package_json(const Baton__PackageInfo *p, bool history) {
  json_t *o = json_object();
  bt_cli_json_set(o, "id", bt_cli_json_u64(p->id));
  bt_cli_json_set(o, "capability", bt_cli_json_str(p->capability));
  bt_cli_json_set(o, "state", bt_cli_json_str(p->state));
  bt_cli_json_set(o, "priority", bt_cli_json_opt_u64(p->has_priority, p->priority));
  bt_cli_json_set(o, "deadline", bt_cli_json_time(p->has_deadline_at, p->deadline_at));
  bt_cli_json_set(o, "not_before",
                  bt_cli_json_time(p->has_not_before_at, p->not_before_at));
  bt_cli_json_set(o, "vendor", bt_cli_json_str(p->vendor));
  bt_cli_json_set(o, "agent", bt_cli_json_str(p->agent));
  bt_cli_json_set(o, "attempt", bt_cli_json_opt_u64(p->has_attempt, p->attempt));
  bt_cli_json_set(o, "waiting_reason", bt_cli_json_str(p->waiting_reason));
  bt_cli_json_set(o, "progress", bt_cli_json_opt_u64(p->has_progress, p->progress));
  bt_cli_json_set(o, "result_bytes",
                  bt_cli_json_opt_u64(p->has_result_bytes, p->result_bytes));
  bt_cli_json_set(o, "key", bt_cli_json_str(p->key));
  bt_cli_json_set(o, "submitted_at",
                  bt_cli_json_time(p->has_submitted_at, p->submitted_at));
  bt_cli_json_set(o, "completed_at",
                  bt_cli_json_time(p->has_completed_at, p->completed_at));
  bt_cli_json_set(o, "regions", bt_cli_json_strv(p->regions, p->n_regions));
  bt_cli_json_set(o, "certs", bt_cli_json_strv(p->certs, p->n_certs));
  bt_cli_json_set(o, "max_cost", bt_cli_json_opt_real(p->has_max_cost, p->max_cost));
  bt_cli_json_set(o, "prefer", bt_cli_json_strv(p->prefer, p->n_prefer));
  bt_cli_json_set(o, "avoid", bt_cli_json_strv(p->avoid, p->n_avoid));
  bt_cli_json_set(o, "max_attempts",
                  bt_cli_json_opt_u64(p->has_max_attempts, p->max_attempts));
  bt_cli_json_set(o, "payload_bytes",
                  bt_cli_json_opt_u64(p->has_payload_bytes, p->payload_bytes));
  bt_cli_json_set(o, "error", bt_cli_json_str(p->error));
  if (!history)
    return o;
  json_t *atts = json_array();
  for (size_t i = 0; i < p->n_attempts; i++) {
    const Baton__AttemptInfo *a = p->attempts[i];
    json_t *ao = json_object();
    bt_cli_json_set(ao, "attempt", bt_cli_json_opt_u64(a->has_attempt, a->attempt));
    bt_cli_json_set(ao, "vendor", bt_cli_json_str(a->vendor));
    bt_cli_json_set(ao, "agent", bt_cli_json_str(a->agent));
    bt_cli_json_set(ao, "started", bt_cli_json_time(a->has_started_at, a->started_at));
    bt_cli_json_set(ao, "ended", bt_cli_json_time(a->has_ended_at, a->ended_at));
    bt_cli_json_set(ao, "outcome", bt_cli_json_str(a->outcome));
    bt_cli_json_set(ao, "exit_code",
                    a->has_exit_code ? json_integer(a->exit_code) : json_null());
    bt_cli_json_set(ao, "error", bt_cli_json_str(a->error));
    json_array_append_new(atts, ao);
  }
  bt_cli_json_set(o, "attempts", atts);
  json_t *hos = json_array();
  for (size_t i = 0; i < p->n_handoffs; i++) {
    const Baton__HandoffInfo *h = p->handoffs[i];
    json_t *ho = json_object();
    bt_cli_json_set(ho, "from_vendor", bt_cli_json_str(h->from_vendor));
    bt_cli_json_set(ho, "to_vendor", bt_cli_json_str(h->to_vendor));
    bt_cli_json_set(ho, "reason", bt_cli_json_str(h->reason));
    bt_cli_json_set(ho, "at", bt_cli_json_time(h->has_at, h->at));
    bt_cli_json_set(ho, "checkpoint_bytes", bt_cli_json_u64(h->checkpoint_bytes));
    json_array_append_new(hos, ho);
  }
  bt_cli_json_set(o, "handoffs", hos);
  return o;
}

static const char *fmt_opt_u64(bool has, uint64_t v, const char *suffix,
                               char *buf, size_t len) {
  if (!has)
    return NULL;
  snprintf(buf, len, "%" PRIu64 "%s", v, suffix);
  return buf;
}

static int fetch_packages(bt_cli_t *cli, Baton__CtlRequest *req, const char *what,
                          Baton__CtlReply **out) {
  return bt_cli_conn_call(&cli->conn, req, BATON__CTL_REPLY__BODY_PACKAGES, what,
                          out);
}

static void print_history(const Baton__PackageInfo *p) {
  char b1[40], b2[40];
  printf("\nattempts:%s\n", p->n_attempts ? "" : " none");
  if (p->n_attempts) {
    static const bt_cli_col_t cols[] = {
        {"ATTEMPT", true}, {"VENDOR", false}, {"AGENT", false},
        {"STARTED", false}, {"ENDED", false}, {"OUTCOME", false},
        {"EXIT", true},    {"ERROR", false},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    for (size_t i = 0; i < p->n_attempts; i++) {
      const Baton__AttemptInfo *a = p->attempts[i];
      bt_cli_table_cell(&t, fmt_opt_u64(a->has_attempt, a->attempt, "", b1, sizeof b1));
      bt_cli_table_cell(&t, a->vendor);
      bt_cli_table_cell(&t, a->agent);
      bt_cli_table_cell(&t, bt_cli_fmt_time(a->has_started_at, a->started_at, b1,
                                            sizeof b1));
      bt_cli_table_cell(&t, bt_cli_fmt_time(a->has_ended_at, a->ended_at, b2,
                                            sizeof b2));
      bt_cli_table_cell(&t, a->outcome);
      if (a->has_exit_code)
        bt_cli_table_cellf(&t, "%d", a->exit_code);
      else
        bt_cli_table_cell(&t, NULL);
      bt_cli_table_cell(&t, a->error);
    }
    bt_cli_table_print(&t);
  }
  printf("\nhandoffs:%s\n", p->n_handoffs ? "" : " none");
  if (p->n_handoffs) {
    static const bt_cli_col_t cols[] = {
        {"FROM", false}, {"TO", false}, {"REASON", false},
        {"AT", false},   {"CHECKPOINT_BYTES", true},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    for (size_t i = 0; i < p->n_handoffs; i++) {
      const Baton__HandoffInfo *h = p->handoffs[i];
      bt_cli_table_cell(&t, h->from_vendor);
      bt_cli_table_cell(&t, h->to_vendor);
      bt_cli_table_cell(&t, h->reason);
      bt_cli_table_cell(&t, bt_cli_fmt_time(h->has_at, h->at, b1, sizeof b1));
      bt_cli_table_cellf(&t, "%u", h->checkpoint_bytes);
    }
    bt_cli_table_print(&t);
  }
}

int bt_cli_cmd_package_show(bt_cli_t *cli, const bt_cli_args_t *args) {
  uint64_t id;
  int rc = bt_cli_arg_id(args, args->pos[0], "package id", &id);
  if (rc != 0)
    return rc;
  Baton__PackageRef ref = BATON__PACKAGE_REF__INIT;
  ref.has_id = 1;
  ref.id = id;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_PACKAGE_SHOW;
  req.package_show = &ref;
  char what[64];
  snprintf(what, sizeof what, "package %" PRIu64, id);
  Baton__CtlReply *reply;
  if ((rc = fetch_packages(cli, &req, what, &reply)) != BT_CLI_EXIT_OK)
    return rc;
  /* PackageShow is answered with a PackageList of that one package. */
  if (reply->packages->n_packages == 0) {
    bt_cli_errorf("%s not found", what);
    baton__ctl_reply__free_unpacked(reply, NULL);
    return BT_CLI_EXIT_FAIL;
  }
  const Baton__PackageInfo *p = reply->packages->packages[0];
  if (cli->json) {
    bt_cli_json_print(package_json(p, true));
  } else {
    static const bt_cli_col_t cols[] = {{"", false}, {"", false}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, 2, false);
    char buf[1024];
#define ROW(k, val)                                                            \
  do {                                                                         \
    bt_cli_table_cell(&t, k);                                                  \
    bt_cli_table_cell(&t, val);                                                \
  } while (0)
    ROW("id", fmt_opt_u64(true, p->id, "", buf, sizeof buf));
    ROW("capability", p->capability);
    ROW("state", p->state);
    ROW("waiting_reason", p->waiting_reason);
    ROW("priority", fmt_opt_u64(p->has_priority, p->priority, "", buf, sizeof buf));
    ROW("deadline", bt_cli_fmt_time(p->has_deadline_at, p->deadline_at, buf,
                                    sizeof buf));
    ROW("not_before", bt_cli_fmt_time(p->has_not_before_at, p->not_before_at,
                                      buf, sizeof buf));
    ROW("vendor", p->vendor);
    ROW("agent", p->agent);
    ROW("attempt", fmt_opt_u64(p->has_attempt, p->attempt, "", buf, sizeof buf));
    ROW("max_attempts",
        fmt_opt_u64(p->has_max_attempts, p->max_attempts, "", buf, sizeof buf));
    ROW("progress", fmt_opt_u64(p->has_progress, p->progress, "%", buf, sizeof buf));
    ROW("key", p->key);
    ROW("submitted_at", bt_cli_fmt_time(p->has_submitted_at, p->submitted_at,
                                        buf, sizeof buf));
    ROW("completed_at", bt_cli_fmt_time(p->has_completed_at, p->completed_at,
                                        buf, sizeof buf));
    ROW("regions", bt_cli_fmt_list(p->regions, p->n_regions, buf, sizeof buf));
    ROW("certs", bt_cli_fmt_list(p->certs, p->n_certs, buf, sizeof buf));
    if (p->has_max_cost)
      snprintf(buf, sizeof buf, "%g", p->max_cost);
    ROW("max_cost", p->has_max_cost ? buf : NULL);
    ROW("prefer", bt_cli_fmt_list(p->prefer, p->n_prefer, buf, sizeof buf));
    ROW("avoid", bt_cli_fmt_list(p->avoid, p->n_avoid, buf, sizeof buf));
    ROW("payload_bytes",
        fmt_opt_u64(p->has_payload_bytes, p->payload_bytes, "", buf, sizeof buf));
    ROW("result_bytes",
        fmt_opt_u64(p->has_result_bytes, p->result_bytes, "", buf, sizeof buf));
    ROW("error", p->error);
#undef ROW
    bt_cli_table_print(&t);
    print_history(p);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

int bt_cli_cmd_package_list(bt_cli_t *cli, const bt_cli_args_t *args) {
  Baton__PackageQuery q = BATON__PACKAGE_QUERY__INIT;
  const char *state = bt_cli_arg(args, "state");
  const char *limit = bt_cli_arg(args, "limit");
  if (state != NULL) {
    size_t k = 0;
    while (package_states[k] && strcmp(package_states[k], state) != 0)
      k++;
    if (package_states[k] == NULL)
      return bt_cli_usage_error(args->cmd,
                                "bad --state \"%s\": expected queued, assigned, "
                                "running, completed, dead or cancelled",
                                state);
  }
  if (limit != NULL) {
    if (bt_cli_parse_u32(limit, 1, UINT32_MAX, &q.limit) != 0)
      return bt_cli_usage_error(args->cmd,
                                "bad --limit \"%s\": expected a positive integer",
                                limit);
    q.has_limit = 1;
  }
  q.state = (char *)state;
  q.vendor = (char *)bt_cli_arg(args, "vendor");
  q.capability = (char *)bt_cli_arg(args, "capability");
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_PACKAGE_LIST;
  req.package_list = &q;
  Baton__CtlReply *reply;
  int rc = fetch_packages(cli, &req, NULL, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__PackageList *pl = reply->packages;
  if (cli->json) {
    json_t *a = json_array();
    for (size_t i = 0; i < pl->n_packages; i++)
      json_array_append_new(a, package_json(pl->packages[i], false));
    bt_cli_json_print(a);
  } else {
    static const bt_cli_col_t cols[] = {
        {"ID", true},        {"CAPABILITY", false}, {"STATE", false},
        {"PRI", true},       {"VENDOR", false},     {"AGENT", false},
        {"ATTEMPT", true},   {"PROGRESS", true},    {"DEADLINE", false},
        {"SUBMITTED", false}, {"WAITING", false},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    char buf[64];
    for (size_t i = 0; i < pl->n_packages; i++) {
      const Baton__PackageInfo *p = pl->packages[i];
      bt_cli_table_cellf(&t, "%" PRIu64, p->id);
      bt_cli_table_cell(&t, p->capability);
      bt_cli_table_cell(&t, p->state);
      bt_cli_table_cell(&t, fmt_opt_u64(p->has_priority, p->priority, "", buf,
                                        sizeof buf));
      bt_cli_table_cell(&t, p->vendor);
      bt_cli_table_cell(&t, p->agent);
      bt_cli_table_cell(&t, fmt_opt_u64(p->has_attempt, p->attempt, "", buf,
                                        sizeof buf));
      bt_cli_table_cell(&t, fmt_opt_u64(p->has_progress, p->progress, "%", buf,
                                        sizeof buf));
      bt_cli_table_cell(&t, bt_cli_fmt_time(p->has_deadline_at, p->deadline_at,
                                            buf, sizeof buf));
      bt_cli_table_cell(&t, bt_cli_fmt_time(p->has_submitted_at, p->submitted_at,
                                            buf, sizeof buf));
      bt_cli_table_cell(&t, p->waiting_reason);
    }
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

/* Writes the bytes to path, replacing it only once all were written. */
static int write_out(const char *path, const uint8_t *data, size_t len) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.batonctl-tmp", path) >= (int)sizeof tmp)
    return -ENAMETOOLONG;
  FILE *f = fopen(tmp, "wb");
  if (f == NULL)
    return -errno;
  size_t w = len ? fwrite(data, 1, len, f) : 0;
  int err = (w != len || ferror(f)) ? (errno ? errno : EIO) : 0;
  if (fclose(f) != 0 && err == 0)
    err = errno ? errno : EIO;
  if (err == 0 && rename(tmp, path) != 0)
    err = errno;
  if (err != 0) {
    remove(tmp);
    return -err;
  }
  return 0;
}

int bt_cli_cmd_result(bt_cli_t *cli, const bt_cli_args_t *args) {
  uint64_t id;
  int rc = bt_cli_arg_id(args, args->pos[0], "package id", &id);
  if (rc != 0)
    return rc;
  const char *out = bt_cli_arg(args, "out");
  if (out != NULL && *out == '\0')
    return bt_cli_usage_error(args->cmd, "--out must not be empty");
  Baton__PackageRef ref = BATON__PACKAGE_REF__INIT;
  ref.has_id = 1;
  ref.id = id;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_RESULT;
  req.result = &ref;
  char what[64];
  snprintf(what, sizeof what, "package %" PRIu64, id);
  Baton__CtlReply *reply;
  if ((rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_RESULT,
                             what, &reply)) != BT_CLI_EXIT_OK)
    return rc;
  const Baton__ResultData *r = reply->result;
  /* A broker may refuse (CTL_REJECTED, handled above) or answer the state
   * without a result; a completed package with an empty result may also come
   * without the field, since protobuf need not send empty bytes. */
  bool completed = r->state != NULL && strcmp(r->state, "completed") == 0;
  if (!r->has_result && !completed) {
    if (r->state != NULL && *r->state != '\0')
      bt_cli_errorf("%s has no result: it is %s, not completed", what, r->state);
    else
      bt_cli_errorf("%s has no result: it is not completed", what);
    baton__ctl_reply__free_unpacked(reply, NULL);
    return BT_CLI_EXIT_FAIL;
  }
  const uint8_t *data = r->has_result ? r->result.data : NULL;
  size_t len = r->has_result ? r->result.len : 0;
  if (out != NULL) {
    int err = write_out(out, data, len);
    if (err != 0) {
      bt_cli_errorf("cannot write %s: %s", out, strerror(-err));
      rc = BT_CLI_EXIT_FAIL;
      goto done;
    }
  }
  if (cli->json) {
    json_t *o = json_object();
    char *b64 = bt_cli_b64_encode(data, len);
    bt_cli_json_set(o, "id", bt_cli_json_u64(r->has_id ? r->id : id));
    bt_cli_json_set(o, "state", bt_cli_json_str(r->state));
    bt_cli_json_set(o, "result_b64", json_string(b64));
    free(b64);
    bt_cli_json_print(o);
  } else if (out == NULL && len > 0) {
    fwrite(data, 1, len, stdout);
  }
done:
  baton__ctl_reply__free_unpacked(reply, NULL);
  return rc;
}

/* package cancel|retry|reassign ID: one PackageOp, answered once the broker
 * has committed the change. */
static int package_op(bt_cli_t *cli, const bt_cli_args_t *args, Baton__PackageOpKind op,
                      const char *to) {
  uint64_t id;
  int rc = bt_cli_arg_id(args, args->pos[0], "package id", &id);
  if (rc != 0)
    return rc;
  char why[200];
  if (to != NULL && bt_cli_check_name("--to", to, why, sizeof why) != 0)
    return bt_cli_usage_error(args->cmd, "%s", why);
  Baton__PackageOp po = BATON__PACKAGE_OP__INIT;
  po.has_id = po.has_op = 1;
  po.id = id;
  po.op = op;
  po.to = (char *)to;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_PACKAGE_OP;
  req.package_op = &po;
  char what[64];
  snprintf(what, sizeof what, "package %" PRIu64, id);
  Baton__CtlReply *reply;
  if ((rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_PACKAGE_STATE,
                             what, &reply)) != BT_CLI_EXIT_OK)
    return rc;
  const Baton__PackageState *ps = reply->package_state;
  if (cli->json) {
    json_t *o = json_object();
    bt_cli_json_set(o, "id", bt_cli_json_u64(ps->has_id ? ps->id : id));
    bt_cli_json_set(o, "state", bt_cli_json_str(ps->state));
    bt_cli_json_print(o);
  } else {
    static const bt_cli_col_t cols[] = {{"", false}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, 1, false);
    bt_cli_table_cellf(&t, "package %" PRIu64 ": %s", ps->has_id ? ps->id : id,
                       ps->state ? ps->state : "?");
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

int bt_cli_cmd_package_cancel(bt_cli_t *cli, const bt_cli_args_t *args) {
  return package_op(cli, args, BATON__PACKAGE_OP_KIND__PACKAGE_OP_CANCEL, NULL);
}

int bt_cli_cmd_package_retry(bt_cli_t *cli, const bt_cli_args_t *args) {
  return package_op(cli, args, BATON__PACKAGE_OP_KIND__PACKAGE_OP_RETRY, NULL);
}

int bt_cli_cmd_package_reassign(bt_cli_t *cli, const bt_cli_args_t *args) {
  return package_op(cli, args, BATON__PACKAGE_OP_KIND__PACKAGE_OP_REASSIGN,
                    bt_cli_arg(args, "to"));
}

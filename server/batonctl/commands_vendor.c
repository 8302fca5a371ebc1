/*
 * `vendor add`, `vendor list` and `vendor show`: registering vendors and
 * looking at them; `vendor drain|suspend|resume|fail`: changing their state;
 * `vendor rotate-secret`: a new secret. Builds VendorAdd/VendorRef/VendorOp
 * requests and prints VendorInfo, VendorState and VendorRotated as tables,
 * lines or JSON.
 */
#include "commands.h"
#include "output.h"

#include "bt_valid.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const vendor_models[] = {"onshore", "nearshore", "offshore",
                                            "captive", NULL};

int bt_cli_cmd_vendor_add(bt_cli_t *cli, const bt_cli_args_t *args) {
  const bt_cli_cmd_t *cmd = args->cmd;
  Baton__VendorAdd va = BATON__VENDOR_ADD__INIT;
  bt_cli_strv_t caps, certs;
  bt_cli_strv_init(&caps);
  bt_cli_strv_init(&certs);
  int rc;

  const char *name = args->pos[0];
  const char *region = bt_cli_arg(args, "region");
  const char *model = bt_cli_arg(args, "model");
  const char *hours = bt_cli_arg(args, "hours");
  const char *s;
  char why[200];
  if (bt_cli_check_name("vendor name", name, why, sizeof why) != 0) {
    rc = bt_cli_usage_error(cmd, "%s", why);
    goto out;
  }
  if (region == NULL || *region == '\0') {
    rc = bt_cli_usage_error(cmd, "missing --region");
    goto out;
  }
  if (bt_cli_check_name("--region", region, why, sizeof why) != 0) {
    rc = bt_cli_usage_error(cmd, "%s", why);
    goto out;
  }
  if (model != NULL) {
    size_t k = 0;
    while (vendor_models[k] && strcmp(vendor_models[k], model) != 0)
      k++;
    if (vendor_models[k] == NULL) {
      rc = bt_cli_usage_error(cmd, "bad --model \"%s\": expected onshore, "
                                   "nearshore, offshore or captive",
                              model);
      goto out;
    }
  }
  if ((rc = bt_cli_arg_list(args, "capability", &caps)) != 0 ||
      (rc = bt_cli_arg_list(args, "cert", &certs)) != 0)
    goto out;
  if (caps.n == 0) {
    rc = bt_cli_usage_error(cmd, "missing --capability");
    goto out;
  }
  if ((s = bt_cli_arg(args, "capacity")) != NULL) {
    if (bt_cli_parse_u32(s, 1, UINT32_MAX, &va.capacity) != 0) {
      rc = bt_cli_usage_error(cmd, "bad --capacity \"%s\": expected a positive "
                                   "integer",
                              s);
      goto out;
    }
    va.has_capacity = 1;
  }
  if ((s = bt_cli_arg(args, "cost")) != NULL) {
    if (bt_cli_parse_double(s, 0, 1e12, &va.cost) != 0) {
      rc = bt_cli_usage_error(cmd, "bad --cost \"%s\": expected a number >= 0",
                              s);
      goto out;
    }
    va.has_cost = 1;
  }
  if ((s = bt_cli_arg(args, "weight")) != NULL) {
    if (bt_cli_parse_double(s, 0, 1e6, &va.weight) != 0) {
      rc = bt_cli_usage_error(cmd,
                              "bad --weight \"%s\": expected a number >= 0", s);
      goto out;
    }
    va.has_weight = 1;
  }
  if (hours != NULL && (*hours == '\0' || !bt_valid_text(hours, BT_TEXT_MAX))) {
    rc = bt_cli_usage_error(cmd, "bad --hours: expected text such as \"Mon-Fri "
                                 "08:00-18:00 Europe/Berlin\"");
    goto out;
  }

  va.name = (char *)name;
  va.region = (char *)region;
  va.model = (char *)model;
  va.hours = (char *)hours;
  va.n_capabilities = caps.n;
  va.capabilities = caps.v;
  va.n_certs = certs.n;
  va.certs = certs.v;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_VENDOR_ADD;
  req.vendor_add = &va;
  Baton__CtlReply *reply;
  rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_VENDOR_CREATED,
                        name, &reply);
  if (rc != BT_CLI_EXIT_OK)
    goto out;
  const Baton__VendorCreated *vc = reply->vendor_created;
  if (cli->json) {
    json_t *o = json_object();
    bt_cli_json_set(o, "id", bt_cli_json_u64(vc->id));
    bt_cli_json_set(o, "name", bt_cli_json_str(vc->name ? vc->name : name));
    bt_cli_json_set(o, "secret", bt_cli_json_str(vc->secret));
    bt_cli_json_print(o);
  } else {
    static const bt_cli_col_t cols[] = {{"", false}, {"", false}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, 2, false);
    bt_cli_table_cell(&t, "id");
    bt_cli_table_cellf(&t, "%" PRIu64, vc->id);
    bt_cli_table_cell(&t, "name");
    bt_cli_table_cell(&t, vc->name ? vc->name : name);
    bt_cli_table_cell(&t, "secret");
    bt_cli_table_cell(&t, vc->secret);
    bt_cli_table_print(&t);
    printf("The secret is shown only this once: store it now. Agents pass it "
           "as --secret or BATON_SECRET.\n");
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
out:
  bt_cli_strv_close(&caps);
  bt_cli_strv_close(&certs);
  return rc;
}

static json_t *vendor_json(const Baton__VendorInfo *v) {
  json_t *o = json_object();
  bt_cli_json_set(o, "id", bt_cli_json_u64(v->id));
  bt_cli_json_set(o, "name", bt_cli_json_str(v->name));
  bt_cli_json_set(o, "region", bt_cli_json_str(v->region));
  bt_cli_json_set(o, "model", bt_cli_json_str(v->model));
  bt_cli_json_set(o, "capabilities",
                  bt_cli_json_strv(v->capabilities, v->n_capabilities));
  bt_cli_json_set(o, "certs", bt_cli_json_strv(v->certs, v->n_certs));
  bt_cli_json_set(o, "capacity", bt_cli_json_opt_u64(v->has_capacity, v->capacity));
  bt_cli_json_set(o, "cost", bt_cli_json_opt_real(v->has_cost, v->cost));
  bt_cli_json_set(o, "hours", bt_cli_json_str(v->hours));
  bt_cli_json_set(o, "weight", bt_cli_json_opt_real(v->has_weight, v->weight));
  bt_cli_json_set(o, "state", bt_cli_json_str(v->state));
  bt_cli_json_set(o, "agents", bt_cli_json_u64(v->agents));
  bt_cli_json_set(o, "in_flight", bt_cli_json_u64(v->in_flight));
  bt_cli_json_set(o, "completed", bt_cli_json_u64(v->completed));
  bt_cli_json_set(o, "failed", bt_cli_json_u64(v->failed));
  bt_cli_json_set(o, "on_time_rate",
                  bt_cli_json_opt_real(v->has_on_time_rate, v->on_time_rate));
  bt_cli_json_set(o, "created_at",
                  bt_cli_json_time(v->has_created_at, v->created_at));
  bt_cli_json_set(o, "state_reason", bt_cli_json_str(v->state_reason));
  bt_cli_json_set(o, "limit", bt_cli_json_opt_u64(v->has_limit, v->limit));
  bt_cli_json_set(o, "probing",
                  v->has_probing ? json_boolean(v->probing) : json_null());
  return o;
}

static const char *fmt_rate(bool has, double rate, char *buf, size_t len) {
  if (!has)
    return NULL;
  snprintf(buf, len, "%.1f%%", rate * 100.0);
  return buf;
}

static const char *fmt_real(bool has, double v, char *buf, size_t len) {
  if (!has)
    return NULL;
  snprintf(buf, len, "%g", v);
  return buf;
}

static const char *fmt_u64(bool has, uint64_t v, char *buf, size_t len) {
  if (!has)
    return NULL;
  snprintf(buf, len, "%" PRIu64, v);
  return buf;
}

/* Asks for all vendors (ref == NULL) or one (ref = id or name). */
static int fetch_vendors(bt_cli_t *cli, const char *ref, Baton__CtlReply **out) {
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  Baton__Empty empty = BATON__EMPTY__INIT;
  Baton__VendorRef vr = BATON__VENDOR_REF__INIT;
  char what[160];
  if (ref == NULL) {
    req.body_case = BATON__CTL_REQUEST__BODY_VENDOR_LIST;
    req.vendor_list = &empty;
  } else {
    vr.vendor = (char *)ref;
    req.body_case = BATON__CTL_REQUEST__BODY_VENDOR_SHOW;
    req.vendor_show = &vr;
    snprintf(what, sizeof what, "vendor %s", ref);
  }
  return bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_VENDORS,
                          ref ? what : NULL, out);
}

int bt_cli_cmd_vendor_list(bt_cli_t *cli, const bt_cli_args_t *args) {
  (void)args;
  Baton__CtlReply *reply;
  int rc = fetch_vendors(cli, NULL, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__VendorList *vl = reply->vendors;
  if (cli->json) {
    json_t *a = json_array();
    for (size_t i = 0; i < vl->n_vendors; i++)
      json_array_append_new(a, vendor_json(vl->vendors[i]));
    bt_cli_json_print(a);
  } else {
    static const bt_cli_col_t cols[] = {
        {"ID", true},        {"NAME", false},     {"REGION", false},
        {"MODEL", false},    {"STATE", false},    {"CAPABILITIES", false},
        {"CERTS", false},    {"CAPACITY", true},  {"COST", true},
        {"AGENTS", true},    {"IN_FLIGHT", true}, {"COMPLETED", true},
        {"FAILED", true},    {"ON_TIME", true},   {"REASON", false},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    char buf[512];
    for (size_t i = 0; i < vl->n_vendors; i++) {
      const Baton__VendorInfo *v = vl->vendors[i];
      bt_cli_table_cellf(&t, "%" PRIu64, v->id);
      bt_cli_table_cell(&t, v->name);
      bt_cli_table_cell(&t, v->region);
      bt_cli_table_cell(&t, v->model);
      bt_cli_table_cell(&t, v->state);
      bt_cli_table_cell(
          &t, bt_cli_fmt_list(v->capabilities, v->n_capabilities, buf, sizeof buf));
      bt_cli_table_cell(&t, bt_cli_fmt_list(v->certs, v->n_certs, buf, sizeof buf));
      bt_cli_table_cell(&t, fmt_u64(v->has_capacity, v->capacity, buf, sizeof buf));
      bt_cli_table_cell(&t, fmt_real(v->has_cost, v->cost, buf, sizeof buf));
      bt_cli_table_cellf(&t, "%u", v->agents);
      bt_cli_table_cellf(&t, "%u", v->in_flight);
      bt_cli_table_cellf(&t, "%" PRIu64, v->completed);
      bt_cli_table_cellf(&t, "%" PRIu64, v->failed);
      bt_cli_table_cell(
          &t, fmt_rate(v->has_on_time_rate, v->on_time_rate, buf, sizeof buf));
      bt_cli_table_cell(&t, v->state_reason);
    }
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

int bt_cli_cmd_vendor_show(bt_cli_t *cli, const bt_cli_args_t *args) {
  const char *ref = args->pos[0];
  if (*ref == '\0')
    return bt_cli_usage_error(args->cmd, "the vendor must not be empty");
  Baton__CtlReply *reply;
  int rc = fetch_vendors(cli, ref, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  /* The broker answers VendorShow with a VendorList of that one vendor; an
   * empty list is treated as not found rather than trusted to never happen. */
  if (reply->vendors->n_vendors == 0) {
    bt_cli_errorf("vendor %s not found", ref);
    baton__ctl_reply__free_unpacked(reply, NULL);
    return BT_CLI_EXIT_FAIL;
  }
  const Baton__VendorInfo *v = reply->vendors->vendors[0];
  if (cli->json) {
    bt_cli_json_print(vendor_json(v));
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
    ROW("id", fmt_u64(true, v->id, buf, sizeof buf));
    ROW("name", v->name);
    ROW("state", v->state);
    ROW("state_reason", v->state_reason);
    ROW("region", v->region);
    ROW("model", v->model);
    ROW("capabilities",
        bt_cli_fmt_list(v->capabilities, v->n_capabilities, buf, sizeof buf));
    ROW("certs", bt_cli_fmt_list(v->certs, v->n_certs, buf, sizeof buf));
    ROW("capacity", fmt_u64(v->has_capacity, v->capacity, buf, sizeof buf));
    ROW("limit", fmt_u64(v->has_limit, v->limit, buf, sizeof buf));
    ROW("probing", v->has_probing ? (v->probing ? "yes" : "no") : NULL);
    ROW("cost", fmt_real(v->has_cost, v->cost, buf, sizeof buf));
    ROW("hours", v->hours);
    ROW("weight", fmt_real(v->has_weight, v->weight, buf, sizeof buf));
    ROW("agents", fmt_u64(true, v->agents, buf, sizeof buf));
    ROW("in_flight", fmt_u64(true, v->in_flight, buf, sizeof buf));
    ROW("completed", fmt_u64(true, v->completed, buf, sizeof buf));
    ROW("failed", fmt_u64(true, v->failed, buf, sizeof buf));
    ROW("on_time_rate",
        fmt_rate(v->has_on_time_rate, v->on_time_rate, buf, sizeof buf));
    ROW("created_at", bt_cli_fmt_time(v->has_created_at, v->created_at, buf,
                                      sizeof buf));
#undef ROW
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

/* vendor drain|suspend|resume|fail V: one VendorOp; the answer comes once the
 * broker has committed the change (and, for fail and suspend, its handoffs). */
/* Sends req, a request about the vendor args->pos[0] names (checked first: a
 * malformed name is a usage error), and waits for a reply of kind want.
 * Returns an exit code; on BT_CLI_EXIT_OK *reply is the caller's to free. */
static int vendor_call(bt_cli_t *cli, const bt_cli_args_t *args, Baton__CtlRequest *req,
                       Baton__CtlReply__BodyCase want, Baton__CtlReply **reply) {
  const char *ref = args->pos[0];
  char why[200];
  if (bt_cli_check_name("vendor", ref, why, sizeof why) != 0)
    return bt_cli_usage_error(args->cmd, "%s", why);
  char what[160];
  snprintf(what, sizeof what, "vendor %s", ref);
  return bt_cli_conn_call(&cli->conn, req, want, what, reply);
}

static int vendor_op(bt_cli_t *cli, const bt_cli_args_t *args, Baton__VendorOpKind op) {
  const char *ref = args->pos[0];
  Baton__VendorOp vo = BATON__VENDOR_OP__INIT;
  vo.vendor = (char *)ref;
  vo.has_op = 1;
  vo.op = op;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_VENDOR_OP;
  req.vendor_op = &vo;
  Baton__CtlReply *reply;
  int rc = vendor_call(cli, args, &req, BATON__CTL_REPLY__BODY_VENDOR_STATE, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__VendorState *vs = reply->vendor_state;
  const char *name = vs->name && *vs->name ? vs->name : ref;
  if (cli->json) {
    json_t *o = json_object();
    bt_cli_json_set(o, "id", bt_cli_json_opt_u64(vs->has_id, vs->id));
    bt_cli_json_set(o, "name", bt_cli_json_str(name));
    bt_cli_json_set(o, "state", bt_cli_json_str(vs->state));
    bt_cli_json_set(o, "state_reason", bt_cli_json_str(vs->state_reason));
    bt_cli_json_print(o);
  } else {
    /* One line, through the table so a hostile name cannot drive the
     * terminal: "vendor acme: failed". */
    static const bt_cli_col_t cols[] = {{"", false}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, 1, false);
    bt_cli_table_cellf(&t, "vendor %s: %s", name, vs->state ? vs->state : "?");
    bt_cli_table_print(&t);
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

int bt_cli_cmd_vendor_drain(bt_cli_t *cli, const bt_cli_args_t *args) {
  return vendor_op(cli, args, BATON__VENDOR_OP_KIND__VENDOR_OP_DRAIN);
}

int bt_cli_cmd_vendor_suspend(bt_cli_t *cli, const bt_cli_args_t *args) {
  return vendor_op(cli, args, BATON__VENDOR_OP_KIND__VENDOR_OP_SUSPEND);
}

int bt_cli_cmd_vendor_resume(bt_cli_t *cli, const bt_cli_args_t *args) {
  return vendor_op(cli, args, BATON__VENDOR_OP_KIND__VENDOR_OP_RESUME);
}

int bt_cli_cmd_vendor_fail(bt_cli_t *cli, const bt_cli_args_t *args) {
  return vendor_op(cli, args, BATON__VENDOR_OP_KIND__VENDOR_OP_FAIL);
}

/* vendor rotate-secret V: a new secret, printed once the broker has committed
 * the key derived from it. Like `vendor add`, this is the only time the
 * secret is ever shown. */
int bt_cli_cmd_vendor_rotate_secret(bt_cli_t *cli, const bt_cli_args_t *args) {
  const char *ref = args->pos[0];
  Baton__VendorRef vr = BATON__VENDOR_REF__INIT;
  vr.vendor = (char *)ref;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_VENDOR_ROTATE_SECRET;
  req.vendor_rotate_secret = &vr;
  Baton__CtlReply *reply;
  int rc = vendor_call(cli, args, &req, BATON__CTL_REPLY__BODY_VENDOR_ROTATED, &reply);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  const Baton__VendorRotated *vo = reply->vendor_rotated;
  const char *name = vo->name && *vo->name ? vo->name : ref;
  if (cli->json) {
    json_t *o = json_object();
    bt_cli_json_set(o, "id", bt_cli_json_opt_u64(vo->has_id, vo->id));
    bt_cli_json_set(o, "name", bt_cli_json_str(name));
    bt_cli_json_set(o, "state", bt_cli_json_str(vo->state));
    bt_cli_json_set(o, "secret", bt_cli_json_str(vo->secret));
    bt_cli_json_print(o);
  } else {
    static const bt_cli_col_t cols[] = {{"", false}, {"", false}};
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, 2, false);
    bt_cli_table_cell(&t, "id");
    bt_cli_table_cellf(&t, "%" PRIu64, vo->id);
    bt_cli_table_cell(&t, "name");
    bt_cli_table_cell(&t, name);
    bt_cli_table_cell(&t, "state");
    bt_cli_table_cell(&t, vo->state);
    bt_cli_table_cell(&t, "secret");
    bt_cli_table_cell(&t, vo->secret);
    bt_cli_table_print(&t);
    printf("The new secret is shown only this once: store it now. The old secret "
           "no longer works;\nrestart the vendor's agents with the new one "
           "(--secret or BATON_SECRET).\n");
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
  return BT_CLI_EXIT_OK;
}

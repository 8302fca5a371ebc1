/*
 * `submit`: one package from flags, or many from a JSON Lines file (batch.c).
 * Both become bt_cli_spec_t first, so flags and batch lines share validation,
 * then wire PackageSpecs in Submit requests.
 *
 * A batch is sent in chunks (BATCH_MAX_PACKAGES / BATCH_MAX_BYTES) so no request
 * comes near the broker's frame limit (16 MiB by default). Each chunk is one
 * transaction on the broker; the batch as a whole is not, which is why the
 * ids of chunks already committed are still printed when a later one fails.
 */
#include "batch.h"
#include "commands.h"
#include "output.h"

#include "bt_err.h"
#include "bt_time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX_PACKAGES 5000u
#define BATCH_MAX_BYTES (8u * 1024u * 1024u)

/* Points pb at the fields of s; pb borrows everything from s. */
static void spec_to_pb(const bt_cli_spec_t *s, Baton__PackageSpec *pb) {
  baton__package_spec__init(pb);
  pb->capability = s->capability;
  pb->has_payload = 1; /* an empty payload is sent as such, not left unset */
  pb->payload.data = s->payload;
  pb->payload.len = s->payload_len;
  pb->has_priority = s->has_priority;
  pb->priority = s->priority;
  pb->has_deadline_at = s->has_deadline;
  pb->deadline_at = s->deadline_at;
  pb->has_not_before_at = s->has_not_before;
  pb->not_before_at = s->not_before_at;
  pb->n_regions = s->regions.n;
  pb->regions = s->regions.v;
  pb->n_certs = s->certs.n;
  pb->certs = s->certs.v;
  pb->has_max_cost = s->has_max_cost;
  pb->max_cost = s->max_cost;
  pb->n_prefer = s->prefer.n;
  pb->prefer = s->prefer.v;
  pb->n_avoid = s->avoid.n;
  pb->avoid = s->avoid.v;
  pb->has_max_attempts = s->has_max_attempts;
  pb->max_attempts = s->max_attempts;
  pb->key = s->key;
}

static char *xstrdup(const char *s) {
  char *c = strdup(s);
  if (c == NULL)
    abort();
  return c;
}

static int parse_when_flag(const bt_cli_args_t *args, const char *name,
                           int64_t now_at, int64_t *out, bool *has) {
  const char *s = bt_cli_arg(args, name);
  if (s == NULL)
    return 0;
  if (bt_parse_when(s, now_at, out) != 0)
    return bt_cli_usage_error(args->cmd,
                              "bad --%s \"%s\": expected a duration (90s, 15m, "
                              "2h, 3d) or an RFC 3339 time",
                              name, s);
  *has = true;
  return 0;
}

/* Builds the spec of `submit` without --batch. Returns an exit status. */
static int spec_from_flags(const bt_cli_args_t *args, bt_cli_spec_t *s) {
  const bt_cli_cmd_t *cmd = args->cmd;
  const char *v;
  int rc;
  int64_t now_at = bt_wall_ms();

  char why[200];
  v = bt_cli_arg(args, "capability");
  if (v == NULL || *v == '\0')
    return bt_cli_usage_error(cmd, "missing --capability");
  if (bt_cli_check_name("--capability", v, why, sizeof why) != 0)
    return bt_cli_usage_error(cmd, "%s", why);
  s->capability = xstrdup(v);

  const char *payload = bt_cli_arg(args, "payload");
  const char *file = bt_cli_arg(args, "payload-file");
  if (payload != NULL && file != NULL)
    return bt_cli_usage_error(cmd, "--payload and --payload-file exclude each "
                                   "other");
  if (payload != NULL && *payload != '\0') {
    s->payload_len = strlen(payload);
    s->payload = (uint8_t *)xstrdup(payload);
  } else if (file != NULL) {
    char *buf;
    size_t len;
    int err = bt_cli_read_file(file, &buf, &len);
    if (err != 0) {
      bt_cli_errorf("cannot read payload file %s: %s", file, bt_strerror(err));
      return BT_CLI_EXIT_FAIL;
    }
    s->payload = (uint8_t *)buf;
    s->payload_len = len;
  }

  if ((v = bt_cli_arg(args, "priority")) != NULL) {
    if (bt_cli_parse_u32(v, 0, BT_CLI_PRIORITY_MAX, &s->priority) != 0)
      return bt_cli_usage_error(cmd, "bad --priority \"%s\": expected 0-9", v);
    s->has_priority = true;
  }
  if ((rc = parse_when_flag(args, "deadline", now_at, &s->deadline_at,
                            &s->has_deadline)) != 0 ||
      (rc = parse_when_flag(args, "not-before", now_at, &s->not_before_at,
                            &s->has_not_before)) != 0)
    return rc;
  if ((rc = bt_cli_arg_list(args, "region", &s->regions)) != 0 ||
      (rc = bt_cli_arg_list(args, "cert", &s->certs)) != 0 ||
      (rc = bt_cli_arg_list(args, "prefer", &s->prefer)) != 0 ||
      (rc = bt_cli_arg_list(args, "avoid", &s->avoid)) != 0)
    return rc;
  if ((v = bt_cli_arg(args, "max-cost")) != NULL) {
    if (bt_cli_parse_double(v, 0, 1e12, &s->max_cost) != 0)
      return bt_cli_usage_error(cmd, "bad --max-cost \"%s\": expected a number "
                                     ">= 0",
                                v);
    s->has_max_cost = true;
  }
  if ((v = bt_cli_arg(args, "max-attempts")) != NULL) {
    if (bt_cli_parse_u32(v, 1, BT_CLI_MAX_ATTEMPTS_MAX, &s->max_attempts) != 0)
      return bt_cli_usage_error(cmd, "bad --max-attempts \"%s\": expected "
                                     "1-%u",
                                v, BT_CLI_MAX_ATTEMPTS_MAX);
    s->has_max_attempts = true;
  }
  if ((v = bt_cli_arg(args, "key")) != NULL) {
    if (bt_cli_check_name("--key", v, why, sizeof why) != 0)
      return bt_cli_usage_error(cmd, "%s", why);
    s->key = xstrdup(v);
  }
  return 0;
}

/* Sends one Submit of n specs and checks the reply lists n packages. On
 * BT_CLI_EXIT_OK *out is the reply (owned). */
static int send_submit(bt_cli_t *cli, Baton__PackageSpec **specs, size_t n,
                       Baton__CtlReply **out) {
  Baton__Submit sub = BATON__SUBMIT__INIT;
  sub.n_packages = n;
  sub.packages = specs;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_SUBMIT;
  req.submit = &sub;
  int rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_SUBMITTED,
                            NULL, out);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  if ((*out)->submitted->n_packages != n) {
    bt_cli_errorf("the broker answered %zu ids for %zu packages",
                  (*out)->submitted->n_packages, n);
    baton__ctl_reply__free_unpacked(*out, NULL);
    *out = NULL;
    return BT_CLI_EXIT_UNREACHABLE;
  }
  return BT_CLI_EXIT_OK;
}

static int submit_one(bt_cli_t *cli, const bt_cli_args_t *args) {
  bt_cli_spec_t s;
  bt_cli_spec_init(&s);
  int rc = spec_from_flags(args, &s);
  if (rc != 0)
    goto out;
  Baton__PackageSpec pb;
  Baton__PackageSpec *pbs[1] = {&pb};
  spec_to_pb(&s, &pb);
  Baton__CtlReply *reply;
  if ((rc = send_submit(cli, pbs, 1, &reply)) != BT_CLI_EXIT_OK)
    goto out;
  const Baton__SubmittedPackage *p = reply->submitted->packages[0];
  if (cli->json) {
    json_t *o = json_object();
    bt_cli_json_set(o, "id", bt_cli_json_u64(p->id));
    bt_cli_json_set(o, "state", bt_cli_json_str(p->state));
    bt_cli_json_set(o, "duplicate", json_boolean(p->has_duplicate && p->duplicate));
    bt_cli_json_print(o);
  } else {
    /* The id alone on stdout, so id=$(batonctl submit ...) works. */
    printf("%" PRIu64 "\n", p->id);
    if (p->has_duplicate && p->duplicate)
      fprintf(stderr,
              "batonctl: key \"%s\" was already used: this is the earlier "
              "package (%s)\n",
              s.key ? s.key : "", p->state ? p->state : "-");
  }
  baton__ctl_reply__free_unpacked(reply, NULL);
out:
  bt_cli_spec_close(&s);
  return rc;
}

static void print_ids(const bt_cli_t *cli, const uint64_t *ids, size_t n,
                      const char *error) {
  if (cli->json) {
    json_t *o = json_object();
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append_new(a, bt_cli_json_u64(ids[i]));
    bt_cli_json_set(o, "ids", a);
    if (error != NULL)
      bt_cli_json_set(o, "error", bt_cli_json_str(error));
    bt_cli_json_print(o);
  } else {
    for (size_t i = 0; i < n; i++)
      printf("%" PRIu64 "\n", ids[i]);
  }
}

static int submit_batch(bt_cli_t *cli, const char *path) {
  char *text = NULL;
  size_t len = 0;
  int err = bt_cli_read_file(path, &text, &len);
  if (err != 0) {
    bt_cli_errorf("cannot read batch file %s: %s", path, bt_strerror(err));
    return BT_CLI_EXIT_FAIL;
  }
  bt_cli_batch_t b;
  bt_cli_batch_init(&b);
  char why[512];
  int rc = BT_CLI_EXIT_OK;
  Baton__PackageSpec *pbs = NULL;
  Baton__PackageSpec **ptrs = NULL;
  uint64_t *ids = NULL;
  size_t n_ids = 0;

  if (bt_cli_batch_parse(text, len, bt_wall_ms(), &b, why, sizeof why) != 0) {
    bt_cli_errorf("%s", why);
    rc = BT_CLI_EXIT_FAIL;
    goto out;
  }
  if (b.n == 0) {
    bt_cli_errorf("note: %s holds no packages; nothing submitted", path);
    print_ids(cli, NULL, 0, NULL);
    goto out;
  }
  pbs = calloc(b.n, sizeof *pbs);
  ptrs = calloc(b.n, sizeof *ptrs);
  ids = calloc(b.n, sizeof *ids);
  if (pbs == NULL || ptrs == NULL || ids == NULL)
    abort();
  for (size_t i = 0; i < b.n; i++) {
    spec_to_pb(&b.specs[i], &pbs[i]);
    ptrs[i] = &pbs[i];
  }

  size_t start = 0;
  while (start < b.n) {
    /* A field in Submit costs its packed size plus a tag byte and a length
     * varint (at most 5 bytes). */
    size_t end = start, bytes = 0;
    while (end < b.n && end - start < BATCH_MAX_PACKAGES) {
      size_t sz = baton__package_spec__get_packed_size(&pbs[end]) + 6;
      if (end > start && bytes + sz > BATCH_MAX_BYTES)
        break;
      bytes += sz;
      end++;
    }
    Baton__CtlReply *reply;
    rc = send_submit(cli, ptrs + start, end - start, &reply);
    if (rc != BT_CLI_EXIT_OK) {
      if (n_ids > 0) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "packages %zu-%zu of %zu were not submitted; the first %zu were",
                 start + 1, b.n, b.n, n_ids);
        bt_cli_errorf("%s (their ids are on stdout)", msg);
        print_ids(cli, ids, n_ids, msg);
      }
      goto out;
    }
    for (size_t k = 0; k < end - start; k++)
      ids[n_ids++] = reply->submitted->packages[k]->id;
    baton__ctl_reply__free_unpacked(reply, NULL);
    start = end;
  }
  print_ids(cli, ids, n_ids, NULL);
out:
  free(ids);
  free(ptrs);
  free(pbs);
  bt_cli_batch_close(&b);
  free(text);
  return rc;
}

/* The submit flags that describe one package; --batch excludes all of them. */
static const char *const package_flags[] = {
    "capability", "payload", "payload-file", "priority", "deadline",
    "not-before", "region",  "cert",         "max-cost", "prefer",
    "avoid",      "max-attempts", "key",     NULL,
};

int bt_cli_cmd_submit(bt_cli_t *cli, const bt_cli_args_t *args) {
  const char *batch = bt_cli_arg(args, "batch");
  if (batch == NULL)
    return submit_one(cli, args);
  for (size_t k = 0; package_flags[k]; k++)
    if (bt_cli_arg(args, package_flags[k]) != NULL)
      return bt_cli_usage_error(args->cmd,
                                "--batch and --%s exclude each other (put the "
                                "field in the batch lines)",
                                package_flags[k]);
  return submit_batch(cli, batch);
}

/*
 * The command-line parser: long options from a command's declarative option list
 * plus the global options, in any order with positionals, as "--name value" or
 * "--name=value"; and the strict number parsers and file reader flags use.
 *
 * Never prints anything but usage errors and never exits: the exit status goes
 * back to main().
 */
#include "cli.h"
#include "output.h"

#include "bt_err.h"
#include "bt_time.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const bt_cli_opt_t bt_cli_global_opts[] = {
    {"control", BT_CLI_OPT_VALUE},     {"json", BT_CLI_OPT_FLAG},
    {"admin-token", BT_CLI_OPT_VALUE}, {"help", BT_CLI_OPT_FLAG},
    {"version", BT_CLI_OPT_FLAG},      {NULL, BT_CLI_OPT_FLAG},
};

#define TOP_USAGE                                                              \
  "usage: batonctl [--control PATH|tcp://HOST:PORT] [--json] "                 \
  "[--admin-token TOKEN] COMMAND ...\n"

void bt_cli_args_init(bt_cli_args_t *a) { memset(a, 0, sizeof *a); }

void bt_cli_args_close(bt_cli_args_t *a) {
  for (size_t i = 0; i < a->n_opts; i++)
    free(a->opts[i].vals);
  free(a->opts);
  free(a->pos);
  memset(a, 0, sizeof *a);
}

static const bt_cli_opt_t *find_opt(const bt_cli_opt_t *opts, const char *name,
                                    size_t len) {
  if (opts == NULL)
    return NULL;
  for (; opts->name != NULL; opts++)
    if (strlen(opts->name) == len && memcmp(opts->name, name, len) == 0)
      return opts;
  return NULL;
}

static void add_value(bt_cli_args_t *a, const bt_cli_opt_t *opt, const char *v) {
  bt_cli_optval_t *ov = NULL;
  for (size_t i = 0; i < a->n_opts; i++)
    if (a->opts[i].opt == opt)
      ov = &a->opts[i];
  if (ov == NULL) {
    a->opts = realloc(a->opts, (a->n_opts + 1) * sizeof *a->opts);
    if (a->opts == NULL)
      abort();
    ov = &a->opts[a->n_opts++];
    memset(ov, 0, sizeof *ov);
    ov->opt = opt;
  }
  ov->vals = realloc(ov->vals, (ov->n + 1) * sizeof *ov->vals);
  if (ov->vals == NULL)
    abort();
  ov->vals[ov->n++] = v;
}

static void add_pos(bt_cli_args_t *a, const char *v) {
  a->pos = realloc(a->pos, (a->n_pos + 1) * sizeof *a->pos);
  if (a->pos == NULL)
    abort();
  a->pos[a->n_pos++] = v;
}

int bt_cli_args_parse(bt_cli_args_t *a, const bt_cli_opt_t *cmd_opts, int argc,
                      char **argv, int *i, bool stop_at_positional, char *err,
                      size_t errlen) {
  while (*i < argc) {
    const char *arg = argv[*i];
    if (a->rest_positional || strcmp(arg, "-") == 0 || arg[0] != '-') {
      if (stop_at_positional)
        return 0;
      add_pos(a, arg);
      (*i)++;
      continue;
    }
    (*i)++;
    if (strcmp(arg, "--") == 0) {
      a->rest_positional = true;
      continue;
    }
    if (strcmp(arg, "-h") == 0) {
      add_value(a, find_opt(bt_cli_global_opts, "help", 4), "");
      continue;
    }
    if (arg[1] != '-') {
      snprintf(err, errlen, "unknown option %s", arg);
      return BT_EINVAL;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const bt_cli_opt_t *opt = find_opt(cmd_opts, name, nlen);
    if (opt == NULL)
      opt = find_opt(bt_cli_global_opts, name, nlen);
    if (opt == NULL) {
      snprintf(err, errlen, "unknown option --%.*s", (int)nlen, name);
      return BT_EINVAL;
    }
    if (opt->kind == BT_CLI_OPT_FLAG) {
      if (eq != NULL) {
        snprintf(err, errlen, "option --%s takes no value", opt->name);
        return BT_EINVAL;
      }
      add_value(a, opt, "");
      continue;
    }
    if (eq != NULL) {
      add_value(a, opt, eq + 1);
      continue;
    }
    if (*i >= argc) {
      snprintf(err, errlen, "option --%s needs a value", opt->name);
      return BT_EINVAL;
    }
    add_value(a, opt, argv[(*i)++]);
  }
  return 0;
}

/* A handler asking for an option its row does not declare is a bug in
 * commands.c; fail loudly in every build rather than read nothing. */
static const bt_cli_optval_t *lookup(const bt_cli_args_t *a, const char *name) {
  size_t len = strlen(name);
  const bt_cli_opt_t *opt = find_opt(a->cmd ? a->cmd->opts : NULL, name, len);
  if (opt == NULL)
    opt = find_opt(bt_cli_global_opts, name, len);
  if (opt == NULL) {
    fprintf(stderr, "batonctl: internal error: option --%s is not declared\n",
            name);
    abort();
  }
  for (size_t i = 0; i < a->n_opts; i++)
    if (a->opts[i].opt == opt)
      return &a->opts[i];
  return NULL;
}

const char *bt_cli_arg(const bt_cli_args_t *a, const char *name) {
  const bt_cli_optval_t *ov = lookup(a, name);
  return ov ? ov->vals[ov->n - 1] : NULL;
}

const char *const *bt_cli_arg_all(const bt_cli_args_t *a, const char *name,
                                  size_t *n) {
  const bt_cli_optval_t *ov = lookup(a, name);
  *n = ov ? ov->n : 0;
  return ov ? ov->vals : NULL;
}

int bt_cli_arg_list(const bt_cli_args_t *a, const char *name,
                    bt_cli_strv_t *out) {
  size_t n;
  const char *const *vals = bt_cli_arg_all(a, name, &n);
  for (size_t k = 0; k < n; k++) {
    char why[160];
    if (bt_cli_strv_split(out, vals[k], strlen(vals[k]), why, sizeof why) != 0)
      return bt_cli_usage_error(a->cmd, "bad --%s: %s", name, why);
  }
  char why[200];
  if (bt_cli_check_names(name, out, why, sizeof why) != 0)
    return bt_cli_usage_error(a->cmd, "bad --%s: %s", name, why);
  return 0;
}

int bt_cli_parse_since(const char *s, int64_t now_at, int64_t *out) {
  if (bt_parse_time(s, out) == 0)
    return 0;
  uint64_t ms;
  if (bt_parse_duration(s, &ms) != 0 || ms > (uint64_t)now_at)
    return BT_EINVAL;
  *out = now_at - (int64_t)ms;
  return 0;
}

int bt_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  if (s == NULL || *s == '\0')
    return BT_EINVAL;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return BT_EINVAL;
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return BT_EINVAL;
    v = v * 10 + d;
  }
  if (v < min || v > max)
    return BT_EINVAL;
  *out = v;
  return 0;
}

int bt_cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out) {
  uint64_t v;
  if (bt_cli_parse_u64(s, min, max, &v) != 0)
    return BT_EINVAL;
  *out = (uint32_t)v;
  return 0;
}

int bt_cli_parse_double(const char *s, double min, double max, double *out) {
  if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t')
    return BT_EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  /* strtod also takes "inf", "nan" and hex floats; only finite values pass. */
  if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
    return BT_EINVAL;
  *out = v;
  return 0;
}

int bt_cli_arg_id(const bt_cli_args_t *args, const char *s, const char *what,
                  uint64_t *out) {
  if (bt_cli_parse_u64(s, 1, INT64_MAX, out) != 0)
    return bt_cli_usage_error(args->cmd, "bad %s \"%s\": expected a positive integer",
                              what, s);
  return 0;
}

int bt_cli_read_file(const char *path, char **out, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (f == NULL)
    return -errno;
  size_t cap = 64 * 1024, n = 0;
  char *buf = malloc(cap + 1);
  if (buf == NULL)
    abort();
  for (;;) {
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
      if (buf == NULL)
        abort();
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0)
      break;
  }
  int rv = ferror(f) ? -(errno ? errno : EIO) : 0;
  if (f != stdin)
    fclose(f);
  if (rv != 0) {
    free(buf);
    return rv;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

void bt_cli_print_usage_line(const bt_cli_cmd_t *cmd, FILE *f) {
  if (cmd == NULL)
    fputs(TOP_USAGE, f);
  else
    fprintf(f, "usage: batonctl %s%s%s\n", cmd->name,
            cmd->usage && *cmd->usage ? " " : "", cmd->usage ? cmd->usage : "");
}

int bt_cli_usage_error(const bt_cli_cmd_t *cmd, const char *fmt, ...) {
  va_list ap;
  char msg[400];
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bt_cli_errorf("%s", msg);
  bt_cli_print_usage_line(cmd, stderr);
  if (cmd != NULL)
    fprintf(stderr, "Run 'batonctl help %s' for details.\n", cmd->name);
  else
    fputs("Run 'batonctl help' for the commands.\n", stderr);
  return BT_CLI_EXIT_USAGE;
}

int bt_cli_history_filter(const bt_cli_args_t *args, bt_cli_history_t *out) {
  memset(out, 0, sizeof *out);
  const char *package = bt_cli_arg(args, "package");
  const char *since = bt_cli_arg(args, "since");
  char why[200];
  out->vendor = bt_cli_arg(args, "vendor");
  if (out->vendor != NULL && bt_cli_check_name("--vendor", out->vendor, why, sizeof why) != 0)
    return bt_cli_usage_error(args->cmd, "%s", why);
  if (package != NULL) {
    if (bt_cli_parse_u64(package, 1, INT64_MAX, &out->package_id) != 0)
      return bt_cli_usage_error(args->cmd,
                                "bad --package \"%s\": expected a positive integer",
                                package);
    out->has_package_id = true;
  }
  if (since != NULL) {
    if (bt_cli_parse_since(since, bt_wall_ms(), &out->since_at) != 0)
      return bt_cli_usage_error(args->cmd,
                                "bad --since \"%s\": expected an RFC 3339 time or a "
                                "duration ago (90s, 15m, 2h, 3d)",
                                since);
    out->has_since_at = true;
  }
  return 0;
}

/*
 * batonctl's command model: the invocation context, the declarative command table
 * and the parsed arguments a handler receives.
 *
 * A command is one row of bt_cli_commands[] (commands.c): its words ("vendor add"),
 * usage line, help text, options, positional counts and handler. Adding a command
 * is one row plus one handler; main.c and args.c never change for it.
 *
 * Handlers return the process exit status (BT_CLI_EXIT_*) rather than a negative
 * code: the CLI's whole contract with scripts is that status, so it is decided
 * where the cause is known and passed up unchanged.
 */
#ifndef BT_CLI_H
#define BT_CLI_H

#include "client.h"
#include "spec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses, fixed by the contract (CONTRACT.md, batonctl). */
enum {
  BT_CLI_EXIT_OK = 0,
  BT_CLI_EXIT_FAIL = 1,        /* rejected or not found: any CtlReply status but OK */
  BT_CLI_EXIT_USAGE = 2,       /* unknown command or flag, missing or bad argument */
  BT_CLI_EXIT_UNREACHABLE = 3, /* no connection, no reply, or an unreadable reply */
};

/* How an option takes values. */
typedef enum {
  BT_CLI_OPT_FLAG,  /* --json: no value */
  BT_CLI_OPT_VALUE, /* --region R or --region=R; given twice, the last one wins */
  BT_CLI_OPT_LIST,  /* --capability C, repeatable; each value may also be "a,b,c" */
} bt_cli_opt_kind_t;

typedef struct {
  const char *name; /* without the leading "--"; NULL ends an option array */
  bt_cli_opt_kind_t kind;
} bt_cli_opt_t;

/* One value list per option seen on the command line. */
typedef struct {
  const bt_cli_opt_t *opt;
  const char **vals; /* owned array of borrowed argv strings */
  size_t n;
} bt_cli_optval_t;

struct bt_cli_cmd;

/* The parsed command line. Strings are borrowed from argv. */
typedef struct {
  const struct bt_cli_cmd *cmd; /* NULL until a command is recognised */
  bt_cli_optval_t *opts;
  size_t n_opts;
  const char **pos; /* positional arguments after the command words */
  size_t n_pos;
  bool rest_positional; /* "--" was seen: everything after it is positional */
} bt_cli_args_t;

/* The invocation: where the broker is and how to print. */
typedef struct {
  const char *control;     /* endpoint: a socket path or tcp://HOST:PORT */
  const char *admin_token; /* sent on TCP endpoints only; may be NULL */
  bool json;               /* one JSON document on stdout instead of tables */
  bt_cli_conn_t conn;      /* opened by the first request, reused after */
} bt_cli_t;

typedef int (*bt_cli_run_cb)(bt_cli_t *cli, const bt_cli_args_t *args);

/* One row of the command table. */
typedef struct bt_cli_cmd {
  const char *name;        /* command words: "submit", "vendor add" */
  const char *usage;       /* what follows the name in a usage line */
  const char *summary;     /* one line for the command list */
  const char *help;        /* the rest of `batonctl help NAME` */
  const bt_cli_opt_t *opts; /* NULL-name terminated; NULL for none */
  size_t min_pos;
  size_t max_pos; /* SIZE_MAX: any number */
  bt_cli_run_cb run;
} bt_cli_cmd_t;

/* The command table (commands.c), terminated by a row with a NULL name. */
extern const bt_cli_cmd_t bt_cli_commands[];

/* Options every command accepts, before or after the command words (args.c). */
extern const bt_cli_opt_t bt_cli_global_opts[];

/* --- args.c: the command-line parser and the value parsers flags use --------- */

void bt_cli_args_init(bt_cli_args_t *a);
void bt_cli_args_close(bt_cli_args_t *a);

/* Parses argv[*i…] against cmd_opts (may be NULL) and bt_cli_global_opts, adding
 * values and positionals to a and advancing *i. With stop_at_positional it stops
 * before the first positional argument (used while the command words are still
 * being read). After "--" everything is positional. Returns 0, or BT_EINVAL with
 * a message in err (unknown option, missing value, value given to a flag). */
int bt_cli_args_parse(bt_cli_args_t *a, const bt_cli_opt_t *cmd_opts, int argc,
                      char **argv, int *i, bool stop_at_positional, char *err,
                      size_t errlen);

/* The last value of option name, or NULL when it was not given. A flag's value
 * is "". Aborts when name is not declared for the command or globally, which is
 * a programming error. Borrows. */
const char *bt_cli_arg(const bt_cli_args_t *a, const char *name);

/* All values of a list option (not yet split at commas); *n is 0 when absent. */
const char *const *bt_cli_arg_all(const bt_cli_args_t *a, const char *name,
                                  size_t *n);

/* All values of list option name, split at commas, appended to out (which must
 * be initialised). An empty item is a usage error: prints it for a->cmd and
 * returns BT_CLI_EXIT_USAGE; else returns 0. */
int bt_cli_arg_list(const bt_cli_args_t *a, const char *name, bt_cli_strv_t *out);

/* Strict decimal parsing into [min, max]: digits only, no sign or spaces.
 * Return 0 or BT_EINVAL. */
int bt_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int bt_cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* A finite decimal number in [min, max]. Returns 0 or BT_EINVAL. */
int bt_cli_parse_double(const char *s, double min, double max, double *out);

/* A --since value: an RFC 3339 time, or a duration (90s, 15m, 2h, 3d) meaning
 * that long before now_at (unix ms). Returns 0 or BT_EINVAL. */
int bt_cli_parse_since(const char *s, int64_t now_at, int64_t *out);

/* The --vendor, --package and --since filters the history commands (handoffs,
 * audit) share. */
typedef struct {
  const char *vendor; /* NULL none */
  uint64_t package_id;
  bool has_package_id;
  int64_t since_at;
  bool has_since_at;
} bt_cli_history_t;
/* Reads them from args. Returns 0, or prints a usage error and returns
 * BT_CLI_EXIT_USAGE. */
int bt_cli_history_filter(const bt_cli_args_t *args, bt_cli_history_t *out);

/* Parses an id argument (1 .. 2^63-1) named what (e.g. "package id"). On
 * failure prints a usage error for args->cmd and returns BT_CLI_EXIT_USAGE;
 * else returns 0. */
int bt_cli_arg_id(const bt_cli_args_t *args, const char *s, const char *what,
                  uint64_t *out);

/* Reads a whole file ("-" is stdin) into *out (owned, NUL-terminated for
 * convenience; *len excludes the NUL). Returns 0 or -errno. */
int bt_cli_read_file(const char *path, char **out, size_t *len);

/* Prints "batonctl: <message>" and the command's usage line on stderr, returns
 * BT_CLI_EXIT_USAGE. */
int bt_cli_usage_error(const bt_cli_cmd_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes "usage: batonctl NAME USAGE" for cmd to f. */
void bt_cli_print_usage_line(const bt_cli_cmd_t *cmd, FILE *f);

#endif

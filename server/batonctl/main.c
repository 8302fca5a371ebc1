/*
 * batonctl: the admin and submitter CLI of the Baton broker.
 *
 *   batonctl [--control PATH|tcp://HOST:PORT] [--json] COMMAND ...
 *
 * main() only reads the global options, finds the command in the table
 * (commands.c), prints help, and runs the handler; it owns the exit status
 * contract: 0 ok, 1 rejected or not found, 2 usage error, 3 broker unreachable.
 */
#include "cli.h"
#include "output.h"
#include "commands.h"

#include "bt_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONTROL "./var/baton.sock"

static size_t words_len(const char *name) {
  const char *sp = strchr(name, ' ');
  return sp ? (size_t)(sp - name) : strlen(name);
}

/* The command named exactly name, or NULL. */
static const bt_cli_cmd_t *find_cmd(const char *name) {
  for (const bt_cli_cmd_t *c = bt_cli_commands; c->name; c++)
    if (strcmp(c->name, name) == 0)
      return c;
  return NULL;
}

/* Whether some command starts with the group word g ("vendor"). */
static bool is_group(const char *g) {
  size_t n = strlen(g);
  for (const bt_cli_cmd_t *c = bt_cli_commands; c->name; c++)
    if (strchr(c->name, ' ') && words_len(c->name) == n &&
        strncmp(c->name, g, n) == 0)
      return true;
  return false;
}

/* The width of the command column: the longest name ("package reassign"). */
static int name_width(void) {
  size_t w = strlen("help COMMAND");
  for (const bt_cli_cmd_t *c = bt_cli_commands; c->name; c++)
    if (strlen(c->name) > w)
      w = strlen(c->name);
  return (int)w;
}

static void print_top_help(FILE *f) {
  int w = name_width();
  bt_cli_print_usage_line(NULL, f);
  fputs("\nAdmin and submitter CLI of the Baton work orchestration broker.\n"
        "\nCommands:\n",
        f);
  for (const bt_cli_cmd_t *c = bt_cli_commands; c->name; c++)
    fprintf(f, "  %-*s  %s\n", w, c->name, c->summary);
  fprintf(f, "  %-*s  %s\n", w, "help COMMAND", "show a command's usage and options");
  fputs("\nGlobal options (before or after the command):\n"
        "  --control PATH|tcp://HOST:PORT  the broker's control endpoint, or\n"
        "                       several separated by commas (brokers sharing one\n"
        "                       database: the first that answers is used)\n"
        "                       (env BATON_CONTROL; default " DEFAULT_CONTROL ")\n"
        "  --json               print exactly one JSON document on stdout\n"
        "  --admin-token TOKEN  token for a tcp:// endpoint (env "
        "BATON_ADMIN_TOKEN)\n"
        "  --help, -h           help; --version: the version\n"
        "\nDurations: 90s, 15m, 2h, 3d; times: RFC 3339. The environment\n"
        "variable BATON_CTL_TIMEOUT (a duration, default 30s) bounds each wait\n"
        "for the broker.\n"
        "\nExit status: 0 ok, 1 rejected or not found, 2 usage error,\n"
        "3 broker unreachable.\n",
        f);
}

static void print_group_help(const char *group, FILE *f) {
  size_t n = strlen(group);
  fprintf(f, "usage: batonctl %s SUBCOMMAND ...\n\nSubcommands:\n", group);
  int w = name_width();
  for (const bt_cli_cmd_t *c = bt_cli_commands; c->name; c++)
    if (words_len(c->name) == n && strncmp(c->name, group, n) == 0 &&
        c->name[n] == ' ')
      fprintf(f, "  %-*s  %s\n", w, c->name, c->summary);
  fprintf(f, "\nRun 'batonctl help %s SUBCOMMAND' for details.\n", group);
}

static void print_cmd_help(const bt_cli_cmd_t *c, FILE *f) {
  bt_cli_print_usage_line(c, f);
  fprintf(f, "\n%s", c->help);
  fputs("\nGlobal options: --control PATH|tcp://HOST:PORT, --json, "
        "--admin-token TOKEN\n",
        f);
}

/* `batonctl help [WORDS...]`. */
static int run_help(const bt_cli_args_t *a) {
  char name[128] = "";
  for (size_t k = 0; k < a->n_pos; k++) {
    size_t used = strlen(name);
    snprintf(name + used, sizeof name - used, "%s%s", k ? " " : "", a->pos[k]);
  }
  if (a->n_pos == 0) {
    print_top_help(stdout);
    return BT_CLI_EXIT_OK;
  }
  const bt_cli_cmd_t *c = find_cmd(name);
  if (c != NULL) {
    print_cmd_help(c, stdout);
    return BT_CLI_EXIT_OK;
  }
  if (a->n_pos == 1 && is_group(name)) {
    print_group_help(name, stdout);
    return BT_CLI_EXIT_OK;
  }
  return bt_cli_usage_error(NULL, "unknown command '%s'", name);
}

/* Points cli at the broker from --control, BATON_CONTROL or the default. */
static int setup(bt_cli_t *cli, const bt_cli_args_t *a) {
  /* An empty BATON_CONTROL means unset (FOO= cmd); an empty --control is a
   * mistake and fails the endpoint check below. */
  const char *control = bt_cli_arg(a, "control");
  if (control == NULL) {
    control = getenv("BATON_CONTROL");
    if (control == NULL || *control == '\0')
      control = DEFAULT_CONTROL;
  }
  char why[256];
  if (bt_cli_endpoint_check(control, why, sizeof why) != 0)
    return bt_cli_usage_error(a->cmd, "%s", why);
  const char *token = bt_cli_arg(a, "admin-token");
  if (token == NULL)
    token = getenv("BATON_ADMIN_TOKEN");
  if (token != NULL && *token == '\0')
    token = NULL;
  uint64_t timeout_ms = BT_CLI_DEFAULT_TIMEOUT_MS;
  const char *t = getenv("BATON_CTL_TIMEOUT");
  if (t != NULL && *t != '\0' &&
      (bt_parse_duration(t, &timeout_ms) != 0 || timeout_ms == 0 ||
       timeout_ms > 24u * 3600u * 1000u))
    return bt_cli_usage_error(a->cmd, "bad BATON_CTL_TIMEOUT \"%s\": expected "
                                      "a duration such as 30s",
                              t);
  cli->control = control;
  cli->admin_token = token;
  cli->json = bt_cli_arg(a, "json") != NULL;
  bt_cli_conn_init(&cli->conn, control, token, (int)timeout_ms);
  return BT_CLI_EXIT_OK;
}

static int run(int argc, char **argv, bt_cli_args_t *a, bt_cli_t *cli) {
  char err[256];
  int i = 1;
  if (bt_cli_args_parse(a, NULL, argc, argv, &i, true, err, sizeof err) != 0)
    return bt_cli_usage_error(NULL, "%s", err);
  if (bt_cli_arg(a, "version") != NULL) {
    printf("batonctl %s\n", BATON_VERSION);
    return BT_CLI_EXIT_OK;
  }
  if (i == argc) {
    if (bt_cli_arg(a, "help") != NULL) {
      print_top_help(stdout);
      return BT_CLI_EXIT_OK;
    }
    return bt_cli_usage_error(NULL, "missing command");
  }

  const char *w1 = argv[i++];
  if (strcmp(w1, "help") == 0) {
    if (bt_cli_args_parse(a, NULL, argc, argv, &i, false, err, sizeof err) != 0)
      return bt_cli_usage_error(NULL, "%s", err);
    return run_help(a);
  }
  const bt_cli_cmd_t *cmd = find_cmd(w1);
  if (cmd == NULL) {
    if (!is_group(w1))
      return bt_cli_usage_error(NULL, "unknown command '%s'", w1);
    /* A group ("vendor"): global options may sit before the subcommand. */
    if (bt_cli_args_parse(a, NULL, argc, argv, &i, true, err, sizeof err) != 0)
      return bt_cli_usage_error(NULL, "%s", err);
    if (i == argc) {
      if (bt_cli_arg(a, "help") != NULL) {
        print_group_help(w1, stdout);
        return BT_CLI_EXIT_OK;
      }
      fprintf(stderr, "batonctl: missing subcommand for '%s'\n", w1);
      print_group_help(w1, stderr);
      return BT_CLI_EXIT_USAGE;
    }
    char name[128];
    snprintf(name, sizeof name, "%s %s", w1, argv[i++]);
    if ((cmd = find_cmd(name)) == NULL) {
      fprintf(stderr, "batonctl: unknown command '%s'\n", name);
      print_group_help(w1, stderr);
      return BT_CLI_EXIT_USAGE;
    }
  }
  a->cmd = cmd;
  if (bt_cli_args_parse(a, cmd->opts, argc, argv, &i, false, err, sizeof err) !=
      0) {
    /* --help anywhere wins over a mistake elsewhere on the line. */
    for (int k = 1; k < argc; k++)
      if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
        print_cmd_help(cmd, stdout);
        return BT_CLI_EXIT_OK;
      }
    return bt_cli_usage_error(cmd, "%s", err);
  }
  if (bt_cli_arg(a, "help") != NULL) {
    print_cmd_help(cmd, stdout);
    return BT_CLI_EXIT_OK;
  }
  if (bt_cli_arg(a, "version") != NULL) {
    printf("batonctl %s\n", BATON_VERSION);
    return BT_CLI_EXIT_OK;
  }
  if (a->n_pos < cmd->min_pos)
    return bt_cli_usage_error(cmd, "missing argument");
  if (a->n_pos > cmd->max_pos)
    return bt_cli_usage_error(cmd, "unexpected argument '%s'",
                              a->pos[cmd->max_pos]);
  int rc = setup(cli, a);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  return cmd->run(cli, a);
}

int main(int argc, char **argv) {
  bt_cli_args_t args;
  bt_cli_t cli;
  memset(&cli, 0, sizeof cli);
  cli.conn.fd = -1;
  bt_cli_args_init(&args);
  int rc = run(argc, argv, &args, &cli);
  bt_cli_conn_close(&cli.conn);
  if (rc != BT_CLI_EXIT_OK) {
    /* --json promises one JSON document on stdout, failures included. */
    for (int k = 1; k < argc; k++)
      if (strcmp(argv[k], "--json") == 0) {
        bt_cli_json_error(rc);
        break;
      }
  }
  bt_cli_args_close(&args);
  /* A full disk or a closed pipe must not pass for success. */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("batonctl: cannot write output");
    if (rc == BT_CLI_EXIT_OK)
      rc = BT_CLI_EXIT_FAIL;
  }
  return rc;
}

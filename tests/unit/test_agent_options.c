/*
 * baton-agent's settings (worker/agentd/options.c): flags > environment > config
 * file > defaults, the handler list, and clear errors for bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *fake_env[16][2];

static const char *env_get(const char *name) {
  for (int i = 0; i < 16 && fake_env[i][0]; i++) {
    if (strcmp(fake_env[i][0], name) == 0)
      return fake_env[i][1];
  }
  return NULL;
}

static void env_set(int i, const char *name, const char *value) {
  fake_env[i][0] = name;
  fake_env[i][1] = value;
}

static int setup(void **state) {
  (void)state;
  memset(fake_env, 0, sizeof fake_env);
  return 0;
}

/* Parses a NULL-terminated argument list (copied: parse may blank a secret). */
static int parse(bt_agentd_opts_t *o, char *err, size_t errlen, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;
  va_start(ap, errlen);
  argv[argc++] = strdup("baton-agent");
  for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
    argv[argc++] = strdup(a);
  va_end(ap);
  argv[argc] = NULL;
  FILE *out = fopen("/dev/null", "w");
  err[0] = '\0';
  int rv = bt_agentd_opts_parse(o, argc, argv, env_get, out, err, errlen);
  fclose(out);
  for (int i = 0; i < argc; i++)
    free(argv[i]);
  return rv;
}

static void test_agent_options_defaults_and_flags(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[256];
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "acme", "--secret", "s3cr3t",
                         "--handler", "upper=tr a-z A-Z", NULL),
                   0);
  assert_string_equal(o.broker, "tcp://127.0.0.1:7800");
  assert_string_equal(o.vendor, "acme");
  assert_string_equal(o.secret, "s3cr3t");
  assert_null(o.name);
  assert_int_equal(o.slots, 1);
  assert_int_equal(o.drain_timeout_ms, 30000);
  assert_int_equal(o.kill_grace_ms, 5000);
  assert_int_equal(o.max_message_bytes, 1 << 20);
  assert_int_equal(o.log_level, BT_LOG_INFO);
  assert_int_equal(o.n_handlers, 1);
  assert_string_equal(o.handlers[0].capability, "upper");
  assert_string_equal(o.handlers[0].command, "tr a-z A-Z");
  assert_true(o.secret_on_command_line);
  bt_agentd_opts_free(&o);

  assert_int_equal(parse(&o, err, sizeof err, "--broker", "tcp://a:1,tcp://b:2",
                         "--vendor=acme", "--slots", "8", "--drain-timeout", "90s",
                         "--kill-grace", "250ms", "--log-level", "debug", "--name",
                         "n1", "--handler", "a=x", "--handler", "b=y", NULL),
                   BT_ECONFIG); /* no secret anywhere */
  assert_non_null(strstr(err, "BATON_SECRET"));
  bt_agentd_opts_free(&o);
  env_set(0, "BATON_SECRET", "from-env");
  assert_int_equal(parse(&o, err, sizeof err, "--broker", "tcp://a:1,tcp://b:2",
                         "--vendor=acme", "--slots", "8", "--drain-timeout", "90s",
                         "--kill-grace", "250ms", "--log-level", "debug", "--name",
                         "n1", "--handler", "a=x", "--handler", "b=y", NULL),
                   0);
  assert_string_equal(o.broker, "tcp://a:1,tcp://b:2");
  assert_string_equal(o.secret, "from-env");
  assert_false(o.secret_on_command_line);
  assert_int_equal(o.slots, 8);
  assert_int_equal(o.drain_timeout_ms, 90000);
  assert_int_equal(o.kill_grace_ms, 250);
  assert_int_equal(o.log_level, BT_LOG_DEBUG);
  assert_string_equal(o.name, "n1");
  assert_int_equal(o.n_handlers, 2);
  bt_agentd_opts_free(&o);
}

static void test_agent_options_handler_first_equals(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[256];
  env_set(0, "BATON_SECRET", "s");
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "v", "--handler",
                         "sum=awk -F= '{print $1}' x=1", NULL),
                   0);
  assert_string_equal(o.handlers[0].capability, "sum");
  assert_string_equal(o.handlers[0].command, "awk -F= '{print $1}' x=1");
  bt_agentd_opts_free(&o);
  const char *bad[] = {"=cmd", "cap=", "nocommand", "two words=x"};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(
        parse(&o, err, sizeof err, "--vendor", "v", "--handler", bad[i], NULL),
        BT_ECONFIG);
    assert_non_null(strstr(err, "handler"));
    bt_agentd_opts_free(&o);
  }
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "v", "--handler", "a=x",
                         "--handler", "a=y", NULL),
                   BT_ECONFIG);
  assert_non_null(strstr(err, "two handlers"));
  bt_agentd_opts_free(&o);
}

static void test_agent_options_bad_flags(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[256];
  env_set(0, "BATON_SECRET", "s");
  struct {
    const char *a, *b, *want;
  } cases[] = {
      {"--bogus", NULL, "unknown option --bogus"},
      {"--slots", NULL, "needs a value"},
      {"--slots", "0", "slots"},
      {"--slots", "many", "slots"},
      {"--slots", "-3", "slots"},
      {"--slots", "1025", "slots"}, /* the broker's BT_XP_MAX_SLOTS */
      {"--drain-timeout", "soon", "drain-timeout"},
      {"--kill-grace", "2h", "kill-grace"},
      {"--log-level", "loud", "log-level"},
      {"--max-message-bytes", "100", "max-message-bytes"},
      {"stray", NULL, "unexpected argument"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rv = cases[i].b ? parse(&o, err, sizeof err, "--vendor", "v", "--handler",
                                "a=b", cases[i].a, cases[i].b, NULL)
                        : parse(&o, err, sizeof err, "--vendor", "v", "--handler",
                                "a=b", cases[i].a, NULL);
    assert_int_equal(rv, BT_ECONFIG);
    if (strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err, cases[i].want);
    bt_agentd_opts_free(&o);
  }
  assert_int_equal(parse(&o, err, sizeof err, "--handler", "a=b", NULL), BT_ECONFIG);
  assert_non_null(strstr(err, "vendor"));
  bt_agentd_opts_free(&o);
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "v", NULL), BT_ECONFIG);
  assert_non_null(strstr(err, "handler"));
  bt_agentd_opts_free(&o);
  assert_int_equal(parse(&o, err, sizeof err, "--help", NULL), BT_AGENTD_OPTS_EXIT);
  bt_agentd_opts_free(&o);
  assert_int_equal(parse(&o, err, sizeof err, "--version", NULL), BT_AGENTD_OPTS_EXIT);
  bt_agentd_opts_free(&o);
}

static char *write_conf(const char *text) {
  char *path = strdup("/tmp/test_agent_options_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static void test_agent_options_precedence(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[256];
  char *path = write_conf("; baton-agent settings\n"
                          "[broker]\n"
                          "db = ignored: another program's section\n"
                          "[agent]\n"
                          "broker = tcp://file:1\n"
                          "vendor = filevendor\n"
                          "secret = filesecret\n"
                          "slots = 2\n"
                          "drain_timeout = 10s\n"
                          "handler = a=from-file-a\n"
                          "handler = b=from-file-b\n");
  env_set(0, "BATON_VENDOR", "envvendor");
  env_set(1, "BATON_BROKER", "tcp://env:2");
  /* file < env < flag; handlers from the file when no higher source names any */
  assert_int_equal(parse(&o, err, sizeof err, "--config", path, "--slots", "4", NULL),
                   0);
  assert_string_equal(o.vendor, "envvendor");
  assert_string_equal(o.broker, "tcp://env:2");
  assert_string_equal(o.secret, "filesecret");
  assert_int_equal(o.slots, 4);
  assert_int_equal(o.drain_timeout_ms, 10000);
  assert_int_equal(o.n_handlers, 2);
  assert_string_equal(o.handlers[1].command, "from-file-b");
  bt_agentd_opts_free(&o);
  /* a flag handler replaces the file's list; a flag beats the environment */
  env_set(2, "BATON_SECRET", "envsecret");
  assert_int_equal(parse(&o, err, sizeof err, "--config", path, "--handler", "c=flag",
                         "--vendor", "flagvendor", NULL),
                   0);
  assert_string_equal(o.vendor, "flagvendor");
  assert_string_equal(o.secret, "envsecret");
  assert_int_equal(o.n_handlers, 1);
  assert_string_equal(o.handlers[0].capability, "c");
  bt_agentd_opts_free(&o);
  unlink(path);
  free(path);
}

static void test_agent_options_bad_file(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[256];
  char *path = write_conf("[agent]\nvendor = v\nslot = 3\n");
  assert_int_equal(parse(&o, err, sizeof err, "--config", path, NULL), BT_ECONFIG);
  assert_non_null(strstr(err, "unknown key \"slot\""));
  bt_agentd_opts_free(&o);
  unlink(path);
  free(path);
  path = write_conf("[agent]\nslots = lots\n");
  assert_int_equal(parse(&o, err, sizeof err, "--config", path, NULL), BT_ECONFIG);
  assert_non_null(strstr(err, "slots"));
  assert_non_null(strstr(err, path)); /* names the file */
  bt_agentd_opts_free(&o);
  unlink(path);
  free(path);
  assert_int_equal(
      parse(&o, err, sizeof err, "--config", "/nonexistent/agent.conf", NULL),
      BT_ECONFIG);
  assert_non_null(strstr(err, "could not read config file"));
  bt_agentd_opts_free(&o);
}


/* BATON_SECRET beats --secret (the environment stays out of ps); --secret is
 * blanked in argv either way, and which one was used is reported for the
 * warning main() prints. */
static void test_agent_options_env_secret_wins(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[256];
  char a0[] = "baton-agent", a1[] = "--vendor", a2[] = "acme", a3[] = "--secret",
       a4[] = "flag-secret", a5[] = "--handler", a6[] = "u=cat";
  char *argv[] = {a0, a1, a2, a3, a4, a5, a6, NULL};
  env_set(0, "BATON_SECRET", "env-secret");
  FILE *out = fopen("/dev/null", "w");
  assert_int_equal(bt_agentd_opts_parse(&o, 7, argv, env_get, out, err, sizeof err), 0);
  assert_string_equal(o.secret, "env-secret");
  assert_true(o.secret_flag_ignored);
  assert_false(o.secret_on_command_line);
  assert_string_equal(a4, "xxxxxxxxxxx"); /* gone from /proc/PID/cmdline */
  bt_agentd_opts_free(&o);

  /* Without BATON_SECRET the flag is used, blanked and flagged for the warning. */
  memset(fake_env, 0, sizeof fake_env);
  char b4[] = "flag-secret";
  argv[4] = b4;
  assert_int_equal(bt_agentd_opts_parse(&o, 7, argv, env_get, out, err, sizeof err), 0);
  assert_string_equal(o.secret, "flag-secret");
  assert_true(o.secret_on_command_line);
  assert_false(o.secret_flag_ignored);
  assert_string_equal(b4, "xxxxxxxxxxx");
  bt_agentd_opts_free(&o);
  fclose(out);
}

/* --user and --max-result-bytes: parsed and bounded like every other setting. */
static void test_agent_options_user_and_result_limit(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[256];
  env_set(0, "BATON_SECRET", "s");
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "acme", "--handler", "u=cat",
                         NULL),
                   0);
  assert_null(o.user);
  assert_int_equal(o.max_result_bytes, 512 * 1024); /* the broker's max_payload_bytes */
  bt_agentd_opts_free(&o);
  env_set(1, "BATON_USER", "nobody");
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "acme", "--handler", "u=cat",
                         "--max-result-bytes", "1000", NULL),
                   0);
  assert_string_equal(o.user, "nobody");
  assert_int_equal(o.max_result_bytes, 1000);
  bt_agentd_opts_free(&o);
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "acme", "--handler", "u=cat",
                         "--user", "", NULL),
                   BT_ECONFIG);
  assert_non_null(strstr(err, "user"));
  bt_agentd_opts_free(&o);
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", "acme", "--handler", "u=cat",
                         "--max-result-bytes", "0", NULL),
                   BT_ECONFIG);
  assert_non_null(strstr(err, "max-result-bytes"));
  bt_agentd_opts_free(&o);
}

/* Names and counts the broker would refuse in a hello are refused at start,
 * with the rule in the message (a refused hello would be retried for ever). */
static void test_agent_options_broker_limits(void **state) {
  (void)state;
  bt_agentd_opts_t o;
  char err[512];
  env_set(0, "BATON_SECRET", "s");
  char longname[200];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  static const struct {
    const char *flag, *value, *want;
  } cases[] = {
      {"--vendor", "ac me", "invalid vendor name"},
      {"--name", "a;b", "invalid agent name"},
      {"--handler", "up$per=cat", "invalid capability"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(parse(&o, err, sizeof err, "--vendor", "acme", "--handler", "u=cat",
                           cases[i].flag, cases[i].value, NULL),
                     BT_ECONFIG);
    if (strstr(err, cases[i].want) == NULL || strstr(err, "1-128 bytes") == NULL)
      fail_msg("%s %s: %s", cases[i].flag, cases[i].value, err);
    bt_agentd_opts_free(&o);
  }
  assert_int_equal(parse(&o, err, sizeof err, "--vendor", longname, "--handler", "u=cat",
                         NULL),
                   BT_ECONFIG);
  assert_non_null(strstr(err, "invalid vendor name"));
  bt_agentd_opts_free(&o);

  /* 32 handlers are fine, 33 are not. */
  char *argv[2 + 2 * 33 + 4];
  char bufs[33][32];
  int argc = 0;
  argv[argc++] = "baton-agent";
  argv[argc++] = "--vendor=acme";
  for (int i = 0; i < 33; i++) {
    snprintf(bufs[i], sizeof bufs[i], "cap%d=cat", i);
    argv[argc++] = "--handler";
    argv[argc++] = bufs[i];
  }
  argv[argc] = NULL;
  FILE *out = fopen("/dev/null", "w");
  assert_int_equal(bt_agentd_opts_parse(&o, argc - 2, argv, env_get, out, err, sizeof err),
                   0);
  assert_int_equal(o.n_handlers, 32);
  bt_agentd_opts_free(&o);
  assert_int_equal(bt_agentd_opts_parse(&o, argc, argv, env_get, out, err, sizeof err),
                   BT_ECONFIG);
  assert_non_null(strstr(err, "too many handlers: 33"));
  bt_agentd_opts_free(&o);
  fclose(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_agent_options_defaults_and_flags, setup),
      cmocka_unit_test_setup(test_agent_options_handler_first_equals, setup),
      cmocka_unit_test_setup(test_agent_options_bad_flags, setup),
      cmocka_unit_test_setup(test_agent_options_precedence, setup),
      cmocka_unit_test_setup(test_agent_options_bad_file, setup),
      cmocka_unit_test_setup(test_agent_options_env_secret_wins, setup),
      cmocka_unit_test_setup(test_agent_options_user_and_result_limit, setup),
      cmocka_unit_test_setup(test_agent_options_broker_limits, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Fuzz target: baton-agent's config file (worker/agentd/options.c: the [agent]
 * section read by inih through the same option table as the flags), driven
 * as `baton-agent --config FILE` with an empty environment. The input is
 * written to a memfd and named as /proc/self/fd/N. Input: the file's bytes.
 *
 * Invariants beyond "no crash":
 *   - a refusal is BT_ECONFIG with a one-line message;
 *   - accepted settings are complete and in range: vendor, secret and broker
 *     set, 1-4096 slots, durations and the message limit within the table's
 *     bounds, at least one handler, each with a capability free of blanks and
 *     control characters, a command, and no capability twice.
 */
#include "fuzz_util.h"

#include "bt_err.h"
#include "bt_log.h"
#include "options.h"

#include <ctype.h>

static fuzz_file_t file;

static const char *no_env(const char *name) {
  (void)name;
  return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* A memfd is mode 0777: options.c warns about a world-readable secret. */
  bt_log_set_level(BT_LOG_ERROR);
  fuzz_file_init(&file, "baton-fuzz-agent");
  return 0;
}

static void check_settings(const bt_agentd_opts_t *o) {
  FUZZ_CHECK(o->vendor != NULL && o->vendor[0] != '\0', "no vendor");
  FUZZ_CHECK(o->secret != NULL && o->secret[0] != '\0', "no secret");
  FUZZ_CHECK(o->broker != NULL && o->broker[0] != '\0', "no broker");
  FUZZ_CHECK(o->name == NULL || o->name[0] != '\0', "empty name");
  FUZZ_CHECK(o->slots >= 1 && o->slots <= 4096, "slots %llu", (unsigned long long)o->slots);
  FUZZ_CHECK(o->drain_timeout_ms <= 24ull * 3600 * 1000, "drain timeout");
  FUZZ_CHECK(o->kill_grace_ms <= 3600000, "kill grace");
  FUZZ_CHECK(o->max_message_bytes >= 8192 && o->max_message_bytes <= (256u << 20),
             "max message bytes %llu", (unsigned long long)o->max_message_bytes);
  FUZZ_CHECK(o->log_level >= BT_LOG_DEBUG && o->log_level <= BT_LOG_ERROR, "log level");
  FUZZ_CHECK(o->n_handlers >= 1, "no handler");
  for (size_t i = 0; i < o->n_handlers; i++) {
    const char *cap = o->handlers[i].capability, *cmd = o->handlers[i].command;
    FUZZ_CHECK(cap != NULL && cap[0] != '\0', "handler %zu without capability", i);
    FUZZ_CHECK(cmd != NULL && cmd[0] != '\0', "handler %zu without command", i);
    for (const char *p = cap; *p; p++)
      FUZZ_CHECK(isprint((unsigned char)*p) && !isspace((unsigned char)*p),
                 "capability \"%s\" holds a blank or control character", cap);
    for (size_t j = 0; j < i; j++)
      FUZZ_CHECK(strcmp(o->handlers[j].capability, cap) != 0, "capability %s twice", cap);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_file_put(&file, data, size);
  char a0[] = "baton-agent", a1[] = "--config";
  char *argv[] = {a0, a1, file.path, NULL};
  bt_agentd_opts_t o;
  char err[512];
  err[0] = '\0';
  int rc = bt_agentd_opts_parse(&o, 3, argv, no_env, stdout, err, sizeof err);
  if (rc == BT_AGENTD_OPTS_RUN) {
    check_settings(&o);
  } else {
    FUZZ_CHECK(rc == BT_ECONFIG, "rc %d", rc);
    FUZZ_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL, "message \"%s\"", err);
  }
  bt_agentd_opts_free(&o);
  return 0;
}

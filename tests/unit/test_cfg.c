/*
 * server/cfg: the declarative key table, bt_cfg_set's parsing and bounds, the
 * config file (inih) and the environment. Files go into a temp dir of this test
 * (removed at the end); environment variables are set and unset here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_err.h"
#include "bt_time.h"
#include "cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MIB (1024ull * 1024)

static char tmpdir[256];

static int group_setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/test_cfg.XXXXXX", base && *base ? base : "/tmp");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Configs of the running test. They are static so a failed assertion (which
 * leaves the test by longjmp) cannot leak their strings: the teardown frees them. */
static bt_config_t *tracked[8];
static size_t n_tracked;

static void track(bt_config_t *c) {
  for (size_t i = 0; i < n_tracked; i++)
    if (tracked[i] == c)
      return;
  assert_true(n_tracked < sizeof tracked / sizeof tracked[0]);
  tracked[n_tracked++] = c;
}

static void init_tracked(bt_config_t *c) {
  track(c);
  bt_cfg_init(c);
}

static int teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < n_tracked; i++)
    bt_cfg_free(tracked[i]);
  n_tracked = 0;
  return 0;
}

/* Writes text to a file in the temp dir; returns its path (static buffer). */
static const char *write_file(const char *name, const char *text) {
  static char path[400];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static const bt_cfg_key_t *key(const char *name) {
  for (size_t i = 0; i < bt_cfg_nkeys; i++)
    if (strcmp(bt_cfg_keys[i].name, name) == 0)
      return &bt_cfg_keys[i];
  fail_msg("no key %s", name);
  return NULL;
}

static uint32_t u32(const bt_config_t *c, const char *name) {
  return *(const uint32_t *)((const char *)c + key(name)->offset);
}

static const char *str(const bt_config_t *c, const char *name) {
  return *(char *const *)((const char *)c + key(name)->offset);
}

/* --- the table -------------------------------------------------------------- */

static void test_cfg_table_is_sound(void **state) {
  (void)state;
  assert_true(bt_cfg_nkeys > 10);
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    assert_non_null(k->name);
    assert_non_null(k->help);
    assert_true(strlen(k->help) > 0);
    for (size_t j = 0; j < i; j++)
      if (strcmp(bt_cfg_keys[j].name, k->name) == 0)
        fail_msg("key %s twice", k->name);
    if (k->type == BT_CFG_STR) {
      assert_int_equal(k->min, 0);
      assert_int_equal(k->max, 0);
    } else {
      assert_non_null(k->def); /* numbers always have a default */
      assert_true(k->min <= k->max);
      if (k->type != BT_CFG_REAL)
        assert_true(k->max <= UINT32_MAX); /* stored in a uint32_t */
      assert_true(k->offset + (k->type == BT_CFG_REAL ? sizeof(double) : sizeof(uint32_t)) <=
                  sizeof(bt_config_t));
    }
    if (k->env != NULL)
      assert_int_equal(strncmp(k->env, "BATON_", 6), 0);
  }
}

/* Every default parses on its own and lands within its bounds. */
static void test_cfg_defaults_parse_within_bounds(void **state) {
  (void)state;
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    if (k->def == NULL)
      continue;
    static bt_config_t c;
    memset(&c, 0, sizeof c);
    track(&c);
    char err[256] = "";
    if (bt_cfg_set(&c, k->name, k->def, err, sizeof err) != 0)
      fail_msg("default of %s (\"%s\") refused: %s", k->name, k->def, err);
    if (k->type == BT_CFG_STR) {
      assert_string_equal(str(&c, k->name), k->def);
    } else if (k->type == BT_CFG_REAL) {
      double d = *(const double *)((const char *)&c + k->offset);
      if (d < k->min || d > k->max)
        fail_msg("default of %s = %g outside %g..%g", k->name, d, k->min, k->max);
    } else {
      uint32_t v = u32(&c, k->name);
      if (v < k->min || v > k->max)
        fail_msg("default of %s = %u outside %llu..%llu", k->name, v,
                 (unsigned long long)k->min, (unsigned long long)k->max);
    }
    bt_cfg_free(&c);
  }

  static bt_config_t c;
  init_tracked(&c);
  assert_null(c.db);
  assert_null(c.control);
  assert_string_equal(c.data_dir, "./var");
  assert_string_equal(c.agents, "tcp://127.0.0.1:7800");
  assert_string_equal(c.log_level, "info");
  assert_int_equal(c.heartbeat_ms, 1000);
  assert_int_equal(c.lease_ms, 3000);
  assert_int_equal(c.poll_ms, 1000);
  assert_int_equal(c.restart_grace_ms, 10000);
  assert_int_equal(c.retry_max_ms, 60000);
  assert_int_equal(c.max_attempts, 3);
  assert_int_equal(c.max_message_bytes, MIB);
  assert_int_equal(c.max_payload_bytes, 512 * 1024);
  assert_int_equal(c.max_control_frame_bytes, 16 * MIB);
  assert_int_equal(c.store_timeout_ms, 15000);
  /* the payload must fit in a message */
  assert_true(c.max_payload_bytes < c.max_message_bytes);
  bt_cfg_free(&c);
  assert_null(c.data_dir);
}

/* --- bt_cfg_set ------------------------------------------------------------- */

static void test_cfg_set_unknown_key(void **state) {
  (void)state;
  static bt_config_t c;
  init_tracked(&c);
  char err[256] = "";
  assert_int_equal(bt_cfg_set(&c, "heartbeet", "1s", err, sizeof err), BT_ENOTFOUND);
  assert_non_null(strstr(err, "heartbeet"));
  assert_int_equal(bt_cfg_set(&c, "", "1", err, sizeof err), BT_ENOTFOUND);
  assert_int_equal(bt_cfg_set(&c, "Heartbeat", "1s", err, sizeof err), BT_ENOTFOUND);
  bt_cfg_free(&c);
}

static void test_cfg_set_rejects_bad_values(void **state) {
  (void)state;
  static const struct {
    const char *key, *value;
  } bad[] = {
      /* out of range */
      {"heartbeat", "50ms"},
      {"heartbeat", "61s"},
      {"lease", "299ms"},
      {"poll_park", "49ms"},
      {"store_timeout", "999ms"},
      {"store_timeout", "2h"},
      {"retry_max", "25h"},
      {"max_attempts", "0"},
      {"max_attempts", "1001"},
      {"max_batch", "1000001"},
      {"store_pipeline_depth", "65"},
      {"store_overlap_ops", "1000001"},
      {"max_message_bytes", "1k"},
      {"max_message_bytes", "257m"},
      {"max_payload_bytes", "129m"},
      {"max_control_frame_bytes", "2g"},
      {"max_control_frame_bytes", "4294967296"}, /* would wrap in a uint32_t */
      /* not parseable */
      {"heartbeat", ""},
      {"heartbeat", "fast"},
      {"heartbeat", "-1s"},
      {"heartbeat", "1.5s"},
      {"max_attempts", ""},
      {"max_attempts", "three"},
      {"max_attempts", "-1"},
      {"max_attempts", "-0"},
      {"max_attempts", "3x"},
      {"max_attempts", "1.5"},
      {"max_attempts", "99999999999999999999999"},
      {"max_payload_bytes", ""},
      {"max_payload_bytes", "-1"},
      {"max_payload_bytes", "1t"},
      {"max_payload_bytes", "1.5m"},
      {"max_payload_bytes", "1kk"},
      {"max_payload_bytes", "1 k"},
      {"max_payload_bytes", "k"},
      {"max_payload_bytes", "18446744073709551616"},
      {"max_payload_bytes", "17179869184g"},
      {"log_level", "loud"},
      {"log_level", ""},
      {"log_level", "INFO"},
  };
  for (size_t i = 0; i < NELEM(bad); i++) {
    static bt_config_t c;
    init_tracked(&c);
    bt_config_t before = c;
    char err[256] = "";
    int rc = bt_cfg_set(&c, bad[i].key, bad[i].value, err, sizeof err);
    if (rc != BT_EINVAL)
      fail_msg("%s = \"%s\" accepted (rc=%d)", bad[i].key, bad[i].value, rc);
    /* the message names the key, then says what was wrong */
    if (strncmp(err, bad[i].key, strlen(bad[i].key)) != 0 ||
        err[strlen(bad[i].key)] != ':')
      fail_msg("%s = \"%s\": message \"%s\" does not start with the key", bad[i].key,
               bad[i].value, err);
    if (*bad[i].value && strstr(err, bad[i].value) == NULL)
      fail_msg("message \"%s\" does not quote the value", err);
    /* numeric fields are untouched by a refused value */
    if (key(bad[i].key)->type != BT_CFG_STR)
      assert_int_equal(u32(&c, bad[i].key), u32(&before, bad[i].key));
    bt_cfg_free(&c);
  }
}

/* A refused log_level must leave the previous level in place, like every other
 * refused value; a later bt_log_parse_level of the field must still work. */
static void test_cfg_set_refused_string_keeps_old_value(void **state) {
  (void)state;
  static bt_config_t c;
  init_tracked(&c);
  char err[256];
  assert_int_equal(bt_cfg_set(&c, "log_level", "debug", err, sizeof err), 0);
  assert_int_equal(bt_cfg_set(&c, "log_level", "loud", err, sizeof err), BT_EINVAL);
  assert_non_null(c.log_level);
  assert_string_equal(c.log_level, "debug");
  assert_int_equal(bt_cfg_set(&c, "log_level", "", err, sizeof err), BT_EINVAL);
  assert_non_null(c.log_level);
  assert_string_equal(c.log_level, "debug");
  bt_cfg_free(&c);
}

static void test_cfg_set_sizes(void **state) {
  (void)state;
  static const struct {
    const char *key, *value;
    uint64_t want;
  } cases[] = {
      {"max_payload_bytes", "512k", 512 * 1024},
      {"max_payload_bytes", "512K", 512 * 1024},
      {"max_payload_bytes", "512kb", 512 * 1024},
      {"max_payload_bytes", "512KB", 512 * 1024},
      {"max_payload_bytes", "16m", 16 * MIB},
      {"max_payload_bytes", "65536", 65536},
      {"max_payload_bytes", "0", 0},
      {"max_payload_bytes", "128m", 128 * MIB},
      {"max_control_frame_bytes", "1g", 1024 * MIB},
      {"max_control_frame_bytes", "1G", 1024 * MIB},
      {"max_control_frame_bytes", "64k", 64 * 1024},
      {"max_message_bytes", "256m", 256 * MIB},
      {"max_message_bytes", "65536", 65536},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    static bt_config_t c;
    init_tracked(&c);
    char err[256] = "";
    if (bt_cfg_set(&c, cases[i].key, cases[i].value, err, sizeof err) != 0)
      fail_msg("%s = %s refused: %s", cases[i].key, cases[i].value, err);
    assert_int_equal(u32(&c, cases[i].key), cases[i].want);
    bt_cfg_free(&c);
  }
}

static void test_cfg_set_durations_and_numbers(void **state) {
  (void)state;
  static const struct {
    const char *key, *value;
    uint64_t want;
  } cases[] = {
      {"heartbeat", "250ms", 250},
      {"heartbeat", "100ms", 100},
      {"heartbeat", "60s", 60000},
      {"heartbeat", "2", 2000}, /* bare seconds */
      {"lease", "1m", 60000},
      {"lease", "1h", 3600000},
      {"restart_grace", "0", 0},
      {"retry_base", "1m30s", 90000},
      {"retry_max", "24h", 86400000},
      {"store_timeout", "1h", 3600000},
      {"max_attempts", "1", 1},
      {"max_attempts", "1000", 1000},
      {"max_batch", "1000000", 1000000},
      {"store_pipeline_depth", "64", 64},
      {"store_overlap_ops", "0", 0},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    static bt_config_t c;
    init_tracked(&c);
    char err[256] = "";
    if (bt_cfg_set(&c, cases[i].key, cases[i].value, err, sizeof err) != 0)
      fail_msg("%s = %s refused: %s", cases[i].key, cases[i].value, err);
    assert_int_equal(u32(&c, cases[i].key), cases[i].want);
    bt_cfg_free(&c);
  }
}

static void test_cfg_set_strings_and_log_level(void **state) {
  (void)state;
  static bt_config_t c;
  init_tracked(&c);
  char err[256];
  static const char *const levels[] = {"debug", "info", "warn", "warning", "error"};
  for (size_t i = 0; i < NELEM(levels); i++) {
    assert_int_equal(bt_cfg_set(&c, "log_level", levels[i], err, sizeof err), 0);
    assert_string_equal(c.log_level, levels[i]);
  }
  assert_int_equal(bt_cfg_set(&c, "db", "host=/tmp dbname=baton", err, sizeof err), 0);
  assert_string_equal(c.db, "host=/tmp dbname=baton");
  assert_int_equal(bt_cfg_set(&c, "db", "", err, sizeof err), 0); /* empty = unset */
  assert_null(c.db);
  assert_int_equal(bt_cfg_set(&c, "control", "/run/baton.sock", err, sizeof err), 0);
  assert_string_equal(c.control, "/run/baton.sock");
  bt_cfg_free(&c);
}

/* --- the config file -------------------------------------------------------- */

static void test_cfg_file_sections_and_comments(void **state) {
  (void)state;
  const char *path = write_file("good.conf",
                                "# Baton\n"
                                "; another comment\n"
                                "log_level = debug\n"
                                "\n"
                                "[broker]\n"
                                "heartbeat = 500ms   ; inline comment\n"
                                "lease=2s\n"
                                "max_payload_bytes  =  1m\n"
                                "db = host=/tmp port=5433 dbname=baton\n"
                                "\n"
                                "[agent]\n"
                                "# belongs to baton-agent: ignored here\n"
                                "vendor = acme\n"
                                "heartbeat = 1ms\n"
                                "handler = ocr=/usr/bin/ocr\n"
                                "\n"
                                "[broker]\n"
                                "max_attempts = 7\n");
  static bt_config_t c;
  init_tracked(&c);
  char err[512] = "";
  int rc = bt_cfg_load_file(&c, path, err, sizeof err);
  if (rc != 0)
    fail_msg("load failed: %s", err);
  assert_string_equal(c.log_level, "debug");
  assert_int_equal(c.heartbeat_ms, 500); /* not the [agent] 1ms */
  assert_int_equal(c.lease_ms, 2000);
  assert_int_equal(c.max_payload_bytes, MIB);
  assert_string_equal(c.db, "host=/tmp port=5433 dbname=baton");
  assert_int_equal(c.max_attempts, 7);
  assert_int_equal(c.poll_ms, 1000); /* untouched keys keep their defaults */
  bt_cfg_free(&c);
}

static void test_cfg_file_bad_line(void **state) {
  (void)state;
  const char *path = write_file("badline.conf",
                                "[broker]\n"
                                "# fine so far\n"
                                "heartbeat = 2s\n"
                                "this line has no equals sign\n"
                                "lease = 5s\n");
  static bt_config_t c;
  init_tracked(&c);
  char err[512] = "";
  assert_int_equal(bt_cfg_load_file(&c, path, err, sizeof err), BT_ECONFIG);
  char want[450];
  snprintf(want, sizeof want, "%s:4:", path);
  if (strncmp(err, want, strlen(want)) != 0)
    fail_msg("message \"%s\" does not start with \"%s\"", err, want);
  bt_cfg_free(&c);
}

/* A bad value in the file: the header promises "FILE:LINE: message", and the
 * message still names the key. */
static void test_cfg_file_bad_value_names_line_and_key(void **state) {
  (void)state;
  const char *path = write_file("badvalue.conf",
                                "[broker]\n"
                                "heartbeat = 2s\n"
                                "\n"
                                "lease = forever\n");
  static bt_config_t c;
  init_tracked(&c);
  char err[512] = "";
  int rc = bt_cfg_load_file(&c, path, err, sizeof err);
  assert_true(rc < 0);
  assert_non_null(strstr(err, "lease"));
  assert_non_null(strstr(err, "forever"));
  char want[450];
  snprintf(want, sizeof want, "%s:4:", path);
  if (strncmp(err, want, strlen(want)) != 0)
    fail_msg("message \"%s\" does not start with \"%s\"", err, want);
  bt_cfg_free(&c);

  /* an unknown key in [broker] is an error too, naming it */
  path = write_file("unknown.conf", "[broker]\nheartbeet = 2s\n");
  init_tracked(&c);
  rc = bt_cfg_load_file(&c, path, err, sizeof err);
  assert_true(rc < 0);
  assert_non_null(strstr(err, "heartbeet"));
  bt_cfg_free(&c);
}

static void test_cfg_file_missing(void **state) {
  (void)state;
  char path[400];
  snprintf(path, sizeof path, "%s/does-not-exist.conf", tmpdir);
  static bt_config_t c;
  init_tracked(&c);
  char err[512] = "";
  assert_int_equal(bt_cfg_load_file(&c, path, err, sizeof err), BT_ECONFIG);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "cannot open"));
  bt_cfg_free(&c);
}

/* A long conninfo (TLS paths, options) must come through whole or be refused;
 * never cut at the ini reader's line buffer. */
static void test_cfg_file_long_value_not_truncated(void **state) {
  (void)state;
  char db[400];
  snprintf(db, sizeof db,
           "host=db.internal.example.com port=5432 dbname=baton user=baton "
           "sslmode=verify-full sslrootcert=/etc/baton/tls/root-ca.pem "
           "sslcert=/etc/baton/tls/client.pem sslkey=/etc/baton/tls/client.key "
           "application_name=batond connect_timeout=10 "
           "options='-c statement_timeout=30000'");
  assert_true(strlen(db) > 250);
  char text[600];
  snprintf(text, sizeof text, "[broker]\ndb = %s\n", db);
  const char *path = write_file("long.conf", text);
  static bt_config_t c;
  init_tracked(&c);
  char err[512] = "";
  int rc = bt_cfg_load_file(&c, path, err, sizeof err);
  if (rc == 0) {
    assert_non_null(c.db);
    if (strcmp(c.db, db) != 0)
      fail_msg("db silently cut to %zu of %zu bytes", strlen(c.db), strlen(db));
  }
  bt_cfg_free(&c);
}

/* --- environment ------------------------------------------------------------- */

static void test_cfg_env_overrides_file(void **state) {
  (void)state;
  const char *path = write_file("env.conf",
                                "[broker]\n"
                                "data_dir = /from/file\n"
                                "agents = tcp://0.0.0.0:1\n"
                                "metrics = 127.0.0.1:1\n");
  static bt_config_t c;
  init_tracked(&c);
  char err[512] = "";
  assert_int_equal(bt_cfg_load_file(&c, path, err, sizeof err), 0);
  setenv("BATON_DATA_DIR", "/from/env", 1);
  setenv("BATON_AGENTS", "tcp://127.0.0.1:9999", 1);
  setenv("BATON_DB", "postgresql:///baton", 1);
  setenv("BATON_METRICS", "", 1); /* empty: ignored */
  unsetenv("BATON_CONTROL");
  unsetenv("BATON_PG_BINDIR");
  int rc = bt_cfg_load_env(&c, err, sizeof err);
  unsetenv("BATON_DATA_DIR");
  unsetenv("BATON_AGENTS");
  unsetenv("BATON_DB");
  unsetenv("BATON_METRICS");
  assert_int_equal(rc, 0);
  assert_string_equal(c.data_dir, "/from/env");
  assert_string_equal(c.agents, "tcp://127.0.0.1:9999");
  assert_string_equal(c.db, "postgresql:///baton");
  assert_string_equal(c.metrics, "127.0.0.1:1");
  assert_null(c.control);
  bt_cfg_free(&c);
}

static void test_cfg_dump(void **state) {
  (void)state;
  static bt_config_t c;
  init_tracked(&c);
  char buf[4096];
  bt_cfg_dump(&c, buf, sizeof buf);
  assert_non_null(strstr(buf, "db = \n"));
  assert_non_null(strstr(buf, "data_dir = ./var\n"));
  /* values as bt_cfg_get writes them: the largest exact unit */
  assert_non_null(strstr(buf, "heartbeat = 1s\n"));
  assert_non_null(strstr(buf, "max_payload_bytes = 512k\n"));
  /* one line per key */
  size_t lines = 0;
  for (const char *p = buf; *p; p++)
    lines += *p == '\n';
  assert_int_equal(lines, bt_cfg_nkeys);
  /* a short buffer stays terminated */
  char small[40];
  bt_cfg_dump(&c, small, sizeof small);
  assert_true(strlen(small) < sizeof small);
  bt_cfg_free(&c);
}

/* --- config get / runtime keys ------------------------------------------------ */

/* The keys `config set` and SIGHUP may change: exactly these, so a key is
 * made runtime only on purpose (and bt_core_reconfigure takes it). */
static void test_cfg_runtime_keys(void **state) {
  (void)state;
  static const char *const runtime[] = {
      "log_level",         "retry_base",        "retry_max",
      "max_attempts",      "score_cost",        "score_sla",
      "score_utilisation", "score_prefer",      "score_hours",
      "cost_reference",    "share_cap",         "aging_bound",
      "route_at_submit",
      "breaker_window",    "breaker_min_attempts", "breaker_threshold",
      "degrade_threshold", "breaker_cooldown",  "probe_packages",
      "degraded_factor",
  };
  size_t n = 0;
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    bool listed = false;
    for (size_t j = 0; j < NELEM(runtime); j++)
      listed = listed || strcmp(runtime[j], k->name) == 0;
    if (listed != ((k->flags & BT_CFG_RUNTIME) != 0))
      fail_msg("key %s: runtime flag %s", k->name, listed ? "missing" : "unexpected");
    n += listed;
  }
  assert_int_equal(n, NELEM(runtime));
  /* the secret: flagged, and restart-only (the control socket borrows it) */
  assert_true(bt_cfg_key("admin_token")->flags & BT_CFG_SECRET);
  assert_false(bt_cfg_key("admin_token")->flags & BT_CFG_RUNTIME);
  assert_null(bt_cfg_key("nope"));
  assert_null(bt_cfg_key(NULL));
}

static void test_cfg_get_text_forms(void **state) {
  (void)state;
  static bt_config_t c;
  init_tracked(&c);
  static const struct {
    const char *key, *set, *get;
  } cases[] = {
      {"lease", "3s", "3s"},           {"lease", "1500ms", "1500ms"},
      {"aging_bound", "300s", "5m"},   {"retry_max", "2h", "2h"},
      {"retry_max", "1d", "1d"},       {"aging_bound", "0", "0s"},
      {"retry_base", "90s", "90s"},    {"max_payload_bytes", "524288", "512k"},
      {"max_message_bytes", "1m", "1m"}, {"max_payload_bytes", "1000", "1000"},
      {"max_attempts", "7", "7"},      {"share_cap", "0.70", "0.7"},
      {"score_cost", "1.0", "1"},      {"cost_reference", "0.1", "0.1"},
      {"log_level", "debug", "debug"}, {"db", "", ""},
  };
  char err[256], buf[256];
  for (size_t i = 0; i < NELEM(cases); i++) {
    assert_int_equal(bt_cfg_set(&c, cases[i].key, cases[i].set, err, sizeof err), 0);
    assert_int_equal(bt_cfg_get(&c, cases[i].key, buf, sizeof buf), 0);
    if (strcmp(buf, cases[i].get) != 0)
      fail_msg("%s = %s reads back as \"%s\", not \"%s\"", cases[i].key, cases[i].set,
               buf, cases[i].get);
  }
  assert_int_equal(bt_cfg_get(&c, "heartbeet", buf, sizeof buf), BT_ENOTFOUND);
  /* defaults in the same form */
  bt_cfg_default_text(bt_cfg_key("breaker_window"), buf, sizeof buf);
  assert_string_equal(buf, "1m");
  bt_cfg_default_text(bt_cfg_key("score_hours"), buf, sizeof buf);
  assert_string_equal(buf, "0.5");
  bt_cfg_default_text(bt_cfg_key("db"), buf, sizeof buf);
  assert_string_equal(buf, "");
  bt_cfg_free(&c);
}

/* get → set gives the same value back for every key, at its default and at
 * awkward values (odd milliseconds, fractions that %g would round). */
static void test_cfg_get_set_round_trips(void **state) {
  (void)state;
  static bt_config_t a, b;
  init_tracked(&a);
  init_tracked(&b);
  char err[256], buf[1100];
  static const struct {
    const char *key, *value;
  } odd[] = {
      {"lease", "1234ms"},          {"breaker_threshold", "0.3333333333333333"},
      {"score_cost", "2.718281828459045"}, {"max_payload_bytes", "12345"},
      {"cost_reference", "1e-3"},   {"control", "/run/baton dir/ctl.sock"},
  };
  for (size_t i = 0; i < NELEM(odd); i++)
    assert_int_equal(bt_cfg_set(&a, odd[i].key, odd[i].value, err, sizeof err), 0);
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    assert_int_equal(bt_cfg_get(&a, k->name, buf, sizeof buf), 0);
    if (bt_cfg_set(&b, k->name, buf, err, sizeof err) != 0)
      fail_msg("%s: get gave \"%s\", which set refuses: %s", k->name, buf, err);
    if (!bt_cfg_same(&a, &b, k))
      fail_msg("%s: \"%s\" does not round-trip", k->name, buf);
  }
  bt_cfg_free(&a);
  bt_cfg_free(&b);
}

static void test_cfg_secret_never_shown(void **state) {
  (void)state;
  static bt_config_t c;
  init_tracked(&c);
  char err[256], buf[256], dump[8192];
  assert_int_equal(bt_cfg_get(&c, "admin_token", buf, sizeof buf), 0);
  assert_string_equal(buf, ""); /* unset */
  assert_int_equal(bt_cfg_set(&c, "admin_token", "s3cr3t-token-value", err, sizeof err), 0);
  assert_int_equal(bt_cfg_get(&c, "admin_token", buf, sizeof buf), 0);
  assert_string_equal(buf, "(set)");
  bt_cfg_dump(&c, dump, sizeof dump);
  assert_null(strstr(dump, "s3cr3t"));
  assert_non_null(strstr(dump, "admin_token = (set)\n"));
  bt_cfg_free(&c);
}

/* The db connection string is shown with every password hidden, in both of
 * libpq's forms, and only the password. */
static void test_cfg_db_password_never_shown(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"host=db dbname=baton", "host=db dbname=baton"},
      {"host=db password=s3cret user=baton", "host=db password=*** user=baton"},
      {"password = s3cret", "password = ***"},
      {"host=db password='s3 cr\\'et' port=5432", "host=db password=*** port=5432"},
      {"host=db passwordless=1", "host=db passwordless=1"},
      {"postgresql://baton:s3cret@db:5432/baton", "postgresql://baton:***@db:5432/baton"},
      {"postgres://baton@db/baton?password=s3cret&sslmode=require",
       "postgres://baton@db/baton?password=***&sslmode=require"},
      {"postgresql://db/baton?sslmode=require", "postgresql://db/baton?sslmode=require"},
      {"postgresql://u:p@[::1]/x?password=q", "postgresql://u:***@[::1]/x?password=***"},
  };
  char buf[256];
  for (size_t i = 0; i < NELEM(cases); i++) {
    bt_cfg_redact_conninfo(cases[i].in, buf, sizeof buf);
    if (strcmp(buf, cases[i].out) != 0)
      fail_msg("\"%s\" shown as \"%s\", want \"%s\"", cases[i].in, buf, cases[i].out);
  }
  char tiny[6];
  bt_cfg_redact_conninfo("password=s3cret", tiny, sizeof tiny);
  assert_string_equal(tiny, "passw"); /* cut, terminated, nothing of the secret */
  static bt_config_t c;
  init_tracked(&c);
  char err[256], dump[8192];
  assert_int_equal(bt_cfg_set(&c, "db", "host=db password=s3cret", err, sizeof err), 0);
  assert_int_equal(bt_cfg_get(&c, "db", buf, sizeof buf), 0);
  assert_string_equal(buf, "host=db password=***");
  bt_cfg_dump(&c, dump, sizeof dump);
  assert_null(strstr(dump, "s3cret"));
  bt_cfg_free(&c);
}

/* A value out of bounds is refused with both bounds in the key's own units. */
static void test_cfg_out_of_range_names_bounds(void **state) {
  (void)state;
  static bt_config_t c;
  init_tracked(&c);
  char err[256];
  assert_int_equal(bt_cfg_set(&c, "breaker_window", "500ms", err, sizeof err), BT_EINVAL);
  assert_non_null(strstr(err, "(1s to 1d)"));
  assert_int_equal(bt_cfg_set(&c, "breaker_threshold", "2", err, sizeof err), BT_EINVAL);
  assert_non_null(strstr(err, "(0.01 to 1)"));
  assert_int_equal(bt_cfg_set(&c, "max_message_bytes", "1k", err, sizeof err), BT_EINVAL);
  assert_non_null(strstr(err, "(64k to 256m)"));
  assert_int_equal(bt_cfg_set(&c, "max_attempts", "0", err, sizeof err), BT_EINVAL);
  assert_non_null(strstr(err, "(1 to 1000)"));
  bt_cfg_free(&c);
}

static void test_cfg_copy_is_independent(void **state) {
  (void)state;
  static bt_config_t a, b;
  init_tracked(&a);
  char err[256];
  assert_int_equal(bt_cfg_set(&a, "db", "host=/tmp", err, sizeof err), 0);
  bt_cfg_copy(&b, &a);
  track(&b);
  for (size_t i = 0; i < bt_cfg_nkeys; i++)
    assert_true(bt_cfg_same(&a, &b, &bt_cfg_keys[i]));
  assert_ptr_not_equal(a.db, b.db);
  assert_int_equal(bt_cfg_set(&b, "db", "host=/other", err, sizeof err), 0);
  assert_int_equal(bt_cfg_set(&b, "share_cap", "0.5", err, sizeof err), 0);
  assert_string_equal(a.db, "host=/tmp");
  assert_false(bt_cfg_same(&a, &b, bt_cfg_key("db")));
  assert_false(bt_cfg_same(&a, &b, bt_cfg_key("share_cap")));
  assert_true(bt_cfg_same(&a, &b, bt_cfg_key("lease")));
  /* a string set from its own current value (what a reload may do) */
  assert_int_equal(bt_cfg_set(&b, "db", b.db, err, sizeof err), 0);
  assert_string_equal(b.db, "host=/other");
  bt_cfg_free(&a);
  bt_cfg_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_cfg_runtime_keys, teardown),
      cmocka_unit_test_teardown(test_cfg_get_text_forms, teardown),
      cmocka_unit_test_teardown(test_cfg_get_set_round_trips, teardown),
      cmocka_unit_test_teardown(test_cfg_secret_never_shown, teardown),
      cmocka_unit_test_teardown(test_cfg_db_password_never_shown, teardown),
      cmocka_unit_test_teardown(test_cfg_out_of_range_names_bounds, teardown),
      cmocka_unit_test_teardown(test_cfg_copy_is_independent, teardown),
      cmocka_unit_test_teardown(test_cfg_table_is_sound, teardown),
      cmocka_unit_test_teardown(test_cfg_defaults_parse_within_bounds, teardown),
      cmocka_unit_test_teardown(test_cfg_set_unknown_key, teardown),
      cmocka_unit_test_teardown(test_cfg_set_rejects_bad_values, teardown),
      cmocka_unit_test_teardown(test_cfg_set_refused_string_keeps_old_value, teardown),
      cmocka_unit_test_teardown(test_cfg_set_sizes, teardown),
      cmocka_unit_test_teardown(test_cfg_set_durations_and_numbers, teardown),
      cmocka_unit_test_teardown(test_cfg_set_strings_and_log_level, teardown),
      cmocka_unit_test_teardown(test_cfg_file_sections_and_comments, teardown),
      cmocka_unit_test_teardown(test_cfg_file_bad_line, teardown),
      cmocka_unit_test_teardown(test_cfg_file_bad_value_names_line_and_key, teardown),
      cmocka_unit_test_teardown(test_cfg_file_missing, teardown),
      cmocka_unit_test_teardown(test_cfg_file_long_value_not_truncated, teardown),
      cmocka_unit_test_teardown(test_cfg_env_overrides_file, teardown),
      cmocka_unit_test_teardown(test_cfg_dump, teardown),
  };
  return cmocka_run_group_tests_name("cfg", tests, group_setup, group_teardown);
}

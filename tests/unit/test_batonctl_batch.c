/* The `submit --batch` JSON Lines parser (server/batonctl/batch.c): every key,
 * both list forms, payload encodings, every kind of rejection and the line
 * number it reports. The parser is pure, so no broker is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "batch.h"
#include "bt_err.h"
#include "bt_time.h"

#include <stdio.h>
#include <string.h>

#define NOW_AT INT64_C(1790000000000) /* a fixed clock: 2026-09-21T... */

static int parse(const char *text, bt_cli_batch_t *b, char *err, size_t errlen) {
  bt_cli_batch_init(b);
  err[0] = '\0';
  return bt_cli_batch_parse(text, strlen(text), NOW_AT, b, err, errlen);
}

/* Parses text expecting a rejection; checks the batch stays empty and the
 * message contains want. */
static void expect_reject(const char *text, const char *want) {
  bt_cli_batch_t b;
  char err[512];
  int rv = parse(text, &b, err, sizeof err);
  if (rv != BT_EINVAL || strstr(err, want) == NULL)
    fail_msg("input %s: rv=%d err=\"%s\", want \"%s\"", text, rv, err, want);
  assert_int_equal(b.n, 0);
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_every_key(void **state) {
  (void)state;
  const char *line =
      "{\"capability\":\"ocr\",\"payload\":\"hello\",\"priority\":7,"
      "\"deadline\":\"2h\",\"not_before\":\"2026-11-22T10:00:00Z\","
      "\"region\":[\"EU-DE\",\"EU-FR\"],\"cert\":\"iso27001, soc2\","
      "\"max_cost\":2.5,\"prefer\":[\"acme\"],\"avoid\":\"zeta,omega\","
      "\"max_attempts\":4,\"key\":\"inv-42\"}\n";
  bt_cli_batch_t b;
  char err[256];
  assert_int_equal(parse(line, &b, err, sizeof err), 0);
  assert_int_equal(b.n, 1);
  const bt_cli_spec_t *s = &b.specs[0];
  assert_string_equal(s->capability, "ocr");
  assert_int_equal(s->payload_len, 5);
  assert_memory_equal(s->payload, "hello", 5);
  assert_true(s->has_priority);
  assert_int_equal(s->priority, 7);
  assert_true(s->has_deadline);
  assert_int_equal(s->deadline_at, NOW_AT + 2 * 3600 * 1000);
  int64_t nb;
  assert_int_equal(bt_parse_time("2026-11-22T10:00:00Z", &nb), 0);
  assert_true(s->has_not_before);
  assert_int_equal(s->not_before_at, nb);
  assert_int_equal(s->regions.n, 2);
  assert_string_equal(s->regions.v[0], "EU-DE");
  assert_string_equal(s->regions.v[1], "EU-FR");
  assert_int_equal(s->certs.n, 2);
  assert_string_equal(s->certs.v[0], "iso27001");
  assert_string_equal(s->certs.v[1], "soc2"); /* blanks around items trimmed */
  assert_true(s->has_max_cost);
  assert_true(s->max_cost == 2.5);
  assert_int_equal(s->prefer.n, 1);
  assert_string_equal(s->prefer.v[0], "acme");
  assert_int_equal(s->avoid.n, 2);
  assert_string_equal(s->avoid.v[0], "zeta");
  assert_string_equal(s->avoid.v[1], "omega");
  assert_true(s->has_max_attempts);
  assert_int_equal(s->max_attempts, 4);
  assert_string_equal(s->key, "inv-42");
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_minimal_line_defaults(void **state) {
  (void)state;
  bt_cli_batch_t b;
  char err[256];
  assert_int_equal(parse("{\"capability\":\"x\"}", &b, err, sizeof err), 0);
  assert_int_equal(b.n, 1);
  const bt_cli_spec_t *s = &b.specs[0];
  assert_string_equal(s->capability, "x");
  assert_int_equal(s->payload_len, 0);
  assert_false(s->has_priority);
  assert_false(s->has_deadline);
  assert_false(s->has_not_before);
  assert_false(s->has_max_cost);
  assert_false(s->has_max_attempts);
  assert_int_equal(s->regions.n, 0);
  assert_null(s->key);
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_lists_array_and_comma_string(void **state) {
  (void)state;
  bt_cli_batch_t b;
  char err[256];
  assert_int_equal(parse("{\"capability\":\"x\",\"region\":[\"A\",\"B\",\"C\"]}\n"
                         "{\"capability\":\"x\",\"region\":\"A,B , C\"}\n"
                         "{\"capability\":\"x\",\"region\":\"A\"}\n"
                         "{\"capability\":\"x\",\"region\":[]}\n",
                         &b, err, sizeof err),
                   0);
  assert_int_equal(b.n, 4);
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(b.specs[i].regions.n, 3);
    assert_string_equal(b.specs[i].regions.v[0], "A");
    assert_string_equal(b.specs[i].regions.v[1], "B");
    assert_string_equal(b.specs[i].regions.v[2], "C");
  }
  assert_int_equal(b.specs[2].regions.n, 1);
  assert_int_equal(b.specs[3].regions.n, 0);
  bt_cli_batch_close(&b);

  expect_reject("{\"capability\":\"x\",\"region\":\"A,,B\"}", "line 1: region");
  expect_reject("{\"capability\":\"x\",\"cert\":\"A,\"}", "line 1: cert");
  expect_reject("{\"capability\":\"x\",\"prefer\":[\"a\",\"\"]}",
                "line 1: prefer[1] must be a non-empty string");
  expect_reject("{\"capability\":\"x\",\"avoid\":[1]}",
                "line 1: avoid[0] must be a non-empty string");
  expect_reject("{\"capability\":\"x\",\"region\":{\"a\":1}}",
                "line 1: region must be an array of strings or a "
                "comma-separated string");
}

static void test_batonctl_batch_payload_and_payload_b64(void **state) {
  (void)state;
  bt_cli_batch_t b;
  char err[256];
  /* "AAECAw==" is 00 01 02 03: binary payloads go through base64. */
  assert_int_equal(parse("{\"capability\":\"x\",\"payload\":\"text \\u00e9\"}\n"
                         "{\"capability\":\"x\",\"payload_b64\":\"AAECAw==\"}\n"
                         "{\"capability\":\"x\",\"payload_b64\":\"AAECAw\"}\n"
                         "{\"capability\":\"x\",\"payload_b64\":\"\"}\n"
                         "{\"capability\":\"x\",\"payload\":\"\"}\n",
                         &b, err, sizeof err),
                   0);
  assert_int_equal(b.n, 5);
  assert_int_equal(b.specs[0].payload_len, 7); /* "text " + 2-byte é */
  assert_memory_equal(b.specs[0].payload, "text \xc3\xa9", 7);
  static const uint8_t bin[] = {0, 1, 2, 3};
  assert_int_equal(b.specs[1].payload_len, 4);
  assert_memory_equal(b.specs[1].payload, bin, 4);
  assert_int_equal(b.specs[2].payload_len, 4); /* unpadded is accepted */
  assert_memory_equal(b.specs[2].payload, bin, 4);
  assert_int_equal(b.specs[3].payload_len, 0);
  assert_int_equal(b.specs[4].payload_len, 0);
  bt_cli_batch_close(&b);

  expect_reject("{\"capability\":\"x\",\"payload\":\"a\",\"payload_b64\":\"YQ==\"}",
                "line 1: payload and payload_b64 exclude each other");
  expect_reject("{\"capability\":\"x\",\"payload_b64\":\"not base64!\"}",
                "line 1: payload_b64 is not valid base64");
  expect_reject("{\"capability\":\"x\",\"payload_b64\":\"QUJD$\"}",
                "line 1: payload_b64 is not valid base64");
  expect_reject("{\"capability\":\"x\",\"payload\":42}",
                "line 1: payload must be a string");
}

static void test_batonctl_batch_unknown_key(void **state) {
  (void)state;
  expect_reject("{\"capability\":\"x\",\"colour\":\"red\"}",
                "line 1: unknown key \"colour\"");
  /* Flag spelling with '-' is not the batch spelling. */
  expect_reject("{\"capability\":\"x\",\"max-cost\":1}",
                "line 1: unknown key \"max-cost\"");
}

static void test_batonctl_batch_wrong_types(void **state) {
  (void)state;
  expect_reject("{\"capability\":5}", "line 1: capability must be a string");
  expect_reject("{\"capability\":\"\"}", "line 1: capability must not be empty");
  expect_reject("{\"capability\":\"x\",\"priority\":\"3\"}",
                "line 1: priority must be an integer 0-9");
  expect_reject("{\"capability\":\"x\",\"priority\":3.5}",
                "line 1: priority must be an integer 0-9");
  expect_reject("{\"capability\":\"x\",\"max_cost\":\"cheap\"}",
                "line 1: max_cost must be a number >= 0");
  expect_reject("{\"capability\":\"x\",\"max_attempts\":true}",
                "line 1: max_attempts must be an integer 1-1000");
  expect_reject("{\"capability\":\"x\",\"deadline\":3600}",
                "line 1: deadline must be a string");
  expect_reject("{\"capability\":\"x\",\"key\":[\"k\"]}",
                "line 1: key must be a string");
}

static void test_batonctl_batch_out_of_range(void **state) {
  (void)state;
  expect_reject("{\"capability\":\"x\",\"priority\":10}",
                "line 1: priority must be an integer 0-9");
  expect_reject("{\"capability\":\"x\",\"priority\":-1}",
                "line 1: priority must be an integer 0-9");
  expect_reject("{\"capability\":\"x\",\"max_attempts\":0}",
                "line 1: max_attempts must be an integer 1-1000");
  expect_reject("{\"capability\":\"x\",\"max_attempts\":1001}",
                "line 1: max_attempts must be an integer 1-1000");
  expect_reject("{\"capability\":\"x\",\"max_cost\":-0.5}",
                "line 1: max_cost must be a number >= 0");
  expect_reject("{\"capability\":\"x\",\"deadline\":\"soon\"}",
                "line 1: deadline must be a duration");
  expect_reject("{\"capability\":\"x\",\"not_before\":\"2026-13-01T00:00:00Z\"}",
                "line 1: not_before must be a duration");

  bt_cli_batch_t b;
  char err[256];
  assert_int_equal(parse("{\"capability\":\"x\",\"priority\":0,\"max_attempts\":1000,"
                         "\"max_cost\":0}\n{\"capability\":\"x\",\"priority\":9}",
                         &b, err, sizeof err),
                   0);
  assert_int_equal(b.n, 2);
  assert_int_equal(b.specs[0].priority, 0);
  assert_true(b.specs[0].has_priority);
  assert_int_equal(b.specs[0].max_attempts, 1000);
  assert_int_equal(b.specs[1].priority, 9);
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_invalid_names(void **state) {
  (void)state;
  expect_reject("{\"capability\":\"has space\"}",
                "line 1: capability \"has space\" is not a valid name");
  expect_reject("{\"capability\":\"x\",\"key\":\"a;drop\"}",
                "line 1: key \"a;drop\" is not a valid name");
  expect_reject("{\"capability\":\"x\",\"region\":[\"EU DE\"]}",
                "line 1: region \"EU DE\" is not a valid name");
  expect_reject("{\"capability\":\"x\",\"avoid\":\"ok,not ok\"}",
                "line 1: avoid \"not ok\" is not a valid name");
  char long_name[200];
  memset(long_name, 'a', 129);
  long_name[129] = '\0';
  char line[300];
  snprintf(line, sizeof line, "{\"capability\":\"%s\"}", long_name);
  expect_reject(line, "line 1: capability");
}

static void test_batonctl_batch_missing_capability(void **state) {
  (void)state;
  expect_reject("{\"payload\":\"x\"}", "line 1: missing capability");
  expect_reject("{}", "line 1: missing capability");
  expect_reject("{\"capability\":null}", "line 1: missing capability");
}

static void test_batonctl_batch_blank_lines_and_line_numbers(void **state) {
  (void)state;
  bt_cli_batch_t b;
  char err[256];
  /* Blank and whitespace-only lines (also with CRLF) are skipped but counted. */
  const char *ok = "\n{\"capability\":\"a\"}\r\n   \n\t\r\n{\"capability\":\"b\"}";
  assert_int_equal(parse(ok, &b, err, sizeof err), 0);
  assert_int_equal(b.n, 2);
  assert_string_equal(b.specs[0].capability, "a");
  assert_string_equal(b.specs[1].capability, "b");
  bt_cli_batch_close(&b);

  expect_reject("\n{\"capability\":\"a\"}\n\n{\"capability\":\"b\",\"priority\":12}\n"
                "{\"capability\":\"c\"}\n",
                "line 4: priority");
  /* One bad line rejects the whole batch, also when it is the last one. */
  expect_reject("{\"capability\":\"a\"}\n{\"capability\":\"b\"}\n{\"bogus\":1}",
                "line 3: unknown key \"bogus\"");

  assert_int_equal(parse("", &b, err, sizeof err), 0);
  assert_int_equal(b.n, 0);
  bt_cli_batch_close(&b);
  assert_int_equal(parse("\n \n\r\n", &b, err, sizeof err), 0);
  assert_int_equal(b.n, 0);
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_bad_json(void **state) {
  (void)state;
  expect_reject("{\"capability\":\"a\"}\n{\"capability\":", "line 2: invalid JSON");
  expect_reject("{\"capability\":\"a\"} trailing", "line 1: invalid JSON");
  expect_reject("[\"capability\",\"a\"]", "line 1: not a JSON object");
  expect_reject("{\"capability\":\"a\",\"capability\":\"b\"}",
                "line 1: invalid JSON");
  /* Two objects on one line are not JSON Lines. */
  expect_reject("{\"capability\":\"a\"}{\"capability\":\"b\"}",
                "line 1: invalid JSON");
  /* Raw NUL bytes inside a line are not JSON either. */
  bt_cli_batch_t b;
  char err[256];
  bt_cli_batch_init(&b);
  static const char nul_line[] = "{\"capability\":\"a\0b\"}";
  assert_int_equal(bt_cli_batch_parse(nul_line, sizeof nul_line - 1, NOW_AT, &b,
                                      err, sizeof err),
                   BT_EINVAL);
  assert_non_null(strstr(err, "line 1: invalid JSON"));
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_deadline_duration_and_rfc3339(void **state) {
  (void)state;
  bt_cli_batch_t b;
  char err[256];
  assert_int_equal(
      parse("{\"capability\":\"x\",\"deadline\":\"90s\",\"not_before\":\"15m\"}\n"
            "{\"capability\":\"x\",\"deadline\":\"3d\"}\n"
            "{\"capability\":\"x\",\"deadline\":\"2026-11-22T10:00:00.250+01:00\"}\n",
            &b, err, sizeof err),
      0);
  assert_int_equal(b.n, 3);
  assert_int_equal(b.specs[0].deadline_at, NOW_AT + 90 * 1000);
  assert_int_equal(b.specs[0].not_before_at, NOW_AT + 15 * 60 * 1000);
  assert_int_equal(b.specs[1].deadline_at, NOW_AT + 3 * 86400 * 1000);
  int64_t at;
  assert_int_equal(bt_parse_time("2026-11-22T09:00:00.250Z", &at), 0);
  assert_int_equal(b.specs[2].deadline_at, at);
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_null_means_absent(void **state) {
  (void)state;
  bt_cli_batch_t b;
  char err[256];
  assert_int_equal(parse("{\"capability\":\"x\",\"deadline\":null,\"priority\":null,"
                         "\"payload\":null,\"payload_b64\":\"YQ==\",\"key\":null}",
                         &b, err, sizeof err),
                   0);
  assert_int_equal(b.n, 1);
  assert_false(b.specs[0].has_deadline);
  assert_false(b.specs[0].has_priority);
  assert_null(b.specs[0].key);
  assert_int_equal(b.specs[0].payload_len, 1);
  assert_memory_equal(b.specs[0].payload, "a", 1);
  bt_cli_batch_close(&b);
}

static void test_batonctl_batch_appends_and_keeps_order(void **state) {
  (void)state;
  bt_cli_batch_t b;
  char err[256];
  bt_cli_batch_init(&b);
  char text[64 * 300];
  size_t used = 0;
  for (int i = 0; i < 300; i++)
    used += (size_t)snprintf(text + used, sizeof text - used,
                             "{\"capability\":\"c%d\"}\n", i);
  assert_int_equal(bt_cli_batch_parse(text, used, NOW_AT, &b, err, sizeof err), 0);
  assert_int_equal(b.n, 300);
  for (int i = 0; i < 300; i += 37) {
    char want[16];
    snprintf(want, sizeof want, "c%d", i);
    assert_string_equal(b.specs[i].capability, want);
  }
  /* A failing second parse leaves what the first one appended. */
  const char *bad = "{\"capability\":\"ok\"}\n{}";
  assert_int_equal(
      bt_cli_batch_parse(bad, strlen(bad), NOW_AT, &b, err, sizeof err),
      BT_EINVAL);
  assert_non_null(strstr(err, "line 2: missing capability"));
  assert_int_equal(b.n, 300);
  bt_cli_batch_close(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batonctl_batch_every_key),
      cmocka_unit_test(test_batonctl_batch_minimal_line_defaults),
      cmocka_unit_test(test_batonctl_batch_lists_array_and_comma_string),
      cmocka_unit_test(test_batonctl_batch_payload_and_payload_b64),
      cmocka_unit_test(test_batonctl_batch_unknown_key),
      cmocka_unit_test(test_batonctl_batch_wrong_types),
      cmocka_unit_test(test_batonctl_batch_out_of_range),
      cmocka_unit_test(test_batonctl_batch_invalid_names),
      cmocka_unit_test(test_batonctl_batch_missing_capability),
      cmocka_unit_test(test_batonctl_batch_blank_lines_and_line_numbers),
      cmocka_unit_test(test_batonctl_batch_bad_json),
      cmocka_unit_test(test_batonctl_batch_deadline_duration_and_rfc3339),
      cmocka_unit_test(test_batonctl_batch_null_means_absent),
      cmocka_unit_test(test_batonctl_batch_appends_and_keeps_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

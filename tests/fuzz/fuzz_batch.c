/*
 * Fuzz target: the `batonctl submit --batch` JSON Lines parser
 * (server/batonctl/batch.c bt_cli_batch_parse). Input: the file's bytes.
 *
 * Invariants beyond "no crash":
 *   - every accepted package has a capability that is a Baton name, priority
 *     0-9, max attempts 1-1000, a finite max cost >= 0, names in every list and
 *     key, and a payload pointer that matches its length;
 *   - the parser appends: a refused batch leaves what the batch already held
 *     untouched, and its error names a line that exists ("line N: ...");
 *   - the verdict does not depend on the clock reading (now_at), and a
 *     relative deadline moves with it while an absolute one does not.
 */
#include "fuzz_util.h"

#include "batch.h"
#include "bt_err.h"
#include "bt_valid.h"

#include <math.h>

#define NOW_AT 1800000000000LL /* 2027-01-15 */

static void names_ok(const bt_cli_strv_t *v, const char *what) {
  for (size_t i = 0; i < v->n; i++)
    FUZZ_CHECK(bt_valid_name(v->v[i]), "%s item %zu \"%s\" is not a name", what, i,
               v->v[i]);
}

static void spec_ok(const bt_cli_spec_t *s) {
  FUZZ_CHECK(s->capability != NULL && bt_valid_name(s->capability), "capability");
  FUZZ_CHECK((s->payload == NULL) == (s->payload_len == 0), "payload %p with length %zu",
             (void *)s->payload, s->payload_len);
  FUZZ_CHECK(!s->has_priority || s->priority <= BT_CLI_PRIORITY_MAX, "priority %u",
             s->priority);
  FUZZ_CHECK(!s->has_max_attempts ||
                 (s->max_attempts >= 1 && s->max_attempts <= BT_CLI_MAX_ATTEMPTS_MAX),
             "max attempts %u", s->max_attempts);
  FUZZ_CHECK(!s->has_max_cost || (isfinite(s->max_cost) && s->max_cost >= 0), "max cost %g",
             s->max_cost);
  FUZZ_CHECK(s->key == NULL || bt_valid_name(s->key), "key");
  names_ok(&s->regions, "region");
  names_ok(&s->certs, "cert");
  names_ok(&s->prefer, "prefer");
  names_ok(&s->avoid, "avoid");
}

static size_t count_lines(const uint8_t *data, size_t size) {
  size_t n = size > 0 ? 1 : 0;
  for (size_t i = 0; i + 1 < size; i++)
    if (data[i] == '\n')
      n++;
  return n;
}

/* A valid package the batch holds before the fuzzed text is appended. */
static const char FIRST[] = "{\"capability\":\"seed\",\"payload\":\"x\",\"priority\":1}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bt_cli_batch_t a, b;
  char err[512];
  bt_cli_batch_init(&a);
  bt_cli_batch_init(&b);
  FUZZ_CHECK(bt_cli_batch_parse(FIRST, strlen(FIRST), NOW_AT, &a, err, sizeof err) == 0,
             "the fixed first line is refused: %s", err);

  err[0] = '\0';
  int rc = bt_cli_batch_parse((const char *)data, size, NOW_AT, &a, err, sizeof err);
  FUZZ_CHECK(rc == 0 || rc == BT_EINVAL, "rc %d", rc);
  FUZZ_CHECK(a.n >= 1 && strcmp(a.specs[0].capability, "seed") == 0 &&
                 a.specs[0].payload_len == 1 && a.specs[0].priority == 1,
             "the batch lost what it held");
  if (rc != 0) {
    FUZZ_CHECK(a.n == 1, "a refused batch left %zu packages", a.n - 1);
    unsigned long line = 0;
    int used = 0;
    FUZZ_CHECK(sscanf(err, "line %lu: %n", &line, &used) == 1 && used > 0,
               "error \"%s\" names no line", err);
    FUZZ_CHECK(line >= 1 && line <= count_lines(data, size), "line %lu of %zu", line,
               count_lines(data, size));
  } else {
    FUZZ_CHECK(a.n - 1 <= count_lines(data, size), "%zu packages from %zu lines", a.n - 1,
               count_lines(data, size));
    for (size_t i = 1; i < a.n; i++)
      spec_ok(&a.specs[i]);
  }

  /* An hour later: the same verdict; relative times move, absolute ones not. */
  const int64_t later = NOW_AT + 3600000;
  int rc2 = bt_cli_batch_parse((const char *)data, size, later, &b, err, sizeof err);
  FUZZ_CHECK(rc2 == rc, "verdict depends on the clock (%d vs %d)", rc, rc2);
  if (rc == 0) {
    FUZZ_CHECK(b.n == a.n - 1, "package count depends on the clock");
    for (size_t i = 0; i < b.n; i++) {
      const bt_cli_spec_t *x = &a.specs[i + 1], *y = &b.specs[i];
      FUZZ_CHECK(x->has_deadline == y->has_deadline, "deadline presence");
      if (x->has_deadline)
        FUZZ_CHECK(y->deadline_at == x->deadline_at ||
                       y->deadline_at == x->deadline_at + 3600000,
                   "deadline %lld then %lld", (long long)x->deadline_at,
                   (long long)y->deadline_at);
    }
  }
  bt_cli_batch_close(&a);
  bt_cli_batch_close(&b);
  return 0;
}

/* deploy/baton.conf must list every configuration key, with the built-in
 * default as its value, and parse cleanly: it is the operator's reference. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void test_cfg_sample_lists_every_key(void **state) {
  (void)state;
  char *text = read_file(BATON_SAMPLE_CONF);
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    char active[160], commented[160];
    snprintf(active, sizeof active, "\n%s = ", k->name);
    snprintf(commented, sizeof commented, "\n# %s = ", k->name);
    const char *at = strstr(text, active);
    if (at == NULL && strstr(text, commented) == NULL)
      fail_msg("deploy/baton.conf does not mention key %s", k->name);
    if (at != NULL && k->def != NULL) {
      at += strlen(active);
      if (strncmp(at, k->def, strlen(k->def)) != 0 || at[strlen(k->def)] != '\n')
        fail_msg("deploy/baton.conf: %s should show the default %s", k->name, k->def);
    }
  }
  free(text);
}

static void test_cfg_sample_parses(void **state) {
  (void)state;
  bt_config_t cfg, def;
  bt_cfg_init(&cfg);
  bt_cfg_init(&def);
  char err[256] = "";
  int rc = bt_cfg_load_file(&cfg, BATON_SAMPLE_CONF, err, sizeof err);
  if (rc != 0)
    fail_msg("%s", err);
  /* The sample's values are the defaults. */
  char a[8192], b[8192];
  bt_cfg_dump(&cfg, a, sizeof a);
  bt_cfg_dump(&def, b, sizeof b);
  assert_string_equal(a, b);
  bt_cfg_free(&cfg);
  bt_cfg_free(&def);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cfg_sample_lists_every_key),
      cmocka_unit_test(test_cfg_sample_parses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

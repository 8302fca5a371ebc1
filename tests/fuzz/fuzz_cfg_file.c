/*
 * Fuzz target: the broker's config file (server/cfg/cfg.c bt_cfg_load_file:
 * inih, then every key through bt_cfg_set). bt_cfg_load_file takes a path, so
 * the input is written to a memfd and loaded through /proc/self/fd/N (no file
 * on disk, nothing left behind). Input: the file's bytes.
 *
 * Invariants beyond "no crash":
 *   - a refusal says where ("PATH:LINE: ...") and uses a config error code;
 *   - after a successful load every number lies within its key's bounds;
 *   - every value reads back (bt_cfg_get) as text that sets the same value
 *     (cfg.h's promise), secrets and conninfo aside; the conninfo's redacted
 *     form is always terminated.
 */
#include "fuzz_util.h"

#include "bt_err.h"
#include "bt_log.h"
#include "cfg.h"


static fuzz_file_t file;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  bt_log_set_level(BT_LOG_ERROR);
  fuzz_file_init(&file, "baton-fuzz-cfg");
  return 0;
}

static void check_loaded(const bt_config_t *cfg) {
  char text[1024], err[256];
  for (size_t i = 0; i < bt_cfg_nkeys; i++) {
    const bt_cfg_key_t *k = &bt_cfg_keys[i];
    const char *field = (const char *)cfg + k->offset;
    if (k->type == BT_CFG_REAL) {
      double d = *(const double *)field;
      FUZZ_CHECK(d >= k->min && d <= k->max, "%s = %g outside %g..%g", k->name, d, k->min,
                 k->max);
    } else if (k->type != BT_CFG_STR) {
      uint32_t v = *(const uint32_t *)field;
      FUZZ_CHECK(v >= k->min && v <= k->max, "%s = %u outside %g..%g", k->name, v, k->min,
                 k->max);
    }
    memset(text, 0x55, sizeof text);
    FUZZ_CHECK(bt_cfg_get(cfg, k->name, text, sizeof text) == 0, "get %s", k->name);
    FUZZ_CHECK(memchr(text, '\0', sizeof text) != NULL, "%s printed unterminated", k->name);
    if (k->flags & (BT_CFG_SECRET | BT_CFG_CONNINFO))
      continue;
    if (k->type == BT_CFG_STR && strlen(text) + 1 >= sizeof text)
      continue; /* cut to the buffer: nothing to compare */
    /* Zeroed, not bt_cfg_init: one key is compared, and a full init per key
     * made this target 14x slower. */
    bt_config_t again;
    memset(&again, 0, sizeof again);
    err[0] = '\0';
    FUZZ_CHECK(bt_cfg_set(&again, k->name, text, err, sizeof err) == 0,
               "%s: its own text \"%s\" is refused: %s", k->name, text, err);
    FUZZ_CHECK(bt_cfg_same(cfg, &again, k), "%s: \"%s\" reads back as another value",
               k->name, text);
    bt_cfg_free(&again);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_file_put(&file, data, size);
  bt_config_t cfg;
  char err[512];
  bt_cfg_init(&cfg);
  err[0] = '\0';
  int rc = bt_cfg_load_file(&cfg, file.path, err, sizeof err);
  if (rc != 0) {
    FUZZ_CHECK(rc == BT_EINVAL || rc == BT_ENOTFOUND || rc == BT_ECONFIG, "rc %d", rc);
    size_t pl = strlen(file.path);
    FUZZ_CHECK(strncmp(err, file.path, pl) == 0 && err[pl] == ':' && err[pl + 1] != '\0',
               "error \"%s\" does not say where", err);
  } else {
    check_loaded(&cfg);
  }
  bt_cfg_free(&cfg);
  return 0;
}

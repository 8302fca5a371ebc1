/*
 * `config get` and `config set`: the broker's configuration as it runs now.
 * Reads come from the shell's live copy (ops.config) through server/cfg's
 * table, so a key's text form, default and runtime flag are the table's and a
 * secret is never sent (bt_cfg_get shows "(set)"). A change goes to the shell
 * (ops.config_set), which checks it, applies it, audits it and answers once
 * the audit row is committed. This file never changes the configuration
 * itself and never logs a value.
 */
#include "ctl_int.h"

#include "bt_err.h"
#include "bt_valid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Text of one entry; the ConfigEntry points into it. */
typedef struct {
  char value[1024];
  char def[256];
} entry_text_t;

static void fill_entry(const bt_config_t *cfg, const bt_cfg_key_t *k, Baton__ConfigEntry *e,
                       entry_text_t *t) {
  baton__config_entry__init(e);
  bt_cfg_get(cfg, k->name, t->value, sizeof t->value);
  bt_cfg_default_text(k, t->def, sizeof t->def);
  e->key = (char *)k->name;
  e->value = t->value;
  e->default_value = t->def;
  e->has_runtime = true;
  e->runtime = (k->flags & BT_CFG_RUNTIME) != 0;
  e->help = (char *)k->help;
}

/* Answers req with the entries of keys[0..n) (n = 0 allowed: none). previous
 * (may be NULL) goes into a single entry's `previous`. */
static void answer_entries(bt_ctl_t *ctl, bt_ctl_req_t *req, const bt_config_t *cfg,
                           const bt_cfg_key_t *const *keys, size_t n,
                           const char *previous) {
  Baton__ConfigEntry *es = calloc(n + 1, sizeof *es);
  Baton__ConfigEntry **ptrs = calloc(n + 1, sizeof *ptrs);
  entry_text_t *texts = calloc(n + 1, sizeof *texts);
  if (es == NULL || ptrs == NULL || texts == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    fill_entry(cfg, keys[i], &es[i], &texts[i]);
    ptrs[i] = &es[i];
  }
  if (n == 1 && previous != NULL)
    es[0].previous = (char *)previous;
  Baton__CtlReply reply;
  Baton__ConfigList cl = BATON__CONFIG_LIST__INIT;
  bt_ctl__reply_init(&reply);
  cl.n_entries = n;
  cl.entries = ptrs;
  reply.body_case = BATON__CTL_REPLY__BODY_CONFIG;
  reply.config = &cl;
  bt_ctl__answer(ctl, req, &reply);
  free(texts);
  free(ptrs);
  free(es);
}

/* The key of a request: present, printable and not absurdly long (it is
 * echoed in messages). Answers and returns NULL when it is not. */
static const bt_cfg_key_t *key_or_fail(bt_ctl_t *ctl, bt_ctl_req_t *req, const char *key) {
  char why[200];
  if (key == NULL || key[0] == '\0') {
    bt_ctl__fail(ctl, req, BT_EINVAL, "configuration key required");
    return NULL;
  }
  if (!bt_valid_text(key, 128)) {
    bt_ctl__fail(ctl, req, BT_EINVAL, "configuration key is not a short line of text");
    return NULL;
  }
  const bt_cfg_key_t *k = bt_cfg_key(key);
  if (k == NULL) {
    snprintf(why, sizeof why, "unknown configuration key \"%s\"", key);
    bt_ctl__fail(ctl, req, BT_ENOTFOUND, why);
  }
  return k;
}

void bt_ctl__config_get(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__ConfigQuery *m) {
  if (ctl->ops.config == NULL) {
    bt_ctl__fail(ctl, req, BT_ESTATE, "this broker cannot show its configuration");
    return;
  }
  const bt_config_t *cfg = ctl->ops.config(ctl->arg);
  if (m->key != NULL && m->key[0] != '\0') {
    const bt_cfg_key_t *k = key_or_fail(ctl, req, m->key);
    if (k != NULL)
      answer_entries(ctl, req, cfg, &k, 1, NULL);
    return;
  }
  const bt_cfg_key_t **keys = calloc(bt_cfg_nkeys + 1, sizeof *keys);
  if (keys == NULL)
    abort();
  for (size_t i = 0; i < bt_cfg_nkeys; i++)
    keys[i] = &bt_cfg_keys[i];
  answer_entries(ctl, req, cfg, keys, bt_cfg_nkeys, NULL);
  free(keys);
}

void bt_ctl__config_set(bt_ctl_t *ctl, bt_ctl_req_t *req, const Baton__ConfigSet *m) {
  if (ctl->ops.config_set == NULL || ctl->ops.config == NULL) {
    bt_ctl__fail(ctl, req, BT_ESTATE, "this broker cannot change its configuration");
    return;
  }
  const bt_cfg_key_t *k = key_or_fail(ctl, req, m->key);
  if (k == NULL)
    return;
  if (m->value == NULL || !bt_valid_text(m->value, 1024)) {
    bt_ctl__fail(ctl, req, BT_EINVAL, "value required: one line of text");
    return;
  }
  char err[300] = "";
  int rc = ctl->ops.config_set(ctl->arg, k->name, m->value, req->token, err, sizeof err);
  /* rc == 0: the shell holds the token (and may have answered already). */
  if (rc != 0)
    bt_ctl__fail(ctl, req, rc, err[0] ? err : NULL);
}

void bt_ctl_config_set_done(bt_ctl_t *ctl, uint64_t token, int status, const char *key,
                            const char *previous, const char *message) {
  bt_ctl_req_t *req = bt_ctl__req_by_token(ctl, token);
  if (req == NULL)
    return;
  const bt_cfg_key_t *k = bt_cfg_key(key);
  if (status != 0 || k == NULL) {
    bt_ctl__fail(ctl, req, status ? status : BT_ENOTFOUND, message);
    return;
  }
  answer_entries(ctl, req, ctl->ops.config(ctl->arg), &k, 1, previous ? previous : "");
}

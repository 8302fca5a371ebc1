/*
 * baton-agent's settings: the table below is the only list of them; flags,
 * environment and config file all apply values through opt_apply(), which
 * validates and names the bad setting. Pure apart from reading the config file
 * and blanking a --secret in argv. Never logs the secret.
 */
#include "options.h"

#include "bt_err.h"
#include "bt_time.h"
#include "bt_valid.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { T_STRING, T_UINT, T_DURATION, T_LEVEL, T_HANDLER, T_PATH } opt_type_t;

enum { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG };
static const char *const src_names[] = {"default", "config file", "environment",
                                        "flag"};

typedef struct {
  const char *name; /* long flag and config key */
  opt_type_t type;
  const char *env; /* environment variable, or NULL */
  const char *def; /* default as text, or NULL */
  uint64_t min, max;
  size_t offset;   /* field in bt_agentd_opts_t */
  const char *arg; /* for the usage text */
  const char *help;
} opt_def_t;

#define F(field) offsetof(bt_agentd_opts_t, field)
#define DAY_MS (24ull * 3600 * 1000)

static const opt_def_t OPTS[] = {
    {"broker", T_STRING, "BATON_BROKER", "tcp://127.0.0.1:7800", 0, 0, F(broker),
     "ENDPOINT[,ENDPOINT...]",
     "brokers to connect to; requests go to whichever answers"},
    {"vendor", T_STRING, "BATON_VENDOR", NULL, 0, 0, F(vendor), "NAME",
     "the vendor this agent works for"},
    {"secret", T_STRING, "BATON_SECRET", NULL, 0, 0, F(secret), "SECRET",
     "the vendor secret; prefer BATON_SECRET, which stays out of ps"},
    {"name", T_STRING, NULL, NULL, 0, 0, F(name), "NAME",
     "agent name, unique per vendor (default: hostname-pid)"},
    /* The broker refuses a hello with more (BT_XP_MAX_SLOTS): say so here, at
     * start, rather than retrying a refused hello for ever. */
    {"slots", T_UINT, NULL, "1", 1, BT_AGENTD_MAX_SLOTS, F(slots), "N",
     "packages run at once"},
    {"handler", T_HANDLER, NULL, NULL, 0, 0, 0, "CAPABILITY=COMMAND",
     "run COMMAND (/bin/sh -c) for CAPABILITY; repeatable"},
    {"drain-timeout", T_DURATION, NULL, "30s", 0, DAY_MS, F(drain_timeout_ms), "D",
     "on SIGTERM, how long running handlers may finish before they are handed back"},
    {"kill-grace", T_DURATION, NULL, "5s", 0, 3600000, F(kill_grace_ms), "D",
     "SIGTERM to SIGKILL delay for a stopped handler"},
    {"max-message-bytes", T_UINT, NULL, "1048576", 8192, 256u << 20,
     F(max_message_bytes), "N", "message limit until the broker announces its own"},
    {"log-level", T_LEVEL, NULL, "info", 0, 0, F(log_level), "LEVEL",
     "debug, info, warn or error"},
    {"max-result-bytes", T_UINT, NULL, "524288", 1, 256u << 20, F(max_result_bytes), "N",
     "largest handler result (and checkpoint) reported; a larger one fails the attempt "
     "with \"result too large\". Keep it at or below the broker's max_payload_bytes"},
    {"user", T_STRING, "BATON_USER", NULL, 0, 0, F(user), "NAME",
     "started as root: switch to this user (and its groups) before connecting; "
     "handlers run as it too"},
    {"config", T_PATH, NULL, NULL, 0, 0, F(config), "FILE",
     "INI file, section [agent], keys as the long options"},
};
#define N_OPTS (sizeof OPTS / sizeof OPTS[0])

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static char *xstrdup(const char *s) {
  char *p = strdup(s);
  if (p == NULL)
    abort();
  return p;
}

static const opt_def_t *find_opt(const char *name) {
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *a = OPTS[i].name, *b = name;
    /* config keys may use '_' for '-' */
    while (*a && (*a == *b || (*a == '-' && *b == '_'))) {
      a++;
      b++;
    }
    if (*a == '\0' && *b == '\0')
      return &OPTS[i];
  }
  return NULL;
}

static void clear_handlers(bt_agentd_opts_t *o) {
  for (size_t i = 0; i < o->n_handlers; i++) {
    free(o->handlers[i].capability);
    free(o->handlers[i].command);
  }
  free(o->handlers);
  o->handlers = NULL;
  o->n_handlers = 0;
}

static int add_handler(bt_agentd_opts_t *o, const char *value, int src, char *err,
                       size_t errlen, const char *where) {
  const char *eq = strchr(value, '='); /* the FIRST '=': commands may hold more */
  if (eq == NULL || eq == value || eq[1] == '\0') {
    set_err(err, errlen, "invalid handler \"%s\" (%s): want CAPABILITY=COMMAND", value,
            where);
    return BT_ECONFIG;
  }
  for (const char *p = value; p < eq; p++) {
    if (isspace((unsigned char)*p) || !isprint((unsigned char)*p)) {
      set_err(err, errlen, "invalid capability in handler \"%s\" (%s)", value, where);
      return BT_ECONFIG;
    }
  }
  if (src > o->handlers_source) {
    clear_handlers(o); /* a higher source replaces the whole list */
    o->handlers_source = src;
  }
  size_t caplen = (size_t)(eq - value);
  for (size_t i = 0; i < o->n_handlers; i++) {
    if (strlen(o->handlers[i].capability) == caplen &&
        memcmp(o->handlers[i].capability, value, caplen) == 0) {
      set_err(err, errlen, "capability \"%.*s\" has two handlers (%s)", (int)caplen,
              value, where);
      return BT_ECONFIG;
    }
  }
  bt_agentd_handler_cfg_t *v =
      realloc(o->handlers, (o->n_handlers + 1) * sizeof *o->handlers);
  if (v == NULL)
    abort();
  o->handlers = v;
  v[o->n_handlers].capability = strndup(value, caplen);
  v[o->n_handlers].command = xstrdup(eq + 1);
  if (v[o->n_handlers].capability == NULL)
    abort();
  o->n_handlers++;
  return 0;
}

/* Applies one value from a source. where names it in errors ("--slots",
 * "BATON_BROKER", "file.conf:12"). */
static int opt_apply(bt_agentd_opts_t *o, const opt_def_t *d, const char *value,
                     int src, const char *where, char *err, size_t errlen) {
  void *field = (char *)o + d->offset;
  uint64_t v = 0;
  switch (d->type) {
  case T_STRING:
  case T_PATH:
    if (*value == '\0') {
      set_err(err, errlen, "empty value for %s (%s)", d->name, where);
      return BT_ECONFIG;
    }
    free(*(char **)field);
    *(char **)field = xstrdup(value);
    return 0;
  case T_UINT: {
    char *end = NULL;
    errno = 0;
    unsigned long long u = strtoull(value, &end, 10);
    if (!isdigit((unsigned char)*value) || *end != '\0' || errno != 0 || u < d->min ||
        u > d->max) {
      set_err(err, errlen, "invalid value for %s (%s): \"%s\" (want %llu to %llu)",
              d->name, where, value, (unsigned long long)d->min,
              (unsigned long long)d->max);
      return BT_ECONFIG;
    }
    *(uint64_t *)field = u;
    return 0;
  }
  case T_DURATION:
    if (bt_parse_duration(value, &v) != 0 || v < d->min || v > d->max) {
      set_err(err, errlen,
              "invalid duration for %s (%s): \"%s\" (e.g. 500ms, 30s, 2m; at most 24h)",
              d->name, where, value);
      return BT_ECONFIG;
    }
    *(uint64_t *)field = v;
    return 0;
  case T_LEVEL:
    if (bt_log_parse_level(value, (bt_log_level_t *)field) != 0) {
      set_err(err, errlen,
              "invalid value for %s (%s): \"%s\" (want debug, info, "
              "warn or error)",
              d->name, where, value);
      return BT_ECONFIG;
    }
    return 0;
  case T_HANDLER:
    return add_handler(o, value, src, err, errlen, where);
  }
  return BT_ECONFIG;
}

/* ---- config file ----------------------------------------------------------- */

typedef struct {
  bt_agentd_opts_t *o;
  const char *path;
  char *err;
  size_t errlen;
  int failed;
  int has_secret;
} ini_ctx_t;

static int on_ini(void *user, const char *section, const char *name,
                  const char *value) {
  ini_ctx_t *c = user;
  char where[600];
  if (c->failed)
    return 1;
  /* other sections belong to other programs sharing the file (e.g. batond) */
  if (strcmp(section, "agent") != 0 && section[0] != '\0')
    return 1;
  snprintf(where, sizeof where, "%s [%s] %s", c->path, section[0] ? section : "agent",
           name);
  const opt_def_t *d = find_opt(name);
  if (d == NULL || d->type == T_PATH) {
    set_err(c->err, c->errlen, "unknown key \"%s\" in %s", name, c->path);
    c->failed = 1;
    return 0;
  }
  if (d->offset == F(secret))
    c->has_secret = 1;
  if (opt_apply(c->o, d, value, SRC_FILE, where, c->err, c->errlen) != 0) {
    c->failed = 1;
    return 0;
  }
  return 1;
}

static int load_file(bt_agentd_opts_t *o, const char *path, char *err, size_t errlen) {
  ini_ctx_t c = {o, path, err, errlen, 0, 0};
  int rv = ini_parse(path, on_ini, &c);
  if (c.failed)
    return BT_ECONFIG;
  if (rv == -1) {
    set_err(err, errlen, "could not read config file %s: %s", path, strerror(errno));
    return BT_ECONFIG;
  }
  if (rv != 0) {
    set_err(err, errlen, "syntax error in config file %s line %d", path, rv);
    return BT_ECONFIG;
  }
  struct stat st;
  if (c.has_secret && stat(path, &st) == 0 && (st.st_mode & 0077) != 0)
    bt_log_warn("config file holding the secret is readable by others; chmod 600 it",
                "file=%s", BT_Q(path));
  return 0;
}

/* ---- command line ---------------------------------------------------------- */

void bt_agentd_usage(FILE *f) {
  fprintf(f,
          "usage: baton-agent --broker ENDPOINT[,ENDPOINT...] --vendor V --secret S\n"
          "                   --handler CAPABILITY=COMMAND [--handler ...] [options]\n"
          "       baton-agent --version | --help\n\noptions:\n");
  for (size_t i = 0; i < N_OPTS; i++) {
    fprintf(f, "  --%s %s\n        %s", OPTS[i].name, OPTS[i].arg, OPTS[i].help);
    if (OPTS[i].def != NULL || OPTS[i].env != NULL) {
      fprintf(f, "\n        (");
      if (OPTS[i].def != NULL)
        fprintf(f, "default %s%s", OPTS[i].def, OPTS[i].env ? "; " : "");
      if (OPTS[i].env != NULL)
        fprintf(f, "env %s", OPTS[i].env);
      fputc(')', f);
    }
    fputc('\n', f);
  }
  fprintf(
      f, "  --version\n        print the version and exit\n"
         "  --help\n        print this help and exit\n\n"
         "For each work package the agent runs COMMAND with /bin/sh -c: payload on\n"
         "stdin, stdout is the result; exit 0 completed, 75 transient failure, other\n"
         "failed. Environment: BATON_PACKAGE_ID, BATON_ATTEMPT, BATON_CAPABILITY,\n"
         "BATON_DEADLINE, BATON_CHECKPOINT_IN. File descriptor 3 takes lines\n"
         "\"progress N\" and \"checkpoint BASE64\". SIGTERM/SIGINT: take no new work,\n"
         "let handlers finish until the drain timeout, hand back the rest, exit 0\n"
         "(a second signal hands back at once).\n"
         "Precedence: flags > environment > config file > defaults, except that\n"
         "BATON_SECRET beats --secret.\n");
}

typedef struct {
  const opt_def_t *def;
  const char *value;
} flag_t;

static const char *real_getenv(const char *name) { return getenv(name); }

/* The broker accepts names of 1-128 bytes of letters, digits and . _ - : / @ +
 * (bt_valid_name) and refuses a hello that breaks it; an agent told so only
 * after connecting would retry for ever, so it is checked here. */
static int check_names(const bt_agentd_opts_t *o, char *err, size_t errlen) {
  static const char rule[] = "1-128 bytes of letters, digits and . _ - : / @ +";
  if (!bt_valid_name(o->vendor)) {
    set_err(err, errlen, "invalid vendor name \"%.40s\": want %s", o->vendor, rule);
    return BT_ECONFIG;
  }
  if (o->name != NULL && !bt_valid_name(o->name)) {
    set_err(err, errlen, "invalid agent name \"%.40s\": want %s", o->name, rule);
    return BT_ECONFIG;
  }
  for (size_t i = 0; i < o->n_handlers; i++) {
    if (!bt_valid_name(o->handlers[i].capability)) {
      set_err(err, errlen, "invalid capability \"%.40s\": want %s",
              o->handlers[i].capability, rule);
      return BT_ECONFIG;
    }
  }
  return 0;
}

int bt_agentd_opts_parse(bt_agentd_opts_t *o, int argc, char **argv,
                         const char *(*getenv_fn)(const char *), FILE *out, char *err,
                         size_t errlen) {
  struct option longopts[N_OPTS + 3];
  flag_t *flags = calloc((size_t)argc + 1, sizeof *flags);
  size_t n_flags = 0;
  int rv = 0, help = 0, version = 0;
  if (flags == NULL)
    abort();
  memset(o, 0, sizeof *o);
  if (getenv_fn == NULL)
    getenv_fn = real_getenv;
  for (size_t i = 0; i < N_OPTS; i++)
    longopts[i] = (struct option){OPTS[i].name, required_argument, NULL, (int)i};
  longopts[N_OPTS] = (struct option){"help", no_argument, NULL, 'h'};
  longopts[N_OPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
  longopts[N_OPTS + 2] = (struct option){NULL, 0, NULL, 0};

  /* 1. collect the flags (applied last: they win) */
  optind = 0; /* GNU: full reinitialisation, so tests can parse twice */
  opterr = 0;
  for (;;) {
    int li = -1;
    int c = getopt_long(argc, argv, "+:hV", longopts, &li);
    if (c == -1)
      break;
    if (c == 'h') {
      help = 1;
    } else if (c == 'V') {
      version = 1;
    } else if (c >= 0 && (size_t)c < N_OPTS) {
      flags[n_flags++] = (flag_t){&OPTS[c], optarg};
    } else {
      const char *bad = argv[optind - 1];
      set_err(err, errlen, c == ':' ? "option %s needs a value" : "unknown option %s",
              bad);
      rv = BT_ECONFIG;
      goto out;
    }
  }
  if (optind < argc) {
    set_err(err, errlen, "unexpected argument \"%s\"", argv[optind]);
    rv = BT_ECONFIG;
    goto out;
  }
  if (help || version) {
    if (help)
      bt_agentd_usage(out);
    else
      fprintf(out, "baton-agent %s\n", BATON_VERSION);
    rv = BT_AGENTD_OPTS_EXIT;
    goto out;
  }

  /* 2. defaults */
  for (size_t i = 0; i < N_OPTS; i++) {
    if (OPTS[i].def != NULL &&
        (rv = opt_apply(o, &OPTS[i], OPTS[i].def, SRC_DEFAULT, src_names[SRC_DEFAULT],
                        err, errlen)) != 0)
      goto out;
  }
  /* 3. the config file (named by a flag only) */
  for (size_t i = 0; i < n_flags; i++) {
    if (flags[i].def->type == T_PATH &&
        (rv = opt_apply(o, flags[i].def, flags[i].value, SRC_FLAG, "--config", err,
                        errlen)) != 0)
      goto out;
  }
  if (o->config != NULL && (rv = load_file(o, o->config, err, errlen)) != 0)
    goto out;
  /* 4. environment */
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *v = OPTS[i].env ? getenv_fn(OPTS[i].env) : NULL;
    if (v != NULL && *v != '\0' &&
        (rv = opt_apply(o, &OPTS[i], v, SRC_ENV, OPTS[i].env, err, errlen)) != 0)
      goto out;
  }
  /* 5. flags. The one exception to "flags win": a secret in BATON_SECRET beats
   * --secret, because the environment is the channel that stays out of ps and
   * shell history; a --secret beside it is only blanked and reported. */
  const char *env_secret = getenv_fn("BATON_SECRET");
  int env_has_secret = env_secret != NULL && *env_secret != '\0';
  for (size_t i = 0; i < n_flags; i++) {
    char where[80];
    int is_secret = flags[i].def->offset == F(secret) && flags[i].def->type == T_STRING;
    snprintf(where, sizeof where, "--%s", flags[i].def->name);
    if (flags[i].def->type != T_PATH && !(is_secret && env_has_secret) &&
        (rv = opt_apply(o, flags[i].def, flags[i].value, SRC_FLAG, where, err,
                        errlen)) != 0)
      goto out;
    if (is_secret) {
      /* blank it in argv so it leaves /proc/PID/cmdline (and ps) */
      memset((char *)flags[i].value, 'x', strlen(flags[i].value));
      if (env_has_secret)
        o->secret_flag_ignored = 1;
      else
        o->secret_on_command_line = 1;
    }
  }
  /* 6. what has no default */
  if (o->vendor == NULL) {
    set_err(err, errlen,
            "missing vendor: give --vendor, BATON_VENDOR or vendor in the "
            "config file");
    rv = BT_ECONFIG;
  } else if (o->secret == NULL) {
    set_err(err, errlen,
            "missing secret: set BATON_SECRET (preferred) or give --secret");
    rv = BT_ECONFIG;
  } else if (o->n_handlers == 0) {
    set_err(err, errlen, "no handler: give at least one --handler CAPABILITY=COMMAND");
    rv = BT_ECONFIG;
  } else if (o->n_handlers > BT_AGENTD_MAX_HANDLERS) {
    set_err(err, errlen, "too many handlers: %zu (the broker accepts at most %d "
            "capabilities per agent)", o->n_handlers, BT_AGENTD_MAX_HANDLERS);
    rv = BT_ECONFIG;
  } else if ((rv = check_names(o, err, errlen)) != 0) {
    goto out;
  }
out:
  free(flags);
  return rv;
}

void bt_agentd_opts_free(bt_agentd_opts_t *o) {
  clear_handlers(o);
  free(o->broker);
  free(o->vendor);
  if (o->secret != NULL) {
    memset(o->secret, 0, strlen(o->secret));
    free(o->secret);
  }
  free(o->name);
  free(o->config);
  free(o->user);
  memset(o, 0, sizeof *o);
}

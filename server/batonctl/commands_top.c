/*
 * `top [--interval D] [--once]`: a live terminal view of the broker, redrawn
 * in place every interval from three existing control requests (stats,
 * vendor list, handoffs with a limit), so the broker needs nothing new.
 *
 * This file owns the terminal while top runs: the alternate screen, a hidden
 * cursor, stdin in non-canonical no-echo mode, and handlers for SIGINT,
 * SIGTERM, SIGHUP and SIGWINCH. Every way out of the live loop (q, a signal, a
 * broker that stops answering, exit()) goes through term_restore(), which
 * must stay idempotent and async-signal-free in what it touches. It never
 * draws escape codes when stdout is not a terminal or with --once: then one
 * plain frame is printed, for scripts and tests.
 */
#include "commands.h"
#include "output.h"

#include "bt_time.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_INTERVAL_MS 1000
#define MIN_INTERVAL_MS 200
#define HANDOFF_ROWS 8

#define ESC_ALT_ON "\033[?1049h"
#define ESC_ALT_OFF "\033[?1049l"
#define ESC_CURSOR_OFF "\033[?25l"
#define ESC_CURSOR_ON "\033[?25h"
#define ESC_HOME_CLEAR "\033[H\033[J"

/* A growable string: one frame is built here and written with one write(),
 * so the terminal never shows half a frame. */
typedef struct {
  char *s;
  size_t n, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->s, cap);
    if (p == NULL)
      abort();
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (w > 0)
    sb_add(b, tmp, (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1);
}

/* ---- the terminal ---------------------------------------------------------- */

/* What the live view changed and must put back; file-scope because the atexit
 * backstop needs it. */
static struct {
  bool screen;            /* alternate screen entered, cursor hidden */
  bool termios_set;       /* stdin's modes changed; saved holds the old ones */
  struct termios saved;
  bool handlers;          /* our signal handlers are installed */
  struct sigaction old_int, old_term, old_hup, old_winch;
} term;

static volatile sig_atomic_t quit_requested;
static volatile sig_atomic_t resized;

static void on_quit_signal(int sig) {
  (void)sig;
  quit_requested = 1;
}

static void on_winch(int sig) {
  (void)sig;
  resized = 1;
}

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return; /* the terminal is gone; nothing left to restore it for */
    }
    s += w;
    n -= (size_t)w;
  }
}

static void term_restore(void) {
  if (term.screen) {
    static const char leave[] = ESC_CURSOR_ON ESC_ALT_OFF;
    write_all(STDOUT_FILENO, leave, sizeof leave - 1);
    term.screen = false;
  }
  if (term.termios_set) {
    tcsetattr(STDIN_FILENO, TCSANOW, &term.saved);
    term.termios_set = false;
  }
  if (term.handlers) {
    sigaction(SIGINT, &term.old_int, NULL);
    sigaction(SIGTERM, &term.old_term, NULL);
    sigaction(SIGHUP, &term.old_hup, NULL);
    sigaction(SIGWINCH, &term.old_winch, NULL);
    term.handlers = false;
  }
}

/* Enters the live view. Signal handlers come first so a Ctrl-C between the
 * next steps still reaches the loop and the restore. */
static void term_enter(void) {
  static bool atexit_done;
  if (!atexit_done) {
    atexit(term_restore);
    atexit_done = true;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a signal must cut poll() short so q-less quits are quick. */
  sa.sa_handler = on_quit_signal;
  sigaction(SIGINT, &sa, &term.old_int);
  sigaction(SIGTERM, &sa, &term.old_term);
  sigaction(SIGHUP, &sa, &term.old_hup);
  sa.sa_handler = on_winch;
  sigaction(SIGWINCH, &sa, &term.old_winch);
  term.handlers = true;

  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &term.saved) == 0) {
    struct termios raw = term.saved;
    /* Keys arrive one at a time without echo; ISIG stays on so Ctrl-C is a
     * SIGINT like everywhere else, and OPOST stays on so "\n" still returns
     * the carriage. */
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
      term.termios_set = true;
  }
  static const char enter[] = ESC_ALT_ON ESC_CURSOR_OFF;
  write_all(STDOUT_FILENO, enter, sizeof enter - 1);
  term.screen = true;
}

static void term_size(int *cols, int *rows) {
  struct winsize ws;
  *cols = 80;
  *rows = 24;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
    if (ws.ws_col > 0)
      *cols = ws.ws_col;
    if (ws.ws_row > 0)
      *rows = ws.ws_row;
  }
}

/* ---- one frame ----------------------------------------------------------- */

/* The three answers a frame is drawn from; each owned. */
typedef struct {
  Baton__CtlReply *stats;
  Baton__CtlReply *vendors;
  Baton__CtlReply *handoffs;
} snapshot_t;

static void snapshot_free(snapshot_t *s) {
  if (s->stats)
    baton__ctl_reply__free_unpacked(s->stats, NULL);
  if (s->vendors)
    baton__ctl_reply__free_unpacked(s->vendors, NULL);
  if (s->handoffs)
    baton__ctl_reply__free_unpacked(s->handoffs, NULL);
  memset(s, 0, sizeof *s);
}

/* Asks the broker for a frame's data. Returns BT_CLI_EXIT_OK with out filled
 * (owned), or the failing call's exit status with out empty. */
static int snapshot_fetch(bt_cli_t *cli, snapshot_t *out) {
  memset(out, 0, sizeof *out);
  Baton__Empty empty = BATON__EMPTY__INIT;
  Baton__CtlRequest req = BATON__CTL_REQUEST__INIT;
  req.body_case = BATON__CTL_REQUEST__BODY_STATS;
  req.stats = &empty;
  int rc = bt_cli_conn_call(&cli->conn, &req, BATON__CTL_REPLY__BODY_STATS, NULL,
                            &out->stats);
  if (rc != BT_CLI_EXIT_OK)
    goto fail;

  Baton__CtlRequest vreq = BATON__CTL_REQUEST__INIT;
  vreq.body_case = BATON__CTL_REQUEST__BODY_VENDOR_LIST;
  vreq.vendor_list = &empty;
  rc = bt_cli_conn_call(&cli->conn, &vreq, BATON__CTL_REPLY__BODY_VENDORS, NULL,
                        &out->vendors);
  if (rc != BT_CLI_EXIT_OK)
    goto fail;

  /* The broker answers the newest `limit` handoffs, oldest first. */
  Baton__HandoffQuery hq = BATON__HANDOFF_QUERY__INIT;
  hq.has_limit = 1;
  hq.limit = HANDOFF_ROWS;
  Baton__CtlRequest hreq = BATON__CTL_REQUEST__INIT;
  hreq.body_case = BATON__CTL_REQUEST__BODY_HANDOFFS;
  hreq.handoffs = &hq;
  rc = bt_cli_conn_call(&cli->conn, &hreq, BATON__CTL_REPLY__BODY_HANDOFFS, NULL,
                        &out->handoffs);
  if (rc != BT_CLI_EXIT_OK)
    goto fail;
  return BT_CLI_EXIT_OK;
fail:
  snapshot_free(out);
  return rc;
}

/* "15:04:05" in UTC for wall-clock ms at. */
static const char *fmt_clock(int64_t at, char *buf, size_t len) {
  time_t t = (time_t)(at / 1000);
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%H:%M:%S", &tm) == 0)
    snprintf(buf, len, "?");
  return buf;
}

/* Renders a frame as plain text lines, each ending in '\n'. rate < 0 means
 * "not known yet" (the first frame). */
static void frame_render(const snapshot_t *s, int64_t now_at, double rate,
                         sbuf_t *out) {
  const Baton__Stats *st = s->stats->stats;
  char clock[32], rbuf[32];
  if (rate < 0)
    snprintf(rbuf, sizeof rbuf, "-");
  else
    snprintf(rbuf, sizeof rbuf, "%.1f/s", rate);
  /* Two short lines rather than one long one, so an 80-column terminal
   * shows every counter. */
  sb_printf(out, "baton top  %s UTC  agents %u  rate %s  (q quits)\n",
            fmt_clock(now_at, clock, sizeof clock), st->agents, rbuf);
  sb_printf(out,
            "packages  queued %" PRIu64 " (waiting %" PRIu64 ")  assigned %" PRIu64
            "  running %" PRIu64 "  completed %" PRIu64 "  dead %" PRIu64 "\n",
            st->queued, st->waiting, st->assigned, st->running, st->completed,
            st->dead);
  sb_puts(out, "\n");

  const Baton__VendorList *vl = s->vendors->vendors;
  if (vl->n_vendors == 0) {
    sb_puts(out, "no vendors\n");
  } else {
    static const bt_cli_col_t cols[] = {
        {"VENDOR", false},    {"REGION", false}, {"STATE", false},
        {"AGENTS", true},     {"LOAD", true},    {"COMPLETED", true},
        {"FAILED", true},     {"ON_TIME", true}, {"REASON", false},
    };
    bt_cli_table_t t;
    bt_cli_table_init(&t, cols, sizeof cols / sizeof cols[0], true);
    for (size_t i = 0; i < vl->n_vendors; i++) {
      const Baton__VendorInfo *v = vl->vendors[i];
      bt_cli_table_cell(&t, v->name);
      bt_cli_table_cell(&t, v->region);
      bt_cli_table_cell(&t, v->state);
      bt_cli_table_cellf(&t, "%u", v->agents);
      /* in flight / allowed now / capacity: the middle one drops below the
       * capacity while a recovered vendor is probed. */
      char lim[16] = "-", cap[16] = "-";
      if (v->has_limit)
        snprintf(lim, sizeof lim, "%u", v->limit);
      if (v->has_capacity)
        snprintf(cap, sizeof cap, "%u", v->capacity);
      bt_cli_table_cellf(&t, "%u/%s/%s", v->in_flight, lim, cap);
      bt_cli_table_cellf(&t, "%" PRIu64, v->completed);
      bt_cli_table_cellf(&t, "%" PRIu64, v->failed);
      if (v->has_on_time_rate)
        bt_cli_table_cellf(&t, "%.1f%%", v->on_time_rate * 100.0);
      else
        bt_cli_table_cell(&t, NULL);
      bt_cli_table_cell(&t, v->state_reason);
    }
    char *txt = bt_cli_table_render(&t);
    sb_puts(out, txt);
    free(txt);
    bt_cli_table_close(&t);
  }
  sb_puts(out, "\n");

  const Baton__HandoffList *hl = s->handoffs->handoffs;
  if (hl->n_handoffs == 0) {
    sb_puts(out, "no handoffs\n");
    return;
  }
  sb_puts(out, "last handoffs (newest last)\n");
  static const bt_cli_col_t hcols[] = {
      {"AT", false}, {"PACKAGE", true}, {"MOVE", false}, {"REASON", false},
  };
  bt_cli_table_t t;
  bt_cli_table_init(&t, hcols, sizeof hcols / sizeof hcols[0], true);
  for (size_t i = 0; i < hl->n_handoffs; i++) {
    const Baton__HandoffInfo *h = hl->handoffs[i];
    bt_cli_table_cell(&t, h->has_at ? fmt_clock(h->at, clock, sizeof clock) : NULL);
    if (h->has_package_id)
      bt_cli_table_cellf(&t, "%" PRIu64, h->package_id);
    else
      bt_cli_table_cell(&t, NULL);
    /* to_vendor is absent until the package is routed again. */
    bt_cli_table_cellf(&t, "%s \u2192 %s",
                       h->from_vendor && *h->from_vendor ? h->from_vendor : "-",
                       h->to_vendor && *h->to_vendor ? h->to_vendor : "(queued)");
    bt_cli_table_cell(&t, h->reason);
  }
  char *txt = bt_cli_table_render(&t);
  sb_puts(out, txt);
  free(txt);
  bt_cli_table_close(&t);
}

/* Copies text into out for the terminal: home and clear, then at most rows
 * lines each cut to cols characters (UTF-8 aware), with no newline after the
 * last so a full screen never scrolls. */
static void frame_fit(const char *text, int cols, int rows, sbuf_t *out) {
  sb_puts(out, ESC_HOME_CLEAR);
  int line = 0;
  const char *p = text;
  while (*p != '\0' && line < rows) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    size_t keep = 0;
    int chars = 0;
    while (keep < len) {
      if (((unsigned char)p[keep] & 0xC0) != 0x80) {
        if (chars == cols)
          break;
        chars++;
      }
      keep++;
    }
    if (line > 0)
      sb_puts(out, "\n");
    sb_add(out, p, keep);
    line++;
    if (eol == NULL)
      break;
    p = eol + 1;
  }
}

/* ---- the command --------------------------------------------------------- */

/* Waits until deadline_ms (monotonic) or a key, signal or resize says
 * otherwise. Returns true when the user asked to quit. */
static bool wait_input(uint64_t deadline_ms, bool *keys_open) {
  for (;;) {
    if (quit_requested)
      return true;
    if (resized)
      return false;
    uint64_t now = bt_mono_ms();
    if (now >= deadline_ms)
      return false;
    struct pollfd p = {.fd = *keys_open ? STDIN_FILENO : -1, .events = POLLIN};
    int n = poll(&p, 1, (int)(deadline_ms - now));
    if (n <= 0)
      continue; /* timeout or EINTR: the checks above decide */
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
      *keys_open = false;
      continue;
    }
    char keys[64];
    ssize_t r = read(STDIN_FILENO, keys, sizeof keys);
    if (r == 0) {
      *keys_open = false; /* EOF: only signals and the timer remain */
      continue;
    }
    for (ssize_t i = 0; i < r; i++) {
      if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 0x03)
        return true;
      if (keys[i] == ' ')
        return false; /* refresh now */
    }
  }
}

static int run_live(bt_cli_t *cli, uint64_t interval_ms) {
  quit_requested = 0;
  resized = 0;
  term_enter();
  bool keys_open = term.termios_set;
  sbuf_t text = {0}, screen = {0};
  uint64_t last_ms = 0, last_completed = 0;
  bool have_last = false;
  int rc = BT_CLI_EXIT_OK;
  while (!quit_requested) {
    snapshot_t s;
    rc = snapshot_fetch(cli, &s);
    if (rc != BT_CLI_EXIT_OK) {
      if (quit_requested)
        rc = BT_CLI_EXIT_OK; /* the request was cut short by our own quit */
      break;
    }
    uint64_t now_ms = bt_mono_ms();
    uint64_t completed = s.stats->stats->completed;
    double rate = -1.0;
    if (have_last && now_ms > last_ms)
      rate = completed >= last_completed
                 ? (double)(completed - last_completed) * 1000.0 /
                       (double)(now_ms - last_ms)
                 : 0.0;
    last_ms = now_ms;
    last_completed = completed;
    have_last = true;

    text.n = 0;
    screen.n = 0;
    frame_render(&s, bt_wall_ms(), rate, &text);
    snapshot_free(&s);
    int cols, rows;
    resized = 0;
    term_size(&cols, &rows);
    frame_fit(text.s, cols, rows, &screen);
    write_all(STDOUT_FILENO, screen.s, screen.n);
    if (wait_input(now_ms + interval_ms, &keys_open))
      break;
  }
  term_restore();
  /* The error went to the alternate screen, which is gone now: say it again
   * where it stays. A redirected stderr kept the first copy. */
  if (rc != BT_CLI_EXIT_OK && isatty(STDERR_FILENO))
    fprintf(stderr, "batonctl: %s\n", bt_cli_last_error());
  free(text.s);
  free(screen.s);
  return rc;
}

int bt_cli_cmd_top(bt_cli_t *cli, const bt_cli_args_t *args) {
  if (cli->json)
    return bt_cli_usage_error(args->cmd,
                              "top has no --json output; use stats, vendor list "
                              "and handoffs with --json");
  uint64_t interval_ms = DEFAULT_INTERVAL_MS;
  const char *iv = bt_cli_arg(args, "interval");
  if (iv != NULL &&
      (bt_parse_duration(iv, &interval_ms) != 0 || interval_ms < MIN_INTERVAL_MS ||
       interval_ms > 3600u * 1000u))
    return bt_cli_usage_error(args->cmd,
                              "bad --interval \"%s\": expected a duration from "
                              "200ms to 1h",
                              iv);
  bool once = bt_cli_arg(args, "once") != NULL;
  if (!once && isatty(STDOUT_FILENO))
    return run_live(cli, interval_ms);

  snapshot_t s;
  int rc = snapshot_fetch(cli, &s);
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  sbuf_t text = {0};
  frame_render(&s, bt_wall_ms(), -1.0, &text);
  snapshot_free(&s);
  fputs(text.s, stdout);
  free(text.s);
  return BT_CLI_EXIT_OK;
}

/*
 * bt_nnsend: speaks nanomsg for the integration tests, which are Python (stdlib
 * only) and cannot open an SP socket themselves. It owns nothing of Baton's: it
 * is a plain NN_REQ client and must never learn the protocol — the tests build
 * and read the protobuf bytes.
 *
 *   bt_nnsend ENDPOINT (--hex HEX | --file PATH | --zeros N) [--timeout MS] [--rcvmax N]
 *       Opens an NN_REQ socket, connects, sends the bytes as one message, waits
 *       for one reply and prints it as hex on stdout (one line). Exit 0 with a
 *       reply, 3 with "no reply" on stdout when none came within the timeout.
 *
 *   bt_nnsend ENDPOINT --flood N [--parallel K] [--timeout MS]
 *       Opens N REQ sockets, K at a time; each connects, waits until nanomsg
 *       reports the connection established (SP handshake done) or the timeout,
 *       then closes. Prints "flood opened=N established=E". Exit 0.
 *
 * Exit status: 0 done, 2 usage error, 3 no reply, 4 nanomsg error.
 */
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2
#define EXIT_NOREPLY 3
#define EXIT_NN 4

static void usage(void) {
  fputs("usage: bt_nnsend ENDPOINT (--hex HEX | --file PATH | --zeros N) "
        "[--timeout MS] [--rcvmax N]\n"
        "       bt_nnsend ENDPOINT --flood N [--parallel K] [--timeout MS]\n",
        stderr);
  exit(EXIT_USAGE);
}

static int nn_fail(const char *what) {
  fprintf(stderr, "bt_nnsend: %s: %s\n", what, nn_strerror(nn_errno()));
  return EXIT_NN;
}

static long parse_num(const char *s, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || end == s || v < 0) {
    fprintf(stderr, "bt_nnsend: bad %s \"%s\"\n", what, s);
    exit(EXIT_USAGE);
  }
  return v;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Returns a malloc'd buffer of the decoded hex (empty string: zero bytes). */
static uint8_t *from_hex(const char *hex, size_t *len) {
  size_t n = strlen(hex);
  if (n % 2 != 0) {
    fputs("bt_nnsend: --hex needs an even number of digits\n", stderr);
    exit(EXIT_USAGE);
  }
  uint8_t *b = malloc(n / 2 + 1);
  if (b == NULL)
    abort();
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      fputs("bt_nnsend: --hex holds a non-hex digit\n", stderr);
      exit(EXIT_USAGE);
    }
    b[i] = (uint8_t)(hi << 4 | lo);
  }
  *len = n / 2;
  return b;
}

static uint8_t *from_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "bt_nnsend: cannot open %s: %s\n", path, strerror(errno));
    exit(EXIT_USAGE);
  }
  size_t cap = 65536, n = 0;
  uint8_t *b = malloc(cap);
  if (b == NULL)
    abort();
  for (;;) {
    if (n == cap) {
      cap *= 2;
      b = realloc(b, cap);
      if (b == NULL)
        abort();
    }
    size_t got = fread(b + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  *len = n;
  return b;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One request, one reply. */
static int send_one(const char *endpoint, const uint8_t *msg, size_t len, int timeout,
                    int rcvmax) {
  int s = nn_socket(AF_SP, NN_REQ);
  if (s < 0)
    return nn_fail("nn_socket");
  /* No resend within our wait: one request is what the test means to send. */
  int resend = timeout + 60000;
  nn_setsockopt(s, NN_REQ, NN_REQ_RESEND_IVL, &resend, sizeof resend);
  nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof timeout);
  nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout, sizeof timeout);
  if (rcvmax != 0)
    nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &rcvmax, sizeof rcvmax);
  int linger = 0;
  nn_setsockopt(s, NN_SOL_SOCKET, NN_LINGER, &linger, sizeof linger);
  if (nn_connect(s, endpoint) < 0) {
    int rc = nn_fail("nn_connect");
    nn_close(s);
    return rc;
  }
  if (nn_send(s, len ? msg : (const void *)"", len, 0) < 0) {
    int e = nn_errno();
    nn_close(s);
    if (e == ETIMEDOUT || e == EAGAIN) {
      puts("no reply");
      return EXIT_NOREPLY;
    }
    fprintf(stderr, "bt_nnsend: nn_send: %s\n", nn_strerror(e));
    return EXIT_NN;
  }
  void *buf = NULL;
  int n = nn_recv(s, &buf, NN_MSG, 0);
  if (n < 0) {
    int e = nn_errno();
    nn_close(s);
    if (e == ETIMEDOUT || e == EAGAIN) {
      puts("no reply");
      return EXIT_NOREPLY;
    }
    fprintf(stderr, "bt_nnsend: nn_recv: %s\n", nn_strerror(e));
    return EXIT_NN;
  }
  for (int i = 0; i < n; i++)
    printf("%02x", ((const uint8_t *)buf)[i]);
  putchar('\n');
  nn_freemsg(buf);
  nn_close(s);
  return 0;
}

/* Many connections, opened and dropped. */
static int flood(const char *endpoint, long total, long parallel, int timeout) {
  int *socks = malloc((size_t)parallel * sizeof *socks);
  if (socks == NULL)
    abort();
  long opened = 0, established = 0;
  int linger = 0;
  while (opened < total) {
    long k = total - opened < parallel ? total - opened : parallel;
    for (long i = 0; i < k; i++) {
      socks[i] = nn_socket(AF_SP, NN_REQ);
      if (socks[i] < 0)
        return nn_fail("nn_socket");
      nn_setsockopt(socks[i], NN_SOL_SOCKET, NN_LINGER, &linger, sizeof linger);
      if (nn_connect(socks[i], endpoint) < 0)
        return nn_fail("nn_connect");
    }
    /* Wait until every socket of this round finished its SP handshake (or
     * the timeout): only then is it a connection the broker has seen. */
    double deadline = now_ms() + timeout;
    long done = 0;
    for (;;) {
      done = 0;
      for (long i = 0; i < k; i++)
        done += nn_get_statistic(socks[i], NN_STAT_ESTABLISHED_CONNECTIONS) > 0;
      if (done == k || now_ms() >= deadline)
        break;
      sleep_ms(2);
    }
    established += done;
    for (long i = 0; i < k; i++)
      nn_close(socks[i]);
    opened += k;
  }
  free(socks);
  printf("flood opened=%ld established=%ld\n", opened, established);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3)
    usage();
  const char *endpoint = argv[1];
  uint8_t *msg = NULL;
  size_t len = 0;
  int have_msg = 0;
  long timeout = 2000, rcvmax = 0, flood_n = -1, parallel = 50;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (strcmp(a, "--hex") == 0) {
      msg = from_hex(v, &len);
      have_msg++;
    } else if (strcmp(a, "--file") == 0) {
      msg = from_file(v, &len);
      have_msg++;
    } else if (strcmp(a, "--zeros") == 0) {
      len = (size_t)parse_num(v, "--zeros");
      msg = calloc(len + 1, 1);
      if (msg == NULL)
        abort();
      have_msg++;
    } else if (strcmp(a, "--timeout") == 0) {
      timeout = parse_num(v, "--timeout");
    } else if (strcmp(a, "--rcvmax") == 0) {
      rcvmax = parse_num(v, "--rcvmax");
    } else if (strcmp(a, "--flood") == 0) {
      flood_n = parse_num(v, "--flood");
    } else if (strcmp(a, "--parallel") == 0) {
      parallel = parse_num(v, "--parallel");
      if (parallel < 1)
        usage();
    } else {
      usage();
    }
  }
  if (timeout > 3600000)
    usage();
  int rc;
  if (flood_n >= 0) {
    if (have_msg)
      usage();
    rc = flood(endpoint, flood_n, parallel, (int)timeout);
  } else {
    if (have_msg != 1)
      usage();
    rc = send_one(endpoint, msg, len, (int)timeout, (int)rcvmax);
  }
  free(msg);
  nn_term();
  return rc;
}

/*
 * The control-socket client: connect (Unix or TCP), write one frame, read one
 * frame, unpack and check the reply. Blocking I/O with poll() timeouts; batonctl
 * runs one request at a time, so there is nothing to multiplex.
 *
 * Owns the socket of a bt_cli_conn_t. Never prints to stdout: what a reply means
 * is the commands' business.
 */
#include "client.h"

#include "bt_err.h"
#include "bt_frame.h"
#include "cli.h"
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A request larger than this is refused before sending. The broker's own limit
 * (ctl_max_frame_bytes, 16 MiB by default) is usually lower and gives a clearer
 * error; this only keeps batonctl from packing absurd sizes. */
#define MAX_REQUEST_BYTES (64u * 1024u * 1024u)

/* Splits "tcp://HOST:PORT" or "tcp://[V6]:PORT" into host and port. */
static int split_tcp(const char *endpoint, char *host, size_t hostlen,
                     char *port, size_t portlen) {
  const char *hp = endpoint + 6;
  const char *colon;
  const char *h = hp;
  size_t hl;
  if (*hp == '[') {
    const char *close_br = strchr(hp, ']');
    if (close_br == NULL || close_br[1] != ':')
      return -1;
    h = hp + 1;
    hl = (size_t)(close_br - h);
    colon = close_br + 1;
  } else {
    colon = strrchr(hp, ':');
    if (colon == NULL)
      return -1;
    hl = (size_t)(colon - hp);
  }
  size_t pl = strlen(colon + 1);
  if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen)
    return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  memcpy(port, colon + 1, pl + 1);
  return 0;
}

static const char *unix_path(const char *endpoint) {
  return strncmp(endpoint, "unix://", 7) == 0 ? endpoint + 7 : endpoint;
}

/* Copies the endpoint at p (up to the next comma) into buf; *fits is false
 * when it is too long for it. Returns where the next one starts, or NULL
 * after the last. */
static const char *take_endpoint(const char *p, char *buf, size_t len, bool *fits) {
  size_t l = strcspn(p, ",");
  *fits = l < len;
  if (*fits) {
    memcpy(buf, p, l);
    buf[l] = '\0';
  }
  return p[l] == '\0' ? NULL : p + l + 1;
}

static int endpoint_check_one(const char *endpoint, char *err, size_t errlen);

int bt_cli_endpoint_check(const char *endpoints, char *err, size_t errlen) {
  for (const char *p = endpoints; p != NULL;) {
    char one[512];
    bool fits;
    const char *at = p;
    p = take_endpoint(p, one, sizeof one, &fits);
    if (!fits) {
      snprintf(err, errlen, "bad control endpoint \"%.*s...\": too long", 40, at);
      return BT_EINVAL;
    }
    int rv = endpoint_check_one(one, err, errlen);
    if (rv != 0)
      return rv;
  }
  return 0;
}

static int endpoint_check_one(const char *endpoint, char *err, size_t errlen) {
  if (strncmp(endpoint, "tcp://", 6) == 0) {
    char host[256], port[16];
    if (split_tcp(endpoint, host, sizeof host, port, sizeof port) != 0) {
      snprintf(err, errlen, "bad control endpoint \"%s\": want tcp://HOST:PORT",
               endpoint);
      return BT_EINVAL;
    }
    return 0;
  }
  const char *path = unix_path(endpoint);
  struct sockaddr_un sa;
  if (*path == '\0' || strlen(path) >= sizeof sa.sun_path) {
    snprintf(err, errlen,
             "bad control endpoint \"%s\": a socket path must be 1-%zu bytes",
             endpoint, sizeof sa.sun_path - 1);
    return BT_EINVAL;
  }
  return 0;
}

void bt_cli_conn_init(bt_cli_conn_t *c, const char *endpoints,
                      const char *admin_token, int timeout_ms) {
  memset(c, 0, sizeof *c);
  c->endpoints = endpoints;
  c->endpoint = endpoints;
  c->admin_token = admin_token;
  c->timeout_ms = timeout_ms > 0 ? timeout_ms : BT_CLI_DEFAULT_TIMEOUT_MS;
  c->fd = -1;
  c->tcp = strncmp(endpoints, "tcp://", 6) == 0;
}

void bt_cli_conn_close(bt_cli_conn_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

/* A failed connect: said at once with one endpoint; with several, kept until
 * every one has failed (one that answers makes the others' failures moot). */
__attribute__((format(printf, 2, 3))) static void conn_errorf(bt_cli_conn_t *c,
                                                              const char *fmt, ...) {
  char line[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (strchr(c->endpoints, ',') == NULL) {
    bt_cli_errorf("%s", line);
    return;
  }
  size_t used = strlen(c->connect_errors);
  snprintf(c->connect_errors + used, sizeof c->connect_errors - used, "%s%s",
           used ? "\n" : "", line);
}

static int unreachable(bt_cli_conn_t *c, int err) {
  conn_errorf(c, "cannot reach the broker at %s: %s (is batond running?)", c->endpoint,
              strerror(err));
  return BT_CLI_EXIT_UNREACHABLE;
}

static int connect_unix(bt_cli_conn_t *c) {
  const char *path = unix_path(c->endpoint);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (*path == '\0' || strlen(path) >= sizeof sa.sun_path) {
    conn_errorf(c, "control socket path is empty or too long: %s", c->endpoint);
    return BT_CLI_EXIT_UNREACHABLE;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return unreachable(c, errno);
  /* A local connect either succeeds or fails at once (ECONNREFUSED, ENOENT);
   * only a full listen backlog makes it wait, which the I/O timeouts cover. */
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int err = errno;
    close(fd);
    return unreachable(c, err);
  }
  c->fd = fd;
  return BT_CLI_EXIT_OK;
}

/* Non-blocking connect bounded by the timeout: an unroutable host must not take
 * the kernel's two minutes. */
static int connect_with_timeout(int fd, const struct sockaddr *sa, socklen_t len,
                                int timeout_ms) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return errno;
  int err = 0;
  if (connect(fd, sa, len) != 0) {
    if (errno != EINPROGRESS)
      return errno;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    do
      n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      return errno;
    if (n == 0)
      return ETIMEDOUT;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
      return errno;
    if (err != 0)
      return err;
  }
  if (fcntl(fd, F_SETFL, fl) < 0)
    return errno;
  return 0;
}

static int connect_tcp(bt_cli_conn_t *c) {
  char host[256], port[16];
  if (split_tcp(c->endpoint, host, sizeof host, port, sizeof port) != 0) {
    conn_errorf(c, "bad control endpoint %s (want tcp://HOST:PORT)", c->endpoint);
    return BT_CLI_EXIT_UNREACHABLE;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0) {
    conn_errorf(c, "cannot reach the broker at %s: %s", c->endpoint, gai_strerror(gai));
    return BT_CLI_EXIT_UNREACHABLE;
  }
  int err = ECONNREFUSED;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    err = connect_with_timeout(fd, ai->ai_addr, ai->ai_addrlen, c->timeout_ms);
    if (err == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      c->fd = fd;
      break;
    }
    close(fd);
  }
  freeaddrinfo(res);
  if (c->fd < 0)
    return unreachable(c, err);
  return BT_CLI_EXIT_OK;
}

/* Connects to the first of the endpoints that accepts (a standby broker binds
 * nothing, so only the active one does). */
static int connect_any(bt_cli_conn_t *c) {
  int rc = BT_CLI_EXIT_UNREACHABLE;
  c->connect_errors[0] = '\0';
  for (const char *p = c->endpoints; p != NULL;) {
    bool fits;
    p = take_endpoint(p, c->endpoint_buf, sizeof c->endpoint_buf, &fits);
    if (!fits)
      continue; /* bt_cli_endpoint_check refused it already */
    c->endpoint = c->endpoint_buf;
    c->tcp = strncmp(c->endpoint, "tcp://", 6) == 0;
    rc = c->tcp ? connect_tcp(c) : connect_unix(c);
    if (rc == BT_CLI_EXIT_OK)
      return rc;
  }
  /* Every one failed: say why for each, one line apiece. */
  for (char *line = c->connect_errors, *nl; *line != '\0'; line = nl + 1) {
    nl = strchr(line, '\n');
    if (nl != NULL)
      *nl = '\0';
    bt_cli_errorf("%s", line);
    if (nl == NULL)
      break;
  }
  return rc;
}

/* Waits until fd is ready for events. Returns 0, ETIMEDOUT or an errno. */
static int wait_fd(int fd, short events, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = events};
  for (;;) {
    int n = poll(&p, 1, timeout_ms);
    if (n > 0)
      return 0;
    if (n == 0)
      return ETIMEDOUT;
    if (errno != EINTR)
      return errno;
  }
}

static int lost(bt_cli_conn_t *c, int err) {
  if (err == ETIMEDOUT)
    bt_cli_errorf("no answer from the broker at %s within %d ms", c->endpoint,
                  c->timeout_ms);
  else
    bt_cli_errorf("lost the connection to the broker at %s: %s", c->endpoint,
                  strerror(err));
  bt_cli_conn_close(c);
  return BT_CLI_EXIT_UNREACHABLE;
}

static int write_all(bt_cli_conn_t *c, const uint8_t *buf, size_t len) {
  while (len > 0) {
    int err = wait_fd(c->fd, POLLOUT, c->timeout_ms);
    if (err != 0)
      return lost(c, err);
    /* MSG_NOSIGNAL: a broker that went away is an exit status, not a SIGPIPE. */
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return lost(c, errno);
    }
    buf += n;
    len -= (size_t)n;
  }
  return BT_CLI_EXIT_OK;
}

/* Reads exactly len bytes. started says whether part of the reply has arrived,
 * which only changes the message on EOF. */
static int read_all(bt_cli_conn_t *c, uint8_t *buf, size_t len, bool started) {
  while (len > 0) {
    int err = wait_fd(c->fd, POLLIN, c->timeout_ms);
    if (err != 0)
      return lost(c, err);
    ssize_t n = read(c->fd, buf, len);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return lost(c, errno);
    }
    if (n == 0) {
      bt_cli_errorf("the broker at %s closed the connection %s", c->endpoint,
                    started ? "in the middle of a reply" : "before replying");
      bt_cli_conn_close(c);
      return BT_CLI_EXIT_UNREACHABLE;
    }
    buf += n;
    len -= (size_t)n;
    started = true;
  }
  return BT_CLI_EXIT_OK;
}

int bt_cli_conn_roundtrip(bt_cli_conn_t *c, Baton__CtlRequest *req,
                          Baton__CtlReply **out) {
  int rc;
  *out = NULL;
  if (c->fd < 0 && (rc = connect_any(c)) != BT_CLI_EXIT_OK)
    return rc;

  req->has_version = 1;
  req->version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  /* The token authenticates remote admins; a local socket is guarded by file
   * permissions and SO_PEERCRED, so the token never leaves the host for it. */
  req->admin_token = c->tcp ? (char *)c->admin_token : NULL;

  size_t body = baton__ctl_request__get_packed_size(req);
  if (body > MAX_REQUEST_BYTES) {
    bt_cli_errorf("request of %zu bytes exceeds the %u byte limit", body,
                  MAX_REQUEST_BYTES);
    return BT_CLI_EXIT_FAIL;
  }
  uint8_t *frame = malloc(BT_FRAME_HEADER + body);
  if (frame == NULL)
    abort();
  bt_frame_put_header(frame, (uint32_t)body);
  baton__ctl_request__pack(req, frame + BT_FRAME_HEADER);
  rc = write_all(c, frame, BT_FRAME_HEADER + body);
  free(frame);
  if (rc != BT_CLI_EXIT_OK)
    return rc;

  uint8_t hdr[BT_FRAME_HEADER];
  if ((rc = read_all(c, hdr, sizeof hdr, false)) != BT_CLI_EXIT_OK)
    return rc;
  uint32_t len = bt_frame_get_length(hdr);
  if (len > BT_CLI_MAX_REPLY_BYTES) {
    bt_cli_errorf("reply of %u bytes from the broker at %s exceeds the %u "
                  "byte limit",
                  len, c->endpoint, BT_CLI_MAX_REPLY_BYTES);
    bt_cli_conn_close(c);
    return BT_CLI_EXIT_UNREACHABLE;
  }
  uint8_t *buf = malloc(len + 1u);
  if (buf == NULL)
    abort();
  if ((rc = read_all(c, buf, len, true)) != BT_CLI_EXIT_OK) {
    free(buf);
    return rc;
  }
  Baton__CtlReply *reply = baton__ctl_reply__unpack(NULL, len, buf);
  free(buf);
  if (reply == NULL) {
    bt_cli_errorf("unreadable reply from the broker at %s", c->endpoint);
    bt_cli_conn_close(c);
    return BT_CLI_EXIT_UNREACHABLE;
  }
  if (!reply->has_version ||
      reply->version != BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
    if (reply->has_version)
      bt_cli_errorf("the broker at %s speaks control protocol version %u, "
                    "batonctl speaks version %d",
                    c->endpoint, reply->version,
                    BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
    else
      bt_cli_errorf("reply without a protocol version from %s", c->endpoint);
    baton__ctl_reply__free_unpacked(reply, NULL);
    bt_cli_conn_close(c);
    return BT_CLI_EXIT_UNREACHABLE;
  }
  *out = reply;
  return BT_CLI_EXIT_OK;
}

const char *bt_cli_status_text(Baton__CtlStatus status) {
  switch (status) {
  case BATON__CTL_STATUS__CTL_OK:
    return "ok";
  case BATON__CTL_STATUS__CTL_REJECTED:
    return "rejected";
  case BATON__CTL_STATUS__CTL_NOT_FOUND:
    return "not found";
  case BATON__CTL_STATUS__CTL_BAD_REQUEST:
    return "bad request";
  case BATON__CTL_STATUS__CTL_UNAVAILABLE:
    return "broker unavailable, retry later";
  case BATON__CTL_STATUS__CTL_UNAUTHORIZED:
    return "unauthorized (set --admin-token or BATON_ADMIN_TOKEN)";
  default:
    return "failed";
  }
}

int bt_cli_conn_call(bt_cli_conn_t *c, Baton__CtlRequest *req,
                     Baton__CtlReply__BodyCase expect, const char *what,
                     Baton__CtlReply **out) {
  Baton__CtlReply *reply;
  int rc = bt_cli_conn_roundtrip(c, req, &reply);
  *out = NULL;
  if (rc != BT_CLI_EXIT_OK)
    return rc;
  /* proto2: an absent status is the enum's default, CTL_OK. */
  Baton__CtlStatus st =
      reply->has_status ? reply->status : BATON__CTL_STATUS__CTL_OK;
  if (st != BATON__CTL_STATUS__CTL_OK) {
    /* A tcp:// broker closes the connection after refusing a token; say where
     * the token comes from (the Unix socket's refusals are about the user). */
    if (st == BATON__CTL_STATUS__CTL_UNAUTHORIZED && c->tcp && reply->error != NULL &&
        reply->error[0] != '\0')
      bt_cli_errorf("%s (set --admin-token or BATON_ADMIN_TOKEN)", reply->error);
    else if (reply->error != NULL && reply->error[0] != '\0')
      bt_cli_errorf("%s", reply->error);
    else if (what != NULL)
      bt_cli_errorf("%s: %s", what, bt_cli_status_text(st));
    else
      bt_cli_errorf("%s", bt_cli_status_text(st));
    if (st == BATON__CTL_STATUS__CTL_UNAUTHORIZED)
      bt_cli_conn_close(c); /* the broker closes its end after a refusal */
    baton__ctl_reply__free_unpacked(reply, NULL);
    return BT_CLI_EXIT_FAIL;
  }
  if (reply->body_case != expect) {
    bt_cli_errorf("unexpected reply from the broker at %s (body %d, "
                  "expected %d)",
                  c->endpoint, (int)reply->body_case, (int)expect);
    baton__ctl_reply__free_unpacked(reply, NULL);
    bt_cli_conn_close(c);
    return BT_CLI_EXIT_UNREACHABLE;
  }
  *out = reply;
  return BT_CLI_EXIT_OK;
}

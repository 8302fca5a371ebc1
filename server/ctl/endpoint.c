/*
 * The control endpoint's listening side, one of two kinds:
 *   - a Unix socket (the default, DATA_DIR/baton.sock): created 0600 (umask
 *     around the bind, so there is no window where it is open to others),
 *     a stale file of a dead broker removed first, the peer's uid checked on
 *     every connection;
 *   - tcp://HOST:PORT, a remote endpoint: a numeric address, and every request
 *     must carry the admin token (auth.c), since anyone who can reach the port
 *     may connect.
 *
 * Owns the endpoint's parsing, bind, listen and peer identification. Everything
 * after accept (framing, limits, answers, closing) is the same for both kinds
 * and lives in listener.c. Never blocks once the loop runs: the one blocking
 * connect (the stale-socket check) happens before it.
 */
#include "ctl_int.h"

#include "bt_err.h"
#include "bt_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Parses "HOST:PORT" or "[V6]:PORT" (what follows "tcp://") into sa. HOST must
 * be numeric: resolving a name would block, and a name that resolves to
 * several addresses leaves which one is served to chance. */
static int parse_tcp(const char *hp, struct sockaddr_storage *sa) {
  char host[64];
  const char *port;
  bool v6 = hp[0] == '[';
  if (v6) {
    const char *close_br = strchr(hp, ']');
    if (close_br == NULL || close_br[1] != ':' || (size_t)(close_br - hp - 1) >= sizeof host)
      return BT_EINVAL;
    memcpy(host, hp + 1, (size_t)(close_br - hp - 1));
    host[close_br - hp - 1] = '\0';
    port = close_br + 2;
  } else {
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || (size_t)(colon - hp) >= sizeof host)
      return BT_EINVAL;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    port = colon + 1;
  }
  /* 1-65535, digits only: port 0 would pick a port no client knows. */
  long p = 0;
  if (*port == '\0' || strlen(port) > 5)
    return BT_EINVAL;
  for (const char *d = port; *d; d++) {
    if (*d < '0' || *d > '9')
      return BT_EINVAL;
    p = p * 10 + (*d - '0');
  }
  if (p < 1 || p > 65535 || host[0] == '\0')
    return BT_EINVAL;
  memset(sa, 0, sizeof *sa);
  if (v6)
    return uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)sa) == 0 ? 0 : BT_EINVAL;
  return uv_ip4_addr(host, (int)p, (struct sockaddr_in *)sa) == 0 ? 0 : BT_EINVAL;
}

/* Removes a socket file left by a broker that died, but never one a live broker
 * is serving. Blocking connect: this runs once, before the loop. */
static int clear_stale_socket(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return 0;
  if (!S_ISSOCK(st.st_mode)) {
    bt_log_error("control socket path exists and is not a socket", "path=%s", BT_Q(path));
    return BT_EINVAL;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  int e = errno;
  close(fd);
  if (rc == 0) {
    bt_log_error("another broker is serving this control socket", "path=%s", BT_Q(path));
    return BT_ECONFLICT;
  }
  if (e == ECONNREFUSED || e == ENOENT) {
    bt_log_info("removing a stale control socket", "path=%s", BT_Q(path));
    unlink(path);
    return 0;
  }
  bt_log_error("could not check the control socket", "path=%s error=%s", BT_Q(path),
               strerror(e));
  return -e;
}

static int listen_unix(bt_ctl_t *ctl, uv_connection_cb cb) {
  const char *path = ctl->path;
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    bt_log_error("control socket path too long", "path=%s max=%zu", BT_Q(path),
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return BT_EINVAL;
  }
  int rv = clear_stale_socket(path);
  if (rv != 0)
    return rv;
  mode_t old = umask(0177); /* the socket is born 0600 */
  rv = uv_pipe_bind(&ctl->listener.pipe, path);
  umask(old);
  if (rv == 0)
    rv = uv_listen(&ctl->listener.stream, 128, cb);
  if (rv != 0)
    bt_log_error("could not listen on the control socket", "path=%s error=%s", BT_Q(path),
                 uv_strerror(rv));
  return rv;
}

static int listen_tcp(bt_ctl_t *ctl, uv_connection_cb cb) {
  struct sockaddr_storage sa;
  if (parse_tcp(ctl->path + 6, &sa) != 0) {
    bt_log_error("bad control endpoint: want tcp://HOST:PORT with a numeric HOST "
                 "([V6] for IPv6) and a port 1-65535",
                 "control=%s", BT_Q(ctl->path));
    return BT_ECONFIG;
  }
  int rv = uv_tcp_bind(&ctl->listener.tcp, (const struct sockaddr *)&sa, 0);
  if (rv == 0)
    rv = uv_listen(&ctl->listener.stream, 128, cb);
  if (rv != 0)
    bt_log_error("could not listen on the control endpoint", "control=%s error=%s",
                 BT_Q(ctl->path), uv_strerror(rv));
  return rv;
}

int bt_ctl__endpoint_listen(bt_ctl_t *ctl, const char *endpoint, uv_connection_cb cb) {
  ctl->tcp = strncmp(endpoint, "tcp://", 6) == 0;
  if (!ctl->tcp && strncmp(endpoint, "unix://", 7) == 0)
    endpoint += 7; /* the form batonctl accepts too */
  ctl->path = strdup(endpoint);
  if (ctl->path == NULL)
    abort();
  if (ctl->tcp)
    uv_tcp_init(ctl->loop, &ctl->listener.tcp);
  else
    uv_pipe_init(ctl->loop, &ctl->listener.pipe, 0);
  ctl->listener.handle.data = ctl;
  /* The token is checked before binding: a tcp:// endpoint without one must
   * never be open, not even for a moment. */
  int rv = bt_ctl__auth_init(&ctl->auth, ctl->tcp, ctl->opts.admin_token, ctl->path);
  if (rv != 0)
    return rv;
  return ctl->tcp ? listen_tcp(ctl, cb) : listen_unix(ctl, cb);
}

void bt_ctl__endpoint_conn_init(bt_ctl_t *ctl, bt_ctl_conn_t *c) {
  if (ctl->tcp)
    uv_tcp_init(ctl->loop, &c->h.tcp);
  else
    uv_pipe_init(ctl->loop, &c->h.pipe, 0);
  c->h.handle.data = c;
}

/* "ADDR:PORT" or "[ADDR]:PORT" of a TCP peer. */
static void tcp_peer(bt_ctl_conn_t *c) {
  struct sockaddr_storage sa;
  memset(&sa, 0, sizeof sa);
  int len = sizeof sa;
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&sa, &len) == 0) {
    if (sa.ss_family == AF_INET6) {
      const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&sa;
      uv_ip6_name(s6, ip, sizeof ip);
      port = ntohs(s6->sin6_port);
    } else if (sa.ss_family == AF_INET) {
      const struct sockaddr_in *s4 = (const struct sockaddr_in *)&sa;
      uv_ip4_name(s4, ip, sizeof ip);
      port = ntohs(s4->sin_port);
    }
  }
  if (sa.ss_family == AF_INET6)
    snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
  else
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
  snprintf(c->who, sizeof c->who, "peer=%s", c->peer);
}

int bt_ctl__endpoint_identify(bt_ctl_t *ctl, bt_ctl_conn_t *c, const char **why) {
  *why = NULL;
  if (ctl->tcp) {
    /* Anyone who reaches the port may connect; the token decides per request. */
    tcp_peer(c);
    uv_tcp_nodelay(&c->h.tcp, 1);
    return 0;
  }
  snprintf(c->who, sizeof c->who, "uid=?");
  /* Only root and the broker's own user may drive it. */
  uv_os_fd_t fd;
  struct ucred cred;
  socklen_t cl = sizeof cred;
  if (uv_fileno(&c->h.handle, &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
    *why = "could not identify the peer";
    return BT_EAUTH;
  }
  c->uid = cred.uid;
  snprintf(c->who, sizeof c->who, "uid=%u", cred.uid);
  if (cred.uid != 0 && cred.uid != geteuid()) {
    char detail[96];
    snprintf(detail, sizeof detail, "user %u may not use this control socket", cred.uid);
    bt_log_warn("refused control connection", "uid=%u pid=%d", cred.uid, cred.pid);
    if (ctl->ops.rejected)
      ctl->ops.rejected(ctl->arg, "control.refused", detail);
    *why = "this user may not use the control socket";
    return BT_EAUTH;
  }
  return 0;
}

void bt_ctl__endpoint_unlink(bt_ctl_t *ctl) {
  if (!ctl->tcp && ctl->path != NULL)
    unlink(ctl->path);
}

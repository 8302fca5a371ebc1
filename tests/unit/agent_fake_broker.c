/* The fake broker of agent tests; see agent_fake_broker.h. */
#include "agent_fake_broker.h"

#include "bt_auth.h"
#include "bt_err.h"
#include "bt_seal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fb {
  int sock;
  char endpoint[64];
  fb_hdr_t cur;
  bt_seal_t seal;   /* session keys once a handshake succeeded */
  int last_open;    /* see fb_last_open */
  int tamper;       /* flip a byte of the next sealed reply */
  int force_clear;  /* the next reply goes in clear */
  uint8_t *last;    /* the last reply sent */
  size_t last_len;
};

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(s, (struct sockaddr *)&sa, &len) != 0) {
    if (s >= 0)
      close(s);
    return -1;
  }
  close(s);
  return ntohs(sa.sin_port);
}

fb_t *fb_new(void) {
  fb_t *fb = calloc(1, sizeof *fb);
  fb->sock = nn_socket(AF_SP_RAW, NN_REP);
  if (fb->sock < 0) {
    free(fb);
    return NULL;
  }
  for (int i = 0; i < 20; i++) {
    int port = free_port();
    if (port <= 0)
      continue;
    snprintf(fb->endpoint, sizeof fb->endpoint, "tcp://127.0.0.1:%d", port);
    if (nn_bind(fb->sock, fb->endpoint) >= 0)
      return fb;
  }
  nn_close(fb->sock);
  free(fb);
  return NULL;
}

void fb_free(fb_t *fb) {
  if (fb == NULL)
    return;
  nn_close(fb->sock);
  bt_seal_wipe(&fb->seal);
  free(fb->last);
  free(fb);
}

const char *fb_endpoint(const fb_t *fb) { return fb->endpoint; }

void fb_req_free(Baton__AgentRequest *req) {
  if (req != NULL)
    baton__agent_request__free_unpacked(req, NULL);
}

Baton__AgentRequest *fb_recv(fb_t *fb, int timeout_ms) {
  nn_setsockopt(fb->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
  void *body = NULL, *ctrl = NULL;
  struct nn_iovec iov = {&body, NN_MSG};
  struct nn_msghdr hdr;
  memset(&hdr, 0, sizeof hdr);
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  hdr.msg_control = &ctrl;
  hdr.msg_controllen = NN_MSG;
  int n = nn_recvmsg(fb->sock, &hdr, 0);
  if (n < 0)
    return NULL;
  fb->cur.len = 0;
  for (struct nn_cmsghdr *c = NN_CMSG_FIRSTHDR(&hdr); c != NULL;
       c = NN_CMSG_NXTHDR(&hdr, c)) {
    if (c->cmsg_level == PROTO_SP && c->cmsg_type == SP_HDR) {
      unsigned char *d = NN_CMSG_DATA(c);
      size_t sz;
      memcpy(&sz, d, sizeof sz);
      if (sz <= sizeof fb->cur.bytes) {
        memcpy(fb->cur.bytes, d + sizeof sz, sz);
        fb->cur.len = sz;
      }
      break;
    }
  }
  Baton__AgentRequest *req = baton__agent_request__unpack(NULL, (size_t)n, body);
  nn_freemsg(body);
  if (ctrl != NULL)
    nn_freemsg(ctrl);
  fb->cur.ctr = 0;
  fb->last_open = 1;
  if (req == NULL || req->body_case != BATON__AGENT_REQUEST__BODY_SEALED)
    return req;
  /* Sealed: open it as batond would and hand the script the inner request. */
  uint8_t *inner = NULL;
  size_t len = 0;
  uint64_t counter = req->sealed->has_counter ? req->sealed->counter : 0;
  fb->last_open = bt_seal_open_msg(&fb->seal, req->sealed, &inner, &len);
  baton__agent_request__free_unpacked(req, NULL);
  if (fb->last_open != 0 && fb->last_open != BT_SEAL_RESEND)
    return NULL;
  fb->cur.ctr = counter;
  req = baton__agent_request__unpack(NULL, len, inner);
  free(inner);
  return req;
}

int fb_last_open(const fb_t *fb) { return fb->last_open; }

void fb_tamper_next(fb_t *fb) { fb->tamper = 1; }

const uint8_t *fb_last_reply(const fb_t *fb, size_t *len) {
  *len = fb->last_len;
  return fb->last;
}

fb_hdr_t fb_current(const fb_t *fb) { return fb->cur; }

int fb_send_raw(fb_t *fb, const fb_hdr_t *h, const uint8_t *buf, size_t n) {
  /* The control buffer carries the SP header: [cmsghdr][size_t len][bytes]. */
  size_t space = NN_CMSG_SPACE(sizeof(size_t) + h->len);
  unsigned char *ctl = calloc(1, space);
  struct nn_cmsghdr *c = (struct nn_cmsghdr *)ctl;
  c->cmsg_len = NN_CMSG_LEN(sizeof(size_t) + h->len);
  c->cmsg_level = PROTO_SP;
  c->cmsg_type = SP_HDR;
  size_t len = h->len;
  memcpy(NN_CMSG_DATA(c), &len, sizeof len);
  memcpy(NN_CMSG_DATA(c) + sizeof len, h->bytes, h->len);
  struct nn_iovec iov = {(void *)buf, n};
  struct nn_msghdr hdr;
  memset(&hdr, 0, sizeof hdr);
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  hdr.msg_control = ctl;
  hdr.msg_controllen = space;
  int rv = nn_sendmsg(fb->sock, &hdr, 0);
  free(ctl);
  return rv < 0 ? -1 : 0;
}

int fb_reply_to(fb_t *fb, const fb_hdr_t *h, const Baton__AgentReply *r) {
  uint8_t *buf = NULL;
  size_t n = 0;
  if (bt_seal_ready(&fb->seal) && !fb->force_clear) {
    if (bt_seal_pack_reply(&fb->seal, h->ctr, r, SIZE_MAX, &buf, &n) != 0)
      return -1;
    if (fb->tamper && n > 0) {
      buf[n - 1] ^= 0x01; /* the box is the last field: its last byte */
      fb->tamper = 0;
    }
  } else {
    n = baton__agent_reply__get_packed_size(r);
    buf = malloc(n ? n : 1);
    baton__agent_reply__pack(r, buf);
  }
  fb->force_clear = 0;
  int rv = fb_send_raw(fb, h, buf, n);
  free(fb->last);
  fb->last = buf;
  fb->last_len = n;
  return rv;
}

int fb_reply_clear(fb_t *fb, const Baton__AgentReply *r) {
  fb->force_clear = 1;
  return fb_reply(fb, r);
}

int fb_reply(fb_t *fb, const Baton__AgentReply *r) {
  return fb_reply_to(fb, &fb->cur, r);
}

static void reply_init(Baton__AgentReply *r) {
  baton__agent_reply__init(r);
  r->has_version = 1;
  r->version = 1;
}

/* A Challenge with our kx key (secretbox mode). */
static int reply_challenge_kx(fb_t *fb, uint64_t session, const uint8_t nonce[32],
                              const uint8_t kx_pk[BT_SEAL_KX_BYTES]) {
  Baton__AgentReply r;
  Baton__Challenge ch = BATON__CHALLENGE__INIT;
  reply_init(&r);
  ch.has_session = ch.has_nonce = 1;
  ch.session = session;
  ch.nonce.data = (uint8_t *)nonce;
  ch.nonce.len = 32;
  ch.has_kx_public_key = ch.has_seal = 1;
  ch.kx_public_key.data = (uint8_t *)kx_pk;
  ch.kx_public_key.len = BT_SEAL_KX_BYTES;
  ch.seal = BATON__SEAL_MODE__SEAL_MODE_SECRETBOX;
  r.body_case = BATON__AGENT_REPLY__BODY_CHALLENGE;
  r.challenge = &ch;
  return fb_reply(fb, &r);
}

int fb_reply_challenge(fb_t *fb, uint64_t session, const uint8_t nonce[32]) {
  uint8_t pk[BT_SEAL_KX_BYTES], sk[BT_SEAL_KX_BYTES];
  bt_seal_kx_keypair(pk, sk);
  return reply_challenge_kx(fb, session, nonce, pk);
}

int fb_reply_welcome(fb_t *fb, uint64_t agent_id, const Baton__Work *work) {
  Baton__AgentReply r;
  Baton__Welcome w = BATON__WELCOME__INIT;
  reply_init(&r);
  w.has_agent_id = w.has_heartbeat_ms = w.has_lease_ms = w.has_poll_ms = 1;
  w.has_max_message_bytes = 1;
  w.agent_id = agent_id;
  w.heartbeat_ms = 200;
  w.lease_ms = 1000;
  w.poll_ms = 300;
  w.max_message_bytes = 1 << 20;
  w.work = (Baton__Work *)work;
  r.body_case = BATON__AGENT_REPLY__BODY_WELCOME;
  r.welcome = &w;
  return fb_reply(fb, &r);
}

int fb_reply_work(fb_t *fb, const Baton__Work *work) {
  Baton__AgentReply r;
  Baton__Work empty = BATON__WORK__INIT;
  reply_init(&r);
  r.body_case = BATON__AGENT_REPLY__BODY_WORK;
  r.work = work ? (Baton__Work *)work : &empty;
  return fb_reply(fb, &r);
}

int fb_reply_error(fb_t *fb, Baton__ErrorCode code, const char *message) {
  Baton__AgentReply r;
  Baton__Error e = BATON__ERROR__INIT;
  reply_init(&r);
  e.has_code = 1;
  e.code = code;
  e.message = (char *)message;
  r.body_case = BATON__AGENT_REPLY__BODY_ERROR;
  r.error = &e;
  return fb_reply(fb, &r);
}

Baton__AgentRequest *fb_expect(fb_t *fb, Baton__AgentRequest__BodyCase body,
                               int timeout_ms, int drop_others) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    Baton__AgentRequest *req = fb_recv(fb, 50);
    if (req == NULL)
      continue;
    if (req->body_case == body)
      return req;
    if (!drop_others)
      fb_reply_work(fb, NULL);
    fb_req_free(req);
  }
  return NULL;
}

Baton__AgentRequest *fb_handshake(fb_t *fb, const uint8_t pk[32], uint64_t session,
                                  const char *vendor, int timeout_ms,
                                  const char **why) {
  return fb_handshake_work(fb, pk, session, vendor, timeout_ms, NULL, why);
}

Baton__AgentRequest *fb_handshake_work(fb_t *fb, const uint8_t pk[32], uint64_t session,
                                       const char *vendor, int timeout_ms,
                                       const Baton__Work *welcome_work,
                                       const char **why) {
  uint8_t nonce[32];
  char name[300];
  Baton__AgentRequest *hello =
      fb_expect(fb, BATON__AGENT_REQUEST__BODY_HELLO, timeout_ms, 1);
  if (hello == NULL) {
    *why = "no hello";
    return NULL;
  }
  if (!hello->has_version || hello->version != 1 || hello->has_session ||
      hello->hello->vendor == NULL || strcmp(hello->hello->vendor, vendor) != 0 ||
      hello->hello->agent_name == NULL || hello->hello->n_capabilities == 0) {
    *why = "malformed hello";
    fb_req_free(hello);
    return NULL;
  }
  snprintf(name, sizeof name, "%s", hello->hello->agent_name);
  fb_req_free(hello);
  bt_auth_random(nonce, sizeof nonce);
  /* A new session: the old keys go, the Challenge is in clear. */
  bt_seal_wipe(&fb->seal);
  uint8_t kx_pk[BT_SEAL_KX_BYTES], kx_sk[BT_SEAL_KX_BYTES];
  bt_seal_kx_keypair(kx_pk, kx_sk);
  reply_challenge_kx(fb, session, nonce, kx_pk);
  Baton__AgentRequest *auth = fb_recv(fb, timeout_ms);
  if (auth == NULL || auth->body_case != BATON__AGENT_REQUEST__BODY_AUTH) {
    *why = "no auth after challenge";
    fb_req_free(auth);
    return NULL;
  }
  const uint8_t *agent_kx = auth->auth->has_kx_public_key &&
                                   auth->auth->kx_public_key.len == BT_SEAL_KX_BYTES
                               ? auth->auth->kx_public_key.data
                               : NULL;
  bt_auth_proof_t proof = {.session = session,
                           .nonce = nonce,
                           .vendor = vendor,
                           .agent_name = name,
                           .broker_kx = kx_pk,
                           .agent_kx = agent_kx,
                           .seal_mode = BATON__SEAL_MODE__SEAL_MODE_SECRETBOX};
  if (!auth->has_session || auth->session != session || !auth->auth->has_signature ||
      agent_kx == NULL ||
      bt_auth_verify(pk, &proof, auth->auth->signature.data, auth->auth->signature.len) !=
          0 ||
      bt_seal_keys(&fb->seal, BT_SEAL_BROKER, BATON__SEAL_MODE__SEAL_MODE_SECRETBOX, kx_pk,
                   kx_sk, agent_kx) != 0) {
    *why = "bad auth signature or session";
    fb_reply_error(fb, BATON__ERROR_CODE__ERROR_AUTH, "bad signature");
    fb_req_free(auth);
    return NULL;
  }
  fb_reply_welcome(fb, 7, welcome_work); /* sealed, reply_to 0 */
  return auth;
}

void fb_fail(fb_status_t *st, const char *file, int line, const char *what) {
  if (st->failed)
    return;
  st->failed = 1;
  snprintf(st->msg, sizeof st->msg, "%s:%d: check failed: %s", file, line, what);
}

void fb_held(Baton__Held *h, uint64_t package_id, uint32_t attempt) {
  baton__held__init(h);
  h->has_package_id = h->has_attempt = 1;
  h->package_id = package_id;
  h->attempt = attempt;
}

void fb_assignment(Baton__Assignment *as, uint64_t seq, uint64_t package_id,
                   uint32_t attempt, const char *capability, const char *payload) {
  baton__assignment__init(as);
  as->has_seq = as->has_package_id = as->has_attempt = 1;
  as->seq = seq;
  as->package_id = package_id;
  as->attempt = attempt;
  as->capability = (char *)capability;
  if (payload != NULL) {
    as->has_payload = 1;
    as->payload.data = (uint8_t *)payload;
    as->payload.len = strlen(payload);
  }
}

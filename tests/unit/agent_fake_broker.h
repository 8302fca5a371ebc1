/*
 * A fake Baton broker for agent tests: an AF_SP_RAW NN_REP socket on a free
 * loopback port, driven synchronously by a test thread (blocking receives with a
 * timeout). It never calls cmocka: scripts record failures with FB_CHECK and the
 * test's main thread asserts on them after joining, because cmocka is not
 * thread-safe.
 *
 * It speaks the sealed protocol like batond: the handshake agrees session keys
 * (kx keys in Challenge and Auth, covered by the signature); from then on
 * fb_recv opens sealed requests (applying the replay rule) and returns the
 * inner request, and every reply is sealed, answering the request its header
 * belongs to. Scripts therefore see plain requests, as before sealing.
 */
#ifndef AGENT_FAKE_BROKER_H
#define AGENT_FAKE_BROKER_H

#include "baton.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct fb fb_t;

/* A request's routing header, kept to answer it later (a parked poll). */
typedef struct {
  uint8_t bytes[64];
  size_t len;
  uint64_t ctr; /* the request's seal counter (0: clear): the reply's reply_to */
} fb_hdr_t;

/* Binds on a free port. Returns NULL on failure. */
fb_t *fb_new(void);
void fb_free(fb_t *fb);
/* "tcp://127.0.0.1:PORT". */
const char *fb_endpoint(const fb_t *fb);

/* Receives and unpacks the next request within timeout_ms (a sealed one is
 * opened: the inner request is returned); its header becomes the current one.
 * Returns the request (owned: fb_req_free) or NULL on timeout, an undecodable
 * message, or a sealed one that does not open (fb_last_open says why). */
Baton__AgentRequest *fb_recv(fb_t *fb, int timeout_ms);
void fb_req_free(Baton__AgentRequest *req);
/* Receives requests until one with the given body arrives (others are answered
 * with an empty Work, or dropped when drop_others). Returns it or NULL on timeout. */
Baton__AgentRequest *fb_expect(fb_t *fb, Baton__AgentRequest__BodyCase body,
                               int timeout_ms, int drop_others);

/* The current header, to park a request. */
fb_hdr_t fb_current(const fb_t *fb);
/* Answers the current request / a parked one. Return 0 or -1. */
int fb_reply(fb_t *fb, const Baton__AgentReply *r);
int fb_reply_to(fb_t *fb, const fb_hdr_t *h, const Baton__AgentReply *r);

/* Shorthands answering the current request. */
int fb_reply_challenge(fb_t *fb, uint64_t session, const uint8_t nonce[32]);
int fb_reply_welcome(fb_t *fb, uint64_t agent_id, const Baton__Work *work);
int fb_reply_work(fb_t *fb, const Baton__Work *work); /* NULL: empty Work */
int fb_reply_error(fb_t *fb, Baton__ErrorCode code, const char *message);

/* Completes Hello -> Challenge -> Auth -> Welcome with the public key pk,
 * verifying the signature. Returns the Auth request (owned) so callers can look
 * at Auth.held, or NULL with *why set. */
Baton__AgentRequest *fb_handshake(fb_t *fb, const uint8_t pk[32], uint64_t session,
                                  const char *vendor, int timeout_ms, const char **why);
/* The same, with welcome_work carried by the Welcome (e.g. cancels). */
Baton__AgentRequest *fb_handshake_work(fb_t *fb, const uint8_t pk[32], uint64_t session,
                                       const char *vendor, int timeout_ms,
                                       const Baton__Work *welcome_work,
                                       const char **why);

/* What opening the last sealed request gave: 0 new, BT_SEAL_RESEND, BT_EAUTH,
 * BT_ESTALE; 1 when it was in clear. */
int fb_last_open(const fb_t *fb);
/* The next sealed reply goes out with one byte of its box flipped. */
void fb_tamper_next(fb_t *fb);
/* Answers the current request in clear even though the session is sealed. */
int fb_reply_clear(fb_t *fb, const Baton__AgentReply *r);
/* The bytes of the last reply sent (borrowed until the next send), to replay. */
const uint8_t *fb_last_reply(const fb_t *fb, size_t *len);
/* Sends bytes as they are to the request of h. Returns 0 or -1. */
int fb_send_raw(fb_t *fb, const fb_hdr_t *h, const uint8_t *buf, size_t len);

/* Failure recording for scripts run on the broker thread. */
typedef struct {
  char msg[512];
  int failed;
} fb_status_t;

#define FB_CHECK(st, cond)                                                             \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      fb_fail((st), __FILE__, __LINE__, #cond);                                        \
      return;                                                                          \
    }                                                                                  \
  } while (0)
void fb_fail(fb_status_t *st, const char *file, int line, const char *what);

/* Builders (static storage is the caller's): a Held and an Assignment. */
void fb_held(Baton__Held *h, uint64_t package_id, uint32_t attempt);
void fb_assignment(Baton__Assignment *as, uint64_t seq, uint64_t package_id,
                   uint32_t attempt, const char *capability, const char *payload);

#endif

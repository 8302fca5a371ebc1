/*
 * Session keys and per-message sealing of the agent protocol, shared by batond
 * (server/xport) and libbaton-agent (worker/lib).
 *
 * Owns: the ephemeral X25519 key exchange (libsodium crypto_kx) that gives each
 * session one key per direction, the per-direction message counters, and the
 * seal/open of one message body — XSalsa20-Poly1305 (crypto_secretbox, the
 * default: encrypted and authenticated) or HMAC-SHA512-256 in front of the
 * clear body (crypto_auth, when encryption is switched off; the MAC stays).
 *
 * The nonce of a message is built from its direction, its counter and the
 * counter of the request it answers (replies only), so none of those can be
 * changed on the wire without the message failing to open, and a message can
 * never be reflected back to its sender (the other direction has another key
 * and another direction byte).
 *
 * Replay rule (bt_seal_open): a counter above the last accepted one is new; the
 * last accepted counter again is accepted only as an exact resend of that same
 * message (nanomsg REQ sends a pending request again after a reconnect); any
 * other counter is a replay. A message is accepted only after its MAC checks.
 *
 * Must never: log or return a key, keep a kx secret key past bt_seal_keys, or
 * accept a message that did not authenticate. Keys are wiped by bt_seal_wipe.
 */
#ifndef BT_SEAL_H
#define BT_SEAL_H

#include "baton.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define BT_SEAL_KX_BYTES 32u  /* crypto_kx public and secret key size */
#define BT_SEAL_KEY_BYTES 32u /* one direction's session key */
/* At most this many bytes more than the packed inner message does the sealed
 * outer message take (framing, counters, session, a 32-byte MAC). */
#define BT_SEAL_OVERHEAD 96u
/* bt_seal_open: the message is an exact resend of the last accepted one. */
#define BT_SEAL_RESEND 1

/* Which end a context is. The agent is crypto_kx's client, the broker its server. */
typedef enum { BT_SEAL_AGENT = 1, BT_SEAL_BROKER = 2 } bt_seal_role_t;

/* Direction bytes of the nonce. */
#define BT_SEAL_DIR_TO_BROKER 0x01u
#define BT_SEAL_DIR_TO_AGENT 0x02u

typedef struct {
  Baton__SealMode mode; /* SECRETBOX or MAC; 0 = no keys yet */
  uint8_t dir_tx, dir_rx;
  uint8_t tx_key[BT_SEAL_KEY_BYTES];
  uint8_t rx_key[BT_SEAL_KEY_BYTES];
  uint64_t tx_ctr;  /* counter of the last message sealed */
  uint64_t rx_ctr;  /* counter of the last message accepted; 0 = none */
  uint8_t rx_tag[32]; /* MAC of that message, to recognise an exact resend */
  size_t rx_len;      /* and its box length */
} bt_seal_t;

/* Makes an ephemeral kx key pair. The caller wipes sk (sodium_memzero) once
 * bt_seal_keys has used it. */
void bt_seal_kx_keypair(uint8_t pk[BT_SEAL_KX_BYTES], uint8_t sk[BT_SEAL_KX_BYTES]);

/* Derives the two session keys of role from its own kx key pair and the peer's
 * public key, and resets the counters. Returns 0, BT_EINVAL for a mode other
 * than SECRETBOX or MAC, or BT_EAUTH when the peer key is unusable (a low-order
 * point): the handshake must then fail. Borrows the keys. */
int bt_seal_keys(bt_seal_t *s, bt_seal_role_t role, Baton__SealMode mode,
                 const uint8_t my_pk[BT_SEAL_KX_BYTES],
                 const uint8_t my_sk[BT_SEAL_KX_BYTES],
                 const uint8_t peer_pk[BT_SEAL_KX_BYTES]);

/* Wipes keys and counters (sodium_memzero); s is then "no keys". */
void bt_seal_wipe(bt_seal_t *s);

/* Whether s holds session keys. */
static inline int bt_seal_ready(const bt_seal_t *s) { return s->mode != 0; }

/* Size of the box for a body of len bytes, and of the body in a box of len
 * bytes (0 when the box is too short to hold a MAC). */
size_t bt_seal_box_len(const bt_seal_t *s, size_t len);
size_t bt_seal_body_len(const bt_seal_t *s, size_t box_len);

/* Seals body (len bytes) as the next message of this end into box
 * (bt_seal_box_len bytes). reply_to is the counter of the request a reply
 * answers (0 for requests and for the Welcome). Returns the counter used. */
uint64_t bt_seal_seal(bt_seal_t *s, uint64_t reply_to, const uint8_t *body, size_t len,
                      uint8_t *box);

/* Opens a received message into body (bt_seal_body_len bytes) and applies the
 * replay rule. Returns 0 for a new message, BT_SEAL_RESEND for an exact resend
 * of the last accepted one, BT_EAUTH when it does not authenticate (bad MAC,
 * wrong key or direction, altered counter, truncated), or BT_ESTALE when it
 * authenticates but its counter is old (a replay). Only 0 advances the counter.
 * body's content is undefined unless 0 or BT_SEAL_RESEND is returned. */
int bt_seal_open(bt_seal_t *s, uint64_t counter, uint64_t reply_to, const uint8_t *box,
                 size_t box_len, uint8_t *body);

/* --- the Baton framing (proto/README.md, "Sealing") ----------------------------- */

/* Packs inner, seals it and packs the outer AgentRequest{version, session,
 * sealed}. Returns 0 with *out (owned: free) and *len, or BT_ELIMIT when the
 * result would exceed max_bytes (nothing is sealed then: the counter does not
 * move). */
int bt_seal_pack_request(bt_seal_t *s, uint64_t session, const Baton__AgentRequest *inner,
                         size_t max_bytes, uint8_t **out, size_t *len);

/* The same for a reply answering request counter reply_to. */
int bt_seal_pack_reply(bt_seal_t *s, uint64_t reply_to, const Baton__AgentReply *inner,
                       size_t max_bytes, uint8_t **out, size_t *len);

/* Opens m (borrowed). Returns what bt_seal_open returns; on 0 or BT_SEAL_RESEND
 * *body (owned: free) holds the packed inner message of *len bytes. A Sealed
 * without counter or box is BT_EAUTH. */
int bt_seal_open_msg(bt_seal_t *s, const Baton__Sealed *m, uint8_t **body, size_t *len);

#endif

/* Session keys and message sealing of the agent protocol; see bt_seal.h. */
#include "bt_seal.h"

#include "bt_err.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(crypto_kx_PUBLICKEYBYTES == BT_SEAL_KX_BYTES, "kx key size");
_Static_assert(crypto_kx_SECRETKEYBYTES == BT_SEAL_KX_BYTES, "kx key size");
_Static_assert(crypto_kx_SESSIONKEYBYTES == BT_SEAL_KEY_BYTES, "session key size");
_Static_assert(crypto_secretbox_KEYBYTES == BT_SEAL_KEY_BYTES, "secretbox key size");
_Static_assert(crypto_auth_hmacsha512256_KEYBYTES == BT_SEAL_KEY_BYTES, "hmac key size");
_Static_assert(crypto_secretbox_NONCEBYTES == 24, "secretbox nonce size");
_Static_assert(crypto_auth_hmacsha512256_BYTES == 32, "hmac tag size");

#define NONCE_BYTES 24u

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    abort();
  return p;
}

void bt_seal_kx_keypair(uint8_t pk[BT_SEAL_KX_BYTES], uint8_t sk[BT_SEAL_KX_BYTES]) {
  crypto_kx_keypair(pk, sk);
}

int bt_seal_keys(bt_seal_t *s, bt_seal_role_t role, Baton__SealMode mode,
                 const uint8_t my_pk[BT_SEAL_KX_BYTES],
                 const uint8_t my_sk[BT_SEAL_KX_BYTES],
                 const uint8_t peer_pk[BT_SEAL_KX_BYTES]) {
  bt_seal_wipe(s);
  if (mode != BATON__SEAL_MODE__SEAL_MODE_SECRETBOX &&
      mode != BATON__SEAL_MODE__SEAL_MODE_MAC)
    return BT_EINVAL;
  int rc;
  if (role == BT_SEAL_AGENT) {
    rc = crypto_kx_client_session_keys(s->rx_key, s->tx_key, my_pk, my_sk, peer_pk);
    s->dir_tx = BT_SEAL_DIR_TO_BROKER;
    s->dir_rx = BT_SEAL_DIR_TO_AGENT;
  } else {
    rc = crypto_kx_server_session_keys(s->rx_key, s->tx_key, my_pk, my_sk, peer_pk);
    s->dir_tx = BT_SEAL_DIR_TO_AGENT;
    s->dir_rx = BT_SEAL_DIR_TO_BROKER;
  }
  if (rc != 0) { /* libsodium refuses a peer key that gives an all-zero secret */
    bt_seal_wipe(s);
    return BT_EAUTH;
  }
  s->mode = mode;
  return 0;
}

void bt_seal_wipe(bt_seal_t *s) { sodium_memzero(s, sizeof *s); }

static size_t mac_len(const bt_seal_t *s) {
  return s->mode == BATON__SEAL_MODE__SEAL_MODE_MAC ? crypto_auth_hmacsha512256_BYTES
                                                    : crypto_secretbox_MACBYTES;
}

size_t bt_seal_box_len(const bt_seal_t *s, size_t len) { return len + mac_len(s); }

size_t bt_seal_body_len(const bt_seal_t *s, size_t box_len) {
  return box_len >= mac_len(s) ? box_len - mac_len(s) : 0;
}

/* direction (1) || zeros (7) || counter BE (8) || reply_to BE (8) */
static void make_nonce(uint8_t n[NONCE_BYTES], uint8_t dir, uint64_t counter,
                       uint64_t reply_to) {
  memset(n, 0, NONCE_BYTES);
  n[0] = dir;
  for (int i = 0; i < 8; i++) {
    n[8 + i] = (uint8_t)(counter >> (56 - 8 * i));
    n[16 + i] = (uint8_t)(reply_to >> (56 - 8 * i));
  }
}

/* HMAC-SHA512-256 over nonce || body: the MAC mode's tag. */
static void hmac(const uint8_t key[BT_SEAL_KEY_BYTES], const uint8_t n[NONCE_BYTES],
                 const uint8_t *body, size_t len, uint8_t tag[32]) {
  crypto_auth_hmacsha512256_state st;
  crypto_auth_hmacsha512256_init(&st, key, BT_SEAL_KEY_BYTES);
  crypto_auth_hmacsha512256_update(&st, n, NONCE_BYTES);
  crypto_auth_hmacsha512256_update(&st, body, len);
  crypto_auth_hmacsha512256_final(&st, tag);
  sodium_memzero(&st, sizeof st);
}

uint64_t bt_seal_seal(bt_seal_t *s, uint64_t reply_to, const uint8_t *body, size_t len,
                      uint8_t *box) {
  uint8_t n[NONCE_BYTES];
  uint64_t counter = ++s->tx_ctr;
  make_nonce(n, s->dir_tx, counter, reply_to);
  if (s->mode == BATON__SEAL_MODE__SEAL_MODE_MAC) {
    memmove(box + crypto_auth_hmacsha512256_BYTES, body, len);
    hmac(s->tx_key, n, box + crypto_auth_hmacsha512256_BYTES, len, box);
  } else {
    crypto_secretbox_easy(box, body, len, n, s->tx_key);
  }
  return counter;
}

int bt_seal_open(bt_seal_t *s, uint64_t counter, uint64_t reply_to, const uint8_t *box,
                 size_t box_len, uint8_t *body) {
  uint8_t n[NONCE_BYTES];
  size_t ml = mac_len(s);
  if (!bt_seal_ready(s) || box == NULL || box_len < ml)
    return BT_EAUTH;
  make_nonce(n, s->dir_rx, counter, reply_to);
  if (s->mode == BATON__SEAL_MODE__SEAL_MODE_MAC) {
    uint8_t tag[32];
    hmac(s->rx_key, n, box + ml, box_len - ml, tag);
    if (crypto_verify_32(tag, box) != 0)
      return BT_EAUTH;
    memcpy(body, box + ml, box_len - ml);
  } else if (crypto_secretbox_open_easy(body, box, box_len, n, s->rx_key) != 0) {
    return BT_EAUTH;
  }
  /* Authentic. Now the counter: only the sender holds the key, and it never
   * seals two messages under one counter, so an authentic message with the last
   * counter can only be that message again; the MAC comparison makes sure. */
  if (counter > s->rx_ctr) {
    s->rx_ctr = counter;
    memcpy(s->rx_tag, box, ml);
    s->rx_len = box_len;
    return 0;
  }
  if (counter == s->rx_ctr && counter != 0 && box_len == s->rx_len &&
      sodium_memcmp(s->rx_tag, box, ml) == 0)
    return BT_SEAL_RESEND;
  return BT_ESTALE;
}

/* --- the Baton framing -------------------------------------------------------------- */

/* Seals the packed inner message into sealed (box owned by the caller: free). */
/* Packs inner and seals it into *sealed (its box is owned: free
 * sealed->box.data), or BT_ELIMIT when it would not fit max_bytes sealed. */
static int seal_message(bt_seal_t *s, uint64_t reply_to, const ProtobufCMessage *inner,
                        size_t max_bytes, Baton__Sealed *sealed) {
  size_t n = protobuf_c_message_get_packed_size(inner);
  if (n + BT_SEAL_OVERHEAD > max_bytes)
    return BT_ELIMIT;
  uint8_t *body = xmalloc(n);
  protobuf_c_message_pack(inner, body);
  size_t box_len = bt_seal_box_len(s, n);
  uint8_t *box = xmalloc(box_len);
  baton__sealed__init(sealed);
  sealed->has_counter = sealed->has_box = 1;
  sealed->counter = bt_seal_seal(s, reply_to, body, n, box);
  if (reply_to != 0) {
    sealed->has_reply_to = 1;
    sealed->reply_to = reply_to;
  }
  sealed->box.data = box;
  sealed->box.len = box_len;
  free(body); /* the clear text: freed at once */
  return 0;
}

/* Packs the outer message that carries sealed into *out, and frees the box. */
static void pack_outer(const ProtobufCMessage *outer, Baton__Sealed *sealed, uint8_t **out,
                       size_t *len) {
  *len = protobuf_c_message_get_packed_size(outer);
  *out = xmalloc(*len);
  protobuf_c_message_pack(outer, *out);
  free(sealed->box.data);
}

int bt_seal_pack_request(bt_seal_t *s, uint64_t session, const Baton__AgentRequest *inner,
                         size_t max_bytes, uint8_t **out, size_t *len) {
  Baton__Sealed sealed;
  int rc = seal_message(s, 0, &inner->base, max_bytes, &sealed);
  if (rc != 0)
    return rc;
  Baton__AgentRequest outer = BATON__AGENT_REQUEST__INIT;
  outer.has_version = 1;
  outer.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  outer.has_session = 1;
  outer.session = session;
  outer.body_case = BATON__AGENT_REQUEST__BODY_SEALED;
  outer.sealed = &sealed;
  pack_outer(&outer.base, &sealed, out, len);
  return 0;
}

int bt_seal_pack_reply(bt_seal_t *s, uint64_t reply_to, const Baton__AgentReply *inner,
                       size_t max_bytes, uint8_t **out, size_t *len) {
  Baton__Sealed sealed;
  int rc = seal_message(s, reply_to, &inner->base, max_bytes, &sealed);
  if (rc != 0)
    return rc;
  Baton__AgentReply outer = BATON__AGENT_REPLY__INIT;
  outer.has_version = 1;
  outer.version = BATON__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
  outer.body_case = BATON__AGENT_REPLY__BODY_SEALED;
  outer.sealed = &sealed;
  pack_outer(&outer.base, &sealed, out, len);
  return 0;
}

int bt_seal_open_msg(bt_seal_t *s, const Baton__Sealed *m, uint8_t **body, size_t *len) {
  if (m == NULL || !m->has_counter || !m->has_box || !bt_seal_ready(s) ||
      m->box.len < bt_seal_box_len(s, 0))
    return BT_EAUTH;
  size_t n = bt_seal_body_len(s, m->box.len);
  uint8_t *b = xmalloc(n);
  int rc = bt_seal_open(s, m->counter, m->has_reply_to ? m->reply_to : 0, m->box.data,
                        m->box.len, b);
  if (rc != 0 && rc != BT_SEAL_RESEND) {
    free(b);
    return rc;
  }
  *body = b;
  *len = n;
  return rc;
}

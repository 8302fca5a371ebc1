/*
 * Vendor secrets and the challenge-response both ends of the agent protocol use.
 *
 * A vendor secret is 32 random bytes (an Ed25519 seed) written as unpadded
 * base64url: 43 characters, printed once by `batonctl vendor add`. The broker
 * stores only the public key derived from it, so neither the database nor the wire
 * ever carries the secret: the agent proves it by signing the broker's challenge.
 *
 * The signature also covers both ephemeral key-exchange keys of the session
 * (bt_seal) and the seal mode the broker announced, so the session keys are
 * bound to the authentication: a man in the middle who swaps a kx key or
 * downgrades the mode fails the broker's signature check. Must never log or
 * keep a secret or a secret key.
 */
#ifndef BT_AUTH_H
#define BT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define BT_AUTH_SEED_BYTES 32u
#define BT_AUTH_PK_BYTES 32u
#define BT_AUTH_SK_BYTES 64u
#define BT_AUTH_SIG_BYTES 64u
#define BT_AUTH_NONCE_BYTES 32u
#define BT_AUTH_SECRET_CHARS 43u /* base64url of 32 bytes, no padding */
#define BT_AUTH_KX_BYTES 32u     /* an X25519 public key (crypto_kx) */

/* What an agent's signature covers. All pointers are borrowed; a NULL kx key
 * is signed as absent (it never matches a present one). */
typedef struct {
  uint64_t session;
  const uint8_t *nonce; /* BT_AUTH_NONCE_BYTES */
  const char *vendor;
  const char *agent_name;
  const uint8_t *broker_kx; /* BT_AUTH_KX_BYTES or NULL */
  const uint8_t *agent_kx;  /* BT_AUTH_KX_BYTES or NULL */
  uint8_t seal_mode;        /* Baton__SealMode announced in the Challenge */
} bt_auth_proof_t;

/* Initialises libsodium; call once at start. Returns 0 or -1. */
int bt_auth_init(void);

/* Makes a new secret. secret must hold BT_AUTH_SECRET_CHARS + 1 bytes; pk receives
 * the public key to store. Returns 0. */
int bt_auth_new_secret(char *secret, uint8_t pk[BT_AUTH_PK_BYTES]);

/* Derives the key pair from a secret string. Returns 0, or BT_EINVAL when the
 * string is not a well-formed secret. sk may be NULL. */
int bt_auth_keypair(const char *secret, uint8_t pk[BT_AUTH_PK_BYTES],
                    uint8_t sk[BT_AUTH_SK_BYTES]);

/* Signs what p names with the vendor key sk. Borrows everything. */
void bt_auth_sign(const uint8_t sk[BT_AUTH_SK_BYTES], const bt_auth_proof_t *p,
                  uint8_t sig[BT_AUTH_SIG_BYTES]);

/* Checks a signature over p. Returns 0 when valid, BT_EAUTH otherwise. */
int bt_auth_verify(const uint8_t pk[BT_AUTH_PK_BYTES], const bt_auth_proof_t *p,
                   const uint8_t *sig, size_t sig_len);

/* Fills buf with len random bytes (libsodium's CSPRNG). */
void bt_auth_random(void *buf, size_t len);

#endif

/*
 * Vendor secrets and the challenge-response both ends of the agent protocol use.
 *
 * A vendor secret is 32 random bytes (an Ed25519 seed) written as unpadded
 * base64url: 43 characters, printed once by `batonctl vendor add`. The broker
 * stores only the public key derived from it, so neither the database nor the wire
 * ever carries the secret: the agent proves it by signing the broker's challenge.
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

/* Initialises libsodium; call once at start. Returns 0 or -1. */
int bt_auth_init(void);

/* Makes a new secret. secret must hold BT_AUTH_SECRET_CHARS + 1 bytes; pk receives
 * the public key to store. Returns 0. */
int bt_auth_new_secret(char *secret, uint8_t pk[BT_AUTH_PK_BYTES]);

/* Derives the key pair from a secret string. Returns 0, or BT_EINVAL when the
 * string is not a well-formed secret. sk may be NULL. */
int bt_auth_keypair(const char *secret, uint8_t pk[BT_AUTH_PK_BYTES],
                    uint8_t sk[BT_AUTH_SK_BYTES]);

/* Signs the challenge for (session, nonce, vendor, agent_name). */
void bt_auth_sign(const uint8_t sk[BT_AUTH_SK_BYTES], uint64_t session,
                  const uint8_t nonce[BT_AUTH_NONCE_BYTES], const char *vendor,
                  const char *agent_name, uint8_t sig[BT_AUTH_SIG_BYTES]);

/* Checks a signature. Returns 0 when valid, BT_EAUTH otherwise. */
int bt_auth_verify(const uint8_t pk[BT_AUTH_PK_BYTES], uint64_t session,
                   const uint8_t nonce[BT_AUTH_NONCE_BYTES], const char *vendor,
                   const char *agent_name, const uint8_t *sig, size_t sig_len);

/* Fills buf with len random bytes (libsodium's CSPRNG). */
void bt_auth_random(void *buf, size_t len);

#endif

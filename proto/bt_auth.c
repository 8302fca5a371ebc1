/* Ed25519 challenge-response over libsodium; see bt_auth.h. */
#include "bt_auth.h"

#include "bt_err.h"

#include <sodium.h>
#include <string.h>

/* v2: the key-exchange keys and the seal mode joined what is signed. */
static const char AUTH_CONTEXT[] = "baton-auth-v2";

int bt_auth_init(void) { return sodium_init() < 0 ? -1 : 0; }

int bt_auth_new_secret(char *secret, uint8_t pk[BT_AUTH_PK_BYTES]) {
  uint8_t seed[BT_AUTH_SEED_BYTES], sk[BT_AUTH_SK_BYTES];
  randombytes_buf(seed, sizeof seed);
  sodium_bin2base64(secret, BT_AUTH_SECRET_CHARS + 1, seed, sizeof seed,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  crypto_sign_seed_keypair(pk, sk, seed);
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(sk, sizeof sk);
  return 0;
}

int bt_auth_keypair(const char *secret, uint8_t pk[BT_AUTH_PK_BYTES],
                    uint8_t sk[BT_AUTH_SK_BYTES]) {
  uint8_t seed[BT_AUTH_SEED_BYTES], sk_local[BT_AUTH_SK_BYTES];
  size_t n = 0;
  if (secret == NULL || strlen(secret) != BT_AUTH_SECRET_CHARS)
    return BT_EINVAL;
  /* libsodium 1.0.18's decoder reads through a signed char and accepts bytes
   * from 0x80 up, so check the base64url alphabet here. */
  for (size_t i = 0; i < BT_AUTH_SECRET_CHARS; i++) {
    unsigned char c = (unsigned char)secret[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_'))
      return BT_EINVAL;
  }
  if (sodium_base642bin(seed, sizeof seed, secret, BT_AUTH_SECRET_CHARS, NULL,
                        &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      n != sizeof seed)
    return BT_EINVAL;
  crypto_sign_seed_keypair(pk, sk ? sk : sk_local, seed);
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(sk_local, sizeof sk_local);
  return 0;
}

/* The signed bytes: context || session BE || nonce || vendor || 0 || agent_name
 * || 0 || presence byte + broker kx key || presence byte + agent kx key || mode.
 * Hashed first so the message length never matters; the NUL separators and
 * presence bytes keep every field's boundary part of what is signed. */
static void auth_digest(const bt_auth_proof_t *p, uint8_t out[crypto_generichash_BYTES]) {
  crypto_generichash_state st;
  uint8_t be[8];
  for (int i = 0; i < 8; i++)
    be[i] = (uint8_t)(p->session >> (56 - 8 * i));
  static const uint8_t zero = 0, one = 1;
  const char *vendor = p->vendor ? p->vendor : "";
  const char *agent = p->agent_name ? p->agent_name : "";
  crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES);
  crypto_generichash_update(&st, (const uint8_t *)AUTH_CONTEXT, sizeof AUTH_CONTEXT - 1);
  crypto_generichash_update(&st, be, sizeof be);
  crypto_generichash_update(&st, p->nonce, BT_AUTH_NONCE_BYTES);
  crypto_generichash_update(&st, (const uint8_t *)vendor, strlen(vendor));
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, (const uint8_t *)agent, strlen(agent));
  crypto_generichash_update(&st, &zero, 1);
  const uint8_t *kx[2] = {p->broker_kx, p->agent_kx};
  for (int i = 0; i < 2; i++) {
    crypto_generichash_update(&st, kx[i] ? &one : &zero, 1);
    if (kx[i])
      crypto_generichash_update(&st, kx[i], BT_AUTH_KX_BYTES);
  }
  crypto_generichash_update(&st, &p->seal_mode, 1);
  crypto_generichash_final(&st, out, crypto_generichash_BYTES);
}

void bt_auth_sign(const uint8_t sk[BT_AUTH_SK_BYTES], const bt_auth_proof_t *p,
                  uint8_t sig[BT_AUTH_SIG_BYTES]) {
  uint8_t d[crypto_generichash_BYTES];
  auth_digest(p, d);
  crypto_sign_detached(sig, NULL, d, sizeof d, sk);
}

int bt_auth_verify(const uint8_t pk[BT_AUTH_PK_BYTES], const bt_auth_proof_t *p,
                   const uint8_t *sig, size_t sig_len) {
  uint8_t d[crypto_generichash_BYTES];
  if (sig == NULL || sig_len != BT_AUTH_SIG_BYTES || p->nonce == NULL)
    return BT_EAUTH;
  auth_digest(p, d);
  return crypto_sign_verify_detached(sig, d, sizeof d, pk) == 0 ? 0 : BT_EAUTH;
}

void bt_auth_random(void *buf, size_t len) { randombytes_buf(buf, len); }

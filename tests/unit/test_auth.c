/*
 * proto/bt_auth: vendor secrets (43 characters of unpadded base64url) and the
 * Ed25519 challenge-response. A signature binds the key, the session, the
 * nonce, the vendor, the agent name, both key-exchange keys and the seal mode:
 * changing any one must fail it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bt_auth.h"
#include "bt_err.h"

#include <stdio.h>
#include <string.h>

static int setup(void **state) {
  (void)state;
  return bt_auth_init();
}

static int b64url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

static void test_auth_new_secret_shape(void **state) {
  (void)state;
  char prev[BT_AUTH_SECRET_CHARS + 1] = "";
  for (int i = 0; i < 50; i++) {
    char secret[BT_AUTH_SECRET_CHARS + 1];
    memset(secret, '#', sizeof secret);
    uint8_t pk[BT_AUTH_PK_BYTES], pk2[BT_AUTH_PK_BYTES], sk[BT_AUTH_SK_BYTES];
    assert_int_equal(bt_auth_new_secret(secret, pk), 0);
    assert_int_equal(strlen(secret), BT_AUTH_SECRET_CHARS);
    for (size_t k = 0; k < BT_AUTH_SECRET_CHARS; k++)
      if (!b64url_char(secret[k]))
        fail_msg("secret char %zu is '%c'", k, secret[k]);
    /* the same key pair comes back from the string alone */
    assert_int_equal(bt_auth_keypair(secret, pk2, sk), 0);
    assert_memory_equal(pk, pk2, BT_AUTH_PK_BYTES);
    assert_memory_equal(sk + 32, pk, BT_AUTH_PK_BYTES); /* libsodium: seed || pk */
    assert_int_equal(bt_auth_keypair(secret, pk2, NULL), 0); /* sk may be NULL */
    assert_memory_equal(pk, pk2, BT_AUTH_PK_BYTES);
    assert_string_not_equal(secret, prev);
    memcpy(prev, secret, sizeof prev);
  }
}

static void test_auth_keypair_rejects(void **state) {
  (void)state;
  char secret[BT_AUTH_SECRET_CHARS + 1];
  uint8_t pk[BT_AUTH_PK_BYTES];
  assert_int_equal(bt_auth_new_secret(secret, pk), 0);

  uint8_t out[BT_AUTH_PK_BYTES];
  char buf[64];
  assert_int_equal(bt_auth_keypair(NULL, out, NULL), BT_EINVAL);
  assert_int_equal(bt_auth_keypair("", out, NULL), BT_EINVAL);

  /* 42 and 44 characters */
  snprintf(buf, sizeof buf, "%.42s", secret);
  assert_int_equal(bt_auth_keypair(buf, out, NULL), BT_EINVAL);
  snprintf(buf, sizeof buf, "%sA", secret);
  assert_int_equal(bt_auth_keypair(buf, out, NULL), BT_EINVAL);
  /* padded form of the same bytes */
  snprintf(buf, sizeof buf, "%.42s=", secret);
  assert_int_equal(bt_auth_keypair(buf, out, NULL), BT_EINVAL);

  /* characters outside base64url: the standard alphabet's + and /, and others */
  static const char bad[] = {'+', '/', '=', ' ', '.', '*', '\x01', '\x7f'};
  for (size_t i = 0; i < sizeof bad; i++) {
    for (size_t pos = 0; pos < BT_AUTH_SECRET_CHARS; pos += 21) {
      memcpy(buf, secret, sizeof secret);
      buf[pos] = bad[i];
      if (bt_auth_keypair(buf, out, NULL) != BT_EINVAL)
        fail_msg("secret with 0x%02x at %zu accepted", (unsigned char)bad[i], pos);
    }
  }
  /* 43 characters whose last one carries bits beyond the 32 bytes */
  assert_int_equal(bt_auth_keypair("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", out, NULL),
                   BT_EINVAL);
  /* a known secret: 32 zero bytes are 43 'A's and give a fixed key */
  assert_int_equal(bt_auth_keypair("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", out, NULL),
                   0);
  static const uint8_t zero_seed_pk[32] = {
      0x3b, 0x6a, 0x27, 0xbc, 0xce, 0xb6, 0xa4, 0x2d, 0x62, 0xa3, 0xa8,
      0xd0, 0x2a, 0x6f, 0x0d, 0x73, 0x65, 0x32, 0x15, 0x77, 0x1d, 0xe2,
      0x43, 0xa6, 0x3a, 0xc0, 0x48, 0xa1, 0x8b, 0x59, 0xda, 0x29};
  assert_memory_equal(out, zero_seed_pk, 32);
}

/* Bytes >= 0x80 are not base64url either. libsodium 1.0.18's decoder reads the
 * secret through a signed char and its constant-time compares then match every
 * such byte (all 128 decode to some value), so the check has to be Baton's own. */
static void test_auth_keypair_rejects_non_ascii(void **state) {
  (void)state;
  char secret[BT_AUTH_SECRET_CHARS + 1];
  uint8_t pk[BT_AUTH_PK_BYTES], out[BT_AUTH_PK_BYTES];
  assert_int_equal(bt_auth_new_secret(secret, pk), 0);
  static const unsigned char high[] = {0x80, 0xa9, 0xc3, 0xff};
  for (size_t i = 0; i < sizeof high; i++) {
    char buf[BT_AUTH_SECRET_CHARS + 1];
    memcpy(buf, secret, sizeof buf);
    buf[7] = (char)high[i];
    if (bt_auth_keypair(buf, out, NULL) != BT_EINVAL)
      fail_msg("secret with byte 0x%02x accepted", high[i]);
  }
}

typedef struct {
  uint8_t pk[BT_AUTH_PK_BYTES], sk[BT_AUTH_SK_BYTES];
  uint8_t nonce[BT_AUTH_NONCE_BYTES];
  uint8_t bkx[BT_AUTH_KX_BYTES], akx[BT_AUTH_KX_BYTES];
  uint8_t sig[BT_AUTH_SIG_BYTES];
} fixture_t;

/* What a signature covers, with the fixture's nonce and kx keys. */
static bt_auth_proof_t proof(const fixture_t *f, uint64_t session, const char *vendor,
                             const char *agent) {
  bt_auth_proof_t p = {.session = session,
                       .nonce = f->nonce,
                       .vendor = vendor,
                       .agent_name = agent,
                       .broker_kx = f->bkx,
                       .agent_kx = f->akx,
                       .seal_mode = 1};
  return p;
}

static int verify(const uint8_t *pk, const fixture_t *f, uint64_t session,
                  const char *vendor, const char *agent, const uint8_t *sig, size_t len) {
  bt_auth_proof_t p = proof(f, session, vendor, agent);
  return bt_auth_verify(pk, &p, sig, len);
}

static void make(fixture_t *f, uint64_t session, const char *vendor,
                 const char *agent) {
  char secret[BT_AUTH_SECRET_CHARS + 1];
  assert_int_equal(bt_auth_new_secret(secret, f->pk), 0);
  assert_int_equal(bt_auth_keypair(secret, f->pk, f->sk), 0);
  bt_auth_random(f->nonce, sizeof f->nonce);
  bt_auth_random(f->bkx, sizeof f->bkx);
  bt_auth_random(f->akx, sizeof f->akx);
  bt_auth_proof_t p = proof(f, session, vendor, agent);
  bt_auth_sign(f->sk, &p, f->sig);
}

static void test_auth_sign_verify(void **state) {
  (void)state;
  fixture_t f;
  make(&f, 0x0102030405060708ull, "acme", "ocr-1");
  assert_int_equal(verify(f.pk, &f, 0x0102030405060708ull, "acme", "ocr-1", f.sig,
                          sizeof f.sig),
                   0);
  /* deterministic: signing twice gives the same bytes (Ed25519) */
  uint8_t sig2[BT_AUTH_SIG_BYTES];
  bt_auth_proof_t p = proof(&f, 0x0102030405060708ull, "acme", "ocr-1");
  bt_auth_sign(f.sk, &p, sig2);
  assert_memory_equal(f.sig, sig2, sizeof sig2);
  /* empty names still sign and verify */
  p = proof(&f, 1, "", "");
  bt_auth_sign(f.sk, &p, sig2);
  assert_int_equal(verify(f.pk, &f, 1, "", "", sig2, sizeof sig2), 0);
}

static void test_auth_verify_rejects(void **state) {
  (void)state;
  const uint64_t session = 77;
  fixture_t f, other;
  make(&f, session, "acme", "ocr-1");
  make(&other, session, "acme", "ocr-1");
  fixture_t f2 = f;
  f2.nonce[31] ^= 1;

  assert_int_equal(verify(f.pk, &f, session, "acme", "ocr-1", f.sig, 64), 0);
  /* another key */
  assert_int_equal(verify(other.pk, &f, session, "acme", "ocr-1", f.sig, 64), BT_EAUTH);
  /* another session, including one differing only in the top byte */
  assert_int_equal(verify(f.pk, &f, session + 1, "acme", "ocr-1", f.sig, 64), BT_EAUTH);
  assert_int_equal(verify(f.pk, &f, session | (1ull << 63), "acme", "ocr-1", f.sig, 64),
                   BT_EAUTH);
  /* another nonce */
  assert_int_equal(verify(f.pk, &f2, session, "acme", "ocr-1", f.sig, 64), BT_EAUTH);
  /* another vendor or agent name */
  assert_int_equal(verify(f.pk, &f, session, "acmf", "ocr-1", f.sig, 64), BT_EAUTH);
  assert_int_equal(verify(f.pk, &f, session, "acme", "ocr-2", f.sig, 64), BT_EAUTH);
  /* the vendor/agent boundary is part of what is signed */
  assert_int_equal(verify(f.pk, &f, session, "acmeo", "cr-1", f.sig, 64), BT_EAUTH);
  assert_int_equal(verify(f.pk, &f, session, "acm", "eocr-1", f.sig, 64), BT_EAUTH);
  /* every flipped signature bit */
  for (size_t bit = 0; bit < 8 * BT_AUTH_SIG_BYTES; bit++) {
    uint8_t s[BT_AUTH_SIG_BYTES];
    memcpy(s, f.sig, sizeof s);
    s[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    if (verify(f.pk, &f, session, "acme", "ocr-1", s, sizeof s) != BT_EAUTH)
      fail_msg("signature with bit %zu flipped accepted", bit);
  }
  /* short, long and missing signatures */
  assert_int_equal(verify(f.pk, &f, session, "acme", "ocr-1", f.sig, 63), BT_EAUTH);
  assert_int_equal(verify(f.pk, &f, session, "acme", "ocr-1", f.sig, 0), BT_EAUTH);
  uint8_t longer[65];
  memcpy(longer, f.sig, 64);
  longer[64] = 0;
  assert_int_equal(verify(f.pk, &f, session, "acme", "ocr-1", longer, 65), BT_EAUTH);
  assert_int_equal(verify(f.pk, &f, session, "acme", "ocr-1", NULL, 64), BT_EAUTH);
  /* all-zero signature and all-zero key */
  uint8_t zeros[64] = {0};
  assert_int_equal(verify(f.pk, &f, session, "acme", "ocr-1", zeros, 64), BT_EAUTH);
  assert_int_equal(verify(zeros, &f, session, "acme", "ocr-1", f.sig, 64), BT_EAUTH);
}

/* The key exchange is bound to the authentication: a man in the middle who
 * swaps either kx key (every bit of either), drops one, or changes the seal
 * mode (a downgrade to MAC-only) breaks the signature the broker checks. */
static void test_auth_binds_key_exchange(void **state) {
  (void)state;
  const uint64_t session = 0xabcdef;
  fixture_t f;
  make(&f, session, "acme", "ocr-1");
  bt_auth_proof_t p = proof(&f, session, "acme", "ocr-1");
  assert_int_equal(bt_auth_verify(f.pk, &p, f.sig, 64), 0);
  uint8_t *keys[2] = {f.bkx, f.akx};
  for (int k = 0; k < 2; k++) {
    for (size_t bit = 0; bit < 8 * BT_AUTH_KX_BYTES; bit++) {
      keys[k][bit / 8] ^= (uint8_t)(1u << (bit % 8));
      p = proof(&f, session, "acme", "ocr-1");
      int rc = bt_auth_verify(f.pk, &p, f.sig, 64);
      keys[k][bit / 8] ^= (uint8_t)(1u << (bit % 8));
      if (rc != BT_EAUTH)
        fail_msg("kx key %d with bit %zu flipped accepted", k, bit);
    }
  }
  /* the two keys swapped with each other */
  p = proof(&f, session, "acme", "ocr-1");
  p.broker_kx = f.akx;
  p.agent_kx = f.bkx;
  assert_int_equal(bt_auth_verify(f.pk, &p, f.sig, 64), BT_EAUTH);
  /* a key left out */
  p = proof(&f, session, "acme", "ocr-1");
  p.agent_kx = NULL;
  assert_int_equal(bt_auth_verify(f.pk, &p, f.sig, 64), BT_EAUTH);
  p = proof(&f, session, "acme", "ocr-1");
  p.broker_kx = NULL;
  assert_int_equal(bt_auth_verify(f.pk, &p, f.sig, 64), BT_EAUTH);
  /* the seal mode: a downgrade from secretbox (1) to MAC-only (2) */
  p = proof(&f, session, "acme", "ocr-1");
  p.seal_mode = 2;
  assert_int_equal(bt_auth_verify(f.pk, &p, f.sig, 64), BT_EAUTH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auth_new_secret_shape),
      cmocka_unit_test(test_auth_keypair_rejects),
      cmocka_unit_test(test_auth_keypair_rejects_non_ascii),
      cmocka_unit_test(test_auth_sign_verify),
      cmocka_unit_test(test_auth_verify_rejects),
      cmocka_unit_test(test_auth_binds_key_exchange),
  };
  return cmocka_run_group_tests_name("auth", tests, setup, NULL);
}

/*
 * Helpers shared by the libFuzzer targets in tests/fuzz/. Header-only so each
 * target stays one .c file. A broken invariant prints what broke and aborts,
 * which libFuzzer reports as a crash with the input saved as a reproducer.
 */
#ifndef BT_FUZZ_UTIL_H
#define BT_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An invariant of the decoder under test; on failure: a message and abort(). */
#define FUZZ_CHECK(cond, ...)                                                    \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, \
              #cond);                                                            \
      fprintf(stderr, __VA_ARGS__);                                              \
      fputc('\n', stderr);                                                       \
      abort();                                                                   \
    }                                                                            \
  } while (0)

/* The input as a file, for decoders that read a path (config files): a memfd,
 * rewritten for each input and named /proc/self/fd/N — nothing on disk. */
typedef struct {
  int fd;
  char path[64];
} fuzz_file_t;

static inline void fuzz_file_init(fuzz_file_t *f, const char *name) {
  f->fd = memfd_create(name, MFD_CLOEXEC);
  if (f->fd < 0) {
    perror("memfd_create");
    abort();
  }
  snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

static inline void fuzz_file_put(fuzz_file_t *f, const uint8_t *data, size_t size) {
  FUZZ_CHECK(ftruncate(f->fd, 0) == 0, "ftruncate");
  size_t o = 0;
  while (o < size) {
    ssize_t n = pwrite(f->fd, data + o, size - o, (off_t)o);
    FUZZ_CHECK(n > 0, "pwrite");
    o += (size_t)n;
  }
}

/* A NUL-terminated copy of the input (returns owned; free()). The decoders
 * that take C strings stop at the first NUL, as their callers do. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (s == NULL)
    abort();
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* Takes bytes from the front of the input for the target's own choices (limits,
 * split points); what is left is the data to decode. Past the end it yields 0. */
typedef struct {
  const uint8_t *p;
  size_t n;
} fuzz_bytes_t;

static inline uint32_t fuzz_take(fuzz_bytes_t *b, unsigned nbytes) {
  uint32_t v = 0;
  for (unsigned i = 0; i < nbytes; i++) {
    v <<= 8;
    if (b->n > 0) {
      v |= *b->p++;
      b->n--;
    }
  }
  return v;
}

#endif

/* ms_sha256.h — incremental SHA-256 (FIPS 180-4), so that an attachment of
 * any size is hashed as it is decoded, a few bytes at a time. */
#ifndef MS_SHA256_H
#define MS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;   /* message length so far */
    uint8_t buf[256]; /* a partial block (the first 64 bytes); with a backend, bytes not yet handed over */
    size_t used;
    void *ext;        /* a backend's context, when one is set */
} ms_sha256;

/* Another implementation of the same function (the host's crypto library,
 * with its vector code); the core's own is used when none is set or open()
 * fails. Set once, before any hashing. */
typedef struct {
    void *(*open)(void);
    void (*write)(void *ctx, const void *p, size_t n);
    void (*final)(void *ctx, uint8_t out[32]); /* writes the digest and releases ctx */
    void (*close)(void *ctx);                  /* releases ctx without a digest */
} ms_sha256_backend;

void ms_sha256_set_backend(const ms_sha256_backend *b);

void ms_sha256_init(ms_sha256 *s);
void ms_sha256_update(ms_sha256 *s, const void *p, size_t n);
/* Writes the digest; the state must be initialised again before reuse. */
void ms_sha256_final(ms_sha256 *s, uint8_t out[32]);
/* Abandons a hash begun and never finished (safe on a zeroed or finished state). */
void ms_sha256_discard(ms_sha256 *s);

/* Lower-case hex of n bytes: out holds 2n characters and a NUL. */
void ms_hex(const uint8_t *p, size_t n, char *out);

#endif

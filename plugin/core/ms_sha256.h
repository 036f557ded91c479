/* ms_sha256.h — incremental SHA-256 (FIPS 180-4), so that an attachment of
 * any size is hashed as it is decoded, a few bytes at a time. */
#ifndef MS_SHA256_H
#define MS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;   /* message length so far */
    uint8_t buf[64];  /* a partial block */
    size_t used;
} ms_sha256;

void ms_sha256_init(ms_sha256 *s);
void ms_sha256_update(ms_sha256 *s, const void *p, size_t n);
/* Writes the digest; the state must be initialised again before reuse. */
void ms_sha256_final(ms_sha256 *s, uint8_t out[32]);

/* Lower-case hex of n bytes: out holds 2n characters and a NUL. */
void ms_hex(const uint8_t *p, size_t n, char *out);

#endif

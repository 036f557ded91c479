/* mailsec-hash.c — SHA-256 of messages and attachments through libgcrypt,
 * which Wireshark already uses: its vector code hashes several times faster
 * than the core's portable C, and every message byte is hashed. The core
 * falls back to its own code when gcrypt cannot open a context. */
#include <wireshark.h>

#include <wsutil/wsgcrypt.h>

#include "mailsec.h"
#include "ms_sha256.h"

static void *gc_open(void)
{
    gcry_md_hd_t h;
    return gcry_md_open(&h, GCRY_MD_SHA256, 0) == 0 ? (void *)h : NULL;
}

static void gc_write(void *ctx, const void *p, size_t n)
{
    gcry_md_write((gcry_md_hd_t)ctx, p, n);
}

static void gc_final(void *ctx, uint8_t out[32])
{
    gcry_md_hd_t h = (gcry_md_hd_t)ctx;
    const unsigned char *d = gcry_md_read(h, GCRY_MD_SHA256);
    if (d)
        memcpy(out, d, 32);
    else
        memset(out, 0, 32);
    gcry_md_close(h);
}

static void gc_close(void *ctx)
{
    gcry_md_close((gcry_md_hd_t)ctx);
}

static const ms_sha256_backend gcrypt_sha256 = { gc_open, gc_write, gc_final, gc_close };

void mailsec_hash_register(void)
{
    ms_sha256_set_backend(&gcrypt_sha256);
}

/* fuzz_sha256.c — incremental SHA-256 (ms_sha256.h): the same bytes hashed in
 * one piece and in random pieces must give one digest; with a backend set,
 * the bytes the backend is handed (after the core's block buffering) must be
 * exactly the input, in order.
 *
 * Input: h0 split seed, then the bytes.
 */
#include "fuzz_common.h"
#include "ms_sha256.h"

/* A backend that keeps what it is written (open() may fail, to test the fallback). */
typedef struct {
    uint8_t *b;
    size_t n, cap;
    bool closed;
} rec_backend;

static rec_backend *current;
static bool fail_open;

static void *be_open(void)
{
    if (fail_open)
        return NULL;
    current = calloc(1, sizeof *current);
    return current;
}

static void be_write(void *ctx, const void *p, size_t n)
{
    rec_backend *r = ctx;
    FZ_CHECK(n > 0, "sha256: empty write to the backend");
    fz_touch(p, n);
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2;
        r->b = realloc(r->b, r->cap);
    }
    memcpy(r->b + r->n, p, n);
    r->n += n;
}

static void be_final(void *ctx, uint8_t out[32])
{
    rec_backend *r = ctx;
    memset(out, 0, 32);
    memcpy(out, &r->n, sizeof r->n);
    r->closed = true;
}

static void be_close(void *ctx)
{
    rec_backend *r = ctx;
    r->closed = true;
}

static const ms_sha256_backend backend = { be_open, be_write, be_final, be_close };

static void sha_piece(void *ctx, const uint8_t *p, size_t n)
{
    ms_sha256_update((ms_sha256 *)ctx, p, n);
}

static void hash(const uint8_t *p, size_t n, uint32_t split, uint8_t out[32])
{
    ms_sha256 s;
    memset(&s, 0x77, sizeof s);
    ms_sha256_init(&s);
    fz_feed_pieces(p, n, split, sha_piece, &s);
    ms_sha256_final(&s, out);
    ms_sha256_discard(&s); /* safe on a finished state */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h0 = fz_u8(&in);
    size_t n;
    const uint8_t *p = fz_bytes(&in, in.n, &n);

    uint8_t a[32], b[32];
    ms_sha256_set_backend(NULL);
    hash(p, n, 0, a);
    hash(p, n, (uint32_t)h0 + 1, b);
    FZ_CHECK(memcmp(a, b, 32) == 0, "sha256: the digest depends on how the bytes were split");
    char hex[65];
    ms_hex(a, 32, hex);
    FZ_CHECK(strlen(hex) == 64, "sha256: ms_hex");

    /* with a backend: the core buffers, the backend must get every byte once */
    ms_sha256_set_backend(&backend);
    fail_open = false;
    current = NULL;
    hash(p, n, (uint32_t)h0 + 1, b);
    FZ_CHECK(current && current->closed, "sha256: the backend was not finalised");
    FZ_CHECK(current->n == n && (n == 0 || memcmp(current->b, p, n) == 0),
             "sha256: the backend was not handed the input exactly");
    free(current->b);
    free(current);
    current = NULL;
    /* a backend that cannot open: the core's own, same digest */
    fail_open = true;
    hash(p, n, (uint32_t)h0 + 7, b);
    FZ_CHECK(memcmp(a, b, 32) == 0, "sha256: fallback from a failed backend differs");
    /* a hash begun and abandoned releases the backend's context */
    fail_open = false;
    ms_sha256 s;
    ms_sha256_init(&s);
    ms_sha256_update(&s, p, n);
    ms_sha256_discard(&s);
    FZ_CHECK(current && current->closed, "sha256: discard did not close the backend");
    free(current->b);
    free(current);
    current = NULL;
    ms_sha256_set_backend(NULL);
    return 0;
}

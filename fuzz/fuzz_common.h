/* fuzz_common.h — what every mailsec fuzz target shares: a bounded, counting
 * ms_allocator (with optional failure injection), a reader over the fuzzer's
 * input, exact-size heap copies (so ASan sees a read one byte past a chunk),
 * a byte toucher for sinks, a small PRNG for segment splits, and FZ_CHECK for
 * contracts the core's headers promise.
 *
 * Header-only and static: each target is one C file compiled with the core.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ms_core.h"
#include "ms_sasl.h"

#pragma GCC diagnostic ignored "-Wunused-function"

/* A broken contract: say which, then abort so that libFuzzer keeps the input. */
#define FZ_CHECK(cond, what)                                                                    \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "FZ_CHECK failed: %s (%s) at %s:%d\n", what, #cond, __FILE__, __LINE__); \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* ---- a bounded allocator ------------------------------------------------- */

/* The core promises bounded memory whatever the input; a run never needs more
 * than this. Past it (or past fail_after allocations, when set) the allocator
 * says no, as the core's API allows: NULL from realloc_fn. */
#define FZ_MEM_CAP ((size_t)64 << 20)

/* Allocation failures (fz_mem.fail_after) are injected only when the
 * environment says MS_FUZZ_OOM=1: the Wireshark layer's allocator (wmem)
 * never fails, so those paths are a separate hunt (fuzz/README.md). */
static bool fz_oom_enabled(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("MS_FUZZ_OOM");
        on = e && *e && *e != '0';
    }
    return on;
}

typedef struct {
    size_t live;        /* bytes held now */
    size_t peak;
    size_t blocks;      /* blocks held now */
    size_t allocs;      /* successful allocations and reallocations so far */
    size_t fail_after;  /* 0: never fail; else every request after this many fails */
    size_t failed;
} fz_mem;

typedef struct {
    size_t size;
    size_t pad; /* keep the payload 16-byte aligned */
} fz_hdr;

static void *fz_realloc(void *ctx, void *ptr, size_t size)
{
    fz_mem *m = ctx;
    fz_hdr *h = ptr ? (fz_hdr *)ptr - 1 : NULL;
    size_t old = h ? h->size : 0;
    if ((m->fail_after && m->allocs >= m->fail_after && fz_oom_enabled()) || size > FZ_MEM_CAP ||
        m->live - old + size > FZ_MEM_CAP) {
        m->failed++;
        return NULL; /* the old block, if any, stays valid, as with realloc(3) */
    }
    /* always move on realloc, so a stale pointer into the old block is caught */
    fz_hdr *nh = malloc(sizeof *nh + (size ? size : 1));
    if (!nh)
        return NULL;
    nh->size = size;
    if (h) {
        memcpy(nh + 1, h + 1, old < size ? old : size);
        free(h);
    } else {
        m->blocks++;
    }
    m->allocs++;
    m->live = m->live - old + size;
    if (m->live > m->peak)
        m->peak = m->live;
    return nh + 1;
}

static void fz_free(void *ctx, void *ptr)
{
    fz_mem *m = ctx;
    if (!ptr)
        return;
    fz_hdr *h = (fz_hdr *)ptr - 1;
    FZ_CHECK(m->live >= h->size && m->blocks > 0, "allocator: free of a block it did not give");
    m->live -= h->size;
    m->blocks--;
    free(h);
}

static ms_allocator fz_allocator(fz_mem *m)
{
    memset(m, 0, sizeof *m);
    ms_allocator a = { fz_realloc, fz_free, m };
    return a;
}

/* Everything handed out came back. */
static void fz_mem_done(const fz_mem *m)
{
    FZ_CHECK(m->live == 0 && m->blocks == 0, "memory left after the core freed everything");
}

/* ---- reading the input ------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n;
} fz_in;

static bool fz_more(const fz_in *in) { return in->n > 0; }

static uint8_t fz_u8(fz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint16_t fz_u16(fz_in *in)
{
    uint16_t hi = fz_u8(in);
    return (uint16_t)(hi << 8 | fz_u8(in));
}

static uint32_t fz_u32(fz_in *in)
{
    uint32_t v = fz_u16(in);
    return v << 16 | fz_u16(in);
}

/* Up to n bytes (fewer at the end of the input). */
static const uint8_t *fz_bytes(fz_in *in, size_t n, size_t *got)
{
    if (n > in->n)
        n = in->n;
    const uint8_t *p = in->p;
    in->p += n;
    in->n -= n;
    *got = n;
    return p;
}

/* ---- exact-size copies ----------------------------------------------------- */

/* A heap copy of exactly n bytes (a one-byte block for n = 0, never read):
 * the core must not read past what it is given. Free with free(). */
static uint8_t *fz_dup(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    return c;
}

/* ---- touching what a sink is given ---------------------------------------- */

static volatile uint8_t fz_sink_byte;

/* Read every byte: a bad pointer or length shows up under ASan here, inside
 * the callback, where the core said the bytes are valid. */
static void fz_touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    uint8_t acc = 0;
    FZ_CHECK(n == 0 || p != NULL, "a sink was given a length without bytes");
    for (size_t i = 0; i < n; i++)
        acc ^= b[i];
    fz_sink_byte ^= acc;
}

/* A NUL-terminated string the core hands over. */
static size_t fz_touch_str(const char *s)
{
    FZ_CHECK(s != NULL, "a string in a payload is NULL");
    size_t n = strlen(s);
    fz_touch(s, n + 1);
    return n;
}

/* ---- credentials ---------------------------------------------------------- */

/* Every field of a login's credentials within its array, NUL-terminated where
 * set (ms_sasl.h), each byte readable. */
static void fz_check_small(const ms_str_small *f)
{
    FZ_CHECK(f->len <= MS_STR_SMALL, "creds: a small field longer than its array");
    if (f->set) {
        FZ_CHECK(f->s[f->len] == '\0', "creds: a small field is not NUL-terminated");
        fz_touch(f->s, f->len + 1);
    }
}

static void fz_check_large(const ms_str_large *f)
{
    FZ_CHECK(f->len <= MS_STR_LARGE, "creds: a large field longer than its array");
    if (f->set) {
        FZ_CHECK(f->s[f->len] == '\0', "creds: a large field is not NUL-terminated");
        fz_touch(f->s, f->len + 1);
    }
}

static void fz_check_creds(const ms_creds *c)
{
    FZ_CHECK(c != NULL, "creds: NULL");
    FZ_CHECK(c->mech >= MS_MECH_OTHER && c->mech <= MS_MECH_IMAP_LOGIN, "creds: mechanism out of range");
    fz_touch_str(ms_mech_name(c->mech));
    fz_check_small(&c->mech_name);
    fz_check_small(&c->username);
    fz_check_small(&c->authzid);
    fz_check_small(&c->password);
    fz_check_small(&c->realm);
    fz_check_small(&c->workstation);
    fz_check_large(&c->token);
    fz_check_large(&c->hash);
    fz_check_large(&c->material);
}

/* ---- a small PRNG for segment splits ------------------------------------- */

typedef struct {
    uint32_t x;
} fz_rng;

static void fz_rng_seed(fz_rng *r, uint32_t seed)
{
    r->x = seed * 2654435761u ^ 0x9e3779b9u;
    if (!r->x)
        r->x = 1;
}

static uint32_t fz_rng_next(fz_rng *r)
{
    uint32_t x = r->x;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return r->x = x;
}

/* A split point in 1..n (n > 0), biased towards small pieces. */
static size_t fz_piece(fz_rng *r, size_t n)
{
    uint32_t v = fz_rng_next(r);
    size_t lim;
    switch (v & 3) {
    case 0: lim = 1 + (v >> 8) % 4; break;       /* a few bytes: cuts inside tokens */
    case 1: lim = 1 + (v >> 8) % 64; break;
    case 2: lim = 1 + (v >> 8) % 1460; break;    /* an Ethernet MSS */
    default: lim = n; break;                     /* the rest in one go */
    }
    return lim < n ? lim : n;
}

/* Feed p[0..n) to fn in pieces split by seed (0: in one go), each piece a
 * copy of its own, so that reading past a piece is caught by ASan. */
typedef void (*fz_piece_fn)(void *ctx, const uint8_t *p, size_t n);

static void fz_feed_pieces(const uint8_t *p, size_t n, uint32_t seed, fz_piece_fn fn, void *ctx)
{
    fz_rng rng;
    fz_rng_seed(&rng, seed);
    size_t off = 0;
    while (off < n) {
        size_t k = seed ? fz_piece(&rng, n - off) : n - off;
        uint8_t *piece = fz_dup(p + off, k);
        fn(ctx, piece, k);
        free(piece);
        off += k;
    }
}

/* FNV-1a over bytes: a digest of what a sink saw, to compare two feedings. */
static inline void fz_mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = (const uint8_t *)p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 1099511628211ull;
}

#endif

/* fuzz_tlshello.c — the TLS Hello reader (ms_tlshello.h): record headers and
 * handshake messages of both directions, split anywhere, interleaved.
 *
 * Input: h0 split seed; h1 bit 0: write a handshake record header before each
 * direction's bytes (so the fuzzer works on the Hello bodies); then
 * operations: op byte (bit 0 direction), u16 length, bytes.
 * Each direction's bytes are read twice, in the operations' pieces and
 * interleaving, and again per direction in one piece each: the reader must
 * learn the same (SNI, version, cipher) either way, and say "ServerHello
 * complete" exactly once when it does. The SNI stays NUL-terminated within
 * MS_TLS_SNI_MAX; nothing is held once a direction is done.
 */
#include "fuzz_common.h"
#include "ms_tlshello.h"

#define MAX_DIR_BYTES (1u << 20)

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *b, const uint8_t *p, size_t n)
{
    if (!n)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->b = realloc(b->b, cap);
        if (!b->b)
            abort();
        b->cap = cap;
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void check_state(const ms_tlshello *t)
{
    FZ_CHECK(memchr(t->sni, '\0', sizeof t->sni) != NULL, "tlshello: SNI not NUL-terminated within its array");
    for (int d = 0; d < 2; d++) {
        FZ_CHECK(t->hs_len[d] <= MS_TLS_HS_MAX, "tlshello: more handshake bytes than the buffer");
        FZ_CHECK(t->rec_hdr_len[d] < 5, "tlshello: record header buffer");
        if (t->done[d])
            FZ_CHECK(t->hs[d] == NULL, "tlshello: a done direction still holds its buffer");
    }
}

static void feed(ms_tlshello *t, const ms_allocator *a, int dir, const uint8_t *p, size_t n, unsigned *completed)
{
    uint8_t *c = fz_dup(p, n);
    if (ms_tlshello_feed(t, a, dir, c, n)) {
        (*completed)++;
        FZ_CHECK(t->server_hello, "tlshello: completed without a ServerHello");
    }
    free(c);
    check_state(t);
}

static void same(const ms_tlshello *x, const ms_tlshello *y)
{
    FZ_CHECK(x->client_hello == y->client_hello && x->has_sni == y->has_sni &&
                 x->server_hello == y->server_hello && x->version == y->version && x->cipher == y->cipher &&
                 strcmp(x->sni, y->sni) == 0,
             "tlshello: what was learnt depends on how the records were split");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h0 = fz_u8(&in), h1 = fz_u8(&in);
    fz_rng rng;
    fz_rng_seed(&rng, h0);
    fz_mem mem;
    ms_allocator a = fz_allocator(&mem);
    ms_tlshello t;
    memset(&t, 0, sizeof t);
    buf whole[2] = { { 0 }, { 0 } };
    unsigned completed = 0;

    if (h1 & 1) {
        /* a handshake record, as long as can be, before each direction */
        static const uint8_t rec[5] = { 0x16, 0x03, 0x01, 0x3f, 0xff };
        for (int d = 0; d < 2; d++) {
            put(&whole[d], rec, sizeof rec);
            feed(&t, &a, d, rec, sizeof rec, &completed);
        }
    }
    while (fz_more(&in)) {
        int dir = fz_u8(&in) & 1;
        size_t n;
        const uint8_t *p = fz_bytes(&in, fz_u16(&in), &n);
        if (whole[dir].n + n > MAX_DIR_BYTES)
            break;
        put(&whole[dir], p, n);
        while (n) {
            size_t k = fz_piece(&rng, n);
            feed(&t, &a, dir, p, k, &completed);
            p += k;
            n -= k;
        }
    }
    FZ_CHECK(completed <= 1, "tlshello: ServerHello completed more than once");
    FZ_CHECK(completed == 0 || t.server_hello, "tlshello: completed without a ServerHello");

    /* again, each direction in one piece */
    fz_mem mem2;
    ms_allocator a2 = fz_allocator(&mem2);
    ms_tlshello t2;
    memset(&t2, 0, sizeof t2);
    unsigned completed2 = 0;
    for (int d = 0; d < 2; d++)
        feed(&t2, &a2, d, whole[d].b, whole[d].n, &completed2);
    same(&t, &t2);
    FZ_CHECK(completed == completed2, "tlshello: completion depends on the split");

    ms_tlshello_free(&t, &a);
    ms_tlshello_free(&t2, &a2);
    fz_mem_done(&mem);
    fz_mem_done(&mem2);
    free(whole[0].b);
    free(whole[1].b);
    return 0;
}

/* fuzz_smuggle.c — the SMTP end-of-data look-alike scanner (ms_smuggle.h),
 * fed a DATA body in random chunks.
 *
 * Input: h0 split seed, then the body as it crossed the wire.
 * The body is scanned twice, in one piece and in chunks: a byte-at-a-time
 * state machine must report the same hits either way. Each hit is checked:
 * its sequence within MS_SMUGGLE_SEQ_MAX and made of line breaks, control
 * bytes and one dot; the offset inside the body, the sequence's bytes found
 * there; the line after it NUL-terminated within MS_SMUGGLE_LINE_MAX.
 */
#include "fuzz_common.h"
#include "ms_smuggle.h"

typedef struct {
    const uint8_t *body;  /* the whole body, to check offsets against */
    size_t body_len;
    uint64_t h;
    unsigned hits;
} smuggle_ctx;

static void mix(smuggle_ctx *c, const void *p, size_t n)
{
    fz_mix(&c->h, p, n);
}

static void on_hit(void *ctx, const ms_smuggle_hit *hit)
{
    smuggle_ctx *c = ctx;
    FZ_CHECK(hit->seq_len >= 2 && hit->seq_len <= MS_SMUGGLE_SEQ_MAX, "smuggle: sequence length");
    fz_touch(hit->seq, hit->seq_len);
    unsigned dots = 0;
    for (size_t i = 0; i < hit->seq_len; i++) {
        uint8_t b = hit->seq[i];
        dots += b == '.';
        FZ_CHECK(b == '.' || b < 0x20 || b == 0x7f, "smuggle: text inside a sequence");
    }
    FZ_CHECK(dots == 1, "smuggle: a sequence without exactly one dot");
    FZ_CHECK(hit->line_len <= MS_SMUGGLE_LINE_MAX, "smuggle: line longer than MS_SMUGGLE_LINE_MAX");
    FZ_CHECK(hit->line && hit->line[hit->line_len] == '\0', "smuggle: line not NUL-terminated");
    fz_touch(hit->line, hit->line_len + 1);
    /* the first break of a sequence may be the DATA command's own CR LF,
     * before the body: such a sequence is reported at offset 0 */
    size_t skip = 0;
    if (hit->offset == 0 && hit->seq_len >= 2 && hit->seq[0] == '\r' && hit->seq[1] == '\n' &&
        !(c->body_len >= 2 && c->body[0] == '\r' && c->body[1] == '\n'))
        skip = 2;
    uint64_t at = hit->offset;
    FZ_CHECK(at <= c->body_len && hit->seq_len - skip <= c->body_len - at,
             "smuggle: a sequence past the end of the body");
    FZ_CHECK(memcmp(c->body + at, hit->seq + skip, hit->seq_len - skip) == 0,
             "smuggle: the sequence is not what the body holds at its offset");
    c->hits++;
    mix(c, &hit->offset, sizeof hit->offset);
    mix(c, hit->seq, hit->seq_len);
    mix(c, hit->line, hit->line_len);
    mix(c, &hit->command, sizeof hit->command);
}

typedef struct {
    ms_smuggle *z;
    smuggle_ctx *c;
} smuggle_feed_ctx;

static void smuggle_piece(void *ctx, const uint8_t *p, size_t n)
{
    smuggle_feed_ctx *f = ctx;
    ms_smuggle_feed(f->z, p, n, on_hit, f->c);
}

static uint64_t scan(const uint8_t *p, size_t n, uint32_t split, unsigned *hits)
{
    smuggle_ctx c = { p, n, 1469598103934665603ull, 0 };
    ms_smuggle z;
    ms_smuggle_init(&z);
    smuggle_feed_ctx f = { &z, &c };
    fz_feed_pieces(p, n, split, smuggle_piece, &f);
    ms_smuggle_end(&z, on_hit, &c);
    FZ_CHECK(z.fed == n, "smuggle: fed does not count the body");
    *hits = c.hits;
    return c.h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h0 = fz_u8(&in);
    size_t n;
    const uint8_t *p = fz_bytes(&in, in.n, &n);
    unsigned a, b;
    uint64_t one = scan(p, n, 0, &a);
    uint64_t chunked = scan(p, n, (uint32_t)h0 + 1, &b);
    if (one != chunked || a != b) {
        fprintf(stderr, "smuggle: one piece gave %u hits, chunks gave %u\n", a, b);
        FZ_CHECK(0, "smuggle: the hits depend on how the body was split");
    }
    /* no callback: must not crash either */
    ms_smuggle z;
    ms_smuggle_init(&z);
    uint8_t *copy = fz_dup(p, n);
    ms_smuggle_feed(&z, copy, n, NULL, NULL);
    ms_smuggle_end(&z, NULL, NULL);
    free(copy);
    return 0;
}

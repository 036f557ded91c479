/* fuzz_lines.c — the line tokeniser (ms_lines.h) fed in random chunk splits,
 * with counted octets ({n} at a line's end, as IMAP does), early stops,
 * flushes, gaps, resets and cancelled literals.
 *
 * Input: 4 header bytes, then operations.
 *   h0 bit 0: oracle mode: no gaps or resets and lines never cut, so the
 *             delivered lines and octets, with their line ends, must give the
 *             input back byte for byte, and line_at must name where each began
 *      bit 1: pieces mode: long lines come whole, in pieces (a message body);
 *             with the oracle, at the chaos mode's limit, they must still give
 *             the input back
 *   h1        line limit (chaos and pieces modes): 16 + 4 * h1
 *   h2 bit 0: a line ending in {n} announces n counted octets
 *      bits 1-7: the callback says STOP on every k-th line (0: never)
 *   h3        seed of the chunk splits
 *   op % 8: 0-3 feed (u16 length, bytes), 4 gap (u16 lost), 5 flush,
 *           6 reset, 7 cancel counted octets
 */
#include "fuzz_common.h"
#include "ms_lines.h"

typedef struct {
    ms_lines *l;
    bool oracle;
    bool pieces;
    bool literals;
    unsigned stop_every;
    unsigned lines;
    uint8_t *recon;     /* oracle: what the callbacks gave back */
    size_t recon_len, recon_cap;
} lines_ctx;

static void recon_put(lines_ctx *c, const uint8_t *p, size_t n)
{
    if (!c->oracle || !n)
        return;
    FZ_CHECK(c->recon_len + n <= c->recon_cap, "lines: more bytes delivered than fed");
    memcpy(c->recon + c->recon_len, p, n);
    c->recon_len += n;
}

/* "{123}" or "{123+}" at the end of a line. */
static bool literal_at_end(const uint8_t *p, size_t n, uint64_t *count)
{
    if (n < 3 || p[n - 1] != '}')
        return false;
    size_t i = n - 1;
    if (p[i - 1] == '+')
        i--;
    size_t end = i;
    while (i > 0 && p[i - 1] >= '0' && p[i - 1] <= '9')
        i--;
    if (i == end || i == 0 || p[i - 1] != '{' || end - i > 9)
        return false;
    uint64_t v = 0;
    for (size_t k = i; k < end; k++)
        v = v * 10 + (uint64_t)(p[k] - '0');
    *count = v;
    return true;
}

static ms_lines_verdict on_line(void *ctx, const uint8_t *line, size_t len, unsigned flags, size_t full)
{
    lines_ctx *c = ctx;
    ms_lines *l = c->l;
    fz_touch(line, len);
    FZ_CHECK(len <= full, "lines: kept more than the line had");
    if (c->oracle && !(flags & (MS_LINE_PIECE | MS_LINE_CONT)))
        FZ_CHECK(l->line_at == c->recon_len, "lines: line_at is not where the line began");
    if (flags & MS_LINE_RAW) {
        FZ_CHECK(!(flags & (MS_LINE_CRLF | MS_LINE_BARE_LF | MS_LINE_TRUNCATED | MS_LINE_UNTERMINATED)),
                 "lines: counted octets with line flags");
        FZ_CHECK(len == full && len > 0, "lines: an empty or cut piece of counted octets");
        FZ_CHECK(((flags & MS_LINE_RAW_END) != 0) == (l->raw_left == 0), "lines: RAW_END disagrees with raw_left");
        recon_put(c, line, len);
        return MS_LINES_CONTINUE;
    }
    FZ_CHECK(!(flags & MS_LINE_RAW_END), "lines: RAW_END on a line");
    bool crlf = flags & MS_LINE_CRLF, lf = flags & MS_LINE_BARE_LF, unterm = flags & MS_LINE_UNTERMINATED;
    if (flags & (MS_LINE_PIECE | MS_LINE_CONT)) {
        FZ_CHECK(c->pieces || l->pieced || (flags & MS_LINE_CONT), "lines: a piece outside pieces mode");
        FZ_CHECK(!(flags & MS_LINE_TRUNCATED), "lines: a piece cut");
        if (flags & MS_LINE_PIECE) {
            FZ_CHECK(!crlf && !lf && !unterm, "lines: a piece with a line end");
            FZ_CHECK(len == full && len > 0 && len < l->max, "lines: a piece's length");
        } else {
            FZ_CHECK((int)crlf + (int)lf + (int)unterm == 1, "lines: a line needs exactly one kind of end");
        }
        if (c->oracle) {
            recon_put(c, line, len);
            recon_put(c, (const uint8_t *)(crlf ? "\r\n" : lf ? "\n" : ""), crlf ? 2 : lf ? 1 : 0);
        }
        return MS_LINES_CONTINUE;
    }
    FZ_CHECK(len <= l->max || c->pieces, "lines: a line longer than the limit");
    FZ_CHECK((int)crlf + (int)lf + (int)unterm == 1, "lines: a line needs exactly one kind of end");
    FZ_CHECK(((flags & MS_LINE_TRUNCATED) != 0) == (len < full), "lines: TRUNCATED disagrees with the lengths");
    if (c->oracle) {
        FZ_CHECK(len == full, "lines: oracle mode cut a line");
        recon_put(c, line, len);
        recon_put(c, (const uint8_t *)(crlf ? "\r\n" : lf ? "\n" : ""), crlf ? 2 : lf ? 1 : 0);
    }
    uint64_t count;
    if (c->literals && !unterm && literal_at_end(line, len, &count) && count)
        ms_lines_expect_raw(l, count);
    c->lines++;
    if (c->stop_every && c->lines % c->stop_every == 0)
        return MS_LINES_STOP;
    return MS_LINES_CONTINUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h0 = fz_u8(&in), h1 = fz_u8(&in), h2 = fz_u8(&in), h3 = fz_u8(&in);
    fz_mem mem;
    ms_allocator a = fz_allocator(&mem);
    ms_lines l;
    lines_ctx c;
    memset(&c, 0, sizeof c);
    c.l = &l;
    c.oracle = h0 & 1;
    c.pieces = h0 & 2;
    c.literals = h2 & 1;
    c.stop_every = h2 >> 1;
    size_t max = c.oracle && !c.pieces ? size + 16 : 16 + 4 * (size_t)h1;
    ms_lines_init(&l, &a, max);
    l.pieces = c.pieces;
    /* oracle: the fed bytes, and room for what comes back */
    uint8_t *fed = c.oracle ? malloc(size + 1) : NULL;
    size_t fed_len = 0;
    if (c.oracle) {
        c.recon_cap = size;
        c.recon = malloc(size + 1);
    }
    uint64_t total = 0; /* bytes fed and lost */
    fz_rng rng;
    fz_rng_seed(&rng, h3);

    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in) % 8;
        if (c.oracle && (op == 4 || op == 6))
            op = 0;
        switch (op) {
        case 4: {
            uint16_t lost = fz_u16(&in);
            ms_gap_kind k = ms_lines_gap(&l, lost);
            FZ_CHECK(k == MS_GAP_IN_LINES || k == MS_GAP_IN_RAW || k == MS_GAP_ENDED_RAW, "lines: gap kind");
            total += lost;
            break;
        }
        case 5:
            (void)ms_lines_flush(&l, on_line, &c);
            break;
        case 6:
            ms_lines_reset(&l);
            break;
        case 7:
            ms_lines_cancel_raw(&l);
            break;
        default: {
            size_t n;
            const uint8_t *p = fz_bytes(&in, fz_u16(&in), &n);
            if (c.oracle) {
                memcpy(fed + fed_len, p, n);
                fed_len += n;
            }
            total += n;
            while (n) {
                size_t k = fz_piece(&rng, n);
                uint8_t *piece = fz_dup(p, k);
                size_t off = 0;
                while (off < k) {
                    unsigned before = c.lines;
                    size_t used = ms_lines_feed(&l, piece + off, k - off, on_line, &c);
                    FZ_CHECK(used <= k - off, "lines: consumed more than given");
                    /* less than all only when the callback just said STOP */
                    if (used < k - off)
                        FZ_CHECK(c.stop_every && c.lines != before && c.lines % c.stop_every == 0,
                                 "lines: stopped without STOP");
                    off += used;
                }
                free(piece);
                p += k;
                n -= k;
            }
            break;
        }
        }
        FZ_CHECK(l.fed == total, "lines: fed does not count the bytes fed and lost");
        FZ_CHECK(l.cap <= l.max && l.len <= l.max, "lines: buffer past its limit");
        FZ_CHECK(ms_lines_pending(&l) == (l.seen > 0 && ms_lines_raw_left(&l) == 0), "lines: pending");
    }
    (void)ms_lines_flush(&l, on_line, &c);
    if (c.oracle) {
        /* counted octets still expected are not lost: they never came */
        FZ_CHECK(c.recon_len == fed_len && memcmp(c.recon, fed, fed_len) == 0,
                 "lines: the delivered lines do not give the input back");
    }
    ms_lines_free(&l);
    fz_mem_done(&mem);
    free(fed);
    free(c.recon);
    return 0;
}

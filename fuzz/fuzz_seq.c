/* fuzz_seq.c — one direction of TCP put back in order (ms_seq.h): segments at
 * any sequence number (holes, overlaps, reordering, wrap-around),
 * retransmissions carrying other bytes, segments the capture cut short, ACKs,
 * SYNs and flushes.
 *
 * Input: 6 header bytes, then operations.
 *   h0 bit 0: consistent mode: every segment carries the stream's true bytes
 *             (byte at sequence number x is TRUE(x)), so whatever is delivered
 *             must be exactly those bytes at the positions the lost counts say
 *   h1..h4    the initial sequence number (big-endian)
 *   h5        seed of the segment splits
 *   op % 8: 0-2 segment at base + s16 offset, u16 length, u8 cut (captured =
 *               length - cut), bytes (chaos mode); the base then moves to its end
 *           3   retransmission: back u16 from the base, length u16, bytes
 *           4   ACK at base + s16
 *           5   SYN at base + s16 (a new connection: positions start again)
 *           6   flush (RST)
 *           7   a far jump: segment at base + s32, u16 length
 * Checks, whatever the mode: held pieces stay within the hold bounds; the
 * bytes delivered plus those reported lost plus those still owed equal how far
 * the stream moved (delivered position == next - lost, modulo 2^32). In
 * consistent mode no overlap may be taken for a conflict.
 */
#include "fuzz_common.h"
#include "ms_seq.h"

#define TRUE_BYTE(x) ((uint8_t)(((uint32_t)(x) * 2654435761u) >> 24))

typedef struct {
    bool consistent;
    bool have_pos;
    uint32_t pos;       /* sequence number of the next byte the consumer expects */
    uint64_t delivered;
} seq_ctx;

static void deliver(void *ctx, const uint8_t *p, size_t n, uint64_t lost)
{
    seq_ctx *c = ctx;
    fz_touch(p, n);
    FZ_CHECK(c->have_pos, "seq: delivery before the stream began");
    FZ_CHECK(n > 0 || lost > 0, "seq: an empty delivery");
    c->pos += (uint32_t)lost;
    if (c->consistent)
        for (size_t i = 0; i < n; i++)
            FZ_CHECK(p[i] == TRUE_BYTE(c->pos + (uint32_t)i), "seq: a byte delivered at the wrong position");
    c->pos += (uint32_t)n;
    c->delivered += n;
}

/* Bytes of a segment: the true ones, or the input's. */
static uint8_t *segment_bytes(seq_ctx *c, fz_in *in, uint32_t seq, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        abort();
    size_t got = 0;
    if (c->consistent) {
        for (size_t i = 0; i < n; i++)
            b[i] = TRUE_BYTE(seq + (uint32_t)i);
    } else {
        const uint8_t *p = fz_bytes(in, n, &got);
        memcpy(b, p, got);
        for (size_t i = got; i < n; i++)
            b[i] = (uint8_t)(seq + i); /* the input ran out: something different */
    }
    return b;
}

static void check(const ms_seq *s, const seq_ctx *c)
{
    FZ_CHECK(s->held_count <= MS_SEQ_HOLD_SEGMENTS, "seq: more segments held than the bound");
    FZ_CHECK(s->held_bytes <= MS_SEQ_HOLD_BYTES, "seq: more bytes held than the bound");
    FZ_CHECK((s->held_count == 0) == (s->held == NULL), "seq: held_count disagrees with the list");
    if (s->init && c->have_pos)
        FZ_CHECK((uint32_t)(s->next - (uint32_t)s->lost) == c->pos,
                 "seq: delivered + lost does not add up to how far the stream moved");
}

/* Mirror where the consumer's positions start: the first segment or a SYN. */
static void before_segment(ms_seq *s, seq_ctx *c, uint32_t seq, uint32_t len)
{
    if (!s->init && len > 0) {
        c->have_pos = true;
        c->pos = seq;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    seq_ctx c;
    memset(&c, 0, sizeof c);
    c.consistent = fz_u8(&in) & 1;
    uint32_t base = fz_u32(&in);
    fz_rng rng;
    fz_rng_seed(&rng, fz_u8(&in));
    fz_mem mem;
    ms_allocator a = fz_allocator(&mem);
    ms_seq s;
    ms_seq_init(&s, &a);

    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in) % 8;
        switch (op) {
        case 3: {
            uint16_t back = fz_u16(&in);
            uint16_t len = fz_u16(&in) % 4096;
            uint32_t seq = base - back;
            uint8_t *b = segment_bytes(&c, &in, seq, len);
            before_segment(&s, &c, seq, len);
            ms_seq_segment(&s, seq, b, len, len, deliver, &c);
            free(b);
            break;
        }
        case 4:
            ms_seq_ack(&s, base + (uint32_t)(int32_t)(int16_t)fz_u16(&in), deliver, &c);
            break;
        case 5: {
            uint32_t isn = base + (uint32_t)(int32_t)(int16_t)fz_u16(&in);
            ms_seq_syn(&s, isn);
            c.have_pos = true;
            c.pos = isn + 1u;
            base = isn + 1u;
            break;
        }
        case 6:
            ms_seq_flush(&s, deliver, &c);
            break;
        default: {
            uint32_t seq;
            uint32_t len;
            size_t cut = 0;
            if (op == 7) {
                seq = base + fz_u32(&in);
                len = fz_u16(&in) % 2048;
            } else {
                seq = base + (uint32_t)(int32_t)(int16_t)fz_u16(&in) / 16;
                len = fz_u16(&in) % 4096;
                cut = fz_u8(&in);
                if (cut > len)
                    cut = len;
            }
            size_t captured = len - cut;
            uint8_t *b = segment_bytes(&c, &in, seq, captured);
            /* the capture gives it in pieces only in the sense of its splits:
             * a segment is one call; split it into several segments */
            size_t off = 0;
            while (off < captured || (captured == 0 && off == 0)) {
                size_t k = captured ? fz_piece(&rng, captured - off) : 0;
                uint32_t wire = off + k == captured ? (uint32_t)(len - off) : (uint32_t)k;
                uint8_t *piece = fz_dup(b + off, k);
                before_segment(&s, &c, seq + (uint32_t)off, wire);
                ms_seq_segment(&s, seq + (uint32_t)off, piece, k, wire, deliver, &c);
                free(piece);
                off += k;
                if (!captured)
                    break;
            }
            free(b);
            base = seq + len;
            break;
        }
        }
        check(&s, &c);
        FZ_CHECK(ms_seq_waiting(&s) == (s.held != NULL), "seq: waiting");
        uint64_t conflict;
        if (ms_seq_take_conflict(&s, &conflict))
            FZ_CHECK(!c.consistent, "seq: a conflict where every copy carries the same bytes");
    }
    ms_seq_flush(&s, deliver, &c);
    check(&s, &c);
    FZ_CHECK(!ms_seq_waiting(&s), "seq: something still held after a flush");
    ms_seq_free(&s);
    fz_mem_done(&mem);
    return 0;
}

/* ms_seq.c — one direction of a TCP stream put back in order (see ms_seq.h).
 *
 * Held bytes are kept as pieces: sorted by sequence number, never
 * overlapping. A piece is an original (its segment carried only bytes nobody
 * had shown before) or a retransmission (its segment overlapped bytes
 * already delivered or held as originals). Where copies disagree, originals
 * win: a retransmission's bytes fill only what no original carries, and
 * bytes that only a retransmission carried wait (gated) until an original
 * replaces them or something shows the stream moved past them — the peer's
 * acknowledgement, a reset, a full hold, or a flush.
 */
#include "ms_seq.h"

#include <string.h>

struct ms_seq_held {
    ms_seq_held *next;
    uint32_t seq;
    uint32_t len;      /* bytes it stands for on the wire (a cut segment's lost tail included) */
    size_t captured;   /* bytes of it in data */
    bool retrans;      /* carried only by a retransmission */
    uint8_t data[];
};

/* Serial-number arithmetic: distances wrap at 2^32. */
static int32_t seq_diff(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}

static uint32_t piece_end(const ms_seq_held *h)
{
    return h->seq + (uint32_t)h->captured;
}

void ms_seq_init(ms_seq *s, const ms_allocator *a)
{
    memset(s, 0, sizeof *s);
    s->alloc = a;
}

static void free_piece(ms_seq *s, ms_seq_held *h)
{
    s->held_count--;
    s->held_bytes -= h->captured;
    s->alloc->free_fn(s->alloc->ctx, h);
}

static void drop_held(ms_seq *s)
{
    while (s->held) {
        ms_seq_held *h = s->held;
        s->held = h->next;
        free_piece(s, h);
    }
}

void ms_seq_free(ms_seq *s)
{
    drop_held(s);
}

void ms_seq_syn(ms_seq *s, uint32_t seq)
{
    if (s->init && s->held)
        drop_held(s); /* a new connection on the same addresses and ports */
    s->init = true;
    s->next = seq + 1u;
    s->lost = 0;
    memset(s->recent, 0, sizeof s->recent);
}

bool ms_seq_waiting(const ms_seq *s)
{
    return s->held != NULL;
}

bool ms_seq_take_conflict(ms_seq *s, uint64_t *bytes)
{
    *bytes = s->conflict_bytes;
    s->conflict_bytes = 0;
    return *bytes != 0;
}

/* A checksum of a delivered range: word at a time, enough to tell another
 * copy (not a defence against a chosen collision, which needs the first
 * copy's bytes and this function both). */
static uint64_t bytes_sum(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static void remember(ms_seq *s, uint32_t seq, const uint8_t *p, size_t n)
{
    ms_seq_recent *r = &s->recent[s->recent_at];
    s->recent_at = (s->recent_at + 1) % MS_SEQ_RECENT;
    r->seq = seq;
    r->len = (uint32_t)n;
    r->sum = bytes_sum(p, n);
}

/* A segment over bytes already delivered: each remembered segment it covers
 * whole must carry the same bytes. */
static void check_delivered(ms_seq *s, uint32_t seq, const uint8_t *p, size_t captured)
{
    uint32_t upto = seq + (uint32_t)captured;
    if (seq_diff(upto, s->next) > 0)
        upto = s->next;
    for (unsigned i = 0; i < MS_SEQ_RECENT; i++) {
        const ms_seq_recent *r = &s->recent[i];
        if (r->len == 0 || seq_diff(r->seq, seq) < 0 || seq_diff(upto, r->seq + r->len) < 0)
            continue;
        if (bytes_sum(p + (uint32_t)(r->seq - seq), r->len) != r->sum)
            s->conflict_bytes += r->len;
    }
}

/* A segment over held bytes: where they overlap, they must agree. */
static void check_held(ms_seq *s, uint32_t seq, const uint8_t *p, size_t captured)
{
    uint32_t end = seq + (uint32_t)captured;
    for (const ms_seq_held *h = s->held; h && seq_diff(h->seq, end) < 0; h = h->next) {
        uint32_t from = seq_diff(h->seq, seq) > 0 ? h->seq : seq;
        uint32_t to = seq_diff(piece_end(h), end) < 0 ? piece_end(h) : end;
        if (seq_diff(to, from) <= 0)
            continue;
        size_t n = (uint32_t)(to - from);
        if (memcmp(p + (uint32_t)(from - seq), h->data + (uint32_t)(from - h->seq), n) != 0)
            s->conflict_bytes += n;
    }
}

static void deliver(ms_seq *s, const uint8_t *p, size_t n, ms_seq_deliver_fn cb, void *ctx)
{
    uint64_t lost = s->lost;
    s->lost = 0;
    cb(ctx, p, n, lost);
}

/* A segment that does not start after s->next: deliver its new bytes. */
static void take_in_order(ms_seq *s, uint32_t seq, const uint8_t *p, size_t captured, uint32_t len,
                          ms_seq_deliver_fn cb, void *ctx)
{
    uint32_t behind = s->next - seq;
    if (behind >= len)
        return; /* all delivered already: the first copy stands */
    uint32_t end = seq + len;
    if (behind < captured) {
        s->next = seq + (uint32_t)captured;
        remember(s, seq + behind, p + behind, captured - behind);
        deliver(s, p + behind, captured - behind, cb, ctx);
    }
    if (seq_diff(end, s->next) > 0) {
        /* the capture cut the segment: its tail is lost */
        s->lost += (uint32_t)(end - s->next);
        s->next = end;
    }
}

/* Deliver held pieces that are now in order. A retransmission's piece waits
 * for an original unless upto says the stream is known to have moved past it. */
static void release(ms_seq *s, bool force, uint32_t upto, ms_seq_deliver_fn cb, void *ctx)
{
    while (s->held && seq_diff(s->held->seq, s->next) <= 0) {
        ms_seq_held *h = s->held;
        if (h->retrans && !force && seq_diff(upto, piece_end(h)) < 0)
            break;
        s->held = h->next;
        take_in_order(s, h->seq, h->data, h->captured, h->len, cb, ctx);
        free_piece(s, h);
    }
}

void ms_seq_flush(ms_seq *s, ms_seq_deliver_fn cb, void *ctx)
{
    while (s->held) {
        if (seq_diff(s->held->seq, s->next) > 0) {
            s->lost += (uint32_t)(s->held->seq - s->next);
            s->next = s->held->seq;
        }
        release(s, true, 0, cb, ctx);
    }
}

static ms_seq_held *new_piece(ms_seq *s, uint32_t seq, const uint8_t *p, size_t n, uint32_t len,
                              bool retrans)
{
    ms_seq_held *h = s->alloc->realloc_fn(s->alloc->ctx, NULL, sizeof *h + n);
    if (!h)
        return NULL;
    h->seq = seq;
    h->len = len;
    h->captured = n;
    h->retrans = retrans;
    if (n)
        memcpy(h->data, p, n);
    return h;
}

/* Does [from, end) overlap a held original? */
static bool overlaps_original(const ms_seq *s, uint32_t from, uint32_t end)
{
    for (const ms_seq_held *h = s->held; h && seq_diff(h->seq, end) < 0; h = h->next)
        if (!h->retrans && seq_diff(piece_end(h), from) > 0)
            return true;
    return false;
}

/* An original arrived for [from, end): retransmission bytes there give way.
 * Their parts outside the range stay, as new pieces. False if out of memory. */
static bool yield_retransmissions(ms_seq *s, uint32_t from, uint32_t end)
{
    ms_seq_held **at = &s->held;
    while (*at && seq_diff((*at)->seq, end) < 0) {
        ms_seq_held *h = *at;
        if (!h->retrans || seq_diff(piece_end(h), from) <= 0) {
            at = &h->next;
            continue;
        }
        ms_seq_held *left = NULL, *right = NULL;
        if (seq_diff(from, h->seq) > 0)
            left = new_piece(s, h->seq, h->data, (uint32_t)(from - h->seq), (uint32_t)(from - h->seq), true);
        if (seq_diff(piece_end(h), end) > 0) {
            uint32_t off = end - h->seq;
            right = new_piece(s, end, h->data + off, h->captured - off, h->len - off, true);
        }
        *at = h->next;
        free_piece(s, h);
        if (right) {
            right->next = *at;
            *at = right;
            s->held_count++;
            s->held_bytes += right->captured;
        }
        if (left) {
            left->next = *at;
            *at = left;
            s->held_count++;
            s->held_bytes += left->captured;
            at = &left->next;
        }
        if (right)
            at = &right->next;
    }
    return true;
}

/* Keep the bytes of a segment that nothing delivered or held covers yet, as
 * pieces in sequence order. False when the hold is full (nothing is kept). */
static bool hold(ms_seq *s, uint32_t seq, const uint8_t *p, size_t captured, uint32_t len, bool retrans)
{
    uint32_t cur = seq, end = seq + (uint32_t)captured;
    if (seq_diff(s->next, cur) > 0)
        cur = s->next; /* delivered bytes stand */
    /* Count first, so that a full hold keeps nothing. */
    unsigned pieces = 0;
    size_t bytes = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t c = cur;
        ms_seq_held **at = &s->held;
        while (seq_diff(end, c) > 0) {
            while (*at && seq_diff(piece_end(*at), c) <= 0)
                at = &(*at)->next; /* held pieces wholly before c */
            uint32_t stop = end;
            if (*at && seq_diff((*at)->seq, stop) < 0)
                stop = (*at)->seq;
            if (seq_diff(stop, c) > 0) {
                size_t n = (size_t)(uint32_t)(stop - c);
                if (pass == 0) {
                    pieces++;
                    bytes += n;
                } else {
                    /* the last piece of a cut segment keeps its lost tail */
                    uint32_t wire = stop == end ? (uint32_t)n + (len - (uint32_t)captured) : (uint32_t)n;
                    ms_seq_held *h = new_piece(s, c, p + (uint32_t)(c - seq), n, wire, retrans);
                    if (!h)
                        return true; /* out of memory: the rest is lost like a hole */
                    h->next = *at;
                    *at = h;
                    at = &h->next;
                    s->held_count++;
                    s->held_bytes += n;
                }
                c = stop;
            }
            if (*at && seq_diff(c, (*at)->seq) >= 0) {
                if (seq_diff(piece_end(*at), c) > 0)
                    c = piece_end(*at); /* already held */
                at = &(*at)->next;
            }
        }
        if (pass == 0 && (s->held_count + pieces > MS_SEQ_HOLD_SEGMENTS ||
                          s->held_bytes + bytes > MS_SEQ_HOLD_BYTES))
            return false;
    }
    return true;
}

void ms_seq_segment(ms_seq *s, uint32_t seq, const uint8_t *p, size_t captured, uint32_t len,
                    ms_seq_deliver_fn cb, void *ctx)
{
    if (len == 0)
        return;
    if (captured > len)
        captured = len;
    if (!s->init) {
        s->init = true;
        s->next = seq;
    }
    uint32_t end = seq + (uint32_t)captured;
    bool overlaps_delivered = seq_diff(s->next, seq) > 0;
    /* a keep-alive repeats the last byte sent, often as a zero: not a copy */
    bool keep_alive = len == 1 && seq == s->next - 1u;
    if (overlaps_delivered && captured && !keep_alive)
        check_delivered(s, seq, p, captured);
    if (seq_diff(s->next, seq) >= 0 && seq_diff(s->next, seq + len) >= 0)
        return; /* nothing new: a pure retransmission, or a keep-alive */
    /* The common case, in order with nothing held: straight through, no copy. */
    if (!overlaps_delivered && seq == s->next && (!s->held || seq_diff(end, s->held->seq) <= 0)) {
        take_in_order(s, seq, p, captured, len, cb, ctx);
        release(s, false, s->next, cb, ctx);
        return;
    }
    if (captured)
        check_held(s, seq, p, captured);
    uint32_t from = overlaps_delivered ? s->next : seq;
    bool retrans = overlaps_delivered || overlaps_original(s, from, end);
    if (!retrans)
        yield_retransmissions(s, from, end);
    if (!hold(s, seq, p, captured, len, retrans)) {
        /* Nothing more can be held: give up the holes before this segment. */
        ms_seq_flush(s, cb, ctx);
        if (seq_diff(seq, s->next) > 0) {
            s->lost += (uint32_t)(seq - s->next);
            s->next = seq;
        }
        take_in_order(s, seq, p, captured, len, cb, ctx);
    }
    release(s, false, s->next, cb, ctx);
}

void ms_seq_ack(ms_seq *s, uint32_t ack, ms_seq_deliver_fn cb, void *ctx)
{
    if (!s->init || seq_diff(ack, s->next) <= 0)
        return;
    /* The peer has everything before ack: what we hold of it is the stream
     * (retransmitted bytes included), and what we lack of it is lost. */
    for (;;) {
        release(s, false, ack, cb, ctx);
        if (seq_diff(ack, s->next) <= 0)
            break;
        uint32_t upto = ack;
        if (s->held && seq_diff(s->held->seq, ack) < 0)
            upto = s->held->seq;
        if (seq_diff(upto, s->next) <= 0)
            break;
        s->lost += (uint32_t)(upto - s->next);
        s->next = upto;
    }
}

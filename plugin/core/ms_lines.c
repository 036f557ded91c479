/* ms_lines.c — bounded line tokeniser (see ms_lines.h). */
#include "ms_lines.h"

#include <string.h>

#define MS_LINES_MIN_CAP 256

/* What a line is when its buffer could not be allocated: empty, never NULL. */
static const uint8_t no_bytes[1];

void ms_lines_init(ms_lines *l, const ms_allocator *a, size_t max_line)
{
    memset(l, 0, sizeof *l);
    l->alloc = a;
    l->max = max_line < 16 ? 16 : max_line;
}

void ms_lines_free(ms_lines *l)
{
    if (l->buf)
        l->alloc->free_fn(l->alloc->ctx, l->buf);
    l->buf = NULL;
    l->cap = l->len = l->seen = 0;
}

void ms_lines_reset(ms_lines *l)
{
    l->len = 0;
    l->seen = 0;
    l->cr_pending = false;
    l->raw_left = 0;
    l->pieced = false;
}

void ms_lines_expect_raw(ms_lines *l, uint64_t n)
{
    l->raw_left = n;
}

uint64_t ms_lines_raw_left(const ms_lines *l)
{
    return l->raw_left;
}

void ms_lines_cancel_raw(ms_lines *l)
{
    l->raw_left = 0;
}

ms_gap_kind ms_lines_gap(ms_lines *l, uint64_t lost)
{
    l->fed += lost;
    if (l->raw_left > lost) {
        l->raw_left -= lost;
        return MS_GAP_IN_RAW;
    }
    ms_gap_kind k = l->raw_left ? MS_GAP_ENDED_RAW : MS_GAP_IN_LINES;
    ms_lines_reset(l);
    return k;
}

/* Grow the buffer to hold want bytes (at most l->max); false if it cannot. */
static bool reserve(ms_lines *l, size_t want)
{
    if (want <= l->cap)
        return true;
    size_t cap = l->cap ? l->cap : MS_LINES_MIN_CAP;
    while (cap < want)
        cap *= 2;
    if (cap > l->max)
        cap = l->max;
    uint8_t *nb = l->alloc->realloc_fn(l->alloc->ctx, l->buf, cap);
    if (!nb)
        return false;
    l->buf = nb;
    l->cap = cap;
    return true;
}

/* Keep at most l->max bytes of the current line; count the rest in seen. In
 * pieces mode a full buffer goes out as a piece instead (all but its last
 * byte, which may be the CR of the line's end). */
static void append_bounded(ms_lines *l, const uint8_t *p, size_t n, ms_line_cb cb, void *ctx)
{
    l->seen += n;
    if (n == 0)
        return;
    l->cr_pending = (p[n - 1] == '\r');
    while (n > 0) {
        if (l->len >= l->max) {
            if (!(l->pieces || l->pieced))
                return; /* cut: the tail is only counted */
            unsigned flags = MS_LINE_PIECE | (l->pieced ? MS_LINE_CONT : 0);
            l->pieced = true;
            (void)cb(ctx, l->buf, l->len - 1, flags, l->len - 1);
            l->buf[0] = l->buf[l->len - 1];
            l->len = 1;
        }
        size_t room = l->max - l->len;
        size_t take = n < room ? n : room;
        if (!reserve(l, l->len + take))
            return; /* out of memory: keep what we have, drop the rest of the line */
        memcpy(l->buf + l->len, p, take);
        l->len += take;
        p += take;
        n -= take;
    }
}

static ms_lines_verdict deliver(ms_lines *l, const uint8_t *line, size_t kept, size_t full,
                                bool crlf, ms_line_cb cb, void *ctx)
{
    unsigned flags = crlf ? MS_LINE_CRLF : MS_LINE_BARE_LF;
    if (!line) {
        line = no_bytes;
        kept = 0;
    }
    if (l->pieced) {
        /* the last part of a line that went out in pieces: the buffer holds
         * just that part, the CR included */
        l->pieced = false;
        if (crlf && kept)
            kept--;
        return cb(ctx, line, kept, flags | MS_LINE_CONT, crlf ? full - 1 : full);
    }
    if (crlf) {
        /* The CR belongs to the terminator, not to the line. */
        full--;
        if (kept > full)
            kept = full;
    }
    if (kept < full)
        flags |= MS_LINE_TRUNCATED;
    return cb(ctx, line, kept, flags, full);
}

bool ms_lines_pending(const ms_lines *l)
{
    return l->seen > 0 && l->raw_left == 0;
}

ms_lines_verdict ms_lines_flush(ms_lines *l, ms_line_cb cb, void *ctx)
{
    if (!ms_lines_pending(l))
        return MS_LINES_CONTINUE;
    size_t kept = l->len, full = l->seen;
    unsigned flags = MS_LINE_UNTERMINATED;
    if (l->pieced)
        flags |= MS_LINE_CONT; /* the rest of a line that went out in pieces */
    else if (kept < full)
        flags |= MS_LINE_TRUNCATED;
    l->len = 0;
    l->seen = 0;
    l->cr_pending = false;
    l->pieced = false;
    if (!l->buf)
        kept = 0;
    return cb(ctx, l->buf ? l->buf : no_bytes, kept, flags, full);
}

size_t ms_lines_feed(ms_lines *l, const uint8_t *data, size_t n, ms_line_cb cb, void *ctx)
{
    size_t i = 0;
    uint64_t base = l->fed;
    l->fed += n; /* the whole input, unless the callback stops early (below) */
    while (i < n) {
        if (l->raw_left) {
            l->line_at = base + i;
            size_t take = (uint64_t)(n - i) < l->raw_left ? n - i : (size_t)l->raw_left;
            l->raw_left -= take;
            unsigned flags = MS_LINE_RAW | (l->raw_left == 0 ? MS_LINE_RAW_END : 0);
            ms_lines_verdict v = cb(ctx, data + i, take, flags, take);
            i += take;
            if (v == MS_LINES_STOP) {
                l->fed = base + i;
                return i;
            }
            continue;
        }
        if (l->seen == 0)
            l->line_at = base + i;
        const uint8_t *lf = memchr(data + i, '\n', n - i);
        if (!lf) {
            append_bounded(l, data + i, n - i, cb, ctx);
            return n;
        }
        size_t j = (size_t)(lf - data);
        ms_lines_verdict v;
        if (l->seen == 0) {
            /* Whole line inside this input: hand it over without copying. */
            size_t full = j - i;
            bool crlf = full > 0 && data[j - 1] == '\r';
            size_t kept = full < l->max || l->pieces ? full : l->max; /* pieces: whole, it is not copied */
            v = deliver(l, data + i, kept, full, crlf, cb, ctx);
        } else {
            append_bounded(l, data + i, j - i, cb, ctx);
            bool crlf = l->cr_pending;
            v = deliver(l, l->buf, l->len, l->seen, crlf, cb, ctx);
            l->len = 0;
            l->seen = 0;
            l->cr_pending = false;
        }
        i = j + 1;
        if (v == MS_LINES_STOP) {
            l->fed = base + i;
            return i;
        }
    }
    return i;
}

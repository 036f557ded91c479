/* ms_strbuf.h — the one bounded string builder of the core, writing straight
 * into a field's array (ms_str_small, ms_str_large).
 *
 * Once one piece does not fit, everything after it is dropped too, so a value
 * is never followed by a later, smaller piece. What happens to the piece that
 * does not fit is the caller's choice: cut to the room left (a password, a
 * token: keep what fits), or dropped whole (whole = true: a hashcat line or a
 * UTF-8 sequence must never end in half a hex pair or half a character).
 */
#ifndef MS_STRBUF_H
#define MS_STRBUF_H

#include <string.h>

#include "ms_sasl.h"

typedef struct {
    char *s;
    size_t cap;  /* bytes usable, excluding the NUL */
    size_t len;
    bool trunc;
    bool whole;  /* never cut a piece: drop it whole */
} ms_strbuf;

static inline void ms_sb_put(ms_strbuf *b, const void *p, size_t n)
{
    if (b->trunc || n == 0)
        return;
    size_t room = b->cap - b->len;
    if (n > room) {
        b->trunc = true;
        if (b->whole)
            return;
        n = room;
    }
    if (n)
        memcpy(b->s + b->len, p, n);
    b->len += n;
}

static inline void ms_sb_puts(ms_strbuf *b, const char *s)
{
    ms_sb_put(b, s, strlen(s));
}

static inline void ms_sb_putc(ms_strbuf *b, char ch)
{
    ms_sb_put(b, &ch, 1);
}

/* Lower-case hex of bytes, a pair at a time. */
static inline void ms_sb_hex(ms_strbuf *b, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n && !b->trunc; i++) {
        char pair[2] = { digits[p[i] >> 4], digits[p[i] & 15] };
        ms_sb_put(b, pair, 2);
    }
}

static inline ms_strbuf ms_sb_small(ms_str_small *f, bool whole)
{
    ms_strbuf b = { f->s, MS_STR_SMALL, 0, false, whole };
    return b;
}

static inline ms_strbuf ms_sb_large(ms_str_large *f, bool whole)
{
    ms_strbuf b = { f->s, MS_STR_LARGE, 0, false, whole };
    return b;
}

static inline void ms_sb_done_small(ms_str_small *f, const ms_strbuf *b)
{
    f->s[b->len] = '\0';
    f->len = b->len;
    f->set = true;
    f->truncated = b->trunc;
}

static inline void ms_sb_done_large(ms_str_large *f, const ms_strbuf *b)
{
    f->s[b->len] = '\0';
    f->len = b->len;
    f->set = true;
    f->truncated = b->trunc;
}

#endif

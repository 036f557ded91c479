/* ms_smuggle.c — end-of-data look-alikes (see ms_smuggle.h). */
#include "ms_smuggle.h"
#include "ms_detect.h"

#include <string.h>

enum {
    Z_IDLE = 0,  /* inside a line */
    Z_BREAK,     /* just after a line break: cand holds it */
    Z_PRE,       /* a control byte after the break */
    Z_DOT,       /* the dot */
    Z_POST,      /* a control byte after the dot */
    Z_CR,        /* a CR after the dot: LF may follow */
    Z_CRCR       /* CR CR after the dot: LF may follow (CR CR LF, a line end some servers take) */
};

static bool is_break(uint8_t c)
{
    return c == '\r' || c == '\n';
}

/* A byte a lenient server may drop next to the dot: NUL and the other
 * control bytes, never text. */
static bool is_filler(uint8_t c)
{
    return (c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f;
}

void ms_smuggle_init(ms_smuggle *z)
{
    memset(z, 0, sizeof *z);
    /* the DATA command's own CR LF comes right before the body */
    z->state = Z_BREAK;
    z->cand[0] = '\r';
    z->cand[1] = '\n';
    z->cand_len = 2;
    z->prev = '\n';
}

static bool starts_command(const char *p, size_t n)
{
    static const char *const verbs[] = { "MAIL FROM", "RCPT TO", "DATA", "BDAT", "EHLO", "HELO", "LHLO",
                                         "RSET", "QUIT", "STARTTLS", "AUTH", "VRFY", "EXPN", "NOOP" };
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (ms_ci_prefix((const uint8_t *)p, n, verbs[i]))
            return true;
    return false;
}

static void flush_hit(ms_smuggle *z, ms_smuggle_cb cb, void *ctx)
{
    if (!z->have_hit)
        return;
    z->line[z->line_len] = '\0';
    z->hit.line = z->line;
    z->hit.line_len = z->line_len;
    z->hit.command = starts_command(z->line, z->line_len);
    z->have_hit = false;
    if (cb)
        cb(ctx, &z->hit);
}

static void found(ms_smuggle *z, ms_smuggle_cb cb, void *ctx)
{
    /* the one true end (CR LF . CR LF, nothing between) is no look-alike */
    static const uint8_t end[] = { '\r', '\n', '.', '\r', '\n' };
    if (z->cand_len == sizeof end && memcmp(z->cand, end, sizeof end) == 0)
        return;
    flush_hit(z, cb, ctx);
    z->hit.seq_len = z->cand_len;
    memcpy(z->hit.seq, z->cand, z->cand_len);
    z->hit.offset = z->cand_at;
    z->line_len = 0;
    z->have_hit = true;
}

/* Start a candidate at the line break c (CR LF when c is LF after a CR). */
static void at_break(ms_smuggle *z, uint8_t c)
{
    if (c == '\n' && z->prev == '\r' && z->state == Z_BREAK && z->cand_len == 1 && z->cand[0] == '\r') {
        z->cand[1] = '\n';
        z->cand_len = 2;
        return;
    }
    z->state = Z_BREAK;
    z->cand[0] = c;
    z->cand_len = 1;
    z->cand_at = z->fed;
}

static void add(ms_smuggle *z, uint8_t c)
{
    if (z->cand_len < MS_SMUGGLE_SEQ_MAX)
        z->cand[z->cand_len++] = c;
}

/* The LF just read ends a CR LF break: the next candidate starts with it. */
static void restart_crlf(ms_smuggle *z)
{
    z->state = Z_BREAK;
    z->cand[0] = '\r';
    z->cand[1] = '\n';
    z->cand_len = 2;
    z->cand_at = z->fed - 1;
}

/* c follows a CR that may start a new candidate (the CR at fed - 1). */
static void after_cr(ms_smuggle *z, uint8_t c, int restart)
{
    if (restart) {
        /* the CR after the dot is a break of its own */
        z->state = Z_BREAK;
        z->cand[0] = '\r';
        z->cand_len = 1;
        z->cand_at = z->fed - 1;
    }
    if (c == '.') {
        add(z, c);
        z->state = Z_DOT;
    } else if (is_filler(c)) {
        add(z, c);
        z->state = Z_PRE;
    } else if (is_break(c)) {
        at_break(z, c);
    } else {
        z->state = Z_IDLE;
    }
    /* c is the first byte of the line after the sequence */
    if (z->have_hit && !is_break(c) && z->line_len == 0 && z->line_len < MS_SMUGGLE_LINE_MAX)
        z->line[z->line_len++] = (char)c;
}

void ms_smuggle_feed(ms_smuggle *z, const uint8_t *p, size_t n, ms_smuggle_cb cb, void *ctx)
{
    for (size_t i = 0; i < n; i++, z->fed++) {
        uint8_t c = p[i];
        /* the line after a sequence found */
        if (z->have_hit) {
            if (is_break(c) && z->line_len == 0)
                ; /* blank lines before it: the command is the next line with text */
            else if (is_break(c) || z->line_len >= MS_SMUGGLE_LINE_MAX)
                flush_hit(z, cb, ctx);
            else
                z->line[z->line_len++] = (char)c;
        }
        switch (z->state) {
        case Z_BREAK:
            if (c == '.') {
                add(z, c);
                z->state = Z_DOT;
            } else if (is_filler(c)) {
                add(z, c);
                z->state = Z_PRE;
            } else if (is_break(c)) {
                at_break(z, c);
            } else {
                z->state = Z_IDLE;
            }
            break;
        case Z_PRE:
            if (c == '.') {
                add(z, c);
                z->state = Z_DOT;
            } else if (is_break(c)) {
                at_break(z, c);
            } else {
                z->state = Z_IDLE;
            }
            break;
        case Z_DOT:
        case Z_POST:
            if (c == '\n') {
                add(z, c);
                found(z, cb, ctx);
                z->state = Z_IDLE;
                at_break(z, c);
            } else if (c == '\r') {
                add(z, c);
                z->state = Z_CR;
            } else if (z->state == Z_DOT && is_filler(c)) {
                add(z, c);
                z->state = Z_POST;
            } else {
                z->state = Z_IDLE;
            }
            break;
        case Z_CR:
            if (c == '\n') {
                add(z, c);
                found(z, cb, ctx);
                restart_crlf(z);
            } else if (c == '\r') {
                add(z, c);
                z->state = Z_CRCR;
            } else {
                found(z, cb, ctx);
                after_cr(z, c, 1);
            }
            break;
        case Z_CRCR:
            if (c == '\n') {
                add(z, c);
                found(z, cb, ctx); /* . CR CR LF */
                restart_crlf(z);
            } else {
                z->cand_len--; /* the look-alike ended at the first CR */
                found(z, cb, ctx);
                /* the second CR starts a break of its own; c follows it */
                z->state = Z_BREAK;
                z->cand[0] = '\r';
                z->cand_len = 1;
                z->cand_at = z->fed - 1;
                after_cr(z, c, 0);
            }
            break;
        default: /* Z_IDLE */
            if (is_break(c))
                at_break(z, c);
            break;
        }
        z->prev = c;
    }
}

void ms_smuggle_end(ms_smuggle *z, ms_smuggle_cb cb, void *ctx)
{
    if (z->state == Z_CRCR)
        z->cand_len--;
    if (z->state == Z_CR || z->state == Z_CRCR)
        found(z, cb, ctx); /* ". CR" at the very end */
    z->state = Z_IDLE;
    flush_hit(z, cb, ctx);
}

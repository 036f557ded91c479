/* ms_imap.c — IMAP adapter (RFC 3501/9051, 2595 STARTTLS, 7888 literals).
 *
 * Commands carry tags and are answered by tagged status lines in any order.
 * A line ending in {n} or {n+} is followed by n octets of literal data, after
 * which the same command or response line continues.
 */
#include "ms_detect.h"
#include "ms_session_int.h"

#include <string.h>

enum {
    IMAP_OTHER = 0,
    IMAP_STARTTLS,
    IMAP_AUTHENTICATE,
    IMAP_LOGIN,
    IMAP_CAPABILITY
};

static void after_literal_check(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, bool *cont)
{
    uint64_t count;
    if (ms_literal_at_end(p, n, &count)) {
        ms_lines_expect_raw(&s->lines[dir], count);
        *cont = true;
    } else {
        *cont = false;
    }
}

static void capability_check(ms_session *s, const uint8_t *p, size_t n)
{
    if (ms_ci_contains(p, n, "CAPABILITY") && ms_ci_contains(p, n, " STARTTLS"))
        ms_starttls_offered(s);
}

static ms_lines_verdict client_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_imap_state *st = &s->imap;
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE; /* literal octets */
    if (st->client_cont) {
        after_literal_check(s, MS_DIR_C2S, p, n, &st->client_cont);
        return MS_LINES_CONTINUE;
    }
    if (st->in_sasl) {
        if (n == 1 && p[0] == '*')
            st->in_sasl = false; /* abort; the tagged BAD follows */
        return MS_LINES_CONTINUE;
    }
    size_t tl = ms_token_len(p, n);
    if (tl == 0 || tl >= n)
        return MS_LINES_CONTINUE; /* "DONE" after IDLE, or noise */
    const uint8_t *c = p + tl + 1;
    size_t cl = ms_token_len(c, n - tl - 1);
    uint8_t cmd = IMAP_OTHER;
    if (ms_token_is(c, cl, "STARTTLS")) cmd = IMAP_STARTTLS;
    else if (ms_token_is(c, cl, "AUTHENTICATE")) cmd = IMAP_AUTHENTICATE;
    else if (ms_token_is(c, cl, "LOGIN")) cmd = IMAP_LOGIN;
    else if (ms_token_is(c, cl, "CAPABILITY")) cmd = IMAP_CAPABILITY;
    ms_pending_push(s, cmd, p, tl);
    if (cmd == IMAP_STARTTLS)
        return ms_starttls_command(s);
    if (cmd == IMAP_AUTHENTICATE)
        st->in_sasl = true;
    after_literal_check(s, MS_DIR_C2S, p, n, &st->client_cont);
    return MS_LINES_CONTINUE;
}

static ms_lines_verdict server_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_imap_state *st = &s->imap;
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE;
    if (st->server_cont) {
        after_literal_check(s, MS_DIR_S2C, p, n, &st->server_cont);
        return MS_LINES_CONTINUE;
    }
    if (n >= 1 && p[0] == '*') {
        st->greeted = true;
        capability_check(s, p, n);
        after_literal_check(s, MS_DIR_S2C, p, n, &st->server_cont);
        return MS_LINES_CONTINUE;
    }
    if (n >= 1 && p[0] == '+')
        return MS_LINES_CONTINUE; /* continuation request */
    size_t tl = ms_token_len(p, n);
    if (tl == 0 || tl >= n)
        return MS_LINES_CONTINUE;
    const uint8_t *r = p + tl + 1;
    size_t rl = ms_token_len(r, n - tl - 1);
    bool ok = ms_token_is(r, rl, "OK");
    if (!ok && !ms_token_is(r, rl, "NO") && !ms_token_is(r, rl, "BAD"))
        return MS_LINES_CONTINUE;
    capability_check(s, p, n);
    uint8_t cmd;
    if (!ms_pending_take_tag(s, p, tl, &cmd, NULL))
        return MS_LINES_CONTINUE;
    if (cmd == IMAP_AUTHENTICATE)
        st->in_sasl = false;
    if (cmd == IMAP_STARTTLS)
        return ms_starttls_reply(s, ok);
    return MS_LINES_CONTINUE;
}

ms_lines_verdict ms_imap_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags)
{
    return dir == MS_DIR_C2S ? client_line(s, p, n, flags) : server_line(s, p, n, flags);
}

void ms_imap_tls_started(ms_session *s)
{
    memset(&s->imap, 0, sizeof s->imap);
    s->imap.greeted = true;
}

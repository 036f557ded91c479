/* ms_smtp.c — SMTP adapter (RFC 5321, 3207 STARTTLS, 3030 BDAT, 2920 pipelining).
 *
 * Commands are queued as they are sent and matched to replies in order, which
 * is what pipelining guarantees. The DATA body is passed over as lines until
 * the lone ".", BDAT chunks as counted octets.
 */
#include "ms_detect.h"
#include "ms_session_int.h"

#include <string.h>

enum {
    SMTP_OTHER = 0,
    SMTP_EHLO,
    SMTP_HELO,
    SMTP_STARTTLS,
    SMTP_DATA,
    SMTP_END_OF_DATA,
    SMTP_BDAT,
    SMTP_AUTH,
    SMTP_MAIL,
    SMTP_RCPT,
    SMTP_QUIT,
    SMTP_JUNK       /* not a command at all: no verb of letters */
};

static uint8_t classify(const uint8_t *p, size_t n)
{
    size_t t = ms_token_len(p, n);
    if (ms_token_is(p, t, "EHLO") || ms_token_is(p, t, "LHLO")) return SMTP_EHLO;
    if (ms_token_is(p, t, "HELO")) return SMTP_HELO;
    if (ms_token_is(p, t, "STARTTLS")) return SMTP_STARTTLS;
    if (ms_token_is(p, t, "DATA")) return SMTP_DATA;
    if (ms_token_is(p, t, "BDAT")) return SMTP_BDAT;
    if (ms_token_is(p, t, "AUTH")) return SMTP_AUTH;
    if (ms_ci_prefix(p, n, "MAIL FROM:")) return SMTP_MAIL;
    if (ms_ci_prefix(p, n, "RCPT TO:")) return SMTP_RCPT;
    if (ms_token_is(p, t, "QUIT")) return SMTP_QUIT;
    if (t == 0)
        return SMTP_JUNK;
    for (size_t i = 0; i < t; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') || p[i] == '-' || p[i] == '_'))
            return SMTP_JUNK;
    return SMTP_OTHER;
}

/* BDAT <size> [LAST] */
static bool bdat_size(const uint8_t *p, size_t n, uint64_t *size)
{
    size_t i = 4;
    while (i < n && p[i] == ' ')
        i++;
    size_t start = i;
    uint64_t v = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && i - start < 19)
        v = v * 10 + (uint64_t)(p[i++] - '0');
    if (i == start)
        return false;
    *size = v;
    return true;
}

static ms_lines_verdict client_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_smtp_state *st = &s->smtp;
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE; /* BDAT chunk octets */
    if (st->in_sasl && ms_auth_expects_response(s)) {
        ms_auth_client_line(s, p, n);
        return MS_LINES_CONTINUE;
    }
    if (st->in_data) {
        if (n == 1 && p[0] == '.') {
            st->in_data = false;
            ms_pending_push(s, SMTP_END_OF_DATA, NULL, 0);
        }
        return MS_LINES_CONTINUE;
    }
    uint8_t cmd = classify(p, n);
    ms_pending_push(s, cmd, NULL, 0);
    switch (cmd) {
    case SMTP_STARTTLS:
        return ms_starttls_command(s);
    case SMTP_DATA:
        /* The body follows the 354; a refusal takes us out again. */
        st->in_data = true;
        break;
    case SMTP_AUTH: /* AUTH mechanism [initial-response] (RFC 4954) */
        ms_auth_start_args(s, p + 4, n - 4);
        st->in_sasl = true;
        break;
    case SMTP_BDAT: {
        uint64_t size;
        st->bdat_unanswered++;
        if (bdat_size(p, n, &size))
            ms_lines_expect_raw(&s->lines[MS_DIR_C2S], size);
        break;
    }
    default:
        break;
    }
    return MS_LINES_CONTINUE;
}

static bool reply_code(const uint8_t *p, size_t n, int *code, bool *last)
{
    if (n < 3 || p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return false;
    *code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    *last = !(n > 3 && p[3] == '-');
    return true;
}

static ms_lines_verdict reply_done(ms_session *s, int code)
{
    ms_smtp_state *st = &s->smtp;
    uint8_t cmd;
    bool starttls_waiting = s->pending.count > 0 && s->pending.cmd[s->pending.head] == SMTP_STARTTLS;
    if (!st->greeted && (s->pending.count == 0 || (code == 220 && !starttls_waiting))) {
        st->greeted = true; /* the greeting answers no command */
        return MS_LINES_CONTINUE;
    }
    st->greeted = true;
    /* A line that is no command (bytes before the greeting, noise) may have
     * been ignored: a server answers such a line with 5xx if at all, so a
     * positive reply belongs to the command after it. */
    while (code / 100 != 5 && s->pending.count > 1 && s->pending.cmd[s->pending.head] == SMTP_JUNK)
        (void)ms_pending_pop(s, &cmd, NULL);
    if (!ms_pending_pop(s, &cmd, NULL))
        return MS_LINES_CONTINUE;
    switch (cmd) {
    case SMTP_STARTTLS:
        return ms_starttls_reply(s, code == 220);
    case SMTP_DATA:
        if (code != 354)
            st->in_data = false;
        break;
    case SMTP_AUTH:
        st->in_sasl = false;
        ms_auth_verdict(s, code == 235);
        break;
    case SMTP_BDAT:
        /* A server reads a whole chunk before it answers its BDAT. An answer
         * to the last BDAT while its octets are still expected means the
         * server did not wait for them (a refused size): the client's next
         * bytes are commands again. */
        if (st->bdat_unanswered)
            st->bdat_unanswered--;
        if (st->bdat_unanswered == 0)
            ms_lines_cancel_raw(&s->lines[MS_DIR_C2S]);
        break;
    default:
        break;
    }
    return MS_LINES_CONTINUE;
}

static ms_lines_verdict server_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_smtp_state *st = &s->smtp;
    int code;
    bool last;
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE;
    if (!reply_code(p, n, &code, &last))
        return MS_LINES_CONTINUE; /* not a reply line: ignore it */
    if (code == 250 && n > 4) {
        const uint8_t *kw = p + 4;
        size_t kl = ms_token_len(kw, n - 4);
        if (ms_token_is(kw, kl, "STARTTLS"))
            ms_starttls_offered(s);
    }
    if (st->reply_open && code != st->reply_code) {
        /* Every line of a reply has one code: another code means the
         * multi-line reply before it never got its last line, and this line
         * starts the next reply (seen from real servers). */
        st->reply_open = false;
        if (reply_done(s, st->reply_code) == MS_LINES_STOP)
            return MS_LINES_STOP;
    }
    st->reply_open = !last;
    st->reply_code = code;
    if (!last)
        return MS_LINES_CONTINUE;
    if (code == 334 && st->in_sasl) {
        /* a challenge: the AUTH command is still waiting for its verdict */
        ms_auth_challenge(s, n > 4 ? p + 4 : p + n, n > 4 ? n - 4 : 0);
        return MS_LINES_CONTINUE;
    }
    return reply_done(s, code);
}

ms_lines_verdict ms_smtp_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags)
{
    return dir == MS_DIR_C2S ? client_line(s, p, n, flags) : server_line(s, p, n, flags);
}

void ms_smtp_gap(ms_session *s, ms_dir dir, ms_gap_kind k)
{
    /* Counted octets absorbed the hole (ms_lines_gap); a DATA body and a SASL
     * exchange go on line by line, so there is nothing to abandon. */
    (void)s;
    (void)dir;
    (void)k;
}

void ms_smtp_tls_started(ms_session *s)
{
    /* RFC 3207: the session starts over; no greeting follows. */
    memset(&s->smtp, 0, sizeof s->smtp);
    s->smtp.greeted = true;
}

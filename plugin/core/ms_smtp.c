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

static bool has_last(const uint8_t *p, size_t n)
{
    /* "BDAT <size> LAST": the word after the size */
    size_t i = 4;
    while (i < n && p[i] == ' ')
        i++;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    while (i < n && p[i] == ' ')
        i++;
    return ms_token_is(p + i, ms_token_len(p + i, n - i), "LAST");
}

/* The argument after the command word (MAIL FROM:, RCPT TO: keep theirs whole). */
static void push_command(ms_session *s, uint8_t cmd, const uint8_t *p, size_t n)
{
    size_t t = ms_token_len(p, n);
    size_t i = t < n ? t + 1 : n;
    ms_pending_push(s, cmd, NULL, 0, p + i, n - i);
}

static void data_end(ms_session *s, unsigned flags)
{
    ms_smtp_state *st = &s->smtp;
    if (st->data != MS_SMTP_DATA_NONE)
        ms_body_end(s, MS_BODY_SMTP_DATA, MS_DIR_C2S, st->messages, flags);
    st->data = MS_SMTP_DATA_NONE;
}

static void bdat_end(ms_session *s, unsigned flags)
{
    ms_smtp_state *st = &s->smtp;
    if (st->bdat_open)
        ms_body_end(s, MS_BODY_SMTP_BDAT, MS_DIR_C2S, st->messages, flags);
    st->bdat_open = false;
    st->bdat_last = false;
}

/* One line of a DATA body. RFC 5321 4.1.1.4: the body ends with CR LF . CR LF
 * and nothing else; a lone dot ended by a bare LF, or after a line that ended
 * with one, is body text (and the stuff of SMTP smuggling), never the end, so
 * no text inside DATA is ever taken for a command. */
static void data_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_smtp_state *st = &s->smtp;
    if (n == 1 && p[0] == '.' && (flags & MS_LINE_CRLF) && st->body_line_start) {
        data_end(s, 0);
        ms_pending_push(s, SMTP_END_OF_DATA, NULL, 0, NULL, 0);
        return;
    }
    ms_body_line(s, MS_BODY_SMTP_DATA, MS_DIR_C2S, st->messages, p, n, flags);
    st->body_line_start = (flags & MS_LINE_CRLF) != 0;
}

static ms_lines_verdict client_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_smtp_state *st = &s->smtp;
    if (flags & MS_LINE_RAW) {
        /* BDAT chunk octets */
        if (st->bdat_open) {
            ms_body_data(s, MS_BODY_SMTP_BDAT, MS_DIR_C2S, st->messages, p, n, 0);
            if ((flags & MS_LINE_RAW_END) && st->bdat_last)
                bdat_end(s, 0);
        }
        return MS_LINES_CONTINUE;
    }
    if (ms_auth_in_sasl(s) && ms_auth_expects_response(s)) {
        ms_auth_client_line(s, p, n);
        return MS_LINES_CONTINUE;
    }
    if (st->data != MS_SMTP_DATA_NONE) {
        data_line(s, p, n, flags);
        return MS_LINES_CONTINUE;
    }
    uint8_t cmd = classify(p, n);
    push_command(s, cmd, p, n);
    switch (cmd) {
    case SMTP_STARTTLS:
        return ms_starttls_command(s);
    case SMTP_DATA:
        /* The body follows the 354; a refusal takes us out again. */
        st->data = MS_SMTP_DATA_SENT;
        st->body_line_start = true;
        ms_body_begin(s, MS_BODY_SMTP_DATA, MS_DIR_C2S, ++st->messages);
        break;
    case SMTP_AUTH: /* AUTH mechanism [initial-response] (RFC 4954) */
        ms_auth_start_args(s, p + 4, n - 4);
        break;
    case SMTP_BDAT: {
        uint64_t size;
        st->bdat_unanswered++;
        if (!st->bdat_open) {
            st->bdat_open = true;
            ms_body_begin(s, MS_BODY_SMTP_BDAT, MS_DIR_C2S, ++st->messages);
        }
        st->bdat_last = has_last(p, n);
        if (bdat_size(p, n, &size)) {
            ms_lines_expect_raw(&s->lines[MS_DIR_C2S], size);
            if (size == 0 && st->bdat_last)
                bdat_end(s, 0);
        }
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

static bool oldest_is(const ms_session *s, uint8_t cmd)
{
    const ms_request *r = ms_pending_peek(s);
    return r && r->cmd == cmd;
}

static ms_lines_verdict reply_done(ms_session *s, int code)
{
    ms_smtp_state *st = &s->smtp;
    ms_request req;
    if (!st->greeted && (ms_pending_count(s) == 0 || (code == 220 && !oldest_is(s, SMTP_STARTTLS)))) {
        st->greeted = true; /* the greeting answers no command */
        return MS_LINES_CONTINUE;
    }
    st->greeted = true;
    if (st->data == MS_SMTP_DATA_BODY) {
        /* The server is silent during a body: a reply means it took the body
         * as ended (at a line end this session does not accept as the end,
         * or by giving up). What the client had sent of its last line
         * belongs to the body; its next line is a command. */
        ms_lines *l = &s->lines[MS_DIR_C2S];
        if (ms_lines_pending(l)) {
            ms_body_data(s, MS_BODY_SMTP_DATA, MS_DIR_C2S, st->messages, l->buf, l->len,
                         l->len < l->seen ? MS_BODY_LOST : 0);
            ms_lines_reset(l);
        }
        data_end(s, MS_BODY_UNFINISHED);
        return MS_LINES_CONTINUE;
    }
    /* A line that is no command (bytes before the greeting, noise) may have
     * been ignored: a server answers such a line with 5xx if at all, so a
     * positive reply belongs to the command after it. */
    while (code / 100 != 5 && ms_pending_count(s) > 1 && oldest_is(s, SMTP_JUNK))
        (void)ms_pending_pop(s, NULL);
    if (!ms_pending_pop(s, &req))
        return MS_LINES_CONTINUE;
    switch (req.cmd) {
    case SMTP_STARTTLS:
        return ms_starttls_reply(s, code == 220);
    case SMTP_DATA:
        if (code != 354)
            data_end(s, MS_BODY_UNFINISHED);
        else if (st->data == MS_SMTP_DATA_SENT)
            st->data = MS_SMTP_DATA_BODY;
        break;
    case SMTP_AUTH:
        ms_auth_verdict(s, code == 235);
        break;
    case SMTP_BDAT:
        /* A server reads a whole chunk before it answers its BDAT. An answer
         * to the last BDAT while its octets are still expected means the
         * server did not wait for them (a refused size): the client's next
         * bytes are commands again. */
        if (st->bdat_unanswered)
            st->bdat_unanswered--;
        if (st->bdat_unanswered == 0) {
            if (ms_lines_raw_left(&s->lines[MS_DIR_C2S]) && st->bdat_open)
                bdat_end(s, MS_BODY_UNFINISHED);
            ms_lines_cancel_raw(&s->lines[MS_DIR_C2S]);
        }
        if (code / 100 != 2)
            bdat_end(s, MS_BODY_UNFINISHED); /* RFC 3030: the transaction failed */
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
    if (code == 334 && ms_auth_in_sasl(s)) {
        /* a challenge: the AUTH command is still waiting for its verdict */
        ms_auth_challenge(s, n > 4 ? p + 4 : p + n, n > 4 ? n - 4 : 0);
        return MS_LINES_CONTINUE;
    }
    return reply_done(s, code);
}

static ms_lines_verdict smtp_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags)
{
    return dir == MS_DIR_C2S ? client_line(s, p, n, flags) : server_line(s, p, n, flags);
}

static void smtp_gap(ms_session *s, ms_dir dir, ms_gap_kind k)
{
    /* Counted octets absorbed the hole (ms_lines_gap); a DATA body and a SASL
     * exchange go on line by line. A message that lost bytes says so. */
    ms_smtp_state *st = &s->smtp;
    if (dir != MS_DIR_C2S)
        return;
    if (st->data != MS_SMTP_DATA_NONE) {
        ms_body_data(s, MS_BODY_SMTP_DATA, MS_DIR_C2S, st->messages, NULL, 0, MS_BODY_LOST);
        st->body_line_start = false; /* the line the hole broke is no line start */
    } else if (st->bdat_open) {
        ms_body_data(s, MS_BODY_SMTP_BDAT, MS_DIR_C2S, st->messages, NULL, 0, MS_BODY_LOST);
        if (k == MS_GAP_ENDED_RAW && st->bdat_last)
            bdat_end(s, MS_BODY_LOST);
    }
}

static void smtp_tls_started(ms_session *s)
{
    data_end(s, MS_BODY_UNFINISHED);
    bdat_end(s, MS_BODY_UNFINISHED);
    /* RFC 3207: the session starts over; no greeting follows. */
    unsigned messages = s->smtp.messages;
    memset(&s->smtp, 0, sizeof s->smtp);
    s->smtp.greeted = true;
    s->smtp.messages = messages;
}

/* A reply ends the client's unterminated line, except inside a body, which
 * the server answers only as a whole. */
static bool smtp_reply_ends_client_line(const ms_session *s)
{
    return s->smtp.data == MS_SMTP_DATA_NONE;
}

const ms_adapter ms_smtp_adapter = {
    smtp_line, smtp_gap, smtp_tls_started, NULL, smtp_reply_ends_client_line
};

/* ms_smtp.c — SMTP adapter (RFC 5321, 3207 STARTTLS, 3030 BDAT, 2920 pipelining).
 *
 * Commands are queued as they are sent and matched to replies in order, which
 * is what pipelining guarantees. The DATA body is passed over as lines until
 * the lone ".", BDAT chunks as counted octets.
 */
#include "ms_detect.h"
#include "ms_registry.h"
#include "ms_session_int.h"
#include "ms_smuggle.h"

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
    SMTP_VRFY,
    SMTP_EXPN,
    SMTP_RSET,
    SMTP_KNOWN,     /* another command of RFC 5321 or its extensions */
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
    if (ms_token_is(p, t, "VRFY")) return SMTP_VRFY;
    if (ms_token_is(p, t, "EXPN")) return SMTP_EXPN;
    if (ms_token_is(p, t, "RSET")) return SMTP_RSET;
    if (ms_token_is(p, t, "NOOP") || ms_token_is(p, t, "HELP") || ms_token_is(p, t, "ETRN") ||
        ms_token_is(p, t, "TURN") || ms_token_is(p, t, "ATRN") || ms_token_is(p, t, "XCLIENT") ||
        ms_token_is(p, t, "XFORWARD") || ms_token_is(p, t, "SEND") || ms_token_is(p, t, "SOML") ||
        ms_token_is(p, t, "SAML"))
        return SMTP_KNOWN;
    if (t == 0)
        return SMTP_JUNK;
    for (size_t i = 0; i < t; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') || p[i] == '-' || p[i] == '_'))
            return SMTP_JUNK;
    return SMTP_OTHER;
}

/* BDAT SP size [SP LAST] (RFC 3030); anything else is a line a server
 * refuses (501) without reading octets after it. */
static bool bdat_parse(const uint8_t *p, size_t n, uint64_t *size, bool *last)
{
    size_t i = 4;
    if (i >= n || p[i] != ' ')
        return false;
    while (i < n && p[i] == ' ')
        i++;
    size_t start = i;
    uint64_t v = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && i - start < 19)
        v = v * 10 + (uint64_t)(p[i++] - '0');
    if (i == start)
        return false;
    while (i < n && p[i] == ' ')
        i++;
    *last = false;
    if (i < n) {
        size_t t = ms_token_len(p + i, n - i);
        if (!ms_token_is(p + i, t, "LAST"))
            return false;
        *last = true;
        i += t;
        while (i < n && p[i] == ' ')
            i++;
        if (i < n)
            return false;
    }
    *size = v;
    return true;
}

/* The argument after the command word (MAIL FROM:, RCPT TO: keep theirs whole). */
static void push_command(ms_session *s, uint8_t cmd, const uint8_t *p, size_t n)
{
    size_t t = ms_token_len(p, n);
    size_t i = t < n ? t + 1 : n;
    size_t vl = t;
    if (cmd == SMTP_MAIL || cmd == SMTP_RCPT)
        vl = 4; /* "MAIL", "RCPT" */
    ms_pending_push(s, cmd, p, vl, NULL, 0, p + i, n - i);
}

/* ---- the envelope ---------------------------------------------------------- */

/* The address of MAIL FROM:<a> / RCPT TO:<a> [parameters]: inside the angle
 * brackets, else the first word. */
static void envelope_address(const uint8_t *p, size_t n, const uint8_t **a, size_t *alen)
{
    const uint8_t *colon = memchr(p, ':', n);
    size_t i = colon ? (size_t)(colon - p) + 1 : n;
    while (i < n && p[i] == ' ')
        i++;
    if (i < n && p[i] == '<') {
        const uint8_t *gt = memchr(p + i + 1, '>', n - i - 1);
        size_t end = gt ? (size_t)(gt - p) : n;
        *a = p + i + 1;
        *alen = end - i - 1;
        return;
    }
    *a = p + i;
    *alen = ms_token_len(p + i, n - i);
}

/* FNV-1a over the address, case folded: a repeat is the same address. */
static uint32_t address_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i] >= 'A' && p[i] <= 'Z' ? (uint8_t)(p[i] + 32) : p[i];
        h = (h ^ c) * 16777619u;
    }
    return h | 1; /* 0 means "none" */
}

static void tx_reset(ms_smtp_state *st)
{
    st->tx_open = false;
    st->tx_mail = MS_TX_NONE;
    st->tx_mail_hash = 0;
    st->tx_rcpt_accepted = 0;
    st->tx_rcpt_unanswered = 0;
    st->tx_nhash = 0;
    st->tx_flagged = false;
}

static void mail_from(ms_session *s, const uint8_t *p, size_t n)
{
    ms_smtp_state *st = &s->smtp;
    const uint8_t *a;
    size_t al;
    envelope_address(p, n, &a, &al);
    uint32_t h = address_hash(a, al);
    bool repeated = st->tx_open && st->tx_mail_hash == h;
    if (!st->tx_open) {
        tx_reset(st);
        st->tx_open = true;
        st->transactions++;
    }
    if (st->tx_mail != MS_TX_ACCEPTED) {
        /* a MAIL inside an accepted transaction is refused (nested MAIL):
         * the first one stands */
        st->tx_mail_hash = h;
        st->tx_mail = MS_TX_SENT;
    }
    ms_fact f = { .kind = MS_FACT_ENVELOPE };
    f.u.envelope = (ms_fact_envelope){ MS_ENVELOPE_MAIL, (const char *)a, al, st->transactions, repeated,
                                       st->rcpts, ms_client_count(s, MS_COUNT_RECIPIENTS, 0) };
    ms_emit_fact(s, &f);
}

static void rcpt_to(ms_session *s, const uint8_t *p, size_t n)
{
    ms_smtp_state *st = &s->smtp;
    const uint8_t *a;
    size_t al;
    envelope_address(p, n, &a, &al);
    uint32_t h = address_hash(a, al);
    bool repeated = false;
    /* a RCPT before any MAIL is refused and belongs to no transaction */
    for (unsigned i = 0; st->tx_open && i < st->tx_nhash; i++)
        if (st->tx_rcpt_hash[i] == h)
            repeated = true;
    if (st->tx_open && !repeated && st->tx_nhash < MS_TX_RCPT_HASHES)
        st->tx_rcpt_hash[st->tx_nhash++] = h;
    st->tx_rcpt_unanswered++;
    st->rcpts++;
    ms_fact f = { .kind = MS_FACT_ENVELOPE };
    f.u.envelope = (ms_fact_envelope){ MS_ENVELOPE_RCPT, (const char *)a, al, st->transactions, repeated,
                                       st->rcpts, ms_client_count(s, MS_COUNT_RECIPIENTS, 1) };
    ms_emit_fact(s, &f);
}

static void helo(ms_session *s, const uint8_t *p, size_t n)
{
    size_t t = ms_token_len(p, n);
    const uint8_t *a = p + t;
    size_t al = n - t;
    while (al > 0 && *a == ' ') {
        a++;
        al--;
    }
    al = ms_token_len(a, al);
    ms_fact f = { .kind = MS_FACT_HELO, .u.text = { (const char *)a, al } };
    ms_emit_fact(s, &f);
}

/* Data sent while the transaction has no accepted sender or recipient, as
 * far as the replies seen tell (pipelined replies may still be on the way:
 * then the answer to DATA decides). */
static void no_envelope(ms_session *s, bool bdat)
{
    ms_smtp_state *st = &s->smtp;
    if (st->tx_flagged)
        return;
    st->tx_flagged = true;
    ms_fact f = { .kind = MS_FACT_NO_ENVELOPE,
                  .u.no_envelope = { bdat, st->tx_mail == MS_TX_ACCEPTED, st->tx_rcpt_accepted } };
    ms_emit_fact(s, &f);
}

static bool envelope_missing(const ms_smtp_state *st)
{
    if (!st->saw_greeting || st->replies_lost)
        return false; /* the capture began in the middle, or lost replies: nothing sure to judge */
    if (st->tx_mail == MS_TX_NONE)
        return true;
    if (st->tx_mail == MS_TX_SENT || st->tx_rcpt_unanswered)
        return false; /* not answered yet */
    return st->tx_mail == MS_TX_REJECTED || st->tx_rcpt_accepted == 0;
}

/* ---- probes ---------------------------------------------------------------- */

static ms_probe_verdict probe_verdict(int code)
{
    switch (code) {
    case 250: case 251: return MS_PROBE_EXISTS;
    case 252: return MS_PROBE_CANNOT_VERIFY;
    case 550: case 551: case 553: return MS_PROBE_UNKNOWN;
    case 500: case 502: case 504: return MS_PROBE_DISABLED;
    default: return MS_PROBE_REFUSED;
    }
}

static void probe(ms_session *s, ms_probe_cmd cmd, const ms_request *req, ms_probe_verdict v, int code)
{
    ms_smtp_state *st = &s->smtp;
    const uint8_t *a = (const uint8_t *)req->arg;
    size_t al = req->arg_len;
    if (cmd == MS_PROBE_RCPT)
        envelope_address(a, al, &a, &al);
    ms_fact f = { .kind = MS_FACT_PROBE };
    ms_fact_probe *pr = &f.u.probe;
    pr->command = cmd;
    pr->verdict = v;
    pr->target = (const char *)a;
    pr->target_len = al;
    pr->code = (uint16_t)code;
    pr->request_frame = req->frame;
    if (v != MS_PROBE_PENDING) {
        pr->count = ++st->probes;
        pr->client_count = ms_client_count(s, MS_COUNT_PROBES, 1);
    }
    ms_emit_fact(s, &f);
}

/* A RCPT refused because the mailbox does not exist (RFC 3463 X.1.x, or the
 * bare codes that say so), not for policy (5.7.1 relaying denied). */
static bool unknown_user(int code, const char *enhanced)
{
    if (code != 550 && code != 551 && code != 553)
        return false;
    return enhanced[0] == '\0' || (enhanced[1] == '.' && enhanced[2] == '1' && enhanced[3] == '.');
}

static void on_smuggle(void *ctx, const ms_smuggle_hit *h)
{
    ms_session *s = ctx;
    if (h->command) {
        s->smtp.smuggled = true;
        s->smtp.smuggled_message = s->smtp.messages;
        s->smtp.smuggled_replies = 0;
    }
    ms_fact f = { .kind = MS_FACT_SMUGGLING };
    f.u.smuggling = (ms_fact_smuggling){ h->seq, h->seq_len, h->offset, s->smtp.messages, h->line, h->line_len,
                                         h->command, s->smtp.ended_by_reply && h->line_len == 0 };
    ms_emit_fact(s, &f);
}

static void smuggle_free(ms_session *s)
{
    if (s->smtp.smuggle)
        s->alloc->free_fn(s->alloc->ctx, s->smtp.smuggle);
    s->smtp.smuggle = NULL;
}

static void data_end(ms_session *s, unsigned flags)
{
    ms_smtp_state *st = &s->smtp;
    if (st->smuggle) {
        ms_smuggle_end(st->smuggle, on_smuggle, s);
        smuggle_free(s);
    }
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
        tx_reset(st); /* RFC 5321 3.3: the transaction is over */
        ms_pending_push(s, SMTP_END_OF_DATA, (const uint8_t *)"<CRLF>.<CRLF>", 13, NULL, 0, NULL, 0);
        return;
    }
    ms_body_line(s, MS_BODY_SMTP_DATA, MS_DIR_C2S, st->messages, p, n, flags);
    if (st->smuggle) {
        ms_smuggle_feed(st->smuggle, p, n, on_smuggle, s);
        if (flags & MS_LINE_CRLF)
            ms_smuggle_feed(st->smuggle, (const uint8_t *)"\r\n", 2, on_smuggle, s);
        else if (flags & MS_LINE_BARE_LF)
            ms_smuggle_feed(st->smuggle, (const uint8_t *)"\n", 1, on_smuggle, s);
    }
    st->body_line_start = (flags & MS_LINE_CRLF) != 0;
}

static bool oldest_is(const ms_session *s, uint8_t cmd);
static ms_lines_verdict reply_done(ms_session *s, int code, const uint8_t *text, size_t tn);

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
        if (flags & MS_LINE_RAW_END)
            st->bdat_check = true;
        return MS_LINES_CONTINUE;
    }
    if (ms_auth_in_sasl(s) && ms_auth_expects_response(s)) {
        static const char *const bare[] = { "QUIT", "RSET", "NOOP", "DATA", "HELP", "STARTTLS", NULL };
        if (!ms_auth_line_is_command(p, n, bare)) {
            ms_auth_client_line(s, p, n);
            return MS_LINES_CONTINUE;
        }
        /* a command where a SASL message was due: the server's verdict is
         * not in the capture, and the client went on */
        ms_auth_abandon(s);
        if (oldest_is(s, SMTP_AUTH))
            (void)ms_pending_pop(s, NULL);
    }
    if (st->data != MS_SMTP_DATA_NONE) {
        data_line(s, p, n, flags);
        return MS_LINES_CONTINUE;
    }
    uint8_t cmd = classify(p, n);
    if (st->reply_open && st->greeted && oldest_is(s, SMTP_EHLO)) {
        /* RFC 2920: a client waits for the whole EHLO reply before its
         * next command; so the EHLO reply is complete, even if its last
         * line is not in the capture (seen in the wild) */
        st->reply_open = false;
        (void)reply_done(s, st->reply_code, NULL, 0);
    }
    if (st->bdat_check) {
        /* RFC 3030: a command follows a chunk; anything else means the
         * chunk was longer than its BDAT said */
        st->bdat_check = false;
        if (cmd == SMTP_JUNK || cmd == SMTP_OTHER) {
            ms_fact f = { .kind = MS_FACT_BDAT_MISMATCH,
                          .u.bdat_mismatch = { MS_BDAT_NO_COMMAND_AFTER, st->bdat_size } };
            ms_emit_fact(s, &f);
        }
    }
    push_command(s, cmd, p, n);
    st->smuggled = false; /* replies from here on answer this command */
    if (st->bdat_open && (cmd == SMTP_DATA || cmd == SMTP_MAIL || cmd == SMTP_RSET))
        bdat_end(s, MS_BODY_UNFINISHED); /* chunks never closed by LAST: that message ends here */
    switch (cmd) {
    case SMTP_STARTTLS:
        return ms_starttls_command(s);
    case SMTP_EHLO:
    case SMTP_HELO:
        helo(s, p, n); /* the transaction ends when the server accepts it (its reply) */
        break;
    case SMTP_RSET:
        tx_reset(st);
        break;
    case SMTP_MAIL:
        mail_from(s, p, n);
        break;
    case SMTP_RCPT:
        rcpt_to(s, p, n);
        break;
    case SMTP_VRFY:
    case SMTP_EXPN:
        probe(s, cmd == SMTP_VRFY ? MS_PROBE_VRFY : MS_PROBE_EXPN, ms_pending_peek_last(s), MS_PROBE_PENDING, 0);
        break;
    case SMTP_DATA:
        /* The body follows the 354; a refusal takes us out again. */
        if (envelope_missing(st))
            no_envelope(s, false);
        st->data = MS_SMTP_DATA_SENT;
        st->body_line_start = true;
        ms_body_begin(s, MS_BODY_SMTP_DATA, MS_DIR_C2S, ++st->messages);
        smuggle_free(s);
        st->smuggle = s->alloc->realloc_fn(s->alloc->ctx, NULL, sizeof *st->smuggle);
        if (st->smuggle)
            ms_smuggle_init(st->smuggle);
        break;
    case SMTP_AUTH: /* AUTH mechanism [initial-response] (RFC 4954) */
        ms_auth_start_args(s, p + 4, n - 4);
        break;
    case SMTP_BDAT: {
        uint64_t size = 0;
        bool last = false;
        st->bdat_unanswered++;
        if (!bdat_parse(p, n, &size, &last))
            break; /* refused as a syntax error: no octets follow */
        if (!st->bdat_open) {
            if (envelope_missing(st))
                no_envelope(s, true);
            st->bdat_open = true;
            ms_body_begin(s, MS_BODY_SMTP_BDAT, MS_DIR_C2S, ++st->messages);
        }
        st->bdat_last = last;
        st->bdat_size = size;
        ms_lines_expect_raw(&s->lines[MS_DIR_C2S], size);
        if (size == 0 && last)
            bdat_end(s, 0);
        if (last)
            tx_reset(st);
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

/* A whole reply: code, and its last line's text after the code (NULL when
 * that line never came). */
static ms_lines_verdict reply_done(ms_session *s, int code, const uint8_t *text, size_t tn)
{
    ms_smtp_state *st = &s->smtp;
    ms_request req;
    if (!st->greeted && (ms_pending_count(s) == 0 || (code == 220 && !oldest_is(s, SMTP_STARTTLS)))) {
        st->greeted = true; /* the greeting answers no command */
        /* RFC 5321 4.2: a greeting is 220 (or 554, no service); another code
         * answers a command from before the capture began */
        st->saw_greeting = code == 220 || code == 554;
        ms_reply(s, MS_REPLY_SMTP, (uint16_t)code, text, tn, ms_no_request("(greeting)"));
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
        st->ended_by_reply = true;
        data_end(s, MS_BODY_UNFINISHED);
        st->ended_by_reply = false;
        ms_reply(s, MS_REPLY_SMTP, (uint16_t)code, text, tn, ms_no_request("(data ended)"));
        return MS_LINES_CONTINUE;
    }
    /* A line that is no command (bytes before the greeting, noise) may have
     * been ignored: a server answers such a line with 5xx if at all, so a
     * positive reply belongs to the command after it. */
    while (code / 100 != 5 && ms_pending_count(s) > 1 && oldest_is(s, SMTP_JUNK))
        (void)ms_pending_pop(s, NULL);
    if (!ms_pending_pop(s, &req)) {
        if (st->smuggled) {
            /* After a message that carried smuggled commands, replies that
             * answer nothing the session sent answer those commands: the
             * server took the look-alike as the end of data. */
            ms_reply(s, MS_REPLY_SMTP, (uint16_t)code, text, tn, ms_no_request("(smuggled)"));
            ms_fact f = { .kind = MS_FACT_SMUGGLED_ANSWERED,
                          .u.smuggled_answered = { st->smuggled_message, ++st->smuggled_replies } };
            ms_emit_fact(s, &f);
            return MS_LINES_CONTINUE;
        }
        ms_reply(s, MS_REPLY_SMTP, (uint16_t)code, text, tn, ms_no_request("(none)"));
        return MS_LINES_CONTINUE;
    }
    ms_reply(s, MS_REPLY_SMTP, (uint16_t)code, text, tn, &req);
    bool positive = code / 100 == 2;
    switch (req.cmd) {
    case SMTP_STARTTLS:
        return ms_starttls_reply(s, code == 220);
    case SMTP_DATA:
        if (code != 354) {
            data_end(s, MS_BODY_UNFINISHED);
        } else {
            /* the server accepts data: judge the envelope, answered by
             * now, unless the body already ended (sent before the 354,
             * so the transaction was judged when DATA was sent) */
            if (st->data == MS_SMTP_DATA_SENT) {
                st->data = MS_SMTP_DATA_BODY;
                if (st->saw_greeting && !st->replies_lost &&
                    (st->tx_mail != MS_TX_ACCEPTED || st->tx_rcpt_accepted == 0))
                    no_envelope(s, false);
            }
        }
        break;
    case SMTP_AUTH:
        ms_auth_verdict(s, code == 235);
        break;
    case SMTP_EHLO:
    case SMTP_HELO:
        if (positive)
            tx_reset(st); /* RFC 5321 4.1.4: a new EHLO clears the transaction */
        if (positive && req.cmd == SMTP_EHLO)
            ms_capabilities_end(s);
        break;
    case SMTP_MAIL:
        if (st->tx_mail == MS_TX_SENT)
            st->tx_mail = positive ? MS_TX_ACCEPTED : MS_TX_REJECTED;
        break;
    case SMTP_RCPT: {
        if (st->tx_rcpt_unanswered)
            st->tx_rcpt_unanswered--;
        if (positive)
            st->tx_rcpt_accepted++;
        char enhanced[16] = "";
        if (text) {
            while (tn > 0 && *text == ' ') {
                text++;
                tn--;
            }
            size_t k = 0;
            while (k < tn && k + 1 < sizeof enhanced && text[k] != ' ')
                k++;
            memcpy(enhanced, text, k);
            enhanced[k] = '\0';
            if (!(k >= 5 && enhanced[1] == '.'))
                enhanced[0] = '\0';
        }
        if (unknown_user(code, enhanced))
            probe(s, MS_PROBE_RCPT, &req, MS_PROBE_UNKNOWN, code);
        break;
    }
    case SMTP_VRFY:
    case SMTP_EXPN:
        probe(s, req.cmd == SMTP_VRFY ? MS_PROBE_VRFY : MS_PROBE_EXPN, &req, probe_verdict(code), code);
        break;
    case SMTP_BDAT:
        /* A server reads a whole chunk before it answers its BDAT. An answer
         * to the last BDAT while its octets are still expected means the
         * server did not wait for them (a refused size): the client's next
         * bytes are commands again. */
        if (st->bdat_unanswered)
            st->bdat_unanswered--;
        if (st->bdat_unanswered == 0) {
            if (ms_lines_raw_left(&s->lines[MS_DIR_C2S])) {
                if (positive) {
                    ms_fact f = { .kind = MS_FACT_BDAT_MISMATCH,
                                  .u.bdat_mismatch = { MS_BDAT_ANSWERED_EARLY, st->bdat_size } };
                    ms_emit_fact(s, &f);
                }
                if (st->bdat_open)
                    bdat_end(s, MS_BODY_UNFINISHED);
            }
            ms_lines_cancel_raw(&s->lines[MS_DIR_C2S]);
        }
        if (!positive)
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
        if (reply_done(s, st->reply_code, NULL, 0) == MS_LINES_STOP)
            return MS_LINES_STOP;
    }
    st->reply_open = !last;
    st->reply_code = code;
    if (!last)
        return MS_LINES_CONTINUE;
    if (code == 334 && ms_auth_in_sasl(s)) {
        /* a challenge: the AUTH command is still waiting for its verdict */
        ms_reply(s, MS_REPLY_SMTP, (uint16_t)code, NULL, 0, ms_pending_peek(s));
        ms_auth_challenge(s, n > 4 ? p + 4 : p + n, n > 4 ? n - 4 : 0);
        return MS_LINES_CONTINUE;
    }
    return reply_done(s, code, p + 3, n - 3);
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
    if (dir != MS_DIR_C2S) {
        st->replies_lost = true; /* which reply answers what is a guess from here on */
        return;
    }
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
    smuggle_free(s);
    ms_smtp_state keep = s->smtp;
    memset(&s->smtp, 0, sizeof s->smtp);
    s->smtp.greeted = true;
    s->smtp.saw_greeting = keep.saw_greeting;
    s->smtp.messages = keep.messages;
    s->smtp.transactions = keep.transactions;
    s->smtp.rcpts = keep.rcpts;
    s->smtp.probes = keep.probes;
}

/* A reply ends the client's unterminated line, except inside a body, which
 * the server answers only as a whole. */
static bool smtp_reply_ends_client_line(const ms_session *s)
{
    return s->smtp.data == MS_SMTP_DATA_NONE;
}

/* The session ended: probes never answered say so. */
static void smtp_end(ms_session *s)
{
    ms_request req;
    data_end(s, MS_BODY_UNFINISHED);
    bdat_end(s, MS_BODY_UNFINISHED);
    while (ms_pending_pop(s, &req))
        if (req.cmd == SMTP_VRFY || req.cmd == SMTP_EXPN)
            probe(s, req.cmd == SMTP_VRFY ? MS_PROBE_VRFY : MS_PROBE_EXPN, &req, MS_PROBE_NO_REPLY, 0);
}

static void smtp_free(ms_session *s)
{
    smuggle_free(s);
}

const ms_adapter ms_smtp_adapter = {
    smtp_line, smtp_gap, smtp_tls_started, smtp_free, smtp_reply_ends_client_line, smtp_end
};

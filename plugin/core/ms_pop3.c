/* ms_pop3.c — POP3 adapter (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH).
 *
 * Replies are +OK/-ERR status lines matched to commands in order; CAPA, RETR,
 * TOP and argument-less LIST/UIDL answer with a body ending in a lone ".".
 */
#include "ms_detect.h"
#include "ms_session_int.h"

#include <string.h>

enum {
    POP_OTHER = 0,
    POP_CAPA,
    POP_STLS,
    POP_MULTI, /* RETR, TOP, LIST, UIDL without argument */
    POP_AUTH
};

static uint8_t classify(const uint8_t *p, size_t n)
{
    size_t t = ms_token_len(p, n);
    bool has_arg = t < n;
    if (ms_token_is(p, t, "CAPA")) return POP_CAPA;
    if (ms_token_is(p, t, "STLS")) return POP_STLS;
    if (ms_token_is(p, t, "RETR") || ms_token_is(p, t, "TOP")) return POP_MULTI;
    if ((ms_token_is(p, t, "LIST") || ms_token_is(p, t, "UIDL")) && !has_arg) return POP_MULTI;
    if (ms_token_is(p, t, "AUTH") && has_arg) return POP_AUTH;
    if (ms_token_is(p, t, "AUTH")) return POP_MULTI; /* the mechanism list */
    return POP_OTHER;
}

static ms_lines_verdict client_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_pop3_state *st = &s->pop3;
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE;
    if (st->in_sasl) {
        /* a SASL response line; "*" aborts (RFC 5034) */
        if (n == 1 && p[0] == '*')
            st->in_sasl = false;
        return MS_LINES_CONTINUE;
    }
    uint8_t cmd = classify(p, n);
    ms_pending_push(s, cmd, NULL, 0);
    if (cmd == POP_STLS)
        return ms_starttls_command(s);
    if (cmd == POP_AUTH)
        st->in_sasl = true;
    return MS_LINES_CONTINUE;
}

static ms_lines_verdict server_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_pop3_state *st = &s->pop3;
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE;
    if (st->multiline) {
        if (n == 1 && p[0] == '.') {
            st->multiline = false;
            return MS_LINES_CONTINUE;
        }
        if (st->multiline_cmd == POP_CAPA && ms_token_is(p, ms_token_len(p, n), "STLS"))
            ms_starttls_offered(s);
        return MS_LINES_CONTINUE;
    }
    bool ok = ms_ci_prefix(p, n, "+OK");
    bool err = ms_ci_prefix(p, n, "-ERR");
    if (!ok && !err) {
        /* "+ challenge" during AUTH, or noise */
        return MS_LINES_CONTINUE;
    }
    if (!st->greeted) {
        st->greeted = true;
        if (s->pending.count == 0)
            return MS_LINES_CONTINUE;
    }
    uint8_t cmd;
    if (!ms_pending_pop(s, &cmd, NULL))
        return MS_LINES_CONTINUE;
    switch (cmd) {
    case POP_STLS:
        return ms_starttls_reply(s, ok);
    case POP_AUTH:
        st->in_sasl = false;
        break;
    case POP_CAPA:
    case POP_MULTI:
        if (ok) {
            st->multiline = true;
            st->multiline_cmd = cmd;
        }
        break;
    default:
        break;
    }
    return MS_LINES_CONTINUE;
}

ms_lines_verdict ms_pop3_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags)
{
    return dir == MS_DIR_C2S ? client_line(s, p, n, flags) : server_line(s, p, n, flags);
}

void ms_pop3_tls_started(ms_session *s)
{
    memset(&s->pop3, 0, sizeof s->pop3);
    s->pop3.greeted = true;
}

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
    POP_MULTI, /* LIST, UIDL without argument, AUTH without one */
    POP_RETR,
    POP_TOP,
    POP_AUTH,
    POP_USER,
    POP_PASS,
    POP_APOP,
    POP_DELE
};

static uint8_t classify(const uint8_t *p, size_t n)
{
    size_t t = ms_token_len(p, n);
    bool has_arg = t < n;
    if (ms_token_is(p, t, "CAPA")) return POP_CAPA;
    if (ms_token_is(p, t, "STLS")) return POP_STLS;
    if (ms_token_is(p, t, "RETR")) return POP_RETR;
    if (ms_token_is(p, t, "TOP")) return POP_TOP;
    if ((ms_token_is(p, t, "LIST") || ms_token_is(p, t, "UIDL")) && !has_arg) return POP_MULTI;
    if (ms_token_is(p, t, "AUTH") && has_arg) return POP_AUTH;
    if (ms_token_is(p, t, "AUTH")) return POP_MULTI; /* the mechanism list */
    if (ms_token_is(p, t, "USER")) return POP_USER;
    if (ms_token_is(p, t, "PASS")) return POP_PASS;
    if (ms_token_is(p, t, "APOP")) return POP_APOP;
    if (ms_token_is(p, t, "DELE")) return POP_DELE;
    return POP_OTHER;
}

/* The argument after the command word: everything after one space (PASS
 * allows spaces in the password, RFC 1939 says the rest of the line). */
static void argument(const uint8_t *p, size_t n, const uint8_t **arg, size_t *alen)
{
    size_t t = ms_token_len(p, n);
    size_t i = t < n ? t + 1 : n;
    *arg = p + i;
    *alen = n - i;
}

static void login_command(ms_session *s, uint8_t cmd, const uint8_t *p, size_t n)
{
    ms_pop3_state *st = &s->pop3;
    const uint8_t *arg;
    size_t alen;
    argument(p, n, &arg, &alen);
    if (cmd == POP_USER) {
        st->user_len = alen < MS_STR_SMALL ? alen : MS_STR_SMALL;
        memcpy(st->user, arg, st->user_len);
        st->user[st->user_len] = '\0';
        st->have_user = true;
        return;
    }
    ms_creds *c = ms_auth_new_creds(s);
    if (!c)
        return;
    if (cmd == POP_PASS) {
        c->mech = MS_MECH_USER_PASS;
        if (st->have_user)
            ms_str_small_set(&c->username, st->user, st->user_len);
        ms_str_small_set(&c->password, arg, alen);
    } else { /* APOP name digest */
        c->mech = MS_MECH_APOP;
        size_t ul = ms_token_len(arg, alen);
        ms_str_small_set(&c->username, arg, ul);
        const uint8_t *dg = arg + ul;
        size_t dl = alen - ul;
        while (dl > 0 && *dg == ' ') {
            dg++;
            dl--;
        }
        if (!ms_apop_digest_ok(dg, dl))
            ms_auth_malformed(s, MS_AUTH_BAD_ARGUMENTS);
        else if (!ms_apop_hash((const uint8_t *)st->apop_timestamp, st->apop_timestamp_len, dg, dl, c))
            ms_str_large_set(&c->material, dg, dl); /* the greeting's timestamp is not in the capture:
                                                        the digest alone, not crackable */
    }
    ms_auth_single(s, c);
}

/* RFC 1939: an APOP-capable greeting carries a timestamp "<...>". */
static void greeting(ms_session *s, const uint8_t *p, size_t n)
{
    ms_pop3_state *st = &s->pop3;
    const uint8_t *lt = memchr(p, '<', n);
    if (!lt)
        return;
    const uint8_t *gt = memchr(lt, '>', n - (size_t)(lt - p));
    if (!gt)
        return;
    size_t len = (size_t)(gt - lt) + 1;
    if (len > MS_STR_SMALL)
        return;
    memcpy(st->apop_timestamp, lt, len);
    st->apop_timestamp[len] = '\0';
    st->apop_timestamp_len = len;
}

static ms_body_source body_source(uint8_t cmd)
{
    return cmd == POP_TOP ? MS_BODY_POP3_TOP : MS_BODY_POP3_RETR;
}

static bool is_message(uint8_t cmd)
{
    return cmd == POP_RETR || cmd == POP_TOP;
}

static void body_end(ms_session *s, unsigned flags)
{
    ms_pop3_state *st = &s->pop3;
    if (st->multiline && is_message(st->multiline_cmd))
        ms_body_end(s, body_source(st->multiline_cmd), MS_DIR_S2C, st->messages, flags);
}

static ms_lines_verdict client_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE;
    if (ms_auth_in_sasl(s) && ms_auth_expects_response(s)) {
        static const char *const bare[] = { "QUIT", "STAT", "LIST", "UIDL", "NOOP", "RSET", "CAPA", "STLS", NULL };
        if (!ms_auth_line_is_command(p, n, bare)) {
            /* a SASL response line; "*" aborts (RFC 5034) */
            ms_auth_client_line(s, p, n);
            return MS_LINES_CONTINUE;
        }
        ms_auth_abandon(s); /* a command: the verdict is missing from the capture */
        if (ms_pending_peek(s) && ms_pending_peek(s)->cmd == POP_AUTH)
            (void)ms_pending_pop(s, NULL);
    }
    uint8_t cmd = classify(p, n);
    const uint8_t *arg;
    size_t alen;
    argument(p, n, &arg, &alen);
    /* the secret of PASS stays out of the queue: the login keeps it */
    ms_pending_push(s, cmd, p, ms_token_len(p, n), NULL, 0, arg, cmd == POP_PASS ? 0 : alen);
    switch (cmd) {
    case POP_STLS:
        return ms_starttls_command(s);
    case POP_AUTH: /* AUTH mechanism [initial-response] (RFC 5034) */
        ms_auth_start_args(s, p + 4, n - 4);
        break;
    case POP_USER:
    case POP_PASS:
    case POP_APOP:
        login_command(s, cmd, p, n);
        break;
    default:
        break;
    }
    return MS_LINES_CONTINUE;
}

static ms_lines_verdict server_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_pop3_state *st = &s->pop3;
    if (flags & MS_LINE_RAW)
        return MS_LINES_CONTINUE;
    if (st->multiline) {
        if (n == 1 && p[0] == '.' && !(flags & (MS_LINE_PIECE | MS_LINE_CONT))) {
            body_end(s, 0);
            st->multiline = false;
            if (st->multiline_cmd == POP_CAPA)
                ms_capabilities_end(s);
            return MS_LINES_CONTINUE;
        }
        if (st->multiline_cmd == POP_CAPA && ms_token_is(p, ms_token_len(p, n), "STLS"))
            ms_starttls_offered(s);
        else if (is_message(st->multiline_cmd))
            ms_body_line(s, body_source(st->multiline_cmd), MS_DIR_S2C, st->messages, p, n, flags);
        return MS_LINES_CONTINUE;
    }
    bool ok = ms_ci_prefix(p, n, "+OK");
    bool err = ms_ci_prefix(p, n, "-ERR");
    if (!ok && !err) {
        /* "+ challenge" during AUTH, or noise */
        if (ms_auth_in_sasl(s) && n >= 1 && p[0] == '+')
            ms_auth_challenge(s, n > 2 ? p + 2 : p + n, n > 2 ? n - 2 : 0);
        return MS_LINES_CONTINUE;
    }
    ms_reply_status status = ok ? MS_REPLY_OK : MS_REPLY_ERR;
    size_t word = ok ? 3 : 4;
    if (!st->greeted) {
        st->greeted = true;
        if (ms_pending_count(s) == 0) {
            greeting(s, p, n);
            ms_reply(s, status, 0, p + word, n - word, ms_no_request("(greeting)"));
            return MS_LINES_CONTINUE;
        }
    }
    ms_request req;
    if (!ms_pending_pop(s, &req)) {
        ms_reply(s, status, 0, p + word, n - word, ms_no_request("(none)"));
        return MS_LINES_CONTINUE;
    }
    ms_reply(s, status, 0, p + word, n - word, &req);
    switch (req.cmd) {
    case POP_STLS:
        return ms_starttls_reply(s, ok);
    case POP_AUTH:
    case POP_PASS:
    case POP_APOP:
        ms_auth_verdict(s, ok);
        break;
    case POP_DELE:
        if (ok) {
            ms_fact f = { .kind = MS_FACT_DELETED, .u.deleted = { 1, ++st->deleted, 0, "DELE" } };
            ms_emit_fact(s, &f);
        }
        break;
    case POP_CAPA:
    case POP_MULTI:
    case POP_RETR:
    case POP_TOP:
        if (ok) {
            st->multiline = true;
            st->multiline_cmd = req.cmd;
            if (is_message(req.cmd))
                ms_body_begin(s, body_source(req.cmd), MS_DIR_S2C, ++st->messages);
        }
        break;
    default:
        break;
    }
    return MS_LINES_CONTINUE;
}

static ms_lines_verdict pop3_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags)
{
    return dir == MS_DIR_C2S ? client_line(s, p, n, flags) : server_line(s, p, n, flags);
}

static void pop3_gap(ms_session *s, ms_dir dir, ms_gap_kind k)
{
    /* POP3 has no counted octets; a multi-line body goes on line by line,
     * and a message that lost bytes says so. */
    ms_pop3_state *st = &s->pop3;
    (void)k;
    if (dir == MS_DIR_S2C && st->multiline && is_message(st->multiline_cmd))
        ms_body_data(s, body_source(st->multiline_cmd), MS_DIR_S2C, st->messages, NULL, 0, MS_BODY_LOST);
}

static void pop3_tls_started(ms_session *s)
{
    body_end(s, MS_BODY_UNFINISHED);
    /* the APOP timestamp came with the greeting, before TLS: keep it */
    ms_pop3_state keep = s->pop3;
    memset(&s->pop3, 0, sizeof s->pop3);
    s->pop3.greeted = true;
    memcpy(s->pop3.apop_timestamp, keep.apop_timestamp, sizeof keep.apop_timestamp);
    s->pop3.apop_timestamp_len = keep.apop_timestamp_len;
    s->pop3.messages = keep.messages;
    s->pop3.deleted = keep.deleted;
}

static bool pop3_reply_ends_client_line(const ms_session *s)
{
    (void)s;
    return true;
}

const ms_adapter ms_pop3_adapter = {
    pop3_line, pop3_gap, pop3_tls_started, NULL, pop3_reply_ends_client_line, NULL
};

/* ms_auth.c — the login exchange, whatever the protocol carrying it.
 *
 * The adapters say when an exchange starts (AUTH, AUTHENTICATE, USER/PASS,
 * APOP, LOGIN), pass on the server's challenges and the client's messages, and
 * report the verdict. Here each mechanism's messages are decoded and two facts
 * come out per attempt: REQUEST when the client's part is complete (the frame an
 * analyst wants for the secret), RESULT on the server's verdict.
 */
#include "ms_detect.h"
#include "ms_registry.h"
#include "ms_session_int.h"

#include <string.h>

ms_creds *ms_auth_new_creds(ms_session *s)
{
    ms_creds *c = s->alloc->realloc_fn(s->alloc->ctx, NULL, sizeof *c);
    if (c)
        ms_creds_clear(c);
    return c;
}

void ms_auth_reset(ms_session *s)
{
    ms_auth *a = &s->auth;
    if (a->creds)
        s->alloc->free_fn(s->alloc->ctx, a->creds);
    memset(a, 0, sizeof *a);
}

static void emit_request(ms_session *s)
{
    ms_auth *a = &s->auth;
    if (a->requested || !a->creds)
        return;
    a->requested = true;
    a->request_frame = s->ctx ? s->ctx->frame : 0;
    ms_starttls_unused_check(s, MS_UNUSED_LOGIN);
    if (s->transport == MS_TRANSPORT_CLEARTEXT)
        s->clear_logins++;
    ms_fact f = { .kind = MS_FACT_AUTH_REQUEST,
                  .u.auth_request = { a->attempt, s->transport == MS_TRANSPORT_CLEARTEXT, a->creds } };
    ms_emit_fact(s, &f);
}

void ms_auth_malformed(ms_session *s, ms_auth_problem p)
{
    ms_fact f = { .kind = MS_FACT_AUTH_MALFORMED, .u.auth_malformed = { p } };
    ms_emit_fact(s, &f);
}

static bool begin(ms_session *s, ms_creds *creds)
{
    ms_auth_reset(s);
    if (!creds)
        return false;
    s->auth.active = true;
    s->auth.creds = creds;
    s->auth.attempt = ++s->attempts;
    return true;
}

/* Where each attempt begins, even one the capture never sees completed. */
static void emit_start(ms_session *s)
{
    ms_fact f = { .kind = MS_FACT_AUTH_START, .u.auth_start = { s->auth.attempt, s->auth.creds } };
    ms_emit_fact(s, &f);
}

/* Each decoded client message of an unknown mechanism, appended to the
 * material (bounded by its size; one space between messages). */
static void keep_message(ms_creds *c, const uint8_t *m, size_t n)
{
    ms_str_large *f = &c->material;
    size_t room = MS_STR_LARGE - f->len;
    if (f->len && room) {
        f->s[f->len++] = ' ';
        room--;
    }
    size_t take = n < room ? n : room;
    memcpy(f->s + f->len, m, take);
    f->len += take;
    f->s[f->len] = '\0';
    f->set = true;
    if (take < n)
        f->truncated = true;
}

/* One decoded SASL message from the client, by mechanism. */
static void client_message(ms_session *s, const uint8_t *m, size_t n)
{
    ms_auth *a = &s->auth;
    ms_creds *c = a->creds;
    unsigned k = ++a->client_msgs;
    switch (c->mech) {
    case MS_MECH_PLAIN:
        if (!ms_sasl_plain(m, n, c))
            ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
        emit_request(s);
        break;
    case MS_MECH_LOGIN:
        if (k == 1) {
            ms_str_small_set(&c->username, m, n);
        } else if (k == 2) {
            ms_str_small_set(&c->password, m, n);
            emit_request(s);
        }
        break;
    case MS_MECH_CRAM_MD5:
        if (k == 1) {
            if (!ms_sasl_cram_md5((const uint8_t *)a->challenge, a->challenge_len, m, n, c))
                ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
            emit_request(s);
        }
        break;
    case MS_MECH_DIGEST_MD5:
        /* the digest-response; a later empty message acknowledges rspauth */
        if (!a->requested && n > 0) {
            if (!ms_sasl_digest_md5(m, n, c))
                ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
            emit_request(s);
        }
        break;
    case MS_MECH_NTLM: {
        int type = ms_ntlmssp_type(m, n);
        if (type == 3) {
            if (!ms_ntlmssp_authenticate(m, n, a->have_ntlm_challenge ? a->ntlm_challenge : NULL, c))
                ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
            emit_request(s);
        } else if (type != 1) {
            ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
        }
        break;
    }
    case MS_MECH_XOAUTH2:
        if (k == 1) {
            if (!ms_sasl_xoauth2(m, n, c))
                ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
            emit_request(s);
        }
        break;
    case MS_MECH_OAUTHBEARER:
        if (k == 1) {
            if (!ms_sasl_oauthbearer(m, n, c))
                ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
            emit_request(s);
        }
        break;
    case MS_MECH_SCRAM_SHA_1:
    case MS_MECH_SCRAM_SHA_256:
        if (k == 1) {
            if (!ms_sasl_scram_client_first(m, n, c))
                ms_auth_malformed(s, MS_AUTH_BAD_MESSAGE);
        } else if (k == 2) {
            emit_request(s); /* client-final: the proof */
        }
        break;
    default:
        /* GSSAPI, EXTERNAL, ANONYMOUS, unknown: the mechanism and who tried */
        if (c->mech == MS_MECH_ANONYMOUS && k == 1)
            ms_str_small_set(&c->username, m, n); /* trace information */
        if (c->mech == MS_MECH_OTHER)
            keep_message(c, m, n); /* a vendor mechanism: what the client said, for the analyst */
        emit_request(s);
        break;
    }
}

static void client_b64(ms_session *s, const uint8_t *b64, size_t len)
{
    ms_auth *a = &s->auth;
    if (len == 1 && b64[0] == '*') {
        a->aborted = true;
        emit_request(s);
        return;
    }
    if (len == 1 && b64[0] == '=') {
        client_message(s, (const uint8_t *)"", 0);
        return;
    }
    if (s->line_cut)
        len -= len % 4; /* a line cut at the buffer: decode the whole quanta that are there */
    size_t cap = len / 4 * 3 + 3;
    uint8_t *buf = s->alloc->realloc_fn(s->alloc->ctx, NULL, cap);
    if (!buf)
        return;
    long n = ms_b64_decode(b64, len, buf, cap);
    if (n < 0)
        ms_auth_malformed(s, MS_AUTH_BAD_BASE64);
    else
        client_message(s, buf, (size_t)n);
    s->alloc->free_fn(s->alloc->ctx, buf);
}

void ms_auth_start(ms_session *s, const uint8_t *mech, size_t mlen, const uint8_t *initial, size_t ilen,
                   bool has_initial)
{
    if (!begin(s, ms_auth_new_creds(s)))
        return;
    s->auth.sasl = true;
    ms_creds *c = s->auth.creds;
    c->mech = ms_sasl_mech_from_name(mech, mlen);
    ms_str_small_set(&c->mech_name, mech, mlen);
    emit_start(s);
    if (mlen == 0)
        ms_auth_malformed(s, MS_AUTH_BAD_ARGUMENTS);
    if (has_initial)
        client_b64(s, initial, ilen);
}

void ms_auth_challenge(ms_session *s, const uint8_t *b64, size_t len)
{
    ms_auth *a = &s->auth;
    if (!a->active)
        return;
    a->challenge_open = true;
    if (!a->have_challenge) {
        size_t keep = len < MS_STR_SMALL ? len : MS_STR_SMALL;
        memcpy(a->challenge, b64, keep);
        a->challenge[keep] = '\0';
        a->challenge_len = keep;
        a->have_challenge = true;
    }
    if (a->creds->mech == MS_MECH_NTLM && !a->have_ntlm_challenge) {
        uint8_t buf[1024];
        long n = len / 4 * 3 + 3 <= sizeof buf ? ms_b64_decode(b64, len, buf, sizeof buf) : -1;
        if (n > 0 && ms_ntlmssp_type(buf, (size_t)n) == 2 &&
            ms_ntlmssp_challenge(buf, (size_t)n, a->ntlm_challenge))
            a->have_ntlm_challenge = true;
    }
}

void ms_auth_start_args(ms_session *s, const uint8_t *args, size_t n)
{
    while (n > 0 && *args == ' ') {
        args++;
        n--;
    }
    size_t ml = ms_token_len(args, n);
    const uint8_t *init = args + ml;
    size_t il = n - ml;
    while (il > 0 && *init == ' ') {
        init++;
        il--;
    }
    il = ms_token_len(init, il);
    ms_auth_start(s, args, ml, init, il, il > 0);
}

bool ms_auth_in_sasl(const ms_session *s)
{
    return s->auth.active && s->auth.sasl;
}

bool ms_auth_expects_response(const ms_session *s)
{
    return s->auth.active && s->auth.challenge_open;
}

bool ms_auth_line_is_command(const uint8_t *p, size_t n, const char *const *verbs)
{
    if (memchr(p, ' ', n))
        return true;
    for (; verbs && *verbs; verbs++)
        if (ms_token_is(p, n, *verbs))
            return true;
    return false;
}

void ms_auth_abandon(ms_session *s)
{
    ms_auth *a = &s->auth;
    if (!a->active)
        return;
    emit_request(s); /* what the client had sent of it; no verdict in the capture */
    ms_auth_reset(s);
}

void ms_auth_client_line(ms_session *s, const uint8_t *line, size_t len)
{
    if (!s->auth.active)
        return;
    s->auth.challenge_open = false;
    client_b64(s, line, len);
}

void ms_auth_single(ms_session *s, ms_creds *creds)
{
    if (begin(s, creds)) {
        emit_start(s);
        emit_request(s);
    }
}

void ms_auth_verdict(ms_session *s, bool success)
{
    ms_auth *a = &s->auth;
    if (!a->active)
        return;
    emit_request(s); /* an exchange the server ended before the client finished */
    ms_auth_result r = a->aborted ? MS_AUTH_ABORTED : success ? MS_AUTH_SUCCESS : MS_AUTH_FAILURE;
    uint32_t client_failures = 0;
    if (s->cfg.client_addr_len) {
        ms_peer client = ms_peer_make(s->cfg.client_family, s->cfg.client_addr, s->cfg.client_addr_len, 0);
        client_failures = r == MS_AUTH_FAILURE
                              ? ms_registry_add(s->cfg.registry, &client, MS_COUNT_AUTH_FAILURES, 1)
                              : ms_registry_get(s->cfg.registry, &client, MS_COUNT_AUTH_FAILURES);
    }
    if (r == MS_AUTH_FAILURE)
        s->failures++;
    if (r == MS_AUTH_SUCCESS)
        s->logged_in = true;
    if (r == MS_AUTH_SUCCESS && a->creds->username.set) {
        memcpy(s->auth_user, a->creds->username.s, a->creds->username.len + 1);
        s->auth_user_len = a->creds->username.len;
        s->auth_user_gen++;
    }
    ms_fact f = { .kind = MS_FACT_AUTH_RESULT,
                  .u.auth_result = { a->attempt, r, a->creds, a->request_frame, s->failures, client_failures } };
    ms_emit_fact(s, &f);
    ms_auth_reset(s);
}

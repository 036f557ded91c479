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
    IMAP_CAPABILITY,
    IMAP_APPEND,
    IMAP_STORE,
    IMAP_MOVE,
    IMAP_EXPUNGE    /* EXPUNGE, UID EXPUNGE, CLOSE */
};

/* How many messages a sequence set names ("1:3,7" is 4); "*" counts one. */
static uint32_t set_size(const uint8_t *p, size_t n)
{
    uint32_t total = 0;
    size_t i = 0;
    while (i < n && p[i] != ' ') {
        uint64_t a = 0, b = 0;
        bool ha = false, hb = false, range = false;
        while (i < n && p[i] >= '0' && p[i] <= '9' && a < 0xffffffffu) {
            a = a * 10 + (uint64_t)(p[i++] - '0');
            ha = true;
        }
        if (i < n && p[i] == '*') {
            i++;
            ha = false;
        }
        if (i < n && p[i] == ':') {
            range = true;
            i++;
            while (i < n && p[i] >= '0' && p[i] <= '9' && b < 0xffffffffu) {
                b = b * 10 + (uint64_t)(p[i++] - '0');
                hb = true;
            }
            if (i < n && p[i] == '*') {
                i++;
                hb = false;
            }
        }
        uint64_t k = 1;
        if (range && ha && hb)
            k = (a > b ? a - b : b - a) + 1;
        total = total + k > 1000000u ? 1000000u : total + (uint32_t)k;
        if (i < n && p[i] == ',')
            i++;
        else if (i < n && p[i] != ' ')
            i++; /* a byte no set has: move on */
    }
    return total;
}

/* The last argument: a mailbox name, quoted or not. */
static bool names_trash(const uint8_t *p, size_t n)
{
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '"'))
        n--;
    size_t i = n;
    while (i > 0 && p[i - 1] != ' ' && p[i - 1] != '"' && p[i - 1] != '/' && p[i - 1] != '.')
        i--;
    const uint8_t *w = p + i;
    size_t wl = n - i;
    return ms_ci_contains(w, wl, "trash") || ms_ci_contains(w, wl, "deleted") || ms_ci_contains(w, wl, "bin") ||
           ms_ci_contains(w, wl, "papierkorb") || ms_ci_contains(w, wl, "corbeille");
}

static bool after_literal_check(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, bool *cont)
{
    uint64_t count;
    if (ms_literal_at_end(p, n, &count)) {
        ms_lines_expect_raw(&s->lines[dir], count);
        *cont = true;
    } else {
        *cont = false;
    }
    return *cont;
}

/* Is the literal at the end of this FETCH response piece a message or a
 * part of one (BODY[...], BINARY[...], RFC822, RFC822.HEADER/TEXT), rather
 * than a string inside ENVELOPE or BODYSTRUCTURE? The item name is the word
 * before the literal. */
static bool fetch_message_literal(const uint8_t *p, size_t n)
{
    size_t end = n;
    while (end > 0 && p[end - 1] != '{')
        end--;
    if (end == 0)
        return false;
    end--; /* at '{' */
    while (end > 0 && p[end - 1] == ' ')
        end--;
    size_t start = end;
    while (start > 0 && p[start - 1] != ' ' && p[start - 1] != '(')
        start--;
    const uint8_t *w = p + start;
    size_t wl = end - start;
    return ms_ci_prefix(w, wl, "BODY[") || ms_ci_prefix(w, wl, "BINARY[") || ms_ci_prefix(w, wl, "RFC822");
}

/* The response "* <number> FETCH ..." */
static bool is_fetch_response(const uint8_t *p, size_t n)
{
    if (n < 2 || p[0] != '*' || p[1] != ' ')
        return false;
    const uint8_t *q = p + 2;
    size_t ql = n - 2;
    size_t t = ms_token_len(q, ql);
    if (t == 0 || t >= ql)
        return false;
    for (size_t i = 0; i < t; i++)
        if (q[i] < '0' || q[i] > '9')
            return false;
    return ms_token_is(q + t + 1, ms_token_len(q + t + 1, ql - t - 1), "FETCH");
}

/* The response "* <number> EXPUNGE" */
static bool is_expunge_response(const uint8_t *p, size_t n)
{
    if (n < 4 || p[0] != '*' || p[1] != ' ' || p[2] < '0' || p[2] > '9')
        return false;
    size_t t = ms_token_len(p + 2, n - 2);
    return t + 3 < n && ms_token_is(p + 3 + t, ms_token_len(p + 3 + t, n - 3 - t), "EXPUNGE");
}

static void deleted(ms_session *s, uint32_t added, uint32_t expunged, const char *how)
{
    ms_imap_state *st = &s->imap;
    st->deleted += added;
    ms_fact f = { .kind = MS_FACT_DELETED, .u.deleted = { added, st->deleted, expunged, how } };
    ms_emit_fact(s, &f);
}

static void body_end(ms_session *s, ms_dir dir, unsigned flags)
{
    ms_imap_state *st = &s->imap;
    bool *open = dir == MS_DIR_C2S ? &st->client_body : &st->server_body;
    if (*open)
        ms_body_end(s, dir == MS_DIR_C2S ? MS_BODY_IMAP_APPEND : MS_BODY_IMAP_FETCH, dir, st->messages[dir], flags);
    *open = false;
}

static void body_begin(ms_session *s, ms_dir dir)
{
    ms_imap_state *st = &s->imap;
    body_end(s, dir, MS_BODY_UNFINISHED);
    if (dir == MS_DIR_C2S)
        st->client_body = true;
    else
        st->server_body = true;
    ms_body_begin(s, dir == MS_DIR_C2S ? MS_BODY_IMAP_APPEND : MS_BODY_IMAP_FETCH, dir, ++st->messages[dir]);
}

/* Literal octets of a message. */
static void body_octets(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags)
{
    ms_imap_state *st = &s->imap;
    if (!(dir == MS_DIR_C2S ? st->client_body : st->server_body))
        return;
    ms_body_data(s, dir == MS_DIR_C2S ? MS_BODY_IMAP_APPEND : MS_BODY_IMAP_FETCH, dir, st->messages[dir], p, n, 0);
    if (flags & MS_LINE_RAW_END)
        body_end(s, dir, 0);
}

/* Capabilities come as "* CAPABILITY ..." or as a "[CAPABILITY ...]" code
 * right after a status word (greeting, tagged OK); nowhere else, so other
 * lines (SEARCH results, FETCH headers) are not searched. */
static void capability_check(ms_session *s, const uint8_t *p, size_t n, bool untagged)
{
    size_t t = ms_token_len(p, n); /* the tag or "*" */
    if (t + 1 >= n)
        return;
    const uint8_t *r = p + t + 1;
    size_t rn = n - t - 1;
    size_t w = ms_token_len(r, rn);
    size_t caps;
    if (ms_token_is(r, w, "CAPABILITY"))
        caps = w;
    else if (w + 1 < rn && ms_ci_prefix(r + w + 1, rn - w - 1, "[CAPABILITY"))
        caps = w + 1 + strlen("[CAPABILITY");
    else
        return;
    if (ms_ci_contains(r + caps, rn - caps, " STARTTLS"))
        ms_starttls_offered(s);
    if (untagged)
        ms_capabilities_end(s); /* a tagged reply's list is the state after its command */
}

/* ---- LOGIN arguments: atom, quoted string or literal (RFC 3501 astring) ---- */

static void arg_append(ms_str_small *f, const uint8_t *p, size_t n)
{
    size_t room = MS_STR_SMALL - f->len;
    size_t take = n < room ? n : room;
    memcpy(f->s + f->len, p, take);
    f->len += take;
    f->s[f->len] = '\0';
    f->set = true;
    if (take < n)
        f->truncated = true;
}

static ms_str_small *next_arg(ms_imap_args *a)
{
    if (a->count >= 2) {
        a->overflow = true;
        return NULL;
    }
    return &a->arg[a->count];
}

/* Parse a piece of the LOGIN command line; a literal announced at its end
 * makes the following raw octets the next argument. */
static void login_args_line(ms_session *s, ms_imap_args *a, const uint8_t *p, size_t n)
{
    uint64_t lit;
    size_t end = n;
    bool literal = ms_literal_at_end(p, n, &lit);
    if (literal) {
        while (end > 0 && p[end - 1] != '{')
            end--;
        end = end > 0 ? end - 1 : 0;
    }
    size_t i = 0;
    while (i < end) {
        while (i < end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i >= end)
            break;
        ms_str_small *f = next_arg(a);
        if (p[i] == '"') {
            i++;
            while (i < end && p[i] != '"') {
                if (p[i] == '\\' && i + 1 < end)
                    i++;
                if (f)
                    arg_append(f, p + i, 1);
                i++;
            }
            i++; /* closing quote */
        } else {
            size_t t = ms_token_len(p + i, end - i);
            if (f)
                arg_append(f, p + i, t);
            i += t > 0 ? t : 1; /* always move on: no input may stall the loop */
        }
        if (f) {
            f->set = true;
            a->count++;
        }
    }
    a->in_literal = false;
    if (literal) {
        ms_str_small *f = next_arg(a);
        if (f) {
            f->set = true;
            a->in_literal = lit > 0;
            if (lit == 0)
                a->count++;
        }
    }
    (void)s;
}

static void login_finish(ms_session *s)
{
    ms_imap_state *st = &s->imap;
    ms_imap_args *a = st->args;
    if (!a)
        return;
    if (a->in_literal) {
        /* the literal never completed: what came of it is a piece */
        a->arg[a->count].truncated = true;
        a->in_literal = false;
        a->count++;
        a->incomplete = true;
    }
    ms_creds *c = ms_auth_new_creds(s);
    if (c) {
        c->mech = MS_MECH_IMAP_LOGIN;
        /* a literal cut short is a piece of unknown length: no user name */
        if (a->arg[0].set && !(a->incomplete && a->arg[0].truncated))
            ms_str_small_set(&c->username, a->arg[0].s, a->arg[0].len);
        /* a password cut by a hole or never finished is not a password */
        if (a->arg[1].set && !(a->incomplete && a->arg[1].truncated))
            ms_str_small_set(&c->password, a->arg[1].s, a->arg[1].len);
        if (a->count < 2 || !c->password.set || !c->username.set)
            ms_auth_malformed(s, MS_AUTH_BAD_ARGUMENTS);
        ms_auth_single(s, c);
    }
    s->alloc->free_fn(s->alloc->ctx, st->args);
    st->args = NULL;
}

/* The command being continued after a literal is over: the server answered
 * it (and so did not wait for the literal), or a hole broke it. */
static void abandon_client_command(ms_session *s)
{
    ms_imap_state *st = &s->imap;
    ms_lines_cancel_raw(&s->lines[MS_DIR_C2S]);
    body_end(s, MS_DIR_C2S, MS_BODY_UNFINISHED);
    st->client_cont = false;
    st->cont_append = false;
    st->cont_tag_len = 0;
    if (st->args) {
        st->args->incomplete = true;
        login_finish(s);
    }
}

static ms_lines_verdict client_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_imap_state *st = &s->imap;
    if (flags & MS_LINE_RAW) {
        /* literal octets: a LOGIN argument, a message (APPEND), or data we pass over */
        body_octets(s, MS_DIR_C2S, p, n, flags);
        if (st->args && st->args->in_literal && st->args->count < 2) {
            ms_str_small *f = &st->args->arg[st->args->count];
            arg_append(f, p, n);
            if (flags & MS_LINE_RAW_END) {
                st->args->in_literal = false;
                st->args->count++;
            }
        }
        return MS_LINES_CONTINUE;
    }
    if (st->client_cont) {
        if (st->args)
            login_args_line(s, st->args, p, n);
        if (after_literal_check(s, MS_DIR_C2S, p, n, &st->client_cont) && st->cont_append)
            body_begin(s, MS_DIR_C2S); /* MULTIAPPEND (RFC 3502): the next message */
        if (st->args && !st->client_cont)
            login_finish(s);
        return MS_LINES_CONTINUE;
    }
    if (ms_auth_in_sasl(s) && ms_auth_expects_response(s)) {
        if (!ms_auth_line_is_command(p, n, NULL)) {
            ms_auth_client_line(s, p, n); /* "*" aborts; the tagged BAD follows */
            return MS_LINES_CONTINUE;
        }
        ms_auth_abandon(s); /* "tag command": the verdict is missing from the capture */
    }
    size_t tl = ms_token_len(p, n);
    if (tl == 0 || tl >= n)
        return MS_LINES_CONTINUE; /* "DONE" after IDLE, or noise */
    const uint8_t *c = p + tl + 1;
    size_t cl = ms_token_len(c, n - tl - 1);
    /* UID FETCH, UID STORE ...: the command is the word after UID */
    const uint8_t *verb = c;
    if (ms_token_is(c, cl, "UID") && (size_t)(c - p) + cl + 1 < n) {
        const uint8_t *c2 = c + cl + 1;
        size_t cl2 = ms_token_len(c2, n - (size_t)(c2 - p));
        if (cl2) {
            c = c2;
            cl = cl2;
        }
    }
    size_t verb_len = (size_t)(c + cl - verb);
    uint8_t cmd = IMAP_OTHER;
    if (ms_token_is(c, cl, "STARTTLS")) cmd = IMAP_STARTTLS;
    else if (ms_token_is(c, cl, "AUTHENTICATE")) cmd = IMAP_AUTHENTICATE;
    else if (ms_token_is(c, cl, "LOGIN")) cmd = IMAP_LOGIN;
    else if (ms_token_is(c, cl, "CAPABILITY")) cmd = IMAP_CAPABILITY;
    else if (ms_token_is(c, cl, "APPEND")) cmd = IMAP_APPEND;
    else if (ms_token_is(c, cl, "STORE")) cmd = IMAP_STORE;
    else if (ms_token_is(c, cl, "MOVE")) cmd = IMAP_MOVE;
    else if (ms_token_is(c, cl, "EXPUNGE") || ms_token_is(c, cl, "CLOSE")) cmd = IMAP_EXPUNGE;
    {
        /* the arguments, except a LOGIN's: the login keeps its secret */
        const uint8_t *a = c + cl;
        size_t al = n - (size_t)(a - p);
        if (al > 0) {
            a++;
            al--;
        }
        ms_pending_push(s, cmd, verb, verb_len, p, tl, a, cmd == IMAP_LOGIN ? 0 : al);
    }
    if (cmd == IMAP_EXPUNGE)
        st->expunge_mark = st->expunged;
    st->cont_tag_len = tl < MS_TAG_MAX ? tl : MS_TAG_MAX;
    memcpy(st->cont_tag, p, st->cont_tag_len);
    if (cmd == IMAP_STARTTLS)
        return ms_starttls_command(s);
    const uint8_t *rest = c + cl;
    size_t rl = n - (size_t)(rest - p);
    while (rl > 0 && *rest == ' ') {
        rest++;
        rl--;
    }
    if (cmd == IMAP_AUTHENTICATE) {
        /* AUTHENTICATE mechanism [initial-response] (RFC 4959 SASL-IR) */
        ms_auth_start_args(s, rest, rl);
        return MS_LINES_CONTINUE;
    }
    if (cmd == IMAP_LOGIN && !st->args) {
        st->args = s->alloc->realloc_fn(s->alloc->ctx, NULL, sizeof *st->args);
        if (st->args) {
            memset(st->args, 0, sizeof *st->args);
            login_args_line(s, st->args, rest, rl);
        }
    }
    st->cont_append = cmd == IMAP_APPEND;
    if (after_literal_check(s, MS_DIR_C2S, p, n, &st->client_cont) && st->cont_append)
        body_begin(s, MS_DIR_C2S);
    if (st->args && !st->client_cont)
        login_finish(s);
    return MS_LINES_CONTINUE;
}

static ms_lines_verdict server_line(ms_session *s, const uint8_t *p, size_t n, unsigned flags)
{
    ms_imap_state *st = &s->imap;
    if (flags & MS_LINE_RAW) {
        body_octets(s, MS_DIR_S2C, p, n, flags); /* a FETCHed message, or data we pass over */
        return MS_LINES_CONTINUE;
    }
    if (st->server_cont) {
        if (after_literal_check(s, MS_DIR_S2C, p, n, &st->server_cont) && st->server_fetch &&
            fetch_message_literal(p, n))
            body_begin(s, MS_DIR_S2C);
        return MS_LINES_CONTINUE;
    }
    if (s->transport == MS_TRANSPORT_CLEARTEXT && ms_ci_contains(p, n, "[ALERT]")) {
        /* RFC 3501 7.1: the client must show it to the user; sent in clear,
         * anybody on the path can write it (EAST: UI spoofing) */
        ms_fact f = { .kind = MS_FACT_IMAP_ALERT, .u.text = { (const char *)p, n } };
        ms_emit_fact(s, &f);
    }
    if (n >= 1 && p[0] == '*') {
        if (!st->greeted && s->transport == MS_TRANSPORT_CLEARTEXT && n >= 10 &&
            ms_token_is(p + 2, ms_token_len(p + 2, n - 2), "PREAUTH")) {
            ms_emit_kind(s, MS_FACT_IMAP_PREAUTH); /* authenticated in clear: STARTTLS is no longer allowed */
            s->logged_in = true;
        }
        st->greeted = true;
        capability_check(s, p, n, true);
        if (is_expunge_response(p, n))
            st->expunged++;
        st->server_fetch = is_fetch_response(p, n);
        if (after_literal_check(s, MS_DIR_S2C, p, n, &st->server_cont) && st->server_fetch &&
            fetch_message_literal(p, n))
            body_begin(s, MS_DIR_S2C);
        return MS_LINES_CONTINUE;
    }
    if (n >= 1 && p[0] == '+') {
        /* continuation request: a SASL challenge during AUTHENTICATE */
        if (ms_auth_in_sasl(s))
            ms_auth_challenge(s, n > 2 ? p + 2 : p + n, n > 2 ? n - 2 : 0);
        return MS_LINES_CONTINUE;
    }
    size_t tl = ms_token_len(p, n);
    if (tl == 0 || tl >= n)
        return MS_LINES_CONTINUE;
    const uint8_t *r = p + tl + 1;
    size_t rl = ms_token_len(r, n - tl - 1);
    bool ok = ms_token_is(r, rl, "OK");
    if (!ok && !ms_token_is(r, rl, "NO") && !ms_token_is(r, rl, "BAD"))
        return MS_LINES_CONTINUE;
    capability_check(s, p, n, false);
    if (st->client_cont && tl == st->cont_tag_len && memcmp(p, st->cont_tag, tl) == 0)
        abandon_client_command(s);
    ms_reply_status status = ok ? MS_REPLY_OK : ms_token_is(r, rl, "NO") ? MS_REPLY_NO : MS_REPLY_BAD;
    ms_request req;
    if (!ms_pending_take_tag(s, p, tl, &req)) {
        ms_reply(s, status, 0, r + rl, n - tl - 1 - rl, ms_no_request("(none)"));
        return MS_LINES_CONTINUE;
    }
    ms_reply(s, status, 0, r + rl, n - tl - 1 - rl, &req);
    uint8_t cmd = req.cmd;
    if (ok && cmd == IMAP_STORE && ms_ci_contains((const uint8_t *)req.arg, req.arg_len, "+FLAGS") &&
        ms_ci_contains((const uint8_t *)req.arg, req.arg_len, "\\Deleted"))
        deleted(s, set_size((const uint8_t *)req.arg, req.arg_len), 0, "\\Deleted");
    if (ok && cmd == IMAP_MOVE && names_trash((const uint8_t *)req.arg, req.arg_len))
        deleted(s, set_size((const uint8_t *)req.arg, req.arg_len), 0, "MOVE");
    if (ok && cmd == IMAP_EXPUNGE && st->expunged > st->expunge_mark)
        deleted(s, 0, st->expunged - st->expunge_mark, "EXPUNGE");
    if (cmd == IMAP_AUTHENTICATE || cmd == IMAP_LOGIN)
        ms_auth_verdict(s, ok);
    if (cmd == IMAP_STARTTLS)
        return ms_starttls_reply(s, ok);
    return MS_LINES_CONTINUE;
}

static ms_lines_verdict imap_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags)
{
    return dir == MS_DIR_C2S ? client_line(s, p, n, flags) : server_line(s, p, n, flags);
}

static void imap_gap(ms_session *s, ms_dir dir, ms_gap_kind k)
{
    ms_imap_state *st = &s->imap;
    bool body = dir == MS_DIR_C2S ? st->client_body : st->server_body;
    if (k == MS_GAP_IN_RAW && body)
        ms_body_data(s, dir == MS_DIR_C2S ? MS_BODY_IMAP_APPEND : MS_BODY_IMAP_FETCH, dir, st->messages[dir],
                     NULL, 0, MS_BODY_LOST); /* the message goes on, shorter */
    else if (k != MS_GAP_IN_RAW)
        body_end(s, dir, MS_BODY_LOST); /* its octets ended inside the hole */
    if (dir == MS_DIR_S2C) {
        if (k != MS_GAP_IN_RAW)
            st->server_cont = false;
        return;
    }
    if (st->args)
        st->args->incomplete = true;
    if (k == MS_GAP_IN_RAW) {
        /* the literal goes on: the bytes it lost make its argument a piece */
        if (st->args && st->args->in_literal && st->args->count < 2)
            st->args->arg[st->args->count].truncated = true;
        return;
    }
    if (st->client_cont || st->args)
        abandon_client_command(s);
}

static void imap_free(ms_session *s)
{
    if (s->imap.args)
        s->alloc->free_fn(s->alloc->ctx, s->imap.args);
    s->imap.args = NULL;
}

static void imap_tls_started(ms_session *s)
{
    body_end(s, MS_DIR_C2S, MS_BODY_UNFINISHED);
    body_end(s, MS_DIR_S2C, MS_BODY_UNFINISHED);
    ms_imap_state keep = s->imap;
    imap_free(s);
    memset(&s->imap, 0, sizeof s->imap);
    s->imap.greeted = true;
    s->imap.messages[0] = keep.messages[0];
    s->imap.messages[1] = keep.messages[1];
    s->imap.deleted = keep.deleted;
    s->imap.expunged = keep.expunged;
}

const ms_adapter ms_imap_adapter = { imap_line, imap_gap, imap_tls_started, imap_free, NULL, NULL };

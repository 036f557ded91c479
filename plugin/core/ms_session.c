/* ms_session.c — session life cycle, protocol recognition from content, the
 * STARTTLS boundary, and dispatch of lines to the protocol adapters. */
#include "ms_session_int.h"
#include "ms_detect.h"
#include "ms_msg.h"
#include "ms_registry.h"
#include "ms_sha256.h"
#include "ms_tlshello.h"

#include <stdlib.h>
#include <string.h>

static void *libc_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

static void libc_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

const ms_allocator ms_libc_allocator = { libc_realloc, libc_free, NULL };

const char *ms_proto_name(ms_proto p)
{
    switch (p) {
    case MS_PROTO_SMTP: return "smtp";
    case MS_PROTO_POP3: return "pop3";
    case MS_PROTO_IMAP: return "imap";
    default: return "unknown";
    }
}

const char *ms_detect_name(ms_detect d)
{
    return d == MS_DETECT_HEURISTIC ? "heuristic" : "port";
}

const char *ms_transport_name(ms_transport t)
{
    switch (t) {
    case MS_TRANSPORT_STARTTLS: return "starttls";
    case MS_TRANSPORT_IMPLICIT_TLS: return "implicit-tls";
    default: return "cleartext";
    }
}

const char *ms_auth_result_name(ms_auth_result r)
{
    switch (r) {
    case MS_AUTH_SUCCESS: return "success";
    case MS_AUTH_FAILURE: return "failure";
    case MS_AUTH_ABORTED: return "aborted";
    default: return "unknown";
    }
}

const char *ms_starttls_result_name(ms_starttls_result r)
{
    switch (r) {
    case MS_STARTTLS_ACCEPTED: return "accepted";
    case MS_STARTTLS_REFUSED: return "refused";
    case MS_STARTTLS_NO_REPLY: return "no-reply";
    default: return "none";
    }
}

/* The one place that knows which adapter speaks which protocol. */
static const ms_adapter *const adapters[] = {
    [MS_PROTO_SMTP] = &ms_smtp_adapter,
    [MS_PROTO_POP3] = &ms_pop3_adapter,
    [MS_PROTO_IMAP] = &ms_imap_adapter,
};

static const ms_adapter *adapter_of(ms_proto p)
{
    return (size_t)p < sizeof adapters / sizeof adapters[0] ? adapters[p] : NULL;
}

static void scan_free(ms_session *s, ms_dir dir);

ms_session *ms_session_new(const ms_allocator *a, const ms_session_config *cfg)
{
    ms_session *s = a->realloc_fn(a->ctx, NULL, sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->alloc = a;
    s->cfg = *cfg;
    if (s->cfg.max_line == 0)
        s->cfg.max_line = 4096;
    if (s->cfg.max_line > MS_MAX_LINE_LIMIT)
        s->cfg.max_line = MS_MAX_LINE_LIMIT;
    s->proto = cfg->port_proto;
    s->adapter = adapter_of(s->proto);
    s->how = cfg->how;
    s->transport = cfg->implicit_tls ? MS_TRANSPORT_IMPLICIT_TLS : MS_TRANSPORT_CLEARTEXT;
    size_t cap = s->cfg.max_line > MS_LINE_BUFFER_MAX ? s->cfg.max_line : MS_LINE_BUFFER_MAX;
    ms_lines_init(&s->lines[0], a, cap);
    ms_lines_init(&s->lines[1], a, cap);
    return s;
}

void ms_session_free(ms_session *s)
{
    if (!s)
        return;
    ms_auth_reset(s);
    if (s->pending.e)
        s->alloc->free_fn(s->alloc->ctx, s->pending.e);
    scan_free(s, MS_DIR_C2S);
    scan_free(s, MS_DIR_S2C);
    if (s->hello) {
        ms_tlshello_free(s->hello, s->alloc);
        s->alloc->free_fn(s->alloc->ctx, s->hello);
    }
    for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++)
        if (adapters[i] && adapters[i]->free)
            adapters[i]->free(s); /* each adapter releases only what it holds */
    ms_lines_free(&s->lines[0]);
    ms_lines_free(&s->lines[1]);
    s->alloc->free_fn(s->alloc->ctx, s);
}

ms_proto ms_session_proto(const ms_session *s) { return s->proto; }
ms_detect ms_session_detect(const ms_session *s) { return s->how; }
bool ms_session_tls(const ms_session *s) { return s->transport != MS_TRANSPORT_CLEARTEXT; }
uint32_t ms_session_boundary(const ms_session *s) { return s->boundary; }
uint64_t ms_session_cleartext_bytes(const ms_session *s) { return s->cleartext_bytes; }
uint64_t ms_session_stream_pos(const ms_session *s, ms_dir dir) { return s->lines[dir & 1].fed; }

const char *ms_session_auth_user(const ms_session *s, size_t *len, unsigned *gen)
{
    if (gen)
        *gen = s->auth_user_gen;
    if (len)
        *len = s->auth_user_len;
    return s->auth_user_gen ? s->auth_user : NULL;
}

bool ms_session_not_mail(const ms_session *s) { return s->not_mail; }

ms_transport ms_session_dir_transport(const ms_session *s, ms_dir dir, uint32_t frame)
{
    if (s->odd_clear[dir & 1])
        return MS_TRANSPORT_CLEARTEXT;
    if (s->odd_tls[dir & 1])
        return MS_TRANSPORT_IMPLICIT_TLS;
    return ms_session_frame_transport(s, frame);
}

ms_transport ms_session_frame_transport(const ms_session *s, uint32_t frame)
{
    if (s->transport == MS_TRANSPORT_STARTTLS && frame <= s->boundary)
        return MS_TRANSPORT_CLEARTEXT;
    return s->transport;
}

/* Which record a fact belongs to, for the per-session cap: its kind (a
 * login's facts all count as its AUTH_START) and its number within that kind.
 * 0: a fact that is not capped (one-off session facts, messages). */
static uint32_t record_number(ms_session *s, const ms_fact *f, ms_fact_kind *what)
{
    *what = f->kind;
    switch (f->kind) {
    case MS_FACT_AUTH_START:
        *what = MS_FACT_AUTH_START;
        return f->u.auth_start.attempt;
    case MS_FACT_AUTH_REQUEST:
        *what = MS_FACT_AUTH_START;
        return f->u.auth_request.attempt;
    case MS_FACT_AUTH_RESULT:
        *what = MS_FACT_AUTH_START;
        return f->u.auth_result.attempt;
    case MS_FACT_AUTH_MALFORMED:
        *what = MS_FACT_AUTH_START;
        return s->auth.attempt;
    case MS_FACT_PROBE:
        /* a request and its verdict are one record */
        return f->u.probe.verdict == MS_PROBE_PENDING ? ++s->probe_requests : f->u.probe.count;
    case MS_FACT_LINE_TOO_LONG:
    case MS_FACT_STREAM_GAP:
    case MS_FACT_REPLY:
    case MS_FACT_HELO:
    case MS_FACT_ENVELOPE:
    case MS_FACT_NO_ENVELOPE:
    case MS_FACT_BDAT_MISMATCH:
    case MS_FACT_MSG_HEADER:
    case MS_FACT_MSG_URL:
    case MS_FACT_IMAP_ALERT:
    case MS_FACT_DELETED:
    case MS_FACT_OVERLAP_CONFLICT:
        return ++s->records[f->kind];
    default:
        return 0;
    }
}

_Static_assert(MS_FACT_KIND_END <= 64, "records_capped has one bit per kind");

void ms_emit_fact(ms_session *s, ms_fact *f)
{
    if (!s->ctx || !s->ctx->sink)
        return;
    f->span = s->span;
    ms_fact_kind what;
    uint32_t n = record_number(s, f, &what);
    if (s->cfg.max_records && n > s->cfg.max_records) {
        uint64_t bit = (uint64_t)1 << ((unsigned)what & 63u);
        if (s->records_capped & bit)
            return;
        s->records_capped |= bit;
        ms_fact cap = { .kind = MS_FACT_RECORD_LIMIT, .span = s->span,
                        .u.record_limit = { what, s->cfg.max_records } };
        s->ctx->sink(s->ctx->sink_ctx, &cap);
        return;
    }
    s->ctx->sink(s->ctx->sink_ctx, f);
}

void ms_emit_kind(ms_session *s, ms_fact_kind kind)
{
    ms_fact f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    ms_emit_fact(s, &f);
}

/* ---- message content ------------------------------------------------------ */

static void body_event(ms_session *s, ms_body_event ev, ms_body_source src, ms_dir dir, unsigned message,
                       const uint8_t *p, size_t n, unsigned flags)
{
    if (!s->ctx || !s->ctx->body)
        return;
    ms_body b = { ev, src, dir, message, p, n, flags };
    s->ctx->body(s->ctx->body_ctx, &b);
}

/* The message being read in one direction: the scanner of its headers and
 * parts, and its hash, over the message as meant (SMTP and POP3
 * dot-stuffing undone, chunks and literals joined). */
typedef struct ms_msgscan {
    ms_session *s;          /* for the scanner's callbacks */
    ms_body_source source;
    unsigned message;       /* the adapter's number, per source */
    unsigned number;        /* the session's number, all sources */
    bool unstuff;
    bool line_start;        /* the last line ended with CR LF: a dot here is stuffing */
    ms_dir dir;
    ms_msg *msg;            /* NULL if it could not be had */
    ms_sha256 sha;
    uint64_t size;
    unsigned flags;
    unsigned att_index;     /* attachments handed to the content sink so far */
    bool att_open;          /* one is streaming */
} ms_msgscan;


static void content_event(ms_session *s, const ms_msgscan *m, ms_body_event ev, const uint8_t *p, size_t n,
                          unsigned flags)
{
    if (!s->ctx || !s->ctx->content)
        return;
    ms_content c = { ev, m->source, m->dir, m->number, p, n, flags, 0, NULL, 0 };
    s->ctx->content(s->ctx->content_ctx, &c);
}

static ms_msgscan *scan_of(ms_session *s, ms_dir dir, ms_body_source src, unsigned message)
{
    ms_msgscan *m = s->scan[dir & 1];
    return m && m->source == src && m->message == message ? m : NULL;
}

static void on_header(void *ctx, ms_hdr_kind k, const char *v, size_t len, bool cut)
{
    ms_msgscan *m = ctx;
    ms_session *s = m->s;
    ms_fact f = { .kind = MS_FACT_MSG_HEADER, .u.msg_header = { m->number, m->dir, k, v, len, cut } };
    ms_emit_fact(s, &f);
}

static void on_attachment(void *ctx, const ms_msg_attachment *a)
{
    ms_msgscan *m = ctx;
    ms_session *s = m->s;
    ms_fact f = { .kind = MS_FACT_MSG_ATTACHMENT };
    ms_fact_msg_attachment *fa = &f.u.msg_attachment;
    fa->message = m->number;
    fa->filename = a->filename;
    fa->filename_len = a->filename_len;
    fa->content_type = a->content_type;
    fa->content_type_len = a->content_type_len;
    fa->size = a->size;
    memcpy(fa->sha256, a->sha256, sizeof fa->sha256);
    fa->truncated = a->truncated;
    ms_emit_fact(s, &f);
    if (s->ctx && s->ctx->content) {
        if (!m->att_open)
            m->att_index++; /* empty: no data came */
        ms_content c = { MS_BODY_END, m->source, m->dir, m->number, NULL, 0, a->truncated ? MS_BODY_LOST : 0,
                         m->att_index, a->filename, a->filename_len };
        s->ctx->content(s->ctx->content_ctx, &c);
    }
    m->att_open = false;
}

static void on_url(void *ctx, const char *url, size_t len)
{
    ms_msgscan *m = ctx;
    ms_session *s = m->s;
    ms_fact f = { .kind = MS_FACT_MSG_URL, .u.msg_url = { m->number, url, len } };
    ms_emit_fact(s, &f);
}

static void on_limit(void *ctx, const char *what)
{
    ms_msgscan *m = ctx;
    ms_session *s = m->s;
    ms_fact f = { .kind = MS_FACT_MSG_LIMIT, .u.msg_limit = { m->number, what } };
    ms_emit_fact(s, &f);
}

/* Decoded attachment bytes, for export: numbered from 1 per message. */
static void on_attachment_data(void *ctx, const uint8_t *p, size_t n)
{
    ms_msgscan *m = ctx;
    ms_session *s = m->s;
    if (!n || !s->ctx || !s->ctx->content)
        return;
    if (!m->att_open) {
        m->att_open = true;
        m->att_index++;
    }
    ms_content c = { MS_BODY_DATA, m->source, m->dir, m->number, p, n, 0, m->att_index, NULL, 0 };
    s->ctx->content(s->ctx->content_ctx, &c);
}

static const ms_msg_callbacks msg_callbacks = { on_header, on_attachment, on_url, on_limit, on_attachment_data };

static void scan_free(ms_session *s, ms_dir dir)
{
    ms_msgscan *m = s->scan[dir & 1];
    if (!m)
        return;
    if (m->msg)
        ms_msg_free(m->msg);
    ms_sha256_discard(&m->sha);
    s->alloc->free_fn(s->alloc->ctx, m);
    s->scan[dir & 1] = NULL;
}

static void scan_end(ms_session *s, ms_dir dir, unsigned flags)
{
    ms_msgscan *m = s->scan[dir & 1];
    if (!m)
        return;
    m->flags |= flags;
    if (m->msg)
        ms_msg_end(m->msg, (m->flags & (MS_BODY_LOST | MS_BODY_UNFINISHED)) != 0);
    ms_fact f = { .kind = MS_FACT_MSG_END };
    ms_fact_msg_end *e = &f.u.msg_end;
    e->message = m->number;
    e->source = m->source;
    e->dir = m->dir;
    e->size = m->size;
    e->flags = m->flags;
    ms_sha256_final(&m->sha, e->sha256);
    if (m->source == MS_BODY_SMTP_DATA || m->source == MS_BODY_SMTP_BDAT)
        e->client_messages = ms_client_count(s, MS_COUNT_MESSAGES, 1);
    ms_emit_fact(s, &f);
    content_event(s, m, MS_BODY_END, NULL, 0, m->flags & (MS_BODY_LOST | MS_BODY_UNFINISHED));
    scan_free(s, dir);
}

static void scan_feed(ms_msgscan *m, const uint8_t *p, size_t n)
{
    if (!n)
        return;
    content_event(m->s, m, MS_BODY_DATA, p, n, 0);
    ms_sha256_update(&m->sha, p, n);
    m->size += n;
    if (m->msg)
        ms_msg_feed(m->msg, p, n);
}

/* Bodies read line by line (the others come as counted octets). */
static bool line_based(ms_body_source src)
{
    return src == MS_BODY_SMTP_DATA || src == MS_BODY_POP3_RETR || src == MS_BODY_POP3_TOP;
}

void ms_body_begin(ms_session *s, ms_body_source src, ms_dir dir, unsigned message)
{
    ms_starttls_unused_check(s, MS_UNUSED_MESSAGE);
    scan_end(s, dir, MS_BODY_UNFINISHED); /* one message at a time per direction */
    ms_msgscan *m = s->alloc->realloc_fn(s->alloc->ctx, NULL, sizeof *m);
    if (m) {
        memset(m, 0, sizeof *m);
        m->s = s;
        m->source = src;
        m->message = message;
        m->number = ++s->messages;
        m->dir = dir;
        m->unstuff = line_based(src);
        m->line_start = true;
        ms_sha256_init(&m->sha);
        ms_msg_limits lim = { s->cfg.msg_max_header, s->cfg.msg_max_depth, s->cfg.msg_max_parts,
                              s->cfg.msg_max_urls, 0 };
        m->msg = ms_msg_new(s->alloc, &lim, &msg_callbacks, m);
        s->scan[dir & 1] = m;
        content_event(s, m, MS_BODY_BEGIN, NULL, 0, 0);
    }
    body_event(s, MS_BODY_BEGIN, src, dir, message, NULL, 0, 0);
    /* a line-based body keeps every byte of a long line: in pieces */
    s->lines[dir & 1].pieces = line_based(src);
}

void ms_body_data(ms_session *s, ms_body_source src, ms_dir dir, unsigned message, const uint8_t *p,
                  size_t n, unsigned flags)
{
    ms_msgscan *m = scan_of(s, dir, src, message);
    if (m) {
        m->flags |= flags & MS_BODY_LOST;
        scan_feed(m, p, n);
        if (n)
            m->line_start = n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
    }
    if (n || flags)
        body_event(s, MS_BODY_DATA, src, dir, message, p, n, flags);
}

/* Raw bytes for the consumer only, already given to the scanner. */
static void body_wire(ms_session *s, ms_body_source src, ms_dir dir, unsigned message, const uint8_t *p,
                      size_t n, unsigned flags)
{
    if (n || flags)
        body_event(s, MS_BODY_DATA, src, dir, message, p, n, flags);
}

void ms_body_line(ms_session *s, ms_body_source src, ms_dir dir, unsigned message, const uint8_t *p,
                  size_t n, unsigned line_flags)
{
    unsigned flags = (line_flags & MS_LINE_TRUNCATED) ? MS_BODY_LOST : 0;
    const char *end = (line_flags & MS_LINE_CRLF) ? "\r\n" : (line_flags & MS_LINE_BARE_LF) ? "\n" : "";
    size_t endn = strlen(end);
    ms_msgscan *m = scan_of(s, dir, src, message);
    if (m) {
        m->flags |= flags;
        /* RFC 5321 4.5.2, RFC 1939 3: a line that begins with a dot lost
         * one. Lines end with CR LF: after a bare LF the dot is text, as
         * for the end of data. */
        bool stuffed = m->unstuff && m->line_start && n > 0 && p[0] == '.';
        scan_feed(m, stuffed ? p + 1 : p, stuffed ? n - 1 : n);
        scan_feed(m, (const uint8_t *)end, endn);
        if (endn)
            m->line_start = (line_flags & MS_LINE_CRLF) != 0;
        else if (n)
            m->line_start = false;
    }
    if (line_flags & MS_LINE_BARE_LF)
        flags |= MS_BODY_BARE_LF;
    body_wire(s, src, dir, message, p, n, flags);
    body_wire(s, src, dir, message, (const uint8_t *)end, endn, 0);
}

void ms_body_end(ms_session *s, ms_body_source src, ms_dir dir, unsigned message, unsigned flags)
{
    s->lines[dir & 1].pieces = false;
    if (scan_of(s, dir, src, message))
        scan_end(s, dir, flags);
    body_event(s, MS_BODY_END, src, dir, message, NULL, 0, flags);
}

/* ---- replies and counters ------------------------------------------------ */

/* RFC 3463: class "." subject "." detail, at the start of the text. */
static size_t enhanced_code(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t i = 0;
    if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t d = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && d < 3) {
            i++;
            d++;
        }
        if (d == 0)
            return 0;
        if (part == 0) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < n && p[i] != ' ' && p[i] != '\t')
        return 0;
    if (i >= cap)
        return 0;
    memcpy(out, p, i);
    out[i] = '\0';
    return i;
}

static ms_time time_since(ms_time now, ms_time then)
{
    ms_time d = { now.secs - then.secs, now.nsecs - then.nsecs };
    if (d.nsecs < 0) {
        d.nsecs += 1000000000;
        d.secs--;
    }
    if (d.secs < 0)
        d.secs = d.nsecs = 0; /* frames out of time order */
    return d;
}

void ms_reply(ms_session *s, ms_reply_status status, uint16_t code, const uint8_t *text, size_t n,
              const ms_request *req)
{
    ms_fact f;
    memset(&f, 0, sizeof f);
    f.kind = MS_FACT_REPLY;
    ms_fact_reply *r = &f.u.reply;
    r->status = status;
    r->code = code;
    if (text) {
        while (n > 0 && *text == ' ') {
            text++;
            n--;
        }
        (void)enhanced_code(text, n, r->enhanced, sizeof r->enhanced);
    }
    if (req && req->frame) {
        r->has_request = true;
        r->request_frame = req->frame;
        if (s->ctx)
            r->delay = time_since(s->ctx->time, req->time);
    }
    if (req)
        memcpy(r->command, req->verb, sizeof r->command);
    ms_emit_fact(s, &f);
}

const ms_request *ms_no_request(const char *label)
{
    /* frame 0: no request, no delay; the verb is all a reply reads */
    static const ms_request labels[] = {
        { .verb = "(none)" }, { .verb = "(greeting)" }, { .verb = "(smuggled)" }, { .verb = "(data ended)" },
    };
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        if (strcmp(labels[i].verb, label) == 0)
            return &labels[i];
    return &labels[0];
}

uint32_t ms_client_count(ms_session *s, int counter, uint32_t add)
{
    if (!s->cfg.client_addr_len || !s->cfg.registry)
        return 0;
    ms_peer client = ms_peer_make(s->cfg.client_family, s->cfg.client_addr, s->cfg.client_addr_len, 0);
    return add ? ms_registry_add(s->cfg.registry, &client, (ms_counter)counter, add)
               : ms_registry_get(s->cfg.registry, &client, (ms_counter)counter);
}

/* ---- pending commands ---------------------------------------------------- */

/* Room for one more: grow the ring (its order unwrapped), or at the cap
 * forget the oldest. False when there is no room at all (out of memory). */
static bool pending_room(ms_session *s)
{
    ms_pending *q = &s->pending;
    if (q->count < q->cap)
        return true;
    if (q->cap < MS_PENDING_MAX) {
        unsigned cap = q->cap ? q->cap * 2 : 4;
        if (cap > MS_PENDING_MAX)
            cap = MS_PENDING_MAX;
        ms_request *e = s->alloc->realloc_fn(s->alloc->ctx, NULL, cap * sizeof *e);
        if (e) {
            for (unsigned k = 0; k < q->count; k++)
                e[k] = q->e[(q->head + k) % q->cap];
            if (q->e)
                s->alloc->free_fn(s->alloc->ctx, q->e);
            q->e = e;
            q->cap = cap;
            q->head = 0;
            return true;
        }
        if (q->cap == 0)
            return false;
    }
    q->head = (q->head + 1) % q->cap; /* forget the oldest */
    q->count--;
    return true;
}

/* At most max bytes of p (none if NULL) into dst, NUL-terminated, upper
 * case if asked; returns how many. */
static size_t copy_cut(char *dst, size_t max, const uint8_t *p, size_t n, bool upper)
{
    if (!p)
        n = 0;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)(upper && p[i] >= 'a' && p[i] <= 'z' ? p[i] - 32 : p[i]);
    dst[n] = '\0';
    return n;
}

void ms_pending_push(ms_session *s, uint8_t cmd, const uint8_t *verb, size_t verblen, const uint8_t *tag,
                     size_t taglen, const uint8_t *arg, size_t arglen)
{
    ms_pending *q = &s->pending;
    if (!pending_room(s))
        return;
    ms_request *r = &q->e[(q->head + q->count) % q->cap];
    r->cmd = cmd;
    r->frame = s->ctx ? s->ctx->frame : 0;
    if (s->ctx)
        r->time = s->ctx->time;
    else
        memset(&r->time, 0, sizeof r->time);
    r->tag_len = (uint8_t)copy_cut(r->tag, MS_TAG_MAX, tag, taglen, false);
    (void)copy_cut(r->verb, MS_VERB_MAX, verb, verblen, true);
    r->arg_len = (uint16_t)copy_cut(r->arg, MS_ARG_MAX, arg, arglen, false);
    q->count++;
}

const ms_request *ms_pending_peek(const ms_session *s)
{
    return s->pending.count ? &s->pending.e[s->pending.head] : NULL;
}

const ms_request *ms_pending_peek_last(const ms_session *s)
{
    const ms_pending *q = &s->pending;
    return q->count ? &q->e[(q->head + q->count - 1) % q->cap] : NULL;
}

unsigned ms_pending_count(const ms_session *s)
{
    return s->pending.count;
}

bool ms_pending_pop(ms_session *s, ms_request *out)
{
    ms_pending *q = &s->pending;
    if (q->count == 0)
        return false;
    if (out)
        *out = q->e[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return true;
}

bool ms_pending_take_tag(ms_session *s, const uint8_t *tag, size_t taglen, ms_request *out)
{
    ms_pending *q = &s->pending;
    if (taglen > MS_TAG_MAX)
        taglen = MS_TAG_MAX; /* stored cut to this length too */
    for (unsigned k = 0; k < q->count; k++) {
        ms_request *r = &q->e[(q->head + k) % q->cap];
        if (r->tag_len == taglen && memcmp(r->tag, tag, taglen) == 0) {
            if (out)
                *out = *r;
            /* close the hole: shift the younger entries one place towards the head */
            for (unsigned m = k; m + 1 < q->count; m++)
                q->e[(q->head + m) % q->cap] = q->e[(q->head + m + 1) % q->cap];
            q->count--;
            return true;
        }
    }
    return false;
}

void ms_pending_clear(ms_session *s)
{
    s->pending.head = 0;
    s->pending.count = 0;
}

/* ---- STARTTLS ------------------------------------------------------------ */

static ms_peer server_key(const ms_session *s)
{
    return ms_peer_make(s->cfg.server_family, s->cfg.server_addr, s->cfg.server_addr_len, s->cfg.server_port);
}

void ms_starttls_offered(ms_session *s)
{
    s->starttls_offered = true;
    s->list_offered = true;
    ms_emit_kind(s, MS_FACT_STARTTLS_OFFERED);
    if (s->transport != MS_TRANSPORT_CLEARTEXT || !s->cfg.server_addr_len || !s->cfg.registry)
        return;
    /* the first session that offered it is the one a later stripped list names */
    ms_peer k = server_key(s);
    if (ms_registry_get(s->cfg.registry, &k, MS_COUNT_STARTTLS_OFFERED) == 0)
        (void)ms_registry_add(s->cfg.registry, &k, MS_COUNT_STARTTLS_OFFERED, s->cfg.session_id + 1u);
}

void ms_capabilities_end(ms_session *s)
{
    bool offered = s->list_offered;
    s->list_offered = false;
    if (offered || s->cap_reported || s->logged_in || s->transport != MS_TRANSPORT_CLEARTEXT ||
        s->starttls_asked)
        return;
    uint32_t by = 0;
    if (s->cfg.server_addr_len && s->cfg.registry) {
        ms_peer k = server_key(s);
        by = ms_registry_get(s->cfg.registry, &k, MS_COUNT_STARTTLS_OFFERED);
        if (by == s->cfg.session_id + 1u)
            by = 0; /* this session offered it itself, in an earlier list */
    }
    if (!by && !s->cfg.starttls_expected)
        return;
    s->cap_reported = true;
    ms_fact f = { .kind = MS_FACT_CAPABILITY_STRIPPED, .u.cap_stripped = { by, s->cfg.starttls_expected } };
    ms_emit_fact(s, &f);
}

void ms_starttls_unused_check(ms_session *s, ms_unused_what what)
{
    if (s->transport != MS_TRANSPORT_CLEARTEXT || !s->starttls_offered || s->starttls_asked ||
        s->unused_reported)
        return;
    s->unused_reported = true;
    ms_fact f = { .kind = MS_FACT_STARTTLS_UNUSED, .u.unused = { what } };
    ms_emit_fact(s, &f);
}

ms_lines_verdict ms_starttls_command(ms_session *s)
{
    if (s->transport != MS_TRANSPORT_CLEARTEXT)
        return MS_LINES_CONTINUE; /* STARTTLS inside TLS is just a refused command */
    s->starttls_pending = true;
    s->starttls_asked = true;
    ms_emit_kind(s, MS_FACT_STARTTLS_COMMAND);
    /* Stop here: whatever follows in the same segment was pipelined after
     * STARTTLS, which RFC 3207/2595 forbid; the caller reports it. */
    return MS_LINES_STOP;
}

static void switch_to_tls(ms_session *s, ms_transport t)
{
    s->transport = t;
    s->starttls_pending = false;
    if (t == MS_TRANSPORT_STARTTLS)
        s->boundary = s->last_cleartext_frame ? s->last_cleartext_frame : s->ctx->frame;
    ms_lines_reset(&s->lines[0]);
    ms_lines_reset(&s->lines[1]);
    /* Commands sent in clear after STARTTLS, before its reply, are still
     * waiting: the server answers them inside TLS (response buffering). */
    if (!s->buffered_bytes)
        ms_pending_clear(s);
    ms_auth_reset(s);
    if (s->adapter && s->adapter->tls_started)
        s->adapter->tls_started(s);
    ms_fact f = { .kind = MS_FACT_TLS_BEGIN, .u.tls_begin = { t } };
    ms_emit_fact(s, &f);
}

static void starttls_result(ms_session *s, ms_starttls_result r)
{
    ms_fact f = { .kind = MS_FACT_STARTTLS_RESULT, .u.starttls_result = { r } };
    ms_emit_fact(s, &f);
}

ms_lines_verdict ms_starttls_reply(ms_session *s, bool accepted)
{
    if (s->transport != MS_TRANSPORT_CLEARTEXT || !s->starttls_pending)
        return MS_LINES_CONTINUE;
    s->starttls_pending = false;
    starttls_result(s, accepted ? MS_STARTTLS_ACCEPTED : MS_STARTTLS_REFUSED);
    if (!accepted)
        return MS_LINES_CONTINUE;
    switch_to_tls(s, MS_TRANSPORT_STARTTLS);
    s->tls_unconfirmed = true; /* the next bytes must be a TLS record */
    if (s->clear_logins) {
        /* the secrets went before the upgrade: TLS came too late for them */
        ms_fact f = { .kind = MS_FACT_LOGIN_BEFORE_TLS, .u.count = { s->clear_logins } };
        ms_emit_fact(s, &f);
    }
    return MS_LINES_STOP;
}

/* ---- recognition and dispatch -------------------------------------------- */

/* The first line of each direction may show that the content is another mail
 * protocol than the port said (IMAP on 25, SMTP on 2525). */
static void recognise(ms_session *s, ms_dir dir, const uint8_t *p, size_t n)
{
    s->first_line_seen[dir] = true;
    ms_guess g = dir == MS_DIR_S2C ? ms_detect_server_line(p, n) : ms_detect_client_line(p, n);
    if (g.proto == MS_PROTO_UNKNOWN)
        return;
    if (g.proto == s->proto) {
        /* A session claimed by its content (the heuristic started it with
         * the protocol it saw) says so once, on the line that shows it. */
        if (s->how == MS_DETECT_HEURISTIC && !s->proto_reported) {
            s->proto_reported = true;
            ms_fact f = { .kind = MS_FACT_PROTO, .u.proto = { s->proto, s->how } };
            ms_emit_fact(s, &f);
        }
        return;
    }
    if (!g.strong && s->proto != MS_PROTO_UNKNOWN)
        return;
    /* A server's word beats a client's guess made earlier. */
    if (dir == MS_DIR_C2S && s->first_line_seen[MS_DIR_S2C] && s->proto != MS_PROTO_UNKNOWN)
        return;
    s->proto = g.proto;
    s->proto_reported = true;
    s->adapter = adapter_of(g.proto);
    if (g.proto != s->cfg.port_proto)
        s->how = MS_DETECT_HEURISTIC;
    ms_fact f = { .kind = MS_FACT_PROTO, .u.proto = { s->proto, s->how } };
    ms_emit_fact(s, &f);
}

static ms_lines_verdict on_line(void *ctx, const uint8_t *p, size_t n, unsigned flags, size_t full)
{
    ms_session *s = ctx;
    ms_dir dir = s->dir;
    size_t ends = (flags & MS_LINE_CRLF) ? 2 : (flags & MS_LINE_BARE_LF) ? 1 : 0;
    uint64_t len = (uint64_t)full + ends;
    s->span = (ms_span){ s->lines[dir].line_at, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len, dir,
                         s->transport == MS_TRANSPORT_CLEARTEXT };
    if (flags & (MS_LINE_PIECE | MS_LINE_CONT)) {
        /* a long line of a body, in pieces: only a body that is still open
         * takes them (one that ended in the middle of the line does not) */
        if (!s->lines[dir].pieces)
            return MS_LINES_CONTINUE;
        if (flags & MS_LINE_PIECE)
            s->span.valid = false; /* where a piece lies is not worth the bookkeeping */
    }
    if (!(flags & (MS_LINE_RAW | MS_LINE_PIECE))) {
        if (!s->first_line_seen[dir])
            recognise(s, dir, p, n);
        if (full > s->cfg.max_line) {
            ms_fact f = { .kind = MS_FACT_LINE_TOO_LONG,
                          .u.line_too_long = { dir, full > 0x7fffffff ? 0x7fffffff : full } };
            ms_emit_fact(s, &f);
        }
    }
    s->line_cut = (flags & MS_LINE_TRUNCATED) != 0;
    ms_lines_verdict v = s->adapter ? s->adapter->line(s, dir, p, n, flags) : MS_LINES_CONTINUE;
    s->line_cut = false;
    s->span.valid = false;
    return v;
}

static void feed_lines(ms_session *s, ms_dir dir, const uint8_t *p, size_t n)
{
    size_t used = ms_lines_feed(&s->lines[dir], p, n, on_line, s);
    if (used >= n)
        return;
    /* The adapter stopped the stream: STARTTLS was requested or accepted and
     * more plaintext followed in the same segment (CVE-2011-0411 class). */
    uint64_t at = s->lines[dir].fed;
    s->lines[dir].fed += n - used; /* the rest went by, unread as lines */
    s->span = (ms_span){ at, (uint32_t)(n - used), dir, true };
    ms_fact f = { .kind = MS_FACT_STARTTLS_INJECTED, .u.injected = { dir, p + used, n - used, false } };
    ms_emit_fact(s, &f);
    s->span.valid = false;
}

/* SMTP and POP3 servers speak only to answer a complete command. A reply
 * while the client's line has no end yet means the server took it as a line
 * (real clients and servers that work per segment do this), so the next
 * client bytes start a new command instead of being glued to the old one. */
static void flush_answered_client_line(ms_session *s)
{
    if (!s->adapter || !s->adapter->reply_ends_client_line || !s->adapter->reply_ends_client_line(s))
        return;
    if (!ms_lines_pending(&s->lines[MS_DIR_C2S]))
        return;
    s->dir = MS_DIR_C2S;
    (void)ms_lines_flush(&s->lines[MS_DIR_C2S], on_line, s);
    s->dir = MS_DIR_S2C;
}

/* Bytes of one direction are missing from the capture. Counted octets
 * (literals, BDAT chunks) absorb the loss so their end stays where it is;
 * the adapter abandons whatever the hole broke. */
static void stream_gap(ms_session *s, ms_dir dir, uint64_t lost)
{
    ms_fact f = { .kind = MS_FACT_STREAM_GAP, .u.stream_gap = { dir, lost } };
    ms_emit_fact(s, &f);
    ms_gap_kind k = ms_lines_gap(&s->lines[dir], lost);
    if (s->adapter && s->adapter->gap)
        s->adapter->gap(s, dir, k);
}

/* The same the other way round: an SMTP or POP3 client speaks after a reply
 * line. When the server's line has no end yet, the client took it as one (a
 * greeting sent without its CRLF, seen in the wild), so the server's next
 * bytes start a new reply instead of being glued to it. */
static void flush_answered_server_line(ms_session *s)
{
    if (!s->adapter || !s->adapter->reply_ends_client_line)
        return; /* not a lock-step protocol */
    if (!ms_lines_pending(&s->lines[MS_DIR_S2C]))
        return;
    s->dir = MS_DIR_S2C;
    (void)ms_lines_flush(&s->lines[MS_DIR_S2C], on_line, s);
    s->dir = MS_DIR_C2S;
}

/* The start of a server reply of this protocol: "250 ", "+OK", "* ", "a1 OK". */
static bool looks_like_reply(ms_proto proto, const uint8_t *p, size_t n)
{
    switch (proto) {
    case MS_PROTO_SMTP:
        return n >= 4 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
               p[2] <= '9' && (p[3] == ' ' || p[3] == '-' || p[3] == '\r');
    case MS_PROTO_POP3:
        return ms_ci_prefix(p, n, "+OK") || ms_ci_prefix(p, n, "-ERR");
    case MS_PROTO_IMAP: {
        if (n >= 2 && p[0] == '*' && p[1] == ' ')
            return true;
        size_t t = ms_token_len(p, n);
        if (t == 0 || t + 1 >= n)
            return false;
        const uint8_t *r = p + t + 1;
        size_t rl = ms_token_len(r, n - t - 1);
        return ms_token_is(r, rl, "OK") || ms_token_is(r, rl, "NO") || ms_token_is(r, rl, "BAD");
    }
    default:
        return false;
    }
}

/* The first bytes of a TLS record (a segment may hold just a few of them). */
static bool tls_start(const uint8_t *p, size_t n)
{
    if (n >= 5)
        return ms_looks_like_tls(p, n);
    return p[0] >= 20 && p[0] <= 23 && (n < 2 || p[1] == 3);
}

/* The first line of p is a mail greeting, reply or command of any protocol. */
static bool mail_line(const uint8_t *p, size_t n)
{
    size_t len = ms_first_line_len(p, n);
    return ms_detect_server_line(p, len).proto != MS_PROTO_UNKNOWN ||
           ms_detect_client_line(p, len).proto != MS_PROTO_UNKNOWN;
}

static void cleartext_segment(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, uint64_t lost);

/* TLS really began after STARTTLS: commands the client sent in clear while
 * waiting for the reply are answered inside TLS, where the client takes the
 * answers as protected (the response-buffering case). */
static void tls_confirmed(ms_session *s)
{
    ms_emit_kind(s, MS_FACT_STARTTLS_CONFIRMED);
    if (!s->buffered_bytes)
        return;
    ms_fact f = { .kind = MS_FACT_STARTTLS_BUFFERED, .u.buffered = { s->buffered_bytes, s->buffered_frame } };
    ms_emit_fact(s, &f);
    s->buffered_bytes = 0;
}

/* The raw records of a TLS session: its Hellos say the version, cipher and
 * server name. */
static void tls_bytes(ms_session *s, ms_dir dir, const uint8_t *p, size_t n)
{
    if (!s->hello) {
        s->hello = s->alloc->realloc_fn(s->alloc->ctx, NULL, sizeof *s->hello);
        if (!s->hello)
            return;
        memset(s->hello, 0, sizeof *s->hello);
    }
    ms_tlshello *h = s->hello;
    if (h->done[0] && h->done[1])
        return;
    if (!ms_tlshello_feed(h, s->alloc, dir == MS_DIR_C2S ? 0 : 1, p, n))
        return;
    ms_fact f = { .kind = MS_FACT_TLS_POSTURE };
    f.u.tls_posture = (ms_fact_tls_posture){ h->version, h->cipher, h->client_hello, h->has_sni, h->sni,
                                             strlen(h->sni) };
    ms_emit_fact(s, &f);
}

void ms_session_conflict(ms_session *s, ms_dir dir, uint64_t bytes, const ms_feed_ctx *ctx)
{
    if (bytes == 0 || s->not_mail)
        return;
    const ms_feed_ctx *saved = s->ctx;
    ms_span span = s->span;
    s->ctx = ctx;
    s->span.valid = false;
    ms_fact f = { .kind = MS_FACT_OVERLAP_CONFLICT, .u.conflict = { dir, bytes } };
    ms_emit_fact(s, &f);
    s->ctx = saved;
    s->span = span;
}

void ms_session_segment(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, uint64_t lost,
                        const ms_feed_ctx *ctx)
{
    if (n == 0 || s->not_mail)
        return;
    bool first_of_dir = !s->dir_seen[dir];
    s->dir_seen[dir] = true;
    if (!s->payload_seen && s->transport == MS_TRANSPORT_IMPLICIT_TLS && !tls_start(p, n)) {
        /* plaintext on a TLS port: mail in clear, or no mail at all (that
         * is the end of it: nothing more is read or said) */
        if (!mail_line(p, n)) {
            s->not_mail = true;
            return;
        }
        s->transport = MS_TRANSPORT_CLEARTEXT;
    }
    s->ctx = ctx;
    s->dir = dir;
    if (s->transport == MS_TRANSPORT_IMPLICIT_TLS &&
        (s->odd_clear[dir] || (first_of_dir && !tls_start(p, n) && mail_line(p, n)))) {
        /* the other side began with TLS, this one answers in clear (a
         * client that took a cleartext port for a TLS one): read in clear */
        s->odd_clear[dir] = true;
        cleartext_segment(s, dir, p, n, lost);
        return;
    }
    if (s->tls_unconfirmed && s->transport == MS_TRANSPORT_STARTTLS && dir == MS_DIR_S2C &&
        looks_like_reply(s->proto, p, n)) {
        /* After the STARTTLS OK the client speaks first (its ClientHello):
         * a reply before it was sent in clear to be read as if it came
         * inside TLS (response injection). Not read as replies. Anything
         * else (another protocol) means the switch failed: see below. */
        s->span = (ms_span){ s->lines[dir].fed, (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n), dir, true };
        s->lines[dir].fed += n;
        ms_fact f = { .kind = MS_FACT_STARTTLS_INJECTED, .u.injected = { dir, p, n, true } };
        ms_emit_fact(s, &f);
        s->span.valid = false;
        s->ctx = NULL;
        return;
    }
    if (s->tls_unconfirmed && s->transport == MS_TRANSPORT_STARTTLS) {
        s->tls_unconfirmed = false;
        if (ms_looks_like_tls(p, n)) {
            tls_confirmed(s);
        } else {
            /* STARTTLS was accepted, but what follows is no TLS record: a
             * stripping middlebox, or a capture whose TLS was removed. The
             * session goes on in clear, and is read as such. */
            s->transport = MS_TRANSPORT_CLEARTEXT;
            s->boundary = 0;
            s->span = (ms_span){ s->lines[dir].fed, (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n), dir, true };
            ms_fact f = { .kind = MS_FACT_STARTTLS_STRIPPED, .u.stripped = { dir } };
            ms_emit_fact(s, &f);
            s->span.valid = false;
        }
    }
    if (s->transport != MS_TRANSPORT_CLEARTEXT) {
        s->payload_seen = true;
        tls_bytes(s, dir, p, n);
        s->ctx = NULL;
        return;
    }
    if (ms_looks_like_tls_hello(p, n) && (!s->payload_seen || s->starttls_pending)) {
        /* TLS from the first byte (implicit TLS on a cleartext port), or a
         * handshake after a STARTTLS whose reply the capture does not hold. */
        if (s->starttls_pending) {
            starttls_result(s, MS_STARTTLS_NO_REPLY);
            switch_to_tls(s, MS_TRANSPORT_STARTTLS);
            tls_confirmed(s);
        } else {
            switch_to_tls(s, MS_TRANSPORT_IMPLICIT_TLS);
        }
        s->payload_seen = true;
        tls_bytes(s, dir, p, n);
        s->ctx = NULL;
        return;
    }
    if (s->odd_tls[dir] || (first_of_dir && ms_looks_like_tls_hello(p, n))) {
        /* this side began with a TLS handshake while the other spoke in
         * clear (a greeting came first): its bytes are TLS, not lines */
        s->odd_tls[dir] = true;
        tls_bytes(s, dir, p, n);
        s->ctx = NULL;
        return;
    }
    cleartext_segment(s, dir, p, n, lost);
}

/* Cleartext bytes of one direction, read as lines. */
static void cleartext_segment(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, uint64_t lost)
{
    const ms_feed_ctx *ctx = s->ctx;
    s->payload_seen = true;
    s->cleartext_bytes += n;
    s->last_cleartext_frame = ctx->frame;
    if (dir == MS_DIR_C2S && s->starttls_pending) {
        /* a command sent in clear while STARTTLS waits for its reply: if TLS
         * follows, the server answers it inside TLS (response buffering) */
        if (!s->buffered_bytes)
            s->buffered_frame = ctx->frame;
        s->buffered_bytes += n;
    }
    if (lost)
        stream_gap(s, dir, lost);
    if (dir == MS_DIR_S2C)
        flush_answered_client_line(s);
    else
        flush_answered_server_line(s);
    feed_lines(s, dir, p, n);
    s->ctx = NULL;
}

void ms_session_decrypted(ms_session *s, ms_dir dir, const uint8_t *p, size_t n,
                          const ms_feed_ctx *ctx)
{
    if (n == 0 || s->transport == MS_TRANSPORT_CLEARTEXT || s->not_mail || s->odd_clear[dir & 1])
        return;
    s->ctx = ctx;
    s->dir = dir;
    s->payload_seen = true;
    (void)ms_lines_feed(&s->lines[dir], p, n, on_line, s);
    s->ctx = NULL;
}

void ms_session_finish(ms_session *s, const ms_feed_ctx *ctx)
{
    s->ctx = ctx;
    s->span.valid = false;
    if (s->adapter && s->adapter->end)
        s->adapter->end(s);
    /* what is still open ends here, unfinished */
    scan_end(s, MS_DIR_C2S, MS_BODY_UNFINISHED);
    scan_end(s, MS_DIR_S2C, MS_BODY_UNFINISHED);
    s->ctx = NULL;
}

bool ms_literal_at_end(const uint8_t *p, size_t n, uint64_t *count)
{
    if (n < 3 || p[n - 1] != '}')
        return false;
    size_t i = n - 1;
    if (i > 0 && p[i - 1] == '+')
        i--;
    size_t end = i;
    while (i > 0 && p[i - 1] >= '0' && p[i - 1] <= '9')
        i--;
    if (i == end || i == 0 || p[i - 1] != '{' || end - i > 10)
        return false;
    uint64_t v = 0;
    for (size_t k = i; k < end; k++)
        v = v * 10 + (uint64_t)(p[k] - '0');
    *count = v;
    return true;
}

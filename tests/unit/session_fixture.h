/* session_fixture.h — drive a core session and record the facts it emits.
 * Shared by the unit tests; header-only, every function static. */
#ifndef SESSION_FIXTURE_H
#define SESSION_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_alloc.h"
#include "ms_sasl.h"
#include "ms_session.h"
#include "ms_sha256.h"

/* not every test file uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

/* ---- a fact recorder ------------------------------------------------------- */

#define MAX_FACTS 512
#define MAX_DATA 512

typedef struct {
    ms_fact_kind kind;
    int ival;
    int ival2;
    uint32_t frame;
    uint8_t data[MAX_DATA];
    size_t len;
    uint32_t ref_frame;
    uint32_t count;
    uint32_t client_count; /* AUTH_RESULT: failures from the client address */
    ms_span span;
    uint8_t data2[MAX_DATA]; /* a second string: the line after a smuggling sequence, a content type */
    size_t len2;
    uint64_t size;
    ms_creds creds;      /* AUTH_REQUEST and AUTH_RESULT: a copy of the attempt */
    bool has_creds;
} rec_fact;

/* Message content, as the body sink received it. */
#define MAX_BODIES 16
#define MAX_BODY 8192

typedef struct {
    ms_body_source source;
    ms_dir dir;
    unsigned message;
    uint8_t data[MAX_BODY];
    size_t len;         /* bytes kept in data: the first MAX_BODY */
    uint64_t total;     /* bytes received */
    ms_sha256 sha;      /* of all of them */
    unsigned flags;     /* DATA flags or-ed, then END's */
    bool begun, ended;
    uint32_t begin_frame, end_frame;
} rec_body;

/* Messages as meant (ms_content), by the session's message number. */
#define MAX_CONTENTS 8

typedef struct {
    unsigned number;
    ms_body_source source;
    ms_dir dir;
    uint8_t data[MAX_BODY];
    size_t len;         /* bytes kept in data: the first MAX_BODY */
    uint64_t total;     /* bytes received */
    ms_sha256 sha;      /* of all of them */
    unsigned end_flags;
    bool begun, ended;
} rec_content;

typedef struct {
    counter mem;
    ms_allocator alloc;
    ms_session *s;
    rec_fact f[MAX_FACTS];
    size_t n;
    rec_body b[MAX_BODIES];
    size_t nb;
    rec_content c[MAX_CONTENTS];
    size_t nc;
    rec_content att[MAX_CONTENTS]; /* attachments, decoded: number = message, source = index */
    char att_name[MAX_CONTENTS][64];
    size_t natt;
    uint32_t frame;      /* the frame being fed */
    uint64_t cleartext;  /* bytes fed through ms_session_segment */
    bool all;            /* record every kind; else only those before MS_FACT_REPLY,
                            so tests of logins and STARTTLS index their facts as before */
} fixture;

/* Body bytes to a recorder: the first MAX_BODY kept, all counted and hashed. */
static void rec_append(uint8_t *data, size_t *len, uint64_t *total, ms_sha256 *sha, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    assert_non_null(p);
    size_t keep = MAX_BODY - *len < n ? MAX_BODY - *len : n;
    memcpy(data + *len, p, keep);
    *len += keep;
    *total += n;
    ms_sha256_update(sha, p, n);
}

/* The SHA-256 of all the bytes a recorder received (it goes on hashing). */
static void rec_digest(const ms_sha256 *sha, uint8_t out[32])
{
    ms_sha256 copy = *sha;
    ms_sha256_final(&copy, out);
}

/* The typed payloads, flattened into the recorder's fields. */
static void sink(void *ctx, const ms_fact *fact)
{
    fixture *fx = ctx;
    if (!fx->all && fact->kind >= MS_FACT_REPLY)
        return;
    assert_true(fx->n < MAX_FACTS);
    rec_fact *r = &fx->f[fx->n++];
    memset(r, 0, sizeof *r);
    r->kind = fact->kind;
    r->frame = fx->frame;
    r->span = fact->span;
    const struct ms_creds *creds = NULL;
    switch (fact->kind) {
    case MS_FACT_PROTO:
        r->ival = fact->u.proto.proto;
        r->ival2 = fact->u.proto.how;
        break;
    case MS_FACT_STARTTLS_RESULT:
        r->ival = fact->u.starttls_result.result;
        break;
    case MS_FACT_TLS_BEGIN:
        r->ival = fact->u.tls_begin.transport;
        break;
    case MS_FACT_STARTTLS_BUFFERED:
        r->size = fact->u.buffered.bytes;
        r->ref_frame = fact->u.buffered.frame;
        break;
    case MS_FACT_CAPABILITY_STRIPPED:
        r->ival = (int)fact->u.cap_stripped.offered_in;
        r->ival2 = fact->u.cap_stripped.expected;
        break;
    case MS_FACT_STARTTLS_INJECTED:
        r->ival = fact->u.injected.dir;
        assert_true(fact->u.injected.len <= MAX_DATA);
        assert_true(fact->u.injected.len == 0 || fact->u.injected.bytes != NULL);
        if (fact->u.injected.len)
            memcpy(r->data, fact->u.injected.bytes, fact->u.injected.len);
        r->len = fact->u.injected.len;
        break;
    case MS_FACT_LINE_TOO_LONG:
        r->ival = fact->u.line_too_long.dir;
        r->ival2 = (int)fact->u.line_too_long.length;
        break;
    case MS_FACT_AUTH_START:
        r->ival = (int)fact->u.auth_start.attempt;
        break;
    case MS_FACT_AUTH_REQUEST:
        r->ival = (int)fact->u.auth_request.attempt;
        r->ival2 = fact->u.auth_request.cleartext;
        creds = fact->u.auth_request.creds;
        break;
    case MS_FACT_AUTH_RESULT:
        r->ival = (int)fact->u.auth_result.attempt;
        r->ival2 = fact->u.auth_result.result;
        r->ref_frame = fact->u.auth_result.request_frame;
        r->count = fact->u.auth_result.session_failures;
        r->client_count = fact->u.auth_result.client_failures;
        creds = fact->u.auth_result.creds;
        break;
    case MS_FACT_AUTH_MALFORMED:
        r->ival = fact->u.auth_malformed.problem;
        break;
    case MS_FACT_STREAM_GAP:
        r->ival = fact->u.stream_gap.dir;
        r->count = fact->u.stream_gap.lost > UINT32_MAX ? UINT32_MAX : (uint32_t)fact->u.stream_gap.lost;
        break;
    case MS_FACT_REPLY:
        r->ival = fact->u.reply.status;
        r->ival2 = fact->u.reply.code;
        r->ref_frame = fact->u.reply.request_frame;
        r->len = strlen(fact->u.reply.command);
        memcpy(r->data, fact->u.reply.command, r->len);
        r->len2 = strlen(fact->u.reply.enhanced);
        memcpy(r->data2, fact->u.reply.enhanced, r->len2);
        r->count = fact->u.reply.has_request;
        r->size = (uint64_t)fact->u.reply.delay.secs * 1000000000u + (uint64_t)fact->u.reply.delay.nsecs;
        break;
    case MS_FACT_RECORD_LIMIT:
        r->ival = fact->u.record_limit.what;
        r->count = fact->u.record_limit.limit;
        break;
    case MS_FACT_PROBE:
        r->ival = fact->u.probe.command;
        r->ival2 = fact->u.probe.verdict;
        r->ref_frame = fact->u.probe.request_frame;
        r->count = fact->u.probe.count;
        r->client_count = fact->u.probe.client_count;
        r->len = fact->u.probe.target_len < MAX_DATA ? fact->u.probe.target_len : MAX_DATA;
        memcpy(r->data, fact->u.probe.target, r->len);
        break;
    case MS_FACT_HELO:
        r->len = fact->u.text.len < MAX_DATA ? fact->u.text.len : MAX_DATA;
        memcpy(r->data, fact->u.text.s, r->len);
        break;
    case MS_FACT_ENVELOPE:
        r->ival = fact->u.envelope.kind;
        r->ival2 = fact->u.envelope.repeated;
        r->count = fact->u.envelope.rcpt_count;
        r->client_count = fact->u.envelope.client_rcpts;
        r->size = fact->u.envelope.transaction;
        r->len = fact->u.envelope.addr_len < MAX_DATA ? fact->u.envelope.addr_len : MAX_DATA;
        memcpy(r->data, fact->u.envelope.addr, r->len);
        break;
    case MS_FACT_NO_ENVELOPE:
        r->ival = fact->u.no_envelope.bdat;
        break;
    case MS_FACT_BDAT_MISMATCH:
        r->ival = fact->u.bdat_mismatch.problem;
        r->size = fact->u.bdat_mismatch.announced;
        break;
    case MS_FACT_SMUGGLING:
        r->ival = fact->u.smuggling.command;
        r->count = fact->u.smuggling.message;
        r->size = fact->u.smuggling.offset;
        r->len = fact->u.smuggling.seq_len;
        memcpy(r->data, fact->u.smuggling.seq, r->len);
        r->len2 = fact->u.smuggling.line_len;
        memcpy(r->data2, fact->u.smuggling.line, r->len2);
        break;
    case MS_FACT_MSG_HEADER:
        r->ival = fact->u.msg_header.header;
        r->count = fact->u.msg_header.message;
        r->len = fact->u.msg_header.len < MAX_DATA ? fact->u.msg_header.len : MAX_DATA;
        memcpy(r->data, fact->u.msg_header.value, r->len);
        break;
    case MS_FACT_MSG_ATTACHMENT:
        r->count = fact->u.msg_attachment.message;
        r->size = fact->u.msg_attachment.size;
        r->ival = fact->u.msg_attachment.truncated;
        r->len = fact->u.msg_attachment.filename_len < MAX_DATA ? fact->u.msg_attachment.filename_len : MAX_DATA;
        memcpy(r->data, fact->u.msg_attachment.filename, r->len);
        memcpy(r->data2, fact->u.msg_attachment.sha256, 32);
        r->len2 = 32;
        break;
    case MS_FACT_MSG_URL:
        r->count = fact->u.msg_url.message;
        r->len = fact->u.msg_url.len < MAX_DATA ? fact->u.msg_url.len : MAX_DATA;
        memcpy(r->data, fact->u.msg_url.url, r->len);
        break;
    case MS_FACT_MSG_END:
        r->ival = (int)fact->u.msg_end.source;
        r->ival2 = (int)fact->u.msg_end.flags;
        r->count = fact->u.msg_end.message;
        r->client_count = fact->u.msg_end.client_messages;
        r->size = fact->u.msg_end.size;
        memcpy(r->data, fact->u.msg_end.sha256, 32);
        r->len = 32;
        break;
    case MS_FACT_DELETED:
        r->ival = (int)fact->u.deleted.added;
        r->ival2 = (int)fact->u.deleted.expunged;
        r->count = fact->u.deleted.total;
        break;
    default:
        break;
    }
    r->has_creds = creds != NULL;
    if (creds)
        r->creds = *creds;
}

static void attachment_sink(fixture *fx, const ms_content *c)
{
    rec_content *r = fx->natt ? &fx->att[fx->natt - 1] : NULL;
    if (!r || r->ended || r->number != c->number || r->source != (ms_body_source)c->part) {
        assert_true(fx->natt < MAX_CONTENTS);
        r = &fx->att[fx->natt++];
        memset(r, 0, sizeof *r);
        r->number = c->number;
        r->source = (ms_body_source)c->part;
        r->begun = true;
        ms_sha256_init(&r->sha);
    }
    if (c->event == MS_BODY_DATA) {
        rec_append(r->data, &r->len, &r->total, &r->sha, c->data, c->len);
    } else {
        assert_int_equal(c->event, MS_BODY_END);
        r->ended = true;
        r->end_flags = c->flags;
        size_t n = c->name_len < 63 ? c->name_len : 63;
        memcpy(fx->att_name[fx->natt - 1], c->name, n);
        fx->att_name[fx->natt - 1][n] = '\0';
    }
}

static void content_sink(void *ctx, const ms_content *c)
{
    fixture *fx = ctx;
    if (c->part) {
        attachment_sink(fx, c);
        return;
    }
    rec_content *r = NULL;
    for (size_t i = 0; i < fx->nc; i++)
        if (fx->c[i].number == c->number)
            r = &fx->c[i];
    if (c->event == MS_BODY_BEGIN) {
        assert_null(r); /* each number begins once */
        assert_true(fx->nc < MAX_CONTENTS);
        r = &fx->c[fx->nc++];
        memset(r, 0, sizeof *r);
        r->number = c->number;
        r->source = c->source;
        r->dir = c->dir;
        r->begun = true;
        ms_sha256_init(&r->sha);
        return;
    }
    assert_non_null(r);
    assert_false(r->ended);
    if (c->event == MS_BODY_DATA) {
        rec_append(r->data, &r->len, &r->total, &r->sha, c->data, c->len);
    } else {
        r->ended = true;
        r->end_flags = c->flags;
    }
}

/* The i-th message as meant: its session number, source, bytes and END flags. */
static void content_is(const fixture *fx, size_t i, unsigned number, ms_body_source src, const char *bytes,
                       unsigned end_flags)
{
    assert_true(i < fx->nc);
    const rec_content *r = &fx->c[i];
    assert_int_equal(r->number, number);
    assert_int_equal(r->source, src);
    assert_true(r->begun && r->ended);
    assert_int_equal(r->len, strlen(bytes));
    assert_memory_equal(r->data, bytes, strlen(bytes));
    assert_int_equal(r->end_flags, end_flags);
}

static rec_body *body_find(fixture *fx, ms_body_source src, ms_dir dir, unsigned message)
{
    for (size_t i = 0; i < fx->nb; i++)
        if (fx->b[i].source == src && fx->b[i].dir == dir && fx->b[i].message == message)
            return &fx->b[i];
    return NULL;
}

/* Checks the body protocol as it records: BEGIN once, DATA only between
 * BEGIN and END, END once. */
static void body_sink(void *ctx, const ms_body *b)
{
    fixture *fx = ctx;
    rec_body *r = body_find(fx, b->source, b->dir, b->message);
    switch (b->event) {
    case MS_BODY_BEGIN:
        assert_null(r);
        assert_true(fx->nb < MAX_BODIES);
        r = &fx->b[fx->nb++];
        memset(r, 0, sizeof *r);
        r->source = b->source;
        r->dir = b->dir;
        r->message = b->message;
        r->begun = true;
        r->begin_frame = fx->frame;
        ms_sha256_init(&r->sha);
        break;
    case MS_BODY_DATA:
        assert_non_null(r);
        assert_false(r->ended);
        rec_append(r->data, &r->len, &r->total, &r->sha, b->data, b->len);
        r->flags |= b->flags;
        break;
    case MS_BODY_END:
        assert_non_null(r);
        assert_false(r->ended);
        r->ended = true;
        r->flags |= b->flags;
        r->end_frame = fx->frame;
        break;
    }
}

static const rec_body *body_nth(const fixture *fx, size_t i)
{
    assert_true(i < fx->nb);
    return &fx->b[i];
}

static void body_is(const fixture *fx, size_t i, ms_body_source src, const char *bytes, bool ended)
{
    const rec_body *r = body_nth(fx, i);
    assert_int_equal(r->source, src);
    assert_int_equal(r->len, strlen(bytes));
    assert_memory_equal(r->data, bytes, strlen(bytes));
    assert_int_equal(r->ended, ended);
}

/* A session with this configuration. */
static fixture *start_cfg(const ms_session_config *cfg)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->alloc = (ms_allocator){ count_realloc, count_free, &fx->mem };
    fx->s = ms_session_new(&fx->alloc, cfg);
    assert_non_null(fx->s);
    return fx;
}

/* The configuration of a session claimed by its port, every limit the core's default. */
static ms_session_config port_cfg(ms_proto port_proto)
{
    ms_session_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.port_proto = port_proto;
    cfg.how = MS_DETECT_PORT;
    return cfg;
}

static fixture *start(ms_proto port_proto, bool implicit_tls, ms_detect how, size_t max_line)
{
    ms_session_config cfg = port_cfg(port_proto);
    cfg.implicit_tls = implicit_tls;
    cfg.how = how;
    cfg.max_line = max_line;
    return start_cfg(&cfg);
}

static void finish(fixture *fx)
{
    ms_session_free(fx->s);
    assert_int_equal(fx->mem.live, 0);
    free(fx);
}

/* The session ends on this frame (both sides closed). */
static void end_at(fixture *fx, uint32_t frame)
{
    ms_feed_ctx ctx = { frame, { frame, 0 }, sink, fx, body_sink, fx, content_sink, fx };
    fx->frame = frame;
    ms_session_finish(fx->s, &ctx);
}

static void seg_bytes(fixture *fx, ms_dir dir, uint32_t frame, const uint8_t *p, size_t n, uint64_t lost)
{
    ms_feed_ctx ctx = { frame, { frame, 0 }, sink, fx, body_sink, fx, content_sink, fx };
    fx->frame = frame;
    /* feed a private heap copy so that valgrind catches reads past the end */
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, p, n);
    ms_session_segment(fx->s, dir, copy, n, lost, &ctx);
    free(copy);
}

/* Feed a cleartext segment and count its bytes. */
static void seg(fixture *fx, ms_dir dir, uint32_t frame, const char *str)
{
    seg_bytes(fx, dir, frame, (const uint8_t *)str, strlen(str), 0);
    fx->cleartext += strlen(str);
}

/* A segment after lost bytes the capture missed. */
static void seg_lost(fixture *fx, ms_dir dir, uint32_t frame, uint64_t lost, const char *str)
{
    seg_bytes(fx, dir, frame, (const uint8_t *)str, strlen(str), lost);
    fx->cleartext += strlen(str);
}

static void seg_gap(fixture *fx, ms_dir dir, uint32_t frame, const char *str)
{
    seg_lost(fx, dir, frame, 7, str);
}

/* A ClientHello record header and the start of its body. */
static const uint8_t client_hello[] = { 0x16, 0x03, 0x01, 0x00, 0xab, 0x01, 0x00, 0x00,
                                        0xa7, 0x03, 0x03, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a };
static const uint8_t server_hello[] = { 0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00,
                                        0x76, 0x03, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55 };

static void tls(fixture *fx, ms_dir dir, uint32_t frame)
{
    if (dir == MS_DIR_C2S)
        seg_bytes(fx, dir, frame, client_hello, sizeof client_hello, 0);
    else
        seg_bytes(fx, dir, frame, server_hello, sizeof server_hello, 0);
}

static void fact_is(const fixture *fx, size_t i, ms_fact_kind kind, int ival, uint32_t frame)
{
    assert_true(i < fx->n);
    assert_int_equal(fx->f[i].kind, kind);
    assert_int_equal(fx->f[i].ival, ival);
    assert_int_equal(fx->f[i].frame, frame);
}

static void fact_data_is(const fixture *fx, size_t i, const char *data)
{
    assert_true(i < fx->n);
    assert_int_equal(fx->f[i].len, strlen(data));
    assert_memory_equal(fx->f[i].data, data, strlen(data));
}

static size_t count_kind(const fixture *fx, ms_fact_kind kind)
{
    size_t k = 0;
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == kind)
            k++;
    return k;
}

#define C2S MS_DIR_C2S
#define S2C MS_DIR_S2C

#endif

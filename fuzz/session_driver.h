/* session_driver.h — drives ms_session (ms_session.h) the way the Wireshark
 * layer does, from a byte string: TCP segments of both directions through
 * ms_seq (holes, retransmissions with other bytes, reordering, cut segments,
 * ACKs, SYNs, RSTs), decrypted TLS records, STARTTLS-style switches, new
 * sessions sharing one registry, and the end. Shared by fuzz_session.c and
 * fuzz_imap.c. The input format is described in fuzz/README.md.
 *
 * Header (6 bytes; missing bytes read as 0):
 *   h0 bits 0-1 port protocol (0 unknown, 1 SMTP, 2 POP3, 3 IMAP)
 *      bit 2 implicit TLS port     bit 3 claimed by the heuristic (else port)
 *      bit 4 STARTTLS expected     bit 5 registry and peer addresses
 *      bit 6 direct: segments go straight to ms_session_segment (no ms_seq)
 *      bit 7 no ms_session_finish at the end (the file closes mid-session)
 *   h1 max_line: 0 the core's default, else 16 * h1
 *   h2 message scanner limits: 0 defaults; else header (h2 & 15) * 32,
 *      depth (h2 >> 4) & 3, parts and URLs (h2 >> 6)
 *   h3 allocation failures: 0 never, else every allocation after 16 * h3 fails
 *      (only with MS_FUZZ_OOM=1 in the environment)
 *   h4 seed of the segment splits and of the initial sequence numbers
 *   h5 bit 0 no body sink, bit 1 no content sink, bit 2 no fact sink,
 *      bit 3 a registry of one key, bits 4-7 max_records (0: no cap)
 * Operations, until the input ends: one byte, low 4 bits the code, bit 4 the
 * direction (0 client to server, 1 server to client), bit 5 "this frame
 * acknowledges the peer's bytes first", bits 6-7 how finely to split (0: one
 * segment or record).
 *   0, 13-15 DATA      u16 length, bytes: the next segment(s) of the direction
 *   1  DECRYPTED       u16 length, bytes: decrypted TLS records
 *   2  GAP             u16: that many bytes are never captured (a hole)
 *   3  RETRANS         u16 back, u16 length, bytes: a segment starting back
 *                      bytes before the direction's end, with these bytes
 *   4  ACK             s8: the direction acknowledges the peer's end + s8
 *   5  RST             both directions flushed
 *   6  HELLO           a TLS ClientHello (client) or ServerHello (server) record
 *   7  SYN             the direction's SYN (its next byte is the current end)
 *   8  CUT             u16 wire length, u16 captured, bytes: a segment the
 *                      capture cut short
 *   9  DELAY           u16 length, bytes: a segment that arrives after the
 *                      direction's next one (reordering)
 *   10 NEWSESSION      the session ends; another starts (same registry)
 *   11 FINISH          ms_session_finish; no more operations
 *   12 DATA_AT         u32 offset from the direction's initial sequence
 *                      number, u16 length, bytes
 */
#ifndef SESSION_DRIVER_H
#define SESSION_DRIVER_H

#include "fuzz_common.h"
#include "ms_detect.h"
#include "ms_registry.h"
#include "ms_sasl.h"
#include "ms_seq.h"
#include "ms_session.h"

/* ---- what the sinks check ----------------------------------------------- */

#define TRACK_MAX 256

typedef struct {
    unsigned source, dir, message; /* body: source, dir, message; content: number, part */
    bool open, ended;
} track;

typedef struct {
    track t[TRACK_MAX];
    size_t n;
    bool overflow;
} tracker;

static track *track_find(tracker *k, unsigned a, unsigned b, unsigned c)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->t[i].source == a && k->t[i].dir == b && k->t[i].message == c)
            return &k->t[i];
    return NULL;
}

static track *track_add(tracker *k, unsigned a, unsigned b, unsigned c)
{
    if (k->n >= TRACK_MAX) {
        k->overflow = true;
        return NULL;
    }
    track *t = &k->t[k->n++];
    memset(t, 0, sizeof *t);
    t->source = a;
    t->dir = b;
    t->message = c;
    return t;
}

typedef struct sd_state sd_state;
typedef void (*sd_bytes_hook)(sd_state *st, ms_dir dir, const uint8_t *p, size_t n);

struct sd_state {
    fz_mem mem;
    ms_allocator alloc;
    ms_session *s;
    ms_registry *reg;
    ms_session_config cfg;
    ms_seq seq[2];
    bool direct;
    uint32_t isn[2];
    uint32_t end[2];        /* sequence number after the direction's last byte sent */
    uint64_t lost[2];       /* direct mode: bytes lost before the next segment */
    uint8_t *delayed[2];    /* DELAY: a segment waiting for the next one */
    size_t delayed_len[2];
    uint32_t delayed_seq[2];
    uint32_t frame;
    fz_rng rng;
    ms_feed_ctx feed;
    bool facts, bodies, contents;
    bool finished;
    /* spans of the facts of the current call, checked once it returns */
    uint64_t span_end[2];
    tracker body, content;
    unsigned facts_seen;
    uint64_t capped_seen;   /* kinds a RECORD_LIMIT named */
    sd_bytes_hook hook;     /* a target's own look at every chunk fed */
};

static void check_span(sd_state *st, const ms_span *sp)
{
    if (!sp->valid)
        return;
    FZ_CHECK(sp->dir == MS_DIR_C2S || sp->dir == MS_DIR_S2C, "session: span direction");
    uint64_t e = sp->at + sp->len;
    if (e > st->span_end[sp->dir])
        st->span_end[sp->dir] = e;
}

static void check_text(const char *s, size_t n)
{
    fz_touch(s, n);
}

static void fact_sink(void *ctx, const ms_fact *f)
{
    sd_state *st = ctx;
    st->facts_seen++;
#ifdef SD_DEBUG
    fprintf(stderr, "frame %u: fact %d%s\n", st->frame, (int)f->kind, f->span.valid ? " (span)" : "");
#endif
    FZ_CHECK(f->kind >= MS_FACT_PROTO && f->kind < MS_FACT_KIND_END, "session: fact kind out of range");
    check_span(st, &f->span);
    const ms_fact_payload *u = &f->u;
    switch (f->kind) {
    case MS_FACT_PROTO:
        FZ_CHECK(u->proto.proto >= MS_PROTO_SMTP && u->proto.proto <= MS_PROTO_IMAP, "session: PROTO");
        break;
    case MS_FACT_STARTTLS_RESULT:
        fz_touch_str(ms_starttls_result_name(u->starttls_result.result));
        break;
    case MS_FACT_TLS_BEGIN:
        fz_touch_str(ms_transport_name(u->tls_begin.transport));
        break;
    case MS_FACT_STARTTLS_INJECTED:
        check_text((const char *)u->injected.bytes, u->injected.len);
        break;
    case MS_FACT_AUTH_START:
        if (u->auth_start.creds)
            fz_check_creds(u->auth_start.creds);
        break;
    case MS_FACT_AUTH_REQUEST:
        if (u->auth_request.creds)
            fz_check_creds(u->auth_request.creds);
        break;
    case MS_FACT_AUTH_RESULT:
        fz_touch_str(ms_auth_result_name(u->auth_result.result));
        if (u->auth_result.creds)
            fz_check_creds(u->auth_result.creds);
        break;
    case MS_FACT_REPLY:
        FZ_CHECK(memchr(u->reply.enhanced, '\0', sizeof u->reply.enhanced) != NULL, "session: enhanced code");
        FZ_CHECK(memchr(u->reply.command, '\0', sizeof u->reply.command) != NULL, "session: reply command");
        fz_touch_str(u->reply.enhanced);
        fz_touch_str(u->reply.command);
        break;
    case MS_FACT_PROBE:
        check_text(u->probe.target, u->probe.target_len);
        break;
    case MS_FACT_HELO:
    case MS_FACT_IMAP_ALERT:
        check_text(u->text.s, u->text.len);
        break;
    case MS_FACT_ENVELOPE:
        check_text(u->envelope.addr, u->envelope.addr_len);
        break;
    case MS_FACT_SMUGGLING:
        FZ_CHECK(u->smuggling.seq_len <= MS_SMUGGLE_SEQ_MAX, "session: smuggling sequence");
        fz_touch(u->smuggling.seq, u->smuggling.seq_len);
        check_text(u->smuggling.line, u->smuggling.line_len);
        break;
    case MS_FACT_MSG_HEADER:
        FZ_CHECK(u->msg_header.header >= MS_HDR_FROM && u->msg_header.header < MS_HDR_KIND_END,
                 "session: header kind");
        check_text(u->msg_header.value, u->msg_header.len);
        break;
    case MS_FACT_MSG_ATTACHMENT:
        check_text(u->msg_attachment.filename, u->msg_attachment.filename_len);
        check_text(u->msg_attachment.content_type, u->msg_attachment.content_type_len);
        break;
    case MS_FACT_MSG_URL:
        check_text(u->msg_url.url, u->msg_url.len);
        break;
    case MS_FACT_MSG_LIMIT:
        fz_touch_str(u->msg_limit.what);
        break;
    case MS_FACT_DELETED:
        fz_touch_str(u->deleted.how);
        break;
    case MS_FACT_OVERLAP_CONFLICT:
        FZ_CHECK(u->conflict.bytes > 0 && (u->conflict.dir == MS_DIR_C2S || u->conflict.dir == MS_DIR_S2C),
                 "session: OVERLAP_CONFLICT");
        break;
    case MS_FACT_RECORD_LIMIT: {
        FZ_CHECK(st->cfg.max_records && u->record_limit.limit == st->cfg.max_records, "session: RECORD_LIMIT limit");
        FZ_CHECK((unsigned)u->record_limit.what < 64, "session: RECORD_LIMIT kind");
        uint64_t bit = (uint64_t)1 << u->record_limit.what;
        FZ_CHECK(!(st->capped_seen & bit), "session: RECORD_LIMIT twice for one kind");
        st->capped_seen |= bit;
        break;
    }
    case MS_FACT_TLS_POSTURE:
        if (u->tls_posture.has_sni) {
            FZ_CHECK(u->tls_posture.sni_len <= 255, "session: SNI length");
            check_text(u->tls_posture.sni, u->tls_posture.sni_len);
        }
        break;
    default:
        break;
    }
}

/* Message content as on the wire: BEGIN, DATA ..., END per (source, dir, message). */
static void body_sink(void *ctx, const ms_body *b)
{
    sd_state *st = ctx;
    FZ_CHECK(b->dir == MS_DIR_C2S || b->dir == MS_DIR_S2C, "body: direction");
    FZ_CHECK(b->source >= MS_BODY_SMTP_DATA && b->source <= MS_BODY_IMAP_APPEND, "body: source");
    track *t = track_find(&st->body, b->source, b->dir, b->message);
    switch (b->event) {
    case MS_BODY_BEGIN:
        FZ_CHECK(!t, "body: a message begun twice");
        t = track_add(&st->body, b->source, b->dir, b->message);
        if (t)
            t->open = true;
        break;
    case MS_BODY_DATA:
        fz_touch(b->data, b->len);
        if (!st->body.overflow)
            FZ_CHECK(t && t->open, "body: DATA outside BEGIN .. END");
        break;
    case MS_BODY_END:
        if (!st->body.overflow)
            FZ_CHECK(t && t->open, "body: END without BEGIN, or twice");
        if (t) {
            t->open = false;
            t->ended = true;
        }
        break;
    default:
        FZ_CHECK(0, "body: event out of range");
    }
}

/* Messages as meant (part 0) and their attachments (part k: DATA ..., END). */
static void content_sink(void *ctx, const ms_content *c)
{
    sd_state *st = ctx;
    FZ_CHECK(c->number > 0, "content: message number 0");
    if (c->event == MS_BODY_DATA)
        fz_touch(c->data, c->len);
    track *t = track_find(&st->content, c->number, c->part, 0);
    if (c->part == 0) {
        switch (c->event) {
        case MS_BODY_BEGIN:
            FZ_CHECK(!t, "content: a message begun twice");
            t = track_add(&st->content, c->number, 0, 0);
            if (t)
                t->open = true;
            break;
        case MS_BODY_DATA:
        case MS_BODY_END:
            if (!st->content.overflow)
                FZ_CHECK(t && t->open, "content: DATA or END outside BEGIN .. END");
            if (t && c->event == MS_BODY_END) {
                t->open = false;
                t->ended = true;
            }
            break;
        default:
            FZ_CHECK(0, "content: event out of range");
        }
        return;
    }
    FZ_CHECK(c->event != MS_BODY_BEGIN, "content: BEGIN of an attachment");
    if (!t) {
        t = track_add(&st->content, c->number, c->part, 0);
        if (t)
            t->open = true;
    }
    if (t)
        FZ_CHECK(!t->ended, "content: an attachment goes on after its END");
    if (c->event == MS_BODY_END) {
        check_text(c->name, c->name_len);
        if (t) {
            t->open = false;
            t->ended = true;
        }
    }
}

/* ---- feeding -------------------------------------------------------------- */

static void seq_deliver(void *ctx, const uint8_t *p, size_t n, uint64_t lost);

typedef struct {
    sd_state *st;
    ms_dir dir;
} seq_ctx;

static void after_call(sd_state *st)
{
    for (int d = 0; d < 2; d++) {
        FZ_CHECK(st->span_end[d] <= ms_session_stream_pos(st->s, (ms_dir)d),
                 "session: a fact's span lies past the bytes fed");
        st->span_end[d] = 0;
    }
}

static void seq_deliver(void *ctx, const uint8_t *p, size_t n, uint64_t lost)
{
    seq_ctx *c = ctx;
    sd_state *st = c->st;
    if (st->hook)
        st->hook(st, c->dir, p, n);
    uint8_t *copy = fz_dup(p, n);
    ms_session_segment(st->s, c->dir, copy, n, lost, &st->feed);
    free(copy);
    after_call(st);
}

static void new_frame(sd_state *st)
{
    st->frame++;
    st->feed.frame = st->frame;
    st->feed.time.secs = 1700000000 + st->frame / 4;
    st->feed.time.nsecs = (int32_t)(st->frame % 4) * 250000000;
}

/* One TCP segment of dir at seq: wire bytes, of which the first captured are p. */
static void segment(sd_state *st, ms_dir dir, uint32_t seqno, const uint8_t *p, size_t captured, uint32_t wire)
{
    if (st->direct) {
        if (!captured)
            return;
        if (st->hook)
            st->hook(st, dir, p, captured);
        uint8_t *copy = fz_dup(p, captured);
        ms_session_segment(st->s, dir, copy, captured, st->lost[dir], &st->feed);
        free(copy);
        after_call(st);
        st->lost[dir] = wire > captured ? wire - captured : 0;
        return;
    }
    seq_ctx c = { st, dir };
    uint8_t *copy = fz_dup(p, captured);
    ms_seq_segment(&st->seq[dir], seqno, copy, captured, wire, seq_deliver, &c);
    free(copy);
    /* as the epan layer does: copies that disagree are said on this frame */
    uint64_t conflict;
    if (ms_seq_take_conflict(&st->seq[dir], &conflict)) {
        ms_session_conflict(st->s, dir, conflict, &st->feed);
        after_call(st);
    }
}

static void ack(sd_state *st, ms_dir dir, int delta)
{
    if (st->direct)
        return;
    ms_dir peer = dir == MS_DIR_C2S ? MS_DIR_S2C : MS_DIR_C2S;
    seq_ctx c = { st, peer };
    ms_seq_ack(&st->seq[peer], st->end[peer] + (uint32_t)delta, seq_deliver, &c);
}

static void flush(sd_state *st)
{
    if (st->direct)
        return;
    for (int d = 0; d < 2; d++) {
        seq_ctx c = { st, (ms_dir)d };
        ms_seq_flush(&st->seq[d], seq_deliver, &c);
    }
}

static void send_delayed(sd_state *st, ms_dir dir)
{
    if (!st->delayed[dir])
        return;
    uint8_t *p = st->delayed[dir];
    st->delayed[dir] = NULL;
    segment(st, dir, st->delayed_seq[dir], p, st->delayed_len[dir], (uint32_t)st->delayed_len[dir]);
    free(p);
}

/* New bytes at the direction's end, split into segments. */
static void data(sd_state *st, ms_dir dir, const uint8_t *p, size_t n, unsigned level)
{
    while (n) {
        size_t k = level ? fz_piece(&st->rng, n) : n;
        if (level == 1 && k < n && k < 512)
            k = n < 512 ? n : 512;
        uint32_t at = st->end[dir];
        st->end[dir] += (uint32_t)k;
        segment(st, dir, at, p, k, (uint32_t)k);
        send_delayed(st, dir);
        p += k;
        n -= k;
    }
}

static void decrypted(sd_state *st, ms_dir dir, const uint8_t *p, size_t n, unsigned level)
{
    while (n) {
        size_t k = level ? fz_piece(&st->rng, n) : n;
        if (st->hook)
            st->hook(st, dir, p, k);
        uint8_t *copy = fz_dup(p, k);
        ms_session_decrypted(st->s, dir, copy, k, &st->feed);
        free(copy);
        after_call(st);
        p += k;
        n -= k;
    }
}

/* A ClientHello with a server name, or a TLS 1.3 ServerHello. */
static size_t hello_record(ms_dir dir, uint8_t *out)
{
    uint8_t body[128];
    size_t b = 0;
    body[b++] = 0x03;
    body[b++] = 0x03;
    for (int i = 0; i < 32; i++)
        body[b++] = (uint8_t)(0x40 + i);
    body[b++] = 0; /* session id */
    if (dir == MS_DIR_C2S) {
        static const char sni[] = "mail.example.test";
        size_t sl = sizeof sni - 1;
        body[b++] = 0x00; body[b++] = 0x02; body[b++] = 0x13; body[b++] = 0x01; /* cipher suites */
        body[b++] = 0x01; body[b++] = 0x00;                                       /* compression */
        size_t ext = 4 + 2 + 3 + sl;
        body[b++] = (uint8_t)(ext >> 8); body[b++] = (uint8_t)ext;
        body[b++] = 0x00; body[b++] = 0x00;                                       /* server_name */
        body[b++] = (uint8_t)((ext - 4) >> 8); body[b++] = (uint8_t)(ext - 4);
        body[b++] = (uint8_t)((3 + sl) >> 8); body[b++] = (uint8_t)(3 + sl);
        body[b++] = 0x00;
        body[b++] = (uint8_t)(sl >> 8); body[b++] = (uint8_t)sl;
        memcpy(body + b, sni, sl);
        b += sl;
    } else {
        body[b++] = 0x13; body[b++] = 0x01; body[b++] = 0x00;                     /* cipher, compression */
        body[b++] = 0x00; body[b++] = 0x06;
        body[b++] = 0x00; body[b++] = 0x2b; body[b++] = 0x00; body[b++] = 0x02;   /* supported_versions */
        body[b++] = 0x03; body[b++] = 0x04;
    }
    size_t o = 0;
    size_t hs = 4 + b;
    out[o++] = 0x16; out[o++] = 0x03; out[o++] = 0x01;
    out[o++] = (uint8_t)(hs >> 8); out[o++] = (uint8_t)hs;
    out[o++] = dir == MS_DIR_C2S ? 0x01 : 0x02;
    out[o++] = 0; out[o++] = (uint8_t)(b >> 8); out[o++] = (uint8_t)b;
    memcpy(out + o, body, b);
    return o + b;
}

static void queries(sd_state *st)
{
    ms_session *s = st->s;
    FZ_CHECK(ms_session_proto(s) <= MS_PROTO_IMAP, "session: proto out of range");
    fz_touch_str(ms_proto_name(ms_session_proto(s)));
    fz_touch_str(ms_detect_name(ms_session_detect(s)));
    ms_transport t = ms_session_frame_transport(s, st->frame);
    FZ_CHECK(t <= MS_TRANSPORT_IMPLICIT_TLS, "session: transport out of range");
    FZ_CHECK(ms_session_dir_transport(s, MS_DIR_C2S, st->frame) <= MS_TRANSPORT_IMPLICIT_TLS, "session: transport");
    FZ_CHECK(ms_session_dir_transport(s, MS_DIR_S2C, st->frame) <= MS_TRANSPORT_IMPLICIT_TLS, "session: transport");
    FZ_CHECK(ms_session_boundary(s) <= st->frame, "session: boundary after the current frame");
    (void)ms_session_tls(s);
    (void)ms_session_not_mail(s);
    (void)ms_session_cleartext_bytes(s);
    size_t len = 0;
    unsigned gen = 0;
    const char *user = ms_session_auth_user(s, &len, &gen);
    if (user) {
        FZ_CHECK(len <= MS_STR_SMALL, "session: auth user longer than its array");
        fz_touch(user, len);
    }
}

static bool session_start(sd_state *st)
{
    st->capped_seen = 0;
    st->s = ms_session_new(&st->alloc, &st->cfg);
    if (!st->s)
        return false;
    for (int d = 0; d < 2; d++) {
        ms_seq_init(&st->seq[d], &st->alloc);
        st->end[d] = st->isn[d] + 1u;
        st->lost[d] = 0;
    }
    memset(&st->body, 0, sizeof st->body);
    memset(&st->content, 0, sizeof st->content);
    st->finished = false;
    return true;
}

static void session_end(sd_state *st, bool finish)
{
    if (!st->s)
        return;
    for (int d = 0; d < 2; d++)
        send_delayed(st, (ms_dir)d);
    if (finish && !st->finished) {
        flush(st);
        new_frame(st);
        ms_session_finish(st->s, &st->feed);
        st->finished = true;
        /* what was open ends on finish, unfinished (ms_session.h) */
        if (st->contents && !st->content.overflow)
            for (size_t i = 0; i < st->content.n; i++)
                if (st->content.t[i].dir == 0)
                    FZ_CHECK(!st->content.t[i].open, "content: a message still open after finish");
        queries(st);
    }
    for (int d = 0; d < 2; d++)
        ms_seq_free(&st->seq[d]);
    ms_session_free(st->s);
    st->s = NULL;
}

/* Run one input. force_proto: 0 as the header says, else that protocol. */
static void sd_run(const uint8_t *data_in, size_t size, ms_proto force_proto, sd_bytes_hook hook)
{
    fz_in in = { data_in, size };
    uint8_t h[6];
    for (int i = 0; i < 6; i++)
        h[i] = fz_u8(&in);
    sd_state *st = calloc(1, sizeof *st);
    if (!st)
        abort();
    st->alloc = fz_allocator(&st->mem);
    st->mem.fail_after = (size_t)h[3] * 16;
    st->hook = hook;
    ms_session_config *cfg = &st->cfg;
    cfg->port_proto = force_proto ? force_proto : (ms_proto)(h[0] & 3);
    cfg->implicit_tls = h[0] & 4;
    cfg->how = (h[0] & 8) ? MS_DETECT_HEURISTIC : MS_DETECT_PORT;
    cfg->starttls_expected = h[0] & 16;
    cfg->max_line = (size_t)h[1] * 16;
    cfg->max_records = h[5] >> 4;
    if (h[2]) {
        cfg->msg_max_header = (size_t)(h[2] & 15) * 32;
        cfg->msg_max_depth = (h[2] >> 4) & 3;
        cfg->msg_max_parts = h[2] >> 6;
        cfg->msg_max_urls = h[2] >> 6;
    }
    if (h[0] & 32) {
        st->reg = ms_registry_new(&st->alloc, (h[5] & 8) ? 1 : 64);
        cfg->registry = st->reg;
        static const uint8_t client[4] = { 192, 0, 2, 1 }, server[4] = { 198, 51, 100, 25 };
        memcpy(cfg->client_addr, client, 4);
        cfg->client_addr_len = 4;
        cfg->client_family = 4;
        memcpy(cfg->server_addr, server, 4);
        cfg->server_addr_len = 4;
        cfg->server_family = 4;
        cfg->server_port = 25;
    }
    st->direct = h[0] & 64;
    bool finish_at_end = !(h[0] & 128);
    fz_rng_seed(&st->rng, h[4]);
    st->isn[0] = (uint32_t)h[4] * 0x01010101u;
    st->isn[1] = st->isn[0] ^ 0x80000000u;
    st->facts = !(h[5] & 4);
    st->bodies = !(h[5] & 1);
    st->contents = !(h[5] & 2);
    st->feed = (ms_feed_ctx){ 0, { 0, 0 }, st->facts ? fact_sink : NULL, st, st->bodies ? body_sink : NULL, st,
                              st->contents ? content_sink : NULL, st };

    if (session_start(st)) {
        while (fz_more(&in) && st->s) {
            uint8_t op = fz_u8(&in);
            unsigned code = op & 15;
            ms_dir dir = (op & 16) ? MS_DIR_S2C : MS_DIR_C2S;
            unsigned level = op >> 6;
            new_frame(st);
            if (op & 32)
                ack(st, dir, 0);
            size_t n;
            const uint8_t *p;
            switch (code) {
            case 1:
                p = fz_bytes(&in, fz_u16(&in), &n);
                decrypted(st, dir, p, n, level);
                break;
            case 2: {
                uint16_t lost = fz_u16(&in);
                if (st->direct)
                    st->lost[dir] += lost;
                else
                    st->end[dir] += lost;
                break;
            }
            case 3: {
                uint16_t back = fz_u16(&in);
                p = fz_bytes(&in, fz_u16(&in), &n);
                uint32_t at = st->end[dir] - back;
                segment(st, dir, at, p, n, (uint32_t)n);
                if ((int32_t)(at + (uint32_t)n - st->end[dir]) > 0)
                    st->end[dir] = at + (uint32_t)n;
                break;
            }
            case 4:
                ack(st, dir, (int8_t)fz_u8(&in));
                break;
            case 5:
                flush(st);
                break;
            case 6: {
                uint8_t rec[192];
                size_t rn = hello_record(dir, rec);
                data(st, dir, rec, rn, level);
                break;
            }
            case 7:
                if (!st->direct)
                    ms_seq_syn(&st->seq[dir], st->end[dir] - 1u);
                break;
            case 8: {
                uint16_t wire = fz_u16(&in);
                uint16_t cap = fz_u16(&in);
                if (cap > wire)
                    cap = wire;
                p = fz_bytes(&in, cap, &n);
                if (wire) {
                    uint32_t at = st->end[dir];
                    st->end[dir] += wire;
                    segment(st, dir, at, p, n, wire);
                }
                break;
            }
            case 9:
                p = fz_bytes(&in, fz_u16(&in), &n);
                send_delayed(st, dir);
                st->delayed[dir] = fz_dup(p, n);
                st->delayed_len[dir] = n;
                st->delayed_seq[dir] = st->end[dir];
                st->end[dir] += (uint32_t)n;
                break;
            case 10:
                session_end(st, finish_at_end);
                st->cfg.session_id++;
                (void)session_start(st);
                break;
            case 11:
                session_end(st, true);
                break;
            case 12: {
                uint32_t rel = fz_u32(&in);
                p = fz_bytes(&in, fz_u16(&in), &n);
                uint32_t at = st->isn[dir] + rel;
                segment(st, dir, at, p, n, (uint32_t)n);
                if ((int32_t)(at + (uint32_t)n - st->end[dir]) > 0)
                    st->end[dir] = at + (uint32_t)n;
                break;
            }
            default:
                p = fz_bytes(&in, fz_u16(&in), &n);
                data(st, dir, p, n, level);
                break;
            }
            if (st->s)
                queries(st);
        }
        session_end(st, finish_at_end);
    }
    for (int d = 0; d < 2; d++)
        free(st->delayed[d]);
    ms_registry_free(st->reg);
    fz_mem_done(&st->mem);
    free(st);
}

#endif

/* mailsec-session.c — the first pass: which conversations are mail, the
 * pure core fed with each frame's bytes, and what it learnt stored per frame.
 *
 * Every pass after the first (tshark -2, the GUI's re-dissection in any
 * order) finds the frame's record here and draws it; nothing is analysed
 * twice, so every pass shows the same thing.
 */
#include <wireshark.h>

#include <epan/conversation.h>
#include <epan/packet.h>
#include <epan/strutil.h>
#include <wsutil/wmem/wmem.h>

#include "mailsec.h"

/* Client addresses remembered across the sessions of a file. */
#define MAILSEC_REGISTRY_MAX_KEYS 65536

static ms_registry *registry;

/* ---- conversations ---------------------------------------------------------- */

mailsec_conv mailsec_conv_not_mail;

mailsec_conv *mailsec_conv_lookup(conversation_t *conv)
{
    return (mailsec_conv *)conversation_get_proto_data(conv, proto_mailsec);
}

mailsec_conv *mailsec_conv_create(conversation_t *conv, const mailsec_claim *claim)
{
    mailsec_conv *mc = wmem_new0(wmem_file_scope(), mailsec_conv);
    if (claim)
        mc->claim = *claim;
    conversation_add_proto_data(conv, proto_mailsec, mc);
    return mc;
}

void mailsec_conv_unclaimed(conversation_t *conv, mailsec_conv *mc, const mailsec_claim *claim, packet_info *pinfo)
{
    if (claim->given_up) {
        /* a no is final: the shared marker, and the allocation that only
         * waited for the other side's first line goes */
        if (mc && (mc->core || mc->closed)) {
            mc->claim = *claim;
            return;
        }
        if (mc) {
            conversation_delete_proto_data(conv, proto_mailsec);
            wmem_free(wmem_file_scope(), mc);
        }
        conversation_add_proto_data(conv, proto_mailsec, &mailsec_conv_not_mail);
    } else if (mc) {
        mc->claim = *claim;
    } else if (claim->weak_payloads && !PINFO_FD_VISITED(pinfo)) {
        (void)mailsec_conv_create(conv, claim); /* remember what it waits for */
    }
}

/* The core allocates from file scope, so everything goes when the file closes. */
static void *file_realloc(void *ctx _U_, void *p, size_t n)
{
    return wmem_realloc(wmem_file_scope(), p, n);
}

static void file_free(void *ctx _U_, void *p)
{
    wmem_free(wmem_file_scope(), p);
}

static const ms_allocator file_allocator = { file_realloc, file_free, NULL };

/* ---- port preferences ------------------------------------------------------- */

typedef struct {
    ms_proto proto;
    bool implicit_tls;
} port_class;

static port_class classify_port(guint32 port)
{
    port_class c = { MS_PROTO_UNKNOWN, false };
    if (value_is_in_range(mailsec_prefs.smtp_ports, port)) c.proto = MS_PROTO_SMTP;
    else if (value_is_in_range(mailsec_prefs.pop_ports, port)) c.proto = MS_PROTO_POP3;
    else if (value_is_in_range(mailsec_prefs.imap_ports, port)) c.proto = MS_PROTO_IMAP;
    else if (value_is_in_range(mailsec_prefs.smtps_ports, port)) { c.proto = MS_PROTO_SMTP; c.implicit_tls = true; }
    else if (value_is_in_range(mailsec_prefs.pops_ports, port)) { c.proto = MS_PROTO_POP3; c.implicit_tls = true; }
    else if (value_is_in_range(mailsec_prefs.imaps_ports, port)) { c.proto = MS_PROTO_IMAP; c.implicit_tls = true; }
    return c;
}

/* ---- per-frame records, by frame number -------------------------------------- */

/* What the first pass stored for each frame of a mail session. Frame numbers
 * are dense, so a table in chunks (allocated only where mail frames are) takes
 * 8 bytes a frame and a lookup is two loads; p_add_proto_data() would cost a
 * list node and an entry per frame and a list walk per lookup. Frames that
 * say the same share one record (keep_record). */
#define FRAME_CHUNK 4096

static mailsec_frame ***frame_chunks;
static guint frame_nchunks;

static mailsec_frame *frame_record(guint32 num)
{
    guint c = num / FRAME_CHUNK;
    return c < frame_nchunks && frame_chunks[c] ? frame_chunks[c][num % FRAME_CHUNK] : NULL;
}

static void frame_record_set(guint32 num, mailsec_frame *fr)
{
    guint c = num / FRAME_CHUNK;
    if (c >= frame_nchunks) {
        guint n = MAX(c + 1, frame_nchunks * 2);
        frame_chunks = g_renew(mailsec_frame **, frame_chunks, n);
        memset(frame_chunks + frame_nchunks, 0, (n - frame_nchunks) * sizeof *frame_chunks);
        frame_nchunks = n;
    }
    if (!frame_chunks[c])
        frame_chunks[c] = g_new0(mailsec_frame *, FRAME_CHUNK);
    frame_chunks[c][num % FRAME_CHUNK] = fr;
}

static void frame_records_free(void)
{
    for (guint c = 0; c < frame_nchunks; c++)
        g_free(frame_chunks[c]);
    g_free(frame_chunks);
    frame_chunks = NULL;
    frame_nchunks = 0;
}

void mailsec_session_init(void)
{
    registry = ms_registry_new(&ms_libc_allocator, MAILSEC_REGISTRY_MAX_KEYS);
}

void mailsec_session_cleanup(void)
{
    ms_registry_free(registry);
    registry = NULL;
    frame_records_free();
    mailsec_export_cleanup(); /* messages the capture ended in the middle of */
}

static bool frame_is_from_server(const mailsec_conv *mc, const packet_info *pinfo)
{
    return pinfo->srcport == mc->server_port && addresses_equal(&pinfo->src, &mc->server_addr);
}

static ms_dir frame_dir(const mailsec_conv *mc, const packet_info *pinfo)
{
    return frame_is_from_server(mc, pinfo) ? MS_DIR_S2C : MS_DIR_C2S;
}

/* ---- first pass ------------------------------------------------------------- */

/* Each fact of the frame, kept through the fact table, appended in order. */
typedef struct {
    mailsec_keep_ctx kc;
    mailsec_fact **tail;
} fact_sink_ctx;

static void store_fact(void *ctx, const ms_fact *f)
{
    fact_sink_ctx *sc = (fact_sink_ctx *)ctx;
    mailsec_fact *mf = mailsec_fact_keep(&sc->kc, f);
    *sc->tail = mf;
    sc->tail = &mf->next;
}

typedef struct {
    ms_session *core;
    ms_dir dir;
    const ms_feed_ctx *feed;
    guint count;
} record_feed;

static void feed_record(void *ctx, const guint8 *data, guint len)
{
    record_feed *rf = (record_feed *)ctx;
    ms_session_decrypted(rf->core, rf->dir, data, len, rf->feed);
    rf->count++;
}

typedef struct {
    ms_session *core;
    ms_dir dir;
    const ms_feed_ctx *feed;
    mailsec_keep_ctx *kc;
    const guint8 *frame_bytes; /* this frame's payload in its tvb, to place facts on it */
    gint frame_len;
    gint frame_offset;
} stream_feed;

/* In-order cleartext bytes of one direction, from ms_seq. When they are this
 * frame's own bytes, note where they lie, so that facts point at them. */
static void feed_segment(void *ctx, const guint8 *p, size_t n, guint64 lost)
{
    stream_feed *sf = (stream_feed *)ctx;
    mailsec_keep_ctx *kc = sf->kc;
    if (sf->frame_bytes && p >= sf->frame_bytes && p + n <= sf->frame_bytes + sf->frame_len &&
        kc->nspans < MAILSEC_SPANS_MAX) {
        mailsec_frame_span *sp = &kc->spans[kc->nspans++];
        sp->dir = sf->dir;
        sp->at = ms_session_stream_pos(sf->core, sf->dir) + lost;
        sp->len = (guint)n;
        sp->tvb_offset = sf->frame_offset + (gint)(p - sf->frame_bytes);
    }
    ms_session_segment(sf->core, sf->dir, p, n, lost, sf->feed);
}

/* One frame's bytes to a parser: its TCP segment in stream order (what it
 * acknowledges first, for the other direction's holes), then the records TLS
 * decrypted of it. kc, when given, notes where facts lie in the frame.
 * Returns how many TLS records were fed. */
static guint feed_frame(ms_session *core, ms_seq seq[2], mailsec_tls_pos *pos, packet_info *pinfo,
                        const mailsec_tcp *t, ms_dir dir, const ms_feed_ctx *feed, mailsec_keep_ctx *kc)
{
    const guint8 *bytes = t->captured > 0 ? tvb_get_ptr(t->tvb, t->offset, t->captured) : NULL;
    stream_feed sf[2] = { { core, MS_DIR_C2S, feed, kc, NULL, 0, 0 }, { core, MS_DIR_S2C, feed, kc, NULL, 0, 0 } };
    if (kc) {
        sf[dir].frame_bytes = bytes;
        sf[dir].frame_len = t->captured;
        sf[dir].frame_offset = t->offset;
    }
    ms_dir peer = dir == MS_DIR_C2S ? MS_DIR_S2C : MS_DIR_C2S;
    /* What this frame acknowledges tells whether a hole in the other
     * direction will ever fill: bytes the peer received and the capture
     * lacks are lost. */
    if (t->ack)
        ms_seq_ack(&seq[peer], t->ack_raw, feed_segment, &sf[peer]);
    if (t->syn)
        ms_seq_syn(&seq[dir], t->seq);
    else if (t->len > 0)
        ms_seq_segment(&seq[dir], t->seq, bytes, (size_t)t->captured, t->len, feed_segment, &sf[dir]);
    guint64 conflict;
    if (ms_seq_take_conflict(&seq[dir], &conflict))
        ms_session_conflict(core, dir, conflict, feed);
    if (t->rst) {
        ms_seq_flush(&seq[MS_DIR_C2S], feed_segment, &sf[MS_DIR_C2S]);
        ms_seq_flush(&seq[MS_DIR_S2C], feed_segment, &sf[MS_DIR_S2C]);
    }
    if (ms_session_not_mail(core) || !ms_session_tls(core))
        return 0;
    record_feed rf = { core, dir, feed, 0 };
    mailsec_tls_feed_records(pinfo, pos, dir, feed_record, &rf);
    return rf.count;
}

/* Which side is the server of a session taken up in the middle (Decode As,
 * a built-in's own port): the SYN says it; else the port the built-in
 * dissector was found by (pinfo->match_uint); else the content of the
 * first payload (a greeting comes from the server); else the lower port. */
static bool server_is_source(packet_info *pinfo, const mailsec_tcp *t)
{
    if (t->syn)
        return t->ack; /* SYN goes to the server, SYN-ACK comes from it */
    if (pinfo->srcport != pinfo->destport) {
        if (pinfo->match_uint == pinfo->srcport)
            return true;
        if (pinfo->match_uint == pinfo->destport)
            return false;
    }
    if (t->captured > 0) {
        const guint8 *p = tvb_get_ptr(t->tvb, t->offset, t->captured);
        size_t len = ms_first_line_len(p, (size_t)t->captured);
        if (ms_detect_server_line(p, len).strong)
            return true;
        if (ms_detect_client_line(p, len).strong)
            return false;
    }
    return pinfo->srcport < pinfo->destport;
}

/* Make a mail session of this conversation, if it is one. */
static bool adopt(mailsec_conv *mc, conversation_t *conv, packet_info *pinfo, ms_proto builtin,
                  const mailsec_tcp *t)
{
    ms_session_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_line = mailsec_prefs.max_line;
    cfg.msg_max_header = mailsec_prefs.msg_max_header;
    cfg.msg_max_depth = mailsec_prefs.msg_max_depth;
    cfg.msg_max_parts = mailsec_prefs.msg_max_parts;
    cfg.msg_max_urls = mailsec_prefs.msg_max_urls;
    cfg.max_records = mailsec_prefs.max_records;

    port_class dst = classify_port(pinfo->destport);
    port_class src = classify_port(pinfo->srcport);
    bool server_is_src;

    if (mc->claim.claimed != MS_PROTO_UNKNOWN) {
        /* The heuristic (or content on a port owned by another protocol). */
        server_is_src = mc->claim.server_is_src;
        port_class pc = server_is_src ? src : dst;
        cfg.port_proto = pc.proto;
        cfg.how = MS_DETECT_HEURISTIC;
        /* the core starts from the port's view and corrects it by content */
        if (pc.proto == MS_PROTO_UNKNOWN)
            cfg.port_proto = mc->claim.claimed;
    } else if (dst.proto != MS_PROTO_UNKNOWN || src.proto != MS_PROTO_UNKNOWN) {
        if (t->syn)
            server_is_src = t->ack; /* SYN goes to the server, SYN-ACK comes from it */
        else
            server_is_src = dst.proto == MS_PROTO_UNKNOWN;
        port_class pc = server_is_src ? src : dst;
        if (pc.proto == MS_PROTO_UNKNOWN)
            pc = server_is_src ? dst : src;
        cfg.port_proto = pc.proto;
        cfg.implicit_tls = pc.implicit_tls;
        cfg.how = MS_DETECT_PORT;
    } else if (builtin != MS_PROTO_UNKNOWN) {
        /* A built-in dissector owns it through Decode As or its own port. */
        cfg.port_proto = builtin;
        cfg.how = MS_DETECT_PORT;
        server_is_src = server_is_source(pinfo, t);
    } else {
        return false;
    }

    const address *client = server_is_src ? &pinfo->dst : &pinfo->src;
    cfg.registry = registry;
    if (client->len > 0 && client->data && (size_t)client->len <= sizeof cfg.client_addr) {
        memcpy(cfg.client_addr, client->data, (size_t)client->len);
        cfg.client_addr_len = (guint8)client->len;
        cfg.client_family = (guint8)client->type;
    }
    const address *server = server_is_src ? &pinfo->src : &pinfo->dst;
    if (server->len > 0 && server->data && (size_t)server->len <= sizeof cfg.server_addr) {
        memcpy(cfg.server_addr, server->data, (size_t)server->len);
        cfg.server_addr_len = (guint8)server->len;
        cfg.server_family = (guint8)server->type;
    }
    cfg.server_port = (guint16)(server_is_src ? pinfo->srcport : pinfo->destport);
    cfg.session_id = mailsec_tcp_stream(conv);
    cfg.starttls_expected = value_is_in_range(mailsec_prefs.starttls_ports, cfg.server_port);
    mc->core = ms_session_new(&file_allocator, &cfg);
    if (!mc->core)
        return false;
    ms_seq_init(&mc->seq[MS_DIR_C2S], &file_allocator);
    ms_seq_init(&mc->seq[MS_DIR_S2C], &file_allocator);
    if (server_is_src) {
        copy_address_wmem(wmem_file_scope(), &mc->server_addr, &pinfo->src);
        mc->server_port = pinfo->srcport;
    } else {
        copy_address_wmem(wmem_file_scope(), &mc->server_addr, &pinfo->dst);
        mc->server_port = pinfo->destport;
    }
    mc->stream = cfg.session_id;
    /* kept for a later pass that reads the session again (export); the
     * registry's counts are the first pass's alone */
    ms_session_config *keep = (ms_session_config *)wmem_memdup(wmem_file_scope(), &cfg, sizeof cfg);
    keep->registry = NULL;
    mc->cfg = keep;
    mc->first_frame = pinfo->num;
    return true;
}

/* Once both sides have closed (FIN each way, nothing held for a hole) or an
 * in-sequence RST ended the stream, the parser state goes: only what
 * rendering needs stays (the per-frame records, the attempts, the strings). */
static void maybe_release(mailsec_conv *mc, ms_dir dir, const mailsec_tcp *t, guint32 rst_next,
                          const ms_feed_ctx *feed)
{
    if (t->fin)
        mc->fin_seen[dir] = true;
    bool over = (mc->fin_seen[MS_DIR_C2S] && mc->fin_seen[MS_DIR_S2C]) || (t->rst && t->seq == rst_next);
    if (!over || ms_seq_waiting(&mc->seq[MS_DIR_C2S]) || ms_seq_waiting(&mc->seq[MS_DIR_S2C]))
        return;
    ms_session_finish(mc->core, feed); /* what never got its answer says so on this frame */
    mc->final_proto = (guint8)ms_session_proto(mc->core);
    mc->final_detect = (guint8)ms_session_detect(mc->core);
    mc->final_transport = (guint8)ms_session_frame_transport(mc->core, G_MAXUINT32);
    mc->final_boundary = ms_session_boundary(mc->core);
    mc->final_cleartext_bytes = ms_session_cleartext_bytes(mc->core);
    ms_seq_free(&mc->seq[MS_DIR_C2S]);
    ms_seq_free(&mc->seq[MS_DIR_S2C]);
    ms_session_free(mc->core);
    mc->core = NULL;
    mc->closed = true;
}

/* Frames without facts mostly say the same as the session's previous frame
 * in the same direction: they share its record. */
static bool same_record(const mailsec_frame *a, const mailsec_frame *b)
{
    return a && !a->facts && !b->facts && a->proto == b->proto && a->detected_by == b->detected_by &&
           a->transport == b->transport && a->decrypted == b->decrypted && a->dir == b->dir &&
           a->stream == b->stream && a->boundary == b->boundary && a->cleartext_bytes == b->cleartext_bytes &&
           a->auth_user == b->auth_user && a->retransmission == b->retransmission && a->tls == b->tls;
}

/* fr is built on the stack; it is copied out only when it differs from the
 * last two records of its direction (under TLS, data frames and bare ACKs
 * alternate: decrypted, not decrypted). */
static mailsec_frame *keep_record(mailsec_conv *mc, packet_info *pinfo, const mailsec_frame *fr)
{
    mailsec_frame **last = mc->last_record[fr->dir & 1];
    mailsec_frame *kept;
    if (same_record(last[0], fr)) {
        kept = last[0];
    } else if (same_record(last[1], fr)) {
        kept = last[1];
        last[1] = last[0];
        last[0] = kept;
    } else {
        kept = (mailsec_frame *)wmem_memdup(wmem_file_scope(), fr, sizeof *fr);
        last[1] = last[0];
        last[0] = kept;
    }
    frame_record_set(pinfo->num, kept);
    return kept;
}

/* The conversation's mailsec data, taking it up as a session when it is
 * mail; NULL when it is not (or not yet). */
static mailsec_conv *session_of(packet_info *pinfo, conversation_t *conv, const mailsec_tcp *t)
{
    mailsec_conv *mc = mailsec_conv_lookup(conv);
    if (mc == &mailsec_conv_not_mail)
        return NULL;
    if (mc && (mc->core || mc->closed))
        return mc;
    port_class dst = classify_port(pinfo->destport);
    port_class src = classify_port(pinfo->srcport);
    ms_proto builtin = mailsec_builtin_on_frame(pinfo);
    bool worth = dst.proto != MS_PROTO_UNKNOWN || src.proto != MS_PROTO_UNKNOWN ||
                 (mc && mc->claim.claimed != MS_PROTO_UNKNOWN) || builtin != MS_PROTO_UNKNOWN;
    if (!worth) {
        /* Content on a port some other protocol owns (IMAP on 80 …). */
        if (!mailsec_prefs.heuristic || t->captured == 0)
            return NULL;
        mailsec_claim claim;
        if (mc)
            claim = mc->claim;
        else
            memset(&claim, 0, sizeof claim);
        if (!mailsec_recognise_payload(&claim, pinfo, t->tvb, t->offset)) {
            mailsec_conv_unclaimed(conv, mc, &claim, pinfo); /* the ports are not mail either */
            return NULL;
        }
        if (mc)
            mc->claim = claim;
        else
            mc = mailsec_conv_create(conv, &claim);
    }
    if (!mc)
        mc = mailsec_conv_create(conv, NULL);
    return adopt(mc, conv, pinfo, builtin, t) ? mc : NULL;
}

static mailsec_frame *analyse_frame(packet_info *pinfo)
{
    mailsec_tcp t;
    if (!mailsec_read_tcp(pinfo, &t))
        return NULL;
    conversation_t *conv = mailsec_frame_conversation(pinfo, t.syn);
    if (!conv)
        return NULL;
    mailsec_conv *mc = session_of(pinfo, conv, &t);
    if (!mc || mc->not_mail)
        return NULL;

    mailsec_frame rec;
    memset(&rec, 0, sizeof rec);
    mailsec_frame *fr = &rec;
    ms_dir dir = frame_dir(mc, pinfo);
    fr->dir = (guint8)dir;
    fr->stream = mc->stream;
    fr->auth_user = mc->auth_user;
    if (mc->closed) {
        /* after the end: the session's last state, no analysis */
        fr->proto = mc->final_proto;
        fr->detected_by = mc->final_detect;
        fr->transport = mc->final_transport;
        if (fr->transport != MS_TRANSPORT_CLEARTEXT)
            fr->tls = mc->tls;
        if (fr->transport != MS_TRANSPORT_CLEARTEXT && mc->final_boundary) {
            fr->boundary = mc->final_boundary;
            fr->cleartext_bytes = mc->final_cleartext_bytes;
        }
        return keep_record(mc, pinfo, fr);
    }

    fact_sink_ctx sc;
    memset(&sc, 0, sizeof sc);
    sc.kc.mc = mc;
    sc.kc.pinfo = pinfo;
    sc.tail = &fr->facts;
    bool exporting = mailsec_export_wanted();
    mailsec_export_ctx ec = { mc, pinfo, &fr->facts, exporting, mc->core, mc->export_acc, mc->export_att };
    bool gather = exporting || mailsec_export_gathers(mc);
    ms_feed_ctx feed = { pinfo->num, { (int64_t)pinfo->abs_ts.secs, (int32_t)pinfo->abs_ts.nsecs },
                         store_fact, &sc, NULL, NULL, gather ? mailsec_export_content : NULL,
                         gather ? &ec : NULL };

    /* bytes the stream already had: a TCP retransmission, analysed once */
    fr->retransmission = !t.syn && t.len > 0 && mc->seq[dir].init &&
                         (gint32)(t.seq + t.len - mc->seq[dir].next) <= 0;
    guint32 rst_next = mc->seq[dir].next;
    guint records = feed_frame(mc->core, mc->seq, &mc->tls_pos, pinfo, &t, dir, &feed, &sc.kc);
    if (ms_session_not_mail(mc->core)) {
        /* a TLS port's first payload was neither TLS nor mail: from here on
         * mailsec says nothing of this conversation */
        mc->not_mail = true;
        return NULL;
    }
    fr->decrypted = records > 0;
    mc->last_frame = pinfo->num;

    fr->proto = (guint8)ms_session_proto(mc->core);
    fr->detected_by = (guint8)ms_session_detect(mc->core);
    fr->transport = (guint8)ms_session_dir_transport(mc->core, dir, pinfo->num);
    unsigned gen;
    size_t ulen;
    const char *user = ms_session_auth_user(mc->core, &ulen, &gen);
    if (user && gen != mc->auth_user_gen) {
        mc->auth_user = mailsec_copy_text(user, ulen, NULL);
        mc->auth_user_gen = gen;
    }
    fr->auth_user = mc->auth_user;
    if (fr->transport != MS_TRANSPORT_CLEARTEXT)
        fr->tls = mc->tls;
    if (fr->transport != MS_TRANSPORT_CLEARTEXT && ms_session_boundary(mc->core)) {
        fr->boundary = ms_session_boundary(mc->core);
        fr->cleartext_bytes = ms_session_cleartext_bytes(mc->core);
    }
    if (!t.syn)
        maybe_release(mc, dir, &t, rst_next, &feed);
    return keep_record(mc, pinfo, fr);
}

/* ---- a later pass, for export ----------------------------------------------- */

/* The first pass keeps no message bytes unless an export listener was there
 * (tshark in one pass). A listener that comes later (the GUI's Export
 * Objects, tshark -2) gets them here: the session is read again by a parser
 * of its own, from the same frames in the same order, facts dropped, only
 * the message content kept. The pass must start at the session's first
 * frame; a frame seen again means a new pass. On the last frame the first
 * pass read, what is still open ends: a message the capture cut off is
 * exported as what was seen, flagged truncated. */
typedef struct mailsec_replay {
    ms_session *core;
    ms_seq seq[2];
    mailsec_tls_pos tls_pos;
    guint32 last;  /* the last frame read */
    struct mailsec_export_acc *acc[2], *att[2];
} mailsec_replay;

static void replay_free(mailsec_conv *mc)
{
    mailsec_replay *r = mc->replay;
    if (!r)
        return;
    mailsec_export_drop(r->acc, r->att);
    ms_seq_free(&r->seq[MS_DIR_C2S]);
    ms_seq_free(&r->seq[MS_DIR_S2C]);
    ms_session_free(r->core);
    wmem_free(wmem_file_scope(), r);
    mc->replay = NULL;
}

void mailsec_session_replay(packet_info *pinfo)
{
    mailsec_tcp t;
    if (!mailsec_read_tcp(pinfo, &t))
        return;
    conversation_t *conv = mailsec_frame_conversation(pinfo, t.syn);
    mailsec_conv *mc = conv ? mailsec_conv_lookup(conv) : NULL;
    if (!mc || mc == &mailsec_conv_not_mail || !mc->cfg || pinfo->num < mc->first_frame ||
        pinfo->num > mc->last_frame || !frame_record(pinfo->num))
        return;
    mailsec_replay *r = mc->replay;
    if (r && pinfo->num <= r->last)
        replay_free(mc); /* a new pass */
    r = mc->replay;
    if (!r) {
        if (pinfo->num != mc->first_frame)
            return; /* a pass (or a single frame) that missed the session's start */
        r = wmem_new0(wmem_file_scope(), mailsec_replay);
        r->core = ms_session_new(&file_allocator, mc->cfg);
        if (!r->core) {
            wmem_free(wmem_file_scope(), r);
            return;
        }
        ms_seq_init(&r->seq[MS_DIR_C2S], &file_allocator);
        ms_seq_init(&r->seq[MS_DIR_S2C], &file_allocator);
        mc->replay = r;
    }
    mailsec_export_ctx ec = { mc, pinfo, NULL, true, r->core, r->acc, r->att };
    ms_feed_ctx feed = { pinfo->num, { (int64_t)pinfo->abs_ts.secs, (int32_t)pinfo->abs_ts.nsecs },
                         NULL, NULL, NULL, NULL, mailsec_export_content, &ec };
    (void)feed_frame(r->core, r->seq, &r->tls_pos, pinfo, &t, frame_dir(mc, pinfo), &feed, NULL);
    r->last = pinfo->num;
    if (pinfo->num == mc->last_frame) {
        /* the session closed here, or the capture ended: what waits for a
         * hole is what was seen, and what is open ends unfinished */
        stream_feed sf[2] = { { r->core, MS_DIR_C2S, &feed, NULL, NULL, 0, 0 },
                              { r->core, MS_DIR_S2C, &feed, NULL, NULL, 0, 0 } };
        ms_seq_flush(&r->seq[MS_DIR_C2S], feed_segment, &sf[MS_DIR_C2S]);
        ms_seq_flush(&r->seq[MS_DIR_S2C], feed_segment, &sf[MS_DIR_S2C]);
        ms_session_finish(r->core, &feed);
        replay_free(mc);
    }
}

mailsec_frame *mailsec_session_frame(packet_info *pinfo)
{
    mailsec_frame *fr = frame_record(pinfo->num);
    if (!fr && !PINFO_FD_VISITED(pinfo))
        fr = analyse_frame(pinfo);
    return fr;
}

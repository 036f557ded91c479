/* packet-mailsec.c — mail forensics on top of Wireshark's SMTP, POP and IMAP.
 *
 * mailsec is a postdissector: it runs after the built-in dissectors on every
 * frame and never changes what they show. On the first pass it reads each TCP
 * segment of a mail session (its raw payload, or the application data TLS
 * decrypted), feeds the pure core (plugin/core), and stores what the core
 * learnt per frame. Every pass, the GUI's random-order re-dissection included,
 * renders only what was stored, so all passes show the same thing.
 */
#include <wireshark.h>

#include <epan/conversation.h>
#include <epan/expert.h>
#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/proto_data.h>
#include <epan/range.h>
#include <epan/strutil.h>
#include <epan/tap.h>
#include <epan/dissectors/packet-tcp.h>
#include <epan/to_str.h>
#include <wsutil/pint.h>
#include <wsutil/wmem/wmem.h>

#include "mailsec.h"
#include "ms_sasl.h"

int proto_mailsec = -1;

static int hf_mailsec_proto = -1;
static int hf_mailsec_detected_by = -1;
static int hf_mailsec_transport = -1;
static int hf_mailsec_decrypted = -1;
static int hf_mailsec_direction = -1;
static int hf_mailsec_starttls_offered = -1;
static int hf_mailsec_starttls_command = -1;
static int hf_mailsec_starttls_result = -1;
static int hf_mailsec_starttls_boundary = -1;
static int hf_mailsec_starttls_cleartext_bytes = -1;
static int hf_mailsec_starttls_injected = -1;
static int hf_mailsec_auth_attempt = -1;
static int hf_mailsec_auth_started = -1;
static int hf_mailsec_auth_mechanism = -1;
static int hf_mailsec_auth_username = -1;
static int hf_mailsec_auth_authzid = -1;
static int hf_mailsec_auth_password = -1;
static int hf_mailsec_auth_username_raw = -1;
static int hf_mailsec_auth_password_raw = -1;
static int hf_mailsec_auth_token = -1;
static int hf_mailsec_auth_hash = -1;
static int hf_mailsec_auth_realm = -1;
static int hf_mailsec_auth_workstation = -1;
static int hf_mailsec_auth_material = -1;
static int hf_mailsec_auth_exposed = -1;
static int hf_mailsec_auth_result = -1;
static int hf_mailsec_auth_result_in = -1;
static int hf_mailsec_auth_request_in = -1;
static int hf_mailsec_session_auth_user = -1;

static gint ett_mailsec = -1;
static gint ett_mailsec_starttls = -1;
static gint ett_mailsec_auth = -1;

/* Failed logins per client address, across sessions (first pass). */
static wmem_map_t *client_failures;

static dissector_handle_t mailsec_handle;

static int proto_tcp = -1;
static int proto_smtp = -1;
static int proto_pop = -1;
static int proto_imap = -1;
static int expert_tap = -1;
static int credentials_tap = -1;
/* Referenced by a filter, a column or -e when their ref_type is set. */
static header_field_info *mailsec_hfinfo;
static header_field_info *expert_hfinfo;

static dissector_handle_t smtp_handle;
static dissector_handle_t pop_handle;
static dissector_handle_t imap_handle;

mailsec_prefs_t mailsec_prefs = { NULL, NULL, NULL, NULL, NULL, NULL, TRUE, 4096, 5, FALSE };

/* Longest piece of injected plaintext kept as evidence per frame. */
#define MAILSEC_EVIDENCE_MAX 512

/* ---- conversations ---------------------------------------------------------- */

mailsec_conv *mailsec_conv_lookup(conversation_t *conv)
{
    return (mailsec_conv *)conversation_get_proto_data(conv, proto_mailsec);
}

mailsec_conv *mailsec_conv_create(conversation_t *conv)
{
    mailsec_conv *mc = wmem_new0(wmem_file_scope(), mailsec_conv);
    conversation_add_proto_data(conv, proto_mailsec, mc);
    return mc;
}

dissector_handle_t mailsec_builtin_handle(ms_proto p)
{
    switch (p) {
    case MS_PROTO_SMTP: return smtp_handle;
    case MS_PROTO_POP3: return pop_handle;
    case MS_PROTO_IMAP: return imap_handle;
    default: return NULL;
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

/* ---- reading the TCP layer from the tree ------------------------------------ */

/* ---- the TCP segment of the frame ------------------------------------------ */

/* mailsec asks Wireshark for no field: a postdissector's wanted fields make
 * every frame of every protocol build a tree and index those fields, which
 * costs more than the whole analysis. Instead it sees each TCP segment on its
 * way in: the ip.proto entry for TCP is a transparent handle that notes the
 * segment's tvb and hands the same arguments to the same TCP dissector. It
 * adds no layer, no item and no column, so Wireshark's own output does not
 * change (tests/tshark/test_preservation.py). The note lives for one frame:
 * the postdissector reads it and clears it. */
static dissector_handle_t tcp_handle;       /* the TCP dissector, as ip.proto had it */
static dissector_handle_t tcp_note_handle;  /* ours, in its place */

typedef struct {
    guint32 frame;
    tvbuff_t *tvb;      /* the innermost TCP segment of the frame (header at 0) */
    bool in_error;      /* a TCP header quoted inside an ICMP error */
} tcp_note;

static tcp_note seen_tcp;

static int dissect_tcp_note(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    seen_tcp.frame = pinfo->num;
    seen_tcp.tvb = tvb;
    seen_tcp.in_error = pinfo->flags.in_error_pkt;
    return call_dissector_only(tcp_handle, tvb, pinfo, tree, data);
}

typedef struct {
    guint32 seq;
    guint32 ack_raw;   /* the acknowledgement number, when the ACK flag is set */
    guint32 len;
    bool syn;
    bool ack;
    bool rst;
    bool fin;
    tvbuff_t *tvb;  /* where the payload bytes are */
    gint offset;
    gint captured;  /* payload bytes present in the capture */
} tcp_facts;

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* The frame's TCP header and payload, as the TCP dissector saw them; false
 * when the frame has no TCP segment of its own, or one TCP could not read
 * (a header length it calls bogus). */
static bool read_tcp(const packet_info *pinfo, tcp_facts *t)
{
    tvbuff_t *tvb = seen_tcp.tvb;
    bool mine = tvb && seen_tcp.frame == pinfo->num && !seen_tcp.in_error;
    seen_tcp.tvb = NULL;
    if (!mine || tvb_captured_length(tvb) < 20)
        return false;
    const guint8 *h = tvb_get_ptr(tvb, 0, 20);
    /* the segment whose ports the frame carries */
    if ((guint32)pntoh16(h) != pinfo->srcport || (guint32)pntoh16(h + 2) != pinfo->destport)
        return false;
    guint hlen = (guint)(h[12] >> 4) * 4;
    guint reported = tvb_reported_length(tvb);
    if (hlen < 20 || reported < hlen)
        return false;
    memset(t, 0, sizeof *t);
    guint8 flags = h[13];
    t->seq = pntoh32(h + 4);
    t->syn = (flags & TCP_FLAG_SYN) != 0;
    t->ack = (flags & TCP_FLAG_ACK) != 0;
    t->rst = (flags & TCP_FLAG_RST) != 0;
    t->fin = (flags & TCP_FLAG_FIN) != 0;
    if (t->ack)
        t->ack_raw = pntoh32(h + 8);
    t->len = reported - hlen;
    if (t->len > 0) {
        guint avail = tvb_captured_length(tvb);
        t->tvb = tvb;
        t->offset = (gint)hlen;
        t->captured = avail <= hlen ? 0 : (gint)MIN(avail - hlen, t->len);
    }
    return true;
}

/* A built-in mail dissector that ran on this frame (Decode As, its own port). */
static ms_proto builtin_on_frame(const packet_info *pinfo)
{
    if (!pinfo->layers)
        return MS_PROTO_UNKNOWN;
    for (wmem_list_frame_t *f = wmem_list_head(pinfo->layers); f; f = wmem_list_frame_next(f)) {
        int id = GPOINTER_TO_INT(wmem_list_frame_data(f));
        if (id == proto_smtp) return MS_PROTO_SMTP;
        if (id == proto_pop) return MS_PROTO_POP3;
        if (id == proto_imap) return MS_PROTO_IMAP;
    }
    return MS_PROTO_UNKNOWN;
}

/* ---- the conversation of a frame, cached ------------------------------------ */

/* find_conversation_pinfo() hashes both endpoints and probes several
 * wildcard tables on every call. On the first pass frames come in capture
 * order, and a TCP conversation changes for the same endpoints only at a SYN
 * (port reuse), so a small cache keyed on the endpoints, bypassed and
 * refreshed on SYN, gives the same answer. Cleared with the file. */
#define CONV_CACHE_SIZE 1024
#define CONV_CACHE_ADDR_MAX 16

typedef struct {
    conversation_t *conv;
    guint32 srcport, destport;
    int type;
    guint8 len;
    guint8 src[CONV_CACHE_ADDR_MAX];
    guint8 dst[CONV_CACHE_ADDR_MAX];
} conv_cache_entry;

static conv_cache_entry *conv_cache;

static bool cacheable(const packet_info *pinfo)
{
    return pinfo->src.type == pinfo->dst.type && pinfo->src.len == pinfo->dst.len &&
           pinfo->src.len > 0 && pinfo->src.len <= CONV_CACHE_ADDR_MAX && pinfo->src.data && pinfo->dst.data;
}

static guint32 addr_word(const address *a)
{
    /* the last four bytes: all of IPv4, the host part of IPv6 */
    guint32 w;
    memcpy(&w, (const guint8 *)a->data + a->len - 4, 4);
    return w;
}

static guint conv_cache_slot(const packet_info *pinfo)
{
    guint32 h = (pinfo->srcport << 16 | pinfo->destport) * 2654435761u;
    if (pinfo->src.len >= 4)
        h ^= (addr_word(&pinfo->src) * 40503u) ^ (addr_word(&pinfo->dst) * 2246822519u);
    return (h >> 16 ^ h) % CONV_CACHE_SIZE;
}

static conversation_t *frame_conversation(packet_info *pinfo, bool syn)
{
    if (!conv_cache || !cacheable(pinfo))
        return find_conversation_pinfo(pinfo, 0);
    conv_cache_entry *e = &conv_cache[conv_cache_slot(pinfo)];
    if (!syn && e->conv && e->srcport == pinfo->srcport && e->destport == pinfo->destport &&
        e->type == pinfo->src.type && e->len == pinfo->src.len &&
        memcmp(e->src, pinfo->src.data, e->len) == 0 && memcmp(e->dst, pinfo->dst.data, e->len) == 0)
        return e->conv;
    conversation_t *conv = find_conversation_pinfo(pinfo, 0);
    e->conv = conv;
    e->srcport = pinfo->srcport;
    e->destport = pinfo->destport;
    e->type = pinfo->src.type;
    e->len = (guint8)pinfo->src.len;
    memcpy(e->src, pinfo->src.data, e->len);
    memcpy(e->dst, pinfo->dst.data, e->len);
    return conv;
}

static void conv_cache_init(void)
{
    conv_cache = g_new0(conv_cache_entry, CONV_CACHE_SIZE);
}

/* Per file: the cache, and the taps that make rendering worth it (the expert
 * tap is registered after the plugins' handoff, so it is looked up here). */
static void mailsec_init(void)
{
    memset(&seen_tcp, 0, sizeof seen_tcp); /* nothing of another file's frames */
    conv_cache_init();
    expert_tap = find_tap_id("expert");
    credentials_tap = find_tap_id("credentials");
    mailsec_hfinfo = proto_registrar_get_nth(proto_mailsec);
    expert_hfinfo = proto_expert > 0 ? proto_registrar_get_nth(proto_expert) : NULL;
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

static void mailsec_cleanup(void)
{
    g_free(conv_cache);
    conv_cache = NULL;
    frame_records_free();
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

typedef struct {
    mailsec_frame *fr;
    mailsec_fact **tail;
    mailsec_conv *mc;
    packet_info *pinfo;
} fact_sink_ctx;

/* A decoded value, escaped for display; raw (if given) gets the bytes when
 * escaping changed them. */
static const char *copy_text(const char *p, size_t len, mailsec_raw *raw)
{
    char *shown = format_text(wmem_file_scope(), (const guchar *)p, len);
    if (raw && (strlen(shown) != len || memcmp(shown, p, len) != 0)) {
        raw->data = (const guint8 *)wmem_memdup(wmem_file_scope(), p, len);
        raw->len = (guint)len;
    }
    return shown;
}

static const char *copy_small(const ms_str_small *f, mailsec_raw *raw)
{
    return f->set ? copy_text(f->s, f->len, raw) : NULL;
}

static const char *copy_large(const ms_str_large *f)
{
    return f->set ? copy_text(f->s, f->len, NULL) : NULL;
}

static const char *mech_label(const ms_creds *c)
{
    /* a mechanism we do not decode is shown by the name the client used */
    return c->mech == MS_MECH_OTHER && c->mech_name.len ? copy_text(c->mech_name.s, c->mech_name.len, NULL)
                                                         : ms_mech_name(c->mech);
}

static mailsec_attempt *new_attempt(fact_sink_ctx *sc, const ms_fact *f)
{
    const ms_creds *c = (const ms_creds *)f->obj;
    mailsec_attempt *a = wmem_new0(wmem_file_scope(), mailsec_attempt);
    a->number = (guint)f->ival;
    a->proto = (guint8)ms_session_proto(sc->mc->core);
    if (c) {
        a->mechanism = mech_label(c);
        a->username = copy_small(&c->username, &a->username_raw);
        a->authzid = c->authzid.len ? copy_small(&c->authzid, NULL) : NULL;
        a->password = copy_small(&c->password, &a->password_raw);
        a->token = copy_large(&c->token);
        a->hash = copy_large(&c->hash);
        a->realm = c->realm.len ? copy_small(&c->realm, NULL) : NULL;
        a->workstation = c->workstation.len ? copy_small(&c->workstation, NULL) : NULL;
        a->material = copy_large(&c->material);
    }
    sc->mc->last_attempt = a;
    return a;
}

static void store_fact(void *ctx, const ms_fact *f)
{
    fact_sink_ctx *sc = (fact_sink_ctx *)ctx;
    mailsec_fact *mf = wmem_new0(wmem_file_scope(), mailsec_fact);
    mf->kind = f->kind;
    mf->ival = f->ival;
    mf->ival2 = f->ival2;
    mf->ref_frame = f->ref_frame;
    mf->count = f->count;
    if (f->kind == MS_FACT_AUTH_START && f->obj) {
        /* keep the mechanism's name for the label */
        mf->data = (guint8 *)wmem_strdup(wmem_file_scope(), mech_label((const ms_creds *)f->obj));
    } else if (f->kind == MS_FACT_AUTH_REQUEST) {
        mf->attempt = new_attempt(sc, f);
        mf->attempt->exposed = f->ival2 != 0;
        mf->attempt->request_frame = sc->pinfo->num;
    } else if (f->kind == MS_FACT_AUTH_RESULT) {
        mailsec_attempt *a = sc->mc->last_attempt;
        if (!a || a->number != (guint)f->ival)
            a = new_attempt(sc, f);
        a->result = (guint8)f->ival2;
        a->result_frame = sc->pinfo->num;
        mf->attempt = a;
        if (f->ival2 == MS_AUTH_FAILURE) {
            /* the client is whoever is not the server */
            const address *client = frame_is_from_server(sc->mc, sc->pinfo) ? &sc->pinfo->dst : &sc->pinfo->src;
            char *key = address_to_str(wmem_file_scope(), client);
            guint n = GPOINTER_TO_UINT(wmem_map_lookup(client_failures, key)) + 1;
            wmem_map_insert(client_failures, key, GUINT_TO_POINTER(n));
            mf->client_count = n;
        } else if (f->ival2 == MS_AUTH_SUCCESS) {
            const address *client = frame_is_from_server(sc->mc, sc->pinfo) ? &sc->pinfo->dst : &sc->pinfo->src;
            char *key = address_to_str(sc->pinfo->pool, client);
            mf->client_count = GPOINTER_TO_UINT(wmem_map_lookup(client_failures, key));
        }
    }
    if (f->data && f->len) {
        guint keep = (guint)MIN(f->len, (size_t)MAILSEC_EVIDENCE_MAX);
        mf->data = (guint8 *)wmem_memdup(wmem_file_scope(), f->data, keep);
        mf->len = keep;
        mf->orig_len = (guint)MIN(f->len, (size_t)G_MAXUINT);
    }
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
} stream_feed;

/* In-order cleartext bytes of one direction, from ms_seq. */
static void feed_segment(void *ctx, const guint8 *p, size_t n, guint64 lost)
{
    stream_feed *sf = (stream_feed *)ctx;
    ms_session_segment(sf->core, sf->dir, p, n, lost, sf->feed);
}

/* Make a mail session of this conversation, if it is one. */
static bool adopt(mailsec_conv *mc, conversation_t *conv, packet_info *pinfo, ms_proto builtin,
                  const tcp_facts *t)
{
    ms_session_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_line = mailsec_prefs.max_line;

    port_class dst = classify_port(pinfo->destport);
    port_class src = classify_port(pinfo->srcport);
    bool server_is_src;

    if (mc->claimed != MS_PROTO_UNKNOWN) {
        /* The heuristic (or content on a port owned by another protocol). */
        server_is_src = mc->claimed_server_is_src;
        port_class pc = server_is_src ? src : dst;
        cfg.port_proto = pc.proto;
        cfg.how = MS_DETECT_HEURISTIC;
        /* the core starts from the port's view and corrects it by content */
        if (pc.proto == MS_PROTO_UNKNOWN)
            cfg.port_proto = mc->claimed;
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
        server_is_src = pinfo->srcport < pinfo->destport;
    } else {
        return false;
    }

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
    /* tcp.stream, from the TCP dissector's own conversation data */
    struct tcp_analysis *tcpd = proto_tcp > 0 ? (struct tcp_analysis *)conversation_get_proto_data(conv, proto_tcp) : NULL;
    mc->stream = tcpd ? tcpd->stream : 0;
    return true;
}

/* Once both sides have closed (FIN each way, nothing held for a hole) or an
 * in-sequence RST ended the stream, the parser state goes: only what
 * rendering needs stays (the per-frame records, the attempts, the strings). */
static void maybe_release(mailsec_conv *mc, ms_dir dir, const tcp_facts *t, guint32 rst_next)
{
    if (t->fin)
        mc->fin_seen[dir] = true;
    bool over = (mc->fin_seen[MS_DIR_C2S] && mc->fin_seen[MS_DIR_S2C]) || (t->rst && t->seq == rst_next);
    if (!over || ms_seq_waiting(&mc->seq[MS_DIR_C2S]) || ms_seq_waiting(&mc->seq[MS_DIR_S2C]))
        return;
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
           a->auth_user == b->auth_user;
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

static mailsec_frame *analyse_frame(packet_info *pinfo)
{
    tcp_facts t;
    if (!read_tcp(pinfo, &t))
        return NULL;
    conversation_t *conv = frame_conversation(pinfo, t.syn);
    if (!conv)
        return NULL;
    mailsec_conv *mc = mailsec_conv_lookup(conv);
    if (mc && mc->not_mail)
        return NULL;
    if (!mc || (!mc->core && !mc->closed)) {
        port_class dst = classify_port(pinfo->destport);
        port_class src = classify_port(pinfo->srcport);
        ms_proto builtin = builtin_on_frame(pinfo);
        bool worth = dst.proto != MS_PROTO_UNKNOWN || src.proto != MS_PROTO_UNKNOWN ||
                     (mc && mc->claimed != MS_PROTO_UNKNOWN) || builtin != MS_PROTO_UNKNOWN;
        if (!worth) {
            /* Content on a port some other protocol owns (IMAP on 80 …). */
            if (!mailsec_prefs.heuristic || t.captured == 0)
                return NULL;
            if (!mc)
                mc = mailsec_conv_create(conv);
            if (!mailsec_recognise_payload(mc, pinfo, t.tvb, t.offset)) {
                /* a no is final (mailsec-heur.c), and the ports are not mail */
                mc->not_mail = mc->given_up;
                return NULL;
            }
        }
        if (!mc)
            mc = mailsec_conv_create(conv);
        if (!adopt(mc, conv, pinfo, builtin, &t))
            return NULL;
    }

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
        if (fr->transport != MS_TRANSPORT_CLEARTEXT && mc->final_boundary) {
            fr->boundary = mc->final_boundary;
            fr->cleartext_bytes = mc->final_cleartext_bytes;
        }
        return keep_record(mc, pinfo, fr);
    }

    fact_sink_ctx sc = { fr, &fr->facts, mc, pinfo };
    ms_feed_ctx feed = { pinfo->num, store_fact, &sc };

    stream_feed sf[2] = { { mc->core, MS_DIR_C2S, &feed }, { mc->core, MS_DIR_S2C, &feed } };
    ms_dir peer = dir == MS_DIR_C2S ? MS_DIR_S2C : MS_DIR_C2S;
    guint32 rst_next = mc->seq[dir].next;
    /* What this frame acknowledges tells whether a hole in the other
     * direction will ever fill: bytes the peer received and the capture
     * lacks are lost. */
    if (t.ack)
        ms_seq_ack(&mc->seq[peer], t.ack_raw, feed_segment, &sf[peer]);
    if (t.syn) {
        ms_seq_syn(&mc->seq[dir], t.seq);
    } else if (t.len > 0) {
        const guint8 *p = t.captured > 0 ? tvb_get_ptr(t.tvb, t.offset, t.captured) : NULL;
        ms_seq_segment(&mc->seq[dir], t.seq, p, (size_t)t.captured, t.len, feed_segment, &sf[dir]);
    }
    if (t.rst) {
        ms_seq_flush(&mc->seq[MS_DIR_C2S], feed_segment, &sf[MS_DIR_C2S]);
        ms_seq_flush(&mc->seq[MS_DIR_S2C], feed_segment, &sf[MS_DIR_S2C]);
    }
    if (ms_session_tls(mc->core)) {
        record_feed rf = { mc->core, dir, &feed, 0 };
        mailsec_tls_feed_records(pinfo, mc, dir, feed_record, &rf);
        fr->decrypted = rf.count > 0;
    }

    fr->proto = (guint8)ms_session_proto(mc->core);
    fr->detected_by = (guint8)ms_session_detect(mc->core);
    fr->transport = (guint8)ms_session_frame_transport(mc->core, pinfo->num);
    unsigned gen;
    size_t ulen;
    const char *user = ms_session_auth_user(mc->core, &ulen, &gen);
    if (user && gen != mc->auth_user_gen) {
        mc->auth_user = copy_text(user, ulen, NULL);
        mc->auth_user_gen = gen;
    }
    fr->auth_user = mc->auth_user;
    if (fr->transport != MS_TRANSPORT_CLEARTEXT && ms_session_boundary(mc->core)) {
        fr->boundary = ms_session_boundary(mc->core);
        fr->cleartext_bytes = ms_session_cleartext_bytes(mc->core);
    }
    if (!t.syn)
        maybe_release(mc, dir, &t, rst_next);
    return keep_record(mc, pinfo, fr);
}

/* ---- rendering -------------------------------------------------------------- */

static const mailsec_fact *find_fact(const mailsec_frame *fr, ms_fact_kind kind)
{
    for (const mailsec_fact *f = fr->facts; f; f = f->next)
        if (f->kind == kind)
            return f;
    return NULL;
}

static void render_starttls(proto_tree *tree, tvbuff_t *tvb, const mailsec_frame *fr)
{
    const mailsec_fact *offered = find_fact(fr, MS_FACT_STARTTLS_OFFERED);
    const mailsec_fact *command = find_fact(fr, MS_FACT_STARTTLS_COMMAND);
    const mailsec_fact *result = find_fact(fr, MS_FACT_STARTTLS_RESULT);
    if (!offered && !command && !result && !fr->boundary && !find_fact(fr, MS_FACT_STARTTLS_INJECTED))
        return;
    proto_item *ti;
    proto_tree *st = proto_tree_add_subtree(tree, tvb, 0, 0, ett_mailsec_starttls, NULL, "STARTTLS");
    if (offered)
        proto_item_set_generated(proto_tree_add_boolean(st, hf_mailsec_starttls_offered, tvb, 0, 0, TRUE));
    if (command)
        proto_item_set_generated(proto_tree_add_boolean(st, hf_mailsec_starttls_command, tvb, 0, 0, TRUE));
    if (result)
        proto_item_set_generated(proto_tree_add_string(st, hf_mailsec_starttls_result, tvb, 0, 0,
                                 ms_starttls_result_name((ms_starttls_result)result->ival)));
    for (const mailsec_fact *f = fr->facts; f; f = f->next) {
        if (f->kind != MS_FACT_STARTTLS_INJECTED)
            continue;
        ti = proto_tree_add_bytes_with_length(st, hf_mailsec_starttls_injected, tvb, 0, 0, f->data, f->len);
        proto_item_append_text(ti, " (%u byte%s %s)", f->orig_len, plurality(f->orig_len, "", "s"),
                               f->ival == MS_DIR_C2S ? "from the client" : "from the server");
        proto_item_set_generated(ti);
    }
    if (fr->boundary) {
        proto_item_set_generated(proto_tree_add_uint(st, hf_mailsec_starttls_boundary, tvb, 0, 0, fr->boundary));
        ti = proto_tree_add_uint64(st, hf_mailsec_starttls_cleartext_bytes, tvb, 0, 0, fr->cleartext_bytes);
        proto_item_set_generated(ti);
    }
}

#define MAILSEC_HIDDEN "********"

static void add_text(proto_tree *t, int hf, tvbuff_t *tvb, packet_info *pinfo, const char *v, bool secret)
{
    if (!v)
        return;
    (void)pinfo;
    /* v was escaped when it was stored (copy_text) */
    const char *shown = secret && mailsec_prefs.hide_secrets ? MAILSEC_HIDDEN : v;
    proto_item_set_generated(proto_tree_add_string(t, hf, tvb, 0, 0, shown));
}

static void add_raw(proto_tree *t, int hf, tvbuff_t *tvb, const mailsec_raw *raw, bool secret)
{
    if (!raw->data || (secret && mailsec_prefs.hide_secrets))
        return;
    proto_item_set_generated(proto_tree_add_bytes_with_length(t, hf, tvb, 0, 0, raw->data, raw->len));
}

static void render_attempt_request(proto_tree *tree, tvbuff_t *tvb, packet_info *pinfo,
                                   const mailsec_attempt *a)
{
    proto_tree *at = proto_tree_add_subtree_format(tree, tvb, 0, 0, ett_mailsec_auth, NULL,
        "Login attempt %u: %s%s%s%s", a->number, a->mechanism, a->username ? " " : "",
        a->username ? a->username : "", a->exposed ? " (in clear)" : "");
    proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_attempt, tvb, 0, 0, a->number));
    add_text(at, hf_mailsec_auth_mechanism, tvb, pinfo, a->mechanism, false);
    add_text(at, hf_mailsec_auth_username, tvb, pinfo, a->username, false);
    add_text(at, hf_mailsec_auth_authzid, tvb, pinfo, a->authzid, false);
    add_raw(at, hf_mailsec_auth_username_raw, tvb, &a->username_raw, false);
    add_text(at, hf_mailsec_auth_password, tvb, pinfo, a->password, true);
    add_raw(at, hf_mailsec_auth_password_raw, tvb, &a->password_raw, true);
    add_text(at, hf_mailsec_auth_token, tvb, pinfo, a->token, true);
    add_text(at, hf_mailsec_auth_hash, tvb, pinfo, a->hash, false);
    add_text(at, hf_mailsec_auth_realm, tvb, pinfo, a->realm, false);
    add_text(at, hf_mailsec_auth_workstation, tvb, pinfo, a->workstation, false);
    add_text(at, hf_mailsec_auth_material, tvb, pinfo, a->material, false);
    proto_item_set_generated(proto_tree_add_boolean(at, hf_mailsec_auth_exposed, tvb, 0, 0, a->exposed));
    /* Like Wireshark's own response_in links, the forward link exists only
     * once the verdict has been seen (later passes, the GUI). */
    if (a->result_frame && PINFO_FD_VISITED(pinfo))
        proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_result_in, tvb, 0, 0, a->result_frame));
    mailsec_tap_credential(pinfo, a, hf_mailsec_auth_password);
}

static void render_attempt_result(proto_tree *tree, tvbuff_t *tvb, packet_info *pinfo,
                                  const mailsec_attempt *a, int result)
{
    const char *r = ms_auth_result_name((ms_auth_result)result);
    proto_tree *at = proto_tree_add_subtree_format(tree, tvb, 0, 0, ett_mailsec_auth, NULL,
        "Login result: %s (attempt %u, %s%s%s)", r, a->number, a->mechanism,
        a->username ? " " : "", a->username ? a->username : "");
    proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_attempt, tvb, 0, 0, a->number));
    add_text(at, hf_mailsec_auth_mechanism, tvb, pinfo, a->mechanism, false);
    add_text(at, hf_mailsec_auth_username, tvb, pinfo, a->username, false);
    add_text(at, hf_mailsec_auth_result, tvb, pinfo, r, false);
    if (a->request_frame)
        proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_request_in, tvb, 0, 0, a->request_frame));
}

static void render(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const mailsec_frame *fr)
{
    proto_item *ti = proto_tree_add_item(tree, proto_mailsec, tvb, 0, 0, ENC_NA);
    proto_item_append_text(ti, ": %s, %s, %s", ms_proto_name((ms_proto)fr->proto),
                           ms_transport_name((ms_transport)fr->transport),
                           ms_detect_name((ms_detect)fr->detected_by));
    proto_tree *mt = proto_item_add_subtree(ti, ett_mailsec);
    proto_item *pi;
    pi = proto_tree_add_string(mt, hf_mailsec_proto, tvb, 0, 0, ms_proto_name((ms_proto)fr->proto));
    proto_item_set_generated(pi);
    pi = proto_tree_add_string(mt, hf_mailsec_detected_by, tvb, 0, 0, ms_detect_name((ms_detect)fr->detected_by));
    proto_item_set_generated(pi);
    pi = proto_tree_add_string(mt, hf_mailsec_transport, tvb, 0, 0, ms_transport_name((ms_transport)fr->transport));
    proto_item_set_generated(pi);
    pi = proto_tree_add_boolean(mt, hf_mailsec_decrypted, tvb, 0, 0, fr->decrypted);
    proto_item_set_generated(pi);
    pi = proto_tree_add_string(mt, hf_mailsec_direction, tvb, 0, 0,
                               fr->dir == MS_DIR_C2S ? "to-server" : "to-client");
    proto_item_set_generated(pi);
    if (fr->auth_user)
        add_text(mt, hf_mailsec_session_auth_user, tvb, pinfo, fr->auth_user, false);
    render_starttls(mt, tvb, fr);
    for (const mailsec_fact *f = fr->facts; f; f = f->next) {
        if (f->kind == MS_FACT_AUTH_START) {
            proto_item *si = proto_tree_add_uint(mt, hf_mailsec_auth_started, tvb, 0, 0, (guint32)f->ival);
            proto_item_set_generated(si);
            if (f->data)
                proto_item_append_text(si, " (%s)", (const char *)f->data);
        } else if (f->kind == MS_FACT_AUTH_REQUEST && f->attempt)
            render_attempt_request(mt, tvb, pinfo, f->attempt);
        else if (f->kind == MS_FACT_AUTH_RESULT && f->attempt)
            render_attempt_result(mt, tvb, pinfo, f->attempt, f->ival2);
    }
    mailsec_alerts_add(pinfo, mt, tvb, fr);
}

/* Does anybody look at mailsec's items in this tree? The packet details
 * shown, a mailsec field in a filter, column or -e, the expert information
 * (panel, -z expert, _ws.expert filters) or the credentials tap. Otherwise
 * only the protocol item is added (protocol hierarchy statistics count it). */
static bool taps_listening(void)
{
    return (expert_tap > 0 && have_tap_listener(expert_tap)) ||
           (credentials_tap > 0 && have_tap_listener(credentials_tap));
}

static bool render_wanted(proto_tree *tree)
{
    if (!tree)
        return taps_listening(); /* no tree: the taps still get their records */
    if (PTREE_DATA(tree)->visible)
        return true;
    if ((mailsec_hfinfo && mailsec_hfinfo->ref_type != HF_REF_TYPE_NONE) ||
        (expert_hfinfo && expert_hfinfo->ref_type != HF_REF_TYPE_NONE))
        return true;
    return taps_listening();
}

static int dissect_mailsec(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    if (pinfo->ptype != PT_TCP)
        return 0;
    mailsec_frame *fr = frame_record(pinfo->num);
    if (!fr && !PINFO_FD_VISITED(pinfo))
        fr = analyse_frame(pinfo);
    if (!fr)
        return 0;
    if (render_wanted(tree))
        render(tvb, pinfo, tree, fr);
    else if (tree)
        proto_tree_add_item(tree, proto_mailsec, tvb, 0, 0, ENC_NA);
    return MAX(1, (int)tvb_captured_length(tvb));
}

/* ---- registration ----------------------------------------------------------- */

void proto_register_mailsec(void)
{
    static hf_register_info hf[] = {
        { &hf_mailsec_proto,
          { "Mail protocol", "mailsec.proto", FT_STRING, BASE_NONE, NULL, 0x0,
            "smtp, pop3 or imap, as the content shows", HFILL } },
        { &hf_mailsec_detected_by,
          { "Detected by", "mailsec.detected_by", FT_STRING, BASE_NONE, NULL, 0x0,
            "port (a port preference, a built-in dissector's port or Decode As) or heuristic (content)", HFILL } },
        { &hf_mailsec_transport,
          { "Transport", "mailsec.transport", FT_STRING, BASE_NONE, NULL, 0x0,
            "cleartext, starttls (after the upgrade) or implicit-tls", HFILL } },
        { &hf_mailsec_decrypted,
          { "Decrypted", "mailsec.decrypted", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "This frame's mail payload was recovered by TLS decryption", HFILL } },
        { &hf_mailsec_direction,
          { "Direction", "mailsec.direction", FT_STRING, BASE_NONE, NULL, 0x0,
            "to-server (sent by the client) or to-client (sent by the server)", HFILL } },
        { &hf_mailsec_starttls_offered,
          { "STARTTLS offered", "mailsec.starttls.offered", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "The capability reply advertised STARTTLS (SMTP, IMAP) or STLS (POP3)", HFILL } },
        { &hf_mailsec_starttls_command,
          { "STARTTLS requested", "mailsec.starttls.command", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "The client asked for STARTTLS/STLS", HFILL } },
        { &hf_mailsec_starttls_result,
          { "STARTTLS result", "mailsec.starttls.result", FT_STRING, BASE_NONE, NULL, 0x0,
            "accepted, refused or no-reply", HFILL } },
        { &hf_mailsec_starttls_boundary,
          { "Last cleartext frame", "mailsec.starttls.boundary", FT_FRAMENUM, BASE_NONE, NULL, 0x0,
            "The STARTTLS boundary: the last frame before TLS took over", HFILL } },
        { &hf_mailsec_starttls_cleartext_bytes,
          { "Bytes in clear before TLS", "mailsec.starttls.cleartext_bytes", FT_UINT64, BASE_DEC, NULL, 0x0,
            "Payload bytes both sides exchanged in clear before the boundary", HFILL } },
        { &hf_mailsec_auth_attempt,
          { "Login attempt", "mailsec.auth.attempt", FT_UINT32, BASE_DEC, NULL, 0x0,
            "1, 2, 3 ... within the session", HFILL } },
        { &hf_mailsec_auth_started,
          { "Login attempt begins", "mailsec.auth.started", FT_UINT32, BASE_DEC, NULL, 0x0,
            "On the command that starts attempt N (it may never complete in the capture)", HFILL } },
        { &hf_mailsec_auth_mechanism,
          { "Mechanism", "mailsec.auth.mechanism", FT_STRING, BASE_NONE, NULL, 0x0,
            "SASL mechanism, or USER/PASS, APOP, IMAP-LOGIN", HFILL } },
        { &hf_mailsec_auth_username,
          { "Username", "mailsec.auth.username", FT_STRING, BASE_NONE, NULL, 0x0,
            "The user (authentication identity) the client gave", HFILL } },
        { &hf_mailsec_auth_authzid,
          { "Authorization identity", "mailsec.auth.authzid", FT_STRING, BASE_NONE, NULL, 0x0,
            "The identity to act as, where the mechanism carries one", HFILL } },
        { &hf_mailsec_auth_password,
          { "Password", "mailsec.auth.password", FT_STRING, BASE_NONE, NULL, 0x0,
            "The cleartext password, where the mechanism sends one", HFILL } },
        { &hf_mailsec_auth_username_raw,
          { "Username bytes", "mailsec.auth.username.raw", FT_BYTES, BASE_NONE, NULL, 0x0,
            "The user name as sent, when it holds bytes that the text field shows escaped", HFILL } },
        { &hf_mailsec_auth_password_raw,
          { "Password bytes", "mailsec.auth.password.raw", FT_BYTES, BASE_NONE, NULL, 0x0,
            "The password as sent, when it holds bytes that the text field shows escaped", HFILL } },
        { &hf_mailsec_auth_token,
          { "Bearer token", "mailsec.auth.token", FT_STRING, BASE_NONE, NULL, 0x0,
            "OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER)", HFILL } },
        { &hf_mailsec_auth_hash,
          { "Crackable hash", "mailsec.auth.hash", FT_STRING, BASE_NONE, NULL, 0x0,
            "hashcat input: 10200 CRAM-MD5, 20 APOP, 5500 NetNTLMv1, 5600 NetNTLMv2", HFILL } },
        { &hf_mailsec_auth_realm,
          { "Realm or domain", "mailsec.auth.realm", FT_STRING, BASE_NONE, NULL, 0x0,
            "DIGEST-MD5 realm, NTLM domain", HFILL } },
        { &hf_mailsec_auth_workstation,
          { "Workstation", "mailsec.auth.workstation", FT_STRING, BASE_NONE, NULL, 0x0,
            "NTLM workstation name", HFILL } },
        { &hf_mailsec_auth_material,
          { "Verification material", "mailsec.auth.material", FT_STRING, BASE_NONE, NULL, 0x0,
            "DIGEST-MD5 response fields needed to test a password guess", HFILL } },
        { &hf_mailsec_auth_exposed,
          { "Sent in clear", "mailsec.auth.exposed", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "The login crossed the wire without TLS", HFILL } },
        { &hf_mailsec_auth_result,
          { "Result", "mailsec.auth.result", FT_STRING, BASE_NONE, NULL, 0x0,
            "success, failure or aborted, from the server's reply", HFILL } },
        { &hf_mailsec_auth_result_in,
          { "Result in", "mailsec.auth.result_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0,
            "The frame with the server's verdict", HFILL } },
        { &hf_mailsec_auth_request_in,
          { "Request in", "mailsec.auth.request_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0,
            "The frame that completed the client's part of the login", HFILL } },
        { &hf_mailsec_session_auth_user,
          { "Logged-in user", "mailsec.session.auth_user", FT_STRING, BASE_NONE, NULL, 0x0,
            "The user of the session's last successful login", HFILL } },
        { &hf_mailsec_starttls_injected,
          { "Plaintext after STARTTLS", "mailsec.starttls.injected", FT_BYTES, BASE_NONE, NULL, 0x0,
            "Bytes that followed the STARTTLS command or its OK in the same segment", HFILL } },
    };
    static gint *ett[] = { &ett_mailsec, &ett_mailsec_starttls, &ett_mailsec_auth };

    proto_mailsec = proto_register_protocol("Mail Forensics", "MAILSEC", "mailsec");
    proto_register_field_array(proto_mailsec, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    mailsec_alerts_register(proto_mailsec);

    range_convert_str(wmem_epan_scope(), &mailsec_prefs.smtp_ports, "25,587", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.smtps_ports, "465", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.pop_ports, "110", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.pops_ports, "995", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.imap_ports, "143", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.imaps_ports, "993", 65535);

    module_t *m = prefs_register_protocol(proto_mailsec, NULL);
    prefs_register_range_preference(m, "smtp_ports", "SMTP ports",
        "TCP ports of cleartext SMTP with optional STARTTLS (relay and submission)",
        &mailsec_prefs.smtp_ports, 65535);
    prefs_register_range_preference(m, "smtps_ports", "SMTP over TLS ports",
        "TCP ports of SMTP submission over implicit TLS", &mailsec_prefs.smtps_ports, 65535);
    prefs_register_range_preference(m, "pop_ports", "POP3 ports",
        "TCP ports of cleartext POP3 with optional STLS", &mailsec_prefs.pop_ports, 65535);
    prefs_register_range_preference(m, "pops_ports", "POP3 over TLS ports",
        "TCP ports of POP3 over implicit TLS", &mailsec_prefs.pops_ports, 65535);
    prefs_register_range_preference(m, "imap_ports", "IMAP ports",
        "TCP ports of cleartext IMAP with optional STARTTLS", &mailsec_prefs.imap_ports, 65535);
    prefs_register_range_preference(m, "imaps_ports", "IMAP over TLS ports",
        "TCP ports of IMAP over implicit TLS", &mailsec_prefs.imaps_ports, 65535);
    prefs_register_bool_preference(m, "heuristic", "Recognise mail on other ports",
        "Recognise SMTP, POP3 and IMAP by their greeting or first command on any TCP port, "
        "and hand such sessions to the built-in dissector",
        &mailsec_prefs.heuristic);
    prefs_register_uint_preference(m, "max_line", "Longest normal line (bytes)",
        "Lines longer than this raise a malformed alert", 10, &mailsec_prefs.max_line);
    prefs_register_uint_preference(m, "brute_force_threshold", "Brute-force threshold",
        "Failed logins in one session, or from one client address, that raise a brute-force alert",
        10, &mailsec_prefs.brute_force_threshold);
    prefs_register_bool_preference(m, "hide_secrets", "Hide secrets",
        "Show passwords and tokens as ******** (users and hashes stay), for screenshots and reports",
        &mailsec_prefs.hide_secrets);
    register_init_routine(mailsec_init);
    register_cleanup_routine(mailsec_cleanup);
    client_failures = wmem_map_new_autoreset(wmem_epan_scope(), wmem_file_scope(), g_str_hash, g_str_equal);

    mailsec_handle = create_dissector_handle(dissect_mailsec, proto_mailsec);
    register_postdissector(mailsec_handle);
    mailsec_heur_register();
}

void proto_reg_handoff_mailsec(void)
{
    /* see dissect_tcp_note() */
    dissector_table_t ip_proto = find_dissector_table("ip.proto");
    tcp_handle = ip_proto ? dissector_get_uint_handle(ip_proto, 6) : NULL;
    if (tcp_handle) {
        tcp_note_handle = create_dissector_handle_with_name_and_description(
            dissect_tcp_note, -1, dissector_handle_get_dissector_name(tcp_handle),
            "TCP (segments noted by mailsec)");
        dissector_add_uint("ip.proto", 6, tcp_note_handle);
    }
    proto_tcp = proto_get_id_by_filter_name("tcp");
    proto_smtp = proto_get_id_by_filter_name("smtp");
    proto_pop = proto_get_id_by_filter_name("pop");
    proto_imap = proto_get_id_by_filter_name("imap");

    smtp_handle = find_dissector_add_dependency("smtp", proto_mailsec);
    pop_handle = find_dissector_add_dependency("pop", proto_mailsec);
    imap_handle = find_dissector_add_dependency("imap", proto_mailsec);
    mailsec_heur_handoff();
    mailsec_tls_handoff();
    mailsec_tap_handoff();
}

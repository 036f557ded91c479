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
#include <epan/to_str.h>
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

/* Fields of other dissectors the postdissector reads. */
static int hf_tcp_seq_raw = -1;
static int hf_tcp_len = -1;
static int hf_tcp_flags_syn = -1;
static int hf_tcp_flags_ack = -1;
static int hf_tcp_payload = -1;
static int hf_tcp_stream = -1;
static int proto_smtp = -1;
static int proto_pop = -1;
static int proto_imap = -1;

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

static field_info *last_field(proto_tree *tree, int hf)
{
    if (hf < 0)
        return NULL;
    GPtrArray *a = proto_get_finfo_ptr_array(tree, hf);
    if (!a || a->len == 0)
        return NULL;
    return (field_info *)g_ptr_array_index(a, a->len - 1);
}

static bool has_field(proto_tree *tree, int hf)
{
    return last_field(tree, hf) != NULL;
}

typedef struct {
    guint32 seq;
    guint32 ack_raw;   /* the acknowledgement number, when the ACK flag is set */
    guint32 len;
    bool syn;
    bool ack;
    bool rst;
    guint32 stream;
    tvbuff_t *tvb;  /* where the payload bytes are */
    gint offset;
    gint captured;  /* payload bytes present in the capture */
} tcp_facts;

static bool read_tcp(proto_tree *tree, tcp_facts *t)
{
    field_info *fi;
    memset(t, 0, sizeof *t);
    if (!(fi = last_field(tree, hf_tcp_seq_raw)))
        return false;
    t->seq = fvalue_get_uinteger(MAILSEC_FI_FVALUE(fi));
    /* The rest of the header sits beside the sequence number (TCP header
     * offset 4): acknowledgement number at 8, flags at 13. */
    if (fi->ds_tvb && tvb_captured_length_remaining(fi->ds_tvb, fi->start) >= 10) {
        guint8 flags = tvb_get_guint8(fi->ds_tvb, fi->start + 9);
        t->rst = (flags & 0x04) != 0;
        if (flags & 0x10)
            t->ack_raw = tvb_get_ntohl(fi->ds_tvb, fi->start + 4);
    }
    if ((fi = last_field(tree, hf_tcp_len)))
        t->len = fvalue_get_uinteger(MAILSEC_FI_FVALUE(fi));
    if ((fi = last_field(tree, hf_tcp_flags_syn)))
        t->syn = fvalue_get_uinteger64(MAILSEC_FI_FVALUE(fi)) != 0;
    if ((fi = last_field(tree, hf_tcp_flags_ack)))
        t->ack = fvalue_get_uinteger64(MAILSEC_FI_FVALUE(fi)) != 0;
    if ((fi = last_field(tree, hf_tcp_stream)))
        t->stream = fvalue_get_uinteger(MAILSEC_FI_FVALUE(fi));
    if (t->len > 0 && (fi = last_field(tree, hf_tcp_payload)) && fi->ds_tvb) {
        gint avail = tvb_captured_length_remaining(fi->ds_tvb, fi->start);
        t->tvb = fi->ds_tvb;
        t->offset = fi->start;
        t->captured = avail < 0 ? 0 : MIN(avail, (gint)t->len);
    }
    return true;
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
static bool adopt(mailsec_conv *mc, packet_info *pinfo, proto_tree *tree, const tcp_facts *t)
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
    } else if (has_field(tree, proto_smtp) || has_field(tree, proto_pop) || has_field(tree, proto_imap)) {
        /* A built-in dissector owns it through Decode As or its own port. */
        cfg.port_proto = has_field(tree, proto_smtp) ? MS_PROTO_SMTP
                       : has_field(tree, proto_pop) ? MS_PROTO_POP3 : MS_PROTO_IMAP;
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
    mc->stream = t->stream;
    return true;
}

static mailsec_frame *analyse_frame(packet_info *pinfo, proto_tree *tree)
{
    tcp_facts t;
    if (!tree || !read_tcp(tree, &t))
        return NULL;
    conversation_t *conv = find_conversation_pinfo(pinfo, 0);
    if (!conv)
        return NULL;
    mailsec_conv *mc = mailsec_conv_lookup(conv);
    if (!mc || !mc->core) {
        port_class dst = classify_port(pinfo->destport);
        port_class src = classify_port(pinfo->srcport);
        bool worth = dst.proto != MS_PROTO_UNKNOWN || src.proto != MS_PROTO_UNKNOWN ||
                     (mc && mc->claimed != MS_PROTO_UNKNOWN) || has_field(tree, proto_smtp) ||
                     has_field(tree, proto_pop) || has_field(tree, proto_imap);
        if (!worth) {
            /* Content on a port some other protocol owns (IMAP on 80 …). */
            if (!mailsec_prefs.heuristic || t.captured == 0)
                return NULL;
            if (!mc)
                mc = mailsec_conv_create(conv);
            if (!mailsec_recognise_payload(mc, pinfo, t.tvb, t.offset))
                return NULL;
        }
        if (!mc)
            mc = mailsec_conv_create(conv);
        if (!adopt(mc, pinfo, tree, &t))
            return NULL;
    }

    mailsec_frame *fr = wmem_new0(wmem_file_scope(), mailsec_frame);
    fact_sink_ctx sc = { fr, &fr->facts, mc, pinfo };
    ms_feed_ctx feed = { pinfo->num, store_fact, &sc };
    ms_dir dir = frame_dir(mc, pinfo);

    stream_feed sf[2] = { { mc->core, MS_DIR_C2S, &feed }, { mc->core, MS_DIR_S2C, &feed } };
    ms_dir peer = dir == MS_DIR_C2S ? MS_DIR_S2C : MS_DIR_C2S;
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
    fr->stream = mc->stream;
    fr->dir = (guint8)dir;
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
    p_add_proto_data(wmem_file_scope(), pinfo, proto_mailsec, 0, fr);
    return fr;
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

static int dissect_mailsec(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    if (pinfo->ptype != PT_TCP)
        return 0;
    /* A TCP header quoted inside an ICMP error is not a segment of the stream. */
    if (proto_is_frame_protocol(pinfo->layers, "icmp") || proto_is_frame_protocol(pinfo->layers, "icmpv6"))
        return 0;
    mailsec_frame *fr = (mailsec_frame *)p_get_proto_data(wmem_file_scope(), pinfo, proto_mailsec, 0);
    if (!fr && !PINFO_FD_VISITED(pinfo))
        fr = analyse_frame(pinfo, tree);
    if (!fr)
        return 0;
    render(tvb, pinfo, tree, fr);
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
    client_failures = wmem_map_new_autoreset(wmem_epan_scope(), wmem_file_scope(), g_str_hash, g_str_equal);

    mailsec_handle = create_dissector_handle(dissect_mailsec, proto_mailsec);
    register_postdissector(mailsec_handle);
    mailsec_heur_register();
}

static int wanted(GArray *a, const char *name)
{
    int id = proto_registrar_get_id_byname(name);
    if (id > 0)
        g_array_append_val(a, id);
    return id;
}

void proto_reg_handoff_mailsec(void)
{
    GArray *fields = g_array_new(FALSE, FALSE, (guint)sizeof(int));
    hf_tcp_seq_raw = wanted(fields, "tcp.seq_raw");
    hf_tcp_len = wanted(fields, "tcp.len");
    hf_tcp_flags_syn = wanted(fields, "tcp.flags.syn");
    hf_tcp_flags_ack = wanted(fields, "tcp.flags.ack");
    hf_tcp_payload = wanted(fields, "tcp.payload");
    hf_tcp_stream = wanted(fields, "tcp.stream");
    proto_smtp = wanted(fields, "smtp");
    proto_pop = wanted(fields, "pop");
    proto_imap = wanted(fields, "imap");
    set_postdissector_wanted_hfids(mailsec_handle, fields);

    smtp_handle = find_dissector_add_dependency("smtp", proto_mailsec);
    pop_handle = find_dissector_add_dependency("pop", proto_mailsec);
    imap_handle = find_dissector_add_dependency("imap", proto_mailsec);
    mailsec_heur_handoff();
    mailsec_tls_handoff();
    mailsec_tap_handoff();
}

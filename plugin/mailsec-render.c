/* mailsec-render.c — the frame's mailsec tree, drawn from its stored record
 * only, so every pass draws the same thing. What each fact looks like is the
 * fact table's business (mailsec-facts.c); the alerts are mailsec-alerts.c's.
 */
#include <wireshark.h>

#include <epan/packet.h>
#include <epan/expert.h>
#include <epan/proto.h>

#include "mailsec.h"

static int hf_mailsec_proto = -1;
static int hf_mailsec_detected_by = -1;
static int hf_mailsec_transport = -1;
static int hf_mailsec_decrypted = -1;
static int hf_mailsec_direction = -1;
static int hf_mailsec_session_auth_user = -1;
static int hf_mailsec_retransmission = -1;
static int hf_mailsec_tls_version = -1;
static int hf_mailsec_tls_cipher = -1;
static int hf_mailsec_tls_sni = -1;
static int hf_mailsec_starttls_boundary = -1;
static int hf_mailsec_starttls_cleartext_bytes = -1;

static gint ett_mailsec = -1;
static gint ett_mailsec_starttls = -1;
static gint ett_mailsec_tls = -1;

/* The IANA names of the cipher suites mail servers negotiate; others by number. */
static const value_string cipher_names[] = {
    { 0x1301, "TLS_AES_128_GCM_SHA256" }, { 0x1302, "TLS_AES_256_GCM_SHA384" },
    { 0x1303, "TLS_CHACHA20_POLY1305_SHA256" }, { 0x1304, "TLS_AES_128_CCM_SHA256" },
    { 0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" }, { 0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" },
    { 0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" }, { 0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" },
    { 0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" },
    { 0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" },
    { 0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256" },
    { 0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" }, { 0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384" },
    { 0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" }, { 0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" },
    { 0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" }, { 0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA" },
    { 0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256" }, { 0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384" },
    { 0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA" }, { 0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA" },
    { 0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA" }, { 0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA" },
    { 0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256" }, { 0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256" },
    { 0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256" }, { 0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384" },
    { 0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA" }, { 0x0005, "TLS_RSA_WITH_RC4_128_SHA" },
    { 0x0004, "TLS_RSA_WITH_RC4_128_MD5" },
    { 0, NULL }
};

static void render_tls(mailsec_render_ctx *rc)
{
    const mailsec_tls *t = rc->fr->tls;
    if (!t)
        return;
    const char *v = mailsec_tls_version_name(t->version);
    proto_tree *tt = proto_tree_add_subtree_format(rc->tree, rc->tvb, 0, 0, ett_mailsec_tls, NULL, "TLS: %s%s%s",
        v ? v : "unknown version", t->sni ? ", " : "", t->sni ? t->sni : "");
    proto_item_set_generated(proto_tree_add_string(tt, hf_mailsec_tls_version, rc->tvb, 0, 0,
        v ? v : wmem_strdup_printf(rc->pinfo->pool, "0x%04x", t->version)));
    const char *c = try_val_to_str(t->cipher, cipher_names);
    proto_item_set_generated(proto_tree_add_string(tt, hf_mailsec_tls_cipher, rc->tvb, 0, 0,
        c ? wmem_strdup_printf(rc->pinfo->pool, "%s (0x%04x)", c, t->cipher)
          : wmem_strdup_printf(rc->pinfo->pool, "0x%04x", t->cipher)));
    if (t->sni)
        mailsec_add_text(tt, hf_mailsec_tls_sni, rc->tvb, 0, 0, t->sni, false);
}

static int proto;
/* Referenced by a filter, a column or -e when their ref_type is set. */
static header_field_info *mailsec_hfinfo;
static header_field_info *expert_hfinfo;

void mailsec_render_init(void)
{
    mailsec_hfinfo = proto_registrar_get_nth(proto);
    expert_hfinfo = proto_expert > 0 ? proto_registrar_get_nth(proto_expert) : NULL;
}

/* Does anybody look at mailsec's items in this tree? The packet details
 * shown, a mailsec field in a filter, column or -e, the expert information
 * (panel, -z expert, _ws.expert filters) or a tap that reads the items.
 * Otherwise only the protocol item is added (protocol hierarchy statistics
 * count it). */
bool mailsec_render_wanted(proto_tree *tree)
{
    if (!tree)
        return mailsec_alerts_listening(); /* no tree: the expert tap still gets its records */
    if (PTREE_DATA(tree)->visible)
        return true;
    if ((mailsec_hfinfo && mailsec_hfinfo->ref_type != HF_REF_TYPE_NONE) ||
        (expert_hfinfo && expert_hfinfo->ref_type != HF_REF_TYPE_NONE))
        return true;
    return mailsec_alerts_listening();
}

/* The facts of one group, as the table orders them: under "STARTTLS" by
 * kind, the first of each kind but evidence (all of it); the logins in the
 * order they happened. */
static void render_group(mailsec_render_ctx *rc, mailsec_group g)
{
    const mailsec_frame *fr = rc->fr;
    if (g == MAILSEC_GROUP_AUTH || g == MAILSEC_GROUP_MAIL) {
        for (const mailsec_fact *f = fr->facts; f; f = f->next) {
            const mailsec_fact_def *d = mailsec_fact_def_of(f->kind);
            if (d->group == g && d->render)
                d->render(rc, f);
        }
        return;
    }
    for (int k = 1; k < MS_FACT_KIND_END; k++) {
        const mailsec_fact_def *d = mailsec_fact_def_of((ms_fact_kind)k);
        if (d->group != g || !d->render)
            continue;
        for (const mailsec_fact *f = fr->facts; f; f = f->next) {
            if (f->kind != (ms_fact_kind)k)
                continue;
            d->render(rc, f);
            if (k != MS_FACT_STARTTLS_INJECTED)
                break;
        }
    }
}

static bool has_group(const mailsec_frame *fr, mailsec_group g)
{
    for (const mailsec_fact *f = fr->facts; f; f = f->next)
        if (mailsec_fact_def_of(f->kind)->group == g)
            return true;
    return false;
}

static void render_starttls(mailsec_render_ctx *rc)
{
    const mailsec_frame *fr = rc->fr;
    if (!fr->boundary && !has_group(fr, MAILSEC_GROUP_STARTTLS))
        return;
    rc->group_tree = proto_tree_add_subtree(rc->tree, rc->tvb, 0, 0, ett_mailsec_starttls, NULL, "STARTTLS");
    render_group(rc, MAILSEC_GROUP_STARTTLS);
    if (fr->boundary) {
        proto_item_set_generated(proto_tree_add_uint(rc->group_tree, hf_mailsec_starttls_boundary, rc->tvb, 0, 0,
                                                     fr->boundary));
        proto_item_set_generated(proto_tree_add_uint64(rc->group_tree, hf_mailsec_starttls_cleartext_bytes, rc->tvb,
                                                       0, 0, fr->cleartext_bytes));
    }
    rc->group_tree = NULL;
}

void mailsec_render(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const mailsec_frame *fr)
{
    proto_item *ti = proto_tree_add_item(tree, proto, tvb, 0, 0, ENC_NA);
    proto_item_append_text(ti, ": %s, %s, %s", ms_proto_name((ms_proto)fr->proto),
                           ms_transport_name((ms_transport)fr->transport),
                           ms_detect_name((ms_detect)fr->detected_by));
    proto_tree *mt = proto_item_add_subtree(ti, ett_mailsec);
    mailsec_layouts_note(pinfo, ti);
    proto_item_set_generated(proto_tree_add_string(mt, hf_mailsec_proto, tvb, 0, 0, ms_proto_name((ms_proto)fr->proto)));
    proto_item_set_generated(proto_tree_add_string(mt, hf_mailsec_detected_by, tvb, 0, 0,
                                                   ms_detect_name((ms_detect)fr->detected_by)));
    proto_item_set_generated(proto_tree_add_string(mt, hf_mailsec_transport, tvb, 0, 0,
                                                   ms_transport_name((ms_transport)fr->transport)));
    proto_item_set_generated(proto_tree_add_boolean(mt, hf_mailsec_decrypted, tvb, 0, 0, fr->decrypted));
    proto_item_set_generated(proto_tree_add_string(mt, hf_mailsec_direction, tvb, 0, 0,
                                                   fr->dir == MS_DIR_C2S ? "to-server" : "to-client"));
    if (fr->auth_user)
        mailsec_add_text(mt, hf_mailsec_session_auth_user, tvb, 0, 0, fr->auth_user, false);
    if (fr->retransmission)
        proto_item_set_generated(proto_tree_add_boolean(mt, hf_mailsec_retransmission, tvb, 0, 0, TRUE));
    mailsec_render_ctx rc = { pinfo, mt, NULL, tvb, fr };
    render_starttls(&rc);
    render_tls(&rc);
    render_group(&rc, MAILSEC_GROUP_AUTH);
    render_group(&rc, MAILSEC_GROUP_MAIL);
    mailsec_alerts_add(pinfo, mt, tvb, fr);
}

void mailsec_render_register(int proto_id)
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
        { &hf_mailsec_starttls_boundary,
          { "Last cleartext frame", "mailsec.starttls.boundary", FT_FRAMENUM, BASE_NONE, NULL, 0x0,
            "The STARTTLS boundary: the last frame before TLS took over", HFILL } },
        { &hf_mailsec_starttls_cleartext_bytes,
          { "Bytes in clear before TLS", "mailsec.starttls.cleartext_bytes", FT_UINT64, BASE_DEC, NULL, 0x0,
            "Payload bytes both sides exchanged in clear before the boundary", HFILL } },
        { &hf_mailsec_tls_version,
          { "TLS version", "mailsec.tls.version", FT_STRING, BASE_NONE, NULL, 0x0,
            "The version the ServerHello negotiated (supported_versions included)", HFILL } },
        { &hf_mailsec_tls_cipher,
          { "TLS cipher suite", "mailsec.tls.cipher", FT_STRING, BASE_NONE, NULL, 0x0,
            "The cipher suite the ServerHello chose", HFILL } },
        { &hf_mailsec_tls_sni,
          { "TLS server name", "mailsec.tls.sni", FT_STRING, BASE_NONE, NULL, 0x0,
            "The server name (SNI) the ClientHello asked for", HFILL } },
        { &hf_mailsec_retransmission,
          { "TCP retransmission", "mailsec.retransmission", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "Every byte of this segment was sent before: analysed once, nothing in it counted again "
            "(a repeated command in new bytes is mailsec.msg.repeated)", HFILL } },
        { &hf_mailsec_session_auth_user,
          { "Logged-in user", "mailsec.session.auth_user", FT_STRING, BASE_NONE, NULL, 0x0,
            "The user of the session's last successful login", HFILL } },
    };
    static gint *ett[] = { &ett_mailsec, &ett_mailsec_starttls, &ett_mailsec_tls };
    proto = proto_id;
    proto_register_field_array(proto_id, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
}

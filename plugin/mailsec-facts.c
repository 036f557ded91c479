/* mailsec-facts.c — one table entry per kind of fact: how the first pass
 * keeps it (copying what the core's payload points to into file scope) and
 * how it is drawn. Adding a kind of fact means: the core that learns it, one
 * row here, a row in mailsec-alerts.c if it raises an alert, and a test.
 */
#include <wireshark.h>

#include <epan/packet.h>
#include <epan/strutil.h>

#include "mailsec.h"

static int hf_mailsec_starttls_offered = -1;
static int hf_mailsec_starttls_command = -1;
static int hf_mailsec_starttls_result = -1;
static int hf_mailsec_starttls_tls_began = -1;
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

static gint ett_mailsec_auth = -1;

int mailsec_hf_password(void)
{
    return hf_mailsec_auth_password;
}

/* ---- keeping: strings from the wire, escaped once ------------------------- */

/* A decoded value, escaped for display; raw (if given) gets the bytes when
 * escaping changed them. */
const char *mailsec_copy_text(const char *p, size_t len, mailsec_raw *raw)
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
    return f->set ? mailsec_copy_text(f->s, f->len, raw) : NULL;
}

static const char *copy_large(const ms_str_large *f)
{
    return f->set ? mailsec_copy_text(f->s, f->len, NULL) : NULL;
}

static const char *mech_label(const ms_creds *c)
{
    /* a mechanism we do not decode is shown by the name the client used */
    return c->mech == MS_MECH_OTHER && c->mech_name.len ? mailsec_copy_text(c->mech_name.s, c->mech_name.len, NULL)
                                                         : ms_mech_name(c->mech);
}

static mailsec_attempt *new_attempt(mailsec_keep_ctx *kc, unsigned number, const ms_creds *c)
{
    mailsec_attempt *a = wmem_new0(wmem_file_scope(), mailsec_attempt);
    a->number = number;
    a->proto = (guint8)ms_session_proto(kc->mc->core);
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
        a->user_from_authzid = c->user_from_authzid;
    }
    kc->mc->last_attempt = a;
    return a;
}

static void keep_injected(mailsec_keep_ctx *kc _U_, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_injected *in = &src->u.injected;
    guint keep = (guint)MIN(in->len, (size_t)MAILSEC_EVIDENCE_MAX);
    dst->u.injected.dir = in->dir;
    dst->u.injected.bytes = keep ? (guint8 *)wmem_memdup(wmem_file_scope(), in->bytes, keep) : NULL;
    dst->u.injected.len = keep;
    dst->u.injected.orig_len = (guint)MIN(in->len, (size_t)G_MAXUINT);
    dst->u.injected.own_segment = in->own_segment;
}

static void keep_auth_start(mailsec_keep_ctx *kc _U_, mailsec_fact *dst, const ms_fact *src)
{
    dst->u.auth_start.attempt = src->u.auth_start.attempt;
    /* keep the mechanism's name for the label */
    dst->u.auth_start.mechanism =
        src->u.auth_start.creds ? wmem_strdup(wmem_file_scope(), mech_label(src->u.auth_start.creds)) : NULL;
}

static void keep_auth_request(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_auth_request *r = &src->u.auth_request;
    mailsec_attempt *a = new_attempt(kc, r->attempt, r->creds);
    a->exposed = r->cleartext;
    a->request_frame = kc->pinfo->num;
    dst->u.attempt = a;
}

static void keep_auth_result(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_auth_result *r = &src->u.auth_result;
    mailsec_attempt *a = kc->mc->last_attempt;
    if (!a || a->number != r->attempt)
        a = new_attempt(kc, r->attempt, r->creds);
    a->result = (guint8)r->result;
    a->result_frame = kc->pinfo->num;
    dst->u.auth_result.attempt = a;
    dst->u.auth_result.result = r->result;
    dst->u.auth_result.session_failures = r->session_failures;
    dst->u.auth_result.client_failures = r->client_failures;
}

/* ---- drawing -------------------------------------------------------------- */

#define MAILSEC_HIDDEN "********"

void mailsec_add_text(proto_tree *t, int hf, tvbuff_t *tvb, gint start, gint length, const char *v, bool secret)
{
    if (!v)
        return;
    /* v was escaped when it was kept (mailsec_copy_text) */
    const char *shown = secret && mailsec_prefs.hide_secrets ? MAILSEC_HIDDEN : v;
    proto_item_set_generated(proto_tree_add_string(t, hf, tvb, start, length, shown));
}

static void add_raw(proto_tree *t, int hf, tvbuff_t *tvb, gint start, gint length, const mailsec_raw *raw,
                    bool secret)
{
    if (!raw->data || (secret && mailsec_prefs.hide_secrets))
        return;
    proto_item_set_generated(proto_tree_add_bytes_with_length(t, hf, tvb, start, length, raw->data, raw->len));
}

/* The bytes of this frame that told a fact, or nothing (offset 0, length 0). */
#define AT(f) ((f)->start >= 0 ? (f)->start : 0), ((f)->start >= 0 ? (f)->length : 0)

static proto_tree *starttls_tree(mailsec_render_ctx *rc);

static void render_offered(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item_set_generated(proto_tree_add_boolean(starttls_tree(rc), hf_mailsec_starttls_offered, rc->tvb, AT(f), TRUE));
}

static void render_command(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item_set_generated(proto_tree_add_boolean(starttls_tree(rc), hf_mailsec_starttls_command, rc->tvb, AT(f), TRUE));
}

static void render_result(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item_set_generated(proto_tree_add_string(starttls_tree(rc), hf_mailsec_starttls_result, rc->tvb, AT(f),
                             ms_starttls_result_name(f->core.starttls_result.result)));
}

static void render_tls_began(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item_set_generated(proto_tree_add_boolean(starttls_tree(rc), hf_mailsec_starttls_tls_began, rc->tvb, AT(f),
                                                    f->kind == MS_FACT_STARTTLS_CONFIRMED));
}

static void render_injected(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item *ti = proto_tree_add_bytes_with_length(starttls_tree(rc), hf_mailsec_starttls_injected, rc->tvb, AT(f),
                                                      f->u.injected.bytes, f->u.injected.len);
    proto_item_append_text(ti, " (%u byte%s %s)", f->u.injected.orig_len, plurality(f->u.injected.orig_len, "", "s"),
                           f->u.injected.dir == MS_DIR_C2S ? "from the client" : "from the server");
    proto_item_set_generated(ti);
}

static void render_auth_start(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item *si = proto_tree_add_uint(rc->tree, hf_mailsec_auth_started, rc->tvb, AT(f), f->u.auth_start.attempt);
    proto_item_set_generated(si);
    if (f->u.auth_start.mechanism)
        proto_item_append_text(si, " (%s)", f->u.auth_start.mechanism);
}

static void render_auth_request(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const mailsec_attempt *a = f->u.attempt;
    tvbuff_t *tvb = rc->tvb;
    gint s = f->start >= 0 ? f->start : 0, l = f->start >= 0 ? f->length : 0;
    proto_tree *at = proto_tree_add_subtree_format(rc->tree, tvb, s, l, ett_mailsec_auth, NULL,
        "Login attempt %u: %s%s%s%s", a->number, a->mechanism, a->username ? " " : "",
        a->username ? a->username : "", a->exposed ? " (in clear)" : "");
    proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_attempt, tvb, s, l, a->number));
    mailsec_add_text(at, hf_mailsec_auth_mechanism, tvb, s, l, a->mechanism, false);
    mailsec_add_text(at, hf_mailsec_auth_username, tvb, s, l, a->username, false);
    mailsec_add_text(at, hf_mailsec_auth_authzid, tvb, s, l, a->authzid, false);
    add_raw(at, hf_mailsec_auth_username_raw, tvb, s, l, &a->username_raw, false);
    mailsec_add_text(at, hf_mailsec_auth_password, tvb, s, l, a->password, true);
    add_raw(at, hf_mailsec_auth_password_raw, tvb, s, l, &a->password_raw, true);
    mailsec_add_text(at, hf_mailsec_auth_token, tvb, s, l, a->token, true);
    mailsec_add_text(at, hf_mailsec_auth_hash, tvb, s, l, a->hash, false);
    mailsec_add_text(at, hf_mailsec_auth_realm, tvb, s, l, a->realm, false);
    mailsec_add_text(at, hf_mailsec_auth_workstation, tvb, s, l, a->workstation, false);
    mailsec_add_text(at, hf_mailsec_auth_material, tvb, s, l, a->material, false);
    proto_item_set_generated(proto_tree_add_boolean(at, hf_mailsec_auth_exposed, tvb, s, l, a->exposed));
    /* Like Wireshark's own response_in links, the forward link exists only
     * once the verdict has been seen (later passes, the GUI). */
    if (a->result_frame && PINFO_FD_VISITED(rc->pinfo))
        proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_result_in, tvb, 0, 0, a->result_frame));
}

static void render_auth_result(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const mailsec_attempt *a = f->u.auth_result.attempt;
    tvbuff_t *tvb = rc->tvb;
    gint s = f->start >= 0 ? f->start : 0, l = f->start >= 0 ? f->length : 0;
    const char *r = ms_auth_result_name(f->u.auth_result.result);
    proto_tree *at = proto_tree_add_subtree_format(rc->tree, tvb, s, l, ett_mailsec_auth, NULL,
        "Login result: %s (attempt %u, %s%s%s)", r, a->number, a->mechanism,
        a->username ? " " : "", a->username ? a->username : "");
    proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_attempt, tvb, s, l, a->number));
    mailsec_add_text(at, hf_mailsec_auth_mechanism, tvb, s, l, a->mechanism, false);
    mailsec_add_text(at, hf_mailsec_auth_username, tvb, s, l, a->username, false);
    mailsec_add_text(at, hf_mailsec_auth_result, tvb, s, l, r, false);
    if (a->request_frame)
        proto_item_set_generated(proto_tree_add_uint(at, hf_mailsec_auth_request_in, tvb, 0, 0, a->request_frame));
}

/* ---- the table ------------------------------------------------------------ */

static const mailsec_fact_def fact_defs[MS_FACT_KIND_END] = {
    [MS_FACT_PROTO] = { "proto", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_STARTTLS_OFFERED] = { "starttls-offered", MAILSEC_GROUP_STARTTLS, NULL, render_offered },
    [MS_FACT_STARTTLS_COMMAND] = { "starttls-command", MAILSEC_GROUP_STARTTLS, NULL, render_command },
    [MS_FACT_STARTTLS_RESULT] = { "starttls-result", MAILSEC_GROUP_STARTTLS, NULL, render_result },
    [MS_FACT_TLS_BEGIN] = { "tls-begin", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_STARTTLS_INJECTED] = { "starttls-injected", MAILSEC_GROUP_STARTTLS, keep_injected, render_injected },
    [MS_FACT_LINE_TOO_LONG] = { "line-too-long", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_AUTH_START] = { "auth-start", MAILSEC_GROUP_AUTH, keep_auth_start, render_auth_start },
    [MS_FACT_AUTH_REQUEST] = { "auth-request", MAILSEC_GROUP_AUTH, keep_auth_request, render_auth_request },
    [MS_FACT_AUTH_RESULT] = { "auth-result", MAILSEC_GROUP_AUTH, keep_auth_result, render_auth_result },
    [MS_FACT_AUTH_MALFORMED] = { "auth-malformed", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_STREAM_GAP] = { "stream-gap", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_REPLY] = { "reply", MAILSEC_GROUP_MAIL, NULL, mailsec_render_reply },
    [MS_FACT_PROBE] = { "probe", MAILSEC_GROUP_MAIL, mailsec_keep_text, mailsec_render_probe },
    [MS_FACT_HELO] = { "helo", MAILSEC_GROUP_MAIL, mailsec_keep_text, mailsec_render_helo },
    [MS_FACT_ENVELOPE] = { "envelope", MAILSEC_GROUP_MAIL, mailsec_keep_envelope, mailsec_render_envelope },
    [MS_FACT_NO_ENVELOPE] = { "no-envelope", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_BDAT_MISMATCH] = { "bdat-mismatch", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_SMUGGLING] = { "smuggling", MAILSEC_GROUP_MAIL, mailsec_keep_smuggling, mailsec_render_smuggling },
    [MS_FACT_MSG_HEADER] = { "msg-header", MAILSEC_GROUP_MAIL, mailsec_keep_header, mailsec_render_header },
    [MS_FACT_MSG_ATTACHMENT] = { "msg-attachment", MAILSEC_GROUP_MAIL, mailsec_keep_attachment,
                                 mailsec_render_attachment },
    [MS_FACT_MSG_URL] = { "msg-url", MAILSEC_GROUP_MAIL, mailsec_keep_text, mailsec_render_url },
    [MS_FACT_MSG_LIMIT] = { "msg-limit", MAILSEC_GROUP_MAIL, mailsec_keep_text, mailsec_render_msg_limit },
    [MS_FACT_MSG_END] = { "msg-end", MAILSEC_GROUP_MAIL, mailsec_keep_msg_end, mailsec_render_msg_end },
    [MS_FACT_DELETED] = { "deleted", MAILSEC_GROUP_MAIL, NULL, mailsec_render_deleted },
    [MS_FACT_SMUGGLED_ANSWERED] = { "smuggled-answered", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_TLS_POSTURE] = { "tls-posture", MAILSEC_GROUP_NONE, mailsec_keep_tls_posture, NULL },
    [MS_FACT_STARTTLS_STRIPPED] = { "starttls-stripped", MAILSEC_GROUP_STARTTLS, NULL, render_tls_began },
    [MS_FACT_STARTTLS_UNUSED] = { "starttls-unused", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_IMAP_PREAUTH] = { "imap-preauth", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_IMAP_ALERT] = { "imap-alert", MAILSEC_GROUP_NONE, mailsec_keep_text, NULL },
    [MS_FACT_LOGIN_BEFORE_TLS] = { "login-before-tls", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_STARTTLS_BUFFERED] = { "starttls-buffered", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_CAPABILITY_STRIPPED] = { "capability-stripped", MAILSEC_GROUP_NONE, NULL, NULL },
    [MS_FACT_STARTTLS_CONFIRMED] = { "starttls-confirmed", MAILSEC_GROUP_STARTTLS, NULL, render_tls_began },
    [MS_FACT_RECORD_LIMIT] = { "record-limit", MAILSEC_GROUP_MAIL, NULL, mailsec_render_record_limit },
    [MS_FACT_OVERLAP_CONFLICT] = { "overlap-conflict", MAILSEC_GROUP_MAIL, NULL, mailsec_render_conflict },
};

const mailsec_fact_def *mailsec_fact_def_of(ms_fact_kind kind)
{
    static const mailsec_fact_def none = { "unknown", MAILSEC_GROUP_NONE, NULL, NULL };
    return (unsigned)kind < MS_FACT_KIND_END && fact_defs[kind].name ? &fact_defs[kind] : &none;
}

/* How much of the payload union each kind uses: a reply fact (a third of
 * the frames) need not carry the size of the largest payload. */
static size_t payload_size(ms_fact_kind kind)
{
    static const size_t sizes[MS_FACT_KIND_END] = {
        [MS_FACT_PROTO] = sizeof(ms_fact_proto),
        [MS_FACT_STARTTLS_RESULT] = sizeof(ms_fact_starttls_result),
        [MS_FACT_TLS_BEGIN] = sizeof(ms_fact_tls_begin),
        [MS_FACT_STARTTLS_INJECTED] = sizeof(ms_fact_injected),
        [MS_FACT_LINE_TOO_LONG] = sizeof(ms_fact_line_too_long),
        [MS_FACT_AUTH_START] = sizeof(ms_fact_auth_start),
        [MS_FACT_AUTH_REQUEST] = sizeof(ms_fact_auth_request),
        [MS_FACT_AUTH_RESULT] = sizeof(ms_fact_auth_result),
        [MS_FACT_AUTH_MALFORMED] = sizeof(ms_fact_auth_malformed),
        [MS_FACT_STREAM_GAP] = sizeof(ms_fact_stream_gap),
        [MS_FACT_REPLY] = sizeof(ms_fact_reply),
        [MS_FACT_PROBE] = sizeof(ms_fact_probe),
        [MS_FACT_HELO] = sizeof(ms_fact_text),
        [MS_FACT_ENVELOPE] = sizeof(ms_fact_envelope),
        [MS_FACT_NO_ENVELOPE] = sizeof(ms_fact_no_envelope),
        [MS_FACT_BDAT_MISMATCH] = sizeof(ms_fact_bdat_mismatch),
        [MS_FACT_SMUGGLING] = sizeof(ms_fact_smuggling),
        [MS_FACT_MSG_HEADER] = sizeof(ms_fact_msg_header),
        [MS_FACT_MSG_ATTACHMENT] = sizeof(ms_fact_msg_attachment),
        [MS_FACT_MSG_URL] = sizeof(ms_fact_msg_url),
        [MS_FACT_MSG_LIMIT] = sizeof(ms_fact_msg_limit),
        [MS_FACT_MSG_END] = sizeof(ms_fact_msg_end),
        [MS_FACT_DELETED] = sizeof(ms_fact_deleted),
        [MS_FACT_SMUGGLED_ANSWERED] = sizeof(ms_fact_smuggled_answered),
        [MS_FACT_TLS_POSTURE] = sizeof(ms_fact_tls_posture),
        [MS_FACT_STARTTLS_STRIPPED] = sizeof(ms_fact_stripped),
        [MS_FACT_STARTTLS_UNUSED] = sizeof(ms_fact_unused),
        [MS_FACT_IMAP_ALERT] = sizeof(ms_fact_text),
        [MS_FACT_LOGIN_BEFORE_TLS] = sizeof(ms_fact_count),
        [MS_FACT_STARTTLS_BUFFERED] = sizeof(ms_fact_buffered),
        [MS_FACT_CAPABILITY_STRIPPED] = sizeof(ms_fact_cap_stripped),
        [MS_FACT_RECORD_LIMIT] = sizeof(ms_fact_record_limit),
        [MS_FACT_OVERLAP_CONFLICT] = sizeof(ms_fact_conflict),
    };
    return (unsigned)kind < MS_FACT_KIND_END ? sizes[kind] : 0;
}

mailsec_fact *mailsec_fact_keep(mailsec_keep_ctx *kc, const ms_fact *f)
{
    size_t psize = payload_size(f->kind);
    mailsec_fact *mf = (mailsec_fact *)wmem_alloc0(wmem_file_scope(), offsetof(mailsec_fact, core) + psize);
    mf->kind = f->kind;
    mf->start = -1;
    /* the fact's bytes, when they lie whole in this frame */
    if (f->span.valid) {
        for (guint i = 0; i < kc->nspans; i++) {
            const mailsec_frame_span *sp = &kc->spans[i];
            if (sp->dir == f->span.dir && f->span.at >= sp->at && f->span.len > 0 &&
                f->span.at + f->span.len <= sp->at + sp->len) {
                mf->start = sp->tvb_offset + (gint)(f->span.at - sp->at);
                mf->length = (gint)f->span.len;
                break;
            }
        }
    }
    memcpy(&mf->core, &f->u, psize);
    const mailsec_fact_def *d = mailsec_fact_def_of(f->kind);
    if (d->keep)
        d->keep(kc, mf, f);
    return mf;
}

static proto_tree *starttls_tree(mailsec_render_ctx *rc)
{
    return rc->group_tree;
}

void mailsec_facts_register(int proto)
{
    static hf_register_info hf[] = {
        { &hf_mailsec_starttls_offered,
          { "STARTTLS offered", "mailsec.starttls.offered", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "The capability reply advertised STARTTLS (SMTP, IMAP) or STLS (POP3)", HFILL } },
        { &hf_mailsec_starttls_command,
          { "STARTTLS requested", "mailsec.starttls.command", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "The client asked for STARTTLS/STLS", HFILL } },
        { &hf_mailsec_starttls_result,
          { "STARTTLS result", "mailsec.starttls.result", FT_STRING, BASE_NONE, NULL, 0x0,
            "accepted, refused or no-reply", HFILL } },
        { &hf_mailsec_starttls_tls_began,
          { "TLS began", "mailsec.starttls.tls_began", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "After an accepted STARTTLS: true on the first TLS record, false where the session went on "
            "without TLS (stripped, or another protocol)", HFILL } },
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
        { &hf_mailsec_starttls_injected,
          { "Plaintext after STARTTLS", "mailsec.starttls.injected", FT_BYTES, BASE_NONE, NULL, 0x0,
            "Bytes that followed the STARTTLS command or its OK in the same segment", HFILL } },
    };
    static gint *ett[] = { &ett_mailsec_auth };
    proto_register_field_array(proto, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
}

/* mailsec-mail.c — how replies, probes, the envelope and messages are kept
 * and drawn: the fact table's rows for them (mailsec-facts.c) point here.
 *
 * What a reply code means (RFC 5321 4.2.1, RFC 3463 and its IANA registry)
 * is decided here, at drawing time, from the numbers the core parsed.
 */
#include <wireshark.h>

#include <epan/packet.h>
#include <epan/strutil.h>

#include "mailsec.h"

static int hf_reply = -1;
static int hf_reply_code = -1;
static int hf_reply_status = -1;
static int hf_reply_class = -1;
static int hf_reply_category = -1;
static int hf_reply_enhanced = -1;
static int hf_reply_failed = -1;
static int hf_reply_command = -1;
static int hf_reply_request_in = -1;
static int hf_reply_time = -1;
static int hf_enum_command = -1;
static int hf_enum_target = -1;
static int hf_enum_verdict = -1;
static int hf_enum_code = -1;
static int hf_enum_count = -1;
static int hf_enum_client_count = -1;
static int hf_enum_request_in = -1;
static int hf_helo = -1;
static int hf_mail_from = -1;
static int hf_rcpt_to = -1;
static int hf_rcpt_count = -1;
static int hf_client_rcpts = -1;
static int hf_transaction = -1;
static int hf_envelope_repeated = -1;
static int hf_msg_number = -1;
static int hf_msg_count = -1;
static int hf_msg_source = -1;
static int hf_msg_size = -1;
static int hf_msg_sha256 = -1;
static int hf_msg_truncated = -1;
static int hf_msg_header[MS_HDR_KIND_END];
static int hf_msg_header_cut = -1;
static int hf_attachment = -1;
static int hf_attachment_type = -1;
static int hf_attachment_size = -1;
static int hf_attachment_sha256 = -1;
static int hf_attachment_truncated = -1;
static int hf_url = -1;
static int hf_msg_limit = -1;
static int hf_record_limit = -1;
static int hf_conflict = -1;
static int hf_deleted = -1;
static int hf_deleted_now = -1;
static int hf_expunged = -1;
static int hf_smuggling_sequence = -1;
static int hf_smuggling_offset = -1;
static int hf_smuggling_line = -1;
static int hf_smuggling_command = -1;

static gint ett_reply = -1;
static gint ett_probe = -1;
static gint ett_msg = -1;
static gint ett_attachment = -1;
static gint ett_smuggling = -1;

#define AT(f) ((f)->start >= 0 ? (f)->start : 0), ((f)->start >= 0 ? (f)->length : 0)

static void gen(proto_item *ti)
{
    proto_item_set_generated(ti);
}

/* ---- meanings ---------------------------------------------------------------- */

static const char *smtp_class(unsigned code)
{
    switch (code / 100) {
    case 1: return "Positive Preliminary";
    case 2: return "Positive Completion";
    case 3: return "Positive Intermediate";
    case 4: return "Transient Negative Completion";
    case 5: return "Permanent Negative Completion";
    default: return "Unknown";
    }
}

static const char *smtp_category(unsigned code)
{
    switch ((code / 10) % 10) {
    case 0: return "Syntax";
    case 1: return "Information";
    case 2: return "Connections";
    case 5: return "Mail system";
    default: return "Unspecified";
    }
}

static const char *const enhanced_subjects[] = {
    "Other or undefined status", "Addressing status", "Mailbox status", "Mail system status",
    "Network and routing status", "Mail delivery protocol status", "Message content or media status",
    "Security or policy status",
};

typedef struct {
    guint8 subject;
    guint8 detail;
    const char *meaning;
} enhanced_detail;

/* RFC 3463 and the IANA "Enumerated Status Codes" registry. */
static const enhanced_detail enhanced_details[] = {
    { 1, 1, "Bad destination mailbox address" }, { 1, 2, "Bad destination system address" },
    { 1, 3, "Bad destination mailbox address syntax" }, { 1, 4, "Destination mailbox address ambiguous" },
    { 1, 5, "Destination address valid" }, { 1, 6, "Destination mailbox has moved" },
    { 1, 7, "Bad sender's mailbox address syntax" }, { 1, 8, "Bad sender's system address" },
    { 1, 10, "Recipient address has null MX" },
    { 2, 1, "Mailbox disabled" }, { 2, 2, "Mailbox full" },
    { 2, 3, "Message length exceeds administrative limit" }, { 2, 4, "Mailing list expansion problem" },
    { 3, 1, "Mail system full" }, { 3, 2, "System not accepting network messages" },
    { 3, 3, "System not capable of selected features" }, { 3, 4, "Message too big for system" },
    { 3, 5, "System incorrectly configured" },
    { 4, 1, "No answer from host" }, { 4, 2, "Bad connection" }, { 4, 3, "Directory server failure" },
    { 4, 4, "Unable to route" }, { 4, 5, "Mail system congestion" }, { 4, 6, "Routing loop detected" },
    { 4, 7, "Delivery time expired" },
    { 5, 1, "Invalid command" }, { 5, 2, "Syntax error" }, { 5, 3, "Too many recipients" },
    { 5, 4, "Invalid command arguments" }, { 5, 5, "Wrong protocol version" },
    { 5, 6, "Authentication exchange line is too long" },
    { 6, 1, "Media not supported" }, { 6, 2, "Conversion required and prohibited" },
    { 6, 3, "Conversion required but not supported" }, { 6, 4, "Conversion with loss performed" },
    { 6, 5, "Conversion failed" }, { 6, 6, "Message content not available" },
    { 6, 7, "Non-ASCII addresses not permitted for that sender/recipient" },
    { 7, 1, "Delivery not authorized, message refused" }, { 7, 2, "Mailing list expansion prohibited" },
    { 7, 3, "Security conversion required but not possible" }, { 7, 4, "Security features not supported" },
    { 7, 5, "Cryptographic failure" }, { 7, 6, "Cryptographic algorithm not supported" },
    { 7, 7, "Message integrity failure" }, { 7, 8, "Authentication credentials invalid" },
    { 7, 9, "Authentication mechanism is too weak" }, { 7, 10, "Encryption needed" },
    { 7, 11, "Encryption required for requested authentication mechanism" },
    { 7, 12, "A password transition is needed" }, { 7, 13, "User account disabled" },
    { 7, 14, "Trust relationship required" }, { 7, 15, "Priority level is too low" },
    { 7, 16, "Message is too big for the specified priority" }, { 7, 17, "Mailbox owner has changed" },
    { 7, 18, "Domain owner has changed" }, { 7, 19, "RRVS test cannot be completed" },
    { 7, 20, "No passing DKIM signature found" }, { 7, 21, "No acceptable DKIM signature found" },
    { 7, 22, "No valid author-matched DKIM signature found" }, { 7, 23, "SPF validation failed" },
    { 7, 24, "SPF validation error" }, { 7, 25, "Reverse DNS validation failed" },
    { 7, 26, "Multiple authentication checks failed" }, { 7, 27, "Sender address has null MX" },
};

/* "5.7.8" -> "Security or policy status: Authentication credentials invalid" */
static const char *enhanced_meaning(wmem_allocator_t *pool, const char *code)
{
    unsigned cls, subject, detail;
    if (sscanf(code, "%u.%u.%u", &cls, &subject, &detail) != 3)
        return NULL;
    const char *subj = subject < array_length(enhanced_subjects) ? enhanced_subjects[subject] : "Unknown status";
    for (size_t i = 0; i < array_length(enhanced_details); i++)
        if (enhanced_details[i].subject == subject && enhanced_details[i].detail == detail)
            return wmem_strdup_printf(pool, "%s: %s", subj, enhanced_details[i].meaning);
    return subj;
}

static const char *status_word(ms_reply_status st, bool pop3)
{
    switch (st) {
    case MS_REPLY_OK: return pop3 ? "+OK" : "OK";
    case MS_REPLY_ERR: return "-ERR";
    case MS_REPLY_NO: return "NO";
    case MS_REPLY_BAD: return "BAD";
    default: return "";
    }
}

const char *mailsec_probe_verdict_name(ms_probe_verdict v)
{
    switch (v) {
    case MS_PROBE_EXISTS: return "exists";
    case MS_PROBE_CANNOT_VERIFY: return "cannot-verify";
    case MS_PROBE_UNKNOWN: return "unknown";
    case MS_PROBE_DISABLED: return "disabled";
    case MS_PROBE_REFUSED: return "refused";
    case MS_PROBE_NO_REPLY: return "no-reply";
    default: return "pending";
    }
}

const char *mailsec_probe_command_name(ms_probe_cmd c)
{
    return c == MS_PROBE_VRFY ? "VRFY" : c == MS_PROBE_EXPN ? "EXPN" : "RCPT";
}

const char *mailsec_record_kind_name(ms_fact_kind what)
{
    switch (what) {
    case MS_FACT_AUTH_START: return "logins";
    case MS_FACT_PROBE: return "probes";
    case MS_FACT_LINE_TOO_LONG: return "overlong lines";
    case MS_FACT_STREAM_GAP: return "gaps";
    case MS_FACT_REPLY: return "replies";
    case MS_FACT_HELO: return "HELO names";
    case MS_FACT_ENVELOPE: return "envelope addresses";
    case MS_FACT_NO_ENVELOPE: return "messages without envelope";
    case MS_FACT_BDAT_MISMATCH: return "BDAT size mismatches";
    case MS_FACT_MSG_HEADER: return "headers";
    case MS_FACT_MSG_URL: return "URLs";
    case MS_FACT_IMAP_ALERT: return "IMAP alerts";
    case MS_FACT_DELETED: return "deletions";
    case MS_FACT_OVERLAP_CONFLICT: return "conflicting overlaps";
    default: return "records";
    }
}

const char *mailsec_body_source_name(unsigned source)
{
    switch (source) {
    case MS_BODY_SMTP_DATA: return "SMTP DATA";
    case MS_BODY_SMTP_BDAT: return "SMTP BDAT";
    case MS_BODY_POP3_RETR: return "POP3 RETR";
    case MS_BODY_POP3_TOP: return "POP3 TOP";
    case MS_BODY_IMAP_FETCH: return "IMAP FETCH";
    case MS_BODY_IMAP_APPEND: return "IMAP APPEND";
    default: return "unknown";
    }
}

static const char *const header_names[MS_HDR_KIND_END] = {
    [MS_HDR_FROM] = "From", [MS_HDR_TO] = "To", [MS_HDR_CC] = "Cc", [MS_HDR_SUBJECT] = "Subject",
    [MS_HDR_DATE] = "Date", [MS_HDR_MESSAGE_ID] = "Message-ID", [MS_HDR_REPLY_TO] = "Reply-To",
    [MS_HDR_USER_AGENT] = "User-Agent", [MS_HDR_ORIGINATING_IP] = "X-Originating-IP",
    [MS_HDR_RECEIVED] = "Received",
};

/* ---- addresses and names --------------------------------------------------- */

/* The address of a header like "Name" <a@b>, or a@b (Name). */
static const char *header_address(const char *v)
{
    const char *lt = strrchr(v, '<');
    if (lt) {
        const char *gt = strchr(lt, '>');
        return wmem_strndup(wmem_file_scope(), lt + 1, gt ? (size_t)(gt - lt - 1) : strlen(lt + 1));
    }
    const char *at = strchr(v, '@');
    if (!at)
        return NULL;
    const char *b = at, *e = at;
    while (b > v && !g_ascii_isspace(b[-1]) && b[-1] != ',' && b[-1] != '"')
        b--;
    while (*e && !g_ascii_isspace(*e) && *e != ',' && *e != '(')
        e++;
    return wmem_strndup(wmem_file_scope(), b, (size_t)(e - b));
}

const char *mailsec_org_domain(wmem_allocator_t *pool, const char *addr)
{
    if (!addr)
        return NULL;
    const char *at = strrchr(addr, '@');
    if (!at || !at[1])
        return NULL;
    char *d = wmem_ascii_strdown(pool, at + 1, -1);
    size_t n = strlen(d);
    while (n > 0 && (d[n - 1] == '.' || d[n - 1] == '>' || d[n - 1] == ' '))
        d[--n] = '\0';
    /* the last two labels; three when a short second-level label sits under
     * a country code (co.uk, com.au) */
    const char *last = strrchr(d, '.');
    if (!last)
        return d;
    const char *cut = d, *p = last;
    int want = 2;
    if (strlen(last + 1) == 2) {
        const char *second = last;
        while (second > d && second[-1] != '.')
            second--;
        if ((size_t)(last - second) <= 3)
            want = 3;
    }
    for (int labels = 1; p > d; p--) {
        if (p[-1] == '.' && ++labels >= want) {
            cut = p;
            break;
        }
    }
    return cut;
}

bool mailsec_dangerous_name(const char *name, const char **why)
{
    if (!name)
        return false;
    /* U+202E RIGHT-TO-LEFT OVERRIDE hides the real extension */
    if (strstr(name, "\xe2\x80\xae")) {
        *why = "right-to-left override in the name";
        return true;
    }
    const char *dot = strrchr(name, '.');
    if (!dot || !dot[1])
        return false;
    char *ext = g_ascii_strdown(dot + 1, -1);
    g_strstrip(ext);
    bool bad = false;
    gchar **list = g_strsplit_set(mailsec_prefs.dangerous_extensions ? mailsec_prefs.dangerous_extensions : "",
                                  ", ;", -1);
    for (gchar **e = list; *e; e++) {
        if (**e && g_ascii_strcasecmp(*e, ext) == 0) {
            bad = true;
            break;
        }
    }
    g_strfreev(list);
    if (bad) {
        /* a second extension before it: invoice.pdf.exe */
        const char *prev = dot;
        while (prev > name && prev[-1] == ' ')
            prev--;
        const char *dot2 = NULL;
        for (const char *p = prev - 1; p >= name && p > prev - 6; p--)
            if (*p == '.') {
                dot2 = p;
                break;
            }
        *why = dot2 ? "double extension" : "executable or macro type";
    }
    g_free(ext);
    return bad;
}

/* ---- keeping ----------------------------------------------------------------- */

static const char *copy(const char *p, size_t n)
{
    return p ? mailsec_copy_text(p, n, NULL) : NULL;
}

void mailsec_keep_reply(mailsec_keep_ctx *kc _U_, mailsec_fact *dst _U_, const ms_fact *src _U_)
{
    /* the payload is all in place */
}

void mailsec_keep_text(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src)
{
    switch (src->kind) {
    case MS_FACT_PROBE:
        dst->u.mail.text = copy(src->u.probe.target, src->u.probe.target_len);
        break;
    case MS_FACT_HELO:
    case MS_FACT_IMAP_ALERT:
        dst->u.mail.text = copy(src->u.text.s, src->u.text.len);
        break;
    case MS_FACT_MSG_URL:
        dst->u.mail.text = copy(src->u.msg_url.url, src->u.msg_url.len);
        break;
    case MS_FACT_MSG_LIMIT:
        dst->u.mail.text = src->u.msg_limit.what ? wmem_strdup(wmem_file_scope(), src->u.msg_limit.what) : NULL;
        break;
    default:
        break;
    }
    (void)kc;
}

void mailsec_keep_envelope(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_envelope *e = &src->u.envelope;
    mailsec_conv *mc = kc->mc;
    const char *addr = copy(e->addr, e->addr_len);
    dst->u.mail.text = addr;
    if (!mc->envelope || mc->envelope->transaction != e->transaction) {
        mc->envelope = wmem_new0(wmem_file_scope(), mailsec_envelope);
        mc->envelope->transaction = e->transaction;
    }
    if (e->kind == MS_ENVELOPE_MAIL && !mc->envelope->mail_from)
        mc->envelope->mail_from = addr; /* a nested MAIL is refused: the first stands */
    if (e->kind == MS_ENVELOPE_RCPT) {
        mailsec_envelope *env = mc->envelope;
        env->rcpts++;
        if (!e->repeated && env->nrcpt < MAILSEC_RCPT_KEEP)
            env->rcpt[env->nrcpt++] = addr;
    }
    dst->u.mail.env = mc->envelope;
}

static mailsec_msginfo *msginfo_of(mailsec_conv *mc, ms_dir dir, guint number)
{
    mailsec_msginfo **mi = &mc->msginfo[dir & 1];
    if (!*mi || (*mi)->number != number) {
        *mi = wmem_new0(wmem_file_scope(), mailsec_msginfo);
        (*mi)->number = number;
    }
    return *mi;
}

void mailsec_keep_header(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_msg_header *h = &src->u.msg_header;
    const char *v = copy(h->value, h->len);
    dst->u.mail.text = v;
    if (!v)
        return;
    if (h->header == MS_HDR_FROM || h->header == MS_HDR_REPLY_TO) {
        mailsec_msginfo *mi = msginfo_of(kc->mc, h->dir, h->message);
        const char *a = header_address(v);
        if (h->header == MS_HDR_FROM && !mi->from)
            mi->from = a;
        else if (h->header == MS_HDR_REPLY_TO && !mi->reply_to)
            mi->reply_to = a;
    }
}

static const char *hex_of(const guint8 *sha)
{
    char *hex = (char *)wmem_alloc(wmem_file_scope(), 65);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    return hex;
}

void mailsec_keep_attachment(mailsec_keep_ctx *kc _U_, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_msg_attachment *a = &src->u.msg_attachment;
    dst->u.mail.text = copy(a->filename, a->filename_len);
    dst->u.mail.text2 = copy(a->content_type, a->content_type_len);
    dst->u.mail.hex = hex_of(a->sha256);
}

void mailsec_keep_msg_end(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_msg_end *e = &src->u.msg_end;
    mailsec_conv *mc = kc->mc;
    dst->u.mail.hex = hex_of(e->sha256);
    if (e->source == MS_BODY_SMTP_DATA || e->source == MS_BODY_SMTP_BDAT)
        dst->u.mail.env = mc->envelope;
    mailsec_msginfo *mi = mc->msginfo[e->dir & 1];
    if (mi && mi->number == e->message)
        dst->u.mail.info = mi;
}

const char *mailsec_tls_version_name(guint16 v)
{
    switch (v) {
    case 0x0300: return "SSL 3.0";
    case 0x0301: return "TLS 1.0";
    case 0x0302: return "TLS 1.1";
    case 0x0303: return "TLS 1.2";
    case 0x0304: return "TLS 1.3";
    default: return NULL;
    }
}

void mailsec_keep_tls_posture(mailsec_keep_ctx *kc, mailsec_fact *dst _U_, const ms_fact *src)
{
    const ms_fact_tls_posture *t = &src->u.tls_posture;
    mailsec_tls *tls = wmem_new0(wmem_file_scope(), mailsec_tls);
    tls->version = t->version;
    tls->cipher = t->cipher;
    tls->client_hello = t->client_hello;
    tls->sni = t->has_sni ? copy(t->sni, t->sni_len) : NULL;
    kc->mc->tls = tls;
}

void mailsec_keep_smuggling(mailsec_keep_ctx *kc _U_, mailsec_fact *dst, const ms_fact *src)
{
    const ms_fact_smuggling *z = &src->u.smuggling;
    dst->u.mail.bytes = (const guint8 *)wmem_memdup(wmem_file_scope(), z->seq, z->seq_len);
    dst->u.mail.len = (guint)z->seq_len;
    dst->u.mail.text2 = copy(z->line, z->line_len);
}

/* ---- drawing ------------------------------------------------------------------ */

static bool is_pop3(const mailsec_render_ctx *rc)
{
    return rc->fr->proto == MS_PROTO_POP3;
}

void mailsec_render_reply(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_reply *r = &f->core.reply;
    tvbuff_t *tvb = rc->tvb;
    bool smtp = r->status == MS_REPLY_SMTP;
    bool failed = smtp ? r->code >= 400 : r->status != MS_REPLY_OK;
    const char *word = smtp ? NULL : status_word(r->status, is_pop3(rc));
    proto_item *ti;
    if (smtp)
        ti = proto_tree_add_uint_format_value(rc->tree, hf_reply, tvb, AT(f), r->code, "%u (%s)", r->code,
                                              smtp_class(r->code));
    else
        ti = proto_tree_add_uint_format_value(rc->tree, hf_reply, tvb, AT(f), 0, "%s", word);
    gen(ti);
    const char *command = r->command[0] ? format_text(rc->pinfo->pool, (const guchar *)r->command,
                                                      strlen(r->command)) : NULL;
    if (r->has_request)
        proto_item_append_text(ti, ", to %s in frame %u", command ? command : "a command", r->request_frame);
    else if (command)
        proto_item_append_text(ti, " %s", command);
    proto_tree *t = proto_item_add_subtree(ti, ett_reply);
    if (smtp) {
        gen(proto_tree_add_uint(t, hf_reply_code, tvb, AT(f), r->code));
        gen(proto_tree_add_string(t, hf_reply_class, tvb, AT(f), smtp_class(r->code)));
        const char *cat = smtp_category(r->code);
        if (r->enhanced[0]) {
            const char *m = enhanced_meaning(rc->pinfo->pool, r->enhanced);
            cat = wmem_strdup_printf(rc->pinfo->pool, "%s; %s %s", cat, r->enhanced, m ? m : "");
            gen(proto_tree_add_string(t, hf_reply_enhanced, tvb, AT(f), r->enhanced));
        }
        gen(proto_tree_add_string(t, hf_reply_category, tvb, AT(f), cat));
    } else {
        gen(proto_tree_add_string(t, hf_reply_status, tvb, AT(f), word));
    }
    gen(proto_tree_add_boolean(t, hf_reply_failed, tvb, AT(f), failed));
    if (command)
        gen(proto_tree_add_string(t, hf_reply_command, tvb, AT(f), command));
    if (r->has_request) {
        if (r->request_frame)
            gen(proto_tree_add_uint(t, hf_reply_request_in, tvb, 0, 0, r->request_frame));
        nstime_t d = { (time_t)r->delay.secs, (int)r->delay.nsecs };
        gen(proto_tree_add_time(t, hf_reply_time, tvb, 0, 0, &d));
    }
}

void mailsec_render_probe(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_probe *p = &f->core.probe;
    tvbuff_t *tvb = rc->tvb;
    const char *target = f->u.mail.text ? f->u.mail.text : "";
    proto_tree *t = proto_tree_add_subtree_format(rc->tree, tvb, AT(f), ett_probe, NULL, "Probe: %s %s%s%s",
        mailsec_probe_command_name(p->command), target, p->verdict == MS_PROBE_PENDING ? "" : ": ",
        p->verdict == MS_PROBE_PENDING ? "" : mailsec_probe_verdict_name(p->verdict));
    gen(proto_tree_add_string(t, hf_enum_command, tvb, AT(f), mailsec_probe_command_name(p->command)));
    gen(proto_tree_add_string(t, hf_enum_target, tvb, AT(f), target));
    if (p->verdict == MS_PROBE_PENDING)
        return;
    gen(proto_tree_add_string(t, hf_enum_verdict, tvb, AT(f), mailsec_probe_verdict_name(p->verdict)));
    if (p->code)
        gen(proto_tree_add_uint(t, hf_enum_code, tvb, AT(f), p->code));
    gen(proto_tree_add_uint(t, hf_enum_count, tvb, AT(f), p->count));
    if (p->client_count)
        gen(proto_tree_add_uint(t, hf_enum_client_count, tvb, AT(f), p->client_count));
    if (p->request_frame)
        gen(proto_tree_add_uint(t, hf_enum_request_in, tvb, 0, 0, p->request_frame));
}

void mailsec_render_helo(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    mailsec_add_text(rc->tree, hf_helo, rc->tvb, AT(f), f->u.mail.text ? f->u.mail.text : "", false);
}

void mailsec_render_envelope(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_envelope *e = &f->core.envelope;
    tvbuff_t *tvb = rc->tvb;
    mailsec_add_text(rc->tree, e->kind == MS_ENVELOPE_MAIL ? hf_mail_from : hf_rcpt_to, tvb, AT(f),
                     f->u.mail.text ? f->u.mail.text : "", false);
    gen(proto_tree_add_uint(rc->tree, hf_transaction, tvb, AT(f), e->transaction));
    if (e->kind == MS_ENVELOPE_RCPT) {
        gen(proto_tree_add_uint(rc->tree, hf_rcpt_count, tvb, AT(f), e->rcpt_count));
        if (e->client_rcpts)
            gen(proto_tree_add_uint(rc->tree, hf_client_rcpts, tvb, AT(f), e->client_rcpts));
    }
    if (e->repeated)
        gen(proto_tree_add_boolean(rc->tree, hf_envelope_repeated, tvb, AT(f), TRUE));
}

void mailsec_render_header(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_msg_header *h = &f->core.msg_header;
    if ((unsigned)h->header >= MS_HDR_KIND_END || hf_msg_header[h->header] <= 0)
        return;
    proto_item *ti = proto_tree_add_string(rc->tree, hf_msg_header[h->header], rc->tvb, AT(f),
                                           f->u.mail.text ? f->u.mail.text : "");
    gen(ti);
    proto_item_append_text(ti, " (message %u)", h->message);
    if (h->cut)
        gen(proto_tree_add_boolean(rc->tree, hf_msg_header_cut, rc->tvb, AT(f), TRUE));
}

void mailsec_render_attachment(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_msg_attachment *a = &f->core.msg_attachment;
    tvbuff_t *tvb = rc->tvb;
    proto_item *ti = proto_tree_add_string(rc->tree, hf_attachment, tvb, AT(f), f->u.mail.text ? f->u.mail.text : "");
    gen(ti);
    proto_item_append_text(ti, " (%s, %" PRIu64 " bytes, message %u)", f->u.mail.text2 ? f->u.mail.text2 : "?",
                           a->size, a->message);
    proto_tree *t = proto_item_add_subtree(ti, ett_attachment);
    if (f->u.mail.text2)
        gen(proto_tree_add_string(t, hf_attachment_type, tvb, AT(f), f->u.mail.text2));
    gen(proto_tree_add_uint64(t, hf_attachment_size, tvb, AT(f), a->size));
    gen(proto_tree_add_string(t, hf_attachment_sha256, tvb, AT(f), f->u.mail.hex));
    gen(proto_tree_add_uint(t, hf_msg_number, tvb, AT(f), a->message));
    if (a->truncated)
        gen(proto_tree_add_boolean(t, hf_attachment_truncated, tvb, AT(f), TRUE));
}

void mailsec_render_url(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    mailsec_add_text(rc->tree, hf_url, rc->tvb, AT(f), f->u.mail.text ? f->u.mail.text : "", false);
}

void mailsec_render_msg_limit(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    mailsec_add_text(rc->tree, hf_msg_limit, rc->tvb, AT(f), f->u.mail.text ? f->u.mail.text : "", false);
}

void mailsec_render_record_limit(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item *it = proto_tree_add_string(rc->tree, hf_record_limit, rc->tvb, AT(f),
                                           mailsec_record_kind_name(f->core.record_limit.what));
    proto_item_append_text(it, " (first %u kept)", f->core.record_limit.limit);
    proto_item_set_generated(it);
}

void mailsec_render_conflict(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    proto_item *it = proto_tree_add_uint64(rc->tree, hf_conflict, rc->tvb, 0, 0, f->core.conflict.bytes);
    proto_item_append_text(it, " (%s; the first copy is what was analysed)",
                           f->core.conflict.dir == MS_DIR_C2S ? "client" : "server");
    proto_item_set_generated(it);
}

void mailsec_render_msg_end(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_msg_end *e = &f->core.msg_end;
    tvbuff_t *tvb = rc->tvb;
    bool truncated = (e->flags & (MS_BODY_LOST | MS_BODY_UNFINISHED)) != 0;
    proto_tree *t = proto_tree_add_subtree_format(rc->tree, tvb, AT(f), ett_msg, NULL,
        "Message %u complete: %s, %" PRIu64 " bytes%s", e->message, mailsec_body_source_name(e->source), e->size,
        truncated ? ", truncated" : "");
    gen(proto_tree_add_uint(t, hf_msg_count, tvb, AT(f), e->message));
    gen(proto_tree_add_string(t, hf_msg_source, tvb, AT(f), mailsec_body_source_name(e->source)));
    gen(proto_tree_add_uint64(t, hf_msg_size, tvb, AT(f), e->size));
    gen(proto_tree_add_string(t, hf_msg_sha256, tvb, AT(f), f->u.mail.hex));
    gen(proto_tree_add_boolean(t, hf_msg_truncated, tvb, AT(f), truncated));
    const mailsec_envelope *env = f->u.mail.env;
    if (env) {
        if (env->mail_from)
            mailsec_add_text(t, hf_mail_from, tvb, AT(f), env->mail_from, false);
        for (guint i = 0; i < env->nrcpt; i++)
            mailsec_add_text(t, hf_rcpt_to, tvb, AT(f), env->rcpt[i], false);
    }
}

void mailsec_render_deleted(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_deleted *d = &f->core.deleted;
    tvbuff_t *tvb = rc->tvb;
    if (d->added) {
        proto_item *ti = proto_tree_add_uint(rc->tree, hf_deleted, tvb, AT(f), d->total);
        gen(ti);
        proto_item_append_text(ti, " (%u now, by %s)", d->added, d->how ? d->how : "?");
        gen(proto_tree_add_uint(rc->tree, hf_deleted_now, tvb, AT(f), d->added));
    }
    if (d->expunged)
        gen(proto_tree_add_uint(rc->tree, hf_expunged, tvb, AT(f), d->expunged));
}

void mailsec_render_smuggling(mailsec_render_ctx *rc, const mailsec_fact *f)
{
    const ms_fact_smuggling *z = &f->core.smuggling;
    tvbuff_t *tvb = rc->tvb;
    proto_item *ti = proto_tree_add_bytes_with_length(rc->tree, hf_smuggling_sequence, tvb, AT(f), f->u.mail.bytes,
                                                      f->u.mail.len);
    gen(ti);
    proto_item_append_text(ti, " (message %u, offset %" PRIu64 ")", z->message, z->offset);
    proto_tree *t = proto_item_add_subtree(ti, ett_smuggling);
    gen(proto_tree_add_uint64(t, hf_smuggling_offset, tvb, AT(f), z->offset));
    if (f->u.mail.text2)
        gen(proto_tree_add_string(t, hf_smuggling_line, tvb, AT(f), f->u.mail.text2));
    gen(proto_tree_add_boolean(t, hf_smuggling_command, tvb, AT(f), z->command));
}

/* ---- registration ---------------------------------------------------------------- */

void mailsec_mail_register(int proto)
{
    static const char *const header_abbrev[MS_HDR_KIND_END] = {
        [MS_HDR_FROM] = "mailsec.msg.header_from", [MS_HDR_TO] = "mailsec.msg.to", [MS_HDR_CC] = "mailsec.msg.cc",
        [MS_HDR_SUBJECT] = "mailsec.msg.subject", [MS_HDR_DATE] = "mailsec.msg.date",
        [MS_HDR_MESSAGE_ID] = "mailsec.msg.message_id", [MS_HDR_REPLY_TO] = "mailsec.msg.reply_to",
        [MS_HDR_USER_AGENT] = "mailsec.msg.user_agent", [MS_HDR_ORIGINATING_IP] = "mailsec.msg.originating_ip",
        [MS_HDR_RECEIVED] = "mailsec.msg.received",
    };
    static hf_register_info hf_headers[MS_HDR_KIND_END - 1];
    for (int k = 1; k < MS_HDR_KIND_END; k++) {
        hf_msg_header[k] = -1;
        hf_headers[k - 1] = (hf_register_info){ &hf_msg_header[k],
            { header_names[k], header_abbrev[k], FT_STRING, BASE_NONE, NULL, 0x0,
              "A header of the message (unfolded, RFC 2047 encoded words decoded)", HFILL } };
    }
    static hf_register_info hf[] = {
        { &hf_reply, { "Reply", "mailsec.reply", FT_UINT32, BASE_DEC, NULL, 0x0,
            "A server reply: its code (SMTP) or status word (POP3, IMAP), and the request it answers", HFILL } },
        { &hf_reply_code, { "Reply code", "mailsec.reply.code", FT_UINT32, BASE_DEC, NULL, 0x0,
            "The SMTP reply code", HFILL } },
        { &hf_reply_status, { "Reply status", "mailsec.reply.status", FT_STRING, BASE_NONE, NULL, 0x0,
            "+OK, -ERR (POP3); OK, NO, BAD (IMAP tagged replies)", HFILL } },
        { &hf_reply_class, { "Reply class", "mailsec.reply.class", FT_STRING, BASE_NONE, NULL, 0x0,
            "RFC 5321 4.2.1: what the first digit of the SMTP reply code says", HFILL } },
        { &hf_reply_category, { "Reply category", "mailsec.reply.category", FT_STRING, BASE_NONE, NULL, 0x0,
            "RFC 5321 4.2.1: what the second digit says, and the RFC 3463 enhanced status code's meaning", HFILL } },
        { &hf_reply_enhanced, { "Enhanced status code", "mailsec.reply.enhanced", FT_STRING, BASE_NONE, NULL, 0x0,
            "RFC 3463 class.subject.detail, e.g. 5.7.8", HFILL } },
        { &hf_reply_failed, { "Failed", "mailsec.reply.failed", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "A negative reply: SMTP 4xx/5xx, POP3 -ERR, IMAP NO or BAD", HFILL } },
        { &hf_reply_command, { "Answers", "mailsec.reply.command", FT_STRING, BASE_NONE, NULL, 0x0,
            "The command this reply answers; (greeting), (none) when it answers nothing the session sent, "
            "(smuggled) when it answers a command smuggled inside DATA, (data ended) when the server ended "
            "DATA at a look-alike", HFILL } },
        { &hf_reply_request_in, { "Request in", "mailsec.reply.request_in", FT_FRAMENUM, BASE_NONE,
            FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0, "The frame that sent the command this reply answers", HFILL } },
        { &hf_reply_time, { "Reply time", "mailsec.reply.time", FT_RELATIVE_TIME, BASE_NONE, NULL, 0x0,
            "How long the server took to answer the command", HFILL } },
        { &hf_enum_command, { "Probe command", "mailsec.enum.command", FT_STRING, BASE_NONE, NULL, 0x0,
            "VRFY, EXPN, or RCPT (a recipient refused as unknown)", HFILL } },
        { &hf_enum_target, { "Probe target", "mailsec.enum.target", FT_STRING, BASE_NONE, NULL, 0x0,
            "The name or address probed", HFILL } },
        { &hf_enum_verdict, { "Probe verdict", "mailsec.enum.verdict", FT_STRING, BASE_NONE, NULL, 0x0,
            "exists, unknown, cannot-verify, disabled, refused or no-reply, from the reply", HFILL } },
        { &hf_enum_code, { "Probe reply code", "mailsec.enum.code", FT_UINT32, BASE_DEC, NULL, 0x0,
            "The reply code behind the verdict", HFILL } },
        { &hf_enum_count, { "Probes in session", "mailsec.enum.count", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Probes answered so far in the session", HFILL } },
        { &hf_enum_client_count, { "Probes from client", "mailsec.enum.client_count", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Probes so far from this client address, all sessions of the capture", HFILL } },
        { &hf_enum_request_in, { "Probe in", "mailsec.enum.request_in", FT_FRAMENUM, BASE_NONE,
            FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0, "The frame that sent the probe", HFILL } },
        { &hf_helo, { "HELO name", "mailsec.smtp.helo", FT_STRING, BASE_NONE, NULL, 0x0,
            "The name the client gave in HELO, EHLO or LHLO", HFILL } },
        { &hf_mail_from, { "Envelope sender", "mailsec.msg.mail_from", FT_STRING, BASE_NONE, NULL, 0x0,
            "MAIL FROM address", HFILL } },
        { &hf_rcpt_to, { "Envelope recipient", "mailsec.msg.rcpt_to", FT_STRING, BASE_NONE, NULL, 0x0,
            "RCPT TO address", HFILL } },
        { &hf_rcpt_count, { "Recipients in session", "mailsec.msg.rcpt_count", FT_UINT32, BASE_DEC, NULL, 0x0,
            "RCPT TO sent so far in the session", HFILL } },
        { &hf_client_rcpts, { "Recipients from client", "mailsec.msg.client_rcpt_count", FT_UINT32, BASE_DEC, NULL,
            0x0, "RCPT TO sent so far from this client address, all sessions of the capture", HFILL } },
        { &hf_transaction, { "Transaction", "mailsec.msg.transaction", FT_UINT32, BASE_DEC, NULL, 0x0,
            "1, 2 ... MAIL FROM transactions in the session", HFILL } },
        { &hf_envelope_repeated, { "Repeated", "mailsec.msg.repeated", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "The same MAIL FROM or RCPT TO again in one transaction, sent anew (a TCP retransmission is not)", HFILL } },
        { &hf_msg_number, { "Message", "mailsec.msg.number", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Which message of the session", HFILL } },
        { &hf_msg_count, { "Messages in session", "mailsec.msg.count", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Messages so far in the session (DATA, BDAT, RETR, TOP, FETCH, APPEND)", HFILL } },
        { &hf_msg_source, { "Carried by", "mailsec.msg.source", FT_STRING, BASE_NONE, NULL, 0x0,
            "SMTP DATA, SMTP BDAT, POP3 RETR, POP3 TOP, IMAP FETCH or IMAP APPEND", HFILL } },
        { &hf_msg_size, { "Message size", "mailsec.msg.size", FT_UINT64, BASE_DEC, NULL, 0x0,
            "Bytes of the message as meant: dot-stuffing undone, chunks joined, literal extracted", HFILL } },
        { &hf_msg_sha256, { "Message SHA-256", "mailsec.msg.sha256", FT_STRING, BASE_NONE, NULL, 0x0,
            "SHA-256 of the message as meant", HFILL } },
        { &hf_msg_truncated, { "Truncated", "mailsec.msg.truncated", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "Bytes of the message are missing, or it never reached its end", HFILL } },
        { &hf_msg_header_cut, { "Header cut", "mailsec.msg.header_cut", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            "The header was longer than mailsec keeps", HFILL } },
        { &hf_attachment, { "Attachment", "mailsec.msg.attachment", FT_STRING, BASE_NONE, NULL, 0x0,
            "The file name of a MIME part (RFC 2231 and RFC 2047 names decoded)", HFILL } },
        { &hf_attachment_type, { "Content type", "mailsec.msg.attachment.type", FT_STRING, BASE_NONE, NULL, 0x0,
            "The part's content type", HFILL } },
        { &hf_attachment_size, { "Decoded size", "mailsec.msg.attachment.size", FT_UINT64, BASE_DEC, NULL, 0x0,
            "Bytes of the file after base64 or quoted-printable decoding", HFILL } },
        { &hf_attachment_sha256, { "SHA-256", "mailsec.msg.attachment.sha256", FT_STRING, BASE_NONE, NULL, 0x0,
            "SHA-256 of the decoded file", HFILL } },
        { &hf_attachment_truncated, { "Truncated", "mailsec.msg.attachment.truncated", FT_BOOLEAN, BASE_NONE, NULL,
            0x0, "The part's end is missing: size and hash are of what was seen", HFILL } },
        { &hf_url, { "URL", "mailsec.msg.url", FT_STRING, BASE_NONE, NULL, 0x0,
            "A URL in a text part (capped per message)", HFILL } },
        { &hf_msg_limit, { "Scanning limit", "mailsec.msg.limit", FT_STRING, BASE_NONE, NULL, 0x0,
            "The message scanner stopped following the message here: depth, parts, urls or header", HFILL } },
        { &hf_record_limit, { "Records capped", "mailsec.session.records_capped", FT_STRING, BASE_NONE, NULL, 0x0,
            "This session reached the max_records preference for these records: later ones are counted, "
            "not shown", HFILL } },
        { &hf_conflict, { "Conflicting overlap", "mailsec.sequence.conflict", FT_UINT64, BASE_DEC, NULL, 0x0,
            "Bytes this segment sent again with other content than their first copy (retransmission or "
            "overlap): the receiver may have read other bytes than the capture shows", HFILL } },
        { &hf_deleted, { "Messages deleted", "mailsec.msg.deleted", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Messages marked deleted so far in the session (POP3 DELE, IMAP \\Deleted, MOVE to a trash folder)",
            HFILL } },
        { &hf_deleted_now, { "Deleted now", "mailsec.msg.deleted_now", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Messages this reply confirmed as deleted", HFILL } },
        { &hf_expunged, { "Messages expunged", "mailsec.msg.expunged", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Messages IMAP EXPUNGE or CLOSE removed for good with this reply", HFILL } },
        { &hf_smuggling_sequence, { "End-of-data look-alike", "mailsec.smuggling.sequence", FT_BYTES, BASE_NONE,
            NULL, 0x0, "A non-standard end-of-data sequence inside DATA (only CR LF . CR LF ends it)", HFILL } },
        { &hf_smuggling_offset, { "Offset in message", "mailsec.smuggling.offset", FT_UINT64, BASE_DEC, NULL, 0x0,
            "Where the sequence starts in the DATA body as sent", HFILL } },
        { &hf_smuggling_line, { "Line after it", "mailsec.smuggling.line", FT_STRING, BASE_NONE, NULL, 0x0,
            "What follows the sequence, up to the next line break (cut at 64 bytes)", HFILL } },
        { &hf_smuggling_command, { "Smuggled command", "mailsec.smuggling.command", FT_BOOLEAN, BASE_NONE, NULL,
            0x0, "The line after the sequence is an SMTP command (MAIL FROM, RCPT TO, DATA ...)", HFILL } },
    };
    static gint *ett[] = { &ett_reply, &ett_probe, &ett_msg, &ett_attachment, &ett_smuggling };
    proto_register_field_array(proto, hf, array_length(hf));
    proto_register_field_array(proto, hf_headers, array_length(hf_headers));
    proto_register_subtree_array(ett, array_length(ett));
}

/* mailsec-alerts.c — the one place that turns facts into expert info.
 *
 * The core reports what happened (a STARTTLS answered, bytes after it, a line
 * too long); whether that is an alert, in which group and how severe, is
 * decided here and nowhere else: the table below is the whole policy.
 *
 * Each alert is also a generated item, mailsec.alert (its message), with
 * mailsec.alert.name and mailsec.alert.severity under it, so tshark -T fields
 * and scripts read mailsec's alerts apart from every other dissector's. Every
 * value that came off the wire is escaped before it goes into a message.
 */
#include <wireshark.h>

#include <epan/expert.h>
#include <epan/packet.h>
#include <epan/strutil.h>
#include <epan/tap.h>

#include "mailsec.h"

typedef enum {
    A_STARTTLS_COMMAND_INJECTION,
    A_STARTTLS_RESPONSE_INJECTION,
    A_STARTTLS_REFUSED,
    A_STARTTLS_NO_REPLY,
    A_LINE_TOO_LONG,
    A_AUTH_CLEARTEXT,
    A_AUTH_FAILED,
    A_AUTH_BRUTE_FORCE,
    A_AUTH_SUCCESS_AFTER_FAILURES,
    A_MALFORMED_SASL,
    A_DETECTED_BY_CONTENT,
    A_STREAM_GAP,
    A_AUTH_USER_IN_AUTHZID,
    A_STARTTLS_STRIPPED,
    A_STARTTLS_UNUSED,
    A_TLS_OLD_VERSION,
    A_TLS_NO_SNI,
    A_IMAP_PREAUTH,
    A_IMAP_ALERT,
    A_LOGIN_BEFORE_TLS,
    A_STARTTLS_BUFFERED,
    A_CAPABILITY_STRIPPED,
    A_VRFY_EXPN,
    A_ENUMERATION,
    A_SMUGGLING,
    A_END_ACCEPTED,
    A_SMUGGLED_ANSWERED,
    A_MASS_MAILING,
    A_DUPLICATE_ENVELOPE,
    A_SENDER_MISMATCH,
    A_REPLY_TO_MISMATCH,
    A_DANGEROUS_ATTACHMENT,
    A_DELETED,
    A_NO_ENVELOPE,
    A_BDAT_MISMATCH,
    A_SCAN_LIMIT,
    A_RECORD_LIMIT,
    A_OVERLAP_CONFLICT,
    A_COUNT
} alert_id;

typedef struct {
    const char *abbrev;
    int group;
    int severity;
    const char *summary;
} alert_def;

static const alert_def alert_defs[A_COUNT] = {
    [A_STARTTLS_COMMAND_INJECTION] = { "mailsec.starttls.command_injection", PI_SECURITY, PI_ERROR,
        "STARTTLS command injection: plaintext pipelined after STARTTLS/STLS in the same segment" },
    [A_STARTTLS_RESPONSE_INJECTION] = { "mailsec.starttls.response_injection", PI_SECURITY, PI_ERROR,
        "STARTTLS response injection: server lines sent together with the STARTTLS OK" },
    [A_STARTTLS_REFUSED] = { "mailsec.starttls.refused", PI_SECURITY, PI_WARN,
        "STARTTLS refused: the session stays in clear" },
    [A_STARTTLS_NO_REPLY] = { "mailsec.starttls.no_reply", PI_SEQUENCE, PI_NOTE,
        "STARTTLS reply missing from the capture: TLS began without it" },
    [A_LINE_TOO_LONG] = { "mailsec.malformed.line_too_long", PI_MALFORMED, PI_ERROR,
        "Overlong line" },
    [A_AUTH_CLEARTEXT] = { "mailsec.auth.cleartext", PI_SECURITY, PI_WARN,
        "Credentials in clear: a password, token or hash crossed without TLS" },
    [A_AUTH_FAILED] = { "mailsec.auth.failed", PI_SECURITY, PI_NOTE,
        "Authentication failed" },
    [A_AUTH_BRUTE_FORCE] = { "mailsec.auth.brute_force", PI_SECURITY, PI_WARN,
        "Brute force: failed logins reached the threshold" },
    [A_AUTH_SUCCESS_AFTER_FAILURES] = { "mailsec.auth.success_after_failures", PI_SECURITY, PI_ERROR,
        "Login succeeded after repeated failures" },
    [A_MALFORMED_SASL] = { "mailsec.malformed.sasl", PI_MALFORMED, PI_ERROR,
        "Malformed login exchange" },
    [A_DETECTED_BY_CONTENT] = { "mailsec.detected.content", PI_PROTOCOL, PI_CHAT,
        "Mail protocol recognised from the content" },
    [A_STREAM_GAP] = { "mailsec.sequence.gap", PI_SEQUENCE, PI_WARN,
        "Bytes of the mail session are missing from the capture" },
    [A_AUTH_USER_IN_AUTHZID] = { "mailsec.auth.user_in_authzid", PI_PROTOCOL, PI_NOTE,
        "PLAIN with an empty authentication identity: the authorization identity is taken as the user" },
    [A_STARTTLS_STRIPPED] = { "mailsec.starttls.stripped", PI_SECURITY, PI_ERROR,
        "STARTTLS accepted but the session continued without TLS" },
    [A_STARTTLS_UNUSED] = { "mailsec.starttls.offered_not_used", PI_SECURITY, PI_WARN,
        "STARTTLS offered but not used: the session went on in clear" },
    [A_TLS_OLD_VERSION] = { "mailsec.tls.old_version", PI_SECURITY, PI_WARN,
        "TLS below 1.2 negotiated" },
    [A_TLS_NO_SNI] = { "mailsec.tls.no_sni", PI_PROTOCOL, PI_NOTE,
        "The client sent no server name (SNI)" },
    [A_IMAP_PREAUTH] = { "mailsec.imap.preauth_in_clear", PI_SECURITY, PI_WARN,
        "IMAP PREAUTH before TLS: the session is authenticated in clear and STARTTLS can no longer follow" },
    [A_IMAP_ALERT] = { "mailsec.imap.alert_in_clear", PI_SECURITY, PI_WARN,
        "IMAP [ALERT] sent in clear: text the client must show its user, open to spoofing" },
    [A_LOGIN_BEFORE_TLS] = { "mailsec.starttls.login_before_tls", PI_SECURITY, PI_ERROR,
        "Credentials crossed in clear before the session upgraded to TLS" },
    [A_STARTTLS_BUFFERED] = { "mailsec.starttls.response_buffering", PI_SECURITY, PI_ERROR,
        "Commands sent in clear after STARTTLS are answered inside TLS (response buffering)" },
    [A_CAPABILITY_STRIPPED] = { "mailsec.starttls.capability_stripped", PI_SECURITY, PI_NOTE,
        "STARTTLS missing from a capability list where it was offered before or is expected" },
    [A_VRFY_EXPN] = { "mailsec.enum.vrfy_expn_used", PI_SECURITY, PI_NOTE,
        "VRFY/EXPN used: the client asks whether a mailbox or list exists" },
    [A_ENUMERATION] = { "mailsec.enum.enumeration", PI_SECURITY, PI_WARN,
        "Enumeration: account probes reached the threshold" },
    [A_SMUGGLING] = { "mailsec.smtp.smuggling", PI_SECURITY, PI_ERROR,
        "SMTP smuggling: an end-of-data look-alike inside DATA" },
    [A_END_ACCEPTED] = { "mailsec.smtp.nonstandard_end_accepted", PI_SECURITY, PI_WARN,
        "The server took a non-standard end of data as the end: it is open to SMTP smuggling" },
    [A_SMUGGLED_ANSWERED] = { "mailsec.smtp.smuggling_answered", PI_SECURITY, PI_ERROR,
        "SMTP smuggling worked: the server answered commands smuggled inside DATA" },
    [A_MASS_MAILING] = { "mailsec.msg.mass_mailing", PI_SECURITY, PI_WARN,
        "Mass mailing: recipients or messages reached the threshold" },
    [A_DUPLICATE_ENVELOPE] = { "mailsec.msg.duplicate_envelope", PI_SEQUENCE, PI_NOTE,
        "Duplicate envelope: the client sent the same MAIL FROM or RCPT TO again in one transaction" },
    [A_SENDER_MISMATCH] = { "mailsec.msg.sender_mismatch", PI_SECURITY, PI_WARN,
        "Sender mismatch: the envelope sender's domain differs from the From header's" },
    [A_REPLY_TO_MISMATCH] = { "mailsec.msg.reply_to_mismatch", PI_SECURITY, PI_NOTE,
        "Reply-To differs: answers go to another domain than the From header's" },
    [A_DANGEROUS_ATTACHMENT] = { "mailsec.msg.dangerous_attachment", PI_SECURITY, PI_WARN,
        "Dangerous attachment" },
    [A_DELETED] = { "mailsec.msg.deletion", PI_SECURITY, PI_NOTE,
        "Messages deleted: evidence leaving the server" },
    [A_NO_ENVELOPE] = { "mailsec.smtp.data_without_envelope", PI_PROTOCOL, PI_WARN,
        "Message data without an accepted sender and recipient" },
    [A_BDAT_MISMATCH] = { "mailsec.smtp.bdat_size_mismatch", PI_PROTOCOL, PI_WARN,
        "BDAT size does not match the data sent" },
    [A_SCAN_LIMIT] = { "mailsec.msg.scan_limit", PI_PROTOCOL, PI_NOTE,
        "Message scanning stopped at a limit: MIME nesting or parts" },
    [A_RECORD_LIMIT] = { "mailsec.session.record_limit", PI_UNDECODED, PI_WARN,
        "Session record limit: later records of this kind are counted but not shown" },
    [A_OVERLAP_CONFLICT] = { "mailsec.sequence.overlap_conflict", PI_SECURITY, PI_WARN,
        "TCP data sent again with other bytes: the stream says different things to different observers" },
};

static expert_field ei[A_COUNT];
static int hf_alert = -1;
static int hf_alert_name = -1;
static int hf_alert_severity = -1;
static gint ett_alert = -1;

void mailsec_alerts_register(int proto)
{
    static ei_register_info eri[A_COUNT];
    static hf_register_info hf[] = {
        { &hf_alert,
          { "Alert", "mailsec.alert", FT_STRING, BASE_NONE, NULL, 0x0,
            "An alert mailsec raised on this frame (its expert info message)", HFILL } },
        { &hf_alert_name,
          { "Alert name", "mailsec.alert.name", FT_STRING, BASE_NONE, NULL, 0x0,
            "The alert's expert info abbreviation, e.g. mailsec.auth.brute_force", HFILL } },
        { &hf_alert_severity,
          { "Alert severity", "mailsec.alert.severity", FT_STRING, BASE_NONE, NULL, 0x0,
            "error, warning, note or chat", HFILL } },
    };
    static gint *ett[] = { &ett_alert };
    for (int i = 0; i < A_COUNT; i++) {
        ei[i] = (expert_field)EI_INIT;
        eri[i] = (ei_register_info){ &ei[i], { alert_defs[i].abbrev, alert_defs[i].group,
                                               alert_defs[i].severity, alert_defs[i].summary, EXPFILL } };
    }
    proto_register_field_array(proto, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_module_t *em = expert_register_protocol(proto);
    expert_register_field_array(em, eri, array_length(eri));
}

static const char *severity_name(int severity)
{
    switch (severity) {
    case PI_ERROR: return "error";
    case PI_WARN: return "warning";
    case PI_NOTE: return "note";
    default: return "chat";
    }
}

/* A value from the wire, made safe for a message: control bytes and invalid
 * UTF-8 escaped the way Wireshark's own dissectors do. */
static const char *esc(packet_info *pinfo, const char *v)
{
    return v ? format_text(pinfo->pool, (const guchar *)v, strlen(v)) : NULL;
}

/* ---- the rules: which fact, when, which alert, what message -------------- */

typedef struct {
    packet_info *pinfo;
    char *msg;  /* set by a rule's message function */
} alert_msg;

static void say(alert_msg *m, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void say(alert_msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    m->msg = wmem_strdup_vprintf(m->pinfo->pool, fmt, ap);
    va_end(ap);
}

static guint threshold(void)
{
    return mailsec_prefs.brute_force_threshold;
}

static const char *user_of(packet_info *pinfo, const mailsec_attempt *a)
{
    return a && a->username ? esc(pinfo, a->username) : "(no user)";
}

/* conditions */
static bool from_client(const mailsec_fact *f) { return f->u.injected.dir == MS_DIR_C2S; }
static bool from_server(const mailsec_fact *f) { return f->u.injected.dir == MS_DIR_S2C; }
static bool refused(const mailsec_fact *f) { return f->core.starttls_result.result == MS_STARTTLS_REFUSED; }
static bool no_reply(const mailsec_fact *f) { return f->core.starttls_result.result == MS_STARTTLS_NO_REPLY; }

static bool secret_in_clear(const mailsec_fact *f)
{
    const mailsec_attempt *a = f->u.attempt;
    return a && a->exposed && (a->password || a->token || a->hash || a->material);
}

static bool user_in_authzid(const mailsec_fact *f)
{
    return f->u.attempt && f->u.attempt->user_from_authzid;
}

static bool failed(const mailsec_fact *f) { return f->u.auth_result.result == MS_AUTH_FAILURE; }

static bool over_threshold(const mailsec_fact *f)
{
    guint thr = threshold();
    return thr && (f->u.auth_result.session_failures >= thr || f->u.auth_result.client_failures >= thr);
}

static bool brute_force(const mailsec_fact *f) { return failed(f) && over_threshold(f); }

static bool success_after_failures(const mailsec_fact *f)
{
    return f->u.auth_result.result == MS_AUTH_SUCCESS && over_threshold(f);
}

/* messages */
static void msg_summary(alert_msg *m, const alert_def *d, const mailsec_fact *f _U_)
{
    say(m, "%s", d->summary);
}

static void msg_command_injection(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    guint n = f->u.injected.orig_len;
    say(m, "STARTTLS command injection: %u byte%s of plaintext followed the client's STARTTLS in the same segment",
        n, plurality(n, "", "s"));
}

static void msg_response_injection(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    guint n = f->u.injected.orig_len;
    if (f->u.injected.own_segment)
        say(m, "STARTTLS response injection: %u byte%s of plaintext replies after the server's OK, before the "
            "client's TLS handshake", n, plurality(n, "", "s"));
    else
        say(m, "STARTTLS response injection: %u byte%s of plaintext followed the server's OK in the same segment",
            n, plurality(n, "", "s"));
}

static void msg_line_too_long(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Overlong line from the %s: %d bytes (limit %u, preference mailsec.max_line)",
        f->core.line_too_long.dir == MS_DIR_C2S ? "client" : "server", (int)f->core.line_too_long.length,
        mailsec_prefs.max_line);
}

static void msg_cleartext(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    const mailsec_attempt *a = f->u.attempt;
    say(m, "Credentials in clear: %s %s for %s", esc(m->pinfo, a->mechanism),
        a->password ? "password" : a->token ? "bearer token" : a->hash ? "hash" : "verification material",
        user_of(m->pinfo, a));
}

static void msg_failed(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    const mailsec_attempt *a = f->u.auth_result.attempt;
    say(m, "Authentication failed: %s for %s", a ? esc(m->pinfo, a->mechanism) : "login", user_of(m->pinfo, a));
}

static void msg_brute_force(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Brute force: %u failed logins in this session, %u from this client (threshold %u)",
        f->u.auth_result.session_failures, f->u.auth_result.client_failures, threshold());
}

static void msg_success_after_failures(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Login as %s succeeded after %u failed logins in this session, %u from this client",
        user_of(m->pinfo, f->u.auth_result.attempt), f->u.auth_result.session_failures,
        f->u.auth_result.client_failures);
}

static void msg_malformed(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    ms_auth_problem p = f->core.auth_malformed.problem;
    say(m, "Malformed login exchange: %s",
        p == MS_AUTH_BAD_BASE64 ? "invalid base64"
        : p == MS_AUTH_BAD_MESSAGE ? "the message does not fit the mechanism"
        : "missing or incomplete arguments");
}

static void msg_detected(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Recognised as %s from its content", ms_proto_name(f->core.proto.proto));
}

static void msg_gap(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    guint32 n = f->core.stream_gap.lost > G_MAXUINT32 ? G_MAXUINT32 : (guint32)f->core.stream_gap.lost;
    say(m, "%u byte%s of the %s's stream missing from the capture: what they carried is not analysed",
        n, plurality(n, "", "s"), f->core.stream_gap.dir == MS_DIR_C2S ? "client" : "server");
}

/* ---- reconnaissance and messages ---- */

static bool vrfy_expn_request(const mailsec_fact *f)
{
    return f->core.probe.verdict == MS_PROBE_PENDING && f->core.probe.command != MS_PROBE_RCPT;
}

static bool reaches(guint32 n, guint thr)
{
    return thr && n == thr;
}

static bool enumeration(const mailsec_fact *f)
{
    const ms_fact_probe *p = &f->core.probe;
    guint thr = mailsec_prefs.enum_threshold;
    return p->verdict != MS_PROBE_PENDING && (reaches(p->count, thr) || reaches(p->client_count, thr));
}

static bool mass_rcpt(const mailsec_fact *f)
{
    const ms_fact_envelope *e = &f->core.envelope;
    guint thr = mailsec_prefs.mass_rcpt_threshold;
    return e->kind == MS_ENVELOPE_RCPT && (reaches(e->rcpt_count, thr) || reaches(e->client_rcpts, thr));
}

static bool sent_message(const mailsec_fact *f)
{
    return f->core.msg_end.source == MS_BODY_SMTP_DATA || f->core.msg_end.source == MS_BODY_SMTP_BDAT;
}

static bool mass_messages(const mailsec_fact *f)
{
    guint thr = mailsec_prefs.mass_msg_threshold;
    return sent_message(f) && (reaches(f->core.msg_end.message, thr) || reaches(f->core.msg_end.client_messages, thr));
}

static bool repeated(const mailsec_fact *f) { return f->core.envelope.repeated; }

/* Domains of two addresses differ (each known, the null sender aside). */
static bool domains_differ(const char *a, const char *b)
{
    if (!a || !b || !*a || !*b)
        return false;
    wmem_allocator_t *pool = wmem_packet_scope();
    const char *da = mailsec_org_domain(pool, a), *db = mailsec_org_domain(pool, b);
    return da && db && strcmp(da, db) != 0;
}

static bool sender_mismatch(const mailsec_fact *f)
{
    const mailsec_envelope *env = f->u.mail.env;
    const mailsec_msginfo *mi = f->u.mail.info;
    return env && mi && domains_differ(env->mail_from, mi->from);
}

static bool reply_to_mismatch(const mailsec_fact *f)
{
    const mailsec_msginfo *mi = f->u.mail.info;
    return mi && domains_differ(mi->from, mi->reply_to);
}

static bool dangerous(const mailsec_fact *f)
{
    const char *why;
    return mailsec_dangerous_name(f->u.mail.text, &why);
}

static const char *seq_text(packet_info *pinfo, const guint8 *b, guint n)
{
    wmem_strbuf_t *sb = wmem_strbuf_new(pinfo->pool, "");
    for (guint i = 0; i < n; i++) {
        switch (b[i]) {
        case '\r': wmem_strbuf_append(sb, "<CR>"); break;
        case '\n': wmem_strbuf_append(sb, "<LF>"); break;
        case '.': wmem_strbuf_append(sb, "."); break;
        default: wmem_strbuf_append_printf(sb, "<%02X>", b[i]); break;
        }
    }
    return wmem_strbuf_get_str(sb);
}

static void msg_vrfy_expn(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "%s used: probe of %s", f->core.probe.command == MS_PROBE_VRFY ? "VRFY" : "EXPN",
        f->u.mail.text ? esc(m->pinfo, f->u.mail.text) : "(nothing)");
}

static void msg_enumeration(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Enumeration: %u account probes in this session, %u from this client (threshold %u)",
        f->core.probe.count, f->core.probe.client_count, mailsec_prefs.enum_threshold);
}

static void msg_smuggling(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    const ms_fact_smuggling *z = &f->core.smuggling;
    const char *line = f->u.mail.text2 ? esc(m->pinfo, f->u.mail.text2) : "";
    say(m, "SMTP smuggling: end-of-data look-alike %s inside DATA of message %u at offset %" PRIu64 "%s%s%s",
        seq_text(m->pinfo, f->u.mail.bytes, f->u.mail.len), z->message, z->offset,
        z->command ? ", followed by the smuggled command \"" : "", z->command ? line : "", z->command ? "\"" : "");
}

static bool smuggled(const mailsec_fact *f) { return !f->core.smuggling.accepted; }
static bool end_accepted(const mailsec_fact *f) { return f->core.smuggling.accepted; }

static void msg_end_accepted(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "The server answered right after %s in DATA of message %u: it takes a non-standard end of data as "
        "the end (only <CR><LF>.<CR><LF> is), so it is open to SMTP smuggling",
        seq_text(m->pinfo, f->u.mail.bytes, f->u.mail.len), f->core.smuggling.message);
}

static bool old_tls(const mailsec_fact *f)
{
    guint16 v = f->core.tls_posture.version;
    return v >= 0x0300 && v < 0x0303;
}

static bool no_sni(const mailsec_fact *f)
{
    return f->core.tls_posture.client_hello && !f->core.tls_posture.has_sni;
}

static void msg_old_tls(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "TLS below 1.2 negotiated: %s", mailsec_tls_version_name(f->core.tls_posture.version));
}

static void msg_stripped(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "STARTTLS accepted but the session continued without TLS: the %s's next bytes are no TLS record; "
        "everything after is in clear", f->core.stripped.dir == MS_DIR_C2S ? "client" : "server");
}

static void msg_unused(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "STARTTLS offered but not used: %s in clear", f->core.unused.what == MS_UNUSED_LOGIN
        ? "a login went" : "a message went");
}

static void msg_imap_alert(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "IMAP [ALERT] sent in clear (UI spoofing): %s", f->u.mail.text ? esc(m->pinfo, f->u.mail.text) : "");
}

static void msg_buffered(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    guint64 n = f->core.buffered.bytes;
    say(m, "Commands sent in clear after STARTTLS are answered inside TLS (response buffering): %" PRIu64
        " byte%s from frame %u on, sent before the STARTTLS reply", n, plurality(n, "", "s"),
        f->core.buffered.frame);
}

static void msg_cap_stripped(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    guint32 by = f->core.cap_stripped.offered_in;
    if (by)
        say(m, "STARTTLS missing from the capability list: the same server offered it in TCP stream %u "
            "(capability stripped?)", by - 1);
    else
        say(m, "STARTTLS missing from the capability list of a port where it is expected "
            "(capability stripped?)");
}

static void msg_login_before_tls(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    guint32 n = f->core.count.n;
    say(m, "Credentials crossed in clear before the session upgraded to TLS: %u login%s before STARTTLS", n,
        plurality(n, "", "s"));
}

static bool first_smuggled_answer(const mailsec_fact *f) { return f->core.smuggled_answered.replies == 1; }

static void msg_smuggled_answered(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "SMTP smuggling worked: the server answers the commands smuggled inside message %u (it took the "
        "look-alike as the end of data, so the smuggled message was accepted too)", f->core.smuggled_answered.message);
}

static void msg_mass_rcpt(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Mass mailing: %u recipients in this session, %u from this client (threshold %u)",
        f->core.envelope.rcpt_count, f->core.envelope.client_rcpts, mailsec_prefs.mass_rcpt_threshold);
}

static void msg_mass_messages(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Mass mailing: %u messages in this session, %u from this client (threshold %u)",
        f->core.msg_end.message, f->core.msg_end.client_messages, mailsec_prefs.mass_msg_threshold);
}

static void msg_duplicate(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Duplicate envelope: %s %s sent again in transaction %u (new bytes, not a TCP retransmission)",
        f->core.envelope.kind == MS_ENVELOPE_MAIL ? "MAIL FROM" : "RCPT TO",
        f->u.mail.text ? esc(m->pinfo, f->u.mail.text) : "", f->core.envelope.transaction);
}

static void msg_sender_mismatch(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Sender mismatch in message %u: envelope sender %s, From header %s", f->core.msg_end.message,
        esc(m->pinfo, f->u.mail.env->mail_from), esc(m->pinfo, f->u.mail.info->from));
}

static void msg_reply_to(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Reply-To differs in message %u: From %s, Reply-To %s", f->core.msg_end.message,
        esc(m->pinfo, f->u.mail.info->from), esc(m->pinfo, f->u.mail.info->reply_to));
}

static void msg_dangerous(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    const char *why = "";
    (void)mailsec_dangerous_name(f->u.mail.text, &why);
    say(m, "Dangerous attachment in message %u: %s (%s)", f->core.msg_attachment.message,
        esc(m->pinfo, f->u.mail.text), why);
}

static void msg_deleted(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    const ms_fact_deleted *x = &f->core.deleted;
    if (x->expunged && !x->added)
        say(m, "Messages deleted: %u expunged for good", x->expunged);
    else
        say(m, "Messages deleted: %u by %s, %u so far in this session", x->added, x->how ? x->how : "?", x->total);
}

static void msg_no_envelope(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    const ms_fact_no_envelope *x = &f->core.no_envelope;
    say(m, "%s without an accepted %s: the server's replies refused or never saw them",
        x->bdat ? "BDAT" : "DATA", !x->mail_accepted ? "MAIL FROM" : "RCPT TO");
}

static void msg_bdat(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    const ms_fact_bdat_mismatch *x = &f->core.bdat_mismatch;
    say(m, "BDAT size does not match the data: %s (announced %" PRIu64 " bytes)",
        x->problem == MS_BDAT_ANSWERED_EARLY ? "the server answered before the announced bytes came"
                                             : "what followed the announced bytes is no command",
        x->announced);
}

/* A message built to defeat scanners (nesting, part counts) is worth a note;
 * a long header or many URLs are ordinary. */
static bool structural_limit(const mailsec_fact *f)
{
    const char *w = f->u.mail.text;
    return w && (strcmp(w, "depth") == 0 || strcmp(w, "parts") == 0);
}

static void msg_limit(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Message %u: scanning stopped at the %s limit; the rest is hashed but not examined",
        f->core.msg_limit.message, f->u.mail.text ? f->u.mail.text : "?");
}

static void msg_record_limit(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Session record limit: only the first %u %s of this session are shown; later ones are counted "
        "but not kept (preference mailsec.max_records)", f->core.record_limit.limit,
        mailsec_record_kind_name(f->core.record_limit.what));
}

static void msg_conflict(alert_msg *m, const alert_def *d _U_, const mailsec_fact *f)
{
    say(m, "Conflicting %s data: %" PRIu64 " bytes sent again with other content than their first copy "
        "(retransmission or overlapping segment); mailsec analysed the first copy, the receiver may have "
        "taken the other (IDS evasion)", f->core.conflict.dir == MS_DIR_C2S ? "client" : "server",
        f->core.conflict.bytes);
}

typedef struct {
    ms_fact_kind fact;
    bool (*when)(const mailsec_fact *f);   /* NULL: always */
    alert_id alert;
    void (*message)(alert_msg *m, const alert_def *d, const mailsec_fact *f);
    bool once_per_frame;                   /* one alert however many such facts */
} alert_rule;

/* The whole policy. A fact may raise several alerts, in this order. */
static const alert_rule rules[] = {
    { MS_FACT_STARTTLS_INJECTED, from_client, A_STARTTLS_COMMAND_INJECTION, msg_command_injection, false },
    { MS_FACT_STARTTLS_INJECTED, from_server, A_STARTTLS_RESPONSE_INJECTION, msg_response_injection, false },
    { MS_FACT_STARTTLS_RESULT, refused, A_STARTTLS_REFUSED, msg_summary, false },
    { MS_FACT_STARTTLS_RESULT, no_reply, A_STARTTLS_NO_REPLY, msg_summary, false },
    { MS_FACT_LINE_TOO_LONG, NULL, A_LINE_TOO_LONG, msg_line_too_long, true },
    { MS_FACT_AUTH_REQUEST, secret_in_clear, A_AUTH_CLEARTEXT, msg_cleartext, false },
    { MS_FACT_AUTH_REQUEST, user_in_authzid, A_AUTH_USER_IN_AUTHZID, msg_summary, false },
    { MS_FACT_AUTH_RESULT, failed, A_AUTH_FAILED, msg_failed, false },
    { MS_FACT_AUTH_RESULT, brute_force, A_AUTH_BRUTE_FORCE, msg_brute_force, false },
    { MS_FACT_AUTH_RESULT, success_after_failures, A_AUTH_SUCCESS_AFTER_FAILURES, msg_success_after_failures, false },
    { MS_FACT_AUTH_MALFORMED, NULL, A_MALFORMED_SASL, msg_malformed, false },
    { MS_FACT_PROTO, NULL, A_DETECTED_BY_CONTENT, msg_detected, false },
    { MS_FACT_STREAM_GAP, NULL, A_STREAM_GAP, msg_gap, false },
    { MS_FACT_STARTTLS_STRIPPED, NULL, A_STARTTLS_STRIPPED, msg_stripped, false },
    { MS_FACT_STARTTLS_UNUSED, NULL, A_STARTTLS_UNUSED, msg_unused, false },
    { MS_FACT_IMAP_PREAUTH, NULL, A_IMAP_PREAUTH, msg_summary, false },
    { MS_FACT_IMAP_ALERT, NULL, A_IMAP_ALERT, msg_imap_alert, true },
    { MS_FACT_LOGIN_BEFORE_TLS, NULL, A_LOGIN_BEFORE_TLS, msg_login_before_tls, false },
    { MS_FACT_STARTTLS_BUFFERED, NULL, A_STARTTLS_BUFFERED, msg_buffered, false },
    { MS_FACT_CAPABILITY_STRIPPED, NULL, A_CAPABILITY_STRIPPED, msg_cap_stripped, false },
    { MS_FACT_TLS_POSTURE, old_tls, A_TLS_OLD_VERSION, msg_old_tls, false },
    { MS_FACT_TLS_POSTURE, no_sni, A_TLS_NO_SNI, msg_summary, false },
    { MS_FACT_PROBE, vrfy_expn_request, A_VRFY_EXPN, msg_vrfy_expn, false },
    { MS_FACT_PROBE, enumeration, A_ENUMERATION, msg_enumeration, false },
    { MS_FACT_SMUGGLING, smuggled, A_SMUGGLING, msg_smuggling, false },
    { MS_FACT_SMUGGLING, end_accepted, A_END_ACCEPTED, msg_end_accepted, false },
    { MS_FACT_SMUGGLED_ANSWERED, first_smuggled_answer, A_SMUGGLED_ANSWERED, msg_smuggled_answered, false },
    { MS_FACT_ENVELOPE, mass_rcpt, A_MASS_MAILING, msg_mass_rcpt, false },
    { MS_FACT_MSG_END, mass_messages, A_MASS_MAILING, msg_mass_messages, false },
    { MS_FACT_ENVELOPE, repeated, A_DUPLICATE_ENVELOPE, msg_duplicate, false },
    { MS_FACT_MSG_END, sender_mismatch, A_SENDER_MISMATCH, msg_sender_mismatch, false },
    { MS_FACT_MSG_END, reply_to_mismatch, A_REPLY_TO_MISMATCH, msg_reply_to, false },
    { MS_FACT_MSG_ATTACHMENT, dangerous, A_DANGEROUS_ATTACHMENT, msg_dangerous, false },
    { MS_FACT_DELETED, NULL, A_DELETED, msg_deleted, false },
    { MS_FACT_NO_ENVELOPE, NULL, A_NO_ENVELOPE, msg_no_envelope, false },
    { MS_FACT_BDAT_MISMATCH, NULL, A_BDAT_MISMATCH, msg_bdat, false },
    { MS_FACT_MSG_LIMIT, structural_limit, A_SCAN_LIMIT, msg_limit, false },
    { MS_FACT_RECORD_LIMIT, NULL, A_RECORD_LIMIT, msg_record_limit, false },
    { MS_FACT_OVERLAP_CONFLICT, NULL, A_OVERLAP_CONFLICT, msg_conflict, false },
};

static int expert_tap = -1;

void mailsec_alerts_init(void)
{
    /* the expert tap is registered after the plugins' handoff */
    expert_tap = find_tap_id("expert");
}

bool mailsec_alerts_listening(void)
{
    return expert_tap > 0 && have_tap_listener(expert_tap);
}

static void raise_alert(packet_info *pinfo, proto_tree *tree, tvbuff_t *tvb, const mailsec_fact *f, alert_id id,
                        const char *msg)
{
    gint start = f->start >= 0 ? f->start : 0, length = f->start >= 0 ? f->length : 0;
    proto_item *ai = proto_tree_add_string(tree, hf_alert, tvb, start, length, msg);
    proto_item_set_generated(ai);
    proto_tree *at = proto_item_add_subtree(ai, ett_alert);
    proto_item_set_generated(proto_tree_add_string(at, hf_alert_name, tvb, start, length, alert_defs[id].abbrev));
    proto_item_set_generated(proto_tree_add_string(at, hf_alert_severity, tvb, start, length,
                                                   severity_name(alert_defs[id].severity)));
    expert_add_info_format(pinfo, ai, &ei[id], "%s", msg);
}

/* The one function that reads the rules: each alert the frame raises, in order. */
typedef void (*alert_visit)(void *ctx, const mailsec_fact *f, const alert_rule *r);

static void visit_alerts(const mailsec_frame *fr, alert_visit visit, void *ctx)
{
    bool raised[array_length(rules)] = { false };
    for (const mailsec_fact *f = fr->facts; f; f = f->next) {
        for (size_t i = 0; i < array_length(rules); i++) {
            const alert_rule *r = &rules[i];
            if (r->fact != f->kind || (r->once_per_frame && raised[i]) || (r->when && !r->when(f)))
                continue;
            visit(ctx, f, r);
            raised[i] = true;
        }
    }
}

typedef struct {
    packet_info *pinfo;
    proto_tree *tree;
    tvbuff_t *tvb;
} raise_ctx;

static void raise_visit(void *ctx, const mailsec_fact *f, const alert_rule *r)
{
    raise_ctx *rc = (raise_ctx *)ctx;
    alert_msg m = { rc->pinfo, NULL };
    r->message(&m, &alert_defs[r->alert], f);
    raise_alert(rc->pinfo, rc->tree, rc->tvb, f, r->alert, m.msg);
}

void mailsec_alerts_add(packet_info *pinfo, proto_tree *tree, tvbuff_t *tvb, const mailsec_frame *fr)
{
    raise_ctx rc = { pinfo, tree, tvb };
    visit_alerts(fr, raise_visit, &rc);
}

typedef struct {
    mailsec_alert_cb cb;
    void *ctx;
} name_ctx;

static void name_visit(void *ctx, const mailsec_fact *f _U_, const alert_rule *r)
{
    name_ctx *nc = (name_ctx *)ctx;
    nc->cb(nc->ctx, alert_defs[r->alert].abbrev, severity_name(alert_defs[r->alert].severity));
}

void mailsec_alerts_each(const mailsec_frame *fr, mailsec_alert_cb cb, void *ctx)
{
    name_ctx nc = { cb, ctx };
    visit_alerts(fr, name_visit, &nc);
}

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
    return a && a->exposed && (a->password || a->token || a->hash);
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
        a->password ? "password" : a->token ? "bearer token" : "hash", user_of(m->pinfo, a));
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
    { MS_FACT_AUTH_RESULT, failed, A_AUTH_FAILED, msg_failed, false },
    { MS_FACT_AUTH_RESULT, brute_force, A_AUTH_BRUTE_FORCE, msg_brute_force, false },
    { MS_FACT_AUTH_RESULT, success_after_failures, A_AUTH_SUCCESS_AFTER_FAILURES, msg_success_after_failures, false },
    { MS_FACT_AUTH_MALFORMED, NULL, A_MALFORMED_SASL, msg_malformed, false },
    { MS_FACT_PROTO, NULL, A_DETECTED_BY_CONTENT, msg_detected, false },
    { MS_FACT_STREAM_GAP, NULL, A_STREAM_GAP, msg_gap, false },
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

/* The one function that reads the rules. */
void mailsec_alerts_add(packet_info *pinfo, proto_tree *tree, tvbuff_t *tvb, const mailsec_frame *fr)
{
    bool raised[array_length(rules)] = { false };
    for (const mailsec_fact *f = fr->facts; f; f = f->next) {
        for (size_t i = 0; i < array_length(rules); i++) {
            const alert_rule *r = &rules[i];
            if (r->fact != f->kind || (r->once_per_frame && raised[i]) || (r->when && !r->when(f)))
                continue;
            alert_msg m = { pinfo, NULL };
            r->message(&m, &alert_defs[r->alert], f);
            raise_alert(pinfo, tree, tvb, f, r->alert, m.msg);
            raised[i] = true;
        }
    }
}

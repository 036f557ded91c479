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

typedef struct {
    packet_info *pinfo;
    proto_tree *tree;
    tvbuff_t *tvb;
} alert_ctx;

static void raise_alert(alert_ctx *ac, alert_id id, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void raise_alert(alert_ctx *ac, alert_id id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = wmem_strdup_vprintf(ac->pinfo->pool, fmt, ap);
    va_end(ap);
    proto_item *ai = proto_tree_add_string(ac->tree, hf_alert, ac->tvb, 0, 0, msg);
    proto_item_set_generated(ai);
    proto_tree *at = proto_item_add_subtree(ai, ett_alert);
    proto_item_set_generated(proto_tree_add_string(at, hf_alert_name, ac->tvb, 0, 0, alert_defs[id].abbrev));
    proto_item_set_generated(proto_tree_add_string(at, hf_alert_severity, ac->tvb, 0, 0,
                                                   severity_name(alert_defs[id].severity)));
    expert_add_info_format(ac->pinfo, ai, &ei[id], "%s", msg);
}

void mailsec_alerts_add(packet_info *pinfo, proto_tree *tree, tvbuff_t *tvb, const mailsec_frame *fr)
{
    alert_ctx ac = { pinfo, tree, tvb };
    bool long_line_done = false;
    for (const mailsec_fact *f = fr->facts; f; f = f->next) {
        switch (f->kind) {
        case MS_FACT_STARTTLS_INJECTED:
            if (f->ival == MS_DIR_C2S)
                raise_alert(&ac, A_STARTTLS_COMMAND_INJECTION,
                    "STARTTLS command injection: %u byte%s of plaintext followed the client's STARTTLS in the same segment",
                    f->orig_len, plurality(f->orig_len, "", "s"));
            else
                raise_alert(&ac, A_STARTTLS_RESPONSE_INJECTION,
                    "STARTTLS response injection: %u byte%s of plaintext followed the server's OK in the same segment",
                    f->orig_len, plurality(f->orig_len, "", "s"));
            break;
        case MS_FACT_STARTTLS_RESULT:
            if (f->ival == MS_STARTTLS_REFUSED)
                raise_alert(&ac, A_STARTTLS_REFUSED, "%s", alert_defs[A_STARTTLS_REFUSED].summary);
            else if (f->ival == MS_STARTTLS_NO_REPLY)
                raise_alert(&ac, A_STARTTLS_NO_REPLY, "%s", alert_defs[A_STARTTLS_NO_REPLY].summary);
            break;
        case MS_FACT_LINE_TOO_LONG:
            if (!long_line_done) {
                raise_alert(&ac, A_LINE_TOO_LONG,
                    "Overlong line from the %s: %d bytes (limit %u, preference mailsec.max_line)",
                    f->ival == MS_DIR_C2S ? "client" : "server", f->ival2, mailsec_prefs.max_line);
                long_line_done = true;
            }
            break;
        case MS_FACT_AUTH_REQUEST: {
            const mailsec_attempt *a = f->attempt;
            if (a && a->exposed && (a->password || a->token || a->hash))
                raise_alert(&ac, A_AUTH_CLEARTEXT, "Credentials in clear: %s %s for %s",
                    esc(pinfo, a->mechanism),
                    a->password ? "password" : a->token ? "bearer token" : "hash",
                    a->username ? esc(pinfo, a->username) : "(no user)");
            break;
        }
        case MS_FACT_AUTH_RESULT: {
            const mailsec_attempt *a = f->attempt;
            const char *user = a && a->username ? esc(pinfo, a->username) : "(no user)";
            guint thr = mailsec_prefs.brute_force_threshold;
            if (f->ival2 == MS_AUTH_FAILURE) {
                raise_alert(&ac, A_AUTH_FAILED, "Authentication failed: %s for %s",
                    a ? esc(pinfo, a->mechanism) : "login", user);
                if (thr && (f->count >= thr || f->client_count >= thr))
                    raise_alert(&ac, A_AUTH_BRUTE_FORCE,
                        "Brute force: %u failed logins in this session, %u from this client (threshold %u)",
                        f->count, f->client_count, thr);
            } else if (f->ival2 == MS_AUTH_SUCCESS && thr &&
                       (f->count >= thr || f->client_count >= thr)) {
                raise_alert(&ac, A_AUTH_SUCCESS_AFTER_FAILURES,
                    "Login as %s succeeded after %u failed logins in this session, %u from this client",
                    user, f->count, f->client_count);
            }
            break;
        }
        case MS_FACT_AUTH_MALFORMED:
            raise_alert(&ac, A_MALFORMED_SASL, "Malformed login exchange: %s",
                f->ival == MS_AUTH_BAD_BASE64 ? "invalid base64"
                : f->ival == MS_AUTH_BAD_MESSAGE ? "the message does not fit the mechanism"
                : "missing or incomplete arguments");
            break;
        case MS_FACT_PROTO:
            raise_alert(&ac, A_DETECTED_BY_CONTENT, "Recognised as %s from its content",
                ms_proto_name((ms_proto)f->ival));
            break;
        case MS_FACT_STREAM_GAP:
            raise_alert(&ac, A_STREAM_GAP,
                "%u byte%s of the %s's stream missing from the capture: what they carried is not analysed",
                f->count, plurality(f->count, "", "s"), f->ival == MS_DIR_C2S ? "client" : "server");
            break;
        default:
            break;
        }
    }
}

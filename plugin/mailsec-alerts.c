/* mailsec-alerts.c — the one place that turns facts into expert info.
 *
 * The core reports what happened (a STARTTLS answered, bytes after it, a line
 * too long); whether that is an alert, in which group and how severe, is
 * decided here and nowhere else.
 */
#include <wireshark.h>

#include <epan/expert.h>
#include <epan/packet.h>

#include "mailsec.h"

static expert_field ei_starttls_command_injection = EI_INIT;
static expert_field ei_starttls_response_injection = EI_INIT;
static expert_field ei_starttls_refused = EI_INIT;
static expert_field ei_starttls_no_reply = EI_INIT;
static expert_field ei_line_too_long = EI_INIT;
static expert_field ei_detected_by_content = EI_INIT;
static expert_field ei_auth_cleartext = EI_INIT;
static expert_field ei_auth_failed = EI_INIT;
static expert_field ei_auth_brute_force = EI_INIT;
static expert_field ei_auth_success_after_failures = EI_INIT;
static expert_field ei_malformed_sasl = EI_INIT;

void mailsec_alerts_register(int proto)
{
    static ei_register_info ei[] = {
        { &ei_starttls_command_injection,
          { "mailsec.starttls.command_injection", PI_SECURITY, PI_ERROR,
            "STARTTLS command injection: plaintext pipelined after STARTTLS/STLS in the same segment",
            EXPFILL } },
        { &ei_starttls_response_injection,
          { "mailsec.starttls.response_injection", PI_SECURITY, PI_ERROR,
            "STARTTLS response injection: server lines sent together with the STARTTLS OK",
            EXPFILL } },
        { &ei_starttls_refused,
          { "mailsec.starttls.refused", PI_SECURITY, PI_WARN,
            "STARTTLS refused: the session stays in clear", EXPFILL } },
        { &ei_starttls_no_reply,
          { "mailsec.starttls.no_reply", PI_SEQUENCE, PI_NOTE,
            "STARTTLS reply missing from the capture: TLS began without it", EXPFILL } },
        { &ei_line_too_long,
          { "mailsec.malformed.line_too_long", PI_MALFORMED, PI_ERROR,
            "Overlong line", EXPFILL } },
        { &ei_auth_cleartext,
          { "mailsec.auth.cleartext", PI_SECURITY, PI_WARN,
            "Credentials in clear: a password, token or hash crossed without TLS", EXPFILL } },
        { &ei_auth_failed,
          { "mailsec.auth.failed", PI_SECURITY, PI_NOTE,
            "Authentication failed", EXPFILL } },
        { &ei_auth_brute_force,
          { "mailsec.auth.brute_force", PI_SECURITY, PI_WARN,
            "Brute force: failed logins reached the threshold", EXPFILL } },
        { &ei_auth_success_after_failures,
          { "mailsec.auth.success_after_failures", PI_SECURITY, PI_ERROR,
            "Login succeeded after repeated failures", EXPFILL } },
        { &ei_malformed_sasl,
          { "mailsec.malformed.sasl", PI_MALFORMED, PI_ERROR,
            "Malformed login exchange", EXPFILL } },
        { &ei_detected_by_content,
          { "mailsec.detected.content", PI_PROTOCOL, PI_CHAT,
            "Mail protocol recognised from the content", EXPFILL } },
    };
    expert_module_t *em = expert_register_protocol(proto);
    expert_register_field_array(em, ei, array_length(ei));
}

void mailsec_alerts_add(packet_info *pinfo, proto_item *ti, const mailsec_frame *fr)
{
    bool long_line_done = false;
    for (const mailsec_fact *f = fr->facts; f; f = f->next) {
        switch (f->kind) {
        case MS_FACT_STARTTLS_INJECTED:
            if (f->ival == MS_DIR_C2S)
                expert_add_info_format(pinfo, ti, &ei_starttls_command_injection,
                    "STARTTLS command injection: %u byte%s of plaintext followed the client's STARTTLS in the same segment",
                    f->orig_len, plurality(f->orig_len, "", "s"));
            else
                expert_add_info_format(pinfo, ti, &ei_starttls_response_injection,
                    "STARTTLS response injection: %u byte%s of plaintext followed the server's OK in the same segment",
                    f->orig_len, plurality(f->orig_len, "", "s"));
            break;
        case MS_FACT_STARTTLS_RESULT:
            if (f->ival == MS_STARTTLS_REFUSED)
                expert_add_info(pinfo, ti, &ei_starttls_refused);
            else if (f->ival == MS_STARTTLS_NO_REPLY)
                expert_add_info(pinfo, ti, &ei_starttls_no_reply);
            break;
        case MS_FACT_LINE_TOO_LONG:
            if (!long_line_done) {
                expert_add_info_format(pinfo, ti, &ei_line_too_long,
                    "Overlong line from the %s: %d bytes (limit %u, preference mailsec.max_line)",
                    f->ival == MS_DIR_C2S ? "client" : "server", f->ival2, mailsec_prefs.max_line);
                long_line_done = true;
            }
            break;
        case MS_FACT_AUTH_REQUEST: {
            const mailsec_attempt *a = f->attempt;
            if (a && a->exposed && (a->password || a->token || a->hash))
                expert_add_info_format(pinfo, ti, &ei_auth_cleartext,
                    "Credentials in clear: %s %s for %s", a->mechanism,
                    a->password ? "password" : a->token ? "bearer token" : "hash",
                    a->username ? a->username : "(no user)");
            break;
        }
        case MS_FACT_AUTH_RESULT: {
            const mailsec_attempt *a = f->attempt;
            const char *user = a && a->username ? a->username : "(no user)";
            guint thr = mailsec_prefs.brute_force_threshold;
            if (f->ival2 == MS_AUTH_FAILURE) {
                expert_add_info_format(pinfo, ti, &ei_auth_failed,
                    "Authentication failed: %s for %s", a ? a->mechanism : "login", user);
                if (thr && (f->count >= thr || f->client_count >= thr))
                    expert_add_info_format(pinfo, ti, &ei_auth_brute_force,
                        "Brute force: %u failed logins in this session, %u from this client (threshold %u)",
                        f->count, f->client_count, thr);
            } else if (f->ival2 == MS_AUTH_SUCCESS && thr &&
                       (f->count >= thr || f->client_count >= thr)) {
                expert_add_info_format(pinfo, ti, &ei_auth_success_after_failures,
                    "Login as %s succeeded after %u failed logins in this session, %u from this client",
                    user, f->count, f->client_count);
            }
            break;
        }
        case MS_FACT_AUTH_MALFORMED:
            expert_add_info_format(pinfo, ti, &ei_malformed_sasl, "Malformed login exchange: %s",
                f->ival == MS_AUTH_BAD_BASE64 ? "invalid base64"
                : f->ival == MS_AUTH_BAD_MESSAGE ? "the message does not fit the mechanism"
                : "missing arguments");
            break;
        case MS_FACT_PROTO:
            expert_add_info_format(pinfo, ti, &ei_detected_by_content,
                "Recognised as %s from its content", ms_proto_name((ms_proto)f->ival));
            break;
        default:
            break;
        }
    }
}

/* packet-mailsec.c — mail forensics on top of Wireshark's SMTP, POP and IMAP:
 * registration, preferences and the postdissector's entry.
 *
 * mailsec is a postdissector: it runs after the built-in dissectors on every
 * frame and never changes what they show. On the first pass it reads each TCP
 * segment of a mail session (its raw payload, or the application data TLS
 * decrypted), feeds the pure core (plugin/core), and stores what the core
 * learnt per frame (mailsec-session.c). Every pass, the GUI's random-order
 * re-dissection included, draws only what was stored (mailsec-render.c), so
 * all passes show the same thing.
 */
#include <wireshark.h>

#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/range.h>

#include "mailsec.h"

int proto_mailsec = -1;

static dissector_handle_t mailsec_handle;
static dissector_handle_t smtp_handle;
static dissector_handle_t pop_handle;
static dissector_handle_t imap_handle;

/* What an attachment's last extension must not be: programs, scripts,
 * shortcuts, disk images and macro-enabled documents. */
#define MAILSEC_DANGEROUS_DEFAULT \
    "exe,scr,com,pif,bat,cmd,vbs,vbe,js,jse,wsf,wsh,hta,msi,msp,jar,ps1,psm1,lnk,cpl,reg,chm,scf,iso,img,vhd,vhdx," \
    "dll,apk,application,gadget,docm,dotm,xlsm,xltm,xlam,pptm,potm,ppam,sldm"

mailsec_prefs_t mailsec_prefs = {
    .heuristic = TRUE, .max_line = 4096, .brute_force_threshold = 5, .hide_secrets = FALSE,
    .enum_threshold = 3, .mass_rcpt_threshold = 50, .mass_msg_threshold = 20,
    .dangerous_extensions = MAILSEC_DANGEROUS_DEFAULT,
    .msg_max_header = 1024, .msg_max_depth = 32, .msg_max_parts = 256, .msg_max_urls = 64,
    .max_records = 10000,
    .export_max_mb = 50, .pop3_imf = TRUE,
};

dissector_handle_t mailsec_builtin_handle(ms_proto p)
{
    switch (p) {
    case MS_PROTO_SMTP: return smtp_handle;
    case MS_PROTO_POP3: return pop_handle;
    case MS_PROTO_IMAP: return imap_handle;
    default: return NULL;
    }
}

/* Per file. Nothing is allocated while mailsec is disabled. */
static void mailsec_init(void)
{
    if (!proto_is_protocol_enabled(find_protocol_by_id(proto_mailsec)))
        return;
    mailsec_extract_init();
    mailsec_session_init();
    mailsec_render_init();
    mailsec_alerts_init();
    mailsec_tap_init();
    mailsec_layouts_init();
}

static void mailsec_cleanup(void)
{
    mailsec_extract_cleanup();
    mailsec_session_cleanup();
}

static int dissect_mailsec(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    if (pinfo->ptype != PT_TCP)
        return 0;
    mailsec_frame *fr = mailsec_session_frame(pinfo);
    if (!fr)
        return 0;
    mailsec_layouts_frame(pinfo);
    mailsec_tap_frame(pinfo, fr);
    if (PINFO_FD_VISITED(pinfo) && mailsec_export_wanted())
        mailsec_session_replay(pinfo);
    mailsec_export_imf(tvb, pinfo, tree, fr);
    if (mailsec_render_wanted(tree))
        mailsec_render(tvb, pinfo, tree, fr);
    else if (tree)
        proto_tree_add_item(tree, proto_mailsec, tvb, 0, 0, ENC_NA);
    return MAX(1, (int)tvb_captured_length(tvb));
}

/* ---- registration ----------------------------------------------------------- */

/* Every line buffer is bounded: a larger max_line counts as the core's limit,
 * and the preference says so (the alert's message quotes it). */
static void apply_prefs(void)
{
    if (mailsec_prefs.max_line > MS_MAX_LINE_LIMIT)
        mailsec_prefs.max_line = (guint)MS_MAX_LINE_LIMIT;
}

void proto_register_mailsec(void)
{
    proto_mailsec = proto_register_protocol("Mail Forensics", "MAILSEC", "mailsec");
    mailsec_render_register(proto_mailsec);
    mailsec_facts_register(proto_mailsec);
    mailsec_mail_register(proto_mailsec);
    mailsec_alerts_register(proto_mailsec);
    mailsec_tap_register();
    mailsec_hash_register();
    mailsec_export_register(proto_mailsec);
    mailsec_layouts_register(proto_mailsec);

    range_convert_str(wmem_epan_scope(), &mailsec_prefs.smtp_ports, "25,587", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.smtps_ports, "465", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.pop_ports, "110", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.pops_ports, "995", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.imap_ports, "143", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.imaps_ports, "993", 65535);
    range_convert_str(wmem_epan_scope(), &mailsec_prefs.starttls_ports, "587", 65535);

    module_t *m = prefs_register_protocol(proto_mailsec, apply_prefs);
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
    prefs_register_range_preference(m, "starttls_ports", "Ports that offer STARTTLS",
        "Server ports whose capability lists are expected to offer STARTTLS/STLS: one that lacks it "
        "is noted (capability stripped)", &mailsec_prefs.starttls_ports, 65535);
    prefs_register_bool_preference(m, "heuristic", "Recognise mail on other ports",
        "Recognise SMTP, POP3 and IMAP by their greeting or first command on any TCP port, "
        "and hand such sessions to the built-in dissector",
        &mailsec_prefs.heuristic);
    prefs_register_uint_preference(m, "max_line", "Longest normal line (bytes)",
        "Lines longer than this raise a malformed alert; at most 1048576 (a larger value counts as that)",
        10, &mailsec_prefs.max_line);
    prefs_register_uint_preference(m, "brute_force_threshold", "Brute-force threshold",
        "Failed logins in one session, or from one client address, that raise a brute-force alert",
        10, &mailsec_prefs.brute_force_threshold);
    prefs_register_uint_preference(m, "enum_threshold", "Enumeration threshold",
        "VRFY, EXPN and refused RCPT probes in one session, or from one client address, that raise an "
        "enumeration alert", 10, &mailsec_prefs.enum_threshold);
    prefs_register_uint_preference(m, "mass_rcpt_threshold", "Mass-mailing threshold: recipients",
        "RCPT TO in one session, or from one client address, that raise a mass-mailing alert",
        10, &mailsec_prefs.mass_rcpt_threshold);
    prefs_register_uint_preference(m, "mass_msg_threshold", "Mass-mailing threshold: messages",
        "Messages sent in one session, or from one client address, that raise a mass-mailing alert",
        10, &mailsec_prefs.mass_msg_threshold);
    prefs_register_string_preference(m, "dangerous_extensions", "Dangerous attachment extensions",
        "File name extensions (comma separated) that raise a dangerous-attachment alert",
        &mailsec_prefs.dangerous_extensions);
    prefs_register_uint_preference(m, "msg_max_header", "Longest header kept (bytes)",
        "Header values longer than this are cut (mailsec.msg.header_cut)", 10, &mailsec_prefs.msg_max_header);
    prefs_register_uint_preference(m, "msg_max_depth", "MIME nesting followed",
        "Deeper parts are hashed with their parent but not examined (mailsec.msg.limit)", 10,
        &mailsec_prefs.msg_max_depth);
    prefs_register_uint_preference(m, "msg_max_parts", "MIME parts examined per message",
        "Later parts are hashed with the message but not examined (mailsec.msg.limit)", 10,
        &mailsec_prefs.msg_max_parts);
    prefs_register_uint_preference(m, "msg_max_urls", "URLs reported per message",
        "More are not reported (mailsec.msg.limit)", 10, &mailsec_prefs.msg_max_urls);
    prefs_register_uint_preference(m, "max_records", "Records of one kind kept per session",
        "Logins, probes, replies, envelope addresses, headers ... of one session past this many are counted "
        "(verdicts and thresholds go on) but not shown (mailsec.session.record_limit); 0: no cap",
        10, &mailsec_prefs.max_records);
    prefs_register_uint_preference(m, "export_max_mb", "Longest message exported whole (MB)",
        "Export Objects writes the first this many megabytes of a longer message, named -truncated",
        10, &mailsec_prefs.export_max_mb);
    prefs_register_bool_preference(m, "pop3_imf", "POP3 messages to IMF",
        "Hand each message a POP3 RETR or TOP returned (dot-stuffing undone) to the IMF dissector, so imf.* "
        "fields and Export Objects > IMF show POP3 mail too, unless the POP3 dissector already did",
        &mailsec_prefs.pop3_imf);
    prefs_register_bool_preference(m, "hide_secrets", "Hide secrets",
        "Show passwords and tokens as ******** (users and hashes stay), for screenshots and reports",
        &mailsec_prefs.hide_secrets);
    register_init_routine(mailsec_init);
    register_cleanup_routine(mailsec_cleanup);

    mailsec_handle = create_dissector_handle(dissect_mailsec, proto_mailsec);
    register_postdissector(mailsec_handle);
    mailsec_heur_register();
}

void proto_reg_handoff_mailsec(void)
{
    smtp_handle = find_dissector_add_dependency("smtp", proto_mailsec);
    pop_handle = find_dissector_add_dependency("pop", proto_mailsec);
    imap_handle = find_dissector_add_dependency("imap", proto_mailsec);
    mailsec_extract_handoff();
    mailsec_heur_handoff();
    mailsec_tls_handoff();
    mailsec_export_handoff();
    mailsec_layouts_handoff();
}

/* mailsec-heur.c — recognise mail on TCP ports nobody registered.
 *
 * The first payload of a conversation decides: a server greeting naming SMTP,
 * "+OK", "* OK"/"* PREAUTH", or a client's unambiguous first command. A yes
 * pins the conversation to the built-in dissector (through a small handle that
 * tells it which side is the server); a no is final for that conversation, so
 * FTP's "220 … FTP" followed by "USER" is never taken for POP3.
 */
#include <wireshark.h>

#include <string.h>

#include <epan/conversation.h>
#include <epan/packet.h>

#include "mailsec.h"

static dissector_handle_t mailsec_conv_handle;

/* Longest first line we look at: greetings and commands are short. */
#define MAILSEC_HEUR_LINE_MAX 512
/* Payloads of a reply not naming SMTP waited through for the client's line. */
#define MAILSEC_HEUR_WEAK_MAX 8

bool mailsec_recognise_payload(mailsec_claim *mc, packet_info *pinfo, tvbuff_t *tvb, int offset)
{
    if (mc->claimed != MS_PROTO_UNKNOWN)
        return true;
    if (mc->given_up || !tvb)
        return false;
    gint avail = tvb_captured_length_remaining(tvb, offset);
    if (avail <= 0)
        return false;
    gint n = MIN(avail, MAILSEC_HEUR_LINE_MAX);
    const guint8 *p = tvb_get_ptr(tvb, offset, n);
    size_t len = ms_first_line_len(p, (size_t)n);
    ms_guess server = ms_detect_server_line(p, len);
    ms_guess client = ms_detect_client_line(p, len);
    if (mc->weak_payloads) {
        /* after a reply that did not name SMTP: only the other side's
         * unambiguous SMTP command decides, and then it is SMTP */
        if (pinfo->srcport == mc->weak_port && server.proto == MS_PROTO_SMTP && !server.strong &&
            mc->weak_payloads < MAILSEC_HEUR_WEAK_MAX) {
            mc->weak_payloads++; /* more of the same reply */
            return false;
        }
        server.strong = false;
        if (pinfo->srcport == mc->weak_port || client.proto != MS_PROTO_SMTP)
            client.strong = false;
    }
    if (server.strong) {
        mc->claimed = server.proto;
        mc->server_is_src = true;
        mc->server_port = pinfo->srcport;
    } else if (client.strong) {
        mc->claimed = client.proto;
        mc->server_is_src = false;
        mc->server_port = pinfo->destport;
    } else if (!mc->weak_payloads && server.proto == MS_PROTO_SMTP && len >= 3 && p[0] == '2') {
        /* "220 Greetings": SMTP, or FTP, or anything that numbers its
         * replies; the client's first command will tell */
        mc->weak_payloads = 1;
        mc->weak_port = pinfo->srcport;
        return false;
    } else {
        mc->given_up = true;
        return false;
    }
    return true;
}

/* The conversation dissector of a claimed session: the built-in dissectors
 * tell requests from responses by pinfo->match_uint, which only a port table
 * lookup sets, so set it to the server's port before handing over. */
static int dissect_mailsec_conv(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    conversation_t *conv = find_conversation_pinfo(pinfo, 0);
    mailsec_conv *mc = conv ? mailsec_conv_lookup(conv) : NULL;
    if (!mc || !mc->builtin)
        return 0;
    guint32 saved = pinfo->match_uint;
    pinfo->match_uint = mc->claim.server_port;
    int r = call_dissector_only(mc->builtin, tvb, pinfo, tree, data);
    pinfo->match_uint = saved;
    return r;
}

static gboolean dissect_mailsec_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    if (!mailsec_prefs.heuristic || tvb_captured_length(tvb) < 3)
        return FALSE;
    conversation_t *conv = find_or_create_conversation(pinfo);
    mailsec_conv *mc = mailsec_conv_lookup(conv);
    if (mc == &mailsec_conv_not_mail || (mc && (mc->core || mc->closed)))
        return FALSE;
    /* Recognise on the stack: a conversation that is not mail gets only the
     * shared marker, no allocation of its own. */
    mailsec_claim claim;
    if (mc)
        claim = mc->claim;
    else
        memset(&claim, 0, sizeof claim);
    if (!mailsec_recognise_payload(&claim, pinfo, tvb, 0)) {
        mailsec_conv_unclaimed(conv, mc, &claim, pinfo);
        return FALSE;
    }
    dissector_handle_t builtin = mailsec_builtin_handle(claim.claimed);
    if (!builtin)
        return FALSE;
    if (mc)
        mc->claim = claim;
    else
        mc = mailsec_conv_create(conv, &claim);
    mc->builtin = builtin;
    /* from this frame on: a greeting the decision waited past stays as it
     * was dissected, in every pass */
    conversation_set_dissector_from_frame_number(conv, pinfo->num, mailsec_conv_handle);
    dissect_mailsec_conv(tvb, pinfo, tree, data);
    return TRUE;
}

void mailsec_heur_register(void)
{
    mailsec_conv_handle = create_dissector_handle(dissect_mailsec_conv, proto_mailsec);
}

void mailsec_heur_handoff(void)
{
    heur_dissector_add("tcp", dissect_mailsec_heur, "Mail (SMTP, POP3, IMAP) on any TCP port",
                       "mailsec_tcp", proto_mailsec, HEURISTIC_ENABLE);
}

/* mailsec-stats.c — Statistics → Mail Forensics, `tshark -q -z mailsec,tree`.
 *
 * A stats tree on the mailsec tap: it reads each analysed frame's stored
 * record (the same one the tree is drawn from) and counts sessions, STARTTLS
 * outcomes, logins, exposed credentials, probes, messages, attachments and
 * alerts, and which client addresses failed logins, probed and addressed
 * recipients most.
 */
#include <wireshark.h>

#include <epan/packet.h>
#include <epan/stats_tree.h>
#include <epan/tap.h>
#include <epan/to_str.h>

#include "mailsec.h"

static int st_sessions = -1, st_starttls = -1, st_logins = -1, st_exposed = -1, st_probes = -1,
           st_messages = -1, st_recipients = -1, st_attachments = -1, st_alerts = -1,
           st_by_failed = -1, st_by_probes = -1, st_by_rcpt = -1;

/* Sessions seen (tcp.stream → the node path they were counted under), so
 * that each is counted once, and moved when its content corrects the
 * protocol the port suggested. Reset with the tree. */
typedef struct {
    guint8 proto, transport, detect;
} session_key;

static GHashTable *sessions;
static GHashTable *mechanisms; /* mechanism name → its node under Logins */

static const char *client_address(packet_info *pinfo, const mailsec_frame *fr)
{
    return address_to_str(pinfo->pool, fr->dir == MS_DIR_C2S ? &pinfo->src : &pinfo->dst);
}

static void count_session(stats_tree *st, const session_key *k, int by)
{
    int p = increase_stat_node(st, ms_proto_name((ms_proto)k->proto), st_sessions, TRUE, by);
    int t = increase_stat_node(st, ms_transport_name((ms_transport)k->transport), p, TRUE, by);
    increase_stat_node(st, ms_detect_name((ms_detect)k->detect), t, FALSE, by);
    increase_stat_node(st, "Sessions", 0, TRUE, by);
}

static void session_seen(stats_tree *st, const mailsec_frame *fr)
{
    session_key now = { fr->proto, fr->transport, fr->detected_by };
    session_key *had = (session_key *)g_hash_table_lookup(sessions, GUINT_TO_POINTER(fr->stream + 1));
    if (had && had->proto == now.proto && had->transport == now.transport && had->detect == now.detect)
        return;
    if (had) {
        /* counted where it is now: after STARTTLS, or where its content
         * corrected the protocol the port suggested */
        count_session(st, had, -1);
        *had = now;
    } else {
        had = g_new(session_key, 1);
        *had = now;
        g_hash_table_insert(sessions, GUINT_TO_POINTER(fr->stream + 1), had);
    }
    count_session(st, &now, 1);
}

static void alert_seen(void *ctx, const char *abbrev, const char *severity)
{
    stats_tree *st = (stats_tree *)ctx;
    int s = tick_stat_node(st, severity, st_alerts, TRUE);
    tick_stat_node(st, abbrev, s, FALSE);
    tick_stat_node(st, "Alerts", 0, TRUE);
}

static void starttls(stats_tree *st, const char *what)
{
    tick_stat_node(st, "STARTTLS", 0, TRUE);
    tick_stat_node(st, what, st_starttls, FALSE);
}

static void fact_seen(stats_tree *st, packet_info *pinfo, const mailsec_frame *fr, const mailsec_fact *f)
{
    switch (f->kind) {
    case MS_FACT_STARTTLS_RESULT:
        starttls(st, ms_starttls_result_name(f->core.starttls_result.result));
        break;
    case MS_FACT_STARTTLS_CONFIRMED:
        starttls(st, "TLS began");
        break;
    case MS_FACT_STARTTLS_STRIPPED:
        starttls(st, "stripped (accepted, then no TLS)");
        break;
    case MS_FACT_STARTTLS_UNUSED:
        starttls(st, "offered, not used");
        break;
    case MS_FACT_CAPABILITY_STRIPPED:
        starttls(st, "missing from a capability list");
        break;
    case MS_FACT_AUTH_REQUEST: {
        const mailsec_attempt *a = f->u.attempt;
        if (!a)
            break;
        tick_stat_node(st, "Logins", 0, TRUE);
        g_hash_table_insert(mechanisms, (gpointer)a->mechanism,
                            GINT_TO_POINTER(tick_stat_node(st, a->mechanism, st_logins, TRUE)));
        if (a->exposed && (a->password || a->token || a->hash || a->material)) {
            tick_stat_node(st, "Exposed credentials", 0, TRUE);
            int p = tick_stat_node(st, ms_proto_name((ms_proto)a->proto), st_exposed, TRUE);
            tick_stat_node(st, a->mechanism, p, FALSE);
        }
        break;
    }
    case MS_FACT_AUTH_RESULT: {
        const mailsec_attempt *a = f->u.auth_result.attempt;
        if (a && a->mechanism) {
            /* the request counted the mechanism; its verdict is a child */
            int mech = GPOINTER_TO_INT(g_hash_table_lookup(mechanisms, a->mechanism));
            if (!mech)
                mech = tick_stat_node(st, a->mechanism, st_logins, TRUE);
            tick_stat_node(st, ms_auth_result_name(f->u.auth_result.result), mech, FALSE);
        }
        if (f->u.auth_result.result == MS_AUTH_FAILURE) {
            tick_stat_node(st, "Failed logins by client", 0, TRUE);
            tick_stat_node(st, client_address(pinfo, fr), st_by_failed, FALSE);
        }
        break;
    }
    case MS_FACT_PROBE: {
        const ms_fact_probe *p = &f->core.probe;
        if (p->verdict == MS_PROBE_PENDING)
            break;
        tick_stat_node(st, "Probes", 0, TRUE);
        int c = tick_stat_node(st, mailsec_probe_command_name(p->command), st_probes, TRUE);
        tick_stat_node(st, mailsec_probe_verdict_name(p->verdict), c, FALSE);
        tick_stat_node(st, "Probes by client", 0, TRUE);
        tick_stat_node(st, client_address(pinfo, fr), st_by_probes, FALSE);
        break;
    }
    case MS_FACT_ENVELOPE:
        if (f->core.envelope.kind != MS_ENVELOPE_RCPT)
            break;
        tick_stat_node(st, "Recipients (RCPT TO)", 0, FALSE);
        tick_stat_node(st, "Recipients by client", 0, TRUE);
        tick_stat_node(st, client_address(pinfo, fr), st_by_rcpt, FALSE);
        break;
    case MS_FACT_MSG_END:
        tick_stat_node(st, "Messages", 0, TRUE);
        tick_stat_node(st, mailsec_body_source_name(f->core.msg_end.source), st_messages, FALSE);
        break;
    case MS_FACT_MSG_ATTACHMENT: {
        tick_stat_node(st, "Attachments", 0, TRUE);
        const char *why;
        if (f->u.mail.text && mailsec_dangerous_name(f->u.mail.text, &why))
            tick_stat_node(st, "dangerous", st_attachments, FALSE);
        break;
    }
    default:
        break;
    }
}

static tap_packet_status stats_packet(stats_tree *st, packet_info *pinfo, epan_dissect_t *edt _U_, const void *p,
                                      tap_flags_t flags _U_)
{
    const mailsec_frame *fr = (const mailsec_frame *)p;
    if (!fr)
        return TAP_PACKET_DONT_REDRAW;
    session_seen(st, fr);
    for (const mailsec_fact *f = fr->facts; f; f = f->next)
        fact_seen(st, pinfo, fr, f);
    mailsec_alerts_each(fr, alert_seen, st);
    return TAP_PACKET_REDRAW;
}

static void stats_init(stats_tree *st)
{
    if (sessions)
        g_hash_table_destroy(sessions);
    sessions = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    if (mechanisms)
        g_hash_table_destroy(mechanisms);
    mechanisms = g_hash_table_new(g_str_hash, g_str_equal);
    st_sessions = stats_tree_create_node(st, "Sessions", 0, STAT_DT_INT, TRUE);
    st_starttls = stats_tree_create_node(st, "STARTTLS", 0, STAT_DT_INT, TRUE);
    st_logins = stats_tree_create_node(st, "Logins", 0, STAT_DT_INT, TRUE);
    st_exposed = stats_tree_create_node(st, "Exposed credentials", 0, STAT_DT_INT, TRUE);
    st_probes = stats_tree_create_node(st, "Probes", 0, STAT_DT_INT, TRUE);
    st_messages = stats_tree_create_node(st, "Messages", 0, STAT_DT_INT, TRUE);
    st_recipients = stats_tree_create_node(st, "Recipients (RCPT TO)", 0, STAT_DT_INT, FALSE);
    st_attachments = stats_tree_create_node(st, "Attachments", 0, STAT_DT_INT, TRUE);
    st_alerts = stats_tree_create_node(st, "Alerts", 0, STAT_DT_INT, TRUE);
    st_by_failed = stats_tree_create_node(st, "Failed logins by client", 0, STAT_DT_INT, TRUE);
    st_by_probes = stats_tree_create_node(st, "Probes by client", 0, STAT_DT_INT, TRUE);
    st_by_rcpt = stats_tree_create_node(st, "Recipients by client", 0, STAT_DT_INT, TRUE);
}

static void stats_cleanup(stats_tree *st _U_)
{
    if (sessions)
        g_hash_table_destroy(sessions);
    sessions = NULL;
    if (mechanisms)
        g_hash_table_destroy(mechanisms);
    mechanisms = NULL;
}

void mailsec_stats_register(void)
{
    stats_tree_register_plugin("mailsec", "mailsec", "Mail Forensics", 0, stats_packet, stats_init, stats_cleanup);
}

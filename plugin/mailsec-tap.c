/* mailsec-tap.c — every login attempt into Wireshark's "credentials" tap, so
 * `tshark -z credentials` and Tools → Credentials list them.
 *
 * The tap's record type lives in ui/tap-credentials.h, which the development
 * packages do not ship; this struct has the same layout (Wireshark 4.0–4.4),
 * and a test proves it by reading `tshark -z credentials`.
 */
#include <wireshark.h>

#include <epan/packet.h>
#include <epan/tap.h>

#include "mailsec.h"

typedef struct {
    guint num;
    guint username_num;
    guint password_hf_id;
    gchar *username;
    const gchar *proto;
    gchar *info;
} mailsec_tap_credential_t;

static int credentials_tap = -1;

void mailsec_tap_handoff(void)
{
    credentials_tap = find_tap_id("credentials");
}

void mailsec_tap_credential(packet_info *pinfo, const mailsec_attempt *a, int password_hf)
{
    if (credentials_tap < 0 || !have_tap_listener(credentials_tap))
        return;
    mailsec_tap_credential_t *c = wmem_new0(pinfo->pool, mailsec_tap_credential_t);
    c->num = pinfo->num;
    c->username_num = pinfo->num;
    c->password_hf_id = (guint)password_hf;
    c->username = wmem_strdup(pinfo->pool, a->username ? a->username : "");
    c->proto = a->proto == MS_PROTO_SMTP ? "SMTP" : a->proto == MS_PROTO_POP3 ? "POP3" : "IMAP";
    c->info = wmem_strdup_printf(pinfo->pool, "mailsec: %s, attempt %u%s%s", a->mechanism, a->number,
                                 a->password ? ", password" : a->token ? ", token" : "",
                                 a->hash ? ", hash" : "");
    tap_queue_packet(credentials_tap, pinfo, c);
}

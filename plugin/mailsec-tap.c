/* mailsec-tap.c — the taps mailsec feeds, from one place: once per analysed
 * frame, whether or not its tree is drawn.
 *
 * "mailsec": the frame's stored record (const mailsec_frame *), for
 * statistics and listeners that want mailsec's facts without a tree.
 * "credentials": every completed login request, so `tshark -z credentials`
 * and Tools → Credentials list them.
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

static int mailsec_tap = -1;
static int credentials_tap = -1;

void mailsec_tap_register(void)
{
    mailsec_tap = register_tap("mailsec");
}

void mailsec_tap_init(void)
{
    /* the record's layout is ours to mirror only where it was checked */
    credentials_tap = mailsec_layouts_ok() ? find_tap_id("credentials") : -1;
}

bool mailsec_tap_listening(void)
{
    return (mailsec_tap >= 0 && have_tap_listener(mailsec_tap)) ||
           (credentials_tap > 0 && have_tap_listener(credentials_tap));
}

static void tap_credential(packet_info *pinfo, const mailsec_attempt *a)
{
    mailsec_tap_credential_t *c = wmem_new0(pinfo->pool, mailsec_tap_credential_t);
    c->num = pinfo->num;
    c->username_num = pinfo->num;
    c->password_hf_id = (guint)mailsec_hf_password();
    c->username = wmem_strdup(pinfo->pool, a->username ? a->username : "");
    c->proto = a->proto == MS_PROTO_SMTP ? "SMTP" : a->proto == MS_PROTO_POP3 ? "POP3" : "IMAP";
    c->info = wmem_strdup_printf(pinfo->pool, "mailsec: %s, attempt %u%s%s", a->mechanism, a->number,
                                 a->password ? ", password" : a->token ? ", token" : "",
                                 a->hash ? ", hash" : "");
    tap_queue_packet(credentials_tap, pinfo, c);
}

void mailsec_tap_frame(packet_info *pinfo, const mailsec_frame *fr)
{
    if (mailsec_tap >= 0 && have_tap_listener(mailsec_tap))
        tap_queue_packet(mailsec_tap, pinfo, fr);
    if (credentials_tap > 0 && have_tap_listener(credentials_tap))
        for (const mailsec_fact *f = fr->facts; f; f = f->next)
            if (f->kind == MS_FACT_AUTH_REQUEST && f->u.attempt)
                tap_credential(pinfo, f->u.attempt);
}

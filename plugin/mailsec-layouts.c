/* mailsec-layouts.c — the guard on Wireshark's private layouts.
 *
 * Two structures mailsec reads are not in the development package: the TLS
 * dissector's per-frame record store (SslPacketInfo, read by mailsec-tls.c)
 * and the credentials tap's record (mailsec-tap.c mirrors it). Their layouts
 * were checked for the release series below. Under any other run-time
 * libwireshark, mailsec reads neither — no decrypted mail, no credentials tap
 * — and says so once: in the log at start-up, and as an expert note on the
 * first mail frame of a capture.
 */
#include <wireshark.h>

#include <epan/epan.h>
#include <epan/expert.h>
#include <epan/packet.h>

#include "mailsec.h"

/* The release series whose layouts were compared (any point release). */
static const struct {
    int major, minor;
} checked[] = { { 4, 0 }, { 4, 2 }, { 4, 4 } };

static bool layouts_ok = true;
static int run_major, run_minor, run_micro;
static expert_field ei_unchecked = EI_INIT;
static guint32 first_mail_frame; /* of the open file; 0: none yet */

bool mailsec_layouts_ok(void)
{
    return layouts_ok;
}

void mailsec_layouts_register(int proto)
{
    static ei_register_info ei[] = {
        { &ei_unchecked, { "mailsec.layout_unchecked", PI_UNDECODED, PI_NOTE,
            "This Wireshark release is not one mailsec was checked against: decrypted TLS data and the "
            "credentials tap are not read", EXPFILL } },
    };
    expert_register_field_array(expert_register_protocol(proto), ei, array_length(ei));
}

void mailsec_layouts_handoff(void)
{
    epan_get_version_number(&run_major, &run_minor, &run_micro);
    layouts_ok = false;
    for (size_t i = 0; i < array_length(checked); i++)
        if (checked[i].major == run_major && checked[i].minor == run_minor)
            layouts_ok = true;
    if (!layouts_ok)
        ws_warning("mailsec: libwireshark %d.%d.%d is not a release mailsec's copies of its private layouts were "
                   "checked against (4.0, 4.2, 4.4): decrypted TLS data and the credentials tap are not read",
                   run_major, run_minor, run_micro);
}

void mailsec_layouts_init(void)
{
    first_mail_frame = 0;
}

void mailsec_layouts_frame(packet_info *pinfo)
{
    if (!layouts_ok && !first_mail_frame && !PINFO_FD_VISITED(pinfo))
        first_mail_frame = pinfo->num;
}

void mailsec_layouts_note(packet_info *pinfo, proto_item *item)
{
    if (!layouts_ok && pinfo->num == first_mail_frame)
        expert_add_info_format(pinfo, item, &ei_unchecked,
                               "libwireshark %d.%d.%d is not a release mailsec was checked against: decrypted "
                               "TLS data and the credentials tap are not read", run_major, run_minor, run_micro);
}

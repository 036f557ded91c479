/* plugin.c — the symbols Wireshark's plugin loader looks for.
 *
 * The in-tree helper that generates this file is not shipped in the
 * development packages, so it is written by hand.
 */
#include <gmodule.h>
#include <wireshark.h>
#include <epan/packet.h>
#include <epan/proto.h>
#include <epan/tap.h>

#include "mailsec-compat.h"
#include "mailsec.h"

#ifndef MAILSEC_VERSION
#define MAILSEC_VERSION "0.0.0"
#endif

WS_DLL_PUBLIC_DEF const gchar plugin_version[] = MAILSEC_VERSION;
WS_DLL_PUBLIC_DEF const int plugin_want_major = WIRESHARK_VERSION_MAJOR;
WS_DLL_PUBLIC_DEF const int plugin_want_minor = WIRESHARK_VERSION_MINOR;

WS_DLL_PUBLIC void plugin_register(void);
#ifdef MAILSEC_HAVE_PLUGIN_DESCRIBE
WS_DLL_PUBLIC uint32_t plugin_describe(void);

uint32_t plugin_describe(void)
{
    return WS_PLUGIN_DESC_DISSECTOR | WS_PLUGIN_DESC_TAP_LISTENER;
}
#endif

void plugin_register(void)
{
    static proto_plugin plug;
    static tap_plugin stats;

    plug.register_protoinfo = proto_register_mailsec;
    plug.register_handoff = proto_reg_handoff_mailsec;
    proto_register_plugin(&plug);
    stats.register_tap_listener = mailsec_stats_register; /* Statistics → Mail Forensics */
    tap_register_plugin(&stats);
}

/* mailsec-compat.h — the one place where Wireshark 4.0, 4.2 and 4.4 differ for us.
 *
 * Built and tested against 4.0 (Debian 12). The later API changes we touch are
 * guarded here by version tests so the rest of the code reads the same.
 */
#ifndef MAILSEC_COMPAT_H
#define MAILSEC_COMPAT_H

#include <ws_version.h>

#define MAILSEC_WS_AT_LEAST(maj, min) \
    (WIRESHARK_VERSION_MAJOR > (maj) || \
     (WIRESHARK_VERSION_MAJOR == (maj) && WIRESHARK_VERSION_MINOR >= (min)))

/* 4.2 renamed the byte getters (the old names stayed as macros until 4.4). */
#if MAILSEC_WS_AT_LEAST(4, 2)
#define mailsec_tvb_get_u8 tvb_get_uint8
#else
#define mailsec_tvb_get_u8 tvb_get_guint8
#endif

/* 4.2 moved boolean preferences from gboolean to bool. */
#if MAILSEC_WS_AT_LEAST(4, 2)
typedef bool mailsec_pref_bool;
#else
typedef gboolean mailsec_pref_bool;
#endif

/* 4.2 added plugin_describe() and the plugin type flags. */
#if MAILSEC_WS_AT_LEAST(4, 2)
#define MAILSEC_HAVE_PLUGIN_DESCRIBE 1
#endif

/* 4.2 made field_info's value a pointer. */
#if MAILSEC_WS_AT_LEAST(4, 2)
#define MAILSEC_FI_FVALUE(fi) ((fi)->value)
#else
#define MAILSEC_FI_FVALUE(fi) (&(fi)->value)
#endif

/* Where the TLS dissector keeps a frame's decrypted records (SslPacketInfo):
 * 4.0 passes a layer number around but stores every record under key 0
 * (checked on 4.0.17); later versions may key by layer, so there every key up
 * to the frame's depth is probed. */
#if MAILSEC_WS_AT_LEAST(4, 2)
#define MAILSEC_TLS_KEYED_BY_LAYER 1
#else
#define MAILSEC_TLS_KEYED_BY_LAYER 0
#endif

#endif

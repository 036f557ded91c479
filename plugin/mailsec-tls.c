/* mailsec-tls.c — the application data TLS decrypted, record by record.
 *
 * The TLS dissector keeps each decrypted record of a frame in its per-frame
 * data (SslPacketInfo, packet-tls-utils.h), with the record's content type and,
 * for application data, its offset in the flow. Reading it there gives every
 * byte once and in order, whatever the mail dissector on top did with it.
 */
#include <wireshark.h>

#include <epan/packet.h>
#include <epan/proto_data.h>
#include <epan/dissectors/packet-tls-utils.h>

#include "mailsec.h"

static int proto_tls = -1;

/* Layer numbers are small; where the TLS dissector keys its data by the layer
 * it ran at (MAILSEC_TLS_KEYED_BY_LAYER), every key up to the frame's depth is
 * looked at. */
#define MAILSEC_MAX_LAYER 64

guint mailsec_tls_feed_records(packet_info *pinfo, mailsec_tls_pos *pos, ms_dir dir,
                               mailsec_record_cb cb, void *ctx)
{
    if (proto_tls <= 0 || !mailsec_layouts_ok())
        return 0;
    guint fed = 0;
#if MAILSEC_TLS_KEYED_BY_LAYER
    guint layers = pinfo->layers ? wmem_list_count(pinfo->layers) : 0;
    for (guint key = 0; key <= layers + 1 && key < MAILSEC_MAX_LAYER; key++) {
#else
    for (guint key = 0; key < 1; key++) {
#endif
        SslPacketInfo *pi = (SslPacketInfo *)p_get_proto_data(wmem_file_scope(), pinfo, proto_tls, key);
        if (!pi)
            continue;
        for (SslRecordInfo *rec = pi->records; rec; rec = rec->next) {
            if (rec->type != SSL_ID_APP_DATA || rec->data_len == 0)
                continue;
            guint skip = 0;
            if (rec->flow && rec->flow == pos->flow[dir]) {
                /* the same flow: drop what was already fed */
                guint32 end = rec->seq + rec->data_len;
                if ((gint32)(end - pos->next[dir]) <= 0)
                    continue;
                if ((gint32)(pos->next[dir] - rec->seq) > 0)
                    skip = pos->next[dir] - rec->seq;
            }
            if (rec->flow) {
                pos->flow[dir] = rec->flow;
                pos->next[dir] = rec->seq + rec->data_len;
            }
            cb(ctx, rec->plain_data + skip, rec->data_len - skip);
            fed++;
        }
    }
    return fed;
}

void mailsec_tls_handoff(void)
{
    proto_tls = proto_get_id_by_filter_name("tls");
}

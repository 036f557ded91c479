/* mailsec-extract.c — what mailsec reads from other layers: the frame's TCP
 * segment, its conversation and stream index, and which built-in mail
 * dissector ran on it. Nothing here keeps state beyond one frame, except a
 * cache that gives the same answers as the lookups it saves.
 */
#include <wireshark.h>

#include <epan/conversation.h>
#include <epan/packet.h>
#include <epan/dissectors/packet-tcp.h>
#include <wsutil/pint.h>

#include "mailsec.h"

static int proto_tcp = -1;
static int proto_smtp = -1;
static int proto_pop = -1;
static int proto_imap = -1;

/* ---- the TCP segment of the frame ------------------------------------------ */

/* mailsec asks Wireshark for no field: a postdissector's wanted fields make
 * every frame of every protocol build a tree and index those fields, which
 * costs more than the whole analysis. Instead it sees each TCP segment on its
 * way in: the ip.proto entry for TCP is a transparent handle that notes the
 * segment's tvb and hands the same arguments to the same TCP dissector. It
 * adds no layer, no item and no column, so Wireshark's own output does not
 * change (tests/tshark/test_preservation.py). The note lives for one frame:
 * the postdissector reads it and clears it. */
static dissector_handle_t tcp_handle;       /* the TCP dissector, as ip.proto had it */
static dissector_handle_t tcp_note_handle;  /* ours, in its place */

typedef struct {
    guint32 frame;
    tvbuff_t *tvb;      /* the innermost TCP segment of the frame (header at 0) */
    bool in_error;      /* a TCP header quoted inside an ICMP error */
} tcp_note;

static tcp_note seen_tcp;

static int dissect_tcp_note(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    seen_tcp.frame = pinfo->num;
    seen_tcp.tvb = tvb;
    seen_tcp.in_error = pinfo->flags.in_error_pkt;
    return call_dissector_only(tcp_handle, tvb, pinfo, tree, data);
}


#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* The frame's TCP header and payload, as the TCP dissector saw them; false
 * when the frame has no TCP segment of its own, or one TCP could not read
 * (a header length it calls bogus). */
bool mailsec_read_tcp(const packet_info *pinfo, mailsec_tcp *t)
{
    tvbuff_t *tvb = seen_tcp.tvb;
    bool mine = tvb && seen_tcp.frame == pinfo->num && !seen_tcp.in_error;
    seen_tcp.tvb = NULL;
    if (!mine || tvb_captured_length(tvb) < 20)
        return false;
    const guint8 *h = tvb_get_ptr(tvb, 0, 20);
    /* the segment whose ports the frame carries */
    if ((guint32)pntoh16(h) != pinfo->srcport || (guint32)pntoh16(h + 2) != pinfo->destport)
        return false;
    guint hlen = (guint)(h[12] >> 4) * 4;
    guint reported = tvb_reported_length(tvb);
    if (hlen < 20 || reported < hlen)
        return false;
    memset(t, 0, sizeof *t);
    guint8 flags = h[13];
    t->seq = pntoh32(h + 4);
    t->syn = (flags & TCP_FLAG_SYN) != 0;
    t->ack = (flags & TCP_FLAG_ACK) != 0;
    t->rst = (flags & TCP_FLAG_RST) != 0;
    t->fin = (flags & TCP_FLAG_FIN) != 0;
    if (t->ack)
        t->ack_raw = pntoh32(h + 8);
    t->len = reported - hlen;
    if (t->len > 0) {
        guint avail = tvb_captured_length(tvb);
        t->tvb = tvb;
        t->offset = (gint)hlen;
        t->captured = avail <= hlen ? 0 : (gint)MIN(avail - hlen, t->len);
    }
    return true;
}

/* A built-in mail dissector that ran on this frame (Decode As, its own port). */
ms_proto mailsec_builtin_on_frame(const packet_info *pinfo)
{
    if (!pinfo->layers)
        return MS_PROTO_UNKNOWN;
    for (wmem_list_frame_t *f = wmem_list_head(pinfo->layers); f; f = wmem_list_frame_next(f)) {
        int id = GPOINTER_TO_INT(wmem_list_frame_data(f));
        if (id == proto_smtp) return MS_PROTO_SMTP;
        if (id == proto_pop) return MS_PROTO_POP3;
        if (id == proto_imap) return MS_PROTO_IMAP;
    }
    return MS_PROTO_UNKNOWN;
}

/* ---- the conversation of a frame, cached ------------------------------------ */

/* find_conversation_pinfo() hashes both endpoints and probes several
 * wildcard tables on every call. On the first pass frames come in capture
 * order, and a TCP conversation changes for the same endpoints only at a SYN
 * (port reuse), so a small cache keyed on the endpoints, bypassed and
 * refreshed on SYN, gives the same answer. Cleared with the file. */
#define CONV_CACHE_SIZE 1024
#define CONV_CACHE_ADDR_MAX 16

typedef struct {
    conversation_t *conv;
    guint32 srcport, destport;
    int type;
    guint8 len;
    guint8 src[CONV_CACHE_ADDR_MAX];
    guint8 dst[CONV_CACHE_ADDR_MAX];
} conv_cache_entry;

static conv_cache_entry *conv_cache;

static bool cacheable(const packet_info *pinfo)
{
    return pinfo->src.type == pinfo->dst.type && pinfo->src.len == pinfo->dst.len &&
           pinfo->src.len > 0 && pinfo->src.len <= CONV_CACHE_ADDR_MAX && pinfo->src.data && pinfo->dst.data;
}

static guint32 addr_word(const address *a)
{
    /* the last four bytes: all of IPv4, the host part of IPv6 */
    guint32 w;
    memcpy(&w, (const guint8 *)a->data + a->len - 4, 4);
    return w;
}

static guint conv_cache_slot(const packet_info *pinfo)
{
    guint32 h = (pinfo->srcport << 16 | pinfo->destport) * 2654435761u;
    if (pinfo->src.len >= 4)
        h ^= (addr_word(&pinfo->src) * 40503u) ^ (addr_word(&pinfo->dst) * 2246822519u);
    return (h >> 16 ^ h) % CONV_CACHE_SIZE;
}

conversation_t *mailsec_frame_conversation(packet_info *pinfo, bool syn)
{
    if (!conv_cache || !cacheable(pinfo))
        return find_conversation_pinfo(pinfo, 0);
    conv_cache_entry *e = &conv_cache[conv_cache_slot(pinfo)];
    if (!syn && e->conv && e->srcport == pinfo->srcport && e->destport == pinfo->destport &&
        e->type == pinfo->src.type && e->len == pinfo->src.len &&
        memcmp(e->src, pinfo->src.data, e->len) == 0 && memcmp(e->dst, pinfo->dst.data, e->len) == 0)
        return e->conv;
    conversation_t *conv = find_conversation_pinfo(pinfo, 0);
    e->conv = conv;
    e->srcport = pinfo->srcport;
    e->destport = pinfo->destport;
    e->type = pinfo->src.type;
    e->len = (guint8)pinfo->src.len;
    memcpy(e->src, pinfo->src.data, e->len);
    memcpy(e->dst, pinfo->dst.data, e->len);
    return conv;
}


guint32 mailsec_tcp_stream(conversation_t *conv)
{
    struct tcp_analysis *tcpd =
        proto_tcp > 0 ? (struct tcp_analysis *)conversation_get_proto_data(conv, proto_tcp) : NULL;
    return tcpd ? tcpd->stream : 0;
}

void mailsec_extract_init(void)
{
    memset(&seen_tcp, 0, sizeof seen_tcp); /* nothing of another file's frames */
    conv_cache = g_new0(conv_cache_entry, CONV_CACHE_SIZE);
}

void mailsec_extract_cleanup(void)
{
    g_free(conv_cache);
    conv_cache = NULL;
}

void mailsec_extract_handoff(void)
{
    /* see dissect_tcp_note() */
    dissector_table_t ip_proto = find_dissector_table("ip.proto");
    tcp_handle = ip_proto ? dissector_get_uint_handle(ip_proto, 6) : NULL;
    if (tcp_handle) {
        tcp_note_handle = create_dissector_handle_with_name_and_description(
            dissect_tcp_note, -1, dissector_handle_get_dissector_name(tcp_handle),
            "TCP (segments noted by mailsec)");
        dissector_add_uint("ip.proto", 6, tcp_note_handle);
    }
    proto_tcp = proto_get_id_by_filter_name("tcp");
    proto_smtp = proto_get_id_by_filter_name("smtp");
    proto_pop = proto_get_id_by_filter_name("pop");
    proto_imap = proto_get_id_by_filter_name("imap");
}

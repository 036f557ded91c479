/* mailsec-export.c — every message carried by SMTP, POP3 or IMAP as an
 * export object: File → Export Objects → MAILSEC, and
 * `tshark --export-objects mailsec,DIR`.
 *
 * The core hands over each message as meant (dot-stuffing undone, BDAT
 * chunks joined, the literal alone: the bytes mailsec.msg.sha256 is taken
 * over). While an export listener is registered, those bytes are gathered
 * per session and direction, up to a preference, and the message is queued
 * on the export tap on the frame that completes it. Nothing is gathered
 * otherwise. The bytes exist only while the core reads them, so the
 * listener must be there during the first pass (tshark one pass).
 */
#include <wireshark.h>

#include <epan/address.h>
#include <epan/to_str.h>
#include <epan/export_object.h>
#include <epan/packet.h>
#include <epan/tap.h>

#include "mailsec.h"

static int eo_tap = -1;
/* The gatherings under way (g_malloc'd), so that closing the file frees them. */
static GHashTable *open_accs;
static dissector_handle_t imf_handle;

static bool is_pop3(ms_body_source s)
{
    return s == MS_BODY_POP3_RETR || s == MS_BODY_POP3_TOP;
}

bool mailsec_export_gathers(const mailsec_conv *mc)
{
    return mailsec_prefs.pop3_imf && imf_handle && mc->core && ms_session_proto(mc->core) == MS_PROTO_POP3;
}

typedef struct mailsec_export_acc {
    guint8 *data;           /* g_malloc'd, grown by doubling up to the limit; handed on whole */
    size_t len, cap;
    unsigned number;
    ms_body_source source;
    gboolean cut;           /* longer than the limit: what fits is kept */
} mailsec_export_acc;

/* What the tap carries to the listener: one whole message. */
typedef struct {
    char *filename;
    char *hostname;
    guint8 *payload;        /* g_malloc'd; the listener takes it */
    size_t len;
} mailsec_export_item;

static const char *source_name(ms_body_source s)
{
    switch (s) {
    case MS_BODY_SMTP_DATA: return "data";
    case MS_BODY_SMTP_BDAT: return "bdat";
    case MS_BODY_POP3_RETR: return "retr";
    case MS_BODY_POP3_TOP: return "top";
    case MS_BODY_IMAP_FETCH: return "fetch";
    case MS_BODY_IMAP_APPEND: return "append";
    default: return "message";
    }
}

static const char *proto_name(guint8 p)
{
    return p == MS_PROTO_SMTP ? "smtp" : p == MS_PROTO_POP3 ? "pop3" : p == MS_PROTO_IMAP ? "imap" : "mail";
}

bool mailsec_export_wanted(void)
{
    return eo_tap >= 0 && have_tap_listener(eo_tap);
}

static void append(mailsec_export_acc *a, const guint8 *p, size_t n)
{
    size_t limit = (size_t)mailsec_prefs.export_max_mb << 20;
    if (a->len + n > limit) {
        a->cut = TRUE;
        n = limit > a->len ? limit - a->len : 0;
    }
    if (n == 0)
        return;
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        a->data = (guint8 *)g_realloc(a->data, cap);
        a->cap = cap;
    }
    memcpy(a->data + a->len, p, n);
    a->len += n;
}

static mailsec_export_acc *acc_new(unsigned number, ms_body_source source)
{
    mailsec_export_acc *a = g_new0(mailsec_export_acc, 1);
    a->number = number;
    a->source = source;
    if (!open_accs)
        open_accs = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_add(open_accs, a);
    return a;
}

static void acc_free(gpointer p)
{
    mailsec_export_acc *a = (mailsec_export_acc *)p;
    g_free(a->data);
    g_free(a);
}

static void drop(mailsec_export_acc **slot)
{
    mailsec_export_acc *a = *slot;
    if (!a)
        return;
    if (open_accs)
        g_hash_table_remove(open_accs, a);
    acc_free(a);
    *slot = NULL;
}

/* The bytes, out of the gathering: whoever takes them frees them. */
static guint8 *take(mailsec_export_acc *a)
{
    guint8 *d = a->data;
    a->data = NULL;
    return d;
}

void mailsec_export_drop(mailsec_export_acc **acc, mailsec_export_acc **att)
{
    for (int d = 0; d < 2; d++) {
        drop(&acc[d]);
        drop(&att[d]);
    }
}

void mailsec_export_cleanup(void)
{
    if (!open_accs)
        return;
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, open_accs);
    while (g_hash_table_iter_next(&it, &key, NULL))
        acc_free(key);
    g_hash_table_destroy(open_accs);
    open_accs = NULL;
}

static gboolean free_with_file(wmem_allocator_t *allocator _U_, wmem_cb_event_t event _U_, void *data)
{
    g_free(data);
    return FALSE;
}

/* The payload goes to the listener; when none took it (a pass whose taps do
 * not run), it goes with the packet's scope. */
static gboolean item_done(wmem_allocator_t *allocator _U_, wmem_cb_event_t event _U_, void *data)
{
    mailsec_export_item *it = (mailsec_export_item *)data;
    g_free(it->payload);
    it->payload = NULL;
    return FALSE;
}

/* The file name an attachment is written under: its own name, reduced to
 * characters every file system takes. */
static char *safe_name(wmem_allocator_t *scope, const char *name, size_t len)
{
    if (len > 100)
        len = 100;
    char *out = (char *)wmem_alloc(scope, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        guchar ch = (guchar)name[i];
        out[o++] = g_ascii_isalnum(ch) || ch == '.' || ch == '-' || ch == '_' ? (char)ch : '_';
    }
    out[o] = '\0';
    return o ? out : wmem_strdup(scope, "unnamed");
}

/* Queues the gathered bytes; payload: a->data itself (taken) or a copy. */
static void queue(packet_info *pinfo, mailsec_conv *mc, char *filename, mailsec_export_acc *a, bool copy)
{
    mailsec_export_item *it = wmem_new0(pinfo->pool, mailsec_export_item);
    it->filename = filename;
    it->hostname = wmem_strdup_printf(pinfo->pool, "%s:%u", address_to_str(pinfo->pool, &mc->server_addr),
                                      mc->server_port);
    it->len = a->len;
    it->payload = !a->len ? NULL : copy ? (guint8 *)g_memdup2(a->data, a->len) : take(a);
    wmem_register_callback(pinfo->pool, item_done, it);
    tap_queue_packet(eo_tap, pinfo, it);
}

/* A decoded attachment: streamN-PROTO-DIR-SOURCE-NUMBER-attK[-truncated]-NAME. */
static void attachment_content(mailsec_export_ctx *ec, const ms_content *c)
{
    mailsec_conv *mc = ec->mc;
    mailsec_export_acc **slot = &ec->att[c->dir & 1];
    if (*slot && ((*slot)->number != c->number || (*slot)->source != (ms_body_source)c->part))
        drop(slot); /* a part whose end never came */
    if (!*slot)
        *slot = acc_new(c->number, (ms_body_source)c->part); /* source: here, the attachment's index */
    if (c->event == MS_BODY_DATA) {
        append(*slot, c->data, c->len);
        return;
    }
    packet_info *pinfo = ec->pinfo;
    gboolean truncated = (*slot)->cut || (c->flags & MS_BODY_LOST) != 0;
    char *filename = wmem_strdup_printf(pinfo->pool, "stream%u-%s-%s-%s-%u-att%u%s-%s", mc->stream,
                                        proto_name((guint8)ms_session_proto(ec->core)),
                                        c->dir == MS_DIR_C2S ? "c2s" : "s2c", source_name(c->source), c->number,
                                        c->part, truncated ? "-truncated" : "",
                                        safe_name(pinfo->pool, c->name ? c->name : "", c->name ? c->name_len : 0));
    queue(pinfo, mc, filename, *slot, false);
    drop(slot);
}

void mailsec_export_content(void *ctx, const ms_content *c)
{
    mailsec_export_ctx *ec = (mailsec_export_ctx *)ctx;
    mailsec_conv *mc = ec->mc;
    if (c->part) {
        if (ec->exporting && (c->event == MS_BODY_DATA || c->event == MS_BODY_END))
            attachment_content(ec, c);
        return;
    }
    mailsec_export_acc **slot = &ec->acc[c->dir & 1];
    switch (c->event) {
    case MS_BODY_BEGIN:
        drop(slot);
        if (!ec->exporting && !is_pop3(c->source))
            return;
        *slot = acc_new(c->number, c->source);
        return;
    case MS_BODY_DATA:
        if (*slot && (*slot)->number == c->number)
            append(*slot, c->data, c->len);
        return;
    case MS_BODY_END:
        break;
    default:
        return;
    }
    mailsec_export_acc *a = *slot;
    if (!a || a->number != c->number)
        return;
    packet_info *pinfo = ec->pinfo;
    mailsec_fact *end = NULL;
    if (is_pop3(a->source) && mailsec_prefs.pop3_imf && imf_handle && a->len &&
        !proto_is_frame_protocol(pinfo->layers, "imf")) {
        /* kept with the message's end, for IMF on every pass (the POP3
         * dissector handed it over itself when this frame has imf already) */
        for (mailsec_fact *f = ec->facts ? *ec->facts : NULL; f; f = f->next)
            if (f->kind == MS_FACT_MSG_END && f->core.msg_end.message == a->number)
                end = f;
    }
    if (ec->exporting) {
        gboolean truncated = a->cut || (c->flags & (MS_BODY_LOST | MS_BODY_UNFINISHED)) != 0;
        /* stream, protocol, direction, source and order: which message it is */
        char *filename = wmem_strdup_printf(pinfo->pool, "stream%u-%s-%s-%s-%u%s.eml", mc->stream,
                                            proto_name((guint8)ms_session_proto(ec->core)),
                                            c->dir == MS_DIR_C2S ? "c2s" : "s2c", source_name(a->source),
                                            a->number, truncated ? "-truncated" : "");
        queue(pinfo, mc, filename, a, end != NULL); /* IMF keeps the bytes too: the listener gets a copy */
    }
    if (end) {
        end->u.mail.len = (guint)a->len;
        end->u.mail.bytes = take(a);
        wmem_register_callback(wmem_file_scope(), free_with_file, (void *)end->u.mail.bytes);
    }
    drop(slot);
}

static tap_packet_status export_packet(void *tapdata, packet_info *pinfo, epan_dissect_t *edt _U_,
                                       const void *data, tap_flags_t flags _U_)
{
    export_object_list_t *list = (export_object_list_t *)tapdata;
    mailsec_export_item *it = (mailsec_export_item *)data;
    if (!it)
        return TAP_PACKET_DONT_REDRAW;
    export_object_entry_t *e = g_new0(export_object_entry_t, 1);
    e->pkt_num = pinfo->num;
    e->hostname = g_strdup(it->hostname);
    e->content_type = g_strdup("message/rfc822");
    e->filename = g_strdup(it->filename);
    e->payload_len = it->len;
    /* the bytes change hands; a second listener would get an empty copy */
    e->payload_data = it->payload;
    it->payload = NULL;
    it->len = 0;
    list->add_entry(list->gui_data, e);
    return TAP_PACKET_REDRAW;
}

void mailsec_export_imf(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const mailsec_frame *fr)
{
    if (!imf_handle || !mailsec_prefs.pop3_imf)
        return;
    for (const mailsec_fact *f = fr->facts; f; f = f->next) {
        if (f->kind != MS_FACT_MSG_END || !f->u.mail.bytes || !is_pop3(f->core.msg_end.source))
            continue;
        tvbuff_t *msg = tvb_new_child_real_data(tvb, f->u.mail.bytes, f->u.mail.len, f->u.mail.len);
        add_new_data_source(pinfo, msg, "POP3 message (mailsec)");
        call_dissector(imf_handle, msg, pinfo, tree);
    }
}

void mailsec_export_handoff(void)
{
    imf_handle = find_dissector_add_dependency("imf", proto_mailsec);
}

void mailsec_export_register(int proto)
{
    eo_tap = register_export_object(proto, export_packet, NULL);
}

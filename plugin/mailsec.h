/* mailsec.h — what the epan-side files of the plugin share.
 *
 * packet-mailsec.c   registration, preferences, the postdissector's entry
 * mailsec-extract.c  reading other layers: the TCP segment, the conversation,
 *                    the built-in mail dissectors on the frame
 * mailsec-tls.c      decrypted application data from the TLS dissector
 * mailsec-heur.c     the TCP heuristic that claims mail on unregistered ports
 * mailsec-session.c  first pass: sessions, the core fed, per-frame records
 * mailsec-facts.c    one table entry per fact kind: how to keep it, how to draw it
 * mailsec-render.c   the frame's tree, drawn from its record only
 * mailsec-alerts.c   the one table that turns facts into expert info
 * mailsec-tap.c      the mailsec tap and Wireshark's credentials tap
 */
#ifndef MAILSEC_H
#define MAILSEC_H

#include <epan/conversation.h>
#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/range.h>
#include <wsutil/str_util.h>

#include "mailsec-compat.h"
#include "ms_detect.h"
#include "ms_registry.h"
#include "ms_sasl.h"
#include "ms_seq.h"
#include "ms_session.h"

void proto_register_mailsec(void);
void proto_reg_handoff_mailsec(void);

/* mailsec-hash.c: message and attachment SHA-256 through libgcrypt */
void mailsec_hash_register(void);

extern int proto_mailsec;

typedef struct {
    range_t *smtp_ports;
    range_t *smtps_ports;
    range_t *pop_ports;
    range_t *pops_ports;
    range_t *imap_ports;
    range_t *imaps_ports;
    range_t *starttls_ports;   /* server ports whose capability lists should offer STARTTLS */
    mailsec_pref_bool heuristic;
    guint max_line;
    guint brute_force_threshold;
    mailsec_pref_bool hide_secrets;
    guint enum_threshold;
    guint mass_rcpt_threshold;
    guint mass_msg_threshold;
    const char *dangerous_extensions;
    guint msg_max_header;
    guint msg_max_depth;
    guint msg_max_parts;
    guint msg_max_urls;
    guint max_records;         /* records of one kind kept per session (0: no cap) */
    guint export_max_mb;       /* longest message exported whole (MB) */
    mailsec_pref_bool pop3_imf; /* hand POP3 RETR/TOP messages to the IMF dissector */
} mailsec_prefs_t;

extern mailsec_prefs_t mailsec_prefs;

/* What recognition by content concluded about a conversation nobody claimed. */
typedef struct {
    ms_proto claimed;      /* proto the content showed (heuristic) */
    bool server_is_src;    /* the claiming payload came from the server */
    guint32 server_port;
    bool given_up;         /* the first payload was no mail: final */
    /* A first payload that was an SMTP-like reply not naming SMTP ("220
     * Greetings"): the decision waits for the other side's first line. */
    guint8 weak_payloads;  /* such payloads seen (bounded) */
    guint32 weak_port;     /* the port they came from */
} mailsec_claim;

/* TLS application data already fed to a parser (mailsec-tls.c). */
typedef struct {
    const void *flow[2];  /* per direction: the TLS flow last read from */
    guint32 next[2];      /* and the offset in it up to which records were fed */
} mailsec_tls_pos;

/* Per TCP conversation, file scope. core is NULL until the conversation is
 * known to be mail; until then the other fields remember what was examined. */
typedef struct {
    ms_session *core;
    address server_addr;
    guint32 server_port;
    guint32 stream;
    ms_seq seq[2];
    mailsec_claim claim;
    dissector_handle_t builtin; /* pinned built-in dissector (heuristic sessions) */
    bool not_mail;              /* a TLS port's first payload was neither TLS nor mail */
    struct mailsec_export_acc *export_acc[2]; /* messages being gathered for export, per direction */
    struct mailsec_export_acc *export_att[2]; /* the attachment being gathered, per direction */
    /* what a later pass needs to read the session again for export */
    const ms_session_config *cfg; /* as the first pass started the parser (no registry) */
    guint32 first_frame, last_frame; /* the first and last frames the parser read */
    struct mailsec_replay *replay;   /* the reading under way in a later pass */
    mailsec_tls_pos tls_pos; /* TLS application data already fed */
    /* logins */
    struct mailsec_attempt *last_attempt;
    const char *auth_user;  /* file-scope copy of the core's, for rendering */
    unsigned auth_user_gen;
    /* messages: the SMTP transaction, and the message being read per direction */
    struct mailsec_envelope *envelope;
    struct mailsec_msginfo *msginfo[2];
    const struct mailsec_tls *tls;  /* once the ServerHello was read */
    /* the last records stored per direction, shared by frames that say the same */
    struct mailsec_frame_s *last_record[2][2];
    /* the end of the session: the parser is released, its last state kept */
    bool fin_seen[2];
    bool closed;
    guint8 final_proto, final_detect, final_transport;
    guint32 final_boundary;
    guint64 final_cleartext_bytes;
} mailsec_conv;

/* The conversation data of every conversation found not to be mail: one
 * shared marker, never written, so a rejected conversation costs no
 * allocation of ours. */
extern mailsec_conv mailsec_conv_not_mail;

mailsec_conv *mailsec_conv_lookup(conversation_t *conv);
/* Recognition said no (final: the shared marker) or not yet (a greeting that
 * waits for the client's first line is remembered). */
void mailsec_conv_unclaimed(conversation_t *conv, mailsec_conv *mc, const mailsec_claim *claim, packet_info *pinfo);
mailsec_conv *mailsec_conv_create(conversation_t *conv, const mailsec_claim *claim);

/* Examine the first payload of a conversation nobody has claimed; true when
 * it is mail (claim->claimed and claim->server_is_src set). */
bool mailsec_recognise_payload(mailsec_claim *claim, packet_info *pinfo, tvbuff_t *tvb, int offset);

dissector_handle_t mailsec_builtin_handle(ms_proto p);

/* ---- mailsec-extract.c: reading other layers ---- */

typedef struct {
    guint32 seq;
    guint32 ack_raw;   /* the acknowledgement number, when the ACK flag is set */
    guint32 len;
    bool syn;
    bool ack;
    bool rst;
    bool fin;
    tvbuff_t *tvb;  /* where the payload bytes are */
    gint offset;
    gint captured;  /* payload bytes present in the capture */
} mailsec_tcp;

void mailsec_extract_handoff(void);
void mailsec_extract_init(void);
void mailsec_extract_cleanup(void);
/* The frame's own TCP segment; false when it has none mailsec can read. */
bool mailsec_read_tcp(const packet_info *pinfo, mailsec_tcp *t);
/* The built-in mail dissector that ran on this frame, if any. */
ms_proto mailsec_builtin_on_frame(const packet_info *pinfo);
/* The frame's TCP conversation (cached; syn refreshes the cache). */
conversation_t *mailsec_frame_conversation(packet_info *pinfo, bool syn);
/* tcp.stream of a conversation, from the TCP dissector's own data. */
guint32 mailsec_tcp_stream(conversation_t *conv);

/* ---- mailsec-session.c: first pass ---- */

void mailsec_session_init(void);
void mailsec_session_cleanup(void);
/* The stored record of a frame, analysing it on the first pass. */
struct mailsec_frame_s *mailsec_session_frame(packet_info *pinfo);
/* A later pass with an export listener: the session read again, its
 * messages to the export tap (the first pass kept no bytes). */
void mailsec_session_replay(packet_info *pinfo);

/* mailsec-heur.c */
void mailsec_heur_register(void);
void mailsec_heur_handoff(void);

/* mailsec-tls.c: calls cb for each decrypted application-data record of this
 * frame that the conversation has not been fed yet; returns how many. */
typedef void (*mailsec_record_cb)(void *ctx, const guint8 *data, guint len);
guint mailsec_tls_feed_records(packet_info *pinfo, mailsec_tls_pos *pos, ms_dir dir,
                               mailsec_record_cb cb, void *ctx);
void mailsec_tls_handoff(void);

/* One login attempt, shared by its request frame and its verdict frame. */
/* Strings decoded from the wire are kept escaped (control bytes and invalid
 * UTF-8 as \xNN, like Wireshark's format_text), so no message, label or field
 * can carry a terminal escape; where escaping changed a user name or a
 * password, its raw bytes are kept beside it. */
typedef struct {
    const guint8 *data;
    guint len;
} mailsec_raw;

typedef struct mailsec_attempt {
    guint number;           /* 1, 2, 3 ... within the session */
    const char *mechanism;
    const char *username;   /* NULL when the mechanism carries none */
    mailsec_raw username_raw; /* set only when the user name needed escaping */
    mailsec_raw password_raw;
    const char *authzid;
    const char *password;
    const char *token;
    const char *hash;
    const char *realm;
    const char *workstation;
    const char *material;
    bool exposed;           /* not under TLS */
    bool user_from_authzid; /* PLAIN with an empty authcid: the authzid is the user */
    guint8 proto;           /* ms_proto */
    guint32 request_frame;
    guint32 result_frame;   /* 0 until the verdict is seen */
    guint8 result;          /* ms_auth_result, 0 = none yet */
} mailsec_attempt;

/* A fact of one frame, kept: the core's typed payload as it came (its
 * pointers are not to be followed once kept), and for kinds whose payload
 * points at data, a copy in file scope (mailsec-facts.c says how, per kind). */
typedef struct mailsec_fact {
    ms_fact_kind kind;
    gint start;         /* the bytes of this frame that told it; -1: none */
    gint length;
    union {
        struct {
            ms_dir dir;
            guint8 *bytes;  /* the first MAILSEC_EVIDENCE_MAX bytes */
            guint len;
            guint orig_len;
            gboolean own_segment;
        } injected;
        struct {
            guint attempt;
            const char *mechanism;
        } auth_start;
        mailsec_attempt *attempt; /* AUTH_REQUEST */
        struct {
            mailsec_attempt *attempt;
            ms_auth_result result;
            guint32 session_failures;
            guint32 client_failures;
        } auth_result;
        /* probe target, HELO name, header value, URL, limit, envelope address */
        struct {
            const char *text;
            const char *text2;     /* attachment: content type; smuggling: the line after */
            const char *hex;       /* SHA-256, lower-case hex */
            const guint8 *bytes;   /* smuggling: the sequence */
            guint len;
            struct mailsec_envelope *env; /* message end, envelope: the transaction's */
            struct mailsec_msginfo *info; /* message end: what its headers said */
        } mail;
    } u;
    struct mailsec_fact *next;
    /* last: a fact is allocated only as long as its kind's payload
     * (mailsec_fact_keep), so read only the member of its kind */
    ms_fact_payload core;
} mailsec_fact;

/* One SMTP transaction's envelope as the first pass saw it; a new MAIL FROM
 * starts a new one, so messages already kept keep theirs. */
#define MAILSEC_RCPT_KEEP 64
typedef struct mailsec_envelope {
    guint transaction;
    const char *mail_from;
    const char *rcpt[MAILSEC_RCPT_KEEP];
    guint nrcpt;        /* kept */
    guint rcpts;        /* sent */
} mailsec_envelope;

/* What the headers of one message said, for judging it at its end. */
typedef struct mailsec_msginfo {
    guint number;
    const char *from;       /* the From header's address */
    const char *reply_to;   /* the Reply-To header's address */
} mailsec_msginfo;

/* A session's TLS handshake, as its Hellos said. */
typedef struct mailsec_tls {
    guint16 version;
    guint16 cipher;
    const char *sni;    /* NULL: the client sent none */
    bool client_hello;
} mailsec_tls;

/* Longest piece of injected plaintext kept as evidence per frame. */
#define MAILSEC_EVIDENCE_MAX 512

/* What the first pass learnt about a frame; rendering reads only this. */
typedef struct mailsec_frame_s {
    guint8 proto;
    guint8 detected_by;
    guint8 transport;
    bool decrypted;
    bool retransmission; /* every byte of the segment was analysed already */
    guint8 dir;     /* ms_dir of the frame */
    guint32 stream;
    guint32 boundary;
    guint64 cleartext_bytes;
    const char *auth_user;  /* the session's logged-in user, once known */
    const mailsec_tls *tls; /* the session's TLS posture, on its TLS frames once known */
    mailsec_fact *facts;
} mailsec_frame;

/* ---- mailsec-facts.c: one entry per fact kind ---- */

/* Where the bytes of the current frame lie in each direction's stream. */
#define MAILSEC_SPANS_MAX 4
typedef struct {
    ms_dir dir;
    guint64 at;     /* stream offset of the first byte */
    guint len;
    gint tvb_offset;
} mailsec_frame_span;

typedef struct {
    mailsec_conv *mc;
    packet_info *pinfo;
    mailsec_frame_span spans[MAILSEC_SPANS_MAX];
    guint nspans;
} mailsec_keep_ctx;

typedef struct {
    packet_info *pinfo;
    proto_tree *tree;       /* the mailsec subtree */
    proto_tree *group_tree; /* the group's subtree (STARTTLS), made on demand */
    tvbuff_t *tvb;
    const mailsec_frame *fr;
} mailsec_render_ctx;

typedef enum {
    MAILSEC_GROUP_NONE = 0, /* not drawn (alerts may still read it) */
    MAILSEC_GROUP_STARTTLS, /* under "STARTTLS", in table order, first of a kind only */
    MAILSEC_GROUP_AUTH,     /* in the mailsec tree, in the order they happened */
    MAILSEC_GROUP_MAIL      /* the same, after the logins: replies, probes, envelope, messages */
} mailsec_group;

typedef struct {
    const char *name;
    mailsec_group group;
    /* copy what the core's payload points to; dst is zeroed, kind set */
    void (*keep)(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
    void (*render)(mailsec_render_ctx *rc, const mailsec_fact *f);
} mailsec_fact_def;

/* The table, indexed by ms_fact_kind; NULL functions do nothing. */
const mailsec_fact_def *mailsec_fact_def_of(ms_fact_kind kind);
/* Keep one fact of the frame: the table's keep, plus its bytes in the frame. */
mailsec_fact *mailsec_fact_keep(mailsec_keep_ctx *kc, const ms_fact *f);
void mailsec_facts_register(int proto);

/* ---- mailsec-mail.c: replies, probes, envelope, messages ---- */
void mailsec_mail_register(int proto);
void mailsec_keep_reply(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
void mailsec_keep_text(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
void mailsec_keep_envelope(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
void mailsec_keep_header(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
void mailsec_keep_attachment(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
void mailsec_keep_msg_end(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
void mailsec_keep_tls_posture(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
const char *mailsec_tls_version_name(guint16 v);
void mailsec_keep_smuggling(mailsec_keep_ctx *kc, mailsec_fact *dst, const ms_fact *src);
void mailsec_render_reply(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_probe(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_helo(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_envelope(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_header(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_attachment(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_url(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_msg_limit(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_msg_end(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_deleted(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_smuggling(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_record_limit(mailsec_render_ctx *rc, const mailsec_fact *f);
void mailsec_render_conflict(mailsec_render_ctx *rc, const mailsec_fact *f);
/* What a session's record cap stopped keeping ("logins", "probes" ...). */
const char *mailsec_record_kind_name(ms_fact_kind what);
/* The domain an address belongs to, for comparing senders: the part after
 * the last '@', lower case, cut to its last two labels (three under a short
 * second-level label: co.uk). NULL when there is none. */
const char *mailsec_org_domain(wmem_allocator_t *pool, const char *addr);
/* Is this file name one the preference's list calls dangerous? why gets the reason. */
bool mailsec_dangerous_name(const char *name, const char **why);
const char *mailsec_body_source_name(unsigned source);
const char *mailsec_probe_verdict_name(ms_probe_verdict v);
const char *mailsec_probe_command_name(ms_probe_cmd c);

/* ---- mailsec-render.c ---- */

void mailsec_render_register(int proto);
void mailsec_render_init(void);
/* Does anybody look at mailsec's items in this tree? */
bool mailsec_render_wanted(proto_tree *tree);
void mailsec_render(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const mailsec_frame *fr);
/* Helpers for the fact table's render functions. */
void mailsec_add_text(proto_tree *t, int hf, tvbuff_t *tvb, gint start, gint length, const char *v, bool secret);
int mailsec_hf_password(void);
/* A decoded value escaped for display, in file scope; raw (may be NULL) gets
 * the bytes when escaping changed them. */
const char *mailsec_copy_text(const char *p, size_t len, mailsec_raw *raw);

/* mailsec-tap.c: the mailsec tap (one mailsec_frame per analysed frame) and
 * Wireshark's credentials tap (one record per completed login request). */
void mailsec_tap_register(void);
void mailsec_tap_init(void);
bool mailsec_tap_listening(void);
void mailsec_tap_frame(packet_info *pinfo, const mailsec_frame *fr);

/* mailsec-alerts.c */
void mailsec_alerts_register(int proto);
void mailsec_alerts_init(void);
bool mailsec_alerts_listening(void);
/* Raises the frame's alerts under tree (the mailsec subtree). */
void mailsec_alerts_add(packet_info *pinfo, proto_tree *tree, tvbuff_t *tvb, const mailsec_frame *fr);
/* The alerts the frame raises, without a tree: name and severity of each. */
typedef void (*mailsec_alert_cb)(void *ctx, const char *abbrev, const char *severity);
void mailsec_alerts_each(const mailsec_frame *fr, mailsec_alert_cb cb, void *ctx);

/* mailsec-layouts.c: the guard on the two private layouts mailsec mirrors */
void mailsec_layouts_register(int proto);
void mailsec_layouts_handoff(void);
void mailsec_layouts_init(void);
bool mailsec_layouts_ok(void);
/* The first pass's first mail frame of the file; the note goes on it. */
void mailsec_layouts_frame(packet_info *pinfo);
void mailsec_layouts_note(packet_info *pinfo, proto_item *item);

/* mailsec-stats.c: Statistics → Mail Forensics, tshark -z mailsec,tree */
void mailsec_stats_register(void);

/* mailsec-export.c: messages as export objects (File → Export Objects, --export-objects mailsec) */
typedef struct {
    mailsec_conv *mc;
    packet_info *pinfo;
    struct mailsec_fact **facts; /* the frame's kept facts: a POP3 message goes onto its end */
    bool exporting;              /* an export listener is registered */
    ms_session *core;            /* the parser that reads */
    struct mailsec_export_acc **acc; /* its gatherings: messages and attachments, per direction */
    struct mailsec_export_acc **att;
} mailsec_export_ctx;
void mailsec_export_register(int proto);
bool mailsec_export_wanted(void);
void mailsec_export_content(void *ctx, const ms_content *c);
void mailsec_export_cleanup(void);
/* Frees the gatherings of one parser (acc[2], att[2]). */
void mailsec_export_drop(struct mailsec_export_acc **acc, struct mailsec_export_acc **att);
/* POP3 gathers its messages for IMF even without an export listener. */
bool mailsec_export_gathers(const mailsec_conv *mc);
void mailsec_export_handoff(void);
/* Every pass: the POP3 messages this frame completed, to the IMF dissector. */
void mailsec_export_imf(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const struct mailsec_frame_s *fr);

#endif

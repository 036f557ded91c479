/* mailsec.h — what the epan-side files of the plugin share.
 *
 * packet-mailsec.c  registration, preferences, the postdissector, rendering
 * mailsec-heur.c    the TCP heuristic that claims mail on unregistered ports
 * mailsec-tls.c     decrypted application data and handshake facts from TLS
 * mailsec-alerts.c  the one table that turns facts into expert info
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
#include "ms_seq.h"
#include "ms_session.h"

void proto_register_mailsec(void);
void proto_reg_handoff_mailsec(void);

extern int proto_mailsec;

typedef struct {
    range_t *smtp_ports;
    range_t *smtps_ports;
    range_t *pop_ports;
    range_t *pops_ports;
    range_t *imap_ports;
    range_t *imaps_ports;
    mailsec_pref_bool heuristic;
    guint max_line;
    guint brute_force_threshold;
    mailsec_pref_bool hide_secrets;
} mailsec_prefs_t;

extern mailsec_prefs_t mailsec_prefs;

/* Per TCP conversation, file scope. core is NULL until the conversation is
 * known to be mail; until then the other fields remember what was examined. */
typedef struct {
    ms_session *core;
    address server_addr;
    guint32 server_port;
    guint32 stream;
    ms_seq seq[2];
    /* recognition */
    ms_proto claimed;      /* proto the content showed (heuristic) */
    bool claimed_server_is_src; /* the claiming payload came from the server */
    guint32 claimed_server_port;
    bool looked;           /* the first payload was examined */
    bool given_up;
    dissector_handle_t builtin; /* pinned built-in dissector (heuristic sessions) */
    /* TLS application data already fed, per direction */
    const void *tls_flow[2];
    guint32 tls_next[2];
    /* logins */
    struct mailsec_attempt *last_attempt;
    const char *auth_user;  /* file-scope copy of the core's, for rendering */
    unsigned auth_user_gen;
    /* the last records stored per direction, shared by frames that say the same */
    struct mailsec_frame_s *last_record[2][2];
    bool not_mail;         /* neither port nor content is mail: nothing to do, ever */
    /* the end of the session: the parser is released, its last state kept */
    bool fin_seen[2];
    bool closed;
    guint8 final_proto, final_detect, final_transport;
    guint32 final_boundary;
    guint64 final_cleartext_bytes;
} mailsec_conv;

mailsec_conv *mailsec_conv_lookup(conversation_t *conv);
mailsec_conv *mailsec_conv_create(conversation_t *conv);

/* Examine the first payload of a conversation nobody has claimed; true when
 * it is mail (mc->claimed and mc->claimed_server_is_src set). */
bool mailsec_recognise_payload(mailsec_conv *mc, packet_info *pinfo, tvbuff_t *tvb, int offset);

dissector_handle_t mailsec_builtin_handle(ms_proto p);

/* mailsec-heur.c */
void mailsec_heur_register(void);
void mailsec_heur_handoff(void);

/* mailsec-tls.c: calls cb for each decrypted application-data record of this
 * frame that the conversation has not been fed yet; returns how many. */
typedef void (*mailsec_record_cb)(void *ctx, const guint8 *data, guint len);
guint mailsec_tls_feed_records(packet_info *pinfo, mailsec_conv *mc, ms_dir dir,
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
    guint8 proto;           /* ms_proto */
    guint32 request_frame;
    guint32 result_frame;   /* 0 until the verdict is seen */
    guint8 result;          /* ms_auth_result, 0 = none yet */
} mailsec_attempt;

/* Facts of one frame, copied out of the core. */
typedef struct mailsec_fact {
    ms_fact_kind kind;
    int ival;
    int ival2;
    guint8 *data; /* a bounded copy */
    guint len;
    guint orig_len;
    guint32 ref_frame;
    guint32 count;
    guint32 client_count;  /* AUTH_RESULT: failures from this client address, all sessions */
    mailsec_attempt *attempt;
    struct mailsec_fact *next;
} mailsec_fact;

/* What the first pass learnt about a frame; rendering reads only this. */
typedef struct mailsec_frame_s {
    guint8 proto;
    guint8 detected_by;
    guint8 transport;
    bool decrypted;
    guint8 dir;     /* ms_dir of the frame */
    guint32 stream;
    guint32 boundary;
    guint64 cleartext_bytes;
    const char *auth_user;  /* the session's logged-in user, once known */
    mailsec_fact *facts;
} mailsec_frame;

/* mailsec-tap.c: Wireshark's credentials tap */
void mailsec_tap_handoff(void);
void mailsec_tap_credential(packet_info *pinfo, const mailsec_attempt *a, int password_hf);

/* mailsec-alerts.c */
void mailsec_alerts_register(int proto);
/* Raises the frame's alerts under tree (the mailsec subtree). */
void mailsec_alerts_add(packet_info *pinfo, proto_tree *tree, tvbuff_t *tvb, const mailsec_frame *fr);

#endif

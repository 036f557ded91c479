/* ms_session_int.h — the session's insides, shared by ms_session.c and the
 * protocol adapters (ms_smtp.c, ms_pop3.c, ms_imap.c). Not for the epan layer.
 */
#ifndef MS_SESSION_INT_H
#define MS_SESSION_INT_H

#include "ms_lines.h"
#include "ms_sasl.h"
#include "ms_session.h"

/* Commands awaiting a reply, oldest first. Pipelining clients send many at
 * once; past this many the oldest are forgotten. */
#define MS_PENDING_MAX 64
#define MS_TAG_MAX 32
/* Lines are kept whole up to this size; longer ones are cut. */
#define MS_LINE_BUFFER_MAX 65536

typedef struct {
    uint8_t cmd[MS_PENDING_MAX];
    uint32_t frame[MS_PENDING_MAX];
    char tag[MS_PENDING_MAX][MS_TAG_MAX + 1]; /* IMAP only */
    unsigned head;
    unsigned count;
} ms_pending;

typedef struct {
    bool greeted;
    bool in_data;       /* client is sending a DATA body */
    unsigned bdat_unanswered; /* BDAT commands sent and not answered yet */
    bool in_sasl;       /* client lines are SASL responses, not commands */
    bool reply_open;    /* inside a multi-line reply */
    int reply_code;
} ms_smtp_state;

typedef struct {
    bool greeted;
    bool multiline;     /* server is sending a multi-line body */
    uint8_t multiline_cmd;
    bool in_sasl;       /* client lines are SASL responses, not commands */
    char apop_timestamp[MS_STR_SMALL + 1]; /* "<...>" from the greeting */
    size_t apop_timestamp_len;
    char user[MS_STR_SMALL + 1];           /* the last USER, waiting for PASS */
    size_t user_len;
    bool have_user;
} ms_pop3_state;

/* Arguments of an IMAP LOGIN being read: atoms, quoted strings, literals. */
typedef struct {
    ms_str_small arg[2];
    unsigned count;     /* arguments complete so far (at most 2) */
    bool in_literal;    /* raw octets go to arg[count] (count < 2) */
    bool overflow;      /* more than two arguments */
    bool incomplete;    /* bytes of the command were lost or never sent */
} ms_imap_args;

typedef struct {
    bool greeted;
    bool client_cont;   /* next client line continues a command after a literal */
    bool server_cont;   /* next server line continues a response after a literal */
    bool in_sasl;
    ms_imap_args *args; /* set while a LOGIN command is read */
    char cont_tag[MS_TAG_MAX + 1]; /* the command whose literal is being read */
    size_t cont_tag_len;
} ms_imap_state;

/* One login exchange in progress (at most one per session at a time). */
typedef struct {
    bool active;
    ms_creds *creds;        /* allocated while active */
    unsigned attempt;
    unsigned client_msgs;   /* SASL messages from the client so far */
    bool requested;         /* the REQUEST fact was emitted */
    bool aborted;           /* the client sent "*" */
    uint32_t request_frame;
    char challenge[MS_STR_SMALL + 1]; /* the first server challenge, as sent */
    size_t challenge_len;
    bool have_challenge;
    bool challenge_open;    /* the server's last challenge awaits the client's answer */
    uint8_t ntlm_challenge[8];
    bool have_ntlm_challenge;
} ms_auth;

struct ms_session {
    const ms_allocator *alloc;
    ms_session_config cfg;
    ms_proto proto;
    ms_detect how;
    ms_transport transport;
    bool first_line_seen[2];
    bool payload_seen;
    ms_lines lines[2];

    bool starttls_pending;
    uint32_t boundary;
    uint64_t cleartext_bytes;
    uint32_t last_cleartext_frame;

    ms_pending pending;
    ms_auth auth;
    unsigned attempts;      /* login attempts so far */
    unsigned failures;
    char auth_user[MS_STR_SMALL + 1]; /* the user of the last successful login */
    size_t auth_user_len;
    unsigned auth_user_gen; /* changes whenever auth_user does */
    ms_smtp_state smtp;
    ms_pop3_state pop3;
    ms_imap_state imap;

    /* valid while a feed call runs */
    const ms_feed_ctx *ctx;
    ms_dir dir;
};

void ms_emit(ms_session *s, ms_fact_kind kind, int ival, int ival2, const uint8_t *data, size_t len);
void ms_emit_fact(ms_session *s, const ms_fact *f);

/* Login mechanics common to the three protocols (ms_auth.c). */
/* A SASL exchange starts (AUTH / AUTHENTICATE); initial: the initial response
 * if the command carried one ("=" for an empty one). */
void ms_auth_start(ms_session *s, const uint8_t *mech, size_t mlen, const uint8_t *initial, size_t ilen,
                   bool has_initial);
/* The same, from the command's arguments "mechanism [initial-response]". */
void ms_auth_start_args(ms_session *s, const uint8_t *args, size_t n);
/* A server challenge line's text (base64, after "334 " or "+ "). */
void ms_auth_challenge(ms_session *s, const uint8_t *b64, size_t len);
/* Does the exchange wait for a client message? Only an open challenge makes
 * a client line a SASL message; without one it is a command (a client that
 * pipelines after AUTH, or a capture without the server's replies). */
bool ms_auth_expects_response(const ms_session *s);
/* A client line during the exchange (base64, or "*" to abort). */
void ms_auth_client_line(ms_session *s, const uint8_t *line, size_t len);
/* A login in one command (USER/PASS, APOP, IMAP LOGIN): creds filled by the adapter. */
void ms_auth_single(ms_session *s, ms_creds *creds);
/* The server's verdict on the exchange in progress. */
void ms_auth_verdict(ms_session *s, bool success);
/* Forget an exchange in progress (TLS started, session freed). */
void ms_auth_reset(ms_session *s);
ms_creds *ms_auth_new_creds(ms_session *s);

/* STARTTLS mechanics common to the three protocols. */
void ms_starttls_offered(ms_session *s);
ms_lines_verdict ms_starttls_command(ms_session *s);
ms_lines_verdict ms_starttls_reply(ms_session *s, bool accepted);

/* Pending-command queue. */
void ms_pending_push(ms_session *s, uint8_t cmd, const uint8_t *tag, size_t taglen);
bool ms_pending_pop(ms_session *s, uint8_t *cmd, uint32_t *frame);
/* Remove the entry with this tag (IMAP); false if none. */
bool ms_pending_take_tag(ms_session *s, const uint8_t *tag, size_t taglen, uint8_t *cmd,
                         uint32_t *frame);
void ms_pending_clear(ms_session *s);

/* Protocol adapters: one line (or raw chunk) in, a verdict out. */
ms_lines_verdict ms_smtp_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags);
ms_lines_verdict ms_pop3_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags);
ms_lines_verdict ms_imap_line(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags);
/* A hole in one direction's stream (see ms_lines_gap for k). */
void ms_smtp_gap(ms_session *s, ms_dir dir, ms_gap_kind k);
void ms_pop3_gap(ms_session *s, ms_dir dir, ms_gap_kind k);
void ms_imap_gap(ms_session *s, ms_dir dir, ms_gap_kind k);
void ms_smtp_tls_started(ms_session *s);
void ms_pop3_tls_started(ms_session *s);
void ms_imap_tls_started(ms_session *s);

/* Parse "{123}" or "{123+}" at the end of a line; returns true and the count. */
bool ms_literal_at_end(const uint8_t *p, size_t n, uint64_t *count);

#endif

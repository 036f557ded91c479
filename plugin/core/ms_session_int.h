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
/* The argument of a command is kept up to this many bytes (a probe's target,
 * an envelope address). */
#define MS_ARG_MAX 128
/* Lines are kept whole up to this size; longer ones are cut. */
#define MS_LINE_BUFFER_MAX 65536

/* One command awaiting its reply: what it was, its argument, and where and
 * when it was sent, so that a reply can name its request and its delay. */
typedef struct {
    uint8_t cmd;            /* the adapter's command code */
    uint8_t tag_len;        /* IMAP only */
    uint16_t arg_len;
    uint32_t frame;
    ms_time time;
    char verb[MS_VERB_MAX + 1]; /* the command word as sent, upper case */
    char tag[MS_TAG_MAX + 1];
    char arg[MS_ARG_MAX + 1];
} ms_request;

/* A ring that grows as commands wait (4, 8 ... MS_PENDING_MAX entries): most
 * sessions wait for one or two, and an idle session should not carry 13 KiB. */
typedef struct {
    ms_request *e;      /* NULL until the first command */
    unsigned cap;
    unsigned head;
    unsigned count;
} ms_pending;

/* Recipients of one transaction remembered to tell a repeat. */
#define MS_TX_RCPT_HASHES 32
enum { MS_TX_NONE = 0, MS_TX_SENT, MS_TX_ACCEPTED, MS_TX_REJECTED };

/* SMTP DATA: the command is sent, then the body follows the 354. */
typedef enum {
    MS_SMTP_DATA_NONE = 0,
    MS_SMTP_DATA_SENT,      /* DATA sent, the 354 not seen yet: lines are body already */
    MS_SMTP_DATA_BODY       /* the 354 came: the server is silent until the end */
} ms_smtp_data_state;

typedef struct {
    bool greeted;
    ms_smtp_data_state data;
    bool body_line_start;   /* the last body line ended with CR LF (or the body just began) */
    bool bdat_open;         /* a BDAT message is being joined */
    unsigned bdat_unanswered; /* BDAT commands sent and not answered yet */
    bool bdat_last;         /* the BDAT being read is marked LAST */
    bool reply_open;        /* inside a multi-line reply */
    int reply_code;
    unsigned messages;      /* DATA and BDAT messages begun */
    bool saw_greeting;      /* the session's start is in the capture */
    uint64_t bdat_size;     /* the size the BDAT being read announced */
    bool bdat_check;        /* the next client line follows a chunk: it must be a command */
    /* the mail transaction (RFC 5321 3.3): MAIL FROM ... end of data, RSET, HELO */
    bool tx_open;
    unsigned transactions;
    uint32_t tx_mail_hash;  /* of the MAIL FROM address */
    uint8_t tx_mail;        /* MS_TX_* */
    uint16_t tx_rcpt_accepted;
    uint16_t tx_rcpt_unanswered;
    uint8_t tx_nhash;
    uint32_t tx_rcpt_hash[MS_TX_RCPT_HASHES]; /* recipients seen, to tell a repeat */
    uint32_t rcpts;         /* RCPT TO sent in the session */
    uint32_t probes;        /* answered probes in the session */
    bool tx_flagged;        /* NO_ENVELOPE reported for this transaction */
    bool ended_by_reply;    /* the server's reply is ending the DATA body */
    bool replies_lost;      /* server bytes are missing from the capture */
    bool smuggled;          /* the message that just ended carried a smuggled command */
    unsigned smuggled_message;
    uint32_t smuggled_replies; /* replies with no command of ours since: the smuggled ones */
    struct ms_smuggle *smuggle; /* the DATA body's end-of-data look-alike scanner */
} ms_smtp_state;

typedef struct {
    bool greeted;
    bool multiline;     /* server is sending a multi-line body */
    uint8_t multiline_cmd;
    char apop_timestamp[MS_STR_SMALL + 1]; /* "<...>" from the greeting */
    size_t apop_timestamp_len;
    char user[MS_STR_SMALL + 1];           /* the last USER, waiting for PASS */
    size_t user_len;
    bool have_user;
    unsigned messages;  /* RETR/TOP bodies begun */
    uint32_t deleted;   /* DELE accepted */
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
    ms_imap_args *args; /* set while a LOGIN command is read */
    char cont_tag[MS_TAG_MAX + 1]; /* the command whose literal is being read */
    size_t cont_tag_len;
    bool cont_append;   /* the command being continued is an APPEND */
    bool client_body;   /* the client's literal is a message (APPEND) */
    bool server_body;   /* the server's literal is a message (FETCH) */
    bool server_fetch;  /* the response being read is a FETCH */
    unsigned messages[2]; /* literals handed over as messages, per direction */
    uint32_t deleted;   /* marked \\Deleted or moved to a trash folder */
    uint32_t expunged;  /* untagged EXPUNGE responses */
    uint32_t expunge_mark; /* expunged when the last EXPUNGE/CLOSE was sent */
} ms_imap_state;

/* One login exchange in progress (at most one per session at a time). */
typedef struct {
    bool active;
    bool sasl;              /* a SASL exchange (AUTH, AUTHENTICATE): client lines may be its messages */
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

/* A protocol adapter: what the session calls, and nothing else it knows of
 * the protocol. */
typedef struct {
    /* One line (or a piece of counted octets, MS_LINE_RAW) of one direction. */
    ms_lines_verdict (*line)(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, unsigned flags);
    /* A hole in one direction's stream (see ms_lines_gap for k). */
    void (*gap)(ms_session *s, ms_dir dir, ms_gap_kind k);
    /* TLS took over: the protocol starts again (RFC 3207, 2595). */
    void (*tls_started)(ms_session *s);
    /* The session ends: release what the adapter holds. */
    void (*free)(ms_session *s);
    /* Lock-step protocols speak only to answer a complete line of the peer:
     * a reply ends the client's unterminated line, a command the server's.
     * NULL: never (IMAP). For a reply, false while the client may be in the
     * middle of a body the server does not answer line by line. */
    bool (*reply_ends_client_line)(const ms_session *s);
    /* The session ended: report what never got its answer. NULL: nothing. */
    void (*end)(ms_session *s);
} ms_adapter;

extern const ms_adapter ms_smtp_adapter;
extern const ms_adapter ms_pop3_adapter;
extern const ms_adapter ms_imap_adapter;

struct ms_session {
    const ms_allocator *alloc;
    ms_session_config cfg;
    ms_proto proto;
    const ms_adapter *adapter; /* NULL while the protocol is unknown */
    ms_detect how;
    bool proto_reported;    /* the PROTO fact was emitted */
    ms_transport transport;
    bool first_line_seen[2];
    bool payload_seen;
    ms_lines lines[2];

    bool starttls_pending;
    bool starttls_offered;  /* a capability list offered it */
    bool starttls_asked;    /* the client asked for it */
    bool unused_reported;
    uint32_t clear_logins;  /* login requests sent in clear so far */
    bool tls_unconfirmed;   /* STARTTLS accepted; no byte seen since to prove TLS began */
    bool not_mail;          /* a TLS port's first payload was neither TLS nor mail */
    bool dir_seen[2];       /* a direction has sent payload */
    bool odd_clear[2];      /* this side speaks in clear though the session began with TLS */
    bool odd_tls[2];        /* this side began with TLS though the session is in clear */
    bool list_offered;      /* the capability list being read offered STARTTLS */
    bool logged_in;         /* a login succeeded: later capability lists are another state's */
    bool cap_reported;      /* capability stripped: said once */
    uint64_t buffered_bytes; /* client bytes in clear after STARTTLS, before its reply */
    uint32_t buffered_frame;
    struct ms_tlshello *hello; /* the handshake being read (TLS sessions) */
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
    /* the adapters' own state: each adapter touches only its own */
    ms_smtp_state smtp;
    ms_pop3_state pop3;
    ms_imap_state imap;

    unsigned messages;      /* messages complete or ended, all sources: mailsec.msg.count */
    struct ms_msgscan *scan[2]; /* the message being read, per direction */

    /* records emitted per kind, against cfg.max_records (ms_emit_fact) */
    uint32_t records[MS_FACT_KIND_END];
    uint32_t probe_requests;
    uint64_t records_capped; /* kinds whose cap was reported, one bit each */

    /* valid while a feed call runs */
    const ms_feed_ctx *ctx;
    ms_dir dir;
    ms_span span;           /* the line being handled */
    bool line_cut;          /* ... was longer than the line buffer: only its beginning is there */
};

/* Report a fact of the line being handled (its span is filled in). */
void ms_emit_fact(ms_session *s, ms_fact *f);
void ms_emit_kind(ms_session *s, ms_fact_kind kind);

/* Message content (ms_session.c): BEGIN, DATA ..., END of one message. */
void ms_body_begin(ms_session *s, ms_body_source src, ms_dir dir, unsigned message);
void ms_body_data(ms_session *s, ms_body_source src, ms_dir dir, unsigned message,
                  const uint8_t *p, size_t n, unsigned flags);
/* A line of a line-based body, with the line end it had on the wire. */
void ms_body_line(ms_session *s, ms_body_source src, ms_dir dir, unsigned message,
                  const uint8_t *p, size_t n, unsigned line_flags);
void ms_body_end(ms_session *s, ms_body_source src, ms_dir dir, unsigned message, unsigned flags);

/* Login mechanics common to the three protocols (ms_auth.c). */
/* A SASL exchange starts (AUTH / AUTHENTICATE); initial: the initial response
 * if the command carried one ("=" for an empty one). */
void ms_auth_start(ms_session *s, const uint8_t *mech, size_t mlen, const uint8_t *initial, size_t ilen,
                   bool has_initial);
/* The same, from the command's arguments "mechanism [initial-response]". */
void ms_auth_start_args(ms_session *s, const uint8_t *args, size_t n);
/* A server challenge line's text (base64, after "334 " or "+ "). */
void ms_auth_challenge(ms_session *s, const uint8_t *b64, size_t len);
/* Is a SASL exchange (AUTH, AUTHENTICATE) in progress? The one owner of
 * "inside a SASL exchange" for the three adapters. */
bool ms_auth_in_sasl(const ms_session *s);
/* Does the exchange wait for a client message? Only an open challenge makes
 * a client line a SASL message; without one it is a command (a client that
 * pipelines after AUTH, or a capture without the server's replies). */
bool ms_auth_expects_response(const ms_session *s);
/* The client left the exchange: it sent a command where a SASL message was
 * due (the server's verdict is not in the capture). The attempt stays
 * without a verdict. */
void ms_auth_abandon(ms_session *s);
/* Is this client line, sent where a SASL message was due, a command
 * instead? A SASL message is one base64 word: a line with a space, or one of
 * the argument-less verbs given (NULL-terminated list), is a command. */
bool ms_auth_line_is_command(const uint8_t *p, size_t n, const char *const *verbs);
/* A client line during the exchange (base64, or "*" to abort). */
void ms_auth_client_line(ms_session *s, const uint8_t *line, size_t len);
/* A login in one command (USER/PASS, APOP, IMAP LOGIN): creds filled by the adapter. */
void ms_auth_single(ms_session *s, ms_creds *creds);
/* The server's verdict on the exchange in progress. */
void ms_auth_verdict(ms_session *s, bool success);
/* Forget an exchange in progress (TLS started, session freed). */
void ms_auth_reset(ms_session *s);
ms_creds *ms_auth_new_creds(ms_session *s);
/* A login command or message that does not parse. */
void ms_auth_malformed(ms_session *s, ms_auth_problem p);

/* A login or a message went in clear: if STARTTLS was offered and never
 * asked for, say so (once). */
void ms_starttls_unused_check(ms_session *s, ms_unused_what what);

/* STARTTLS mechanics common to the three protocols. */
void ms_starttls_offered(ms_session *s);
/* A cleartext capability list (EHLO reply, CAPA, IMAP CAPABILITY) ended:
 * without STARTTLS where the server offered it before or the port expects
 * it, the capability may have been stripped. */
void ms_capabilities_end(ms_session *s);
ms_lines_verdict ms_starttls_command(ms_session *s);
ms_lines_verdict ms_starttls_reply(ms_session *s, bool accepted);

/* Pending-command queue. A command is queued with its argument, and the
 * frame and time of the line that sent it. */
void ms_pending_push(ms_session *s, uint8_t cmd, const uint8_t *verb, size_t verblen,
                     const uint8_t *tag, size_t taglen, const uint8_t *arg, size_t arglen);
/* The oldest command awaiting a reply, or NULL. */
const ms_request *ms_pending_peek(const ms_session *s);
/* The command queued last, or NULL. */
const ms_request *ms_pending_peek_last(const ms_session *s);
unsigned ms_pending_count(const ms_session *s);
/* Remove the oldest; out (may be NULL) gets it. false if none. */
bool ms_pending_pop(ms_session *s, ms_request *out);
/* Remove the entry with this tag (IMAP); false if none. */
bool ms_pending_take_tag(ms_session *s, const uint8_t *tag, size_t taglen, ms_request *out);
void ms_pending_clear(ms_session *s);

 /* A reply to req (NULL: a greeting, or its request is not known). text is
 * the reply's last line after the status word, for the enhanced code. */
void ms_reply(ms_session *s, ms_reply_status status, uint16_t code, const uint8_t *text, size_t n,
              const ms_request *req);

/* A reply that answers no command of the session, labelled ("(greeting)",
 * "(none)", "(smuggled)", "(data ended)"): frame 0, no delay. */
const ms_request *ms_no_request(const char *label);

/* Add to a counter of this session's client address (all sessions of the
 * file); returns the new value (0 when the address is unknown). */
uint32_t ms_client_count(ms_session *s, int counter, uint32_t add);

/* Parse "{123}" or "{123+}" at the end of a line; returns true and the count. */
bool ms_literal_at_end(const uint8_t *p, size_t n, uint64_t *count);

#endif

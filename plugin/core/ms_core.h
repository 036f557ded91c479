/* ms_core.h — types shared by the pure mail-analysis core.
 *
 * Nothing under plugin/core includes epan or glib: the core is fed bytes and
 * emits facts through a callback, so unit tests and fuzzers link it alone.
 */
#ifndef MS_CORE_H
#define MS_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MS_PROTO_UNKNOWN = 0,
    MS_PROTO_SMTP,
    MS_PROTO_POP3,
    MS_PROTO_IMAP
} ms_proto;

/* How a session was recognised: by the port (or the dissector table entry that
 * the user set with Decode As), or by its content. */
typedef enum {
    MS_DETECT_PORT = 0,
    MS_DETECT_HEURISTIC
} ms_detect;

typedef enum {
    MS_TRANSPORT_CLEARTEXT = 0,
    MS_TRANSPORT_STARTTLS,
    MS_TRANSPORT_IMPLICIT_TLS
} ms_transport;

typedef enum {
    MS_DIR_C2S = 0,
    MS_DIR_S2C = 1
} ms_dir;

typedef enum {
    MS_STARTTLS_NONE = 0,
    MS_STARTTLS_ACCEPTED,
    MS_STARTTLS_REFUSED,
    MS_STARTTLS_NO_REPLY
} ms_starttls_result;

const char *ms_proto_name(ms_proto p);
const char *ms_detect_name(ms_detect d);
const char *ms_transport_name(ms_transport t);
const char *ms_starttls_result_name(ms_starttls_result r);

/* Memory comes from the caller: the Wireshark layer hands in file-scoped
 * wmem, tests and fuzzers hand in libc. realloc(ctx, NULL, n) allocates. */
typedef struct {
    void *(*realloc_fn)(void *ctx, void *ptr, size_t size);
    void (*free_fn)(void *ctx, void *ptr);
    void *ctx;
} ms_allocator;

extern const ms_allocator ms_libc_allocator;

typedef enum {
    MS_AUTH_SUCCESS = 1,
    MS_AUTH_FAILURE,
    MS_AUTH_ABORTED
} ms_auth_result;

typedef enum {
    MS_AUTH_BAD_BASE64 = 1,     /* a SASL message that is not base64 */
    MS_AUTH_BAD_MESSAGE,        /* base64, but not what the mechanism defines */
    MS_AUTH_BAD_ARGUMENTS       /* a login command without its arguments */
} ms_auth_problem;

const char *ms_auth_result_name(ms_auth_result r);

/* When a frame was captured: the feed carries it, pending commands keep it. */
typedef struct {
    int64_t secs;
    int32_t nsecs;
} ms_time;

/* Where in one direction's byte stream the line (or octets) behind a fact
 * lies: offset from the first byte of that direction, and length with its
 * line end. The Wireshark layer maps it onto the frame's bytes. */
typedef struct {
    uint64_t at;
    uint32_t len;
    ms_dir dir;
    bool valid;
} ms_span;

struct ms_creds; /* ms_sasl.h */

/* A fact is something the core learnt from the traffic: one kind, one typed
 * payload. The Wireshark layer keeps facts per frame (one table entry per
 * kind says how to keep and draw it) and one table of alerts judges them.
 * Pointers in a payload are valid only during the callback: copy what you keep. */
typedef enum {
    MS_FACT_PROTO = 1,         /* .proto */
    MS_FACT_STARTTLS_OFFERED,  /* capability reply advertised STARTTLS/STLS; no payload */
    MS_FACT_STARTTLS_COMMAND,  /* client asked for STARTTLS/STLS; no payload */
    MS_FACT_STARTTLS_RESULT,   /* .starttls_result */
    MS_FACT_TLS_BEGIN,         /* .tls_begin: the transport in force after this frame */
    MS_FACT_STARTTLS_INJECTED, /* .injected: plaintext after the command or its OK */
    MS_FACT_LINE_TOO_LONG,     /* .line_too_long */
    MS_FACT_AUTH_START,        /* .auth_start: a login begins (AUTH, USER/PASS, LOGIN ...) */
    MS_FACT_AUTH_REQUEST,      /* .auth_request: the client's part of a login is complete */
    MS_FACT_AUTH_RESULT,       /* .auth_result: the server's verdict */
    MS_FACT_AUTH_MALFORMED,    /* .auth_malformed */
    MS_FACT_STREAM_GAP,        /* .stream_gap: bytes missing from the capture */
    MS_FACT_REPLY,             /* .reply: a server reply (its last line), and what it answers */
    MS_FACT_PROBE,             /* .probe: VRFY, EXPN, or a RCPT refused as unknown */
    MS_FACT_HELO,              /* .text: the name in HELO/EHLO/LHLO */
    MS_FACT_ENVELOPE,          /* .envelope: MAIL FROM or RCPT TO */
    MS_FACT_NO_ENVELOPE,       /* .no_envelope: DATA/BDAT answered with no accepted MAIL/RCPT */
    MS_FACT_BDAT_MISMATCH,     /* .bdat_mismatch: a BDAT size that does not fit its data */
    MS_FACT_SMUGGLING,         /* .smuggling: an end-of-data look-alike inside DATA */
    MS_FACT_MSG_HEADER,        /* .msg_header: a header of a message being read */
    MS_FACT_MSG_ATTACHMENT,    /* .msg_attachment: a MIME part with a file name, complete */
    MS_FACT_MSG_URL,           /* .msg_url: a URL in a text part */
    MS_FACT_MSG_LIMIT,         /* .msg_limit: the message scanner stopped at a limit */
    MS_FACT_MSG_END,           /* .msg_end: a message is complete (or ended where it stopped) */
    MS_FACT_DELETED,           /* .deleted: messages marked deleted or expunged */
    MS_FACT_SMUGGLED_ANSWERED, /* .smuggled_answered: the server answered commands smuggled in DATA */
    MS_FACT_TLS_POSTURE,       /* .tls_posture: the handshake's version, cipher and server name */
    MS_FACT_STARTTLS_STRIPPED, /* .stripped: STARTTLS accepted, then no TLS: the session goes on in clear */
    MS_FACT_STARTTLS_UNUSED,   /* .unused: offered, never asked for, and a login or message went in clear */
    MS_FACT_IMAP_PREAUTH,      /* no payload: a PREAUTH greeting in clear (no STARTTLS is possible after it) */
    MS_FACT_IMAP_ALERT,        /* .text: an [ALERT] response code sent in clear */
    MS_FACT_LOGIN_BEFORE_TLS,  /* .count: logins that went in clear before STARTTLS took effect */
    MS_FACT_STARTTLS_BUFFERED, /* .buffered: client bytes sent in clear after STARTTLS, before its reply, then TLS */
    MS_FACT_CAPABILITY_STRIPPED, /* .cap_stripped: a cleartext capability list without STARTTLS where it was due */
    MS_FACT_STARTTLS_CONFIRMED, /* no payload: after STARTTLS, the first TLS record: TLS really began */
    MS_FACT_RECORD_LIMIT,      /* .record_limit: records of one kind past the session's cap are no longer emitted */
    MS_FACT_OVERLAP_CONFLICT,  /* .conflict: a segment repeated bytes seen before with other content */
    MS_FACT_KIND_END           /* one past the last kind */
} ms_fact_kind;

typedef struct { ms_proto proto; ms_detect how; } ms_fact_proto;
typedef struct { ms_starttls_result result; } ms_fact_starttls_result;
typedef struct { ms_transport transport; } ms_fact_tls_begin;
typedef struct {
    ms_dir dir;
    const uint8_t *bytes;
    size_t len;
    bool own_segment;       /* server: a reply in a segment of its own, before the client's handshake */
} ms_fact_injected;
typedef struct { ms_dir dir; uint64_t length; } ms_fact_line_too_long;
typedef struct { unsigned attempt; const struct ms_creds *creds; } ms_fact_auth_start;
typedef struct { unsigned attempt; bool cleartext; const struct ms_creds *creds; } ms_fact_auth_request;
typedef struct {
    unsigned attempt;
    ms_auth_result result;
    const struct ms_creds *creds;
    uint32_t request_frame;    /* the frame that completed the client's part (0: none) */
    uint32_t session_failures; /* failed logins so far in this session */
    uint32_t client_failures;  /* failed logins so far from this client address, all sessions */
} ms_fact_auth_result;
typedef struct { ms_auth_problem problem; } ms_fact_auth_malformed;
typedef struct { ms_dir dir; uint64_t lost; } ms_fact_stream_gap;

/* What a reply says, as its protocol words it. */
typedef enum {
    MS_REPLY_SMTP = 1,  /* a three-digit code */
    MS_REPLY_OK,        /* POP3 +OK, IMAP OK */
    MS_REPLY_ERR,       /* POP3 -ERR */
    MS_REPLY_NO,        /* IMAP NO */
    MS_REPLY_BAD        /* IMAP BAD */
} ms_reply_status;

#define MS_VERB_MAX 15
typedef struct {
    ms_reply_status status;
    uint16_t code;          /* SMTP */
    char enhanced[16];      /* RFC 3463 "class.subject.detail", "" if none */
    char command[MS_VERB_MAX + 1]; /* the verb it answers, upper case; "" for a greeting */
    bool has_request;       /* the request is known (not a greeting, nor lost) */
    uint32_t request_frame;
    ms_time delay;          /* from the request to this reply */
} ms_fact_reply;

typedef enum { MS_PROBE_VRFY = 1, MS_PROBE_EXPN, MS_PROBE_RCPT } ms_probe_cmd;
typedef enum {
    MS_PROBE_PENDING = 0,   /* the request: the verdict comes with the reply */
    MS_PROBE_EXISTS,        /* 250, 251 */
    MS_PROBE_CANNOT_VERIFY, /* 252 */
    MS_PROBE_UNKNOWN,       /* 550, 551, 553 */
    MS_PROBE_DISABLED,      /* 500, 502, 504 */
    MS_PROBE_REFUSED,       /* another negative reply (authentication required, policy) */
    MS_PROBE_NO_REPLY       /* the session ended without the reply */
} ms_probe_verdict;

typedef struct {
    ms_probe_cmd command;
    ms_probe_verdict verdict;
    const char *target;     /* the name or address probed */
    size_t target_len;
    uint16_t code;
    uint32_t count;         /* probes so far in this session */
    uint32_t client_count;  /* probes so far from this client address, all sessions */
    uint32_t request_frame;
} ms_fact_probe;

typedef struct { const char *s; size_t len; } ms_fact_text;

typedef enum { MS_ENVELOPE_MAIL = 1, MS_ENVELOPE_RCPT } ms_envelope_kind;
typedef struct {
    ms_envelope_kind kind;
    const char *addr;       /* the address, without <> and parameters */
    size_t addr_len;
    unsigned transaction;   /* 1, 2 ... MAIL FROM in the session */
    bool repeated;          /* the same address again in this transaction */
    uint32_t rcpt_count;    /* RCPT TO so far in the session */
    uint32_t client_rcpts;  /* ... from this client address, all sessions */
} ms_fact_envelope;

typedef struct {
    bool bdat;              /* BDAT, else DATA */
    bool mail_accepted;
    uint32_t rcpt_accepted;
} ms_fact_no_envelope;

typedef enum {
    MS_BDAT_ANSWERED_EARLY = 1, /* the server answered before the announced octets came */
    MS_BDAT_NO_COMMAND_AFTER    /* what followed the announced octets is no command */
} ms_bdat_problem;
typedef struct { ms_bdat_problem problem; uint64_t announced; } ms_fact_bdat_mismatch;

#define MS_SMUGGLE_SEQ_MAX 12
typedef struct {
    const uint8_t *seq;     /* the look-alike, from the line end before the dot */
    size_t seq_len;
    uint64_t offset;        /* of its first byte in the message as sent */
    unsigned message;
    const char *line;       /* the line that follows it, cut at MS_SMUGGLE_LINE_MAX */
    size_t line_len;
    bool command;           /* that line starts with an SMTP command: smuggled */
    bool accepted;          /* nothing followed it and the server answered: it took it as the end */
} ms_fact_smuggling;

/* Headers of a message the analyst asks about first. */
typedef enum {
    MS_HDR_FROM = 1,
    MS_HDR_TO,
    MS_HDR_CC,
    MS_HDR_SUBJECT,
    MS_HDR_DATE,
    MS_HDR_MESSAGE_ID,
    MS_HDR_REPLY_TO,
    MS_HDR_USER_AGENT,      /* User-Agent or X-Mailer */
    MS_HDR_ORIGINATING_IP,  /* X-Originating-IP */
    MS_HDR_RECEIVED,        /* one per hop, in order */
    MS_HDR_KIND_END
} ms_hdr_kind;

typedef struct {
    unsigned message;
    ms_dir dir;
    ms_hdr_kind header;
    const char *value;      /* unfolded, RFC 2047 decoded (UTF-8) */
    size_t len;
    bool cut;
} ms_fact_msg_header;

typedef struct {
    unsigned message;
    const char *filename;   /* UTF-8 */
    size_t filename_len;
    const char *content_type;
    size_t content_type_len;
    uint64_t size;          /* decoded */
    uint8_t sha256[32];     /* of the decoded content */
    bool truncated;
} ms_fact_msg_attachment;

typedef struct { unsigned message; const char *url; size_t len; } ms_fact_msg_url;
typedef struct { unsigned message; const char *what; } ms_fact_msg_limit;

typedef struct {
    unsigned message;       /* messages so far in the session, all sources */
    uint32_t client_messages; /* ... sent by this client address, all sessions (SMTP) */
    unsigned source;        /* ms_body_source (ms_session.h) */
    ms_dir dir;
    uint64_t size;          /* the message as meant: dot-stuffing undone, chunks joined */
    uint8_t sha256[32];
    unsigned flags;         /* MS_BODY_LOST, MS_BODY_UNFINISHED */
} ms_fact_msg_end;

typedef struct {
    uint32_t added;         /* marked deleted by this reply (DELE, \Deleted, MOVE to a trash folder) */
    uint32_t total;         /* so far in the session */
    uint32_t expunged;      /* removed for good by this reply (IMAP EXPUNGE, CLOSE) */
    const char *how;        /* "DELE", "\Deleted", "MOVE", "EXPUNGE" */
} ms_fact_deleted;

typedef struct {
    unsigned message;       /* the message that carried them */
    uint32_t replies;       /* replies to smuggled commands so far */
} ms_fact_smuggled_answered;

typedef struct {
    uint16_t version;       /* negotiated: 0x0300 SSL 3.0, 0x0301 TLS 1.0 ... 0x0304 TLS 1.3 */
    uint16_t cipher;        /* the cipher suite's number */
    bool client_hello;      /* the ClientHello was read (so has_sni means something) */
    bool has_sni;
    const char *sni;        /* the server name the client asked for */
    size_t sni_len;
} ms_fact_tls_posture;

typedef struct { ms_dir dir; } ms_fact_stripped;
typedef struct { uint32_t n; } ms_fact_count; /* who sent the first bytes in clear */
typedef enum { MS_UNUSED_LOGIN = 1, MS_UNUSED_MESSAGE } ms_unused_what;
typedef struct { ms_unused_what what; } ms_fact_unused;
typedef struct {
    uint64_t bytes;         /* sent in clear after the STARTTLS line, before its reply */
    uint32_t frame;         /* the first frame that carried them */
} ms_fact_buffered;
typedef struct {
    uint32_t offered_in;    /* the session (ms_session_config.session_id) of the same server that
                               offered STARTTLS, plus one; 0: none seen */
    bool expected;          /* the server port is one where STARTTLS is expected */
} ms_fact_cap_stripped;

/* The session's cap on records of one kind was reached: from here on such
 * facts are counted (verdicts, thresholds and counts go on) but not emitted.
 * what: the kind (logins count as MS_FACT_AUTH_START, probes as MS_FACT_PROBE). */
typedef struct { ms_fact_kind what; uint32_t limit; } ms_fact_record_limit;
/* bytes: the length of the overlapping ranges that disagreed (the first copy is what was read) */
typedef struct { ms_dir dir; uint64_t bytes; } ms_fact_conflict;

/* One payload per kind, named after it. */
typedef union {
    ms_fact_proto proto;
    ms_fact_starttls_result starttls_result;
    ms_fact_tls_begin tls_begin;
    ms_fact_injected injected;
    ms_fact_line_too_long line_too_long;
    ms_fact_auth_start auth_start;
    ms_fact_auth_request auth_request;
    ms_fact_auth_result auth_result;
    ms_fact_auth_malformed auth_malformed;
    ms_fact_stream_gap stream_gap;
    ms_fact_reply reply;
    ms_fact_probe probe;
    ms_fact_text text;
    ms_fact_envelope envelope;
    ms_fact_no_envelope no_envelope;
    ms_fact_bdat_mismatch bdat_mismatch;
    ms_fact_smuggling smuggling;
    ms_fact_msg_header msg_header;
    ms_fact_msg_attachment msg_attachment;
    ms_fact_msg_url msg_url;
    ms_fact_msg_limit msg_limit;
    ms_fact_msg_end msg_end;
    ms_fact_deleted deleted;
    ms_fact_smuggled_answered smuggled_answered;
    ms_fact_tls_posture tls_posture;
    ms_fact_stripped stripped;
    ms_fact_unused unused;
    ms_fact_count count;
    ms_fact_buffered buffered;
    ms_fact_cap_stripped cap_stripped;
    ms_fact_record_limit record_limit;
    ms_fact_conflict conflict;
} ms_fact_payload;

typedef struct {
    ms_fact_kind kind;
    ms_span span;           /* the bytes that told it, when known */
    ms_fact_payload u;
} ms_fact;

typedef void (*ms_fact_sink)(void *ctx, const ms_fact *fact);

#endif

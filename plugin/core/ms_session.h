/* ms_session.h — one mail session (one TCP stream), fed in capture order.
 *
 * The Wireshark layer hands in the new bytes of each cleartext segment and the
 * decrypted application data of each TLS record; the session tokenises them,
 * runs the protocol's state machine and reports facts for the current frame.
 */
#ifndef MS_SESSION_H
#define MS_SESSION_H

#include "ms_core.h"

typedef struct ms_session ms_session;
struct ms_registry; /* ms_registry.h */

/* Message content: what the adapters hand over besides facts. A message is
 * BEGIN, DATA pieces in order, END. DATA carries the bytes as they crossed
 * the wire: line ends as sent (CR LF or a bare LF), SMTP and POP3 dot-stuffing
 * kept, so that a consumer sees exactly what the peer read. */
typedef enum {
    MS_BODY_BEGIN = 1,
    MS_BODY_DATA,
    MS_BODY_END
} ms_body_event;

typedef enum {
    MS_BODY_SMTP_DATA = 1,  /* the client's DATA, up to its CR LF . CR LF */
    MS_BODY_SMTP_BDAT,      /* BDAT chunks, joined (RFC 3030) */
    MS_BODY_POP3_RETR,      /* the +OK body of RETR */
    MS_BODY_POP3_TOP,       /* the +OK body of TOP */
    MS_BODY_IMAP_FETCH,     /* a literal in a FETCH response */
    MS_BODY_IMAP_APPEND     /* the literal of an APPEND command */
} ms_body_source;

enum {
    MS_BODY_LOST = 1u << 0,       /* DATA, END: bytes of the message are missing (a gap, a cut line) */
    MS_BODY_UNFINISHED = 1u << 1, /* END: the message did not reach its own end (the peer
                                     answered or stopped first, TLS began, the session ended) */
    MS_BODY_BARE_LF = 1u << 2     /* DATA: a line of this piece ended with LF alone */
};

typedef struct {
    ms_body_event event;
    ms_body_source source;
    ms_dir dir;
    unsigned message;       /* 1, 2 ... in the session, per source */
    const uint8_t *data;    /* DATA only; valid during the callback */
    size_t len;
    unsigned flags;
} ms_body;

typedef void (*ms_body_sink)(void *ctx, const ms_body *b);

/* A message as meant (dot-stuffing undone, BDAT chunks joined, the literal
 * alone): the bytes mailsec.msg.size and .sha256 are taken over, for export.
 * BEGIN, DATA (any number), END; number is the session's message number
 * (all sources, from 1), as in the msg facts. */
typedef struct {
    ms_body_event event;
    ms_body_source source;
    ms_dir dir;
    unsigned number;
    const uint8_t *data;    /* DATA only; valid during the callback */
    size_t len;
    unsigned flags;         /* END: MS_BODY_LOST, MS_BODY_UNFINISHED */
    /* 0: the message; k: its k-th attachment (a MIME part with a file
     * name), decoded: DATA pieces, then END with its name (UTF-8) and
     * MS_BODY_LOST when it was cut. No BEGIN for attachments. */
    unsigned part;
    const char *name;
    size_t name_len;
} ms_content;

typedef void (*ms_content_sink)(void *ctx, const ms_content *c);

typedef struct {
    uint32_t frame;     /* the frame being dissected */
    ms_time time;       /* when it was captured */
    ms_fact_sink sink;  /* receives the facts this frame produces */
    void *sink_ctx;
    ms_body_sink body;  /* receives message content; may be NULL */
    void *body_ctx;
    ms_content_sink content; /* receives messages as meant; may be NULL */
    void *content_ctx;
} ms_feed_ctx;

typedef struct {
    ms_proto port_proto;  /* what the port (or Decode As) says; UNKNOWN if nothing */
    bool implicit_tls;    /* the port is a TLS-from-the-start port (465, 993, 995) */
    ms_detect how;        /* how the session was claimed */
    size_t max_line;      /* longest line kept whole (bytes); at most MS_MAX_LINE_LIMIT */
    struct ms_registry *registry; /* state across sessions; may be NULL */
    uint8_t client_addr[16];      /* the client's address, the registry's key */
    uint8_t client_addr_len;      /* 0: unknown */
    uint8_t client_family;
    uint8_t server_addr[16];      /* the server's address and port: the key of what a server offered */
    uint8_t server_addr_len;      /* 0: unknown */
    uint8_t server_family;
    uint16_t server_port;
    uint32_t session_id;          /* the caller's name for this session (the TCP stream), named in facts */
    bool starttls_expected;       /* the server port normally offers STARTTLS (a preference) */
    /* the message scanner's limits (0: its defaults) */
    size_t msg_max_header;        /* bytes of one header value kept */
    unsigned msg_max_depth;       /* MIME nesting followed */
    unsigned msg_max_parts;       /* MIME parts examined per message */
    unsigned msg_max_urls;        /* URLs reported per message */
    /* records of one kind emitted per session (logins, probes, replies,
     * envelope addresses, headers ...); past it they are counted, not
     * emitted, and MS_FACT_RECORD_LIMIT says so once per kind. 0: no cap */
    uint32_t max_records;
} ms_session_config;

/* The longest max_line honoured: every line buffer is bounded by it. */
#define MS_MAX_LINE_LIMIT ((size_t)1 << 20)

ms_session *ms_session_new(const ms_allocator *a, const ms_session_config *cfg);
void ms_session_free(ms_session *s);

/* The TCP layer saw bytes of this direction again with other content
 * (ms_seq_take_conflict): say so on this frame. */
void ms_session_conflict(ms_session *s, ms_dir dir, uint64_t bytes, const ms_feed_ctx *ctx);

/* New cleartext bytes of a TCP segment, in stream order (after ms_seq);
 * lost: bytes missing from the capture just before them. Ignored once the
 * session runs TLS. */
void ms_session_segment(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, uint64_t lost,
                        const ms_feed_ctx *ctx);

/* Decrypted application data of one TLS record. */
void ms_session_decrypted(ms_session *s, ms_dir dir, const uint8_t *p, size_t n,
                          const ms_feed_ctx *ctx);

/* The session ended (both sides closed, or reset): what waited for an answer
 * or an end is reported as such, on ctx's frame. */
void ms_session_finish(ms_session *s, const ms_feed_ctx *ctx);

ms_proto ms_session_proto(const ms_session *s);
ms_detect ms_session_detect(const ms_session *s);
/* The transport in force for a frame dissected now. */
ms_transport ms_session_frame_transport(const ms_session *s, uint32_t frame);
/* The same for a frame sent in direction dir: a side that spoke in clear
 * while the other began with TLS (or the reverse) is labelled by what it sent. */
ms_transport ms_session_dir_transport(const ms_session *s, ms_dir dir, uint32_t frame);
/* The first payload on a TLS port was neither TLS nor mail: the session is
 * not mail, and nothing more is read. */
bool ms_session_not_mail(const ms_session *s);
bool ms_session_tls(const ms_session *s);
/* Bytes of one direction fed so far (lost bytes included): the stream
 * offset of the next byte, as ms_span counts it. */
uint64_t ms_session_stream_pos(const ms_session *s, ms_dir dir);
/* Last cleartext frame before STARTTLS took effect (0: none). */
uint32_t ms_session_boundary(const ms_session *s);
uint64_t ms_session_cleartext_bytes(const ms_session *s);
/* The user of the last successful login (NULL if none); gen changes with it. */
const char *ms_session_auth_user(const ms_session *s, size_t *len, unsigned *gen);

#endif

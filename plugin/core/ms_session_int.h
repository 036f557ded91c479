/* ms_session_int.h — the session's insides, shared by ms_session.c and the
 * protocol adapters (ms_smtp.c, ms_pop3.c, ms_imap.c). Not for the epan layer.
 */
#ifndef MS_SESSION_INT_H
#define MS_SESSION_INT_H

#include "ms_lines.h"
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
    bool reply_open;    /* inside a multi-line reply */
    int reply_code;
} ms_smtp_state;

typedef struct {
    bool greeted;
    bool multiline;     /* server is sending a multi-line body */
    uint8_t multiline_cmd;
    bool in_sasl;       /* client lines are SASL responses, not commands */
} ms_pop3_state;

typedef struct {
    bool greeted;
    bool client_cont;   /* next client line continues a command after a literal */
    bool server_cont;   /* next server line continues a response after a literal */
    bool in_sasl;
} ms_imap_state;

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
    ms_smtp_state smtp;
    ms_pop3_state pop3;
    ms_imap_state imap;

    /* valid while a feed call runs */
    const ms_feed_ctx *ctx;
    ms_dir dir;
};

void ms_emit(ms_session *s, ms_fact_kind kind, int ival, int ival2, const uint8_t *data, size_t len);

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
void ms_smtp_tls_started(ms_session *s);
void ms_pop3_tls_started(ms_session *s);
void ms_imap_tls_started(ms_session *s);

/* Parse "{123}" or "{123+}" at the end of a line; returns true and the count. */
bool ms_literal_at_end(const uint8_t *p, size_t n, uint64_t *count);

#endif

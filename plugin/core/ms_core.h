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
    MS_FACT_KIND_END           /* one past the last kind */
} ms_fact_kind;

typedef struct { ms_proto proto; ms_detect how; } ms_fact_proto;
typedef struct { ms_starttls_result result; } ms_fact_starttls_result;
typedef struct { ms_transport transport; } ms_fact_tls_begin;
typedef struct { ms_dir dir; const uint8_t *bytes; size_t len; } ms_fact_injected;
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
} ms_fact_payload;

typedef struct {
    ms_fact_kind kind;
    ms_span span;           /* the bytes that told it, when known */
    ms_fact_payload u;
} ms_fact;

typedef void (*ms_fact_sink)(void *ctx, const ms_fact *fact);

#endif

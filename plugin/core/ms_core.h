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

/* A fact is something the core learnt from the traffic. The Wireshark layer
 * stores facts per frame and one table (alerts) judges them. Byte pointers are
 * only valid during the callback: copy what you keep. */
typedef enum {
    MS_FACT_PROTO = 1,         /* ival: ms_proto, ival2: ms_detect */
    MS_FACT_STARTTLS_OFFERED,  /* capability reply advertised STARTTLS/STLS */
    MS_FACT_STARTTLS_COMMAND,  /* client asked for STARTTLS/STLS */
    MS_FACT_STARTTLS_RESULT,   /* ival: ms_starttls_result */
    MS_FACT_TLS_BEGIN,         /* ival: ms_transport now in force after this frame */
    MS_FACT_STARTTLS_INJECTED, /* ival: ms_dir; data: the plaintext after the command or OK */
    MS_FACT_LINE_TOO_LONG,     /* ival: ms_dir; ival2: bytes seen before the cut */
    MS_FACT_AUTH_START,        /* a login begins (AUTH, USER/PASS, LOGIN ...). ival: attempt;
                                  obj: ms_creds (the mechanism) */
    MS_FACT_AUTH_REQUEST,      /* the client's part of a login is complete.
                                  ival: attempt; ival2: 1 if in clear; obj: ms_creds */
    MS_FACT_AUTH_RESULT,       /* the server's verdict. ival: attempt; ival2: ms_auth_result;
                                  obj: ms_creds; ref_frame: request frame;
                                  count: failures so far in the session */
    MS_FACT_AUTH_MALFORMED,    /* ival: ms_auth_problem */
    MS_FACT_STREAM_GAP         /* bytes missing from the capture. ival: ms_dir;
                                  count: how many (capped at 2^32-1) */
} ms_fact_kind;

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

typedef struct {
    ms_fact_kind kind;
    int ival;
    int ival2;
    const uint8_t *data;
    size_t len;
    const void *obj;     /* structured payload, see the kind */
    uint32_t ref_frame;
    uint32_t count;
} ms_fact;

typedef void (*ms_fact_sink)(void *ctx, const ms_fact *fact);

#endif

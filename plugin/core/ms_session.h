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

typedef struct {
    uint32_t frame;     /* the frame being dissected */
    ms_fact_sink sink;  /* receives the facts this frame produces */
    void *sink_ctx;
} ms_feed_ctx;

typedef struct {
    ms_proto port_proto;  /* what the port (or Decode As) says; UNKNOWN if nothing */
    bool implicit_tls;    /* the port is a TLS-from-the-start port (465, 993, 995) */
    ms_detect how;        /* how the session was claimed */
    size_t max_line;      /* longest line kept whole (bytes) */
} ms_session_config;

ms_session *ms_session_new(const ms_allocator *a, const ms_session_config *cfg);
void ms_session_free(ms_session *s);

/* New cleartext bytes of a TCP segment, in stream order (after ms_seq);
 * lost: bytes missing from the capture just before them. Ignored once the
 * session runs TLS. */
void ms_session_segment(ms_session *s, ms_dir dir, const uint8_t *p, size_t n, uint64_t lost,
                        const ms_feed_ctx *ctx);

/* Decrypted application data of one TLS record. */
void ms_session_decrypted(ms_session *s, ms_dir dir, const uint8_t *p, size_t n,
                          const ms_feed_ctx *ctx);

ms_proto ms_session_proto(const ms_session *s);
ms_detect ms_session_detect(const ms_session *s);
/* The transport in force for a frame dissected now. */
ms_transport ms_session_frame_transport(const ms_session *s, uint32_t frame);
bool ms_session_tls(const ms_session *s);
/* Last cleartext frame before STARTTLS took effect (0: none). */
uint32_t ms_session_boundary(const ms_session *s);
uint64_t ms_session_cleartext_bytes(const ms_session *s);
/* The user of the last successful login (NULL if none); gen changes with it. */
const char *ms_session_auth_user(const ms_session *s, size_t *len, unsigned *gen);

#endif

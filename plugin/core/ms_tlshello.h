/* ms_tlshello.h — what the TLS handshake of a mail session says, read from
 * the records as they cross the wire: the ClientHello's server name (SNI) and
 * the ServerHello's negotiated version (supported_versions included, RFC
 * 8446 4.2.1) and cipher suite. Only the first handshake messages of each
 * direction are read, from a bounded buffer; encrypted records are skipped.
 */
#ifndef MS_TLSHELLO_H
#define MS_TLSHELLO_H

#include "ms_core.h"

#define MS_TLS_HS_MAX 8192   /* handshake bytes kept per direction until the Hello is whole */
#define MS_TLS_SNI_MAX 255

typedef struct ms_tlshello {
    /* what was learnt */
    bool client_hello;       /* a ClientHello was read */
    bool has_sni;
    char sni[MS_TLS_SNI_MAX + 1];
    bool server_hello;       /* a ServerHello was read */
    uint16_t version;        /* 0x0301 TLS 1.0 ... 0x0304 TLS 1.3 */
    uint16_t cipher;
    /* reading state, per direction */
    uint8_t rec_hdr[2][5];
    uint8_t rec_hdr_len[2];
    uint32_t rec_left[2];    /* bytes of the current record still to come */
    bool rec_handshake[2];   /* the current record carries handshake bytes */
    uint8_t *hs[2];          /* handshake bytes gathered (allocated while needed) */
    uint32_t hs_len[2];
    bool done[2];            /* this direction's Hello is read (or given up) */
} ms_tlshello;

/* Feed the raw TLS bytes of one direction (0: client, 1: server). Returns
 * true when this call completed the ServerHello (the posture is known). */
bool ms_tlshello_feed(ms_tlshello *t, const ms_allocator *a, int dir, const uint8_t *p, size_t n);
void ms_tlshello_free(ms_tlshello *t, const ms_allocator *a);

#endif

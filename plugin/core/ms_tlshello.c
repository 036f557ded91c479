/* ms_tlshello.c — ClientHello SNI, ServerHello version and cipher (see ms_tlshello.h). */
#include "ms_tlshello.h"

#include <string.h>

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* One extension of a ClientHello: server_name is the one we read. */
static void client_extension(ms_tlshello *t, uint16_t type, const uint8_t *e, size_t len)
{
    if (type != 0 || len < 5)
        return;
    /* server_name_list: length, then (type 0 host_name, length, name) */
    size_t list = be16(e);
    if (list + 2 > len || list < 3 || e[2] != 0)
        return;
    size_t hl = be16(e + 3);
    if (hl + 5 <= len && hl > 0) {
        size_t keep = hl < MS_TLS_SNI_MAX ? hl : MS_TLS_SNI_MAX;
        memcpy(t->sni, e + 5, keep);
        t->sni[keep] = '\0';
        t->has_sni = true;
    }
}

/* One extension of a ServerHello: supported_versions names the selected one. */
static void server_extension(ms_tlshello *t, uint16_t type, const uint8_t *e, size_t len)
{
    if (type == 43 && len == 2)
        t->version = be16(e);
}

typedef void (*extension_fn)(ms_tlshello *, uint16_t, const uint8_t *, size_t);

/* The extensions block of a Hello, p[0..n): each whole extension to on(). */
static void extensions(ms_tlshello *t, const uint8_t *p, size_t n, extension_fn on)
{
    size_t i = 0;
    while (i + 4 <= n) {
        uint16_t type = be16(p + i), len = be16(p + i + 2);
        i += 4;
        if (len > n - i)
            return;
        on(t, type, p + i, len);
        i += len;
    }
}

/* A whole ClientHello (1) or ServerHello (2) body. */
static void hello(ms_tlshello *t, int type, const uint8_t *p, size_t n)
{
    /* legacy_version(2) random(32) session_id<0..32> */
    if (n < 35)
        return;
    uint16_t legacy = be16(p);
    size_t i = 34;
    size_t sid = p[i++];
    if (sid > 32 || i + sid > n)
        return;
    i += sid;
    if (type == 1) {
        if (i + 2 > n)
            return;
        size_t cs = be16(p + i);
        i += 2 + cs;
        if (i + 1 > n)
            return;
        i += 1 + p[i]; /* compression methods */
        t->client_hello = true;
        if (i + 2 <= n) {
            size_t el = be16(p + i);
            if (i + 2 + el <= n)
                extensions(t, p + i + 2, el, client_extension);
        }
        return;
    }
    if (i + 3 > n)
        return;
    t->cipher = be16(p + i);
    i += 3; /* cipher, compression */
    t->version = legacy;
    t->server_hello = true;
    if (i + 2 <= n) {
        size_t el = be16(p + i);
        if (i + 2 + el <= n)
            extensions(t, p + i + 2, el, server_extension);
    }
}

/* Handshake bytes gathered: read the first message if it is whole. */
static bool handshake(ms_tlshello *t, int dir)
{
    const uint8_t *h = t->hs[dir];
    uint32_t n = t->hs_len[dir];
    if (n < 4)
        return false;
    uint32_t len = ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    if (len + 4 > MS_TLS_HS_MAX) {
        t->done[dir] = true; /* larger than we read: give up */
        return false;
    }
    if (n < len + 4)
        return false;
    t->done[dir] = true;
    if (dir == 0 && h[0] == 1)
        hello(t, 1, h + 4, len);
    else if (dir == 1 && h[0] == 2) {
        hello(t, 2, h + 4, len);
        return t->server_hello;
    }
    return false;
}

bool ms_tlshello_feed(ms_tlshello *t, const ms_allocator *a, int dir, const uint8_t *p, size_t n)
{
    dir &= 1;
    bool completed = false;
    size_t i = 0;
    while (i < n && !t->done[dir]) {
        if (t->rec_left[dir] == 0) {
            /* a record header, possibly split over segments */
            while (t->rec_hdr_len[dir] < 5 && i < n)
                t->rec_hdr[dir][t->rec_hdr_len[dir]++] = p[i++];
            if (t->rec_hdr_len[dir] < 5)
                break;
            const uint8_t *h = t->rec_hdr[dir];
            t->rec_hdr_len[dir] = 0;
            if (h[0] < 20 || h[0] > 23 || h[1] != 3) {
                t->done[dir] = true; /* not TLS records (any more): stop reading */
                break;
            }
            t->rec_left[dir] = be16(h + 3);
            t->rec_handshake[dir] = h[0] == 22;
            continue;
        }
        size_t take = n - i < t->rec_left[dir] ? n - i : t->rec_left[dir];
        if (t->rec_handshake[dir]) {
            if (!t->hs[dir]) {
                t->hs[dir] = a->realloc_fn(a->ctx, NULL, MS_TLS_HS_MAX);
                if (!t->hs[dir]) {
                    t->done[dir] = true;
                    break;
                }
            }
            size_t room = MS_TLS_HS_MAX - t->hs_len[dir];
            size_t copy = take < room ? take : room;
            memcpy(t->hs[dir] + t->hs_len[dir], p + i, copy);
            t->hs_len[dir] += (uint32_t)copy;
            if (handshake(t, dir))
                completed = true;
            if (copy < take && !t->done[dir])
                t->done[dir] = true; /* a Hello larger than the buffer */
        } else if (t->hs_len[dir] == 0 && !t->rec_handshake[dir]) {
            /* ChangeCipherSpec or application data before a Hello: nothing to read */
        }
        t->rec_left[dir] -= (uint32_t)take;
        i += take;
    }
    if (t->done[dir] && t->hs[dir]) {
        a->free_fn(a->ctx, t->hs[dir]);
        t->hs[dir] = NULL;
    }
    return completed;
}

void ms_tlshello_free(ms_tlshello *t, const ms_allocator *a)
{
    for (int d = 0; d < 2; d++) {
        if (t->hs[d])
            a->free_fn(a->ctx, t->hs[d]);
        t->hs[d] = NULL;
    }
}

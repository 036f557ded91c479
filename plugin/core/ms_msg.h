/* ms_msg.h — a streaming, bounded scanner for RFC 5322 / MIME messages.
 *
 * Fed the bytes of one message in order, split anywhere, it reports the
 * top-level headers, every attachment (name, type, decoded size and SHA-256)
 * and the URLs of its text. Memory is fixed by ms_msg_limits whatever the
 * input: lines are taken in pieces of at most MS_MSG_LINE bytes, header
 * values are cut at max_header, MIME nesting past max_depth is opaque and
 * attachments are hashed as they are decoded.
 *
 * Strings handed to a callback are NUL-terminated for convenience, but may
 * hold NULs (decoded bytes): len is what counts. They are valid only during
 * the callback. A callback must not feed, end or free the scanner.
 */
#ifndef MS_MSG_H
#define MS_MSG_H

#include "ms_core.h"

/* A line longer than this is processed in pieces; such a line is never a
 * MIME boundary. */
#define MS_MSG_LINE 1024
/* Longest boundary parameter kept (RFC 2046 allows 70); a multipart with a
 * longer one is opaque. */
#define MS_MSG_BOUNDARY_MAX 200

/* ms_hdr_kind (which top-level header) lives in ms_core.h, next to the
 * facts that carry it. */

/* A zero field takes its default (in brackets). */
typedef struct {
    size_t max_header; /* [1024] bytes of one unfolded header value kept (and of
                          a decoded file name); longer is cut and flagged */
    unsigned max_depth; /* [32] MIME nesting kept */
    unsigned max_parts; /* [256] parts examined; later ones are skipped */
    unsigned max_urls;  /* [64] distinct URLs reported per message */
    size_t max_url;     /* [512] bytes of one URL kept */
} ms_msg_limits;

typedef struct {
    /* UTF-8: RFC 2231 (filename*=, filename*0*=, charset'lang'%XX), RFC 2047
     * encoded words, or plain; Content-Disposition filename, else
     * Content-Type name. */
    const char *filename;
    size_t filename_len;
    /* Lowercased type/subtype; text/plain when the part has none (or an
     * invalid one), as RFC 2045 says. */
    const char *content_type;
    size_t content_type_len;
    uint64_t size;       /* decoded size (base64, quoted-printable, or as is) */
    uint8_t sha256[32];  /* of the decoded content */
    bool truncated;      /* the message ended before the part did */
    unsigned depth;      /* 0: the message itself; 1: a part of it; ... */
} ms_msg_attachment;

typedef struct {
    /* Top-level headers only, unfolded, trimmed, RFC 2047 words decoded to
     * UTF-8 (B and Q; utf-8, us-ascii, iso-8859-1 and windows-1252
     * converted, other charsets passed through as their bytes). cut: the
     * value was longer than max_header. */
    void (*header)(void *ctx, ms_hdr_kind k, const char *value, size_t len, bool cut);
    /* A part with a file name, when it ends. */
    void (*attachment)(void *ctx, const ms_msg_attachment *a);
    /* http:// https:// ftp:// and www. in text/plain and text/html parts
     * (decoded first) and in a body without MIME headers; each distinct URL
     * once per message, at most max_urls of them. */
    void (*url)(void *ctx, const char *url, size_t len);
    /* A limit was hit, once per kind per message: "depth", "parts", "urls",
     * "header". */
    void (*limit)(void *ctx, const char *what);
    /* The decoded content of a part with a file name, as it streams, before
     * its attachment() call. */
    void (*attachment_data)(void *ctx, const uint8_t *p, size_t n);
} ms_msg_callbacks;

typedef struct ms_msg ms_msg;

/* lim may be NULL (all defaults); so may any callback. NULL when out of memory. */
ms_msg *ms_msg_new(const ms_allocator *a, const ms_msg_limits *lim, const ms_msg_callbacks *cb,
                   void *ctx);
/* Message bytes in order, any split; line ends CR LF or bare LF. */
void ms_msg_feed(ms_msg *m, const uint8_t *p, size_t n);
/* The message is over: flushes open parts (an attachment whose closing
 * boundary never came is reported truncated; so is every part when truncated
 * is set). Later feeds are ignored. */
void ms_msg_end(ms_msg *m, bool truncated);
void ms_msg_free(ms_msg *m);

#endif

/* ms_lines.h — bounded line tokeniser for one direction of a mail session.
 *
 * Mail protocols are line based, except for counted octets (IMAP literals,
 * SMTP BDAT chunks) which the protocol adapter announces with
 * ms_lines_expect_raw(). A line longer than the buffer limit is delivered cut,
 * with MS_LINE_TRUNCATED; memory never exceeds that limit. Where every byte
 * counts (a message body: its hash and export), the consumer sets pieces and
 * a long line comes whole instead, in pieces: MS_LINE_PIECE for each part
 * that more of the line follows, MS_LINE_CONT on every part after the first,
 * the last part with the line's end and, as full, the length of the whole line.
 */
#ifndef MS_LINES_H
#define MS_LINES_H

#include "ms_core.h"

enum {
    MS_LINE_CRLF = 1u << 0,      /* ended by CR LF */
    MS_LINE_BARE_LF = 1u << 1,   /* ended by LF alone */
    MS_LINE_TRUNCATED = 1u << 2, /* longer than the limit: the tail was dropped */
    MS_LINE_RAW = 1u << 3,       /* counted octets, not a line */
    MS_LINE_RAW_END = 1u << 4,   /* the last piece of the counted octets */
    MS_LINE_UNTERMINATED = 1u << 5, /* delivered by ms_lines_flush, no line end seen */
    MS_LINE_PIECE = 1u << 6,     /* part of a long line; more of it follows (pieces mode) */
    MS_LINE_CONT = 1u << 7       /* not the first part of its line (pieces mode) */
};

/* What the consumer wants after a line: go on, or stop here (the stream
 * changes to TLS and the rest of the input is not lines any more). */
typedef enum { MS_LINES_CONTINUE = 0, MS_LINES_STOP = 1 } ms_lines_verdict;

typedef ms_lines_verdict (*ms_line_cb)(void *ctx, const uint8_t *line, size_t len,
                                       unsigned flags, size_t full_len);

typedef struct {
    const ms_allocator *alloc;
    uint8_t *buf;       /* the partial line carried between segments */
    size_t len;
    size_t cap;
    size_t max;         /* hard limit for buf */
    size_t seen;        /* bytes of the current line, including the dropped tail */
    bool cr_pending;    /* buf ended in CR (kept out of buf) */
    uint64_t raw_left;  /* counted octets still to pass through */
    uint64_t fed;       /* bytes consumed so far, lost ones included */
    uint64_t line_at;   /* stream offset of the line (or octets) being delivered */
    bool pieces;        /* the consumer's wish: long lines whole, in pieces (it may change it any time) */
    bool pieced;        /* the current line went out in pieces already */
} ms_lines;

void ms_lines_init(ms_lines *l, const ms_allocator *a, size_t max_line);
void ms_lines_free(ms_lines *l);

/* Forget a partial line (after a gap in the capture). */
void ms_lines_reset(ms_lines *l);

/* The next n octets are raw; lines resume after them. */
void ms_lines_expect_raw(ms_lines *l, uint64_t n);

/* Counted octets still expected (0: reading lines). */
uint64_t ms_lines_raw_left(const ms_lines *l);

/* The peer ended the counted octets early (the server answered the command
 * that announced them, so it did not wait for them): read lines again. */
void ms_lines_cancel_raw(ms_lines *l);

/* What a hole in the stream did to the tokeniser. */
typedef enum {
    MS_GAP_IN_LINES = 0, /* no counted octets: a partial line was forgotten */
    MS_GAP_IN_RAW,       /* the hole lies inside counted octets, which go on shorter */
    MS_GAP_ENDED_RAW     /* the counted octets ended inside the hole; lines follow it */
} ms_gap_kind;

/* lost bytes are missing from the stream before the next input. Counted
 * octets absorb them, so a literal's count stays true across the hole. */
ms_gap_kind ms_lines_gap(ms_lines *l, uint64_t lost);

/* Deliver a partial line as if it had ended (the peer acted on it: a server
 * answered a command whose line end never came). Returns the callback's verdict. */
ms_lines_verdict ms_lines_flush(ms_lines *l, ms_line_cb cb, void *ctx);
/* Is a partial line waiting? */
bool ms_lines_pending(const ms_lines *l);

/* Tokenise data; returns how many bytes were consumed (less than n only when
 * the callback said MS_LINES_STOP). */
size_t ms_lines_feed(ms_lines *l, const uint8_t *data, size_t n, ms_line_cb cb, void *ctx);

#endif

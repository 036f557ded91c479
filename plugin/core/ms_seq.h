/* ms_seq.h — one direction of a TCP stream put back in order.
 *
 * Segments arrive in capture order, which is not always stream order: a
 * segment that comes early (its predecessor was reordered or is still to be
 * retransmitted) is held, bounded, until the bytes before it arrive; bytes
 * already delivered are never delivered again, so a retransmission carrying
 * other bytes cannot rewrite what the stream said (the first copy wins, as in
 * the receiving host). A hole is given up — delivered as lost bytes — when the
 * peer acknowledges past it (the receiver had the bytes, the capture did not),
 * when the hold is full, or when the caller flushes (RST).
 *
 * Bytes that arrive again with other content — a retransmission or an
 * overlapping segment that disagrees with the first copy, a classic way to
 * show an IDS one stream and the server another — are counted as a conflict
 * (ms_seq_take_conflict). Held bytes are compared byte for byte; delivered
 * bytes are no longer there, so the last MS_SEQ_RECENT segments delivered are
 * remembered by a 64-bit checksum, and a later segment that covers one of
 * them whole is checked against it (partial covers go unchecked: no false
 * alarm, at worst a missed one).
 */
#ifndef MS_SEQ_H
#define MS_SEQ_H

#include "ms_core.h"

/* Bounds of what is held while waiting for a hole to fill. */
#define MS_SEQ_HOLD_SEGMENTS 256
#define MS_SEQ_HOLD_BYTES (256u * 1024u)

typedef struct ms_seq_held ms_seq_held;

/* Segments delivered, remembered for telling a conflicting copy. */
#define MS_SEQ_RECENT 8

typedef struct {
    uint32_t seq;
    uint32_t len;       /* 0: unused */
    uint64_t sum;
} ms_seq_recent;

typedef struct {
    const ms_allocator *alloc;
    bool init;
    uint32_t next;       /* the next sequence number the stream expects */
    uint64_t lost;       /* bytes given up, not yet reported to the consumer */
    ms_seq_held *held;   /* early segments, sorted by sequence number */
    unsigned held_count;
    size_t held_bytes;
    ms_seq_recent recent[MS_SEQ_RECENT];
    unsigned recent_at;      /* the slot the next delivered segment takes */
    uint64_t conflict_bytes; /* overlapping bytes that disagreed, not yet taken */
} ms_seq;

/* Called with in-order bytes; lost: bytes missing just before them (0 if none). */
typedef void (*ms_seq_deliver_fn)(void *ctx, const uint8_t *p, size_t n, uint64_t lost);

void ms_seq_init(ms_seq *s, const ms_allocator *a);
void ms_seq_free(ms_seq *s);

/* A SYN (or SYN-ACK) fixes the initial sequence number. */
void ms_seq_syn(ms_seq *s, uint32_t seq);

/* A segment of len bytes at seq, of which the first captured are in p (the
 * capture may cut a segment short; the rest counts as lost). Delivers what is
 * now in order, possibly including held segments, through cb. */
void ms_seq_segment(ms_seq *s, uint32_t seq, const uint8_t *p, size_t captured, uint32_t len,
                    ms_seq_deliver_fn cb, void *ctx);

/* The peer acknowledged everything before ack: a hole below it is lost. */
void ms_seq_ack(ms_seq *s, uint32_t ack, ms_seq_deliver_fn cb, void *ctx);

/* Give up every hole and deliver all that is held. */
void ms_seq_flush(ms_seq *s, ms_seq_deliver_fn cb, void *ctx);

/* Did segments since the last call overlap bytes seen before with other
 * content? bytes: how many overlapping bytes were in the disagreeing ranges. */
bool ms_seq_take_conflict(ms_seq *s, uint64_t *bytes);

/* Is anything held, waiting for a hole to fill? */
bool ms_seq_waiting(const ms_seq *s);

#endif

/* ms_seq.h — which bytes of a TCP segment are new to one direction's stream.
 *
 * Retransmitted and overlapping bytes are dropped, so a line is never seen
 * twice; a hole (bytes the capture missed) is reported so the tokeniser can
 * forget a half line instead of gluing two pieces of different lines.
 */
#ifndef MS_SEQ_H
#define MS_SEQ_H

#include "ms_core.h"

typedef struct {
    bool init;
    uint32_t next; /* the next sequence number we expect */
} ms_seq;

typedef struct {
    size_t skip;  /* leading bytes already seen */
    size_t take;  /* new bytes after them */
    bool gap;     /* bytes are missing before this segment */
} ms_seq_span;

/* A SYN (or SYN-ACK) fixes the initial sequence number. */
void ms_seq_syn(ms_seq *s, uint32_t seq);

/* Account for a segment carrying len bytes at seq. */
ms_seq_span ms_seq_segment(ms_seq *s, uint32_t seq, uint32_t len);

#endif

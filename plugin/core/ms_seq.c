/* ms_seq.c — TCP sequence accounting (see ms_seq.h). */
#include "ms_seq.h"

void ms_seq_syn(ms_seq *s, uint32_t seq)
{
    s->init = true;
    s->next = seq + 1u;
}

ms_seq_span ms_seq_segment(ms_seq *s, uint32_t seq, uint32_t len)
{
    ms_seq_span r = { 0, 0, false };
    if (len == 0)
        return r;
    if (!s->init) {
        s->init = true;
        s->next = seq + len;
        r.take = len;
        return r;
    }
    /* Serial-number arithmetic: the distance wraps at 2^32. */
    int32_t ahead = (int32_t)(seq - s->next);
    if (ahead > 0) {
        r.gap = true;
        r.take = len;
        s->next = seq + len;
        return r;
    }
    uint32_t behind = (uint32_t)(-(int64_t)ahead);
    if (behind >= len) {
        r.skip = len; /* a pure retransmission */
        return r;
    }
    r.skip = behind;
    r.take = len - behind;
    s->next = seq + len;
    return r;
}

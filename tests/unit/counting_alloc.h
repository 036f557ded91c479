/* counting_alloc.h — an ms_allocator over libc that counts live and peak
 * bytes, so tests can check memory bounds and that nothing is left. */
#ifndef COUNTING_ALLOC_H
#define COUNTING_ALLOC_H

#include <stdlib.h>

typedef struct {
    size_t live;
    size_t peak;
    size_t calls;
} counter;

typedef struct {
    size_t size;
    size_t pad; /* keep the payload 16-byte aligned */
} hdr;

static void *count_realloc(void *ctx, void *ptr, size_t size)
{
    counter *c = ctx;
    c->calls++;
    size_t old = 0;
    hdr *h = NULL;
    if (ptr) {
        h = (hdr *)ptr - 1;
        old = h->size;
    }
    hdr *nh = realloc(h, sizeof *nh + size);
    if (!nh)
        return NULL;
    nh->size = size;
    c->live = c->live - old + size;
    if (c->live > c->peak)
        c->peak = c->live;
    return nh + 1;
}

static void count_free(void *ctx, void *ptr)
{
    counter *c = ctx;
    if (!ptr)
        return;
    hdr *h = (hdr *)ptr - 1;
    c->live -= h->size;
    free(h);
}

#endif

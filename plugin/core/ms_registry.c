/* ms_registry.c — per-peer counters across sessions (see ms_registry.h).
 *
 * Open addressing with linear probing over a power-of-two table that grows
 * by doubling up to the bound; entries are never removed (a capture's peers
 * only accumulate), so probing needs no tombstones. */
#include "ms_registry.h"

#include <string.h>

typedef struct {
    ms_peer key;
    bool used;
    uint32_t count[MS_COUNT_END];
} entry;

struct ms_registry {
    const ms_allocator *alloc;
    entry *slots;
    size_t cap;   /* slots: a power of two, at least twice the keys held */
    size_t size;
    size_t max_keys;
};

#define MIN_CAP 64

ms_peer ms_peer_make(int family, const void *addr, size_t len, uint16_t port)
{
    ms_peer k;
    memset(&k, 0, sizeof k);
    if (len > MS_PEER_ADDR_MAX)
        len = MS_PEER_ADDR_MAX;
    if (addr && len)
        memcpy(k.addr, addr, len);
    k.len = (uint8_t)(addr ? len : 0);
    k.family = (uint8_t)family;
    k.port = port;
    return k;
}

ms_registry *ms_registry_new(const ms_allocator *a, size_t max_keys)
{
    ms_registry *r = a->realloc_fn(a->ctx, NULL, sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->alloc = a;
    r->max_keys = max_keys ? max_keys : 1;
    return r;
}

void ms_registry_free(ms_registry *r)
{
    if (!r)
        return;
    if (r->slots)
        r->alloc->free_fn(r->alloc->ctx, r->slots);
    r->alloc->free_fn(r->alloc->ctx, r);
}

size_t ms_registry_size(const ms_registry *r)
{
    return r ? r->size : 0;
}

static uint64_t hash(const ms_peer *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < k->len; i++)
        h = (h ^ k->addr[i]) * 1099511628211ull;
    h = (h ^ k->family) * 1099511628211ull;
    h = (h ^ (k->port & 0xff)) * 1099511628211ull;
    h = (h ^ (k->port >> 8)) * 1099511628211ull;
    return h ^ (h >> 29);
}

static bool same(const ms_peer *a, const ms_peer *b)
{
    return a->len == b->len && a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, a->len) == 0;
}

static entry *find(const ms_registry *r, const ms_peer *k)
{
    if (!r->slots)
        return NULL;
    for (size_t i = (size_t)hash(k) & (r->cap - 1);; i = (i + 1) & (r->cap - 1)) {
        entry *e = &r->slots[i];
        if (!e->used)
            return NULL;
        if (same(&e->key, k))
            return e;
    }
}

static bool grow(ms_registry *r)
{
    size_t cap = r->cap ? r->cap * 2 : MIN_CAP;
    entry *slots = r->alloc->realloc_fn(r->alloc->ctx, NULL, cap * sizeof *slots);
    if (!slots)
        return false;
    memset(slots, 0, cap * sizeof *slots);
    for (size_t j = 0; j < r->cap; j++) {
        if (!r->slots[j].used)
            continue;
        size_t i = (size_t)hash(&r->slots[j].key) & (cap - 1);
        while (slots[i].used)
            i = (i + 1) & (cap - 1);
        slots[i] = r->slots[j];
    }
    if (r->slots)
        r->alloc->free_fn(r->alloc->ctx, r->slots);
    r->slots = slots;
    r->cap = cap;
    return true;
}

uint32_t ms_registry_get(const ms_registry *r, const ms_peer *k, ms_counter c)
{
    if (!r || !k || k->len == 0 || c >= MS_COUNT_END)
        return 0;
    const entry *e = find(r, k);
    return e ? e->count[c] : 0;
}

uint32_t ms_registry_add(ms_registry *r, const ms_peer *k, ms_counter c, uint32_t n)
{
    if (!r || !k || k->len == 0 || c >= MS_COUNT_END)
        return 0;
    entry *e = find(r, k);
    if (!e) {
        if (r->size >= r->max_keys || ((r->size + 1) * 2 > r->cap && !grow(r)))
            return n; /* full: counted afresh, never stored */
        size_t i = (size_t)hash(k) & (r->cap - 1);
        while (r->slots[i].used)
            i = (i + 1) & (r->cap - 1);
        e = &r->slots[i];
        memset(e, 0, sizeof *e);
        e->used = true;
        e->key = *k;
        r->size++;
    }
    uint32_t v = e->count[c] + n;
    e->count[c] = v < e->count[c] ? UINT32_MAX : v; /* saturate */
    return e->count[c];
}

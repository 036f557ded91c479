/* fuzz_registry.c — the cross-session registry (ms_registry.h) against a
 * plain model: keys (family, address bytes, port), five saturating counters
 * each, at most max_keys keys stored (a new key past that is counted afresh
 * on every call, never stored), nothing counted for a key without address.
 *
 * Input: h0 max_keys (0..255), then operations of 4+ bytes:
 *   op: bit 0 add / get, bits 1-3 counter (5..7 are out of range), then
 *   family byte, address length byte (0..20, cut to 16), port u16, n u32,
 *   address bytes.
 */
#include "fuzz_common.h"
#include "ms_registry.h"

#define MODEL_MAX 256

typedef struct {
    ms_peer key;
    uint32_t count[MS_COUNT_END];
} model_entry;

static bool same(const ms_peer *a, const ms_peer *b)
{
    return a->len == b->len && a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, a->len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    size_t max_keys = fz_u8(&in);
    fz_mem mem;
    ms_allocator a = fz_allocator(&mem);
    ms_registry *r = ms_registry_new(&a, max_keys);
    FZ_CHECK(r != NULL, "registry: new failed");
    size_t cap = max_keys ? max_keys : 1;
    static model_entry model[MODEL_MAX];
    size_t nmodel = 0;

    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in);
        bool add = op & 1;
        ms_counter c = (ms_counter)((op >> 1) & 7);
        uint8_t family = fz_u8(&in);
        size_t alen = fz_u8(&in) % 21;
        uint16_t port = fz_u16(&in);
        uint32_t n = add ? fz_u32(&in) : 0;
        size_t got;
        const uint8_t *addr = fz_bytes(&in, alen, &got);
        uint8_t *ad = fz_dup(addr, got);
        ms_peer k = ms_peer_make(family, got ? ad : NULL, got, port);
        free(ad);
        FZ_CHECK(k.len <= MS_PEER_ADDR_MAX, "registry: key longer than MS_PEER_ADDR_MAX");

        model_entry *e = NULL;
        for (size_t i = 0; i < nmodel; i++)
            if (same(&model[i].key, &k))
                e = &model[i];
        bool valid = k.len > 0 && c < MS_COUNT_END;
        if (add) {
            uint32_t v = ms_registry_add(r, &k, c, n);
            uint32_t want;
            if (!valid) {
                want = 0;
            } else {
                if (!e && nmodel < cap && nmodel < MODEL_MAX) {
                    e = &model[nmodel++];
                    memset(e, 0, sizeof *e);
                    e->key = k;
                }
                if (e) {
                    uint32_t s = e->count[c] + n;
                    e->count[c] = s < e->count[c] ? UINT32_MAX : s;
                    want = e->count[c];
                } else {
                    want = n; /* full: counted afresh */
                }
            }
            FZ_CHECK(v == want, "registry: add returned another value than the model");
        } else {
            uint32_t v = ms_registry_get(r, &k, c);
            uint32_t want = valid && e ? e->count[c] : 0;
            FZ_CHECK(v == want, "registry: get returned another value than the model");
        }
        FZ_CHECK(ms_registry_size(r) == nmodel, "registry: size differs from the model");
        FZ_CHECK(ms_registry_size(r) <= cap, "registry: more keys than max_keys");
    }
    ms_registry_free(r);
    fz_mem_done(&mem);
    return 0;
}

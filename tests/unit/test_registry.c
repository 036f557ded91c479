/* test_registry.c — per-peer counters across sessions: keys by address
 * family, bytes and port; the bound; brute force across sessions. */
#include "session_fixture.h"

#include "ms_registry.h"

static void test_counts_per_key(void **state)
{
    (void)state;
    counter mem = { 0 };
    ms_allocator a = { count_realloc, count_free, &mem };
    ms_registry *r = ms_registry_new(&a, 100);
    const uint8_t v4[4] = { 192, 0, 2, 7 };
    const uint8_t other[4] = { 192, 0, 2, 8 };
    ms_peer k = ms_peer_make(2, v4, 4, 0);
    ms_peer k_port = ms_peer_make(2, v4, 4, 25);
    ms_peer k_fam = ms_peer_make(3, v4, 4, 0);
    ms_peer k2 = ms_peer_make(2, other, 4, 0);
    assert_int_equal(ms_registry_get(r, &k, MS_COUNT_AUTH_FAILURES), 0);
    assert_int_equal(ms_registry_add(r, &k, MS_COUNT_AUTH_FAILURES, 1), 1);
    assert_int_equal(ms_registry_add(r, &k, MS_COUNT_AUTH_FAILURES, 2), 3);
    assert_int_equal(ms_registry_add(r, &k_port, MS_COUNT_AUTH_FAILURES, 1), 1);
    assert_int_equal(ms_registry_add(r, &k_fam, MS_COUNT_AUTH_FAILURES, 1), 1);
    assert_int_equal(ms_registry_get(r, &k2, MS_COUNT_AUTH_FAILURES), 0);
    assert_int_equal(ms_registry_get(r, &k, MS_COUNT_AUTH_FAILURES), 3);
    assert_int_equal(ms_registry_size(r), 3);
    ms_peer none = ms_peer_make(2, NULL, 0, 0);
    assert_int_equal(ms_registry_add(r, &none, MS_COUNT_AUTH_FAILURES, 1), 0);
    ms_registry_free(r);
    assert_int_equal(mem.live, 0);
}

/* Many keys: the table grows, every count stays right; past the bound new
 * keys are not stored and memory stops growing. */
static void test_bounded(void **state)
{
    (void)state;
    counter mem = { 0 };
    ms_allocator a = { count_realloc, count_free, &mem };
    ms_registry *r = ms_registry_new(&a, 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
        memcpy(v6 + 12, &i, 4);
        ms_peer k = ms_peer_make(6, v6, 16, 0);
        assert_int_equal(ms_registry_add(r, &k, MS_COUNT_AUTH_FAILURES, i + 1), i + 1);
    }
    for (uint32_t i = 0; i < 1000; i++) {
        uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
        memcpy(v6 + 12, &i, 4);
        ms_peer k = ms_peer_make(6, v6, 16, 0);
        assert_int_equal(ms_registry_get(r, &k, MS_COUNT_AUTH_FAILURES), i + 1);
    }
    size_t peak = mem.peak;
    for (uint32_t i = 1000; i < 5000; i++) {
        uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
        memcpy(v6 + 12, &i, 4);
        ms_peer k = ms_peer_make(6, v6, 16, 0);
        assert_int_equal(ms_registry_add(r, &k, MS_COUNT_AUTH_FAILURES, 2), 2);
        assert_int_equal(ms_registry_add(r, &k, MS_COUNT_AUTH_FAILURES, 2), 2); /* never stored */
    }
    assert_int_equal(ms_registry_size(r), 1000);
    assert_int_equal(mem.peak, peak);
    ms_registry_free(r);
    assert_int_equal(mem.live, 0);
}

static void failed_login(ms_registry *reg, const uint8_t addr[4], uint32_t base, rec_fact *out)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->alloc = (ms_allocator){ count_realloc, count_free, &fx->mem };
    ms_session_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.port_proto = MS_PROTO_POP3;
    cfg.registry = reg;
    memcpy(cfg.client_addr, addr, 4);
    cfg.client_addr_len = 4;
    cfg.client_family = 2;
    fx->s = ms_session_new(&fx->alloc, &cfg);
    seg(fx, S2C, base + 1, "+OK ready\r\n");
    seg(fx, C2S, base + 2, "USER bob\r\nPASS guess\r\n");
    seg(fx, S2C, base + 3, "+OK\r\n-ERR [AUTH] Authentication failed.\r\n");
    size_t i = 0;
    while (i < fx->n && fx->f[i].kind != MS_FACT_AUTH_RESULT)
        i++;
    assert_true(i < fx->n);
    *out = fx->f[i];
    finish(fx);
}

/* Brute force spread over sessions: each session has one failure, the
 * client address has them all; another address has its own count. */
static void test_failures_across_sessions(void **state)
{
    (void)state;
    ms_registry *reg = ms_registry_new(&ms_libc_allocator, 16);
    const uint8_t attacker[4] = { 198, 51, 100, 9 }, other[4] = { 198, 51, 100, 10 };
    rec_fact f;
    for (uint32_t s = 0; s < 4; s++) {
        failed_login(reg, attacker, s * 10, &f);
        assert_int_equal(f.ival2, MS_AUTH_FAILURE);
        assert_int_equal(f.count, 1);
        assert_int_equal(f.client_count, s + 1);
    }
    failed_login(reg, other, 100, &f);
    assert_int_equal(f.client_count, 1);
    ms_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_per_key),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_failures_across_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

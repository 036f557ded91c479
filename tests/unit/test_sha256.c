/* test_sha256.c — the incremental SHA-256 against the FIPS 180-2 examples
 * (appendix B), whole and in pieces of every awkward size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ms_sha256.h"

static void digest_is(const void *p, size_t n, const char *hex)
{
    ms_sha256 s;
    uint8_t d[32];
    char got[65];
    ms_sha256_init(&s);
    ms_sha256_update(&s, p, n);
    ms_sha256_final(&s, d);
    ms_hex(d, 32, got);
    assert_string_equal(got, hex);
}

/* B.1 */
static void test_abc(void **state)
{
    (void)state;
    digest_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* B.2: 448 bits, so the padding spills into a second block */
static void test_448_bits(void **state)
{
    (void)state;
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_is(m, strlen(m), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_empty(void **state)
{
    (void)state;
    digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ms_sha256 s;
    uint8_t d[32];
    char got[65];
    ms_sha256_init(&s);
    ms_sha256_update(&s, NULL, 0); /* nothing, and no crash */
    ms_sha256_final(&s, d);
    ms_hex(d, 32, got);
    assert_string_equal(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* B.3: a million 'a', fed in odd pieces that straddle every block edge */
static void test_million_a(void **state)
{
    (void)state;
    static const size_t sizes[] = { 1, 63, 64, 65, 7, 127, 129, 3, 1000, 55, 56, 57 };
    char *buf = malloc(1000);
    assert_non_null(buf);
    memset(buf, 'a', 1000);
    ms_sha256 s;
    ms_sha256_init(&s);
    size_t left = 1000000, k = 0;
    while (left) {
        size_t n = sizes[k++ % (sizeof sizes / sizeof sizes[0])];
        if (n > left)
            n = left;
        ms_sha256_update(&s, buf, n);
        left -= n;
    }
    uint8_t d[32];
    char got[65];
    ms_sha256_final(&s, d);
    ms_hex(d, 32, got);
    assert_string_equal(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(buf);
}

/* Every split of a two-block message gives the same digest as one update. */
static void test_every_split(void **state)
{
    (void)state;
    const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    size_t n = strlen(m); /* the 896-bit message of FIPS 180-2 C.2; digest from sha256sum */
    for (size_t cut = 0; cut <= n; cut++) {
        ms_sha256 s;
        uint8_t d[32];
        char got[65];
        ms_sha256_init(&s);
        ms_sha256_update(&s, m, cut);
        ms_sha256_update(&s, m + cut, n - cut);
        ms_sha256_final(&s, d);
        ms_hex(d, 32, got);
        assert_string_equal(got, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    }
}

static void test_hex(void **state)
{
    (void)state;
    const uint8_t b[] = { 0x00, 0x0f, 0xa5, 0xff };
    char out[9];
    ms_hex(b, 4, out);
    assert_string_equal(out, "000fa5ff");
    ms_hex(b, 0, out);
    assert_string_equal(out, "");
}

/* A backend that gathers what it is given and hashes it with the core's own
 * code at the end: what reaches it, in what pieces, and when it is released. */
static uint8_t got[4096];
static size_t got_n;
static int opens, writes, finals, closes;

static void *fake_open(void)
{
    opens++;
    got_n = 0;
    return got;
}

static void fake_write(void *ctx, const void *p, size_t n)
{
    assert_ptr_equal(ctx, got);
    assert_true(got_n + n <= sizeof got);
    memcpy(got + got_n, p, n);
    got_n += n;
    writes++;
}

static const ms_sha256_backend fake;

static void fake_final(void *ctx, uint8_t out[32])
{
    assert_ptr_equal(ctx, got);
    ms_sha256_set_backend(NULL);
    ms_sha256 c;
    ms_sha256_init(&c);
    ms_sha256_update(&c, got, got_n);
    ms_sha256_final(&c, out);
    ms_sha256_set_backend(&fake);
    finals++;
}

static void fake_close(void *ctx)
{
    assert_ptr_equal(ctx, got);
    closes++;
}

static const ms_sha256_backend fake = { fake_open, fake_write, fake_final, fake_close };

static void test_backend(void **state)
{
    (void)state;
    uint8_t data[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    uint8_t want[32], out[32];
    ms_sha256 c;
    ms_sha256_init(&c);
    ms_sha256_update(&c, data, sizeof data);
    ms_sha256_final(&c, want);
    ms_sha256_set_backend(&fake);
    /* small pieces are handed over together; big ones at once */
    for (size_t piece = 1; piece <= 300; piece += 37) {
        opens = writes = finals = closes = 0;
        ms_sha256 s;
        ms_sha256_init(&s);
        for (size_t at = 0; at < sizeof data; at += piece)
            ms_sha256_update(&s, data + at, sizeof data - at < piece ? sizeof data - at : piece);
        ms_sha256_final(&s, out);
        assert_memory_equal(out, want, 32);
        assert_int_equal(got_n, sizeof data);
        assert_int_equal(opens, 1);
        assert_int_equal(finals, 1);
        assert_int_equal(closes, 0);
        if (piece < 64)
            assert_true(writes < (int)(sizeof data / piece)); /* fewer calls than pieces */
        ms_sha256_discard(&s); /* finished: nothing to release */
        assert_int_equal(closes, 0);
    }
    /* abandoned: released once */
    opens = closes = 0;
    ms_sha256 s;
    ms_sha256_init(&s);
    ms_sha256_update(&s, data, 10);
    ms_sha256_discard(&s);
    ms_sha256_discard(&s);
    assert_int_equal(opens, 1);
    assert_int_equal(closes, 1);
    ms_sha256_set_backend(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bits),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

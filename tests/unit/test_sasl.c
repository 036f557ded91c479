/* test_sasl.c — base64, SASL mechanisms, NTLMSSP and APOP (ms_sasl.h).
 *
 * Vectors come from the documents that define the formats: RFC 4648 section 10,
 * RFC 4616 section 4, RFC 2195 section 2, RFC 2831 section 4, RFC 7628 section
 * 4.1, Google's XOAUTH2 protocol page, RFC 5802 section 5, RFC 7677 section 3,
 * RFC 1939 section 7 and MS-NLMP sections 4.2.1, 4.2.2.2 and 4.2.4.3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ms_sasl.h"

#define SOH "\x01"
#define U8(s) ((const uint8_t *)(s))
#define LIT(s) U8(s), (sizeof(s) - 1)

/* ms_creds is ~14 KiB: keep the ones the tests use off the stack. */
static ms_creds C, SAVED;

static void fresh(void)
{
    ms_creds_clear(&C);
}

static void save(void)
{
    memcpy(&SAVED, &C, sizeof C);
}

static void assert_unchanged(void)
{
    assert_memory_equal(&SAVED, &C, sizeof C);
}

#define assert_small(f, str)                                                                       \
    do {                                                                                           \
        assert_true((f).set);                                                                      \
        assert_false((f).truncated);                                                               \
        assert_int_equal((f).len, strlen(str));                                                    \
        assert_string_equal((f).s, (str));                                                         \
    } while (0)

#define assert_large(f, str) assert_small(f, str)

/* ---- mechanism names ------------------------------------------------------ */

static ms_mech mech(const char *s)
{
    return ms_sasl_mech_from_name(U8(s), strlen(s));
}

static void test_mech_from_name(void **state)
{
    (void)state;
    assert_int_equal(mech("PLAIN"), MS_MECH_PLAIN);
    assert_int_equal(mech("plain"), MS_MECH_PLAIN);
    assert_int_equal(mech("Login"), MS_MECH_LOGIN);
    assert_int_equal(mech("cram-md5"), MS_MECH_CRAM_MD5);
    assert_int_equal(mech("DIGEST-MD5"), MS_MECH_DIGEST_MD5);
    assert_int_equal(mech("ntlm"), MS_MECH_NTLM);
    assert_int_equal(mech("XOAUTH2"), MS_MECH_XOAUTH2);
    assert_int_equal(mech("oauthbearer"), MS_MECH_OAUTHBEARER);
    assert_int_equal(mech("SCRAM-SHA-1"), MS_MECH_SCRAM_SHA_1);
    assert_int_equal(mech("scram-sha-1-plus"), MS_MECH_SCRAM_SHA_1);
    assert_int_equal(mech("SCRAM-SHA-256"), MS_MECH_SCRAM_SHA_256);
    assert_int_equal(mech("SCRAM-SHA-256-PLUS"), MS_MECH_SCRAM_SHA_256);
    assert_int_equal(mech("GSSAPI"), MS_MECH_GSSAPI);
    assert_int_equal(mech("external"), MS_MECH_EXTERNAL);
    assert_int_equal(mech("ANONYMOUS"), MS_MECH_ANONYMOUS);
    /* not ours, prefixes, extensions, empty */
    assert_int_equal(mech("X-UNKNOWN"), MS_MECH_OTHER);
    assert_int_equal(mech("PLAINX"), MS_MECH_OTHER);
    assert_int_equal(mech("PLAI"), MS_MECH_OTHER);
    assert_int_equal(mech("SCRAM-SHA-512"), MS_MECH_OTHER);
    assert_int_equal(mech("SCRAM-SHA-1-PLUSX"), MS_MECH_OTHER);
    assert_int_equal(mech(""), MS_MECH_OTHER);
    assert_int_equal(ms_sasl_mech_from_name(NULL, 5), MS_MECH_OTHER);
    /* the name is bounded by len, not by a NUL */
    assert_int_equal(ms_sasl_mech_from_name(U8("PLAIN garbage"), 5), MS_MECH_PLAIN);
    assert_int_equal(ms_sasl_mech_from_name(LIT("PLAIN\0")), MS_MECH_OTHER);
}

static void test_mech_name(void **state)
{
    (void)state;
    static const struct {
        ms_mech m;
        const char *name;
    } t[] = {
        { MS_MECH_OTHER, "OTHER" },
        { MS_MECH_PLAIN, "PLAIN" },
        { MS_MECH_LOGIN, "LOGIN" },
        { MS_MECH_CRAM_MD5, "CRAM-MD5" },
        { MS_MECH_DIGEST_MD5, "DIGEST-MD5" },
        { MS_MECH_NTLM, "NTLM" },
        { MS_MECH_XOAUTH2, "XOAUTH2" },
        { MS_MECH_OAUTHBEARER, "OAUTHBEARER" },
        { MS_MECH_SCRAM_SHA_1, "SCRAM-SHA-1" },
        { MS_MECH_SCRAM_SHA_256, "SCRAM-SHA-256" },
        { MS_MECH_GSSAPI, "GSSAPI" },
        { MS_MECH_EXTERNAL, "EXTERNAL" },
        { MS_MECH_ANONYMOUS, "ANONYMOUS" },
        { MS_MECH_USER_PASS, "USER/PASS" },
        { MS_MECH_APOP, "APOP" },
        { MS_MECH_IMAP_LOGIN, "IMAP-LOGIN" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_string_equal(ms_mech_name(t[i].m), t[i].name);
        /* every SASL name maps back (the POP3/IMAP pseudo-mechanisms do not) */
        if (t[i].m != MS_MECH_OTHER && t[i].m < MS_MECH_USER_PASS)
            assert_int_equal(mech(t[i].name), t[i].m);
    }
    assert_int_equal(mech("USER/PASS"), MS_MECH_OTHER);
    assert_string_equal(ms_mech_name((ms_mech)999), "OTHER");
}

/* ---- fields --------------------------------------------------------------- */

static void test_str_setters(void **state)
{
    (void)state;
    static char big[MS_STR_LARGE + 100];
    memset(big, 'x', sizeof big);

    fresh();
    assert_int_equal(C.mech, MS_MECH_OTHER);
    assert_false(C.username.set);
    assert_int_equal(C.username.len, 0);

    ms_str_small_set(&C.username, "bob", 3);
    assert_small(C.username, "bob");

    /* exactly the capacity: not truncated */
    ms_str_small_set(&C.password, big, MS_STR_SMALL);
    assert_true(C.password.set);
    assert_false(C.password.truncated);
    assert_int_equal(C.password.len, MS_STR_SMALL);
    assert_int_equal(C.password.s[MS_STR_SMALL], '\0');

    /* one more: cut and marked */
    ms_str_small_set(&C.password, big, MS_STR_SMALL + 1);
    assert_true(C.password.truncated);
    assert_int_equal(C.password.len, MS_STR_SMALL);
    assert_int_equal(C.password.s[MS_STR_SMALL], '\0');

    /* setting again clears the mark */
    ms_str_small_set(&C.password, "pw", 2);
    assert_small(C.password, "pw");

    ms_str_large_set(&C.token, big, MS_STR_LARGE);
    assert_false(C.token.truncated);
    assert_int_equal(C.token.len, MS_STR_LARGE);
    ms_str_large_set(&C.token, big, sizeof big);
    assert_true(C.token.truncated);
    assert_int_equal(C.token.len, MS_STR_LARGE);
    assert_int_equal(C.token.s[MS_STR_LARGE], '\0');

    /* embedded NUL kept, length tells */
    ms_str_small_set(&C.realm, "a\0b", 3);
    assert_int_equal(C.realm.len, 3);
    assert_memory_equal(C.realm.s, "a\0b", 4);

    /* empty and NULL */
    ms_str_small_set(&C.authzid, NULL, 0);
    assert_true(C.authzid.set);
    assert_int_equal(C.authzid.len, 0);
    assert_string_equal(C.authzid.s, "");
    ms_str_large_set(&C.hash, "", 0);
    assert_true(C.hash.set);
    assert_int_equal(C.hash.len, 0);

    ms_creds_clear(&C);
    assert_false(C.username.set);
    assert_false(C.token.set);
    assert_int_equal(C.password.len, 0);
}

/* ---- base64 --------------------------------------------------------------- */

static const struct {
    const char *plain;
    const char *b64;
} rfc4648[] = {
    { "", "" },
    { "f", "Zg==" },
    { "fo", "Zm8=" },
    { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" },
    { "fooba", "Zm9vYmE=" },
    { "foobar", "Zm9vYmFy" },
};

static long dec(const char *s, uint8_t *out, size_t cap)
{
    return ms_b64_decode(U8(s), strlen(s), out, cap);
}

static void test_b64_rfc4648(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        char enc[32];
        uint8_t out[32];
        size_t pl = strlen(rfc4648[i].plain);
        size_t n = ms_b64_encode(U8(rfc4648[i].plain), pl, enc, sizeof enc);
        assert_int_equal(n, strlen(rfc4648[i].b64));
        assert_string_equal(enc, rfc4648[i].b64);

        long d = dec(rfc4648[i].b64, out, sizeof out);
        assert_int_equal(d, (long)pl);
        assert_memory_equal(out, rfc4648[i].plain, pl);

        /* exactly the room needed is enough */
        d = dec(rfc4648[i].b64, out, pl);
        assert_int_equal(d, (long)pl);
    }
}

static void test_b64_unpadded_and_empty(void **state)
{
    (void)state;
    uint8_t out[16];
    assert_int_equal(dec("Zg", out, sizeof out), 1);
    assert_int_equal(out[0], 'f');
    assert_int_equal(dec("Zm8", out, sizeof out), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(dec("Zm9vYg", out, sizeof out), 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(dec("Zm9vYmE", out, sizeof out), 5);
    assert_memory_equal(out, "fooba", 5);
    /* empty and "=" (the SASL empty response) both decode to nothing */
    assert_int_equal(dec("", out, sizeof out), 0);
    assert_int_equal(dec("=", out, sizeof out), 0);
    assert_int_equal(ms_b64_decode(NULL, 0, NULL, 0), 0);
    assert_int_equal(ms_b64_decode(U8("="), 1, NULL, 0), 0);
    /* all 256 byte values through the alphabet */
    uint8_t all[256], back[256 + 3];
    char enc[4 * 86 + 1];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    size_t n = ms_b64_encode(all, sizeof all, enc, sizeof enc);
    assert_int_equal(n, 4 * 86);
    assert_int_equal(ms_b64_decode(U8(enc), n, back, sizeof back), 256);
    assert_memory_equal(all, back, 256);
}

static void test_b64_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Z",          /* length mod 4 == 1 */
        "Zm9vY",      /* length mod 4 == 1 */
        "Zg=",        /* partial padding */
        "Zm9=v",      /* '=' in the middle */
        "Zm=v",       /* '=' in the middle */
        "Zg==Zg==",   /* '=' in the middle */
        "=Zg=",       /* '=' first */
        "Z===",       /* too much padding */
        "====",       /* only padding */
        "==",         /* only padding */
        "Zm9v\r\n",   /* no whitespace */
        " Zm9v",      /* no whitespace */
        "Zm 9v",      /* no whitespace */
        "Zm9v\n",     /* no whitespace */
        "Zm9-",       /* URL alphabet is not ours */
        "Zm9_",       /* URL alphabet is not ours */
        "Zm9\x80",    /* not ASCII */
        "Zm9v=",      /* stray pad after a full quantum */
        "Zm9vYg===",  /* too much padding */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[32];
        assert_int_equal(dec(bad[i], out, sizeof out), -1);
    }
    uint8_t nul[4] = { 'Z', 'g', 0, 0 };
    uint8_t out[8];
    assert_int_equal(ms_b64_decode(nul, 4, out, sizeof out), -1);
    assert_int_equal(ms_b64_decode(NULL, 4, out, sizeof out), -1);
}

static void test_b64_bounds(void **state)
{
    (void)state;
    uint8_t out[8];
    /* one byte short: refused, and nothing written past the capacity */
    memset(out, 0xa5, sizeof out);
    assert_int_equal(dec("Zm9vYmFy", out, 5), -1);
    for (size_t i = 5; i < sizeof out; i++)
        assert_int_equal(out[i], 0xa5);
    memset(out, 0xa5, sizeof out);
    assert_int_equal(dec("Zm9vYg==", out, 3), -1);
    assert_int_equal(out[3], 0xa5);
    assert_int_equal(dec("Zg", out, 0), -1);
    assert_int_equal(dec("Zg", NULL, 4), -1);
    memset(out, 0xa5, sizeof out);
    assert_int_equal(dec("Zm9vYg==", out, 4), 4);
    assert_int_equal(out[4], 0xa5);

    /* encode: needs room for the text and a NUL */
    char enc[9];
    memset(enc, 'Q', sizeof enc);
    assert_int_equal(ms_b64_encode(U8("foobar"), 6, enc, 8), 0);
    assert_int_equal(ms_b64_encode(U8("foobar"), 6, enc, 9), 8);
    assert_string_equal(enc, "Zm9vYmFy");
    assert_int_equal(ms_b64_encode(U8("f"), 1, enc, 4), 0);
    assert_int_equal(ms_b64_encode(U8("f"), 1, NULL, 0), 0);
    assert_int_equal(ms_b64_encode(U8(""), 0, enc, 1), 0);
    assert_string_equal(enc, "");
}

/* ---- PLAIN ------------------------------------------------------------------ */

static void test_plain_rfc4616(void **state)
{
    (void)state;
    fresh();
    assert_true(ms_sasl_plain(LIT("Ursel\0Kurt\0xipj3plmq"), &C));
    assert_int_equal(C.mech, MS_MECH_PLAIN);
    assert_small(C.authzid, "Ursel");
    assert_small(C.username, "Kurt");
    assert_small(C.password, "xipj3plmq");

    fresh();
    assert_true(ms_sasl_plain(LIT("\0tim\0tanstaaftanstaaf"), &C));
    assert_false(C.authzid.set);
    assert_small(C.username, "tim");
    assert_small(C.password, "tanstaaftanstaaf");

    /* the same through base64, as on the wire */
    static const char wire[] = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm";
    uint8_t raw[64];
    long n = ms_b64_decode(U8(wire), strlen(wire), raw, sizeof raw);
    assert_int_equal(n, 21);
    fresh();
    assert_true(ms_sasl_plain(raw, (size_t)n, &C));
    assert_small(C.username, "tim");
    assert_small(C.password, "tanstaaftanstaaf");

    /* empty password: structurally fine, reported as set and empty */
    fresh();
    assert_true(ms_sasl_plain(LIT("\0u\0"), &C));
    assert_small(C.username, "u");
    assert_small(C.password, "");
}

static void test_plain_malformed(void **state)
{
    (void)state;
    fresh();
    ms_str_small_set(&C.mech_name, "PLAIN", 5);
    save();
    assert_false(ms_sasl_plain(LIT("timtanstaaftanstaaf"), &C)); /* no NUL */
    assert_false(ms_sasl_plain(LIT("\0timtanstaaf"), &C));        /* one NUL */
    assert_false(ms_sasl_plain(LIT("a\0b\0c\0d"), &C));           /* three */
    assert_false(ms_sasl_plain(LIT(""), &C));
    assert_false(ms_sasl_plain(NULL, 3, &C));
    assert_unchanged();

    /* over-long fields are cut and marked */
    static uint8_t msg[1 + 300 + 1 + 300];
    memset(msg, 'u', sizeof msg);
    msg[0] = 0;
    msg[301] = 0;
    fresh();
    assert_true(ms_sasl_plain(msg, sizeof msg, &C));
    assert_true(C.username.truncated);
    assert_int_equal(C.username.len, MS_STR_SMALL);
    assert_true(C.password.truncated);
    assert_int_equal(C.password.len, MS_STR_SMALL);
    assert_int_equal(C.password.s[MS_STR_SMALL], '\0');
}

/* ---- CRAM-MD5 ----------------------------------------------------------- */

#define RFC2195_CHALLENGE "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5jb20+"

static void test_cram_md5_rfc2195(void **state)
{
    (void)state;
    uint8_t ch[64];
    long n = dec(RFC2195_CHALLENGE, ch, sizeof ch);
    assert_int_equal(n, 42);
    assert_memory_equal(ch, "<1896.697170952@postoffice.reston.mci.com>", 42);

    fresh();
    assert_true(ms_sasl_cram_md5(LIT(RFC2195_CHALLENGE),
                                 LIT("tim b913a602c7eda7a495b4e6e7334d3890"), &C));
    assert_int_equal(C.mech, MS_MECH_CRAM_MD5);
    assert_small(C.username, "tim");
    assert_large(C.hash, "$cram_md5$" RFC2195_CHALLENGE
                         "$dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    assert_false(C.password.set);

    /* a user name with a space: the digest is after the last one */
    fresh();
    assert_true(ms_sasl_cram_md5(LIT(RFC2195_CHALLENGE),
                                 LIT("tim smith B913A602C7EDA7A495B4E6E7334D3890"), &C));
    assert_small(C.username, "tim smith");
}

static void test_cram_md5_malformed(void **state)
{
    (void)state;
    fresh();
    save();
    static const char *const bad_resp[] = {
        "timb913a602c7eda7a495b4e6e7334d3890",   /* no space */
        "tim b913a602c7eda7a495b4e6e7334d389",   /* 31 digits */
        "tim b913a602c7eda7a495b4e6e7334d38900", /* 33 digits */
        "tim b913a602c7eda7a495b4e6e7334d389g",  /* not hex */
        "tim b913a602c7eda7a495b4e6e7334d3890 ", /* trailing space */
        "",
    };
    for (size_t i = 0; i < sizeof bad_resp / sizeof bad_resp[0]; i++)
        assert_false(ms_sasl_cram_md5(LIT(RFC2195_CHALLENGE), U8(bad_resp[i]),
                                      strlen(bad_resp[i]), &C));
    static const char good[] = "tim b913a602c7eda7a495b4e6e7334d3890";
    assert_false(ms_sasl_cram_md5(LIT(""), LIT(good), &C));            /* no challenge */
    assert_false(ms_sasl_cram_md5(LIT("PDE4OT$="), LIT(good), &C));    /* not base64 */
    assert_false(ms_sasl_cram_md5(LIT("PDE4O"), LIT(good), &C));       /* mod 4 == 1 */
    assert_false(ms_sasl_cram_md5(LIT("="), LIT(good), &C));           /* empty challenge */
    assert_false(ms_sasl_cram_md5(NULL, 4, LIT(good), &C));
    assert_unchanged();

    /* an over-long response: the hash line is cut and marked */
    static uint8_t resp[4000 + 33];
    memset(resp, 'u', 4000);
    resp[4000] = ' ';
    memcpy(resp + 4001, "b913a602c7eda7a495b4e6e7334d3890", 32);
    fresh();
    assert_true(ms_sasl_cram_md5(LIT(RFC2195_CHALLENGE), resp, sizeof resp, &C));
    assert_true(C.username.truncated);
    assert_true(C.hash.truncated);
    assert_int_equal(C.hash.len, MS_STR_LARGE);
    assert_int_equal(strlen(C.hash.s), MS_STR_LARGE);
}

/* ---- DIGEST-MD5 ---------------------------------------------------------- */

/* RFC 2831 section 4, the client's digest-response, as printed there. */
#define RFC2831_RESPONSE                                                                           \
    "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\","                              \
    "nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\","                              \
    "digest-uri=\"imap/elwood.innosoft.com\","                                                     \
    "response=d388dad90d4bbd760a152321f2143af7,qop=auth"

#define RFC2831_MATERIAL                                                                           \
    "username=chris,realm=elwood.innosoft.com,nonce=OA6MG9tEQGm2hh,cnonce=OA6MHXh6VqTrRk,"         \
    "nc=00000001,qop=auth,digest-uri=imap/elwood.innosoft.com,"                                    \
    "response=d388dad90d4bbd760a152321f2143af7"

static void test_digest_md5_rfc2831(void **state)
{
    (void)state;
    fresh();
    assert_true(ms_sasl_digest_md5(LIT(RFC2831_RESPONSE), &C));
    assert_int_equal(C.mech, MS_MECH_DIGEST_MD5);
    assert_small(C.username, "chris");
    assert_small(C.realm, "elwood.innosoft.com");
    assert_false(C.authzid.set);
    assert_large(C.material, RFC2831_MATERIAL);

    /* the same with #rule white space, empty elements and upper-case keys */
    fresh();
    assert_true(ms_sasl_digest_md5(
        LIT(" CharSet = utf-8 ,, USERNAME=\"chris\" ,\r\n realm=\"elwood.innosoft.com\",\t"
            "nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\","
            "digest-uri=\"imap/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af7,"
            "qop=auth,"),
        &C));
    assert_small(C.username, "chris");
    assert_large(C.material, RFC2831_MATERIAL);
}

static void test_digest_md5_fields(void **state)
{
    (void)state;
    /* escapes, authzid, absent realm/qop, bare digest-uri, unknown keys */
    fresh();
    assert_true(ms_sasl_digest_md5(
        LIT("username=\"a\\\"b\\\\c\",authzid=\"admin\",nonce=\"n\\1\",cnonce=\"cn\","
            "nc=00000002,digest-uri=smtp/mx.example.org,maxbuf=65536,"
            "cipher=rc4,response=0123456789abcdef0123456789ABCDEF"),
        &C));
    assert_small(C.username, "a\"b\\c");
    assert_small(C.authzid, "admin");
    assert_false(C.realm.set);
    assert_large(C.material, "username=a\"b\\c,nonce=n1,cnonce=cn,nc=00000002,"
                             "digest-uri=smtp/mx.example.org,"
                             "response=0123456789abcdef0123456789ABCDEF");
    /* an empty quoted value is a value */
    fresh();
    assert_true(ms_sasl_digest_md5(LIT("username=\"\",realm=\"\",response=x"), &C));
    assert_small(C.username, "");
    assert_small(C.realm, "");
    assert_large(C.material, "username=,realm=,response=x");
}

static void test_digest_md5_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "username=\"chris\"",                               /* no response */
        "response=d388dad90d4bbd760a152321f2143af7",        /* no username */
        "username=\"chris,response=abc",                    /* unterminated quote */
        "username=\"chris\\\",response=abc",                /* escaped closing quote */
        "username=\"chris\\",                               /* dangling backslash */
        "username,response=abc",                            /* no '=' */
        "username=\"chris\"x,response=abc",                 /* junk after quote */
        "username=\"a\",username=\"b\",response=abc",       /* duplicate */
        "username=\"a\",response=abc,response=abc",         /* duplicate */
        "=\"a\",username=\"a\",response=abc",               /* empty key */
        "username=,response=abc",                           /* empty bare value */
        "username=\"a\" \"b\",response=abc",                /* two values */
        "user\x01name=\"a\",response=abc",                  /* control in key */
    };
    fresh();
    save();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ms_sasl_digest_md5(U8(bad[i]), strlen(bad[i]), &C));
    assert_false(ms_sasl_digest_md5(NULL, 10, &C));
    assert_unchanged();

    /* a NUL inside a value is kept as a byte, never read past len */
    static const char nul_inside[] = "username=\"a\0b\",response=x";
    fresh();
    assert_true(ms_sasl_digest_md5(U8(nul_inside), sizeof nul_inside - 1, &C));
    assert_int_equal(C.username.len, 3);
    /* cut right after the opening quote */
    assert_false(ms_sasl_digest_md5(U8(RFC2831_RESPONSE), 24, &C));
}

static void test_digest_md5_overlong(void **state)
{
    (void)state;
    static char msg[12000];
    int n = snprintf(msg, sizeof msg, "username=\"");
    memset(msg + n, 'u', 300);
    n += 300;
    n += snprintf(msg + n, sizeof msg - (size_t)n, "\",nonce=\"");
    memset(msg + n, 'n', 5000);
    n += 5000;
    n += snprintf(msg + n, sizeof msg - (size_t)n, "\",response=abc");
    fresh();
    assert_true(ms_sasl_digest_md5(U8(msg), (size_t)n, &C));
    assert_true(C.username.truncated);
    assert_int_equal(C.username.len, MS_STR_SMALL);
    assert_true(C.material.truncated);
    assert_int_equal(C.material.len, MS_STR_LARGE);
    assert_int_equal(strlen(C.material.s), MS_STR_LARGE);
}

/* ---- OAUTHBEARER and XOAUTH2 -------------------------------------------------- */

#define RFC7628_TOKEN "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="

static void test_oauthbearer_rfc7628(void **state)
{
    (void)state;
    fresh();
    assert_true(ms_sasl_oauthbearer(
        LIT("n,a=user@example.com," SOH "host=server.example.com" SOH "port=143" SOH
            "auth=Bearer " RFC7628_TOKEN SOH SOH),
        &C));
    assert_int_equal(C.mech, MS_MECH_OAUTHBEARER);
    assert_small(C.username, "user@example.com");
    assert_large(C.token, RFC7628_TOKEN);

    /* the example's base64 form from the same section */
    static const char wire[] = "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9"
                               "MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRH"
                               "RXVZMjl0Q2c9PQEB";
    uint8_t raw[256];
    long n = ms_b64_decode(U8(wire), strlen(wire), raw, sizeof raw);
    assert_true(n > 0);
    fresh();
    assert_true(ms_sasl_oauthbearer(raw, (size_t)n, &C));
    assert_small(C.username, "user@example.com");
    assert_large(C.token, RFC7628_TOKEN);
}

static void test_oauthbearer_variants(void **state)
{
    (void)state;
    /* no a=: user= pair */
    fresh();
    assert_true(ms_sasl_oauthbearer(
        LIT("n,," SOH "user=bob@example.com" SOH "auth=Bearer tok" SOH SOH), &C));
    assert_small(C.username, "bob@example.com");
    assert_large(C.token, "tok");
    /* a= wins over user=, and its escapes are undone */
    fresh();
    assert_true(ms_sasl_oauthbearer(
        LIT("y,a=a=2Cb=3Dc," SOH "user=other" SOH "auth=Bearer tok" SOH SOH), &C));
    assert_small(C.username, "a,b=c");
    /* channel binding flag, no user at all */
    fresh();
    assert_true(ms_sasl_oauthbearer(LIT("p=tls-unique,," SOH "auth=Bearer   t2" SOH SOH), &C));
    assert_false(C.username.set);
    assert_large(C.token, "t2");
    /* another scheme: kept whole */
    fresh();
    assert_true(ms_sasl_oauthbearer(LIT("n,," SOH "auth=MAC xyz" SOH SOH), &C));
    assert_large(C.token, "MAC xyz");
    /* missing final separators are tolerated */
    fresh();
    assert_true(ms_sasl_oauthbearer(LIT("n,," SOH "auth=Bearer abc"), &C));
    assert_large(C.token, "abc");
}

static void test_oauthbearer_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        SOH,                                                  /* the client's error ack */
        "auth=Bearer x" SOH SOH,                              /* no gs2 header */
        "n,a=u," SOH "host=h" SOH SOH,                        /* no auth */
        "x,," SOH "auth=Bearer x" SOH SOH,                    /* bad cbind flag */
        "n," SOH "auth=Bearer x" SOH SOH,                     /* header cut */
        "n,,auth=Bearer x" SOH SOH,                           /* no ^A after header */
        "n,a=u=2," SOH "auth=Bearer x" SOH SOH,               /* bad escape */
        "n,a=u=,b," SOH "auth=Bearer x" SOH SOH,              /* bad escape */
        "n,a=," SOH "auth=Bearer x" SOH SOH,                  /* empty authzid */
        "n,," SOH "authBearer x" SOH SOH,                     /* no '=' */
        "n,," SOH "=x" SOH "auth=Bearer x" SOH SOH,           /* empty key */
        "n,," SOH "auth=Bearer x" SOH SOH "junk",             /* after the end */
        "n,," SOH "auth=Bearer x" SOH "auth=Bearer y" SOH SOH, /* two auth */
        "p=,," SOH "auth=Bearer x" SOH SOH,                   /* empty cb-name */
    };
    fresh();
    save();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ms_sasl_oauthbearer(U8(bad[i]), strlen(bad[i]), &C));
    assert_unchanged();
}

#define GOOGLE_TOKEN "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"

static void test_xoauth2_google(void **state)
{
    (void)state;
    fresh();
    assert_true(ms_sasl_xoauth2(
        LIT("user=someuser@example.com" SOH "auth=Bearer " GOOGLE_TOKEN SOH SOH), &C));
    assert_int_equal(C.mech, MS_MECH_XOAUTH2);
    assert_small(C.username, "someuser@example.com");
    assert_large(C.token, GOOGLE_TOKEN);

    /* Google's base64 form of the same string */
    static const char wire[] = "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRx"
                               "bVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==";
    uint8_t raw[256];
    long n = ms_b64_decode(U8(wire), strlen(wire), raw, sizeof raw);
    assert_true(n > 0);
    fresh();
    assert_true(ms_sasl_xoauth2(raw, (size_t)n, &C));
    assert_small(C.username, "someuser@example.com");
    assert_large(C.token, GOOGLE_TOKEN);

    /* over-long token: cut and marked */
    static char msg[6000];
    int len = snprintf(msg, sizeof msg, "user=u" SOH "auth=Bearer ");
    memset(msg + len, 't', 5000);
    len += 5000;
    msg[len++] = 0x01;
    msg[len++] = 0x01;
    fresh();
    assert_true(ms_sasl_xoauth2(U8(msg), (size_t)len, &C));
    assert_true(C.token.truncated);
    assert_int_equal(C.token.len, MS_STR_LARGE);
}

static void test_xoauth2_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "auth=Bearer x" SOH SOH,                 /* no user */
        "user=u" SOH SOH,                        /* no auth */
        "user=u" SOH "authBearer x" SOH SOH,     /* no '=' */
        "user=u" SOH "auth=x" SOH SOH "trail",   /* after the end */
        "user=u" SOH "user=v" SOH "auth=x" SOH SOH,
    };
    fresh();
    save();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ms_sasl_xoauth2(U8(bad[i]), strlen(bad[i]), &C));
    assert_unchanged();
}

/* ---- SCRAM ---------------------------------------------------------------- */

static void test_scram_rfc5802_rfc7677(void **state)
{
    (void)state;
    fresh();
    C.mech = MS_MECH_SCRAM_SHA_1;
    assert_true(ms_sasl_scram_client_first(LIT("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), &C));
    assert_int_equal(C.mech, MS_MECH_SCRAM_SHA_1); /* left as the caller set it */
    assert_small(C.username, "user");
    assert_false(C.authzid.set);

    fresh();
    C.mech = MS_MECH_SCRAM_SHA_256;
    assert_true(ms_sasl_scram_client_first(LIT("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), &C));
    assert_int_equal(C.mech, MS_MECH_SCRAM_SHA_256);
    assert_small(C.username, "user");
}

static void test_scram_variants(void **state)
{
    (void)state;
    fresh();
    assert_true(ms_sasl_scram_client_first(LIT("n,a=admin,n=us=2Cer=3Dx,r=abc"), &C));
    assert_small(C.username, "us,er=x");
    assert_small(C.authzid, "admin");
    fresh();
    assert_true(ms_sasl_scram_client_first(LIT("y,,n=bob,r=n0nce"), &C));
    assert_small(C.username, "bob");
    fresh();
    assert_true(ms_sasl_scram_client_first(LIT("p=tls-unique,a=x=3D,n=bob,r=n0nce,e=ext"), &C));
    assert_small(C.username, "bob");
    assert_small(C.authzid, "x=");
    fresh();
    assert_true(ms_sasl_scram_client_first(LIT("n,,n=\xc3\xa9l\xc3\xa8ve,r=n"), &C));
    assert_small(C.username, "\xc3\xa9l\xc3\xa8ve");
}

static void test_scram_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "n,,",
        "n,,n=user",                  /* no nonce */
        "n,,n=user,r=",               /* empty nonce */
        "n,,n=user,x=abc",            /* not r= */
        "n,,m=ext,n=user,r=abc",      /* mandatory extension */
        "n,,n=,r=abc",                /* empty user */
        "n,,n=us=2Xer,r=abc",         /* bad escape */
        "n,,n=user=,r=abc",           /* cut escape */
        "n,,n=us=2",                  /* cut escape at the end */
        "x,,n=user,r=abc",            /* bad flag */
        "n,n=user,r=abc",             /* one comma */
        "nn,,n=user,r=abc",
        "n,a=,n=user,r=abc",          /* empty authzid */
        "n,b=x,n=user,r=abc",         /* not a= */
        "p=,,n=user,r=abc",           /* empty cb-name */
        "p=tls unique,,n=user,r=abc", /* bad cb-name */
        "n,,n=user,r=a\177b",         /* nonce not printable */
        "n,,n=user,r=a b",
        "n,,n=us\0er,r=abc",          /* NUL: strlen makes this "n,,n=us" */
    };
    fresh();
    save();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ms_sasl_scram_client_first(U8(bad[i]), strlen(bad[i]), &C));
    assert_false(ms_sasl_scram_client_first(LIT("n,,n=us\0er,r=abc"), &C));
    assert_unchanged();
}

/* ---- APOP ---------------------------------------------------------------- */

#define RFC1939_TS "<1896.697170952@dbc.mtview.ca.us>"

static void test_apop_rfc1939(void **state)
{
    (void)state;
    fresh();
    ms_str_small_set(&C.username, "mrose", 5);
    assert_true(ms_apop_hash(LIT(RFC1939_TS), LIT("c4c9334bac560ecc979e58001b3e22fb"), &C));
    assert_int_equal(C.mech, MS_MECH_APOP);
    assert_small(C.username, "mrose");
    assert_large(C.hash, "c4c9334bac560ecc979e58001b3e22fb:" RFC1939_TS);
    /* upper-case digits come out lower-case */
    fresh();
    assert_true(ms_apop_hash(LIT(RFC1939_TS), LIT("C4C9334BAC560ECC979E58001B3E22FB"), &C));
    assert_large(C.hash, "c4c9334bac560ecc979e58001b3e22fb:" RFC1939_TS);
}

static void test_apop_malformed(void **state)
{
    (void)state;
    static const char dg[] = "c4c9334bac560ecc979e58001b3e22fb";
    fresh();
    save();
    assert_false(ms_apop_hash(LIT("1896.697170952@dbc.mtview.ca.us>"), LIT(dg), &C));
    assert_false(ms_apop_hash(LIT("<1896.697170952@dbc.mtview.ca.us"), LIT(dg), &C));
    assert_false(ms_apop_hash(LIT("<"), LIT(dg), &C));
    assert_false(ms_apop_hash(LIT(""), LIT(dg), &C));
    assert_false(ms_apop_hash(LIT("<a\r\nb>"), LIT(dg), &C));
    assert_false(ms_apop_hash(LIT(RFC1939_TS), LIT("c4c9334bac560ecc979e58001b3e22f"), &C));
    assert_false(ms_apop_hash(LIT(RFC1939_TS), LIT("c4c9334bac560ecc979e58001b3e22fbb"), &C));
    assert_false(ms_apop_hash(LIT(RFC1939_TS), LIT("c4c9334bac560ecc979e58001b3e22fz"), &C));
    assert_false(ms_apop_hash(LIT(RFC1939_TS), LIT(""), &C));
    assert_false(ms_apop_hash(NULL, 3, LIT(dg), &C));
    assert_unchanged();
    /* "<>" is the shortest timestamp */
    fresh();
    assert_true(ms_apop_hash(LIT("<>"), LIT(dg), &C));
    assert_large(C.hash, "c4c9334bac560ecc979e58001b3e22fb:<>");
}

/* ---- NTLMSSP -------------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s) {
        if (*s == ' ' || *s == '\n') {
            s++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

/* [MS-NLMP] 4.2.4.3: the NTLMv2 example's CHALLENGE_MESSAGE and AUTHENTICATE_MESSAGE. */
static const char nlmp_v2_challenge[] =
    "4e 54 4c 4d 53 53 50 00 02 00 00 00 0c 00 0c 00 38 00 00 00 33 82 8a e2 01 23 45 67 89 ab cd ef"
    "00 00 00 00 00 00 00 00 24 00 24 00 44 00 00 00 06 00 70 17 00 00 00 0f 53 00 65 00 72 00 76 00"
    "65 00 72 00 02 00 0c 00 44 00 6f 00 6d 00 61 00 69 00 6e 00 01 00 0c 00 53 00 65 00 72 00 76 00"
    "65 00 72 00 00 00 00 00";

static const char nlmp_v2_authenticate[] =
    "4e 54 4c 4d 53 53 50 00 03 00 00 00 18 00 18 00 6c 00 00 00 54 00 54 00 84 00 00 00 0c 00 0c 00"
    "48 00 00 00 08 00 08 00 54 00 00 00 10 00 10 00 5c 00 00 00 10 00 10 00 d8 00 00 00 35 82 88 e2"
    "05 01 28 0a 00 00 00 0f 44 00 6f 00 6d 00 61 00 69 00 6e 00 55 00 73 00 65 00 72 00 43 00 4f 00"
    "4d 00 50 00 55 00 54 00 45 00 52 00 86 c3 50 97 ac 9c ec 10 25 54 76 4a 57 cc cc 19 aa aa aa aa"
    "aa aa aa aa 68 cd 0a b8 51 e5 1c 96 aa bc 92 7b eb ef 6a 1c 01 01 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 aa aa aa aa aa aa aa aa 00 00 00 00 02 00 0c 00 44 00 6f 00 6d 00 61 00 69 00 6e 00"
    "01 00 0c 00 53 00 65 00 72 00 76 00 65 00 72 00 00 00 00 00 00 00 00 00 c5 da d2 54 4f c9 79 90"
    "94 ce 1c e9 0b c9 d0 3e";

#define NLMP_V2_LINE                                                                               \
    "User::Domain:0123456789abcdef:68cd0ab851e51c96aabc927bebef6a1c:"                              \
    "01010000000000000000000000000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00"     \
    "01000c005300650072007600650072000000000000000000"

/* [MS-NLMP] 4.2.1 and 4.2.2.2: server challenge, LMv1 and NTLMv1 responses. */
static const uint8_t nlmp_challenge[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
static const char nlmp_lmv1[] = "98 de f7 b8 7f 88 aa 5d af e2 df 77 96 88 a1 72 de f1 1c 7d 5c cd ef 13";
static const char nlmp_ntv1[] = "67 c4 30 11 f3 02 98 a2 ad 35 ec e6 4f 16 33 1c 44 bd be d9 27 84 1f 94";

#define NLMP_V1_LINE                                                                               \
    "User::Domain:98def7b87f88aa5dafe2df779688a172def11c7d5ccdef13:"                               \
    "67c43011f30298a2ad35ece64f16331c44bdbed927841f94:0123456789abcdef"

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

typedef struct {
    const uint8_t *p;
    size_t n;
} blob;

/* An AUTHENTICATE_MESSAGE from the MS-NLMP 2.2.1.3 layout: 64-byte header
 * (no Version, no MIC), then domain, user, workstation, LM, NT. */
static size_t build_type3(uint8_t *out, size_t cap, uint32_t flags, blob lm, blob nt, blob dom,
                          blob user, blob ws)
{
    static const size_t field[5] = { 28, 36, 44, 12, 20 };
    const blob parts[5] = { dom, user, ws, lm, nt };
    size_t off = 64;
    memset(out, 0, 64);
    memcpy(out, "NTLMSSP\0", 8);
    put32(out + 8, 3);
    for (int i = 0; i < 5; i++) {
        assert_true(off + parts[i].n <= cap);
        put16(out + field[i], (unsigned)parts[i].n);
        put16(out + field[i] + 2, (unsigned)parts[i].n);
        put32(out + field[i] + 4, (uint32_t)off);
        if (parts[i].n)
            memcpy(out + off, parts[i].p, parts[i].n);
        off += parts[i].n;
    }
    put32(out + 52 + 4, (uint32_t)off); /* empty session key at the end */
    put32(out + 60, flags);
    return off;
}

static blob B(const void *p, size_t n)
{
    blob b = { p, n };
    return b;
}

#define UTF16(s) B(s, sizeof(s) - 1)

static void test_ntlm_type(void **state)
{
    (void)state;
    uint8_t m[300];
    size_t n = unhex(nlmp_v2_challenge, m, sizeof m);
    assert_int_equal(ms_ntlmssp_type(m, n), 2);
    n = unhex(nlmp_v2_authenticate, m, sizeof m);
    assert_int_equal(ms_ntlmssp_type(m, n), 3);
    /* [MS-NLMP] 4.2.2.3's NEGOTIATE header */
    static const uint8_t neg[] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 1, 0, 0, 0,
                                   0x07, 0x82, 0x08, 0xa2 };
    assert_int_equal(ms_ntlmssp_type(neg, sizeof neg), 1);
    assert_int_equal(ms_ntlmssp_type(neg, 12), 1);
    assert_int_equal(ms_ntlmssp_type(neg, 11), 0);      /* truncated */
    assert_int_equal(ms_ntlmssp_type(NULL, 16), 0);
    uint8_t bad[16];
    memcpy(bad, neg, sizeof bad);
    bad[7] = ' ';                                       /* signature */
    assert_int_equal(ms_ntlmssp_type(bad, sizeof bad), 0);
    memcpy(bad, neg, sizeof bad);
    bad[0] = 'n';
    assert_int_equal(ms_ntlmssp_type(bad, sizeof bad), 0);
    memcpy(bad, neg, sizeof bad);
    bad[8] = 4;                                         /* no such type */
    assert_int_equal(ms_ntlmssp_type(bad, sizeof bad), 0);
    bad[8] = 0;
    assert_int_equal(ms_ntlmssp_type(bad, sizeof bad), 0);
    bad[8] = 1;
    bad[11] = 1;                                        /* 0x01000001 */
    assert_int_equal(ms_ntlmssp_type(bad, sizeof bad), 0);
}

static void test_ntlm_challenge(void **state)
{
    (void)state;
    uint8_t m[300], ch[8];
    size_t n = unhex(nlmp_v2_challenge, m, sizeof m);
    assert_int_equal(n, 0x68);
    memset(ch, 0, sizeof ch);
    assert_true(ms_ntlmssp_challenge(m, n, ch));
    assert_memory_equal(ch, nlmp_challenge, 8);
    /* only the fixed part up to the challenge is needed */
    assert_true(ms_ntlmssp_challenge(m, 32, ch));
    memset(ch, 0x5a, sizeof ch);
    assert_false(ms_ntlmssp_challenge(m, 31, ch));
    for (int i = 0; i < 8; i++)
        assert_int_equal(ch[i], 0x5a);
    /* an AUTHENTICATE is not a CHALLENGE */
    n = unhex(nlmp_v2_authenticate, m, sizeof m);
    assert_false(ms_ntlmssp_challenge(m, n, ch));
    assert_false(ms_ntlmssp_challenge(NULL, 40, ch));
}

static void test_ntlm_v2_nlmp(void **state)
{
    (void)state;
    uint8_t m[300];
    size_t n = unhex(nlmp_v2_authenticate, m, sizeof m);
    assert_int_equal(n, 0xe8);
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_int_equal(C.mech, MS_MECH_NTLM);
    assert_small(C.username, "User");
    assert_small(C.realm, "Domain");
    assert_small(C.workstation, "COMPUTER");
    assert_large(C.hash, NLMP_V2_LINE);

    /* the challenge taken from the CHALLENGE_MESSAGE of the same example */
    uint8_t cm[300], ch[8];
    size_t cn = unhex(nlmp_v2_challenge, cm, sizeof cm);
    assert_true(ms_ntlmssp_challenge(cm, cn, ch));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, ch, &C));
    assert_large(C.hash, NLMP_V2_LINE);

    /* without the challenge: names, no hash */
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, NULL, &C));
    assert_small(C.username, "User");
    assert_small(C.realm, "Domain");
    assert_small(C.workstation, "COMPUTER");
    assert_false(C.hash.set);
}

static void test_ntlm_v1_built(void **state)
{
    (void)state;
    uint8_t lm[24], nt[24], m[400];
    assert_int_equal(unhex(nlmp_lmv1, lm, sizeof lm), 24);
    assert_int_equal(unhex(nlmp_ntv1, nt, sizeof nt), 24);
    /* 4.2.2's flags include NTLMSSP_NEGOTIATE_UNICODE: names in UTF-16LE */
    size_t n = build_type3(m, sizeof m, 0xe2028233, B(lm, 24), B(nt, 24),
                           UTF16("D\0o\0m\0a\0i\0n\0"), UTF16("U\0s\0e\0r\0"),
                           UTF16("C\0O\0M\0P\0U\0T\0E\0R\0"));
    assert_int_equal(ms_ntlmssp_type(m, n), 3);
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_small(C.username, "User");
    assert_small(C.realm, "Domain");
    assert_small(C.workstation, "COMPUTER");
    assert_large(C.hash, NLMP_V1_LINE);

    /* OEM: the same names as single bytes when UNICODE is not negotiated */
    n = build_type3(m, sizeof m, 0x00000202, B(lm, 24), B(nt, 24), UTF16("Domain"),
                    UTF16("User"), UTF16("COMPUTER"));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_small(C.username, "User");
    assert_small(C.realm, "Domain");
    assert_small(C.workstation, "COMPUTER");
    assert_large(C.hash, NLMP_V1_LINE);

    /* the v2 layout built the same way gives the MS-NLMP line */
    uint8_t ex[300];
    size_t en = unhex(nlmp_v2_authenticate, ex, sizeof ex);
    n = build_type3(m, sizeof m, 0xe2888235, B(ex + 0x6c, 0x18), B(ex + 0x84, 0x54),
                    UTF16("D\0o\0m\0a\0i\0n\0"), UTF16("U\0s\0e\0r\0"),
                    UTF16("C\0O\0M\0P\0U\0T\0E\0R\0"));
    (void)en;
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_large(C.hash, NLMP_V2_LINE);
}

static void test_ntlm_anonymous_and_short(void **state)
{
    (void)state;
    uint8_t m[200];
    /* anonymous: empty user, empty NT response, LM of one zero byte */
    static const uint8_t z = 0;
    size_t n = build_type3(m, sizeof m, 0x00000801 | 1, B(&z, 1), B(NULL, 0), B(NULL, 0),
                           B(NULL, 0), UTF16("W\0S\0"));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_false(C.username.set);
    assert_int_equal(C.username.len, 0);
    assert_false(C.realm.set);
    assert_small(C.workstation, "WS");
    assert_false(C.hash.set);

    /* an NT response shorter than 24: neither v1 nor v2, no hash */
    uint8_t nt[16];
    memset(nt, 0x11, sizeof nt);
    n = build_type3(m, sizeof m, 1, B(NULL, 0), B(nt, 16), B(NULL, 0), UTF16("u\0"),
                    B(NULL, 0));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_small(C.username, "u");
    assert_false(C.hash.set);

    /* a user but no NT response: no hash either */
    n = build_type3(m, sizeof m, 1, B(NULL, 0), B(NULL, 0), B(NULL, 0), UTF16("u\0"),
                    B(NULL, 0));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_false(C.hash.set);

    /* 25 bytes: v2 shape, 9 bytes of blob; empty domain in the line */
    uint8_t nt25[25];
    for (int i = 0; i < 25; i++)
        nt25[i] = (uint8_t)i;
    n = build_type3(m, sizeof m, 1, B(NULL, 0), B(nt25, 25), B(NULL, 0), UTF16("u\0"),
                    B(NULL, 0));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_large(C.hash, "u:::0123456789abcdef:000102030405060708090a0b0c0d0e0f:101112131415161718");
}

static void test_ntlm_utf16(void **state)
{
    (void)state;
    uint8_t m[2000];
    /* "Jürgen" and U+1F600 as a surrogate pair */
    static const uint8_t user[] = { 'J', 0, 0xfc, 0, 'r', 0, 'g', 0, 'e', 0, 'n', 0,
                                    0x3d, 0xd8, 0x00, 0xde };
    /* lone high surrogate, lone low surrogate, a high one at the end, an odd byte */
    static const uint8_t dom[] = { 0x00, 0xd8, 'a', 0, 0x00, 0xdc, 'b', 0, 0x00, 0xd8, 'c' };
    /* U+20AC, U+0800, U+07FF, U+0000 kept as a byte */
    static const uint8_t ws[] = { 0xac, 0x20, 0x00, 0x08, 0xff, 0x07, 0x00, 0x00 };
    size_t n = build_type3(m, sizeof m, 1, B(NULL, 0), B(NULL, 0), B(dom, sizeof dom),
                           B(user, sizeof user), B(ws, sizeof ws));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, NULL, &C));
    assert_small(C.username, "J\xc3\xbcrgen\xf0\x9f\x98\x80");
    assert_small(C.realm, "\xef\xbf\xbd" "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(C.workstation.len, 3 + 3 + 2 + 1);
    assert_memory_equal(C.workstation.s, "\xe2\x82\xac\xe0\xa0\x80\xdf\xbf\x00", 10);

    /* 200 x U+0416 (2 bytes in UTF-8) = 400 bytes: cut at 256, between characters */
    static uint8_t longuser[400];
    for (int i = 0; i < 200; i++) {
        longuser[2 * i] = 0x16;
        longuser[2 * i + 1] = 0x04;
    }
    /* 200 x U+20AC (3 bytes): 256 is not a multiple of 3, so the cut is at 255 */
    static uint8_t longdom[400];
    for (int i = 0; i < 200; i++) {
        longdom[2 * i] = 0xac;
        longdom[2 * i + 1] = 0x20;
    }
    n = build_type3(m, sizeof m, 1, B(NULL, 0), B(NULL, 0), B(longdom, sizeof longdom),
                    B(longuser, sizeof longuser), B(NULL, 0));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, NULL, &C));
    assert_true(C.username.truncated);
    assert_int_equal(C.username.len, 256);
    assert_true(C.realm.truncated);
    assert_int_equal(C.realm.len, 255);
    assert_int_equal(C.realm.s[255], '\0');
    assert_memory_equal(C.realm.s + 252, "\xe2\x82\xac", 3);
}

static void test_ntlm_long_names_in_hash(void **state)
{
    (void)state;
    /* the hash line takes the full names, not the cut fields */
    static uint8_t m[2000];
    static uint8_t user[600];
    for (int i = 0; i < 300; i++) {
        user[2 * i] = 'a';
        user[2 * i + 1] = 0;
    }
    uint8_t lm[24], nt[24];
    unhex(nlmp_lmv1, lm, sizeof lm);
    unhex(nlmp_ntv1, nt, sizeof nt);
    size_t n = build_type3(m, sizeof m, 1, B(lm, 24), B(nt, 24), UTF16("D\0"),
                           B(user, sizeof user), B(NULL, 0));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_true(C.username.truncated);
    assert_false(C.hash.truncated);
    assert_int_equal(C.hash.len, 300 + 2 + 1 + 1 + 48 + 1 + 48 + 1 + 16);
    assert_memory_equal(C.hash.s + 300, "::D:98def7", 10);

    /* a long NTLMv2 blob: the line is cut and marked, never overrun */
    static uint8_t bignt[3000];
    memset(bignt, 0xab, sizeof bignt);
    n = build_type3(m, sizeof m, 1, B(NULL, 0), B(bignt, 1900), UTF16("D\0"), UTF16("u\0"),
                    B(NULL, 0));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m, n, nlmp_challenge, &C));
    assert_true(C.hash.set);
    assert_false(C.hash.truncated); /* 1900 bytes -> 3800 hex digits: fits */
    static uint8_t m2[4000];
    n = build_type3(m2, sizeof m2, 1, B(NULL, 0), B(bignt, 2500), UTF16("D\0"), UTF16("u\0"),
                    B(NULL, 0));
    fresh();
    assert_true(ms_ntlmssp_authenticate(m2, n, nlmp_challenge, &C));
    assert_true(C.hash.truncated);
    assert_true(C.hash.len <= MS_STR_LARGE);
    /* "u::D:" + challenge + ':' + NTProofStr + ':' is 55 characters; the
     * blob's hex pairs after it are not split */
    assert_int_equal((C.hash.len - 55) % 2, 0);
    assert_true(C.hash.len >= MS_STR_LARGE - 1);
    assert_int_equal(strlen(C.hash.s), C.hash.len);
}

static void test_ntlm_malformed(void **state)
{
    (void)state;
    uint8_t m[300];
    size_t n = unhex(nlmp_v2_authenticate, m, sizeof m);
    /* the last buffer read (NtChallengeResponse) ends at 0xd8; the session key
     * after it is not read */
    const size_t used = 0x84 + 0x54;
    fresh();
    save();

    /* cut anywhere before the end of what is read */
    for (size_t cut = 0; cut < used; cut++)
        assert_false(ms_ntlmssp_authenticate(m, cut, nlmp_challenge, &C));
    assert_false(ms_ntlmssp_authenticate(NULL, n, nlmp_challenge, &C));
    assert_false(ms_ntlmssp_authenticate(m, n, nlmp_challenge, NULL));

    uint8_t b[300];
    /* wrong signature, wrong type */
    memcpy(b, m, n);
    b[6] = 'Q';
    assert_false(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
    memcpy(b, m, n);
    b[8] = 2;
    assert_false(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
    memcpy(b, m, n);
    b[8] = 1;
    assert_false(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));

    /* each security buffer pointing outside the message, four ways */
    static const size_t fields[] = { 12, 20, 28, 36, 44 };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        size_t o = fields[f];
        uint32_t off = (uint32_t)m[o + 4] | ((uint32_t)m[o + 5] << 8);
        memcpy(b, m, n);
        put32(b + o + 4, (uint32_t)n); /* starts at the end */
        assert_false(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
        memcpy(b, m, n);
        put32(b + o + 4, 0xffffffffu); /* offset + len wraps 32 bits */
        assert_false(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
        memcpy(b, m, n);
        put16(b + o, (unsigned)(n - off + 1)); /* one byte too long */
        assert_false(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
        memcpy(b, m, n);
        put16(b + o, 0xffff);
        assert_false(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
    }
    assert_unchanged();

    /* cut right after what is read: still fine */
    for (size_t cut = used; cut <= n; cut++) {
        fresh();
        assert_true(ms_ntlmssp_authenticate(m, cut, nlmp_challenge, &C));
        assert_large(C.hash, NLMP_V2_LINE);
    }
    /* a buffer reaching exactly to the end of the message is fine */
    memcpy(b, m, n);
    put16(b + 20, (unsigned)(n - 0x84));
    fresh();
    assert_true(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
    assert_true(C.hash.set);
    /* an empty buffer's offset is not looked at */
    memcpy(b, m, n);
    put16(b + 12, 0);
    put32(b + 16, 0xfffffff0u);
    fresh();
    assert_true(ms_ntlmssp_authenticate(b, n, nlmp_challenge, &C));
    assert_large(C.hash, NLMP_V2_LINE);
}

/* ---- fuzz: random input into every decoder -------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void check_small(const ms_str_small *f)
{
    assert_true(f->len <= MS_STR_SMALL);
    assert_int_equal(f->s[f->len], '\0');
    if (!f->set)
        assert_int_equal(f->len, 0);
}

static void check_large(const ms_str_large *f)
{
    assert_true(f->len <= MS_STR_LARGE);
    assert_int_equal(f->s[f->len], '\0');
    if (!f->set)
        assert_int_equal(f->len, 0);
}

static void check_creds(const ms_creds *c)
{
    check_small(&c->mech_name);
    check_small(&c->username);
    check_small(&c->authzid);
    check_small(&c->password);
    check_small(&c->realm);
    check_small(&c->workstation);
    check_large(&c->token);
    check_large(&c->hash);
    check_large(&c->material);
}

/* Bytes the parsers care about, so random input reaches past the first check. */
static const char interesting[] = { 0, 1, '=', ',', '"', '\\', ' ', '\t', '\r', '\n', 'n', 'y',
                                    'p', 'a', 'r', 'm', '2', 'C', '3', 'D', '<', '>', 'B', 'e',
                                    'A', 'z', '0', '9', '+', '/', 'f', 'u', 's', 'h' };

static const char *const seeds[] = {
    "Ursel\0Kurt\0xipj3plmq",
    RFC2831_RESPONSE,
    "n,a=user@example.com," SOH "host=server.example.com" SOH "port=143" SOH
    "auth=Bearer " RFC7628_TOKEN SOH SOH,
    "user=someuser@example.com" SOH "auth=Bearer " GOOGLE_TOKEN SOH SOH,
    "p=tls-unique,a=x=3D,n=us=2Cer,r=fyko+d2lbbFgONRv9qkxdawL,e=1",
    "tim b913a602c7eda7a495b4e6e7334d3890",
    "Zm9vYmFy",
    RFC1939_TS,
    "c4c9334bac560ecc979e58001b3e22fb",
};
static const size_t seed_len[] = { 20, sizeof RFC2831_RESPONSE - 1, 0, 0, 0, 0, 0, 0, 0 };

static size_t fill_random(uint8_t *buf, size_t max)
{
    size_t len = rnd() % (max + 1);
    unsigned mode = rnd() % 4;
    for (size_t i = 0; i < len; i++) {
        if (mode == 0)
            buf[i] = (uint8_t)rnd();
        else
            buf[i] = (uint8_t)interesting[rnd() % sizeof interesting];
    }
    if (mode == 3) {
        /* a mutated seed */
        size_t s = rnd() % (sizeof seeds / sizeof seeds[0]);
        size_t sl = seed_len[s] ? seed_len[s] : strlen(seeds[s]);
        if (sl > max)
            sl = max;
        memcpy(buf, seeds[s], sl);
        len = sl;
        unsigned flips = rnd() % 4;
        for (unsigned f = 0; f < flips && len; f++)
            buf[rnd() % len] = (uint8_t)interesting[rnd() % sizeof interesting];
        if (rnd() % 2 && len)
            len = rnd() % len;
    }
    return len;
}

/* An NTLMSSP header with random security buffers, mostly near the message. */
static size_t fill_ntlm(uint8_t *buf, size_t max)
{
    size_t len = 12 + rnd() % (max - 12 + 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rnd();
    memcpy(buf, "NTLMSSP\0", 8);
    put32(buf + 8, 1 + rnd() % 3);
    for (size_t o = 12; o + 8 <= 60 && o + 8 <= len; o += 8) {
        if (rnd() % 4 == 0)
            continue; /* keep the random bytes */
        put16(buf + o, rnd() % 80);
        put32(buf + o + 4, rnd() % (uint32_t)(len + 16));
    }
    return len;
}

static void test_fuzz_decoders(void **state)
{
    (void)state;
    enum { MAX = 600, ITER = 100000 };
    static uint8_t src[MAX];
    for (int it = 0; it < ITER; it++) {
        size_t len = (it % 5 == 4) ? fill_ntlm(src, MAX) : fill_random(src, MAX);
        /* an exact-size heap copy so any over-read is an error under valgrind */
        uint8_t *in = malloc(len ? len : 1);
        assert_non_null(in);
        memcpy(in, src, len);
        size_t cut = len ? rnd() % (len + 1) : 0;

        if (it % 50 == 0)
            ms_creds_clear(&C);

        (void)ms_sasl_mech_from_name(in, len);
        ms_sasl_plain(in, len, &C);
        ms_sasl_cram_md5(in, cut, in + cut, len - cut, &C);
        ms_sasl_cram_md5(LIT(RFC2195_CHALLENGE), in, len, &C);
        ms_sasl_digest_md5(in, len, &C);
        ms_sasl_xoauth2(in, len, &C);
        ms_sasl_oauthbearer(in, len, &C);
        ms_sasl_scram_client_first(in, len, &C);
        ms_apop_hash(in, cut, in + cut, len - cut, &C);
        ms_apop_hash(LIT(RFC1939_TS), in, len, &C);
        ms_apop_hash(in, len, LIT("c4c9334bac560ecc979e58001b3e22fb"), &C);
        (void)ms_ntlmssp_type(in, len);
        uint8_t ch[8];
        if (ms_ntlmssp_challenge(in, len, ch))
            assert_int_equal(ms_ntlmssp_type(in, len), 2);
        ms_ntlmssp_authenticate(in, len, ch, &C);
        ms_ntlmssp_authenticate(in, len, NULL, &C);
        check_creds(&C);

        /* base64: decode into an exact-size heap buffer, or a smaller one */
        size_t cap = len / 4 * 3 + 3;
        if (rnd() % 3 == 0)
            cap = rnd() % (cap + 1);
        uint8_t *out = malloc(cap ? cap : 1);
        assert_non_null(out);
        long d = ms_b64_decode(in, len, out, cap);
        assert_true(d >= -1 && d <= (long)cap);
        if (d >= 0) {
            /* whatever decodes re-encodes to text that decodes the same */
            char *enc = malloc((size_t)d / 3 * 4 + 5);
            uint8_t *back = malloc((size_t)d + 3);
            assert_non_null(enc);
            assert_non_null(back);
            size_t en = ms_b64_encode(out, (size_t)d, enc, (size_t)d / 3 * 4 + 5);
            assert_int_equal(ms_b64_decode(U8(enc), en, back, (size_t)d + 3), d);
            assert_memory_equal(out, back, (size_t)d);
            free(enc);
            free(back);
        }
        free(out);

        /* base64: encode random bytes and decode them back */
        char enc[MAX / 3 * 4 + 8];
        size_t en = ms_b64_encode(in, len, enc, sizeof enc);
        assert_int_equal(en, (len + 2) / 3 * 4);
        uint8_t back[MAX + 3];
        assert_int_equal(ms_b64_decode(U8(enc), en, back, len), (long)len);
        assert_memory_equal(in, back, len);
        free(in);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mech_from_name),
        cmocka_unit_test(test_mech_name),
        cmocka_unit_test(test_str_setters),
        cmocka_unit_test(test_b64_rfc4648),
        cmocka_unit_test(test_b64_unpadded_and_empty),
        cmocka_unit_test(test_b64_invalid),
        cmocka_unit_test(test_b64_bounds),
        cmocka_unit_test(test_plain_rfc4616),
        cmocka_unit_test(test_plain_malformed),
        cmocka_unit_test(test_cram_md5_rfc2195),
        cmocka_unit_test(test_cram_md5_malformed),
        cmocka_unit_test(test_digest_md5_rfc2831),
        cmocka_unit_test(test_digest_md5_fields),
        cmocka_unit_test(test_digest_md5_malformed),
        cmocka_unit_test(test_digest_md5_overlong),
        cmocka_unit_test(test_oauthbearer_rfc7628),
        cmocka_unit_test(test_oauthbearer_variants),
        cmocka_unit_test(test_oauthbearer_malformed),
        cmocka_unit_test(test_xoauth2_google),
        cmocka_unit_test(test_xoauth2_malformed),
        cmocka_unit_test(test_scram_rfc5802_rfc7677),
        cmocka_unit_test(test_scram_variants),
        cmocka_unit_test(test_scram_malformed),
        cmocka_unit_test(test_apop_rfc1939),
        cmocka_unit_test(test_apop_malformed),
        cmocka_unit_test(test_ntlm_type),
        cmocka_unit_test(test_ntlm_challenge),
        cmocka_unit_test(test_ntlm_v2_nlmp),
        cmocka_unit_test(test_ntlm_v1_built),
        cmocka_unit_test(test_ntlm_anonymous_and_short),
        cmocka_unit_test(test_ntlm_utf16),
        cmocka_unit_test(test_ntlm_long_names_in_hash),
        cmocka_unit_test(test_ntlm_malformed),
        cmocka_unit_test(test_fuzz_decoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

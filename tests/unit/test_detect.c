/* test_detect.c — unit tests for content recognition (ms_detect). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ms_detect.h"

static ms_guess server(const char *s)
{
    return ms_detect_server_line((const uint8_t *)s, strlen(s));
}

static ms_guess client(const char *s)
{
    return ms_detect_client_line((const uint8_t *)s, strlen(s));
}

#define CHECK(g, p, st)                                                                            \
    do {                                                                                           \
        ms_guess g_ = (g);                                                                         \
        assert_int_equal(g_.proto, (p));                                                           \
        assert_int_equal(g_.strong, (st));                                                         \
    } while (0)

static void test_server_greetings(void **state)
{
    (void)state;
    CHECK(server("220 mail.example.com ESMTP Postfix"), MS_PROTO_SMTP, true);
    CHECK(server("220 mail.example.com ESMTP Postfix (Debian/GNU)"), MS_PROTO_SMTP, true);
    CHECK(server("220-host ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000"), MS_PROTO_SMTP, true);
    CHECK(server("220-host ESMTP Exim 4.96"), MS_PROTO_SMTP, true);
    CHECK(server("+OK Dovecot (Debian) ready."), MS_PROTO_POP3, true);
    CHECK(server("+OK"), MS_PROTO_POP3, true);
    CHECK(server("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
                 "STARTTLS AUTH=PLAIN] Dovecot ready."),
          MS_PROTO_IMAP, true);
    CHECK(server("* PREAUTH [CAPABILITY IMAP4rev1] IMAP4rev1 server logged in as bob"),
          MS_PROTO_IMAP, true);
    CHECK(server("* BYE Too many connections"), MS_PROTO_IMAP, true);
    /* an SMTP error greeting is SMTP, but not proof */
    CHECK(server("554 no service"), MS_PROTO_SMTP, false);
}

static void test_ftp_greetings_not_strong(void **state)
{
    (void)state;
    const char *ftp[] = {
        "220 ProFTPD Server (Debian) [::ffff:10.0.0.1]",
        "220 ProFTPD Server",
        "220 (vsFTPd 3.0.3)",
        "220 Microsoft FTP Service",
        "220-FileZilla Server 1.7.0",
        "220 smtp-like ESMTP FTP gateway", /* names both: FTP wins */
    };
    for (size_t i = 0; i < sizeof ftp / sizeof ftp[0]; i++) {
        ms_guess g = server(ftp[i]);
        assert_false(g.strong);
        assert_true(g.proto == MS_PROTO_SMTP || g.proto == MS_PROTO_UNKNOWN);
    }
}

static void test_http_unknown(void **state)
{
    (void)state;
    CHECK(server("HTTP/1.1 200 OK"), MS_PROTO_UNKNOWN, false);
    CHECK(client("HTTP/1.1 200 OK"), MS_PROTO_UNKNOWN, false);
    CHECK(client("GET / HTTP/1.1"), MS_PROTO_UNKNOWN, false);
    CHECK(server("GET / HTTP/1.1"), MS_PROTO_UNKNOWN, false);
    CHECK(client("POST /login HTTP/1.1"), MS_PROTO_UNKNOWN, false);
    CHECK(client("SSH-2.0-OpenSSH_9.2p1"), MS_PROTO_UNKNOWN, false);
    CHECK(server("SSH-2.0-OpenSSH_9.2p1 Debian-2"), MS_PROTO_UNKNOWN, false);
    CHECK(server(""), MS_PROTO_UNKNOWN, false);
    CHECK(client(""), MS_PROTO_UNKNOWN, false);
}

static void test_client_first_commands(void **state)
{
    (void)state;
    CHECK(client("EHLO client.example.com"), MS_PROTO_SMTP, true);
    CHECK(client("ehlo client.example.com"), MS_PROTO_SMTP, true);
    CHECK(client("EHLO"), MS_PROTO_SMTP, true);
    CHECK(client("HELO client"), MS_PROTO_SMTP, true);
    CHECK(client("LHLO client"), MS_PROTO_SMTP, true);
    CHECK(client("MAIL FROM:<a@b.example>"), MS_PROTO_SMTP, true);
    CHECK(client("mail from:<a@b.example>"), MS_PROTO_SMTP, true);
    CHECK(client("RCPT TO:<c@d.example>"), MS_PROTO_SMTP, true);
    CHECK(client("BDAT 86 LAST"), MS_PROTO_SMTP, true);
    CHECK(client("bdat 0"), MS_PROTO_SMTP, true);
    CHECK(client("BDAT"), MS_PROTO_UNKNOWN, false);
    CHECK(client("STARTTLS"), MS_PROTO_SMTP, false);
    CHECK(client("CAPA"), MS_PROTO_POP3, true);
    CHECK(client("STLS"), MS_PROTO_POP3, true);
    CHECK(client("APOP bob c4c9334bac560ecc979e58001b3e22fb"), MS_PROTO_POP3, true);
    CHECK(client("a001 LOGIN bob secret"), MS_PROTO_IMAP, true);
    CHECK(client("1 CAPABILITY"), MS_PROTO_IMAP, true);
    CHECK(client("A1 authenticate PLAIN"), MS_PROTO_IMAP, true);
    CHECK(client("a1 STARTTLS"), MS_PROTO_IMAP, true);
    /* near misses */
    CHECK(client("EHLOX client"), MS_PROTO_UNKNOWN, false);
    CHECK(client("a1 FROBNICATE"), MS_PROTO_UNKNOWN, false);
    CHECK(client("a1"), MS_PROTO_UNKNOWN, false);
    CHECK(client("a(1 LOGIN bob x"), MS_PROTO_UNKNOWN, false);
}

static void test_ambiguous_not_strong(void **state)
{
    (void)state;
    CHECK(client("USER bob"), MS_PROTO_POP3, false);
    CHECK(client("PASS secret"), MS_PROTO_POP3, false);
    CHECK(client("STAT"), MS_PROTO_POP3, false);
    /* SMTP's and POP3's AUTH LOGIN (RFC 4954, 5034), which a capture that
     * starts mid-session may show first, read like an IMAP tag "AUTH" with a
     * LOGIN; IMAP's LOGIN takes a user and a password */
    CHECK(client("AUTH LOGIN"), MS_PROTO_UNKNOWN, false);
    CHECK(client("auth login dXNlcg=="), MS_PROTO_UNKNOWN, false);
    CHECK(client("AUTH LOGIN bob secret"), MS_PROTO_IMAP, true);
}

static uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void test_random_bytes_not_strong(void **state)
{
    (void)state;
    uint32_t seed = 0x12345678u;
    uint8_t buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t len = xorshift(&seed) % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)xorshift(&seed);
        assert_false(ms_detect_server_line(buf, len).strong);
        assert_false(ms_detect_client_line(buf, len).strong);
    }
}

static void test_looks_like_tls(void **state)
{
    (void)state;
    /* a TLS 1.0-framed ClientHello record header, as every client sends */
    static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x00, 0xab, 0x01, 0x00, 0x00, 0xa7, 0x03, 0x03 };
    assert_true(ms_looks_like_tls(hello, sizeof hello));
    assert_true(ms_looks_like_tls(hello, 5));
    assert_false(ms_looks_like_tls(hello, 4));
    static const uint8_t alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 };
    assert_true(ms_looks_like_tls(alert, sizeof alert));
    static const uint8_t zero_len[] = { 0x16, 0x03, 0x01, 0x00, 0x00 };
    assert_false(ms_looks_like_tls(zero_len, sizeof zero_len));
    static const uint8_t sslv2ish[] = { 0x16, 0x02, 0x00, 0x00, 0x10 };
    assert_false(ms_looks_like_tls(sslv2ish, sizeof sslv2ish));

    const char *text[] = { "EHLO client.example.com\r\n", "220 mail ESMTP\r\n",
                           "* OK IMAP4rev1\r\n", "+OK ready\r\n", "\r\n\r\n\r\n" };
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        assert_false(ms_looks_like_tls((const uint8_t *)text[i], strlen(text[i])));
}

static void test_helpers(void **state)
{
    (void)state;
    const uint8_t *p = (const uint8_t *)"Mail From:<a@b>";
    assert_true(ms_ci_prefix(p, 15, "MAIL FROM:"));
    assert_false(ms_ci_prefix(p, 4, "MAIL FROM:"));
    assert_true(ms_ci_contains((const uint8_t *)"220 x esmtp y", 13, "ESMTP"));
    assert_false(ms_ci_contains((const uint8_t *)"220 x esmt", 10, "ESMTP"));
    assert_int_equal(ms_token_len((const uint8_t *)"EHLO x", 6), 4);
    assert_int_equal(ms_token_len((const uint8_t *)"EHLO", 4), 4);
    assert_int_equal(ms_token_len((const uint8_t *)"a\tb", 3), 1);
    assert_true(ms_token_is((const uint8_t *)"stls", 4, "STLS"));
    assert_false(ms_token_is((const uint8_t *)"stl", 3, "STLS"));
}

static void test_first_line_len(void **state)
{
    (void)state;
    assert_int_equal(ms_first_line_len((const uint8_t *)"220 mx\r\nnext", 12), 6);
    assert_int_equal(ms_first_line_len((const uint8_t *)"+OK\nx", 5), 3);
    assert_int_equal(ms_first_line_len((const uint8_t *)"no end", 6), 6);
    assert_int_equal(ms_first_line_len((const uint8_t *)"\r\n", 2), 0);
    assert_int_equal(ms_first_line_len((const uint8_t *)"x", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_line_len),
        cmocka_unit_test(test_server_greetings),
        cmocka_unit_test(test_ftp_greetings_not_strong),
        cmocka_unit_test(test_http_unknown),
        cmocka_unit_test(test_client_first_commands),
        cmocka_unit_test(test_ambiguous_not_strong),
        cmocka_unit_test(test_random_bytes_not_strong),
        cmocka_unit_test(test_looks_like_tls),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

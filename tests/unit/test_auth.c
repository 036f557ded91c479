/* test_auth.c — logins through whole sessions: which facts, on which frame,
 * with which decoded credentials. Vectors from RFC 2195 (CRAM-MD5), RFC 1939
 * (APOP) and RFC 4616 (PLAIN). */
#include "session_fixture.h"

static size_t find(const fixture *fx, ms_fact_kind kind, size_t nth)
{
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == kind && nth-- == 0)
            return i;
    fail_msg("fact %d #%zu not found", (int)kind, nth);
    return 0;
}

static void str_is(const char *got, const char *want)
{
    assert_string_equal(got, want);
}

static void smtp_start(fixture *fx)
{
    seg(fx, S2C, 1, "220 mx.example.org ESMTP Postfix\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250-mx\r\n250 AUTH PLAIN LOGIN CRAM-MD5\r\n");
}

static void test_smtp_plain_initial_response(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_start(fx);
    seg(fx, C2S, 4, "AUTH PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n");
    seg(fx, S2C, 5, "235 2.7.0 Authentication successful\r\n");
    size_t rq = find(fx, MS_FACT_AUTH_REQUEST, 0), rs = find(fx, MS_FACT_AUTH_RESULT, 0);
    assert_int_equal(fx->f[rq].frame, 4);
    assert_int_equal(fx->f[rq].ival, 1);  /* attempt */
    assert_int_equal(fx->f[rq].ival2, 1); /* in clear */
    assert_int_equal(fx->f[rq].creds.mech, MS_MECH_PLAIN);
    str_is(fx->f[rq].creds.username.s, "alice");
    str_is(fx->f[rq].creds.password.s, "Wonderland-42");
    assert_int_equal(fx->f[rs].frame, 5);
    assert_int_equal(fx->f[rs].ival2, MS_AUTH_SUCCESS);
    assert_int_equal(fx->f[rs].ref_frame, 4);
    size_t len;
    unsigned gen;
    const char *user = ms_session_auth_user(fx->s, &len, &gen);
    assert_non_null(user);
    assert_string_equal(user, "alice");
    finish(fx);
}

static void test_smtp_login_prompted_failure(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_start(fx);
    seg(fx, C2S, 4, "AUTH LOGIN\r\n");
    seg(fx, S2C, 5, "334 VXNlcm5hbWU6\r\n");
    seg(fx, C2S, 6, "YWxpY2U=\r\n");
    seg(fx, S2C, 7, "334 UGFzc3dvcmQ6\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 0);
    seg(fx, C2S, 8, "V3Jvbmc=\r\n");
    seg(fx, S2C, 9, "535 5.7.8 Error: authentication failed\r\n");
    size_t rq = find(fx, MS_FACT_AUTH_REQUEST, 0), rs = find(fx, MS_FACT_AUTH_RESULT, 0);
    assert_int_equal(fx->f[rq].frame, 8);
    assert_int_equal(fx->f[rq].creds.mech, MS_MECH_LOGIN);
    str_is(fx->f[rq].creds.username.s, "alice");
    str_is(fx->f[rq].creds.password.s, "Wrong");
    assert_int_equal(fx->f[rs].ival2, MS_AUTH_FAILURE);
    assert_int_equal(fx->f[rs].count, 1);
    assert_null(ms_session_auth_user(fx->s, NULL, NULL));
    /* the session goes on: commands after the failure are commands again */
    seg(fx, C2S, 10, "AUTH PLAIN AGJvYgBCdWlsZGVyIzc=\r\n");
    seg(fx, S2C, 11, "235 ok\r\n");
    rq = find(fx, MS_FACT_AUTH_REQUEST, 1);
    assert_int_equal(fx->f[rq].ival, 2);
    str_is(fx->f[rq].creds.username.s, "bob");
    finish(fx);
}

static void test_smtp_cram_md5_rfc2195(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_start(fx);
    seg(fx, C2S, 4, "AUTH CRAM-MD5\r\n");
    seg(fx, S2C, 5, "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5jb20+\r\n");
    seg(fx, C2S, 6, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
    seg(fx, S2C, 7, "235 ok\r\n");
    size_t rq = find(fx, MS_FACT_AUTH_REQUEST, 0);
    assert_int_equal(fx->f[rq].frame, 6);
    str_is(fx->f[rq].creds.username.s, "tim");
    str_is(fx->f[rq].creds.hash.s,
           "$cram_md5$PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5jb20+"
           "$dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    assert_false(fx->f[rq].creds.password.set);
    finish(fx);
}

static void test_smtp_abort_and_bad_base64(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_start(fx);
    seg(fx, C2S, 4, "AUTH LOGIN\r\n");
    seg(fx, S2C, 5, "334 VXNlcm5hbWU6\r\n");
    seg(fx, C2S, 6, "not*base64!\r\n");
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_MALFORMED, 0)].ival, MS_AUTH_BAD_BASE64);
    seg(fx, S2C, 7, "334 VXNlcm5hbWU6\r\n");
    seg(fx, C2S, 8, "*\r\n");
    seg(fx, S2C, 9, "501 5.7.0 Authentication aborted\r\n");
    size_t rs = find(fx, MS_FACT_AUTH_RESULT, 0);
    assert_int_equal(fx->f[rs].ival2, MS_AUTH_ABORTED);
    assert_int_equal(fx->f[rs].count, 0); /* an abort is not a failed guess */
    finish(fx);
}

static void test_smtp_auth_after_starttls_not_exposed(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250-mx\r\n250 STARTTLS\r\n");
    seg(fx, C2S, 4, "STARTTLS\r\n");
    seg(fx, S2C, 5, "220 go ahead\r\n");
    ms_feed_ctx ctx = { 9, { 9, 0 }, sink, fx, body_sink, fx, content_sink, fx };
    fx->frame = 9;
    const char *ehlo = "EHLO c\r\n", *auth = "AUTH PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n";
    ms_session_decrypted(fx->s, C2S, (const uint8_t *)ehlo, strlen(ehlo), &ctx);
    ms_session_decrypted(fx->s, S2C, (const uint8_t *)"250 mx\r\n", 8, &ctx);
    ms_session_decrypted(fx->s, C2S, (const uint8_t *)auth, strlen(auth), &ctx);
    size_t rq = find(fx, MS_FACT_AUTH_REQUEST, 0);
    assert_int_equal(fx->f[rq].ival2, 0);
    str_is(fx->f[rq].creds.password.s, "Wonderland-42");
    finish(fx);
}

static void test_brute_force_counts(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_start(fx);
    uint32_t frame = 4;
    for (int i = 0; i < 6; i++) {
        seg(fx, C2S, frame++, "AUTH PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n");
        seg(fx, S2C, frame++, "535 5.7.8 Error: authentication failed\r\n");
    }
    seg(fx, C2S, frame++, "AUTH PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n");
    seg(fx, S2C, frame++, "235 ok\r\n");
    for (size_t k = 0; k < 6; k++) {
        size_t rs = find(fx, MS_FACT_AUTH_RESULT, k);
        assert_int_equal(fx->f[rs].ival2, MS_AUTH_FAILURE);
        assert_int_equal(fx->f[rs].count, k + 1);
        assert_int_equal(fx->f[rs].ival, (int)k + 1);
    }
    size_t last = find(fx, MS_FACT_AUTH_RESULT, 6);
    assert_int_equal(fx->f[last].ival2, MS_AUTH_SUCCESS);
    assert_int_equal(fx->f[last].count, 6);
    assert_int_equal(fx->f[last].ival, 7);
    finish(fx);
}

static void test_pop3_user_pass_and_apop(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    seg(fx, C2S, 2, "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n");
    seg(fx, S2C, 3, "-ERR permission denied\r\n");
    seg(fx, C2S, 4, "USER alice\r\n");
    seg(fx, S2C, 5, "+OK\r\n");
    seg(fx, C2S, 6, "PASS Wonder land\r\n");
    seg(fx, S2C, 7, "+OK Logged in.\r\n");
    size_t a = find(fx, MS_FACT_AUTH_REQUEST, 0);
    assert_int_equal(fx->f[a].creds.mech, MS_MECH_APOP);
    str_is(fx->f[a].creds.username.s, "mrose");
    str_is(fx->f[a].creds.hash.s, "c4c9334bac560ecc979e58001b3e22fb:<1896.697170952@dbc.mtview.ca.us>");
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_RESULT, 0)].ival2, MS_AUTH_FAILURE);
    size_t u = find(fx, MS_FACT_AUTH_REQUEST, 1);
    assert_int_equal(fx->f[u].frame, 6);
    assert_int_equal(fx->f[u].creds.mech, MS_MECH_USER_PASS);
    str_is(fx->f[u].creds.username.s, "alice");
    str_is(fx->f[u].creds.password.s, "Wonder land");
    size_t r = find(fx, MS_FACT_AUTH_RESULT, 1);
    assert_int_equal(fx->f[r].ival2, MS_AUTH_SUCCESS);
    assert_int_equal(fx->f[r].ref_frame, 6);
    finish(fx);
}

/* A capture that starts after the greeting has no APOP timestamp: the
 * attempt is shown with its digest, not crackable, and is not malformed;
 * a digest that is not 32 hex digits is. */
static void test_pop3_apop_without_the_greeting(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    seg(fx, C2S, 1, "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n");
    seg(fx, S2C, 2, "+OK maildrop has 1 message\r\n");
    size_t a = find(fx, MS_FACT_AUTH_REQUEST, 0);
    assert_int_equal(fx->f[a].creds.mech, MS_MECH_APOP);
    str_is(fx->f[a].creds.username.s, "mrose");
    str_is(fx->f[a].creds.material.s, "c4c9334bac560ecc979e58001b3e22fb");
    assert_int_equal(fx->f[a].creds.hash.len, 0);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_MALFORMED), 0);
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_RESULT, 0)].ival2, MS_AUTH_SUCCESS);
    seg(fx, C2S, 3, "APOP mrose c4c9334bac560ecc\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_MALFORMED), 1);
    finish(fx);
}


static void test_pop3_auth_plain_after_challenge(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "+OK Dovecot ready.\r\n");
    seg(fx, C2S, 2, "AUTH PLAIN\r\n");
    seg(fx, S2C, 3, "+ \r\n");
    seg(fx, C2S, 4, "AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n");
    seg(fx, S2C, 5, "+OK Logged in.\r\n");
    size_t rq = find(fx, MS_FACT_AUTH_REQUEST, 0);
    assert_int_equal(fx->f[rq].frame, 4);
    str_is(fx->f[rq].creds.password.s, "Wonderland-42");
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_RESULT, 0)].ival2, MS_AUTH_SUCCESS);
    finish(fx);
}

static void test_imap_login_literals(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 ready\r\n");
    seg(fx, C2S, 2, "a1 LOGIN {5}\r\n");
    seg(fx, S2C, 3, "+ Ready for literal data\r\n");
    seg(fx, C2S, 4, "alice {13}\r\n");
    seg(fx, S2C, 5, "+ Ready for literal data\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 0);
    seg(fx, C2S, 6, "Wonder");
    seg(fx, C2S, 7, "land-42\r\n");
    seg(fx, S2C, 8, "a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n");
    size_t rq = find(fx, MS_FACT_AUTH_REQUEST, 0);
    assert_int_equal(fx->f[rq].frame, 7);
    assert_int_equal(fx->f[rq].creds.mech, MS_MECH_IMAP_LOGIN);
    str_is(fx->f[rq].creds.username.s, "alice");
    str_is(fx->f[rq].creds.password.s, "Wonderland-42");
    size_t rs = find(fx, MS_FACT_AUTH_RESULT, 0);
    assert_int_equal(fx->f[rs].ival2, MS_AUTH_SUCCESS);
    assert_int_equal(fx->f[rs].ref_frame, 7);
    finish(fx);
}

static void test_imap_login_atoms_and_quoted(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 ready\r\n");
    /* an atom password: the built-in dissector cuts it; we must not */
    seg(fx, C2S, 2, "a1 LOGIN frank secret6\r\n");
    seg(fx, S2C, 3, "a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    seg(fx, C2S, 4, "a2 login \"bob\" \"p\\\"w\\\\d\"\r\n");
    seg(fx, S2C, 5, "a2 OK Logged in\r\n");
    size_t a = find(fx, MS_FACT_AUTH_REQUEST, 0), b = find(fx, MS_FACT_AUTH_REQUEST, 1);
    str_is(fx->f[a].creds.username.s, "frank");
    str_is(fx->f[a].creds.password.s, "secret6");
    str_is(fx->f[b].creds.username.s, "bob");
    str_is(fx->f[b].creds.password.s, "p\"w\\d");
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_RESULT, 0)].ival2, MS_AUTH_FAILURE);
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_RESULT, 1)].ival2, MS_AUTH_SUCCESS);
    finish(fx);
}

static void test_imap_authenticate_sasl_ir_and_abort(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 ready\r\n");
    seg(fx, C2S, 2, "a1 AUTHENTICATE PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n");
    seg(fx, S2C, 3, "a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    seg(fx, C2S, 4, "a2 AUTHENTICATE CRAM-MD5\r\n");
    seg(fx, S2C, 5, "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5jb20+\r\n");
    seg(fx, C2S, 6, "*\r\n");
    seg(fx, S2C, 7, "a2 BAD Authentication aborted by client.\r\n");
    str_is(fx->f[find(fx, MS_FACT_AUTH_REQUEST, 0)].creds.password.s, "Wonderland-42");
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_RESULT, 0)].ival2, MS_AUTH_FAILURE);
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_RESULT, 1)].ival2, MS_AUTH_ABORTED);
    assert_int_equal(fx->f[find(fx, MS_FACT_AUTH_REQUEST, 1)].creds.mech, MS_MECH_CRAM_MD5);
    finish(fx);
}

static void test_unfinished_attempt_still_begins(void **state)
{
    (void)state;
    /* a client line whose end never came, answered by the server anyway,
     * then an AUTH LOGIN the capture never sees completed */
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO OBLAHOBLAH");
    seg(fx, S2C, 3, "250 mx\r\n");
    seg(fx, C2S, 4, "AUTH LOGIN\r\n");
    seg(fx, S2C, 5, "334 VXNlcm5hbWU6\r\n");
    size_t st = find(fx, MS_FACT_AUTH_START, 0);
    assert_int_equal(fx->f[st].frame, 4);
    assert_int_equal(fx->f[st].ival, 1);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 0);
    finish(fx);
}

static void test_imap_login_odd_whitespace_terminates(void **state)
{
    (void)state;
    /* found by fuzzing: a tab between LOGIN arguments once stalled the parser */
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 ready\r\n");
    seg(fx, C2S, 2, "a1 LOGIN\t\rX22x\r\n");
    seg(fx, C2S, 3, "a2 LOGIN alice\tsecret\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 2);
    str_is(fx->f[find(fx, MS_FACT_AUTH_REQUEST, 1)].creds.username.s, "alice");
    str_is(fx->f[find(fx, MS_FACT_AUTH_REQUEST, 1)].creds.password.s, "secret");
    finish(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_plain_initial_response),
        cmocka_unit_test(test_smtp_login_prompted_failure),
        cmocka_unit_test(test_smtp_cram_md5_rfc2195),
        cmocka_unit_test(test_smtp_abort_and_bad_base64),
        cmocka_unit_test(test_smtp_auth_after_starttls_not_exposed),
        cmocka_unit_test(test_brute_force_counts),
        cmocka_unit_test(test_pop3_user_pass_and_apop),
        cmocka_unit_test(test_pop3_apop_without_the_greeting),
        cmocka_unit_test(test_pop3_auth_plain_after_challenge),
        cmocka_unit_test(test_imap_login_literals),
        cmocka_unit_test(test_imap_login_atoms_and_quoted),
        cmocka_unit_test(test_imap_authenticate_sasl_ir_and_abort),
        cmocka_unit_test(test_unfinished_attempt_still_begins),
        cmocka_unit_test(test_imap_login_odd_whitespace_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

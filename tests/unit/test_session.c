/* test_session.c — whole conversations through ms_session_segment. */
#include "session_fixture.h"

/* Greeting, EHLO and a multi-line EHLO reply offering STARTTLS: frames 1..3. */
static void smtp_hello(fixture *fx, bool offer)
{
    seg(fx, S2C, 1, "220 mail.example.com ESMTP Postfix\r\n");
    seg(fx, C2S, 2, "EHLO client.example.com\r\n");
    if (offer)
        seg(fx, S2C, 3,
            "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n");
    else
        seg(fx, S2C, 3, "250-mail.example.com\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n");
}

/* ---- SMTP ------------------------------------------------------------------ */

static void test_smtp_starttls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    seg(fx, C2S, 4, "STARTTLS\r\n");
    seg(fx, S2C, 5, "220 2.0.0 Ready to start TLS\r\n");
    uint64_t cleartext = fx->cleartext;
    tls(fx, C2S, 6);
    tls(fx, S2C, 7);
    /* cleartext-looking bytes after the switch are TLS: ignored */
    seg_bytes(fx, C2S, 8, (const uint8_t *)"STARTTLS\r\n", 10, false);

    assert_int_equal(fx->n, 4);
    fact_is(fx, 0, MS_FACT_STARTTLS_OFFERED, 0, 3);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 4);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 5);
    fact_is(fx, 3, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 5);

    assert_int_equal(ms_session_proto(fx->s), MS_PROTO_SMTP);
    assert_int_equal(ms_session_detect(fx->s), MS_DETECT_PORT);
    assert_true(ms_session_tls(fx->s));
    assert_int_equal(ms_session_boundary(fx->s), 5);
    for (uint32_t f = 1; f <= 5; f++)
        assert_int_equal(ms_session_frame_transport(fx->s, f), MS_TRANSPORT_CLEARTEXT);
    for (uint32_t f = 6; f <= 8; f++)
        assert_int_equal(ms_session_frame_transport(fx->s, f), MS_TRANSPORT_STARTTLS);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), cleartext);
    finish(fx);
}

static void test_smtp_starttls_refused(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    seg(fx, C2S, 4, "STARTTLS\r\n");
    seg(fx, S2C, 5, "454 4.7.0 TLS not available due to local problem\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_REFUSED, 5);
    assert_false(ms_session_tls(fx->s));
    assert_int_equal(ms_session_boundary(fx->s), 0);
    assert_int_equal(ms_session_frame_transport(fx->s, 5), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(ms_session_frame_transport(fx->s, 6), MS_TRANSPORT_CLEARTEXT);

    /* the session goes on in cleartext and commands still pair with replies */
    seg(fx, C2S, 6, "MAIL FROM:<a@b.example>\r\n");
    seg(fx, S2C, 7, "250 2.1.0 Ok\r\n");
    seg(fx, C2S, 8, "STARTTLS\r\n");
    seg(fx, S2C, 9, "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(fx->n, 6);
    fact_is(fx, 3, MS_FACT_STARTTLS_COMMAND, 0, 8);
    fact_is(fx, 4, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 9);
    fact_is(fx, 5, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 9);
    assert_int_equal(ms_session_boundary(fx->s), 9);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), fx->cleartext);
    finish(fx);
}

static void test_smtp_command_injection(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    seg(fx, C2S, 4, "STARTTLS\r\nMAIL FROM:<a@b>\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 4);
    fact_is(fx, 2, MS_FACT_STARTTLS_INJECTED, MS_DIR_C2S, 4);
    fact_data_is(fx, 2, "MAIL FROM:<a@b>\r\n");
    seg(fx, S2C, 5, "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(fx->n, 5);
    fact_is(fx, 3, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 5);
    fact_is(fx, 4, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 5);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), fx->cleartext);
    finish(fx);
}

static void test_smtp_command_injection_split_line(void **state)
{
    (void)state;
    /* the STARTTLS line itself arrives in two pieces */
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    seg(fx, C2S, 4, "START");
    seg(fx, C2S, 5, "TLS\r\nRSET\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 5);
    fact_is(fx, 2, MS_FACT_STARTTLS_INJECTED, MS_DIR_C2S, 5);
    fact_data_is(fx, 2, "RSET\r\n");
    finish(fx);
}

static void test_smtp_response_injection(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    seg(fx, C2S, 4, "STARTTLS\r\n");
    seg(fx, S2C, 5, "220 ready\r\n250 fake\r\n");
    assert_int_equal(fx->n, 5);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 4);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 5);
    fact_is(fx, 3, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 5);
    fact_is(fx, 4, MS_FACT_STARTTLS_INJECTED, MS_DIR_S2C, 5);
    fact_data_is(fx, 4, "250 fake\r\n");
    assert_int_equal(ms_session_boundary(fx->s), 5);
    finish(fx);
}

static void test_smtp_pipelined_reply_split(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "220-mail.example.com ESMTP\r\n220 hello\r\n");
    seg(fx, C2S, 2, "EHLO client.example.com\r\n");
    seg(fx, S2C, 3, "250-mail.example.com\r\n250-PIPEL");
    seg(fx, S2C, 4, "INING\r\n250-START");
    seg(fx, S2C, 5, "TLS\r\n250-SIZE 10240000\r");
    seg(fx, S2C, 6, "\n250 8BITMIME\r\n");
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_STARTTLS_OFFERED, 0, 5);
    /* pipelined commands and replies, each split across segments */
    seg(fx, C2S, 7, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT T");
    seg(fx, C2S, 8, "O:<e@f>\r\n");
    seg(fx, S2C, 9, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 ");
    seg(fx, S2C, 10, "unknown\r\n");
    seg(fx, C2S, 11, "STARTTLS\r\n");
    seg(fx, S2C, 12, "220 go ahead\r\n");
    assert_int_equal(fx->n, 4);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 11);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 12);
    fact_is(fx, 3, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 12);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), fx->cleartext);
    finish(fx);
}

static void test_smtp_data_body_not_command(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, false);
    seg(fx, C2S, 4, "MAIL FROM:<a@b>\r\n");
    seg(fx, S2C, 5, "250 2.1.0 Ok\r\n");
    seg(fx, C2S, 6, "RCPT TO:<c@d>\r\n");
    seg(fx, S2C, 7, "250 2.1.5 Ok\r\n");
    seg(fx, C2S, 8, "DATA\r\n");
    seg(fx, S2C, 9, "354 End data with <CR><LF>.<CR><LF>\r\n");
    seg(fx, C2S, 10, "Subject: test\r\n\r\nSTARTTLS\r\n");
    seg(fx, C2S, 11, "STARTTLS\r\n..\r\nEHLO x\r\n.\r\n");
    seg(fx, S2C, 12, "250 2.0.0 Ok: queued as 1234\r\n");
    assert_int_equal(fx->n, 0);
    /* after the body, commands are commands again */
    seg(fx, C2S, 13, "STARTTLS\r\n");
    seg(fx, S2C, 14, "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 0, MS_FACT_STARTTLS_COMMAND, 0, 13);
    fact_is(fx, 1, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 14);
    fact_is(fx, 2, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 14);
    finish(fx);
}

static void test_smtp_data_refused(void **state)
{
    (void)state;
    /* DATA refused: the next line is a command, not body */
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, false);
    seg(fx, C2S, 4, "DATA\r\n");
    seg(fx, S2C, 5, "503 5.5.1 Error: need RCPT command\r\n");
    seg(fx, C2S, 6, "STARTTLS\r\n");
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_STARTTLS_COMMAND, 0, 6);
    finish(fx);
}

static void test_smtp_bdat_not_command(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, false);
    seg(fx, C2S, 4, "MAIL FROM:<a@b>\r\n");
    seg(fx, S2C, 5, "250 2.1.0 Ok\r\n");
    seg(fx, C2S, 6, "RCPT TO:<c@d>\r\n");
    seg(fx, S2C, 7, "250 2.1.5 Ok\r\n");
    /* a chunk in the same segment as its command */
    seg(fx, C2S, 8, "BDAT 10\r\nSTARTTLS\r\n");
    seg(fx, S2C, 9, "250 2.0.0 10 octets received\r\n");
    /* a chunk split over three segments, the first piece with its command */
    seg(fx, C2S, 10, "BDAT 25 LAST\r\nSTART");
    seg(fx, C2S, 11, "TLS\r\nSTARTTLS\r\n");
    seg(fx, C2S, 12, "abc\r\n");
    seg(fx, S2C, 13, "250 2.0.0 Ok: queued\r\n");
    assert_int_equal(fx->n, 0);
    seg(fx, C2S, 14, "STARTTLS\r\n");
    seg(fx, S2C, 15, "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 0, MS_FACT_STARTTLS_COMMAND, 0, 14);
    fact_is(fx, 1, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 15);
    fact_is(fx, 2, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 15);
    finish(fx);
}

static void test_smtp_no_reply_then_tls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    seg(fx, C2S, 4, "STARTTLS\r\n");
    uint64_t cleartext = fx->cleartext;
    tls(fx, C2S, 5);
    assert_int_equal(fx->n, 4);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 4);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_NO_REPLY, 5);
    fact_is(fx, 3, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 5);
    assert_true(ms_session_tls(fx->s));
    assert_int_equal(ms_session_boundary(fx->s), 4);
    assert_int_equal(ms_session_frame_transport(fx->s, 4), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(ms_session_frame_transport(fx->s, 5), MS_TRANSPORT_STARTTLS);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), cleartext);
    /* a late 220 in cleartext changes nothing */
    seg_bytes(fx, S2C, 6, (const uint8_t *)"220 go\r\n", 8, false);
    assert_int_equal(fx->n, 4);
    finish(fx);
}

static void test_tls_record_without_starttls_is_text(void **state)
{
    (void)state;
    /* after cleartext, a TLS-looking segment without a pending STARTTLS does not switch */
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    tls(fx, C2S, 4);
    assert_false(ms_session_tls(fx->s));
    assert_int_equal(count_kind(fx, MS_FACT_TLS_BEGIN), 0);
    finish(fx);
}

static void test_overlong_line(void **state)
{
    (void)state;
    char line[512];
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 100);
    seg(fx, S2C, 1, "220 mail.example.com ESMTP Postfix\r\n");
    memcpy(line, "EHLO ", 5);
    memset(line + 5, 'a', 295);
    memcpy(line + 300, "\r\n", 3);
    seg(fx, C2S, 2, line);
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_LINE_TOO_LONG, MS_DIR_C2S, 2);
    assert_int_equal(fx->f[0].ival2, 300);

    /* the same line in three segments, the CR alone at the end of one */
    line[300] = '\0';
    char a[200];
    memcpy(a, line, 150);
    a[150] = '\0';
    seg(fx, C2S, 3, a);
    memcpy(a, line + 150, 150);
    a[150] = '\r';
    a[151] = '\0';
    seg(fx, C2S, 4, a);
    seg(fx, C2S, 5, "\n");
    assert_int_equal(fx->n, 2);
    fact_is(fx, 1, MS_FACT_LINE_TOO_LONG, MS_DIR_C2S, 5);
    assert_int_equal(fx->f[1].ival2, 300);

    /* exactly max_line is fine */
    memset(line, 'b', 100);
    memcpy(line, "250 ", 4);
    memcpy(line + 100, "\r\n", 3);
    seg(fx, S2C, 6, line);
    assert_int_equal(fx->n, 2);
    /* one more is not */
    memset(line, 'b', 101);
    memcpy(line, "250 ", 4);
    memcpy(line + 101, "\r\n", 3);
    seg(fx, S2C, 7, line);
    assert_int_equal(fx->n, 3);
    fact_is(fx, 2, MS_FACT_LINE_TOO_LONG, MS_DIR_S2C, 7);
    assert_int_equal(fx->f[2].ival2, 101);
    finish(fx);
}

static void test_gap_resets_partial_line(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, false);
    /* the head of a line, a hole, then the tail of another: no STARTTLS */
    seg(fx, C2S, 4, "STARTT");
    seg_gap(fx, C2S, 5, "LS\r\n");
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_STREAM_GAP, MS_DIR_C2S, 5);
    assert_int_equal(fx->f[0].count, 7);
    seg(fx, S2C, 6, "502 5.5.2 Error: command not recognized\r\n");
    /* the head of a line, a hole, then a whole line */
    seg(fx, C2S, 7, "MAIL FROM:<a@b>");
    seg_gap(fx, C2S, 8, "STARTTLS\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 1, MS_FACT_STREAM_GAP, MS_DIR_C2S, 8);
    fact_is(fx, 2, MS_FACT_STARTTLS_COMMAND, 0, 8);
    seg(fx, S2C, 9, "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(fx->n, 5);
    fact_is(fx, 3, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 9);
    fact_is(fx, 4, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 9);
    finish(fx);
}

static void test_starttls_inside_tls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_hello(fx, true);
    seg(fx, C2S, 4, "STARTTLS\r\n");
    seg(fx, S2C, 5, "220 go\r\n");
    assert_int_equal(fx->n, 4);
    ms_feed_ctx ctx = { 6, { 6, 0 }, sink, fx, body_sink, fx, content_sink, fx };
    fx->frame = 6;
    ms_session_decrypted(fx->s, C2S, (const uint8_t *)"EHLO x\r\nSTARTTLS\r\n", 18, &ctx);
    ctx.frame = fx->frame = 7;
    ms_session_decrypted(fx->s, S2C, (const uint8_t *)"250 ok\r\n503 already\r\n", 21, &ctx);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_COMMAND), 1);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_RESULT), 1);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_INJECTED), 0);
    assert_int_equal(ms_session_frame_transport(fx->s, 7), MS_TRANSPORT_STARTTLS);
    finish(fx);
}

/* ---- POP3 ------------------------------------------------------------------ */

static void test_pop3_stls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "+OK Dovecot (Debian) ready.\r\n");
    seg(fx, C2S, 2, "CAPA\r\n");
    seg(fx, S2C, 3, "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n");
    seg(fx, S2C, 4, "AUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n");
    seg(fx, C2S, 5, "STLS\r\n");
    seg(fx, S2C, 6, "+OK Begin TLS negotiation now.\r\n");
    tls(fx, C2S, 7);
    assert_int_equal(fx->n, 4);
    fact_is(fx, 0, MS_FACT_STARTTLS_OFFERED, 0, 4);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 5);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 6);
    fact_is(fx, 3, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 6);
    assert_int_equal(ms_session_proto(fx->s), MS_PROTO_POP3);
    assert_int_equal(ms_session_boundary(fx->s), 6);
    assert_int_equal(ms_session_frame_transport(fx->s, 6), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(ms_session_frame_transport(fx->s, 7), MS_TRANSPORT_STARTTLS);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), fx->cleartext);
    finish(fx);
}

static void test_pop3_stls_refused_and_retr_body(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "+OK ready\r\n");
    seg(fx, C2S, 2, "STLS\r\n");
    seg(fx, S2C, 3, "-ERR not now\r\n");
    assert_int_equal(fx->n, 2);
    fact_is(fx, 1, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_REFUSED, 3);
    /* a message body that contains "STLS" and "+OK" lines */
    seg(fx, C2S, 4, "USER bob\r\nPASS x\r\nRETR 1\r\n");
    seg(fx, S2C, 5, "+OK\r\n+OK\r\n+OK 40 octets\r\nSTLS\r\n+OK\r\nbody\r\n.\r\n");
    /* USER/PASS is a login attempt: it begins, completes and gets its verdict */
    fact_is(fx, 2, MS_FACT_AUTH_START, 1, 4);
    fact_is(fx, 3, MS_FACT_AUTH_REQUEST, 1, 4);
    fact_is(fx, 4, MS_FACT_AUTH_RESULT, 1, 5);
    seg(fx, C2S, 6, "STLS\r\n");
    seg(fx, S2C, 7, "+OK go\r\n");
    assert_int_equal(fx->n, 8);
    fact_is(fx, 5, MS_FACT_STARTTLS_COMMAND, 0, 6);
    fact_is(fx, 6, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 7);
    fact_is(fx, 7, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 7);
    finish(fx);
}

/* ---- IMAP ------------------------------------------------------------------ */

static void test_imap_starttls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.\r\n");
    seg(fx, C2S, 2, "a1 STARTTLS\r\n");
    seg(fx, S2C, 3, "a1 OK Begin TLS negotiation now.\r\n");
    tls(fx, C2S, 4);
    assert_int_equal(fx->n, 4);
    fact_is(fx, 0, MS_FACT_STARTTLS_OFFERED, 0, 1);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 2);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 3);
    fact_is(fx, 3, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 3);
    assert_int_equal(ms_session_boundary(fx->s), 3);
    assert_int_equal(ms_session_frame_transport(fx->s, 3), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(ms_session_frame_transport(fx->s, 4), MS_TRANSPORT_STARTTLS);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), fx->cleartext);
    finish(fx);
}

static void test_imap_starttls_refused_other_tag(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 ready\r\n");
    seg(fx, C2S, 2, "a0 NOOP\r\na1 STARTTLS\r\n");
    /* another tag's OK is not the answer to STARTTLS */
    seg(fx, S2C, 3, "a0 OK NOOP completed\r\n");
    assert_int_equal(fx->n, 1);
    seg(fx, S2C, 4, "a1 BAD not now\r\n");
    assert_int_equal(fx->n, 2);
    fact_is(fx, 0, MS_FACT_STARTTLS_COMMAND, 0, 2);
    fact_is(fx, 1, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_REFUSED, 4);
    assert_false(ms_session_tls(fx->s));
    finish(fx);
}

static void test_imap_long_tag_starttls(void **state)
{
    (void)state;
    /* tags longer than the stored 32 characters still find their reply */
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 ready\r\n");
    seg(fx, C2S, 2, "abcdefghijklmnopqrstuvwxyz0123456789ABCD STARTTLS\r\n");
    seg(fx, S2C, 3, "abcdefghijklmnopqrstuvwxyz0123456789ABCD OK go\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 1, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 3);
    fact_is(fx, 2, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 3);
    finish(fx);
}

static void test_smtp_capture_starts_at_starttls(void **state)
{
    (void)state;
    /* no greeting in the capture: the first 220 answers STARTTLS */
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, C2S, 1, "STARTTLS\r\n");
    seg(fx, S2C, 2, "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(fx->n, 3);
    fact_is(fx, 0, MS_FACT_STARTTLS_COMMAND, 0, 1);
    fact_is(fx, 1, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 2);
    fact_is(fx, 2, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 2);
    finish(fx);
}

static void test_imap_literal_not_command(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
    seg(fx, C2S, 2, "a2 APPEND INBOX {20}\r\n");
    seg(fx, S2C, 3, "+ Ready for literal data\r\n");
    /* 20 octets: "a3 STARTTLS\r\n" (13) + "Hello\r\n" (7), then the command's end */
    seg(fx, C2S, 4, "a3 STARTTLS\r\nHello\r\n\r\n");
    seg(fx, S2C, 5, "a2 OK APPEND completed\r\n");
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_STARTTLS_OFFERED, 0, 1);

    /* LITERAL+, the literal split over segments, a second literal on the same command */
    seg(fx, C2S, 6, "a4 APPEND INBOX {20+}\r\na3 STAR");
    seg(fx, C2S, 7, "TTLS\r\nHello\r\n {13+}\r\n");
    seg(fx, C2S, 8, "a5 STARTTLS\r\n\r\n");
    seg(fx, S2C, 9, "a4 OK APPEND completed\r\n");
    assert_int_equal(fx->n, 1);

    /* a server literal carrying a capability line (23 octets) */
    seg(fx, C2S, 10, "a6 FETCH 1 BODY[]\r\n");
    seg(fx, S2C, 11, "* 1 FETCH (BODY[] {23}\r\n* CAPABILITY STARTTLS\r\n)\r\na6 OK done\r\n");
    assert_int_equal(fx->n, 1);

    seg(fx, C2S, 12, "a8 STARTTLS\r\n");
    seg(fx, S2C, 13, "a8 OK Begin TLS negotiation now.\r\n");
    assert_int_equal(fx->n, 4);
    fact_is(fx, 1, MS_FACT_STARTTLS_COMMAND, 0, 12);
    fact_is(fx, 2, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 13);
    fact_is(fx, 3, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 13);
    finish(fx);
}

static void test_imap_command_injection(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 ready\r\n");
    seg(fx, C2S, 2, "a1 STARTTLS\r\na2 LOGIN bob secret\r\n");
    assert_int_equal(fx->n, 2);
    fact_is(fx, 0, MS_FACT_STARTTLS_COMMAND, 0, 2);
    fact_is(fx, 1, MS_FACT_STARTTLS_INJECTED, MS_DIR_C2S, 2);
    fact_data_is(fx, 1, "a2 LOGIN bob secret\r\n");
    finish(fx);
}

/* ---- transports and recognition ---------------------------------------------- */

static void test_implicit_tls_record_first(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, true, MS_DETECT_PORT, 0);
    assert_true(ms_session_tls(fx->s));
    tls(fx, C2S, 1);
    tls(fx, S2C, 2);
    seg_bytes(fx, S2C, 3, (const uint8_t *)"* OK [CAPABILITY STARTTLS]\r\n", 28, false);
    assert_int_equal(fx->n, 0);
    assert_true(ms_session_tls(fx->s));
    assert_int_equal(ms_session_frame_transport(fx->s, 1), MS_TRANSPORT_IMPLICIT_TLS);
    assert_int_equal(ms_session_frame_transport(fx->s, 3), MS_TRANSPORT_IMPLICIT_TLS);
    assert_int_equal(ms_session_boundary(fx->s), 0);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), 0);
    finish(fx);
}

static void test_implicit_tls_cleartext_first(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, true, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
    assert_false(ms_session_tls(fx->s));
    assert_int_equal(ms_session_frame_transport(fx->s, 1), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_STARTTLS_OFFERED, 0, 1);
    seg(fx, C2S, 2, "a1 CAPABILITY\r\n");
    assert_int_equal(ms_session_frame_transport(fx->s, 2), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), fx->cleartext);
    finish(fx);
}

static void test_implicit_tls_on_cleartext_port(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    tls(fx, C2S, 1);
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_TLS_BEGIN, MS_TRANSPORT_IMPLICIT_TLS, 1);
    assert_int_equal(ms_session_frame_transport(fx->s, 1), MS_TRANSPORT_IMPLICIT_TLS);
    assert_int_equal(ms_session_boundary(fx->s), 0);
    assert_int_equal(ms_session_cleartext_bytes(fx->s), 0);
    finish(fx);
}

static void test_proto_from_content(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK IMAP4rev1 Service Ready\r\n");
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_PROTO, MS_PROTO_IMAP, 1);
    assert_int_equal(fx->f[0].ival2, MS_DETECT_HEURISTIC);
    assert_int_equal(ms_session_proto(fx->s), MS_PROTO_IMAP);
    assert_int_equal(ms_session_detect(fx->s), MS_DETECT_HEURISTIC);
    /* the IMAP adapter now runs */
    seg(fx, C2S, 2, "a1 CAPABILITY\r\n");
    seg(fx, S2C, 3, "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n");
    seg(fx, C2S, 4, "a2 STARTTLS\r\n");
    seg(fx, S2C, 5, "a2 OK go\r\n");
    assert_int_equal(fx->n, 5);
    fact_is(fx, 1, MS_FACT_STARTTLS_OFFERED, 0, 3);
    fact_is(fx, 2, MS_FACT_STARTTLS_COMMAND, 0, 4);
    fact_is(fx, 3, MS_FACT_STARTTLS_RESULT, MS_STARTTLS_ACCEPTED, 5);
    fact_is(fx, 4, MS_FACT_TLS_BEGIN, MS_TRANSPORT_STARTTLS, 5);
    finish(fx);
}

static void test_proto_heuristic_unknown_port(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_UNKNOWN, false, MS_DETECT_HEURISTIC, 0);
    seg(fx, S2C, 1, "220 mail.example.com ESMTP Postfix\r\n");
    assert_int_equal(fx->n, 1);
    fact_is(fx, 0, MS_FACT_PROTO, MS_PROTO_SMTP, 1);
    assert_int_equal(fx->f[0].ival2, MS_DETECT_HEURISTIC);
    assert_int_equal(ms_session_proto(fx->s), MS_PROTO_SMTP);
    /* the client's weaker word does not override the server's */
    seg(fx, C2S, 2, "USER bob\r\n");
    assert_int_equal(fx->n, 1);
    assert_int_equal(ms_session_proto(fx->s), MS_PROTO_SMTP);
    finish(fx);
}

static void test_port_proto_confirmed_no_fact(void **state)
{
    (void)state;
    /* an FTP banner on port 25 is not proof of anything: no change */
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "220 ProFTPD Server\r\n");
    seg(fx, C2S, 2, "USER bob\r\n");
    assert_int_equal(fx->n, 0);
    assert_int_equal(ms_session_proto(fx->s), MS_PROTO_SMTP);
    assert_int_equal(ms_session_detect(fx->s), MS_DETECT_PORT);
    finish(fx);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ms_proto_name(MS_PROTO_IMAP), "imap");
    assert_string_equal(ms_proto_name(MS_PROTO_UNKNOWN), "unknown");
    assert_string_equal(ms_detect_name(MS_DETECT_HEURISTIC), "heuristic");
    assert_string_equal(ms_transport_name(MS_TRANSPORT_IMPLICIT_TLS), "implicit-tls");
    assert_string_equal(ms_starttls_result_name(MS_STARTTLS_NO_REPLY), "no-reply");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_starttls),
        cmocka_unit_test(test_smtp_starttls_refused),
        cmocka_unit_test(test_smtp_command_injection),
        cmocka_unit_test(test_smtp_command_injection_split_line),
        cmocka_unit_test(test_smtp_response_injection),
        cmocka_unit_test(test_smtp_pipelined_reply_split),
        cmocka_unit_test(test_smtp_data_body_not_command),
        cmocka_unit_test(test_smtp_data_refused),
        cmocka_unit_test(test_smtp_bdat_not_command),
        cmocka_unit_test(test_smtp_no_reply_then_tls),
        cmocka_unit_test(test_tls_record_without_starttls_is_text),
        cmocka_unit_test(test_overlong_line),
        cmocka_unit_test(test_gap_resets_partial_line),
        cmocka_unit_test(test_starttls_inside_tls),
        cmocka_unit_test(test_pop3_stls),
        cmocka_unit_test(test_pop3_stls_refused_and_retr_body),
        cmocka_unit_test(test_imap_starttls),
        cmocka_unit_test(test_imap_starttls_refused_other_tag),
        cmocka_unit_test(test_imap_long_tag_starttls),
        cmocka_unit_test(test_smtp_capture_starts_at_starttls),
        cmocka_unit_test(test_imap_literal_not_command),
        cmocka_unit_test(test_imap_command_injection),
        cmocka_unit_test(test_implicit_tls_record_first),
        cmocka_unit_test(test_implicit_tls_cleartext_first),
        cmocka_unit_test(test_implicit_tls_on_cleartext_port),
        cmocka_unit_test(test_proto_from_content),
        cmocka_unit_test(test_proto_heuristic_unknown_port),
        cmocka_unit_test(test_port_proto_confirmed_no_fact),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

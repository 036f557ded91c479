/* test_mail.c — replies and what they answer, probes, the envelope, message
 * deletions, BDAT sizes and SMTP smuggling, from the core's facts. The
 * expected values are what the bytes fed say (the RFCs' meaning of them),
 * written out by hand. */
#include "session_fixture.h"

static fixture *mail_start(ms_proto p)
{
    fixture *fx = start(p, false, MS_DETECT_PORT, 0);
    fx->all = true;
    return fx;
}

/* The i-th fact of a kind, or fail. */
static const rec_fact *nth(const fixture *fx, ms_fact_kind kind, size_t i)
{
    for (size_t k = 0; k < fx->n; k++)
        if (fx->f[k].kind == kind && i-- == 0)
            return &fx->f[k];
    fail_msg("fact %d number %zu missing", (int)kind, i);
    return NULL;
}

static void data_is(const uint8_t *data, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
}

/* reply: status, code, the command it answers and its frame, the delay (the
 * fixture's clock: frame N is N seconds) */
static void reply_is(const fixture *fx, size_t i, int code, const char *command, uint32_t req_frame,
                     uint32_t frame)
{
    const rec_fact *r = nth(fx, MS_FACT_REPLY, i);
    assert_int_equal(r->ival2, code);
    data_is(r->data, r->len, command);
    assert_int_equal(r->ref_frame, req_frame);
    assert_int_equal(r->frame, frame);
    if (req_frame)
        assert_int_equal(r->size, (uint64_t)(frame - req_frame) * 1000000000u);
}

static void test_smtp_replies_answer_their_commands(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx.example.org ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO client.example\r\n");
    seg(fx, S2C, 4, "250-mx.example.org\r\n250 PIPELINING\r\n");
    /* pipelined: four commands, four replies in order */
    seg(fx, C2S, 5, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n");
    seg(fx, S2C, 6, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n"
                    "354 End data with <CR><LF>.<CR><LF>\r\n");
    seg(fx, C2S, 7, "Subject: x\r\n\r\nhi\r\n.\r\n");
    seg(fx, S2C, 9, "250 2.0.0 Ok: queued as 1234\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 7);
    const rec_fact *g = nth(fx, MS_FACT_REPLY, 0);
    assert_int_equal(g->ival, MS_REPLY_SMTP);
    assert_int_equal(g->ival2, 220);
    assert_int_equal(g->count, 0); /* a greeting answers nothing */
    reply_is(fx, 1, 250, "EHLO", 2, 4);
    reply_is(fx, 2, 250, "MAIL", 5, 6);
    reply_is(fx, 3, 250, "RCPT", 5, 6);
    reply_is(fx, 4, 550, "RCPT", 5, 6);
    reply_is(fx, 5, 354, "DATA", 5, 6);
    reply_is(fx, 6, 250, "<CRLF>.<CRLF>", 7, 9);
    const rec_fact *r = nth(fx, MS_FACT_REPLY, 4);
    data_is(r->data2, r->len2, "5.1.1");
    r = nth(fx, MS_FACT_REPLY, 2);
    data_is(r->data2, r->len2, "2.1.0");
    finish(fx);
}

/* EHLO sent before the greeting's last line: the greeting still answers
 * nothing and the 250 answers EHLO. */
static void test_smtp_early_command_keeps_pairing(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220-mx.example.org ESMTP\r\n220-a long\r\n");
    seg(fx, C2S, 2, "EHLO early\r\n");
    seg(fx, S2C, 3, "220-banner\r\n220 ready\r\n");
    seg(fx, S2C, 4, "250 mx\r\n");
    seg(fx, C2S, 5, "QUIT\r\n");
    seg(fx, S2C, 6, "221 bye\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 3);
    assert_int_equal(nth(fx, MS_FACT_REPLY, 0)->count, 0);
    assert_int_equal(nth(fx, MS_FACT_REPLY, 0)->frame, 3);
    reply_is(fx, 1, 250, "EHLO", 2, 4);
    reply_is(fx, 2, 221, "QUIT", 5, 6);
    finish(fx);
}

static void test_smtp_vrfy_expn_probes(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "HELO scanner\r\n");
    seg(fx, S2C, 3, "250 mx\r\n");
    seg(fx, C2S, 4, "VRFY alice\r\n");
    seg(fx, S2C, 5, "252 2.0.0 alice\r\n");
    seg(fx, C2S, 6, "vrfy nobody\r\n");
    seg(fx, S2C, 7, "550 5.1.1 <nobody>: Recipient address rejected\r\n");
    seg(fx, C2S, 8, "EXPN staff\r\n");
    seg(fx, S2C, 9, "502 5.5.1 EXPN command not implemented\r\n");
    seg(fx, C2S, 10, "EXPN all\r\n");
    seg(fx, S2C, 11, "250 <alice@example.org>\r\n");
    seg(fx, C2S, 12, "VRFY carol\r\n");
    end_at(fx, 13);
    /* requests (verdict pending) and verdicts */
    const int want[][3] = { /* command, verdict, frame */
        { MS_PROBE_VRFY, MS_PROBE_PENDING, 4 }, { MS_PROBE_VRFY, MS_PROBE_CANNOT_VERIFY, 5 },
        { MS_PROBE_VRFY, MS_PROBE_PENDING, 6 }, { MS_PROBE_VRFY, MS_PROBE_UNKNOWN, 7 },
        { MS_PROBE_EXPN, MS_PROBE_PENDING, 8 }, { MS_PROBE_EXPN, MS_PROBE_DISABLED, 9 },
        { MS_PROBE_EXPN, MS_PROBE_PENDING, 10 }, { MS_PROBE_EXPN, MS_PROBE_EXISTS, 11 },
        { MS_PROBE_VRFY, MS_PROBE_PENDING, 12 }, { MS_PROBE_VRFY, MS_PROBE_NO_REPLY, 13 },
    };
    const char *targets[] = { "alice", "alice", "nobody", "nobody", "staff", "staff", "all", "all", "carol", "carol" };
    assert_int_equal(count_kind(fx, MS_FACT_PROBE), 10);
    unsigned answered = 0;
    for (size_t i = 0; i < 10; i++) {
        const rec_fact *p = nth(fx, MS_FACT_PROBE, i);
        assert_int_equal(p->ival, want[i][0]);
        assert_int_equal(p->ival2, want[i][1]);
        assert_int_equal(p->frame, (uint32_t)want[i][2]);
        data_is(p->data, p->len, targets[i]);
        if (want[i][1] != MS_PROBE_PENDING) {
            assert_int_equal(p->count, ++answered);
            assert_int_equal(p->ref_frame, (uint32_t)want[i - 1][2]);
        }
    }
    data_is(nth(fx, MS_FACT_HELO, 0)->data, nth(fx, MS_FACT_HELO, 0)->len, "scanner");
    finish(fx);
}

/* A RCPT refused because the user does not exist is a probe; one refused
 * for policy (relaying denied) is not. */
static void test_smtp_rcpt_probe_only_for_unknown_users(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250 mx\r\n");
    seg(fx, C2S, 4, "MAIL FROM:<>\r\n");
    seg(fx, S2C, 5, "250 2.1.0 Ok\r\n");
    seg(fx, C2S, 6, "RCPT TO:<ghost@example.org>\r\n");
    seg(fx, S2C, 7, "550 5.1.1 <ghost@example.org>: User unknown\r\n");
    seg(fx, C2S, 8, "RCPT TO:<victim@elsewhere.example>\r\n");
    seg(fx, S2C, 9, "554 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
    seg(fx, C2S, 10, "RCPT TO:<old@example.org>\r\n");
    seg(fx, S2C, 11, "550 5.7.1 policy\r\n");
    seg(fx, C2S, 12, "RCPT TO:<plain@example.org>\r\n");
    seg(fx, S2C, 13, "553 no such user\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_PROBE), 2);
    const rec_fact *p = nth(fx, MS_FACT_PROBE, 0);
    assert_int_equal(p->ival, MS_PROBE_RCPT);
    assert_int_equal(p->ival2, MS_PROBE_UNKNOWN);
    data_is(p->data, p->len, "ghost@example.org");
    assert_int_equal(p->ref_frame, 6);
    p = nth(fx, MS_FACT_PROBE, 1);
    data_is(p->data, p->len, "plain@example.org");
    assert_int_equal(p->count, 2);
    finish(fx);
}

static void test_smtp_envelope_and_repeats(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250 mx\r\n");
    seg(fx, C2S, 4, "MAIL FROM:<Bob@Example.org> SIZE=100\r\n");
    seg(fx, S2C, 5, "250 Ok\r\n");
    seg(fx, C2S, 6, "MAIL FROM:<bob@example.org>\r\n");
    seg(fx, S2C, 7, "503 5.5.1 Error: nested MAIL command\r\n");
    seg(fx, C2S, 8, "RCPT TO:<alice@example.org>\r\nRCPT TO:<ALICE@example.org>\r\nRCPT TO:<carol@example.org>\r\n");
    seg(fx, S2C, 9, "250 Ok\r\n250 Ok\r\n250 Ok\r\n");
    seg(fx, C2S, 10, "RSET\r\n");
    seg(fx, S2C, 11, "250 Ok\r\n");
    seg(fx, C2S, 12, "MAIL FROM:<bob@example.org>\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_ENVELOPE), 6);
    const int want[][4] = { /* kind, repeated, rcpt_count, transaction */
        { MS_ENVELOPE_MAIL, 0, 0, 1 }, { MS_ENVELOPE_MAIL, 1, 0, 1 }, { MS_ENVELOPE_RCPT, 0, 1, 1 },
        { MS_ENVELOPE_RCPT, 1, 2, 1 }, { MS_ENVELOPE_RCPT, 0, 3, 1 }, { MS_ENVELOPE_MAIL, 0, 3, 2 },
    };
    const char *addrs[] = { "Bob@Example.org", "bob@example.org", "alice@example.org", "ALICE@example.org",
                            "carol@example.org", "bob@example.org" };
    for (size_t i = 0; i < 6; i++) {
        const rec_fact *e = nth(fx, MS_FACT_ENVELOPE, i);
        assert_int_equal(e->ival, want[i][0]);
        assert_int_equal(e->ival2, want[i][1]);
        assert_int_equal(e->count, (uint32_t)want[i][2]);
        assert_int_equal(e->size, (uint64_t)want[i][3]);
        data_is(e->data, e->len, addrs[i]);
    }
    finish(fx);
}

static void test_smtp_data_without_envelope(void **state)
{
    (void)state;
    /* the sender refused, then DATA anyway */
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "HELO c\r\n");
    seg(fx, S2C, 3, "250 mx\r\n");
    seg(fx, C2S, 4, "MAIL FROM:<spam@example.net>\r\n");
    seg(fx, S2C, 5, "554 5.7.1 rejected\r\n");
    seg(fx, C2S, 6, "DATA\r\n");
    seg(fx, S2C, 7, "503 5.5.1 Error: need RCPT command\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_NO_ENVELOPE), 1);
    finish(fx);

    /* a normal pipelined transaction: nothing */
    fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250 mx\r\n");
    seg(fx, C2S, 4, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    seg(fx, S2C, 5, "250 Ok\r\n250 Ok\r\n354 go\r\n");
    seg(fx, C2S, 6, "x\r\n.\r\n");
    seg(fx, S2C, 7, "250 Ok\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_NO_ENVELOPE), 0);
    finish(fx);

    /* a capture that begins after the envelope: nothing to judge */
    fx = mail_start(MS_PROTO_SMTP);
    seg(fx, C2S, 1, "DATA\r\n");
    seg(fx, S2C, 2, "354 go\r\n");
    seg(fx, C2S, 3, "x\r\n.\r\n");
    seg(fx, S2C, 4, "250 Ok\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_NO_ENVELOPE), 0);
    finish(fx);

    /* ... whose first server line answers a command from before it (the
     * MAIL FROM): no greeting, so still nothing to judge */
    fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "250 2.1.0 Ok\r\n");
    seg(fx, C2S, 2, "RCPT TO:<b@example.org>\r\n");
    seg(fx, S2C, 3, "250 2.1.5 Ok\r\n");
    seg(fx, C2S, 4, "DATA\r\n");
    seg(fx, S2C, 5, "354 go\r\n");
    seg(fx, C2S, 6, "x\r\n.\r\n");
    seg(fx, S2C, 7, "250 Ok\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_NO_ENVELOPE), 0);
    finish(fx);
}

static void bdat_session(fixture *fx)
{
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250-mx\r\n250 CHUNKING\r\n");
    seg(fx, C2S, 4, "MAIL FROM:<a@example.org>\r\n");
    seg(fx, S2C, 5, "250 Ok\r\n");
    seg(fx, C2S, 6, "RCPT TO:<b@example.org>\r\n");
    seg(fx, S2C, 7, "250 Ok\r\n");
}

static void test_smtp_bdat_size(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    bdat_session(fx);
    seg(fx, C2S, 8, "BDAT 5 LAST\r\nHello");
    seg(fx, S2C, 9, "250 Ok\r\n");
    seg(fx, C2S, 10, "QUIT\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_BDAT_MISMATCH), 0);
    finish(fx);

    /* more data than announced: what follows the 5 bytes is no command */
    fx = mail_start(MS_PROTO_SMTP);
    bdat_session(fx);
    seg(fx, C2S, 8, "BDAT 5\r\nHello, world\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_BDAT_MISMATCH), 1);
    assert_int_equal(nth(fx, MS_FACT_BDAT_MISMATCH, 0)->ival, MS_BDAT_NO_COMMAND_AFTER);
    assert_int_equal(nth(fx, MS_FACT_BDAT_MISMATCH, 0)->size, 5);
    finish(fx);

    /* fewer: the server answers before the announced bytes came */
    fx = mail_start(MS_PROTO_SMTP);
    bdat_session(fx);
    seg(fx, C2S, 8, "BDAT 100 LAST\r\nshort");
    seg(fx, S2C, 9, "250 2.0.0 Ok\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_BDAT_MISMATCH), 1);
    assert_int_equal(nth(fx, MS_FACT_BDAT_MISMATCH, 0)->ival, MS_BDAT_ANSWERED_EARLY);
    finish(fx);
}

static void to_data(fixture *fx)
{
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250 mx\r\n");
    seg(fx, C2S, 4, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    seg(fx, S2C, 5, "250 Ok\r\n250 Ok\r\n354 go\r\n");
}

/* Each look-alike of the published lists, followed by a smuggled MAIL FROM. */
static void test_smtp_smuggling_sequences(void **state)
{
    (void)state;
    static const struct {
        const char *seq;  /* what the client sends between "text" and the smuggled command */
        size_t len;
        const char *want; /* the sequence reported */
        size_t want_len;
    } cases[] = {
#define C(s, w) { s, sizeof s - 1, w, sizeof w - 1 }
        C("\n.\n", "\n.\n"),
        C("\n.\r\n", "\n.\r\n"),
        C("\r.\r", "\r.\r"),
        C("\r.\n", "\r.\n"),
        C("\r.\r\n", "\r.\r\n"),
        C("\r\n.\r", "\r\n.\r"),
        C("\r\n.\n", "\r\n.\n"),
        C("\r\n\x00.\r\n", "\r\n\x00.\r\n"),
        C("\r\n.\x00\r\n", "\r\n.\x00\r\n"),
        C("\n.\r", "\n.\r"),
        C("\r\n.\r\r\n", "\r\n.\r\r\n"),
        C("\n\x00.\n", "\n\x00.\n"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture *fx = mail_start(MS_PROTO_SMTP);
        to_data(fx);
        uint8_t body[256];
        size_t n = 0;
        memcpy(body + n, "Subject: t\r\n\r\ntext", 18);
        n += 18;
        memcpy(body + n, cases[i].seq, cases[i].len);
        n += cases[i].len;
        const char *after = "MAIL FROM:<evil@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
                            "From: ceo@example.org\r\n\r\nsmuggled\r\n.\r\n";
        memcpy(body + n, after, strlen(after));
        n += strlen(after);
        seg_bytes(fx, C2S, 6, body, n, 0);
        seg(fx, S2C, 7, "250 Ok\r\n");
        assert_int_equal(count_kind(fx, MS_FACT_SMUGGLING), 1);
        const rec_fact *z = nth(fx, MS_FACT_SMUGGLING, 0);
        assert_int_equal(z->len, cases[i].want_len);
        assert_memory_equal(z->data, cases[i].want, cases[i].want_len);
        data_is(z->data2, z->len2, "MAIL FROM:<evil@example.org>");
        assert_int_equal(z->ival, 1);
        assert_int_equal(z->size, 18); /* right after "Subject: t\r\n\r\ntext" */
        /* the body is one message, never commands */
        assert_int_equal(count_kind(fx, MS_FACT_ENVELOPE), 2);
        finish(fx);
    }
}

/* Nothing to report in ordinary messages: dot-stuffed lines, dots inside
 * lines, CR LF line ends, a lone dot that was stuffed. */
static void test_smtp_smuggling_quiet_on_normal_mail(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    to_data(fx);
    seg(fx, C2S, 6, "Subject: dots\r\n\r\n..\r\n...and more\r\n. \r\nend.\r\n.\tx\r\n");
    seg(fx, C2S, 7, ".\r\n");
    seg(fx, S2C, 8, "250 Ok\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_SMUGGLING), 0);
    assert_int_equal(count_kind(fx, MS_FACT_MSG_END), 1);
    finish(fx);
}

/* A smuggled STARTTLS is message text: no STARTTLS fact, and the reply to
 * the real end of data still answers the end of data. */
static void test_smtp_smuggled_starttls_is_text(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    to_data(fx);
    seg(fx, C2S, 6, "x\n.\nSTARTTLS\r\nRSET\r\n.\r\n");
    seg(fx, S2C, 7, "250 Ok\r\n");
    seg(fx, C2S, 8, "QUIT\r\n");
    seg(fx, S2C, 9, "221 Bye\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_COMMAND), 0);
    assert_int_equal(count_kind(fx, MS_FACT_SMUGGLING), 1);
    data_is(nth(fx, MS_FACT_SMUGGLING, 0)->data2, nth(fx, MS_FACT_SMUGGLING, 0)->len2, "STARTTLS");
    reply_is(fx, 5, 250, "<CRLF>.<CRLF>", 6, 7);
    reply_is(fx, 6, 221, "QUIT", 8, 9);
    finish(fx);
}

static void test_pop3_err_and_dele(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_POP3);
    seg(fx, S2C, 1, "+OK Dovecot ready.\r\n");
    seg(fx, C2S, 2, "USER alice\r\n");
    seg(fx, S2C, 3, "+OK\r\n");
    seg(fx, C2S, 4, "PASS wrong\r\n");
    seg(fx, S2C, 6, "-ERR [AUTH] Authentication failed.\r\n");
    seg(fx, C2S, 7, "USER alice\r\nPASS right\r\n");
    seg(fx, S2C, 8, "+OK\r\n+OK Logged in.\r\n");
    seg(fx, C2S, 9, "DELE 1\r\n");
    seg(fx, S2C, 10, "+OK Marked to be deleted.\r\n");
    seg(fx, C2S, 11, "DELE 9\r\n");
    seg(fx, S2C, 12, "-ERR There's no message 9.\r\n");
    seg(fx, C2S, 13, "DELE 2\r\n");
    seg(fx, S2C, 14, "+OK Marked to be deleted.\r\n");
    const rec_fact *r = nth(fx, MS_FACT_REPLY, 2);
    assert_int_equal(r->ival, MS_REPLY_ERR);
    data_is(r->data, r->len, "PASS");
    assert_int_equal(r->ref_frame, 4);
    assert_int_equal(r->size, 2000000000u);
    r = nth(fx, MS_FACT_REPLY, 6);
    assert_int_equal(r->ival, MS_REPLY_ERR);
    data_is(r->data, r->len, "DELE");
    assert_int_equal(r->ref_frame, 11);
    assert_int_equal(count_kind(fx, MS_FACT_DELETED), 2);
    assert_int_equal(nth(fx, MS_FACT_DELETED, 0)->count, 1);
    assert_int_equal(nth(fx, MS_FACT_DELETED, 1)->count, 2);
    assert_int_equal(nth(fx, MS_FACT_DELETED, 1)->frame, 14);
    finish(fx);
}

static void test_imap_tagged_replies_and_deletion(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_IMAP);
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1] ready\r\n");
    seg(fx, C2S, 2, "a1 LOGIN alice wrong\r\n");
    seg(fx, S2C, 3, "a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    seg(fx, C2S, 4, "a2 SELECT INBOX\r\na3 UID STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\n");
    /* answered out of order */
    seg(fx, S2C, 5, "a3 OK Store completed.\r\na2 OK [READ-WRITE] Select completed.\r\n");
    seg(fx, C2S, 6, "a4 EXPUNGE\r\n");
    seg(fx, S2C, 7, "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\na4 OK Expunge completed.\r\n");
    seg(fx, C2S, 8, "a5 MOVE 4,6 \"Trash\"\r\n");
    seg(fx, S2C, 9, "a5 OK Move completed.\r\n");
    seg(fx, C2S, 10, "a6 STORE 2 +FLAGS (\\Seen)\r\n");
    seg(fx, S2C, 11, "a6 BAD Error in IMAP command\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 6);
    const rec_fact *r = nth(fx, MS_FACT_REPLY, 0);
    assert_int_equal(r->ival, MS_REPLY_NO);
    data_is(r->data, r->len, "LOGIN");
    assert_int_equal(r->ref_frame, 2);
    r = nth(fx, MS_FACT_REPLY, 1);
    data_is(r->data, r->len, "UID STORE");
    r = nth(fx, MS_FACT_REPLY, 2);
    data_is(r->data, r->len, "SELECT");
    r = nth(fx, MS_FACT_REPLY, 5);
    assert_int_equal(r->ival, MS_REPLY_BAD);
    data_is(r->data, r->len, "STORE");
    assert_int_equal(count_kind(fx, MS_FACT_DELETED), 3);
    const rec_fact *d = nth(fx, MS_FACT_DELETED, 0);
    assert_int_equal(d->ival, 3);
    assert_int_equal(d->count, 3);
    d = nth(fx, MS_FACT_DELETED, 1);
    assert_int_equal(d->ival, 0);
    assert_int_equal(d->ival2, 3);
    d = nth(fx, MS_FACT_DELETED, 2);
    assert_int_equal(d->ival, 2);
    assert_int_equal(d->count, 5);
    finish(fx);
}

/* A command where a SASL message was due ends the exchange: no malformed
 * login, and the command counts as one. */
static void test_sasl_left_for_a_command(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250 AUTH PLAIN LOGIN\r\n");
    seg(fx, C2S, 4, "AUTH LOGIN\r\n");
    seg(fx, S2C, 5, "334 VXNlcm5hbWU6\r\n");
    /* the client's answer and the server's next challenge are not in the capture */
    seg(fx, C2S, 6, "MAIL FROM:<a@example.org>\r\n");
    seg(fx, S2C, 7, "250 2.1.0 Ok\r\n");
    seg(fx, C2S, 8, "QUIT\r\n");
    seg(fx, S2C, 9, "221 Bye\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_MALFORMED), 0);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 1);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_RESULT), 0);
    assert_int_equal(count_kind(fx, MS_FACT_ENVELOPE), 1);
    reply_is(fx, 3, 250, "MAIL", 6, 7);
    reply_is(fx, 4, 221, "QUIT", 8, 9);
    finish(fx);

    /* the same over POP3 and IMAP */
    fx = mail_start(MS_PROTO_POP3);
    seg(fx, S2C, 1, "+OK ready\r\n");
    seg(fx, C2S, 2, "AUTH PLAIN\r\n");
    seg(fx, S2C, 3, "+ \r\n");
    seg(fx, C2S, 4, "STAT\r\n");
    seg(fx, S2C, 5, "+OK 2 320\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_MALFORMED), 0);
    reply_is(fx, 1, 0, "STAT", 4, 5);
    finish(fx);

    fx = mail_start(MS_PROTO_IMAP);
    seg(fx, S2C, 1, "* OK ready\r\n");
    seg(fx, C2S, 2, "a1 AUTHENTICATE PLAIN\r\n");
    seg(fx, S2C, 3, "+ \r\n");
    seg(fx, C2S, 4, "a2 SELECT INBOX\r\n");
    seg(fx, S2C, 5, "a2 OK done\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_MALFORMED), 0);
    reply_is(fx, 0, 0, "SELECT", 4, 5);
    finish(fx);
}

static void test_plain_user_in_authzid_and_vendor_mechanism(void **state)
{
    (void)state;
    fixture *fx = mail_start(MS_PROTO_SMTP);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250 AUTH PLAIN X-VENDOR\r\n");
    /* "alice NUL NUL secret" */
    seg(fx, C2S, 4, "AUTH PLAIN YWxpY2UAAHNlY3JldA==\r\n");
    seg(fx, S2C, 5, "535 5.7.8 Error\r\n");
    const rec_fact *r = nth(fx, MS_FACT_AUTH_REQUEST, 0);
    assert_true(r->has_creds);
    data_is((const uint8_t *)r->creds.username.s, r->creds.username.len, "alice");
    data_is((const uint8_t *)r->creds.password.s, r->creds.password.len, "secret");
    assert_true(r->creds.user_from_authzid);
    /* a mechanism mailsec does not know: its messages kept as sent */
    seg(fx, C2S, 6, "AUTH X-VENDOR dXNlcj1ib2I=\r\n");   /* "user=bob" */
    seg(fx, S2C, 7, "334 \r\n");
    seg(fx, C2S, 8, "cGFzcz1odW50ZXIy\r\n");              /* "pass=hunter2" */
    seg(fx, S2C, 9, "235 ok\r\n");
    r = nth(fx, MS_FACT_AUTH_RESULT, 1);
    assert_true(r->has_creds);
    data_is((const uint8_t *)r->creds.material.s, r->creds.material.len, "user=bob pass=hunter2");
    r = nth(fx, MS_FACT_AUTH_REQUEST, 1);
    assert_int_equal(r->ival2, 1); /* in clear */
    finish(fx);
}

/* A session's records of one kind past cfg.max_records are counted, not
 * emitted; RECORD_LIMIT says so once per kind, on the first one dropped. A
 * login's facts and a probe's request and verdict go together. */
static void smtp_capped_session(fixture *fx)
{
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO scanner\r\n");
    seg(fx, S2C, 3, "250-mx\r\n250 AUTH PLAIN\r\n");
    seg(fx, C2S, 4, "VRFY alice\r\n");
    seg(fx, S2C, 5, "252 2.0.0 alice\r\n");
    seg(fx, C2S, 6, "VRFY bob\r\n");
    seg(fx, S2C, 7, "252 2.0.0 bob\r\n");
    seg(fx, C2S, 8, "VRFY carol\r\n");
    seg(fx, S2C, 9, "252 2.0.0 carol\r\n");
    uint32_t frame = 10;
    for (int i = 0; i < 4; i++) {
        seg(fx, C2S, frame++, "AUTH PLAIN AGFsaWNlAFdvbmRlcmxhbmQtNDI=\r\n"); /* \0alice\0Wonderland-42 */
        seg(fx, S2C, frame++, "535 5.7.8 Authentication failed\r\n");
    }
    end_at(fx, frame);
}

static void test_record_cap(void **state)
{
    (void)state;
    ms_session_config cfg = port_cfg(MS_PROTO_SMTP);
    cfg.max_records = 2;
    fixture *fx = start_cfg(&cfg);
    fx->all = true;
    smtp_capped_session(fx);
    /* replies: the greeting and the EHLO reply; the third (frame 5) is capped */
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 2);
    assert_int_equal(nth(fx, MS_FACT_REPLY, 1)->frame, 3u);
    /* probes: alice and bob, request and verdict each; carol's request is capped */
    assert_int_equal(count_kind(fx, MS_FACT_PROBE), 4);
    data_is(nth(fx, MS_FACT_PROBE, 3)->data, nth(fx, MS_FACT_PROBE, 3)->len, "bob");
    /* logins: the first two, each whole; the third (frame 14) and fourth are capped */
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_START), 2);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 2);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_RESULT), 2);
    assert_int_equal(nth(fx, MS_FACT_AUTH_RESULT, 1)->ival, 2);
    /* said once per kind, where the first record was dropped */
    assert_int_equal(count_kind(fx, MS_FACT_RECORD_LIMIT), 3);
    const int want[][2] = { { MS_FACT_REPLY, 5 }, { MS_FACT_PROBE, 8 }, { MS_FACT_AUTH_START, 14 } };
    for (size_t i = 0; i < 3; i++) {
        const rec_fact *r = nth(fx, MS_FACT_RECORD_LIMIT, i);
        assert_int_equal(r->ival, want[i][0]);
        assert_int_equal(r->frame, (uint32_t)want[i][1]);
        assert_int_equal(r->count, 2);
    }
    finish(fx);

    /* 0: no cap, everything comes out */
    cfg.max_records = 0;
    fx = start_cfg(&cfg);
    fx->all = true;
    smtp_capped_session(fx);
    assert_int_equal(count_kind(fx, MS_FACT_RECORD_LIMIT), 0);
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 2 + 3 + 4);
    assert_int_equal(count_kind(fx, MS_FACT_PROBE), 6);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_RESULT), 4);
    assert_int_equal(nth(fx, MS_FACT_AUTH_RESULT, 3)->count, 4u); /* the session's failures */
    finish(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_replies_answer_their_commands),
        cmocka_unit_test(test_record_cap),
        cmocka_unit_test(test_smtp_early_command_keeps_pairing),
        cmocka_unit_test(test_smtp_vrfy_expn_probes),
        cmocka_unit_test(test_smtp_rcpt_probe_only_for_unknown_users),
        cmocka_unit_test(test_smtp_envelope_and_repeats),
        cmocka_unit_test(test_smtp_data_without_envelope),
        cmocka_unit_test(test_smtp_bdat_size),
        cmocka_unit_test(test_smtp_smuggling_sequences),
        cmocka_unit_test(test_smtp_smuggling_quiet_on_normal_mail),
        cmocka_unit_test(test_smtp_smuggled_starttls_is_text),
        cmocka_unit_test(test_pop3_err_and_dele),
        cmocka_unit_test(test_imap_tagged_replies_and_deletion),
        cmocka_unit_test(test_sasl_left_for_a_command),
        cmocka_unit_test(test_plain_user_in_authzid_and_vendor_mechanism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

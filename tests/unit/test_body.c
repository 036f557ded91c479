/* test_body.c — message content through the body sink, and the requests
 * queue's context: every byte of DATA, BDAT, RETR/TOP, FETCH and APPEND
 * comes out exactly as sent, and text inside a message is never a command. */
#include "session_fixture.h"

#include "ms_session_int.h"

static void smtp_to_data(fixture *fx)
{
    seg(fx, S2C, 1, "220 mx.example.org ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250-mx\r\n250-CHUNKING\r\n250 STARTTLS\r\n");
    seg(fx, C2S, 4, "MAIL FROM:<a@example.org>\r\n");
    seg(fx, S2C, 5, "250 2.1.0 Ok\r\n");
    seg(fx, C2S, 6, "RCPT TO:<b@example.org>\r\n");
    seg(fx, S2C, 7, "250 2.1.5 Ok\r\n");
    seg(fx, C2S, 8, "DATA\r\n");
    seg(fx, S2C, 9, "354 End data with <CR><LF>.<CR><LF>\r\n");
}

static void test_smtp_data_bytes_exact(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_to_data(fx);
    /* split inside a line and inside the CR LF; a dot-stuffed line */
    seg(fx, C2S, 10, "Subject: hi\r\n\r\nline one\r");
    seg(fx, C2S, 11, "\n..leading dot\r\nlast");
    seg(fx, C2S, 12, " line\r\n.\r\n");
    seg(fx, S2C, 13, "250 2.0.0 Ok: queued\r\n");
    assert_int_equal(fx->nb, 1);
    body_is(fx, 0, MS_BODY_SMTP_DATA, "Subject: hi\r\n\r\nline one\r\n..leading dot\r\nlast line\r\n", true);
    const rec_body *b = body_nth(fx, 0);
    assert_int_equal(b->dir, C2S);
    assert_int_equal(b->message, 1);
    assert_int_equal(b->flags, 0);
    assert_int_equal(b->begin_frame, 8);
    assert_int_equal(b->end_frame, 12);
    /* as meant: the stuffed dot is gone */
    content_is(fx, 0, 1, MS_BODY_SMTP_DATA, "Subject: hi\r\n\r\nline one\r\n.leading dot\r\nlast line\r\n", 0);
    finish(fx);
}

/* RFC 5321: only CR LF . CR LF ends DATA. A lone dot after a bare LF is
 * text, so what follows it is never read as a command (SMTP smuggling). */
static void test_smtp_bare_lf_dot_is_body(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_to_data(fx);
    const char *body = "hello\n.\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nSTARTTLS\r\n";
    seg(fx, C2S, 10, body);
    seg(fx, C2S, 11, ".\r\n");
    seg(fx, S2C, 12, "250 Ok\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_START), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_COMMAND), 0);
    assert_int_equal(fx->nb, 1);
    body_is(fx, 0, MS_BODY_SMTP_DATA, body, true);
    assert_true(body_nth(fx, 0)->flags & MS_BODY_BARE_LF);
    /* commands come back after the real end */
    seg(fx, C2S, 13, "STARTTLS\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_COMMAND), 1);
    finish(fx);
}

/* A dot ended by CR LF after a bare-LF line is not the end either. */
static void test_smtp_lf_crlf_dot_is_body(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_to_data(fx);
    seg(fx, C2S, 10, "x\n.\r\nQUIT\r\n");
    assert_int_equal(fx->nb, 1);
    assert_false(body_nth(fx, 0)->ended);
    finish(fx);
}

/* A server that took a bare-LF dot as the end answers while we still read
 * the body: its reply ends the message, unfinished, and the client's next
 * line is a command again. */
static void test_smtp_reply_ends_body(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_to_data(fx);
    seg(fx, C2S, 10, "x\n.\n");
    seg(fx, S2C, 11, "250 Ok\r\n");
    assert_true(body_nth(fx, 0)->ended);
    assert_true(body_nth(fx, 0)->flags & MS_BODY_UNFINISHED);
    seg(fx, C2S, 12, "STARTTLS\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_COMMAND), 1);
    finish(fx);
}

static void test_smtp_data_refused(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "DATA\r\n");
    seg(fx, S2C, 3, "503 5.5.1 Error: need RCPT command\r\n");
    seg(fx, C2S, 4, "STARTTLS\r\n");
    assert_int_equal(fx->nb, 1);
    assert_true(body_nth(fx, 0)->ended);
    assert_true(body_nth(fx, 0)->flags & MS_BODY_UNFINISHED);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_COMMAND), 1);
    finish(fx);
}

static void test_smtp_bdat_joined(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_to_data(fx); /* its DATA is message 1 */
    seg(fx, C2S, 10, ".\r\n");
    seg(fx, S2C, 11, "250 Ok\r\n");
    seg(fx, C2S, 12, "MAIL FROM:<a@example.org>\r\n");
    seg(fx, S2C, 13, "250 Ok\r\n");
    seg(fx, C2S, 14, "BDAT 12\r\nSubject: ");
    seg(fx, C2S, 15, "x\r\n");
    seg(fx, S2C, 16, "250 2.0.0 10 octets\r\n");
    seg(fx, C2S, 17, "BDAT 7 LAST\r\n\r\nbody.\r\n");
    seg(fx, S2C, 18, "250 2.0.0 Ok\r\n");
    assert_int_equal(fx->nb, 2);
    body_is(fx, 1, MS_BODY_SMTP_BDAT, "Subject: x\r\n\r\nbody.", true);
    assert_int_equal(body_nth(fx, 1)->message, 2);
    assert_int_equal(body_nth(fx, 1)->flags, 0);
    content_is(fx, 1, 2, MS_BODY_SMTP_BDAT, "Subject: x\r\n\r\nbody.", 0);
    /* the CR LF after the last chunk is the next command's business */
    finish(fx);
}

static void test_pop3_retr_top(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "+OK Dovecot ready.\r\n");
    seg(fx, C2S, 2, "RETR 1\r\n");
    seg(fx, S2C, 3, "+OK 28 octets\r\nFrom: a\r\n\r\n..dot\r\nx\n");
    seg(fx, S2C, 4, ".\r\n");
    seg(fx, C2S, 5, "TOP 1 0\r\n");
    seg(fx, S2C, 6, "+OK\r\nFrom: a\r\n\r\n.\r\n");
    seg(fx, C2S, 7, "LIST\r\n");
    seg(fx, S2C, 8, "+OK\r\n1 28\r\n.\r\n");
    assert_int_equal(fx->nb, 2);
    body_is(fx, 0, MS_BODY_POP3_RETR, "From: a\r\n\r\n..dot\r\nx\n", true);
    assert_int_equal(body_nth(fx, 0)->dir, S2C);
    body_is(fx, 1, MS_BODY_POP3_TOP, "From: a\r\n\r\n", true);
    content_is(fx, 0, 1, MS_BODY_POP3_RETR, "From: a\r\n\r\n.dot\r\nx\n", 0);
    assert_int_equal(fx->c[0].dir, S2C);
    content_is(fx, 1, 2, MS_BODY_POP3_TOP, "From: a\r\n\r\n", 0);
    finish(fx);
}

static void test_imap_fetch_append(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1] ready\r\n");
    seg(fx, C2S, 2, "a1 FETCH 1 (ENVELOPE BODY[])\r\n");
    /* a string literal inside ENVELOPE is no message; BODY[] is */
    seg(fx, S2C, 3, "* 1 FETCH (ENVELOPE (NIL {5}\r\nhi \"x NIL) BODY[] {12}\r\nFrom: a\r\n\r\n");
    seg(fx, S2C, 4, "x)\r\na1 OK done\r\n");
    seg(fx, C2S, 5, "a2 APPEND INBOX (\\Seen) {9+}\r\nSubject: ");
    seg(fx, C2S, 6, "\r\na3 LOGIN bob pw\r\n");
    seg(fx, S2C, 7, "a2 OK appended\r\n");
    assert_int_equal(fx->nb, 2);
    body_is(fx, 0, MS_BODY_IMAP_FETCH, "From: a\r\n\r\nx", true);
    body_is(fx, 1, MS_BODY_IMAP_APPEND, "Subject: ", true);
    assert_int_equal(body_nth(fx, 1)->dir, C2S);
    content_is(fx, 0, 1, MS_BODY_IMAP_FETCH, "From: a\r\n\r\nx", 0);
    content_is(fx, 1, 2, MS_BODY_IMAP_APPEND, "Subject: ", 0);
    /* the command after the literal is read as one */
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 1);
    finish(fx);
}

/* A hole inside a message marks it; a literal the server refused ends
 * unfinished. */
static void test_body_loss_marked(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "* OK ready\r\n");
    seg(fx, C2S, 2, "a2 APPEND INBOX {20}\r\n");
    seg(fx, S2C, 3, "+ go\r\n");
    seg(fx, C2S, 4, "0123");
    seg_lost(fx, C2S, 5, 6, "abcdefghij");
    assert_true(body_nth(fx, 0)->ended);
    assert_true(body_nth(fx, 0)->flags & MS_BODY_LOST);
    assert_int_equal(body_nth(fx, 0)->len, 14);
    seg(fx, C2S, 6, "\r\na3 APPEND INBOX {100}\r\n");
    seg(fx, S2C, 7, "a3 NO [TOOBIG] too big\r\n");
    assert_true(body_nth(fx, 1)->ended);
    assert_true(body_nth(fx, 1)->flags & MS_BODY_UNFINISHED);
    /* the export is told the same: what was seen, marked */
    content_is(fx, 0, 1, MS_BODY_IMAP_APPEND, "0123abcdefghij", MS_BODY_LOST);
    content_is(fx, 1, 2, MS_BODY_IMAP_APPEND, "", MS_BODY_UNFINISHED);
}

/* Attachments decoded for export: numbered per message, with their names. */
static void test_attachments_to_content_sink(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    smtp_to_data(fx);
    seg(fx, C2S, 10, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                     "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
                     "--b\r\nContent-Type: text/plain; name=\"a.txt\"\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\naGVs\r\n");
    seg(fx, C2S, 11, "bG8K\r\n--b\r\nContent-Disposition: attachment; filename=\"empty.bin\"\r\n\r\n"
                     "\r\n--b--\r\n.\r\n");
    seg(fx, S2C, 12, "250 2.0.0 Ok: queued\r\n");
    assert_int_equal(fx->natt, 2);
    assert_int_equal(fx->att[0].number, 1);
    assert_int_equal(fx->att[0].source, 1); /* the first attachment */
    assert_true(fx->att[0].ended);
    assert_int_equal(fx->att[0].len, 6);
    assert_memory_equal(fx->att[0].data, "hello\n", 6);
    assert_string_equal(fx->att_name[0], "a.txt");
    assert_int_equal(fx->att[0].end_flags, 0);
    assert_int_equal(fx->att[1].source, 2);
    assert_int_equal(fx->att[1].len, 0);
    assert_string_equal(fx->att_name[1], "empty.bin");
    /* the message itself is unaffected */
    assert_int_equal(fx->nc, 1);
    assert_true(fx->c[0].ended);
    finish(fx);
}

/* Each queued command keeps its argument, frame and time; peek shows the
 * oldest without taking it; the queue forgets the oldest when full. */
static void test_requests_with_context(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "VRFY root\r\nRCPT TO:<x@example.org>\r\n");
    const ms_request *r = ms_pending_peek(fx->s);
    assert_non_null(r);
    assert_int_equal(r->frame, 2);
    assert_int_equal(r->time.secs, 2);
    assert_string_equal(r->arg, "root");
    assert_int_equal(ms_pending_count(fx->s), 2);
    ms_request out;
    assert_true(ms_pending_pop(fx->s, &out));
    assert_string_equal(out.arg, "root");
    assert_true(ms_pending_pop(fx->s, &out));
    assert_string_equal(out.arg, "TO:<x@example.org>");
    assert_null(ms_pending_peek(fx->s));
    for (int i = 0; i < MS_PENDING_MAX + 3; i++)
        seg(fx, C2S, 10 + (uint32_t)i, "NOOP\r\n");
    assert_int_equal(ms_pending_count(fx->s), MS_PENDING_MAX);
    assert_int_equal(ms_pending_peek(fx->s)->frame, 13); /* the three oldest forgotten */
    finish(fx);
}

/* A fact's span is the line that told it, in its direction's stream. */
static void test_fact_span(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");           /* server bytes 0..13 */
    seg(fx, C2S, 2, "EHLO c\r\n");                 /* client 0..7 */
    seg(fx, S2C, 3, "250-mx\r\n250 STARTTLS\r\n"); /* server 14..: the STARTTLS line at 22 */
    seg(fx, C2S, 4, "STARTTLS\r\nMAIL");           /* client 8..17, then 4 injected bytes */
    size_t o = 0, c = 1, inj = 2;
    assert_int_equal(fx->f[o].kind, MS_FACT_STARTTLS_OFFERED);
    assert_true(fx->f[o].span.valid);
    assert_int_equal(fx->f[o].span.dir, S2C);
    assert_int_equal(fx->f[o].span.at, 22);
    assert_int_equal(fx->f[o].span.len, 14);
    assert_int_equal(fx->f[c].kind, MS_FACT_STARTTLS_COMMAND);
    assert_int_equal(fx->f[c].span.at, 8);
    assert_int_equal(fx->f[c].span.len, 10);
    assert_int_equal(fx->f[inj].kind, MS_FACT_STARTTLS_INJECTED);
    assert_int_equal(fx->f[inj].span.at, 18);
    assert_int_equal(fx->f[inj].span.len, 4);
    assert_int_equal(ms_session_stream_pos(fx->s, C2S), 22);
    finish(fx);
}

/* A body line longer than the line buffer (64 KiB) is kept whole, in pieces:
 * the message's size and hash are of every byte. A dot that a piece boundary
 * puts at the start of the line's last part is text, not the end of a POP3
 * message, and not dot-stuffing. */
static void test_long_body_line_in_pieces(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "+OK ready\r\n");
    seg(fx, C2S, 2, "RETR 1\r\n");
    seg(fx, S2C, 3, "+OK\r\nFrom: a\r\n\r\n");
    size_t n = 65535 + 1 + 2;   /* 65,535 letters, a dot, CR LF: the buffer is 65,536 */
    uint8_t *line = malloc(n);
    assert_non_null(line);
    memset(line, 'a', 65535);
    memcpy(line + 65535, ".\r\n", 3);
    uint32_t frame = 4;
    for (size_t off = 0; off < n; off += 1000)
        seg_bytes(fx, S2C, frame++, line + off, n - off < 1000 ? n - off : 1000, 0);
    seg(fx, S2C, frame++, "end\r\n.\r\n");
    /* the message as meant */
    ms_sha256 h;
    ms_sha256_init(&h);
    ms_sha256_update(&h, "From: a\r\n\r\n", 11);
    ms_sha256_update(&h, line, n);
    ms_sha256_update(&h, "end\r\n", 5);
    uint8_t want[32];
    ms_sha256_final(&h, want);
    size_t i;
    for (i = 0; i < fx->n && fx->f[i].kind != MS_FACT_MSG_END; i++)
        ;
    assert_true(i < fx->n);
    assert_int_equal(fx->f[i].size, 11 + n + 5);
    assert_int_equal(fx->f[i].ival2, 0);            /* not truncated */
    assert_memory_equal(fx->f[i].data, want, 32);
    assert_int_equal(fx->f[i].frame, frame - 1);    /* ended by the real dot */
    /* the content sink (what export writes) got the same bytes */
    assert_int_equal(fx->nc, 1);
    assert_true(fx->c[0].ended);
    assert_int_equal(fx->c[0].total, 11 + n + 5);
    uint8_t got[32];
    rec_digest(&fx->c[0].sha, got);
    assert_memory_equal(got, want, 32);
    free(line);
    finish(fx);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_data_bytes_exact),
        cmocka_unit_test(test_smtp_bare_lf_dot_is_body),
        cmocka_unit_test(test_smtp_lf_crlf_dot_is_body),
        cmocka_unit_test(test_smtp_reply_ends_body),
        cmocka_unit_test(test_smtp_data_refused),
        cmocka_unit_test(test_smtp_bdat_joined),
        cmocka_unit_test(test_pop3_retr_top),
        cmocka_unit_test(test_imap_fetch_append),
        cmocka_unit_test(test_body_loss_marked),
        cmocka_unit_test(test_attachments_to_content_sink),
        cmocka_unit_test(test_requests_with_context),
        cmocka_unit_test(test_fact_span),
        cmocka_unit_test(test_long_body_line_in_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

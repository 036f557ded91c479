/* test_tls.c — around the switch to TLS: the Hellos' version, cipher and
 * server name, a STARTTLS that was accepted but never became TLS, and
 * STARTTLS offered but not used. Expected values are the bytes the test
 * builds (RFC 8446 layouts), written out by hand. */
#include "session_fixture.h"

#include "ms_registry.h"
#include "ms_tlshello.h"

/* A ClientHello record: legacy version 1.2, 32-byte random, empty session
 * id, two suites, null compression, SNI "mx.example.org" and
 * supported_versions (1.3, 1.2). */
static size_t client_hello_bytes(uint8_t *out, bool sni)
{
    uint8_t body[512];
    size_t n = 0;
    body[n++] = 3; body[n++] = 3;
    for (int i = 0; i < 32; i++)
        body[n++] = (uint8_t)i;
    body[n++] = 0;                                  /* session id */
    body[n++] = 0; body[n++] = 4;                   /* suites */
    body[n++] = 0x13; body[n++] = 0x01; body[n++] = 0xc0; body[n++] = 0x2f;
    body[n++] = 1; body[n++] = 0;                   /* compression */
    uint8_t ext[256];
    size_t e = 0;
    if (sni) {
        const char *name = "mx.example.org";
        size_t hl = strlen(name);
        ext[e++] = 0; ext[e++] = 0;                 /* server_name */
        ext[e++] = 0; ext[e++] = (uint8_t)(hl + 5);
        ext[e++] = 0; ext[e++] = (uint8_t)(hl + 3); /* list */
        ext[e++] = 0;                               /* host_name */
        ext[e++] = 0; ext[e++] = (uint8_t)hl;
        memcpy(ext + e, name, hl);
        e += hl;
    }
    ext[e++] = 0; ext[e++] = 43; ext[e++] = 0; ext[e++] = 5; /* supported_versions */
    ext[e++] = 4; ext[e++] = 3; ext[e++] = 4; ext[e++] = 3; ext[e++] = 3;
    body[n++] = (uint8_t)(e >> 8); body[n++] = (uint8_t)e;
    memcpy(body + n, ext, e);
    n += e;
    size_t k = 0;
    out[k++] = 22; out[k++] = 3; out[k++] = 1;
    out[k++] = (uint8_t)((n + 4) >> 8); out[k++] = (uint8_t)(n + 4);
    out[k++] = 1; out[k++] = 0; out[k++] = (uint8_t)(n >> 8); out[k++] = (uint8_t)n;
    memcpy(out + k, body, n);
    return k + n;
}

/* A ServerHello choosing TLS 1.3 (supported_versions) and TLS_AES_256_GCM_SHA384,
 * then a ChangeCipherSpec record. */
static size_t server_hello_bytes(uint8_t *out, uint16_t version)
{
    uint8_t body[128];
    size_t n = 0;
    body[n++] = 3; body[n++] = 3;
    for (int i = 0; i < 32; i++)
        body[n++] = (uint8_t)(0xa0 + i);
    body[n++] = 0;
    body[n++] = 0x13; body[n++] = 0x02;             /* cipher */
    body[n++] = 0;                                  /* compression */
    body[n++] = 0; body[n++] = 6;
    body[n++] = 0; body[n++] = 43; body[n++] = 0; body[n++] = 2;
    body[n++] = (uint8_t)(version >> 8); body[n++] = (uint8_t)version;
    size_t k = 0;
    out[k++] = 22; out[k++] = 3; out[k++] = 3;
    out[k++] = (uint8_t)((n + 4) >> 8); out[k++] = (uint8_t)(n + 4);
    out[k++] = 2; out[k++] = 0; out[k++] = (uint8_t)(n >> 8); out[k++] = (uint8_t)n;
    memcpy(out + k, body, n);
    k += n;
    const uint8_t ccs[] = { 20, 3, 3, 0, 1, 1 };
    memcpy(out + k, ccs, sizeof ccs);
    return k + sizeof ccs;
}

/* SMTP frames 1-4: greeting, EHLO, a list offering STARTTLS, STARTTLS. */
static void smtp_starttls_asked(fixture *fx)
{
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250-mx\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n");
    seg(fx, C2S, 4, "STARTTLS\r\n");
}

static void test_hellos_in_any_split(void **state)
{
    (void)state;
    uint8_t ch[600], sh[200];
    size_t chn = client_hello_bytes(ch, true), shn = server_hello_bytes(sh, 0x0304);
    for (size_t cut = 1; cut < chn; cut += 7) {
        ms_tlshello t;
        memset(&t, 0, sizeof t);
        assert_false(ms_tlshello_feed(&t, &ms_libc_allocator, 0, ch, cut));
        assert_false(ms_tlshello_feed(&t, &ms_libc_allocator, 0, ch + cut, chn - cut));
        assert_true(t.client_hello);
        assert_true(t.has_sni);
        assert_string_equal(t.sni, "mx.example.org");
        size_t scut = cut % shn ? cut % shn : 1;
        bool done = ms_tlshello_feed(&t, &ms_libc_allocator, 1, sh, scut);
        done = ms_tlshello_feed(&t, &ms_libc_allocator, 1, sh + scut, shn - scut) || done;
        assert_true(done);
        assert_int_equal(t.version, 0x0304);
        assert_int_equal(t.cipher, 0x1302);
        ms_tlshello_free(&t, &ms_libc_allocator);
    }
    /* no SNI; TLS 1.1 chosen by the legacy field alone (no extension) */
    ms_tlshello t;
    memset(&t, 0, sizeof t);
    chn = client_hello_bytes(ch, false);
    (void)ms_tlshello_feed(&t, &ms_libc_allocator, 0, ch, chn);
    assert_true(t.client_hello);
    assert_false(t.has_sni);
    ms_tlshello_free(&t, &ms_libc_allocator);
    /* garbage: read nothing, never crash */
    memset(&t, 0, sizeof t);
    const uint8_t junk[] = { 22, 3, 3, 0, 5, 2, 0xff, 0xff, 0xff, 0 };
    assert_false(ms_tlshello_feed(&t, &ms_libc_allocator, 1, junk, sizeof junk));
    assert_false(t.server_hello);
    ms_tlshello_free(&t, &ms_libc_allocator);
}

static void test_posture_fact_after_starttls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    smtp_starttls_asked(fx); /* frames 1-4 */
    seg(fx, S2C, 5, "220 2.0.0 Ready to start TLS\r\n");
    uint8_t ch[600], sh[200];
    seg_bytes(fx, C2S, 6, ch, client_hello_bytes(ch, true), 0);
    seg_bytes(fx, S2C, 7, sh, server_hello_bytes(sh, 0x0304), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_STRIPPED), 0);
    assert_int_equal(count_kind(fx, MS_FACT_TLS_POSTURE), 1);
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == MS_FACT_TLS_POSTURE)
            assert_int_equal(fx->f[i].frame, 7);
    finish(fx);
}

/* STARTTLS accepted, then commands in clear: the session is read on, in
 * clear, and the login after it is exposed. */
static void test_stripped_starttls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    smtp_starttls_asked(fx); /* frames 1-4 */
    seg(fx, S2C, 5, "220 2.0.0 Ready to start TLS\r\n");
    seg(fx, C2S, 6, "EHLO c\r\n");
    seg(fx, S2C, 7, "250-mx\r\n250 AUTH PLAIN\r\n");
    seg(fx, C2S, 8, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    seg(fx, S2C, 9, "235 2.7.0 Authentication successful\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_STRIPPED), 1);
    assert_int_equal(ms_session_frame_transport(fx->s, 9), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(ms_session_boundary(fx->s), 0);
    size_t k = 0;
    for (size_t i = 0; i < fx->n; i++) {
        if (fx->f[i].kind == MS_FACT_STARTTLS_STRIPPED)
            assert_int_equal(fx->f[i].frame, 6);
        if (fx->f[i].kind == MS_FACT_AUTH_REQUEST) {
            assert_int_equal(fx->f[i].ival2, 1); /* in clear */
            k++;
        }
    }
    assert_int_equal(k, 1);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_RESULT), 1);
    finish(fx);
}

static void test_offered_not_used(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready\r\n");
    seg(fx, C2S, 2, "a1 LOGIN alice secret\r\n");
    seg(fx, S2C, 3, "a1 OK done\r\n");
    seg(fx, C2S, 4, "a2 LOGIN bob secret\r\n");
    seg(fx, S2C, 5, "a2 OK done\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_UNUSED), 1);
    finish(fx);

    /* asked for: nothing */
    fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
    seg(fx, C2S, 2, "a1 STARTTLS\r\n");
    seg(fx, S2C, 3, "a1 NO not now\r\n");
    seg(fx, C2S, 4, "a2 LOGIN alice secret\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_UNUSED), 0);
    finish(fx);
}

static void test_preauth_alert_and_login_before_tls(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in as alice\r\n");
    seg(fx, S2C, 2, "* OK [ALERT] Your mailbox will be deleted, log in at http://evil.example\r\n");
    seg(fx, C2S, 3, "a1 STARTTLS\r\n");
    seg(fx, S2C, 4, "a1 BAD STARTTLS not allowed now\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_IMAP_PREAUTH), 1);
    assert_int_equal(count_kind(fx, MS_FACT_IMAP_ALERT), 1);
    finish(fx);

    /* an [ALERT] inside TLS, a normal greeting: nothing */
    fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
    seg(fx, C2S, 2, "a1 LOGIN alice secret\r\n");
    seg(fx, S2C, 3, "a1 OK done\r\n");
    seg(fx, C2S, 4, "a2 STARTTLS\r\n");
    seg(fx, S2C, 5, "a2 OK Begin TLS negotiation now\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_IMAP_PREAUTH), 0);
    assert_int_equal(count_kind(fx, MS_FACT_IMAP_ALERT), 0);
    /* the login went in clear before the upgrade */
    assert_int_equal(count_kind(fx, MS_FACT_LOGIN_BEFORE_TLS), 1);
    finish(fx);
}

/* A command sent in clear after STARTTLS, in a segment of its own before the
 * reply, then a real handshake: the server answers it inside TLS. */
static void test_response_buffering(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    smtp_starttls_asked(fx); /* frames 1-4 */
    seg(fx, C2S, 5, "NOOP\r\n");
    seg(fx, S2C, 6, "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_BUFFERED), 0); /* not before TLS shows */
    uint8_t ch[600];
    seg_bytes(fx, C2S, 7, ch, client_hello_bytes(ch, true), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_BUFFERED), 1);
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == MS_FACT_STARTTLS_BUFFERED) {
            assert_int_equal(fx->f[i].frame, 7);
            assert_int_equal(fx->f[i].ref_frame, 5);
            assert_int_equal(fx->f[i].size, strlen("NOOP\r\n"));
        }
    /* the reply comes inside TLS and answers the buffered NOOP */
    ms_feed_ctx ctx = { 9, { 9, 0 }, sink, fx, body_sink, fx, content_sink, fx };
    fx->frame = 9;
    ms_session_decrypted(fx->s, S2C, (const uint8_t *)"250 2.0.0 Ok\r\n", 14, &ctx);
    const rec_fact *last = &fx->f[fx->n - 1];
    assert_int_equal(last->kind, MS_FACT_REPLY);
    assert_int_equal(last->ival2, 250);
    assert_int_equal(last->ref_frame, 5);
    assert_int_equal(last->len, 4);
    assert_memory_equal(last->data, "NOOP", 4);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_INJECTED), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_STRIPPED), 0);
    finish(fx);

    /* the same, but the client's cleartext was in the STARTTLS segment:
     * command injection, not buffering; and nothing sent: nothing */
    fx = start(MS_PROTO_IMAP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
    seg(fx, C2S, 2, "a1 STARTTLS\r\n");
    seg(fx, S2C, 3, "a1 OK Begin TLS negotiation now\r\n");
    seg_bytes(fx, C2S, 4, ch, client_hello_bytes(ch, true), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_BUFFERED), 0);
    finish(fx);
}

/* After the STARTTLS OK the client speaks first: server text in a segment of
 * its own before the ClientHello is response injection; the handshake that
 * follows still counts as TLS. */
static void test_response_injected_after_ok(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_POP3, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "+OK ready\r\n");
    seg(fx, C2S, 2, "STLS\r\n");
    seg(fx, S2C, 3, "+OK Begin TLS negotiation\r\n");
    seg(fx, S2C, 4, "+OK logged in\r\n");
    uint8_t ch[600];
    seg_bytes(fx, C2S, 5, ch, client_hello_bytes(ch, true), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_STRIPPED), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_INJECTED), 1);
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == MS_FACT_STARTTLS_INJECTED) {
            assert_int_equal(fx->f[i].frame, 4);
            assert_int_equal(fx->f[i].ival, MS_DIR_S2C);
            fact_data_is(fx, i, "+OK logged in\r\n");
        }
    assert_int_equal(ms_session_frame_transport(fx->s, 5), MS_TRANSPORT_STARTTLS);
    finish(fx);
}

/* One server, two sessions: the first offers STARTTLS, the second does not. */
static fixture *server_session(ms_registry *reg, uint32_t id, uint16_t port, bool expected)
{
    ms_session_config cfg = port_cfg(MS_PROTO_SMTP);
    cfg.registry = reg;
    const uint8_t server[4] = { 192, 0, 2, 25 };
    memcpy(cfg.server_addr, server, 4);
    cfg.server_addr_len = 4;
    cfg.server_family = 2;
    cfg.server_port = port;
    cfg.session_id = id;
    cfg.starttls_expected = expected;
    fixture *fx = start_cfg(&cfg);
    fx->all = true;
    return fx;
}

static void test_capability_stripped(void **state)
{
    (void)state;
    ms_registry *reg = ms_registry_new(&ms_libc_allocator, 16);
    fixture *fx = server_session(reg, 4, 25, false);
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg(fx, C2S, 2, "EHLO c\r\n");
    seg(fx, S2C, 3, "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
    seg(fx, C2S, 4, "EHLO c\r\n"); /* its own later list offers it too */
    seg(fx, S2C, 5, "250-mx\r\n250 STARTTLS\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 0);
    finish(fx);

    fx = server_session(reg, 9, 25, false);
    seg(fx, S2C, 11, "220 mx ESMTP\r\n");
    seg(fx, C2S, 12, "EHLO c\r\n");
    seg(fx, S2C, 13, "250-mx\r\n250 AUTH PLAIN\r\n");
    seg(fx, C2S, 14, "EHLO c\r\n");
    seg(fx, S2C, 15, "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 1); /* once a session */
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == MS_FACT_CAPABILITY_STRIPPED) {
            assert_int_equal(fx->f[i].frame, 13);
            assert_int_equal(fx->f[i].ival, 4 + 1);
            assert_false(fx->f[i].ival2);
        }
    finish(fx);

    /* another port of the same address has its own history */
    fx = server_session(reg, 10, 2525, false);
    seg(fx, S2C, 21, "220 mx ESMTP\r\n");
    seg(fx, C2S, 22, "EHLO c\r\n");
    seg(fx, S2C, 23, "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 0);
    finish(fx);

    /* a port where it is expected: noted without any history */
    fx = server_session(reg, 11, 2526, true);
    seg(fx, S2C, 31, "220 mx ESMTP\r\n");
    seg(fx, C2S, 32, "EHLO c\r\n");
    seg(fx, S2C, 33, "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 1);
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == MS_FACT_CAPABILITY_STRIPPED) {
            assert_int_equal(fx->f[i].ival, 0);
            assert_true(fx->f[i].ival2);
        }
    finish(fx);
    ms_registry_free(reg);
}

/* Lists that are another state's: after a login (IMAP's tagged OK
 * [CAPABILITY], a later CAPABILITY), after PREAUTH, or POP3 CAPA inside TLS. */
static void test_capability_lists_after_login(void **state)
{
    (void)state;
    ms_session_config cfg = port_cfg(MS_PROTO_IMAP);
    cfg.starttls_expected = true;
    fixture *fx = start_cfg(&cfg);
    fx->all = true;
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
    seg(fx, C2S, 2, "a1 LOGIN alice secret\r\n");
    seg(fx, S2C, 3, "a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n");
    seg(fx, C2S, 4, "a2 CAPABILITY\r\n");
    seg(fx, S2C, 5, "* CAPABILITY IMAP4rev1 IDLE MOVE\r\na2 OK done\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 0);
    finish(fx);

    fx = start_cfg(&cfg);
    fx->all = true;
    seg(fx, S2C, 1, "* PREAUTH [CAPABILITY IMAP4rev1] logged in\r\n");
    seg(fx, C2S, 2, "a1 CAPABILITY\r\n");
    seg(fx, S2C, 3, "* CAPABILITY IMAP4rev1\r\na1 OK done\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 0);
    assert_int_equal(count_kind(fx, MS_FACT_IMAP_PREAUTH), 1);
    finish(fx);

    /* a greeting list without STARTTLS on an expected port: noted */
    fx = start_cfg(&cfg);
    fx->all = true;
    seg(fx, S2C, 1, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 1);
    finish(fx);

    cfg.port_proto = MS_PROTO_POP3;
    fx = start_cfg(&cfg);
    fx->all = true;
    seg(fx, S2C, 1, "+OK ready\r\n");
    seg(fx, C2S, 2, "CAPA\r\n");
    seg(fx, S2C, 3, "+OK\r\nUSER\r\nSTLS\r\n.\r\n");
    seg(fx, C2S, 4, "STLS\r\n");
    seg(fx, S2C, 5, "+OK Begin TLS\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 0);
    seg(fx, C2S, 6, "CAPA\r\n");
    seg(fx, S2C, 7, "+OK\r\nUSER\r\n.\r\n");
    assert_int_equal(count_kind(fx, MS_FACT_CAPABILITY_STRIPPED), 0);
    assert_int_equal(count_kind(fx, MS_FACT_STARTTLS_STRIPPED), 1); /* CAPA in clear after STLS OK */
    finish(fx);
}

/* On a TLS port: the first payload neither TLS nor mail is no mail at all;
 * mail in clear is read in clear; a TLS record cut after a byte or two is
 * still TLS. */
static void test_tls_port_first_payload(void **state)
{
    (void)state;
    fixture *fx = start(MS_PROTO_IMAP, true, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, C2S, 1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    seg(fx, S2C, 2, "HTTP/1.1 200 OK\r\n\r\n");
    seg(fx, C2S, 3, "a1 LOGIN alice secret\r\n");
    assert_true(ms_session_not_mail(fx->s));
    assert_int_equal(fx->n, 0);
    finish(fx);

    fx = start(MS_PROTO_IMAP, true, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "* OK IMAP ready\r\n");
    seg(fx, C2S, 2, "a1 LOGIN alice secret\r\n");
    assert_false(ms_session_not_mail(fx->s));
    assert_int_equal(ms_session_frame_transport(fx->s, 2), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(count_kind(fx, MS_FACT_AUTH_REQUEST), 1);
    finish(fx);

    fx = start(MS_PROTO_SMTP, true, MS_DETECT_PORT, 0);
    fx->all = true;
    uint8_t ch[600];
    size_t chn = client_hello_bytes(ch, true);
    seg_bytes(fx, C2S, 1, ch, 2, 0);
    seg_bytes(fx, C2S, 2, ch + 2, chn - 2, 0);
    assert_false(ms_session_not_mail(fx->s));
    assert_int_equal(ms_session_frame_transport(fx->s, 2), MS_TRANSPORT_IMPLICIT_TLS);
    assert_int_equal(count_kind(fx, MS_FACT_TLS_POSTURE), 0); /* no ServerHello yet */
    finish(fx);
}

/* Each side labelled by what it sent: a client that speaks TLS to a server
 * that greets (or answers) in clear. */
static void test_each_side_by_what_it_sent(void **state)
{
    (void)state;
    uint8_t ch[600];
    size_t chn = client_hello_bytes(ch, true);
    /* the greeting first: the client's handshake is TLS, the server's lines clear */
    fixture *fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg(fx, S2C, 1, "220 mx ESMTP\r\n");
    seg_bytes(fx, C2S, 2, ch, chn, 0);
    seg(fx, S2C, 3, "500 5.5.2 Error: bad syntax\r\n");
    assert_int_equal(ms_session_dir_transport(fx->s, MS_DIR_C2S, 2), MS_TRANSPORT_IMPLICIT_TLS);
    assert_int_equal(ms_session_dir_transport(fx->s, MS_DIR_S2C, 3), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(count_kind(fx, MS_FACT_LINE_TOO_LONG), 0);
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 2); /* greeting and the 500, no command from the hello */
    finish(fx);

    /* the handshake first (the session starts as TLS), the server answers in clear */
    fx = start(MS_PROTO_SMTP, false, MS_DETECT_PORT, 0);
    fx->all = true;
    seg_bytes(fx, C2S, 1, ch, chn, 0);
    seg(fx, S2C, 2, "220 mx ESMTP\r\n");
    seg(fx, S2C, 3, "500 5.5.2 Error: bad syntax\r\n");
    assert_int_equal(ms_session_dir_transport(fx->s, MS_DIR_C2S, 1), MS_TRANSPORT_IMPLICIT_TLS);
    assert_int_equal(ms_session_dir_transport(fx->s, MS_DIR_S2C, 2), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(ms_session_dir_transport(fx->s, MS_DIR_S2C, 3), MS_TRANSPORT_CLEARTEXT);
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 2);
    finish(fx);

    /* a real implicit-TLS session: a record cut across segments stays TLS */
    fx = start(MS_PROTO_SMTP, true, MS_DETECT_PORT, 0);
    fx->all = true;
    uint8_t sh[200];
    size_t shn = server_hello_bytes(sh, 0x0304);
    seg_bytes(fx, C2S, 1, ch, chn, 0);
    seg_bytes(fx, S2C, 2, sh, shn, 0);
    const uint8_t rec[] = { 23, 3, 3, 0, 40 };
    seg_bytes(fx, S2C, 3, rec, sizeof rec, 0);
    uint8_t body[40];
    memset(body, 'A', sizeof body);
    seg_bytes(fx, S2C, 4, body, sizeof body, 0);
    assert_int_equal(ms_session_dir_transport(fx->s, MS_DIR_S2C, 4), MS_TRANSPORT_IMPLICIT_TLS);
    assert_int_equal(count_kind(fx, MS_FACT_REPLY), 0);
    finish(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hellos_in_any_split),
        cmocka_unit_test(test_posture_fact_after_starttls),
        cmocka_unit_test(test_stripped_starttls),
        cmocka_unit_test(test_offered_not_used),
        cmocka_unit_test(test_preauth_alert_and_login_before_tls),
        cmocka_unit_test(test_response_buffering),
        cmocka_unit_test(test_response_injected_after_ok),
        cmocka_unit_test(test_capability_stripped),
        cmocka_unit_test(test_capability_lists_after_login),
        cmocka_unit_test(test_tls_port_first_payload),
        cmocka_unit_test(test_each_side_by_what_it_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

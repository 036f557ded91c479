/* test_msg.c — the streaming MIME scanner (ms_msg): headers, parts,
 * attachments and their hashes, URLs, limits and memory bounds.
 *
 * Expected digests are hard-coded: each was computed on the shell with
 * sha256sum over the plaintext (printf ... | sha256sum), and the base64 in
 * the messages comes from base64(1) over the same plaintext. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_alloc.h"

#include "ms_msg.h"
#include "ms_sasl.h"
#include "ms_sha256.h"

/* ---- an event recorder ------------------------------------------------------ */

#define MAX_HDRS 64
#define MAX_ATTS 32
#define MAX_URLS 64
#define MAX_LIMITS 8
#define MAX_TEXT 2048
#define LOG_MAX (1u << 16)

typedef struct {
    ms_hdr_kind kind;
    char v[MAX_TEXT];
    size_t len;
    bool cut;
} rec_hdr;

typedef struct {
    char name[MAX_TEXT];
    char ctype[256];
    uint64_t size;
    char sha[65];
    bool truncated;
    unsigned depth;
} rec_att;

typedef struct {
    rec_hdr hdr[MAX_HDRS];
    size_t nh;
    rec_att att[MAX_ATTS];
    size_t na;
    char url[MAX_URLS][MAX_TEXT];
    size_t nu;
    char limit[MAX_LIMITS][16];
    size_t nl;
    char log[LOG_MAX]; /* every event as text, to compare runs */
    size_t log_len;
    counter mem;
} rec;

static void logf_(rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->log_len, LOG_MAX - r->log_len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < LOG_MAX - r->log_len);
    r->log_len += (size_t)n;
}

static void on_header(void *ctx, ms_hdr_kind k, const char *v, size_t len, bool cut)
{
    rec *r = ctx;
    assert_true(r->nh < MAX_HDRS);
    assert_true(len < MAX_TEXT);
    assert_int_equal(v[len], '\0');
    rec_hdr *h = &r->hdr[r->nh++];
    h->kind = k;
    memcpy(h->v, v, len);
    h->v[len] = '\0';
    h->len = len;
    h->cut = cut;
    logf_(r, "H%d:%zu:%s:%d\n", (int)k, len, h->v, cut);
}

static void on_attachment(void *ctx, const ms_msg_attachment *a)
{
    rec *r = ctx;
    assert_true(r->na < MAX_ATTS);
    assert_true(a->filename_len < MAX_TEXT && a->content_type_len < 256);
    rec_att *t = &r->att[r->na++];
    memcpy(t->name, a->filename, a->filename_len);
    t->name[a->filename_len] = '\0';
    memcpy(t->ctype, a->content_type, a->content_type_len);
    t->ctype[a->content_type_len] = '\0';
    t->size = a->size;
    ms_hex(a->sha256, 32, t->sha);
    t->truncated = a->truncated;
    t->depth = a->depth;
    logf_(r, "A:%s|%s|%llu|%s|%d|%u\n", t->name, t->ctype, (unsigned long long)t->size, t->sha,
          t->truncated, t->depth);
}

static void on_url(void *ctx, const char *url, size_t len)
{
    rec *r = ctx;
    assert_true(r->nu < MAX_URLS);
    assert_true(len < MAX_TEXT);
    memcpy(r->url[r->nu], url, len);
    r->url[r->nu][len] = '\0';
    logf_(r, "U:%s\n", r->url[r->nu]);
    r->nu++;
}

static void on_limit(void *ctx, const char *what)
{
    rec *r = ctx;
    assert_true(r->nl < MAX_LIMITS);
    snprintf(r->limit[r->nl++], 16, "%s", what);
    logf_(r, "L:%s\n", what);
}

static const ms_msg_callbacks callbacks = { on_header, on_attachment, on_url, on_limit, NULL };

static rec *rec_new(void)
{
    rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    return r;
}

static ms_msg *scanner(rec *r, ms_allocator *a, const ms_msg_limits *lim)
{
    a->realloc_fn = count_realloc;
    a->free_fn = count_free;
    a->ctx = &r->mem;
    ms_msg *m = ms_msg_new(a, lim, &callbacks, r);
    assert_non_null(m);
    return m;
}

enum { SPLIT_WHOLE = 0, SPLIT_BYTES = 1, SPLIT_RANDOM = -1 };

/* Scan a whole message: in one piece, a byte at a time, or in pieces of
 * pseudo-random sizes (a fixed seed: the run is the same every time). */
static rec *scan_split(const char *msg, size_t len, int split, const ms_msg_limits *lim,
                       bool truncated)
{
    rec *r = rec_new();
    ms_allocator a;
    ms_msg *m = scanner(r, &a, lim);
    const uint8_t *p = (const uint8_t *)msg;
    uint32_t seed = 12345;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (split == SPLIT_BYTES) {
            n = 1;
        } else if (split == SPLIT_RANDOM) {
            seed = seed * 1103515245u + 12345u;
            size_t want = 1 + (seed >> 16) % 97;
            if (want < n)
                n = want;
        }
        ms_msg_feed(m, p + off, n);
        off += n;
    }
    ms_msg_end(m, truncated);
    ms_msg_free(m);
    assert_int_equal(r->mem.live, 0);
    return r;
}

static rec *scan(const char *msg)
{
    return scan_split(msg, strlen(msg), SPLIT_WHOLE, NULL, false);
}

static const rec_hdr *hdr_nth(const rec *r, ms_hdr_kind k, size_t nth)
{
    for (size_t i = 0; i < r->nh; i++) {
        if (r->hdr[i].kind == k && nth-- == 0)
            return &r->hdr[i];
    }
    return NULL;
}

static void hdr_is(const rec *r, ms_hdr_kind k, const char *v)
{
    const rec_hdr *h = hdr_nth(r, k, 0);
    assert_non_null(h);
    assert_string_equal(h->v, v);
    assert_false(h->cut);
}

static void att_is(const rec *r, size_t i, const char *name, const char *ctype, uint64_t size,
                   const char *sha, bool truncated, unsigned depth)
{
    assert_true(i < r->na);
    const rec_att *a = &r->att[i];
    assert_string_equal(a->name, name);
    assert_string_equal(a->ctype, ctype);
    assert_int_equal(a->size, size);
    assert_string_equal(a->sha, sha);
    assert_int_equal(a->truncated, truncated);
    assert_int_equal(a->depth, depth);
}

static bool has_limit(const rec *r, const char *what)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nl; i++)
        n += strcmp(r->limit[i], what) == 0;
    assert_true(n <= 1); /* once per kind per message */
    return n == 1;
}

/* The same message with every CR LF turned into a bare LF. */
static char *bare_lf(const char *msg)
{
    size_t n = strlen(msg);
    char *out = malloc(n + 1);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (msg[i] == '\r' && msg[i + 1] == '\n')
            continue;
        out[o++] = msg[i];
    }
    out[o] = '\0';
    return out;
}

/* ---- digests of the plaintexts (sha256sum) ---------------------------------- */

/* bytes 0x00..0xff then "Invoice #4711 attached.\n": 280 bytes */
#define P1_SHA "94f024e822a9b7dcf52634165f4c96e42578b540eb1b58b8e4d30ae24f4bcbbd"
#define P1_B64                                                                       \
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\r\n" \
    "OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx\r\n" \
    "cnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmq\r\n" \
    "q6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj\r\n" \
    "5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/0ludm9pY2UgIzQ3MTEgYXR0YWNoZWQuCg==\r\n"
/* the first 114 bytes of it (two base64 lines) */
#define P1_114_SHA "5b0a32f1219524f5d72b00ba1a1b1c09a05ff10c83bb7a86042e42988f2afc06"
/* "MZ\x90\x00fake exe", 12 bytes */
#define EXE_SHA "253099582c528277f6d595e48667c7ccf89983767e7dad92642baf224e4ee8eb"
/* "caf\xe9 = ok\r\nsecond line\r\nend", 27 bytes; with bare LF, 25 bytes */
#define QP_SHA "0adcea92bcbb9c47f70aa3adacf6c4c1d85c4b3aa37dd093ff952199422bb64e"
#define QP_LF_SHA "d0cdaaec8ac9a3ae06428c7a9f12ac01d0c625af0e4dafbae02a9043c004d572"
/* "hello" */
#define HELLO_SHA "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
/* "" */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* "--abcdef\r\nx" and "--abcdef\nx" */
#define NOTB_SHA "63b65d90c1ed14f4529443839a608b63af6c9d2debe86eceb2ff405599188bba"
#define NOTB_LF_SHA "fbd82d615a1504d17cea66e5f23ad69c07b700df0b0fdfe90593b74d8c462dd9"
/* bytes i % 251 for i in 0 .. 3 MiB (python3 | sha256sum) */
#define BIG_SHA "a1feacf0d812ba4d0b0e463ed45bbd583cea1de55c54693116754b30b5794745"

/* ---- headers ---------------------------------------------------------------- */

static const char HEADERS_MSG[] =
    "From: =?iso-8859-1?q?J=F6rg_M=FCller?= <jorg@example.de>\r\n"
    "tO: a@example.org,\r\n"
    "\tb@example.org\r\n"
    "SUBJECT: =?UTF-8?B?w4lsw6h2ZQ==?=\r\n"
    " =?ISO-8859-1?Q?caf=E9?= and\r\n"
    "  more =?utf-8?q?=E2=82=AC?=\r\n"
    "Cc: =?windows-1252?Q?=93quoted=94?= <c@example.org>\r\n"
    "Date: Tue, 3 Jun 2025 10:00:00 +0200\r\n"
    "Message-ID: <1234@mx.example.org>\r\n"
    "Reply-To: =?koi8-r?B?8NLJ18XU?= <r@example.org>\r\n"
    "X-Mailer: Mailer 1.0\r\n"
    "X-Originating-IP: [192.0.2.7]\r\n"
    "X-Unknown: ignored\r\n"
    "\r\n"
    "Subject: not a header, body text\r\n";

static void test_headers_folding_and_encoded_words(void **state)
{
    (void)state;
    rec *r = scan(HEADERS_MSG);
    hdr_is(r, MS_HDR_FROM, "J\xc3\xb6rg M\xc3\xbcller <jorg@example.de>");
    hdr_is(r, MS_HDR_TO, "a@example.org,\tb@example.org");
    /* B then Q on a folded line: the white space between them is no text */
    hdr_is(r, MS_HDR_SUBJECT, "\xc3\x89l\xc3\xa8vecaf\xc3\xa9 and  more \xe2\x82\xac");
    hdr_is(r, MS_HDR_CC, "\xe2\x80\x9cquoted\xe2\x80\x9d <c@example.org>");
    hdr_is(r, MS_HDR_DATE, "Tue, 3 Jun 2025 10:00:00 +0200");
    hdr_is(r, MS_HDR_MESSAGE_ID, "<1234@mx.example.org>");
    /* a charset not converted: its bytes as they are */
    hdr_is(r, MS_HDR_REPLY_TO, "\xf0\xd2\xc9\xd7\xc5\xd4 <r@example.org>");
    hdr_is(r, MS_HDR_USER_AGENT, "Mailer 1.0");
    hdr_is(r, MS_HDR_ORIGINATING_IP, "[192.0.2.7]");
    assert_int_equal(r->nh, 9);
    assert_null(hdr_nth(r, MS_HDR_SUBJECT, 1)); /* the body's "Subject:" is text */
    assert_int_equal(r->na, 0);
    assert_int_equal(r->nl, 0);
    free(r);
}

static void test_received_in_order(void **state)
{
    (void)state;
    rec *r = scan("Received: from a.example (a.example [192.0.2.1])\r\n"
                  "\tby mx.example; Tue, 3 Jun 2025 10:00:03 +0200\r\n"
                  "Received: from b.example by a.example;\r\n"
                  " Tue, 3 Jun 2025 10:00:02 +0200\r\n"
                  "User-Agent: Thunderbird\r\n"
                  "received: from client by b.example; Tue, 3 Jun 2025 10:00:01 +0200\r\n"
                  "\r\n"
                  "body\r\n");
    assert_int_equal(r->nh, 4);
    assert_string_equal(hdr_nth(r, MS_HDR_RECEIVED, 0)->v,
                        "from a.example (a.example [192.0.2.1])\tby mx.example; Tue, 3 Jun 2025 "
                        "10:00:03 +0200");
    assert_string_equal(hdr_nth(r, MS_HDR_RECEIVED, 1)->v,
                        "from b.example by a.example; Tue, 3 Jun 2025 10:00:02 +0200");
    assert_string_equal(hdr_nth(r, MS_HDR_RECEIVED, 2)->v,
                        "from client by b.example; Tue, 3 Jun 2025 10:00:01 +0200");
    hdr_is(r, MS_HDR_USER_AGENT, "Thunderbird");
    assert_int_equal(r->hdr[2].kind, MS_HDR_USER_AGENT); /* reported in message order */
    free(r);
}

/* An mbox From_ line first, a header block that ends without its blank line. */
static void test_header_block_edges(void **state)
{
    (void)state;
    rec *r = scan("From sender@example.org Tue Jun  3 10:00:00 2025\n"
                  "Subject:   spaced   \n"
                  "Subject : second\n"
                  "this line is no header: http://a.example/\n");
    assert_int_equal(r->nh, 2);
    assert_string_equal(r->hdr[0].v, "spaced");
    assert_string_equal(r->hdr[1].v, "second");
    assert_int_equal(r->nu, 1);
    assert_string_equal(r->url[0], "http://a.example/");
    free(r);
}

/* ---- MIME ------------------------------------------------------------------- */

static const char MIME_MSG[] =
    "From: a@example.org\r\n"
    "Subject: invoice\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed;\r\n"
    "\tboundary=\"==outer==\"\r\n"
    "\r\n"
    "This is a preamble http://preamble.example/ignored\r\n"
    "--==outer==\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "Subject: a part header, never reported\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Visit http://exam=\r\n"
    "ple.com/pa=3Dth?x=3D1 now.\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PGEgaHJlZj0iaHR0cHM6Ly9ldmlsLmV4YW1wbGUvbG9naW4iPnd3dy5iYW5rLmV4YW1wbGU8L2E+\r\n"
    "DQo8cD5DYWxsIGh0dHA6Ly9leGFtcGxlLmNvbS9wYT10aD94PTEuPC9wPg==\r\n"
    "--inner--\r\n"
    "--==outer==\r\n"
    "Content-Type: Application/PDF; name=\"ignored.pdf\"\r\n"
    "Content-Disposition: attachment; filename=\"p1.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    P1_B64
    "--==outer==  \t\r\n"
    "Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
    "Content-Transfer-Encoding: BASE64\r\n"
    "\r\n"
    "TVqQAGZh\r\n"
    " a2UgZXhl\r\n"
    "--==outer==\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Disposition: inline;\r\n"
    " filename*0*=utf-8''%E2%82%AC%20rate; filename*1*=%20q1;\r\n"
    " filename*2=\".txt\"\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=E9 =3D ok   \r\n"
    "second li=\r\n"
    "ne\r\n"
    "end\r\n"
    "--==outer==\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment; filename=\"=?UTF-8?B?0YHRh9GR0YIucGRm?=\"\r\n"
    "\r\n"
    "hello\r\n"
    "--==outer==\r\n"
    "Content-Disposition: attachment; filename*=iso-8859-1'fr'caf%E9.txt\r\n"
    "Content-Type: text/plain; name=\"other.txt\"\r\n"
    "\r\n"
    "--abcdef\r\n"
    "x\r\n"
    "--==outer==--\r\n"
    "epilogue http://epilogue.example/\r\n";

static void check_mime(const rec *r, bool lf)
{
    assert_int_equal(r->nh, 2);
    hdr_is(r, MS_HDR_SUBJECT, "invoice");
    assert_int_equal(r->na, 5);
    att_is(r, 0, "p1.bin", "application/pdf", 280, P1_SHA, false, 1);
    /* a Content-Type name and no disposition: still an attachment */
    att_is(r, 1, "invoice.pdf.exe", "application/octet-stream", 12, EXE_SHA, false, 1);
    /* RFC 2231 sections, inline: the line break before the boundary is not
     * content; QP trailing white space dropped (RFC 2045 6.7 rule 3) */
    att_is(r, 2, "\xe2\x82\xac rate q1.txt", "text/plain", lf ? 25 : 27, lf ? QP_LF_SHA : QP_SHA,
           false, 1);
    /* RFC 2047 in a quoted file name */
    att_is(r, 3, "\xd1\x81\xd1\x87\xd1\x91\xd1\x82.pdf", "application/octet-stream", 5, HELLO_SHA,
           false, 1);
    /* RFC 2231 with a charset, disposition before type; "--abcdef" is no boundary */
    att_is(r, 4, "caf\xc3\xa9.txt", "text/plain", lf ? 10 : 11, lf ? NOTB_LF_SHA : NOTB_SHA, false,
           1);
    /* URLs: QP soft break joined, from base64 HTML, de-duplicated, none from
     * the preamble or the epilogue */
    assert_int_equal(r->nu, 3);
    assert_string_equal(r->url[0], "http://example.com/pa=th?x=1");
    assert_string_equal(r->url[1], "https://evil.example/login");
    assert_string_equal(r->url[2], "www.bank.example");
    assert_int_equal(r->nl, 0);
}

static void test_multipart_attachments(void **state)
{
    (void)state;
    rec *r = scan(MIME_MSG);
    check_mime(r, false);
    free(r);
}

static void test_bare_lf(void **state)
{
    (void)state;
    char *msg = bare_lf(MIME_MSG);
    rec *r = scan(msg);
    check_mime(r, true);
    free(r);
    free(msg);
}

static void test_split_anywhere_same_result(void **state)
{
    (void)state;
    char *lf = bare_lf(MIME_MSG);
    const char *msgs[] = { MIME_MSG, lf, HEADERS_MSG };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        size_t n = strlen(msgs[i]);
        rec *whole = scan_split(msgs[i], n, SPLIT_WHOLE, NULL, false);
        rec *bytes = scan_split(msgs[i], n, SPLIT_BYTES, NULL, false);
        rec *random = scan_split(msgs[i], n, SPLIT_RANDOM, NULL, false);
        assert_true(whole->log_len > 0);
        assert_string_equal(whole->log, bytes->log);
        assert_string_equal(whole->log, random->log);
        free(whole);
        free(bytes);
        free(random);
    }
    free(lf);
}

/* Nested parts: depth counts from the message (0). */
static void test_nested_depths(void **state)
{
    (void)state;
    rec *r = scan("Content-Type: multipart/mixed; boundary=a\r\n"
                  "\r\n"
                  "--a\r\n"
                  "Content-Type: multipart/alternative; boundary=b\r\n"
                  "\r\n"
                  "--b\r\n"
                  "Content-Type: text/plain; name=in.txt\r\n"
                  "\r\n"
                  "hello\r\n"
                  "--b--\r\n"
                  "--a\r\n"
                  "Content-Type: text/plain; name=out.txt\r\n"
                  "\r\n"
                  "hello\r\n"
                  "--a--\r\n");
    assert_int_equal(r->na, 2);
    att_is(r, 0, "in.txt", "text/plain", 5, HELLO_SHA, false, 2);
    att_is(r, 1, "out.txt", "text/plain", 5, HELLO_SHA, false, 1);
    free(r);
}

/* An inner multipart that never closes: the outer boundary ends it. */
static void test_unclosed_inner_multipart(void **state)
{
    (void)state;
    rec *r = scan("Content-Type: multipart/mixed; boundary=a\r\n"
                  "\r\n"
                  "--a\r\n"
                  "Content-Type: multipart/mixed; boundary=b\r\n"
                  "\r\n"
                  "--b\r\n"
                  "Content-Disposition: attachment; filename=in.txt\r\n"
                  "\r\n"
                  "hello\r\n"
                  "--a\r\n"
                  "Content-Disposition: attachment; filename=out.txt\r\n"
                  "\r\n"
                  "hello\r\n"
                  "--a--\r\n");
    assert_int_equal(r->na, 2);
    att_is(r, 0, "in.txt", "text/plain", 5, HELLO_SHA, false, 2);
    att_is(r, 1, "out.txt", "text/plain", 5, HELLO_SHA, false, 1);
    free(r);
}

static void test_single_part_attachment(void **state)
{
    (void)state;
    rec *r = scan("Content-Type: application/octet-stream\r\n"
                  "Content-Disposition: attachment; filename=hello.bin\r\n"
                  "Content-Transfer-Encoding: base64\r\n"
                  "\r\n"
                  "aGVs\r\n"
                  "bG8=\r\n");
    assert_int_equal(r->na, 1);
    att_is(r, 0, "hello.bin", "application/octet-stream", 5, HELLO_SHA, false, 0);
    free(r);
}

/* Base64 skips white space and stops at the first character outside its
 * alphabet; a part with no content at all hashes to the empty string. */
static void test_base64_garbage_and_empty(void **state)
{
    (void)state;
    rec *r = scan("Content-Type: multipart/mixed; boundary=x\r\n"
                  "\r\n"
                  "--x\r\n"
                  "Content-Disposition: attachment; filename=g.bin\r\n"
                  "Content-Transfer-Encoding: base64\r\n"
                  "\r\n"
                  " aGVs bG8=\t\r\n"
                  "*** garbage ***\r\n"
                  "d29ybGQ=\r\n"
                  "--x\r\n"
                  "Content-Disposition: attachment; filename=empty.bin\r\n"
                  "\r\n"
                  "--x\r\n"
                  "Content-Disposition: attachment; filename=nobody.bin\r\n"
                  "--x--\r\n");
    assert_int_equal(r->na, 3);
    att_is(r, 0, "g.bin", "text/plain", 5, HELLO_SHA, false, 1);
    att_is(r, 1, "empty.bin", "text/plain", 0, EMPTY_SHA, false, 1);
    att_is(r, 2, "nobody.bin", "text/plain", 0, EMPTY_SHA, false, 1);
    free(r);
}

static void test_truncated_attachment(void **state)
{
    (void)state;
    const char *msg = "Content-Type: multipart/mixed; boundary=x\r\n"
                      "\r\n"
                      "--x\r\n"
                      "Content-Disposition: attachment; filename=p1.bin\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\r\n"
                      "OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx\r\n";
    /* the closing boundary never comes */
    rec *r = scan(msg);
    assert_int_equal(r->na, 1);
    att_is(r, 0, "p1.bin", "text/plain", 114, P1_114_SHA, true, 1);
    free(r);
    /* a single-part message is complete at its end, unless the caller says not */
    const char *single = "Content-Disposition: attachment; filename=h.bin\r\n"
                         "Content-Transfer-Encoding: base64\r\n"
                         "\r\n"
                         "aGVsbG8=";
    r = scan_split(single, strlen(single), SPLIT_WHOLE, NULL, false);
    att_is(r, 0, "h.bin", "text/plain", 5, HELLO_SHA, false, 0);
    free(r);
    r = scan_split(single, strlen(single), SPLIT_WHOLE, NULL, true);
    att_is(r, 0, "h.bin", "text/plain", 5, HELLO_SHA, true, 0);
    free(r);
}

/* A boundary with white space after it still counts; a quoted boundary with
 * a space in it; a close delimiter without its final line break. */
static void test_boundary_forms(void **state)
{
    (void)state;
    rec *r = scan("Content-Type: multipart/mixed; boundary=\"a b:c\"\r\n"
                  "\r\n"
                  "--a b:c \r\n"
                  "Content-Disposition: attachment; filename=one\r\n"
                  "\r\n"
                  "hello\r\n"
                  "--a b:c\t\r\n"
                  "Content-Disposition: attachment; filename=two\r\n"
                  "\r\n"
                  "hello\r\n"
                  "--a b:c--");
    assert_int_equal(r->na, 2);
    att_is(r, 0, "one", "text/plain", 5, HELLO_SHA, false, 1);
    att_is(r, 1, "two", "text/plain", 5, HELLO_SHA, false, 1);
    free(r);
}

/* A NUL is garbage to base64 (not white space), and no word character
 * before a URL. */
static void test_nul_bytes(void **state)
{
    (void)state;
    static const char b64[] = "Content-Disposition: attachment; filename=n\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "\r\n"
                              "aGVsbG8=\0d29ybGQ=\r\n";
    rec *r = scan_split(b64, sizeof b64 - 1, SPLIT_WHOLE, NULL, false);
    att_is(r, 0, "n", "text/plain", 5, HELLO_SHA, false, 0);
    free(r);
    static const char text[] = "\r\nx\0http://nul.example/\r\n";
    r = scan_split(text, sizeof text - 1, SPLIT_WHOLE, NULL, false);
    assert_int_equal(r->nu, 1);
    assert_string_equal(r->url[0], "http://nul.example/");
    free(r);
}

/* ---- URLs ------------------------------------------------------------------- */

static void test_plain_body_urls(void **state)
{
    (void)state;
    rec *r = scan("Subject: no MIME here\n"
                  "\n"
                  "See http://a.example/x, and (www.b.example/y) or HTTPS://C.example/Z.\n"
                  "Again http://a.example/x\n"
                  "not xhttp://no.example nor awww.no.example nor bare http://\n"
                  "<ftp://files.example/f.zip>\n");
    assert_int_equal(r->nu, 4);
    assert_string_equal(r->url[0], "http://a.example/x");
    assert_string_equal(r->url[1], "www.b.example/y");
    assert_string_equal(r->url[2], "HTTPS://C.example/Z");
    assert_string_equal(r->url[3], "ftp://files.example/f.zip");
    free(r);
}

static void test_url_limits(void **state)
{
    (void)state;
    ms_msg_limits lim = { 0 };
    lim.max_urls = 3;
    lim.max_url = 20;
    const char *msg = "\r\n"
                      "http://1.example/ http://1.example/ http://2.example/\r\n"
                      "http://3.example/a-very-long-path-cut-here http://4.example/ http://5.example/\r\n";
    rec *r = scan_split(msg, strlen(msg), SPLIT_WHOLE, &lim, false);
    assert_int_equal(r->nu, 3);
    assert_string_equal(r->url[0], "http://1.example/");
    assert_string_equal(r->url[1], "http://2.example/");
    assert_string_equal(r->url[2], "http://3.example/a-v"); /* cut at max_url */
    assert_true(has_limit(r, "urls"));
    free(r);
}

/* Only text/plain and text/html parts are searched. */
static void test_urls_only_in_text(void **state)
{
    (void)state;
    rec *r = scan("Content-Type: multipart/mixed; boundary=x\r\n"
                  "\r\n"
                  "--x\r\n"
                  "Content-Type: application/octet-stream\r\n"
                  "\r\n"
                  "http://binary.example/\r\n"
                  "--x\r\n"
                  "\r\n"
                  "http://default-text.example/\r\n"
                  "--x--\r\n");
    assert_int_equal(r->nu, 1);
    assert_string_equal(r->url[0], "http://default-text.example/");
    free(r);
}

/* ---- limits and memory ------------------------------------------------------ */

static void test_parts_limit(void **state)
{
    (void)state;
    ms_msg_limits lim = { 0 };
    lim.max_parts = 2;
    const char *msg = "Content-Type: multipart/mixed; boundary=x\r\n"
                      "\r\n"
                      "--x\r\nContent-Disposition: attachment; filename=1\r\n\r\nhello\r\n"
                      "--x\r\nContent-Disposition: attachment; filename=2\r\n\r\nhello\r\n"
                      "--x\r\nContent-Disposition: attachment; filename=3\r\n\r\nhello\r\n"
                      "--x\r\nContent-Disposition: attachment; filename=4\r\n\r\nhello\r\n"
                      "--x--\r\n";
    rec *r = scan_split(msg, strlen(msg), SPLIT_WHOLE, &lim, false);
    assert_int_equal(r->na, 2);
    assert_string_equal(r->att[1].name, "2");
    assert_true(has_limit(r, "parts"));
    free(r);
}

#define DEEP 10000

static char *deep_message(size_t *len)
{
    size_t cap = (size_t)DEEP * 120 + 1024, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (unsigned i = 0; i < DEEP; i++)
        n += (size_t)snprintf(s + n, cap - n,
                              "Content-Type: multipart/mixed; boundary=b%u\r\n\r\n--b%u\r\n", i, i);
    n += (size_t)snprintf(s + n, cap - n, "Content-Type: text/plain; name=deep.txt\r\n\r\n"
                                          "http://deep.example/\r\n");
    for (unsigned i = DEEP; i-- > 1;)
        n += (size_t)snprintf(s + n, cap - n, "--b%u--\r\n", i);
    n += (size_t)snprintf(s + n, cap - n,
                          "--b0\r\nContent-Disposition: attachment; filename=after.txt\r\n\r\n"
                          "hello\r\n--b0--\r\n");
    assert_true(n < cap);
    *len = n;
    return s;
}

/* Ten thousand nested multiparts: the stack stops at max_depth, the rest is
 * opaque content, the scanner finds its way back out, and memory stays the
 * same as for a flat message. */
static void test_deep_nesting_bounded(void **state)
{
    (void)state;
    size_t len;
    char *msg = deep_message(&len);
    rec *r = scan_split(msg, len, SPLIT_RANDOM, NULL, false);
    assert_true(has_limit(r, "depth"));
    assert_int_equal(r->nl, 1);
    assert_int_equal(r->nu, 0); /* inside the opaque part */
    assert_int_equal(r->na, 1);
    att_is(r, 0, "after.txt", "text/plain", 5, HELLO_SHA, false, 1);
    size_t deep_peak = r->mem.peak;
    free(r);
    free(msg);

    r = scan(MIME_MSG);
    size_t flat_peak = r->mem.peak;
    free(r);
    /* the boundary stack grows to max_depth (32) frames, nothing else */
    assert_true(deep_peak <= flat_peak + 32 * (sizeof(size_t) + MS_MSG_BOUNDARY_MAX));
    assert_true(deep_peak < 24 * 1024);
}

static void test_long_header_bounded(void **state)
{
    (void)state;
    const size_t big = 1u << 20;
    rec *r = rec_new();
    ms_allocator a;
    ms_msg *m = scanner(r, &a, NULL);
    char *chunk = malloc(4096);
    assert_non_null(chunk);
    memset(chunk, 'x', 4096);
    const char *head = "Subject: ";
    ms_msg_feed(m, (const uint8_t *)head, strlen(head));
    for (size_t off = 0; off < big; off += 4096)
        ms_msg_feed(m, (const uint8_t *)chunk, 4096);
    const char *rest = "\r\nTo: b@example.org\r\n\r\nhttp://after.example/\r\n";
    ms_msg_feed(m, (const uint8_t *)rest, strlen(rest));
    /* and a 1 MB body line, for good measure */
    for (size_t off = 0; off < big; off += 4096)
        ms_msg_feed(m, (const uint8_t *)chunk, 4096);
    ms_msg_end(m, false);
    ms_msg_free(m);
    assert_int_equal(r->mem.live, 0);
    assert_true(r->mem.peak < 24 * 1024);
    assert_int_equal(r->nh, 2);
    assert_int_equal(r->hdr[0].kind, MS_HDR_SUBJECT);
    assert_int_equal(r->hdr[0].len, 1024);
    assert_true(r->hdr[0].cut);
    hdr_is(r, MS_HDR_TO, "b@example.org");
    assert_true(has_limit(r, "header"));
    assert_int_equal(r->nu, 1);
    assert_string_equal(r->url[0], "http://after.example/");
    free(chunk);
    free(r);
}

/* A 3 MiB base64 attachment, fed in pieces: hashed as it goes, in bounded
 * memory, to the digest sha256sum gives for the same bytes. */
static void test_big_attachment_bounded(void **state)
{
    (void)state;
    const size_t total = 3u << 20;
    rec *r = rec_new();
    ms_allocator a;
    ms_msg *m = scanner(r, &a, NULL);
    const char *head = "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
                       "Content-Type: application/octet-stream; name=big.bin\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n";
    ms_msg_feed(m, (const uint8_t *)head, strlen(head));
    uint8_t plain[57];
    char line[80];
    for (size_t off = 0; off < total;) {
        size_t n = total - off < 57 ? total - off : 57;
        for (size_t i = 0; i < n; i++)
            plain[i] = (uint8_t)((off + i) % 251);
        size_t k = ms_b64_encode(plain, n, line, sizeof line - 2);
        assert_true(k > 0);
        line[k++] = '\r';
        line[k++] = '\n';
        ms_msg_feed(m, (const uint8_t *)line, k);
        off += n;
    }
    const char *tail = "--x--\r\n";
    ms_msg_feed(m, (const uint8_t *)tail, strlen(tail));
    ms_msg_end(m, false);
    ms_msg_free(m);
    assert_int_equal(r->mem.live, 0);
    assert_true(r->mem.peak < 24 * 1024);
    assert_int_equal(r->na, 1);
    att_is(r, 0, "big.bin", "application/octet-stream", total, BIG_SHA, false, 1);
    free(r);
}

/* Limits of zero take the defaults; NULL callbacks are fine; feeding after
 * the end is ignored. */
static void test_api_edges(void **state)
{
    (void)state;
    counter c = { 0 };
    ms_allocator a = { count_realloc, count_free, &c };
    ms_msg *m = ms_msg_new(&a, NULL, NULL, NULL);
    assert_non_null(m);
    ms_msg_feed(m, (const uint8_t *)MIME_MSG, strlen(MIME_MSG));
    ms_msg_feed(m, NULL, 5);
    ms_msg_end(m, false);
    ms_msg_feed(m, (const uint8_t *)"x\r\n", 3);
    ms_msg_end(m, true);
    ms_msg_free(m);
    ms_msg_free(NULL);
    ms_msg_feed(NULL, (const uint8_t *)"x", 1);
    ms_msg_end(NULL, false);
    assert_int_equal(c.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_folding_and_encoded_words),
        cmocka_unit_test(test_received_in_order),
        cmocka_unit_test(test_header_block_edges),
        cmocka_unit_test(test_multipart_attachments),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_split_anywhere_same_result),
        cmocka_unit_test(test_nested_depths),
        cmocka_unit_test(test_unclosed_inner_multipart),
        cmocka_unit_test(test_single_part_attachment),
        cmocka_unit_test(test_base64_garbage_and_empty),
        cmocka_unit_test(test_truncated_attachment),
        cmocka_unit_test(test_boundary_forms),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_plain_body_urls),
        cmocka_unit_test(test_url_limits),
        cmocka_unit_test(test_urls_only_in_text),
        cmocka_unit_test(test_parts_limit),
        cmocka_unit_test(test_deep_nesting_bounded),
        cmocka_unit_test(test_long_header_bounded),
        cmocka_unit_test(test_big_attachment_bounded),
        cmocka_unit_test(test_api_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

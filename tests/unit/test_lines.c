/* test_lines.c — unit tests for the bounded line tokeniser (ms_lines). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_alloc.h"

#include "ms_lines.h"

/* ---- a line recorder ------------------------------------------------------ */

#define REC_MAX_LINES 32
#define REC_MAX_BYTES 2048

typedef struct {
    uint8_t data[REC_MAX_BYTES];
    size_t len;
    unsigned flags;
    size_t full;
} rec_line;

typedef struct {
    rec_line line[REC_MAX_LINES];
    size_t n;
    size_t calls;
    size_t stop_at;   /* return STOP on this call (1-based); 0: never */
    ms_lines *lines;  /* for callbacks that announce raw octets */
    bool raw_on_brace; /* a line ending in "{5}" announces 5 raw octets */
} recorder;

static ms_lines_verdict rec_cb(void *ctx, const uint8_t *p, size_t len, unsigned flags,
                               size_t full)
{
    recorder *r = ctx;
    r->calls++;
    assert_true(r->n < REC_MAX_LINES);
    assert_true(len <= REC_MAX_BYTES);
    rec_line *l = &r->line[r->n++];
    if (len)
        memcpy(l->data, p, len);
    l->len = len;
    l->flags = flags;
    l->full = full;
    if (r->raw_on_brace && !(flags & MS_LINE_RAW) && len >= 3 && p[len - 1] == '}' &&
        p[len - 3] == '{')
        ms_lines_expect_raw(r->lines, (uint64_t)(p[len - 2] - '0'));
    if (r->stop_at && r->calls == r->stop_at)
        return MS_LINES_STOP;
    return MS_LINES_CONTINUE;
}

static size_t feed_str(ms_lines *l, recorder *r, const char *s)
{
    return ms_lines_feed(l, (const uint8_t *)s, strlen(s), rec_cb, r);
}

static void check_line(const recorder *r, size_t i, const char *text, unsigned flags, size_t full)
{
    assert_true(i < r->n);
    const rec_line *l = &r->line[i];
    assert_int_equal(l->len, strlen(text));
    if (l->len)
        assert_memory_equal(l->data, text, l->len);
    assert_int_equal(l->flags, flags);
    assert_int_equal(l->full, full);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_crlf_and_bare_lf(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    ms_lines_init(&l, &ms_libc_allocator, 1024);
    assert_int_equal(feed_str(&l, &r, "EHLO a\r\nHELO b\nc\r\n"), 18);
    assert_int_equal(r.n, 3);
    check_line(&r, 0, "EHLO a", MS_LINE_CRLF, 6);
    check_line(&r, 1, "HELO b", MS_LINE_BARE_LF, 6);
    check_line(&r, 2, "c", MS_LINE_CRLF, 1);
    /* a CR inside a line is content, not a terminator */
    r.n = 0;
    assert_int_equal(feed_str(&l, &r, "a\rb\n"), 4);
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "a\rb", MS_LINE_BARE_LF, 3);
    ms_lines_free(&l);
}

static void test_split_two_feeds(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    ms_lines_init(&l, &ms_libc_allocator, 1024);
    assert_int_equal(feed_str(&l, &r, "MAIL FR"), 7);
    assert_int_equal(r.n, 0);
    assert_int_equal(feed_str(&l, &r, "OM:<a@b>\r\nRC"), 12);
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "MAIL FROM:<a@b>", MS_LINE_CRLF, 15);
    /* CR at the end of one feed, LF at the start of the next */
    assert_int_equal(feed_str(&l, &r, "PT TO:<c@d>\r"), 12);
    assert_int_equal(r.n, 1);
    assert_int_equal(feed_str(&l, &r, "\nDATA\n"), 6);
    assert_int_equal(r.n, 3);
    check_line(&r, 1, "RCPT TO:<c@d>", MS_LINE_CRLF, 13);
    check_line(&r, 2, "DATA", MS_LINE_BARE_LF, 4);
    ms_lines_free(&l);
}

static void test_split_three_feeds(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    ms_lines_init(&l, &ms_libc_allocator, 1024);
    assert_int_equal(feed_str(&l, &r, "EH"), 2);
    assert_int_equal(feed_str(&l, &r, "LO x\r"), 5);
    assert_int_equal(r.n, 0);
    assert_int_equal(feed_str(&l, &r, "\nNEXT\r\n"), 7);
    assert_int_equal(r.n, 2);
    check_line(&r, 0, "EHLO x", MS_LINE_CRLF, 6);
    check_line(&r, 1, "NEXT", MS_LINE_CRLF, 4);

    /* text, then the CR alone, then the LF alone */
    r.n = 0;
    feed_str(&l, &r, "QUIT");
    feed_str(&l, &r, "\r");
    assert_int_equal(r.n, 0);
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "QUIT", MS_LINE_CRLF, 4);

    /* a CR that ends a feed but is followed by more text is content */
    r.n = 0;
    feed_str(&l, &r, "ab\r");
    feed_str(&l, &r, "cd");
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "ab\rcd", MS_LINE_BARE_LF, 5);
    ms_lines_free(&l);
}

static void test_zero_length_lines(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    ms_lines_init(&l, &ms_libc_allocator, 1024);
    assert_int_equal(feed_str(&l, &r, "\r\n\n\r\n"), 5);
    assert_int_equal(r.n, 3);
    check_line(&r, 0, "", MS_LINE_CRLF, 0);
    check_line(&r, 1, "", MS_LINE_BARE_LF, 0);
    check_line(&r, 2, "", MS_LINE_CRLF, 0);
    /* an empty line whose CR and LF come in different feeds */
    r.n = 0;
    feed_str(&l, &r, "\r");
    assert_int_equal(r.n, 0);
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "", MS_LINE_CRLF, 0);
    ms_lines_free(&l);
}

static void test_truncation(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    char line[128];
    ms_lines_init(&l, &ms_libc_allocator, 32);

    /* 40 bytes in one feed: the first 32 kept, the full length reported */
    memset(line, 'x', 40);
    for (int i = 0; i < 40; i++)
        line[i] = (char)('A' + i % 26);
    memcpy(line + 40, "\r\nok\r\n", 7);
    assert_int_equal(feed_str(&l, &r, line), 46);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.line[0].len, 32);
    assert_memory_equal(r.line[0].data, line, 32);
    assert_int_equal(r.line[0].flags, MS_LINE_CRLF | MS_LINE_TRUNCATED);
    assert_int_equal(r.line[0].full, 40);
    check_line(&r, 1, "ok", MS_LINE_CRLF, 2); /* the next line is whole */

    /* exactly the limit is not truncated; one more is */
    r.n = 0;
    memset(line, 'y', 32);
    memcpy(line + 32, "\r\n", 3);
    feed_str(&l, &r, line);
    memset(line, 'z', 33);
    memcpy(line + 33, "\n", 2);
    feed_str(&l, &r, line);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.line[0].len, 32);
    assert_int_equal(r.line[0].flags, MS_LINE_CRLF);
    assert_int_equal(r.line[0].full, 32);
    assert_int_equal(r.line[1].len, 32);
    assert_int_equal(r.line[1].flags, MS_LINE_BARE_LF | MS_LINE_TRUNCATED);
    assert_int_equal(r.line[1].full, 33);

    /* 40 bytes across three feeds (buffered path) */
    r.n = 0;
    for (int i = 0; i < 40; i++)
        line[i] = (char)('a' + i % 26);
    ms_lines_feed(&l, (const uint8_t *)line, 10, rec_cb, &r);
    ms_lines_feed(&l, (const uint8_t *)line + 10, 30, rec_cb, &r);
    assert_int_equal(r.n, 0);
    assert_true(l.len <= 32);
    feed_str(&l, &r, "\r\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].len, 32);
    assert_memory_equal(r.line[0].data, line, 32);
    assert_int_equal(r.line[0].flags, MS_LINE_CRLF | MS_LINE_TRUNCATED);
    assert_int_equal(r.line[0].full, 40);

    /* buffered: 31 bytes + CR fill the buffer exactly; the LF comes later */
    r.n = 0;
    memset(line, 'q', 31);
    line[31] = '\r';
    ms_lines_feed(&l, (const uint8_t *)line, 32, rec_cb, &r);
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].len, 31);
    assert_int_equal(r.line[0].flags, MS_LINE_CRLF);
    assert_int_equal(r.line[0].full, 31);

    /* buffered: 32 bytes fill the buffer, the CR is dropped but still seen */
    r.n = 0;
    memset(line, 'w', 32);
    line[32] = '\r';
    ms_lines_feed(&l, (const uint8_t *)line, 33, rec_cb, &r);
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].len, 32);
    assert_int_equal(r.line[0].flags, MS_LINE_CRLF);
    assert_int_equal(r.line[0].full, 32);
    ms_lines_free(&l);
}

static void test_raw_spanning_feeds(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    ms_lines_init(&l, &ms_libc_allocator, 1024);
    ms_lines_expect_raw(&l, 10);
    assert_int_equal(feed_str(&l, &r, "ab\r\n"), 4);
    assert_int_equal(feed_str(&l, &r, "efg"), 3);
    assert_int_equal(feed_str(&l, &r, "hijline2\r\nline3\n"), 16);
    assert_int_equal(r.n, 5);
    check_line(&r, 0, "ab\r\n", MS_LINE_RAW, 4);
    check_line(&r, 1, "efg", MS_LINE_RAW, 3);
    check_line(&r, 2, "hij", MS_LINE_RAW | MS_LINE_RAW_END, 3);
    check_line(&r, 3, "line2", MS_LINE_CRLF, 5);
    check_line(&r, 4, "line3", MS_LINE_BARE_LF, 5);
    assert_int_equal(l.raw_left, 0);

    /* raw announced from inside the callback, the IMAP literal way */
    r.n = 0;
    r.lines = &l;
    r.raw_on_brace = true;
    assert_int_equal(feed_str(&l, &r, "x {5}\r\nab\r\ncrest\r\n"), 18);
    assert_int_equal(r.n, 3);
    check_line(&r, 0, "x {5}", MS_LINE_CRLF, 5);
    check_line(&r, 1, "ab\r\nc", MS_LINE_RAW | MS_LINE_RAW_END, 5);
    check_line(&r, 2, "rest", MS_LINE_CRLF, 4);

    /* the raw piece ending exactly at the end of a feed */
    r.n = 0;
    feed_str(&l, &r, "y {3}\r\n");
    feed_str(&l, &r, "a\nb");
    feed_str(&l, &r, "z\n");
    assert_int_equal(r.n, 3);
    check_line(&r, 1, "a\nb", MS_LINE_RAW | MS_LINE_RAW_END, 3);
    check_line(&r, 2, "z", MS_LINE_BARE_LF, 1);
    ms_lines_free(&l);
}

static void test_stop(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    ms_lines_init(&l, &ms_libc_allocator, 1024);

    /* fast path */
    const char *in = "one\r\ntwo\r\n";
    r.stop_at = 1;
    assert_int_equal(feed_str(&l, &r, in), 5);
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "one", MS_LINE_CRLF, 3);
    r.stop_at = 0;
    assert_int_equal(feed_str(&l, &r, in + 5), 5);
    assert_int_equal(r.n, 2);
    check_line(&r, 1, "two", MS_LINE_CRLF, 3);

    /* buffered path */
    r.n = 0;
    r.calls = 0;
    r.stop_at = 1;
    assert_int_equal(feed_str(&l, &r, "on"), 2);
    assert_int_equal(feed_str(&l, &r, "e\r\ntwo\r\n"), 3);
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "one", MS_LINE_CRLF, 3);
    assert_int_equal(l.len, 0);
    assert_int_equal(l.seen, 0);

    /* stop on the second line */
    r.n = 0;
    r.calls = 0;
    r.stop_at = 2;
    assert_int_equal(feed_str(&l, &r, "a\nbb\nccc\n"), 5);
    assert_int_equal(r.n, 2);

    /* stop on a raw piece */
    r.n = 0;
    r.calls = 0;
    r.stop_at = 1;
    ms_lines_expect_raw(&l, 3);
    assert_int_equal(feed_str(&l, &r, "abcdef\n"), 3);
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "abc", MS_LINE_RAW | MS_LINE_RAW_END, 3);
    ms_lines_free(&l);
}

static void test_reset(void **state)
{
    (void)state;
    ms_lines l;
    recorder r = { 0 };
    ms_lines_init(&l, &ms_libc_allocator, 1024);
    feed_str(&l, &r, "partial");
    ms_lines_reset(&l);
    feed_str(&l, &r, "line\r\n");
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "line", MS_LINE_CRLF, 4);

    /* the same when the next line is itself split (buffered path) */
    r.n = 0;
    feed_str(&l, &r, "partial");
    ms_lines_reset(&l);
    feed_str(&l, &r, "li");
    feed_str(&l, &r, "ne\r\n");
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "line", MS_LINE_CRLF, 4);

    /* a pending CR is forgotten too */
    r.n = 0;
    feed_str(&l, &r, "abc\r");
    ms_lines_reset(&l);
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "", MS_LINE_BARE_LF, 0);

    /* and announced raw octets */
    r.n = 0;
    ms_lines_expect_raw(&l, 100);
    ms_lines_reset(&l);
    feed_str(&l, &r, "hi\n");
    assert_int_equal(r.n, 1);
    check_line(&r, 0, "hi", MS_LINE_BARE_LF, 2);
    ms_lines_free(&l);
}

static void test_memory_bound(void **state)
{
    (void)state;
    counter c = { 0 };
    ms_allocator a = { count_realloc, count_free, &c };
    ms_lines l;
    recorder r = { 0 };
    const size_t total = 1024 * 1024;
    uint8_t *big = malloc(total);
    assert_non_null(big);
    for (size_t i = 0; i < total; i++)
        big[i] = (uint8_t)('a' + i % 26);

    ms_lines_init(&l, &a, 1024);
    /* odd-sized chunks */
    size_t off = 0;
    while (off < total) {
        size_t n = total - off < 4093 ? total - off : 4093;
        assert_int_equal(ms_lines_feed(&l, big + off, n, rec_cb, &r), n);
        assert_true(c.live <= 1024);
        assert_true(l.cap <= 1024);
        assert_true(l.len <= 1024);
        off += n;
    }
    assert_int_equal(r.n, 0);
    assert_int_equal(l.seen, total);
    assert_true(c.peak <= 1024);
    assert_true(c.peak > 0);
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].len, 1024);
    assert_memory_equal(r.line[0].data, big, 1024);
    assert_int_equal(r.line[0].flags, MS_LINE_BARE_LF | MS_LINE_TRUNCATED);
    assert_int_equal(r.line[0].full, total);
    ms_lines_free(&l);
    assert_int_equal(c.live, 0);

    /* all of it in one feed */
    c = (counter){ 0 };
    r.n = 0;
    ms_lines_init(&l, &a, 1024);
    assert_int_equal(ms_lines_feed(&l, big, total, rec_cb, &r), total);
    assert_true(c.peak <= 1024);
    feed_str(&l, &r, "\r\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].len, 1024);
    assert_int_equal(r.line[0].flags, MS_LINE_CRLF | MS_LINE_TRUNCATED);
    assert_int_equal(r.line[0].full, total);
    assert_true(c.peak <= 1024);
    ms_lines_free(&l);
    assert_int_equal(c.live, 0);

    /* a limit that is not a power of two is honoured too */
    c = (counter){ 0 };
    r.n = 0;
    ms_lines_init(&l, &a, 1000);
    for (off = 0; off < total; off += 4096) {
        ms_lines_feed(&l, big + off, 4096, rec_cb, &r);
        assert_true(c.live <= 1000);
    }
    assert_true(c.peak <= 1000);
    feed_str(&l, &r, "\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].len, 1000);
    assert_int_equal(r.line[0].full, total);
    ms_lines_free(&l);
    assert_int_equal(c.live, 0);
    free(big);
}

/* Pieces mode: a long line comes whole, in pieces; its bytes joined are the
 * line, CR LF at a piece boundary included, and full says its length. */
static void joined(const recorder *r, size_t from, char *out, size_t cap, size_t *n)
{
    *n = 0;
    for (size_t i = from; i < r->n; i++) {
        assert_true(*n + r->line[i].len <= cap);
        memcpy(out + *n, r->line[i].data, r->line[i].len);
        *n += r->line[i].len;
    }
}

static void test_pieces(void **state)
{
    (void)state;
    counter c = { 0 };
    ms_allocator a = { count_realloc, count_free, &c };
    ms_lines l;
    ms_lines_init(&l, &a, 16);
    l.pieces = true;
    recorder r = { .lines = &l };
    /* 40 bytes then CR LF, across three inputs, the CR at the end of one */
    const char *line = "0123456789abcdefghijABCDEFGHIJ0123456789";
    feed_str(&l, &r, "0123456789abcdefghij");
    feed_str(&l, &r, "ABCDEFGHIJ0123456789\r");
    assert_true(l.len <= 16);               /* memory stays within the bound */
    feed_str(&l, &r, "\nnext\r\n");
    assert_true(r.n >= 3);
    size_t last = r.n - 2;                  /* the line's last part, then "next" */
    for (size_t i = 0; i < last; i++) {
        assert_int_equal(r.line[i].flags & (MS_LINE_PIECE | MS_LINE_CRLF | MS_LINE_TRUNCATED), MS_LINE_PIECE);
        assert_int_equal(!!(r.line[i].flags & MS_LINE_CONT), i > 0);
    }
    assert_int_equal(r.line[last].flags, MS_LINE_CRLF | MS_LINE_CONT);
    assert_int_equal(r.line[last].full, strlen(line));
    char out[64];
    size_t n;
    r.n--;                                  /* join the long line's parts only */
    joined(&r, 0, out, sizeof out, &n);
    assert_int_equal(n, strlen(line));
    assert_memory_equal(out, line, n);
    r.n++;
    assert_int_equal(r.line[r.n - 1].flags, MS_LINE_CRLF);
    assert_int_equal(r.line[r.n - 1].len, 4);

    /* a long line inside one input comes in one call, uncut */
    r.n = 0;
    feed_str(&l, &r, "0123456789abcdefghijABCDEFGHIJ\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].flags, MS_LINE_BARE_LF);
    assert_int_equal(r.line[0].len, 30);

    /* without pieces the same line is cut */
    l.pieces = false;
    r.n = 0;
    feed_str(&l, &r, "0123456789abcdefghij");
    feed_str(&l, &r, "ABCDEFGHIJ\r\n");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.line[0].flags, MS_LINE_CRLF | MS_LINE_TRUNCATED);
    assert_int_equal(r.line[0].len, 16);
    assert_int_equal(r.line[0].full, 30);

    /* a line that went out in pieces and is flushed unterminated */
    l.pieces = true;
    r.n = 0;
    feed_str(&l, &r, "0123456789abcdefghijABCDEFGHIJ");
    feed_str(&l, &r, "KLMNOPQRSTUVWXYZ");
    assert_int_equal(ms_lines_flush(&l, rec_cb, &r), MS_LINES_CONTINUE);
    assert_int_equal(r.line[r.n - 1].flags, MS_LINE_UNTERMINATED | MS_LINE_CONT);
    joined(&r, 0, out, sizeof out, &n);
    assert_int_equal(n, 46);
    assert_memory_equal(out, "0123456789abcdefghijABCDEFGHIJKLMNOPQRSTUVWXYZ", n);
    ms_lines_free(&l);
    assert_int_equal(c.live, 0);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crlf_and_bare_lf),
        cmocka_unit_test(test_split_two_feeds),
        cmocka_unit_test(test_split_three_feeds),
        cmocka_unit_test(test_zero_length_lines),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_raw_spanning_feeds),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

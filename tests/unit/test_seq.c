/* test_seq.c — unit tests for putting a TCP direction back in order (ms_seq). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counting_alloc.h"
#include "ms_seq.h"

/* What the consumer received: the bytes in order, and each loss with the
 * number of bytes delivered before it. */
typedef struct {
    uint8_t out[4096];
    size_t n;
    unsigned calls;
    uint64_t lost_total;
    unsigned losses;
    size_t lost_at[16];
    uint64_t lost_len[16];
} sink;

static void collect(void *ctx, const uint8_t *p, size_t n, uint64_t lost)
{
    sink *k = ctx;
    assert_true(n > 0);
    if (lost) {
        assert_true(k->losses < 16);
        k->lost_at[k->losses] = k->n;
        k->lost_len[k->losses] = lost;
        k->losses++;
        k->lost_total += lost;
    }
    if (k->n + n <= sizeof k->out) /* long runs are only counted */
        memcpy(k->out + k->n, p, n);
    k->n += n;
    k->calls++;
}

typedef struct {
    counter c;
    ms_allocator a;
    ms_seq s;
    sink k;
} fixture;

static void fx_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->a = (ms_allocator){ count_realloc, count_free, &f->c };
    ms_seq_init(&f->s, &f->a);
}

static void fx_done(fixture *f)
{
    ms_seq_free(&f->s);
    assert_int_equal(f->c.live, 0);
}

static void seg(fixture *f, uint32_t seq, const char *text)
{
    size_t n = strlen(text);
    ms_seq_segment(&f->s, seq, (const uint8_t *)text, n, (uint32_t)n, collect, &f->k);
}

static void assert_out(fixture *f, const char *text)
{
    assert_int_equal(f->k.n, strlen(text));
    assert_true(f->k.n <= sizeof f->k.out);
    assert_memory_equal(f->k.out, text, f->k.n);
}

static void test_first_segment_without_syn(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    seg(&f, 1000, "hello ");
    assert_true(f.s.init);
    assert_int_equal(f.s.next, 1006);
    seg(&f, 1006, "world");
    assert_out(&f, "hello world");
    assert_int_equal(f.k.losses, 0);
    fx_done(&f);
}

static void test_syn_then_data(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 5000);
    assert_int_equal(f.s.next, 5001);
    seg(&f, 5001, "EHLO x\r\n");
    assert_int_equal(f.s.next, 5009);
    /* a segment without payload changes nothing */
    ms_seq_segment(&f.s, 5009, NULL, 0, 0, collect, &f.k);
    assert_int_equal(f.s.next, 5009);
    assert_int_equal(f.k.calls, 1);
    fx_done(&f);
}

static void test_retransmission(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 5000);
    seg(&f, 5001, "0123456789abcdefghij");
    seg(&f, 5001, "0123456789abcdefghij");
    seg(&f, 5005, "456789abcd");   /* a piece inside what was already seen */
    seg(&f, 5011, "bcdefghij");    /* ending exactly at next */
    assert_out(&f, "0123456789abcdefghij");
    assert_int_equal(f.k.calls, 1);
    fx_done(&f);
}

static void test_retransmission_with_other_bytes(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    seg(&f, 1, "AUTH PLAIN x\r\n");
    /* the same sequence numbers, other bytes: the first copy stands */
    seg(&f, 1, "QUIT\r\nXXXXXXXX");
    seg(&f, 15, "QUIT\r\n");
    assert_out(&f, "AUTH PLAIN x\r\nQUIT\r\n");
    fx_done(&f);
}

static void test_partial_overlap(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 5000);
    seg(&f, 5001, "0123456789");
    seg(&f, 5006, "56789ABCDE");
    /* the new bytes came with a retransmission: they wait for an original
     * or for the peer's acknowledgement */
    assert_out(&f, "0123456789");
    seg(&f, 5011, "ABCDE");
    assert_int_equal(f.s.next, 5016);
    seg(&f, 5015, "EF");
    ms_seq_ack(&f.s, 5017, collect, &f.k);
    assert_out(&f, "0123456789ABCDEF");
    fx_done(&f);
}

static void test_reordered_segments_are_put_back(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 100);
    seg(&f, 111, "PLAIN AGJv\r\n");   /* early: held */
    seg(&f, 123, "QUIT\r\n");         /* early too */
    assert_int_equal(f.k.calls, 0);
    assert_true(ms_seq_waiting(&f.s));
    seg(&f, 101, "AUTH ");            /* not yet contiguous: 101..106, hole 106..111 */
    assert_out(&f, "AUTH ");
    seg(&f, 106, "XYZW ");            /* fills the hole: everything flows */
    assert_out(&f, "AUTH XYZW PLAIN AGJv\r\nQUIT\r\n");
    assert_false(ms_seq_waiting(&f.s));
    assert_int_equal(f.k.losses, 0);
    fx_done(&f);
}

static void test_overlapping_held_segments_first_wins(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    seg(&f, 5, "56789");
    seg(&f, 5, "xxxxx");   /* a copy with other bytes: ignored */
    seg(&f, 7, "78ab");    /* overlaps the held one (its "a" loses to "9") and goes past it */
    seg(&f, 1, "1234");
    /* "b" was carried only by a retransmission: it waits for an original */
    assert_out(&f, "123456789");
    ms_seq_flush(&f.s, collect, &f.k);
    assert_out(&f, "123456789b");
    assert_int_equal(f.k.losses, 0);
    fx_done(&f);
}

static void test_originals_beat_overlapping_retransmissions(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    /* Reordered segments, each followed by a longer copy of other bytes over
     * it: the originals make the stream, whatever order they came in. */
    const char *stream = "EHLO x\r\nAUTH PLAIN AGFsaWNlAFNlY3JldDE=\r\nNOOP\r\nQUIT\r\n";
    size_t n = strlen(stream);
    ms_seq_syn(&f.s, 0);
    struct { uint32_t at, len; } order[] = { { 37, 10 }, { 20, 17 }, { 47, n - 47 }, { 0, 20 } };
    char junk[64];
    memset(junk, '#', sizeof junk);
    for (size_t i = 0; i < 4; i++) {
        uint32_t at = order[i].at, len = order[i].len;
        ms_seq_segment(&f.s, at + 1, (const uint8_t *)stream + at, len, len, collect, &f.k);
        uint32_t jat = at > 4 ? at - 4 : 0, jlen = len + 4 + (at > 4 ? 4 : 0);
        if (jat + jlen > n)
            jlen = (uint32_t)n - jat;
        ms_seq_segment(&f.s, jat + 1, (const uint8_t *)junk, jlen, jlen, collect, &f.k);
    }
    assert_out(&f, stream);
    assert_int_equal(f.k.losses, 0);
    fx_done(&f);
}

static void test_ack_releases_a_retransmission(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    seg(&f, 1, "MAIL FROM:<a@b>\r\n");   /* 1..18 */
    /* a repacketised retransmission: the old bytes and new ones */
    seg(&f, 1, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
    assert_out(&f, "MAIL FROM:<a@b>\r\n");
    ms_seq_ack(&f.s, 34, collect, &f.k);   /* the peer took them */
    assert_out(&f, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
    assert_int_equal(f.k.losses, 0);
    fx_done(&f);
}

static void test_ack_gives_up_a_hole(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    seg(&f, 1, "a LOGIN {10}\r\n");      /* 1..15 */
    seg(&f, 25, "b NOOP\r\n");           /* 25..33: 15..25 never captured */
    assert_out(&f, "a LOGIN {10}\r\n");
    ms_seq_ack(&f.s, 15, collect, &f.k); /* the peer has no more than we do */
    assert_int_equal(f.k.losses, 0);
    ms_seq_ack(&f.s, 33, collect, &f.k); /* the peer had the hole: it is lost */
    assert_out(&f, "a LOGIN {10}\r\nb NOOP\r\n");
    assert_int_equal(f.k.losses, 1);
    assert_int_equal(f.k.lost_at[0], 14);
    assert_int_equal(f.k.lost_len[0], 10);
    fx_done(&f);
}

static void test_ack_without_held_data_marks_the_loss(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    seg(&f, 1, "one\r\n");
    ms_seq_ack(&f.s, 20, collect, &f.k); /* 14 bytes the capture missed */
    assert_int_equal(f.k.calls, 1);
    seg(&f, 20, "two\r\n");              /* in order now, with the loss before it */
    assert_out(&f, "one\r\ntwo\r\n");
    assert_int_equal(f.k.losses, 1);
    assert_int_equal(f.k.lost_len[0], 14);
    fx_done(&f);
}

static void test_flush_gives_up_every_hole(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    seg(&f, 1, "ab");
    seg(&f, 10, "cd");
    seg(&f, 20, "ef");
    ms_seq_flush(&f.s, collect, &f.k);
    assert_out(&f, "abcdef");
    assert_int_equal(f.k.losses, 2);
    assert_int_equal(f.k.lost_len[0], 7);
    assert_int_equal(f.k.lost_len[1], 8);
    assert_false(ms_seq_waiting(&f.s));
    fx_done(&f);
}

static void test_hold_is_bounded(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    /* a hole at 1 that never fills, then more early segments than may be held */
    char b[2] = "x";
    for (unsigned i = 0; i < MS_SEQ_HOLD_SEGMENTS + 5; i++) {
        b[0] = (char)('A' + (i % 26));
        seg(&f, 100 + i, b);
        assert_true(f.s.held_count <= MS_SEQ_HOLD_SEGMENTS);
    }
    /* the hold overflowed: the hole was given up and the data went through */
    assert_int_equal(f.k.losses, 1);
    assert_int_equal(f.k.lost_len[0], 99);
    assert_int_equal(f.k.n, MS_SEQ_HOLD_SEGMENTS + 5);
    assert_true(f.c.peak < 64 * 1024);
    fx_done(&f);

    /* the byte bound as well */
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    static uint8_t big[3000];
    memset(big, 'z', sizeof big);
    uint32_t at = 1000;
    for (int i = 0; i < 100; i++, at += sizeof big)
        ms_seq_segment(&f.s, at, big, sizeof big, sizeof big, collect, &f.k);
    assert_true(f.c.peak <= MS_SEQ_HOLD_BYTES + 64 * 1024);
    ms_seq_flush(&f.s, collect, &f.k);
    assert_int_equal(f.k.n, 100 * sizeof big);
    assert_int_equal(f.k.lost_total, 999);
    fx_done(&f);
}

static void test_truncated_capture(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0);
    /* a 20-byte segment of which the capture kept 6 (snaplen) */
    ms_seq_segment(&f.s, 1, (const uint8_t *)"AUTH P", 6, 20, collect, &f.k);
    seg(&f, 21, "QUIT\r\n");
    assert_out(&f, "AUTH PQUIT\r\n");
    assert_int_equal(f.k.losses, 1);
    assert_int_equal(f.k.lost_at[0], 6);
    assert_int_equal(f.k.lost_len[0], 14);
    fx_done(&f);
}

static void test_wraparound(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ms_seq_syn(&f.s, 0xFFFFFFF0u);
    assert_int_equal(f.s.next, 0xFFFFFFF1u);
    seg(&f, 0xFFFFFFF1u, "0123456789abcdefghijklmnopqrstuv"); /* 32 bytes across the wrap */
    assert_int_equal(f.s.next, 0x11u);
    seg(&f, 0xFFFFFFF1u, "0123456789abcdefghijklmnopqrstuv"); /* retransmission across it */
    seg(&f, 0x16u, "late");                                   /* early, across nothing */
    seg(&f, 0x11u, "WXYZ!");
    assert_out(&f, "0123456789abcdefghijklmnopqrstuvWXYZ!late");
    fx_done(&f);

    /* a hole across the wrap, given up by an acknowledgement */
    fx_init(&f);
    seg(&f, 0xFFFFFFF0u, "12345678");
    seg(&f, 0x10u, "tail");
    ms_seq_ack(&f.s, 0x14u, collect, &f.k);
    assert_out(&f, "12345678tail");
    assert_int_equal(f.k.lost_len[0], 0x18u);
    fx_done(&f);

    /* a SYN at the very top */
    fx_init(&f);
    ms_seq_syn(&f.s, 0xFFFFFFFFu);
    assert_int_equal(f.s.next, 0);
    seg(&f, 0, "abc");
    assert_out(&f, "abc");
    fx_done(&f);
}

/* Overlapping bytes that disagree with their first copy are counted, by the
 * length of the disagreeing ranges; bytes that agree, keep-alives and
 * partial covers of delivered segments are not. */
static uint64_t conflict(fixture *f)
{
    uint64_t n;
    bool any = ms_seq_take_conflict(&f->s, &n);
    assert_int_equal(any, n != 0);
    return n;
}

static void test_conflicts_with_delivered_bytes(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    seg(&f, 100, "AUTH alice\r\n");          /* 12 bytes: 100..111 */
    seg(&f, 112, "QUIT\r\n");                /* 112..117 */
    seg(&f, 100, "AUTH alice\r\n");          /* the same again */
    assert_int_equal(conflict(&f), 0);
    seg(&f, 100, "AUTH malle\r\n");          /* other bytes, same place */
    assert_int_equal(conflict(&f), 12);
    assert_int_equal(conflict(&f), 0);       /* taken */
    seg(&f, 100, "AUTH alice\r\nQUIT\r\n");  /* covers both, agrees */
    assert_int_equal(conflict(&f), 0);
    seg(&f, 100, "AUTH alice\r\nQUIX\r\n");  /* the second disagrees */
    assert_int_equal(conflict(&f), 6);
    seg(&f, 104, " mallory\r\nQU");           /* covers neither whole: unchecked */
    assert_int_equal(conflict(&f), 0);
    ms_seq_segment(&f.s, 117, (const uint8_t *)"", 1, 1, collect, &f.k); /* a keep-alive's zero */
    assert_int_equal(conflict(&f), 0);
    assert_out(&f, "AUTH alice\r\nQUIT\r\n"); /* the first copy stands */
    fx_done(&f);
}

static void test_conflicts_with_held_bytes(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    seg(&f, 100, "EHLO c\r\n");              /* 100..107 */
    seg(&f, 113, "alice\r\n");               /* early (113..119): held */
    seg(&f, 113, "alice\r\n");               /* agrees */
    assert_int_equal(conflict(&f), 0);
    seg(&f, 108, "AUTH mallory\r\n");        /* 108..121: "mallory" over the held "alice\r\n" */
    assert_int_equal(conflict(&f), 7);
    seg(&f, 108, "AUTH alice\r\n");          /* the original, over the held "AUTH " and "alice\r\n" */
    assert_int_equal(conflict(&f), 0);
    ms_seq_ack(&f.s, 120, collect, &f.k);   /* the server had it all: what is held is the stream */
    assert_out(&f, "EHLO c\r\nAUTH alice\r\n");
    fx_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_segment_without_syn),
        cmocka_unit_test(test_syn_then_data),
        cmocka_unit_test(test_retransmission),
        cmocka_unit_test(test_retransmission_with_other_bytes),
        cmocka_unit_test(test_partial_overlap),
        cmocka_unit_test(test_reordered_segments_are_put_back),
        cmocka_unit_test(test_overlapping_held_segments_first_wins),
        cmocka_unit_test(test_originals_beat_overlapping_retransmissions),
        cmocka_unit_test(test_ack_releases_a_retransmission),
        cmocka_unit_test(test_ack_gives_up_a_hole),
        cmocka_unit_test(test_ack_without_held_data_marks_the_loss),
        cmocka_unit_test(test_flush_gives_up_every_hole),
        cmocka_unit_test(test_hold_is_bounded),
        cmocka_unit_test(test_truncated_capture),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_conflicts_with_delivered_bytes),
        cmocka_unit_test(test_conflicts_with_held_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

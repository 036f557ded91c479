/* test_seq.c — unit tests for TCP sequence accounting (ms_seq). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ms_seq.h"

static void check_span(ms_seq_span sp, size_t skip, size_t take, bool gap)
{
    assert_int_equal(sp.skip, skip);
    assert_int_equal(sp.take, take);
    assert_int_equal(sp.gap, gap);
}

static void test_first_segment_without_syn(void **state)
{
    (void)state;
    ms_seq s = { 0 };
    check_span(ms_seq_segment(&s, 1000, 50), 0, 50, false);
    assert_true(s.init);
    assert_int_equal(s.next, 1050);
    check_span(ms_seq_segment(&s, 1050, 10), 0, 10, false);
    assert_int_equal(s.next, 1060);
}

static void test_syn_then_data(void **state)
{
    (void)state;
    ms_seq s = { 0 };
    ms_seq_syn(&s, 5000);
    assert_int_equal(s.next, 5001);
    check_span(ms_seq_segment(&s, 5001, 20), 0, 20, false);
    assert_int_equal(s.next, 5021);
    /* a segment without payload changes nothing */
    check_span(ms_seq_segment(&s, 5021, 0), 0, 0, false);
    assert_int_equal(s.next, 5021);
}

static void test_retransmission(void **state)
{
    (void)state;
    ms_seq s = { 0 };
    ms_seq_syn(&s, 5000);
    ms_seq_segment(&s, 5001, 20);
    check_span(ms_seq_segment(&s, 5001, 20), 20, 0, false);
    assert_int_equal(s.next, 5021);
    /* a piece inside what was already seen */
    check_span(ms_seq_segment(&s, 5005, 10), 10, 0, false);
    assert_int_equal(s.next, 5021);
    /* ending exactly at next */
    check_span(ms_seq_segment(&s, 5011, 10), 10, 0, false);
    assert_int_equal(s.next, 5021);
}

static void test_partial_overlap(void **state)
{
    (void)state;
    ms_seq s = { 0 };
    ms_seq_syn(&s, 5000);
    ms_seq_segment(&s, 5001, 20);
    check_span(ms_seq_segment(&s, 5011, 20), 10, 10, false);
    assert_int_equal(s.next, 5031);
    check_span(ms_seq_segment(&s, 5030, 2), 1, 1, false);
    assert_int_equal(s.next, 5032);
}

static void test_gap(void **state)
{
    (void)state;
    ms_seq s = { 0 };
    ms_seq_syn(&s, 5000);
    ms_seq_segment(&s, 5001, 30);
    check_span(ms_seq_segment(&s, 5100, 10), 0, 10, true);
    assert_int_equal(s.next, 5110);
    /* the stream continues normally after the hole */
    check_span(ms_seq_segment(&s, 5110, 5), 0, 5, false);
    assert_int_equal(s.next, 5115);
}

static void test_wraparound(void **state)
{
    (void)state;
    ms_seq s = { 0 };
    ms_seq_syn(&s, 0xFFFFFFF0u);
    assert_int_equal(s.next, 0xFFFFFFF1u);
    check_span(ms_seq_segment(&s, 0xFFFFFFF1u, 32), 0, 32, false);
    assert_int_equal(s.next, 0x11u);
    /* a retransmission across the wrap */
    check_span(ms_seq_segment(&s, 0xFFFFFFF1u, 32), 32, 0, false);
    assert_int_equal(s.next, 0x11u);
    check_span(ms_seq_segment(&s, 0x11u, 5), 0, 5, false);
    assert_int_equal(s.next, 0x16u);

    /* partial overlap across the wrap */
    ms_seq t = { 0 };
    check_span(ms_seq_segment(&t, 0xFFFFFFFAu, 4), 0, 4, false);
    assert_int_equal(t.next, 0xFFFFFFFEu);
    check_span(ms_seq_segment(&t, 0xFFFFFFFCu, 10), 2, 8, false);
    assert_int_equal(t.next, 0x6u);
    /* a gap across the wrap */
    ms_seq u = { 0 };
    ms_seq_segment(&u, 0xFFFFFFF0u, 8);
    check_span(ms_seq_segment(&u, 0x10u, 4), 0, 4, true);
    assert_int_equal(u.next, 0x14u);
    /* a SYN at the very top */
    ms_seq v = { 0 };
    ms_seq_syn(&v, 0xFFFFFFFFu);
    assert_int_equal(v.next, 0);
    check_span(ms_seq_segment(&v, 0, 7), 0, 7, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_segment_without_syn),
        cmocka_unit_test(test_syn_then_data),
        cmocka_unit_test(test_retransmission),
        cmocka_unit_test(test_partial_overlap),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_wraparound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

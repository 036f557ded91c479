/* session_fixture.h — drive a core session and record the facts it emits.
 * Shared by the unit tests; header-only, every function static. */
#ifndef SESSION_FIXTURE_H
#define SESSION_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_alloc.h"
#include "ms_sasl.h"
#include "ms_session.h"

/* not every test file uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

/* ---- a fact recorder ------------------------------------------------------- */

#define MAX_FACTS 64
#define MAX_DATA 512

typedef struct {
    ms_fact_kind kind;
    int ival;
    int ival2;
    uint32_t frame;
    uint8_t data[MAX_DATA];
    size_t len;
    uint32_t ref_frame;
    uint32_t count;
    ms_creds creds;      /* AUTH_REQUEST and AUTH_RESULT: a copy of the attempt */
    bool has_creds;
} rec_fact;

typedef struct {
    counter mem;
    ms_allocator alloc;
    ms_session *s;
    rec_fact f[MAX_FACTS];
    size_t n;
    uint32_t frame;      /* the frame being fed */
    uint64_t cleartext;  /* bytes fed through ms_session_segment */
} fixture;

static void sink(void *ctx, const ms_fact *fact)
{
    fixture *fx = ctx;
    assert_true(fx->n < MAX_FACTS);
    rec_fact *r = &fx->f[fx->n++];
    r->kind = fact->kind;
    r->ival = fact->ival;
    r->ival2 = fact->ival2;
    r->frame = fx->frame;
    assert_true(fact->len <= MAX_DATA);
    assert_true(fact->len == 0 || fact->data != NULL);
    if (fact->len)
        memcpy(r->data, fact->data, fact->len);
    r->len = fact->len;
    r->ref_frame = fact->ref_frame;
    r->count = fact->count;
    r->has_creds = fact->obj != NULL &&
                   (fact->kind == MS_FACT_AUTH_REQUEST || fact->kind == MS_FACT_AUTH_RESULT);
    if (r->has_creds)
        r->creds = *(const ms_creds *)fact->obj;
}

static fixture *start(ms_proto port_proto, bool implicit_tls, ms_detect how, size_t max_line)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->alloc = (ms_allocator){ count_realloc, count_free, &fx->mem };
    ms_session_config cfg = { port_proto, implicit_tls, how, max_line };
    fx->s = ms_session_new(&fx->alloc, &cfg);
    assert_non_null(fx->s);
    return fx;
}

static void finish(fixture *fx)
{
    ms_session_free(fx->s);
    assert_int_equal(fx->mem.live, 0);
    free(fx);
}

static void seg_bytes(fixture *fx, ms_dir dir, uint32_t frame, const uint8_t *p, size_t n, uint64_t lost)
{
    ms_feed_ctx ctx = { frame, sink, fx };
    fx->frame = frame;
    /* feed a private heap copy so that valgrind catches reads past the end */
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, p, n);
    ms_session_segment(fx->s, dir, copy, n, lost, &ctx);
    free(copy);
}

/* Feed a cleartext segment and count its bytes. */
static void seg(fixture *fx, ms_dir dir, uint32_t frame, const char *str)
{
    seg_bytes(fx, dir, frame, (const uint8_t *)str, strlen(str), 0);
    fx->cleartext += strlen(str);
}

/* A segment after lost bytes the capture missed. */
static void seg_lost(fixture *fx, ms_dir dir, uint32_t frame, uint64_t lost, const char *str)
{
    seg_bytes(fx, dir, frame, (const uint8_t *)str, strlen(str), lost);
    fx->cleartext += strlen(str);
}

static void seg_gap(fixture *fx, ms_dir dir, uint32_t frame, const char *str)
{
    seg_lost(fx, dir, frame, 7, str);
}

/* A ClientHello record header and the start of its body. */
static const uint8_t client_hello[] = { 0x16, 0x03, 0x01, 0x00, 0xab, 0x01, 0x00, 0x00,
                                        0xa7, 0x03, 0x03, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a };
static const uint8_t server_hello[] = { 0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00,
                                        0x76, 0x03, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55 };

static void tls(fixture *fx, ms_dir dir, uint32_t frame)
{
    if (dir == MS_DIR_C2S)
        seg_bytes(fx, dir, frame, client_hello, sizeof client_hello, 0);
    else
        seg_bytes(fx, dir, frame, server_hello, sizeof server_hello, 0);
}

static void fact_is(const fixture *fx, size_t i, ms_fact_kind kind, int ival, uint32_t frame)
{
    assert_true(i < fx->n);
    assert_int_equal(fx->f[i].kind, kind);
    assert_int_equal(fx->f[i].ival, ival);
    assert_int_equal(fx->f[i].frame, frame);
}

static void fact_data_is(const fixture *fx, size_t i, const char *data)
{
    assert_true(i < fx->n);
    assert_int_equal(fx->f[i].len, strlen(data));
    assert_memory_equal(fx->f[i].data, data, strlen(data));
}

static size_t count_kind(const fixture *fx, ms_fact_kind kind)
{
    size_t k = 0;
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].kind == kind)
            k++;
    return k;
}

#define C2S MS_DIR_C2S
#define S2C MS_DIR_S2C

#endif

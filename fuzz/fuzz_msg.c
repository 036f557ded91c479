/* fuzz_msg.c — the MIME / header / attachment / URL scanner (ms_msg.h), fed
 * one message in random chunks, with random (often tiny) limits.
 *
 * Input: 8 header bytes, then the message.
 *   h0 bit 0: default limits (NULL); bit 1: end as truncated;
 *      bit 2: a third run with allocation failures after h7 allocations
 *             (only with MS_FUZZ_OOM=1 in the environment)
 *   h1 max_header = 8 * h1   h2 max_depth = h2 % 40   h3 max_parts = h3
 *   h4 max_urls = h4 % 80    h5 max_url = 4 * h5      h6 split seed
 * The message is scanned twice, in one piece and in random chunks: the header
 * says it may be "split anywhere", so both runs must report the same headers,
 * attachments (name, type, size, SHA-256), URLs and limits. Also checked: the
 * strings are NUL-terminated where the header says so, the bytes streamed to
 * attachment_data are exactly the ones the attachment's size and SHA-256
 * describe, each URL comes once and within max_url, each limit once.
 */
#include "fuzz_common.h"
#include "ms_msg.h"
#include "ms_sha256.h"

#define MAX_SEEN_URLS 128

typedef struct {
    uint64_t h;          /* FNV-1a over the events */
    unsigned events;
    size_t max_url;
    unsigned max_urls;
    bool limit_seen[4];
    /* the attachment being streamed */
    ms_sha256 sha;
    bool sha_open;
    uint64_t streamed;
    /* URLs reported */
    char *urls[MAX_SEEN_URLS];
    size_t url_lens[MAX_SEEN_URLS];
    unsigned nurls;
} msg_ctx;

static void mix(msg_ctx *c, const void *p, size_t n)
{
    fz_mix(&c->h, p, n);
}

static void mix_u64(msg_ctx *c, uint64_t v) { mix(c, &v, sizeof v); }

static void on_header(void *ctx, ms_hdr_kind k, const char *value, size_t len, bool cut)
{
    msg_ctx *c = ctx;
    FZ_CHECK(k >= MS_HDR_FROM && k < MS_HDR_KIND_END, "msg: header kind out of range");
    FZ_CHECK(value && value[len] == '\0', "msg: a header value is not NUL-terminated");
    fz_touch(value, len + 1);
    c->events++;
    mix_u64(c, 1);
    mix_u64(c, (uint64_t)k);
    mix_u64(c, len);
    mix(c, value, len);
    mix_u64(c, cut);
}

static void on_attachment_data(void *ctx, const uint8_t *p, size_t n)
{
    msg_ctx *c = ctx;
    fz_touch(p, n);
    if (!c->sha_open) {
        ms_sha256_init(&c->sha);
        c->sha_open = true;
        c->streamed = 0;
    }
    ms_sha256_update(&c->sha, p, n);
    c->streamed += n;
}

static void on_attachment(void *ctx, const ms_msg_attachment *a)
{
    msg_ctx *c = ctx;
    FZ_CHECK(a->filename && a->filename[a->filename_len] == '\0', "msg: file name not NUL-terminated");
    FZ_CHECK(a->content_type && a->content_type[a->content_type_len] == '\0',
             "msg: content type not NUL-terminated");
    FZ_CHECK(a->filename_len > 0, "msg: an attachment without a file name");
    fz_touch(a->filename, a->filename_len + 1);
    fz_touch(a->content_type, a->content_type_len + 1);
    for (size_t i = 0; i < a->content_type_len; i++)
        FZ_CHECK(!(a->content_type[i] >= 'A' && a->content_type[i] <= 'Z'), "msg: content type not lowercased");
    /* what was streamed is what the size and hash describe */
    uint8_t digest[32];
    if (!c->sha_open) {
        ms_sha256_init(&c->sha);
        c->streamed = 0;
    }
    ms_sha256_final(&c->sha, digest);
    c->sha_open = false;
    FZ_CHECK(c->streamed == a->size, "msg: attachment size differs from the bytes streamed");
    FZ_CHECK(memcmp(digest, a->sha256, 32) == 0, "msg: attachment SHA-256 differs from the bytes streamed");
    c->streamed = 0;
    c->events++;
    mix_u64(c, 2);
    mix(c, a->filename, a->filename_len);
    mix(c, a->content_type, a->content_type_len);
    mix_u64(c, a->size);
    mix(c, a->sha256, 32);
    mix_u64(c, a->truncated);
    mix_u64(c, a->depth);
}

static void on_url(void *ctx, const char *url, size_t len)
{
    msg_ctx *c = ctx;
    FZ_CHECK(url && url[len] == '\0', "msg: a URL is not NUL-terminated");
    fz_touch(url, len + 1);
    FZ_CHECK(len > 0 && len <= c->max_url, "msg: a URL longer than max_url");
    for (unsigned i = 0; i < c->nurls; i++)
        FZ_CHECK(c->url_lens[i] != len || memcmp(c->urls[i], url, len) != 0, "msg: a URL reported twice");
    FZ_CHECK(c->nurls < c->max_urls, "msg: more URLs than max_urls");
    if (c->nurls < MAX_SEEN_URLS) {
        c->urls[c->nurls] = (char *)fz_dup((const uint8_t *)url, len);
        c->url_lens[c->nurls] = len;
    }
    c->nurls++;
    c->events++;
    mix_u64(c, 3);
    mix(c, url, len);
}

static void on_limit(void *ctx, const char *what)
{
    msg_ctx *c = ctx;
    static const char *const names[4] = { "depth", "parts", "urls", "header" };
    fz_touch_str(what);
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(what, names[i]) == 0)
            k = i;
    FZ_CHECK(k >= 0, "msg: an unknown limit");
    FZ_CHECK(!c->limit_seen[k], "msg: a limit reported twice");
    c->limit_seen[k] = true;
    c->events++;
    mix_u64(c, 4);
    mix_u64(c, (uint64_t)k);
}

static const ms_msg_callbacks callbacks = { on_header, on_attachment, on_url, on_limit, on_attachment_data };

static size_t clampz(size_t v, size_t dflt, size_t lo)
{
    if (v == 0)
        v = dflt;
    return v < lo ? lo : v;
}

/* One scan; returns the event digest. split: 0 one piece, else the seed. */
static void msg_piece(void *ctx, const uint8_t *p, size_t n)
{
    ms_msg_feed((ms_msg *)ctx, p, n);
}

static uint64_t scan(const ms_msg_limits *lim, const uint8_t *p, size_t n, bool truncated, uint32_t split,
                     size_t fail_after, unsigned *events)
{
    fz_mem mem;
    ms_allocator a = fz_allocator(&mem);
    mem.fail_after = fail_after;
    msg_ctx c;
    memset(&c, 0, sizeof c);
    c.h = 1469598103934665603ull;
    c.max_url = lim ? clampz(lim->max_url, 512, 16) : 512;
    c.max_urls = lim ? (unsigned)clampz(lim->max_urls, 64, 1) : 64;
    ms_msg *m = ms_msg_new(&a, lim, &callbacks, &c);
    if (!m)
        FZ_CHECK(mem.failed, "msg: ms_msg_new failed without an allocation failure");
    fz_feed_pieces(p, n, split, msg_piece, m);
    ms_msg_end(m, truncated);
    ms_msg_feed(m, p, n); /* ignored after the end */
    ms_msg_free(m);
    if (c.sha_open)
        ms_sha256_discard(&c.sha);
    for (unsigned i = 0; i < c.nurls && i < MAX_SEEN_URLS; i++)
        free(c.urls[i]);
    fz_mem_done(&mem);
    *events = c.events;
    return c.h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h[8];
    for (int i = 0; i < 8; i++)
        h[i] = fz_u8(&in);
    ms_msg_limits lim = { (size_t)h[1] * 8, h[2] % 40u, h[3], h[4] % 80u, (size_t)h[5] * 4 };
    const ms_msg_limits *limp = (h[0] & 1) ? NULL : &lim;
    bool truncated = h[0] & 2;
    size_t n;
    const uint8_t *p = fz_bytes(&in, in.n, &n);

    unsigned e1, e2, e3;
    uint64_t one = scan(limp, p, n, truncated, 0, 0, &e1);
    uint64_t chunked = scan(limp, p, n, truncated, (uint32_t)h[6] + 1, 0, &e2);
    if (one != chunked || e1 != e2) {
        fprintf(stderr, "msg: one piece gave %u events, chunks (seed %u) gave %u\n", e1, h[6] + 1u, e2);
        FZ_CHECK(0, "msg: the result depends on how the message was split");
    }
    if ((h[0] & 4) && fz_oom_enabled())
        (void)scan(limp, p, n, truncated, (uint32_t)h[6] + 1, (size_t)h[7] + 1, &e3);
    return 0;
}

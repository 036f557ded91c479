/* fuzz_imap.c — the IMAP adapter (ms_imap.c) through the session: tagged
 * commands and responses, literals {n} and {n+} (LOGIN arguments, APPEND
 * messages, FETCH bodies) across segment splits, holes and retransmissions,
 * AUTHENTICATE, STARTTLS, IDLE, STORE/EXPUNGE/MOVE. The session is always
 * IMAP by its port (the header's protocol bits are ignored); otherwise the
 * input is the one fuzz_session reads (session_driver.h, fuzz/README.md).
 *
 * Every line of every chunk fed also goes through ms_literal_at_end (the
 * literal parser the adapter uses, ms_session_int.h) against a reference.
 */
#include "session_driver.h"
#include "ms_session_int.h"

static bool ref_literal(const uint8_t *p, size_t n, uint64_t *count)
{
    /* "{" 1*10DIGIT ["+"] "}" at the very end */
    if (n < 3 || p[n - 1] != '}')
        return false;
    size_t e = n - 1;
    if (p[e - 1] == '+')
        e--;
    size_t b = e;
    while (b > 0 && p[b - 1] >= '0' && p[b - 1] <= '9')
        b--;
    if (b == e || e - b > 10 || b == 0 || p[b - 1] != '{')
        return false;
    uint64_t v = 0;
    for (size_t i = b; i < e; i++)
        v = v * 10 + (uint64_t)(p[i] - '0');
    *count = v;
    return true;
}

static void lines_hook(sd_state *st, ms_dir dir, const uint8_t *p, size_t n)
{
    (void)st;
    (void)dir;
    while (n) {
        const uint8_t *lf = memchr(p, '\n', n);
        size_t len = lf ? (size_t)(lf - p) : n;
        size_t l = len && p[len - 1] == '\r' ? len - 1 : len;
        uint8_t *line = fz_dup(p, l);
        uint64_t a = 0, b = 0;
        bool x = ms_literal_at_end(line, l, &a), y = ref_literal(line, l, &b);
        FZ_CHECK(x == y && (!x || a == b), "imap: ms_literal_at_end differs from the reference");
        free(line);
        if (!lf)
            break;
        p += len + 1;
        n -= len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sd_run(data, size, MS_PROTO_IMAP, lines_hook);
    return 0;
}

/* fuzz_detect.c — protocol recognition and the shared token helpers
 * (ms_detect.h): first server and client lines, TLS record and Hello
 * look-alikes, and the small helpers every adapter runs on every line,
 * checked against plain reference implementations.
 *
 * Input: h0 picks a needle length for ms_ci_contains, then the bytes.
 */
#include "fuzz_common.h"
#include "ms_detect.h"

static bool ref_ci_contains(const uint8_t *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return true;
    for (size_t i = 0; i + n <= len; i++)
        if (ms_ci_prefix(p + i, len - i, needle))
            return true;
    return false;
}

static void guess_ok(ms_guess g)
{
    FZ_CHECK(g.proto >= MS_PROTO_UNKNOWN && g.proto <= MS_PROTO_IMAP, "detect: protocol out of range");
    FZ_CHECK(!g.strong || g.proto != MS_PROTO_UNKNOWN, "detect: a strong guess of nothing");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h0 = fz_u8(&in);
    size_t n;
    const uint8_t *src = fz_bytes(&in, in.n, &n);
    uint8_t *p = fz_dup(src, n);

    /* the first line, without its LF or CR LF */
    size_t fl = ms_first_line_len(p, n);
    const uint8_t *lf = n ? memchr(p, '\n', n) : NULL;
    size_t want = lf ? (size_t)(lf - p) : n;
    if (want > 0 && p[want - 1] == '\r') /* a CR just before the end goes too, LF or not */
        want--;
    FZ_CHECK(fl == want, "detect: ms_first_line_len");

    uint8_t *line = fz_dup(p, fl);
    guess_ok(ms_detect_server_line(line, fl));
    guess_ok(ms_detect_client_line(line, fl));
    free(line);
    guess_ok(ms_detect_server_line(p, n));
    guess_ok(ms_detect_client_line(p, n));

    bool tls = ms_looks_like_tls(p, n), hello = ms_looks_like_tls_hello(p, n);
    FZ_CHECK(!hello || tls, "detect: a TLS Hello that is no TLS record");
    for (size_t k = 0; k < n && k < 16; k++) {
        uint8_t *pre = fz_dup(p, k);
        (void)ms_looks_like_tls(pre, k);
        (void)ms_looks_like_tls_hello(pre, k);
        free(pre);
    }

    /* a token runs up to a space (or tab) or the end */
    size_t t = ms_token_len(p, n);
    size_t tw = 0;
    while (tw < n && p[tw] != ' ' && p[tw] != '\t')
        tw++;
    FZ_CHECK(t == tw, "detect: ms_token_len");

    /* a needle taken from the input itself, and a few fixed ones */
    size_t nl = n ? h0 % (n < 16 ? n + 1 : 17) : 0;
    char needle[17];
    memcpy(needle, p + (n - nl), nl);
    needle[nl] = '\0';
    if (strlen(needle) == nl) {
        FZ_CHECK(ms_ci_contains(p, n, needle) == ref_ci_contains(p, n, needle), "detect: ms_ci_contains");
    }
    static const char *const fixed[] = { "STARTTLS", "STLS", "trash", "AUTH", "" };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        FZ_CHECK(ms_ci_contains(p, n, fixed[i]) == ref_ci_contains(p, n, fixed[i]), "detect: ms_ci_contains");
    free(p);
    return 0;
}

/* fuzz_sasl.c — login decoding (ms_sasl.h): base64 both ways, the mechanism
 * name table, and every mechanism's message decoder (PLAIN, CRAM-MD5 with its
 * server challenge, DIGEST-MD5, XOAUTH2, OAUTHBEARER, SCRAM client-first,
 * NTLMSSP challenge and authenticate, APOP), each on the input as it is and
 * on its base64 decoding, as the session hands them over.
 *
 * Input: h0 where to split challenge (or APOP timestamp) from response,
 *        h1 how much smaller an output buffer to offer base64, then the message.
 * Checks: base64 round trips (encode then decode gives the bytes back; a
 * decode that succeeds re-encodes to something that decodes the same), a short
 * output buffer is refused rather than overrun, and every credential field
 * stays NUL-terminated within its array.
 */
#include "fuzz_common.h"
#include "ms_sasl.h"

static ms_creds *fresh(ms_creds *c)
{
    memset(c, 0xa5, sizeof *c); /* the decoders must not rely on zeroed memory */
    ms_creds_clear(c);
    fz_check_creds(c);
    return c;
}

/* Decode p[0..n) with exactly outcap bytes of room (a heap block of that size). */
static long b64_decode_into(const uint8_t *p, size_t n, size_t outcap, uint8_t **out)
{
    uint8_t *in = fz_dup(p, n);
    *out = malloc(outcap ? outcap : 1);
    long r = ms_b64_decode(in, n, outcap ? *out : NULL, outcap);
    free(in);
    return r;
}

static void base64(const uint8_t *p, size_t n, uint8_t shrink, uint8_t **dec, long *declen)
{
    size_t cap = n / 4 * 3 + 3;
    long r = b64_decode_into(p, n, cap, dec);
    FZ_CHECK(r >= -1 && (r < 0 || (size_t)r <= cap), "base64: decoded length out of range");
    *declen = r;
    if (r >= 0) {
        fz_touch(*dec, (size_t)r);
        /* a smaller buffer: refused, or the same result */
        size_t small = shrink < cap ? cap - shrink : 0;
        uint8_t *o2;
        long r2 = b64_decode_into(p, n, small, &o2);
        FZ_CHECK(r2 == -1 || (r2 == r && memcmp(o2, *dec, (size_t)r) == 0),
                 "base64: a smaller buffer gave another result");
        FZ_CHECK(r2 == -1 || (size_t)r2 <= small, "base64: wrote past outcap");
        free(o2);
        /* what decodes re-encodes to the canonical form, which decodes the same */
        size_t ecap = ((size_t)r + 2) / 3 * 4 + 1;
        char *enc = malloc(ecap);
        size_t el = ms_b64_encode(*dec, (size_t)r, enc, ecap);
        FZ_CHECK(el + 1 == ecap && enc[el] == '\0', "base64: encode length");
        uint8_t *back;
        long r3 = b64_decode_into((const uint8_t *)enc, el, el / 4 * 3 + 3, &back);
        FZ_CHECK(r3 == r && memcmp(back, *dec, (size_t)r) == 0, "base64: re-encoding does not decode the same");
        free(back);
        free(enc);
    }
    /* any bytes encode, and decode back to themselves */
    size_t need = (n + 2) / 3 * 4 + 1;
    char *enc = malloc(need);
    uint8_t *in = fz_dup(p, n);
    size_t el = ms_b64_encode(in, n, enc, need);
    FZ_CHECK(el + 1 == need, "base64: encode length");
    fz_touch(enc, el + 1);
    uint8_t *back;
    long r4 = b64_decode_into((const uint8_t *)enc, el, el / 4 * 3 + 3, &back);
    FZ_CHECK(r4 == (long)n && memcmp(back, p, n) == 0, "base64: encode then decode is not the identity");
    free(back);
    /* too small a buffer: 0, nothing written past it */
    if (need > 1) {
        size_t small = shrink % need;
        char *tiny = malloc(small ? small : 1);
        FZ_CHECK(ms_b64_encode(in, n, small ? tiny : NULL, small) == 0, "base64: encoded into too small a buffer");
        free(tiny);
    }
    free(in);
    free(enc);
}

/* Every mechanism's client message decoder on one message. */
static void mechanisms(const uint8_t *p, size_t n, size_t split, ms_creds *c)
{
    uint8_t *m = fz_dup(p, n);
    (void)ms_sasl_plain(m, n, fresh(c));
    fz_check_creds(c);
    (void)ms_sasl_digest_md5(m, n, fresh(c));
    fz_check_creds(c);
    (void)ms_sasl_xoauth2(m, n, fresh(c));
    fz_check_creds(c);
    (void)ms_sasl_oauthbearer(m, n, fresh(c));
    fz_check_creds(c);
    (void)ms_sasl_scram_client_first(m, n, fresh(c));
    fz_check_creds(c);
    /* NTLMSSP: a challenge from the first part, the AUTHENTICATE from all */
    uint8_t chal[8];
    int t = ms_ntlmssp_type(m, n);
    FZ_CHECK(t >= 0 && t <= 3, "ntlm: type out of range");
    (void)ms_ntlmssp_challenge(m, n, chal);
    (void)ms_ntlmssp_authenticate(m, n, NULL, fresh(c));
    fz_check_creds(c);
    if (n >= 8) {
        (void)ms_ntlmssp_authenticate(m, n, m + n - 8, fresh(c));
        fz_check_creds(c);
    }
    free(m);
    /* challenge and response (CRAM-MD5), timestamp and digest (APOP) */
    uint8_t *a = fz_dup(p, split), *b = fz_dup(p + split, n - split);
    (void)ms_sasl_cram_md5(a, split, b, n - split, fresh(c));
    fz_check_creds(c);
    (void)ms_apop_hash(a, split, b, n - split, fresh(c));
    fz_check_creds(c);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h0 = fz_u8(&in), h1 = fz_u8(&in);
    size_t n;
    const uint8_t *p = fz_bytes(&in, in.n, &n);
    size_t split = n ? h0 % (n + 1) : 0;
    ms_creds *c = malloc(sizeof *c);

    /* mechanism names, as the client wrote them */
    uint8_t *name = fz_dup(p, n < 64 ? n : 64);
    ms_mech mech = ms_sasl_mech_from_name(name, n < 64 ? n : 64);
    FZ_CHECK(mech >= MS_MECH_OTHER && mech <= MS_MECH_IMAP_LOGIN, "sasl: mechanism out of range");
    fz_touch_str(ms_mech_name(mech));
    free(name);

    uint8_t *dec = NULL;
    long declen = -1;
    base64(p, n, h1, &dec, &declen);
    mechanisms(p, n, split, c);
    if (declen >= 0) {
        size_t dn = (size_t)declen;
        mechanisms(dec, dn, split < dn ? split : dn, c);
    }
    /* the setters on any length */
    ms_str_small_set(&fresh(c)->username, p, n);
    ms_str_large_set(&c->material, p, n);
    fz_check_creds(c);
    free(dec);
    free(c);
    return 0;
}

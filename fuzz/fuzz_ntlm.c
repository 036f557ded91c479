/* fuzz_ntlm.c — NTLMSSP decoding (ms_sasl.h, ms_ntlm.c): the message type,
 * the CHALLENGE's server challenge, and the AUTHENTICATE's security buffers
 * (user, domain, workstation, LM and NT responses, Unicode or OEM) with and
 * without a challenge for the hashcat line.
 *
 * Input: h0 & 3 chooses a header the harness writes first, so the fuzzer
 * spends its time on the security buffers: 0 none (the input is the whole
 * message), 1 "NTLMSSP\0" + type 3, 2 "NTLMSSP\0" + type 2, 3 "NTLMSSP\0" +
 * type h1; h0 bit 2: no server challenge; then 8 challenge bytes; the rest.
 */
#include "fuzz_common.h"
#include "ms_sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t h0 = fz_u8(&in), h1 = fz_u8(&in);
    size_t cn;
    const uint8_t *chal_in = fz_bytes(&in, 8, &cn);
    uint8_t chal[8] = { 0 };
    memcpy(chal, chal_in, cn);
    size_t n;
    const uint8_t *p = fz_bytes(&in, in.n, &n);

    static const uint8_t sig[8] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0 };
    size_t head = (h0 & 3) ? 12 : 0;
    uint8_t *msg = malloc(head + n ? head + n : 1);
    if (head) {
        memcpy(msg, sig, 8);
        uint8_t type = (h0 & 3) == 1 ? 3 : (h0 & 3) == 2 ? 2 : h1;
        msg[8] = type;
        msg[9] = msg[10] = msg[11] = 0;
    }
    if (n)
        memcpy(msg + head, p, n);
    size_t len = head + n;

    int t = ms_ntlmssp_type(msg, len);
    FZ_CHECK(t >= 0 && t <= 3, "ntlm: type out of range");
    uint8_t got[8];
    if (ms_ntlmssp_challenge(msg, len, got))
        FZ_CHECK(t == 2, "ntlm: a challenge from a message that is no CHALLENGE");

    ms_creds *c = malloc(sizeof *c);
    memset(c, 0x5a, sizeof *c);
    ms_creds_clear(c);
    bool ok = ms_ntlmssp_authenticate(msg, len, (h0 & 4) ? NULL : chal, c);
    if (ok)
        FZ_CHECK(t == 3 && c->mech == MS_MECH_NTLM, "ntlm: an AUTHENTICATE from a message that is none");
    fz_check_creds(c);
    /* a hashcat line is never cut inside a hex pair: dropped whole if too long */
    if (c->hash.set)
        FZ_CHECK(!c->hash.truncated || c->hash.len < MS_STR_LARGE, "ntlm: hash line");
    free(c);
    free(msg);
    return 0;
}

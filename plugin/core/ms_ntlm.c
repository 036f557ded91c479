/* ms_ntlm.c — NTLMSSP (MS-NLMP section 2.2.1) message decoding (see ms_sasl.h).
 *
 * Only the fixed header fields and the security buffers named below are read;
 * every buffer is checked against the message length before it is touched.
 */
#include "ms_sasl.h"
#include "ms_strbuf.h"

#include <string.h>

#define NTLMSSP_NEGOTIATE_UNICODE 0x00000001u

#define NTLM_CHALLENGE_MIN 32    /* through ServerChallenge */
#define NTLM_AUTHENTICATE_MIN 64 /* through NegotiateFlags */

static const uint8_t ntlmssp_sig[8] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0 };

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

int ms_ntlmssp_type(const uint8_t *msg, size_t len)
{
    if (!msg || len < 12 || memcmp(msg, ntlmssp_sig, sizeof ntlmssp_sig) != 0)
        return 0;
    uint32_t t = le32(msg + 8);
    return (t >= 1 && t <= 3) ? (int)t : 0;
}

bool ms_ntlmssp_challenge(const uint8_t *msg, size_t len, uint8_t challenge[8])
{
    if (!challenge || len < NTLM_CHALLENGE_MIN || ms_ntlmssp_type(msg, len) != 2)
        return false;
    memcpy(challenge, msg + 24, 8);
    return true;
}

/* ---- bounded output: ms_strbuf, never cutting a piece (a UTF-8 sequence
 * or a hex pair stays whole) ---- */

static void ob_utf8(ms_strbuf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | (cp >> 18));
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    ms_sb_put(b, u, n);
}

#define REPLACEMENT_CHAR 0xfffdu

/* A string from the payload: UTF-16LE converted to UTF-8 (unpaired surrogates
 * and a dangling odd byte become U+FFFD), or OEM bytes copied as they are. */
static void ob_ntlm_string(ms_strbuf *b, const uint8_t *p, size_t n, bool unicode)
{
    if (!unicode) {
        for (size_t i = 0; i < n && !b->trunc; i++)
            ms_sb_put(b, p + i, 1);
        return;
    }
    size_t i = 0;
    while (i + 1 < n && !b->trunc) {
        uint32_t u = le16(p + i);
        i += 2;
        if (u >= 0xd800 && u <= 0xdbff) {
            if (i + 1 < n) {
                uint32_t lo = le16(p + i);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    i += 2;
                    ob_utf8(b, 0x10000u + ((u - 0xd800u) << 10) + (lo - 0xdc00u));
                    continue;
                }
            }
            ob_utf8(b, REPLACEMENT_CHAR);
        } else if (u >= 0xdc00 && u <= 0xdfff) {
            ob_utf8(b, REPLACEMENT_CHAR);
        } else {
            ob_utf8(b, u);
        }
    }
    if (i < n && !b->trunc)
        ob_utf8(b, REPLACEMENT_CHAR); /* odd length */
}

static void set_small(ms_str_small *f, const uint8_t *p, size_t n, bool unicode)
{
    ms_strbuf b = ms_sb_small(f, true);
    ob_ntlm_string(&b, p, n, unicode);
    ms_sb_done_small(f, &b);
}

/* ---- AUTHENTICATE_MESSAGE ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} ntlm_buf;

/* A security buffer: Len (2), MaxLen (2), BufferOffset (4) at msg + field.
 * An empty buffer's offset is not looked at. */
static bool sec_buf(const uint8_t *msg, size_t len, size_t field, ntlm_buf *out)
{
    size_t n = le16(msg + field);
    size_t off = le32(msg + field + 4);
    out->p = NULL;
    out->n = 0;
    if (n == 0)
        return true;
    if (off > len || n > len - off)
        return false;
    out->p = msg + off;
    out->n = n;
    return true;
}

bool ms_ntlmssp_authenticate(const uint8_t *msg, size_t len, const uint8_t *challenge,
                             ms_creds *c)
{
    ntlm_buf lm, nt, dom, user, ws;
    if (!c || len < NTLM_AUTHENTICATE_MIN || ms_ntlmssp_type(msg, len) != 3)
        return false;
    if (!sec_buf(msg, len, 12, &lm) || !sec_buf(msg, len, 20, &nt) ||
        !sec_buf(msg, len, 28, &dom) || !sec_buf(msg, len, 36, &user) ||
        !sec_buf(msg, len, 44, &ws))
        return false;
    bool unicode = (le32(msg + 60) & NTLMSSP_NEGOTIATE_UNICODE) != 0;

    c->mech = MS_MECH_NTLM;
    /* Empty names are left unset: an anonymous AUTHENTICATE has no user. */
    if (user.n)
        set_small(&c->username, user.p, user.n, unicode);
    if (dom.n)
        set_small(&c->realm, dom.p, dom.n, unicode);
    if (ws.n)
        set_small(&c->workstation, ws.p, ws.n, unicode);

    if (!challenge)
        return true;
    if (user.n == 0 && nt.n == 0)
        return true; /* anonymous: nothing to crack */
    if (nt.n < 24)
        return true; /* neither an NTLMv1 nor an NTLMv2 response */

    ms_strbuf b = ms_sb_large(&c->hash, true);
    ob_ntlm_string(&b, user.p, user.n, unicode);
    ms_sb_puts(&b, "::");
    ob_ntlm_string(&b, dom.p, dom.n, unicode);
    ms_sb_puts(&b, ":");
    if (nt.n == 24) {
        /* NetNTLMv1 (hashcat 5500): user::domain:lm:nt:challenge */
        ms_sb_hex(&b, lm.p, lm.n);
        ms_sb_puts(&b, ":");
        ms_sb_hex(&b, nt.p, nt.n);
        ms_sb_puts(&b, ":");
        ms_sb_hex(&b, challenge, 8);
    } else {
        /* NetNTLMv2 (hashcat 5600): user::domain:challenge:NTProofStr:blob */
        ms_sb_hex(&b, challenge, 8);
        ms_sb_puts(&b, ":");
        ms_sb_hex(&b, nt.p, 16);
        ms_sb_puts(&b, ":");
        ms_sb_hex(&b, nt.p + 16, nt.n - 16);
    }
    ms_sb_done_large(&c->hash, &b);
    return true;
}

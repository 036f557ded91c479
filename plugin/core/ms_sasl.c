/* ms_sasl.c — base64, SASL mechanism decoders and APOP (see ms_sasl.h).
 *
 * Every decoder validates the whole message first and only then writes into
 * the ms_creds, so a message that does not parse leaves the ms_creds as it
 * was (c->mech included). On success the decoder sets c->mech (except SCRAM,
 * whose message does not say which hash) and the fields it found; fields the
 * message does not carry are left alone. Outputs go through bounded builders:
 * a value longer than its field is cut at the field's size and the field's
 * truncated flag is set.
 */
#include "ms_sasl.h"
#include "ms_detect.h"
#include "ms_strbuf.h"

#include <limits.h>
#include <string.h>

/* ---- small helpers ---- */

static bool is_hex(uint8_t ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static bool all_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_hex(p[i]))
            return false;
    }
    return true;
}

static const uint8_t *find_byte(const uint8_t *p, size_t n, uint8_t ch)
{
    return n ? memchr(p, ch, n) : NULL;
}

/* ---- mechanism names ---- */

static const struct {
    const char *name;
    ms_mech mech;
} sasl_names[] = {
    { "PLAIN", MS_MECH_PLAIN },
    { "LOGIN", MS_MECH_LOGIN },
    { "CRAM-MD5", MS_MECH_CRAM_MD5 },
    { "DIGEST-MD5", MS_MECH_DIGEST_MD5 },
    { "NTLM", MS_MECH_NTLM },
    { "XOAUTH2", MS_MECH_XOAUTH2 },
    { "OAUTHBEARER", MS_MECH_OAUTHBEARER },
    { "SCRAM-SHA-1", MS_MECH_SCRAM_SHA_1 },
    { "SCRAM-SHA-1-PLUS", MS_MECH_SCRAM_SHA_1 },
    { "SCRAM-SHA-256", MS_MECH_SCRAM_SHA_256 },
    { "SCRAM-SHA-256-PLUS", MS_MECH_SCRAM_SHA_256 },
    { "GSSAPI", MS_MECH_GSSAPI },
    { "EXTERNAL", MS_MECH_EXTERNAL },
    { "ANONYMOUS", MS_MECH_ANONYMOUS },
};

ms_mech ms_sasl_mech_from_name(const uint8_t *name, size_t len)
{
    if (!name)
        return MS_MECH_OTHER;
    for (size_t i = 0; i < sizeof sasl_names / sizeof sasl_names[0]; i++) {
        if (ms_token_is(name, len, sasl_names[i].name))
            return sasl_names[i].mech;
    }
    return MS_MECH_OTHER;
}

const char *ms_mech_name(ms_mech m)
{
    switch (m) {
    case MS_MECH_PLAIN: return "PLAIN";
    case MS_MECH_LOGIN: return "LOGIN";
    case MS_MECH_CRAM_MD5: return "CRAM-MD5";
    case MS_MECH_DIGEST_MD5: return "DIGEST-MD5";
    case MS_MECH_NTLM: return "NTLM";
    case MS_MECH_XOAUTH2: return "XOAUTH2";
    case MS_MECH_OAUTHBEARER: return "OAUTHBEARER";
    case MS_MECH_SCRAM_SHA_1: return "SCRAM-SHA-1";
    case MS_MECH_SCRAM_SHA_256: return "SCRAM-SHA-256";
    case MS_MECH_GSSAPI: return "GSSAPI";
    case MS_MECH_EXTERNAL: return "EXTERNAL";
    case MS_MECH_ANONYMOUS: return "ANONYMOUS";
    case MS_MECH_USER_PASS: return "USER/PASS";
    case MS_MECH_APOP: return "APOP";
    case MS_MECH_IMAP_LOGIN: return "IMAP-LOGIN";
    case MS_MECH_OTHER:
    default: return "OTHER";
    }
}

/* ---- ms_creds and its fields ---- */

/* Only the fields' headers: the buffers (14 KB in all) are read up to len. */
#define STR_CLEAR(f) ((f).s[0] = '\0', (f).len = 0, (f).set = false, (f).truncated = false)

void ms_creds_clear(ms_creds *c)
{
    c->mech = MS_MECH_OTHER;
    STR_CLEAR(c->mech_name);
    STR_CLEAR(c->username);
    STR_CLEAR(c->authzid);
    STR_CLEAR(c->password);
    STR_CLEAR(c->realm);
    STR_CLEAR(c->workstation);
    STR_CLEAR(c->token);
    STR_CLEAR(c->hash);
    STR_CLEAR(c->material);
    c->user_from_authzid = false;
}

void ms_str_small_set(ms_str_small *f, const void *p, size_t n)
{
    ms_strbuf b = ms_sb_small(f, false);
    if (p)
        ms_sb_put(&b, p, n);
    ms_sb_done_small(f, &b);
}

void ms_str_large_set(ms_str_large *f, const void *p, size_t n)
{
    ms_strbuf b = ms_sb_large(f, false);
    if (p)
        ms_sb_put(&b, p, n);
    ms_sb_done_large(f, &b);
}

/* ---- base64 (RFC 4648 section 4, standard alphabet) ---- */

static int b64_value(uint8_t ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Validate base64 text; on success *data is the number of alphabet characters
 * (padding stripped) and *outlen the decoded size. */
static bool b64_check(const uint8_t *in, size_t len, size_t *data, size_t *outlen)
{
    *data = 0;
    *outlen = 0;
    if (len == 0 || (len == 1 && in[0] == '='))
        return true;
    size_t pad = 0;
    switch (len % 4) {
    case 0:
        if (in[len - 1] == '=') {
            pad = 1;
            if (in[len - 2] == '=')
                pad = 2;
        }
        break;
    case 1:
        return false;
    default:
        /* Unpadded final quantum of 2 or 3 characters: accepted, but then no
         * '=' at all may appear (checked below). */
        break;
    }
    size_t n = len - pad;
    for (size_t i = 0; i < n; i++) {
        if (b64_value(in[i]) < 0)
            return false; /* includes '=' before the end and any whitespace */
    }
    size_t rem = n % 4; /* 0, 2 or 3: rem 1 cannot occur after the checks above */
    if (rem == 1)
        return false;
    *data = n;
    *outlen = n / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);
    return true;
}

long ms_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t outcap)
{
    size_t n, outlen;
    if (!in && len)
        return -1;
    if (!b64_check(in, len, &n, &outlen))
        return -1;
    if (outlen > outcap || outlen > (size_t)LONG_MAX)
        return -1;
    if (outlen && !out)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 6) | (uint32_t)b64_value(in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    /* Leftover pad bits (non-zero in a non-canonical encoding) are ignored,
     * as servers do. */
    return (long)o;
}

size_t ms_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!out || (!in && len))
        return 0;
    if (len / 3 >= SIZE_MAX / 4 - 1)
        return 0;
    size_t need = (len + 2) / 3 * 4;
    if (need + 1 > outcap)
        return 0;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* Append base64 of in[0..len) to a builder, in chunks, so that a long input
 * is cut like any other value. */
static void sb_put_b64(ms_strbuf *b, const uint8_t *in, size_t len)
{
    char chunk[4 * 64 + 1];
    while (len && !b->trunc) {
        size_t take = len > 3 * 64 ? 3 * 64 : len;
        size_t n = ms_b64_encode(in, take, chunk, sizeof chunk);
        ms_sb_put(b, chunk, n);
        in += take;
        len -= take;
    }
}

/* ---- PLAIN (RFC 4616) ---- */

bool ms_sasl_plain(const uint8_t *msg, size_t len, ms_creds *c)
{
    if (!msg || !c)
        return false;
    const uint8_t *nul1 = find_byte(msg, len, 0);
    if (!nul1)
        return false;
    size_t a_len = (size_t)(nul1 - msg);
    const uint8_t *u = nul1 + 1;
    size_t rest = len - a_len - 1;
    const uint8_t *nul2 = find_byte(u, rest, 0);
    if (!nul2)
        return false;
    size_t u_len = (size_t)(nul2 - u);
    const uint8_t *pw = nul2 + 1;
    size_t pw_len = rest - u_len - 1;
    /* The grammar has exactly two NULs: a third makes it ambiguous. */
    if (find_byte(pw, pw_len, 0))
        return false;

    c->mech = MS_MECH_PLAIN;
    if (a_len)
        ms_str_small_set(&c->authzid, msg, a_len);
    if (u_len == 0 && a_len > 0) {
        /* "user NUL NUL password": some clients put the user in the authzid
         * and leave the authcid empty; servers take it as the user */
        ms_str_small_set(&c->username, msg, a_len);
        c->user_from_authzid = true;
    } else {
        ms_str_small_set(&c->username, u, u_len);
    }
    ms_str_small_set(&c->password, pw, pw_len);
    return true;
}

/* ---- CRAM-MD5 (RFC 2195) ---- */

bool ms_sasl_cram_md5(const uint8_t *challenge_b64, size_t clen, const uint8_t *resp, size_t rlen,
                      ms_creds *c)
{
    size_t n, outlen;
    if (!challenge_b64 || !resp || !c || clen == 0)
        return false;
    if (!b64_check(challenge_b64, clen, &n, &outlen) || outlen == 0)
        return false;
    /* user SP digest: the digest is the part after the last space. */
    size_t sp = rlen;
    while (sp > 0 && resp[sp - 1] != ' ')
        sp--;
    if (sp == 0)
        return false; /* no space */
    size_t user_len = sp - 1;
    if (rlen - sp != 32 || !all_hex(resp + sp, 32))
        return false;

    c->mech = MS_MECH_CRAM_MD5;
    ms_str_small_set(&c->username, resp, user_len);
    ms_strbuf b = ms_sb_large(&c->hash, false);
    ms_sb_puts(&b, "$cram_md5$");
    ms_sb_put(&b, challenge_b64, clen);
    ms_sb_putc(&b, '$');
    sb_put_b64(&b, resp, rlen);
    ms_sb_done_large(&c->hash, &b);
    return true;
}

/* ---- DIGEST-MD5 (RFC 2831 section 2.1.2) ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
    bool quoted; /* p..p+n is the inside of a quoted-string, escapes intact */
    bool seen;
} dm_val;

enum {
    DM_USERNAME,
    DM_REALM,
    DM_NONCE,
    DM_CNONCE,
    DM_NC,
    DM_QOP,
    DM_DIGEST_URI,
    DM_RESPONSE,
    DM_AUTHZID,
    DM_COUNT
};

/* In this order in material; authzid is not part of it. */
static const char *const dm_keys[DM_COUNT] = {
    "username", "realm", "nonce", "cnonce", "nc", "qop", "digest-uri", "response", "authzid"
};

static bool dm_lws(uint8_t ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* RFC 2616 token character: CHAR except CTLs and separators. */
static bool dm_tokenchar(uint8_t ch)
{
    if (ch <= 32 || ch >= 127)
        return false;
    return strchr("()<>@,;:\\\"/[]?={}", ch) == NULL;
}

/* Values without quotes: anything up to a comma or white space. Real clients
 * send digest-uri and the like bare, with '/' in them. */
static bool dm_barechar(uint8_t ch)
{
    return ch > 32 && ch < 127 && ch != ',' && ch != '"';
}

static void sb_put_dm(ms_strbuf *b, const dm_val *v)
{
    if (!v->quoted) {
        ms_sb_put(b, v->p, v->n);
        return;
    }
    for (size_t i = 0; i < v->n && !b->trunc; i++) {
        if (v->p[i] == '\\' && i + 1 < v->n)
            i++;
        ms_sb_putc(b, (char)v->p[i]);
    }
}

static void dm_set_small(ms_str_small *f, const dm_val *v)
{
    ms_strbuf b = ms_sb_small(f, false);
    sb_put_dm(&b, v);
    ms_sb_done_small(f, &b);
}

bool ms_sasl_digest_md5(const uint8_t *msg, size_t len, ms_creds *c)
{
    dm_val vals[DM_COUNT];
    memset(vals, 0, sizeof vals);
    if (!msg || !c)
        return false;

    size_t i = 0;
    for (;;) {
        /* #rule: elements separated by commas, empty elements and LWS allowed */
        while (i < len && (dm_lws(msg[i]) || msg[i] == ','))
            i++;
        if (i >= len)
            break;
        size_t k0 = i;
        while (i < len && dm_tokenchar(msg[i]))
            i++;
        size_t klen = i - k0;
        if (klen == 0)
            return false;
        while (i < len && dm_lws(msg[i]))
            i++;
        if (i >= len || msg[i] != '=')
            return false;
        i++;
        while (i < len && dm_lws(msg[i]))
            i++;
        dm_val v = { NULL, 0, false, true };
        if (i < len && msg[i] == '"') {
            i++;
            size_t v0 = i;
            bool closed = false;
            while (i < len) {
                if (msg[i] == '\\') {
                    if (i + 1 >= len)
                        return false;
                    i += 2;
                    continue;
                }
                if (msg[i] == '"') {
                    closed = true;
                    break;
                }
                i++;
            }
            if (!closed)
                return false;
            v.p = msg + v0;
            v.n = i - v0;
            v.quoted = true;
            i++; /* closing quote */
        } else {
            size_t v0 = i;
            while (i < len && dm_barechar(msg[i]))
                i++;
            if (i == v0)
                return false;
            v.p = msg + v0;
            v.n = i - v0;
        }
        while (i < len && dm_lws(msg[i]))
            i++;
        if (i < len && msg[i] != ',')
            return false;
        for (int k = 0; k < DM_COUNT; k++) {
            if (ms_token_is(msg + k0, klen, dm_keys[k])) {
                if (vals[k].seen)
                    return false; /* directives occur at most once */
                vals[k] = v;
                break;
            }
        }
    }
    if (!vals[DM_USERNAME].seen || !vals[DM_RESPONSE].seen)
        return false;

    c->mech = MS_MECH_DIGEST_MD5;
    dm_set_small(&c->username, &vals[DM_USERNAME]);
    if (vals[DM_REALM].seen)
        dm_set_small(&c->realm, &vals[DM_REALM]);
    if (vals[DM_AUTHZID].seen)
        dm_set_small(&c->authzid, &vals[DM_AUTHZID]);
    ms_strbuf b = ms_sb_large(&c->material, false);
    bool first = true;
    for (int k = DM_USERNAME; k <= DM_RESPONSE; k++) {
        if (!vals[k].seen)
            continue;
        if (!first)
            ms_sb_putc(&b, ',');
        first = false;
        ms_sb_puts(&b, dm_keys[k]);
        ms_sb_putc(&b, '=');
        sb_put_dm(&b, &vals[k]);
    }
    ms_sb_done_large(&c->material, &b);
    return true;
}

/* ---- GS2 header and saslname (RFC 5801, RFC 5802, RFC 7628) ---- */

/* saslname: 1*(UTF8-char except NUL ',' '=' / "=2C" / "=3D") */
static bool saslname_ok(const uint8_t *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == 0 || p[i] == ',')
            return false;
        if (p[i] == '=') {
            if (i + 2 >= n)
                return false;
            if (!(p[i + 1] == '2' && (p[i + 2] == 'C' || p[i + 2] == 'c')) &&
                !(p[i + 1] == '3' && (p[i + 2] == 'D' || p[i + 2] == 'd')))
                return false;
            i += 2;
        }
    }
    return true;
}

static void saslname_set(ms_str_small *f, const uint8_t *p, size_t n)
{
    ms_strbuf b = ms_sb_small(f, false);
    for (size_t i = 0; i < n && !b.trunc; i++) {
        if (p[i] == '=' && i + 2 < n) {
            ms_sb_putc(&b, p[i + 1] == '2' ? ',' : '=');
            i += 2;
        } else {
            ms_sb_putc(&b, (char)p[i]);
        }
    }
    ms_sb_done_small(f, &b);
}

/* gs2-header = gs2-cbind-flag "," [ "a=" saslname ] ","
 * gs2-cbind-flag = "p=" cb-name / "n" / "y"
 * Returns the length of the header, or 0 if there is none. */
static size_t gs2_header(const uint8_t *msg, size_t len, const uint8_t **az, size_t *azlen)
{
    size_t i = 0;
    *az = NULL;
    *azlen = 0;
    if (len < 3)
        return 0;
    if (msg[0] == 'n' || msg[0] == 'y') {
        i = 1;
    } else if (msg[0] == 'p' && msg[1] == '=') {
        i = 2;
        size_t c0 = i;
        while (i < len && ((msg[i] >= 'a' && msg[i] <= 'z') || (msg[i] >= 'A' && msg[i] <= 'Z') ||
                           (msg[i] >= '0' && msg[i] <= '9') || msg[i] == '.' || msg[i] == '-'))
            i++;
        if (i == c0)
            return 0;
    } else {
        return 0;
    }
    if (i >= len || msg[i] != ',')
        return 0;
    i++;
    if (i + 1 < len && msg[i] == 'a' && msg[i + 1] == '=') {
        size_t a0 = i + 2;
        const uint8_t *comma = find_byte(msg + a0, len - a0, ',');
        if (!comma)
            return 0;
        size_t alen = (size_t)(comma - (msg + a0));
        if (!saslname_ok(msg + a0, alen))
            return 0;
        *az = msg + a0;
        *azlen = alen;
        i = a0 + alen;
    }
    if (i >= len || msg[i] != ',')
        return 0;
    return i + 1;
}

/* ---- OAuth: XOAUTH2 and OAUTHBEARER (RFC 7628 section 3.1) ---- */

typedef struct {
    const uint8_t *user;
    size_t user_len;
    bool has_user;
    const uint8_t *auth;
    size_t auth_len;
    bool has_auth;
} oauth_kv;

/* kvpairs separated and ended by ^A: key=value ^A ... ^A (^A). A missing final
 * ^A is tolerated; a segment without '=' or with an empty key is not. */
static bool oauth_pairs(const uint8_t *p, size_t n, oauth_kv *kv)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t *sep = find_byte(p + i, n - i, 0x01);
        size_t seg_end = sep ? (size_t)(sep - p) : n;
        size_t seg = seg_end - i;
        if (seg == 0) {
            /* the terminating empty pair: nothing may follow it */
            i = seg_end + 1;
            if (i < n)
                return false;
            break;
        }
        const uint8_t *s = p + i;
        const uint8_t *eq = find_byte(s, seg, '=');
        if (!eq || eq == s)
            return false;
        size_t klen = (size_t)(eq - s);
        const uint8_t *v = eq + 1;
        size_t vlen = seg - klen - 1;
        if (ms_token_is(s, klen, "user")) {
            if (kv->has_user)
                return false;
            kv->user = v;
            kv->user_len = vlen;
            kv->has_user = true;
        } else if (ms_token_is(s, klen, "auth")) {
            if (kv->has_auth)
                return false;
            kv->auth = v;
            kv->auth_len = vlen;
            kv->has_auth = true;
        }
        i = seg_end + 1;
    }
    return true;
}

/* "Bearer" 1*SP token: the token; any other scheme is kept whole. */
static void oauth_token(ms_str_large *f, const uint8_t *v, size_t n)
{
    if (n > 7 && ms_token_is(v, 6, "Bearer") && v[6] == ' ') {
        size_t i = 6;
        while (i < n && v[i] == ' ')
            i++;
        ms_str_large_set(f, v + i, n - i);
    } else {
        ms_str_large_set(f, v, n);
    }
}

bool ms_sasl_xoauth2(const uint8_t *msg, size_t len, ms_creds *c)
{
    oauth_kv kv;
    memset(&kv, 0, sizeof kv);
    if (!msg || !c)
        return false;
    if (!oauth_pairs(msg, len, &kv) || !kv.has_user || !kv.has_auth)
        return false;
    c->mech = MS_MECH_XOAUTH2;
    ms_str_small_set(&c->username, kv.user, kv.user_len);
    oauth_token(&c->token, kv.auth, kv.auth_len);
    return true;
}

bool ms_sasl_oauthbearer(const uint8_t *msg, size_t len, ms_creds *c)
{
    oauth_kv kv;
    memset(&kv, 0, sizeof kv);
    const uint8_t *az;
    size_t azlen;
    if (!msg || !c)
        return false;
    size_t h = gs2_header(msg, len, &az, &azlen);
    if (h == 0 || h >= len || msg[h] != 0x01)
        return false;
    if (!oauth_pairs(msg + h + 1, len - h - 1, &kv) || !kv.has_auth)
        return false;
    c->mech = MS_MECH_OAUTHBEARER;
    if (az)
        saslname_set(&c->username, az, azlen);
    else if (kv.has_user)
        ms_str_small_set(&c->username, kv.user, kv.user_len);
    oauth_token(&c->token, kv.auth, kv.auth_len);
    return true;
}

/* ---- SCRAM (RFC 5802 section 7) client-first-message ---- */

bool ms_sasl_scram_client_first(const uint8_t *msg, size_t len, ms_creds *c)
{
    const uint8_t *az;
    size_t azlen;
    if (!msg || !c)
        return false;
    size_t i = gs2_header(msg, len, &az, &azlen);
    if (i == 0)
        return false;
    /* reserved-mext "m=" is a mandatory extension we cannot know: reject. */
    if (i + 2 > len || msg[i] != 'n' || msg[i + 1] != '=')
        return false;
    size_t u0 = i + 2;
    const uint8_t *comma = find_byte(msg + u0, len - u0, ',');
    if (!comma)
        return false;
    size_t ulen = (size_t)(comma - (msg + u0));
    if (!saslname_ok(msg + u0, ulen))
        return false;
    i = u0 + ulen + 1;
    if (i + 2 > len || msg[i] != 'r' || msg[i + 1] != '=')
        return false;
    size_t r0 = i + 2;
    i = r0;
    /* printable = %x21-2B / %x2D-7E */
    while (i < len && msg[i] >= 0x21 && msg[i] <= 0x7e && msg[i] != ',')
        i++;
    if (i == r0)
        return false;
    if (i < len && msg[i] != ',')
        return false; /* only ",extensions" may follow the nonce */

    /* The message does not say SHA-1 or SHA-256: c->mech stays as the caller
     * set it from the mechanism name. */
    saslname_set(&c->username, msg + u0, ulen);
    if (az)
        saslname_set(&c->authzid, az, azlen);
    return true;
}

/* ---- POP3 APOP (RFC 1939 section 7) ---- */

bool ms_apop_digest_ok(const uint8_t *digest, size_t dlen)
{
    return digest && dlen == 32 && all_hex(digest, 32);
}

bool ms_apop_hash(const uint8_t *timestamp, size_t tlen, const uint8_t *digest, size_t dlen,
                  ms_creds *c)
{
    if (!timestamp || !digest || !c)
        return false;
    if (tlen < 2 || timestamp[0] != '<' || timestamp[tlen - 1] != '>')
        return false;
    for (size_t i = 0; i < tlen; i++) {
        if (timestamp[i] < 0x20 || timestamp[i] == 0x7f)
            return false;
    }
    if (!ms_apop_digest_ok(digest, dlen))
        return false;
    c->mech = MS_MECH_APOP;
    ms_strbuf b = ms_sb_large(&c->hash, false);
    for (size_t i = 0; i < 32; i++)
        ms_sb_putc(&b, (char)ms_ascii_lower(digest[i]));
    ms_sb_putc(&b, ':');
    ms_sb_put(&b, timestamp, tlen);
    ms_sb_done_large(&c->hash, &b);
    return true;
}

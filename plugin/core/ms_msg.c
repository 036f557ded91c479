/* ms_msg.c — streaming MIME scanner (see ms_msg.h).
 *
 * Bytes become lines, taken in pieces of at most MS_MSG_LINE bytes; lines
 * drive one flat state machine: the headers of the current entity, the body
 * of a leaf part, or text that is skipped (preamble, epilogue, parts past the
 * limit). Open multiparts are a stack of boundaries no deeper than max_depth,
 * and every complete line that starts with "--" is tried against all of
 * them, innermost first, so a missing close delimiter does not hide the
 * parts that follow. Nothing recurses: nesting lives in that stack only.
 *
 * A leaf's content goes through its transfer decoder into one sink that
 * counts it, hashes it (attachments) and looks for URLs (text). The line
 * break before a boundary belongs to the boundary (RFC 2046 5.1.1), so each
 * content line's break is held back until the next line proves to be
 * content too.
 */
#include "ms_msg.h"
#include "ms_detect.h"
#include "ms_sha256.h"
#include "ms_strbuf.h"

#include <string.h>

#define DEF_MAX_HEADER 1024
#define DEF_MAX_DEPTH 32
#define DEF_MAX_PARTS 256
#define DEF_MAX_URLS 64
#define DEF_MAX_URL 512

/* Ceilings on what a caller may ask for, so sizes never overflow. */
#define CAP_MAX_BYTES ((size_t)1 << 24)
#define CAP_MAX_DEPTH 65536u
#define CAP_MAX_URLS ((unsigned)1 << 20)

#define HNAME_MAX 32   /* longer names are kept unmatched: none we read is */
#define CTYPE_MAX 127
#define QP_WS_MAX 256  /* white space held to see whether it ends a line */
#define OUT_MAX 1024   /* decoded bytes staged before the sink */
#define EW_TEXT_MAX 1024 /* RFC 2047 allows 75 for a whole word: be lenient */
#define EW_CHARSET_MAX 64
#define SECT_MAX 64    /* RFC 2231 continuation sections kept */

enum { EOL_NONE = 0, EOL_LF, EOL_CRLF };
enum { MODE_HEADERS = 0, MODE_BODY, MODE_SKIP };
enum { CTE_IDENTITY = 0, CTE_BASE64, CTE_QP };
enum { LIM_DEPTH = 0, LIM_PARTS, LIM_URLS, LIM_HEADER, LIM_COUNT };
enum { HL_SKIP = 0, HL_HEADER };  /* what the pieces of a header-block line are */
enum { FN_NONE = 0, FN_CT_NAME, FN_CD_FILENAME };
enum { CS_PASS = 0, CS_LATIN1, CS_CP1252 };

typedef struct {
    size_t len;
    char b[MS_MSG_BOUNDARY_MAX];
} frame;

struct ms_msg {
    ms_allocator alloc;
    ms_msg_limits lim;
    ms_msg_callbacks cb;
    void *ctx;
    bool ended;
    bool limit_hit[LIM_COUNT];

    /* line assembly */
    uint8_t line[MS_MSG_LINE];
    size_t line_len;
    bool line_cont;      /* pieces of the current line were delivered already */

    /* open multiparts, outermost first */
    frame *frames;
    unsigned frames_cap;
    unsigned sp;
    unsigned parts;

    /* the current entity */
    int mode;
    unsigned depth;
    bool top;            /* the entity is the message itself */
    bool first_line;     /* no header line seen yet (an mbox From_ line may come) */
    int line_kind;
    bool hdr_active;
    char hname[HNAME_MAX];
    size_t hname_len;    /* 0 when the name was too long to be one we read */
    uint8_t *hval;       /* max_header */
    size_t hval_len;
    bool hval_cut;
    bool have_ct, have_cd, have_cte;
    char ctype[CTYPE_MAX + 1];
    size_t ctype_len;
    char bnd[MS_MSG_BOUNDARY_MAX];
    size_t bnd_len;
    char *fname;         /* max_header + 1 */
    size_t fname_len;
    int fname_src;
    int cte;

    /* leaf content */
    bool attach, text;
    int held_eol;
    ms_sha256 sha;
    uint64_t size;
    uint8_t out[OUT_MAX];
    size_t out_len;
    uint32_t b64_acc;
    unsigned b64_n;
    bool b64_stop;
    int qp_eq;           /* 0; 1: after '='; 2: after '=' and one hex digit */
    uint8_t qp_h1;
    uint8_t qp_ws[QP_WS_MAX];
    size_t qp_ws_len;

    /* scratch for header decoding and parameter assembly */
    char *dbuf;          /* max_header + 1 */
    uint8_t *tmp;        /* max_header */

    /* URLs */
    bool in_url;
    uint8_t win[9];      /* last text bytes: a prefix and the byte before it */
    size_t win_len;
    char *url;           /* max_url + 1 */
    size_t url_len, url_pre;
    bool url_cut;
    uint64_t *url_seen;  /* open-addressing set of URL hashes, 0 = empty */
    size_t url_slots;
    unsigned url_count;
};

/* ---- small helpers ---- */

static bool is_lws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static bool is_alnum(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static bool ci_equal(const uint8_t *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ms_ascii_lower(p[i]) != ms_ascii_lower((unsigned char)s[i]))
            return false;
    }
    return true;
}

static void hit_limit(ms_msg *m, int which)
{
    static const char *const names[LIM_COUNT] = { "depth", "parts", "urls", "header" };
    if (m->limit_hit[which])
        return;
    m->limit_hit[which] = true;
    if (m->cb.limit)
        m->cb.limit(m->ctx, names[which]);
}

static ms_strbuf sb_over(char *s, size_t cap)
{
    ms_strbuf b = { s, cap, 0, false, true };
    return b;
}

/* ---- text into UTF-8 ---- */

/* Length of the UTF-8 sequence at p, or 1 for a byte that starts none. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0xC2 || c > 0xF4)
        return 1;
    size_t k = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (k > n)
        return 1;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 1;
    }
    return k;
}

/* Bytes as they are, but a cut never splits a character. */
static void put_utf8(ms_strbuf *b, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && !b->trunc;) {
        size_t k = utf8_seq(p + i, n - i);
        ms_sb_put(b, p + i, k);
        i += k;
    }
}

static void put_codepoint(ms_strbuf *b, uint32_t cp)
{
    uint8_t u[3];
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        ms_sb_put(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3F));
        ms_sb_put(b, u, 2);
    } else {
        u[0] = (uint8_t)(0xE0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F));
        ms_sb_put(b, u, 3);
    }
}

static int charset_kind(const uint8_t *cs, size_t n)
{
    static const char *const latin1[] = { "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1",
                                          "latin-1", "l1", "cp819", "ibm819", "iso-ir-100",
                                          "iso_8859-1:1987", "iso-8859-1:1987" };
    static const char *const cp1252[] = { "windows-1252", "cp1252", "x-cp1252" };
    /* RFC 2231 section 5: charset*language */
    const uint8_t *star = n ? memchr(cs, '*', n) : NULL;
    if (star)
        n = (size_t)(star - cs);
    for (size_t i = 0; i < sizeof latin1 / sizeof latin1[0]; i++) {
        if (ms_token_is(cs, n, latin1[i]))
            return CS_LATIN1;
    }
    for (size_t i = 0; i < sizeof cp1252 / sizeof cp1252[0]; i++) {
        if (ms_token_is(cs, n, cp1252[i]))
            return CS_CP1252;
    }
    return CS_PASS;
}

/* Decoded bytes in a charset, converted where we know how; the rest (UTF-8,
 * US-ASCII and charsets we do not convert) pass through as their bytes. */
static void put_charset(ms_strbuf *b, const uint8_t *cs, size_t csl, const uint8_t *p, size_t n)
{
    static const uint16_t cp1252_80[32] = {
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
        0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
        0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
        0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178
    };
    int kind = charset_kind(cs, csl);
    if (kind == CS_PASS) {
        put_utf8(b, p, n);
        return;
    }
    for (size_t i = 0; i < n && !b->trunc; i++) {
        uint32_t cp = p[i];
        if (kind == CS_CP1252 && cp >= 0x80 && cp < 0xA0)
            cp = cp1252_80[cp - 0x80];
        put_codepoint(b, cp);
    }
}

/* ---- RFC 2047 encoded words ---- */

typedef struct {
    const uint8_t *cs;
    size_t csl;
    uint8_t enc;         /* 'b' or 'q' */
    const uint8_t *t;
    size_t tn;
} ew;

/* An encoded word =?charset?B|Q?text?= at p[i]: returns the index after it,
 * or 0 when there is none. Every scan is bounded, so trying each "=?" of a
 * value stays linear. */
static size_t parse_word(const uint8_t *p, size_t n, size_t i, ew *w)
{
    if (i + 1 >= n || p[i] != '=' || p[i + 1] != '?')
        return 0;
    size_t j = i + 2, cs0 = j;
    while (j < n && j - cs0 < EW_CHARSET_MAX && p[j] != '?' && p[j] > 32 && p[j] < 127)
        j++;
    if (j >= n || p[j] != '?' || j == cs0)
        return 0;
    size_t csl = j - cs0;
    j++;
    if (j + 1 >= n || p[j + 1] != '?')
        return 0;
    uint8_t enc = (uint8_t)ms_ascii_lower(p[j]);
    if (enc != 'b' && enc != 'q')
        return 0;
    j += 2;
    size_t t0 = j;
    while (j < n && j - t0 < EW_TEXT_MAX && p[j] != '?' && !is_lws(p[j]))
        j++;
    if (j + 1 >= n || p[j] != '?' || p[j + 1] != '=')
        return 0;
    w->cs = p + cs0;
    w->csl = csl;
    w->enc = enc;
    w->t = p + t0;
    w->tn = j - t0;
    return j + 2;
}

static void put_word(ms_strbuf *b, const ew *w)
{
    uint8_t dec[EW_TEXT_MAX];
    size_t o = 0;
    if (w->enc == 'b') {
        uint32_t acc = 0;
        unsigned bits = 0;
        for (size_t i = 0; i < w->tn && o < sizeof dec; i++) {
            int v = b64_value(w->t[i]);
            if (v < 0)
                break; /* padding or garbage: what came before stands */
            acc = ((acc << 6) | (uint32_t)v) & 0xFFFFFF;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                dec[o++] = (uint8_t)(acc >> bits);
            }
        }
    } else {
        for (size_t i = 0; i < w->tn && o < sizeof dec; i++) {
            uint8_t c = w->t[i];
            if (c == '_') {
                c = ' ';
            } else if (c == '=' && i + 2 < w->tn) {
                int hi = hex_value(w->t[i + 1]), lo = hex_value(w->t[i + 2]);
                if (hi >= 0 && lo >= 0) {
                    c = (uint8_t)(hi << 4 | lo);
                    i += 2;
                }
            }
            dec[o++] = c;
        }
    }
    put_charset(b, w->cs, w->csl, dec, o);
}

/* Header text with its encoded words decoded; white space between two
 * encoded words is not text (RFC 2047 section 6.2). */
static void decode_words(ms_strbuf *b, const uint8_t *p, size_t n)
{
    size_t i = 0;
    bool after_word = false;
    ew w;
    while (i < n && !b->trunc) {
        if (p[i] == '=') {
            size_t e = parse_word(p, n, i, &w);
            if (e) {
                put_word(b, &w);
                i = e;
                after_word = true;
                continue;
            }
        }
        size_t j = i + 1;
        if (is_lws(p[i])) {
            while (j < n && is_lws(p[j]))
                j++;
            if (after_word && parse_word(p, n, j, &w)) {
                i = j;
                continue;
            }
            ms_sb_put(b, p + i, j - i);
        } else {
            while (j < n && !is_lws(p[j]) && p[j] != '=')
                j++;
            put_utf8(b, p + i, j - i);
        }
        i = j;
        after_word = false;
    }
}

/* ---- MIME parameters (RFC 2045 5.1, RFC 2231) ---- */

typedef struct {
    const uint8_t *attr;
    size_t attr_len;
    const uint8_t *val;
    size_t val_len;
    bool quoted;         /* val is the inside of a quoted-string, escapes intact */
} param;

/* The next attribute=value after *pos. Lenient as mail readers are: a bare
 * value runs to the next ';' (file names with spaces), text after a closing
 * quote is dropped, an attribute without '=' is skipped. */
static bool next_param(const uint8_t *p, size_t n, size_t *pos, param *out)
{
    size_t i = *pos;
    while (i < n) {
        while (i < n && (p[i] == ';' || is_lws(p[i])))
            i++;
        if (i >= n)
            break;
        size_t a0 = i;
        while (i < n && p[i] != '=' && p[i] != ';' && !is_lws(p[i]))
            i++;
        size_t a1 = i;
        while (i < n && is_lws(p[i]))
            i++;
        if (i >= n || p[i] != '=') {
            while (i < n && p[i] != ';')
                i++;
            continue;
        }
        i++;
        while (i < n && is_lws(p[i]))
            i++;
        out->attr = p + a0;
        out->attr_len = a1 - a0;
        if (i < n && p[i] == '"') {
            size_t v0 = ++i;
            while (i < n && p[i] != '"')
                i += (p[i] == '\\' && i + 1 < n) ? 2 : 1;
            out->val = p + v0;
            out->val_len = i - v0;
            out->quoted = true;
            while (i < n && p[i] != ';')
                i++;
        } else {
            size_t v0 = i;
            while (i < n && p[i] != ';')
                i++;
            size_t v1 = i;
            while (v1 > v0 && is_lws(p[v1 - 1]))
                v1--;
            out->val = p + v0;
            out->val_len = v1 - v0;
            out->quoted = false;
        }
        *pos = i;
        return true;
    }
    *pos = n;
    return false;
}

/* Append a parameter value to dst: backslash escapes undone when quoted,
 * %XX decoded when RFC 2231 extended. Returns false when it did not fit. */
static bool put_piece(uint8_t *dst, size_t cap, size_t *len, const uint8_t *v, size_t n,
                      bool quoted, bool pct)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = v[i];
        if (quoted && c == '\\' && i + 1 < n) {
            c = v[++i];
        } else if (pct && c == '%' && i + 2 < n) {
            int hi = hex_value(v[i + 1]), lo = hex_value(v[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (uint8_t)(hi << 4 | lo);
                i += 2;
            }
        }
        if (*len >= cap)
            return false;
        dst[(*len)++] = c;
    }
    return true;
}

typedef struct {
    const uint8_t *v;
    size_t n;
    bool quoted, ext, present;
} section;

/* charset'language'text (RFC 2231 section 4): split off the charset. */
static void split_charset(const uint8_t **v, size_t *n, const uint8_t **cs, size_t *csl)
{
    const uint8_t *q1 = *n ? memchr(*v, '\'', *n) : NULL;
    *cs = NULL;
    *csl = 0;
    if (!q1)
        return;
    size_t rest = *n - (size_t)(q1 - *v) - 1;
    const uint8_t *q2 = rest ? memchr(q1 + 1, '\'', rest) : NULL;
    if (!q2)
        return;
    *cs = *v;
    *csl = (size_t)(q1 - *v);
    *n -= (size_t)(q2 + 1 - *v);
    *v = q2 + 1;
}

/* The value of parameter `name` (a file name) as UTF-8 into b: name*= wins
 * over name*0.. sections, which win over name=. Returns whether the
 * parameter is there. */
static bool get_filename(ms_msg *m, const uint8_t *p, size_t n, size_t pos, const char *name,
                         ms_strbuf *b)
{
    section plain = { 0 }, ext = { 0 }, sec[SECT_MAX];
    memset(sec, 0, sizeof sec);
    size_t nl = strlen(name);
    param pr;
    while (next_param(p, n, &pos, &pr)) {
        if (pr.attr_len < nl || !ci_equal(pr.attr, name, nl))
            continue;
        section s = { pr.val, pr.val_len, pr.quoted, false, true };
        const uint8_t *r = pr.attr + nl;
        size_t rl = pr.attr_len - nl;
        if (rl == 0) {
            if (!plain.present)
                plain = s;
            continue;
        }
        if (r[0] != '*')
            continue;
        r++;
        rl--;
        if (rl == 0) {
            s.ext = true;
            if (!ext.present)
                ext = s;
            continue;
        }
        size_t k = 0, d = 0;
        while (d < rl && d < 3 && r[d] >= '0' && r[d] <= '9')
            k = k * 10 + (size_t)(r[d++] - '0');
        if (d == 0)
            continue;
        if (d < rl && r[d] == '*') {
            s.ext = true;
            d++;
        }
        if (d != rl || k >= SECT_MAX || sec[k].present)
            continue;
        sec[k] = s;
    }

    size_t len = 0, cap = m->lim.max_header;
    bool fits = true;
    const uint8_t *cs = NULL;
    size_t csl = 0;
    if (ext.present) {
        const uint8_t *v = ext.v;
        size_t vn = ext.n;
        split_charset(&v, &vn, &cs, &csl);
        fits = put_piece(m->tmp, cap, &len, v, vn, ext.quoted, true);
    } else if (sec[0].present) {
        for (size_t k = 0; k < SECT_MAX && sec[k].present && fits; k++) {
            const uint8_t *v = sec[k].v;
            size_t vn = sec[k].n;
            if (k == 0 && sec[0].ext)
                split_charset(&v, &vn, &cs, &csl);
            fits = put_piece(m->tmp, cap, &len, v, vn, sec[k].quoted, sec[k].ext);
        }
    } else if (plain.present) {
        /* Not RFC 2231: many mailers put RFC 2047 words in it instead. */
        fits = put_piece(m->tmp, cap, &len, plain.v, plain.n, plain.quoted, false);
        decode_words(b, m->tmp, len);
        if (!fits)
            b->trunc = true;
        return true;
    } else {
        return false;
    }
    put_charset(b, cs ? cs : (const uint8_t *)"", csl, m->tmp, len);
    if (!fits)
        b->trunc = true;
    return true;
}

/* type/subtype at the start of a value: its end, or 0 when it is invalid. */
static size_t main_token(const uint8_t *p, size_t n, size_t *t0)
{
    size_t i = 0;
    while (i < n && is_lws(p[i]))
        i++;
    *t0 = i;
    while (i < n && p[i] != ';' && !is_lws(p[i]) && p[i] != '(')
        i++;
    return i;
}

/* A file name decoded into dbuf replaces the one kept when it is not empty. */
static void take_filename(ms_msg *m, const uint8_t *p, size_t n, size_t pos, const char *name,
                          int src)
{
    ms_strbuf b = sb_over(m->dbuf, m->lim.max_header);
    if (!get_filename(m, p, n, pos, name, &b) || b.len == 0)
        return;
    if (b.trunc)
        hit_limit(m, LIM_HEADER);
    memcpy(m->fname, m->dbuf, b.len);
    m->fname[b.len] = '\0';
    m->fname_len = b.len;
    m->fname_src = src;
}

static void parse_content_type(ms_msg *m, const uint8_t *p, size_t n)
{
    size_t t0, t1 = main_token(p, n, &t0);
    size_t tl = t1 - t0, slash = 0;
    bool ok = tl > 2 && tl <= CTYPE_MAX;
    for (size_t i = 0; ok && i < tl; i++) {
        uint8_t c = p[t0 + i];
        if (c == '/') {
            if (slash)
                ok = false;
            slash = i;
        } else if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"[]?=", c)) {
            ok = false;
        }
    }
    /* RFC 2045 5.2: a type that does not parse is text/plain. */
    if (ok && slash > 0 && slash + 1 < tl) {
        for (size_t i = 0; i < tl; i++)
            m->ctype[i] = (char)ms_ascii_lower(p[t0 + i]);
        m->ctype[tl] = '\0';
        m->ctype_len = tl;
    }
    size_t pos = t1;
    param pr;
    while (next_param(p, n, &pos, &pr)) {
        if (!ms_token_is(pr.attr, pr.attr_len, "boundary") || m->bnd_len)
            continue;
        size_t len = 0;
        if (put_piece((uint8_t *)m->bnd, sizeof m->bnd, &len, pr.val, pr.val_len, pr.quoted,
                      false))
            m->bnd_len = len;
        else
            m->bnd_len = 0; /* too long to be a boundary: the part stays opaque */
        break;
    }
    if (m->fname_src == FN_NONE)
        take_filename(m, p, n, t1, "name", FN_CT_NAME);
}

static void parse_disposition(ms_msg *m, const uint8_t *p, size_t n)
{
    size_t t0, t1 = main_token(p, n, &t0);
    (void)t0; /* attachment or inline: a file name makes an attachment either way */
    take_filename(m, p, n, t1, "filename", FN_CD_FILENAME);
}

static void parse_cte(ms_msg *m, const uint8_t *p, size_t n)
{
    size_t t0, t1 = main_token(p, n, &t0);
    if (ms_token_is(p + t0, t1 - t0, "base64"))
        m->cte = CTE_BASE64;
    else if (ms_token_is(p + t0, t1 - t0, "quoted-printable"))
        m->cte = CTE_QP;
    else
        m->cte = CTE_IDENTITY;
}

/* ---- URLs ---- */

static bool url_char(uint8_t c)
{
    return c > 32 && c < 127 && !strchr("\"'<>\\^`{|}", c);
}

static uint64_t url_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 0x100000001b3u;
    }
    return h ? h : 1;
}

/* Where h sits in the set of URLs seen, or the empty slot it would take:
 * the set is never more than half full, so there always is one. */
static size_t url_slot(const ms_msg *m, uint64_t h)
{
    size_t mask = m->url_slots - 1, i = (size_t)h & mask;
    for (size_t probes = 0; probes < m->url_slots; probes++) {
        if (m->url_seen[i] == 0 || m->url_seen[i] == h)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

static void url_end(ms_msg *m)
{
    if (!m->in_url)
        return;
    m->in_url = false;
    size_t n = m->url_len;
    if (!m->url_cut) {
        /* Sentence punctuation after a URL is not part of it; a closing
         * bracket only when the URL opened none. */
        bool paren = memchr(m->url, '(', n) != NULL;
        bool square = memchr(m->url, '[', n) != NULL;
        while (n > m->url_pre) {
            char c = m->url[n - 1];
            if (strchr(".,;:!?", c) || (c == ')' && !paren) || (c == ']' && !square))
                n--;
            else
                break;
        }
    }
    if (n <= m->url_pre)
        return;
    uint64_t h = url_hash(m->url, n);
    size_t slot = url_slot(m, h);
    if (m->url_seen[slot] == h)
        return; /* reported already */
    if (m->url_count >= m->lim.max_urls) {
        hit_limit(m, LIM_URLS);
        return;
    }
    m->url_seen[slot] = h;
    m->url_count++;
    m->url[n] = '\0';
    if (m->cb.url)
        m->cb.url(m->ctx, m->url, n);
}

static void url_byte(ms_msg *m, uint8_t c)
{
    static const char *const prefixes[] = { "https://", "http://", "ftp://", "www." };
    if (m->in_url) {
        if (url_char(c)) {
            if (m->url_len < m->lim.max_url)
                m->url[m->url_len++] = (char)c;
            else
                m->url_cut = true;
            return;
        }
        url_end(m);
    }
    if (m->win_len == sizeof m->win) {
        memmove(m->win, m->win + 1, sizeof m->win - 1);
        m->win_len--;
    }
    m->win[m->win_len++] = c;
    for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++) {
        size_t pl = strlen(prefixes[k]);
        if (m->win_len < pl || !ci_equal(m->win + m->win_len - pl, prefixes[k], pl))
            continue;
        if (m->win_len > pl) {
            /* inside a word ("xhttp://", "awww.") it is no URL */
            uint8_t before = m->win[m->win_len - pl - 1];
            if (is_alnum(before) || (before && strchr(".-_/@", before)))
                continue;
        }
        memcpy(m->url, m->win + m->win_len - pl, pl); /* max_url >= 16 */
        m->url_len = m->url_pre = pl;
        m->url_cut = false;
        m->in_url = true;
        m->win_len = 0;
        return;
    }
}

/* ---- leaf content: the sink and the transfer decoders ---- */

static void sink(ms_msg *m, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    m->size += n;
    if (m->attach) {
        ms_sha256_update(&m->sha, p, n);
        if (m->cb.attachment_data)
            m->cb.attachment_data(m->ctx, p, n);
    }
    if (m->text) {
        for (size_t i = 0; i < n; i++)
            url_byte(m, p[i]);
    }
}

static void out_flush(ms_msg *m)
{
    sink(m, m->out, m->out_len);
    m->out_len = 0;
}

static void out_byte(ms_msg *m, uint8_t c)
{
    if (m->out_len == OUT_MAX)
        out_flush(m);
    m->out[m->out_len++] = c;
}

static void b64_tail(ms_msg *m)
{
    if (m->b64_n == 2) {
        out_byte(m, (uint8_t)(m->b64_acc >> 4));
    } else if (m->b64_n == 3) {
        out_byte(m, (uint8_t)(m->b64_acc >> 10));
        out_byte(m, (uint8_t)(m->b64_acc >> 2));
    }
    m->b64_n = 0;
    m->b64_acc = 0;
}

/* Line breaks and white space are skipped; '=' ends a quantum (and the data
 * may go on: some encoders pad every line); anything else stops decoding. */
static void b64_bytes(ms_msg *m, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && !m->b64_stop; i++) {
        int v = b64_value(p[i]);
        if (v >= 0) {
            m->b64_acc = (m->b64_acc << 6) | (uint32_t)v;
            if (++m->b64_n == 4) {
                out_byte(m, (uint8_t)(m->b64_acc >> 16));
                out_byte(m, (uint8_t)(m->b64_acc >> 8));
                out_byte(m, (uint8_t)m->b64_acc);
                m->b64_n = 0;
                m->b64_acc = 0;
            }
        } else if (p[i] == '=') {
            b64_tail(m);
        } else if (!is_lws(p[i]) && p[i] != '\r' && p[i] != '\n' && p[i] != '\f' &&
                   p[i] != '\v') {
            b64_tail(m);
            m->b64_stop = true;
        }
    }
}

static void qp_ws_flush(ms_msg *m)
{
    for (size_t i = 0; i < m->qp_ws_len; i++)
        out_byte(m, m->qp_ws[i]);
    m->qp_ws_len = 0;
}

/* RFC 2045 6.7: =XX, soft line breaks ("=" at the end of a line), and
 * trailing white space dropped as rule 3 says (transport added it; Go's
 * mime/quotedprintable drops it too, Python's email keeps it). White space
 * is held until we know it does not end the line; a malformed '=' stays
 * literal. Hard line breaks stay as they were in the message. */
static void qp_byte(ms_msg *m, uint8_t c)
{
    if (m->qp_eq == 2) {
        int hi = hex_value(m->qp_h1), lo = hex_value(c);
        m->qp_eq = 0;
        if (lo >= 0) {
            out_byte(m, (uint8_t)(hi << 4 | lo));
            return;
        }
        out_byte(m, '=');
        out_byte(m, m->qp_h1);
    } else if (m->qp_eq == 1) {
        if (is_lws(c) && m->qp_ws_len < QP_WS_MAX) {
            m->qp_ws[m->qp_ws_len++] = c; /* "=  " then a line end is still soft */
            return;
        }
        if (!is_lws(c) && m->qp_ws_len == 0 && hex_value(c) >= 0) {
            m->qp_eq = 2;
            m->qp_h1 = c;
            return;
        }
        m->qp_eq = 0;
        out_byte(m, '=');
        qp_ws_flush(m);
    }
    if (is_lws(c)) {
        if (m->qp_ws_len == QP_WS_MAX)
            qp_ws_flush(m);
        m->qp_ws[m->qp_ws_len++] = c;
        return;
    }
    qp_ws_flush(m);
    if (c == '=')
        m->qp_eq = 1;
    else
        out_byte(m, c);
}

static void qp_line_end(ms_msg *m, int eol)
{
    bool soft = m->qp_eq == 1;
    if (m->qp_eq == 2) {
        out_byte(m, '=');
        out_byte(m, m->qp_h1);
    }
    m->qp_eq = 0;
    m->qp_ws_len = 0;
    if (!soft && eol == EOL_CRLF)
        out_byte(m, '\r');
    if (!soft && eol != EOL_NONE)
        out_byte(m, '\n');
}

static void dec_bytes(ms_msg *m, const uint8_t *p, size_t n)
{
    switch (m->cte) {
    case CTE_BASE64:
        b64_bytes(m, p, n);
        break;
    case CTE_QP:
        for (size_t i = 0; i < n; i++)
            qp_byte(m, p[i]);
        break;
    default:
        out_flush(m);
        sink(m, p, n);
        break;
    }
    out_flush(m);
}

/* A line break inside the content: kept as it was in the message. */
static void dec_eol(ms_msg *m, int eol)
{
    static const uint8_t crlf[2] = { '\r', '\n' };
    if (m->cte == CTE_BASE64)
        return;
    if (m->cte == CTE_QP) {
        qp_line_end(m, eol);
        out_flush(m);
        return;
    }
    if (eol == EOL_CRLF)
        sink(m, crlf, 2);
    else if (eol == EOL_LF)
        sink(m, crlf + 1, 1);
}

static void dec_end(ms_msg *m)
{
    if (m->cte == CTE_BASE64)
        b64_tail(m);
    else if (m->cte == CTE_QP)
        qp_line_end(m, EOL_NONE);
    out_flush(m);
}

/* ---- entities ---- */

static void entity_reset(ms_msg *m, unsigned depth, bool top)
{
    m->mode = MODE_HEADERS;
    m->depth = depth;
    m->top = top;
    m->first_line = true;
    m->line_kind = HL_SKIP;
    m->hdr_active = false;
    m->hname_len = 0;
    m->hval_len = 0;
    m->hval_cut = false;
    m->have_ct = m->have_cd = m->have_cte = false;
    m->ctype_len = 0;
    m->ctype[0] = '\0';
    m->bnd_len = 0;
    m->fname_len = 0;
    m->fname[0] = '\0';
    m->fname_src = FN_NONE;
    m->cte = CTE_IDENTITY;
    m->attach = m->text = false;
    m->held_eol = EOL_NONE;
}

static void leaf_begin(ms_msg *m)
{
    static const char dflt[] = "text/plain";
    if (m->ctype_len == 0) {
        memcpy(m->ctype, dflt, sizeof dflt);
        m->ctype_len = sizeof dflt - 1;
    }
    m->attach = m->fname_len > 0;
    m->text = ms_token_is((const uint8_t *)m->ctype, m->ctype_len, "text/plain") ||
              ms_token_is((const uint8_t *)m->ctype, m->ctype_len, "text/html");
    m->size = 0;
    ms_sha256_discard(&m->sha); /* a part that never ended */
    if (m->attach)
        ms_sha256_init(&m->sha);
    m->out_len = 0;
    m->b64_acc = 0;
    m->b64_n = 0;
    m->b64_stop = false;
    m->qp_eq = 0;
    m->qp_ws_len = 0;
    m->held_eol = EOL_NONE;
    m->in_url = false;
    m->win_len = 0;
    m->mode = MODE_BODY;
}

static void leaf_end(ms_msg *m, bool truncated)
{
    dec_end(m);
    url_end(m);
    if (m->attach && m->cb.attachment) {
        ms_msg_attachment a;
        memset(&a, 0, sizeof a);
        a.filename = m->fname;
        a.filename_len = m->fname_len;
        a.content_type = m->ctype;
        a.content_type_len = m->ctype_len;
        a.size = m->size;
        ms_sha256_final(&m->sha, a.sha256);
        a.truncated = truncated;
        a.depth = m->depth;
        m->cb.attachment(m->ctx, &a);
    }
    m->attach = m->text = false;
    m->mode = MODE_SKIP;
}

static bool push_frame(ms_msg *m)
{
    if (m->sp == m->frames_cap) {
        unsigned cap = m->frames_cap ? m->frames_cap * 2 : 4;
        if (cap > m->lim.max_depth)
            cap = m->lim.max_depth;
        if (cap <= m->sp)
            return false;
        frame *f = m->alloc.realloc_fn(m->alloc.ctx, m->frames, (size_t)cap * sizeof *f);
        if (!f)
            return false;
        m->frames = f;
        m->frames_cap = cap;
    }
    frame *f = &m->frames[m->sp++];
    memcpy(f->b, m->bnd, m->bnd_len);
    f->len = m->bnd_len;
    return true;
}

static ms_hdr_kind header_kind(const uint8_t *name, size_t n)
{
    static const struct {
        const char *name;
        ms_hdr_kind kind;
    } table[] = {
        { "from", MS_HDR_FROM },
        { "to", MS_HDR_TO },
        { "cc", MS_HDR_CC },
        { "subject", MS_HDR_SUBJECT },
        { "date", MS_HDR_DATE },
        { "message-id", MS_HDR_MESSAGE_ID },
        { "reply-to", MS_HDR_REPLY_TO },
        { "user-agent", MS_HDR_USER_AGENT },
        { "x-mailer", MS_HDR_USER_AGENT },
        { "x-originating-ip", MS_HDR_ORIGINATING_IP },
        { "received", MS_HDR_RECEIVED },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (ms_token_is(name, n, table[i].name))
            return table[i].kind;
    }
    return (ms_hdr_kind)0;
}

/* The header being gathered is complete: report it (top level) and read
 * what MIME needs from it (every entity). The first of each MIME header
 * counts, as in common mail readers. */
static void header_done(ms_msg *m)
{
    if (!m->hdr_active)
        return;
    m->hdr_active = false;
    const uint8_t *v = m->hval;
    size_t n = m->hval_len;
    while (n && (is_lws(v[n - 1]) || v[n - 1] == '\r'))
        n--;
    if (m->hval_cut)
        hit_limit(m, LIM_HEADER);
    const uint8_t *name = (const uint8_t *)m->hname;
    size_t nl = m->hname_len;
    if (m->top && m->cb.header) {
        ms_hdr_kind k = header_kind(name, nl);
        if (k) {
            ms_strbuf b = sb_over(m->dbuf, m->lim.max_header);
            decode_words(&b, v, n);
            m->dbuf[b.len] = '\0';
            if (b.trunc)
                hit_limit(m, LIM_HEADER);
            m->cb.header(m->ctx, k, m->dbuf, b.len, m->hval_cut || b.trunc);
        }
    }
    if (ms_token_is(name, nl, "content-type")) {
        if (!m->have_ct) {
            m->have_ct = true;
            parse_content_type(m, v, n);
        }
    } else if (ms_token_is(name, nl, "content-disposition")) {
        if (!m->have_cd) {
            m->have_cd = true;
            parse_disposition(m, v, n);
        }
    } else if (ms_token_is(name, nl, "content-transfer-encoding")) {
        if (!m->have_cte) {
            m->have_cte = true;
            parse_cte(m, v, n);
        }
    }
}

static void hval_append(ms_msg *m, const uint8_t *p, size_t n)
{
    if (m->hval_len == 0) {
        while (n && is_lws(p[0])) {
            p++;
            n--;
        }
    }
    size_t room = m->lim.max_header - m->hval_len;
    if (n > room) {
        n = room;
        m->hval_cut = true;
    }
    if (n) {
        memcpy(m->hval + m->hval_len, p, n);
        m->hval_len += n;
    }
}

/* The name of a header line: the index of its colon, or 0 when the line is
 * no header (RFC 5322 field-name: printable ASCII but ':'; white space
 * before the colon tolerated, RFC 5322 4.5). */
static size_t header_colon(const uint8_t *p, size_t n, size_t *name_len)
{
    const uint8_t *colon = n ? memchr(p, ':', n) : NULL;
    if (!colon)
        return 0;
    size_t c = (size_t)(colon - p), e = c;
    while (e > 0 && is_lws(p[e - 1]))
        e--;
    if (e == 0)
        return 0;
    for (size_t i = 0; i < e; i++) {
        if (p[i] <= 32 || p[i] >= 127)
            return 0;
    }
    *name_len = e;
    return c;
}

/* Headers end: a multipart opens (its preamble follows), or a leaf begins. */
static void end_headers(ms_msg *m)
{
    header_done(m);
    if (m->ctype_len > 10 && memcmp(m->ctype, "multipart/", 10) == 0 && m->bnd_len > 0) {
        if (m->sp < m->lim.max_depth && push_frame(m)) {
            m->mode = MODE_SKIP;
            return;
        }
        /* Too deep: the part is opaque content, ended by its parent's boundary. */
        hit_limit(m, LIM_DEPTH);
    }
    leaf_begin(m);
}

/* One piece of a line in the header block. Returns false when the line is
 * not part of it: the block has ended and the line is the body's. */
static bool header_line(ms_msg *m, const uint8_t *p, size_t n, bool start)
{
    if (!start) {
        if (m->line_kind == HL_HEADER)
            hval_append(m, p, n);
        return true;
    }
    bool first = m->first_line;
    m->first_line = false;
    m->line_kind = HL_SKIP;
    if (n == 0) {
        end_headers(m); /* the blank line */
        return true;
    }
    if (is_lws(p[0])) {
        /* folded: the line break goes, the white space stays (RFC 5322 2.2.3) */
        if (m->hdr_active) {
            hval_append(m, p, n);
            m->line_kind = HL_HEADER;
        }
        return true;
    }
    size_t name_len = 0, colon = header_colon(p, n, &name_len);
    if (colon) {
        header_done(m);
        m->hdr_active = true;
        m->hname_len = 0;
        if (name_len <= HNAME_MAX) {
            memcpy(m->hname, p, name_len);
            m->hname_len = name_len;
        }
        m->hval_len = 0;
        m->hval_cut = false;
        hval_append(m, p + colon + 1, n - colon - 1);
        m->line_kind = HL_HEADER;
        return true;
    }
    if (first && m->top && n >= 5 && memcmp(p, "From ", 5) == 0)
        return true; /* mbox separator */
    /* Not a header: the block ends without its blank line. */
    end_headers(m);
    return false;
}

static void body_line(ms_msg *m, const uint8_t *p, size_t n, bool start, bool end, int eol)
{
    if (start && m->held_eol != EOL_NONE) {
        dec_eol(m, m->held_eol);
        m->held_eol = EOL_NONE;
    }
    dec_bytes(m, p, n);
    if (end)
        m->held_eol = eol;
}

/* The current entity ends (a boundary, or the end of the message). */
static void end_entity(ms_msg *m, bool truncated)
{
    if (m->mode == MODE_HEADERS) {
        /* cut off in its headers: a leaf with an empty body */
        header_done(m);
        leaf_begin(m);
    }
    if (m->mode == MODE_BODY)
        leaf_end(m, truncated);
    m->mode = MODE_SKIP;
}

/* RFC 2046 5.1.1: "--" boundary, "--" more to close, then white space only. */
static int match_boundary(const ms_msg *m, const uint8_t *p, size_t n, bool *close)
{
    for (unsigned i = m->sp; i-- > 0;) {
        const frame *f = &m->frames[i];
        if (n < 2 + f->len || memcmp(p + 2, f->b, f->len) != 0)
            continue;
        size_t j = 2 + f->len;
        bool c = false;
        if (j + 2 <= n && p[j] == '-' && p[j + 1] == '-') {
            c = true;
            j += 2;
        }
        while (j < n && is_lws(p[j]))
            j++;
        if (j != n)
            continue;
        *close = c;
        return (int)i;
    }
    return -1;
}

static void on_boundary(ms_msg *m, unsigned fi, bool close)
{
    end_entity(m, false);
    m->sp = fi + 1; /* inner multiparts that never closed end here */
    if (close) {
        m->sp = fi;
        m->mode = MODE_SKIP; /* epilogue */
        return;
    }
    if (m->parts >= m->lim.max_parts) {
        hit_limit(m, LIM_PARTS);
        m->mode = MODE_SKIP;
        return;
    }
    m->parts++;
    entity_reset(m, fi + 1, false);
}

/* A piece of a line: start (it begins the line), end (it ends it, eol
 * saying how). Only a whole line can be a boundary. */
static void on_line(ms_msg *m, const uint8_t *p, size_t n, bool start, bool end, int eol)
{
    if (start && end && m->sp > 0 && n >= 3 && p[0] == '-' && p[1] == '-') {
        bool close = false;
        int fi = match_boundary(m, p, n, &close);
        if (fi >= 0) {
            on_boundary(m, (unsigned)fi, close);
            return;
        }
    }
    /* twice at most: a line that ends a header block is then body */
    for (int pass = 0; pass < 2; pass++) {
        switch (m->mode) {
        case MODE_HEADERS:
            if (header_line(m, p, n, start))
                return;
            break;
        case MODE_BODY:
            body_line(m, p, n, start, end, eol);
            return;
        default:
            return;
        }
    }
}

/* ---- lines ---- */

static void deliver(ms_msg *m, size_t n, bool end, int eol)
{
    bool start = !m->line_cont;
    m->line_cont = !end;
    m->line_len = 0;
    on_line(m, m->line, n, start, end, eol);
}

void ms_msg_feed(ms_msg *m, const uint8_t *p, size_t n)
{
    if (!m || m->ended || !p)
        return;
    while (n) {
        const uint8_t *lf = memchr(p, '\n', n);
        size_t span = lf ? (size_t)(lf - p) : n;
        for (size_t i = 0; i < span;) {
            /* A full buffer is handed on only once more of the line comes, so
             * a CR at its end is still seen before its LF. */
            if (m->line_len == MS_MSG_LINE)
                deliver(m, MS_MSG_LINE, false, EOL_NONE);
            size_t take = MS_MSG_LINE - m->line_len;
            if (take > span - i)
                take = span - i;
            memcpy(m->line + m->line_len, p + i, take);
            m->line_len += take;
            i += take;
        }
        if (!lf)
            return;
        size_t len = m->line_len;
        int eol = EOL_LF;
        if (len && m->line[len - 1] == '\r') {
            len--;
            eol = EOL_CRLF;
        }
        deliver(m, len, true, eol);
        p += span + 1;
        n -= span + 1;
    }
}

void ms_msg_end(ms_msg *m, bool truncated)
{
    if (!m || m->ended)
        return;
    if (m->line_len || m->line_cont)
        deliver(m, m->line_len, true, EOL_NONE);
    m->ended = true;
    /* Without a boundary to claim it, the last line break is content. */
    if (m->mode == MODE_BODY && m->held_eol != EOL_NONE) {
        dec_eol(m, m->held_eol);
        m->held_eol = EOL_NONE;
    }
    end_entity(m, truncated || m->sp > 0);
}

/* ---- life ---- */

static size_t clamp_size(size_t v, size_t dflt, size_t lo, size_t hi)
{
    if (v == 0)
        v = dflt;
    return v < lo ? lo : v > hi ? hi : v;
}

ms_msg *ms_msg_new(const ms_allocator *a, const ms_msg_limits *lim, const ms_msg_callbacks *cb,
                   void *ctx)
{
    if (!a)
        return NULL;
    ms_msg *m = a->realloc_fn(a->ctx, NULL, sizeof *m);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->alloc = *a;
    if (lim)
        m->lim = *lim;
    if (cb)
        m->cb = *cb;
    m->ctx = ctx;
    m->lim.max_header = clamp_size(m->lim.max_header, DEF_MAX_HEADER, 16, CAP_MAX_BYTES);
    m->lim.max_url = clamp_size(m->lim.max_url, DEF_MAX_URL, 16, CAP_MAX_BYTES);
    m->lim.max_depth = (unsigned)clamp_size(m->lim.max_depth, DEF_MAX_DEPTH, 1, CAP_MAX_DEPTH);
    m->lim.max_urls = (unsigned)clamp_size(m->lim.max_urls, DEF_MAX_URLS, 1, CAP_MAX_URLS);
    if (m->lim.max_parts == 0)
        m->lim.max_parts = DEF_MAX_PARTS;
    m->url_slots = 2;
    while (m->url_slots < (size_t)m->lim.max_urls * 2)
        m->url_slots *= 2;

    m->hval = a->realloc_fn(a->ctx, NULL, m->lim.max_header);
    m->fname = a->realloc_fn(a->ctx, NULL, m->lim.max_header + 1);
    m->dbuf = a->realloc_fn(a->ctx, NULL, m->lim.max_header + 1);
    m->tmp = a->realloc_fn(a->ctx, NULL, m->lim.max_header);
    m->url = a->realloc_fn(a->ctx, NULL, m->lim.max_url + 1);
    m->url_seen = a->realloc_fn(a->ctx, NULL, m->url_slots * sizeof *m->url_seen);
    if (!m->hval || !m->fname || !m->dbuf || !m->tmp || !m->url || !m->url_seen) {
        ms_msg_free(m);
        return NULL;
    }
    memset(m->url_seen, 0, m->url_slots * sizeof *m->url_seen);
    entity_reset(m, 0, true);
    return m;
}

void ms_msg_free(ms_msg *m)
{
    if (!m)
        return;
    void *bufs[] = { m->hval, m->fname, m->dbuf, m->tmp, m->url, m->url_seen, m->frames };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bufs[i])
            m->alloc.free_fn(m->alloc.ctx, bufs[i]);
    }
    ms_sha256_discard(&m->sha);
    ms_allocator a = m->alloc;
    a.free_fn(a.ctx, m);
}

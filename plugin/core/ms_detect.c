/* ms_detect.c — content recognition of mail protocols (see ms_detect.h). */
#include "ms_detect.h"

#include <string.h>

#define lower ms_ascii_lower

/* A scan for the needle's first byte in either case, then a compare: lines of
 * untagged IMAP data are searched for words, so this runs on every byte. */
bool ms_ci_contains(const uint8_t *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return true;
    if (len < n)
        return false;
    int first = lower((unsigned char)needle[0]);
    for (size_t i = 0; i + n <= len; i++) {
        if (lower(p[i]) != first)
            continue;
        size_t k = 1;
        while (k < n && lower(p[i + k]) == lower((unsigned char)needle[k]))
            k++;
        if (k == n)
            return true;
    }
    return false;
}

size_t ms_token_len(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len && p[i] != ' ' && p[i] != '\t')
        i++;
    return i;
}

size_t ms_first_line_len(const uint8_t *p, size_t n)
{
    const uint8_t *lf = memchr(p, '\n', n);
    size_t len = lf ? (size_t)(lf - p) : n;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    return len;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

ms_guess ms_detect_server_line(const uint8_t *p, size_t len)
{
    ms_guess g = { MS_PROTO_UNKNOWN, false };
    if (len >= 3 && p[0] == '+' && lower(p[1]) == 'o' && lower(p[2]) == 'k' &&
        (len == 3 || p[3] == ' ' || p[3] == '\t')) {
        g.proto = MS_PROTO_POP3;
        g.strong = true;
    } else if (ms_ci_prefix(p, len, "* OK") || ms_ci_prefix(p, len, "* PREAUTH") ||
               ms_ci_prefix(p, len, "* BYE")) {
        g.proto = MS_PROTO_IMAP;
        g.strong = true;
    } else if (len >= 3 && is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2]) &&
               (len == 3 || p[3] == ' ' || p[3] == '-')) {
        /* 220 is also FTP's greeting: only a line naming SMTP is proof. */
        if (p[0] == '2' || p[0] == '4' || p[0] == '5') {
            g.proto = MS_PROTO_SMTP;
            g.strong = p[0] == '2' && p[1] == '2' && p[2] == '0' &&
                       ms_ci_contains(p, len, "SMTP") && !ms_ci_contains(p, len, "FTP");
        }
    }
    return g;
}

static const char *const imap_commands[] = {
    "CAPABILITY", "LOGIN", "AUTHENTICATE", "STARTTLS", "NOOP", "LOGOUT", "ID",
    "SELECT", "EXAMINE", "LIST", "LSUB", "STATUS", "FETCH", "UID", "ENABLE",
    "NAMESPACE", "APPEND", "IDLE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
    "UNSUBSCRIBE", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE", "CLOSE", "CHECK",
    "GETQUOTAROOT", "XLIST", "COMPRESS", "UNSELECT", NULL
};

static bool imap_tag_char(uint8_t c)
{
    /* atom chars minus '+' (RFC 3501 tag), and nothing unprintable */
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' &&
           c != '*' && c != '"' && c != '\\' && c != ']' && c != '+';
}

/* Do at least two space-separated words follow? */
static bool two_arguments(const uint8_t *p, size_t n)
{
    unsigned words = 0;
    bool in_word = false;
    for (size_t i = 0; i < n; i++) {
        bool sp = p[i] == ' ' || p[i] == '\t';
        if (!sp && !in_word)
            words++;
        in_word = !sp;
    }
    return words >= 2;
}

ms_guess ms_detect_client_line(const uint8_t *p, size_t len)
{
    ms_guess g = { MS_PROTO_UNKNOWN, false };
    size_t t = ms_token_len(p, len);
    if (ms_token_is(p, t, "EHLO") || ms_token_is(p, t, "HELO") || ms_token_is(p, t, "LHLO") ||
        ms_ci_prefix(p, len, "MAIL FROM:") || ms_ci_prefix(p, len, "RCPT TO:") ||
        (ms_token_is(p, t, "BDAT") && t + 1 < len && is_digit(p[t + 1]))) {
        g.proto = MS_PROTO_SMTP;
        g.strong = true;
        return g;
    }
    if (ms_token_is(p, t, "STARTTLS")) {
        g.proto = MS_PROTO_SMTP;
        return g;
    }
    if (ms_token_is(p, t, "CAPA") || ms_token_is(p, t, "STLS") || ms_token_is(p, t, "APOP")) {
        g.proto = MS_PROTO_POP3;
        g.strong = true;
        return g;
    }
    if (ms_token_is(p, t, "USER") || ms_token_is(p, t, "PASS") || ms_token_is(p, t, "STAT") ||
        ms_token_is(p, t, "RETR") || ms_token_is(p, t, "UIDL")) {
        g.proto = MS_PROTO_POP3; /* USER and PASS are FTP's too */
        return g;
    }
    /* IMAP: tag SP command */
    if (t == 0 || t > 32 || t >= len)
        return g;
    for (size_t i = 0; i < t; i++)
        if (!imap_tag_char(p[i]))
            return g;
    const uint8_t *c = p + t + 1;
    size_t clen = ms_token_len(c, len - t - 1);
    if (ms_token_is(p, t, "AUTH") && ms_token_is(c, clen, "LOGIN") && !two_arguments(c + clen, len - t - 1 - clen))
        return g; /* SMTP's or POP3's AUTH LOGIN [initial-response]: IMAP's LOGIN takes a user and a password */
    for (const char *const *w = imap_commands; *w; w++) {
        if (ms_token_is(c, clen, *w)) {
            g.proto = MS_PROTO_IMAP;
            g.strong = true;
            break;
        }
    }
    return g;
}

bool ms_looks_like_tls(const uint8_t *p, size_t len)
{
    if (len < 5)
        return false;
    if (p[0] < 20 || p[0] > 23)
        return false;
    if (p[1] != 3 || p[2] > 4)
        return false;
    unsigned rlen = ((unsigned)p[3] << 8) | p[4];
    return rlen > 0 && rlen <= 16384 + 2048;
}

bool ms_looks_like_tls_hello(const uint8_t *p, size_t len)
{
    if (len < 6 || p[0] != 22 || !ms_looks_like_tls(p, len))
        return false;
    unsigned rlen = ((unsigned)p[3] << 8) | p[4];
    /* a handshake message header is 4 bytes; Hellos are far longer */
    return rlen >= 4 + 34 && (p[5] == 1 || p[5] == 2);
}

/* ms_detect.h — recognise SMTP, POP3 and IMAP from the first line a peer sends.
 *
 * Used twice: by the TCP heuristic (ports nobody registered) and to check
 * port-based sessions against their content (IMAP on 25, cleartext on 465).
 */
#ifndef MS_DETECT_H
#define MS_DETECT_H

#include "ms_core.h"

#include <string.h>

typedef struct {
    ms_proto proto;
    bool strong; /* unambiguous: enough to claim a session on an unknown port */
} ms_guess;

/* Length of the first line of p, without its LF or CR LF (all of p when it
 * has no LF). */
size_t ms_first_line_len(const uint8_t *p, size_t n);

/* The first line a server sends (its greeting), without the line end. */
ms_guess ms_detect_server_line(const uint8_t *line, size_t len);

/* The first line a client sends. */
ms_guess ms_detect_client_line(const uint8_t *line, size_t len);

/* A TLS record header (handshake, alert, CCS or application data): enough to
 * tell TLS from text on a port where TLS is expected. */
bool ms_looks_like_tls(const uint8_t *p, size_t len);

/* The start of a TLS handshake: a handshake record whose first message is a
 * ClientHello or ServerHello. A cleartext session switches to TLS only on
 * this, so five bytes that merely look like a record header cannot blind it. */
bool ms_looks_like_tls_hello(const uint8_t *p, size_t len);

/* Helpers shared with the protocol adapters. They run on every line, so the
 * short ones are inline: with a literal word, strlen() is folded away. */
static inline int ms_ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Does p start with prefix, ASCII case-insensitively? */
static inline bool ms_ci_prefix(const uint8_t *p, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ms_ascii_lower(p[i]) != ms_ascii_lower((unsigned char)prefix[i]))
            return false;
    return true;
}

/* Does p contain needle anywhere, ASCII case-insensitively? */
bool ms_ci_contains(const uint8_t *p, size_t len, const char *needle);
/* Length of the token starting at p (up to a space or the end). */
size_t ms_token_len(const uint8_t *p, size_t len);

/* Case-insensitive compare of a token with a word. */
static inline bool ms_token_is(const uint8_t *tok, size_t toklen, const char *word)
{
    return toklen == strlen(word) && ms_ci_prefix(tok, toklen, word);
}

#endif

/* ms_sasl.h — decoding of login exchanges: base64, SASL mechanisms, NTLMSSP, APOP.
 *
 * Pure functions over bytes: each takes one decoded client message (and the
 * server challenge where the mechanism has one) and fills an ms_creds. Every
 * output is bounded; input that does not parse returns false and never reads
 * outside the buffer it was given.
 */
#ifndef MS_SASL_H
#define MS_SASL_H

#include "ms_core.h"

typedef enum {
    MS_MECH_OTHER = 0,   /* a name we do not decode; ms_creds.mech_name has it */
    MS_MECH_PLAIN,
    MS_MECH_LOGIN,
    MS_MECH_CRAM_MD5,
    MS_MECH_DIGEST_MD5,
    MS_MECH_NTLM,
    MS_MECH_XOAUTH2,
    MS_MECH_OAUTHBEARER,
    MS_MECH_SCRAM_SHA_1,
    MS_MECH_SCRAM_SHA_256,
    MS_MECH_GSSAPI,
    MS_MECH_EXTERNAL,
    MS_MECH_ANONYMOUS,
    MS_MECH_USER_PASS,   /* POP3 USER/PASS */
    MS_MECH_APOP,        /* POP3 APOP */
    MS_MECH_IMAP_LOGIN   /* IMAP LOGIN */
} ms_mech;

/* SASL name (case-insensitive) to mechanism; MS_MECH_OTHER if unknown. */
ms_mech ms_sasl_mech_from_name(const uint8_t *name, size_t len);
/* The name mailsec.auth.mechanism shows: "PLAIN", "USER/PASS", "IMAP-LOGIN" ... */
const char *ms_mech_name(ms_mech m);

#define MS_STR_SMALL 256
#define MS_STR_LARGE 4096

typedef struct {
    char s[MS_STR_SMALL + 1]; /* NUL-terminated; may contain other bytes, see len */
    size_t len;
    bool set;
    bool truncated;
} ms_str_small;

typedef struct {
    char s[MS_STR_LARGE + 1];
    size_t len;
    bool set;
    bool truncated;
} ms_str_large;

typedef struct ms_creds {
    ms_mech mech;
    ms_str_small mech_name;   /* as the client wrote it */
    ms_str_small username;    /* authcid */
    ms_str_small authzid;
    ms_str_small password;
    ms_str_small realm;       /* DIGEST-MD5 realm, NTLM domain */
    ms_str_small workstation; /* NTLM */
    ms_str_large token;       /* OAuth bearer token */
    ms_str_large hash;        /* crackable form (hashcat line) */
    ms_str_large material;    /* other verification material (DIGEST-MD5 response fields), or
                                 the decoded client messages of a mechanism mailsec does not know */
    bool user_from_authzid;   /* PLAIN "authzid NUL NUL password": the authzid is the user */
} ms_creds;

void ms_creds_clear(ms_creds *c);
/* Setters copy at most the field's size and mark truncation. */
void ms_str_small_set(ms_str_small *f, const void *p, size_t n);
void ms_str_large_set(ms_str_large *f, const void *p, size_t n);

/* ---- base64 (RFC 4648) ---- */

/* Decode; returns the decoded length, or -1 if the input is not valid base64
 * (bad character, bad padding, length not a multiple of 4 once padded).
 * An empty input and "=" both decode to length 0. out needs len/4*3+3 bytes. */
long ms_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t outcap);
/* Encode; returns the length written (without NUL), 0 if outcap is too small. */
size_t ms_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap);

/* ---- mechanisms: each takes the decoded client message ---- */

/* PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd */
bool ms_sasl_plain(const uint8_t *msg, size_t len, ms_creds *c);
/* CRAM-MD5 (RFC 2195): the server's challenge as sent (base64 text) and the
 * decoded response "user SP hexdigest"; sets username and the hashcat 10200 line
 * $cram_md5$<b64 challenge>$<b64 response>. */
bool ms_sasl_cram_md5(const uint8_t *challenge_b64, size_t clen, const uint8_t *resp, size_t rlen,
                      ms_creds *c);
/* DIGEST-MD5 (RFC 2831) digest-response: username, realm, authzid, and in
 * material the fields needed to verify it (nonce, cnonce, nc, qop, digest-uri,
 * response) as "key=value" pairs separated by ','. */
bool ms_sasl_digest_md5(const uint8_t *msg, size_t len, ms_creds *c);
/* XOAUTH2: "user=" u ^A "auth=Bearer " token ^A ^A */
bool ms_sasl_xoauth2(const uint8_t *msg, size_t len, ms_creds *c);
/* OAUTHBEARER (RFC 7628): gs2 header "n,a=user," then ^A key=value ^A ... ^A ^A */
bool ms_sasl_oauthbearer(const uint8_t *msg, size_t len, ms_creds *c);
/* SCRAM (RFC 5802) client-first-message: gs2 header, then n=user,r=nonce */
bool ms_sasl_scram_client_first(const uint8_t *msg, size_t len, ms_creds *c);

/* ---- NTLMSSP (MS-NLMP) ---- */

/* Message type 1, 2 or 3; 0 if not NTLMSSP. */
int ms_ntlmssp_type(const uint8_t *msg, size_t len);
/* Type 2 (CHALLENGE): the 8-byte server challenge. */
bool ms_ntlmssp_challenge(const uint8_t *msg, size_t len, uint8_t challenge[8]);
/* Type 3 (AUTHENTICATE): user, domain (realm), workstation; with the challenge,
 * the hashcat line: NetNTLMv1 (5500) user::domain:lm:nt:challenge when the NT
 * response is 24 bytes, NetNTLMv2 (5600) user::domain:challenge:ntproof:blob
 * when longer. */
bool ms_ntlmssp_authenticate(const uint8_t *msg, size_t len, const uint8_t *challenge,
                             ms_creds *c);

/* ---- POP3 APOP (RFC 1939) ---- */

/* Is this an APOP digest: 32 hexadecimal digits (RFC 1939)? */
bool ms_apop_digest_ok(const uint8_t *digest, size_t dlen);

/* The greeting's timestamp "<...>" (with the angle brackets) and the client's
 * digest (32 hex digits); sets the hashcat mode 20 line "digest:timestamp". */
bool ms_apop_hash(const uint8_t *timestamp, size_t tlen, const uint8_t *digest, size_t dlen,
                  ms_creds *c);

#endif

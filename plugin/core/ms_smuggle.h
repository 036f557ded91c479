/* ms_smuggle.h — end-of-data look-alikes inside an SMTP DATA body.
 *
 * RFC 5321 4.1.1.4 ends DATA with CR LF . CR LF and nothing else. Servers
 * that also accept a bare LF or a bare CR around the dot (or ignore a NUL
 * next to it) end the message early and read what follows as commands: SMTP
 * smuggling (SEC Consult, December 2023). The scanner is fed the body as it
 * crossed the wire (line ends as sent, bare CRs inside lines) and reports
 * each look-alike: a line break (CR, LF or CR LF), at most one control byte,
 * the dot, at most one control byte, a line break, except the one true end,
 * with the line that follows it (the smuggled command, if any).
 */
#ifndef MS_SMUGGLE_H
#define MS_SMUGGLE_H

#include "ms_core.h"

#define MS_SMUGGLE_LINE_MAX 64

typedef struct {
    uint8_t seq[MS_SMUGGLE_SEQ_MAX];
    size_t seq_len;
    uint64_t offset;          /* of the sequence's first byte in the body */
    const char *line;         /* the bytes after it, up to the next line break */
    size_t line_len;
    bool command;             /* that line starts with an SMTP command */
} ms_smuggle_hit;

typedef void (*ms_smuggle_cb)(void *ctx, const ms_smuggle_hit *hit);

typedef struct ms_smuggle {
    uint8_t state;
    uint8_t cand[MS_SMUGGLE_SEQ_MAX]; /* the sequence being matched */
    uint8_t cand_len;
    uint64_t cand_at;
    uint8_t prev;             /* the byte before the current one */
    uint64_t fed;
    /* a sequence found, waiting for the line after it */
    bool have_hit;
    ms_smuggle_hit hit;
    char line[MS_SMUGGLE_LINE_MAX + 1];
    size_t line_len;
} ms_smuggle;

/* The body begins (just after the DATA command's CR LF). */
void ms_smuggle_init(ms_smuggle *z);
void ms_smuggle_feed(ms_smuggle *z, const uint8_t *p, size_t n, ms_smuggle_cb cb, void *ctx);
/* The body ended: report a sequence still waiting for its line. */
void ms_smuggle_end(ms_smuggle *z, ms_smuggle_cb cb, void *ctx);

#endif

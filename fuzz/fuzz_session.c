/* fuzz_session.c — a whole mail session (ms_session.h) for SMTP, POP3 and
 * IMAP, as the Wireshark layer feeds it: the port's view and configuration
 * from the input's header, then client and server bytes through ms_seq with
 * random segment splits, holes, retransmissions with other bytes, reordering,
 * ACKs, SYNs and RSTs, STARTTLS-style switches to decrypted records, new
 * sessions sharing one registry, and the end. The input format is in
 * session_driver.h and fuzz/README.md.
 *
 * The sinks read every byte they are handed and check what the headers
 * promise: credential fields NUL-terminated within their arrays, message
 * content BEGIN / DATA / END in order (and nothing left open after finish),
 * attachments never going on after their END, fact spans within the bytes
 * fed. Memory comes from a counting allocator (which can be told to fail) and
 * must all come back.
 */
#include "session_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sd_run(data, size, MS_PROTO_UNKNOWN, NULL);
    return 0;
}

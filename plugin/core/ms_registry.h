/* ms_registry.h — what mailsec remembers across sessions, per peer.
 *
 * One registry per capture file. A key is an address's bytes (IPv4, IPv6 or
 * any other family, up to 16 bytes) and a port (0 for "any port": a client
 * address is counted whatever its source port). Each key holds a few
 * counters, named below. The table is bounded: once max_keys keys are held,
 * counting for a new key starts afresh on every call (it is never stored),
 * so memory never exceeds max_keys entries.
 */
#ifndef MS_REGISTRY_H
#define MS_REGISTRY_H

#include "ms_core.h"

#define MS_PEER_ADDR_MAX 16

typedef struct {
    uint8_t addr[MS_PEER_ADDR_MAX];
    uint8_t len;     /* 0: no address known (nothing is counted) */
    uint8_t family;  /* the caller's address type, so 4 IPv4 bytes never equal 4 bytes of another family */
    uint16_t port;
} ms_peer;

typedef enum {
    MS_COUNT_AUTH_FAILURES = 0, /* failed logins from a client address */
    MS_COUNT_PROBES,            /* VRFY, EXPN, refused RCPT */
    MS_COUNT_RECIPIENTS,        /* RCPT TO sent */
    MS_COUNT_MESSAGES,          /* messages sent (SMTP DATA, BDAT) */
    MS_COUNT_STARTTLS_OFFERED,  /* server address and port: the first session that offered STARTTLS, plus one */
    MS_COUNT_END
} ms_counter;

typedef struct ms_registry ms_registry;

ms_registry *ms_registry_new(const ms_allocator *a, size_t max_keys);
void ms_registry_free(ms_registry *r);

/* Add n to the key's counter; returns the new value (n itself when the key
 * is new and the table is full; 0 when the key has no address). */
uint32_t ms_registry_add(ms_registry *r, const ms_peer *key, ms_counter c, uint32_t n);
/* The counter's value (0 for an unknown key). */
uint32_t ms_registry_get(const ms_registry *r, const ms_peer *key, ms_counter c);
/* Keys held. */
size_t ms_registry_size(const ms_registry *r);

/* Fill a key from address bytes (cut to MS_PEER_ADDR_MAX). */
ms_peer ms_peer_make(int family, const void *addr, size_t len, uint16_t port);

#endif

/* dns.h - the guest end of the embedded-DNS relay (DnsRelay in
 * proto/runm/agent.proto): a UDP listener in the VM whose queries travel to
 * the host on the call's stream and whose answers come back on it. One relay
 * per VM. Everything from the host is checked: sizes, ids, decoding. */
#ifndef RUNM_AGENT_DNS_H
#define RUNM_AGENT_DNS_H

#include "common/error.h"
#include "common/loop.h"
#include "ttrpc/ttrpc.h"

/* Bounds of the relay (also the host's, engine/dnsrelay.c). */
#define DNS_MAX_MSG 4096     /* bigger UDP messages are dropped */
#define DNS_MAX_PENDING 64   /* queries in flight; more are dropped */
#define DNS_TIMEOUT_MS 5000  /* a query unanswered this long is forgotten */

/* Serve DnsRelay on stream s: bind UDP listen:port (NULL or "" =
 * 127.0.0.11, 0 = 53). On success the relay owns s and answers it when the
 * host ends the relay or the connection goes; on error s is untouched and
 * the caller replies with the error. */
int dns_relay_start(struct loop *loop, struct ttrpc_stream *s, const char *listen, unsigned port,
		    runm_error_t *err);

#endif

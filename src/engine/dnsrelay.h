/* dnsrelay.h - the host end of the embedded-DNS relay (DnsRelay in
 * proto/runm/agent.proto). Docker's resolv.conf says `nameserver 127.0.0.11`,
 * an address that answers only inside the container's network namespace on
 * the host; in the VM it is the guest's own loopback. The agent listens there
 * in the VM and sends each query up the agent channel; this module asks the
 * real resolver from a UDP socket made inside the namespace and sends the
 * answer back. Everything from the guest is checked: sizes, ids, the number
 * in flight; a query unanswered after DNSRELAY_TIMEOUT_MS is forgotten. */
#ifndef RUNM_ENGINE_DNSRELAY_H
#define RUNM_ENGINE_DNSRELAY_H

#include "common/error.h"
#include "common/loop.h"
#include "engine/sandbox.h"
#include "engine/spec.h"
#include "ttrpc/ttrpc.h"

#include <stdbool.h>
#include <stddef.h>

/* Docker's embedded DNS server (user-defined networks, every compose project). */
#define DNSRELAY_DOCKER_ADDR "127.0.0.11"
/* The bounds agent.proto documents (the agent has the same, agent/dns.h). */
#define DNSRELAY_MAX_MSG 4096
#define DNSRELAY_MAX_PENDING 64
#define DNSRELAY_TIMEOUT_MS 5000

struct dnsrelay;

/* Relay the guest's DNS queries to addr ("A.B.C.D" for port 53, or
 * "A.B.C.D:PORT") as seen from network namespace netns_fd (-1: the
 * caller's; the fd is only used here, not kept). The agent is asked to
 * listen on the same address, port 53, inside the VM. The relay lives until
 * dnsrelay_free, even if the guest ends it. */
int dnsrelay_start(struct loop *loop, struct sandbox *sb, int netns_fd, const char *addr, struct dnsrelay **out,
		   runm_error_t *err);
/* The same over any open connection that speaks the agent API (tests). */
int dnsrelay_start_conn(struct loop *loop, struct ttrpc_conn *conn, int netns_fd, const char *addr,
			struct dnsrelay **out, runm_error_t *err);
/* Queries sent upstream and not answered or forgotten yet. */
size_t dnsrelay_in_flight(const struct dnsrelay *r);
/* Tell the agent to stop (if the stream is still open), close, free. NULL-safe. */
void dnsrelay_free(struct dnsrelay *r);

/* The policy, shared by the shim and the CLI through the sandbox: the
 * address to relay for a container, or NULL for none. A relay is wanted when
 * the spec binds a file onto /etc/resolv.conf whose nameservers include
 * DNSRELAY_DOCKER_ADDR (and the sandbox mirrors a namespace, which is the
 * caller's check). The file is read when asked: Docker rewrites it for a
 * user-defined network in its prestart hook, after create has read the spec,
 * so the sandbox keeps dnsrelay_resolv_file's path and asks at mirror time. */
const char *dnsrelay_wanted(const struct spec *sp);
/* The host file the spec binds onto /etc/resolv.conf, or NULL. */
const char *dnsrelay_resolv_file(const struct spec *sp);
/* dnsrelay_wanted for that file (NULL-safe). */
const char *dnsrelay_wanted_file(const char *path);
/* Whether resolv.conf text (len bytes, NUL not needed) has a `nameserver`
 * line naming addr. */
bool dnsrelay_resolv_names(const char *text, size_t len, const char *addr);

#endif

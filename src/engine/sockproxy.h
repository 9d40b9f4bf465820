/* sockproxy.h - the host end of host unix sockets bound into a container
 * (SocketProxy in proto/runm/agent.proto, frames in src/proto/sockproxy.h).
 * For each of a spec's sockets (spec.h, spec_socket) a few calls wait in
 * the agent; when a client in the container connects, the call's stream
 * becomes that connection: we connect to the host socket and relay both
 * ways, with the window of sockproxy.h, half-close passed on, and open
 * another waiting call. A host socket that does not accept ends the guest
 * client's connection with a log line naming it. Everything from the guest
 * is checked: frames, the window, the order of EOF and data. Shared by the
 * shim and the CLI through the sandbox (sandbox_proxy_sockets). */
#ifndef RUNM_ENGINE_SOCKPROXY_H
#define RUNM_ENGINE_SOCKPROXY_H

#include "common/error.h"
#include "common/loop.h"
#include "engine/sandbox.h"
#include "engine/spec.h"
#include "ttrpc/ttrpc.h"

#include <stddef.h>

/* Calls kept waiting per socket. */
#define SOCKPROXY_WAITING 4

struct sockproxy;

/* Proxy the sockets of sp (container ctr_id, already created in the VM or
 * with its Create sent ahead on the same connection: the agent serves
 * requests in order). A spec without sockets gets *out = NULL. Lives until
 * sockproxy_free, even when the agent ends the calls. */
int sockproxy_start(struct loop *loop, struct sandbox *sb, const char *ctr_id, const struct spec *sp,
		    struct sockproxy **out, runm_error_t *err);
/* The same over any open connection that speaks the agent API (tests). */
int sockproxy_start_conn(struct loop *loop, struct ttrpc_conn *conn, const char *ctr_id, const struct spec *sp,
			 struct sockproxy **out, runm_error_t *err);
/* Connections open now, and calls waiting in the agent. */
size_t sockproxy_conns(const struct sockproxy *p);
size_t sockproxy_waiting(const struct sockproxy *p);
/* Tell the agent to close every connection and waiting call, close the
 * host sockets, free. NULL-safe. */
void sockproxy_free(struct sockproxy *p);

#endif

/* sockproxy.h - the guest end of host unix sockets in containers
 * (SocketProxy in proto/runm/agent.proto, frames in src/proto/sockproxy.h):
 * a listening socket in the VM per host socket, bound by crun at the
 * mount's destination, and each accepted client paired with a call the host
 * opened in advance. Everything from the host is checked: frames, the
 * window, the order of EOF and data; a bad frame ends that connection only. */
#ifndef RUNM_AGENT_SOCKPROXY_H
#define RUNM_AGENT_SOCKPROXY_H

#include "common/error.h"
#include "common/loop.h"
#include "runm/agent.pb-c.h"
#include "ttrpc/ttrpc.h"

#include <stddef.h>

/* Listen at SOCK_GUEST_DIR/<ctr_id>/<n>.sock for n < n_socks, each with the
 * owner and mode the host gave: before crun create, which binds them into
 * the container. On error nothing of ctr_id's is left. */
int sockproxy_listen(struct loop *loop, const char *ctr_id, Runm__Agent__V1__SocketMount *const *socks,
		     size_t n_socks, runm_error_t *err);
/* Serve SocketProxy on stream s: park it until a client connects to socket
 * index of ctr_id. On success the proxy owns s and answers it when the
 * connection ends; on error (ENOENT: no such socket; ENOSPC: enough calls
 * wait already) s is untouched and the caller replies. */
int sockproxy_attach(struct ttrpc_stream *s, const char *ctr_id, unsigned index, runm_error_t *err);
/* The container goes: close its listeners and connections, answer their
 * calls, remove its sockets. A no-op for a container without sockets. */
void sockproxy_remove(const char *ctr_id);
/* Connections open now, of all containers (tests). */
size_t sockproxy_conn_count(void);

#endif

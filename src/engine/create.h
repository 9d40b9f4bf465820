/* create.h - create a container in its VM: bind its rootfs and bind-mount
 * sources into the VM's share (sandbox_bind_container), then send the
 * agent's Create request with their paths in the share and their guest
 * mount points, its host sockets, the terminal and which stdio streams
 * exist; then start proxying those sockets (sandbox_proxy_sockets). Shared
 * by the shim and the runm CLI. */
#ifndef RUNM_ENGINE_CREATE_H
#define RUNM_ENGINE_CREATE_H

#include "engine/sandbox.h"
#include "engine/spec.h"

#include <stdbool.h>

/* Send Create for container id; cb gets the CreateResponse (pid) payload,
 * or an error (a bind that failed: TTRPC_INTERNAL with its message). */
struct ttrpc_stream *engine_create(struct sandbox *sb, const char *id, const struct spec *sp, bool in, bool out,
				   bool err, ttrpc_reply_fn cb, void *data);

#endif

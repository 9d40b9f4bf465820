/* create.h - the agent's Create request for a prepared spec: the rootfs
 * share, every bind-mount share and its guest mount point, the terminal and
 * which stdio streams exist. Shared by the shim and the runm CLI. */
#ifndef RUNM_ENGINE_CREATE_H
#define RUNM_ENGINE_CREATE_H

#include "engine/sandbox.h"
#include "engine/spec.h"

#include <stdbool.h>

/* Send Create for container id; cb gets the CreateResponse (pid) payload. */
struct ttrpc_stream *engine_create(struct sandbox *sb, const char *id, const struct spec *sp, bool in, bool out,
				   bool err, ttrpc_reply_fn cb, void *data);

#endif

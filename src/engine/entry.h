/* entry.h - the container's entrypoint checked on the host at create, as
 * runc's init does with LookPath before it reports "created": callers map
 * runc's words to exit statuses (Docker and Podman: "executable file not
 * found" / "no such file or directory" -> 127, "permission denied" -> 126),
 * and finding out at start, inside the VM, would be too late for them. The
 * path is resolved inside the rootfs (symlinks included) and never outside. */
#ifndef RUNM_ENGINE_ENTRY_H
#define RUNM_ENGINE_ENTRY_H

#include "common/error.h"

/* config_json: an OCI config (its process: args, env's PATH, cwd); rootfs:
 * the host directory that will be the container's root. 0 when args[0]
 * names an executable regular file there. */
int entry_check(const char *rootfs, const char *config_json, runm_error_t *err);

#endif

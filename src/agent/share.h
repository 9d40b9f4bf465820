/* share.h - the guest end of late binding: the VM's one share (9p tag
 * "shared", engine/stage.h on the host), mounted once, from which each
 * container's rootfs and bind sources are bound where Create wants them.
 * Paths in it come from the host and are checked before use. */
#ifndef RUNM_AGENT_SHARE_H
#define RUNM_AGENT_SHARE_H

#include "common/error.h"

#include <stdbool.h>

#define SHARE_TAG "shared"
#define SHARE_DIR "/run/runm/share"
/* 9p as the host's share needs it: the page cache only for mmap, so writes
 * from the host and other containers are seen at once. */
#define SHARE_NINEP_OPTS "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"

/* Mount the share on SHARE_DIR if not yet done (safe to call per Create). */
int share_mount(runm_error_t *err);
/* Resolve rel, a path in the share rooted at root: relative, every
 * component a plain name (no empty, "." or ".."), and once symlinks are
 * resolved still strictly under root. *out gets the resolved path. */
int share_resolve(const char *root, const char *rel, char **out, runm_error_t *err);
/* Bind <SHARE_DIR>/rel on dest (made if missing), read-only if asked. */
int share_bind(const char *rel, const char *dest, bool ro, runm_error_t *err);

#endif

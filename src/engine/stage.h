/* stage.h - late binding: the VM's one shared directory, and each
 * container's rootfs and bind-mount sources bind-mounted into it on the
 * host while the VM may already run (design.md, "Filesystems").
 *
 * Layout, under <state_dir>/shared (the VM's only 9p share, tag
 * SANDBOX_SHARE_TAG):
 *   <id>/rootfs         the container's rootfs (recursive bind, read-write)
 *   <id>/<tag>          a directory source (spec_share.tag, "m0", "m1", ...)
 *   <id>/<tag>/<name>   a single file, bound onto an empty file in a
 *                       directory of its own, so the VM sees that file and
 *                       nothing beside it (bind /etc/resolv.conf: not /etc)
 * Read-only binds are read-only on the host too (the VMM cannot write them).
 * QEMU runs in a mount namespace of its own (vm/jail.h) holding a slave copy
 * of the shared directory: what is mounted here after it started propagates
 * there, with the flags it had when attached, and its 9p server resolves
 * paths at access time, so that is what it serves.
 * Needs root (the shim, `runm run` as root). */
#ifndef RUNM_ENGINE_STAGE_H
#define RUNM_ENGINE_STAGE_H

#include "common/error.h"
#include "engine/spec.h"

/* Name of the shared directory in the state dir, and of a container's rootfs in it. */
#define STAGE_SHARED "shared"
#define STAGE_ROOTFS "rootfs"

/* Create <state_dir>/shared as a mount of its own, shared in a peer group of
 * its own (so the binds under it reach the VMM's jail, a slave of it, but
 * none of the mount namespaces that are peers of its parent, nor come from
 * them); *dir gets its path. */
int stage_shared_create(const char *state_dir, char **dir, runm_error_t *err);
/* Bind container id's rootfs and every share of sp under <shared>/<id>/.
 * On error nothing of it stays mounted. */
int stage_container(const char *shared, const char *id, const struct spec *sp, runm_error_t *err);
/* Unmount and remove <shared>/<id>. Errors are logged. */
void stage_container_release(const char *shared, const char *id);
/* Unmount everything under <state_dir>/shared (and <state_dir>/files, where
 * an older runm staged single files) and remove both: at VM teardown and
 * after a crash (the shim's delete, runm delete). Errors are logged. */
void stage_release_all(const char *state_dir);

#endif

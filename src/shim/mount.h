/* mount.h - the container's rootfs on the host: containerd's snapshot mounts
 * (overlay or bind) applied in order onto <bundle>/rootfs, and undone. */
#ifndef RUNM_SHIM_MOUNT_H
#define RUNM_SHIM_MOUNT_H

#include "common/error.h"

#include <stddef.h>

struct mount_spec {
	const char *type;    /* "overlay", "bind", ... */
	const char *source;
	char *const *options; /* n_options strings: flags (ro, rbind, nosuid...) and data (lowerdir=...) */
	size_t n_options;
};

/* Mount each of mounts[0..n) on target, in order. On failure whatever was
 * mounted is unmounted again. */
int mount_rootfs(const char *target, const struct mount_spec *mounts, size_t n, runm_error_t *err);

/* Unmount everything stacked on target (umount2 until EINVAL/ENOENT); a busy
 * mount is detached. Returns 0, or -1 with err if something stayed. */
int mount_unmount_all(const char *target, runm_error_t *err);

#endif

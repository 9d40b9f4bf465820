/* stage.h - a single file shared into a VM alone. 9p shares directories,
 * and sharing the file's own directory would hand the VM everything beside
 * it (bind /etc/resolv.conf: all of /etc). So the file is bind-mounted onto
 * an empty file in a directory of its own under the VM's state dir, and
 * that directory is shared. Needs root (the shim, `runm run` as root). */
#ifndef RUNM_ENGINE_STAGE_H
#define RUNM_ENGINE_STAGE_H

#include "common/error.h"

#include <stdbool.h>

/* Stage `file` as <state_dir>/files/<tag>/<name>; *dir gets that directory. */
int stage_file(const char *state_dir, const char *tag, const char *file, const char *name, bool readonly,
	       char **dir, runm_error_t *err);
/* Unmount whatever is staged under <state_dir>/files and remove it; also
 * after a crash (the shim's delete, runm delete). Errors are logged. */
void stage_release_all(const char *state_dir);

#endif

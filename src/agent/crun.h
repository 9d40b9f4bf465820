/* crun.h - run the guest's OCI runtime (crun) synchronously, with a deadline,
 * its errors read back from its log file. */
#ifndef RUNM_AGENT_CRUN_H
#define RUNM_AGENT_CRUN_H

#include "common/error.h"

#include <stddef.h>

#define CRUN_ROOT "/run/crun"

/* Run `crun --root CRUN_ROOT --log ... args...` with fds in[0..2] as its
 * stdio (-1 = /dev/null). Waits at most timeout_ms, then kills it.
 * Fails unless crun exits 0; the error carries crun's last log line. */
int crun_run(const char *const *args, const int stdio[3], unsigned timeout_ms, runm_error_t *err);

/* Like crun_run, but captures stdout (at most max bytes) into *out. */
int crun_output(const char *const *args, size_t max, char **out, unsigned timeout_ms, runm_error_t *err);

/* What `crun start ID` does for a container created by `crun create` with
 * no poststart hooks and no notify socket (the guest's config never has
 * them: runm runs OCI hooks on the host): open ROOT/ID/exec.fifo for
 * writing, unlink it, write one byte, which releases the container's init
 * (crun's state then says "running": the fifo is gone). It saves a whole
 * crun process, ~150 ms under TCG. Fails clearly when the init is gone
 * (no reader) or the container was started already (no fifo). */
int crun_start_fifo(const char *root, const char *id, runm_error_t *err);

#endif

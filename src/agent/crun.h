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

#endif

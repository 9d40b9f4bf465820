/* holder.h - a process parked in a new, empty network namespace. The task
 * pid containerd gets must not live in the host's network namespace: clients
 * configure /proc/<task pid>/ns/net (ctr run --cni runs CNI there). When the
 * VMM itself sits in the host's namespace (user-mode NAT), this process
 * stands in as the task's pid, so such configuration lands in a namespace
 * of its own instead of on the host. */
#ifndef RUNM_SHIM_HOLDER_H
#define RUNM_SHIM_HOLDER_H

#include "common/error.h"

#include <sys/types.h>

pid_t holder_spawn(runm_error_t *err);
/* Kill and reap; 0 and negative pids are ignored. */
void holder_stop(pid_t pid);

#endif

/* stats.h - a container's figures for Stats: from its cgroup in the guest
 * (cgroup v2, where crun put it), each figure the cgroup lacks taken from the
 * whole VM, which is the container's sandbox (a memory limit of "max" is the
 * VM's memory). */
#ifndef RUNM_AGENT_STATS_H
#define RUNM_AGENT_STATS_H

#include "runm/agent.pb-c.h"

#include <sys/types.h>

/* Fill resp for the container whose init is pid (<= 0: VM figures only). */
void stats_collect(pid_t init_pid, Runm__Agent__V1__StatsResponse *resp);

/* The cgroup v2 path of pid ("0::/a/b" in /proc/<pid>/cgroup), malloc'd, or NULL. */
char *stats_cgroup_of(pid_t pid);
/* How many times the OOM killer acted in cgroup cg (memory.events'
 * oom_kill), 0 if unknown. */
unsigned long long stats_oom_kills(const char *cg);
/* Parse one number file's text: "max" or garbage gives 0. */
unsigned long long stats_parse_u64(const char *text);

#endif

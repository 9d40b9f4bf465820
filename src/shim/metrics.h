/* metrics.h - the agent's Stats figures as containerd expects them from a
 * Linux shim: a cgroups v1 `io.containerd.cgroups.v1.Metrics` message
 * (github.com/containerd/cgroups/stats/v1/metrics.proto), which ctr and the
 * CRI decode. Hand-encoded: only the few fields we have. */
#ifndef RUNM_SHIM_METRICS_H
#define RUNM_SHIM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_V1_TYPE_URL "io.containerd.cgroups.v1.Metrics"

struct metrics_figures {
	uint64_t pids;
	uint64_t cpu_usage_ns;
	uint64_t mem_usage, mem_limit;
};

/* Encode into a malloc'd buffer; *len its length. */
uint8_t *metrics_encode_v1(const struct metrics_figures *m, size_t *len);

#endif

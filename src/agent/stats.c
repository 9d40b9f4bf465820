/* stats.c - see stats.h. */
#include "stats.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CGROUP_ROOT "/sys/fs/cgroup"

static uint64_t meminfo_kib(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void vm_figures(Runm__Agent__V1__StatsResponse *resp)
{
	cleanup_free char *mem = NULL, *stat = NULL;

	if (read_file_at(AT_FDCWD, "/proc/meminfo", 1 << 16, &mem, NULL, NULL) == 0) {
		uint64_t total = meminfo_kib(mem, "MemTotal:"), avail = meminfo_kib(mem, "MemAvailable:");
		resp->memory_limit_bytes = total * 1024;
		resp->memory_usage_bytes = (total - (avail < total ? avail : total)) * 1024;
	}
	if (read_file_at(AT_FDCWD, "/proc/stat", 1 << 16, &stat, NULL, NULL) == 0) {
		unsigned long long v[8] = { 0 };
		sscanf(stat, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		       &v[6], &v[7]);
		/* Busy ticks (all but idle and iowait), USER_HZ = 100. */
		resp->cpu_usage_ns = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 10000000ull;
	}
}

unsigned long long stats_parse_u64(const char *text)
{
	char *end;
	unsigned long long v;

	if (text == NULL || text[0] < '0' || text[0] > '9')
		return 0;
	v = strtoull(text, &end, 10);
	return (*end == '\0' || *end == '\n' || *end == ' ') ? v : 0;
}

char *stats_cgroup_of(pid_t pid)
{
	cleanup_free char *path = xasprintf("/proc/%d/cgroup", (int)pid);
	cleanup_free char *text = NULL;
	char *line, *nl;

	if (read_file_at(AT_FDCWD, path, 1 << 14, &text, NULL, NULL) < 0)
		return NULL;
	for (line = text; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, "0::/", 4) == 0 && strstr(line + 3, "/..") == NULL)
			return xstrdup(line + 3);
	}
	return NULL;
}

/* A cgroup file's text, or NULL. */
static char *cg_read(const char *cg, const char *file)
{
	cleanup_free char *path = xasprintf(CGROUP_ROOT "%s/%s", cg, file);
	char *text = NULL;
	if (read_file_at(AT_FDCWD, path, 1 << 14, &text, NULL, NULL) < 0)
		return NULL;
	return text;
}

unsigned long long stats_oom_kills(const char *cg)
{
	cleanup_free char *ev = cg_read(cg, "memory.events");
	const char *k = ev ? strstr(ev, "oom_kill ") : NULL;
	/* oom_kill, not oom (which counts hitting the limit) or oom_group_kill */
	while (k && k != ev && k[-1] != '\n')
		k = strstr(k + 1, "oom_kill ");
	return k ? stats_parse_u64(k + strlen("oom_kill ")) : 0;
}

void stats_collect(pid_t init_pid, Runm__Agent__V1__StatsResponse *resp)
{
	cleanup_free char *cg = init_pid > 0 ? stats_cgroup_of(init_pid) : NULL;
	cleanup_free char *cur = NULL, *max = NULL, *cpu = NULL, *pids = NULL;

	vm_figures(resp);
	resp->pids = 0;
	if (cg == NULL || strcmp(cg, "/") == 0)
		return;
	cur = cg_read(cg, "memory.current");
	max = cg_read(cg, "memory.max");
	cpu = cg_read(cg, "cpu.stat");
	pids = cg_read(cg, "pids.current");
	if (cur)
		resp->memory_usage_bytes = stats_parse_u64(cur);
	if (max && stats_parse_u64(max) > 0 && stats_parse_u64(max) < resp->memory_limit_bytes)
		resp->memory_limit_bytes = stats_parse_u64(max);
	if (cpu && strncmp(cpu, "usage_usec ", 11) == 0)
		resp->cpu_usage_ns = stats_parse_u64(cpu + 11) * 1000ull;
	if (pids)
		resp->pids = (uint32_t)stats_parse_u64(pids);
}

/* metrics.c - see metrics.h. Field numbers from cgroups stats/v1/metrics.proto:
 * Metrics{pids=2 PidsStat, cpu=3 CPUStat, memory=4 MemoryStat};
 * PidsStat{current=1, limit=2}; CPUStat{usage=1 CPUUsage{total=1}};
 * MemoryStat{usage=33 MemoryEntry{limit=1, usage=2}}. */
#include "metrics.h"
#include "common/util.h"

#include <string.h>

struct buf {
	uint8_t data[128];
	size_t len;
};

static void put_varint(struct buf *b, uint64_t v)
{
	while (v >= 0x80) {
		b->data[b->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->data[b->len++] = (uint8_t)v;
}

static void put_u64(struct buf *b, uint32_t field, uint64_t v)
{
	if (v == 0)
		return; /* proto3: zero is the default, not sent */
	put_varint(b, (uint64_t)field << 3);
	put_varint(b, v);
}

static void put_msg(struct buf *b, uint32_t field, const struct buf *m)
{
	put_varint(b, (uint64_t)field << 3 | 2);
	put_varint(b, m->len);
	memcpy(b->data + b->len, m->data, m->len);
	b->len += m->len;
}

uint8_t *metrics_encode_v1(const struct metrics_figures *m, size_t *len)
{
	struct buf out = { .len = 0 }, pids = { .len = 0 }, usage = { .len = 0 }, cpu = { .len = 0 },
		   entry = { .len = 0 }, mem = { .len = 0 };
	uint8_t *res;

	put_u64(&pids, 1, m->pids);
	put_u64(&usage, 1, m->cpu_usage_ns);
	put_msg(&cpu, 1, &usage);
	put_u64(&entry, 1, m->mem_limit);
	put_u64(&entry, 2, m->mem_usage);
	put_msg(&mem, 33, &entry);
	put_msg(&out, 2, &pids);
	put_msg(&out, 3, &cpu);
	put_msg(&out, 4, &mem);
	res = xmalloc(out.len ? out.len : 1);
	memcpy(res, out.data, out.len);
	*len = out.len;
	return res;
}

/* task-internal.h - what the Task service's files share (task.c: the
 * lifecycle; call.c: agent calls in flight and request lookups; inspect.c:
 * pids, stats, pause/resume and the calls runm answers itself). Not a
 * public surface: task.h is. */
#ifndef RUNM_SHIM_TASK_INTERNAL_H
#define RUNM_SHIM_TASK_INTERNAL_H

#include "container.h"
#include "process.h"
#include "common/loop.h"
#include "proto/pb.h"
#include "ttrpc/ttrpc.h"

#include <stdbool.h>
#include <stdint.h>

#define AGENT_TIMEOUT_MS 60000 /* crun under TCG emulation can take seconds */

struct task_service {
	struct container_table table;
	struct loop *loop;
	void (*shutdown_cb)(void *data);
	void *shutdown_data;
	bool shutting_down;
};

/* An agent call in flight: what to answer, and whom it concerns. */
struct call {
	struct container_table *table;
	uint64_t cserial, pserial;
	struct ttrpc_stream *s;
};

struct call *call_new(struct container_table *t, struct container *c, struct process *p, struct ttrpc_stream *s);
/* Resolve a call's container and process; if either is gone, answer its
 * stream NOT_FOUND and return false. */
bool call_resolve(struct call *k, struct container **c, struct process **p);
/* The agent's error codes are meaningful to containerd (NOT_FOUND...), except
 * transport ones: the VM is gone. */
int agent_code(int code);
/* Find the container (and process, exec_id "" = init; p NULL: none) of a
 * request, or answer NOT_FOUND. */
bool task_lookup(struct task_service *t, struct ttrpc_stream *s, const char *id, const char *exec_id,
		 struct container **c, struct process **p);
/* ttrpc_reply_fn for agent calls answered with Empty: forwards the outcome
 * to the call's stream (if any), frees the call. */
void on_agent_empty(void *data, int code, const char *msg, const uint8_t *payload, size_t len);

#define UNPACK_OR_FAIL(var, type, desc)                                               \
	cleanup_pb type *var = PB_UNPACK(type, desc, payload, len);                   \
	if (var == NULL) {                                                            \
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "cannot decode " #type); \
		return;                                                               \
	}

/* inspect.c's handlers (ttrpc_handler_fn, ctx = the task_service). */
#define TASK_HANDLER(name) void name(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
TASK_HANDLER(task_h_pids);
TASK_HANDLER(task_h_pause);
TASK_HANDLER(task_h_resume);
TASK_HANDLER(task_h_stats);
TASK_HANDLER(task_h_update);
TASK_HANDLER(task_h_checkpoint);
TASK_HANDLER(task_h_connect);

#endif

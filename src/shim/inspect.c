/* inspect.c - the Task service's Pids, Stats, Pause/Resume, Connect, and
 * the calls runm refuses (Update, Checkpoint): see task-internal.h. */
#include "task-internal.h"
#include "metrics.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/sandbox.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "runm/agent.pb-c.h"

#include <stdlib.h>
#include <unistd.h>

static void on_agent_pids(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	cleanup_free struct call *k = data;
	cleanup_pb Runm__Agent__V1__PidsResponse *resp = NULL;
	Containerd__Task__V2__PidsResponse reply = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
	cleanup_free Containerd__V1__Types__ProcessInfo *infos = NULL;
	cleanup_free Containerd__V1__Types__ProcessInfo **ptrs = NULL;

	if (code != TTRPC_OK) {
		ttrpc_reply_error(k->s, agent_code(code), "pids: %s", msg ? msg : "failed");
		return;
	}
	resp = PB_UNPACK(Runm__Agent__V1__PidsResponse, runm__agent__v1__pids_response__descriptor, payload, len);
	if (resp && resp->n_processes) {
		infos = xzalloc(resp->n_processes * sizeof(*infos));
		ptrs = xzalloc(resp->n_processes * sizeof(*ptrs));
		for (size_t i = 0; i < resp->n_processes; i++) {
			containerd__v1__types__process_info__init(&infos[i]);
			infos[i].pid = resp->processes[i]->pid;
			ptrs[i] = &infos[i];
		}
		reply.n_processes = resp->n_processes;
		reply.processes = ptrs;
	}
	ttrpc_reply(k->s, &reply.base);
}

void task_h_pids(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__PidsRequest, containerd__task__v2__pids_request__descriptor);
	Runm__Agent__V1__ContainerRequest areq = RUNM__AGENT__V1__CONTAINER_REQUEST__INIT;
	struct task_service *t = ctx;
	struct container *c;

	if (!task_lookup(t, s, req->id, NULL, &c, NULL))
		return;
	areq.container_id = c->id;
	if (c->vm_dead || c->init == NULL || c->create_stream || c->init->status == PROCESS_STOPPED) {
		Containerd__Task__V2__PidsResponse empty = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
		ttrpc_reply(s, &empty.base);
		return;
	}
	sandbox_call(c->sb, "Pids", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_pids, call_new(&t->table, c, NULL, s));
}

static void pause_resume(struct ttrpc_stream *s, struct task_service *t, const char *id, bool pause)
{
	cleanup_error runm_error_t err = NULL;
	struct container *c;

	if (!task_lookup(t, s, id, NULL, &c, NULL))
		return;
	if (c->sb == NULL || c->create_stream || c->vm_dead || c->init == NULL ||
	    c->init->status == PROCESS_STOPPED) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "container %s is not running", id);
		return;
	}
	if (c->paused == pause) {
		ttrpc_reply(s, NULL);
		return;
	}
	/* Pausing is freezing the VM: it would freeze the whole pod. */
	if (container_vm_peers(c) > 0) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION,
				  "container %s shares its VM with its pod: pausing one container of a pod is not "
				  "supported", id);
		return;
	}
	if ((pause ? sandbox_pause(c->sb, &err) : sandbox_resume(c->sb, &err)) < 0) {
		ttrpc_reply_error(s, TTRPC_INTERNAL, "%s %s: %s", pause ? "pause" : "resume", id, runm_error_msg(err));
		return;
	}
	c->paused = pause;
	log_info("%s: %s", id, pause ? "paused" : "resumed");
	if (pause) {
		Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
		ev.container_id = c->id;
		container_publish(&t->table, "/tasks/paused", "containerd.events.TaskPaused", &ev.base);
	} else {
		Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
		ev.container_id = c->id;
		container_publish(&t->table, "/tasks/resumed", "containerd.events.TaskResumed", &ev.base);
	}
	ttrpc_reply(s, NULL);
}

void task_h_pause(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__PauseRequest, containerd__task__v2__pause_request__descriptor);
	pause_resume(s, ctx, req->id, true);
}

void task_h_resume(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__ResumeRequest, containerd__task__v2__resume_request__descriptor);
	pause_resume(s, ctx, req->id, false);
}

void task_h_connect(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__ConnectRequest, containerd__task__v2__connect_request__descriptor);
	Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
	struct container *c = container_find(&((struct task_service *)ctx)->table, req->id);

	resp.shim_pid = (uint32_t)getpid();
	resp.task_pid = c && c->init ? c->init->pid : 0;
	ttrpc_reply(s, &resp.base);
}

static void on_agent_stats(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	cleanup_free struct call *k = data;
	cleanup_pb Runm__Agent__V1__StatsResponse *resp = NULL;
	Containerd__Task__V2__StatsResponse reply = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct metrics_figures m = { 0 };
	cleanup_free uint8_t *buf = NULL;

	if (code != TTRPC_OK) {
		ttrpc_reply_error(k->s, agent_code(code), "stats: %s", msg ? msg : "failed");
		return;
	}
	resp = PB_UNPACK(Runm__Agent__V1__StatsResponse, runm__agent__v1__stats_response__descriptor, payload, len);
	if (resp) {
		m.pids = resp->pids;
		m.cpu_usage_ns = resp->cpu_usage_ns;
		m.mem_usage = resp->memory_usage_bytes;
		m.mem_limit = resp->memory_limit_bytes;
	}
	buf = metrics_encode_v1(&m, &any.value.len);
	any.value.data = buf;
	any.type_url = (char *)METRICS_V1_TYPE_URL;
	reply.stats = &any;
	ttrpc_reply(k->s, &reply.base);
}

void task_h_stats(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__StatsRequest, containerd__task__v2__stats_request__descriptor);
	Runm__Agent__V1__ContainerRequest areq = RUNM__AGENT__V1__CONTAINER_REQUEST__INIT;
	struct task_service *t = ctx;
	struct container *c;

	if (!task_lookup(t, s, req->id, NULL, &c, NULL))
		return;
	areq.container_id = c->id;
	if (c->vm_dead || c->create_stream || c->paused) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "container %s: no stats while %s", c->id,
				  c->paused ? "paused" : "not running");
		return;
	}
	sandbox_call(c->sb, "Stats", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_stats, call_new(&t->table, c, NULL, s));
}

void task_h_update(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	(void)payload;
	(void)len;
	(void)ctx;
	ttrpc_reply_error(s, TTRPC_UNIMPLEMENTED,
			  "runm: updating the resources of a running container is not supported (its VM is sized "
			  "at create)");
}

void task_h_checkpoint(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	(void)payload;
	(void)len;
	(void)ctx;
	ttrpc_reply_error(s, TTRPC_UNIMPLEMENTED, "runm: checkpoint is not supported");
}

/* task.c - see task.h: the task lifecycle (create, start, wait, kill, exec,
 * delete, shutdown). The container table and teardown live in container.c,
 * agent calls in flight and lookups in call.c, pids/stats/pause in inspect.c.
 *
 * Everything runs on the shim's one loop. Requests that need the agent are
 * answered from the agent's reply callback; those callbacks find their
 * container and process again by serial number (never by a saved pointer),
 * so a container deleted meanwhile is simply not found. */
#include "task.h"
#include "container.h"
#include "task-internal.h"
#include "holder.h"
#include "metrics.h"
#include "options.h"
#include "paths.h"
#include "process.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/create.h"
#include "engine/sandbox.h"
#include "engine/spec.h"
#include "engine/stage.h"
#include "proto/pb.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TASK_SERVICE "containerd.task.v2.Task"

/* ---------------------------------------------------------------- helpers */

static void fail_create(struct container *c, int code, runm_error_t *err)
{
	log_error("create %s: %s", c->id, runm_error_msg(*err));
	if (c->create_stream)
		ttrpc_reply_error(c->create_stream, code, "%s", runm_error_msg(*err));
	c->create_stream = NULL;
	runm_error_release(err);
}

static void on_agent_create(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	cleanup_free struct call *k = data;
	cleanup_error runm_error_t err = NULL;
	Containerd__Task__V2__CreateTaskResponse reply = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
	Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
	Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
	Containerd__Task__V2__CreateTaskRequest *req;
	struct container *c;
	struct process *p;
	char pidbuf[16];

	if (!call_resolve(k, &c, &p))
		return;
	if (code != TTRPC_OK) {
		runm_error_make(&err, 0, "agent Create: %s", msg ? msg : "failed");
		fail_create(c, agent_code(code) == TTRPC_UNAVAILABLE ? TTRPC_UNAVAILABLE : TTRPC_INTERNAL, &err);
		container_destroy_later(c);
		return;
	}
	{
		/* The guest's pid of the init is not what containerd wants; a
		 * pod's containers join the namespaces it names. */
		cleanup_pb Runm__Agent__V1__CreateResponse *cr = PB_UNPACK(
			Runm__Agent__V1__CreateResponse, runm__agent__v1__create_response__descriptor, payload, len);
		c->guest_pid = cr ? cr->pid : 0;
	}
	/* The task's pid is a host process in the container's network
	 * namespace: containerd's users take it for one (ctr --cni runs CNI in
	 * /proc/<pid>/ns/net), and the guest's pid would name some unrelated
	 * host process. With a namespace of its own the VMM is in it (Kata's
	 * choice); otherwise the VMM is in the host's, and a holder process in
	 * a fresh namespace stands in, so nothing configures the host's. A
	 * pod's container shows its sandbox's: the same VM and network. */
	if (c->joined) {
		struct container *owner = container_vm_owner(c);
		c->init->pid = owner && owner->init ? owner->init->pid : (uint32_t)sandbox_vmm_pid(c->sb);
	} else if (c->spec.netns_path) {
		c->init->pid = (uint32_t)sandbox_vmm_pid(c->sb);
	} else {
		c->holder = holder_spawn(&err);
		if (c->holder < 0) {
			fail_create(c, TTRPC_INTERNAL, &err);
			container_destroy_later(c);
			return;
		}
		c->init->pid = (uint32_t)c->holder;
	}
	if (process_start_relay(c->init, c->sb, c->id, &err) < 0) {
		fail_create(c, TTRPC_INTERNAL, &err);
		container_destroy_later(c);
		return;
	}
	snprintf(pidbuf, sizeof(pidbuf), "%u", c->init->pid);
	container_write_bundle_file(c, PATHS_INIT_PID, pidbuf);

	req = c->create_req;
	ev.container_id = c->id;
	ev.bundle = c->bundle;
	ev.n_rootfs = req->n_rootfs;
	ev.rootfs = req->rootfs;
	io.stdin = req->stdin;
	io.stdout = req->stdout;
	io.stderr = req->stderr;
	io.terminal = req->terminal;
	ev.io = &io;
	ev.pid = c->init->pid;
	container_publish(c->table, "/tasks/create", "containerd.events.TaskCreate", &ev.base);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	c->create_req = NULL;

	log_info("%s: created, init pid %u", c->id, c->init->pid);
	reply.pid = c->init->pid;
	ttrpc_reply(c->create_stream, &reply.base);
	c->create_stream = NULL;
}

/* The container's VM is up: bind its files into the VM's share, have the agent create it. */
static void send_create(struct container *c)
{
	struct process *init = c->init;
	engine_create(c->sb, c->id, &c->spec, init->fifos.in >= 0, init->fifos.out >= 0,
		      !init->terminal && init->fifos.err >= 0, on_agent_create, call_new(c->table, c, init, NULL));
}

static void on_sandbox_ready(struct sandbox *sb, runm_error_t *err, void *data)
{
	struct container *c = data;

	if (err && *err) {
		fail_create(c, TTRPC_INTERNAL, err);
		container_destroy_later(c);
		return;
	}
	log_info("%s: VM up (guest kernel %s)", c->id, sandbox_guest_kernel(sb));
	{
		/* Again: a boot retried under TCG (a KVM that could not run the
		 * guest) has another VMM than the one recorded at create. */
		char pidbuf[16];
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)sandbox_vmm_pid(sb));
		container_write_bundle_file(c, PATHS_VMM_PID, pidbuf);
	}
	send_create(c);
}

/* A pod's container (spec.pod_sandbox): created in the running VM of its
 * sandbox, in the sandbox's network and the namespaces the spec shares
 * with it, instead of a VM of its own. */
static int join_pod(struct task_service *t, struct container *c, runm_error_t *err)
{
	struct container *sbox = container_find(&t->table, c->spec.pod_sandbox);

	if (sbox == NULL)
		return runm_error_make(err, 0, "pod sandbox %s: not found in this shim (create the sandbox first, "
				       "with annotation " SPEC_ANN_CRI_TYPE "=sandbox)", c->spec.pod_sandbox);
	if (sbox->joined || sbox->sb == NULL || sbox->vm_dead || sbox->create_stream || sbox->init == NULL ||
	    sbox->init->status == PROCESS_STOPPED)
		return runm_error_make(err, 0, "pod sandbox %s is not running", sbox->id);
	if (spec_join_pod(&c->spec, sbox->guest_pid, err) < 0)
		return -1;
	c->sb = sbox->sb;
	c->joined = true;
	log_info("%s: joins the VM of pod sandbox %s", c->id, sbox->id);
	send_create(c);
	return 0;
}

/* ---------------------------------------------------------------- handlers */

/* The container's state dir, new and empty. One that exists is named after
 * this bundle, so it is no live container's: what a shim that died without
 * its delete left (a crash; a host gone down with a /run that persists).
 * Its shared dir, and any bind still in it, would fail the VM's start. */
static int fresh_state_dir(const struct container *c, runm_error_t *err)
{
	if (mkdir(c->state_dir, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return runm_error_make(err, errno, "mkdir `%s`", c->state_dir);
	log_warn("%s: state dir `%s` left by an earlier shim: removed", c->id, c->state_dir);
	stage_release_all(c->state_dir);
	if (rm_rf(c->state_dir, err) < 0)
		return -1;
	if (mkdir(c->state_dir, 0700) < 0)
		return runm_error_make(err, errno, "mkdir `%s`", c->state_dir);
	return 0;
}

static void h_create(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	struct task_service *t = ctx;
	Containerd__Task__V2__CreateTaskRequest *req =
		PB_UNPACK(Containerd__Task__V2__CreateTaskRequest, containerd__task__v2__create_task_request__descriptor,
			  payload, len);
	cleanup_error runm_error_t err = NULL;
	struct sandbox_config cfg = { 0 };
	struct runm_config rc __attribute__((cleanup(config_release))) = { 0 };
	struct container *c;
	char pidbuf[16];

	if (req == NULL) {
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "cannot decode CreateTaskRequest");
		return;
	}
	if (req->id[0] == '\0' || strchr(req->id, '/') || req->bundle[0] != '/') {
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "create: bad container id `%s` or bundle `%s`", req->id,
				  req->bundle);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	if (container_find(&t->table, req->id)) {
		ttrpc_reply_error(s, TTRPC_ALREADY_EXISTS, "container %s already exists", req->id);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	if (req->checkpoint[0]) {
		ttrpc_reply_error(s, TTRPC_UNIMPLEMENTED, "runm cannot restore a checkpoint");
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	c = container_new(&t->table, req->id, req->bundle);
	c->create_req = req;
	log_info("%s: create (bundle %s, %zu rootfs mounts, terminal %d)", c->id, c->bundle, req->n_rootfs,
		 req->terminal);
	if (container_mount_rootfs(c, req->rootfs, req->n_rootfs, &err) < 0)
		goto fail;
	if (spec_load(c->id, c->bundle, &c->spec, &err) < 0 || spec_pick_ports(&c->spec, &err) < 0)
		goto fail;
	c->have_spec = true;
	for (size_t i = 0; i < c->spec.n_ports; i++) {
		cleanup_free char *p = spec_port_string(&c->spec.ports[i]);
		log_info("%s: publishes %s", c->id, p);
	}
	container_add_process(c, "", req->terminal, req->stdin, req->stdout, req->stderr);
	if (process_open_stdio(c->init, &err) < 0)
		goto fail;
	if (mkdir_p(PATHS_STATE_ROOT, 0700, &err) < 0)
		goto fail;
	if (fresh_state_dir(c, &err) < 0)
		goto fail;
	if (c->spec.pod_sandbox) {
		c->create_stream = s;
		if (join_pod(t, c, &err) < 0) {
			c->create_stream = NULL;
			goto fail;
		}
		return;
	}
	if (shim_task_config(req->options, &rc, &err) < 0)
		goto fail;
	cfg.id = c->id;
	cfg.state_dir = c->state_dir;
	cfg.spec = &c->spec;
	cfg.network = true;
	cfg.kernel = rc.kernel;
	cfg.initrd = rc.initrd;
	cfg.default_mem_mib = rc.default_mem_mib;
	cfg.default_vcpus = rc.default_vcpus;
	cfg.warm_start = rc.warm_start;
	cfg.net_backend = rc.network;
	/* The runtime options' config file decides, even by saying nothing. */
	cfg.accel = rc.accel ? rc.accel : "auto";
	c->create_stream = s;
	if (sandbox_start(t->loop, &cfg, on_sandbox_ready, container_on_vm_exit, c, &c->sb, &err) < 0) {
		c->create_stream = NULL;
		goto fail;
	}
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)sandbox_vmm_pid(c->sb));
	container_write_bundle_file(c, PATHS_VMM_PID, pidbuf);
	return;
fail:
	log_error("create %s: %s", c->id, runm_error_msg(err));
	ttrpc_reply_error(s, TTRPC_INTERNAL, "%s", runm_error_msg(err));
	container_unlink(c);
	container_destroy(c);
}

static void on_agent_wait(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	cleanup_free struct call *k = data;
	cleanup_pb Runm__Agent__V1__WaitResponse *resp = NULL;
	struct container *c;
	struct process *p;

	if (!call_resolve(k, &c, &p))
		return;
	if (code != TTRPC_OK) {
		/* The VM (or its channel) went away under the process: as if SIGKILLed. */
		if (!c->vm_dead) {
			/* Seen before the VMM's exit, which a delete may then
			 * forestall (container_on_vm_exit never runs): what the
			 * console says (a guest panic) goes with this one. */
			cleanup_free char *tail = c->sb ? sandbox_console_tail(c->sb) : NULL;
			log_warn("%s: agent Wait for `%s`: %s%s%s", c->id, p->exec_id, msg ? msg : "failed",
				 tail && tail[0] ? "; guest console ends with:\n" : "", tail ? tail : "");
		}
		process_exited(p, 128 + SIGKILL, now_real_ns());
		return;
	}
	resp = PB_UNPACK(Runm__Agent__V1__WaitResponse, runm__agent__v1__wait_response__descriptor, payload, len);
	if (resp && resp->oom_killed && p->exec_id[0] == '\0') {
		/* Before the exit: containerd (and CRI's OOMKilled reason) expect it so. */
		Containerd__Events__TaskOOM ev = CONTAINERD__EVENTS__TASK_OOM__INIT;
		ev.container_id = c->id;
		log_warn("%s: the OOM killer acted in the container", c->id);
		container_publish(c->table, "/tasks/oom", "containerd.events.TaskOOM", &ev.base);
	}
	/* exited_at from the host clock: the guest's may lag under emulation. */
	process_exited(p, resp ? resp->exit_status : 255, now_real_ns());
	if (p->exec_id[0] == '\0' && !c->joined)
		sandbox_network_down(c->sb);
}

static void on_agent_start(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	cleanup_free struct call *k = data;
	cleanup_pb Runm__Agent__V1__StartResponse *resp = NULL;
	cleanup_error runm_error_t err = NULL;
	Containerd__Task__V2__StartResponse reply = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
	Runm__Agent__V1__WaitRequest wreq = RUNM__AGENT__V1__WAIT_REQUEST__INIT;
	struct container *c;
	struct process *p;

	if (!call_resolve(k, &c, &p))
		return;
	if (code != TTRPC_OK) {
		log_warn("%s: start `%s`: %s", c->id, p->exec_id, msg ? msg : "failed");
		ttrpc_reply_error(k->s, agent_code(code), "start: %s", msg ? msg : "failed");
		return;
	}
	if (p->exec_id[0] && p->terminal && p->relay == NULL && process_start_relay(p, c->sb, c->id, &err) < 0)
		log_warn("%s: %s", c->id, runm_error_msg(err));
	resp = PB_UNPACK(Runm__Agent__V1__StartResponse, runm__agent__v1__start_response__descriptor, payload, len);
	if (resp && resp->pid && p->exec_id[0] != '\0') /* the init's stays the VMM's */
		p->pid = resp->pid;
	if (!p->exited)
		p->status = PROCESS_RUNNING;
	/* Published before the Wait is even sent: /tasks/start precedes /tasks/exit. */
	if (p->exec_id[0] == '\0') {
		Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
		ev.container_id = c->id;
		ev.pid = p->pid;
		container_publish(c->table, "/tasks/start", "containerd.events.TaskStart", &ev.base);
	} else {
		Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
		ev.container_id = c->id;
		ev.exec_id = p->exec_id;
		ev.pid = p->pid;
		container_publish(c->table, "/tasks/exec-started", "containerd.events.TaskExecStarted", &ev.base);
	}
	log_info("%s: started `%s`, pid %u", c->id, p->exec_id, p->pid);
	reply.pid = p->pid;
	ttrpc_reply(k->s, &reply.base);
	wreq.exec_id = p->exec_id;
	wreq.container_id = c->id;
	sandbox_call(c->sb, "Wait", &wreq.base, 0, 0, on_agent_wait, call_new(c->table, c, p, NULL));
}

/* The guest's eth0 is configured: now the init process may start. */
static void on_agent_network(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct call *k = data;
	Runm__Agent__V1__StartRequest areq = RUNM__AGENT__V1__START_REQUEST__INIT;
	struct container *c;
	struct process *p;
	(void)payload;
	(void)len;

	if (!call_resolve(k, &c, &p)) {
		free(k);
		return;
	}
	if (code != TTRPC_OK) {
		log_error("%s: configure the VM's network: %s", c->id, msg ? msg : "failed");
		ttrpc_reply_error(k->s, agent_code(code), "configure the VM's network: %s", msg ? msg : "failed");
		free(k);
		return;
	}
	areq.exec_id = p->exec_id;
	areq.container_id = c->id;
	sandbox_call(c->sb, "Start", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_start, k);
}

static void h_start(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__StartRequest, containerd__task__v2__start_request__descriptor);
	Runm__Agent__V1__StartRequest areq = RUNM__AGENT__V1__START_REQUEST__INIT;
	struct task_service *t = ctx;
	struct container *c;
	struct process *p;

	if (!task_lookup(t, s, req->id, req->exec_id, &c, &p))
		return;
	if (p->status != PROCESS_CREATED || p->exited) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "process `%s` of %s was already started", p->exec_id,
				  c->id);
		return;
	}
	if (c->vm_dead) {
		ttrpc_reply_error(s, TTRPC_UNAVAILABLE, "the VM of %s is gone", c->id);
		return;
	}
	/* The container's network namespace, if it has one of its own, is
	 * configured by now (ctr --cni runs CNI between Create and Start). */
	if (p->exec_id[0] == '\0') {
		cleanup_error runm_error_t err = NULL;
		struct call *k = call_new(&t->table, c, p, s);
		int r = sandbox_network_up(c->sb, on_agent_network, k, &err);
		if (r > 0) /* on_agent_network owns k and sends the Start */
			return;
		free(k);
		if (r < 0) {
			log_error("%s: %s", c->id, runm_error_msg(err));
			ttrpc_reply_error(s, TTRPC_INTERNAL, "%s", runm_error_msg(err));
			return;
		}
	}
	areq.exec_id = p->exec_id;
	areq.container_id = c->id;
	sandbox_call(c->sb, "Start", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_start, call_new(&t->table, c, p, s));
}

static void h_wait(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__WaitRequest, containerd__task__v2__wait_request__descriptor);
	struct container *c;
	struct process *p;

	if (task_lookup(ctx, s, req->id, req->exec_id, &c, &p))
		process_wait(p, s);
}

static void h_state(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__StateRequest, containerd__task__v2__state_request__descriptor);
	Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts;
	struct container *c;
	struct process *p;

	if (!task_lookup(ctx, s, req->id, req->exec_id, &c, &p))
		return;
	resp.id = p->exec_id[0] ? p->exec_id : c->id;
	resp.bundle = c->bundle;
	resp.pid = p->pid;
	resp.status = (Containerd__V1__Types__Status)p->status;
	if (p->status == PROCESS_RUNNING && c->paused)
		resp.status = CONTAINERD__V1__TYPES__STATUS__PAUSED;
	resp.stdin = p->stdin_path;
	resp.stdout = p->stdout_path;
	resp.stderr = p->stderr_path;
	resp.terminal = p->terminal;
	resp.exec_id = p->exec_id;
	if (p->status == PROCESS_STOPPED) {
		resp.exit_status = p->exit_status;
		ts = container_timestamp(p->exited_at_ns);
		resp.exited_at = &ts;
	}
	ttrpc_reply(s, &resp.base);
}

/* SIGKILL to the init must end the container even when the guest does not
 * cooperate (a hung or hostile agent): the VM is the container, so after a
 * grace period the VMM itself is killed, and the VM-died path reports 137. */
#define KILL_GRACE_MS 10000

static void kill_backstop(struct loop *l, void *data)
{
	struct call *k = data;
	struct container *c;
	struct process *p;
	(void)l;
	if (call_resolve(k, &c, &p) && !p->exited && !c->vm_dead && c->sb != NULL) {
		log_warn("%s: init still alive %u ms after SIGKILL: killing its VM", c->id, KILL_GRACE_MS);
		/* Our unreaped child: the pid cannot have been reused. */
		kill(sandbox_vmm_pid(c->sb), SIGKILL);
	}
	free(k);
}

static void h_kill(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__KillRequest, containerd__task__v2__kill_request__descriptor);
	Runm__Agent__V1__SignalRequest areq = RUNM__AGENT__V1__SIGNAL_REQUEST__INIT;
	struct task_service *t = ctx;
	struct container *c;
	struct process *p;
	bool is_init;

	if (!task_lookup(t, s, req->id, req->exec_id, &c, &p))
		return;
	is_init = p->exec_id[0] == '\0';
	if (p->status == PROCESS_STOPPED) {
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "process `%s` of %s already finished", p->exec_id, c->id);
		return;
	}
	if (p->exited || c->vm_dead) {
		ttrpc_reply(s, NULL); /* already gone, its output is draining */
		return;
	}
	if (p->status == PROCESS_CREATED && !is_init) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "exec `%s` of %s was not started", p->exec_id, c->id);
		return;
	}
	if (c->paused && req->signal == SIGKILL) {
		/* A frozen VM cannot deliver anything: thaw it so SIGKILL works, as on a frozen cgroup. */
		cleanup_error runm_error_t err = NULL;
		if (sandbox_resume(c->sb, &err) < 0)
			log_warn("%s: resume for SIGKILL: %s", c->id, runm_error_msg(err));
		else
			c->paused = false;
	}
	areq.exec_id = p->exec_id;
	areq.container_id = c->id;
	areq.signal = req->signal;
	/* A created init has no process of its own yet: crun kill reaches it through --all. */
	areq.all = req->all || (is_init && p->status == PROCESS_CREATED);
	log_debug("%s: kill `%s` signal %u all %d", c->id, p->exec_id, req->signal, areq.all);
	/* Not for a pod's member: its VM is the whole pod's. */
	if (is_init && req->signal == SIGKILL && !c->joined)
		loop_timer_add(t->loop, KILL_GRACE_MS, kill_backstop, call_new(&t->table, c, p, NULL));
	sandbox_call(c->sb, "Signal", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_empty, call_new(&t->table, c, p, s));
}

static void h_delete(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__DeleteRequest, containerd__task__v2__delete_request__descriptor);
	Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts;
	struct task_service *t = ctx;
	struct container *c;
	struct process *p;
	uint64_t exited_at;

	if (!task_lookup(t, s, req->id, req->exec_id, &c, &p))
		return;
	if (p->status == PROCESS_RUNNING && !c->vm_dead) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "process `%s` of %s is still running", p->exec_id,
				  c->id);
		return;
	}
	exited_at = p->exited ? p->exited_at_ns : now_real_ns();
	resp.pid = p->pid;
	resp.exit_status = p->exited ? p->exit_status : 0;
	ts = container_timestamp(exited_at);
	resp.exited_at = &ts;

	if (p->exec_id[0]) {
		Runm__Agent__V1__DeleteRequest areq = RUNM__AGENT__V1__DELETE_REQUEST__INIT;
		/* ctr waits for EOF on the exec's FIFOs once Delete returns: close them first. */
		areq.exec_id = p->exec_id;
		areq.container_id = c->id;
		if (!c->vm_dead)
			sandbox_call(c->sb, "Delete", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_empty,
				     call_new(&t->table, c, NULL, NULL));
		container_remove_process(c, p);
		ttrpc_reply(s, &resp.base);
		return;
	}

	container_unlink(c);
	{
		Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
		char *id = xstrdup(c->id);
		container_destroy(c);
		ev.container_id = id;
		ev.pid = resp.pid;
		ev.exit_status = resp.exit_status;
		ev.exited_at = &ts;
		container_publish(&t->table, "/tasks/delete", "containerd.events.TaskDelete", &ev.base);
		free(id);
	}
	ttrpc_reply(s, &resp.base);
}

static void on_agent_exec(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	cleanup_free struct call *k = data;
	cleanup_error runm_error_t err = NULL;
	Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
	struct container *c;
	struct process *p;
	(void)payload;
	(void)len;

	if (!call_resolve(k, &c, &p))
		return;
	if (code != TTRPC_OK) {
		ttrpc_reply_error(k->s, agent_code(code), "exec: %s", msg ? msg : "failed");
		container_remove_process(c, p);
		return;
	}
	/* A terminal exec's pty only exists once the agent started it, and the
	 * agent ends a Stdio stream attached before that at once (see
	 * on_agent_start): its relay starts after Start; the pty keeps any early output. */
	if (!p->terminal && process_start_relay(p, c->sb, c->id, &err) < 0) {
		ttrpc_reply_error(k->s, TTRPC_INTERNAL, "%s", runm_error_msg(err));
		container_remove_process(c, p);
		return;
	}
	ev.container_id = c->id;
	ev.exec_id = p->exec_id;
	container_publish(c->table, "/tasks/exec-added", "containerd.events.TaskExecAdded", &ev.base);
	ttrpc_reply(k->s, NULL);
}

static void h_exec(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__ExecProcessRequest,
		       containerd__task__v2__exec_process_request__descriptor);
	Runm__Agent__V1__ExecRequest areq = RUNM__AGENT__V1__EXEC_REQUEST__INIT;
	cleanup_error runm_error_t err = NULL;
	struct task_service *t = ctx;
	struct container *c;
	struct process *p;

	if (!task_lookup(t, s, req->id, NULL, &c, NULL))
		return;
	if (req->exec_id[0] == '\0' || strchr(req->exec_id, '/')) {
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "bad exec id `%s`", req->exec_id);
		return;
	}
	if (c->init == NULL || c->create_stream) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "container %s is not created yet", c->id);
		return;
	}
	if (process_find(c->procs, req->exec_id)) {
		ttrpc_reply_error(s, TTRPC_ALREADY_EXISTS, "exec %s already exists in %s", req->exec_id, c->id);
		return;
	}
	if (c->init->status != PROCESS_RUNNING || c->init->exited || c->vm_dead) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "container %s is not running", c->id);
		return;
	}
	if (req->spec == NULL || req->spec->value.len == 0) {
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "exec %s: no process spec", req->exec_id);
		return;
	}
	p = container_add_process(c, req->exec_id, req->terminal, req->stdin, req->stdout, req->stderr);
	if (process_open_stdio(p, &err) < 0) {
		ttrpc_reply_error(s, TTRPC_INTERNAL, "%s", runm_error_msg(err));
		container_remove_process(c, p);
		return;
	}
	areq.exec_id = p->exec_id;
	areq.container_id = c->id;
	areq.process_json = req->spec->value; /* the OCI Process, JSON */
	areq.terminal = p->terminal;
	areq.stdin = p->stdin_path[0] != '\0';
	areq.stdout = p->stdout_path[0] != '\0';
	areq.stderr = !p->terminal && p->stderr_path[0] != '\0';
	log_info("%s: exec `%s` (terminal %d)", c->id, p->exec_id, p->terminal);
	sandbox_call(c->sb, "Exec", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_exec, call_new(&t->table, c, p, s));
}

static void h_resize_pty(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__ResizePtyRequest,
		       containerd__task__v2__resize_pty_request__descriptor);
	Runm__Agent__V1__ResizeRequest areq = RUNM__AGENT__V1__RESIZE_REQUEST__INIT;
	struct task_service *t = ctx;
	struct container *c;
	struct process *p;

	if (!task_lookup(t, s, req->id, req->exec_id, &c, &p))
		return;
	if (!p->terminal || p->exited || c->vm_dead) {
		ttrpc_reply(s, NULL);
		return;
	}
	areq.exec_id = p->exec_id;
	areq.container_id = c->id;
	areq.width = req->width;
	areq.height = req->height;
	sandbox_call(c->sb, "Resize", &areq.base, AGENT_TIMEOUT_MS, 0, on_agent_empty, call_new(&t->table, c, p, s));
}

static void h_close_io(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Containerd__Task__V2__CloseIORequest, containerd__task__v2__close_iorequest__descriptor);
	struct container *c;
	struct process *p;

	if (!task_lookup(ctx, s, req->id, req->exec_id, &c, &p))
		return;
	if (req->stdin)
		process_close_stdin(p);
	ttrpc_reply(s, NULL);
}

static void shutdown_now(struct loop *l, void *data)
{
	struct task_service *t = data;
	(void)l;
	if (t->shutdown_cb && t->shutting_down) {
		t->shutting_down = false;
		t->shutdown_cb(t->shutdown_data);
	}
}

static void shutdown_drained(struct ttrpc_conn *conn, void *data)
{
	struct task_service *t = data;
	(void)conn;
	loop_defer(t->loop, shutdown_now, t);
}

static void h_shutdown(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	struct task_service *t = ctx;
	struct ttrpc_conn *conn = ttrpc_stream_conn(s);
	(void)payload;
	(void)len;

	ttrpc_reply(s, NULL);
	if (t->table.head != NULL || t->shutting_down)
		return;
	log_info("shutdown: no container left, exiting");
	t->shutting_down = true;
	/* Exit once the reply left (the timer covers a peer that stopped reading). */
	if (conn)
		ttrpc_conn_on_drain(conn, shutdown_drained, t);
	loop_timer_add(t->loop, 1000, shutdown_now, t);
}

static const struct ttrpc_method methods[] = {
	{ "State", h_state },	    { "Create", h_create },	  { "Start", h_start },
	{ "Delete", h_delete },	    { "Pids", task_h_pids },	  { "Pause", task_h_pause },
	{ "Resume", task_h_resume }, { "Checkpoint", task_h_checkpoint }, { "Kill", h_kill },
	{ "Exec", h_exec },	    { "ResizePty", h_resize_pty }, { "CloseIO", h_close_io },
	{ "Update", task_h_update }, { "Wait", h_wait },	  { "Stats", task_h_stats },
	{ "Connect", task_h_connect }, { "Shutdown", h_shutdown },
};

/* ---------------------------------------------------------------- service */

struct task_service *task_service_new(struct loop *loop, struct publisher *pub)
{
	struct task_service *t = xzalloc(sizeof(*t));
	t->loop = loop;
	t->table.loop = loop;
	t->table.pub = pub;
	return t;
}

void task_service_register(struct task_service *t, struct ttrpc_server *srv)
{
	/* Registered once per process; the service table must outlive the server. */
	static struct ttrpc_service svc;
	svc = (struct ttrpc_service){
		.name = TASK_SERVICE,
		.methods = methods,
		.n_methods = ARRAY_SIZE(methods),
		.ctx = t,
	};
	ttrpc_server_register(srv, &svc);
}

void task_service_on_shutdown(struct task_service *t, void (*cb)(void *data), void *data)
{
	t->shutdown_cb = cb;
	t->shutdown_data = data;
}

size_t task_service_count(const struct task_service *t)
{
	return container_count(&t->table);
}

void task_service_free(struct task_service *t)
{
	if (t == NULL)
		return;
	while (t->table.head) {
		struct container *c = t->table.head;
		t->table.head = c->next;
		container_destroy(c);
	}
	free(t);
}

/* container.c - see container.h. */
#include "container.h"
#include "holder.h"
#include "engine/stage.h"
#include "paths.h"
#include "common/log.h"
#include "common/util.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "runm/agent.pb-c.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct container *container_new(struct container_table *t, const char *id, const char *bundle)
{
	struct container *c = xzalloc(sizeof(*c));

	c->table = t;
	c->serial = ++t->next_serial;
	c->id = xstrdup(id);
	c->bundle = xstrdup(bundle);
	c->rootfs = xasprintf("%s/rootfs", bundle);
	c->state_dir = paths_state_dir(bundle);
	c->next = t->head;
	t->head = c;
	return c;
}

struct container *container_find(struct container_table *t, const char *id)
{
	for (struct container *c = t->head; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

struct container *container_by_serial(struct container_table *t, uint64_t serial)
{
	for (struct container *c = t->head; c; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

struct process *container_process_by_serial(struct container *c, uint64_t serial)
{
	for (struct process *p = c ? c->procs : NULL; p; p = p->next)
		if (p->serial == serial)
			return p;
	return NULL;
}

size_t container_count(const struct container_table *t)
{
	size_t n = 0;
	for (struct container *c = t->head; c; c = c->next)
		n++;
	return n;
}

int container_mount_rootfs(struct container *c, Containerd__Types__Mount **mounts, size_t n, runm_error_t *err)
{
	cleanup_free struct mount_spec *ms = NULL;

	if (n == 0)
		return 0;
	ms = xzalloc(n * sizeof(*ms));
	for (size_t i = 0; i < n; i++)
		ms[i] = (struct mount_spec){ .type = mounts[i]->type,
					     .source = mounts[i]->source,
					     .options = mounts[i]->options,
					     .n_options = mounts[i]->n_options };
	mkdir(c->rootfs, 0711); /* containerd made it; harmless if so */
	if (mount_rootfs(c->rootfs, ms, n, err) < 0)
		return -1;
	c->rootfs_mounted = true;
	return 0;
}

void container_publish(struct container_table *t, const char *topic, const char *type_url,
		       const ProtobufCMessage *msg)
{
	log_debug("event %s", topic);
	if (t->pub)
		publisher_publish(t->pub, topic, type_url, msg);
}

Google__Protobuf__Timestamp container_timestamp(uint64_t ns)
{
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	ts.seconds = (int64_t)(ns / 1000000000ull);
	ts.nanos = (int32_t)(ns % 1000000000ull);
	return ts;
}

void container_write_bundle_file(const struct container *c, const char *name, const char *text)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *path = xasprintf("%s/%s", c->bundle, name);
	if (write_file_atomic(path, text, strlen(text), 0644, &err) < 0)
		log_warn("%s", runm_error_msg(err));
}

static void on_process_exit(struct process *p, void *data)
{
	struct container *c = data;
	Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	Google__Protobuf__Timestamp ts = container_timestamp(p->exited_at_ns);

	log_info("%s: process `%s` (pid %u) exited with status %u", c->id, p->exec_id, p->pid, p->exit_status);
	ev.container_id = c->id;
	ev.id = p->exec_id[0] ? p->exec_id : c->id;
	ev.pid = p->pid;
	ev.exit_status = p->exit_status;
	ev.exited_at = &ts;
	container_publish(c->table, "/tasks/exit", "containerd.events.TaskExit", &ev.base);
}

struct process *container_add_process(struct container *c, const char *exec_id, bool terminal, const char *in,
				      const char *out, const char *err_path)
{
	struct process *p = process_new(c->table->loop, exec_id, terminal, in, out, err_path, on_process_exit, c);
	struct process **tail = &c->procs;

	while (*tail)
		tail = &(*tail)->next;
	*tail = p;
	if (p->exec_id[0] == '\0')
		c->init = p;
	return p;
}

void container_remove_process(struct container *c, struct process *p)
{
	for (struct process **pp = &c->procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (c->init == p)
		c->init = NULL;
	process_free(p);
}

/* The VM is gone under c: what still runs in it exited as if SIGKILLed. */
static void vm_gone(struct container *c, uint64_t now)
{
	c->vm_dead = true;
	c->paused = false;
	for (struct process *p = c->procs; p; p = p->next)
		process_exited(p, 128 + SIGKILL, now);
}

void container_on_vm_exit(struct sandbox *sb, void *data)
{
	struct container *c = data;
	cleanup_free char *tail = sandbox_console_tail(sb);
	uint64_t now = now_real_ns();

	log_warn("%s: the VM exited under the container%s%s", c->id, tail && tail[0] ? "; console ends with:\n" : "",
		 tail ? tail : "");
	vm_gone(c, now);
	for (struct container *x = c->table->head; x; x = x->next)
		if (x != c && x->joined && x->sb == sb)
			vm_gone(x, now);
}

size_t container_vm_peers(const struct container *c)
{
	size_t n = 0;
	for (const struct container *x = c->table->head; x; x = x->next)
		if (x != c && x->sb != NULL && x->sb == c->sb)
			n++;
	return n;
}

struct container *container_vm_owner(const struct container *c)
{
	for (struct container *x = c->table->head; x; x = x->next)
		if (x != c && !x->joined && x->sb != NULL && x->sb == c->sb)
			return x;
	return NULL;
}

/* A pod member leaves the VM it joined: the agent deletes it (the VM may
 * be gone: then nothing to do), and its binds leave the share. */
static void leave_vm(struct container *c)
{
	Runm__Agent__V1__DeleteRequest req = RUNM__AGENT__V1__DELETE_REQUEST__INIT;

	if (c->sb == NULL)
		return;
	if (!c->vm_dead) {
		req.container_id = c->id;
		sandbox_call(c->sb, "Delete", &req.base, 60000, 0, NULL, NULL);
	}
	sandbox_unbind_container(c->sb, c->id);
	c->sb = NULL;
}

/* The owner of a VM goes: containers still in it lose it (CRI removes
 * them first; this is the crash or misuse path). */
static void orphan_members(struct container *owner)
{
	uint64_t now = now_real_ns();
	for (struct container *x = owner->table->head; x; x = x->next) {
		if (x->joined && x->sb == owner->sb) {
			log_warn("%s: its pod sandbox %s is being removed under it", x->id, owner->id);
			/* Their relays hold streams of the connection about to go. */
			for (struct process *p = x->procs; p; p = p->next)
				process_release_io(p);
			sandbox_unbind_container(x->sb, x->id);
			x->sb = NULL;
			vm_gone(x, now);
		}
	}
}

void container_unlink(struct container *c)
{
	for (struct container **pc = &c->table->head; *pc; pc = &(*pc)->next) {
		if (*pc == c) {
			*pc = c->next;
			break;
		}
	}
}

void container_destroy(struct container *c)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *vmm_pid = xasprintf("%s/" PATHS_VMM_PID, c->bundle);

	if (c->create_stream)
		ttrpc_reply_error(c->create_stream, TTRPC_UNAVAILABLE, "container %s is being torn down", c->id);
	if (c->create_req)
		protobuf_c_message_free_unpacked(&c->create_req->base, NULL);
	/* Processes first: their relays hold streams of the sandbox's connection. */
	while (c->procs)
		container_remove_process(c, c->procs);
	if (c->joined) {
		leave_vm(c);
	} else {
		orphan_members(c);
		sandbox_free(c->sb);
	}
	holder_stop(c->holder);
	if (c->rootfs_mounted && mount_unmount_all(c->rootfs, &err) < 0)
		log_warn("%s: %s", c->id, runm_error_msg(err));
	runm_error_release(&err);
	/* The VM is stopped; its free may wait for a deferred close, the
	 * staged files' mounts must not. */
	stage_release_all(c->state_dir);
	if (rm_rf(c->state_dir, &err) < 0)
		log_warn("%s: %s", c->id, runm_error_msg(err));
	unlink(vmm_pid);
	if (c->have_spec)
		spec_release(&c->spec);
	log_info("%s: torn down", c->id);
	free(c->id);
	free(c->bundle);
	free(c->rootfs);
	free(c->state_dir);
	free(c);
}

static void destroy_deferred(struct loop *l, void *data)
{
	(void)l;
	container_destroy(data);
}

void container_destroy_later(struct container *c)
{
	container_unlink(c);
	loop_defer(c->table->loop, destroy_deferred, c);
}

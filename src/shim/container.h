/* container.h - the shim's container table: each container with its VM
 * (sandbox), host rootfs mount, prepared spec and process table (init +
 * execs); lookups, teardown, the VM-died path, and task events. A pod's
 * containers (CRI grouping, spec.pod_sandbox) run in the VM of its sandbox,
 * the container that booted it and owns it. */
#ifndef RUNM_SHIM_CONTAINER_H
#define RUNM_SHIM_CONTAINER_H

#include "common/error.h"
#include "common/loop.h"
#include "engine/sandbox.h"
#include "engine/spec.h"
#include "events/publisher.h"
#include "shim/mount.h"
#include "shim/process.h"
#include "ttrpc/ttrpc.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

struct container_table;

struct container {
	struct container *next;
	struct container_table *table;
	uint64_t serial; /* unique in this shim, never reused: names it in async callbacks */
	char *id, *bundle, *rootfs, *state_dir;
	bool rootfs_mounted;
	struct spec spec;
	bool have_spec;
	struct sandbox *sb;   /* its VM: its own, or its pod sandbox's when joined */
	bool joined;          /* runs in its pod sandbox's VM, which it does not own */
	uint32_t guest_pid;   /* its init's pid in the guest (a pod's sandbox: the namespaces to join) */
	bool vm_dead, paused;
	pid_t holder; /* the task's pid when the VMM is in the host's netns (holder.h) */
	struct process *procs; /* init first */
	struct process *init;  /* NULL until set up by Create */
	/* Create in progress: its stream and request (kept for the event). */
	struct ttrpc_stream *create_stream;
	Containerd__Task__V2__CreateTaskRequest *create_req;
};

struct container_table {
	struct loop *loop;
	struct publisher *pub; /* may be NULL */
	struct container *head;
	uint64_t next_serial;
};

/* A new container, linked into t. Its state dir is derived from bundle. */
struct container *container_new(struct container_table *t, const char *id, const char *bundle);

struct container *container_find(struct container_table *t, const char *id);
struct container *container_by_serial(struct container_table *t, uint64_t serial);
/* NULL-safe on c. */
struct process *container_process_by_serial(struct container *c, uint64_t serial);
size_t container_count(const struct container_table *t);

/* Mount containerd's rootfs mounts on <bundle>/rootfs (none = config.json's root as is). */
int container_mount_rootfs(struct container *c, Containerd__Types__Mount **mounts, size_t n, runm_error_t *err);

/* Add a process (exec_id "" = init) whose finish publishes /tasks/exit. */
struct process *container_add_process(struct container *c, const char *exec_id, bool terminal, const char *in,
				      const char *out, const char *err_path);
void container_remove_process(struct container *c, struct process *p);

/* sandbox_exit_fn: the VMM died under the container (and the containers
 * that joined its VM); every live process exits with 137. */
void container_on_vm_exit(struct sandbox *sb, void *data);
/* Containers other than c in c's VM (a pod's sandbox with its containers). */
size_t container_vm_peers(const struct container *c);
/* The container that owns the VM c joined (its pod's sandbox), or NULL. */
struct container *container_vm_owner(const struct container *c);

/* Take c out of the table (lookups no longer find it). */
void container_unlink(struct container *c);
/* Free processes (closing their stdio), stop the VM, unmount the rootfs,
 * remove the state dir; c must be unlinked. Answers a pending Create. */
void container_destroy(struct container *c);
/* Unlink now, destroy on the next loop turn: for use inside callbacks of
 * the container's own sandbox or its connection. */
void container_destroy_later(struct container *c);

/* Queue a task event to containerd (logged only without a publisher). */
void container_publish(struct container_table *t, const char *topic, const char *type_url,
		       const ProtobufCMessage *msg);

/* Small files in the bundle for the `delete` command (errors only logged). */
void container_write_bundle_file(const struct container *c, const char *name, const char *text);

/* google.protobuf.Timestamp of a realtime ns value. */
Google__Protobuf__Timestamp container_timestamp(uint64_t ns);

#endif

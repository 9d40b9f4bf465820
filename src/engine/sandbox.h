/* sandbox.h - a VM with its agent on the line: boot the VM (src/vm) with
 * its one shared directory, wait for the agent's hello on the channel with a
 * deadline, set the guest clock, then hand out the ttrpc connection for
 * agent calls; containers' filesystems are bound into the shared directory
 * when they are created (late binding, stage.h). Shared by the shim and the
 * runm CLI. */
#ifndef RUNM_ENGINE_SANDBOX_H
#define RUNM_ENGINE_SANDBOX_H

#include "common/error.h"
#include "common/loop.h"
#include "engine/spec.h"
#include "ttrpc/ttrpc.h"

#include <stdbool.h>

#define SANDBOX_BOOT_TIMEOUT_MS 60000
/* How long a stop waits for the guest to power off when asked, before QMP
 * quit and SIGKILL. */
#define SANDBOX_SHUTDOWN_GRACE_MS 1000
/* 9p tag of the VM's one share, <state_dir>/shared (stage.h); the agent
 * mounts it once. Shown as the source of the container's mounts in its
 * /proc/mounts: nothing that names runm. */
#define SANDBOX_SHARE_TAG "shared"
/* Warm start when neither the config nor $RUNM_WARM_START says. */
#define SANDBOX_WARM_DEFAULT true
/* A VM restored from a template answers within a fraction of a second
 * (121 ms measured): past this the template counts as bad and the VM boots
 * cold. Generous for a loaded TCG host, short next to a cold boot's. */
#define SANDBOX_RESTORE_TIMEOUT_MS 10000

struct sandbox_config {
	const char *id;        /* container id, for messages */
	const char *state_dir; /* existing private directory for the VM's sockets and logs */
	const struct spec *spec; /* the first container's: sizing, network, ports */
	unsigned mem_mib;      /* 0 = spec's, else default_mem_mib */
	unsigned vcpus;        /* 0 = spec's, else default_vcpus */
	unsigned default_mem_mib; /* for a container without limits; 0 = VM_DEFAULT_MEM_MIB */
	unsigned default_vcpus;   /* 0 = 1 */
	const char *kernel;    /* both set: this guest instead of guest_find's (engine/guest.h) */
	const char *initrd;
	bool network;
	bool own_netns;        /* spec's netns_path is the caller's own namespace, made for the container */
	/* "auto", "kvm", "hvf" or "tcg" ($RUNM_ACCEL overrides); NULL = the accel
	 * of RUNM_CONFIG_DEFAULT (what the CLI runs with). */
	const char *accel;
	unsigned boot_timeout_ms; /* 0 = SANDBOX_BOOT_TIMEOUT_MS ($RUNM_BOOT_TIMEOUT_MS overrides) */
	/* Warm start from a VM template (vm.h): CONFIG_UNSET (SANDBOX_WARM_DEFAULT),
	 * CONFIG_OFF or CONFIG_ON (config.h); $RUNM_WARM_START=0/1 overrides. */
	int warm_start;
	/* User-mode network backend: NULL / "auto", "passt" or "slirp" (vm.h). */
	const char *net_backend;
};

struct sandbox;

/* ready: once, with err NULL when the agent answered, else the reason (the
 * VM is already stopped then; still call sandbox_free). exited: when the VMM
 * dies after it was ready (crash, kill, guest power-off). */
typedef void (*sandbox_ready_fn)(struct sandbox *sb, runm_error_t *err, void *data);
typedef void (*sandbox_exit_fn)(struct sandbox *sb, void *data);

int sandbox_start(struct loop *loop, const struct sandbox_config *cfg, sandbox_ready_fn ready,
		  sandbox_exit_fn exited, void *data, struct sandbox **out, runm_error_t *err);

/* Bind container id's rootfs and bind-mount sources (sp's shares) into the
 * VM's shared directory, at <id>/rootfs and <id>/<share tag> (stage.h), for
 * the agent's Create; the VM may be running. Released by
 * sandbox_unbind_container or when the sandbox goes. */
int sandbox_bind_container(struct sandbox *sb, const char *id, const struct spec *sp, runm_error_t *err);
/* Unmount and remove what sandbox_bind_container bound for id (after the
 * agent deleted the container). A no-op for an id not bound. */
void sandbox_unbind_container(struct sandbox *sb, const char *id);

/* Proxy the host unix sockets of container id (sp->sockets) into its VM
 * (engine/sockproxy.h): right after its Create was sent. Stopped by
 * sandbox_unbind_container, or when the sandbox goes. */
int sandbox_proxy_sockets(struct sandbox *sb, const char *id, const struct spec *sp, runm_error_t *err);

/* Call the agent (service runm.agent.v1.Agent). NULL-safe like ttrpc_call. */
struct ttrpc_stream *sandbox_call(struct sandbox *sb, const char *method, const ProtobufCMessage *req,
				  uint64_t timeout_ms, uint8_t flags, ttrpc_reply_fn cb, void *data);
struct ttrpc_conn *sandbox_conn(const struct sandbox *sb);
/* Run cb(data, code, msg) from the loop, never re-entrantly: a call that
 * failed before it reached the agent. */
void sandbox_reply_later(struct sandbox *sb, ttrpc_reply_fn cb, void *data, int code, const char *msg);
/* When the spec names a network namespace (spec.netns_path), the VM's NIC
 * is a tap in it (engine/netns.h). Call this before the init process
 * starts: CNI may have configured the namespace only after Create (ctr
 * --cni does it between Create and Start). It redirects the namespace's
 * interface to the tap and has the agent give eth0 its MAC, address, route
 * and MTU. Returns 1 when cb will run with the agent's answer, 0 when there
 * is nothing to do (user-mode NAT, already done, or no interface in the
 * namespace: the container then has lo only), -1 on error.
 * Under user-mode NAT it opens the published ports instead (passt starts:
 * a port taken since create is an error naming it), synchronously. */
int sandbox_network_up(struct sandbox *sb, ttrpc_reply_fn cb, void *data, runm_error_t *err);
/* The VM's first container's init exited: its published ports close (as
 * runc's do, with the network namespace, when the task ends). */
void sandbox_network_down(struct sandbox *sb);
pid_t sandbox_vmm_pid(const struct sandbox *sb);
/* The guest kernel release the agent reported. */
const char *sandbox_guest_kernel(const struct sandbox *sb);
/* Tail of the guest console, malloc'd, for error messages. */
char *sandbox_console_tail(const struct sandbox *sb);

int sandbox_pause(struct sandbox *sb, runm_error_t *err);
int sandbox_resume(struct sandbox *sb, runm_error_t *err);
/* Stop the VM (QMP quit, then SIGKILL) and wait for it. Idempotent. */
void sandbox_stop(struct sandbox *sb);
/* Stop if needed and free everything, the VM's files in state_dir included. */
void sandbox_free(struct sandbox *sb);

/* Whether sb's VM was restored from a template (else it booted cold). */
bool sandbox_restored(const struct sandbox *sb);
/* Whether a sandbox started with cfg would try a warm start. */
bool sandbox_warm_wanted(const struct sandbox_config *cfg);

#endif

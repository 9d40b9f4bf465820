/* vm-backend.h - what a VMM backend (qemu.c, later vfkit.c) implements and
 * what vm.c gives it: the struct vm every backend fills in, the table of
 * operations (kvmtool's `struct virtio_ops` style), and the shared process
 * helpers. Internal to src/vm/. */
#ifndef RUNM_VM_BACKEND_H
#define RUNM_VM_BACKEND_H

#include "vm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Files every backend creates in state_dir (vm_free removes them). */
#define VM_CONSOLE_LOG "console.log" /* the guest's console, written by the caller (vm_console_fd) */
#define VM_CONSOLE_LOG_OLD "console.log.1" /* ... its part before the last rotation */
#define VM_VMM_LOG "vmm.log"         /* the VMM's own stdout and stderr, written by the caller (vm_vmm_log_fd) */

struct vm_backend;
struct jail;

struct vm {
	const struct vm_backend *ops;
	char *state_dir;
	char *console_path; /* <state_dir>/console.log */
	char *console_old_path; /* <state_dir>/console.log.1 */
	char *vmm_log_path; /* <state_dir>/vmm.log */
	pid_t pid;          /* -1 until spawned */
	int pidfd;
	int chan_fd; /* host end of the agent channel, -1 once taken */
	int console_fd; /* host end of the guest console */
	int vmm_log_fd; /* read end of the VMM's stdout and stderr */
	int netns_fd; /* > 0: network namespace the VMM joins (vm_config's, not owned) */
	bool reaped;
	int wstatus; /* valid once reaped */
	void *priv;  /* the backend's own state */
	const char *accel;  /* "kvm", "hvf" or "tcg" (static) */
	bool accel_auto;    /* chosen automatically: a KVM failure may fall back */
	bool accel_proven;  /* the facts proved it can boot the guest */
	char *verdict_dir, *verdict_key; /* where a KVM failure is remembered (auto kvm only) */
	char *tpl_dir, *tpl_desc; /* warm: the template's <root>/<key> and what it must match */
	char *restore_path;       /* the snapshot this VM is restored from, NULL = cold boot */
	bool tpl_wanted;          /* cold boot of a warm VM with no template yet */
	const char *net;          /* VM_NET_* of its user-mode NIC, NULL = none (static) */
	pid_t net_pid;            /* passt beside the VMM, -1 = none */
	int net_pidfd;
	char *net_log_path;       /* <state_dir>/passt.log */
	/* Published ports, opened by vm_net_start (deep copy: ports and
	 * network only), and whether they are open now. */
	struct vm_config *net_cfg;
	bool ports_open;
	struct jail *jail; /* how vm_spawn confines the VMM (jail.h), NULL = not */
};

struct vm_backend {
	const char *name;
	/* Build the command line for cfg and accel ("kvm", "hvf", "tcg"), create
	 * the channel and the console socket, spawn the VMM with vm_spawn() and
	 * set vm->chan_fd and vm->console_fd. */
	int (*start)(struct vm *vm, const struct vm_config *cfg, const char *accel, runm_error_t *err);
	/* The VMM binary cfg would run (absolute path, malloc'd): part of the
	 * accelerator verdict's key. */
	int (*binary)(const struct vm_config *cfg, char **out, runm_error_t *err);
	/* Pause / resume all vCPUs; synchronous, bounded by a short deadline. */
	int (*pause)(struct vm *vm, runm_error_t *err);
	int (*resume)(struct vm *vm, runm_error_t *err);
	/* Ask the VMM to exit, without waiting for it; give up at deadline_ns
	 * (CLOCK_MONOTONIC). vm.c waits on the pidfd and escalates to SIGKILL. */
	int (*quit)(struct vm *vm, uint64_t deadline_ns, runm_error_t *err);
	/* The command line cfg would run under accel with what differs per VM
	 * (state dir and share paths, published ports) left out: a template's
	 * key (template.c). -1 when cfg cannot have a template. NULL = none. */
	int (*describe)(const struct vm_config *cfg, const char *binary, const char *accel, char **out,
			runm_error_t *err);
	/* Save the running VM's state to path (a migration), wait until it is
	 * complete or deadline_ns, and let the guest run on. */
	int (*save)(struct vm *vm, const char *path, uint64_t deadline_ns, runm_error_t *err);
	/* Open (add) or close a published port range on the running VMM's
	 * user-mode network; an error names the port. */
	int (*forward)(struct vm *vm, const struct vm_port *p, bool add, runm_error_t *err);
	/* Close the backend's fds, unlink its files, free vm->priv. */
	void (*release)(struct vm *vm);
};

extern const struct vm_backend vm_qemu_backend;

/* Spawn argv[0] (an absolute path) as the VMM: own process group, SIGKILL on
 * parent death, stdin /dev/null, stdout/stderr to a pipe (vm->vmm_log_fd), default
 * signal mask and dispositions, and no fd but pass_fds[i], which the child
 * sees as fd 3 + i; in vm->netns_fd's network namespace if set, then
 * confined by vm->jail if set. Sets vm->pid and vm->pidfd. Returns once exec succeeded. */
int vm_spawn(struct vm *vm, char *const argv[], const int *pass_fds, size_t n_pass, runm_error_t *err);

/* The same for a process beside the VMM (passt): its output to log_path,
 * its pid and pidfd in *pid and *pidfd. */
int vm_spawn_process(const struct vm *vm, char *const argv[], const int *pass_fds, size_t n_pass,
		     const char *log_path, pid_t *pid, int *pidfd, runm_error_t *err);

/* SIGKILL a process vm_spawn_process started (through its pidfd). */
void vm_kill(pid_t pid, int pidfd);

/* Wait until the VMM exits or deadline_ns passes (no reaping).
 * Returns 1 if it exited, 0 on timeout, -1 on error. */
int vm_wait_exit(struct vm *vm, uint64_t deadline_ns, runm_error_t *err);

/* Warm start: find vm's template for cfg (template.c); sets tpl_dir,
 * tpl_desc, and restore_path or tpl_wanted. Before ops->start. */
void vm_template_prepare(struct vm *vm, const struct vm_config *cfg);

/* Milliseconds left until deadline_ns, for poll(2): 0 once passed. */
int vm_ms_left(uint64_t deadline_ns);

/* The last max bytes of a file, sanitized for an error message, malloc'd ("" if missing). */
char *vm_file_tail(const char *path, size_t max);

#endif

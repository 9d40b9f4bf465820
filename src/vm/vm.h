/* vm.h - one running micro-VM: build the VMM command line from a small
 * config, start it, pause/resume it, stop it, clean up. Backends are tables
 * of function pointers (qemu now; vfkit later). The accelerator (kvm / hvf /
 * tcg) is chosen from what the host can really run (accel.h), never from
 * open("/dev/kvm") alone. Knows nothing of ttrpc, the agent or containerd: the host
 * end of the guest channel is handed out as a connected fd. */
#ifndef RUNM_VM_H
#define RUNM_VM_H

#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vm_share {
	const char *host_path; /* directory on the host */
	const char *tag;       /* mount tag seen by the guest (9p) */
	bool readonly;
};

/* A published port: the VMM listens on host_ip:host_port and forwards each
 * connection (tcp) or datagram (udp) to guest_port inside the VM; a range
 * of `count` ports maps host_port + i to guest_port + i. */
enum vm_proto { VM_PROTO_TCP, VM_PROTO_UDP };

struct vm_port {
	const char *host_ip; /* IPv4 address to listen on; NULL or "" = all, as Docker does */
	unsigned short host_port;
	unsigned short guest_port;
	unsigned short count; /* ports in the range; 0 = 1 */
	enum vm_proto proto;
};

/* User-mode networking backends (net.c). passt: a process per VM beside the
 * VMM, on a socketpair; the guest reaches the outside world but not the
 * host's loopback unless host_loopback. slirp: QEMU's built-in NAT, where
 * the gateway always is the host's loopback. */
#define VM_NET_PASST "passt"
#define VM_NET_SLIRP "slirp"
/* The guest's fixed plan under either: slirp's defaults, which passt is
 * told to serve too (the agent configures eth0 with it). */
#define VM_NET_GUEST_ADDR "10.0.2.15"
#define VM_NET_PREFIX 24
#define VM_NET_GATEWAY "10.0.2.2" /* the host's loopback when host_loopback (always under slirp) */
#define VM_NET_DNS "10.0.2.3"     /* forwarded to the host's resolver */
/* passt's frames go over a stream socket, not a tap: an MTU of 64 KiB costs
 * nothing per frame and moves bulk TCP in far fewer of them. */
#define VM_NET_PASST_MTU 65520
/* Under passt, published ports come in through a second NIC on slirp
 * (qemu.c says why): the guest tells the two apart by MAC. */
#define VM_NET_MAC "52:54:00:12:34:56"     /* eth0, the way out (QEMU's default MAC) */
#define VM_NET_FWD_MAC "52:54:00:12:34:57" /* eth1, the way in */
#define VM_NET_FWD_NETDEV "net1"
#define VM_NET_FWD_NET "10.0.3.0/24"
#define VM_NET_FWD_HOST "10.0.3.2" /* where forwarded connections come from */
#define VM_NET_FWD_ADDR "10.0.3.15"

struct vm_config {
	const char *kernel;       /* path to the guest kernel */
	const char *initrd;       /* path to the guest initramfs */
	const char *cmdline_extra; /* appended to the kernel command line, may be NULL */
	unsigned mem_mib;          /* 0 = default (VM_DEFAULT_MEM_MIB) */
	unsigned vcpus;            /* 0 = 1 */
	const struct vm_share *shares;
	size_t n_shares;
	bool network;              /* user-mode NAT networking (virtio-net) */
	/* VM_NET_PASST, VM_NET_SLIRP, or NULL / "auto": passt where it is
	 * installed, else slirp ($RUNM_NET_BACKEND overrides). */
	const char *net_backend;
	/* The gateway (10.0.2.2) leads to the host's 127.0.0.1 (always so under
	 * slirp); off: the guest cannot reach the host's loopback. */
	bool host_loopback;

	const struct vm_port *ports; /* published ports (network only); each host port is checked free first */
	size_t n_ports;
	/* Instead of user-mode NAT (network is then ignored): the NIC on this tap
	 * device's fd, with this MAC (NULL = the VMM's default), and the VMM in
	 * this network namespace (Kata's tc-redirect model, engine/netns.h).
	 * 0 = none: fd 0 is never a tap or a namespace of ours. Not taken over. */
	int tap_fd;
	const char *mac;
	int netns_fd;
	const char *state_dir;     /* existing private dir for the VM's sockets and console log */
	const char *backend;       /* NULL = "qemu" (or $RUNM_VMM) */
	const char *accel;         /* NULL or "auto" = the automatic choice; "kvm", "hvf", "tcg" = that one or an
				    * error, never a fallback ($RUNM_ACCEL overrides it) */
	const char *qemu_binary;   /* NULL = qemu-system-<arch> from PATH ($RUNM_QEMU overrides) */
	/* Warm start: restore from this configuration's template if there is
	 * one, else boot cold and let the caller save one (vm_template_save). */
	bool warm;
};

#define VM_DEFAULT_MEM_MIB 256
/* TCG's translated-code cache, MiB (qemu.c). */
#define VM_TCG_TB_MIB 32
/* On the guest's kernel command line when the NIC is on a tap (vm_config.tap_fd):
 * the agent leaves eth0 down until the host says how to configure it. */
#define VM_CMDLINE_NET_MIRROR "runm.net=mirror"
/* ... and when it is passt's: the agent sets VM_NET_PASST_MTU. */
#define VM_CMDLINE_NET_PASST "runm.net=passt"
/* Name of the virtio-serial port carrying the agent channel (guest: /dev/virtio-ports/<name>). */
#define VM_CHANNEL_NAME "runm.agent"

struct vm;

/* Start the VMM. Returns once the process runs; the guest is still booting.
 * The VMM is in its own process group and gets SIGKILL if its parent dies.
 * A published host port already in use fails here, with an error naming it. */
int vm_start(const struct vm_config *cfg, struct vm **out, runm_error_t *err);

/* The host end of the agent channel: a connected stream socket, owned by the
 * vm (do not close it; vm_take_channel_fd hands ownership over). */
int vm_channel_fd(const struct vm *vm);
int vm_take_channel_fd(struct vm *vm);

/* The host end of the guest's serial console: a stream socket, owned by the
 * vm (do not close it), that the caller reads and keeps in a bounded log at
 * vm_console_path (engine/console.h). A full log is renamed to <path>.1,
 * which vm_console_tail reads too and vm_free removes. Unread, the socket
 * fills and the guest's console writes wait: the VMM buffers nothing. */
int vm_console_fd(const struct vm *vm);
const char *vm_console_path(const struct vm *vm);
/* The same for the VMM's own stdout and stderr: the read end of a pipe, to
 * keep in a bounded log at vm_vmm_log_path (also read by vm_console_tail
 * and vm_kvm_fallback: copy what waits in the pipe before calling those).
 * Unread, the VMM's next message waits once the pipe is full. */
int vm_vmm_log_fd(const struct vm *vm);
const char *vm_vmm_log_path(const struct vm *vm);

/* The VMM's pid, and a pidfd that becomes readable when it exits (owned by vm). */
pid_t vm_pid(const struct vm *vm);
int vm_pidfd(const struct vm *vm);

/* Collect the VMM's exit if it has exited (non-blocking). Returns 1 and the
 * wait status if it exited, 0 if still running, -1 on error. */
int vm_try_reap(struct vm *vm, int *wstatus, runm_error_t *err);

/* Pause / resume all vCPUs (QMP stop / cont). */
int vm_pause(struct vm *vm, runm_error_t *err);
int vm_resume(struct vm *vm, runm_error_t *err);

/* Stop: QMP quit, wait up to timeout_ms, then SIGKILL, and reap. Idempotent.
 * (Graceful shutdown through the agent is the caller's job, before this.) */
int vm_stop(struct vm *vm, unsigned timeout_ms, runm_error_t *err);
/* Wait up to timeout_ms for the VMM to exit by itself (the guest powering
 * off) and reap it; true if it did. For a graceful stop before vm_stop. */
bool vm_wait(struct vm *vm, unsigned timeout_ms);

/* The last `max` bytes of the guest console log and its rotated part, with
 * the VMM's own messages (for error messages), malloc'd. */
char *vm_console_tail(const struct vm *vm, size_t max);

/* Free the handle: stops the VMM if still running, removes its sockets and
 * console log from state_dir. */
void vm_free(struct vm *vm);

/* Whether pid is a VMM that vm_start ran with this state_dir: for a caller
 * that only has a recorded pid (after a crash), which may have been reused
 * since, even by another container's VMM. */
bool vm_is_ours(pid_t pid, const char *state_dir);

/* ---- templates (warm start) ----
 * A template is the saved state of a VM whose agent has just said hello,
 * under vm_template_root()/<key>/; the key hashes the VMM command line
 * (per-VM paths and published ports left out), the accelerator, and the
 * identity of VMM binary, kernel and initramfs (template.c). */

/* $RUNM_TEMPLATE_DIR, else <state root>/templates (/run/runm/templates as root). malloc'd. */
char *vm_template_root(void);
/* What a template for cfg under accel must match (*desc) and its key
 * (*key, 16 hex digits), both malloc'd. */
int vm_template_describe(const struct vm_config *cfg, const char *accel, char **desc, char **key,
			 runm_error_t *err);
/* Whether vm_start restored this VM from a template: the agent's hello was
 * sent before the snapshot, none comes; call it at once. */
bool vm_restored(const struct vm *vm);
/* Whether this warm VM booted cold with no template for its key yet. */
bool vm_template_wanted(const struct vm *vm);
/* <root>/<key> of this VM's template (NULL: not warm). */
const char *vm_template_dir(const struct vm *vm);
/* Save the template now (the guest must have mounted nothing: QEMU refuses
 * to migrate with a 9p share mounted), synchronously, then let the guest
 * run on. Once per VM; a template saved meanwhile by another VM wins. */
int vm_template_save(struct vm *vm, runm_error_t *err);
/* Remove this VM's template (a restore from it failed). */
void vm_template_drop(struct vm *vm);

/* ---- the accelerator ----
 * Automatic: KVM only where the facts say it can run a standard guest (not
 * kvm_pvm, vmx/svm present, /dev/kvm opens read-write), hvf on macOS, TCG
 * otherwise. Where the facts do not prove it (nested KVM, unknown module),
 * a boot that fails as KVM's is retried once under TCG (vm_kvm_fallback) and
 * the verdict is remembered under runm's state root, keyed by guest kernel,
 * VMM binary and host: later starts choose TCG at once. One warning line,
 * once per verdict, says that KVM was skipped and why.
 * $RUNM_FACTS_ROOT points the host facts at a fake tree (tests only). */

/* The accelerator vm_start would choose: $RUNM_ACCEL when set (not "auto"),
 * else the automatic choice for any kernel. */
const char *vm_default_accel(void);
/* The automatic choice for this guest kernel (NULL: any), and why in *why
 * (malloc'd, one line) unless why is NULL. Logs nothing, writes nothing. */
const char *vm_auto_accel(const char *kernel, char **why);
/* Whether an explicit accelerator ("kvm", "hvf", "tcg") can run here:
 * -1 with the cause otherwise (what vm_start fails with, before any VMM). */
int vm_check_accel(const char *accel, runm_error_t *err);
/* The VMM binary vm_start would run (RUNM_QEMU, else from PATH), malloc'd. */
int vm_find_vmm(char **path, runm_error_t *err);
/* The accelerator this VM runs under. */
const char *vm_accel(const struct vm *vm);
/* Open the published ports (the container starts): each is checked free
 * first, an error names it. 0 and nothing done when there are none or they
 * are open. */
int vm_net_start(struct vm *vm, runm_error_t *err);
/* Close them again (the container's init exited), as runc's close with its
 * network namespace. Idempotent. */
void vm_net_close(struct vm *vm);
/* The backend cfg would get: $RUNM_NET_BACKEND, cfg's, else passt where it
 * is installed, else slirp; an unknown name or a missing passt is an error. */
int vm_choose_net(const struct vm_config *cfg, const char **backend, runm_error_t *err);

/* How long a boot under an automatic but unproven KVM may go without the
 * agent's hello before it counts as KVM's failure; 0 = no such trial. */
#define VM_KVM_TRIAL_MS 10000
unsigned vm_kvm_trial_ms(const struct vm *vm);
/* For a boot that failed before the agent answered (timed_out: at the
 * trial deadline): true when KVM was chosen automatically and the failure is
 * KVM's: QEMU's log names KVM (an emulation failure, an MSR it could not
 * set), or, when the facts did not prove KVM, any death or the trial's timeout.
 * The verdict is then remembered and the warning logged: the caller boots
 * once more with accel "tcg". False for anything else (no retry). */
bool vm_kvm_fallback(const struct vm *vm, bool timed_out);

#endif

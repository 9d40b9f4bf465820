/* jail.h - the VMM's confinement, as Firecracker's jailer does it: before
 * exec the forked VMM gets a mount namespace of its own whose root is a
 * small tmpfs holding only what QEMU opens (/usr read-only, the kernel and
 * initrd, the VM's shared directory, a few device nodes), and keeps only
 * the capabilities its 9p server needs. QEMU's seccomp filter (-sandbox,
 * qemu.c) comes on top, once QEMU has started.
 *
 * Two halves: jail_plan runs in the parent and computes every path string
 * and syscall argument (a list of steps, testable without root);
 * jail_enter runs in the forked child, where only async-signal-safe calls
 * are allowed, and does nothing but execute the steps. */
#ifndef RUNM_VM_JAIL_H
#define RUNM_VM_JAIL_H

#include "common/error.h"

#include <linux/capability.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The jail's mount point, in the VM's state dir: an empty directory on the
 * host; the tmpfs on it exists only in the VMM's mount namespace. */
#define JAIL_DIR "jail"

/* Capabilities the VMM keeps (README.md, "VMM confinement", says why each):
 * its 9p server (security_model=none) creates, chowns, chmods and touches
 * files for the guest's root on files of any owner; slirp binds published
 * host ports below 1024. Nothing else: no CAP_SYS_ADMIN (mount, setns),
 * no CAP_MKNOD (device nodes on the host), no CAP_SETUID/SETGID. */
#define JAIL_CAPS                                                                                   \
	((UINT64_C(1) << CAP_CHOWN) | (UINT64_C(1) << CAP_DAC_OVERRIDE) | (UINT64_C(1) << CAP_FOWNER) | \
	 (UINT64_C(1) << CAP_FSETID) | (UINT64_C(1) << CAP_NET_BIND_SERVICE))

/* What the jail is built from. Paths are absolute; the VMM sees each at
 * the same path inside the jail, so its command line does not change. */
struct jail_spec {
	const char *root;   /* the (existing, empty) directory the jail's tmpfs goes on */
	const char *binary; /* the VMM */
	const char *kernel;
	const char *initrd;
	const char *const *shares; /* directories it serves to the guest, bound recursively */
	size_t n_shares;
	bool kvm;    /* /dev/kvm too */
	bool resolv; /* /etc/resolv.conf too: slirp's DNS forwarder reads it */
	uint64_t caps; /* capabilities kept: JAIL_CAPS, or a test's choice */
};

enum jail_step_kind {
	JAIL_UNSHARE, /* unshare(flags) */
	JAIL_MOUNT,   /* mount(src, path, fstype, flags, data) */
	JAIL_MKDIR,   /* mkdir(path, 0755); an existing one is fine */
	JAIL_MKFILE,  /* an empty file at path, to bind a file on */
	JAIL_SYMLINK, /* symlink(src, path) */
	JAIL_PIVOT,   /* pivot_root into path, the old root detached, cwd / */
	JAIL_CAPS_DROP, /* keep only jail.caps (bounding, ambient, securebits), no_new_privs */
};

struct jail_step {
	enum jail_step_kind kind;
	char *path;
	char *src;
	const char *fstype;
	const char *data;
	unsigned long flags;
};

struct jail {
	char *root;
	struct jail_step *steps;
	size_t n_steps;
	uint64_t caps;
};

/* Compute the steps for spec. Reads the host only to see which of /bin,
 * /lib, /lib64, /sbin are symlinks (merged /usr) and which optional files
 * exist. */
int jail_plan(const struct jail_spec *spec, struct jail **out, runm_error_t *err);

/* Create spec->root's directory if missing (in the parent, before fork). */
int jail_prepare(const struct jail *j, runm_error_t *err);

/* In the forked child, last before execv: run every step. Only
 * async-signal-safe calls. Returns 0, or an errno value with *failed set
 * to the index of the step that failed. */
int jail_enter(const struct jail *j, size_t *failed);

/* "mount /usr on ..." for step i: context for jail_enter's errno (malloc'd). */
char *jail_step_describe(const struct jail *j, size_t i);

/* Remove the jail's (empty) mount point on the host. */
void jail_cleanup(const struct jail *j);

void jail_free(struct jail *j);
#define cleanup_jail __attribute__((cleanup(jail_freep)))
void jail_freep(struct jail **j);

#endif

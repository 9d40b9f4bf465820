/* accel.h - which accelerator can run runm's guest here: the facts the host
 * gives cheaply (cpuinfo flags, the module behind /dev/kvm, whether it
 * opens), a pure decision over them, the check of an explicit choice, and
 * the verdicts remembered after a KVM boot that failed. Pure functions over
 * a facts struct, so unit tests feed them fake hosts; accel_read_facts reads
 * the real one (under a root prefix, for fake trees). Used by vm.c. */
#ifndef RUNM_VM_ACCEL_H
#define RUNM_VM_ACCEL_H

#include "common/error.h"

#include <stdbool.h>

struct accel_facts {
	bool macos;
	bool x86;             /* cpuinfo flags (vmx/svm/hypervisor) mean something */
	bool kvm_dev_exists;  /* <root>/dev/kvm */
	int kvm_open_errno;   /* 0: it opens read-write, as QEMU needs */
	bool cpu_vmx_svm;     /* hardware virtualization in the first cpuinfo `flags` line */
	bool hypervisor_flag; /* we are inside a VM ourselves (nested KVM at best) */
	char kvm_provider[32]; /* module behind /dev/kvm: "kvm_pvm", "kvm_intel", "kvm_amd", "" unknown */
	char host[160];        /* uname release and machine, for verdict keys */
};

struct accel_decision {
	const char *accel; /* "kvm", "hvf" or "tcg" */
	char reason[320];  /* one line: why */
	bool kvm_skipped;  /* a /dev/kvm exists but is not used: worth one warning */
	bool conclusive;   /* false: KVM is chosen on facts that do not prove it can boot the
			    * guest (nested, unknown provider): a failed boot falls back to TCG */
};

/* Read the facts of the host whose filesystem is at root ("" or NULL = /):
 * root/proc/cpuinfo, root/sys/module/kvm_*, root/dev/kvm. Never fails: a
 * missing file is a fact too. */
void accel_read_facts(const char *root, struct accel_facts *f);

/* The automatic choice. */
void accel_decide(const struct accel_facts *f, struct accel_decision *out);

/* An explicit choice ("kvm", "hvf", "tcg"): 0 if these facts allow it,
 * else -1 with an error naming the cause and what to use instead. Never a
 * fallback: the caller asked for this one. "auto" and others are EINVAL. */
int accel_check(const char *accel, const struct accel_facts *f, runm_error_t *err);

/* Verdicts: "KVM could not boot this guest" remembered as a file in dir
 * (runm's state root), keyed by what it depends on: the guest kernel, the
 * VMM binary and the host (release, machine, KVM provider). The key is a
 * malloc'd string; files that are missing or unreadable are just no verdict. */
char *accel_verdict_key(const char *kernel, const char *vmm_binary, const struct accel_facts *f);
/* 1 and *why (malloc'd) when dir holds a verdict for key, else 0. */
int accel_verdict_read(const char *dir, const char *key, char **why);
int accel_verdict_write(const char *dir, const char *key, const char *why, runm_error_t *err);
/* runm's state root for verdicts: $RUNM_STATE_ROOT, else /run/runm for root,
 * else $XDG_RUNTIME_DIR/runm (malloc'd). */
char *accel_state_dir(void);

#endif

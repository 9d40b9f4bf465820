/* spec.h - turn a host OCI bundle's config.json into what the guest runs:
 * the rootfs and every bind mount become 9p shares, host-only settings
 * (network namespace paths, hooks, LSM labels) are dropped, and the
 * container's resource limits size its VM. Untrusted input: every field is
 * type-checked, and errors name the field. */
#ifndef RUNM_ENGINE_SPEC_H
#define RUNM_ENGINE_SPEC_H

#include "common/error.h"
#include "vm/vm.h"

#include <stdbool.h>
#include <stddef.h>

/* Guest directory under which the agent mounts the bind-mount shares. */
#define SPEC_GUEST_SHARES "/run/runm/mounts"
/* Memory the guest kernel and agent need on top of the container's limit. */
#define SPEC_VM_OVERHEAD_MIB 96

struct spec_share {
	char *host_path;  /* directory shared from the host */
	char *tag;        /* 9p tag */
	char *guest_path; /* where the agent mounts it (under SPEC_GUEST_SHARES) */
	bool readonly;
};

struct spec {
	char *guest_json;  /* config.json for the guest, NUL-terminated */
	char *rootfs;      /* host directory to share as the rootfs */
	bool rootfs_readonly;
	bool terminal;     /* process.terminal */
	struct spec_share *shares;
	size_t n_shares;
	unsigned mem_mib;  /* 0 = no limit in the spec */
	unsigned vcpus;    /* 0 = no CPU limit in the spec */
};

/* Parse `json` (the bundle's config.json; bundle is its directory) into *out. */
int spec_prepare(const char *bundle, const char *json, size_t len, struct spec *out, runm_error_t *err);
/* Read <bundle>/config.json and prepare it. */
int spec_load(const char *bundle, struct spec *out, runm_error_t *err);
void spec_release(struct spec *s);

#endif

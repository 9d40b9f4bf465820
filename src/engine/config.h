/* config.h - runm's own settings for the shim (and later the CLI): which
 * guest to boot and the VM size when the container sets no limits. A small
 * TOML subset, one `key = value` per line:
 *
 *   # /etc/runm/runm.toml
 *   kernel = "/usr/local/share/runm/vmlinuz"
 *   initrd = "/usr/local/share/runm/initrd.img"
 *   default_memory_mib = 512
 *   default_vcpus = 2
 *   accel = "auto"        # or "kvm", "tcg", "hvf": an explicit one never falls back
 *   warm_start = true     # restore VMs from a template snapshot ($RUNM_WARM_START=0/1 overrides)
 *   network = "auto"      # user-mode networking: "passt" (auto's choice where installed) or
 *                         # "slirp" (QEMU's built-in) ($RUNM_NET_BACKEND overrides)
 *
 * containerd names another file per runtime through runtime options
 * (`ctr run --runtime-config-path`, CRI's `ConfigPath`). Admin input, still
 * parsed strictly: errors name the file, the line and the key. */
#ifndef RUNM_ENGINE_CONFIG_H
#define RUNM_ENGINE_CONFIG_H

#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>

#define RUNM_CONFIG_DEFAULT "/etc/runm/runm.toml"

struct runm_config {
	char *kernel; /* NULL = found as usual (guest_find) */
	char *initrd;
	unsigned default_mem_mib; /* 0 = VM_DEFAULT_MEM_MIB */
	unsigned default_vcpus;   /* 0 = 1 */
	char *accel;              /* NULL = "auto"; else "kvm", "tcg" or "hvf" ($RUNM_ACCEL overrides) */
	int warm_start;           /* CONFIG_UNSET, CONFIG_OFF or CONFIG_ON */
	char *network;            /* NULL or "auto", "passt", "slirp" (vm.h's VM_NET_*) */
};

/* A boolean setting: not given (the built-in default), false, true. */
enum { CONFIG_UNSET = 0, CONFIG_OFF = 1, CONFIG_ON = 2 };

int config_parse(const char *text, size_t len, const char *origin, struct runm_config *out, runm_error_t *err);
/* Read and parse path; a missing file is an empty config when `optional`. */
int config_load(const char *path, bool optional, struct runm_config *out, runm_error_t *err);
void config_release(struct runm_config *c);

#endif

/* net.h - a VM's user-mode networking (internal to src/vm/): which backend
 * (vm.h's VM_NET_*), and passt, a process per VM beside the VMM. */
#ifndef RUNM_VM_NET_H
#define RUNM_VM_NET_H

#include "common/error.h"
#include "vm-backend.h"

/* passt's log in state_dir: errors only (-q), capped by passt at 1 MiB. */
#define VM_NET_LOG "passt.log"

/* passt's command line for cfg: the VM's end of the socketpair is fd
 * `fd`, errors go to log_path; no ports (they come in through slirp,
 * qemu.c). NULL-terminated, malloc'd. */
char **vm_passt_argv(const struct vm_config *cfg, const char *passt, const char *log_path, int fd);

/* Start passt for vm (vm->net must be VM_NET_PASST) and give the VMM's end
 * of its socketpair in *vmm_fd (the caller passes it to the VMM and closes
 * it). passt exits when the VMM's end closes. */
int vm_passt_start(struct vm *vm, const struct vm_config *cfg, int *vmm_fd, runm_error_t *err);

/* Reap passt (it exits once the VMM has; killed after a short grace). Idempotent. */
void vm_net_stop(struct vm *vm);
/* Keep cfg's published ports for vm_net_start (before the VMM starts). */
void vm_net_prepare(struct vm *vm, const struct vm_config *cfg);
/* Free what vm_net_prepare kept (vm_free). */
void vm_net_release(struct vm *vm);

#endif

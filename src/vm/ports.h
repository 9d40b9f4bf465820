/* ports.h - published ports of a VM under user-mode NAT: their words in
 * QEMU's hostfwd commands and in errors, and a check, before QEMU starts,
 * that every host port can be bound (an error naming the port instead of
 * QEMU's exit). */
#ifndef RUNM_VM_PORTS_H
#define RUNM_VM_PORTS_H

#include "common/error.h"
#include "vm/vm.h"

/* The host address to listen on ("0.0.0.0" when none is given). */
const char *vm_port_ip(const struct vm_port *p);
/* "tcp" or "udp". */
const char *vm_port_proto(const struct vm_port *p);
/* Host ports a VM may publish, ranges counted port by port (slirp takes a
 * rule per port on its command line). */
#define VM_MAX_PORTS 1024
/* Bind (and listen on) every published port of cfg once, then let go. */
int vm_ports_check(const struct vm_config *cfg, runm_error_t *err);

#endif

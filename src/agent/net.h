/* net.h - the guest's network. Loopback always (the container shares the
 * VM's network namespace: spec.c drops its own). When the VM has a NIC
 * (user-mode NAT: passt or QEMU's slirp), eth0 gets the fixed addresses, a default
 * route through slirp's gateway, and the container a generated resolv.conf
 * and hosts, bound over its own through config.json: the rootfs is the host's
 * directory, so nothing is written into it but the empty mount points. */
#ifndef RUNM_AGENT_NET_H
#define RUNM_AGENT_NET_H

#include "common/error.h"
#include "vm/vm.h"

#include <stdbool.h>
#include <stddef.h>

/* User-mode networking's fixed plan (vm.h: slirp's, served by passt too). */
#define NET_GUEST_ADDR VM_NET_GUEST_ADDR
#define NET_NETMASK "255.255.255.0" /* VM_NET_PREFIX */
#define NET_GATEWAY VM_NET_GATEWAY
#define NET_DNS VM_NET_DNS

/* Bring up lo; if eth0 exists, configure it and write /run/runm/resolv.conf
 * and /run/runm/hosts. Run once at boot, after the modules are loaded and
 * /run/runm exists. */
int net_setup(runm_error_t *err);

/* eth0 as the host's mirrored interface: MAC (may be NULL or ""), MTU (0 =
 * keep), address "A.B.C.D/PREFIX" and default route (gateway NULL or "" =
 * none). Everything is checked before eth0 changes. */
int net_configure(const char *address, const char *gateway, unsigned mtu, const char *mac, runm_error_t *err);

/* Under passt, send a router solicitation out of eth0: after a restore
 * from a template the guest has no advertisement (IPv6 address, route) of
 * this passt's. No-op otherwise. */
void net_announce(void);

/* Whether net_setup configured eth0 (or left it for net_configure). */
bool net_enabled(void);

/* The container's config.json (`json`, len bytes, not NUL-terminated) with
 * bind mounts of the generated resolv.conf and hosts appended to its mounts,
 * malloc'd with its length in *out_len; NULL when there is nothing to add
 * (no network, no /etc in `rootfs`, the config already mounts one of them)
 * or the JSON is not what the host sends (then the config stays as is). */
char *net_container_config(const char *json, size_t len, const char *rootfs, size_t *out_len);

#endif

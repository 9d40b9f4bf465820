/* netns.h - mirror a container's network namespace into its VM, as Kata's
 * default "tcfilter" model does: a tap device created inside the namespace
 * carries the VM's NIC, and tc redirects every frame between the namespace's
 * interface (CNI's eth0) and the tap, both ways. The guest's eth0 then takes
 * that interface's MAC, address, route and MTU, so the address CNI assigned
 * is the container's. Linux only; needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
 *
 * The namespace is entered by a short-lived thread, never by the caller's:
 * the shim's loop stays in its own namespace. Fds opened there (the tap, the
 * namespace itself) stay valid, and stay in it, after the thread is gone.
 * The redirect is installed by iproute2's `tc`, run from that thread. */
#ifndef RUNM_ENGINE_NETNS_H
#define RUNM_ENGINE_NETNS_H

#include "common/error.h"

#include <net/if.h>
#include <stdbool.h>

/* The tap's name inside the namespace (Kata's is tap0_kata). */
#define NETNS_TAP "tap0_runm"

struct netns_iface {
	char name[IF_NAMESIZE];
	char mac[18];      /* "aa:bb:cc:dd:ee:ff" */
	char address[32];  /* "A.B.C.D/PREFIX" */
	char gateway[16];  /* "A.B.C.D" of the default route through it, "" = none */
	unsigned mtu;
};

/* Open the network namespace at path (e.g. /var/run/netns/NAME, or
 * /proc/PID/ns/net). Returns the fd (O_CLOEXEC), or -1. Never the host's:
 * not pid 1's, nor the caller's own unless `own` (a runm create monitor
 * that made one for its container and lives in it). */
int netns_open(const char *path, bool own, runm_error_t *err);

/* Bring `lo` up in the caller's current network namespace (a new one has
 * it down; runc brings it up for the container). */
int netns_loopback_up(runm_error_t *err);

/* Create the tap NETNS_TAP inside the namespace and bring it up. Returns its
 * fd (O_CLOEXEC), or -1. Not persistent: the device goes away when the last
 * fd on it closes (the VMM's, when it exits). */
int netns_tap_create(int netns_fd, runm_error_t *err);

/* Find the namespace's interface (the first with an IPv4 address that is
 * neither loopback nor the tap) and redirect it to the tap and back.
 * Returns 1 with *iface filled, 0 when there is no such interface yet
 * (nothing changed), -1 on error. */
int netns_mirror(int netns_fd, struct netns_iface *iface, runm_error_t *err);

/* A socket(domain, type | SOCK_CLOEXEC, 0) created inside the namespace
 * (netns_fd -1: the caller's), so it sends and receives there whatever
 * namespace its user is in. Returns the fd, or -1. */
int netns_socket(int netns_fd, int domain, int type, runm_error_t *err);

/* Remove the redirect from iface_name (its ingress qdisc, and with it the
 * filter): the namespace is left as CNI made it. Best effort, logs failures. */
void netns_unmirror(int netns_fd, const char *iface_name);

#endif

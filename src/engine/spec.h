/* spec.h - turn a host OCI bundle's config.json into what the guest runs:
 * the rootfs and every bind mount become paths in the VM's one share
 * (bound there at create: engine/stage.h), a bound unix socket becomes one
 * the agent proxies (engine/sockproxy.h), host-only settings
 * (hooks, LSM labels) are dropped, the container's resource limits size
 * its VM, and its annotations give the VM's network and published ports. A
 * network namespace given by path (CNI's, made by containerd, CRI or the
 * user) is kept for the host: the VM's NIC mirrors it (engine/netns.h). Untrusted input: every field is
 * type-checked, and errors name the field. */
#ifndef RUNM_ENGINE_SPEC_H
#define RUNM_ENGINE_SPEC_H

#include "common/error.h"
#include "vm/vm.h"

#include <stdbool.h>
#include <stddef.h>

/* Guest directory under which the agent binds the bind-mount sources. */
#define SPEC_GUEST_SHARES "/run/runm/mounts"
/* Memory the guest kernel and agent need on top of the container's limit. */
#define SPEC_VM_OVERHEAD_MIB 96

struct spec_share {
	char *host_path;  /* directory shared from the host; for a file bind: the file */
	char *file;       /* a file bind: its name, bound alone in a directory of its
			   * own (stage.h) so the VM sees that file and nothing
			   * beside it; NULL for a directory */
	char *tag;        /* "m0", "m1", ...: its directory in the container's part of the VM's share */
	char *guest_path; /* where the agent binds it (under SPEC_GUEST_SHARES) */
	char *destination; /* the mount's destination in the container (clean path), NULL if none */
	bool readonly;
};

/* A bind mount whose source is a unix socket on the host: 9p cannot carry
 * it, so it is not staged; the agent listens at guest_path instead and
 * engine/sockproxy.h relays each connection to host_path. */
struct spec_socket {
	char *host_path;   /* the host socket (real path) */
	char *guest_path;  /* SOCK_GUEST_DIR/<id>/<n>.sock, the mount's new source */
	char *destination; /* the mount's destination in the container (clean path) */
	unsigned uid, gid, mode; /* the host socket's owner and permission bits */
};

/* Annotations read for networking (README.md, "Networking"). */
#define SPEC_ANN_PORTS "io.runm.ports"       /* "[IP:]HOSTPORT:PORT[/tcp|udp],..." */
#define SPEC_ANN_NERDCTL_PORTS "nerdctl/ports" /* nerdctl's JSON list of port mappings */
#define SPEC_ANN_NETWORK "io.runm.network"   /* "user" (default) or "none" */
/* "true": the gateway (10.0.2.2) leads to the host's 127.0.0.1, as under
 * slirp; by default the container cannot reach the host's loopback. */
#define SPEC_ANN_HOST_LOOPBACK "io.runm.host-loopback"
/* CRI's grouping (containerd's CRI plugin sets both on every container of
 * a pod; `ctr run --annotation` can too): a container of type "container"
 * joins the VM of the sandbox named by sandbox-id. */
#define SPEC_ANN_CRI_TYPE "io.kubernetes.cri.container-type"
#define SPEC_ANN_CRI_SANDBOX "io.kubernetes.cri.sandbox-id"
/* On a sandbox: the pod's resources (containerd >= 1.6.7, when the kubelet
 * gives them), which size its VM. */
#define SPEC_ANN_CRI_POD_MEMORY "io.kubernetes.cri.sandbox-memory"         /* bytes */
#define SPEC_ANN_CRI_POD_CPU_QUOTA "io.kubernetes.cri.sandbox-cpu-quota"   /* us per period */
#define SPEC_ANN_CRI_POD_CPU_PERIOD "io.kubernetes.cri.sandbox-cpu-period" /* us */
/* Namespaces a pod's container may share with its sandbox (spec.pod_ns). */
#define SPEC_NS_IPC 1u
#define SPEC_NS_UTS 2u
#define SPEC_NS_PID 4u
/* At most this many published ports per container. */
#define SPEC_MAX_PORTS 64

struct spec_port {
	char *host_ip; /* IPv4 or IPv6 address to listen on; NULL = all */
	unsigned short host_port; /* 0 = any free one, chosen by spec_pick_ports */
	unsigned short container_port;
	unsigned short count;     /* a range: host_port + i -> container_port + i, i < count (>= 1) */
	bool udp;
};

struct spec {
	char *id;          /* the container's id: its part of the VM's share and guest paths */
	char *guest_json;  /* config.json for the guest, NUL-terminated */
	char *rootfs;      /* host directory to share as the rootfs */
	bool rootfs_readonly;
	bool terminal;     /* process.terminal */
	struct spec_share *shares;
	size_t n_shares;
	struct spec_socket *sockets; /* at most SOCK_MAX_SOCKETS (proto/sockproxy.h) */
	size_t n_sockets;
	unsigned mem_mib;  /* 0 = no limit in the spec */
	unsigned vcpus;    /* 0 = no CPU limit in the spec */
	bool network;      /* a NIC in the VM: on unless io.runm.network=none */
	bool host_loopback; /* SPEC_ANN_HOST_LOOPBACK is "true" */
	char *netns_path;  /* linux.namespaces' network path: the NIC mirrors it instead of
			    * user-mode NAT, and published ports do not apply (CNI's portmap
			    * publishes them in that namespace); NULL = user-mode NAT */
	bool netns_new;    /* linux.namespaces has a network entry without a path: runc makes a
			    * new (empty) namespace for it; runm's runc-compatible create does too */
	bool netns_host;   /* no network entry at all: runc's host network */
	bool pidns_host;   /* no pid entry: runc's host pid namespace */
	size_t n_devices;  /* linux.devices: host device nodes asked for (--device, --privileged) */
	struct spec_port *ports; /* published ports, from the annotations (and `runm run -p`) */
	size_t n_ports;
	char *pod_sandbox; /* a pod's container: the id of the sandbox whose VM it joins; NULL =
			    * a VM of its own (a single container, or a pod's sandbox) */
	unsigned pod_ns;   /* SPEC_NS_*: namespaces the spec joins by path (the sandbox's on the
			    * host), joined in the guest by spec_join_pod */
};

/* Parse `json` (the bundle's config.json; bundle is its directory) of
 * container id (a plain name) into *out. */
int spec_prepare(const char *id, const char *bundle, const char *json, size_t len, struct spec *out,
		 runm_error_t *err);
/* Read <bundle>/config.json and prepare it. */
int spec_load(const char *id, const char *bundle, struct spec *out, runm_error_t *err);
/* For a pod's container: have guest_json join the namespaces of pod_ns of
 * the sandbox's init, guest pid sandbox_pid (/proc/<pid>/ns/<type>). */
int spec_join_pod(struct spec *s, unsigned sandbox_pid, runm_error_t *err);
void spec_release(struct spec *s);
/* Append the ports of `list` (Docker's -p syntax, comma-separated:
 * "[IP:][HOSTPORT[-END]:]PORT[-END][/tcp|udp]", IPv6 in brackets, no host
 * port = any free one) to s->ports; `origin` names where the list came
 * from, for errors. */
int spec_add_ports(struct spec *s, const char *list, const char *origin, runm_error_t *err);
/* Give every port without a host port a free one (the kernel's choice on
 * its address); before the VM starts, which then holds it. */
int spec_pick_ports(struct spec *s, runm_error_t *err);
/* "IP:HOSTPORT->PORT/PROTO" (ranges "IP:A-B->C-D/PROTO"), as Docker shows
 * them, malloc'd. */
char *spec_port_string(const struct spec_port *p);

#endif

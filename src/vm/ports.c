/* ports.c - see ports.h. */
#include "vm/ports.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

const char *vm_port_ip(const struct vm_port *p)
{
	return p->host_ip && *p->host_ip ? p->host_ip : "0.0.0.0";
}

const char *vm_port_proto(const struct vm_port *p)
{
	return p->proto == VM_PROTO_UDP ? "udp" : "tcp";
}

static int port_error(const struct vm_port *p, unsigned port, int e, runm_error_t *err)
{
	if (e == EADDRINUSE)
		return runm_error_make(err, 0, "cannot publish port %s:%u/%s: port %u is already in use", vm_port_ip(p),
				       port, vm_port_proto(p), port);
	return runm_error_make(err, e, "cannot publish port %s:%u/%s", vm_port_ip(p), port, vm_port_proto(p));
}

/* The host address of p as a socket address (port unset). */
static int port_addr(const struct vm_port *p, struct sockaddr_in *in, runm_error_t *err)
{
	*in = (struct sockaddr_in){ .sin_family = AF_INET };
	/* The address lands in a QEMU command: an address, nothing else.
	 * IPv4 only: QEMU 7.2's slirp forwards nothing else. */
	if (inet_pton(AF_INET, vm_port_ip(p), &in->sin_addr) != 1)
		return runm_error_make(err, EINVAL,
				       "published port %u/%s: host address `%s` is not an IPv4 address (QEMU 7.2 forwards "
				       "no IPv6)",
				       p->host_port, vm_port_proto(p), vm_port_ip(p));
	return 0;
}

/* Bind (and listen on) host port `port` of p at address *addr; the fd in *fd. */
static int hold_port(const struct vm_port *p, const struct sockaddr_in *addr, unsigned port, int *fd,
		     runm_error_t *err)
{
	struct sockaddr_in sa = *addr;
	bool udp = p->proto == VM_PROTO_UDP;
	int one = 1;

	sa.sin_port = htons((uint16_t)port);
	*fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (*fd < 0)
		return runm_error_make(err, errno, "socket");
	/* As slirp does for its listeners: a TIME_WAIT left by an earlier
	 * container does not make a TCP port busy, a listener does. */
	if (!udp)
		setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Listen too: with SO_REUSEADDR on both sides, bind succeeds next to
	 * a socket that is not listening yet; then listen fails. */
	if (bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (!udp && listen(*fd, 1) < 0))
		return port_error(p, port, errno, err);
	return 0;
}

/* Bind every published host port ourselves before the VMM does: a port in
 * use then fails with an error naming it, instead of slirp's "Could not set
 * up host forwarding rule". All stay bound until the end, so a port
 * published twice is caught too. (They are bound again a moment later: a
 * race with another process remains; then QEMU's own error stands, in the
 * message too.) */
int vm_ports_check(const struct vm_config *cfg, runm_error_t *err)
{
	cleanup_free int *fds = NULL;
	size_t n = 0, total = 0;
	int r = 0;

	if (cfg->n_ports > 0 && !cfg->network)
		return runm_error_make(err, EINVAL, "published ports need networking, which is off");
	for (size_t i = 0; i < cfg->n_ports; i++) {
		const struct vm_port *p = &cfg->ports[i];
		unsigned count = p->count ? p->count : 1;
		if (p->host_port == 0 || p->guest_port == 0 || p->host_port + count - 1 > 65535 ||
		    p->guest_port + count - 1 > 65535)
			return runm_error_make(err, EINVAL, "published port %u:%u/%s: ports are 1 to 65535", p->host_port,
					       p->guest_port, vm_port_proto(p));
		total += count;
	}
	if (total > VM_MAX_PORTS)
		return runm_error_make(err, EINVAL, "%zu published ports: at most %d", total, VM_MAX_PORTS);
	fds = xzalloc((total ? total : 1) * sizeof(*fds));
	for (size_t i = 0; i < cfg->n_ports && r == 0; i++) {
		const struct vm_port *p = &cfg->ports[i];
		struct sockaddr_in addr;

		r = port_addr(p, &addr, err);
		for (unsigned j = 0; r == 0 && j < (p->count ? p->count : 1u); j++) {
			r = hold_port(p, &addr, p->host_port + j, &fds[n], err);
			if (fds[n] >= 0)
				n++;
		}
	}
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	return r;
}

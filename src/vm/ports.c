/* ports.c - see ports.h. */
#include "vm/ports.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
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

static int port_error(const struct vm_port *p, int e, runm_error_t *err)
{
	if (e == EADDRINUSE)
		return runm_error_make(err, 0, "cannot publish port %s:%u/%s: port %u is already in use", vm_port_ip(p),
				       p->host_port, vm_port_proto(p), p->host_port);
	return runm_error_make(err, e, "cannot publish port %s:%u/%s", vm_port_ip(p), p->host_port, vm_port_proto(p));
}

/* Bind every published host port ourselves before QEMU does: a port in use
 * then fails with an error naming it, instead of QEMU exiting with "Could not
 * set up host forwarding rule" in its log. All stay bound until the end, so a
 * port published twice is caught too. (QEMU binds them a moment later: a
 * race with another process remains, and then QEMU's own error stands.) */
int vm_ports_check(const struct vm_config *cfg, runm_error_t *err)
{
	int fds[64];
	size_t n = 0;
	int r = 0;

	if (cfg->n_ports > 0 && !cfg->network)
		return runm_error_make(err, EINVAL, "published ports need networking, which is off");
	if (cfg->n_ports > ARRAY_SIZE(fds))
		return runm_error_make(err, EINVAL, "%zu published ports: at most %zu", cfg->n_ports, ARRAY_SIZE(fds));
	for (size_t i = 0; i < cfg->n_ports && r == 0; i++) {
		const struct vm_port *p = &cfg->ports[i];
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p->host_port) };
		bool udp = p->proto == VM_PROTO_UDP;
		int one = 1, fd;

		if (p->host_port == 0 || p->guest_port == 0) {
			r = runm_error_make(err, EINVAL, "published port %u:%u/%s: ports are 1 to 65535", p->host_port,
					    p->guest_port, vm_port_proto(p));
			break;
		}
		/* hostfwd takes IPv4 only (QEMU 7.2), and the address lands in a QEMU option: keep it plain. */
		if (inet_pton(AF_INET, vm_port_ip(p), &sa.sin_addr) != 1) {
			r = runm_error_make(err, EINVAL, "published port %u/%s: host address `%s` is not an IPv4 address",
					    p->host_port, vm_port_proto(p), vm_port_ip(p));
			break;
		}
		fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = runm_error_make(err, errno, "socket");
			break;
		}
		fds[n++] = fd;
		/* As slirp does for its listeners: a TIME_WAIT left by an earlier
		 * container does not make a TCP port busy, a listener does. */
		if (!udp)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* Listen too: with SO_REUSEADDR on both sides, bind succeeds next to
		 * a socket that is not listening yet; then listen fails. */
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (!udp && listen(fd, 1) < 0))
			r = port_error(p, errno, err);
	}
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	return r;
}

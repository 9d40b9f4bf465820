/* netns.c - see netns.h. */
#include "netns.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/stat.h>
#include <linux/nsfs.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_tun.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* What `tc` prints on failure, kept for the error message. */
#define TC_OUTPUT_MAX 1024

/* ---- running a function inside the namespace ---- */

struct in_netns {
	int netns_fd;
	int (*fn)(void *arg, runm_error_t *err);
	void *arg;
	runm_error_t err;
	int r;
};

static void *in_netns_thread(void *data)
{
	struct in_netns *x = data;

	/* setns moves this thread only; it ends right after, so no other code
	 * ever runs in the namespace by mistake. */
	if (setns(x->netns_fd, CLONE_NEWNET) < 0)
		x->r = runm_error_make(&x->err, errno, "enter the network namespace");
	else
		x->r = x->fn(x->arg, &x->err);
	return NULL;
}

static int in_netns(int netns_fd, int (*fn)(void *arg, runm_error_t *err), void *arg, runm_error_t *err)
{
	struct in_netns x = { .netns_fd = netns_fd, .fn = fn, .arg = arg };
	pthread_t th;
	int e;

	e = pthread_create(&th, NULL, in_netns_thread, &x);
	if (e != 0)
		return runm_error_make(err, e, "thread to enter the network namespace");
	pthread_join(th, NULL);
	if (x.r < 0) {
		if (err) {
			runm_error_release(err);
			*err = steal_ptr(&x.err);
		}
		runm_error_release(&x.err);
		return -1;
	}
	return x.r;
}

struct sock_args {
	int domain, type;
};

static int make_socket(void *arg, runm_error_t *err)
{
	struct sock_args *a = arg;
	int fd = socket(a->domain, a->type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return runm_error_make(err, errno, "socket");
	return fd;
}

int netns_socket(int netns_fd, int domain, int type, runm_error_t *err)
{
	struct sock_args a = { .domain = domain, .type = type };
	if (netns_fd < 0)
		return make_socket(&a, err);
	return in_netns(netns_fd, make_socket, &a, err);
}

/* ---- tc ---- */

static const char *tc_binary(void)
{
	/* Not through PATH: containerd may start the shim with a PATH without sbin. */
	static const char *const paths[] = { "/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc", "/bin/tc" };
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* Run `tc args...` in the calling thread's network namespace (a forked child
 * has the namespaces of the thread that forked it), wait for it, and turn a
 * failure into an error carrying tc's own message. */
#define TC_TIMEOUT_MS 5000

static int run_tc(const char *const args[], size_t n, runm_error_t *err)
{
	const char *tc = tc_binary();
	const char *argv[32];
	char out[TC_OUTPUT_MAX];
	cleanup_close int rd = -1, wr = -1;
	cleanup_free char *line = xstrdup("tc");
	size_t got = 0;
	int pipefd[2], status = 0;
	int64_t deadline = (int64_t)now_mono_ns() + (int64_t)TC_TIMEOUT_MS * 1000000;
	pid_t pid;

	if (tc == NULL)
		return runm_error_make(err, ENOENT, "tc not found: apt-get install iproute2");
	if (n + 2 > ARRAY_SIZE(argv))
		return runm_error_make(err, E2BIG, "tc: too many arguments");
	argv[0] = tc;
	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s %s", line, args[i]);
		free(line);
		line = next;
		argv[i + 1] = args[i];
	}
	argv[n + 1] = NULL;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe for tc");
	rd = pipefd[0];
	wr = pipefd[1];
	pid = fork();
	if (pid < 0)
		return runm_error_make(err, errno, "fork for tc");
	if (pid == 0) {
		/* Only async-signal-safe calls: the parent has threads. */
		sigset_t none;
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(wr, 1) < 0 || dup2(wr, 2) < 0)
			_exit(127);
		execv(tc, (char *const *)argv);
		_exit(127);
	}
	close_and_reset(&wr);
	for (;;) {
		/* tc is quick; one that hangs must not hang create or delete. */
		struct pollfd p = { .fd = rd, .events = POLLIN };
		int left = (int)((deadline - (int64_t)now_mono_ns()) / 1000000);
		ssize_t r;
		if (left <= 0 || poll(&p, 1, left) == 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return runm_error_make(err, ETIMEDOUT, "`%s` did not finish within %d ms", line, TC_TIMEOUT_MS);
		}
		r = read(rd, out + got, sizeof(out) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof(out) - 1) {
			char drain[256];
			while (read(rd, drain, sizeof(drain)) > 0)
				;
			break;
		}
	}
	out[got] = '\0';
	while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = '\0';
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return runm_error_make(err, errno, "wait for `%s`", line);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return runm_error_make(err, 0, "`%s` failed (status %d): %s", line, status, got ? out : "no output");
	log_debug("%s", line);
	return 0;
}

/* ---- the tap ---- */

static int if_set_up(int sock, const char *name, runm_error_t *err)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return runm_error_make(err, errno, "%s: get flags", name);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
		return runm_error_make(err, errno, "%s: bring up", name);
	return 0;
}

int netns_loopback_up(runm_error_t *err)
{
	cleanup_close int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return runm_error_make(err, errno, "socket");
	return if_set_up(sock, "lo", err);
}

static int tap_create_in(void *arg, runm_error_t *err)
{
	int *out = arg;
	struct ifreq ifr;
	cleanup_close int fd = -1, sock = -1;

	/* The device is created in the namespace of whoever opens the clone
	 * device (tun_chr_open takes current's): this thread, inside it. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return runm_error_make(err, errno, "open /dev/net/tun");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NETNS_TAP);
	/* No IFF_VNET_HDR: QEMU probes the fd and works either way; plain
	 * frames keep the redirect with tc simple. */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return runm_error_make(err, errno, "create tap %s", NETNS_TAP);
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return runm_error_make(err, errno, "socket");
	if (if_set_up(sock, NETNS_TAP, err) < 0)
		return -1;
	*out = steal_fd(&fd);
	return 0;
}

/* Whether fd is the same namespace as the one at path. */
static bool same_ns(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int netns_open(const char *path, bool own, runm_error_t *err)
{
	/* Non-blocking: config.json may name a FIFO, which must not hang us. */
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	int type;

	if (fd < 0)
		return runm_error_make(err, errno, "network namespace `%s`", path);
	type = ioctl(fd, NS_GET_NSTYPE);
	if (type != CLONE_NEWNET)
		return runm_error_make(err, 0, "`%s` is not a network namespace", path);
	/* Mirroring redirects the namespace's interface into a VM: never the
	 * host's own (nerdctl --network container:X of a host-network X). */
	if ((!own && same_ns(fd, "/proc/self/ns/net")) || same_ns(fd, "/proc/1/ns/net"))
		return runm_error_make(err, 0,
				       "network namespace `%s` is the host's (host networking?): a container in its own VM "
				       "cannot share the host's network, and runm will not take over the host's interface",
				       path);
	return steal_fd(&fd);
}

int netns_tap_create(int netns_fd, runm_error_t *err)
{
	int fd = -1;
	if (in_netns(netns_fd, tap_create_in, &fd, err) < 0)
		return runm_error_wrap(err, "tap in the container's network namespace");
	return fd;
}

/* ---- finding and redirecting the interface ---- */

static void ifaddrs_freep(struct ifaddrs **p)
{
	if (*p)
		freeifaddrs(*p);
}

/* The gateway of the default route through `name`, from this thread's own
 * view of the routing table (/proc/self/net would be the process's, that is
 * the main thread's namespace). */
static void default_gateway(const char *name, char *out, size_t size)
{
	cleanup_free char *table = NULL;
	char *save = NULL;

	out[0] = '\0';
	if (read_file_at(AT_FDCWD, "/proc/thread-self/net/route", 1 << 20, &table, NULL, NULL) < 0)
		return;
	for (char *l = strtok_r(table, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char ifname[IF_NAMESIZE + 1];
		unsigned dst, gw, flags;
		struct in_addr a;
		if (sscanf(l, "%16s %x %x %x", ifname, &dst, &gw, &flags) != 4)
			continue; /* the header */
		if (strcmp(ifname, name) != 0 || dst != 0 || !(flags & RTF_GATEWAY))
			continue;
		/* The kernel prints the address as the raw 32-bit word: already in network order. */
		a.s_addr = gw;
		inet_ntop(AF_INET, &a, out, (socklen_t)size);
		return;
	}
}

static int prefix_len(const struct sockaddr *mask)
{
	uint32_t m = mask ? ntohl(((const struct sockaddr_in *)mask)->sin_addr.s_addr) : 0xffffffffu;
	int n = 0;
	while (m & 0x80000000u) {
		n++;
		m <<= 1;
	}
	return n;
}

static int find_iface(struct netns_iface *iface, runm_error_t *err)
{
	__attribute__((cleanup(ifaddrs_freep))) struct ifaddrs *all = NULL;
	cleanup_close int sock = -1;
	struct ifreq ifr;
	char ip[INET_ADDRSTRLEN];
	bool found = false;

	memset(iface, 0, sizeof(*iface));
	/* getifaddrs asks over netlink, from a socket of this thread's namespace. */
	if (getifaddrs(&all) < 0)
		return runm_error_make(err, errno, "list the namespace's interfaces");
	for (struct ifaddrs *a = all; a && !found; a = a->ifa_next) {
		if (a->ifa_addr == NULL || a->ifa_addr->sa_family != AF_INET || (a->ifa_flags & IFF_LOOPBACK) ||
		    strcmp(a->ifa_name, NETNS_TAP) == 0 || strlen(a->ifa_name) >= sizeof(iface->name))
			continue;
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a->ifa_addr)->sin_addr, ip, sizeof(ip));
		snprintf(iface->name, sizeof(iface->name), "%s", a->ifa_name);
		snprintf(iface->address, sizeof(iface->address), "%s/%d", ip, prefix_len(a->ifa_netmask));
		found = true;
	}
	if (!found)
		return 0;
	for (struct ifaddrs *a = all; a; a = a->ifa_next) {
		const struct sockaddr_ll *ll = (const struct sockaddr_ll *)a->ifa_addr;
		if (a->ifa_addr == NULL || a->ifa_addr->sa_family != AF_PACKET || strcmp(a->ifa_name, iface->name) != 0)
			continue;
		if (ll->sll_halen == 6)
			snprintf(iface->mac, sizeof(iface->mac), "%02x:%02x:%02x:%02x:%02x:%02x", ll->sll_addr[0],
				 ll->sll_addr[1], ll->sll_addr[2], ll->sll_addr[3], ll->sll_addr[4], ll->sll_addr[5]);
	}
	if (iface->mac[0] == '\0')
		return runm_error_make(err, 0, "%s: not an Ethernet interface: it cannot be mirrored", iface->name);
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return runm_error_make(err, errno, "socket");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface->name);
	if (ioctl(sock, SIOCGIFMTU, &ifr) < 0)
		return runm_error_make(err, errno, "%s: get MTU", iface->name);
	iface->mtu = (unsigned)ifr.ifr_mtu;
	/* The tap carries the same frames: the same MTU. */
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NETNS_TAP);
	ifr.ifr_mtu = (int)iface->mtu;
	if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
		return runm_error_make(err, errno, NETNS_TAP ": set MTU %u", iface->mtu);
	default_gateway(iface->name, iface->gateway, sizeof(iface->gateway));
	return 1;
}

/* Everything arriving on `from` leaves through `to`. u32 with an empty match
 * is Kata's filter too; matchall would do, but kernels without
 * CONFIG_NET_CLS_MATCHALL (this project's CI host among them) lack it. */
static int redirect(const char *from, const char *to, bool add_qdisc, runm_error_t *err)
{
	const char *qdisc[] = { "qdisc", "add", "dev", from, "ingress" };
	const char *filter[] = { "filter", "add",    "dev",   from,  "parent", "ffff:",	 "prio",
				 "10",	   "protocol", "all", "u32", "match",  "u8",	 "0",
				 "0",	   "action", "mirred", "egress", "redirect", "dev", to };

	if ((add_qdisc && run_tc(qdisc, ARRAY_SIZE(qdisc), err) < 0) || run_tc(filter, ARRAY_SIZE(filter), err) < 0)
		return -1;
	return 0;
}

/* The namespace keeps a little traffic of its own: dockerd's resolver, in
 * the namespace, forwards names it does not know upstream through eth0, and
 * the answers must reach it, not the VM. So the namespace's ephemeral ports
 * are moved to NETNS_OWN_PORTS, which the guest (Linux's default range,
 * 32768-60999) never uses, and what arrives for them stays; ARP is copied to
 * both, so the namespace can still resolve its gateway. These filters come
 * before the redirect (lower prio numbers match first). */
#define NETNS_OWN_PORTS "61440 65535" /* 0xf000-0xffff: one u32 mask */

static int keep_own_traffic(const char *from, runm_error_t *err)
{
	/* Without gact (not in every kernel): a mirror ending in pipe, and a
	 * match with a flowid but no action, both let the frame go on up the
	 * namespace's stack. */
	const char *arp[] = { "filter", "add", "dev", from, "parent", "ffff:", "prio", "1", "protocol", "arp", "u32",
			      "match", "u8", "0", "0", "action", "mirred", "egress", "mirror", "dev", NETNS_TAP,
			      "pipe" };
	const char *udp[] = { "filter", "add", "dev", from, "parent", "ffff:", "prio", "2", "protocol", "ip", "u32",
			      "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", "0xf000", "0xf000",
			      "flowid", "ffff:1" };
	const char *tcp[] = { "filter", "add", "dev", from, "parent", "ffff:", "prio", "3", "protocol", "ip", "u32",
			      "match", "ip", "protocol", "6", "0xff", "match", "ip", "dport", "0xf000", "0xf000",
			      "flowid", "ffff:1" };
	cleanup_close int fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write_all(fd, NETNS_OWN_PORTS, strlen(NETNS_OWN_PORTS)) < 0)
		return runm_error_make(err, errno, "the namespace's ephemeral ports");
	if (run_tc(arp, ARRAY_SIZE(arp), err) < 0 || run_tc(udp, ARRAY_SIZE(udp), err) < 0 ||
	    run_tc(tcp, ARRAY_SIZE(tcp), err) < 0)
		return -1;
	return 0;
}

static int mirror_in(void *arg, runm_error_t *err)
{
	struct netns_iface *iface = arg;
	const char *qdisc[] = { "qdisc", "add", "dev", iface->name, "ingress" };
	int r = find_iface(iface, err);

	if (r <= 0)
		return r;
	if (run_tc(qdisc, ARRAY_SIZE(qdisc), err) < 0 || keep_own_traffic(iface->name, err) < 0 ||
	    redirect(iface->name, NETNS_TAP, false, err) < 0 || redirect(NETNS_TAP, iface->name, true, err) < 0) {
		/* Leave the interface as CNI made it: the tap's qdisc goes with the tap. */
		const char *del[] = { "qdisc", "del", "dev", iface->name, "ingress" };
		run_tc(del, ARRAY_SIZE(del), NULL);
		return -1;
	}
	return 1;
}

int netns_mirror(int netns_fd, struct netns_iface *iface, runm_error_t *err)
{
	int r = in_netns(netns_fd, mirror_in, iface, err);
	if (r < 0)
		return runm_error_wrap(err, "mirror the container's network namespace");
	return r;
}

static int unmirror_in(void *arg, runm_error_t *err)
{
	const char *del[] = { "qdisc", "del", "dev", arg, "ingress" };
	return run_tc(del, ARRAY_SIZE(del), err);
}

void netns_unmirror(int netns_fd, const char *iface_name)
{
	cleanup_error runm_error_t err = NULL;

	if (in_netns(netns_fd, unmirror_in, (void *)iface_name, &err) < 0)
		log_debug("remove the redirect from %s: %s", iface_name, runm_error_msg(err));
}

/* net.c - see net.h. Plain ioctls (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS,
 * SIOCADDRT, SIOCSIFHWADDR, SIOCSIFMTU): one IPv4 address and a default
 * route need no netlink and no DHCP client. */
#include "net.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/icmp6.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NIC "eth0"
#define RESOLV_CONF "/run/runm/resolv.conf"
#define HOSTS "/run/runm/hosts"

static bool configured;
/* The NIC mirrors a CNI namespace: slirp's DNS does not exist there. */
static bool mirrored;

static void ifr_init(struct ifreq *ifr, const char *name)
{
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
}

static void sin_set(struct sockaddr *sa, const char *addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	memcpy(sa, &sin, sizeof(sin));
}

static int if_up(int fd, const char *name, runm_error_t *err)
{
	struct ifreq ifr;

	ifr_init(&ifr, name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return runm_error_make(err, errno, "%s: get flags", name);
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return runm_error_make(err, errno, "%s: bring up", name);
	return 0;
}

static int if_set(int fd, const char *name, unsigned long req, const char *what, const char *addr,
		  runm_error_t *err)
{
	struct ifreq ifr;

	ifr_init(&ifr, name);
	sin_set(&ifr.ifr_addr, addr);
	if (ioctl(fd, req, &ifr) < 0)
		return runm_error_make(err, errno, "%s: set %s %s", name, what, addr);
	return 0;
}

static int default_route(int fd, const char *gw, runm_error_t *err)
{
	struct rtentry rt;

	memset(&rt, 0, sizeof(rt));
	sin_set(&rt.rt_dst, "0.0.0.0");
	sin_set(&rt.rt_genmask, "0.0.0.0");
	sin_set(&rt.rt_gateway, gw);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = (char *)NIC;
	if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		return runm_error_make(err, errno, "default route via %s", gw);
	return 0;
}

/* NIC's user-mode network is passt's. */
static bool passt;

void net_announce(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
	struct nd_router_solicit rs = { .nd_rs_type = ND_ROUTER_SOLICIT };
	cleanup_close int fd = -1;
	int hops = 255; /* RFC 4861: NDP messages carry hop limit 255 */

	if (!passt)
		return;
	/* The guest's IPv6 address and route come from passt's router
	 * advertisement, and passt learns the guest's MAC from its frames. A
	 * VM restored from a template asked for no advertisement since its
	 * kernel's own solicitations at boot, sent to the template's passt,
	 * long gone: one router solicitation to this passt (the kernel
	 * computes the checksum). */
	fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	inet_pton(AF_INET6, "ff02::2", &sa.sin6_addr);
	sa.sin6_scope_id = if_nametoindex(NIC);
	if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
	    sendto(fd, &rs, sizeof(rs), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		log_warn(NIC ": router solicitation to passt: %s", strerror(errno));
}

/* Whether the kernel command line has `word` as a whole parameter: the host
 * says so (vm_config.cmdline_extra) when the NIC mirrors a network namespace. */
static bool cmdline_has(const char *word)
{
	cleanup_free char *line = NULL;
	size_t n = strlen(word);

	if (read_file_at(AT_FDCWD, "/proc/cmdline", 4096, &line, NULL, NULL) < 0)
		return false;
	for (const char *p = line; (p = strstr(p, word)) != NULL; p += n)
		if ((p == line || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

static int write_files(runm_error_t *err)
{
	static const char resolv[] = "nameserver " NET_DNS "\n";
	static const char hosts[] = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

	if (write_file_atomic(RESOLV_CONF, resolv, sizeof(resolv) - 1, 0644, err) < 0 ||
	    write_file_atomic(HOSTS, hosts, sizeof(hosts) - 1, 0644, err) < 0)
		return -1;
	return 0;
}

static void sysctl_set(const char *path, const char *value)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, value, strlen(value)) < 0)
		log_warn("set `%s`: %s", path, strerror(errno));
}

static bool parse_mac(const char *s, unsigned char mac[6]);

static int if_rename(int fd, const char *from, const char *to, runm_error_t *err)
{
	struct ifreq ifr;

	ifr_init(&ifr, from);
	snprintf(ifr.ifr_newname, sizeof(ifr.ifr_newname), "%s", to);
	if (ioctl(fd, SIOCSIFNAME, &ifr) < 0)
		return runm_error_make(err, errno, "rename %s to %s", from, to);
	return 0;
}

/* Under passt the VM has two NICs (qemu.c): the way out, passt's, must be
 * eth0, what every other part of runm and the container expect; the way in
 * (published ports, through slirp) eth1, with an address on slirp's
 * network and no route. The kernel names them in probe order, so the MAC
 * decides. Both are still down, as renaming wants. */
static int passt_nics(int fd, runm_error_t *err)
{
	unsigned char fwd[6];
	struct ifreq ifr;

	if (if_nametoindex("eth1") == 0)
		return 0;
	parse_mac(VM_NET_FWD_MAC, fwd);
	ifr_init(&ifr, NIC);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return runm_error_make(err, errno, NIC ": get MAC");
	if (memcmp(ifr.ifr_hwaddr.sa_data, fwd, sizeof(fwd)) == 0 &&
	    (if_rename(fd, NIC, "runm-swap", err) < 0 || if_rename(fd, "eth1", NIC, err) < 0 ||
	     if_rename(fd, "runm-swap", "eth1", err) < 0))
		return -1;
	if (if_set(fd, "eth1", SIOCSIFADDR, "address", VM_NET_FWD_ADDR, err) < 0 ||
	    if_set(fd, "eth1", SIOCSIFNETMASK, "netmask", "255.255.255.0", err) < 0 || if_up(fd, "eth1", err) < 0)
		return -1;
	return 0;
}

int net_setup(runm_error_t *err)
{
	cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return runm_error_make(err, errno, "socket for interface configuration");
	if (if_up(fd, "lo", err) < 0)
		return -1;
	/* As Docker does in a container's own network namespace (the VM's is
	 * the container's): ports below 1024 need no CAP_NET_BIND_SERVICE. */
	sysctl_set("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0\n");
	/* The NIC's probe runs inside virtio_net's module init, which
	 * boot_load_modules has finished: no NIC now means the VM has none. */
	if (if_nametoindex(NIC) == 0)
		return 0;
	/* A mirrored namespace's address is known only once CNI has run, after
	 * the VM booted (ctr runs it between Create and Start): eth0 stays down
	 * until net_configure. The container's files are mounted at Create. */
	if (cmdline_has(VM_CMDLINE_NET_MIRROR)) {
		if (write_files(err) < 0)
			return -1;
		configured = true;
		mirrored = true;
		return 0;
	}
	passt = cmdline_has(VM_CMDLINE_NET_PASST);
	if (passt && passt_nics(fd, err) < 0)
		return -1;
	if (passt) {
		struct ifreq ifr;
		/* passt is the link's only other node: no duplicate to detect,
		 * and the SLAAC address is usable at once instead of after 1 s. */
		sysctl_set("/proc/sys/net/ipv6/conf/" NIC "/accept_dad", "0\n");
		ifr_init(&ifr, NIC);
		ifr.ifr_mtu = VM_NET_PASST_MTU;
		if (ioctl(fd, SIOCSIFMTU, &ifr) < 0)
			log_warn(NIC ": set MTU %d: %s", VM_NET_PASST_MTU, strerror(errno));
	}
	if (if_set(fd, NIC, SIOCSIFADDR, "address", NET_GUEST_ADDR, err) < 0 ||
	    if_set(fd, NIC, SIOCSIFNETMASK, "netmask", NET_NETMASK, err) < 0 || if_up(fd, NIC, err) < 0 ||
	    default_route(fd, NET_GATEWAY, err) < 0)
		return -1;
	if (write_files(err) < 0)
		return -1;
	configured = true;
	return 0;
}

static bool parse_mac(const char *s, unsigned char mac[6])
{
	for (int i = 0; i < 6; i++) {
		unsigned v = 0;
		for (int d = 0; d < 2; d++) {
			char c = s[i * 3 + d];
			if (c >= '0' && c <= '9')
				v = v * 16 + (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v = v * 16 + (unsigned)(c - 'A' + 10);
			else
				return false;
		}
		if (s[i * 3 + 2] != (i == 5 ? '\0' : ':'))
			return false;
		mac[i] = (unsigned char)v;
	}
	return true;
}

int net_configure(const char *address, const char *gateway, unsigned mtu, const char *mac, runm_error_t *err)
{
	cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cleanup_free char *addr = xstrdup(address ? address : "");
	char *slash = strchr(addr, '/');
	struct in_addr a, g, m;
	unsigned char hw[6];
	unsigned long prefix;
	char *end;
	char mask[INET_ADDRSTRLEN];
	struct ifreq ifr;

	/* Checked before anything changes: a bad request leaves eth0 as it was. */
	if (slash == NULL)
		return runm_error_make(err, EINVAL, "address `%s`: expected A.B.C.D/PREFIX", addr);
	*slash = '\0';
	prefix = strtoul(slash + 1, &end, 10);
	if (inet_pton(AF_INET, addr, &a) != 1 || slash[1] < '0' || slash[1] > '9' || *end != '\0' || prefix > 32)
		return runm_error_make(err, EINVAL, "address `%s/%s`: expected A.B.C.D/PREFIX", addr, slash + 1);
	if (gateway && *gateway && inet_pton(AF_INET, gateway, &g) != 1)
		return runm_error_make(err, EINVAL, "gateway `%s` is not an IPv4 address", gateway);
	if (mac && *mac && !parse_mac(mac, hw))
		return runm_error_make(err, EINVAL, "MAC `%s`: expected aa:bb:cc:dd:ee:ff", mac);
	if (mtu != 0 && (mtu < 68 || mtu > 65535))
		return runm_error_make(err, EINVAL, "MTU %u: 68 to 65535", mtu);
	if (fd < 0)
		return runm_error_make(err, errno, "socket for interface configuration");
	if (if_nametoindex(NIC) == 0)
		return runm_error_make(err, ENODEV, "no " NIC " in the VM");
	/* The bridge sends the namespace's frames to its interface's MAC: the
	 * NIC takes it (while down, as virtio_net wants), or it drops them. */
	if (mac && *mac) {
		ifr_init(&ifr, NIC);
		ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
		memcpy(ifr.ifr_hwaddr.sa_data, hw, sizeof(hw));
		if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0)
			return runm_error_make(err, errno, NIC ": set MAC %s", mac);
	}
	if (mtu != 0) {
		ifr_init(&ifr, NIC);
		ifr.ifr_mtu = (int)mtu;
		if (ioctl(fd, SIOCSIFMTU, &ifr) < 0)
			return runm_error_make(err, errno, NIC ": set MTU %u", mtu);
	}
	m.s_addr = prefix == 0 ? 0 : htonl(~0u << (32 - prefix));
	inet_ntop(AF_INET, &m, mask, sizeof(mask));
	if (if_set(fd, NIC, SIOCSIFADDR, "address", addr, err) < 0 ||
	    if_set(fd, NIC, SIOCSIFNETMASK, "netmask", mask, err) < 0 || if_up(fd, NIC, err) < 0)
		return -1;
	if (gateway && *gateway && default_route(fd, gateway, err) < 0)
		return -1;
	log_info(NIC ": %s/%lu gateway %s mtu %u", addr, prefix, gateway && *gateway ? gateway : "none", mtu);
	return 0;
}

bool net_enabled(void)
{
	return configured;
}

/* ---- config.json: append two mounts ----
 * The agent has no JSON library (it is static and small); the host sends
 * json-c's output, so a scanner that finds the top-level "mounts" array is
 * enough. Anything unexpected leaves the config as it is. */

static size_t skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* Index past the string that starts at s[i] == '"'; len if unterminated. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return len;
}

/* Index past the value that starts at s[i]; len if it does not end. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
	size_t depth = 0;

	if (i >= len)
		return len;
	if (s[i] == '"')
		return skip_string(s, len, i);
	if (s[i] != '{' && s[i] != '[') {
		while (i < len && strchr(",}] \t\r\n", s[i]) == NULL)
			i++;
		return i;
	}
	while (i < len) {
		if (s[i] == '"') {
			i = skip_string(s, len, i);
			continue;
		}
		if (s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
			return i + 1;
		i++;
	}
	return len;
}

struct mounts_pos {
	size_t obj_open;  /* the top-level '{' */
	bool obj_empty;
	bool found;       /* a top-level "mounts" array exists */
	size_t arr_open;  /* its '[' */
	size_t arr_close; /* its ']' */
	bool arr_empty;
};

static int find_mounts(const char *s, size_t len, struct mounts_pos *pos)
{
	size_t i = skip_ws(s, len, 0);

	memset(pos, 0, sizeof(*pos));
	if (i >= len || s[i] != '{')
		return -1;
	pos->obj_open = i;
	i = skip_ws(s, len, i + 1);
	pos->obj_empty = i < len && s[i] == '}';
	for (;;) {
		size_t key = i, key_end, end;

		if (i >= len)
			return -1;
		if (s[i] == '}')
			return 0;
		if (s[i] != '"')
			return -1;
		key_end = skip_string(s, len, i);
		i = skip_ws(s, len, key_end);
		if (i >= len || s[i] != ':')
			return -1;
		i = skip_ws(s, len, i + 1);
		end = skip_value(s, len, i);
		if (end >= len)
			return -1;
		if (!pos->found && key_end - key == 8 && memcmp(s + key, "\"mounts\"", 8) == 0 && s[i] == '[') {
			if (s[end - 1] != ']')
				return -1;
			pos->found = true;
			pos->arr_open = i;
			pos->arr_close = end - 1;
			pos->arr_empty = skip_ws(s, len, i + 1) == end - 1;
		}
		i = skip_ws(s, len, end);
		if (i < len && s[i] == ',')
			i = skip_ws(s, len, i + 1);
		else if (i >= len || s[i] != '}')
			return -1;
	}
}

/* Whether the config's mounts already name `dest`: then the engine above
 * (CRI, nerdctl) chose that file, and it stays. json-c writes '/' as "\/". */
static bool already_mounted(const char *json, const struct mounts_pos *pos, const char *dest)
{
	size_t n = pos->arr_close - pos->arr_open, dlen = strlen(dest);
	cleanup_free char *plain = xasprintf("\"%s\"", dest);
	cleanup_free char *escaped = xmalloc(2 * dlen + 3);
	char *e = escaped;

	if (!pos->found)
		return false;
	*e++ = '"';
	for (const char *p = dest; *p; p++) {
		if (*p == '/')
			*e++ = '\\';
		*e++ = *p;
	}
	*e++ = '"';
	*e = '\0';
	return memmem(json + pos->arr_open, n, plain, strlen(plain)) != NULL ||
	       memmem(json + pos->arr_open, n, escaped, strlen(escaped)) != NULL;
}

/* The mount point must be a regular file in the rootfs' own /etc (a symlink
 * could lead anywhere). crun would create a missing one; doing it here
 * tells whether it can be done (a read-only rootfs share cannot). */
static bool mount_point_ok(const char *rootfs, const char *name)
{
	cleanup_free char *etc = xasprintf("%s/etc", rootfs);
	cleanup_free char *path = xasprintf("%s/etc/%s", rootfs, name);
	struct stat st;
	int fd;

	if (lstat(etc, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	if (lstat(path, &st) == 0)
		return S_ISREG(st.st_mode);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_warn("no /etc/%s in the container: cannot create its mount point: %s", name, strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

char *net_container_config(const char *json, size_t len, const char *rootfs, size_t *out_len)
{
	static const struct {
		const char *dest, *source, *name;
	} files[] = {
		{ "/etc/resolv.conf", RESOLV_CONF, "resolv.conf" },
		{ "/etc/hosts", HOSTS, "hosts" },
	};
	cleanup_free char *entries = xstrdup("");
	struct mounts_pos pos;
	size_t at, n;
	char *out;

	if (!configured || len > INT_MAX / 2)
		return NULL;
	if (find_mounts(json, len, &pos) < 0) {
		log_warn("config.json is not the JSON object the host sends: no resolv.conf and hosts for the container");
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *next;
		if (already_mounted(json, &pos, files[i].dest) || !mount_point_ok(rootfs, files[i].name))
			continue;
		/* Behind a CNI network, the image's own resolv.conf is the best guess. */
		if (mirrored && strcmp(files[i].name, "resolv.conf") == 0)
			continue;
		next = xasprintf("%s%s{\"destination\":\"%s\",\"type\":\"bind\",\"source\":\"%s\","
				 "\"options\":[\"rbind\",\"rprivate\"]}",
				 entries, entries[0] ? "," : "", files[i].dest, files[i].source);
		free(entries);
		entries = next;
	}
	if (entries[0] == '\0')
		return NULL;
	/* Appended last: mounts apply in order, and one over /etc must not hide these. */
	if (pos.found) {
		at = pos.arr_close;
		out = xasprintf("%.*s%s%s%.*s", (int)at, json, pos.arr_empty ? "" : ",", entries, (int)(len - at),
				json + at);
	} else {
		at = pos.obj_open + 1;
		out = xasprintf("%.*s\"mounts\":[%s]%s%.*s", (int)at, json, entries, pos.obj_empty ? "" : ",",
				(int)(len - at), json + at);
	}
	n = strlen(out);
	*out_len = n;
	return out;
}

/* spec.c - see spec.h. */
#include "spec.h"
#include "common/util.h"
#include "proto/sockproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define CONFIG_MAX (4u << 20)

static void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define cleanup_json __attribute__((cleanup(json_putp)))

static json_object *get_typed(json_object *parent, const char *key, json_type type)
{
	json_object *v = NULL;
	if (parent == NULL || !json_object_object_get_ex(parent, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

static bool has_option(json_object *opts, const char *name)
{
	size_t n = opts ? json_object_array_length(opts) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(opts, i);
		if (json_object_is_type(o, json_type_string) && strcmp(json_object_get_string(o), name) == 0)
			return true;
	}
	return false;
}

static char *clean_path(const char *path);

static int add_socket(struct spec *s, const char *host, const char *dest, const struct stat *st, char **guest,
		      runm_error_t *err)
{
	struct spec_socket *so;

	if (s->n_sockets >= SOCK_MAX_SOCKETS)
		return runm_error_make(err, 0, "more than %d host sockets bound into the container", SOCK_MAX_SOCKETS);
	s->sockets = xrealloc(s->sockets, (s->n_sockets + 1) * sizeof(*s->sockets));
	so = &s->sockets[s->n_sockets];
	so->host_path = xstrdup(host);
	so->guest_path = xasprintf(SOCK_GUEST_DIR "/%s/%zu.sock", s->id, s->n_sockets);
	so->destination = dest ? clean_path(dest) : NULL;
	so->uid = st->st_uid;
	so->gid = st->st_gid;
	so->mode = st->st_mode & 0777;
	*guest = xstrdup(so->guest_path);
	s->n_sockets++;
	return 0;
}

static void add_share(struct spec *s, const char *host, const char *file, const char *dest, bool ro)
{
	struct spec_share *sh;
	s->shares = xrealloc(s->shares, (s->n_shares + 1) * sizeof(*s->shares));
	sh = &s->shares[s->n_shares];
	sh->host_path = xstrdup(host);
	sh->file = file ? xstrdup(file) : NULL;
	sh->destination = dest ? clean_path(dest) : NULL;
	sh->tag = xasprintf("m%zu", s->n_shares);
	sh->guest_path = xasprintf(SPEC_GUEST_SHARES "/%s/%s", s->id, sh->tag); /* one dir per container of a pod */
	sh->readonly = ro;
	s->n_shares++;
}

/* `path` without repeated slashes, "." components or a trailing slash.
 * Lexical only: ".." stays (only realpath may resolve it). */
static char *clean_path(const char *path)
{
	char *out = xmalloc(strlen(path) + 2);
	size_t o = 0;

	for (const char *p = path, *e; *p; p = e) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		e = strchrnul(p, '/');
		if (e - p == 1 && p[0] == '.')
			continue;
		out[o++] = '/';
		memcpy(out + o, p, (size_t)(e - p));
		o += (size_t)(e - p);
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return out;
}

/* Bind mounts: share each source directory on its own; a file (9p shares
 * directories only) through a directory holding just that file; a unix
 * socket (9p carries none) through the agent's proxy (spec_socket). */
static int rewrite_mounts(json_object *root, struct spec *s, runm_error_t *err)
{
	json_object *mounts = get_typed(root, "mounts", json_type_array);
	size_t n = mounts ? json_object_array_length(mounts) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		json_object *type = get_typed(m, "type", json_type_string);
		json_object *src = get_typed(m, "source", json_type_string);
		json_object *opts = get_typed(m, "options", json_type_array);
		json_object *dst = get_typed(m, "destination", json_type_string);
		const char *dest = dst ? json_object_get_string(dst) : NULL;
		const char *source;
		struct stat st;
		bool is_bind = (type && strcmp(json_object_get_string(type), "bind") == 0) ||
			       has_option(opts, "bind") || has_option(opts, "rbind");
		cleanup_free char *real = NULL;
		cleanup_free char *clean = NULL;
		cleanup_free char *guest = NULL;

		if (!json_object_is_type(m, json_type_object))
			return runm_error_make(err, 0, "config.json: mounts[%zu] is not an object", i);
		if (!is_bind)
			continue;
		if (src == NULL)
			return runm_error_make(err, 0, "config.json: bind mount mounts[%zu] has no source", i);
		source = json_object_get_string(src);
		if (source[0] != '/')
			return runm_error_make(err, 0, "bind mount source `%s` is not an absolute path", source);
		real = realpath(source, NULL);
		if (real == NULL || stat(real, &st) < 0)
			return runm_error_make(err, errno, "bind mount source `%s`", source);
		clean = clean_path(source); /* "/srv/data/" names /srv/data: no symlink there */
		/* A symlink anywhere in the path could point outside what was
		 * asked. Not for a socket: nothing of the host's tree is shared,
		 * only connections to the one socket it leads to, as the kernel's
		 * bind would (and Debian's /var/run/docker.sock is /run's). */
		if (strcmp(real, clean) != 0 && !S_ISSOCK(st.st_mode)) {
			return runm_error_make(err, 0, "bind mount source `%s` resolves to `%s`: give the real path",
					       source, real);
		}
		if (S_ISSOCK(st.st_mode)) {
			if (add_socket(s, real, dest, &st, &guest, err) < 0)
				return -1;
		} else if (S_ISDIR(st.st_mode)) {
			add_share(s, real, NULL, dest, has_option(opts, "ro"));
			guest = xstrdup(s->shares[s->n_shares - 1].guest_path);
		} else {
			const char *name = strrchr(real, '/') + 1;
			add_share(s, real, name, dest, has_option(opts, "ro"));
			guest = xasprintf("%s/%s", s->shares[s->n_shares - 1].guest_path, name);
		}
		json_object_object_add(m, "source", json_object_new_string(guest));
	}
	return 0;
}

static bool has_net_sysctl(json_object *linux_)
{
	json_object *sys = get_typed(linux_, "sysctl", json_type_object);
	if (sys == NULL)
		return false;
	json_object_object_foreach(sys, key, val) {
		(void)val;
		if (strncmp(key, "net.", 4) == 0)
			return true;
	}
	return false;
}

/* The VM is the sandbox: the container shares the VM's network, and paths
 * of host namespaces mean nothing in the guest. The network namespace's
 * path stays for the host: that namespace is mirrored into the VM. */
static int rewrite_namespaces(json_object *linux_, struct spec *s, runm_error_t *err)
{
	json_object *ns = get_typed(linux_, "namespaces", json_type_array);
	json_object *kept;
	size_t n;

	s->netns_host = s->pidns_host = true;
	if (ns == NULL)
		return 0;
	n = json_object_array_length(ns);
	for (size_t i = 0; i < n; i++) {
		json_object *type = get_typed(json_object_array_get_idx(ns, i), "type", json_type_string);
		if (type && strcmp(json_object_get_string(type), "network") == 0)
			s->netns_host = false;
		if (type && strcmp(json_object_get_string(type), "pid") == 0)
			s->pidns_host = false;
	}
	/* Checked before the array is replaced: on error the config is untouched. */
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ns, i);
		json_object *type = get_typed(e, "type", json_type_string);
		json_object *path = NULL;
		const char *p;

		if (type == NULL || strcmp(json_object_get_string(type), "network") != 0)
			continue;
		if (!json_object_object_get_ex(e, "path", &path)) {
			s->netns_new = true;
			continue;
		}
		if (!json_object_is_type(path, json_type_string))
			return runm_error_make(err, 0, "config.json: linux.namespaces[%zu].path is not a string", i);
		p = json_object_get_string(path);
		if (p[0] == '\0') { /* the spec's "no path": a new namespace */
			s->netns_new = true;
			continue;
		}
		if (p[0] != '/' || strlen(p) >= PATH_MAX)
			return runm_error_make(err, 0, "config.json: network namespace path `%.100s` is not an absolute path",
					       p);
		free(s->netns_path);
		s->netns_path = xstrdup(p);
	}
	kept = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ns, i);
		json_object *type = get_typed(e, "type", json_type_string);
		json_object *path = NULL;
		if (type == NULL || strcmp(json_object_get_string(type), "network") == 0)
			continue;
		if (json_object_object_get_ex(e, "path", &path) && json_object_is_type(path, json_type_string) &&
		    json_object_get_string(path)[0] != '\0') {
			const char *t = json_object_get_string(type);
			s->pod_ns |= strcmp(t, "ipc") == 0 ? SPEC_NS_IPC :
				     strcmp(t, "uts") == 0 ? SPEC_NS_UTS :
				     strcmp(t, "pid") == 0 ? SPEC_NS_PID : 0;
		}
		json_object_object_del(e, "path");
		json_object_array_add(kept, json_object_get(e));
	}
	/* net.* sysctls (Docker sets net.ipv4.ip_unprivileged_port_start) need
	 * a network namespace in crun's eyes: join the VM's own, the agent's,
	 * which is the container's network anyway. */
	if (has_net_sysctl(linux_)) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "type", json_object_new_string("network"));
		json_object_object_add(e, "path", json_object_new_string("/proc/1/ns/net"));
		json_object_array_add(kept, e);
	}
	json_object_object_add(linux_, "namespaces", kept);
	return 0;
}

/* A VM's memory for a limit of `bytes`. Round up by division, not by
 * adding first: the values come from the spec and may be as large as
 * INT64_MAX (seed resources-max.json of fuzz_spec). */
static unsigned vm_mem_mib(int64_t bytes)
{
	int64_t mib = bytes / (1 << 20) + (bytes % (1 << 20) != 0);
	return (unsigned)(mib > 1 << 20 ? 1 << 20 : mib) + SPEC_VM_OVERHEAD_MIB;
}

static unsigned vm_vcpus(int64_t quota, int64_t period)
{
	int64_t n = quota / period + (quota % period != 0);
	return (unsigned)(n > 64 ? 64 : n);
}

static void read_resources(json_object *linux_, struct spec *s)
{
	json_object *res = get_typed(linux_, "resources", json_type_object);
	json_object *mem = get_typed(res, "memory", json_type_object);
	json_object *cpu = get_typed(res, "cpu", json_type_object);
	json_object *limit = get_typed(mem, "limit", json_type_int);
	json_object *quota = get_typed(cpu, "quota", json_type_int);
	json_object *period = get_typed(cpu, "period", json_type_int);

	if (limit && json_object_get_int64(limit) > 0)
		s->mem_mib = vm_mem_mib(json_object_get_int64(limit));
	if (quota && period && json_object_get_int64(quota) > 0 && json_object_get_int64(period) > 0)
		s->vcpus = vm_vcpus(json_object_get_int64(quota), json_object_get_int64(period));
}

/* A decimal annotation value > 0, else 0 (absent, garbage, out of range). */
static int64_t annotation_i64(const char *v)
{
	char *end;
	long long n;
	if (v == NULL || v[0] < '0' || v[0] > '9')
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	return (errno || *end) ? 0 : (int64_t)n;
}

static int get_annotation(json_object *ann, const char *key, const char **out, runm_error_t *err);

/* The pod's resources as the CRI plugin passes them on the sandbox (the sum
 * of its containers' limits and the pod overhead, when the kubelet gives
 * them): the VM is sized for the pod, never below the sandbox's own. */
static int read_pod_size(json_object *ann, struct spec *s, runm_error_t *err)
{
	const char *mem, *quota, *period;
	int64_t m, q, p;

	if (get_annotation(ann, SPEC_ANN_CRI_POD_MEMORY, &mem, err) < 0 ||
	    get_annotation(ann, SPEC_ANN_CRI_POD_CPU_QUOTA, &quota, err) < 0 ||
	    get_annotation(ann, SPEC_ANN_CRI_POD_CPU_PERIOD, &period, err) < 0)
		return -1;
	m = annotation_i64(mem);
	q = annotation_i64(quota);
	p = annotation_i64(period);
	if (m > 0 && vm_mem_mib(m) > s->mem_mib)
		s->mem_mib = vm_mem_mib(m);
	if (q > 0 && p > 0 && vm_vcpus(q, p) > s->vcpus)
		s->vcpus = vm_vcpus(q, p);
	return 0;
}

/* ---- networking annotations ---- */

/* A port number: decimal digits only, 1 to 65535. */
static bool parse_port(const char *str, unsigned short *out)
{
	unsigned long v = 0;
	size_t len = strlen(str);

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (str[i] < '0' || str[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(str[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*out = (unsigned short)v;
	return true;
}

static int add_port(struct spec *s, const char *ip, unsigned short host_port, unsigned short container_port,
		    unsigned short count, bool udp, const char *origin, runm_error_t *err)
{
	struct in6_addr a;
	struct spec_port *p;

	if (!s->network)
		return runm_error_make(err, 0, "%s: published ports need networking, but " SPEC_ANN_NETWORK " is none",
				       origin);
	if (s->netns_path)
		return runm_error_make(err, 0,
				       "%s: no published ports for a container in network namespace `%s`: publish them "
				       "there (CNI's portmap)",
				       origin, s->netns_path);
	if (s->n_ports >= SPEC_MAX_PORTS)
		return runm_error_make(err, 0, "%s: more than %d published ports", origin, SPEC_MAX_PORTS);
	/* An address lands in a VMM or passt option: an address, nothing else. */
	if (ip && *ip && inet_pton(AF_INET, ip, &a) != 1 && inet_pton(AF_INET6, ip, &a) != 1)
		return runm_error_make(err, 0, "%s: host address `%s` is not an IP address", origin, ip);
	if ((unsigned)container_port + count - 1 > 65535 || (host_port && (unsigned)host_port + count - 1 > 65535))
		return runm_error_make(err, 0, "%s: port range past 65535", origin);
	s->ports = xrealloc(s->ports, (s->n_ports + 1) * sizeof(*s->ports));
	p = &s->ports[s->n_ports++];
	p->host_ip = ip && *ip ? xstrdup(ip) : NULL;
	p->host_port = host_port;
	p->container_port = container_port;
	p->count = count;
	p->udp = udp;
	return 0;
}

/* "PORT" or "FIRST-LAST": the first port and how many. */
static bool parse_range(const char *str, unsigned short *first, unsigned short *count)
{
	cleanup_free char *a = xstrdup(str);
	char *dash = strchr(a, '-');
	unsigned short last;

	if (dash)
		*dash++ = '\0';
	if (!parse_port(a, first))
		return false;
	if (dash == NULL) {
		*count = 1;
		return true;
	}
	if (!parse_port(dash, &last) || last < *first)
		return false;
	*count = (unsigned short)(last - *first + 1);
	return true;
}

/* One "[IP:][HOSTPORT[-END]:]PORT[-END][/tcp|udp]": Docker's -p syntax. IPv6
 * addresses come in brackets ("[::1]:8080:80"); no host port (or an empty
 * one, "127.0.0.1::80") means any free one, for a single port. */
static int parse_port_entry(struct spec *s, const char *entry, const char *origin, runm_error_t *err)
{
	cleanup_free char *e = xstrdup(entry);
	char *proto = strchr(e, '/');
	char *colon, *ip = NULL, *host = NULL, *guest, *rest = e;
	unsigned short hp = 0, hn = 1, cp, cn;
	bool udp = false;

	if (proto) {
		*proto++ = '\0';
		udp = strcmp(proto, "udp") == 0;
		if (!udp && strcmp(proto, "tcp") != 0)
			return runm_error_make(err, 0, "%s: `%s`: the protocol is tcp or udp", origin, entry);
	}
	if (*rest == '[') {
		char *close = strchr(rest, ']');
		if (close == NULL || close[1] != ':')
			return runm_error_make(err, 0, "%s: `%s`: expected [IPV6]:HOSTPORT:CONTAINERPORT", origin, entry);
		*close = '\0';
		ip = rest + 1;
		rest = close + 2;
		if (strchr(rest, ':') == NULL)
			return runm_error_make(err, 0, "%s: `%s`: expected [IPV6]:HOSTPORT:CONTAINERPORT", origin, entry);
	}
	colon = strrchr(rest, ':');
	if (colon) {
		*colon = '\0';
		guest = colon + 1;
		host = rest;
		colon = strrchr(rest, ':');
		if (colon && ip == NULL) {
			*colon = '\0';
			ip = rest;
			host = colon + 1;
		} else if (colon) {
			return runm_error_make(err, 0, "%s: `%s`: expected [IP:][HOSTPORT:]CONTAINERPORT", origin, entry);
		}
	} else {
		guest = rest;
	}
	if (!parse_range(guest, &cp, &cn) || (host && *host && !parse_range(host, &hp, &hn)))
		return runm_error_make(err, 0, "%s: `%s`: ports are numbers from 1 to 65535 (ranges FIRST-LAST)",
				       origin, entry);
	if (hp == 0 && cn > 1)
		return runm_error_make(err, 0, "%s: `%s`: a range needs its host ports", origin, entry);
	if (hp != 0 && hn != cn)
		return runm_error_make(err, 0, "%s: `%s`: host and container ranges differ in length", origin, entry);
	return add_port(s, ip, hp, cp, cn, udp, origin, err);
}

int spec_add_ports(struct spec *s, const char *list, const char *origin, runm_error_t *err)
{
	cleanup_free char *copy = xstrdup(list);
	char *save = NULL;

	for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		size_t n;
		e += strspn(e, " \t");
		n = strlen(e);
		while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t'))
			e[--n] = '\0';
		if (n > 0 && parse_port_entry(s, e, origin, err) < 0)
			return -1;
	}
	return 0;
}

int spec_pick_ports(struct spec *s, runm_error_t *err)
{
	for (size_t i = 0; i < s->n_ports; i++) {
		struct spec_port *p = &s->ports[i];
		struct sockaddr_storage ss = { 0 };
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		socklen_t len = sizeof(ss);
		cleanup_close int fd = -1;

		if (p->host_port != 0)
			continue;
		if (p->host_ip && inet_pton(AF_INET6, p->host_ip, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
		} else {
			in->sin_family = AF_INET;
			if (p->host_ip)
				inet_pton(AF_INET, p->host_ip, &in->sin_addr);
		}
		fd = socket(ss.ss_family, (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? sizeof(*in6) : sizeof(*in)) < 0 ||
		    getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			return runm_error_make(err, errno, "choose a free host port for container port %u/%s on %s",
					       p->container_port, p->udp ? "udp" : "tcp", p->host_ip ? p->host_ip : "0.0.0.0");
		p->host_port = ntohs(ss.ss_family == AF_INET6 ? in6->sin6_port : in->sin_port);
	}
	return 0;
}

char *spec_port_string(const struct spec_port *p)
{
	const char *ip = p->host_ip ? p->host_ip : "0.0.0.0";
	bool v6 = strchr(ip, ':') != NULL;
	const char *proto = p->udp ? "udp" : "tcp";

	if (p->count > 1)
		return xasprintf("%s%s%s:%u-%u->%u-%u/%s", v6 ? "[" : "", ip, v6 ? "]" : "", p->host_port,
				 p->host_port + p->count - 1, p->container_port, p->container_port + p->count - 1, proto);
	return xasprintf("%s%s%s:%u->%u/%s", v6 ? "[" : "", ip, v6 ? "]" : "", p->host_port, p->container_port, proto);
}

/* nerdctl's label: [{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"}]
 * (gocni.PortMapping), copied into the spec's annotations. */
static int parse_nerdctl_ports(struct spec *s, const char *value, runm_error_t *err)
{
	cleanup_json json_object *list = json_tokener_parse(value);
	size_t n;

	if (list == NULL || !json_object_is_type(list, json_type_array))
		return runm_error_make(err, 0, "annotation " SPEC_ANN_NERDCTL_PORTS ": not a JSON array");
	n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(list, i);
		json_object *hp = get_typed(m, "HostPort", json_type_int);
		json_object *cp = get_typed(m, "ContainerPort", json_type_int);
		json_object *proto = get_typed(m, "Protocol", json_type_string);
		json_object *ip = get_typed(m, "HostIP", json_type_string);
		int64_t h = hp ? json_object_get_int64(hp) : 0, c = cp ? json_object_get_int64(cp) : 0;
		const char *pr = proto ? json_object_get_string(proto) : "tcp";
		bool udp = strcasecmp(pr, "udp") == 0;

		if (h < 1 || h > 65535 || c < 1 || c > 65535)
			return runm_error_make(err, 0,
					       "annotation " SPEC_ANN_NERDCTL_PORTS
					       "[%zu]: HostPort and ContainerPort must be numbers from 1 to 65535",
					       i);
		if (!udp && strcasecmp(pr, "tcp") != 0 && pr[0] != '\0')
			return runm_error_make(err, 0, "annotation " SPEC_ANN_NERDCTL_PORTS "[%zu]: protocol `%s`: tcp or udp",
					       i, pr);
		if (add_port(s, ip ? json_object_get_string(ip) : NULL, (unsigned short)h, (unsigned short)c, 1, udp,
			     "annotation " SPEC_ANN_NERDCTL_PORTS, err) < 0)
			return -1;
	}
	return 0;
}

/* Annotations are strings (OCI runtime spec, "Annotations"): another type is an error, not ignored. */
static int get_annotation(json_object *ann, const char *key, const char **out, runm_error_t *err)
{
	json_object *v = NULL;

	*out = NULL;
	if (ann == NULL || !json_object_object_get_ex(ann, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return runm_error_make(err, 0, "config.json: annotation %s is not a string", key);
	*out = json_object_get_string(v);
	return 0;
}

/* CRI's grouping (spec.h): only a "container" names a sandbox to join. */
static int read_pod(json_object *root, struct spec *s, runm_error_t *err)
{
	json_object *ann = get_typed(root, "annotations", json_type_object);
	const char *type, *sandbox;

	if (get_annotation(ann, SPEC_ANN_CRI_TYPE, &type, err) < 0 ||
	    get_annotation(ann, SPEC_ANN_CRI_SANDBOX, &sandbox, err) < 0)
		return -1;
	if (type && strcmp(type, "sandbox") == 0)
		return read_pod_size(ann, s, err);
	if (type == NULL || strcmp(type, "container") != 0)
		return 0;
	if (sandbox == NULL || sandbox[0] == '\0' || strchr(sandbox, '/') || strlen(sandbox) > 255)
		return runm_error_make(err, 0, "annotation " SPEC_ANN_CRI_SANDBOX ": a pod's container needs its sandbox's id, "
				       "got `%.100s`", sandbox ? sandbox : "");
	if (strcmp(sandbox, s->id) != 0)
		s->pod_sandbox = xstrdup(sandbox);
	return 0;
}

static int read_network(json_object *root, struct spec *s, runm_error_t *err)
{
	json_object *ann = get_typed(root, "annotations", json_type_object);
	const char *net, *ports, *nerdctl, *loopback;

	if (get_annotation(ann, SPEC_ANN_NETWORK, &net, err) < 0 ||
	    get_annotation(ann, SPEC_ANN_HOST_LOOPBACK, &loopback, err) < 0 ||
	    get_annotation(ann, SPEC_ANN_PORTS, &ports, err) < 0 ||
	    get_annotation(ann, SPEC_ANN_NERDCTL_PORTS, &nerdctl, err) < 0)
		return -1;
	if (loopback && strcmp(loopback, "true") != 0 && strcmp(loopback, "false") != 0)
		return runm_error_make(err, 0, "annotation " SPEC_ANN_HOST_LOOPBACK ": `%s`: true or false", loopback);
	s->host_loopback = loopback && strcmp(loopback, "true") == 0;
	s->network = true;
	if (net && strcmp(net, "none") == 0)
		s->network = false;
	else if (net && strcmp(net, "user") != 0)
		return runm_error_make(err, 0, "annotation " SPEC_ANN_NETWORK ": `%s`: user or none", net);
	/* Asked for by name, user-mode NAT wins over the namespace's network. */
	if (!s->network || net) {
		free(s->netns_path);
		s->netns_path = NULL;
		s->netns_new = false;
	}
	/* In a namespace of its own, CNI's portmap publishes the ports (nerdctl
	 * sets both it and its label): the VMM has nothing to listen on. */
	if (s->netns_path)
		return 0;
	if (ports && spec_add_ports(s, ports, "annotation " SPEC_ANN_PORTS, err) < 0)
		return -1;
	if (nerdctl && parse_nerdctl_ports(s, nerdctl, err) < 0)
		return -1;
	return 0;
}

int spec_prepare(const char *id, const char *bundle, const char *json, size_t len, struct spec *s,
		 runm_error_t *err)
{
	cleanup_json json_object *root = NULL;
	json_tokener *tok;
	json_object *jroot, *path, *proc, *term, *linux_, *ro, *devs;
	const char *p;

	memset(s, 0, sizeof(*s));
	if (id == NULL || id[0] == '\0' || strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return runm_error_make(err, 0, "bad container id `%.100s`", id ? id : "");
	tok = json_tokener_new();
	root = json_tokener_parse_ex(tok, json, (int)(len > INT_MAX ? INT_MAX : len));
	if (root == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) < len) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		size_t off = json_tokener_get_parse_end(tok);
		json_tokener_free(tok);
		return runm_error_make(err, 0, "config.json: invalid JSON at byte %zu: %s", off,
				       e == json_tokener_success ? "trailing data" : json_tokener_error_desc(e));
	}
	json_tokener_free(tok);
	if (!json_object_is_type(root, json_type_object))
		return runm_error_make(err, 0, "config.json: not a JSON object");
	proc = get_typed(root, "process", json_type_object);
	if (proc == NULL)
		return runm_error_make(err, 0, "config.json: no \"process\" object");
	if (get_typed(proc, "args", json_type_array) == NULL)
		return runm_error_make(err, 0, "config.json: process.args missing or not an array");
	term = get_typed(proc, "terminal", json_type_boolean);
	s->terminal = term && json_object_get_boolean(term);
	jroot = get_typed(root, "root", json_type_object);
	path = get_typed(jroot, "path", json_type_string);
	if (path == NULL)
		return runm_error_make(err, 0, "config.json: root.path missing");
	p = json_object_get_string(path);
	s->rootfs = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", bundle, p);
	ro = get_typed(jroot, "readonly", json_type_boolean);
	s->rootfs_readonly = ro && json_object_get_boolean(ro);
	json_object_object_add(jroot, "path", json_object_new_string("rootfs"));

	s->id = xstrdup(id); /* from here on, errors go through spec_release */
	if (rewrite_mounts(root, s, err) < 0)
		goto fail;
	linux_ = get_typed(root, "linux", json_type_object);
	devs = get_typed(linux_, "devices", json_type_array);
	s->n_devices = devs ? json_object_array_length(devs) : 0;
	if (rewrite_namespaces(linux_, s, err) < 0)
		goto fail;
	read_resources(linux_, s);
	if (read_network(root, s, err) < 0 || read_pod(root, s, err) < 0)
		goto fail;
	/* Host-side settings the guest cannot honour. */
	json_object_object_del(root, "hooks");
	json_object_object_del(proc, "apparmorProfile");
	json_object_object_del(proc, "selinuxLabel");
	if (linux_)
		json_object_object_del(linux_, "mountLabel");
	/* Limits on what the VM does not have: block devices (its disks are
	 * 9p shares, and the guest kernel has no io controller), huge pages and
	 * RDMA. Docker and Podman send blockIO even when nothing is set; crun
	 * would refuse a controller the guest lacks. */
	{
		json_object *res = get_typed(linux_, "resources", json_type_object);
		if (res) {
			json_object_object_del(res, "blockIO");
			json_object_object_del(res, "hugepageLimits");
			json_object_object_del(res, "rdma");
		}
	}

	s->guest_json = xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	return 0;
fail:
	spec_release(s);
	return -1;
}

/* The rootfs as runc takes it: root.path relative to the bundle's real
 * path (symlinks in the path the caller gave for its bundle are its own,
 * runc resolves them too by chdir and getcwd), then no symlink in it:
 * runc's validator refuses one as well ("not an absolute path, or a
 * symlink"); Docker and Podman give real paths of their overlay mounts.
 * What this checks is what stage.c binds: through a walk that follows no
 * symlink, so a component swapped for one since is refused, not followed. */
static int check_rootfs(const struct spec *s, runm_error_t *err)
{
	cleanup_free char *real = realpath(s->rootfs, NULL);
	cleanup_free char *clean = clean_path(s->rootfs);
	struct stat st;

	if (real == NULL || stat(real, &st) < 0)
		return runm_error_make(err, errno, "rootfs `%s`", s->rootfs);
	if (!S_ISDIR(st.st_mode))
		return runm_error_make(err, ENOTDIR, "rootfs `%s` is not a directory", s->rootfs);
	if (strcmp(real, clean) != 0)
		return runm_error_make(err, 0, "rootfs `%s` resolves to `%s`: give the real path (no symlink in it)",
				       s->rootfs, real);
	return 0;
}

int spec_load(const char *id, const char *bundle, struct spec *s, runm_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/config.json", bundle);
	cleanup_free char *text = NULL, *real_bundle = NULL;
	size_t len = 0;

	if (read_file_at(AT_FDCWD, path, CONFIG_MAX, &text, &len, err) < 0)
		return -1;
	real_bundle = realpath(bundle, NULL);
	if (real_bundle == NULL)
		return runm_error_make(err, errno, "bundle `%s`", bundle);
	if (spec_prepare(id, real_bundle, text, len, s, err) < 0)
		return runm_error_wrap(err, "%s", path);
	if (check_rootfs(s, err) < 0) {
		spec_release(s);
		return runm_error_wrap(err, "%s", path);
	}
	return 0;
}

void spec_release(struct spec *s)
{
	for (size_t i = 0; i < s->n_shares; i++) {
		free(s->shares[i].host_path);
		free(s->shares[i].file);
		free(s->shares[i].destination);
		free(s->shares[i].tag);
		free(s->shares[i].guest_path);
	}
	free(s->shares);
	for (size_t i = 0; i < s->n_sockets; i++) {
		free(s->sockets[i].host_path);
		free(s->sockets[i].guest_path);
		free(s->sockets[i].destination);
	}
	free(s->sockets);
	for (size_t i = 0; i < s->n_ports; i++)
		free(s->ports[i].host_ip);
	free(s->ports);
	free(s->guest_json);
	free(s->rootfs);
	free(s->netns_path);
	free(s->pod_sandbox);
	free(s->id);
	memset(s, 0, sizeof(*s));
}

int spec_join_pod(struct spec *s, unsigned sandbox_pid, runm_error_t *err)
{
	static const struct {
		unsigned bit;
		const char *type;
	} kinds[] = { { SPEC_NS_IPC, "ipc" }, { SPEC_NS_UTS, "uts" }, { SPEC_NS_PID, "pid" } };
	cleanup_json json_object *root = json_tokener_parse(s->guest_json);
	json_object *ns = get_typed(get_typed(root, "linux", json_type_object), "namespaces", json_type_array);
	size_t n = ns ? json_object_array_length(ns) : 0;

	if (sandbox_pid == 0)
		return runm_error_make(err, 0, "%s: its pod's sandbox has no process to join", s->id);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ns, i);
		json_object *type = get_typed(e, "type", json_type_string);
		for (size_t k = 0; type && k < ARRAY_SIZE(kinds); k++) {
			if ((s->pod_ns & kinds[k].bit) && strcmp(json_object_get_string(type), kinds[k].type) == 0) {
				cleanup_free char *path = xasprintf("/proc/%u/ns/%s", sandbox_pid, kinds[k].type);
				json_object_object_add(e, "path", json_object_new_string(path));
			}
		}
	}
	free(s->guest_json);
	s->guest_json = xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	return 0;
}

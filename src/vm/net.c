/* net.c - see net.h. passt (Debian's `passt`) instead of QEMU's slirp: a
 * 64 KiB MTU over a stream socket, and a process of its own that drops to
 * an unprivileged user in namespaces of its own with a seccomp filter: a
 * guest that took over the network stack gets less than the VMM.
 *
 * The host's own addresses. Both map the gateway (10.0.2.2) to the host's
 * 127.0.0.1, and both reach any address of the host as the outside world.
 * passt's --no-map-gw does not help: what the guest sends to 10.0.2.2 then
 * leaves for the network beyond, and the host's other addresses stay open.
 * So the line is drawn on the host, where a guest cannot move it: an
 * isolated VM's passt runs as VM_NET_ISOLATED_UID, and one firewall rule
 * per family and protocol (net_guard) rejects every new connection of that
 * user to a local address, loopback or not; the replies of connections it
 * made to the world are not new and pass. DNS (port 53) passes too: the
 * host's resolver may be on its loopback (systemd-resolved). A VM with
 * host_loopback runs passt as `nobody`, which no rule names. Published
 * ports do not go through passt at all (qemu.c says why). */
#include "net.h"
#include "ports.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* passt exits as soon as the VMM's end of the socket closes: this only
 * bounds a passt that hangs. */
#define NET_STOP_GRACE_MS 1000
/* The user an isolated VM's passt runs as: one no account uses (65534 is
 * nobody, which an opted-in VM's passt uses). $RUNM_NET_UID overrides. */
#define VM_NET_ISOLATED_UID 65533
#define NET_GUARD_COMMENT "runm: no host-local connections from isolated VMs"
#define NET_GUARD_TIMEOUT_MS 10000

static unsigned isolated_uid(void)
{
	const char *e = getenv("RUNM_NET_UID");
	char *end;
	unsigned long v;

	if (e == NULL || *e == '\0')
		return VM_NET_ISOLATED_UID;
	v = strtoul(e, &end, 10);
	return *end == '\0' && v > 0 && v < 65535 ? (unsigned)v : VM_NET_ISOLATED_UID;
}

/* Run argv (an absolute path first) to its end; its exit status, or -1. */
static int run_quiet(char *const argv[], const struct vm *vm, runm_error_t *err)
{
	pid_t pid;
	int pidfd, status = 0;
	struct pollfd p;
	cleanup_free char *log = xasprintf("%s/guard.log", vm->state_dir);

	if (vm_spawn_process(vm, argv, NULL, 0, log, &pid, &pidfd, err) < 0)
		return -1;
	p = (struct pollfd){ .fd = pidfd, .events = POLLIN };
	if (poll(&p, 1, NET_GUARD_TIMEOUT_MS) == 0)
		vm_kill(pid, pidfd);
	close(pidfd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	unlink(log);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The rules of the comment at the top, in the VMM's network namespace (each
 * has its own firewall): checked (-C, ~5 ms) at every start, added once. */
static int net_guard(const struct vm *vm, runm_error_t *err)
{
	static const char *const tools[] = { "iptables", "ip6tables" };
	static const char *const protos[] = { "tcp", "udp" };
	cleanup_free char *uid = xasprintf("%u", isolated_uid());

	for (size_t t = 0; t < ARRAY_SIZE(tools); t++) {
		cleanup_free char *bin = find_in_path(tools[t]);
		if (bin == NULL)
			bin = xasprintf("/usr/sbin/%s", tools[t]);
		if (access(bin, X_OK) < 0)
			return runm_error_make(err, ENOENT,
					       "cannot keep isolated VMs off the host's own addresses: no %s (apt-get install "
					       "iptables), or set io.runm.host-loopback=true",
					       tools[t]);
		for (size_t p = 0; p < ARRAY_SIZE(protos); p++) {
			char *argv[] = { bin, "-w", "5", "-C", "OUTPUT", "-p", (char *)protos[p], "-m", "owner",
					 "--uid-owner", uid, "-m", "conntrack", "--ctstate", "NEW", "-m", "addrtype",
					 "--dst-type", "LOCAL", "!", "--dport", "53", "-m", "comment", "--comment",
					 (char *)NET_GUARD_COMMENT, "-j", "REJECT", NULL };
			int rc = run_quiet(argv, vm, err);
			if (rc < 0)
				return runm_error_wrap(err, "run %s", bin);
			if (rc == 0)
				continue;
			argv[3] = (char *)"-I";
			if (run_quiet(argv, vm, err) != 0)
				return runm_error_make(err, 0,
						       "cannot keep isolated VMs off the host's own addresses: `%s -I OUTPUT "
						       "...` failed (root and the owner, conntrack and addrtype matches "
						       "are needed), or set io.runm.host-loopback=true",
						       bin);
		}
	}
	return 0;
}

int vm_choose_net(const struct vm_config *cfg, const char **backend, runm_error_t *err)
{
	const char *name = getenv("RUNM_NET_BACKEND");
	cleanup_free char *passt = NULL;

	if (name == NULL || *name == '\0')
		name = cfg->net_backend;
	if (name == NULL || *name == '\0' || strcmp(name, "auto") == 0) {
		passt = find_in_path(VM_NET_PASST);
		*backend = passt ? VM_NET_PASST : VM_NET_SLIRP;
		return 0;
	}
	if (strcmp(name, VM_NET_SLIRP) == 0) {
		*backend = VM_NET_SLIRP;
		return 0;
	}
	if (strcmp(name, VM_NET_PASST) != 0)
		return runm_error_make(err, EINVAL, "network backend `%s`: passt or slirp", name);
	passt = find_in_path(VM_NET_PASST);
	if (passt == NULL)
		return runm_error_make(err, ENOENT, "network backend passt: `passt` not found (apt-get install passt)");
	*backend = VM_NET_PASST;
	return 0;
}

char **vm_passt_argv(const struct vm_config *cfg, const char *passt, const char *log_path, int fd)
{
	char **argv = NULL;
	cleanup_free char *fdnum = xasprintf("%d", fd), *prefix = xasprintf("%d", VM_NET_PREFIX);
	const char *fixed[] = { "--foreground", "--quiet", "--fd", fdnum, "--log-file", log_path,
				/* The plan the agent configures statically (vm.h). */
				"--address", VM_NET_GUEST_ADDR, "--netmask", prefix, "--gateway", VM_NET_GATEWAY,
				"--dns-forward", VM_NET_DNS };

	strv_push(&argv, passt);
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		strv_push(&argv, fixed[i]);
	/* The gateway is the host's loopback, as under slirp; for an isolated
	 * VM, a loopback passt's user cannot connect to (net_guard). */
	if (!cfg->host_loopback) {
		cleanup_free char *uid = xasprintf("%u", isolated_uid());
		strv_push(&argv, "--runas");
		strv_push(&argv, uid);
	}
	return argv;
}

/* A copy of what vm_net_start opens: the ports and whether there is a network. */
static struct vm_config *ports_copy(const struct vm_config *cfg)
{
	struct vm_config *c = xzalloc(sizeof(*c));
	struct vm_port *ports = xzalloc((cfg->n_ports ? cfg->n_ports : 1) * sizeof(*ports));

	for (size_t i = 0; i < cfg->n_ports; i++) {
		ports[i] = cfg->ports[i];
		ports[i].host_ip = cfg->ports[i].host_ip ? xstrdup(cfg->ports[i].host_ip) : NULL;
	}
	c->network = cfg->network;
	c->ports = ports;
	c->n_ports = cfg->n_ports;
	return c;
}

void vm_net_release(struct vm *vm)
{
	if (vm->net_cfg) {
		for (size_t i = 0; i < vm->net_cfg->n_ports; i++)
			free((char *)vm->net_cfg->ports[i].host_ip);
		free((struct vm_port *)vm->net_cfg->ports);
		free(vm->net_cfg);
		vm->net_cfg = NULL;
	}
}

int vm_passt_start(struct vm *vm, const struct vm_config *cfg, int *vmm_fd, runm_error_t *err)
{
	cleanup_free char *passt = find_in_path(VM_NET_PASST);
	cleanup_strv char **argv = NULL;
	cleanup_close int ours = -1, theirs = -1;
	int sv[2];

	if (passt == NULL)
		return runm_error_make(err, ENOENT, "network backend passt: `passt` not found (apt-get install passt)");
	if (!cfg->host_loopback && net_guard(vm, err) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return runm_error_make(err, errno, "socketpair for passt");
	ours = sv[0];
	theirs = sv[1];
	free(vm->net_log_path);
	vm->net_log_path = xasprintf("%s/" VM_NET_LOG, vm->state_dir);
	/* passt opens its log itself, before it drops privileges; vm_spawn_process's
	 * log (its stdout and stderr) is the same file, for what it says before. */
	argv = vm_passt_argv(cfg, passt, vm->net_log_path, 3);
	if (vm_spawn_process(vm, argv, &ours, 1, vm->net_log_path, &vm->net_pid, &vm->net_pidfd, err) < 0)
		return runm_error_wrap(err, "start passt");
	*vmm_fd = steal_fd(&theirs);
	return 0;
}

void vm_net_prepare(struct vm *vm, const struct vm_config *cfg)
{
	if (cfg->n_ports > 0 && vm->net_cfg == NULL)
		vm->net_cfg = ports_copy(cfg);
}

int vm_net_start(struct vm *vm, runm_error_t *err)
{
	size_t done = 0;

	if (vm->net_cfg == NULL || vm->ports_open)
		return 0;
	/* Checked at create too: a port may have been taken since. */
	if (vm_ports_check(vm->net_cfg, err) < 0)
		return -1;
	for (; done < vm->net_cfg->n_ports; done++)
		if (vm->ops->forward(vm, &vm->net_cfg->ports[done], true, err) < 0)
			break;
	if (done == vm->net_cfg->n_ports) {
		vm->ports_open = true;
		return 0;
	}
	/* All or none: those opened before the failure close again. */
	while (done-- > 0)
		vm->ops->forward(vm, &vm->net_cfg->ports[done], false, NULL);
	return -1;
}

void vm_net_close(struct vm *vm)
{
	cleanup_error runm_error_t err = NULL;

	if (!vm->ports_open)
		return;
	vm->ports_open = false;
	for (size_t i = 0; i < vm->net_cfg->n_ports; i++)
		if (vm->ops->forward(vm, &vm->net_cfg->ports[i], false, &err) < 0) {
			log_warn("%s", runm_error_msg(err));
			runm_error_release(&err);
		}
}

void vm_net_stop(struct vm *vm)
{
	struct pollfd p = { .fd = vm->net_pidfd, .events = POLLIN };

	if (vm->net_pid <= 0)
		return;
	if (poll(&p, 1, NET_STOP_GRACE_MS) == 0)
		vm_kill(vm->net_pid, vm->net_pidfd);
	/* ECHILD: a reaper of the caller's (waitpid(-1)) was first; fine. */
	while (waitpid(vm->net_pid, NULL, 0) < 0 && errno == EINTR)
		;
	vm->net_pid = -1;
	close_and_reset(&vm->net_pidfd);
}

/* qemu.c - the QEMU backend: `-M microvm` on x86_64, `-M virt` on aarch64,
 * accel kvm / hvf / tcg. The agent channel is a virtio-serial port whose
 * chardev is one end of a socketpair, QMP is another socketpair: no socket
 * file to create, race on or clean up, and both are connected before QEMU
 * even starts. So is the guest console, whose host end the caller reads into
 * a bounded log (vm_console_fd): a file chardev would let the guest fill the
 * host's disk. */
#include "vm-backend.h"
#include "jail.h"
#include "net.h"
#include "ports.h"
#include "qmp.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Fds the child sees (vm_spawn passes pass_fds[i] as 3 + i). */
#define CHILD_FD_AGENT 3
#define CHILD_FD_QMP 4
#define CHILD_FD_NET 5 /* the tap, or passt's socket */
/* The snapshot a VM is restored from: the fd after the last one above. */
#define CHILD_FD_INCOMING(has_net_fd) ((has_net_fd) ? 6 : 5)
/* The console socket: the last one (after the snapshot, if any). */
#define CHILD_FD_CONSOLE(has_net_fd, restore) (CHILD_FD_INCOMING(has_net_fd) + ((restore) ? 1 : 0))

struct qemu_arch {
	const char *binary;    /* qemu-system-<arch> */
	const char *package;   /* what provides it, for the error message */
	const char *console;   /* the serial console's name in the guest */
	const char *virtio;    /* transport suffix of virtio devices: "device" (mmio) or "pci" */
};

#if defined(__x86_64__)
/* microvm has no PCI: virtio-mmio devices (virtio-*-device), an ISA serial
 * port as the console (ttyS0: the 8250 driver is built in, while
 * virtio_console is a module, loaded by the agent too late for boot messages). */
static const struct qemu_arch arch = { "qemu-system-x86_64", "qemu-system-x86", "ttyS0", "device" };
#elif defined(__aarch64__)
static const struct qemu_arch arch = { "qemu-system-aarch64", "qemu-system-arm", "ttyAMA0", "pci" };
#else
#error "runm's QEMU backend supports x86_64 and aarch64 hosts"
#endif

/* ---- command line ---- */

/* Backend names are compared as strings: literals need not be one object. */
static bool net_is(const char *net, const char *name)
{
	return net != NULL && strcmp(net, name) == 0;
}

static void push(char ***argv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void push(char ***argv, const char *fmt, ...)
{
	va_list ap;
	cleanup_free char *s = NULL;
	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	strv_push(argv, s);
}

/* QEMU's option syntax: a ',' inside a value is written ",,". */
static char *opt_escape(const char *s)
{
	size_t n = 0;
	char *out, *o;
	for (const char *p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	o = out = xmalloc(n + 1);
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

static int find_binary(const struct vm_config *cfg, char **out, runm_error_t *err)
{
	const char *name = cfg->qemu_binary;

	if (name == NULL || *name == '\0')
		name = getenv("RUNM_QEMU");
	if (name == NULL || *name == '\0')
		name = arch.binary;
	*out = find_in_path(name);
	if (*out)
		return 0;
	if (strchr(name, '/'))
		return runm_error_make(err, errno, "QEMU binary `%s`", name);
#ifdef __APPLE__
	return runm_error_make(err, 0, "%s not found: brew install qemu", name);
#else
	return runm_error_make(err, 0, "%s not found: apt-get install %s", name, arch.package);
#endif
}

/* The host's TSC frequency in kHz, 0 if unknown. Under TCG the guest's TSC
 * ticks at the host's rate; the guest kernel, unable to calibrate it against
 * an emulated PIT, sometimes hangs at boot (Debian 6.1, about 1 boot in 4;
 * see pitfalls.md) unless tsc_early_khz= tells it. */
static unsigned long host_tsc_khz(void)
{
	cleanup_free char *s = NULL, *info = NULL;
	const char *p;
	unsigned long mhz, frac = 0;
	int digits = 0;

	/* Exact where the kernel exports it (some x86 kernels with the right config). */
	if (read_file_at(AT_FDCWD, "/sys/devices/system/cpu/cpu0/tsc_freq_khz", 64, &s, NULL, NULL) == 0) {
		unsigned long khz = strtoul(s, NULL, 10);
		if (khz > 0)
			return khz;
	}
	/* Otherwise "cpu MHz : 2096.001" -> 2096001 kHz. */
	if (read_file_at(AT_FDCWD, "/proc/cpuinfo", 1 << 22, &info, NULL, NULL) < 0)
		return 0;
	p = strstr(info, "\ncpu MHz");
	if (p == NULL || (p = strchr(p, ':')) == NULL)
		return 0;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return 0;
	mhz = strtoul(p, (char **)&p, 10);
	if (*p == '.')
		for (p++; digits < 3 && *p >= '0' && *p <= '9'; p++, digits++)
			frac = frac * 10 + (unsigned long)(*p - '0');
	for (; digits < 3; digits++)
		frac *= 10;
	return mhz * 1000 + frac;
}

static char *kernel_cmdline(const struct vm_config *cfg, const char *accel, const char *net)
{
	cleanup_free char *tsc = NULL;
	/* quiet: every byte on the emulated UART is a VM exit, slow under TCG.
	 * panic=-1 reboots at once on a guest panic, and reboot=t (triple
	 * fault: microvm has no keyboard controller to reset through) turns
	 * that into a QEMU exit under -no-reboot: a dead guest never lingers. */
#if defined(__x86_64__)
	/* init_on_alloc/free=0: the guest does not zero every page it hands
	 * out (Debian's default turns it on): 14% of the boot under TCG; the
	 * VM is the container's alone. */
	/* virtio_mmio.queue_num_max (guest/kernel/patches): QEMU's virtio-mmio
	 * offers every queue at 1024 entries and the guest fills them: 8 MiB of
	 * receive pages for virtio-serial alone. 256 is QEMU's own size for a
	 * virtio-net queue (and more than its 9p and serial queues take). A
	 * kernel without the patch (GUEST_KERNEL=debian) ignores it. */
	const char *base = "quiet panic=-1 reboot=t init_on_alloc=0 init_on_free=0 virtio_mmio.queue_num_max=256";

	if (strcmp(accel, "tcg") == 0) {
		unsigned long khz = host_tsc_khz();
		if (khz > 0)
			tsc = xasprintf(" tsc_early_khz=%lu", khz);
		else
			log_warn("host TSC frequency unknown: TCG guest may hang at boot (no tsc_early_khz)");
	}
#else
	const char *base = "quiet panic=-1 init_on_alloc=0 init_on_free=0";
	(void)accel;
#endif
	return xasprintf("console=%s %s%s%s%s%s", arch.console, base, tsc ? tsc : "",
			 cfg->tap_fd > 0 ? " " VM_CMDLINE_NET_MIRROR : net_is(net, VM_NET_PASST) ? " " VM_CMDLINE_NET_PASST : "",
			 cfg->cmdline_extra && *cfg->cmdline_extra ? " " : "", cfg->cmdline_extra ? cfg->cmdline_extra : "");
}

static const char *machine(const char *accel)
{
#if defined(__x86_64__)
	(void)accel;
	/* No option ROMs: the kernel is loaded directly (PVH ELF entry), and
	 * SeaBIOS's option-ROM scan is time at every boot. */
	return "microvm,x-option-roms=off";
#else
	/* GICv3 where the host has one; TCG emulates the best it can. */
	if (strcmp(accel, "kvm") == 0)
		return "virt,gic-version=host";
	if (strcmp(accel, "tcg") == 0)
		return "virt,gic-version=max";
	return "virt";
#endif
}

/* The user-mode network backend cfg gets (VM_NET_*), NULL when the NIC is
 * a tap or there is none. */
static int user_net(const struct vm_config *cfg, const char **net, runm_error_t *err)
{
	*net = NULL;
	if (cfg->tap_fd > 0 || !cfg->network)
		return 0;
	return vm_choose_net(cfg, net, err);
}

/* key: the command line of a template's key (template.c): what differs per
 * VM and is not in the migration stream (the state dir and share paths, the
 * published ports) is left out; the console's socket is the template's and
 * the restored VM's alike (only the serial device's state is migrated, not
 * its chardev). A tap NIC can have one: its MAC is QEMU's default in every
 * VM (the agent sets the mirrored one, which reaches virtio-net's filter
 * through the guest driver), its fd number is fixed. */
static int build_argv(const struct vm_config *cfg, const char *binary, const char *accel, const char *net,
		      const char *state_dir, const char *restore_path, bool key, char ***out, runm_error_t *err)
{
	cleanup_strv char **argv = NULL;
	cleanup_free char *append = kernel_cmdline(cfg, accel, net);
	cleanup_free char *kernel = opt_escape(cfg->kernel), *initrd = opt_escape(cfg->initrd);
	cleanup_free char *name = opt_escape(key ? "@state" : state_dir);
	const char *v = arch.virtio;

	strv_push(&argv, binary);
	/* The state dir on the command line: vm_is_ours (and a test's leak
	 * check) tell this VM's VMM from any other by it. */
	push(&argv, "-name");
	push(&argv, "runm:%s", name);
	push(&argv, "-M");
	push(&argv, "%s", machine(accel));
	push(&argv, "-accel");
	/* TCG's code cache: QEMU's default is 1 GiB of address space, touched as
	 * code is translated; 32 MiB cut an idle VM's anonymous memory by 7% and
	 * its boot by 5%. A restored idle VM fills ~23 MiB of it (with THP off,
	 * see vm.c, only that much is resident); 16 MiB made a warm `runm run
	 * true` 220 ms slower (cache flushes), 24 MiB saved nothing. */
	if (strcmp(accel, "tcg") == 0)
		push(&argv, "tcg,tb-size=%u", VM_TCG_TB_MIB);
	else
		push(&argv, "%s", accel);
	push(&argv, "-cpu");
	push(&argv, "%s", strcmp(accel, "tcg") == 0 ? "max" : "host");
	push(&argv, "-m");
	push(&argv, "%u", cfg->mem_mib ? cfg->mem_mib : VM_DEFAULT_MEM_MIB);
	push(&argv, "-smp");
	push(&argv, "%u", cfg->vcpus ? cfg->vcpus : 1);
	push(&argv, "-nodefaults");
	push(&argv, "-no-user-config");
	/* QEMU's seccomp filter (least privilege, as Firecracker's): a guest
	 * that escapes into the VMM cannot start programs, gain privileges,
	 * call obsolete syscalls or change scheduling and limits. runm never
	 * needs QEMU to spawn anything (no exec: migration, no helpers). */
	push(&argv, "-sandbox");
	push(&argv, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	push(&argv, "-nographic");
	/* A guest reboot (or a panic, with panic=-1) ends QEMU: a runm VM never restarts. */
	push(&argv, "-no-reboot");
	push(&argv, "-kernel");
	push(&argv, "%s", kernel);
	push(&argv, "-initrd");
	push(&argv, "%s", initrd);
	push(&argv, "-append");
	push(&argv, "%s", append);

	/* Guest console -> a connected socket, read by the caller into a
	 * bounded log (vm_console_fd). When it is full QEMU's UART retries as
	 * the socket drains: the guest's writes wait, nothing piles up in QEMU. */
	push(&argv, "-chardev");
	push(&argv, "socket,id=console,fd=%d",
	     CHILD_FD_CONSOLE(cfg->tap_fd > 0 || net_is(net, VM_NET_PASST), restore_path != NULL));
	push(&argv, "-serial");
	push(&argv, "chardev:console");

	/* Agent channel: an already connected socket (client mode on an fd). */
	push(&argv, "-chardev");
	push(&argv, "socket,id=agent,fd=%d", CHILD_FD_AGENT);
	/* Two ports (0 is virtconsole's, unused; 1 the agent's): the guest
	 * sets up a queue pair for every port the device may have (31). */
	push(&argv, "-device");
	push(&argv, "virtio-serial-%s,max_ports=2", v);
	push(&argv, "-device");
	push(&argv, "virtserialport,chardev=agent,name=" VM_CHANNEL_NAME);

	/* Free page reporting: the guest tells QEMU which 4 MiB blocks it has
	 * freed and QEMU drops them (MADV_DONTNEED), so memory a container
	 * used and gave back returns to the host (an idle VM went from 171 to
	 * 92 MiB anonymous after its container freed 80 MiB). No inflation:
	 * runm never takes memory from a guest. */
	push(&argv, "-device");
	push(&argv, "virtio-balloon-%s,free-page-reporting=on", v);

	/* QMP, same way. */
	push(&argv, "-chardev");
	push(&argv, "socket,id=qmp,fd=%d", CHILD_FD_QMP);
	push(&argv, "-mon");
	push(&argv, "chardev=qmp,mode=control");

	for (size_t i = 0; i < cfg->n_shares; i++) {
		const struct vm_share *s = &cfg->shares[i];
		cleanup_free char *path = NULL;
		if (s->host_path == NULL || s->tag == NULL || *s->tag == '\0')
			return runm_error_make(err, EINVAL, "share %zu: host path and tag are required", i);
		/* The tag is a QEMU option value and a 9p mount source: keep it plain. */
		if (strlen(s->tag) > 31 || strpbrk(s->tag, ",= \t\n"))
			return runm_error_make(err, EINVAL, "share tag `%s`: at most 31 characters, no ',', '=' or spaces",
					       s->tag);
		path = key ? xasprintf("@share%zu", i) : opt_escape(s->host_path);
		push(&argv, "-fsdev");
		/* A share now spans several host filesystems (each container's
		 * rootfs and bind sources are bound into it): multidevs=remap
		 * keeps their inode numbers from colliding in the guest, where
		 * 9p would take two files for one. */
		push(&argv, "local,id=fs%zu,path=%s,security_model=none,multidevs=remap%s", i, path,
		     s->readonly ? ",readonly=on" : "");
		push(&argv, "-device");
		push(&argv, "virtio-9p-%s,fsdev=fs%zu,mount_tag=%s", v, i, s->tag);
	}
	if (cfg->tap_fd > 0) {
		/* The tap was opened in the container's network namespace and
		 * stays there; the VMM only writes and reads frames on the fd. */
		push(&argv, "-netdev");
		push(&argv, "tap,id=net0,fd=%d", CHILD_FD_NET);
		push(&argv, "-device");
		if (cfg->mac && *cfg->mac)
			push(&argv, "virtio-net-%s,netdev=net0,mac=%s", v, cfg->mac);
		else
			push(&argv, "virtio-net-%s,netdev=net0", v);
	} else if (net_is(net, VM_NET_PASST)) {
		/* passt's end of a socketpair (net.c): frames with a length
		 * prefix, QEMU 7.2's stream netdev; the guest's way out. */
		push(&argv, "-netdev");
		push(&argv, "stream,id=net0,server=off,addr.type=fd,addr.str=%d", CHILD_FD_NET);
		push(&argv, "-device");
		push(&argv, "virtio-net-%s,netdev=net0,mac=" VM_NET_MAC, v);
		/* The way in: published ports arrive through a second NIC on
		 * slirp, which may not send anything out (restrict=on) and only
		 * answers connections it forwarded. passt 2023-03 completes an
		 * inbound handshake only once the client has sent something: a
		 * server that speaks first (MySQL, SMTP, FTP) would never see
		 * its client. The agent configures it (VM_NET_FWD_MAC). */
		push(&argv, "-netdev");
		push(&argv, "user,id=" VM_NET_FWD_NETDEV ",restrict=on,net=" VM_NET_FWD_NET ",host=" VM_NET_FWD_HOST);
		push(&argv, "-device");
		push(&argv, "virtio-net-%s,netdev=" VM_NET_FWD_NETDEV ",mac=" VM_NET_FWD_MAC, v);
	} else if (net_is(net, VM_NET_SLIRP)) {
		/* Published ports are added once the container starts (qemu_forward). */
		push(&argv, "-netdev");
		push(&argv, "user,id=net0");
		push(&argv, "-device");
		push(&argv, "virtio-net-%s,netdev=net0", v);
	}
	if (restore_path) {
		/* QEMU 7.2 has no file: URI, and its seccomp filter forbids exec:
		 * the snapshot comes as an open fd. The guest runs once loaded (no -S). */
		push(&argv, "-incoming");
		push(&argv, "fd:%d", CHILD_FD_INCOMING(cfg->tap_fd > 0 || net_is(net, VM_NET_PASST)));
	}
	*out = steal_ptr(&argv);
	return 0;
}

static int qmp_execute(struct vm *vm, const char *cmd, runm_error_t *err)
{
	struct qmp *q = vm->priv;
	uint64_t deadline = now_mono_ns() + QMP_TIMEOUT_MS * 1000000ull;
	if (qmp_handshake(q, deadline, err) < 0 || qmp_send(q, cmd, err) < 0 ||
	    qmp_wait_return(q, cmd, deadline, err) < 0)
		return runm_error_wrap(err, "VMM pid %d", (int)vm->pid);
	return 0;
}

/* ---- backend operations ---- */

/* The jail QEMU runs in (jail.h): what it opens by path is its binary, the
 * kernel, the initrd and its shares; everything else comes as an fd
 * (channel, QMP, console, tap or passt, a snapshot to restore). */
static int qemu_jail(struct vm *vm, const struct vm_config *cfg, const char *binary, const char *accel,
		     runm_error_t *err)
{
	cleanup_free char *root = xasprintf("%s/" JAIL_DIR, vm->state_dir);
	cleanup_free const char **shares = xzalloc((cfg->n_shares + 1) * sizeof(*shares));
	struct jail_spec spec = {
		.root = root,
		.binary = binary,
		.kernel = cfg->kernel,
		.initrd = cfg->initrd,
		.shares = shares,
		.n_shares = cfg->n_shares,
		.kvm = strcmp(accel, "kvm") == 0,
		/* slirp as the way out forwards the guest's DNS to the host's
		 * resolvers; under passt its NIC only takes published ports in. */
		.resolv = net_is(vm->net, VM_NET_SLIRP),
		.caps = JAIL_CAPS,
	};

	for (size_t i = 0; i < cfg->n_shares; i++)
		shares[i] = cfg->shares[i].host_path;
	if (jail_plan(&spec, &vm->jail, err) < 0 || jail_prepare(vm->jail, err) < 0)
		return -1;
	return 0;
}

/* The command line at debug level: what to paste to reproduce a boot by hand. */
static void log_command(char *const *argv)
{
	cleanup_free char *line = xstrdup("");
	for (size_t i = 0; argv && argv[i]; i++) {
		char *next = xasprintf("%s%s'%s'", line, i ? " " : "", argv[i]);
		free(line);
		line = next;
	}
	log_debug("VMM command: %s", line);
}

static int qemu_start(struct vm *vm, const struct vm_config *cfg, const char *accel, runm_error_t *err)
{
	cleanup_free char *binary = NULL;
	cleanup_strv char **argv = NULL;
	cleanup_close int agent_host = -1, agent_vmm = -1, qmp_host = -1, qmp_vmm = -1, snap = -1, net_vmm = -1;
	cleanup_close int con_host = -1, con_vmm = -1;
	struct qmp *q;
	int sv[2];

	q = xzalloc(sizeof(*q));
	q->qmp_fd = -1;
	vm->priv = q;

	if (user_net(cfg, &vm->net, err) < 0)
		return -1;
	if (vm->net)
		log_info("user-mode network: %s%s", vm->net,
			 cfg->host_loopback || strcmp(vm->net, VM_NET_SLIRP) == 0 ? ", the host's loopback reachable" : "");
	if (cfg->tap_fd <= 0 && vm_ports_check(cfg, err) < 0)
		return -1;
	vm_net_prepare(vm, cfg);
	/* The MAC lands in a QEMU option: only hex digits and colons. */
	if (cfg->mac && strspn(cfg->mac, "0123456789abcdefABCDEF:") != strlen(cfg->mac))
		return runm_error_make(err, EINVAL, "MAC `%s`: expected aa:bb:cc:dd:ee:ff", cfg->mac);
	if (find_binary(cfg, &binary, err) < 0)
		return -1;
	if (build_argv(cfg, binary, accel, vm->net, vm->state_dir, vm->restore_path, false, &argv, err) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return runm_error_make(err, errno, "socketpair for the agent channel");
	agent_host = sv[0];
	agent_vmm = sv[1];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return runm_error_make(err, errno, "socketpair for QMP");
	qmp_host = sv[0];
	qmp_vmm = sv[1];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return runm_error_make(err, errno, "socketpair for the console");
	/* Not shut down for writing, though we never write: QEMU takes EOF
	 * on a socket chardev for a disconnection and drops the console. */
	con_host = sv[0];
	con_vmm = sv[1];

	/* The caller creates it afresh, but if the VMM fails before that, a
	 * previous VM's console must not pass for this one's. */
	if (unlink(vm->console_path) < 0 && errno != ENOENT)
		return runm_error_make(err, errno, "remove `%s`", vm->console_path);
	if (unlink(vm->console_old_path) < 0 && errno != ENOENT)
		return runm_error_make(err, errno, "remove `%s`", vm->console_old_path);
	if (vm->restore_path) {
		snap = open(vm->restore_path, O_RDONLY | O_CLOEXEC);
		if (snap < 0)
			return runm_error_make(err, errno, "open template `%s`", vm->restore_path);
	}
	if (qemu_jail(vm, cfg, binary, accel, err) < 0)
		return -1;
	if (net_is(vm->net, VM_NET_PASST) && vm_passt_start(vm, cfg, &net_vmm, err) < 0)
		return -1;
	log_command(argv);
	{
		int fds[5] = { agent_vmm, qmp_vmm }, n = 2;
		if (cfg->tap_fd > 0)
			fds[n++] = cfg->tap_fd; /* CHILD_FD_NET */
		else if (net_vmm >= 0)
			fds[n++] = net_vmm; /* CHILD_FD_NET */
		if (snap >= 0)
			fds[n++] = snap; /* CHILD_FD_INCOMING */
		fds[n++] = con_vmm; /* CHILD_FD_CONSOLE */
		if (vm_spawn(vm, argv, fds, (size_t)n, err) < 0)
			return -1;
	}
	/* Our copies of the VMM's ends close here (cleanup): when QEMU exits,
	 * the channel and QMP see EOF. */
	vm->chan_fd = steal_fd(&agent_host);
	vm->console_fd = steal_fd(&con_host);
	q->qmp_fd = steal_fd(&qmp_host);
	return 0;
}

static int qemu_pause(struct vm *vm, runm_error_t *err)
{
	return qmp_execute(vm, "stop", err);
}

static int qemu_resume(struct vm *vm, runm_error_t *err)
{
	return qmp_execute(vm, "cont", err);
}

static int qemu_describe(const struct vm_config *cfg, const char *binary, const char *accel, char **out,
			 runm_error_t *err)
{
	cleanup_strv char **argv = NULL;
	cleanup_free char *line = xstrdup("");
	const char *net;

	if (user_net(cfg, &net, err) < 0 || build_argv(cfg, binary, accel, net, NULL, NULL, true, &argv, err) < 0)
		return -1;
	for (size_t i = 0; argv[i]; i++) {
		char *next = xasprintf("%sarg %s\n", line, argv[i]);
		free(line);
		line = next;
	}
	*out = steal_ptr(&line);
	return 0;
}

/* The MIGRATION event's status, or NULL for any other message. */
static const char *migration_status(json_object *o)
{
	json_object *ev, *data, *st;
	if (!json_object_object_get_ex(o, "event", &ev) || strcmp(json_object_get_string(ev), "MIGRATION") != 0)
		return NULL;
	if (!json_object_object_get_ex(o, "data", &data) || !json_object_object_get_ex(data, "status", &st))
		return NULL;
	return json_object_get_string(st);
}

static int qemu_save(struct vm *vm, const char *path, uint64_t deadline_ns, runm_error_t *err)
{
	struct qmp *q = vm->priv;
	/* Written by QEMU through an fd we open: its seccomp filter forbids exec:. */
	cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool returned = false, done = false;

	if (fd < 0)
		return runm_error_make(err, errno, "save template: create `%s`", path);
	/* The events capability: completion arrives as an event, no polling of query-migrate. */
	if (qmp_handshake(q, deadline_ns, err) < 0 || qmp_getfd(q, fd, "runm-template", deadline_ns, err) < 0 ||
	    qmp_call(q, "migrate-set-capabilities",
		     "{\"capabilities\":[{\"capability\":\"events\",\"state\":true}]}", deadline_ns, err) < 0 ||
	    qmp_send_args(q, "migrate", "{\"uri\":\"fd:runm-template\"}", err) < 0)
		return runm_error_wrap(err, "save template (VMM pid %d)", (int)vm->pid);
	/* The final event may come before or after migrate's return. */
	while (!returned || !done) {
		json_object *o = NULL, *e;
		const char *st;
		if (qmp_read(q, deadline_ns, &o, err) < 0)
			return runm_error_wrap(err, "save template (VMM pid %d)", (int)vm->pid);
		if (json_object_object_get_ex(o, "return", NULL))
			returned = true;
		if (json_object_object_get_ex(o, "error", &e)) {
			json_object *desc = NULL;
			json_object_object_get_ex(e, "desc", &desc);
			runm_error_make(err, EIO, "QMP migrate: %.200s", desc ? json_object_get_string(desc) : "error");
			json_object_put(o);
			return -1;
		}
		st = migration_status(o);
		if (st && strcmp(st, "completed") == 0)
			done = true;
		if (st && (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0)) {
			runm_error_make(err, EIO, "QMP migrate: %s (see %s)", st, vm->vmm_log_path);
			json_object_put(o);
			/* A failed migration leaves the guest running. */
			return -1;
		}
		json_object_put(o);
	}
	/* A completed migration leaves the guest paused, but the COMPLETED event
	 * comes before the migration thread moves the run state from
	 * finish-migrate to postmigrate, and `cont` refuses the former ("Migration
	 * is not finalized yet"). No event marks that step: ask, briefly. */
	for (;;) {
		json_object *ret = NULL, *st = NULL;
		bool finishing;
		if (qmp_send(q, "query-status", err) < 0 || qmp_wait_value(q, "query-status", deadline_ns, &ret, err) < 0)
			return runm_error_wrap(err, "save template (VMM pid %d)", (int)vm->pid);
		finishing = json_object_object_get_ex(ret, "status", &st) &&
			    strcmp(json_object_get_string(st), "finish-migrate") == 0;
		json_object_put(ret);
		if (!finishing)
			break;
		if (vm_ms_left(deadline_ns) == 0)
			return runm_error_make(err, ETIMEDOUT, "save template: the migration does not finish");
		poll(NULL, 0, 2);
	}
	/* This VM goes on to serve its container. */
	if (qmp_call(q, "cont", NULL, deadline_ns, err) < 0)
		return runm_error_wrap(err, "resume after saving the template");
	return 0;
}

/* hostfwd_add / hostfwd_remove (HMP: QMP has no command for them in 7.2)
 * for each port of p's range; slirp's answer is empty or the error. */
static int qemu_forward(struct vm *vm, const struct vm_port *p, bool add, runm_error_t *err)
{
	struct qmp *q = vm->priv;
	uint64_t deadline = now_mono_ns() + QMP_TIMEOUT_MS * 1000000ull;
	const char *netdev = net_is(vm->net, VM_NET_PASST) ? VM_NET_FWD_NETDEV : "net0";

	if (qmp_handshake(q, deadline, err) < 0)
		return -1;
	for (unsigned i = 0; i < (p->count ? p->count : 1u); i++) {
		/* Addresses were checked (ports.c): no quote or backslash to escape. */
		cleanup_free char *args =
			add ? xasprintf("{\"command-line\":\"hostfwd_add %s %s:%s:%u-:%u\"}", netdev, vm_port_proto(p),
					vm_port_ip(p), p->host_port + i, p->guest_port + i)
			    : xasprintf("{\"command-line\":\"hostfwd_remove %s %s:%s:%u\"}", netdev, vm_port_proto(p),
					vm_port_ip(p), p->host_port + i);
		json_object *ret = NULL;
		const char *out;

		if (qmp_send_args(q, "human-monitor-command", args, err) < 0 ||
		    qmp_wait_value(q, "human-monitor-command", deadline, &ret, err) < 0)
			return -1;
		out = json_object_is_type(ret, json_type_string) ? json_object_get_string(ret) : "";
		if (*out != '\0') {
			/* QEMU's words, bounded: "Could not set up host forwarding rule ..." */
			runm_error_make(err, 0, "cannot %s port %s:%u/%s: %.200s", add ? "publish" : "unpublish",
					vm_port_ip(p), p->host_port + i, vm_port_proto(p), out);
			json_object_put(ret);
			return -1;
		}
		json_object_put(ret);
	}
	return 0;
}

static int qemu_quit(struct vm *vm, uint64_t deadline_ns, runm_error_t *err)
{
	struct qmp *q = vm->priv;
	if (q == NULL)
		return runm_error_make(err, ENOTCONN, "no QMP channel");
	/* No wait for the reply: the caller waits for the exit itself. */
	if (qmp_handshake(q, deadline_ns, err) < 0 || qmp_send(q, "quit", err) < 0)
		return -1;
	return 0;
}

static void qemu_release(struct vm *vm)
{
	struct qmp *q = vm->priv;
	if (q == NULL)
		return;
	qmp_close(q);
	free(q->buf);
	free(q);
	vm->priv = NULL;
}

const struct vm_backend vm_qemu_backend = {
	.name = "qemu",
	.start = qemu_start,
	.binary = find_binary,
	.pause = qemu_pause,
	.resume = qemu_resume,
	.quit = qemu_quit,
	.forward = qemu_forward,
	.describe = qemu_describe,
	.save = qemu_save,
	.release = qemu_release,
};

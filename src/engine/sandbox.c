/* sandbox.c - see sandbox.h. */
#include "sandbox.h"
#include "console.h"
#include "guest.h"
#include "dnsrelay.h"
#include "netns.h"
#include "sockproxy.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/config.h"
#include "engine/stage.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"
#include "vm/vm.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct sandbox {
	struct loop *loop;
	char *id;
	char *state_dir;
	struct vm *vm;
	struct console *console; /* the guest console and the VMM's output, into bounded logs */
	struct ttrpc_conn *conn;
	int chan;                /* channel fd until the hello arrived, then owned by conn */
	struct loop_watch *w_chan, *w_vmm;
	struct loop_timer *deadline;
	uint8_t hello[TTRPC_HEADER_LEN];
	size_t hello_len;
	bool ready, stopped;
	bool paused; /* a frozen guest cannot power itself off */
	bool free_pending; /* freed by on_conn_closed, which ttrpc runs deferred */
	char *guest_kernel;
	int netns_fd;            /* the mirrored network namespace, -1 = user-mode NAT */
	char *mirrored;          /* its interface once redirected to the tap */
	/* What a boot needs, kept until the agent answered: a KVM boot that
	 * fails as KVM's is retried once under TCG (vm_kvm_fallback). */
	struct vm_config vc;
	char *kernel, *initrd;
	struct vm_share share;   /* the one share: shared_dir */
	struct vm_port *ports;
	char *net_backend;
	int tap_fd;
	unsigned timeout_ms;
	bool retried;
	bool restored;           /* this VM came from a template */
	unsigned boot_gen;       /* bumped per boot: a late Ping reply of an abandoned boot is ignored */
	unsigned closing;        /* connections of abandoned boots whose on_close is still to run */
	uint64_t boot_start_ns;
	char *shared_dir;        /* <state_dir>/shared, where containers are bound (stage.h) */
	char **bound;            /* ids of the containers bound there */
	char *resolv_file;       /* the container's bound /etc/resolv.conf, read at mirror time (dnsrelay.h) */
	struct dnsrelay *dns;
	struct sandbox_sockets *socks; /* host sockets proxied, per container */
	sandbox_ready_fn ready_cb;
	sandbox_exit_fn exit_cb;
	void *data;
};

struct sandbox_sockets {
	char *id;
	struct sockproxy *p;
	struct sandbox_sockets *next;
};

static void stop_sockets(struct sandbox *sb, const char *id)
{
	for (struct sandbox_sockets **ps = &sb->socks; *ps;) {
		struct sandbox_sockets *x = *ps;
		if (id && strcmp(x->id, id) != 0) {
			ps = &x->next;
			continue;
		}
		*ps = x->next;
		sockproxy_free(x->p);
		free(x->id);
		free(x);
	}
}

static void boot_release(struct sandbox *sb)
{
	free(sb->kernel);
	free(sb->initrd);
	free(sb->ports);
	free(sb->net_backend);
	sb->net_backend = NULL;
	sb->kernel = sb->initrd = NULL;
	sb->ports = NULL;
	close_and_reset(&sb->tap_fd);
}

static int boot(struct sandbox *sb, runm_error_t *err);

/* Undo a boot that failed before the agent answered, for another try. */
static void abandon_boot(struct sandbox *sb)
{
	loop_timer_cancel(sb->deadline);
	sb->deadline = NULL;
	loop_unwatch(sb->w_chan);
	sb->w_chan = NULL;
	loop_unwatch(sb->w_vmm);
	sb->w_vmm = NULL;
	close_and_reset(&sb->chan);
	sb->hello_len = 0;
	if (sb->conn) {
		/* Its on_close (and the Ping's UNAVAILABLE) run later, from the loop. */
		sb->closing++;
		ttrpc_conn_close(sb->conn);
		sb->conn = NULL;
	}
	console_free(sb->console);
	sb->console = NULL;
	vm_free(sb->vm);
	sb->vm = NULL;
}

/* A restore that failed (the VMM died, the agent did not answer): drop the
 * template and boot cold, in the same start, without saving a new one this
 * time (a template that keeps failing then costs one failed restore in two
 * starts, not every start). */
static bool retry_cold(struct sandbox *sb, runm_error_t *why)
{
	cleanup_error runm_error_t err = NULL;

	if (!sb->restored || sb->vm == NULL)
		return false;
	log_warn("VM of %s: restore from template %s failed (%s); template removed, booting cold", sb->id,
		 vm_template_dir(sb->vm), runm_error_msg(*why));
	vm_template_drop(sb->vm);
	abandon_boot(sb);
	sb->restored = false;
	sb->vc.warm = false;
	if (boot(sb, &err) < 0) {
		log_error("VM of %s: cold boot after a failed restore: %s", sb->id, runm_error_msg(err));
		return false;
	}
	return true;
}

/* A boot under an automatically chosen KVM that failed as KVM's: once more
 * under TCG, in the same start (vm_kvm_fallback remembered the verdict). */
static bool retry_under_tcg(struct sandbox *sb, bool timed_out)
{
	cleanup_error runm_error_t err = NULL;

	if (sb->retried || sb->vm == NULL || !vm_kvm_fallback(sb->vm, timed_out))
		return false;
	sb->retried = true;
	abandon_boot(sb);
	sb->vc.accel = "tcg";
	if (boot(sb, &err) < 0) {
		log_error("VM of %s: retry under TCG: %s", sb->id, runm_error_msg(err));
		return false;
	}
	return true;
}

static void fail_boot(struct sandbox *sb, runm_error_t *err, bool timed_out)
{
	sandbox_ready_fn cb = sb->ready_cb;
	cleanup_free char *tail = NULL;

	/* The VMM's last words, read before anyone looks (vm_kvm_fallback too). */
	console_drain(sb->console);
	if (!sb->ready && (retry_cold(sb, err) || retry_under_tcg(sb, timed_out)))
		return;
	cb = sb->ready_cb;
	tail = vm_console_tail(sb->vm, 2000);

	sb->ready_cb = NULL;
	loop_timer_cancel(sb->deadline);
	sb->deadline = NULL;
	sandbox_stop(sb);
	if (tail && tail[0])
		runm_error_wrap(err, "VM of %s did not come up (guest console ends with:\n%s\n)", sb->id, tail);
	else
		runm_error_wrap(err, "VM of %s did not come up", sb->id);
	if (cb)
		cb(sb, err, sb->data);
}

static void fail(struct sandbox *sb, runm_error_t *err)
{
	fail_boot(sb, err, false);
}

static void on_deadline(struct loop *l, void *data)
{
	struct sandbox *sb = data;
	cleanup_error runm_error_t err = NULL;
	(void)l;
	sb->deadline = NULL;
	runm_error_make(&err, ETIMEDOUT, "no answer from the guest agent");
	fail_boot(sb, &err, true);
}

static void on_vmm_exit(struct loop *l, int fd, uint32_t events, void *data)
{
	struct sandbox *sb = data;
	int status = 0;
	(void)l;
	(void)fd;
	(void)events;

	loop_unwatch(sb->w_vmm);
	sb->w_vmm = NULL;
	vm_try_reap(sb->vm, &status, NULL);
	if (!sb->ready) {
		cleanup_error runm_error_t err = NULL;
		runm_error_make(&err, 0, "the VMM exited (status %d) before the agent answered", status);
		fail(sb, &err);
		return;
	}
	log_info("VM of %s exited", sb->id);
	sb->stopped = true;
	if (sb->conn)
		ttrpc_conn_close(sb->conn);
	if (sb->exit_cb)
		sb->exit_cb(sb, sb->data);
}

static void sandbox_destroy(struct sandbox *sb)
{
	loop_timer_cancel(sb->deadline);
	close_and_reset(&sb->chan);
	/* The tap went with the VMM (its last fd); the filter on the namespace's
	 * interface is ours to remove, in case the namespace outlives the VM
	 * (a CRI pod's, a user's). Closing our fd lets a deleted namespace go. */
	if (sb->mirrored)
		netns_unmirror(sb->netns_fd, sb->mirrored);
	free(sb->mirrored);
	close_and_reset(&sb->netns_fd);
	console_free(sb->console);
	vm_free(sb->vm);
	/* After the VMM, which held them open. */
	for (size_t i = strv_len(sb->bound); i-- > 0;)
		stage_container_release(sb->shared_dir, sb->bound[i]);
	strv_free(sb->bound);
	stage_release_all(sb->state_dir);
	free(sb->shared_dir);
	boot_release(sb);
	free(sb->state_dir);
	free(sb->guest_kernel);
	free(sb->id);
	free(sb);
}

static void on_conn_closed(struct ttrpc_conn *c, void *data)
{
	struct sandbox *sb = data;
	if (sb->conn == c)
		sb->conn = NULL;
	else if (sb->closing > 0)
		sb->closing--;
	if (sb->free_pending && sb->conn == NULL && sb->closing == 0)
		sandbox_destroy(sb);
}

#define PING_TIMEOUT_MS 10000

struct ping_ctx {
	struct sandbox *sb;
	unsigned gen;
};

static void on_ping(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct ping_ctx *pc = data;
	struct sandbox *sb = pc->sb;
	cleanup_pb Runm__Agent__V1__PingResponse *resp = NULL;
	sandbox_ready_fn cb = sb->ready_cb;
	bool stale = pc->gen != sb->boot_gen;

	free(pc);
	if (stale) /* the boot it belonged to was abandoned */
		return;
	if (code != TTRPC_OK) {
		cleanup_error runm_error_t err = NULL;
		/* A guest that says hello and then nothing: name what it did not do. */
		if (code == TTRPC_DEADLINE_EXCEEDED)
			runm_error_make(&err, ETIMEDOUT, "the agent did not answer Ping within %u s",
					PING_TIMEOUT_MS / 1000);
		else
			runm_error_make(&err, 0, "agent ping: %s", msg);
		fail(sb, &err);
		return;
	}
	resp = PB_UNPACK(Runm__Agent__V1__PingResponse, runm__agent__v1__ping_response__descriptor, payload, len);
	sb->guest_kernel = xstrdup(resp && resp->kernel ? resp->kernel : "");
	loop_timer_cancel(sb->deadline);
	sb->deadline = NULL;
	sb->ready = true;
	sb->ready_cb = NULL;
	log_info("VM of %s: agent answered %llu ms after the VMM started (%s)", sb->id,
		 (unsigned long long)((now_mono_ns() - sb->boot_start_ns) / 1000000),
		 sb->restored ? "restored from a template" : "cold boot");
	boot_release(sb);
	if (cb)
		cb(sb, NULL, sb->data);
}

/* Ping sets the guest's clock and reseeds its RNG: both come from the
 * template in a restored VM, the same in every copy. */
static void send_ping(struct sandbox *sb)
{
	Runm__Agent__V1__PingRequest ping = RUNM__AGENT__V1__PING_REQUEST__INIT;
	struct ping_ctx *pc = xzalloc(sizeof(*pc));
	uint8_t seed[64];
	size_t got = 0;

	while (got < sizeof(seed)) {
		ssize_t n = getrandom(seed + got, sizeof(seed) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < sizeof(seed))
		log_warn("VM of %s: getrandom: %s; guest RNG not reseeded", sb->id, strerror(errno));
	ping.host_time_ns = now_real_ns();
	ping.entropy.data = seed;
	ping.entropy.len = got == sizeof(seed) ? got : 0;
	pc->sb = sb;
	pc->gen = sb->boot_gen;
	ttrpc_call(sb->conn, AGENT_SERVICE, "Ping", &ping.base, PING_TIMEOUT_MS, 0, on_ping, pc);
	explicit_bzero(seed, sizeof(seed));
}

/* Right after the first hello for this template key, before Ping and before
 * anything is mounted in the guest (QEMU refuses to migrate with a 9p share
 * mounted). Synchronous: the loop waits for the migration (a fraction of a
 * second), which this first container pays. A failure costs only the
 * template: the VM goes on. */
static void save_template(struct sandbox *sb)
{
	cleanup_error runm_error_t err = NULL;
	uint64_t t0 = now_mono_ns();

	if (vm_template_save(sb->vm, &err) < 0)
		log_warn("VM of %s: no template saved: %s", sb->id, runm_error_msg(err));
	else
		log_info("VM of %s: template %s saved in %llu ms", sb->id, vm_template_dir(sb->vm),
			 (unsigned long long)((now_mono_ns() - t0) / 1000000));
}

/* The agent's first bytes are a hello: an empty DATA frame on stream 0, which
 * any ttrpc peer ignores. Until it arrives the guest has not opened its end of
 * the port, so nothing is written before it. */
static void on_hello(struct loop *l, int fd, uint32_t events, void *data)
{
	struct sandbox *sb = data;
	static const uint8_t want[TTRPC_HEADER_LEN] = { 0, 0, 0, 0, 0, 0, 0, 0, TTRPC_DATA, 0 };
	ssize_t n;
	(void)events;

	n = read(fd, sb->hello + sb->hello_len, sizeof(sb->hello) - sb->hello_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		cleanup_error runm_error_t err = NULL;
		runm_error_make(&err, n < 0 ? errno : 0, "agent channel closed before the hello");
		fail(sb, &err);
		return;
	}
	sb->hello_len += (size_t)n;
	if (sb->hello_len < sizeof(sb->hello))
		return;
	loop_unwatch(sb->w_chan);
	sb->w_chan = NULL;
	if (memcmp(sb->hello, want, sizeof(want)) != 0) {
		cleanup_error runm_error_t err = NULL;
		runm_error_make(&err, EPROTO, "garbage instead of the agent's hello on the channel");
		fail(sb, &err);
		return;
	}
	if (vm_template_wanted(sb->vm))
		save_template(sb);
	sb->conn = ttrpc_conn_new(l, steal_fd(&sb->chan), NULL, on_conn_closed, sb);
	send_ping(sb);
}

/* Start the VMM for sb->vc and watch for the agent's hello. */
static int boot(struct sandbox *sb, runm_error_t *err)
{
	unsigned timeout = sb->timeout_ms, trial;

	sb->boot_gen++;
	sb->boot_start_ns = now_mono_ns();
	if (vm_start(&sb->vc, &sb->vm, err) < 0)
		return -1;
	sb->restored = vm_restored(sb->vm);
	if (console_start(sb->loop, vm_console_fd(sb->vm), vm_console_path(sb->vm), &sb->console, err) < 0 ||
	    console_add(sb->console, vm_vmm_log_fd(sb->vm), vm_vmm_log_path(sb->vm), err) < 0)
		return -1;
	sb->chan = vm_take_channel_fd(sb->vm);
	set_nonblock(sb->chan, 1);
	sb->w_vmm = loop_watch_fd(sb->loop, vm_pidfd(sb->vm), EPOLLIN, on_vmm_exit, sb, err);
	if (sb->w_vmm == NULL)
		return -1;
	if (sb->restored) {
		/* The agent's hello went to the host that made the template: the
		 * agent waits for a request. A short deadline: a restore either
		 * works at once or not at all. */
		log_info("VM of %s: restoring from template %s", sb->id, vm_template_dir(sb->vm));
		sb->conn = ttrpc_conn_new(sb->loop, steal_fd(&sb->chan), NULL, on_conn_closed, sb);
		send_ping(sb);
		sb->deadline = loop_timer_add(sb->loop, SANDBOX_RESTORE_TIMEOUT_MS < timeout ? SANDBOX_RESTORE_TIMEOUT_MS : timeout,
					      on_deadline, sb);
		return 0;
	}
	sb->w_chan = loop_watch_fd(sb->loop, sb->chan, EPOLLIN, on_hello, sb, err);
	if (sb->w_chan == NULL)
		return -1;
	/* An unproven KVM gets a short trial: a guest that crawls under it
	 * (kvm_pvm) should not cost the whole boot timeout before TCG. */
	trial = vm_kvm_trial_ms(sb->vm);
	if (trial > 0 && trial < timeout)
		timeout = trial;
	sb->deadline = loop_timer_add(sb->loop, timeout, on_deadline, sb);
	return 0;
}

int sandbox_start(struct loop *loop, const struct sandbox_config *cfg, sandbox_ready_fn ready,
		  sandbox_exit_fn exited, void *data, struct sandbox **out, runm_error_t *err)
{
	const char *resolv;
	cleanup_free char *kernel = NULL, *initrd = NULL;
	cleanup_free struct vm_port *ports = NULL;
	cleanup_close int netns_fd = -1, tap_fd = -1;
	cleanup_free char *shared_dir = NULL;
	struct vm_config vc = { 0 };
	struct sandbox *sb;
	const struct spec *sp = cfg->spec;
	unsigned timeout = cfg->boot_timeout_ms ? cfg->boot_timeout_ms : SANDBOX_BOOT_TIMEOUT_MS;
	const char *env_timeout = getenv("RUNM_BOOT_TIMEOUT_MS"), *accel, *cfg_accel = cfg->accel;
	struct runm_config rc __attribute__((cleanup(config_release))) = { 0 };

	if (cfg->kernel && cfg->initrd) {
		kernel = xstrdup(cfg->kernel);
		initrd = xstrdup(cfg->initrd);
	} else if (guest_find(&kernel, &initrd, err) < 0) {
		return -1;
	}
	if (env_timeout && atoi(env_timeout) > 0)
		timeout = (unsigned)atoi(env_timeout);
	/* An explicit accelerator this host cannot run fails here, before
	 * anything (a tap, the shared dir) exists to be undone. */
	accel = getenv("RUNM_ACCEL");
	if ((accel == NULL || *accel == '\0') && cfg->accel == NULL) {
		if (config_load(RUNM_CONFIG_DEFAULT, true, &rc, err) < 0)
			return -1;
		cfg_accel = rc.accel ? rc.accel : "auto";
	}
	if (accel == NULL || *accel == '\0')
		accel = cfg_accel;
	if (accel && *accel && strcmp(accel, "auto") != 0 && vm_check_accel(accel, err) < 0)
		return runm_error_wrap(err, "start VM for %s", cfg->id);
	/* The tap must exist before the VMM starts (microvm has no hotplug);
	 * what it mirrors is found at sandbox_network_up, once CNI has run. */
	if (sp->netns_path && cfg->network) {
		netns_fd = netns_open(sp->netns_path, cfg->own_netns, err);
		if (netns_fd < 0)
			return -1;
		tap_fd = netns_tap_create(netns_fd, err);
		if (tap_fd < 0)
			return runm_error_wrap(err, "network namespace `%s`", sp->netns_path);
	}
	/* One share for the VM's whole life; containers are bound into it
	 * later (sandbox_bind_container), the VM running or not. */
	if (stage_shared_create(cfg->state_dir, &shared_dir, err) < 0)
		return runm_error_wrap(err, "start VM for %s", cfg->id);
	vc.kernel = kernel;
	vc.initrd = initrd;
	vc.mem_mib = cfg->mem_mib ? cfg->mem_mib : sp->mem_mib ? sp->mem_mib : cfg->default_mem_mib;
	vc.vcpus = cfg->vcpus ? cfg->vcpus : sp->vcpus ? sp->vcpus : cfg->default_vcpus;
	vc.n_shares = 1; /* vc.shares below, once the share outlives this call */
	/* The spec can turn networking off (io.runm.network=none), not on. */
	vc.network = cfg->network && sp->network;
	vc.host_loopback = sp->host_loopback;
	if (sp->n_ports > 0) {
		ports = xzalloc(sp->n_ports * sizeof(*ports));
		for (size_t i = 0; i < sp->n_ports; i++)
			ports[i] = (struct vm_port){ .host_ip = sp->ports[i].host_ip,
						     .host_port = sp->ports[i].host_port,
						     .guest_port = sp->ports[i].container_port,
						     .count = sp->ports[i].count,
						     .proto = sp->ports[i].udp ? VM_PROTO_UDP : VM_PROTO_TCP };
		vc.ports = ports;
		vc.n_ports = sp->n_ports;
	}
	vc.state_dir = cfg->state_dir;
	vc.tap_fd = tap_fd;
	vc.netns_fd = netns_fd;
	vc.accel = NULL; /* set below, once it outlives rc */
	vc.warm = sandbox_warm_wanted(cfg);

	sb = xzalloc(sizeof(*sb));
	sb->loop = loop;
	sb->id = xstrdup(cfg->id);
	sb->state_dir = xstrdup(cfg->state_dir);
	sb->chan = -1;
	sb->netns_fd = steal_fd(&netns_fd);
	/* Ours until the agent answered (a retry needs it); the VMM has its own. */
	sb->tap_fd = steal_fd(&tap_fd);
	sb->kernel = steal_ptr(&kernel);
	sb->initrd = steal_ptr(&initrd);
	sb->shared_dir = steal_ptr(&shared_dir);
	sb->share = (struct vm_share){ .host_path = sb->shared_dir, .tag = SANDBOX_SHARE_TAG, .readonly = false };
	sb->ports = steal_ptr(&ports);
	sb->net_backend = cfg->net_backend ? xstrdup(cfg->net_backend) : NULL;
	vc.net_backend = sb->net_backend;
	sb->vc = vc;
	sb->vc.shares = &sb->share;
	/* RUNM_ACCEL (vm_start reads it again) or the config's, as a static string. */
	sb->vc.accel = accel == NULL || *accel == '\0' || strcmp(accel, "auto") == 0 ? "auto"
		       : strcmp(accel, "kvm") == 0				 ? "kvm"
		       : strcmp(accel, "hvf") == 0				 ? "hvf"
										 : "tcg";
	sb->timeout_ms = timeout;
	if (sb->netns_fd >= 0 && (resolv = dnsrelay_resolv_file(sp)) != NULL)
		sb->resolv_file = xstrdup(resolv);
	sb->ready_cb = ready;
	sb->exit_cb = exited;
	sb->data = data;
	if (boot(sb, err) < 0) {
		sandbox_free(sb);
		return runm_error_wrap(err, "start VM for %s", cfg->id);
	}
	*out = sb;
	return 0;
}

bool sandbox_warm_wanted(const struct sandbox_config *cfg)
{
	const char *env = getenv("RUNM_WARM_START");
	if (env && (strcmp(env, "0") == 0 || strcmp(env, "1") == 0))
		return env[0] == '1';
	if (cfg->warm_start == CONFIG_ON || cfg->warm_start == CONFIG_OFF)
		return cfg->warm_start == CONFIG_ON;
	return SANDBOX_WARM_DEFAULT;
}

bool sandbox_restored(const struct sandbox *sb)
{
	return sb->restored;
}

void sandbox_network_down(struct sandbox *sb)
{
	if (sb->vm && sb->netns_fd < 0)
		vm_net_close(sb->vm);
}

int sandbox_network_up(struct sandbox *sb, ttrpc_reply_fn cb, void *data, runm_error_t *err)
{
	Runm__Agent__V1__NetworkRequest req = RUNM__AGENT__V1__NETWORK_REQUEST__INIT;
	struct netns_iface iface;
	const char *dns;
	int r;

	if (sb->netns_fd < 0)
		return sb->vm ? vm_net_start(sb->vm, err) : 0;
	if (sb->mirrored)
		return 0;
	r = netns_mirror(sb->netns_fd, &iface, err);
	if (r <= 0)
		return r;
	sb->mirrored = xstrdup(iface.name);
	log_info("%s: network namespace's %s (%s, %s, gateway %s, mtu %u) mirrored to " NETNS_TAP, sb->id,
		 iface.name, iface.address, iface.mac, iface.gateway[0] ? iface.gateway : "none", iface.mtu);
	req.address = iface.address;
	req.gateway = iface.gateway;
	req.mtu = iface.mtu;
	req.mac = iface.mac;
	sandbox_call(sb, "Network", &req.base, 10000, 0, cb, data);
	/* Docker's resolver answers only inside the namespace: relay to it.
	 * Names not resolving is not worth failing the container for. */
	if ((dns = dnsrelay_wanted_file(sb->resolv_file)) != NULL) {
		cleanup_error runm_error_t derr = NULL;
		if (dnsrelay_start(sb->loop, sb, sb->netns_fd, dns, &sb->dns, &derr) < 0)
			log_warn("%s: %s", sb->id, runm_error_msg(derr));
		else
			log_info("%s: DNS to %s relayed to the network namespace", sb->id, dns);
	}
	return 1;
}

int sandbox_bind_container(struct sandbox *sb, const char *id, const struct spec *sp, runm_error_t *err)
{
	for (size_t i = 0; i < strv_len(sb->bound); i++)
		if (strcmp(sb->bound[i], id) == 0)
			return runm_error_make(err, EEXIST, "container %s is already bound into its VM", id);
	if (stage_container(sb->shared_dir, id, sp, err) < 0)
		return runm_error_wrap(err, "share the filesystems of %s with its VM", id);
	strv_push(&sb->bound, id);
	return 0;
}

int sandbox_proxy_sockets(struct sandbox *sb, const char *id, const struct spec *sp, runm_error_t *err)
{
	struct sockproxy *p = NULL;
	struct sandbox_sockets *x;

	if (sockproxy_start(sb->loop, sb, id, sp, &p, err) < 0)
		return -1;
	if (p == NULL)
		return 0;
	x = xzalloc(sizeof(*x));
	x->id = xstrdup(id);
	x->p = p;
	x->next = sb->socks;
	sb->socks = x;
	return 0;
}

void sandbox_unbind_container(struct sandbox *sb, const char *id)
{
	size_t n = strv_len(sb->bound);

	stop_sockets(sb, id);

	for (size_t i = 0; i < n; i++) {
		if (strcmp(sb->bound[i], id) != 0)
			continue;
		stage_container_release(sb->shared_dir, id);
		free(sb->bound[i]);
		memmove(&sb->bound[i], &sb->bound[i + 1], (n - i) * sizeof(*sb->bound)); /* the NULL too */
		return;
	}
}

struct later_reply {
	ttrpc_reply_fn cb;
	void *data;
	int code;
	char *msg;
};

static void reply_later(struct loop *l, void *data)
{
	struct later_reply *g = data;
	(void)l;
	g->cb(g->data, g->code, g->msg, NULL, 0);
	free(g->msg);
	free(g);
}

void sandbox_reply_later(struct sandbox *sb, ttrpc_reply_fn cb, void *data, int code, const char *msg)
{
	struct later_reply *g;

	if (cb == NULL)
		return;
	g = xzalloc(sizeof(*g));
	g->cb = cb;
	g->data = data;
	g->code = code;
	g->msg = xstrdup(msg);
	loop_defer(sb->loop, reply_later, g);
}

struct ttrpc_stream *sandbox_call(struct sandbox *sb, const char *method, const ProtobufCMessage *req,
				  uint64_t timeout_ms, uint8_t flags, ttrpc_reply_fn cb, void *data)
{
	if (sb->conn == NULL || sb->stopped) {
		/* Keep ttrpc's promise: the callback always runs, never re-entrantly. */
		sandbox_reply_later(sb, cb, data, TTRPC_UNAVAILABLE, "the VM is gone");
		return NULL;
	}
	return ttrpc_call(sb->conn, AGENT_SERVICE, method, req, timeout_ms, flags, cb, data);
}

struct ttrpc_conn *sandbox_conn(const struct sandbox *sb)
{
	return sb->conn;
}

pid_t sandbox_vmm_pid(const struct sandbox *sb)
{
	return sb->vm ? vm_pid(sb->vm) : -1;
}

const char *sandbox_guest_kernel(const struct sandbox *sb)
{
	return sb->guest_kernel ? sb->guest_kernel : "";
}

char *sandbox_console_tail(const struct sandbox *sb)
{
	console_drain(sb->console);
	return sb->vm ? vm_console_tail(sb->vm, 4000) : xstrdup("");
}

int sandbox_pause(struct sandbox *sb, runm_error_t *err)
{
	if (vm_pause(sb->vm, err) < 0)
		return -1;
	sb->paused = true;
	return 0;
}

int sandbox_resume(struct sandbox *sb, runm_error_t *err)
{
	if (vm_resume(sb->vm, err) < 0)
		return -1;
	sb->paused = false;
	return 0;
}

void sandbox_stop(struct sandbox *sb)
{
	cleanup_error runm_error_t err = NULL;

	loop_unwatch(sb->w_chan);
	sb->w_chan = NULL;
	loop_unwatch(sb->w_vmm);
	sb->w_vmm = NULL;
	/* Gracefully first: the agent powers the guest off (its filesystems
	 * synced), which ends the VMM; a guest that does not within the grace
	 * period is quit through QMP, then killed. */
	if (sb->conn && sb->ready && sb->vm && !sb->stopped && !sb->paused) {
		Runm__Agent__V1__Empty req = RUNM__AGENT__V1__EMPTY__INIT;
		/* Queued and, with room in the socket, written at once; if not
		 * (a guest that stopped reading), waiting for it is pointless. */
		ttrpc_call(sb->conn, AGENT_SERVICE, "Shutdown", &req.base, 0, 0, NULL, NULL);
		if (ttrpc_conn_queued(sb->conn) == 0 && !vm_wait(sb->vm, SANDBOX_SHUTDOWN_GRACE_MS))
			log_debug("the guest of %s did not power off within %d ms", sb->id, SANDBOX_SHUTDOWN_GRACE_MS);
	}
	if (sb->conn)
		ttrpc_conn_close(sb->conn);
	if (sb->vm && !sb->stopped && vm_stop(sb->vm, 3000, &err) < 0)
		log_warn("stop VM of %s: %s", sb->id, runm_error_msg(err));
	sb->stopped = true;
}

void sandbox_free(struct sandbox *sb)
{
	if (sb == NULL)
		return;
	/* Before the connection closes: the relay's stream is abandoned, not failed. */
	dnsrelay_free(sb->dns);
	sb->dns = NULL;
	stop_sockets(sb, NULL);
	free(sb->resolv_file);
	sb->resolv_file = NULL;
	sandbox_stop(sb);
	if (sb->conn || sb->closing) {
		sb->free_pending = true;
		return;
	}
	sandbox_destroy(sb);
}

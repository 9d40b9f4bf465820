/* run.c - the monitor, behind `runm run` and runc's `runm create`. Boots the
 * container's VM, creates the container, relays its stdio, forwards our
 * signals to it, serves the control socket, and exits with the container's
 * exit status. `run` starts the container at once (with --detach it forks
 * into the background once the container runs); `create` forks the monitor
 * off, as runc leaves its init behind, and the monitor waits for `runm
 * start` on the control socket (the monitor service, cli.h). */
#include "cli/cli.h"

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "engine/config.h"
#include "engine/create.h"
#include "engine/entry.h"
#include "engine/hooks.h"
#include "engine/netns.h"
#include "engine/relay.h"
#include "engine/sandbox.h"
#include "engine/spec.h"
#include "engine/stage.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

struct monitor {
	struct loop *loop;
	const char *id;
	char *dir;
	struct spec spec;
	struct sandbox *sb;
	struct relay *relay;
	struct ttrpc_server *ctl;
	struct ttrpc_service ctl_svc;
	struct cli_state st;
	char *pid_file;
	char *console_socket;
	int report_fd;   /* --detach, create: tells the waiting parent "ok" or the error */
	bool create_mode; /* runm create: start waits for the monitor service's Start */
	bool created;     /* the guest's container exists (create mode: reported) */
	bool own_netns;   /* create made the container's network namespace: we live in it */
	struct ttrpc_stream *start_req; /* a pending monitor Start, answered once it runs */
	int tty;         /* our terminal when the container has one, else -1 */
	struct termios saved;
	bool raw;
	bool started, waited, relayed, done;
	int exit_status;
	runm_error_t failure;
};

static void finish(struct monitor *m, int status)
{
	if (m->done)
		return;
	m->done = true;
	m->exit_status = status;
	loop_quit(m->loop);
}

static void fail(struct monitor *m, runm_error_t *err)
{
	if (m->failure == NULL && err != NULL)
		m->failure = steal_ptr(err);
	if (m->start_req) {
		ttrpc_stream_on_cancel(m->start_req, NULL, NULL);
		ttrpc_reply_error(m->start_req, TTRPC_FAILED_PRECONDITION, "%s", runm_error_msg(m->failure));
		m->start_req = NULL;
	}
	finish(m, 1);
}

/* The container is done once its init exited and its output is all out. */
static void maybe_done(struct monitor *m)
{
	if (m->waited && m->relayed)
		finish(m, m->exit_status);
}

static void report(struct monitor *m, const char *msg)
{
	cli_report(&m->report_fd, msg);
}

static void resize(struct monitor *m)
{
	Runm__Agent__V1__ResizeRequest req = RUNM__AGENT__V1__RESIZE_REQUEST__INIT;
	struct winsize ws;
	if (m->tty < 0 || ioctl(m->tty, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
		return;
	req.exec_id = "";
	req.width = ws.ws_col;
	req.height = ws.ws_row;
	sandbox_call(m->sb, "Resize", &req.base, 10000, 0, NULL, NULL);
}

static void on_wait(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct monitor *m = data;
	cleanup_pb Runm__Agent__V1__WaitResponse *resp = NULL;
	runm_error_t err = NULL;

	if (code != 0) {
		runm_error_make(&err, 0, "waiting for the container: %s", msg);
		return fail(m, &err);
	}
	resp = PB_UNPACK(Runm__Agent__V1__WaitResponse, runm__agent__v1__wait_response__descriptor, payload, len);
	if (resp == NULL) {
		runm_error_make(&err, 0, "undecodable Wait response from the guest");
		return fail(m, &err);
	}
	m->exit_status = (int)(resp->exit_status > 255 ? 255 : resp->exit_status);
	m->waited = true;
	/* A detached container's VM lingers until delete: not its ports. */
	sandbox_network_down(m->sb);
	maybe_done(m);
}

/* Failures are logged, unless the caller takes them (err). */
static int write_state_or(struct monitor *m, const char *status, runm_error_t *err)
{
	cleanup_error runm_error_t mine = NULL;
	free(m->st.status);
	m->st.status = xstrdup(status);
	m->st.vmm_pid = m->sb ? sandbox_vmm_pid(m->sb) : 0;
	if (cli_state_write(m->dir, &m->st, err ? err : &mine) == 0)
		return 0;
	if (err == NULL)
		log_warn("%s", runm_error_msg(mine));
	return -1;
}

static void write_state(struct monitor *m, const char *status)
{
	write_state_or(m, status, NULL);
}

static void on_start(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct monitor *m = data;
	Runm__Agent__V1__WaitRequest wreq = RUNM__AGENT__V1__WAIT_REQUEST__INIT;
	cleanup_pb Runm__Agent__V1__StartResponse *resp = NULL;
	runm_error_t err = NULL;

	if (code != 0) {
		runm_error_make(&err, 0, "starting the container: %s", msg);
		return fail(m, &err);
	}
	resp = PB_UNPACK(Runm__Agent__V1__StartResponse, runm__agent__v1__start_response__descriptor, payload, len);
	if (resp == NULL) {
		runm_error_make(&err, 0, "undecodable Start response from the guest");
		return fail(m, &err);
	}
	m->started = true;
	m->st.pid = (pid_t)resp->pid;
	write_state(m, "running");
	if (m->start_req) {
		ttrpc_stream_on_cancel(m->start_req, NULL, NULL);
		ttrpc_reply(m->start_req, NULL);
		m->start_req = NULL;
	}
	if (m->pid_file && !m->create_mode) {
		/* The VMM is the container's process on this host: signalling or
		 * watching it is what a pid file is for. */
		cleanup_free char *s = xasprintf("%d", (int)sandbox_vmm_pid(m->sb));
		if (write_file_atomic(m->pid_file, s, strlen(s), 0644, &err) < 0)
			return fail(m, &err);
	}
	resize(m);
	wreq.exec_id = "";
	sandbox_call(m->sb, "Wait", &wreq.base, 0, 0, on_wait, m);
	report(m, "ok");
}

static void on_relay_done(struct relay *r, runm_error_t *err, void *data)
{
	struct monitor *m = data;
	(void)r;
	if (err != NULL)
		log_debug("%s", runm_error_msg(*err));
	m->relayed = true;
	maybe_done(m);
}

/* Our own stdio, or a pty whose master goes to --console-socket. */
static int stdio_fds(struct monitor *m, int fds[3], runm_error_t *err)
{
	if (m->console_socket) {
		if (!m->spec.terminal)
			return runm_error_make(err, 0, "--console-socket needs process.terminal in config.json");
		if (cli_console_socket(m->console_socket, &m->tty, err) < 0)
			return -1;
		/* Detached, we lead our own session: with the pty as our
		 * controlling terminal, a resize of the master sends us SIGWINCH. */
		if (getsid(0) == getpid() && ioctl(m->tty, TIOCSCTTY, 0) < 0)
			log_debug("console as controlling terminal: %s", strerror(errno));
		fds[0] = fcntl(m->tty, F_DUPFD_CLOEXEC, 3);
		fds[1] = fcntl(m->tty, F_DUPFD_CLOEXEC, 3);
		fds[2] = -1;
		return 0;
	}
	if (m->spec.terminal) {
		if (m->create_mode)
			return runm_error_make(err, 0, "process.terminal needs --console-socket");
		if (!isatty(STDIN_FILENO))
			return runm_error_make(err, 0, "the container wants a terminal (process.terminal) but stdin is not a tty");
		m->tty = cli_reopen_stdio(STDIN_FILENO, O_RDWR);
		if (m->tty < 0)
			return runm_error_make(err, errno, "open the terminal");
		fds[0] = fcntl(m->tty, F_DUPFD_CLOEXEC, 3);
		fds[1] = fcntl(m->tty, F_DUPFD_CLOEXEC, 3);
		fds[2] = -1;
		return 0;
	}
	fds[0] = cli_reopen_stdio(STDIN_FILENO, O_RDONLY);
	fds[1] = cli_reopen_stdio(STDOUT_FILENO, O_WRONLY);
	fds[2] = cli_reopen_stdio(STDERR_FILENO, O_WRONLY);
	return 0;
}

static void set_raw(struct monitor *m)
{
	/* A console-socket pty is already raw, and not ours to restore. */
	if (m->console_socket == NULL)
		m->raw = cli_tty_raw(m->tty, &m->saved);
}

static void start_init(struct monitor *m)
{
	Runm__Agent__V1__StartRequest req = RUNM__AGENT__V1__START_REQUEST__INIT;
	req.exec_id = "";
	sandbox_call(m->sb, "Start", &req.base, 60000, 0, on_start, m);
}

static void on_network(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct monitor *m = data;
	runm_error_t err = NULL;
	(void)payload;
	(void)len;
	if (code != 0) {
		runm_error_make(&err, 0, "configuring the container's network: %s", msg ? msg : "failed");
		return fail(m, &err);
	}
	start_init(m);
}

static void begin_start(struct monitor *m)
{
	runm_error_t err = NULL;
	/* A bundle naming a network namespace: its interface is mirrored into
	 * the VM before the process starts, as the shim does (Docker and
	 * Podman configure it between create and start). */
	int r = sandbox_network_up(m->sb, on_network, m, &err);
	if (r < 0)
		return fail(m, &err);
	if (r == 0)
		start_init(m);
}

static void on_create(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct monitor *m = data;
	runm_error_t err = NULL;
	int fds[3] = { -1, -1, -1 };

	(void)payload;
	(void)len;

	if (code != 0) {
		runm_error_make(&err, 0, "creating the container: %s", msg);
		return fail(m, &err);
	}
	write_state(m, "created");
	if (stdio_fds(m, fds, &err) < 0 ||
	    relay_start(m->loop, m->sb, "", "", fds[0], fds[1], fds[2], on_relay_done, m, &m->relay, &err) < 0)
		return fail(m, &err); /* relay_start closed the fds */
	set_raw(m);
	m->created = true;
	if (m->create_mode) {
		/* The relay holds the container's stdio now: ours must not keep the
		 * caller's pipes open (it waits for their EOF). */
		cli_null_stdio();
		report(m, "ok");
		return;
	}
	begin_start(m);
}

static void register_ctl(struct monitor *m);

static void on_ready(struct sandbox *sb, runm_error_t *err, void *data)
{
	struct monitor *m = data;
	runm_error_t e = NULL;
	if (err != NULL) {
		runm_error_wrap(err, "starting the VM of container %s", m->id);
		return fail(m, err);
	}
	log_debug("VM ready, guest kernel %s", sandbox_guest_kernel(sb));
	if (cli_proxy_start(m->loop, sb, m->dir, &m->ctl, &e) < 0)
		return fail(m, &e);
	register_ctl(m);
	engine_create(sb, m->id, &m->spec, true, true, true, on_create, m);
}

static void on_vmm_exit(struct sandbox *sb, void *data)
{
	struct monitor *m = data;
	runm_error_t err = NULL;
	cleanup_free char *tail = sandbox_console_tail(sb);
	if (m->done)
		return;
	runm_error_make(&err, 0, "the VM of container %s exited unexpectedly; guest console:\n%s", m->id,
			tail ? tail : "");
	fail(m, &err);
	m->exit_status = 137;
}

static void on_signal(struct loop *l, int signo, void *data)
{
	struct monitor *m = data;
	Runm__Agent__V1__SignalRequest req = RUNM__AGENT__V1__SIGNAL_REQUEST__INIT;
	(void)l;
	if (signo == SIGWINCH)
		return resize(m);
	if (!m->started) {
		/* Nothing to forward to yet: give up on the container, which then
		 * ends as if the signal had killed it (runc kill of a created one). */
		runm_error_t err = NULL;
		runm_error_make(&err, 0, "interrupted by signal %d before the container started", signo);
		fail(m, &err);
		m->exit_status = 128 + signo;
		return;
	}
	req.exec_id = "";
	req.signal = (uint32_t)signo;
	sandbox_call(m->sb, "Signal", &req.base, 10000, 0, NULL, NULL);
}

/* --detach and create: fork the monitor off. With --detach the parent then
 * leaves it running; create's parent goes on (hooks, pid file) with the
 * child's pid in *child. */
static int detach(struct monitor *m, pid_t *child, runm_error_t *err)
{
	if (cli_detach(&m->report_fd, child, err) < 0)
		return -1;
	if (*child > 0 && !m->create_mode)
		_exit(0);
	return 0;
}

/* ---- the monitor service on the control socket ---- */

static void on_start_cancel(struct ttrpc_stream *s, void *data)
{
	struct monitor *m = data;
	(void)s;
	m->start_req = NULL; /* the process still starts: runc start cannot be taken back */
}

static void ctl_start(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	struct monitor *m = ctx;
	(void)p;
	(void)len;
	if (!m->create_mode || m->started || m->start_req)
		return ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "cannot start an already running container");
	if (!m->created || m->done)
		return ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "cannot start a container that is not created");
	m->start_req = s;
	ttrpc_stream_on_cancel(s, on_start_cancel, m);
	begin_start(m);
}

static void pause_or_resume(struct ttrpc_stream *s, struct monitor *m, bool pause)
{
	cleanup_error runm_error_t err = NULL;
	if (!m->started || m->done)
		return ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "container not running");
	if ((pause ? sandbox_pause(m->sb, &err) : sandbox_resume(m->sb, &err)) < 0)
		return ttrpc_reply_error(s, TTRPC_INTERNAL, "%s", runm_error_msg(err));
	/* While its VM is paused the agent cannot answer: state says so from here. */
	write_state(m, pause ? "paused" : "running");
	ttrpc_reply(s, NULL);
}

static void ctl_pause(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	(void)p;
	(void)len;
	pause_or_resume(s, ctx, true);
}

static void ctl_resume(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	(void)p;
	(void)len;
	pause_or_resume(s, ctx, false);
}

static const struct ttrpc_method ctl_methods[] = {
	{ "Start", ctl_start },
	{ "Pause", ctl_pause },
	{ "Resume", ctl_resume },
};

static void register_ctl(struct monitor *m)
{
	m->ctl_svc = (struct ttrpc_service){ CLI_MONITOR_SERVICE, ctl_methods, ARRAY_SIZE(ctl_methods), m };
	ttrpc_server_register(m->ctl, &m->ctl_svc);
}

static void usage(bool create)
{
	if (create)
		fprintf(stderr, "usage: runm create [--bundle DIR] [--pid-file PATH] [--console-socket PATH] ID\n");
	else
		fprintf(stderr, "usage: runm run [--bundle DIR] [--detach] [--pid-file PATH] [--console-socket PATH]\n"
				"                [-p|--publish [IP:][HOSTPORT[-END]:]PORT[-END][/tcp|udp]]... [--host-loopback] ID\n");
}

static void cleanup(struct monitor *m, bool keep_state)
{
	cleanup_error runm_error_t err = NULL;
	m->st.exit_status = m->exit_status;
	if (m->raw)
		tcsetattr(m->tty, TCSANOW, &m->saved);
	if (m->tty >= 0)
		close(m->tty);
	relay_free(m->relay);
	m->relay = NULL;
	if (m->ctl)
		ttrpc_server_free(m->ctl);
	m->ctl = NULL;
	sandbox_free(m->sb);
	m->sb = NULL;
	/* Let deferred closes run before the loop goes. */
	loop_settle(m->loop);
	stage_release_all(m->dir); /* the VM is gone: its staged file binds go too */
	if (keep_state) {
		cleanup_free char *sock = xasprintf("%s/" CLI_SOCKET, m->dir);
		unlink(sock);
		write_state(m, "stopped");
	} else if (rm_rf(m->dir, &err) < 0) {
		log_warn("%s", runm_error_msg(err));
	}
	if (m->pid_file && !keep_state && !m->create_mode)
		unlink(m->pid_file);
	spec_release(&m->spec);
	cli_state_release(&m->st);
	loop_free(m->loop);
	free(m->dir);
}

/* What runc's create can do and a VM cannot, said before anything starts. */
static int check_create(struct monitor *m, runm_error_t *err)
{
	if (m->spec.netns_host && m->spec.network)
		return runm_error_make(err, 0, "host networking (no network namespace in config.json) is not supported: "
					       "the container runs in its own VM");
	if (m->spec.pidns_host)
		return runm_error_make(err, 0, "the host's pid namespace (no pid namespace in config.json) is not "
					       "supported: the container runs in its own VM");
	if (m->spec.n_devices > 0)
		return runm_error_make(err, 0, "host devices (linux.devices: --device, --privileged) are not supported: "
					       "the container runs in its own VM, which has none of the host's devices");
	return entry_check(m->spec.rootfs, m->spec.guest_json, err);
}

/* create: the monitor gets a network namespace of its own when the spec
 * asks for a new one, as runc's init does; the caller configures it through
 * the monitor's pid (Docker's prestart hook) and the VM mirrors it at start. */
static int own_netns(struct monitor *m, runm_error_t *err)
{
	if (!m->spec.netns_new || m->spec.netns_path || !m->spec.network)
		return 0;
	if (unshare(CLONE_NEWNET) < 0)
		return runm_error_make(err, errno, "a network namespace for the container");
	if (netns_loopback_up(err) < 0)
		return -1;
	m->spec.netns_path = xasprintf("/proc/%d/ns/net", (int)getpid());
	m->own_netns = true;
	return 0;
}

/* The parent of create, once the monitor has the container created: the
 * hooks that runc runs in create, then the pid file, written last. */
static int after_create(struct monitor *m, pid_t monitor, runm_error_t *err)
{
	cleanup_free char *state = hooks_state_json(m->st.bundle, m->id, "creating", monitor);
	cleanup_free char *pid = xasprintf("%d", (int)monitor);
	if (hooks_run(m->st.bundle, HOOK_PRESTART, state, err) < 0 ||
	    hooks_run(m->st.bundle, HOOK_CREATE_RUNTIME, state, err) < 0 ||
	    (m->pid_file && write_file_atomic(m->pid_file, pid, strlen(pid), 0644, err) < 0)) {
		/* The monitor gives up on a signal before start, and cleans up. */
		kill(monitor, SIGTERM);
		waitpid(monitor, NULL, 0);
		stage_release_all(m->dir);
		rm_rf(m->dir, NULL);
		return -1;
	}
	return 0;
}

static int monitor_main(const struct cli *cli, int argc, char **argv, bool create)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },	{ "detach", no_argument, NULL, 'd' },
		{ "pid-file", required_argument, NULL, 'i' },	{ "console-socket", required_argument, NULL, 'c' },
		{ "no-pivot", no_argument, NULL, 'P' },	{ "no-new-keyring", no_argument, NULL, 'K' },
		{ "preserve-fds", required_argument, NULL, 'F' }, { "publish", required_argument, NULL, 'p' },
		{ "host-loopback", no_argument, NULL, 'L' },	{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct monitor m = { .report_fd = -1, .tty = -1, .create_mode = create };
	cleanup_error runm_error_t err = NULL;
	const char *bundle = ".";
	bool detached = create, host_loopback = false;
	pid_t child = 0;
	cleanup_strv char **publish = NULL; /* -p values, added to the spec's ports once it is loaded */
	char bundle_abs[PATH_MAX];
	struct sandbox_config cfg = { 0 };
	struct runm_config rc __attribute__((cleanup(config_release))) = { 0 };
	sigset_t sigs;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+b:dp:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': bundle = optarg; break;
		case 'd': detached = true; break;
		case 'i': m.pid_file = optarg; break;
		case 'p':
			if (create)
				goto bad_usage;
			strv_push(&publish, optarg);
			break;
		case 'c': m.console_socket = optarg; break;
		case 'L':
			if (create)
				goto bad_usage;
			host_loopback = true;
			break;
		case 'P':
		case 'K':
		case 'F': break; /* runc flags that mean nothing in a VM (extra fds stay on the host) */
		default: goto bad_usage;
		}
	}
	if (optind != argc - 1)
		goto bad_usage;
	m.id = argv[optind];
	if (!cli_valid_id(m.id))
		return cli_fail("invalid container id `%s`: use letters, digits, '_', '.' and '-'", m.id);
	if (realpath(bundle, bundle_abs) == NULL)
		return cli_fail("bundle `%s`: %s", bundle, strerror(errno));
	if (config_load(RUNM_CONFIG_DEFAULT, true, &rc, &err) < 0 || spec_load(m.id, bundle_abs, &m.spec, &err) < 0 ||
	    (create && check_create(&m, &err) < 0)) {
		spec_release(&m.spec);
		return cli_fail("%s", runm_error_msg(err));
	}
	for (size_t i = 0; publish && publish[i]; i++) {
		if (spec_add_ports(&m.spec, publish[i], "--publish", &err) < 0) {
			spec_release(&m.spec);
			return cli_fail("%s", runm_error_msg(err));
		}
	}
	if (host_loopback)
		m.spec.host_loopback = true;
	if (spec_pick_ports(&m.spec, &err) < 0) {
		spec_release(&m.spec);
		return cli_fail("%s", runm_error_msg(err));
	}
	for (size_t i = 0; i < m.spec.n_ports; i++) {
		cleanup_free char *p = spec_port_string(&m.spec.ports[i]);
		strv_push(&m.st.ports, p);
	}
	m.dir = cli_dir(cli, m.id);
	if (mkdir_p(cli->root, 0700, &err) < 0 || mkdir(m.dir, 0700) < 0) {
		int e = errno;
		spec_release(&m.spec);
		free(m.dir);
		if (err != NULL)
			return cli_fail("%s", runm_error_msg(err));
		if (e == EEXIST)
			return cli_fail("container with id exists: %s", m.id);
		return cli_fail("create `%s`: %s", cli->root, strerror(e));
	}
	m.st.id = xstrdup(m.id);
	m.st.bundle = xstrdup(bundle_abs);
	m.st.created_ns = now_real_ns();
	m.st.monitor_pid = getpid();

	if (detached && detach(&m, &child, &err) < 0)
		goto out;
	if (child > 0) {
		/* create's parent: the monitor runs on without us. */
		int r = after_create(&m, child, &err);
		spec_release(&m.spec);
		cli_state_release(&m.st);
		free(m.dir);
		return r < 0 ? cli_fail("%s", runm_error_msg(err)) : 0;
	}
	m.st.monitor_pid = getpid();
	/* What a caller waits on must not be held by the monitor: with a
	 * console socket the container's stdio is the pty, and create's own
	 * output is read by the caller until EOF (go-runc, buildah). */
	if (create && m.console_socket)
		cli_null_stdio();
	if (create && own_netns(&m, &err) < 0)
		goto out;
	/* The pid that the pid file names: the monitor for create, which a
	 * runc caller waits for; the VMM for run. */
	m.st.host_pid = create ? getpid() : 0;

	cli_forwarded_signals(&sigs);
	if (loop_new(&m.loop, &err) < 0 || loop_signals(m.loop, &sigs, on_signal, &m, &err) < 0)
		goto out;
	/* The first state is how the other commands find the container: one
	 * that cannot be written (a full disk) fails the run before a VM starts. */
	if (write_state_or(&m, "creating", &err) < 0)
		goto out;
	cfg.id = m.id;
	cfg.state_dir = m.dir;
	cfg.spec = &m.spec;
	cfg.network = true;
	cfg.own_netns = m.own_netns;
	cfg.kernel = rc.kernel;
	cfg.initrd = rc.initrd;
	cfg.default_mem_mib = rc.default_mem_mib;
	cfg.default_vcpus = rc.default_vcpus;
	cfg.warm_start = rc.warm_start;
	cfg.net_backend = rc.network;
	if (sandbox_start(m.loop, &cfg, on_ready, on_vmm_exit, &m, &m.sb, &err) < 0)
		goto out;
	loop_run(m.loop);
	if (m.failure)
		err = steal_ptr(&m.failure);

out:
	if (err != NULL) {
		if (m.report_fd >= 0)
			report(&m, runm_error_msg(err));
		else
			cli_fail("%s", runm_error_msg(err));
		if (m.exit_status == 0)
			m.exit_status = 1;
	}
	if (m.loop == NULL && loop_new(&m.loop, NULL) < 0)
		abort();
	cleanup(&m, create ? m.created : detached && m.started);
	return m.exit_status;

bad_usage:
	usage(create);
	return 2;
}

int cmd_run(const struct cli *cli, int argc, char **argv)
{
	return monitor_main(cli, argc, argv, false);
}

int cmd_create(const struct cli *cli, int argc, char **argv)
{
	return monitor_main(cli, argc, argv, true);
}

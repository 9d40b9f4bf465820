/* run.c - `runm run`: the monitor. Boots the container's VM, creates and
 * starts the container, relays its stdio, forwards our signals to it,
 * serves the control socket, and exits with the container's exit status.
 * With --detach it forks into the background once the container runs. */
#include "cli/cli.h"

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "engine/config.h"
#include "engine/create.h"
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
	struct cli_state st;
	char *pid_file;
	char *console_socket;
	int report_fd;   /* --detach: tells the waiting parent "ok" or the error */
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
	if (m->report_fd < 0)
		return;
	if (write_all(m->report_fd, msg, strlen(msg)) < 0)
		log_debug("report to the parent: %s", strerror(errno));
	close(m->report_fd);
	m->report_fd = -1;
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
	maybe_done(m);
}

static void write_state(struct monitor *m, const char *status)
{
	cleanup_error runm_error_t err = NULL;
	free(m->st.status);
	m->st.status = xstrdup(status);
	m->st.vmm_pid = m->sb ? sandbox_vmm_pid(m->sb) : 0;
	if (cli_state_write(m->dir, &m->st, &err) < 0)
		log_warn("%s", runm_error_msg(err));
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
	if (m->pid_file) {
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

static void on_create(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct monitor *m = data;
	runm_error_t err = NULL;
	int fds[3] = { -1, -1, -1 };
	int r;
	(void)payload;
	(void)len;

	if (code != 0) {
		runm_error_make(&err, 0, "creating the container: %s", msg);
		return fail(m, &err);
	}
	write_state(m, "created");
	if (stdio_fds(m, fds, &err) < 0 ||
	    relay_start(m->loop, m->sb, "", fds[0], fds[1], fds[2], on_relay_done, m, &m->relay, &err) < 0)
		return fail(m, &err); /* relay_start closed the fds */
	set_raw(m);
	/* A bundle naming a network namespace: its interface is mirrored into
	 * the VM before the process starts, as the shim does. */
	r = sandbox_mirror_network(m->sb, on_network, m, &err);
	if (r < 0)
		return fail(m, &err);
	if (r == 0)
		start_init(m);
}

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
		/* Nothing to forward to yet: give up on the container. */
		runm_error_t err = NULL;
		runm_error_make(&err, 0, "interrupted by signal %d before the container started", signo);
		return fail(m, &err);
	}
	req.exec_id = "";
	req.signal = (uint32_t)signo;
	sandbox_call(m->sb, "Signal", &req.base, 10000, 0, NULL, NULL);
}

/* --detach: the parent waits for the child's report, then leaves it running. */
static int detach(struct monitor *m, runm_error_t *err)
{
	int p[2];
	pid_t pid;
	char buf[4096];
	ssize_t n;
	size_t got = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe");
	pid = fork();
	if (pid < 0)
		return runm_error_make(err, errno, "fork");
	if (pid == 0) {
		close(p[0]);
		m->report_fd = p[1];
		setsid();
		return 0;
	}
	close(p[1]);
	while (got < sizeof(buf) - 1 && (n = read(p[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(p[0]);
	if (strcmp(buf, "ok") == 0)
		_exit(0);
	fprintf(stderr, "runm: %s\n", got ? buf : "the container monitor died before the container started");
	_exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: runm run [--bundle DIR] [--detach] [--pid-file PATH] [--console-socket PATH]\n"
			"                [-p|--publish [IP:]HOSTPORT:PORT[/tcp|udp]]... ID\n");
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
	if (m->pid_file && !keep_state)
		unlink(m->pid_file);
	spec_release(&m->spec);
	cli_state_release(&m->st);
	loop_free(m->loop);
	free(m->dir);
}

int cmd_run(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },	{ "detach", no_argument, NULL, 'd' },
		{ "pid-file", required_argument, NULL, 'i' },	{ "console-socket", required_argument, NULL, 'c' },
		{ "no-pivot", no_argument, NULL, 'P' },	{ "no-new-keyring", no_argument, NULL, 'K' },
		{ "publish", required_argument, NULL, 'p' },	{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct monitor m = { .report_fd = -1, .tty = -1 };
	cleanup_error runm_error_t err = NULL;
	const char *bundle = ".";
	bool detached = false;
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
		case 'p': strv_push(&publish, optarg); break;
		case 'c': m.console_socket = optarg; break;
		case 'P':
		case 'K': break; /* runc flags that mean nothing in a VM */
		default: usage(); return 2;
		}
	}
	if (optind != argc - 1) {
		usage();
		return 2;
	}
	m.id = argv[optind];
	if (!cli_valid_id(m.id)) {
		fprintf(stderr, "runm: invalid container id `%s`: use letters, digits, '_', '.' and '-'\n", m.id);
		return 1;
	}
	if (realpath(bundle, bundle_abs) == NULL) {
		fprintf(stderr, "runm: bundle `%s`: %s\n", bundle, strerror(errno));
		return 1;
	}
	if (config_load(RUNM_CONFIG_DEFAULT, true, &rc, &err) < 0 || spec_load(bundle_abs, &m.spec, &err) < 0) {
		fprintf(stderr, "runm: %s\n", runm_error_msg(err));
		return 1;
	}
	for (size_t i = 0; publish && publish[i]; i++) {
		if (spec_add_ports(&m.spec, publish[i], "--publish", &err) < 0) {
			fprintf(stderr, "runm: %s\n", runm_error_msg(err));
			spec_release(&m.spec);
			return 1;
		}
	}
	m.dir = cli_dir(cli, m.id);
	if (mkdir_p(cli->root, 0700, &err) < 0 || mkdir(m.dir, 0700) < 0) {
		if (err != NULL)
			fprintf(stderr, "runm: %s\n", runm_error_msg(err));
		else if (errno == EEXIST)
			fprintf(stderr, "runm: container `%s` already exists (runm delete %s)\n", m.id, m.id);
		else
			fprintf(stderr, "runm: create `%s`: %s\n", m.dir, strerror(errno));
		spec_release(&m.spec);
		free(m.dir);
		return 1;
	}
	m.st.id = xstrdup(m.id);
	m.st.bundle = xstrdup(bundle_abs);
	m.st.created_ns = now_real_ns();
	m.st.monitor_pid = getpid();

	if (detached && detach(&m, &err) < 0)
		goto out;
	m.st.monitor_pid = getpid();

	cli_forwarded_signals(&sigs);
	if (loop_new(&m.loop, &err) < 0 || loop_signals(m.loop, &sigs, on_signal, &m, &err) < 0)
		goto out;
	write_state(&m, "creating");
	cfg.id = m.id;
	cfg.state_dir = m.dir;
	cfg.spec = &m.spec;
	cfg.network = true;
	cfg.kernel = rc.kernel;
	cfg.initrd = rc.initrd;
	cfg.default_mem_mib = rc.default_mem_mib;
	cfg.default_vcpus = rc.default_vcpus;
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
			fprintf(stderr, "runm: %s\n", runm_error_msg(err));
		if (m.exit_status == 0)
			m.exit_status = 1;
	}
	if (m.loop == NULL && loop_new(&m.loop, NULL) < 0)
		abort();
	cleanup(&m, detached && m.started);
	return m.exit_status;
}

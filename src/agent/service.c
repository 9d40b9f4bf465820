/* service.c - the agent's RPC handlers: the VM's containers (one, or a
 * pod's: ctr.h) driven through crun; processes and stdio live in proc.c. Every request is untrusted:
 * undecodable payloads, unknown processes and out-of-order calls get an
 * error reply, never a crash. */
#include "service.h"
#include "boot.h"
#include "crun.h"
#include "ctr.h"
#include "dns.h"
#include "net.h"
#include "proc.h"
#include "share.h"
#include "sockproxy.h"
#include "stats.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SHARES "/run/runm/mounts"
#define CRUN_TIMEOUT_MS 60000

static struct loop *svc_loop;
static unsigned exec_seq;

#define UNPACK_OR_FAIL(var, type, desc)                                                        \
	cleanup_pb type *var = PB_UNPACK(type, desc, payload, len);                            \
	if (var == NULL) {                                                                     \
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "cannot decode " #type);          \
		return;                                                                        \
	}

static void reply_err(struct ttrpc_stream *s, int code, runm_error_t *err)
{
	log_warn("%s", runm_error_msg(*err));
	ttrpc_reply_error(s, code, "%s", runm_error_msg(*err));
	runm_error_release(err);
}

static struct ctr *ctr_or_fail(struct ttrpc_stream *s, const char *container_id)
{
	struct ctr *c = ctr_find(container_id);
	if (c == NULL)
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "container `%s` not found in this VM", container_id);
	return c;
}

/* The process exec_id of container container_id (see agent.proto for ""). */
static struct proc *find_or_fail(struct ttrpc_stream *s, const char *container_id, const char *exec_id,
				 struct ctr **out)
{
	struct ctr *c = ctr_or_fail(s, container_id);
	struct proc *p = c ? proc_find(c->id, exec_id) : NULL;
	if (c && p == NULL)
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "process `%s` of %s not found", exec_id, c->id);
	if (out)
		*out = c;
	return p;
}

/* Mix the host's bytes into the input pool, credited (the host's getrandom
 * is as good a source as any the guest has), then reseed the CRNG at once:
 * since Linux 5.18 added input only reaches /dev/urandom at the next
 * scheduled reseed (up to a minute), and until then every VM restored from
 * one template would read the same bytes. */
static void reseed(const uint8_t *bytes, size_t len)
{
	struct {
		int entropy_count;
		int buf_size;
		uint8_t buf[256];
	} e;
	int fd;

	if (len > sizeof(e.buf))
		len = sizeof(e.buf);
	e.entropy_count = (int)len * 8;
	e.buf_size = (int)len;
	memcpy(e.buf, bytes, len);
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		log_warn("reseed: open /dev/urandom: %s", strerror(errno));
		return;
	}
	if (ioctl(fd, RNDADDENTROPY, &e) < 0)
		log_warn("reseed: RNDADDENTROPY: %s", strerror(errno));
	else if (ioctl(fd, RNDRESEEDCRNG) < 0)
		log_warn("reseed: RNDRESEEDCRNG: %s", strerror(errno));
	explicit_bzero(&e, sizeof(e));
	close(fd);
}

static void h_ping(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__PingRequest, runm__agent__v1__ping_request__descriptor);
	Runm__Agent__V1__PingResponse resp = RUNM__AGENT__V1__PING_RESPONSE__INIT;
	struct utsname u;
	(void)ctx;

	/* The guest boots at the epoch without an RTC: take the host's clock. */
	if (req->host_time_ns > now_real_ns() + 1000000000ull) {
		struct timespec ts = { .tv_sec = (time_t)(req->host_time_ns / 1000000000ull),
				       .tv_nsec = (long)(req->host_time_ns % 1000000000ull) };
		clock_settime(CLOCK_REALTIME, &ts);
	}
	if (req->entropy.len > 0)
		reseed(req->entropy.data, req->entropy.len);
	net_announce();
	uname(&u);
	resp.version = (char *)"runm-agent 0.1";
	resp.kernel = u.release;
	ttrpc_reply(s, &resp.base);
}

/* Share destinations must stay inside the agent's own directory. */
static int valid_share_dest(const char *dest)
{
	return strncmp(dest, SHARES "/", strlen(SHARES) + 1) == 0 && strstr(dest, "..") == NULL;
}

static int console_socket(char **path, runm_error_t *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return runm_error_make(err, errno, "socket");
	*path = xasprintf("/run/runm/console-%u.sock", ++exec_seq);
	unlink(*path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", *path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		close(fd);
		return runm_error_make(err, errno, "console socket `%s`", *path);
	}
	return fd;
}

/* crun has already connected and sent the master before exiting: accept at once. */
static int receive_pty(int lfd, runm_error_t *err)
{
	cleanup_close int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	char byte, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm;
	int fd;

	if (c < 0)
		return runm_error_make(err, errno, "accept console socket");
	if (recvmsg(c, &msg, MSG_CMSG_CLOEXEC) < 0)
		return runm_error_make(err, errno, "receive pty from crun");
	cm = CMSG_FIRSTHDR(&msg);
	if (cm == NULL || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return runm_error_make(err, EPROTO, "crun sent no pty");
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

static int read_pid(const char *path, pid_t *pid, runm_error_t *err)
{
	cleanup_free char *text = NULL;
	if (read_file_at(AT_FDCWD, path, 64, &text, NULL, err) < 0)
		return -1;
	*pid = (pid_t)atoi(text);
	unlink(path);
	if (*pid <= 0)
		return runm_error_make(err, 0, "bad pid file `%s`", path);
	return 0;
}

/* Run crun create or exec with the process's stdio or console socket. */
static int crun_spawn(struct proc *p, const char **args, size_t nargs, const char *pidfile, runm_error_t *err)
{
	cleanup_close int lfd = -1;
	cleanup_free char *sock = NULL;
	const char *argv[24];
	size_t n = 0;

	for (size_t i = 0; i < nargs - 1; i++) /* all but the trailing container id */
		argv[n++] = args[i];
	if (p->terminal) {
		lfd = console_socket(&sock, err);
		if (lfd < 0)
			return -1;
		argv[n++] = "--console-socket";
		argv[n++] = sock;
	}
	argv[n++] = "--pid-file";
	argv[n++] = pidfile;
	argv[n++] = args[nargs - 1];
	argv[n] = NULL;
	if (crun_run(argv, p->child_fds, CRUN_TIMEOUT_MS, err) < 0)
		goto fail;
	proc_close_child_fds(p);
	if (read_pid(pidfile, &p->pid, err) < 0)
		goto fail;
	if (p->terminal) {
		int master = receive_pty(lfd, err);
		if (master < 0)
			goto fail;
		proc_set_pty(p, master);
	}
	if (sock)
		unlink(sock);
	return 0;
fail:
	if (sock)
		unlink(sock);
	return -1;
}

static void h_create(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__CreateRequest, runm__agent__v1__create_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	Runm__Agent__V1__CreateResponse resp = RUNM__AGENT__V1__CREATE_RESPONSE__INIT;
	cleanup_free char *rootfs = NULL, *config = NULL, *pidfile = NULL;
	struct proc *p = NULL;
	struct ctr *c;
	(void)ctx;

	if (req->id == NULL || req->id[0] == '\0' || strchr(req->id, '/') || strcmp(req->id, ".") == 0 ||
	    strcmp(req->id, "..") == 0 || strlen(req->id) > 255 || req->rootfs_path[0] == '\0') {
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "create: container id and rootfs share are required");
		return;
	}
	if (ctr_find(req->id)) {
		ttrpc_reply_error(s, TTRPC_ALREADY_EXISTS, "container %s already exists in this VM", req->id);
		return;
	}
	/* The VM is the first container's host: a container without a hostname
	 * of its own (a new UTS namespace inherits ours) is named after itself,
	 * where runc would show the host's name. A pod's sandbox sets its own. */
	if (ctr_count() == 0 && sethostname(req->id, strnlen(req->id, 63)) < 0)
		log_warn("sethostname: %s", strerror(errno));
	c = ctr_new(req->id);
	rootfs = xasprintf("%s/rootfs", c->bundle);
	config = xasprintf("%s/config.json", c->bundle);
	pidfile = xasprintf("%s/init.pid", c->bundle);
	if (share_mount(&err) < 0 || share_bind(req->rootfs_path, rootfs, false, &err) < 0)
		goto fail;
	for (size_t i = 0; i < req->n_mounts; i++) {
		Runm__Agent__V1__Mount *m = req->mounts[i];
		if (!valid_share_dest(m->destination)) {
			runm_error_make(&err, EINVAL, "share destination `%s` outside " SHARES, m->destination);
			goto fail;
		}
		strv_push(&c->mounts, m->destination); /* before the bind: a failed one is undone too */
		if (share_bind(m->path, m->destination, m->readonly, &err) < 0)
			goto fail;
	}
	/* Host sockets: listening before crun binds them into the container. */
	if (sockproxy_listen(svc_loop, c->id, req->sockets, req->n_sockets, &err) < 0)
		goto fail;
	{
		/* With network, the container gets the VM's resolv.conf and hosts (net.h). */
		size_t n = req->config_json.len;
		cleanup_free char *cfg = net_container_config((const char *)req->config_json.data, n, rootfs, &n);
		if (write_file_atomic(config, cfg ? (const void *)cfg : req->config_json.data, n, 0600, &err) < 0)
			goto fail;
	}
	p = proc_new(c->id, "");
	p->terminal = req->terminal;
	if (!req->terminal && proc_make_pipes(p, req->stdin, req->stdout, req->stderr, &err) < 0)
		goto fail;
	{
		/* The guest's root is the initramfs, where pivot_root(2) fails
		 * (EINVAL): crun moves the rootfs and chroots instead. The VM,
		 * not the mount namespace, is the isolation boundary here. */
		const char *args[] = { "create", "--no-pivot", "--bundle", c->bundle, c->id };
		if (crun_spawn(p, args, ARRAY_SIZE(args), pidfile, &err) < 0)
			goto fail;
	}
	p->cgroup = stats_cgroup_of(p->pid); /* crun create put it there */
	resp.pid = (uint32_t)p->pid;
	log_info("created container %s, init pid %d (%zu in this VM)", c->id, p->pid, ctr_count());
	ttrpc_reply(s, &resp.base);
	return;
fail:
	if (p)
		proc_remove(p);
	ctr_remove(c);
	reply_err(s, err && err->status == EINVAL ? TTRPC_INVALID_ARGUMENT : TTRPC_INTERNAL, &err);
}

static void h_start(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__StartRequest, runm__agent__v1__start_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	Runm__Agent__V1__StartResponse resp = RUNM__AGENT__V1__START_RESPONSE__INIT;
	struct ctr *c;
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, &c);
	(void)ctx;

	if (p == NULL)
		return;
	if (p->state != PROC_CREATED) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "process `%s` already started", p->exec_id);
		return;
	}
	if (p->exec_id[0] == '\0') {
		if (crun_start_fifo(CRUN_ROOT, c->id, &err) < 0)
			return reply_err(s, TTRPC_INTERNAL, &err);
	} else {
		cleanup_free char *spec = xasprintf("/run/runm/exec-%u.json", ++exec_seq);
		cleanup_free char *pidf = xasprintf("/run/runm/exec-%u.pid", exec_seq);
		const char *args[] = { "exec", "--detach", "--process", spec, c->id };
		int r;
		if (write_file_atomic(spec, p->process_json, strlen(p->process_json), 0600, &err) < 0)
			return reply_err(s, TTRPC_INTERNAL, &err);
		r = crun_spawn(p, args, ARRAY_SIZE(args), pidf, &err);
		unlink(spec);
		if (r < 0)
			return reply_err(s, TTRPC_INTERNAL, &err);
	}
	/* A process that died before we got here is reaped on the next SIGCHLD pass. */
	if (p->state == PROC_CREATED)
		p->state = PROC_RUNNING;
	resp.pid = (uint32_t)p->pid;
	ttrpc_reply(s, &resp.base);
	proc_reap();
}

static void h_exec(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__ExecRequest, runm__agent__v1__exec_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	struct ctr *c = ctr_or_fail(s, req->container_id);
	struct proc *p;
	(void)ctx;

	if (c == NULL)
		return;
	if (req->exec_id[0] == '\0' || proc_find(c->id, req->exec_id)) {
		ttrpc_reply_error(s, TTRPC_ALREADY_EXISTS, "exec id `%s` already in use in %s", req->exec_id, c->id);
		return;
	}
	p = proc_new(c->id, req->exec_id);
	p->terminal = req->terminal;
	p->process_json = xstrndup((const char *)req->process_json.data, req->process_json.len);
	if (!req->terminal && proc_make_pipes(p, req->stdin, req->stdout, req->stderr, &err) < 0) {
		proc_remove(p);
		return reply_err(s, TTRPC_INTERNAL, &err);
	}
	ttrpc_reply(s, NULL);
}

static void h_signal(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__SignalRequest, runm__agent__v1__signal_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	struct ctr *c;
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, &c);
	(void)ctx;

	if (p == NULL)
		return;
	if (req->signal == 0 || req->signal >= 65) {
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "bad signal %u", req->signal);
		return;
	}
	if (p->state != PROC_RUNNING && !(req->all && p->exec_id[0] == '\0')) {
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "process `%s` is not running", p->exec_id);
		return;
	}
	if (req->all && p->exec_id[0] == '\0') {
		cleanup_free char *sig = xasprintf("%u", req->signal);
		const char *args[] = { "kill", "--all", c->id, sig, NULL };
		if (crun_run(args, (int[3]){ -1, -1, -1 }, CRUN_TIMEOUT_MS, &err) < 0)
			return reply_err(s, TTRPC_INTERNAL, &err);
	} else if (kill(p->pid, (int)req->signal) < 0) {
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "signal process `%s`: %s", p->exec_id, strerror(errno));
		return;
	}
	ttrpc_reply(s, NULL);
}

static void h_wait(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__WaitRequest, runm__agent__v1__wait_request__descriptor);
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, NULL);
	(void)ctx;
	if (p)
		proc_add_waiter(p, s);
}

static void h_resize(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__ResizeRequest, runm__agent__v1__resize_request__descriptor);
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, NULL);
	struct winsize ws = { 0 };
	(void)ctx;

	if (p == NULL)
		return;
	if (p->pty < 0) {
		ttrpc_reply(s, NULL); /* containerd resizes non-terminal processes too: not an error */
		return;
	}
	ws.ws_col = (unsigned short)req->width;
	ws.ws_row = (unsigned short)req->height;
	if (ioctl(p->pty, TIOCSWINSZ, &ws) < 0) {
		ttrpc_reply_error(s, TTRPC_INTERNAL, "resize: %s", strerror(errno));
		return;
	}
	ttrpc_reply(s, NULL);
}

static void h_close_stdin(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__CloseStdinRequest, runm__agent__v1__close_stdin_request__descriptor);
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, NULL);
	(void)ctx;
	if (p == NULL)
		return;
	proc_close_stdin(p);
	ttrpc_reply(s, NULL);
}

static void h_stdio(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__StdioRequest, runm__agent__v1__stdio_request__descriptor);
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, NULL);
	(void)ctx;
	if (p)
		proc_attach_stdio(p, s);
}

static void h_state(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__StateRequest, runm__agent__v1__state_request__descriptor);
	Runm__Agent__V1__StateResponse resp = RUNM__AGENT__V1__STATE_RESPONSE__INIT;
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, NULL);
	(void)ctx;
	if (p == NULL)
		return;
	resp.status = (Runm__Agent__V1__StateResponse__Status)p->state;
	resp.pid = (uint32_t)p->pid;
	resp.exit_status = (uint32_t)p->exit_status;
	ttrpc_reply(s, &resp.base);
}

static void h_pids(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__ContainerRequest, runm__agent__v1__container_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	struct ctr *c = ctr_or_fail(s, req->container_id);
	cleanup_free char *out = NULL;
	Runm__Agent__V1__PidsResponse resp = RUNM__AGENT__V1__PIDS_RESPONSE__INIT;
	Runm__Agent__V1__ProcessInfo infos[256], *ptrs[256];
	char comms[256][32];
	const char *args[] = { "ps", "--format", "json", c ? c->id : "", NULL };
	(void)ctx;

	if (c == NULL)
		return;
	if (crun_output(args, 1 << 20, &out, CRUN_TIMEOUT_MS, &err) < 0)
		return reply_err(s, TTRPC_INTERNAL, &err);
	/* crun prints a JSON array of pids: pick the numbers out. */
	for (char *q = out; *q && resp.n_processes < ARRAY_SIZE(infos);) {
		char *end;
		long pid = strtol(q, &end, 10);
		if (end == q) {
			q++;
			continue;
		}
		q = end;
		{
			size_t i = resp.n_processes++;
			cleanup_free char *path = xasprintf("/proc/%ld/comm", pid);
			cleanup_free char *comm = NULL;
			runm__agent__v1__process_info__init(&infos[i]);
			infos[i].pid = (uint32_t)pid;
			comms[i][0] = '\0';
			if (read_file_at(AT_FDCWD, path, 64, &comm, NULL, NULL) == 0)
				snprintf(comms[i], sizeof(comms[i]), "%.*s", (int)strcspn(comm, "\n"), comm);
			infos[i].command = comms[i];
			ptrs[i] = &infos[i];
		}
	}
	resp.processes = ptrs;
	ttrpc_reply(s, &resp.base);
}

static void h_stats(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__ContainerRequest, runm__agent__v1__container_request__descriptor);
	Runm__Agent__V1__StatsResponse resp = RUNM__AGENT__V1__STATS_RESPONSE__INIT;
	struct ctr *c = ctr_or_fail(s, req->container_id);
	struct proc *init = c ? proc_find(c->id, "") : NULL;
	(void)ctx;

	if (c == NULL)
		return;
	stats_collect(init && init->state != PROC_STOPPED ? init->pid : 0, &resp);
	ttrpc_reply(s, &resp.base);
}

static void h_delete(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__DeleteRequest, runm__agent__v1__delete_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	struct ctr *c;
	struct proc *p = find_or_fail(s, req->container_id, req->exec_id, &c);
	(void)ctx;

	if (p == NULL)
		return;
	if (p->state == PROC_RUNNING) {
		ttrpc_reply_error(s, TTRPC_FAILED_PRECONDITION, "process `%s` is still running", p->exec_id);
		return;
	}
	if (p->exec_id[0] == '\0') {
		const char *args[] = { "delete", "--force", c->id, NULL };
		if (crun_run(args, (int[3]){ -1, -1, -1 }, CRUN_TIMEOUT_MS, &err) < 0)
			log_warn("%s", runm_error_msg(err));
		log_info("deleted container %s", c->id);
		/* The execs went with the container's pid namespace (or its cgroup). */
		proc_remove_container(c->id);
		ctr_remove(c);
	} else {
		proc_remove(p);
	}
	ttrpc_reply(s, NULL);
}

static void poweroff_now(struct loop *l, void *data)
{
	(void)l;
	(void)data;
	log_info("powering off");
	boot_poweroff();
}

static void poweroff_drained(struct ttrpc_conn *c, void *data)
{
	(void)c;
	poweroff_now(svc_loop, data);
}

static void h_shutdown(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	struct ttrpc_conn *c = ttrpc_stream_conn(s);
	(void)payload;
	(void)len;
	(void)ctx;
	ttrpc_reply(s, NULL);
	/* Power off once the reply left; the timer covers a host that stopped reading. */
	if (c)
		ttrpc_conn_on_drain(c, poweroff_drained, NULL);
	loop_timer_add(svc_loop, 1000, poweroff_now, NULL);
}

static void h_network(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__NetworkRequest, runm__agent__v1__network_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	(void)ctx;

	if (net_configure(req->address, req->gateway, req->mtu, req->mac, &err) < 0)
		return reply_err(s, TTRPC_INVALID_ARGUMENT, &err);
	ttrpc_reply(s, NULL);
}

static void h_dns_relay(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__DnsRelayRequest, runm__agent__v1__dns_relay_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	(void)ctx;

	/* On success dns.c owns the stream and answers it when the relay ends. */
	if (dns_relay_start(svc_loop, s, req->listen, req->port, &err) < 0)
		reply_err(s, err->status == EEXIST ? TTRPC_ALREADY_EXISTS : TTRPC_INVALID_ARGUMENT, &err);
}

static void h_socket_proxy(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	UNPACK_OR_FAIL(req, Runm__Agent__V1__SocketProxyRequest, runm__agent__v1__socket_proxy_request__descriptor);
	cleanup_error runm_error_t err = NULL;
	struct ctr *c = ctr_or_fail(s, req->container_id);
	(void)ctx;

	/* On success sockproxy.c owns the stream and answers it when the connection ends. */
	if (c && sockproxy_attach(s, c->id, req->index, &err) < 0)
		ttrpc_reply_error(s, err->status == ENOSPC ? TTRPC_RESOURCE_EXHAUSTED : TTRPC_NOT_FOUND, "%s",
				  runm_error_msg(err));
}

static const struct ttrpc_method methods[] = {
	{ "Ping", h_ping },	      { "Create", h_create }, { "Start", h_start },
	{ "Exec", h_exec },	      { "Signal", h_signal }, { "Wait", h_wait },
	{ "Resize", h_resize },	      { "CloseStdin", h_close_stdin }, { "Stdio", h_stdio },
	{ "State", h_state },	      { "Pids", h_pids },     { "Stats", h_stats },
	{ "Delete", h_delete },	      { "Shutdown", h_shutdown }, { "Network", h_network },
	{ "DnsRelay", h_dns_relay },  { "SocketProxy", h_socket_proxy },
};

static const struct ttrpc_service agent_service = {
	.name = AGENT_SERVICE,
	.methods = methods,
	.n_methods = ARRAY_SIZE(methods),
};

void agent_service_register(struct ttrpc_server *srv, struct loop *loop)
{
	svc_loop = loop;
	proc_table_init(loop);
	ttrpc_server_register(srv, &agent_service);
}

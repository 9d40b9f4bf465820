/* exec.c - `runm exec`: run one more process in a running container,
 * through its monitor's control socket, with our stdio attached and our
 * signals forwarded; exits with the process's exit status. runc's form for
 * its callers: `--process FILE` (an OCI process object), `--console-socket`,
 * and `--detach --pid-file P`, which leaves a forked exec monitor behind,
 * named by P, that holds the process's stdio and exits with its status. */
#include "cli/cli.h"

#include "cli/session.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/relay.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* How long output may stay open after the process exited (a background
 * child holding it): then we stop waiting for it, as the shim does. */
#define EXEC_DRAIN_MS 5000

struct exec {
	struct session *s;
	struct loop_timer *drain;
	char exec_id[64];
	struct relay *relay;
	int tty;
	int report_fd; /* --detach: "ok" to the waiting parent once the process runs */
	bool started, waited, relayed, done;
	int status;
	runm_error_t failure;
};

static void finish(struct exec *x, int status, runm_error_t *err)
{
	if (x->done)
		return;
	x->done = true;
	x->status = status;
	if (err)
		x->failure = steal_ptr(err);
	loop_quit(x->s->loop);
}

static void drain_deadline(struct loop *l, void *data)
{
	struct exec *x = data;
	(void)l;
	x->drain = NULL;
	log_warn("output of %s still open %d ms after it exited: not waiting for it", x->exec_id, EXEC_DRAIN_MS);
	finish(x, x->status, NULL);
}

static void on_wait(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct exec *x = data;
	cleanup_pb Runm__Agent__V1__WaitResponse *resp = NULL;
	runm_error_t err = NULL;
	if (code != 0 || (resp = PB_UNPACK(Runm__Agent__V1__WaitResponse, runm__agent__v1__wait_response__descriptor,
					   payload, len)) == NULL) {
		runm_error_make(&err, 0, "waiting for process %s: %s", x->exec_id, code ? msg : "bad reply");
		return finish(x, 1, &err);
	}
	x->status = (int)(resp->exit_status > 255 ? 255 : resp->exit_status);
	x->waited = true;
	if (x->relayed)
		finish(x, x->status, NULL);
	else
		x->drain = loop_timer_add(x->s->loop, EXEC_DRAIN_MS, drain_deadline, x);
}

static void on_relay_done(struct relay *r, runm_error_t *err, void *data)
{
	struct exec *x = data;
	(void)r;
	(void)err;
	x->relayed = true;
	if (x->waited) {
		loop_timer_cancel(x->drain);
		x->drain = NULL;
		finish(x, x->status, NULL);
	}
}

static void resize(struct exec *x)
{
	Runm__Agent__V1__ResizeRequest req = RUNM__AGENT__V1__RESIZE_REQUEST__INIT;
	struct winsize ws;
	if (x->tty < 0 || x->s->conn == NULL || ioctl(x->tty, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
		return;
	req.exec_id = x->exec_id;
	req.width = ws.ws_col;
	req.height = ws.ws_row;
	ttrpc_call(x->s->conn, AGENT_SERVICE, "Resize", &req.base, 10000, 0, NULL, NULL);
}

static void on_start(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct exec *x = data;
	Runm__Agent__V1__WaitRequest req = RUNM__AGENT__V1__WAIT_REQUEST__INIT;
	runm_error_t err = NULL;
	(void)payload;
	(void)len;
	if (code != 0) {
		runm_error_make(&err, 0, "starting process %s: %s", x->exec_id, msg);
		return finish(x, 1, &err);
	}
	x->started = true;
	cli_report(&x->report_fd, "ok");
	resize(x);
	req.exec_id = x->exec_id;
	ttrpc_call(x->s->conn, AGENT_SERVICE, "Wait", &req.base, 0, 0, on_wait, x);
}

static void on_signal(struct loop *l, int signo, void *data)
{
	struct exec *x = data;
	Runm__Agent__V1__SignalRequest req = RUNM__AGENT__V1__SIGNAL_REQUEST__INIT;
	(void)l;
	if (signo == SIGWINCH)
		return resize(x);
	if (!x->started || x->s->conn == NULL)
		return;
	req.exec_id = x->exec_id;
	req.signal = (uint32_t)signo;
	ttrpc_call(x->s->conn, AGENT_SERVICE, "Signal", &req.base, 10000, 0, NULL, NULL);
}

/* The process: the container's own process settings (env, cwd, user) from
 * its bundle, with our arguments and overrides. */
static char *process_json(const struct cli_state *st, char **args, int nargs, bool tty, char **env, size_t nenv,
			  const char *cwd, const char *user, runm_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/config.json", st->bundle);
	json_object *cfg = json_object_from_file(path), *proc = NULL, *p, *a, *e;
	char *out;

	if (cfg && json_object_object_get_ex(cfg, "process", &proc) && json_object_is_type(proc, json_type_object))
		p = json_object_get(proc);
	else
		p = json_object_new_object();
	json_object_put(cfg);
	a = json_object_new_array();
	for (int i = 0; i < nargs; i++)
		json_object_array_add(a, json_object_new_string(args[i]));
	json_object_object_add(p, "args", a);
	json_object_object_add(p, "terminal", json_object_new_boolean(tty));
	json_object_object_del(p, "consoleSize");
	if (!json_object_object_get_ex(p, "env", &e) || !json_object_is_type(e, json_type_array)) {
		e = json_object_new_array();
		json_object_array_add(e, json_object_new_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
		json_object_object_add(p, "env", e);
	}
	for (size_t i = 0; i < nenv; i++)
		json_object_array_add(e, json_object_new_string(env[i]));
	if (cwd)
		json_object_object_add(p, "cwd", json_object_new_string(cwd));
	else if (!json_object_object_get_ex(p, "cwd", NULL))
		json_object_object_add(p, "cwd", json_object_new_string("/"));
	if (user) {
		unsigned uid, gid = 0;
		json_object *u = json_object_new_object();
		if (sscanf(user, "%u:%u", &uid, &gid) < 1) {
			json_object_put(u);
			json_object_put(p);
			return runm_error_make(err, 0, "--user `%s`: expected UID[:GID]", user), NULL;
		}
		json_object_object_add(u, "uid", json_object_new_int64(uid));
		json_object_object_add(u, "gid", json_object_new_int64(gid));
		json_object_object_add(p, "user", u);
	}
	out = xstrdup(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
	json_object_put(p);
	return out;
}

/* --process FILE: runc's process.json, passed on as it is (the caller
 * wrote every field); its terminal field says whether it wants a tty. */
static char *read_process(const char *path, bool *tty, runm_error_t *err)
{
	cleanup_free char *buf = NULL;
	json_object *o, *t;
	size_t len;
	char *out;

	if (read_file_at(AT_FDCWD, path, 1 << 20, &buf, &len, err) < 0)
		return runm_error_wrap(err, "--process"), NULL;
	o = json_tokener_parse(buf);
	if (o == NULL || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "args", &t) ||
	    !json_object_is_type(t, json_type_array) || json_object_array_length(t) == 0) {
		json_object_put(o);
		return runm_error_make(err, 0, "--process `%s`: not an OCI process with args", path), NULL;
	}
	if (json_object_object_get_ex(o, "terminal", &t) && json_object_get_boolean(t))
		*tty = true;
	json_object_object_add(o, "terminal", json_object_new_boolean(*tty));
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

/* The process's stdio: a console-socket pty, our terminal, or our fds. */
static int exec_stdio(struct exec *x, bool tty, const char *console, int fds[3], runm_error_t *err)
{
	if (console) {
		if (!tty)
			return runm_error_make(err, 0, "--console-socket needs a terminal (--tty or process.terminal)");
		if (cli_console_socket(console, &x->tty, err) < 0)
			return -1;
		/* Our own session's controlling tty: a resize sends us SIGWINCH. */
		if (getsid(0) == getpid() && ioctl(x->tty, TIOCSCTTY, 0) < 0)
			log_debug("console as controlling terminal: %s", strerror(errno));
	} else if (tty) {
		if (!isatty(STDIN_FILENO))
			return runm_error_make(err, 0, "--tty needs a terminal on stdin");
		x->tty = cli_reopen_stdio(STDIN_FILENO, O_RDWR);
	}
	if (x->tty >= 0) {
		fds[0] = fcntl(x->tty, F_DUPFD_CLOEXEC, 3);
		fds[1] = fcntl(x->tty, F_DUPFD_CLOEXEC, 3);
		return 0;
	}
	fds[0] = cli_reopen_stdio(STDIN_FILENO, O_RDONLY);
	fds[1] = cli_reopen_stdio(STDOUT_FILENO, O_WRONLY);
	fds[2] = cli_reopen_stdio(STDERR_FILENO, O_WRONLY);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: runm exec [-t] [-e KEY=VALUE]... [--cwd DIR] [-u UID[:GID]] ID [--] CMD [ARG]...\n"
			"       runm exec --process FILE [--detach --pid-file PATH] [--console-socket PATH] ID\n");
}

int cmd_exec(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tty", no_argument, NULL, 't' },	     { "env", required_argument, NULL, 'e' },
		{ "cwd", required_argument, NULL, 'c' },   { "user", required_argument, NULL, 'u' },
		{ "interactive", no_argument, NULL, 'i' }, { "process", required_argument, NULL, 'p' },
		{ "detach", no_argument, NULL, 'd' },	     { "pid-file", required_argument, NULL, 'P' },
		{ "console-socket", required_argument, NULL, 'C' }, { "preserve-fds", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	Runm__Agent__V1__ExecRequest req = RUNM__AGENT__V1__EXEC_REQUEST__INIT;
	Runm__Agent__V1__StartRequest sreq = RUNM__AGENT__V1__START_REQUEST__INIT;
	Runm__Agent__V1__DeleteRequest dreq = RUNM__AGENT__V1__DELETE_REQUEST__INIT;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *pjson = NULL, *dir = NULL;
	cleanup_strv char **env = NULL;
	struct exec x = { .tty = -1, .report_fd = -1 };
	struct cli_state st = { 0 };
	const char *cwd = NULL, *user = NULL, *id, *process = NULL, *pid_file = NULL, *console = NULL;
	struct termios saved;
	bool tty = false, raw = false, detach = false;
	int fds[3] = { -1, -1, -1 }, c;
	pid_t child = 0;
	sigset_t sigs;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+te:c:u:id", opts, NULL)) != -1) {
		switch (c) {
		case 't': tty = true; break;
		case 'e': strv_push(&env, optarg); break;
		case 'c': cwd = optarg; break;
		case 'u': user = optarg; break;
		case 'p': process = optarg; break;
		case 'd': detach = true; break;
		case 'P': pid_file = optarg; break;
		case 'C': console = optarg; break;
		case 'i':
		case 'F': break;
		default: usage(); return 2;
		}
	}
	if (argc - optind < (process ? 1 : 2)) {
		usage();
		return 2;
	}
	id = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (process == NULL && optind >= argc) {
		usage();
		return 2;
	}
	dir = cli_valid_id(id) ? cli_dir(cli, id) : NULL;
	if (dir == NULL || cli_state_read(dir, &st, &err) < 0 || !cli_monitor_alive(&st) ||
	    strcmp(st.status, "stopped") == 0) {
		cli_state_release(&st);
		return cli_fail("container not running: %s", id);
	}
	if (process)
		pjson = read_process(process, &tty, &err);
	else
		pjson = process_json(&st, argv + optind, argc - optind, tty, env, strv_len(env), cwd, user, &err);
	cli_state_release(&st);
	if (pjson == NULL)
		goto out;
	/* Read everything the caller gave (it deletes the process file as soon
	 * as we return), then leave the exec monitor behind. */
	if (detach && cli_detach(&x.report_fd, &child, &err) < 0)
		goto out;
	if (child > 0) {
		cleanup_free char *pid = xasprintf("%d", (int)child);
		if (pid_file && write_file_atomic(pid_file, pid, strlen(pid), 0644, &err) < 0) {
			kill(child, SIGKILL);
			goto out;
		}
		return 0;
	}
	if (session_open(cli, id, &x.s, &err) < 0)
		goto out;

	snprintf(x.exec_id, sizeof(x.exec_id), "exec-%d-%llu", (int)getpid(), (unsigned long long)now_mono_ns() % 1000000);
	if (exec_stdio(&x, tty, console, fds, &err) < 0)
		goto out;
	/* Detached, the caller waits for EOF on what it handed us: only the
	 * relay may hold it now. */
	if (detach)
		cli_null_stdio();
	req.exec_id = x.exec_id;
	req.process_json.data = (uint8_t *)pjson;
	req.process_json.len = strlen(pjson);
	req.terminal = tty;
	req.stdin = req.stdout = true;
	req.stderr = !tty;
	if (session_call(x.s, "Exec", &req.base, 60000, NULL, NULL, &err) < 0) {
		runm_error_wrap(&err, "exec failed");
		goto out;
	}
	c = relay_start_conn(x.s->loop, x.s->conn, "", x.exec_id, fds[0], fds[1], fds[2], on_relay_done, &x, &x.relay,
			     &err);
	fds[0] = fds[1] = fds[2] = -1; /* the relay's now, or closed by it on failure */
	if (c < 0)
		goto out;

	cli_forwarded_signals(&sigs);
	if (loop_signals(x.s->loop, &sigs, on_signal, &x, &err) < 0)
		goto out;
	if (console == NULL)
		raw = cli_tty_raw(x.tty, &saved);
	sreq.exec_id = x.exec_id;
	ttrpc_call(x.s->conn, AGENT_SERVICE, "Start", &sreq.base, 60000, 0, on_start, &x);
	loop_run(x.s->loop);
	if (raw)
		tcsetattr(x.tty, TCSANOW, &saved);
	if (x.failure)
		err = steal_ptr(&x.failure);
	dreq.exec_id = x.exec_id;
	relay_free(x.relay);
	x.relay = NULL;
	if (x.s->conn) {
		cleanup_error runm_error_t derr = NULL;
		session_call(x.s, "Delete", &dreq.base, 10000, NULL, NULL, &derr);
	}

out:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (x.tty >= 0)
		close(x.tty);
	relay_free(x.relay);
	session_close(x.s);
	if (err) {
		if (x.report_fd >= 0)
			cli_report(&x.report_fd, runm_error_msg(err));
		else
			cli_fail("%s", runm_error_msg(err));
		return x.status ? x.status : 1;
	}
	return x.status;
}

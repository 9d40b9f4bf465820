/* cli.h - the runm command line: runc's syntax over runm's engine. Each
 * container has a directory <root>/<id> holding state.json, the monitor's
 * control socket and the VM's files. The monitor is the `runm run` process
 * itself (in the foreground, or forked into the background with --detach):
 * it owns the VM and serves the agent API on the control socket, proxied to
 * the guest, so `runm exec/kill/state` talk to the agent as the monitor does. */
#ifndef RUNM_CLI_H
#define RUNM_CLI_H

#include "common/error.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <termios.h>

#define CLI_SOCKET "runm.sock"
#define CLI_STATE "state.json"
/* The monitor's own service on its control socket, beside the proxied
 * agent API: Start (runm start of a created container), Pause, Resume.
 * Requests and replies are runm.agent.v1.Empty. */
#define CLI_MONITOR_SERVICE "runm.monitor.v1.Monitor"

struct cli {
	const char *root; /* --root, default /run/runm (or $XDG_RUNTIME_DIR/runm) */
	bool debug;
	int log_fd;       /* --log, or -1: errors are also appended there (runc's JSON lines) */
};

/* What state.json records. status: "created", "running" or "stopped". */
struct cli_state {
	char *id;
	char *bundle;
	char *status;
	pid_t monitor_pid;
	pid_t vmm_pid;
	pid_t pid; /* the container's init inside the guest */
	pid_t host_pid; /* what the pid file names (create: the monitor), 0 = the VMM */
	int exit_status;
	uint64_t created_ns;
	char **ports; /* published ports as bound ("IP:HOSTPORT->PORT/PROTO"), NULL-terminated or NULL */
};

/* Commands: argv[0] is the command name; they return the process exit code. */
int cmd_run(const struct cli *cli, int argc, char **argv);
int cmd_exec(const struct cli *cli, int argc, char **argv);
int cmd_kill(const struct cli *cli, int argc, char **argv);
int cmd_state(const struct cli *cli, int argc, char **argv);
int cmd_delete(const struct cli *cli, int argc, char **argv);
int cmd_list(const struct cli *cli, int argc, char **argv);
/* runc's lifecycle for Docker, Podman and Buildah (run.c, start.c, runc.c) */
int cmd_create(const struct cli *cli, int argc, char **argv);
int cmd_start(const struct cli *cli, int argc, char **argv);
int cmd_ps(const struct cli *cli, int argc, char **argv);
int cmd_pause(const struct cli *cli, int argc, char **argv);
int cmd_resume(const struct cli *cli, int argc, char **argv);
int cmd_events(const struct cli *cli, int argc, char **argv);
int cmd_update(const struct cli *cli, int argc, char **argv);
int cmd_features(const struct cli *cli, int argc, char **argv);

/* client.c: read a container's state, or say why not (cli_fail) and -1;
 * its status now ("stopped" once the monitor is gone). */
int cli_load(const struct cli *cli, const char *id, struct cli_state *st);
char *cli_live_status(const struct cli *cli, const char *id, struct cli_state *st);

/* main.c: print "runm: MSG" on stderr and append it to --log as an error
 * line (what containerd's runc shim shows the user). Returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* detach.c: fork; the child (*child = 0) leads a new session and reports
 * through *report_fd with cli_report ("ok", or the error); the parent
 * (*child = its pid) returns once the child said "ok", else fails with the
 * child's message. */
int cli_detach(int *report_fd, pid_t *child, runm_error_t *err);
void cli_report(int *report_fd, const char *msg);
/* Point fds 0-2 at /dev/null: a monitor must not hold what its caller
 * waits to see closed. */
void cli_null_stdio(void);
int cmd_check(const struct cli *cli, int argc, char **argv);

/* state.c */
bool cli_valid_id(const char *id);
char *cli_dir(const struct cli *cli, const char *id);
int cli_state_write(const char *dir, const struct cli_state *st, runm_error_t *err);
int cli_state_read(const char *dir, struct cli_state *st, runm_error_t *err);
void cli_state_release(struct cli_state *st);
/* Whether the monitor recorded in st is still alive. */
bool cli_monitor_alive(const struct cli_state *st);

/* proxy.c: serve the agent API on <dir>/runm.sock, forwarded to sb. */
struct loop;
struct sandbox;
struct ttrpc_server;
int cli_proxy_start(struct loop *loop, struct sandbox *sb, const char *dir, struct ttrpc_server **out,
		    runm_error_t *err);

/* term.c: the signals an attached command forwards to the container (and
 * SIGPIPE ignored); raw mode on a tty (false if not a tty); runc's console
 * socket: a new pty whose master is sent over the unix socket at path, the
 * slave returned for the relay. */
void cli_forwarded_signals(sigset_t *set);
bool cli_tty_raw(int fd, struct termios *saved);
int cli_console_socket(const char *path, int *slave, runm_error_t *err);

/* state.c: open a private file description for one of our stdio fds, so that
 * making it non-blocking does not change it for the shell we share it with. */
int cli_reopen_stdio(int fd, int flags);
/* Parse a signal name (TERM, SIGTERM) or number; -1 if unknown. */
int cli_parse_signal(const char *s);

#endif

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

struct cli {
	const char *root; /* --root, default /run/runm (or $XDG_RUNTIME_DIR/runm) */
	bool debug;
};

/* What state.json records. status: "created", "running" or "stopped". */
struct cli_state {
	char *id;
	char *bundle;
	char *status;
	pid_t monitor_pid;
	pid_t vmm_pid;
	pid_t pid; /* the container's init inside the guest */
	int exit_status;
	uint64_t created_ns;
};

/* Commands: argv[0] is the command name; they return the process exit code. */
int cmd_run(const struct cli *cli, int argc, char **argv);
int cmd_exec(const struct cli *cli, int argc, char **argv);
int cmd_kill(const struct cli *cli, int argc, char **argv);
int cmd_state(const struct cli *cli, int argc, char **argv);
int cmd_delete(const struct cli *cli, int argc, char **argv);
int cmd_list(const struct cli *cli, int argc, char **argv);
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

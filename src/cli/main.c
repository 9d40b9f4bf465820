/* main.c - `runm`: runc's global flags, the command table, and errors as
 * runc reports them (stderr, and JSON lines appended to --log). */
#include "cli/cli.h"

#include "common/log.h"

#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RUNM_VERSION
#define RUNM_VERSION "0.2.0"
#endif
#ifndef RUNM_COMMIT
#define RUNM_COMMIT "unknown"
#endif

static const struct {
	const char *name;
	int (*fn)(const struct cli *, int, char **);
	const char *help;
} commands[] = {
	{ "run", cmd_run, "create and run a container in its own VM" },
	{ "create", cmd_create, "create a container in its own VM (runc: start it with `start`)" },
	{ "start", cmd_start, "start a created container" },
	{ "exec", cmd_exec, "run a new process inside a running container" },
	{ "kill", cmd_kill, "send a signal to the container's init (or all processes)" },
	{ "state", cmd_state, "print a container's state as JSON" },
	{ "delete", cmd_delete, "delete a stopped container (--force: a running one)" },
	{ "list", cmd_list, "list containers" },
	{ "ps", cmd_ps, "list the host processes of a container" },
	{ "pause", cmd_pause, "pause a container (its whole VM)" },
	{ "resume", cmd_resume, "resume a paused container" },
	{ "events", cmd_events, "print a container's resource usage (--stats)" },
	{ "update", cmd_update, "update a container's resource limits" },
	{ "features", cmd_features, "print what this runtime supports, as JSON" },
	{ "check", cmd_check, "whether runm can run containers here, and with what (--accel: its name)" },
};

static int log_fd = -1;

int cli_fail(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "runm: %s\n", buf);
	if (log_fd >= 0)
		log_error("%s", buf); /* only to --log, see main */
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: runm [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [ARGS]\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nrunm runs each container of an OCI bundle in its own micro-VM. See README.md.\n");
}

static char *default_root(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *r;
	if (geteuid() == 0 || xdg == NULL)
		return strdup("/run/runm");
	if (asprintf(&r, "%s/runm", xdg) < 0)
		abort();
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },	  { "debug", no_argument, NULL, 'D' },
		{ "log", required_argument, NULL, 'l' },	  { "log-format", required_argument, NULL, 'f' },
		{ "systemd-cgroup", no_argument, NULL, 's' }, { "rootless", required_argument, NULL, 's' },
		{ "criu", required_argument, NULL, 's' },	  { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },	  { NULL, 0, NULL, 0 },
	};
	struct cli cli = { .log_fd = -1 };
	char *root = NULL;
	const char *log_path = NULL;
	bool json = false;
	int c, rc;

	/* A caller that closes our output early (podman reading state) must
	 * not kill us halfway through. */
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "+hv", opts, NULL)) != -1) {
		switch (c) {
		case 'r': free(root); root = strdup(optarg); break;
		case 'D': cli.debug = true; break;
		case 'l': log_path = optarg; break;
		case 'f':
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
				fprintf(stderr, "runm: --log-format `%s`: text or json\n", optarg);
				return 2;
			}
			json = strcmp(optarg, "json") == 0;
			break;
		case 's': break; /* accepted for runc compatibility: cgroups and checkpoints live in the guest */
		case 'v':
			printf("runm version " RUNM_VERSION "\ncommit: " RUNM_COMMIT "\nspec: 1.0.2-dev\n");
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	log_init("runm", cli.debug || getenv("RUNM_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	if (log_path) {
		log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			fprintf(stderr, "runm: --log `%s`: %m\n", log_path);
			return 1;
		}
		/* Log lines go to the file alone: our stderr may be the container's. */
		log_to_fd(log_fd, json, true);
		cli.log_fd = log_fd;
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cli.root = root ? root : (root = default_root());
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			rc = commands[i].fn(&cli, argc - optind, argv + optind);
			free(root);
			return rc;
		}
	}
	cli_fail("unknown command `%s`", argv[optind]);
	usage(stderr);
	free(root);
	return 2;
}

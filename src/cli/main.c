/* main.c - `runm`: global flags and the command table. */
#include "cli/cli.h"

#include "common/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
	const char *name;
	int (*fn)(const struct cli *, int, char **);
	const char *help;
} commands[] = {
	{ "run", cmd_run, "create and run a container in its own VM" },
	{ "exec", cmd_exec, "run a new process inside a running container" },
	{ "kill", cmd_kill, "send a signal to the container's init (or all processes)" },
	{ "state", cmd_state, "print a container's state as JSON" },
	{ "delete", cmd_delete, "delete a stopped container (--force: a running one)" },
	{ "list", cmd_list, "list containers" },
	{ "check", cmd_check, "whether runm can run containers here, and with what (--accel: its name)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: runm [--root DIR] [--debug] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
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
		{ "root", required_argument, NULL, 'r' }, { "debug", no_argument, NULL, 'D' },
		{ "log", required_argument, NULL, 'l' },  { "log-format", required_argument, NULL, 'f' },
		{ "systemd-cgroup", no_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },    { NULL, 0, NULL, 0 },
	};
	struct cli cli = { 0 };
	char *root = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': free(root); root = strdup(optarg); break;
		case 'D': cli.debug = true; break;
		case 'l':
		case 'f':
		case 's': break; /* accepted for runc compatibility */
		case 'v': printf("runm version 0.1\n"); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	log_init("runm", cli.debug || getenv("RUNM_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
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
	fprintf(stderr, "runm: unknown command `%s`\n", argv[optind]);
	usage(stderr);
	free(root);
	return 2;
}

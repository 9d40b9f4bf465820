/* client.c - the commands that talk to a running container's monitor over
 * its control socket (the agent API, proxied): state, kill, delete, list. */
#include "cli/cli.h"

#include "cli/session.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/hooks.h"
#include "engine/stage.h"
#include "vm/vm.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *status_name(int s)
{
	switch (s) {
	case RUNM__AGENT__V1__STATE_RESPONSE__STATUS__CREATED: return "created";
	case RUNM__AGENT__V1__STATE_RESPONSE__STATUS__RUNNING: return "running";
	case RUNM__AGENT__V1__STATE_RESPONSE__STATUS__PAUSED: return "paused";
	case RUNM__AGENT__V1__STATE_RESPONSE__STATUS__STOPPED: return "stopped";
	default: return "unknown";
	}
}

/* The container's status: asked of the agent when the monitor lives, else
 * what the monitor recorded last ("stopped" once it is gone). */
char *cli_live_status(const struct cli *cli, const char *id, struct cli_state *st)
{
	cleanup_error runm_error_t err = NULL;
	struct session *s = NULL;
	Runm__Agent__V1__StateRequest req = RUNM__AGENT__V1__STATE_REQUEST__INIT;
	cleanup_free uint8_t *p = NULL;
	size_t len;
	cleanup_pb Runm__Agent__V1__StateResponse *resp = NULL;

	if (!cli_monitor_alive(st))
		return xstrdup("stopped");
	/* created, paused (the agent cannot answer then), creating */
	if (strcmp(st->status, "running") != 0)
		return xstrdup(st->status);
	req.exec_id = "";
	if (session_open(cli, id, &s, &err) < 0 || session_call(s, "State", &req.base, 10000, &p, &len, &err) < 0) {
		session_close(s);
		return xstrdup(st->status);
	}
	session_close(s);
	resp = PB_UNPACK(Runm__Agent__V1__StateResponse, runm__agent__v1__state_response__descriptor, p, len);
	return xstrdup(resp ? status_name(resp->status) : "unknown");
}

int cli_load(const struct cli *cli, const char *id, struct cli_state *st)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *dir = NULL;
	if (!cli_valid_id(id))
		return cli_fail("invalid container id `%s`", id), -1;
	dir = cli_dir(cli, id);
	if (access(dir, F_OK) < 0)
		return cli_fail("container does not exist: %s", id), -1;
	if (cli_state_read(dir, st, &err) < 0)
		return cli_fail("container %s: %s", id, runm_error_msg(err)), -1;
	return 0;
}

static char *iso_time(uint64_t ns)
{
	char buf[64];
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	return xasprintf("%s.%09uZ", buf, (unsigned)(ns % 1000000000u));
}

int cmd_state(const struct cli *cli, int argc, char **argv)
{
	struct cli_state st;
	json_object *o;
	cleanup_free char *status = NULL, *created = NULL, *rootfs = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: runm state ID\n");
		return 2;
	}
	if (cli_load(cli, argv[1], &st) < 0)
		return 1;
	status = cli_live_status(cli, argv[1], &st);
	created = iso_time(st.created_ns);
	rootfs = xasprintf("%s/rootfs", st.bundle);
	/* runc's state JSON; pid is the container's host-side process, the one
	 * the pid file names: the monitor (create) or the VMM (run). */
	o = json_object_new_object();
	json_object_object_add(o, "ociVersion", json_object_new_string("1.0.2"));
	json_object_object_add(o, "id", json_object_new_string(st.id));
	json_object_object_add(o, "pid", json_object_new_int(strcmp(status, "stopped") ? (st.host_pid ? st.host_pid : st.vmm_pid) : 0));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "bundle", json_object_new_string(st.bundle));
	json_object_object_add(o, "rootfs", json_object_new_string(rootfs));
	json_object_object_add(o, "created", json_object_new_string(created));
	json_object_object_add(o, "owner", json_object_new_string(""));
	if (strcmp(status, "stopped") == 0)
		json_object_object_add(o, "exitStatus", json_object_new_int(st.exit_status));
	if (st.ports) {
		/* The host ports as bound: a random one (-p PORT) is known only here. */
		cleanup_free char *list = NULL;
		json_object *ann = json_object_new_object();
		for (size_t i = 0; st.ports[i]; i++) {
			char *next = xasprintf("%s%s%s", list ? list : "", list ? "," : "", st.ports[i]);
			free(list);
			list = next;
		}
		json_object_object_add(ann, "io.runm.published-ports", json_object_new_string(list));
		json_object_object_add(o, "annotations", ann);
	}
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	cli_state_release(&st);
	return 0;
}

int cmd_kill(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' }, { NULL, 0, NULL, 0 } };
	Runm__Agent__V1__SignalRequest req = RUNM__AGENT__V1__SIGNAL_REQUEST__INIT;
	cleanup_error runm_error_t err = NULL;
	struct session *s = NULL;
	struct cli_state st;
	int c, sig = SIGTERM, rc = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+a", opts, NULL)) != -1) {
		if (c != 'a') {
			fprintf(stderr, "usage: runm kill [--all] ID [SIGNAL]\n");
			return 2;
		}
		req.all = true;
	}
	if (optind >= argc || argc - optind > 2) {
		fprintf(stderr, "usage: runm kill [--all] ID [SIGNAL]\n");
		return 2;
	}
	if (argc - optind == 2 && (sig = cli_parse_signal(argv[optind + 1])) < 0)
		return cli_fail("unknown signal `%s`", argv[optind + 1]);
	if (cli_load(cli, argv[optind], &st) < 0)
		return 1;
	if (!cli_monitor_alive(&st)) {
		cli_state_release(&st);
		return cli_fail("container not running");
	}
	if (strcmp(st.status, "created") == 0 || strcmp(st.status, "creating") == 0) {
		/* Nothing runs in the guest yet: the monitor takes the signal as
		 * the container's end (run.c on_signal), as runc's init would. */
		if (kill(st.monitor_pid, sig) < 0)
			rc = cli_fail("kill %s: %s", argv[optind], strerror(errno));
		cli_state_release(&st);
		return rc;
	}
	req.exec_id = "";
	req.signal = (uint32_t)sig;
	if (session_open(cli, argv[optind], &s, &err) < 0 || session_call(s, "Signal", &req.base, 10000, NULL, NULL, &err) < 0)
		rc = cli_fail("kill %s: %s", argv[optind], runm_error_msg(err));
	session_close(s);
	cli_state_release(&st);
	return rc;
}

/* Wait for a process to exit, up to timeout_ms; true if it did. */
static bool wait_gone(pid_t pid, int timeout_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p;
	int rc;
	if (fd < 0)
		return errno == ESRCH;
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	rc = poll(&p, 1, timeout_ms);
	close(fd);
	return rc == 1;
}

/* A VMM left by a monitor that died (SIGKILL): only if it is still ours. */
static void kill_stray_vmm(const struct cli_state *st, const char *dir)
{
	if (vm_is_ours(st->vmm_pid, dir)) {
		kill(st->vmm_pid, SIGKILL);
		wait_gone(st->vmm_pid, 5000);
	}
}

/* runc runs poststop hooks in delete; their failures are only warnings. */
static void poststop(const struct cli_state *st)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *state = NULL, *cfg = xasprintf("%s/config.json", st->bundle);
	if (access(cfg, F_OK) < 0)
		return;
	state = hooks_state_json(st->bundle, st->id, "stopped", 0);
	if (hooks_run(st->bundle, HOOK_POSTSTOP, state, &err) < 0)
		log_warn("%s", runm_error_msg(err));
}

int cmd_delete(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, { NULL, 0, NULL, 0 } };
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *dir = NULL;
	struct cli_state st;
	bool force = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+f", opts, NULL)) != -1) {
		if (c != 'f') {
			fprintf(stderr, "usage: runm delete [--force] ID\n");
			return 2;
		}
		force = true;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: runm delete [--force] ID\n");
		return 2;
	}
	if (cli_load(cli, argv[optind], &st) < 0)
		return 1;
	dir = cli_dir(cli, argv[optind]);
	/* A monitor whose container stopped is on its way out: let it finish. */
	if (cli_monitor_alive(&st)) {
		cleanup_free char *status = cli_live_status(cli, argv[optind], &st);
		if (strcmp(status, "stopped") == 0)
			wait_gone(st.monitor_pid, 10000);
		else if (strcmp(status, "created") == 0)
			/* runc deletes a created container without --force (buildah does
			 * this): the monitor gives up on a signal and cleans up. */
			kill(st.monitor_pid, SIGTERM), wait_gone(st.monitor_pid, 10000);
	}
	if (cli_monitor_alive(&st)) {
		if (!force) {
			cleanup_free char *status = cli_live_status(cli, argv[optind], &st);
			cli_state_release(&st);
			return cli_fail("cannot delete container %s that is not stopped: %s", argv[optind], status);
		}
		/* The monitor stops the VM and records the exit on SIGKILL of init;
		 * a monitor that does not go in time is killed with its VM. */
		kill(st.monitor_pid, SIGKILL);
		if (!wait_gone(st.monitor_pid, 10000))
			cli_fail("the monitor of `%s` (pid %d) did not exit", argv[optind], st.monitor_pid);
	}
	kill_stray_vmm(&st, dir);
	stage_release_all(dir); /* a crashed monitor's staged file binds */
	poststop(&st);
	cli_state_release(&st);
	if (rm_rf(dir, &err) < 0)
		return cli_fail("%s", runm_error_msg(err));
	return 0;
}

int cmd_list(const struct cli *cli, int argc, char **argv)
{
	DIR *d = opendir(cli->root);
	struct dirent *e;
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: runm list\n");
		return 2;
	}
	printf("%-24s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		cleanup_error runm_error_t err = NULL;
		cleanup_free char *dir = NULL, *status = NULL, *created = NULL;
		struct cli_state st;
		if (e->d_name[0] == '.' || !cli_valid_id(e->d_name))
			continue;
		dir = cli_dir(cli, e->d_name);
		if (cli_state_read(dir, &st, &err) < 0)
			continue;
		status = cli_live_status(cli, e->d_name, &st);
		created = iso_time(st.created_ns);
		printf("%-24s %-8d %-10s %-40s %s\n", st.id, strcmp(status, "stopped") ? st.vmm_pid : 0, status,
		       st.bundle, created);
		cli_state_release(&st);
	}
	closedir(d);
	return 0;
}

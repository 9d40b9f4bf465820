/* runc.c - the rest of runc's command line, for its callers (containerd's
 * runc shim, conmon, buildah): ps, pause, resume, events, update, features.
 * Each is a thin layer over the monitor's control socket. */
#include "cli/cli.h"

#include "cli/session.h"
#include "common/util.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A running container's state, or -1 after saying why not. */
static int load_running(const struct cli *cli, const char *id, struct cli_state *st)
{
	if (cli_load(cli, id, st) < 0)
		return -1;
	if (!cli_monitor_alive(st) || strcmp(st->status, "stopped") == 0) {
		cli_state_release(st);
		return cli_fail("container not running"), -1;
	}
	return 0;
}

/* The host processes that stand for the container: its monitor and VMM. */
static int host_pids(const struct cli_state *st, int pids[2])
{
	int n = 0;
	if (st->host_pid > 0)
		pids[n++] = st->host_pid;
	if (st->vmm_pid > 0 && st->vmm_pid != st->host_pid)
		pids[n++] = st->vmm_pid;
	return n;
}

int cmd_ps(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "format", required_argument, NULL, 'f' }, { NULL, 0, NULL, 0 } };
	const char *format = "table";
	struct cli_state st;
	int c, pids[2] = { 0, 0 }, n;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+f:", opts, NULL)) != -1) {
		if (c != 'f')
			goto usage;
		format = optarg;
	}
	if (optind >= argc || (strcmp(format, "json") != 0 && strcmp(format, "table") != 0))
		goto usage;
	if (load_running(cli, argv[optind], &st) < 0)
		return 1;
	n = host_pids(&st, pids);
	cli_state_release(&st);
	if (n == 0)
		return cli_fail("container not running");
	if (strcmp(format, "json") == 0) {
		printf("[");
		for (int i = 0; i < n; i++)
			printf("%s%d", i ? "," : "", pids[i]);
		printf("]\n");
		return 0;
	}
	/* table: the host's ps, limited to those pids. */
	{
		char cmd[128];
		if (n > 1)
			snprintf(cmd, sizeof(cmd), "ps -o pid,user,time,args -p %d,%d", pids[0], pids[1]);
		else
			snprintf(cmd, sizeof(cmd), "ps -o pid,user,time,args -p %d", pids[0]);
		return system(cmd) == 0 ? 0 : 1;
	}
usage:
	fprintf(stderr, "usage: runm ps [--format table|json] ID\n");
	return 2;
}

static int monitor_call(const struct cli *cli, int argc, char **argv, const char *method)
{
	Runm__Agent__V1__Empty req = RUNM__AGENT__V1__EMPTY__INIT;
	cleanup_error runm_error_t err = NULL;
	struct session *s = NULL;
	struct cli_state st;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: runm %s ID\n", argv[0]);
		return 2;
	}
	if (load_running(cli, argv[1], &st) < 0)
		return 1;
	cli_state_release(&st);
	if (session_open(cli, argv[1], &s, &err) < 0 ||
	    session_call_service(s, CLI_MONITOR_SERVICE, method, &req.base, 30000, NULL, NULL, &err) < 0)
		rc = cli_fail("%s %s: %s", argv[0], argv[1], runm_error_msg(err));
	session_close(s);
	return rc;
}

int cmd_pause(const struct cli *cli, int argc, char **argv)
{
	return monitor_call(cli, argc, argv, "Pause");
}

int cmd_resume(const struct cli *cli, int argc, char **argv)
{
	return monitor_call(cli, argc, argv, "Resume");
}

/* runc's events JSON for one Stats answer. */
static void print_stats(const char *id, const Runm__Agent__V1__StatsResponse *r)
{
	json_object *o = json_object_new_object(), *data = json_object_new_object();
	json_object *cpu = json_object_new_object(), *usage = json_object_new_object();
	json_object *mem = json_object_new_object(), *musage = json_object_new_object();
	json_object *pids = json_object_new_object();

	json_object_object_add(usage, "total", json_object_new_int64((int64_t)r->cpu_usage_ns));
	json_object_object_add(cpu, "usage", usage);
	json_object_object_add(musage, "usage", json_object_new_int64((int64_t)r->memory_usage_bytes));
	json_object_object_add(musage, "limit", json_object_new_int64((int64_t)r->memory_limit_bytes));
	json_object_object_add(mem, "usage", musage);
	json_object_object_add(pids, "current", json_object_new_int64(r->pids));
	json_object_object_add(data, "cpu", cpu);
	json_object_object_add(data, "memory", mem);
	json_object_object_add(data, "pids", pids);
	json_object_object_add(o, "type", json_object_new_string("stats"));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "data", data);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(o);
}

int cmd_events(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "stats", no_argument, NULL, 's' },
					      { "interval", required_argument, NULL, 'i' },
					      { NULL, 0, NULL, 0 } };
	Runm__Agent__V1__ContainerRequest req = RUNM__AGENT__V1__CONTAINER_REQUEST__INIT; /* "": the VM's one container */
	struct session *s = NULL;
	struct cli_state st;
	bool once = false;
	long interval_s = 5;
	int c, rc = 0, pfd;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+si:", opts, NULL)) != -1) {
		if (c == 's')
			once = true;
		else if (c == 'i' && (interval_s = strtol(optarg, NULL, 10)) > 0)
			;
		else
			goto usage;
	}
	if (optind != argc - 1)
		goto usage;
	if (load_running(cli, argv[optind], &st) < 0)
		return 1;
	pfd = (int)syscall(SYS_pidfd_open, st.monitor_pid, 0);
	cli_state_release(&st);
	do {
		cleanup_error runm_error_t err = NULL;
		cleanup_free uint8_t *p = NULL;
		cleanup_pb Runm__Agent__V1__StatsResponse *r = NULL;
		size_t len;
		struct pollfd pw = { .fd = pfd, .events = POLLIN };
		if (session_open(cli, argv[optind], &s, &err) < 0 || session_call(s, "Stats", &req.base, 10000, &p, &len, &err) < 0) {
			session_close(s);
			rc = cli_fail("events %s: %s", argv[optind], runm_error_msg(err));
			break;
		}
		session_close(s);
		r = PB_UNPACK(Runm__Agent__V1__StatsResponse, runm__agent__v1__stats_response__descriptor, p, len);
		if (r == NULL) {
			rc = cli_fail("events %s: undecodable Stats from the guest", argv[optind]);
			break;
		}
		print_stats(argv[optind], r);
		/* Until the next interval, or the container's end. */
		if (!once && pfd >= 0 && poll(&pw, 1, (int)(interval_s * 1000)) != 0)
			break;
	} while (!once);
	if (pfd >= 0)
		close(pfd);
	return rc;
usage:
	fprintf(stderr, "usage: runm events [--stats] [--interval SECONDS] ID\n");
	return 2;
}

int cmd_update(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "resources", required_argument, NULL, 'r' }, { NULL, 0, NULL, 0 } };
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *buf = NULL;
	const char *res = NULL;
	struct cli_state st;
	json_object *o;
	size_t len;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+r:", opts, NULL)) != -1) {
		if (c != 'r') /* runc's single-value flags (--memory ...) are not taken */
			goto usage;
		res = optarg;
	}
	if (optind != argc - 1 || res == NULL)
		goto usage;
	if (read_file_at(AT_FDCWD, strcmp(res, "-") == 0 ? "/dev/stdin" : res, 1 << 20, &buf, &len, &err) < 0)
		return cli_fail("update --resources: %s", runm_error_msg(err));
	o = json_tokener_parse(buf);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return cli_fail("update --resources: not a JSON object (LinuxResources)");
	}
	json_object_put(o);
	if (load_running(cli, argv[optind], &st) < 0)
		return 1;
	cli_state_release(&st);
	/* The VM was sized at create; its limits stay what they were. */
	return cli_fail("update %s: changing the resources of a running container's VM is not supported yet",
			argv[optind]);
usage:
	fprintf(stderr, "usage: runm update --resources FILE|- ID\n");
	return 2;
}

int cmd_features(const struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: runm features\n");
		return 2;
	}
	printf("{\n"
	       "  \"ociVersionMin\": \"1.0.0\",\n"
	       "  \"ociVersionMax\": \"1.0.2-dev\",\n"
	       "  \"hooks\": [\"prestart\", \"createRuntime\", \"poststart\", \"poststop\"],\n"
	       "  \"mountOptions\": [\"ro\", \"rw\", \"bind\", \"rbind\", \"nosuid\", \"nodev\", \"noexec\"],\n"
	       "  \"linux\": {\n"
	       "    \"namespaces\": [\"cgroup\", \"ipc\", \"mount\", \"network\", \"pid\", \"uts\"],\n"
	       "    \"cgroup\": {\"v1\": false, \"v2\": true, \"systemd\": false, \"systemdUser\": false},\n"
	       "    \"seccomp\": {\"enabled\": true},\n"
	       "    \"apparmor\": {\"enabled\": false},\n"
	       "    \"selinux\": {\"enabled\": false}\n"
	       "  },\n"
	       "  \"annotations\": {\"io.runm.isolation\": \"vm\"}\n"
	       "}\n");
	return 0;
}

/* main.c - containerd-shim-runm-v1: the shim v2 binary contract.
 *
 *   containerd-shim-runm-v1 [-namespace NS -address ADDR -publish-binary BIN -id ID -bundle DIR -debug] start|delete
 *
 * `start` makes (or finds) the shim's socket, launches the long-lived shim on
 * it and prints its address; `delete` cleans up after a dead shim and prints
 * a DeleteResponse; with no action word the binary is that long-lived shim,
 * serving containerd.task.v2.Task on the listening socket it got as fd 3. */
#include "paths.h"
#include "task.h"
#include "mount.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "engine/stage.h"
#include "vm/vm.h"
#include "events/publisher.h"
#include "ttrpc/ttrpc.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SHIM_VERSION "0.1.0"
#define LISTEN_FD 3
/* Annotations that group several containers into one shim (containerd's runc shim uses the first). */
static const char *const group_annotations[] = { "io.kubernetes.cri.sandbox-id", "io.containerd.runm.group" };

struct opts {
	const char *ns, *address, *publish_binary, *id, *bundle, *socket;
	bool debug;
	const char *action;
};

static void usage(void)
{
	fprintf(stderr, "usage: containerd-shim-runm-v1 [-namespace NS] [-address ADDR] [-publish-binary BIN] [-id ID] "
			"[-bundle DIR] [-debug] [start|delete]\n");
}

/* Go flag syntax: -x v, --x v, -x=v; booleans -x or -x=true. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct {
		const char *name;
		size_t off;
	} strs[] = {
		{ "namespace", offsetof(struct opts, ns) },
		{ "address", offsetof(struct opts, address) },
		{ "publish-binary", offsetof(struct opts, publish_binary) },
		{ "id", offsetof(struct opts, id) },
		{ "bundle", offsetof(struct opts, bundle) },
		{ "socket", offsetof(struct opts, socket) },
	};
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		char name[64];
		size_t n;
		bool found = false;

		if (a[0] != '-' || strcmp(a, "-") == 0)
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		a += a[1] == '-' ? 2 : 1;
		n = strcspn(a, "=");
		if (n >= sizeof(name))
			return -1;
		memcpy(name, a, n);
		name[n] = '\0';
		if (a[n] == '=')
			val = a + n + 1;
		if (strcmp(name, "debug") == 0) {
			o->debug = val == NULL || strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
			continue;
		}
		if (strcmp(name, "v") == 0 || strcmp(name, "version") == 0) {
			printf("containerd-shim-runm-v1:\n  Version: %s\n", SHIM_VERSION);
			exit(0);
		}
		if (strcmp(name, "info") == 0) {
			/* containerd 2.0 asks for a RuntimeInfo; failure is only logged. */
			fprintf(stderr, "runm: -info is not supported\n");
			exit(1);
		}
		for (size_t k = 0; k < ARRAY_SIZE(strs); k++) {
			if (strcmp(name, strs[k].name) != 0)
				continue;
			if (val == NULL) {
				if (i + 1 >= argc)
					return -1;
				val = argv[++i];
			}
			*(const char **)((char *)o + strs[k].off) = val;
			found = true;
			break;
		}
		if (!found) {
			fprintf(stderr, "runm: unknown flag -%s\n", name);
			return -1;
		}
	}
	if (i < argc)
		o->action = argv[i];
	return 0;
}

static char *bundle_dir(const struct opts *o)
{
	char buf[PATH_MAX];
	if (o->bundle && o->bundle[0])
		return xstrdup(o->bundle);
	return xstrdup(getcwd(buf, sizeof(buf)) ? buf : ".");
}

/* ---------------------------------------------------------------- start */

/* The shim id to group under: a grouping annotation of config.json, else our id. */
static char *grouping_id(const char *bundle, const char *id)
{
	cleanup_free char *path = xasprintf("%s/config.json", bundle);
	json_object *root = json_object_from_file(path), *ann = NULL, *v = NULL;
	char *res = NULL;

	if (root && json_object_object_get_ex(root, "annotations", &ann) && json_object_is_type(ann, json_type_object)) {
		for (size_t i = 0; i < ARRAY_SIZE(group_annotations) && res == NULL; i++)
			if (json_object_object_get_ex(ann, group_annotations[i], &v) &&
			    json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
				res = xstrdup(json_object_get_string(v));
	}
	if (root)
		json_object_put(root);
	return res ? res : xstrdup(id);
}

/* Whether a live shim answers on path. */
static int socket_connectable(const char *path)
{
	cleanup_close int fd = unix_connect(path, NULL);
	return fd >= 0;
}

/* Bind and listen on path; *reuse set (and -1 returned without error) if a
 * live shim already listens there. */
static int make_socket(const char *path, bool *reuse, runm_error_t *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	*reuse = false;
	if (strlen(path) >= sizeof(sa.sun_path))
		return runm_error_make(err, ENAMETOOLONG, "socket path `%s`", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (mkdir_p(PATHS_SOCKET_DIR, 0711, err) < 0)
		return -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return runm_error_make(err, errno, "socket");
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno != EADDRINUSE || attempt == 1)
			return runm_error_make(err, errno, "bind `%s`", path);
		close_and_reset(&fd);
		if (socket_connectable(path)) {
			*reuse = true;
			return -1;
		}
		unlink(path); /* a dead shim's leftover */
	}
	if (chmod(path, 0600) < 0 || listen(fd, 128) < 0) {
		int e = errno;
		unlink(path);
		return runm_error_make(err, e, "listen on `%s`", path);
	}
	return steal_fd(&fd);
}

static int cmd_start(const struct opts *o)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *bundle = bundle_dir(o), *group = NULL, *sock = NULL, *addr = NULL, *addr_file = NULL;
	cleanup_free char *pid_file = NULL, *pidtext = NULL;
	char buf[4096];
	bool reuse;
	int lfd;
	pid_t pid;

	/* stdin: runtime options (a marshalled Any) or nothing; read to EOF. */
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	if (!o->ns || !o->address || !o->id) {
		fprintf(stderr, "runm: start needs -namespace, -address and -id\n");
		return 1;
	}
	group = grouping_id(bundle, o->id);
	sock = paths_socket(o->address, o->ns, group);
	addr = xasprintf("unix://%s", sock);
	addr_file = xasprintf("%s/address", bundle);
	lfd = make_socket(sock, &reuse, &err);
	if (lfd < 0 && !reuse) {
		fprintf(stderr, "runm: start: %s\n", runm_error_msg(err));
		return 1;
	}
	if (!reuse) {
		pid = fork();
		if (pid < 0) {
			fprintf(stderr, "runm: fork: %s\n", strerror(errno));
			unlink(sock);
			return 1;
		}
		if (pid == 0) {
			const char *argv[16];
			int n = 0, null = open("/dev/null", O_RDWR);
			setsid();
			if (chdir(bundle) < 0)
				_exit(126);
			if (lfd != LISTEN_FD) {
				dup2(lfd, LISTEN_FD);
				close(lfd);
			} else {
				set_cloexec(lfd, 0);
			}
			/* containerd waits until every writer of start's stdout/stderr is gone. */
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
			unsetenv("NOTIFY_SOCKET");
			argv[n++] = "containerd-shim-runm-v1";
			argv[n++] = "-namespace";
			argv[n++] = o->ns;
			argv[n++] = "-address";
			argv[n++] = o->address;
			argv[n++] = "-publish-binary";
			argv[n++] = o->publish_binary ? o->publish_binary : "";
			argv[n++] = "-id";
			argv[n++] = group;
			argv[n++] = "-socket";
			argv[n++] = sock;
			if (o->debug)
				argv[n++] = "-debug";
			argv[n] = NULL;
			execv("/proc/self/exe", (char *const *)argv);
			_exit(127);
		}
		close(lfd);
		pid_file = xasprintf("%s/" PATHS_SHIM_PID, bundle);
		pidtext = xasprintf("%d", (int)pid);
		if (write_file_atomic(pid_file, pidtext, strlen(pidtext), 0644, &err) < 0) {
			fprintf(stderr, "runm: %s\n", runm_error_msg(err));
			runm_error_release(&err);
		}
	}
	if (write_file_atomic(addr_file, addr, strlen(addr), 0644, &err) < 0) {
		fprintf(stderr, "runm: start: %s\n", runm_error_msg(err));
		return 1;
	}
	printf("%s", addr);
	fflush(stdout);
	return 0;
}

/* ---------------------------------------------------------------- delete */

static int read_pid_file(const char *bundle, const char *name)
{
	cleanup_free char *path = xasprintf("%s/%s", bundle, name), *text = NULL;
	if (read_file_at(AT_FDCWD, path, 64, &text, NULL, NULL) < 0)
		return 0;
	return atoi(text);
}

static int cmd_delete(const struct opts *o)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *bundle = bundle_dir(o), *rootfs = NULL, *state = NULL, *addr = NULL, *addr_path = NULL;
	Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	uint8_t *buf;
	size_t len;
	pid_t vmm = (pid_t)read_pid_file(bundle, PATHS_VMM_PID);
	uint64_t now;

	state = paths_state_dir(bundle);
	if (vm_is_ours(vmm, state)) {
		kill(vmm, SIGKILL);
		for (int i = 0; i < 200 && kill(vmm, 0) == 0 && vm_is_ours(vmm, state); i++)
			usleep(10000);
	}
	rootfs = xasprintf("%s/rootfs", bundle);
	if (mount_unmount_all(rootfs, &err) < 0) {
		fprintf(stderr, "runm: delete: %s\n", runm_error_msg(err));
		runm_error_release(&err);
	}
	stage_release_all(state);
	if (rm_rf(state, &err) < 0) {
		fprintf(stderr, "runm: delete: %s\n", runm_error_msg(err));
		runm_error_release(&err);
	}
	/* The socket: only if no shim answers on it any more (a grouped shim may still serve others). */
	addr_path = xasprintf("%s/address", bundle);
	if (read_file_at(AT_FDCWD, addr_path, 4096, &addr, NULL, NULL) == 0) {
		const char *p = strncmp(addr, "unix://", 7) == 0 ? addr + 7 : addr;
		if (strncmp(p, PATHS_SOCKET_DIR "/", strlen(PATHS_SOCKET_DIR) + 1) == 0 && !socket_connectable(p))
			unlink(p);
	}
	now = now_real_ns();
	resp.pid = (uint32_t)read_pid_file(bundle, PATHS_INIT_PID);
	resp.exit_status = 128 + SIGKILL;
	ts.seconds = (int64_t)(now / 1000000000ull);
	ts.nanos = (int32_t)(now % 1000000000ull);
	resp.exited_at = &ts;
	len = containerd__task__v2__delete_response__get_packed_size(&resp);
	buf = xmalloc(len + 1);
	containerd__task__v2__delete_response__pack(&resp, buf);
	if (write_all(STDOUT_FILENO, buf, len) < 0) {
		free(buf);
		return 1;
	}
	free(buf);
	return 0;
}

/* ---------------------------------------------------------------- serve */

struct server {
	struct loop *loop;
	struct task_service *tasks;
};

static void on_shutdown(void *data)
{
	struct server *s = data;
	loop_quit(s->loop);
}

static void on_signal(struct loop *l, int signo, void *data)
{
	(void)data;
	log_info("signal %d: shutting down", signo);
	loop_quit(l);
}

/* containerd holds <bundle>/log (a FIFO) open for reading and copies it into
 * its own log: our stderr goes there. Non-blocking: a full pipe drops lines
 * instead of wedging the shim. */
static void redirect_log(void)
{
	int fd = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static int serve(const struct opts *o)
{
	cleanup_error runm_error_t err = NULL;
	struct server srv = { 0 };
	struct ttrpc_server *ts = NULL;
	struct publisher *pub = NULL;
	cleanup_free char *ttrpc_addr = NULL;
	const char *env_addr = getenv("TTRPC_ADDRESS");
	sigset_t set;

	redirect_log();
	log_init("runm-shim", o->debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	signal(SIGPIPE, SIG_IGN);
	unsetenv("NOTIFY_SOCKET");
	if (fcntl(LISTEN_FD, F_GETFD) < 0) {
		log_error("no listening socket on fd %d: run me through `start`", LISTEN_FD);
		return 1;
	}
	set_cloexec(LISTEN_FD, 1);
	if (loop_new(&srv.loop, &err) < 0) {
		log_error("%s", runm_error_msg(err));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (loop_signals(srv.loop, &set, on_signal, &srv, &err) < 0) {
		log_error("%s", runm_error_msg(err));
		return 1;
	}
	if (env_addr && env_addr[0])
		ttrpc_addr = xstrdup(env_addr);
	else if (o->address)
		ttrpc_addr = xasprintf("%s.ttrpc", o->address);
	if (ttrpc_addr && o->ns && publisher_new(srv.loop, ttrpc_addr, o->ns, &pub, &err) < 0) {
		log_warn("events to containerd disabled: %s", runm_error_msg(err));
		runm_error_release(&err);
		pub = NULL;
	}
	srv.tasks = task_service_new(srv.loop, pub);
	task_service_on_shutdown(srv.tasks, on_shutdown, &srv);
	ts = ttrpc_server_new(srv.loop);
	task_service_register(srv.tasks, ts);
	if (ttrpc_server_listen(ts, LISTEN_FD, &err) < 0) {
		log_error("%s", runm_error_msg(err));
		return 1;
	}
	log_info("serving %s (pid %d, namespace %s)", o->socket ? o->socket : "fd 3", (int)getpid(),
		 o->ns ? o->ns : "?");
	loop_run(srv.loop);

	if (task_service_count(srv.tasks))
		log_warn("exiting with %zu container(s) left: tearing them down", task_service_count(srv.tasks));
	task_service_free(srv.tasks);
	ttrpc_server_free(ts);
	publisher_free(pub, 2000);
	if (o->socket)
		unlink(o->socket);
	loop_free(srv.loop);
	log_info("exit");
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };

	if (parse_args(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	if (o.action == NULL)
		return serve(&o);
	if (strcmp(o.action, "start") == 0)
		return cmd_start(&o);
	if (strcmp(o.action, "delete") == 0)
		return cmd_delete(&o);
	fprintf(stderr, "runm: unknown action `%s`\n", o.action);
	usage();
	return 2;
}

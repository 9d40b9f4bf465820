/* state.c - <root>/<id>/state.json, read and written with json-c. */
#include "cli/cli.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool cli_valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 128 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return false;
	for (const char *p = id; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
		      strchr("_.-", *p)))
			return false;
	return true;
}

char *cli_dir(const struct cli *cli, const char *id)
{
	return xasprintf("%s/%s", cli->root, id);
}

int cli_state_write(const char *dir, const struct cli_state *st, runm_error_t *err)
{
	json_object *o = json_object_new_object();
	cleanup_free char *path = xasprintf("%s/" CLI_STATE, dir);
	const char *s;
	int rc;

	json_object_object_add(o, "id", json_object_new_string(st->id));
	json_object_object_add(o, "bundle", json_object_new_string(st->bundle));
	json_object_object_add(o, "status", json_object_new_string(st->status));
	json_object_object_add(o, "monitor_pid", json_object_new_int(st->monitor_pid));
	json_object_object_add(o, "vmm_pid", json_object_new_int(st->vmm_pid));
	json_object_object_add(o, "pid", json_object_new_int(st->pid));
	json_object_object_add(o, "host_pid", json_object_new_int(st->host_pid));
	json_object_object_add(o, "exit_status", json_object_new_int(st->exit_status));
	json_object_object_add(o, "created_ns", json_object_new_int64((int64_t)st->created_ns));
	if (st->ports) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; st->ports[i]; i++)
			json_object_array_add(a, json_object_new_string(st->ports[i]));
		json_object_object_add(o, "ports", a);
	}
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	rc = write_file_atomic(path, s, strlen(s), 0600, err);
	json_object_put(o);
	return rc;
}

static char *get_str(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return xstrdup("");
	return xstrdup(json_object_get_string(v));
}

static int64_t get_int(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v);
}

int cli_state_read(const char *dir, struct cli_state *st, runm_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/" CLI_STATE, dir);
	cleanup_free char *buf = NULL;
	size_t len;
	json_object *o;

	memset(st, 0, sizeof(*st));
	if (read_file_at(AT_FDCWD, path, 1 << 20, &buf, &len, err) < 0)
		return -1;
	o = json_tokener_parse(buf);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return runm_error_make(err, 0, "%s/" CLI_STATE " is corrupt", dir);
	}
	st->id = get_str(o, "id");
	st->bundle = get_str(o, "bundle");
	st->status = get_str(o, "status");
	st->monitor_pid = (pid_t)get_int(o, "monitor_pid");
	st->vmm_pid = (pid_t)get_int(o, "vmm_pid");
	st->pid = (pid_t)get_int(o, "pid");
	st->host_pid = (pid_t)get_int(o, "host_pid");
	st->exit_status = (int)get_int(o, "exit_status");
	st->created_ns = (uint64_t)get_int(o, "created_ns");
	{
		json_object *a;
		if (json_object_object_get_ex(o, "ports", &a) && json_object_is_type(a, json_type_array))
			for (size_t i = 0; i < json_object_array_length(a) && i < 4096; i++) {
				json_object *v = json_object_array_get_idx(a, i);
				if (json_object_is_type(v, json_type_string))
					strv_push(&st->ports, json_object_get_string(v));
			}
	}
	json_object_put(o);
	return 0;
}

void cli_state_release(struct cli_state *st)
{
	free(st->id);
	free(st->bundle);
	free(st->status);
	strv_free(st->ports);
	memset(st, 0, sizeof(*st));
}

bool cli_monitor_alive(const struct cli_state *st)
{
	char path[64];
	cleanup_free char *stat = NULL;
	size_t len;
	const char *p;

	if (st->monitor_pid <= 0)
		return false;
	/* A zombie is gone too: a detached monitor's reaper may be slow, or absent. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)st->monitor_pid);
	if (read_file_at(AT_FDCWD, path, 4096, &stat, &len, NULL) < 0)
		return false;
	p = strrchr(stat, ')');
	return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int cli_reopen_stdio(int fd, int flags)
{
	char path[64];
	int nfd;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* Pipes, FIFOs and ttys reopen to a new description; sockets and
	 * anonymous files do not: share theirs then. */
	nfd = open(path, flags | O_CLOEXEC | O_NOCTTY);
	if (nfd < 0)
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return nfd;
}

int cli_parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = { { "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
		      { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "CONT", SIGCONT },
		      { "STOP", SIGSTOP }, { "WINCH", SIGWINCH }, { "ALRM", SIGALRM }, { "PIPE", SIGPIPE } };
	char *end;
	long n = strtol(s, &end, 10);
	if (*s != '\0' && *end == '\0')
		return n > 0 && n < 65 ? (int)n : -1;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].sig;
	return -1;
}

/* hooks.c - see hooks.h. */
#include "engine/hooks.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* A hook's output kept for the error message. */
#define HOOK_OUTPUT_MAX 2048

static const char *const phase_names[] = {
	[HOOK_PRESTART] = "prestart",
	[HOOK_CREATE_RUNTIME] = "createRuntime",
	[HOOK_POSTSTART] = "poststart",
	[HOOK_POSTSTOP] = "poststop",
};

static json_object *load_config(const char *bundle, runm_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/config.json", bundle);
	cleanup_free char *buf = NULL;
	size_t len;
	json_object *o;

	if (read_file_at(AT_FDCWD, path, 16 << 20, &buf, &len, err) < 0)
		return NULL;
	o = json_tokener_parse(buf);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		runm_error_make(err, 0, "%s: not a JSON object", path);
		return NULL;
	}
	return o;
}

char *hooks_state_json(const char *bundle, const char *id, const char *status, pid_t pid)
{
	json_object *cfg = load_config(bundle, NULL), *ann = NULL;
	json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "ociVersion", json_object_new_string("1.0.2"));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "pid", json_object_new_int(pid));
	json_object_object_add(o, "bundle", json_object_new_string(bundle));
	if (cfg && json_object_object_get_ex(cfg, "annotations", &ann) && json_object_is_type(ann, json_type_object))
		json_object_object_add(o, "annotations", json_object_get(ann));
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	json_object_put(cfg);
	return s;
}

/* A string array of the hook (args, env) as a NULL-terminated vector; NULL
 * if absent. Non-strings are an error. */
static int str_array(json_object *hook, const char *key, size_t idx, char ***out, runm_error_t *err)
{
	json_object *a;
	*out = NULL;
	if (!json_object_object_get_ex(hook, key, &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return runm_error_make(err, 0, "hook %zu: %s is not an array", idx, key);
	*out = xzalloc(sizeof(char *));
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string)) {
			strv_free(*out);
			*out = NULL;
			return runm_error_make(err, 0, "hook %zu: %s[%zu] is not a string", idx, key, i);
		}
		strv_push(out, json_object_get_string(e));
	}
	return 0;
}

/* Runs in the forked child: only async-signal-safe calls. */
static void child(const char *path, char **argv, char **envp, int in, int out)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	execve(path, argv, envp);
	_exit(127);
}

/* Collect what the hook wrote, until it exits or the deadline. */
static int wait_hook(pid_t pid, int out, int timeout_s, char *buf, size_t *got, int *status)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_s * 1000000000u;
	bool out_open = true;

	while (true) {
		struct pollfd p[2] = { { .fd = pfd, .events = POLLIN }, { .fd = out_open ? out : -1, .events = POLLIN } };
		uint64_t now = now_mono_ns();
		int ms = now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
		int r = poll(p, 2, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 || r < 0) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			if (pfd >= 0)
				close(pfd);
			return -1;
		}
		if (p[1].revents) {
			char tmp[512];
			ssize_t n = read(out, tmp, sizeof(tmp));
			if (n <= 0) {
				out_open = false;
			} else {
				size_t k = (size_t)n < HOOK_OUTPUT_MAX - *got ? (size_t)n : HOOK_OUTPUT_MAX - *got;
				memcpy(buf + *got, tmp, k);
				*got += k;
			}
		}
		if (p[0].revents || pfd < 0) {
			/* Whatever it wrote just before exiting is in the pipe. */
			ssize_t n;
			while (out_open && *got < HOOK_OUTPUT_MAX &&
			       (n = read(out, buf + *got, HOOK_OUTPUT_MAX - *got)) > 0)
				*got += (size_t)n;
			if (waitpid(pid, status, 0) < 0)
				*status = 0;
			if (pfd >= 0)
				close(pfd);
			return 0;
		}
	}
}

void hooks_release(struct hook_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->hooks[i].path);
		strv_free(l->hooks[i].args);
		strv_free(l->hooks[i].env);
	}
	free(l->hooks);
	memset(l, 0, sizeof(*l));
}

static int parse_one(json_object *hook, size_t idx, const char *phase, struct hook *h, runm_error_t *err)
{
	json_object *jpath = NULL, *jto = NULL;

	if (!json_object_is_type(hook, json_type_object) || !json_object_object_get_ex(hook, "path", &jpath) ||
	    !json_object_is_type(jpath, json_type_string) || json_object_get_string(jpath)[0] != '/')
		return runm_error_make(err, 0, "config.json: hooks.%s[%zu]: path must be absolute", phase, idx);
	h->timeout_s = HOOK_DEFAULT_TIMEOUT_S;
	if (json_object_object_get_ex(hook, "timeout", &jto)) {
		if (!json_object_is_type(jto, json_type_int) || json_object_get_int64(jto) <= 0 ||
		    json_object_get_int64(jto) > 24 * 3600)
			return runm_error_make(err, 0, "config.json: hooks.%s[%zu].timeout must be 1..86400 seconds", phase,
					       idx);
		h->timeout_s = (int)json_object_get_int64(jto);
	}
	if (str_array(hook, "args", idx, &h->args, err) < 0 || str_array(hook, "env", idx, &h->env, err) < 0)
		return -1;
	h->path = xstrdup(json_object_get_string(jpath));
	/* No args: argv[0] is the path, as runc does. */
	if (h->args == NULL || h->args[0] == NULL) {
		strv_free(h->args);
		h->args = NULL;
		strv_push(&h->args, h->path);
	}
	if (h->env == NULL)
		h->env = xzalloc(sizeof(char *));
	return 0;
}

int hooks_parse(const char *config_json, enum hook_phase phase, struct hook_list *out, runm_error_t *err)
{
	const char *name = phase_names[phase];
	json_object *cfg = json_tokener_parse(config_json), *hooks = NULL, *list = NULL;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (cfg == NULL || !json_object_is_type(cfg, json_type_object)) {
		json_object_put(cfg);
		return runm_error_make(err, 0, "config.json: not a JSON object");
	}
	if (json_object_object_get_ex(cfg, "hooks", &hooks) && json_object_object_get_ex(hooks, name, &list)) {
		if (!json_object_is_type(list, json_type_array)) {
			json_object_put(cfg);
			return runm_error_make(err, 0, "config.json: hooks.%s is not an array", name);
		}
		out->hooks = xzalloc((json_object_array_length(list) + 1) * sizeof(*out->hooks));
		for (size_t i = 0; rc == 0 && i < json_object_array_length(list); i++) {
			rc = parse_one(json_object_array_get_idx(list, i), i, name, &out->hooks[i], err);
			out->n = i + 1;
		}
	}
	/* Only said once, at create's first phase. */
	if (rc == 0 && phase == HOOK_PRESTART && json_object_is_type(hooks, json_type_object))
		for (const char *const *n = (const char *const[]){ "createContainer", "startContainer", NULL }; *n; n++)
			if (json_object_object_get_ex(hooks, *n, &list) && json_object_is_type(list, json_type_array) &&
			    json_object_array_length(list) > 0)
				log_warn("%s hooks run in the container's namespaces, which are in its VM: skipped", *n);
	json_object_put(cfg);
	if (rc < 0)
		hooks_release(out);
	return rc;
}

static int run_one(const struct hook *h, const char *phase, const char *state, runm_error_t *err)
{
	cleanup_close int in_r = -1, in_w = -1, out_r = -1, out_w = -1;
	char buf[HOOK_OUTPUT_MAX + 1];
	size_t got = 0;
	int status = 0, fds[2];
	pid_t pid;

	if (access(h->path, X_OK) < 0)
		return runm_error_make(err, errno, "%s hook `%s`", phase, h->path);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe");
	in_r = fds[0], in_w = fds[1];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe");
	out_r = fds[0], out_w = fds[1];
	pid = fork();
	if (pid < 0)
		return runm_error_make(err, errno, "fork");
	if (pid == 0)
		child(h->path, h->args, h->env, in_r, out_w);
	close_and_reset(&in_r);
	close_and_reset(&out_w);
	/* The state is small (well under a pipe's buffer); a hook that exits
	 * without reading it is not an error (SIGPIPE is ignored by runm). */
	(void)!write_all(in_w, state, strlen(state));
	close_and_reset(&in_w);
	if (wait_hook(pid, out_r, h->timeout_s, buf, &got, &status) < 0)
		return runm_error_make(err, 0, "%s hook `%s` did not finish within %d s", phase, h->path, h->timeout_s);
	buf[got] = '\0';
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == ' '))
		buf[--got] = '\0';
	if (WIFSIGNALED(status))
		return runm_error_make(err, 0, "%s hook `%s` killed by signal %d%s%s", phase, h->path, WTERMSIG(status),
				       got ? ": " : "", buf);
	if (WEXITSTATUS(status) != 0)
		return runm_error_make(err, 0, "%s hook `%s` exited with status %d%s%s", phase, h->path,
				       WEXITSTATUS(status), got ? ": " : "", buf);
	return 0;
}

int hooks_run(const char *bundle, enum hook_phase phase, const char *state_json, runm_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/config.json", bundle);
	cleanup_free char *buf = NULL;
	struct hook_list l;
	size_t len;
	int rc = 0;

	if (read_file_at(AT_FDCWD, path, 16 << 20, &buf, &len, err) < 0 || hooks_parse(buf, phase, &l, err) < 0)
		return -1;
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = run_one(&l.hooks[i], phase_names[phase], state_json, err);
	hooks_release(&l);
	return rc;
}

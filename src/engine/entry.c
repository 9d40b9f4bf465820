/* entry.c - see entry.h. */
#include "engine/entry.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* stat of path inside root: absolute symlinks and ".." stay in root. */
static int stat_in_root(int root, const char *path, struct stat *st)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	int rc;
	if (fd < 0)
		return -1;
	rc = fstat(fd, st);
	close(fd);
	return rc;
}

/* Go's words for errno, which callers match on (Docker: "no such file or
 * directory" -> 127), not glibc's capitalised ones. */
static const char *go_strerror(int e)
{
	switch (e) {
	case ENOENT: return "no such file or directory";
	case ENOTDIR: return "not a directory";
	case EACCES: return "permission denied";
	case ELOOP: return "too many levels of symbolic links";
	default: return strerror(e);
	}
}

static bool executable(const struct stat *st)
{
	return S_ISREG(st->st_mode) && (st->st_mode & (S_IXUSR | S_IXGRP | S_IXOTH));
}

static const char *env_path(json_object *proc)
{
	json_object *env;
	if (!json_object_object_get_ex(proc, "env", &env) || !json_object_is_type(env, json_type_array))
		return DEFAULT_PATH;
	for (size_t i = 0; i < json_object_array_length(env); i++) {
		json_object *e = json_object_array_get_idx(env, i);
		if (json_object_is_type(e, json_type_string) && strncmp(json_object_get_string(e), "PATH=", 5) == 0)
			return json_object_get_string(e) + 5;
	}
	return DEFAULT_PATH;
}

static int check(int root, json_object *proc, runm_error_t *err)
{
	json_object *args, *a0, *jcwd;
	const char *cmd, *cwd = "/";
	struct stat st;

	if (!json_object_object_get_ex(proc, "args", &args) || !json_object_is_type(args, json_type_array) ||
	    json_object_array_length(args) == 0 ||
	    !json_object_is_type(a0 = json_object_array_get_idx(args, 0), json_type_string))
		return runm_error_make(err, 0, "config.json: process.args must name the program to run");
	cmd = json_object_get_string(a0);
	if (json_object_object_get_ex(proc, "cwd", &jcwd) && json_object_is_type(jcwd, json_type_string))
		cwd = json_object_get_string(jcwd);
	if (*cmd == '\0')
		return runm_error_make(err, 0, "exec: \"\": executable file not found in $PATH");
	if (strchr(cmd, '/')) {
		cleanup_free char *p = cmd[0] == '/' ? xstrdup(cmd) : xasprintf("%s/%s", cwd, cmd);
		if (stat_in_root(root, p, &st) < 0)
			return runm_error_make(err, 0, "exec: \"%s\": stat %s: %s", cmd, cmd, go_strerror(errno));
		if (!executable(&st))
			return runm_error_make(err, 0, "exec: \"%s\": permission denied", cmd);
		return 0;
	}
	/* LookPath: the first match that is an executable file; a match that
	 * is not executable is remembered as "permission denied". */
	{
		cleanup_free char *path = xstrdup(env_path(proc));
		bool denied = false;
		char *save = NULL;
		for (char *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
			cleanup_free char *p = xasprintf("%s/%s", *dir ? dir : ".", cmd);
			if (stat_in_root(root, p, &st) < 0)
				continue;
			if (executable(&st))
				return 0;
			if (S_ISREG(st.st_mode))
				denied = true;
		}
		if (denied)
			return runm_error_make(err, 0, "exec: \"%s\": permission denied", cmd);
		return runm_error_make(err, 0, "exec: \"%s\": executable file not found in $PATH", cmd);
	}
}

int entry_check(const char *rootfs, const char *config_json, runm_error_t *err)
{
	cleanup_close int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	json_object *cfg, *proc = NULL;
	int rc;

	if (root < 0)
		return runm_error_make(err, errno, "rootfs `%s`", rootfs);
	cfg = json_tokener_parse(config_json);
	if (cfg == NULL || !json_object_object_get_ex(cfg, "process", &proc) ||
	    !json_object_is_type(proc, json_type_object)) {
		json_object_put(cfg);
		return runm_error_make(err, 0, "config.json: process is not an object");
	}
	rc = check(root, proc, err);
	json_object_put(cfg);
	return rc;
}

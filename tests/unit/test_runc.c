/* Unit tests of what runm's runc-compatible create checks and runs on the
 * host: OCI hooks (src/engine/hooks.c) and the entrypoint check
 * (src/engine/entry.c) against a rootfs made here. */
#include "common/util.h"
#include "engine/entry.h"
#include "engine/hooks.h"
#include "harness.h"

#include <signal.h>

/* As runm's and the shim's main do (hooks.c relies on it): a hook that exits
 * without reading its state makes the write fail with EPIPE, not kill us. */
__attribute__((constructor)) static void ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TEST(hooks_parse_phases_args_env)
{
	cleanup_error runm_error_t err = NULL;
	struct hook_list l;
	const char *cfg = "{\"hooks\":{\"prestart\":[{\"path\":\"/proc/1/exe\",\"args\":[\"libnetwork-setkey\",\"-x\"]},"
			  "{\"path\":\"/bin/true\",\"env\":[\"A=B\"],\"timeout\":3}],\"poststop\":[]}}";
	CHECK(hooks_parse(cfg, HOOK_PRESTART, &l, &err) == 0);
	CHECK_EQ_INT((int)l.n, 2);
	CHECK_STR(l.hooks[0].args[0], "libnetwork-setkey"); /* argv[0] as given, not the path */
	CHECK_STR(l.hooks[0].args[1], "-x");
	CHECK(l.hooks[0].env[0] == NULL);
	CHECK_EQ_INT(l.hooks[0].timeout_s, HOOK_DEFAULT_TIMEOUT_S);
	CHECK_STR(l.hooks[1].args[0], "/bin/true"); /* no args: the path */
	CHECK_STR(l.hooks[1].env[0], "A=B");
	CHECK_EQ_INT(l.hooks[1].timeout_s, 3);
	hooks_release(&l);
	CHECK(hooks_parse(cfg, HOOK_POSTSTOP, &l, &err) == 0 && l.n == 0);
	hooks_release(&l);
	CHECK(hooks_parse("{}", HOOK_POSTSTART, &l, &err) == 0 && l.n == 0);
	hooks_release(&l);
}

TEST(hooks_parse_errors_name_the_field)
{
	static const char *const bad[] = {
		"[]", "{\"hooks\":{\"prestart\":{}}}", "{\"hooks\":{\"prestart\":[{\"path\":\"rel\"}]}}",
		"{\"hooks\":{\"prestart\":[{\"path\":\"/x\",\"args\":[1]}]}}",
		"{\"hooks\":{\"prestart\":[{\"path\":\"/x\",\"timeout\":0}]}}",
		"{\"hooks\":{\"prestart\":[{\"path\":\"/x\",\"env\":\"A=B\"}]}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cleanup_error runm_error_t err = NULL;
		struct hook_list l;
		CHECK(hooks_parse(bad[i], HOOK_PRESTART, &l, &err) < 0);
		CHECK(strstr(runm_error_msg(err), "config.json") != NULL || strstr(runm_error_msg(err), "hook") != NULL);
	}
}

/* A bundle whose config.json has `hooks`: returns its directory. */
static char *bundle_with(const char *hooks_json)
{
	char *dir = xstrdup("/tmp/runm-test-hooks-XXXXXX");
	cleanup_free char *cfg = NULL, *path = NULL;
	if (mkdtemp(dir) == NULL)
		abort();
	path = xasprintf("%s/config.json", dir);
	cfg = xasprintf("{\"annotations\":{\"k\":\"v\"},\"hooks\":%s}", hooks_json);
	if (write_file_atomic(path, cfg, strlen(cfg), 0644, NULL) < 0)
		abort();
	return dir;
}

TEST(hooks_run_state_on_stdin_status_and_timeout)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *out = NULL, *state = NULL, *got = NULL, *dir = NULL, *hooks = NULL;
	size_t len;

	out = xstrdup("/tmp/runm-test-hookout-XXXXXX");
	close(mkstemp(out));
	hooks = xasprintf("{\"prestart\":[{\"path\":\"/bin/sh\",\"args\":[\"sh\",\"-c\",\"cat > %s\"]}],"
			  "\"poststart\":[{\"path\":\"/bin/sh\",\"args\":[\"sh\",\"-c\",\"echo nope; exit 3\"]}],"
			  "\"poststop\":[{\"path\":\"/bin/sleep\",\"args\":[\"sleep\",\"30\"],\"timeout\":1}]}",
			  out);
	dir = bundle_with(hooks);
	state = hooks_state_json(dir, "c1", "creating", 4242);
	CHECK(strstr(state, "\"pid\":4242") && strstr(state, "\"status\":\"creating\"") && strstr(state, "\"k\":\"v\""));
	CHECK(hooks_run(dir, HOOK_PRESTART, state, &err) == 0);
	CHECK(read_file_at(AT_FDCWD, out, 4096, &got, &len, &err) == 0);
	CHECK_STR(got, state);
	CHECK(hooks_run(dir, HOOK_POSTSTART, state, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "status 3") && strstr(runm_error_msg(err), "nope"));
	runm_error_release(&err);
	CHECK(hooks_run(dir, HOOK_POSTSTOP, state, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "within 1 s") != NULL);
	CHECK(hooks_run(dir, HOOK_CREATE_RUNTIME, state, &err) == 0); /* none */
	unlink(out);
	rm_rf(dir, NULL);
}

/* rootfs/bin/sh (executable), rootfs/etc/data (not), rootfs/bin/esc -> /../../bin/true */
static char *rootfs(void)
{
	char *dir = xstrdup("/tmp/runm-test-rootfs-XXXXXX");
	cleanup_free char *bin = NULL, *sh = NULL, *etc = NULL, *data = NULL, *esc = NULL;
	if (mkdtemp(dir) == NULL)
		abort();
	bin = xasprintf("%s/bin", dir), etc = xasprintf("%s/etc", dir);
	sh = xasprintf("%s/bin/sh", dir), data = xasprintf("%s/etc/data", dir), esc = xasprintf("%s/bin/esc", dir);
	if (mkdir(bin, 0755) < 0 || mkdir(etc, 0755) < 0 || write_file_atomic(sh, "x", 1, 0755, NULL) < 0 ||
	    write_file_atomic(data, "x", 1, 0644, NULL) < 0 || symlink("/../../bin/true", esc) < 0)
		abort();
	return dir;
}

static int check_entry(const char *root, const char *process, runm_error_t *err)
{
	cleanup_free char *cfg = xasprintf("{\"process\":%s}", process);
	runm_error_release(err);
	return entry_check(root, cfg, err);
}

TEST(entry_check_as_runc_words_it)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *root = rootfs();

	CHECK(check_entry(root, "{\"args\":[\"sh\"]}", &err) == 0);
	CHECK(check_entry(root, "{\"args\":[\"/bin/sh\",\"-c\",\"x\"]}", &err) == 0);
	CHECK(check_entry(root, "{\"args\":[\"sh\"],\"env\":[\"PATH=/etc:/bin\"]}", &err) == 0);
	CHECK(check_entry(root, "{\"args\":[\"../bin/sh\"],\"cwd\":\"/etc\"}", &err) == 0);
	CHECK(check_entry(root, "{\"args\":[\"nope\"]}", &err) < 0);
	CHECK_STR(runm_error_msg(err), "exec: \"nope\": executable file not found in $PATH");
	CHECK(check_entry(root, "{\"args\":[\"/no/such\"]}", &err) < 0);
	CHECK(strstr(runm_error_msg(err), "no such file or directory") != NULL);
	CHECK(check_entry(root, "{\"args\":[\"/etc/data\"]}", &err) < 0);
	CHECK(strstr(runm_error_msg(err), "permission denied") != NULL);
	CHECK(check_entry(root, "{\"args\":[\"data\"],\"env\":[\"PATH=/etc\"]}", &err) < 0);
	CHECK(strstr(runm_error_msg(err), "permission denied") != NULL);
	CHECK(check_entry(root, "{\"args\":[\"/etc\"]}", &err) < 0); /* a directory */
	CHECK(strstr(runm_error_msg(err), "permission denied") != NULL);
	/* A symlink out of the rootfs stays inside it: /bin/true of the rootfs, absent. */
	CHECK(check_entry(root, "{\"args\":[\"/bin/esc\"]}", &err) < 0);
	CHECK(check_entry(root, "{\"args\":[]}", &err) < 0);
	CHECK(check_entry(root, "{\"args\":\"sh\"}", &err) < 0);
	rm_rf(root, NULL);
}



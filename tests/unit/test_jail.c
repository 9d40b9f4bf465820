/* Unit tests of src/vm/jail.c (the VMM's confinement): the plan computed
 * from a spec (what is bound where, in which order, what is refused), and,
 * as root, a real jail entered by a forked child standing in for QEMU:
 * what it sees of the host, its capabilities, and that binds staged on the
 * host after it entered (engine/stage.c, a pod's second container) reach
 * it read-only where asked, and go away when released. */
#include "common/util.h"
#include "engine/stage.h"
#include "harness.h"
#include "vm/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/runm-test-jail-XXXXXX";
	if (mkdtemp(tmpl) == NULL)
		abort();
	return xstrdup(tmpl);
}

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		abort();
	close(fd);
}

/* The index of the first step of kind at path (and src when not NULL), or -1. */
static long find(const struct jail *j, enum jail_step_kind kind, const char *path, const char *src)
{
	for (size_t i = 0; i < j->n_steps; i++) {
		const struct jail_step *s = &j->steps[i];
		if (s->kind == kind && (path == NULL || (s->path && strcmp(s->path, path) == 0)) &&
		    (src == NULL || (s->src && strcmp(s->src, src) == 0)))
			return (long)i;
	}
	return -1;
}

struct fixture {
	char *top, *root, *kernel, *initrd, *share;
};

static void fixture_make(struct fixture *fx)
{
	fx->top = tmpdir();
	fx->root = xasprintf("%s/state/" JAIL_DIR, fx->top);
	fx->kernel = xasprintf("%s/vmlinux", fx->top);
	fx->initrd = xasprintf("%s/initrd.img", fx->top);
	fx->share = xasprintf("%s/state/shared", fx->top);
	touch(fx->kernel);
	touch(fx->initrd);
}

/* Also on a failed CHECK (cleanup attribute): nothing left in /tmp. */
static void fixture_free(struct fixture *fx)
{
	cleanup_error runm_error_t err = NULL;
	if (fx->top)
		rm_rf(fx->top, &err);
	free(fx->top);
	free(fx->root);
	free(fx->kernel);
	free(fx->initrd);
	free(fx->share);
}

TEST(plan_binds_only_what_qemu_opens)
{
	struct fixture fx __attribute__((cleanup(fixture_free))) = { 0 };
	cleanup_jail struct jail *j = NULL;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *usr = NULL, *k = NULL, *sh = NULL, *null = NULL, *kvm = NULL, *lib = NULL;
	const char *shares[1];
	struct jail_spec spec;
	long i;
	struct stat st;

	fixture_make(&fx);
	shares[0] = fx.share;
	spec = (struct jail_spec){ .root = fx.root, .binary = "/usr/bin/true", .kernel = fx.kernel,
				   .initrd = fx.initrd, .shares = shares, .n_shares = 1, .caps = JAIL_CAPS };
	CHECK(jail_plan(&spec, &j, &err) == 0);
	CHECK_STR(j->root, fx.root);
	CHECK(j->caps == JAIL_CAPS);
	/* The namespace first, / a slave, the tmpfs; the switch and the caps last. */
	CHECK(j->n_steps > 5);
	CHECK_EQ_INT(j->steps[0].kind, JAIL_UNSHARE);
	CHECK(j->steps[0].flags & CLONE_NEWNS);
	CHECK_EQ_INT(j->steps[1].kind, JAIL_MOUNT);
	CHECK_STR(j->steps[1].path, "/");
	CHECK_EQ_INT(j->steps[1].flags, MS_REC | MS_SLAVE);
	CHECK_STR(j->steps[2].fstype, "tmpfs");
	CHECK_STR(j->steps[2].path, fx.root);
	CHECK_EQ_INT(j->steps[j->n_steps - 2].kind, JAIL_PIVOT);
	CHECK_STR(j->steps[j->n_steps - 2].path, fx.root);
	CHECK_EQ_INT(j->steps[j->n_steps - 1].kind, JAIL_CAPS_DROP);
	/* The tmpfs read-only once filled. */
	CHECK(j->steps[j->n_steps - 3].flags & MS_RDONLY);
	CHECK_STR(j->steps[j->n_steps - 3].path, fx.root);

	/* /usr read-only and not recursive; the binary under it not bound again. */
	usr = xasprintf("%s/usr", fx.root);
	i = find(j, JAIL_MOUNT, usr, "/usr");
	CHECK(i > 0);
	CHECK_EQ_INT(j->steps[i].flags, MS_BIND);
	CHECK(j->steps[i + 1].flags & MS_REMOUNT);
	CHECK(j->steps[i + 1].flags & MS_RDONLY);
	CHECK(find(j, JAIL_MOUNT, NULL, "/usr/bin/true") < 0);
	/* Merged /usr: /lib a symlink in the jail as on the host. */
	if (lstat("/lib", &st) == 0 && S_ISLNK(st.st_mode)) {
		lib = xasprintf("%s/lib", fx.root);
		CHECK(find(j, JAIL_SYMLINK, lib, NULL) >= 0);
	}
	/* The kernel on an empty file at its own path, read-only, noexec. */
	k = xasprintf("%s%s", fx.root, fx.kernel);
	CHECK(find(j, JAIL_MKFILE, k, NULL) >= 0);
	i = find(j, JAIL_MOUNT, k, fx.kernel);
	CHECK(i > find(j, JAIL_MKFILE, k, NULL));
	CHECK(j->steps[i + 1].flags & MS_RDONLY);
	CHECK(j->steps[i + 1].flags & MS_NOEXEC);
	/* The share recursive and a slave, its parents created first. */
	sh = xasprintf("%s%s", fx.root, fx.share);
	i = find(j, JAIL_MOUNT, sh, fx.share);
	CHECK(i > find(j, JAIL_MKDIR, sh, NULL));
	CHECK_EQ_INT(j->steps[i].flags, MS_BIND | MS_REC);
	CHECK_EQ_INT(j->steps[i + 1].flags, MS_REC | MS_SLAVE);
	/* /dev/null, no /dev/kvm unless asked, nothing else of /etc than ld.so.cache. */
	null = xasprintf("%s/dev/null", fx.root);
	kvm = xasprintf("%s/dev/kvm", fx.root);
	CHECK(find(j, JAIL_MOUNT, null, "/dev/null") >= 0);
	CHECK(find(j, JAIL_MKFILE, kvm, NULL) < 0);
	CHECK(find(j, JAIL_MOUNT, NULL, "/etc/resolv.conf") < 0);
	CHECK(find(j, JAIL_MOUNT, NULL, "/etc") < 0);
	/* Every target is inside the jail once past the first two steps. */
	for (size_t n = 2; n < j->n_steps; n++)
		if (j->steps[n].path)
			CHECK(strncmp(j->steps[n].path, fx.root, strlen(fx.root)) == 0);
	/* Each step can be described for an error message. */
	for (size_t n = 0; n < j->n_steps; n++) {
		cleanup_free char *d = jail_step_describe(j, n);
		CHECK(strncmp(d, "confine the VMM", 15) == 0);
	}
}

TEST(plan_adds_kvm_and_resolv_when_asked)
{
	struct fixture fx __attribute__((cleanup(fixture_free))) = { 0 };
	cleanup_jail struct jail *j = NULL;
	cleanup_error runm_error_t err = NULL;
	struct jail_spec spec;
	struct stat st;
	int r;

	fixture_make(&fx);
	spec = (struct jail_spec){ .root = fx.root, .binary = "/usr/bin/true", .kernel = fx.kernel,
				   .initrd = fx.initrd, .kvm = true, .resolv = true };
	r = jail_plan(&spec, &j, &err);
	CHECK(r == 0);
	/* Asked for and missing on the host: QEMU's own error tells (and the
	 * automatic choice retries under TCG), the jail does not decide. */
	CHECK((find(j, JAIL_MOUNT, NULL, "/dev/kvm") >= 0) == (stat("/dev/kvm", &st) == 0));
	if (stat("/etc/resolv.conf", &st) == 0)
		CHECK(find(j, JAIL_MOUNT, NULL, "/etc/resolv.conf") >= 0);
}

TEST(plan_refuses_paths_it_cannot_copy)
{
	static const char *const bad[] = { "relative/vmlinux", "/a/../etc/shadow", "/a/./b", "/a/..", "" };
	cleanup_error runm_error_t err = NULL;
	struct fixture fx __attribute__((cleanup(fixture_free))) = { 0 };

	fixture_make(&fx);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cleanup_jail struct jail *j = NULL;
		struct jail_spec spec = { .root = fx.root, .binary = "/usr/bin/true", .kernel = bad[i],
					  .initrd = fx.initrd };
		CHECK(jail_plan(&spec, &j, &err) < 0);
		CHECK(j == NULL);
		spec.kernel = fx.kernel;
		spec.root = bad[i];
		CHECK(jail_plan(&spec, &j, &err) < 0);
	}
	/* A missing kernel fails at plan time, naming it. */
	{
		cleanup_jail struct jail *j = NULL;
		struct jail_spec spec = { .root = fx.root, .binary = "/usr/bin/true", .kernel = "/nonexistent/vmlinux",
					  .initrd = fx.initrd };
		CHECK(jail_plan(&spec, &j, &err) < 0);
		CHECK(strstr(runm_error_msg(err), "/nonexistent/vmlinux") != NULL);
	}
}

/* ---- a real jail (root) ---- */

static bool isolated(void)
{
	static int done = -1;
	if (done < 0)
		done = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
		       mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	if (!done)
		fprintf(stderr, "  (skipped: needs root for a mount namespace)\n");
	return done;
}

static void wait_byte(int fd)
{
	char c;
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

static void send_byte(int fd)
{
	(void)!write(fd, "x", 1);
}

static int can_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* The child's checks, in order; its exit status is the number of the
 * first that failed (0: all passed). Syscalls only: it is a fork. */
static int jailed_child(const struct jail *j, const char *shared, int ready, int go)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2];
	char rootfs_etc[4096], rw[4096], ro[4096];
	size_t failed = 0;
	struct stat st;

	snprintf(rootfs_etc, sizeof(rootfs_etc), "%s/c1/" STAGE_ROOTFS "/etc", shared);
	snprintf(rw, sizeof(rw), "%s/c1/m0/written", shared);
	snprintf(ro, sizeof(ro), "%s/c1/m1/written", shared);
	if (jail_enter(j, &failed) != 0)
		return 100 + (int)failed;
	if (access("/etc/shadow", F_OK) == 0 || access("/root", F_OK) == 0)
		return 1;
	/* pid 1 has every capability: more than this child may ptrace. */
	if (access("/proc/1", F_OK) == 0)
		return 10;
	if (access("/usr/bin", X_OK) != 0 || can_write("/dev/null") != 0 || access("/bin/sh", X_OK) != 0)
		return 2;
	/* Its own /proc/self (QEMU's 9p chmods through /proc/self/fd), no other process, no /proc/sys. */
	if (access("/proc/self/fd/0", F_OK) != 0 || access("/proc/sys", F_OK) == 0)
		return 9;
	if (syscall(SYS_capget, &hdr, caps) < 0 || caps[0].effective != (uint32_t)JAIL_CAPS ||
	    caps[1].effective != 0 || caps[0].permitted != (uint32_t)JAIL_CAPS)
		return 3;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 || prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_READ, CAP_MKNOD, 0, 0, 0) != 0)
		return 4;
	/* Mounting needs CAP_SYS_ADMIN, gone. */
	if (mount("tmpfs", "/dev", "tmpfs", 0, NULL) == 0 || errno != EPERM)
		return 5;
	send_byte(ready);
	wait_byte(go); /* the host staged container c1 */
	if (stat(rootfs_etc, &st) != 0 || !S_ISDIR(st.st_mode))
		return 6;
	if (can_write(rw) != 0 || can_write(ro) != EROFS)
		return 7;
	send_byte(ready);
	wait_byte(go); /* the host released c1 */
	if (stat(rootfs_etc, &st) == 0)
		return 8;
	return 0;
}

/* What the child test leaves if a CHECK fails half-way: the child, the
 * staged binds, the temp dir. */
struct child_ctx {
	char *top, *state;
	pid_t pid;
};

static void child_ctx_free(struct child_ctx *c)
{
	cleanup_error runm_error_t err = NULL;
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (c->state)
		stage_release_all(c->state);
	if (c->top)
		rm_rf(c->top, &err);
	free(c->top);
	free(c->state);
}

TEST(child_in_jail_sees_late_binds_and_keeps_few_caps)
{
	struct child_ctx ctx __attribute__((cleanup(child_ctx_free))) = { .pid = -1 };
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *shared = NULL, *kernel = NULL, *root = NULL;
	const char *top, *state;
	cleanup_free char *rootfs = NULL, *etc = NULL, *rw = NULL, *ro = NULL, *seen = NULL;
	cleanup_jail struct jail *j = NULL;
	struct spec sp = { 0 };
	struct spec_share shares[2];
	const char *share_paths[1];
	struct jail_spec spec;
	int ready[2], go[2], status = -1;
	pid_t pid;

	if (!isolated())
		return;
	signal(SIGPIPE, SIG_IGN); /* a child that failed early closed its pipes */
	top = ctx.top = tmpdir();
	state = ctx.state = xasprintf("%s/state", top);
	kernel = xasprintf("%s/vmlinux", top);
	root = xasprintf("%s/" JAIL_DIR, state);
	rootfs = xasprintf("%s/rootfs", top);
	etc = xasprintf("%s/etc", rootfs);
	rw = xasprintf("%s/rw", top);
	ro = xasprintf("%s/ro", top);
	CHECK(mkdir(state, 0700) == 0 && mkdir(rootfs, 0755) == 0 && mkdir(etc, 0755) == 0 && mkdir(rw, 0755) == 0 &&
	      mkdir(ro, 0755) == 0);
	touch(kernel);
	CHECK(stage_shared_create(state, &shared, &err) == 0);
	share_paths[0] = shared;
	spec = (struct jail_spec){ .root = root, .binary = "/usr/bin/true", .kernel = kernel, .initrd = kernel,
				   .shares = share_paths, .n_shares = 1, .caps = JAIL_CAPS };
	CHECK(jail_plan(&spec, &j, &err) == 0);
	CHECK(jail_prepare(j, &err) == 0);
	CHECK(pipe2(ready, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0);
	pid = ctx.pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(jailed_child(j, shared, ready[1], go[0]));
	close(ready[1]);
	close(go[0]);
	wait_byte(ready[0]);
	/* A container staged after the "VMM" started, as sandbox_bind_container does. */
	shares[0] = (struct spec_share){ .host_path = rw, .tag = (char *)"m0" };
	shares[1] = (struct spec_share){ .host_path = ro, .tag = (char *)"m1", .readonly = true };
	sp.rootfs = rootfs;
	sp.shares = shares;
	sp.n_shares = 2;
	CHECK(stage_container(shared, "c1", &sp, &err) == 0);
	send_byte(go[1]);
	wait_byte(ready[0]);
	/* What the jailed child wrote through the rw bind is on the host. */
	seen = xasprintf("%s/written", rw);
	stage_container_release(shared, "c1");
	send_byte(go[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ctx.pid = -1;
	close(ready[0]);
	close(go[1]);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "  jailed child: status %d (exit %d: first failed check)\n", status,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(access(seen, F_OK) == 0);
	/* Nothing of the jail on the host: an empty directory, removed. */
	jail_cleanup(j);
	CHECK(access(root, F_OK) < 0);
}

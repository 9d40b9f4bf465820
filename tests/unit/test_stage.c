/* Unit tests of src/engine/stage.c (late binding: a container's rootfs and
 * bind sources bound into the VM's shared directory): the layout, read-only
 * binds read-only on the host side (mountinfo says ro, writes get EROFS,
 * submounts included), release that leaves nothing mounted and never
 * unmounts the host's own submounts of a source (propagation), cleanup
 * after a "crash" (stage_release_all), and rm_rf refusing to descend into a
 * mount point. Needs root; runs in a mount namespace of its own. */
#include "common/util.h"
#include "engine/stage.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Options of the mount at exactly mp ("ro,..."), or NULL. The last entry
 * wins (what is on top). */
static char *mount_opts(const char *mp)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], *res = NULL;
	while (f && fgets(line, sizeof(line), f)) {
		char m[4096], o[1024];
		if (sscanf(line, "%*s %*s %*s %*s %4095s %1023s", m, o) == 2 && strcmp(m, mp) == 0) {
			free(res);
			res = xstrdup(o);
		}
	}
	if (f)
		fclose(f);
	return res;
}

static int count_mounts_under(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int n = 0;
	size_t len = strlen(dir);
	while (f && fgets(line, sizeof(line), f)) {
		char m[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", m) == 1 && strncmp(m, dir, len) == 0 &&
		    (m[len] == '\0' || m[len] == '/'))
			n++;
	}
	if (f)
		fclose(f);
	return n;
}

static void put(const char *path, const char *text)
{
	cleanup_error runm_error_t err = NULL;
	if (write_file_atomic(path, text, strlen(text), 0644, &err) < 0)
		abort();
}

static int try_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

struct fixture {
	char *top, *state, *rootfs, *rw, *ro, *file;
	struct spec spec;
	struct spec_share shares[3];
};

/* top/{state,rootfs/etc,rw,ro/sub (a tmpfs, the host's own submount, in a
 * shared peer group),conf.txt} and a spec binding rw, ro (ro) and conf.txt (ro). */
static void fixture_make(struct fixture *fx)
{
	char tmpl[] = "/tmp/runm-test-stage-XXXXXX";
	cleanup_free char *sub = NULL, *etc = NULL;

	memset(fx, 0, sizeof(*fx));
	if (mkdtemp(tmpl) == NULL)
		abort();
	fx->top = xstrdup(tmpl);
	fx->state = xasprintf("%s/state", fx->top);
	fx->rootfs = xasprintf("%s/rootfs", fx->top);
	fx->rw = xasprintf("%s/rw", fx->top);
	fx->ro = xasprintf("%s/ro", fx->top);
	fx->file = xasprintf("%s/conf.txt", fx->top);
	etc = xasprintf("%s/etc", fx->rootfs);
	sub = xasprintf("%s/sub", fx->ro);
	if (mkdir(fx->state, 0700) < 0 || mkdir(fx->rootfs, 0755) < 0 || mkdir(etc, 0755) < 0 ||
	    mkdir(fx->rw, 0755) < 0 || mkdir(fx->ro, 0755) < 0 || mkdir(sub, 0755) < 0)
		abort();
	put(fx->file, "key=value\n");
	/* The source a mount of its own, shared (as under systemd), with a
	 * submount: unmounting our copy must not take it away. */
	if (mount(fx->ro, fx->ro, NULL, MS_BIND, NULL) < 0 || mount(NULL, fx->ro, NULL, MS_SHARED, NULL) < 0 ||
	    mount("tmpfs", sub, "tmpfs", 0, "size=1m") < 0)
		abort();
	fx->shares[0] = (struct spec_share){ .host_path = fx->rw, .tag = (char *)"m0" };
	fx->shares[1] = (struct spec_share){ .host_path = fx->ro, .tag = (char *)"m1", .readonly = true };
	fx->shares[2] = (struct spec_share){ .host_path = fx->file, .file = (char *)"conf.txt", .tag = (char *)"m2",
					     .readonly = true };
	fx->spec.rootfs = fx->rootfs;
	fx->spec.shares = fx->shares;
	fx->spec.n_shares = 3;
}

static void fixture_free(struct fixture *fx)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *sub = xasprintf("%s/sub", fx->ro);
	umount2(sub, MNT_DETACH);
	umount2(fx->ro, MNT_DETACH);
	if (count_mounts_under(fx->top) == 0)
		rm_rf(fx->top, &err);
	free(fx->top);
	free(fx->state);
	free(fx->rootfs);
	free(fx->rw);
	free(fx->ro);
	free(fx->file);
}

TEST(bind_layout_and_readonly_on_the_host)
{
	struct fixture fx;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *shared = NULL, *p = NULL, *o = NULL;

	if (!isolated())
		return;
	fixture_make(&fx);
	CHECK(stage_shared_create(fx.state, &shared, &err) == 0);
	CHECK(stage_container(shared, "c1", &fx.spec, &err) == 0);

	/* The rootfs: read-write on the host even for a read-only rootfs. */
	p = xasprintf("%s/c1/rootfs", shared);
	o = mount_opts(p);
	CHECK(o && strncmp(o, "rw", 2) == 0);
	free(p);
	p = xasprintf("%s/c1/rootfs/etc/new", shared);
	CHECK_EQ_INT(try_write(p), 0);
	free(p);
	free(o);
	/* A read-write dir. */
	p = xasprintf("%s/c1/m0/w", shared);
	CHECK_EQ_INT(try_write(p), 0);
	free(p);
	/* A read-only dir: ro in mountinfo, EROFS, its submount too. */
	p = xasprintf("%s/c1/m1", shared);
	o = mount_opts(p);
	CHECK(o && strncmp(o, "ro", 2) == 0 && (o[2] == '\0' || o[2] == ','));
	free(o);
	free(p);
	p = xasprintf("%s/c1/m1/w", shared);
	CHECK_EQ_INT(try_write(p), -EROFS);
	free(p);
	p = xasprintf("%s/c1/m1/sub/w", shared);
	CHECK_EQ_INT(try_write(p), -EROFS);
	free(p);
	/* A read-only file: alone in its directory. */
	p = xasprintf("%s/c1/m2/conf.txt", shared);
	o = mount_opts(p);
	CHECK(o && strncmp(o, "ro", 2) == 0);
	free(o);
	CHECK_EQ_INT(try_write(p), -EROFS);
	free(p);
	/* The host's side stays writable. */
	p = xasprintf("%s/sub/w", fx.ro);
	CHECK_EQ_INT(try_write(p), 0);
	free(p);
	p = NULL;
	o = NULL;

	stage_container_release(shared, "c1");
	CHECK_EQ_INT(count_mounts_under(fx.state), 1); /* the shared dir's own mount */
	p = xasprintf("%s/c1", shared);
	CHECK(access(p, F_OK) < 0 && errno == ENOENT);
	/* The host's own submount of the source is still there. */
	free(p);
	p = xasprintf("%s/sub", fx.ro);
	CHECK_EQ_INT(count_mounts_under(p), 1);
	free(p);
	p = xasprintf("%s/sub/w", fx.ro);
	CHECK(access(p, F_OK) == 0);
	stage_release_all(fx.state);
	CHECK_EQ_INT(count_mounts_under(fx.state), 0);
	CHECK(access(shared, F_OK) < 0);
	fixture_free(&fx);
}

TEST(release_all_after_a_crash)
{
	struct fixture fx;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *shared = NULL, *p = NULL;

	if (!isolated())
		return;
	fixture_make(&fx);
	CHECK(stage_shared_create(fx.state, &shared, &err) == 0);
	CHECK(stage_container(shared, "a", &fx.spec, &err) == 0);
	CHECK(stage_container(shared, "b", &fx.spec, &err) == 0); /* a second container joins */
	CHECK(count_mounts_under(fx.state) >= 9);
	/* Nobody released anything: the shim's delete, runm delete. */
	stage_release_all(fx.state);
	CHECK_EQ_INT(count_mounts_under(fx.state), 0);
	CHECK(access(shared, F_OK) < 0);
	p = xasprintf("%s/sub", fx.ro);
	CHECK_EQ_INT(count_mounts_under(p), 1);
	CHECK(access(fx.file, F_OK) == 0 && access(fx.rw, F_OK) == 0);
	fixture_free(&fx);
}

TEST(failed_bind_leaves_nothing)
{
	struct fixture fx;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *shared = NULL, *p = NULL;

	if (!isolated())
		return;
	fixture_make(&fx);
	fx.shares[2].host_path = (char *)"/nonexistent/runm-test";
	CHECK(stage_shared_create(fx.state, &shared, &err) == 0);
	CHECK(stage_container(shared, "c", &fx.spec, &err) < 0);
	CHECK(err && strstr(runm_error_msg(err), "/nonexistent/runm-test"));
	CHECK_EQ_INT(count_mounts_under(fx.state), 1);
	p = xasprintf("%s/c", shared);
	CHECK(access(p, F_OK) < 0);
	runm_error_release(&err);
	CHECK(stage_container(shared, "../x", &fx.spec, &err) < 0);
	stage_release_all(fx.state);
	fx.shares[2].host_path = fx.file;
	fixture_free(&fx);
}

TEST(rm_rf_stops_at_a_mount_point)
{
	struct fixture fx;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *d = NULL, *m = NULL, *keep = NULL;

	if (!isolated())
		return;
	fixture_make(&fx);
	d = xasprintf("%s/tree", fx.state);
	m = xasprintf("%s/tree/bound", fx.state);
	keep = xasprintf("%s/keep", fx.rw);
	put(keep, "mine\n");
	CHECK(mkdir(d, 0700) == 0 && mkdir(m, 0700) == 0);
	CHECK(mount(fx.rw, m, NULL, MS_BIND, NULL) == 0);
	CHECK(rm_rf(d, &err) < 0);
	CHECK(access(keep, F_OK) == 0);
	umount2(m, MNT_DETACH);
	runm_error_release(&err);
	CHECK(rm_rf(d, &err) == 0);
	fixture_free(&fx);
}

/* The race runc's CVE-2021-30465 is about, forced: spec.c checked a source
 * with no symlink in its path, then a component of it (or the source
 * itself) became a symlink to somewhere else before the bind. The bind is
 * refused, nothing is mounted, and what the link points to is never shared. */
TEST(source_swapped_for_a_symlink_is_refused)
{
	struct fixture fx;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *shared = NULL, *moved = NULL, *secret = NULL, *p = NULL, *parent = NULL;

	if (!isolated())
		return;
	fixture_make(&fx);
	CHECK(stage_shared_create(fx.state, &shared, &err) == 0);
	/* The directory source itself swapped: rw -> a link to the host's secret dir. */
	moved = xasprintf("%s/rw.checked", fx.top);
	secret = xasprintf("%s/secret", fx.top);
	CHECK(mkdir(secret, 0700) == 0 && rename(fx.rw, moved) == 0 && symlink(secret, fx.rw) == 0);
	CHECK(stage_container(shared, "c", &fx.spec, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "symlink") != NULL);
	CHECK_EQ_INT(count_mounts_under(fx.state), 1);
	p = xasprintf("%s/c", shared);
	CHECK(access(p, F_OK) < 0);
	runm_error_release(&err);
	CHECK(unlink(fx.rw) == 0 && rename(moved, fx.rw) == 0);
	/* A parent of the file source swapped: top/etcdir -> a link, the file
	 * named through it. */
	parent = xasprintf("%s/files", fx.top);
	CHECK(mkdir(parent, 0755) == 0);
	free(p);
	p = xasprintf("%s/files/conf.txt", fx.top);
	put(p, "x\n");
	CHECK(rename(parent, moved) == 0 && symlink(moved, parent) == 0);
	fx.shares[2].host_path = p;
	CHECK(stage_container(shared, "c", &fx.spec, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "symlink") != NULL);
	CHECK_EQ_INT(count_mounts_under(fx.state), 1);
	fx.shares[2].host_path = fx.file;
	stage_release_all(fx.state);
	fixture_free(&fx);
}

/* The same race on the rootfs: spec_load checked it (no symlink in it),
 * then it or a parent became a symlink to a host directory before the
 * bind. Refused; nothing mounted; the host directory never shared. */
TEST(rootfs_swapped_for_a_symlink_is_refused)
{
	struct fixture fx;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *shared = NULL, *moved = NULL, *secret = NULL, *p = NULL, *parent = NULL, *nested = NULL;

	if (!isolated())
		return;
	fixture_make(&fx);
	CHECK(stage_shared_create(fx.state, &shared, &err) == 0);
	fx.spec.n_shares = 0;
	p = xasprintf("%s/c", shared);
	/* The rootfs itself: rootfs -> the host's secret dir. */
	moved = xasprintf("%s/rootfs.checked", fx.top);
	secret = xasprintf("%s/secret", fx.top);
	CHECK(mkdir(secret, 0700) == 0 && rename(fx.rootfs, moved) == 0 && symlink(secret, fx.rootfs) == 0);
	CHECK(stage_container(shared, "c", &fx.spec, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "rootfs") != NULL && strstr(runm_error_msg(err), "symlink") != NULL);
	CHECK_EQ_INT(count_mounts_under(fx.state), 1);
	CHECK(access(p, F_OK) < 0);
	runm_error_release(&err);
	CHECK(unlink(fx.rootfs) == 0 && rename(moved, fx.rootfs) == 0);
	/* A parent of it: top/b/rootfs named through b, then b -> elsewhere. */
	parent = xasprintf("%s/b", fx.top);
	nested = xasprintf("%s/b/rootfs", fx.top);
	CHECK(mkdir(parent, 0755) == 0 && mkdir(nested, 0755) == 0);
	CHECK(rename(parent, moved) == 0 && symlink(moved, parent) == 0);
	fx.spec.rootfs = nested;
	CHECK(stage_container(shared, "c", &fx.spec, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "`b` became a symlink") != NULL);
	CHECK_EQ_INT(count_mounts_under(fx.state), 1);
	CHECK(access(p, F_OK) < 0);
	runm_error_release(&err);
	/* Unswapped, the same path binds (through the fd, the real rootfs). */
	fx.spec.rootfs = fx.rootfs;
	CHECK(stage_container(shared, "c", &fx.spec, &err) == 0);
	free(p);
	p = xasprintf("%s/c/rootfs/etc", shared);
	CHECK(access(p, F_OK) == 0);
	stage_release_all(fx.state);
	fixture_free(&fx);
}

/* The check half (spec_load): root.path is taken relative to the bundle's
 * real path, so a bundle named through a symlink is fine; a rootfs that is
 * a symlink (or has one in it) is refused, as runc refuses it. */
TEST(spec_load_refuses_a_symlinked_rootfs)
{
	char tmpl[] = "/tmp/runm-test-rootfs-XXXXXX";
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *top = NULL, *bundle = NULL, *link = NULL, *real = NULL, *cfg = NULL, *elsewhere = NULL;
	cleanup_free char *want = NULL;
	struct spec sp;
	const char *json = "{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":\"rootfs\"}}";

	CHECK(mkdtemp(tmpl) != NULL);
	top = xstrdup(tmpl);
	bundle = xasprintf("%s/bundle", top);
	link = xasprintf("%s/via-link", top);
	real = xasprintf("%s/rootfs", bundle);
	cfg = xasprintf("%s/config.json", bundle);
	elsewhere = xasprintf("%s/elsewhere", top);
	CHECK(mkdir(bundle, 0755) == 0 && mkdir(real, 0755) == 0 && mkdir(elsewhere, 0755) == 0);
	put(cfg, json);
	CHECK(symlink(bundle, link) == 0);
	CHECK(spec_load("c", link, &sp, &err) == 0);
	CHECK_STR(sp.rootfs, real);
	spec_release(&sp);
	/* The rootfs a symlink to another directory. */
	CHECK(rmdir(real) == 0 && symlink(elsewhere, real) == 0);
	CHECK(spec_load("c", bundle, &sp, &err) < 0);
	want = xasprintf("rootfs `%s` resolves to `%s`", real, elsewhere);
	CHECK(strstr(runm_error_msg(err), want) != NULL);
	CHECK(sp.rootfs == NULL);
	runm_error_release(&err);
	/* Missing: said, not left to the bind. */
	CHECK(unlink(real) == 0);
	CHECK(spec_load("c", bundle, &sp, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "rootfs") != NULL);
	CHECK(rm_rf(top, &err) == 0);
}

/* stage.c - see stage.h. */
#include "engine/stage.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

int stage_shared_create(const char *state_dir, char **dir, runm_error_t *err)
{
	cleanup_free char *d = xasprintf("%s/" STAGE_SHARED, state_dir);

	if (mkdir(d, 0700) < 0)
		return runm_error_make(err, errno, "create `%s`", d);
	/* A mount of its own, made private first: with a shared parent
	 * (systemd makes / shared) every container's binds would otherwise show
	 * up in, and be pinned by, the mount namespaces that are its peers.
	 * Then shared, in a peer group of its own: the VMM's jail (vm/jail.h)
	 * holds a slave copy of it, which must receive the binds made here
	 * after QEMU started; a slave sends nothing back. */
	if (mount(d, d, NULL, MS_BIND, NULL) < 0 || mount(NULL, d, NULL, MS_PRIVATE, NULL) < 0 ||
	    mount(NULL, d, NULL, MS_SHARED, NULL) < 0) {
		int e = errno;
		umount2(d, MNT_DETACH);
		rmdir(d);
		return runm_error_make(err, e, "make `%s` a mount of its own", d);
	}
	*dir = steal_ptr(&d);
	return 0;
}

/* Read-only for the VMM as well as for the container. mount_setattr leaves
 * the other flags (nosuid, nodev) alone and reaches the submounts of a
 * recursive bind; before Linux 5.12 only the top is remounted. */
static int make_readonly(const char *target, runm_error_t *err)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };

	if (mount_setattr(AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
		return 0;
	if (errno == ENOSYS && mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0)
		return 0;
	return runm_error_make(err, errno, "make `%s` read-only", target);
}

/* The bind as a detached tree (open_tree), its flags set before it is
 * attached: the copy that propagates into the VMM's jail at attach time
 * takes the flags the tree has then, and a remount afterwards would reach
 * the host's copy only. Read-only when ro, and always nosuid and nodev:
 * the guest's own kernel honours suid bits and device nodes it reads
 * through 9p, the VMM never needs to, and a VMM taken over by the guest
 * must not open a device node found in an image (a host disk). -1 with
 * errno ENOSYS before Linux 5.12 (no mount_setattr). */
static int attach_tree(const char *src, const char *target, bool dir, bool ro)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (ro ? MOUNT_ATTR_RDONLY : 0) };
	cleanup_close int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (dir ? AT_RECURSIVE : 0));
	if (tree < 0 || mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0 ||
	    move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return -1;
	return 0;
}

/* Bind src on target (an existing empty directory or file). A directory is
 * bound recursively, as the 9p share of it used to serve its submounts
 * too, and made a slave at once: unmounting our copy must never propagate
 * back to the source's peers and take the host's own submounts with it. */
static int bind_one(const char *src, const char *shown, const char *target, bool dir, bool ro, runm_error_t *err)
{
	if (attach_tree(src, target, dir, ro) == 0)
		ro = false; /* read-only already */
	else if (errno != ENOSYS)
		return runm_error_make(err, errno, "bind `%s` for the VM", shown);
	else if (mount(src, target, NULL, MS_BIND | (dir ? MS_REC : 0), NULL) < 0)
		return runm_error_make(err, errno, "bind `%s` for the VM", shown);
	else if (ro)
		log_warn("Linux < 5.12: `%s` is read-only for the container but not for the VMM's view of it", shown);
	if (mount(NULL, target, NULL, MS_REC | MS_SLAVE, NULL) < 0) {
		int e = errno;
		umount2(target, MNT_DETACH);
		return runm_error_make(err, e, "make the bind of `%s` a slave mount", shown);
	}
	if (ro && make_readonly(target, err) < 0) {
		umount2(target, MNT_DETACH);
		return -1;
	}
	return 0;
}

/* An O_PATH fd on path (absolute), opened one component at a time with
 * O_NOFOLLOW: no symlink anywhere in it is followed. spec.c checked the
 * rootfs and each bind source have none, but a component could be swapped
 * for one since (runc's CVE-2021-30465 is the same race on the other end):
 * binding through the fd binds exactly the object found now, or nothing.
 * what names the path in errors ("rootfs", "bind mount source"). */
static int open_no_symlinks(const char *what, const char *path, bool dir, runm_error_t *err)
{
	cleanup_free char *copy = xstrdup(path);
	cleanup_close int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char *save = NULL;
	struct stat st;

	if (fd < 0)
		return runm_error_make(err, errno, "open /");
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next = openat(fd, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return runm_error_make(err, errno, "%s `%s`", what, path);
		close(fd);
		fd = next;
		/* O_PATH|O_NOFOLLOW opens a symlink itself: refuse it, on the way or at the end. */
		if (fstat(fd, &st) < 0)
			return runm_error_make(err, errno, "%s `%s`", what, path);
		if (S_ISLNK(st.st_mode))
			return runm_error_make(err, ELOOP, "%s `%s`: `%s` became a symlink since it was checked", what,
					       path, c);
	}
	if (fstat(fd, &st) < 0)
		return runm_error_make(err, errno, "%s `%s`", what, path);
	if (dir ? !S_ISDIR(st.st_mode) : S_ISDIR(st.st_mode))
		return runm_error_make(err, EINVAL, "%s `%s` changed type since it was checked", what, path);
	return steal_fd(&fd);
}

static int stage_share(const char *cdir, const struct spec_share *sh, runm_error_t *err)
{
	cleanup_free char *d = xasprintf("%s/%s", cdir, sh->tag);
	cleanup_free char *target = NULL, *via = NULL;
	cleanup_close int fd = -1, src = -1;

	if (mkdir(d, 0700) < 0)
		return runm_error_make(err, errno, "create `%s`", d);
	src = open_no_symlinks("bind mount source", sh->host_path, sh->file == NULL, err);
	if (src < 0)
		return -1;
	/* mount(2) on the magic link binds what the fd holds, whatever the path says now. */
	via = xasprintf("/proc/self/fd/%d", src);
	if (sh->file == NULL)
		return bind_one(via, sh->host_path, d, true, sh->readonly, err);
	target = xasprintf("%s/%s", d, sh->file);
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return runm_error_make(err, errno, "create `%s`", target);
	return bind_one(via, sh->host_path, target, false, sh->readonly, err);
}

int stage_container(const char *shared, const char *id, const struct spec *sp, runm_error_t *err)
{
	cleanup_free char *cdir = NULL, *rootfs = NULL, *via = NULL;
	cleanup_close int src = -1;

	if (id[0] == '\0' || id[0] == '.' || strchr(id, '/'))
		return runm_error_make(err, EINVAL, "container id `%s` cannot name a directory", id);
	cdir = xasprintf("%s/%s", shared, id);
	rootfs = xasprintf("%s/" STAGE_ROOTFS, cdir);
	if (mkdir(cdir, 0700) < 0)
		return runm_error_make(err, errno, "create `%s`", cdir);
	/* A read-only rootfs is bound read-write all the same: crun makes the
	 * mount points of the container's mounts in it (runc does so on the
	 * host), then remounts it read-only for the container (root.readonly
	 * stays in the guest's config). */
	if (mkdir(rootfs, 0755) < 0) {
		runm_error_make(err, errno, "create `%s`", rootfs);
		goto fail;
	}
	/* The rootfs as the bind sources: by the walk, through the fd. */
	src = open_no_symlinks("rootfs", sp->rootfs, true, err);
	if (src < 0)
		goto fail;
	via = xasprintf("/proc/self/fd/%d", src);
	if (bind_one(via, sp->rootfs, rootfs, true, false, err) < 0)
		goto fail;
	for (size_t i = 0; i < sp->n_shares; i++)
		if (stage_share(cdir, &sp->shares[i], err) < 0)
			goto fail;
	return 0;
fail:
	stage_container_release(shared, id);
	return -1;
}

/* mountinfo's octal escapes (\040 for a space...) undone in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Mount points at or under dir, in mountinfo's order (a parent before what
 * is mounted on it). */
static char **mounts_under(const char *dir)
{
	cleanup_file FILE *f = fopen("/proc/self/mountinfo", "re");
	size_t n = strlen(dir);
	char **res = NULL;
	char line[8192];

	while (f && fgets(line, sizeof(line), f)) {
		char mp[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		unescape(mp);
		if (strncmp(mp, dir, n) == 0 && (mp[n] == '\0' || mp[n] == '/'))
			strv_push(&res, mp);
	}
	return res;
}

/* Unmount everything at or under dir, the deepest first; a few passes, as a
 * lazy unmount of a parent may leave a child listed until it went. */
static void unmount_under(const char *dir)
{
	for (int pass = 0; pass < 8; pass++) {
		cleanup_strv char **mps = mounts_under(dir);
		size_t n = strv_len(mps);
		if (n == 0)
			return;
		for (size_t i = n; i-- > 0;)
			if (umount2(mps[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
				log_warn("unmount `%s`: %s", mps[i], strerror(errno));
	}
	log_error("mounts left under `%s` after unmounting", dir);
}

/* Remove dir once nothing is mounted under it; refuse otherwise, so that no
 * removal ever reaches into a host directory that is still bound there. */
static void remove_unmounted(const char *dir)
{
	cleanup_strv char **left = mounts_under(dir);
	cleanup_error runm_error_t err = NULL;

	if (left) {
		log_error("not removing `%s`: `%s` is still mounted", dir, left[0]);
		return;
	}
	if (access(dir, F_OK) == 0 && rm_rf(dir, &err) < 0)
		log_warn("%s", runm_error_msg(err));
}

void stage_container_release(const char *shared, const char *id)
{
	cleanup_free char *cdir = xasprintf("%s/%s", shared, id);

	unmount_under(cdir);
	remove_unmounted(cdir);
}

void stage_release_all(const char *state_dir)
{
	static const char *const dirs[] = { STAGE_SHARED, "files" };

	/* After the VMM, which holds them open; the shared dir's own private
	 * mount goes last (deepest first). */
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		cleanup_free char *d = xasprintf("%s/%s", state_dir, dirs[i]);
		unmount_under(d);
		remove_unmounted(d);
	}
}

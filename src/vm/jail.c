/* jail.c - see jail.h. */
#include "jail.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/securebits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The jail's own tmpfs: directories, symlinks and mount points only. */
#define JAIL_TMPFS_OPTS "mode=0755,size=256k,nr_inodes=512"
/* Every bind of a file or directory QEMU only reads (/usr, the kernel). */
#define RO_FLAGS (MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)

/* The top-level directories that Debian's merged /usr makes symlinks into
 * /usr (bookworm: /bin -> usr/bin ...): recreated as such in the jail, or
 * bound read-only where they are real directories. */
static const char *const top_dirs[] = { "bin", "sbin", "lib", "lib64" };
/* The device nodes QEMU opens: /dev/null (and zero, full) for its own
 * plumbing, urandom and random for glib's and the guest RNG's seeds. No
 * /dev/net/tun: a tap comes as an open fd (engine/netns.c). */
static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom" };

struct plan {
	struct jail *j;
	char **made;       /* directories and files already in the plan (host paths) */
	char **linked_top; /* "/bin/", ... : covered by a symlink into /usr */
};

static void add(struct plan *p, enum jail_step_kind kind, const char *path, const char *src, const char *fstype,
		const char *data, unsigned long flags)
{
	struct jail *j = p->j;
	struct jail_step *s;

	j->steps = xrealloc(j->steps, (j->n_steps + 1) * sizeof(*j->steps));
	s = &j->steps[j->n_steps++];
	*s = (struct jail_step){
		.kind = kind,
		.path = path ? xstrdup(path) : NULL,
		.src = src ? xstrdup(src) : NULL,
		.fstype = fstype,
		.data = data,
		.flags = flags,
	};
}

static bool made(struct plan *p, const char *dir)
{
	for (size_t i = 0; p->made && p->made[i]; i++)
		if (strcmp(p->made[i], dir) == 0)
			return true;
	return false;
}

/* mkdir -p of the jail's copy of host directory dir (absolute, no "." or
 * ".." components: checked by the caller). */
static void plan_dirs(struct plan *p, const char *dir)
{
	cleanup_free char *copy = xstrdup(dir);
	for (char *c = copy + 1;; c++) {
		if (*c == '/' || *c == '\0') {
			char save = *c;
			*c = '\0';
			if (copy[1] != '\0' && !made(p, copy)) {
				cleanup_free char *t = xasprintf("%s%s", p->j->root, copy);
				add(p, JAIL_MKDIR, t, NULL, NULL, NULL, 0);
				strv_push(&p->made, copy);
			}
			*c = save;
			if (save == '\0')
				break;
		}
	}
}

/* Visible in the jail already: under /usr, or under a top-level symlink into it. */
static bool covered(const struct plan *p, const char *path)
{
	if (strncmp(path, "/usr/", 5) == 0)
		return true;
	for (size_t i = 0; p->linked_top && p->linked_top[i]; i++)
		if (strncmp(path, p->linked_top[i], strlen(p->linked_top[i])) == 0)
			return true;
	return false;
}

/* Absolute, and no "." or ".." component (plan_dirs copies it literally). */
static bool plain_path(const char *path)
{
	if (path == NULL || path[0] != '/')
		return false;
	for (const char *c = path; (c = strchr(c, '/')) != NULL; c++)
		if ((c[1] == '.' && (c[2] == '/' || c[2] == '\0')) ||
		    (c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0')))
			return false;
	return true;
}

/* Bind host path (a file, or a directory when dir) read-only at the same
 * path in the jail. */
static void bind_ro(struct plan *p, const char *path, bool dir, unsigned long extra)
{
	cleanup_free char *t = xasprintf("%s%s", p->j->root, path);
	cleanup_free char *parent = xstrdup(path);

	*strrchr(parent, '/') = '\0';
	if (parent[0])
		plan_dirs(p, parent);
	if (dir) {
		plan_dirs(p, path);
	} else {
		add(p, JAIL_MKFILE, t, NULL, NULL, NULL, 0);
	}
	/* Not recursive: whatever is mounted under the source stays out. */
	add(p, JAIL_MOUNT, t, path, NULL, NULL, MS_BIND);
	add(p, JAIL_MOUNT, t, NULL, NULL, NULL, RO_FLAGS | extra);
}

static int bind_file(struct plan *p, const char *what, const char *path, unsigned long extra, runm_error_t *err)
{
	struct stat st;

	if (!plain_path(path))
		return runm_error_make(err, EINVAL, "jail: %s `%s` is not a plain absolute path", what, path ? path : "");
	if (covered(p, path) || made(p, path)) /* the initrd may be the kernel (a test's) */
		return 0;
	if (stat(path, &st) < 0)
		return runm_error_make(err, errno, "jail: %s `%s`", what, path);
	bind_ro(p, path, S_ISDIR(st.st_mode), extra);
	strv_push(&p->made, path);
	return 0;
}

int jail_plan(const struct jail_spec *spec, struct jail **out, runm_error_t *err)
{
	struct plan p = { 0 };
	struct stat st;
	int r = -1;

	if (!plain_path(spec->root))
		return runm_error_make(err, EINVAL, "jail: root `%s` is not a plain absolute path",
				       spec->root ? spec->root : "");
	p.j = xzalloc(sizeof(*p.j));
	p.j->root = xstrdup(spec->root);
	p.j->caps = spec->caps;

	/* IPC and UTS come free: QEMU uses neither SysV IPC nor the hostname.
	 * The network namespace is the caller's choice (vm.c joins it first). */
	add(&p, JAIL_UNSHARE, NULL, NULL, NULL, NULL, CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS);
	/* Slave, not private: the VM's shared directory (a shared mount of
	 * its own, engine/stage.c) must keep receiving the container binds
	 * made on the host after QEMU started; nothing mounted in here ever
	 * propagates out. */
	add(&p, JAIL_MOUNT, "/", NULL, NULL, NULL, MS_REC | MS_SLAVE);
	add(&p, JAIL_MOUNT, p.j->root, "tmpfs", "tmpfs", JAIL_TMPFS_OPTS, MS_NOSUID | MS_NODEV | MS_NOEXEC);

	bind_ro(&p, "/usr", true, 0);
	for (size_t i = 0; i < ARRAY_SIZE(top_dirs); i++) {
		cleanup_free char *host = xasprintf("/%s", top_dirs[i]);
		char target[256];
		ssize_t n;

		if (lstat(host, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode) && (n = readlink(host, target, sizeof(target) - 1)) > 0) {
			cleanup_free char *link = xasprintf("%s%s", p.j->root, host);
			cleanup_free char *prefix = xasprintf("%s/", host);
			target[n] = '\0';
			/* Only a link into /usr is covered by /usr's bind. */
			if (strncmp(target, "usr/", 4) == 0 || strncmp(target, "/usr/", 5) == 0) {
				add(&p, JAIL_SYMLINK, link, target, NULL, NULL, 0);
				strv_push(&p.linked_top, prefix);
			}
		} else if (S_ISDIR(st.st_mode)) {
			bind_ro(&p, host, true, 0);
		}
	}

	/* The dynamic loader's cache (libraries outside the default dirs),
	 * and for slirp the host's resolvers: nothing else of /etc. */
	if (stat("/etc/ld.so.cache", &st) == 0 && S_ISREG(st.st_mode))
		bind_ro(&p, "/etc/ld.so.cache", false, MS_NOEXEC);
	if (spec->resolv && stat("/etc/resolv.conf", &st) == 0 && S_ISREG(st.st_mode))
		bind_ro(&p, "/etc/resolv.conf", false, MS_NOEXEC);

	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes) + (spec->kvm ? 1 : 0); i++) {
		cleanup_free char *dev = xasprintf("/dev/%s", i < ARRAY_SIZE(dev_nodes) ? dev_nodes[i] : "kvm");
		/* Missing, it is missing in the jail too: QEMU says so itself
		 * (for /dev/kvm, words vm_kvm_fallback knows: a retry under TCG). */
		if (stat(dev, &st) < 0 || !S_ISCHR(st.st_mode))
			continue;
		/* Read-only applies to the node, not to the device: writes to
		 * /dev/null and ioctls on /dev/kvm work; nodev stays off here. */
		{
			cleanup_free char *t = xasprintf("%s%s", p.j->root, dev);
			plan_dirs(&p, "/dev");
			add(&p, JAIL_MKFILE, t, NULL, NULL, NULL, 0);
			add(&p, JAIL_MOUNT, t, dev, NULL, NULL, MS_BIND);
			add(&p, JAIL_MOUNT, t, NULL, NULL, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC);
		}
	}

	/* QEMU's 9p server reaches files through /proc/self/fd/N (chmod and
	 * xattrs on an O_PATH fd: 9p-util.c): that one directory, bound from
	 * the host's proc (mount resolves "self" to this child, which the exec
	 * keeps). Not a proc of its own: it would show every process QEMU may
	 * ptrace, the other VMs' VMMs among them (same uid, same capabilities),
	 * and through /proc/<pid>/root their jails. */
	plan_dirs(&p, "/proc/self/fd");
	{
		cleanup_free char *t = xasprintf("%s/proc/self/fd", p.j->root);
		add(&p, JAIL_MOUNT, t, "/proc/self/fd", NULL, NULL, MS_BIND);
		add(&p, JAIL_MOUNT, t, NULL, NULL, NULL, RO_FLAGS | MS_NOEXEC);
	}

	if (bind_file(&p, "VMM binary", spec->binary, 0, err) < 0 ||
	    bind_file(&p, "kernel", spec->kernel, MS_NOEXEC, err) < 0 ||
	    bind_file(&p, "initrd", spec->initrd, MS_NOEXEC, err) < 0)
		goto out;

	for (size_t i = 0; i < spec->n_shares; i++) {
		const char *s = spec->shares[i];
		cleanup_free char *t = NULL;
		if (!plain_path(s)) {
			runm_error_make(err, EINVAL, "jail: share `%s` is not a plain absolute path", s ? s : "");
			goto out;
		}
		t = xasprintf("%s%s", p.j->root, s);
		plan_dirs(&p, s);
		/* Recursive, and a slave like everything here: the host's later
		 * binds under it arrive, nothing goes back. No nosuid/nodev
		 * remount: it would reach only the top, not the binds. */
		add(&p, JAIL_MOUNT, t, s, NULL, NULL, MS_BIND | MS_REC);
		add(&p, JAIL_MOUNT, t, NULL, NULL, NULL, MS_REC | MS_SLAVE);
	}

	/* The jail's own tmpfs read-only too, then the switch. */
	add(&p, JAIL_MOUNT, p.j->root, NULL, NULL, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
	add(&p, JAIL_PIVOT, p.j->root, NULL, NULL, NULL, 0);
	add(&p, JAIL_CAPS_DROP, NULL, NULL, NULL, NULL, 0);
	*out = steal_ptr(&p.j);
	r = 0;
out:
	strv_free(p.made);
	strv_free(p.linked_top);
	jail_free(p.j);
	return r;
}

int jail_prepare(const struct jail *j, runm_error_t *err)
{
	if (mkdir(j->root, 0700) < 0 && errno != EEXIST)
		return runm_error_make(err, errno, "create the VMM's jail `%s`", j->root);
	return 0;
}

/* ---- in the forked child: syscalls only ---- */

static int drop_caps(uint64_t keep)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	/* Root's caps come from the ambient set only (NOROOT): after exec QEMU
	 * has exactly `keep`, and no exec, setuid or file capability gives
	 * root's full set back. Locked, so it cannot be undone without
	 * CAP_SETPCAP, which goes below. */
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
					     SECBIT_KEEP_CAPS_LOCKED,
		  0, 0, 0) < 0)
		return errno;
	for (unsigned c = 0; c < 64; c++) {
		if (keep & (UINT64_C(1) << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			if (errno == EINVAL) /* past the kernel's last capability */
				break;
			return errno;
		}
	}
	for (int i = 0; i < 2; i++) {
		uint32_t w = (uint32_t)(keep >> (32 * i));
		data[i] = (struct __user_cap_data_struct){ .effective = w, .permitted = w, .inheritable = w };
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return errno;
	for (unsigned c = 0; c < 64; c++)
		if ((keep & (UINT64_C(1) << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			return errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return errno;
	return 0;
}

static int run_step(const struct jail *j, const struct jail_step *s)
{
	int fd;

	switch (s->kind) {
	case JAIL_UNSHARE:
		return unshare((int)s->flags) < 0 ? errno : 0;
	case JAIL_MOUNT:
		return mount(s->src, s->path, s->fstype, s->flags, s->data) < 0 ? errno : 0;
	case JAIL_MKDIR:
		return mkdir(s->path, 0755) < 0 && errno != EEXIST ? errno : 0;
	case JAIL_MKFILE:
		fd = open(s->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	case JAIL_SYMLINK:
		return symlink(s->src, s->path) < 0 ? errno : 0;
	case JAIL_PIVOT:
		/* pivot_root(".", "."): the old root ends up on top of the new
		 * one, where it is detached at once; no put_old directory. */
		if (chdir(s->path) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
		    chdir("/") < 0)
			return errno;
		return 0;
	case JAIL_CAPS_DROP:
		return drop_caps(j->caps);
	}
	return EINVAL;
}

int jail_enter(const struct jail *j, size_t *failed)
{
	for (size_t i = 0; i < j->n_steps; i++) {
		int e = run_step(j, &j->steps[i]);
		if (e != 0) {
			*failed = i;
			return e;
		}
	}
	return 0;
}

/* ---- the rest, in the parent ---- */

char *jail_step_describe(const struct jail *j, size_t i)
{
	const struct jail_step *s;

	if (i >= j->n_steps)
		return xstrdup("confine the VMM");
	s = &j->steps[i];
	switch (s->kind) {
	case JAIL_UNSHARE:
		return xstrdup("confine the VMM: unshare its mount namespace (needs root: CAP_SYS_ADMIN)");
	case JAIL_MOUNT:
		if (s->flags & MS_REMOUNT)
			return xasprintf("confine the VMM: remount `%s` read-only", s->path);
		if (s->flags & (MS_SLAVE | MS_PRIVATE | MS_SHARED))
			return xasprintf("confine the VMM: make `%s` a slave mount", s->path);
		return xasprintf("confine the VMM: mount `%s` on `%s`", s->src, s->path);
	case JAIL_MKDIR:
	case JAIL_MKFILE:
		return xasprintf("confine the VMM: create `%s`", s->path);
	case JAIL_SYMLINK:
		return xasprintf("confine the VMM: symlink `%s` -> `%s`", s->path, s->src);
	case JAIL_PIVOT:
		return xasprintf("confine the VMM: pivot_root into `%s`", s->path);
	case JAIL_CAPS_DROP:
		return xstrdup("confine the VMM: drop capabilities");
	}
	return xstrdup("confine the VMM");
}

void jail_cleanup(const struct jail *j)
{
	/* Empty on the host: the tmpfs was only ever in the VMM's namespace. */
	if (j)
		(void)rmdir(j->root);
}

void jail_free(struct jail *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n_steps; i++) {
		free(j->steps[i].path);
		free(j->steps[i].src);
	}
	free(j->steps);
	free(j->root);
	free(j);
}

void jail_freep(struct jail **j)
{
	jail_free(*j);
	*j = NULL;
}

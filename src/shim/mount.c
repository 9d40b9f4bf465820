/* mount.c - see mount.h. Option names and flags follow containerd's
 * mount/mount_linux.go so that every mount containerd hands out means the
 * same here. */
#include "mount.h"
#include "common/util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mount.h>

struct flag_opt {
	const char *name;
	bool clear;
	unsigned long flag;
};

static const struct flag_opt flag_opts[] = {
	{ "async", true, MS_SYNCHRONOUS },   { "atime", true, MS_NOATIME },
	{ "bind", false, MS_BIND },	      { "defaults", false, 0 },
	{ "dev", true, MS_NODEV },	      { "diratime", true, MS_NODIRATIME },
	{ "dirsync", false, MS_DIRSYNC },     { "exec", true, MS_NOEXEC },
	{ "mand", false, MS_MANDLOCK },	      { "noatime", false, MS_NOATIME },
	{ "nodev", false, MS_NODEV },	      { "nodiratime", false, MS_NODIRATIME },
	{ "noexec", false, MS_NOEXEC },	      { "nomand", true, MS_MANDLOCK },
	{ "norelatime", true, MS_RELATIME },  { "nostrictatime", true, MS_STRICTATIME },
	{ "nosuid", false, MS_NOSUID },	      { "rbind", false, MS_BIND | MS_REC },
	{ "relatime", false, MS_RELATIME },   { "remount", false, MS_REMOUNT },
	{ "ro", false, MS_RDONLY },	      { "rw", true, MS_RDONLY },
	{ "strictatime", false, MS_STRICTATIME }, { "suid", true, MS_NOSUID },
	{ "sync", false, MS_SYNCHRONOUS },
};

static void parse_options(const struct mount_spec *m, unsigned long *flags, char **data)
{
	size_t cap = 1, used = 0;
	char *d;

	*flags = 0;
	for (size_t i = 0; i < m->n_options; i++)
		cap += strlen(m->options[i]) + 1;
	d = xzalloc(cap);
	for (size_t i = 0; i < m->n_options; i++) {
		const char *o = m->options[i];
		bool known = false;
		for (size_t j = 0; j < ARRAY_SIZE(flag_opts); j++) {
			if (strcmp(o, flag_opts[j].name) == 0) {
				if (flag_opts[j].clear)
					*flags &= ~flag_opts[j].flag;
				else
					*flags |= flag_opts[j].flag;
				known = true;
				break;
			}
		}
		if (known)
			continue;
		if (used)
			d[used++] = ',';
		memcpy(d + used, o, strlen(o));
		used += strlen(o);
	}
	*data = d;
}

static int mount_one(const char *target, const struct mount_spec *m, runm_error_t *err)
{
	unsigned long flags;
	cleanup_free char *data = NULL;
	const char *type = m->type && m->type[0] ? m->type : NULL;

	parse_options(m, &flags, &data);
	if (type && strcmp(type, "bind") == 0)
		flags |= MS_BIND;
	if (flags & MS_BIND) {
		/* The kernel ignores MS_RDONLY on the first bind: remount for it. */
		if (mount(m->source, target, NULL, flags & (MS_BIND | MS_REC), NULL) < 0)
			return runm_error_make(err, errno, "bind mount `%s` on `%s`", m->source, target);
		if ((flags & ~(MS_BIND | MS_REC)) &&
		    mount(NULL, target, NULL, (flags & ~MS_REC) | MS_REMOUNT, NULL) < 0) {
			int e = errno;
			umount2(target, MNT_DETACH);
			return runm_error_make(err, e, "remount `%s` with its options", target);
		}
		return 0;
	}
	if (mount(m->source, target, type, flags, data[0] ? data : NULL) < 0)
		return runm_error_make(err, errno, "mount %s `%s` on `%s` (options `%s`)", type ? type : "?",
				       m->source, target, data);
	return 0;
}

int mount_rootfs(const char *target, const struct mount_spec *mounts, size_t n, runm_error_t *err)
{
	for (size_t i = 0; i < n; i++) {
		if (mount_one(target, &mounts[i], err) < 0) {
			mount_unmount_all(target, NULL);
			return -1;
		}
	}
	return 0;
}

int mount_unmount_all(const char *target, runm_error_t *err)
{
	for (int i = 0; i < 64; i++) {
		if (umount2(target, 0) == 0)
			continue;
		if (errno == EINVAL || errno == ENOENT)
			return 0;
		if (errno == EBUSY && umount2(target, MNT_DETACH) == 0)
			continue;
		if (errno == EINTR)
			continue;
		return runm_error_make(err, errno, "unmount `%s`", target);
	}
	return runm_error_make(err, EBUSY, "unmount `%s`: still mounted after 64 tries", target);
}

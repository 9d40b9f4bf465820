/* boot.c - see boot.h. */
#include "boot.h"
#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MODULES_LIST "/etc/runm/modules"

struct basic_mount {
	const char *source, *target, *type;
	unsigned long flags;
	const char *data;
};

static const struct basic_mount basics[] = {
	{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620" },
	{ "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
	{ "tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
};

static int is_mountpoint(const char *path)
{
	struct stat st, parent;
	cleanup_free char *up = xasprintf("%s/..", path);
	if (stat(path, &st) < 0 || stat(up, &parent) < 0)
		return 0;
	return st.st_dev != parent.st_dev;
}

int boot_mount_basics(runm_error_t *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(basics); i++) {
		const struct basic_mount *m = &basics[i];
		mkdir(m->target, 0755);
		if (is_mountpoint(m->target))
			continue;
		if (mount(m->source, m->target, m->type, m->flags, m->data) < 0)
			return runm_error_make(err, errno, "mount %s on `%s`", m->type, m->target);
	}
	/* /dev/ptmx must be the devpts instance's, or crun's consoles land in the wrong one. */
	unlink("/dev/ptmx");
	if (symlink("pts/ptmx", "/dev/ptmx") < 0 && errno != EEXIST)
		return runm_error_make(err, errno, "symlink /dev/ptmx");
	return 0;
}

void boot_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
	setvbuf(stderr, NULL, _IOLBF, 0);
}

static int load_module(const char *path)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

void boot_load_modules(void)
{
	cleanup_free char *list = NULL;
	struct utsname rel;
	char *save = NULL;

	if (uname(&rel) < 0)
		return;
	if (read_file_at(AT_FDCWD, MODULES_LIST, 1 << 16, &list, NULL, NULL) < 0)
		return;
	for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cleanup_free char *path = NULL;
		if (*line == '\0' || *line == '#')
			continue;
		path = line[0] == '/' ? xstrdup(line) : xasprintf("/lib/modules/%s/%s", rel.release, line);
		if (load_module(path) < 0)
			log_warn("load module `%s`: %s", path, strerror(errno));
	}
}

/* /sys/class/virtio-ports/vportNpM/name holds the port's name; the device is /dev/vportNpM. */
static char *find_port(const char *name)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *de;
	char *found = NULL;

	if (d == NULL)
		return NULL;
	while (!found && (de = readdir(d)) != NULL) {
		cleanup_free char *p = NULL, *content = NULL;
		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("/sys/class/virtio-ports/%s/name", de->d_name);
		if (read_file_at(AT_FDCWD, p, 256, &content, NULL, NULL) < 0)
			continue;
		content[strcspn(content, "\n")] = '\0';
		if (strcmp(content, name) == 0)
			found = xasprintf("/dev/%s", de->d_name);
	}
	closedir(d);
	return found;
}

int boot_open_channel(const char *name, unsigned timeout_ms, runm_error_t *err)
{
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		cleanup_free char *dev = find_port(name);
		if (dev) {
			int fd = open(dev, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
			if (fd >= 0)
				return fd;
			if (errno != ENOENT)
				return runm_error_make(err, errno, "open `%s`", dev);
		}
		if (now_mono_ns() > deadline)
			return runm_error_make(err, ENODEV, "no virtio-serial port named `%s` after %u ms", name,
					       timeout_ms);
		/* The port appears when virtio_console probes; nothing to wait on but time. */
		nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000000 }, NULL);
	}
}

void boot_poweroff(void)
{
	sync();
	umount2("/run/runm", MNT_DETACH);
	reboot(RB_POWER_OFF);
	/* Without ACPI power-off, a reboot ends QEMU too (it runs with -no-reboot). */
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

/* probe-init.c - a throw-away guest /init that checks, from inside the VM,
 * what src/vm promises the agent: the modules in /etc/runm/modules load in
 * that order, the virtio-serial port named runm.agent appears (and under
 * which /dev name, without udev), 9p shares mount and show root-owned files
 * as root, and bytes the host wrote before the port was opened arrive.
 *
 * Not part of any image: build it by hand and pass it as --agent, e.g.
 *   gcc -static -O2 -o /tmp/probe-init guest/probe-init.c
 *   guest/build.sh --arch x86_64 --agent /tmp/probe-init --out /tmp/probe-guest
 * It prints "probe: ..." lines on the console and echoes the first chunk read
 * from the channel back as "echo:<bytes>", then powers off.
 *
 * Kernel command line knobs: probe.delay=MS (sleep before opening the port),
 * probe.share=TAG (9p tag to mount on /mnt). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char cmdline[4096];

static const char *param(const char *key)
{
	static char val[200];
	size_t klen = strlen(key);
	for (char *p = cmdline; (p = strstr(p, key)) != NULL; p += klen) {
		if ((p == cmdline || p[-1] == ' ') && p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, " \n");
			if (n >= sizeof(val))
				n = sizeof(val) - 1;
			memcpy(val, p + klen + 1, n);
			val[n] = '\0';
			return val;
		}
	}
	return NULL;
}

static void load_modules(const char *release)
{
	char path[512], line[256];
	FILE *f = fopen("/etc/runm/modules", "re");
	if (f == NULL) {
		printf("probe: no /etc/runm/modules: %m\n");
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, sizeof(path), "/lib/modules/%s/%s", release, line);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) < 0)
			printf("probe: load %s: %m\n", line);
		if (fd >= 0)
			close(fd);
	}
	fclose(f);
}

/* Without udev there is no /dev/virtio-ports/NAME symlink: find the port by
 * the name QEMU gave it, in sysfs. */
static int find_port(const char *name, char *dev, size_t devlen)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = -1;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char p[300], n[128] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", e->d_name);
		FILE *f = fopen(p, "re");
		if (f == NULL)
			continue;
		if (fgets(n, sizeof(n), f))
			n[strcspn(n, "\n")] = '\0';
		fclose(f);
		printf("probe: port %s name=%s\n", e->d_name, n);
		if (strcmp(n, name) == 0) {
			snprintf(dev, devlen, "/dev/%s", e->d_name);
			found = 0;
		}
	}
	closedir(d);
	return found;
}

int main(void)
{
	char release[128] = "", dev[300];
	setvbuf(stdout, NULL, _IONBF, 0);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	int fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
		cmdline[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	fd = open("/proc/sys/kernel/osrelease", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, release, sizeof(release) - 1);
		release[n > 0 ? n : 0] = '\0';
		release[strcspn(release, "\n")] = '\0';
		close(fd);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	load_modules(release);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("probe: modules loaded in %ld ms\n",
	       (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);

	char tag[256] = "", opts[256] = "";
	if (param("probe.opts"))
		snprintf(opts, sizeof(opts), ",%s", param("probe.opts"));
	if (param("probe.share")) {
		snprintf(tag, sizeof(tag), "%s", param("probe.share"));
		char o[256];
		snprintf(o, sizeof(o), "trans=virtio,version=9p2000.L%s", opts);
		if (mount(tag, "/mnt", "9p", 0, o) < 0)
			printf("probe: mount 9p %s (%s): %m\n", tag, o);
		else {
			struct stat st;
			DIR *d = opendir("/mnt");
			struct dirent *e;
			while (d && (e = readdir(d)) != NULL) {
				char p[300];
				snprintf(p, sizeof(p), "/mnt/%s", e->d_name);
				if (e->d_name[0] != '.' && lstat(p, &st) == 0)
					printf("probe: 9p %s uid=%u gid=%u mode=%o\n", e->d_name, st.st_uid, st.st_gid,
					       st.st_mode & 07777);
			}
			if (d)
				closedir(d);
			int w = open("/mnt/probe-written", O_WRONLY | O_CREAT | O_TRUNC, 0644);
			printf("probe: 9p write %s\n", w >= 0 ? "ok" : strerror(errno));
			if (w >= 0) {
				if (fchown(w, 1234, 1234) < 0)
					printf("probe: 9p chown: %m\n");
				close(w);
			}
		}
	}

	const char *delay = param("probe.delay");
	if (delay)
		usleep((useconds_t)atoi(delay) * 1000);
	if (find_port("runm.agent", dev, sizeof(dev)) == 0) {
		printf("probe: channel %s\n", dev);
		int c = open(dev, O_RDWR | O_CLOEXEC);
		if (c < 0)
			printf("probe: open %s: %m\n", dev);
		else {
			char buf[512];
			ssize_t n = read(c, buf, sizeof(buf));
			printf("probe: read %zd bytes\n", n);
			if (n > 0) {
				if (write(c, "echo:", 5) < 0 || write(c, buf, (size_t)n) < 0)
					printf("probe: write: %m\n");
			}
			close(c);
		}
	} else
		printf("probe: no port named runm.agent\n");
	printf("probe: done\n");
	sync();
	reboot(RB_POWER_OFF);
	return 1;
}

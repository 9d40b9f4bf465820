/* guest.c - see guest.h. */
#include "engine/guest.h"
#include "common/util.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static char *exe_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	char *slash;
	if (n <= 0)
		return xstrdup(".");
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	return xstrdup(buf);
}

int guest_find(char **kernel, char **initrd, runm_error_t *err)
{
	cleanup_free char *dir = exe_dir();
	struct utsname u;
	const char *k = getenv("RUNM_KERNEL"), *i = getenv("RUNM_INITRD");
	cleanup_free char *share = NULL, *build = NULL;

	if (k && i) {
		*kernel = xstrdup(k);
		*initrd = xstrdup(i);
		return 0;
	}
	uname(&u);
	share = xasprintf("%s/../share/runm", dir);
	build = xasprintf("%s/../guest/%s", dir, u.machine);
	for (int n = 0; n < 2; n++) {
		const char *d = n == 0 ? share : build;
		cleanup_free char *kp = xasprintf("%s/vmlinuz", d), *ip = xasprintf("%s/initrd.img", d);
		if (access(kp, R_OK) == 0 && access(ip, R_OK) == 0) {
			*kernel = realpath(kp, NULL);
			*initrd = realpath(ip, NULL);
			if (*kernel && *initrd)
				return 0;
			free(*kernel);
			free(*initrd);
		}
	}
	return runm_error_make(err, 0,
			       "no guest kernel and initramfs in `%s` or `%s`: run `make guest` (or set RUNM_KERNEL "
			       "and RUNM_INITRD)",
			       share, build);
}

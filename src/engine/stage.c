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
#include <unistd.h>

int stage_file(const char *state_dir, const char *tag, const char *file, const char *name, bool readonly,
	       char **dir, runm_error_t *err)
{
	cleanup_free char *d = xasprintf("%s/files/%s", state_dir, tag);
	cleanup_free char *target = xasprintf("%s/%s", d, name);
	cleanup_close int fd = -1;

	if (mkdir_p(d, 0700, err) < 0)
		return -1;
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return runm_error_make(err, errno, "create `%s`", target);
	if (mount(file, target, NULL, MS_BIND, NULL) < 0)
		return runm_error_make(err, errno, "bind `%s` for the VM", file);
	/* The 9p share is read-only too; this makes it so on the host as well. */
	if (readonly && mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
		int e = errno;
		umount2(target, MNT_DETACH);
		return runm_error_make(err, e, "make `%s` read-only", target);
	}
	*dir = steal_ptr(&d);
	return 0;
}

void stage_release_all(const char *state_dir)
{
	cleanup_free char *root = xasprintf("%s/files/", state_dir);
	cleanup_error runm_error_t err = NULL;
	cleanup_file FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	/* Mount points are the 5th field; ours contain no characters that
	 * mountinfo escapes (state dirs are ours to name). */
	while (f && fgets(line, sizeof(line), f)) {
		char mp[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && strncmp(mp, root, strlen(root)) == 0 &&
		    umount2(mp, MNT_DETACH) < 0)
			log_warn("unmount `%s`: %s", mp, strerror(errno));
	}
	root[strlen(root) - 1] = '\0';
	if (access(root, F_OK) == 0 && rm_rf(root, &err) < 0)
		log_warn("%s", runm_error_msg(err));
}

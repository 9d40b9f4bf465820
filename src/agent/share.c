/* share.c - see share.h. */
#include "share.h"

#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

int share_mount(runm_error_t *err)
{
	static bool mounted;

	if (mounted)
		return 0;
	if (mkdir_p(SHARE_DIR, 0700, err) < 0)
		return -1;
	if (mount(SHARE_TAG, SHARE_DIR, "9p", 0, SHARE_NINEP_OPTS) < 0)
		return runm_error_make(err, errno, "mount the VM's share `%s` on " SHARE_DIR, SHARE_TAG);
	mounted = true;
	return 0;
}

int share_resolve(const char *root, const char *rel, char **out, runm_error_t *err)
{
	cleanup_free char *full = NULL, *real = NULL;
	size_t n = strlen(root);

	if (rel == NULL || rel[0] == '\0' || rel[0] == '/')
		return runm_error_make(err, EINVAL, "share path `%s` is not relative", rel ? rel : "");
	for (const char *p = rel, *e;; p = e + 1) {
		e = strchrnul(p, '/');
		if (e == p || (e - p == 1 && p[0] == '.') || (e - p == 2 && p[0] == '.' && p[1] == '.'))
			return runm_error_make(err, EINVAL, "share path `%s`: not a plain relative path", rel);
		if (*e == '\0')
			break;
	}
	full = xasprintf("%s/%s", root, rel);
	real = realpath(full, NULL);
	if (real == NULL)
		return runm_error_make(err, errno, "share path `%s`", rel);
	/* The host owns what is in the share: a symlink there must not lead
	 * the bind to the guest's own files. */
	if (strncmp(real, root, n) != 0 || real[n] != '/')
		return runm_error_make(err, EINVAL, "share path `%s` leads out of the share", rel);
	*out = steal_ptr(&real);
	return 0;
}

int share_bind(const char *rel, const char *dest, bool ro, runm_error_t *err)
{
	cleanup_free char *src = NULL;

	if (share_resolve(SHARE_DIR, rel, &src, err) < 0)
		return -1;
	if (mkdir_p(dest, 0755, err) < 0)
		return -1;
	if (mount(src, dest, NULL, MS_BIND, NULL) < 0)
		return runm_error_make(err, errno, "bind `%s` of the share on `%s`", rel, dest);
	/* The host's bind is read-only already; this refuses writes in the
	 * guest before they reach 9p, with EROFS. */
	if (ro && mount(NULL, dest, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
		int e = errno;
		umount2(dest, MNT_DETACH);
		return runm_error_make(err, e, "make `%s` read-only", dest);
	}
	return 0;
}

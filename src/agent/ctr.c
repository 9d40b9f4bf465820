/* ctr.c - see ctr.h. */
#include "ctr.h"
#include "sockproxy.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static struct ctr *ctrs; /* creation order: the first is the VM's first container */

struct ctr *ctr_new(const char *id)
{
	struct ctr *c = xzalloc(sizeof(*c)), **tail = &ctrs;

	c->id = xstrdup(id);
	c->bundle = xasprintf(CTR_BUNDLES "/%s", id);
	while (*tail)
		tail = &(*tail)->next;
	*tail = c;
	return c;
}

struct ctr *ctr_find(const char *id)
{
	if (id == NULL || id[0] == '\0')
		return ctrs;
	for (struct ctr *c = ctrs; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

size_t ctr_count(void)
{
	size_t n = 0;
	for (struct ctr *c = ctrs; c; c = c->next)
		n++;
	return n;
}

static void unmount_quiet(const char *path)
{
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		log_warn("umount %s: %s", path, strerror(errno));
}

void ctr_remove(struct ctr *c)
{
	cleanup_free char *rootfs = xasprintf("%s/rootfs", c->bundle);
	cleanup_free char *config = xasprintf("%s/config.json", c->bundle);

	for (struct ctr **pc = &ctrs; *pc; pc = &(*pc)->next) {
		if (*pc == c) {
			*pc = c->next;
			break;
		}
	}
	sockproxy_remove(c->id);
	unmount_quiet(rootfs);
	for (char **m = c->mounts; m && *m; m++)
		unmount_quiet(*m);
	unlink(config);
	rmdir(rootfs);
	rmdir(c->bundle);
	strv_free(c->mounts);
	free(c->id);
	free(c->bundle);
	free(c);
}

/* ctr.h - the containers of this VM: one, or a pod (the sandbox, created
 * first, and the containers that join it later). Each has its bundle under
 * CTR_BUNDLES/<id> (crun's container id is the same id) and the guest mount
 * points of its bind sources, unmounted when it is deleted, and its host
 * sockets (sockproxy.h), closed then. */
#ifndef RUNM_AGENT_CTR_H
#define RUNM_AGENT_CTR_H

#include <stddef.h>

#define CTR_BUNDLES "/run/runm/bundles"

struct ctr {
	char *id;
	char *bundle;  /* CTR_BUNDLES/<id> */
	char **mounts; /* guest mount points made for it (strv), rootfs not included */
	struct ctr *next;
};

/* A new container, last in creation order; id must not be in use. */
struct ctr *ctr_new(const char *id);
/* By id; "" names the VM's first container (callers that know only one). */
struct ctr *ctr_find(const char *id);
size_t ctr_count(void);
/* Unmount its rootfs and mounts, remove its bundle, unlink and free. */
void ctr_remove(struct ctr *c);

#endif

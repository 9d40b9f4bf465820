/* task.h - containerd's Task service (containerd.task.v2.Task) over runm's
 * VMs: one container = one sandbox (VM + agent) with its init and exec
 * processes; rootfs mounts, stdio FIFOs, events to containerd. Several
 * containers may share one shim (grouped by containerd), each in its own VM. */
#ifndef RUNM_SHIM_TASK_H
#define RUNM_SHIM_TASK_H

#include "common/error.h"
#include "common/loop.h"
#include "events/publisher.h"
#include "ttrpc/ttrpc.h"

#include <stddef.h>

struct task_service;

/* pub may be NULL (events are then only logged). */
struct task_service *task_service_new(struct loop *loop, struct publisher *pub);

/* Serve containerd.task.v2.Task on srv. */
void task_service_register(struct task_service *t, struct ttrpc_server *srv);

/* cb runs (from the loop, after the reply left) once Shutdown found no
 * container left: the shim should exit. */
void task_service_on_shutdown(struct task_service *t, void (*cb)(void *data), void *data);

/* Containers currently known. */
size_t task_service_count(const struct task_service *t);

/* Tear down every container (VMs stopped, rootfs unmounted) and free. NULL-safe. */
void task_service_free(struct task_service *t);

#endif

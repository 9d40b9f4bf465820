/* qmp.h - a small synchronous QMP client on one socket (internal to
 * src/vm/): QEMU's control channel for pause/resume, quit, port forwards
 * and template saves, each bounded by a deadline. */
#ifndef RUNM_VM_QMP_H
#define RUNM_VM_QMP_H

#include "common/error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Control operations are rare: synchronous, with this bound. */
#define QMP_TIMEOUT_MS 5000
/* A QMP message larger than this is not something we asked for. */
#define QMP_MAX_MSG (1u << 20)

struct qmp {
	int qmp_fd;     /* our end of the QMP socketpair, -1 once unusable */
	bool qmp_ready; /* capabilities negotiated */
	char *buf;      /* bytes read from QMP, not yet consumed */
	size_t len, cap;
};

void qmp_close(struct qmp *q);
/* Give up on the connection after a timeout or garbage; returns -1. */
int qmp_fail(struct qmp *q);
/* One JSON message, waiting until deadline_ns (CLOCK_MONOTONIC). */
int qmp_read(struct qmp *q, uint64_t deadline_ns, json_object **out, runm_error_t *err);
/* Send cmd (args: a JSON object's text, or NULL), without waiting. */
int qmp_send_args(struct qmp *q, const char *cmd, const char *args, runm_error_t *err);
int qmp_send(struct qmp *q, const char *cmd, runm_error_t *err);
/* Wait for the reply to the command just sent, skipping events; its
 * "return" value in *ret (owned by the caller) unless ret is NULL. */
int qmp_wait_value(struct qmp *q, const char *cmd, uint64_t deadline_ns, json_object **ret, runm_error_t *err);
int qmp_wait_return(struct qmp *q, const char *cmd, uint64_t deadline_ns, runm_error_t *err);
/* The greeting and capabilities negotiation, once (lazily: QEMU greets as
 * soon as its chardev is up and the greeting waits in the socket). */
int qmp_handshake(struct qmp *q, uint64_t deadline_ns, runm_error_t *err);
/* Send cmd with args and wait for its return. */
int qmp_call(struct qmp *q, const char *cmd, const char *args, uint64_t deadline_ns, runm_error_t *err);
/* getfd: hand QEMU fd under `name` (SCM_RIGHTS with the command). */
int qmp_getfd(struct qmp *q, int fd, const char *name, uint64_t deadline_ns, runm_error_t *err);

#endif

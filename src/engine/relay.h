/* relay.h - one process's stdio between host fds and the agent's Stdio
 * stream: host stdin -> STDIO_STDIN frames (within the agent's ACK window),
 * STDIO_STDOUT/STDERR frames -> host fds (acknowledged once written, so a
 * slow host reader stalls the guest writer instead of growing a buffer), EOF
 * each way. Host fds may be pipes, FIFOs, ttys, sockets or regular files
 * (those cannot be polled: they are written directly). Shared by the shim
 * (containerd's FIFOs) and the runm CLI (its own stdio). */
#ifndef RUNM_ENGINE_RELAY_H
#define RUNM_ENGINE_RELAY_H

#include "common/error.h"
#include "common/loop.h"
#include "engine/sandbox.h"

struct relay;

/* done: once, when the guest ended both outputs (or the stream failed: err
 * set) and everything received was written to the host fds. The relay is
 * still owned by the caller: relay_free it (also from inside `done`). */
typedef void (*relay_done_fn)(struct relay *r, runm_error_t *err, void *data);

/* Attach to the stdio of process exec_id ("" = init) of container
 * container_id of the VM ("" = its first container). in/out/err are host fds or -1; the
 * relay takes ownership of them (closing out/err signals EOF to the reader).
 * The same fd may be passed as out and err (a tty): it is closed once.
 * Call before Start so no output is lost. */
int relay_start(struct loop *loop, struct sandbox *sb, const char *container_id, const char *exec_id, int in, int out, int err_fd,
		relay_done_fn done, void *data, struct relay **out_relay, runm_error_t *err);

/* The same over any connection that speaks the agent API (the runm CLI
 * reaches a running container's agent through its monitor's socket). conn
 * must be open. */
int relay_start_conn(struct loop *loop, struct ttrpc_conn *conn, const char *container_id, const char *exec_id, int in, int out, int err_fd,
		     relay_done_fn done, void *data, struct relay **out_relay, runm_error_t *err);

/* Stop reading host stdin and send EOF to the guest (containerd CloseIO). */
void relay_close_stdin(struct relay *r);

/* Whether `done` has run. */
bool relay_finished(const struct relay *r);

/* Cancel (if still running), close every fd, free. NULL-safe. */
void relay_free(struct relay *r);

#endif

/* process.h - the shim's process table entry (a container's init or one of
 * its execs) and its exit bookkeeping: a process is finished once its exit
 * status is known AND its output reached containerd's FIFOs (or a drain
 * deadline passed); only then are parked Waits answered and the exit
 * callback (which publishes /tasks/exit) run, exactly once. */
#ifndef RUNM_SHIM_PROCESS_H
#define RUNM_SHIM_PROCESS_H

#include "common/error.h"
#include "common/loop.h"
#include "engine/relay.h"
#include "engine/sandbox.h"
#include "shim/fifo.h"
#include "ttrpc/ttrpc.h"

#include <stdbool.h>
#include <stdint.h>

/* Status values are containerd's (api/types/task Status). */
enum process_status { PROCESS_CREATED = 1, PROCESS_RUNNING = 2, PROCESS_STOPPED = 3 };

/* How long output may still flow after the exit before Wait answers anyway
 * (a background child may hold the process's stdout open forever). */
#define PROCESS_DRAIN_MS 5000

struct process;
/* Runs once when the process is finished (status STOPPED). */
typedef void (*process_exit_fn)(struct process *p, void *data);

struct process {
	struct process *next; /* in the container's list */
	uint64_t serial;      /* unique in this shim, never reused: names the process in async callbacks */
	char *exec_id;        /* "" = init */
	uint32_t pid;         /* an exec: its guest pid; the init: a host pid, the VMM or the netns holder (task.c); 0 until known */
	enum process_status status;
	bool exited;          /* exit status known (output may still be draining) */
	uint32_t exit_status; /* exit code or 128+signal */
	uint64_t exited_at_ns;
	bool terminal;
	char *stdin_path, *stdout_path, *stderr_path;

	/* private to process.c */
	struct loop *loop;
	struct fifo_set fifos;
	struct relay *relay;
	bool relay_done;
	struct loop_timer *drain;
	struct ttrpc_stream **waiters;
	size_t n_waiters;
	process_exit_fn on_exit;
	void *on_exit_data;
};

/* A new CREATED process; paths may be NULL or "" (unused stream). */
struct process *process_new(struct loop *loop, const char *exec_id, bool terminal, const char *stdin_path,
			    const char *stdout_path, const char *stderr_path, process_exit_fn on_exit, void *data);

/* Open containerd's FIFOs for this process (before asking the agent for it). */
int process_open_stdio(struct process *p, runm_error_t *err);

/* Attach the opened FIFOs to the agent's stdio of this process (after the
 * agent knows it, before it is started). Without any stdio the process counts
 * as drained at once. */
int process_start_relay(struct process *p, struct sandbox *sb, const char *container_id, runm_error_t *err);

/* Stop forwarding stdin and send EOF to the guest (CloseIO). */
void process_close_stdin(struct process *p);

/* The agent reported the exit (or the VM died: 137). Idempotent: only the first call counts. */
void process_exited(struct process *p, uint32_t exit_status, uint64_t exited_at_ns);

/* Answer s with a WaitResponse once the process is finished (now if it is). */
void process_wait(struct process *p, struct ttrpc_stream *s);

/* Close every host fd of the process's stdio now (relay included), so that a
 * client reading the FIFOs sees EOF. */
void process_release_io(struct process *p);

/* Find exec_id ("" = init) in a list. */
struct process *process_find(struct process *head, const char *exec_id);

/* Free: parked Waits get an error, the relay and every fd are closed. NULL-safe. */
void process_free(struct process *p);

#endif

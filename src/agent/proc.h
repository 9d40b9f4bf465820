/* proc.h - the agent's processes (each container's init and its execs):
 * their pids, exit statuses, parked waiters, and the pumping of their stdio
 * over the host's Stdio stream with the flow control of proto/stdio.h. */
#ifndef RUNM_AGENT_PROC_H
#define RUNM_AGENT_PROC_H

#include "common/loop.h"
#include "ttrpc/ttrpc.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum proc_state { PROC_CREATED = 1, PROC_RUNNING = 2, PROC_STOPPED = 3 };

struct proc {
	char *container_id; /* the container of the VM it belongs to */
	char *exec_id;      /* "" = the container's init */
	pid_t pid;
	enum proc_state state;
	int exit_status;
	uint64_t exited_at_ns;
	bool terminal;
	char *process_json; /* exec: the OCI Process, until started */
	char *cgroup;       /* init: its container's cgroup (v2 path), read for OOM kills at exit */
	bool oom_killed;

	/* Ends handed to the process (closed once crun has them). */
	int child_fds[3];
	/* Our ends: stdin writer, stdout/stderr readers (terminal: the pty master twice). */
	int in_w, out_r[2];
	int pty; /* pty master for resize, or -1 */

	struct ttrpc_stream *stdio;
	struct loop_watch *w_out[2], *w_in;
	uint32_t unacked;  /* output bytes sent, not yet acknowledged by the host */
	uint8_t *in_buf;   /* stdin bytes received, not yet written */
	size_t in_len;
	bool in_eof;

	struct ttrpc_stream **waiters;
	size_t n_waiters;
	struct proc *next;
};

void proc_table_init(struct loop *loop);
struct proc *proc_new(const char *container_id, const char *exec_id);
struct proc *proc_find(const char *container_id, const char *exec_id);
/* Remove and free: closes fds, answers parked waiters with an error. */
void proc_remove(struct proc *p);
/* Every process of one container (its pid namespace went with its init). */
void proc_remove_container(const char *container_id);

/* Create pipes for the streams asked for (not for a terminal: crun makes the pty). */
int proc_make_pipes(struct proc *p, bool in, bool out, bool err, runm_error_t *error);
/* After crun handed the child ends over: close ours of them. */
void proc_close_child_fds(struct proc *p);
/* Adopt a pty master received from crun's console socket. */
void proc_set_pty(struct proc *p, int master);

/* Attach the host's Stdio call: output starts flowing, stdin is accepted. */
void proc_attach_stdio(struct proc *p, struct ttrpc_stream *s);
/* Host closed stdin (CloseStdin RPC). */
void proc_close_stdin(struct proc *p);
/* Park a Wait call; answered at once if the process already exited. */
void proc_add_waiter(struct proc *p, struct ttrpc_stream *s);

/* Reap every exited child (SIGCHLD); record exits of known processes. */
void proc_reap(void);

/* Exit status as a shell reports it: code, or 128+N for signal N. */
int proc_exit_code(int wstatus);

#endif

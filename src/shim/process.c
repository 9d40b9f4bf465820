/* process.c - see process.h. */
#include "process.h"
#include "common/log.h"
#include "common/util.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"

#include <stdlib.h>
#include <string.h>

static uint64_t next_serial = 1;

struct process *process_new(struct loop *loop, const char *exec_id, bool terminal, const char *stdin_path,
			    const char *stdout_path, const char *stderr_path, process_exit_fn on_exit, void *data)
{
	struct process *p = xzalloc(sizeof(*p));

	p->serial = next_serial++;
	p->loop = loop;
	p->exec_id = xstrdup(exec_id ? exec_id : "");
	p->status = PROCESS_CREATED;
	p->terminal = terminal;
	p->stdin_path = xstrdup(stdin_path ? stdin_path : "");
	p->stdout_path = xstrdup(stdout_path ? stdout_path : "");
	p->stderr_path = xstrdup(stderr_path ? stderr_path : "");
	p->fifos = (struct fifo_set)FIFO_SET_INIT;
	p->on_exit = on_exit;
	p->on_exit_data = data;
	return p;
}

int process_open_stdio(struct process *p, runm_error_t *err)
{
	/* With a terminal there is one stream (the pty): stderr goes to stdout. */
	return fifo_open_set(p->stdin_path, p->stdout_path, p->terminal ? "" : p->stderr_path, &p->fifos, err);
}

static void reply_wait(struct process *p, struct ttrpc_stream *s)
{
	Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	resp.exit_status = p->exit_status;
	ts.seconds = (int64_t)(p->exited_at_ns / 1000000000ull);
	ts.nanos = (int32_t)(p->exited_at_ns % 1000000000ull);
	resp.exited_at = &ts;
	ttrpc_reply(s, &resp.base);
}

/* Exit known and output delivered (or given up on): answer Waits, tell the owner. */
static void finish(struct process *p)
{
	if (p->status == PROCESS_STOPPED || !p->exited || !p->relay_done)
		return;
	loop_timer_cancel(p->drain);
	p->drain = NULL;
	p->status = PROCESS_STOPPED;
	log_debug("process `%s` (pid %u) finished with status %u", p->exec_id, p->pid, p->exit_status);
	for (size_t i = 0; i < p->n_waiters; i++)
		reply_wait(p, p->waiters[i]);
	free(p->waiters);
	p->waiters = NULL;
	p->n_waiters = 0;
	if (p->on_exit)
		p->on_exit(p, p->on_exit_data);
}

static void on_relay_done(struct relay *r, runm_error_t *err, void *data)
{
	struct process *p = data;
	(void)r;

	if (err && *err)
		log_warn("stdio of process `%s`: %s", p->exec_id, runm_error_msg(*err));
	p->relay_done = true;
	finish(p);
}

int process_start_relay(struct process *p, struct sandbox *sb, const char *container_id, runm_error_t *err)
{
	struct fifo_set *f = &p->fifos;
	int in = f->in, out = f->out, errfd = f->err;

	if (in < 0 && out < 0 && errfd < 0) {
		p->relay_done = true;
		return 0;
	}
	/* The relay owns the fds from here on, also when it fails (it closes them). */
	f->in = f->out = f->err = -1;
	return relay_start(p->loop, sb, container_id, p->exec_id, in, out, errfd, on_relay_done, p, &p->relay, err);
}

void process_close_stdin(struct process *p)
{
	if (p->relay)
		relay_close_stdin(p->relay);
	else
		close_and_reset(&p->fifos.in);
}

static void on_drain_deadline(struct loop *l, void *data)
{
	struct process *p = data;
	(void)l;

	p->drain = NULL;
	log_warn("output of process `%s` still open %d ms after its exit: closing it", p->exec_id, PROCESS_DRAIN_MS);
	process_release_io(p);
	p->relay_done = true;
	finish(p);
}

void process_exited(struct process *p, uint32_t exit_status, uint64_t exited_at_ns)
{
	if (p->exited)
		return;
	p->exited = true;
	p->exit_status = exit_status;
	p->exited_at_ns = exited_at_ns ? exited_at_ns : now_real_ns();
	log_debug("process `%s` (pid %u) exited with status %u", p->exec_id, p->pid, exit_status);
	if (!p->relay_done && p->relay == NULL)
		p->relay_done = true; /* never attached (e.g. never started) */
	if (!p->relay_done)
		p->drain = loop_timer_add(p->loop, PROCESS_DRAIN_MS, on_drain_deadline, p);
	finish(p);
}

void process_wait(struct process *p, struct ttrpc_stream *s)
{
	if (p->status == PROCESS_STOPPED) {
		reply_wait(p, s);
		return;
	}
	p->waiters = xrealloc(p->waiters, (p->n_waiters + 1) * sizeof(*p->waiters));
	p->waiters[p->n_waiters++] = s;
}

void process_release_io(struct process *p)
{
	relay_free(p->relay);
	p->relay = NULL;
	fifo_close_set(&p->fifos);
}

struct process *process_find(struct process *head, const char *exec_id)
{
	for (struct process *p = head; p; p = p->next)
		if (strcmp(p->exec_id, exec_id ? exec_id : "") == 0)
			return p;
	return NULL;
}

void process_free(struct process *p)
{
	if (p == NULL)
		return;
	loop_timer_cancel(p->drain);
	for (size_t i = 0; i < p->n_waiters; i++)
		ttrpc_reply_error(p->waiters[i], TTRPC_NOT_FOUND, "process `%s` was deleted", p->exec_id);
	free(p->waiters);
	process_release_io(p);
	free(p->exec_id);
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
	free(p);
}

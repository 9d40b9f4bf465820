/* proc.c - see proc.h. */
#include "proc.h"
#include "stats.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/stdio.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct loop *proc_loop;
static struct proc *procs;

void proc_table_init(struct loop *loop)
{
	proc_loop = loop;
}

struct proc *proc_new(const char *container_id, const char *exec_id)
{
	struct proc *p = xzalloc(sizeof(*p));
	p->container_id = xstrdup(container_id);
	p->exec_id = xstrdup(exec_id);
	p->state = PROC_CREATED;
	p->in_w = p->out_r[0] = p->out_r[1] = p->pty = -1;
	for (int i = 0; i < 3; i++)
		p->child_fds[i] = -1;
	p->next = procs;
	procs = p;
	return p;
}

struct proc *proc_find(const char *container_id, const char *exec_id)
{
	for (struct proc *p = procs; p; p = p->next)
		if (strcmp(p->container_id, container_id) == 0 && strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

static struct proc *proc_find_pid(pid_t pid)
{
	for (struct proc *p = procs; p; p = p->next)
		if (p->pid == pid && p->state != PROC_STOPPED)
			return p;
	return NULL;
}

static void stop_output(struct proc *p, int i)
{
	loop_unwatch(p->w_out[i]);
	p->w_out[i] = NULL;
	close_and_reset(&p->out_r[i]);
}

static void stop_stdin(struct proc *p)
{
	loop_unwatch(p->w_in);
	p->w_in = NULL;
	close_and_reset(&p->in_w);
	free(p->in_buf);
	p->in_buf = NULL;
	p->in_len = 0;
}

static void stdio_cancelled(struct ttrpc_stream *s, void *data)
{
	struct proc *p = data;
	(void)s;
	p->stdio = NULL;
	for (int i = 0; i < 2; i++)
		if (p->w_out[i])
			loop_watch_mod(p->w_out[i], 0);
}

static void waiter_cancelled(struct ttrpc_stream *s, void *data)
{
	struct proc *p = data;
	for (size_t i = 0; i < p->n_waiters; i++) {
		if (p->waiters[i] == s) {
			p->waiters[i] = p->waiters[--p->n_waiters];
			return;
		}
	}
}

void proc_remove(struct proc *p)
{
	struct proc **pp;
	for (pp = &procs; *pp && *pp != p; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = p->next;
	for (size_t i = 0; i < p->n_waiters; i++) {
		ttrpc_stream_on_cancel(p->waiters[i], NULL, NULL);
		ttrpc_reply_error(p->waiters[i], TTRPC_NOT_FOUND, "process %s deleted", p->exec_id);
	}
	free(p->waiters);
	if (p->stdio) {
		ttrpc_stream_on_cancel(p->stdio, NULL, NULL);
		ttrpc_reply(p->stdio, NULL);
	}
	stop_output(p, 0);
	stop_output(p, 1);
	stop_stdin(p);
	proc_close_child_fds(p);
	if (p->pty >= 0)
		close(p->pty);
	free(p->process_json);
	free(p->cgroup);
	free(p->container_id);
	free(p->exec_id);
	free(p);
}

void proc_remove_container(const char *container_id)
{
	struct proc *p = procs;
	while (p) {
		struct proc *next = p->next;
		if (strcmp(p->container_id, container_id) == 0)
			proc_remove(p);
		p = next;
	}
}

int proc_make_pipes(struct proc *p, bool in, bool out, bool err, runm_error_t *error)
{
	bool want[3] = { in, out, err };
	for (int i = 0; i < 3; i++) {
		int fds[2];
		if (!want[i])
			continue;
		if (pipe2(fds, O_CLOEXEC) < 0)
			return runm_error_make(error, errno, "pipe");
		/* Our ends are non-blocking for the loop; the process's ends stay blocking. */
		if (i == 0) {
			p->child_fds[0] = fds[0];
			p->in_w = fds[1];
			set_nonblock(p->in_w, 1);
		} else {
			p->child_fds[i] = fds[1];
			p->out_r[i - 1] = fds[0];
			set_nonblock(fds[0], 1);
		}
	}
	return 0;
}

void proc_close_child_fds(struct proc *p)
{
	for (int i = 0; i < 3; i++)
		close_and_reset(&p->child_fds[i]);
}

static void output_ready(struct loop *l, int fd, uint32_t events, void *data);

void proc_set_pty(struct proc *p, int master)
{
	p->terminal = true;
	p->pty = master;
	set_nonblock(master, 1);
	p->out_r[0] = fcntl(master, F_DUPFD_CLOEXEC, 3);
	p->in_w = fcntl(master, F_DUPFD_CLOEXEC, 3);
	/* An exec's Stdio may be attached before its Start brought the pty. */
	if (p->stdio != NULL && p->w_out[0] == NULL)
		p->w_out[0] = loop_watch_fd(proc_loop, p->out_r[0], EPOLLIN, output_ready, p, NULL);
}

static void maybe_finish_stdio(struct proc *p)
{
	if (p->stdio == NULL || p->out_r[0] >= 0 || p->out_r[1] >= 0)
		return;
	/* A terminal process has no pipes: its pty arrives at Start. */
	if (p->terminal && p->pty < 0 && p->state != PROC_STOPPED)
		return;
	ttrpc_stream_on_cancel(p->stdio, NULL, NULL);
	ttrpc_reply(p->stdio, NULL);
	p->stdio = NULL;
}

static void set_output_paused(struct proc *p, bool paused)
{
	for (int i = 0; i < 2; i++)
		if (p->w_out[i])
			loop_watch_mod(p->w_out[i], paused ? 0 : EPOLLIN);
}

static void output_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct proc *p = data;
	int i = fd == p->out_r[0] ? 0 : 1;
	uint8_t buf[1 + STDIO_CHUNK];
	ssize_t n;
	(void)l;
	(void)events;

	n = read(fd, buf + 1, STDIO_CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF, or EIO from a pty master once the last slave holder is gone. */
		uint8_t eof[2];
		ttrpc_stream_send(p->stdio, eof, stdio_encode_eof(eof, i + 1), 0);
		stop_output(p, i);
		if (p->terminal) /* the pty master is also the stdin writer */
			stop_stdin(p);
		maybe_finish_stdio(p);
		return;
	}
	buf[0] = (uint8_t)(i == 0 ? STDIO_STDOUT : STDIO_STDERR);
	ttrpc_stream_send(p->stdio, buf, (size_t)n + 1, 0);
	p->unacked += (uint32_t)n;
	if (p->unacked >= STDIO_WINDOW)
		set_output_paused(p, true);
}

static void flush_stdin(struct proc *p);

static void stdin_writable(struct loop *l, int fd, uint32_t events, void *data)
{
	(void)l;
	(void)fd;
	(void)events;
	flush_stdin(data);
}

static void flush_stdin(struct proc *p)
{
	size_t written = 0;
	while (p->in_w >= 0 && written < p->in_len) {
		ssize_t n = write(p->in_w, p->in_buf + written, p->in_len - written);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				/* The reader is gone (EPIPE): drop what is left, keep acking. */
				written = p->in_len;
				stop_stdin(p);
			}
			break;
		}
		written += (size_t)n;
	}
	if (written > 0 && p->stdio) {
		uint8_t ack[5];
		ttrpc_stream_send(p->stdio, ack, stdio_encode_ack(ack, (uint32_t)written), 0);
	}
	if (p->in_buf) {
		memmove(p->in_buf, p->in_buf + written, p->in_len - written);
		p->in_len -= written;
	}
	if (p->in_w < 0)
		return;
	if (p->in_len > 0) {
		if (p->w_in == NULL)
			p->w_in = loop_watch_fd(proc_loop, p->in_w, EPOLLOUT, stdin_writable, p, NULL);
		return;
	}
	loop_unwatch(p->w_in);
	p->w_in = NULL;
	/* A terminal has no stdin EOF of its own: the pty stays open for output. */
	if (p->in_eof && !p->terminal)
		stop_stdin(p);
}

static void stdio_data(struct ttrpc_stream *s, const uint8_t *data, size_t len, uint8_t flags, void *ud)
{
	struct proc *p = ud;
	struct stdio_frame f;
	(void)s;
	(void)flags;

	if (stdio_frame_parse(data, len, &f) < 0) {
		log_warn("process %s: bad stdio frame of %zu bytes from host, ignored", p->exec_id, len);
		return;
	}
	switch (f.kind) {
	case STDIO_STDIN:
		/* The host honours the window; a host that does not is cut off, not obeyed. */
		if (p->in_len + f.len > STDIO_WINDOW) {
			log_warn("process %s: host overran the stdin window", p->exec_id);
			return;
		}
		if (p->in_w < 0) { /* no stdin, or the reader is gone: consume and ack */
			uint8_t ack[5];
			ttrpc_stream_send(p->stdio, ack, stdio_encode_ack(ack, (uint32_t)f.len), 0);
			return;
		}
		p->in_buf = xrealloc(p->in_buf, p->in_len + f.len);
		memcpy(p->in_buf + p->in_len, f.data, f.len);
		p->in_len += f.len;
		flush_stdin(p);
		break;
	case STDIO_ACK:
		p->unacked = f.ack > p->unacked ? 0 : p->unacked - f.ack;
		if (p->unacked < STDIO_WINDOW)
			set_output_paused(p, false);
		break;
	case STDIO_EOF:
		if (f.fd == 0)
			proc_close_stdin(p);
		break;
	default:
		break;
	}
}

void proc_close_stdin(struct proc *p)
{
	p->in_eof = true;
	flush_stdin(p);
}

void proc_attach_stdio(struct proc *p, struct ttrpc_stream *s)
{
	if (p->stdio) {
		ttrpc_reply_error(s, TTRPC_ALREADY_EXISTS, "stdio of process %s already attached", p->exec_id);
		return;
	}
	p->stdio = s;
	ttrpc_stream_on_cancel(s, stdio_cancelled, p);
	ttrpc_stream_on_data(s, stdio_data, p);
	for (int i = 0; i < 2; i++) {
		if (p->out_r[i] < 0 || (p->terminal && i == 1))
			continue;
		p->w_out[i] = loop_watch_fd(proc_loop, p->out_r[i], EPOLLIN, output_ready, p, NULL);
	}
	maybe_finish_stdio(p);
}

static void answer_waiter(struct proc *p, struct ttrpc_stream *s)
{
	Runm__Agent__V1__WaitResponse resp = RUNM__AGENT__V1__WAIT_RESPONSE__INIT;
	resp.exit_status = (uint32_t)p->exit_status;
	resp.exited_at_ns = p->exited_at_ns;
	resp.oom_killed = p->oom_killed;
	ttrpc_stream_on_cancel(s, NULL, NULL);
	ttrpc_reply(s, &resp.base);
}

void proc_add_waiter(struct proc *p, struct ttrpc_stream *s)
{
	if (p->state == PROC_STOPPED) {
		answer_waiter(p, s);
		return;
	}
	p->waiters = xrealloc(p->waiters, (p->n_waiters + 1) * sizeof(*p->waiters));
	p->waiters[p->n_waiters++] = s;
	ttrpc_stream_on_cancel(s, waiter_cancelled, p);
}

int proc_exit_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

void proc_reap(void)
{
	for (;;) {
		int status;
		struct proc *p;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		p = proc_find_pid(pid);
		if (p == NULL)
			continue; /* an orphan reparented to us, or crun's helper */
		p->state = PROC_STOPPED;
		p->exit_status = proc_exit_code(status);
		p->exited_at_ns = now_real_ns();
		/* Read now: the cgroup goes with crun delete. */
		p->oom_killed = p->cgroup && stats_oom_kills(p->cgroup) > 0;
		log_info("process %s (pid %d) exited with status %d", p->exec_id[0] ? p->exec_id : "init", pid,
			 p->exit_status);
		for (size_t i = 0; i < p->n_waiters; i++)
			answer_waiter(p, p->waiters[i]);
		p->n_waiters = 0;
		maybe_finish_stdio(p); /* a terminal process that never got its pty */
	}
}

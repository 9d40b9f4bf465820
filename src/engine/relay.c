/* relay.c - host side of one process's stdio (see relay.h and
 * src/proto/stdio.h for the wire format and the window rules). */
#include "engine/relay.h"

#include "common/log.h"
#include "common/util.h"
#include "proto/pb.h"
#include "proto/stdio.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct relay_out {
	int fd;
	bool pollable;  /* epoll refuses regular files: those are written directly */
	bool eof;       /* the guest sent EOF for this stream */
	struct loop_watch *w;
	uint8_t *buf;   /* received, not yet written; bounded by the guest's window */
	size_t len;
};

struct relay {
	struct loop *loop;
	struct ttrpc_stream *s; /* the Stdio call, NULL once answered */
	char *container_id, *exec_id;

	int in;
	bool in_pollable;
	struct loop_watch *w_in;
	struct loop_timer *in_timer; /* pumps a non-pollable stdin */
	uint32_t in_unacked;

	struct relay_out out[2]; /* stdout, stderr */

	bool guest_done;
	bool finished;
	runm_error_t guest_err;
	relay_done_fn done;
	void *data;
};

static void send_ack(struct relay *r, size_t n)
{
	uint8_t ack[5];
	if (r->s != NULL && n > 0)
		ttrpc_stream_send(r->s, ack, stdio_encode_ack(ack, (uint32_t)n), 0);
}

static void close_out(struct relay *r, int i)
{
	struct relay_out *o = &r->out[i];
	loop_unwatch(o->w);
	o->w = NULL;
	/* A tty given as both stdout and stderr is closed once, with the last. */
	if (o->fd >= 0 && o->fd != r->out[1 - i].fd)
		close(o->fd);
	o->fd = -1;
	free(o->buf);
	o->buf = NULL;
	o->len = 0;
}

static void maybe_finish(struct relay *r)
{
	if (r->finished || !r->guest_done)
		return;
	for (int i = 0; i < 2; i++)
		if (r->out[i].len > 0)
			return;
	r->finished = true;
	for (int i = 0; i < 2; i++)
		close_out(r, i);
	/* Last: `done` may free the relay. */
	r->done(r, r->guest_err ? &r->guest_err : NULL, r->data);
}

static void flush_out(struct relay *r, int i)
{
	struct relay_out *o = &r->out[i];
	size_t written = 0;

	while (o->fd >= 0 && written < o->len) {
		ssize_t n = write(o->fd, o->buf + written, o->len - written);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* The reader went away (EPIPE): what the guest still sends is
			 * dropped but acknowledged, so the process never stalls on it. */
			log_debug("relay %s: host %s gone: %s", r->exec_id, i ? "stderr" : "stdout", strerror(errno));
			written = o->len;
			close_out(r, i);
			break;
		}
		written += (size_t)n;
	}
	send_ack(r, written);
	if (o->buf != NULL) {
		memmove(o->buf, o->buf + written, o->len - written);
		o->len -= written;
	}
	if (o->w)
		loop_watch_mod(o->w, o->len > 0 ? EPOLLOUT : 0);
	if (o->len == 0 && o->eof && o->fd >= 0)
		close_out(r, i);
	maybe_finish(r);
}

static void out_writable(struct loop *l, int fd, uint32_t events, void *data)
{
	struct relay *r = data;
	(void)l;
	(void)events;
	flush_out(r, fd == r->out[0].fd ? 0 : 1);
}

static void on_output(struct relay *r, int i, const uint8_t *d, size_t len)
{
	struct relay_out *o = &r->out[i];
	if (o->fd < 0) {
		send_ack(r, len);
		return;
	}
	/* The guest keeps at most STDIO_WINDOW unacknowledged: refuse more. */
	if (o->len + len > STDIO_WINDOW + STDIO_CHUNK) {
		log_warn("relay %s: guest overran the output window, %zu bytes dropped", r->exec_id, len);
		return;
	}
	o->buf = xrealloc(o->buf, o->len + len);
	memcpy(o->buf + o->len, d, len);
	o->len += len;
	if (o->pollable && o->len > len)
		return; /* already waiting for EPOLLOUT */
	flush_out(r, i);
}

static void pump_stdin(struct relay *r);

static void stdin_timer(struct loop *l, void *data)
{
	struct relay *r = data;
	(void)l;
	r->in_timer = NULL;
	pump_stdin(r);
}

static void stop_stdin(struct relay *r, bool send_eof)
{
	if (r->in < 0)
		return;
	loop_unwatch(r->w_in);
	r->w_in = NULL;
	loop_timer_cancel(r->in_timer);
	r->in_timer = NULL;
	close(r->in);
	r->in = -1;
	if (send_eof && r->s != NULL) {
		uint8_t eof[2];
		ttrpc_stream_send(r->s, eof, stdio_encode_eof(eof, 0), 0);
	}
}

/* Read host stdin while the guest's window has room. */
static void pump_stdin(struct relay *r)
{
	uint8_t buf[1 + STDIO_CHUNK];

	while (r->in >= 0 && r->in_unacked < STDIO_WINDOW) {
		size_t room = STDIO_WINDOW - r->in_unacked;
		ssize_t n = read(r->in, buf + 1, room < STDIO_CHUNK ? room : STDIO_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			stop_stdin(r, true);
			return;
		}
		buf[0] = STDIO_STDIN;
		ttrpc_stream_send(r->s, buf, (size_t)n + 1, 0);
		r->in_unacked += (uint32_t)n;
		if (!r->in_pollable)
			break; /* one chunk per loop turn: a huge file must not starve the loop */
	}
	if (r->in < 0)
		return;
	bool room = r->in_unacked < STDIO_WINDOW;
	if (r->in_pollable)
		loop_watch_mod(r->w_in, room ? EPOLLIN : 0);
	else if (room && r->in_timer == NULL)
		r->in_timer = loop_timer_add(r->loop, 0, stdin_timer, r);
}

static void stdin_readable(struct loop *l, int fd, uint32_t events, void *data)
{
	(void)l;
	(void)fd;
	(void)events;
	pump_stdin(data);
}

static void on_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct relay *r = ud;
	struct stdio_frame f;
	(void)s;
	(void)flags;

	if (stdio_frame_parse(d, len, &f) < 0) {
		log_warn("relay %s: bad stdio frame of %zu bytes from the guest, ignored", r->exec_id, len);
		return;
	}
	switch (f.kind) {
	case STDIO_STDOUT:
	case STDIO_STDERR:
		on_output(r, f.kind == STDIO_STDOUT ? 0 : 1, f.data, f.len);
		break;
	case STDIO_ACK:
		r->in_unacked = f.ack > r->in_unacked ? 0 : r->in_unacked - f.ack;
		pump_stdin(r);
		break;
	case STDIO_EOF:
		if (f.fd == 1 || f.fd == 2) {
			int i = f.fd - 1;
			r->out[i].eof = true;
			if (r->out[i].len == 0 && r->out[i].fd >= 0)
				close_out(r, i);
		}
		break;
	default:
		break;
	}
}

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct relay *r = data;
	(void)payload;
	(void)len;

	r->s = NULL;
	r->guest_done = true;
	if (code != 0)
		runm_error_make(&r->guest_err, 0, "stdio of process '%s': %s", r->exec_id, msg ? msg : "failed");
	/* Stdin has nowhere to go any more. */
	stop_stdin(r, false);
	/* The stream broke: output still queued for a stuck reader is dropped
	 * rather than waited for, so a dead VM never hangs its front end. */
	if (code != 0)
		for (int i = 0; i < 2; i++)
			r->out[i].len = 0;
	maybe_finish(r);
}

/* Watch fd with no events yet; a regular file (EPERM) is marked not pollable. */
static int watch(struct relay *r, int fd, loop_fd_cb cb, struct loop_watch **w, bool *pollable, runm_error_t *err)
{
	cleanup_error runm_error_t werr = NULL;
	*w = loop_watch_fd(r->loop, fd, 0, cb, r, &werr);
	if (*w != NULL) {
		*pollable = true;
		return set_nonblock(fd, 1);
	}
	if (werr && werr->status == EPERM) {
		*pollable = false;
		return 0;
	}
	return runm_error_make(err, werr ? werr->status : 0, "watch stdio fd %d: %s", fd, runm_error_msg(werr));
}

static int start(struct loop *loop, struct sandbox *sb, struct ttrpc_conn *conn, const char *container_id,
		 const char *exec_id, int in, int out, int err_fd, relay_done_fn done, void *data, struct relay **out_relay, runm_error_t *err)
{
	Runm__Agent__V1__StdioRequest req = RUNM__AGENT__V1__STDIO_REQUEST__INIT;
	struct relay *r = xzalloc(sizeof(*r));

	r->loop = loop;
	r->container_id = xstrdup(container_id ? container_id : "");
	r->exec_id = xstrdup(exec_id);
	r->done = done;
	r->data = data;
	r->in = in;
	r->out[0].fd = out;
	r->out[1].fd = err_fd;

	if (in >= 0 && watch(r, in, stdin_readable, &r->w_in, &r->in_pollable, err) < 0)
		goto fail;
	for (int i = 0; i < 2; i++) {
		struct relay_out *o = &r->out[i];
		if (o->fd < 0)
			continue;
		if (i == 1 && o->fd == r->out[0].fd) { /* one tty for both */
			o->pollable = r->out[0].pollable;
			continue;
		}
		if (watch(r, o->fd, out_writable, &o->w, &o->pollable, err) < 0)
			goto fail;
	}

	req.exec_id = r->exec_id;
	req.container_id = r->container_id;
	/* A deferred failure would reach a relay its caller freed on our error. */
	if (sb != NULL ? sandbox_conn(sb) == NULL : conn == NULL) {
		runm_error_make(err, 0, "the VM is gone");
		goto fail;
	}
	if (sb != NULL)
		r->s = sandbox_call(sb, "Stdio", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, r);
	else
		r->s = ttrpc_call(conn, AGENT_SERVICE, "Stdio", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, r);
	if (r->s != NULL) {
		ttrpc_stream_on_data(r->s, on_data, r);
		pump_stdin(r);
	}
	*out_relay = r;
	return 0;

fail:
	runm_error_wrap(err, "stdio of process '%s'", exec_id);
	relay_free(r);
	return -1;
}

int relay_start(struct loop *loop, struct sandbox *sb, const char *container_id, const char *exec_id, int in,
		int out, int err_fd,
		relay_done_fn done, void *data, struct relay **out_relay, runm_error_t *err)
{
	return start(loop, sb, NULL, container_id, exec_id, in, out, err_fd, done, data, out_relay, err);
}

int relay_start_conn(struct loop *loop, struct ttrpc_conn *conn, const char *container_id, const char *exec_id,
		     int in, int out, int err_fd,
		     relay_done_fn done, void *data, struct relay **out_relay, runm_error_t *err)
{
	return start(loop, NULL, conn, container_id, exec_id, in, out, err_fd, done, data, out_relay, err);
}

void relay_close_stdin(struct relay *r)
{
	if (r != NULL)
		stop_stdin(r, true);
}

bool relay_finished(const struct relay *r)
{
	return r->finished;
}

void relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	if (r->s != NULL)
		ttrpc_call_abandon(r->s);
	r->s = NULL;
	stop_stdin(r, false);
	for (int i = 0; i < 2; i++)
		close_out(r, i);
	runm_error_release(&r->guest_err);
	free(r->container_id);
	free(r->exec_id);
	free(r);
}

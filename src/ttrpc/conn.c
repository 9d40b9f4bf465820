/* conn.c - one ttrpc connection: the reader that cuts the byte stream into
 * frames and routes them, the write queue flushed on EPOLLOUT, and the
 * close sequence (deferred, so no user callback runs inside another). */
#include "ttrpc-internal.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_MIN (64u << 10)
/* Keep at most this much read buffer around between frames; a 4 MiB frame
 * should not pin 4 MiB per idle connection. */
#define RBUF_KEEP (256u << 10)
/* DATA frames for a stream that is not open for them are dropped: data
 * racing with its stream's end (a window's worth per stream at most,
 * STDIO_WINDOW). This many bytes of it in a row, with nothing delivered in
 * between, is a peer flooding us rather than a race: hang up, or a hostile
 * guest keeps the host reading and dropping for ever. */
#define DROPPED_MAX (16u << 20)

static void conn_io(struct loop *loop, int fd, uint32_t events, void *data);

static void conn_finish(struct loop *loop, void *data)
{
	struct ttrpc_conn *c = data;
	struct ttrpc_stream *s;
	(void)loop;

	cleanup_free char *why = c->fail_reason ? xasprintf("ttrpc: closed: %s", c->fail_reason) : NULL;

	while ((s = tt_stream_pop_any(c)) != NULL) {
		if (s->client) {
			/* The reason, when it was the peer's fault: "closed" alone
			 * would leave the user guessing what the peer did. */
			tt_client_finish(s, TTRPC_UNAVAILABLE, why ? why : "ttrpc: closed");
		} else {
			/* The user still owns it and must reply; that reply is a free. */
			s->conn = NULL;
			if (s->cancel_cb)
				s->cancel_cb(s, s->cancel_data);
		}
	}
	free(c->rbuf);
	c->rbuf = NULL;
	if (c->on_close)
		c->on_close(c, c->on_close_data);
	/* on_close may have freed the server, which then cleared c->srv. */
	if (c->srv)
		tt_server_conn_gone(c->srv, c);
	for (size_t i = 0; i < c->n_md; i++) {
		free(c->md[i].key);
		free(c->md[i].value);
	}
	free(c->md);
	free(c->fail_reason);
	free(c);
}

struct ttrpc_conn *ttrpc_conn_new(struct loop *loop, int fd, struct ttrpc_server *srv,
				  void (*on_close)(struct ttrpc_conn *, void *), void *data)
{
	struct ttrpc_conn *c = xzalloc(sizeof(*c));
	cleanup_error runm_error_t err = NULL;

	c->loop = loop;
	c->fd = fd;
	c->on_close = on_close;
	c->on_close_data = data;
	c->next_call_id = 1;
	if (srv)
		tt_server_add_conn(srv, c);
	set_nonblock(fd, 1);
	set_cloexec(fd, 1);
	c->watch = loop_watch_fd(loop, fd, EPOLLIN, conn_io, c, &err);
	if (c->watch == NULL) {
		log_warn("ttrpc: %s", runm_error_msg(err));
		ttrpc_conn_close(c);
	}
	return c;
}

static void wq_free(struct ttrpc_conn *c)
{
	while (c->wq_head) {
		struct tt_wbuf *w = c->wq_head;
		c->wq_head = w->next;
		free(w->data);
		free(w);
	}
	c->wq_tail = NULL;
	c->queued = 0;
}

void ttrpc_conn_close(struct ttrpc_conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	loop_unwatch(c->watch);
	c->watch = NULL;
	close_and_reset(&c->fd);
	wq_free(c);
	c->drain_cb = NULL;
	if (c->srv)
		c->srv->n_open--;
	loop_defer(c->loop, conn_finish, c);
}

void tt_conn_fail(struct ttrpc_conn *c, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (c->closed)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_warn("ttrpc: closing connection: %s", buf);
	c->fail_reason = xstrdup(buf);
	ttrpc_conn_close(c);
}

size_t ttrpc_conn_queued(const struct ttrpc_conn *c)
{
	return c->queued;
}

static void set_want_out(struct ttrpc_conn *c, bool on)
{
	if (c->want_out == on || c->closed)
		return;
	if (loop_watch_mod(c->watch, on ? EPOLLIN | EPOLLOUT : EPOLLIN) < 0) {
		tt_conn_fail(c, "epoll_ctl: %s", strerror(errno));
		return;
	}
	c->want_out = on;
}

void ttrpc_conn_on_drain(struct ttrpc_conn *c, void (*cb)(struct ttrpc_conn *, void *), void *data)
{
	if (c->closed)
		return;
	c->drain_cb = cb;
	c->drain_data = data;
	/* Already empty: the fd is writable, so EPOLLOUT reports it on the next
	 * iteration and the callback runs from there, never from inside this call. */
	if (cb)
		set_want_out(c, true);
}

static ssize_t conn_write(struct ttrpc_conn *c, const void *p, size_t n)
{
	ssize_t r;
	if (!c->not_socket) {
		/* MSG_NOSIGNAL: a peer hanging up must be an error, not SIGPIPE. */
		r = send(c->fd, p, n, MSG_NOSIGNAL);
		if (r >= 0 || errno != ENOTSOCK)
			return r;
		c->not_socket = true;
	}
	return write(c->fd, p, n);
}

static void conn_flush(struct ttrpc_conn *c, bool from_epoll)
{
	while (c->wq_head) {
		struct tt_wbuf *w = c->wq_head;
		ssize_t n = conn_write(c, w->data + w->off, w->len - w->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			log_debug("ttrpc: write: %s", strerror(errno));
			ttrpc_conn_close(c);
			return;
		}
		w->off += (size_t)n;
		c->queued -= (size_t)n;
		if (w->off == w->len) {
			c->wq_head = w->next;
			if (c->wq_head == NULL)
				c->wq_tail = NULL;
			free(w->data);
			free(w);
		}
	}
	if (c->wq_head) {
		set_want_out(c, true);
		return;
	}
	if (from_epoll && c->drain_cb) {
		void (*cb)(struct ttrpc_conn *, void *) = c->drain_cb;
		c->drain_cb = NULL;
		set_want_out(c, false);
		cb(c, c->drain_data);
		return;
	}
	if (c->drain_cb == NULL)
		set_want_out(c, false);
}

void tt_conn_queue(struct ttrpc_conn *c, uint8_t *buf, size_t len)
{
	struct tt_wbuf *w;

	if (c->closed) {
		free(buf);
		return;
	}
	w = xzalloc(sizeof(*w));
	w->data = buf;
	w->len = len;
	if (c->wq_tail)
		c->wq_tail->next = w;
	else
		c->wq_head = w;
	c->wq_tail = w;
	c->queued += len;
	/* Write at once when nothing waits ahead of us; otherwise EPOLLOUT will. */
	if (!c->want_out)
		conn_flush(c, false);
}

/* Checks that need only the header; false = the connection was closed. */
static bool header_ok(struct ttrpc_conn *c, const struct ttrpc_header *h)
{
	if (h->length > TTRPC_MAX_PAYLOAD) {
		tt_conn_fail(c, "the peer sent a frame of %u bytes on stream %u, over the %u MiB limit", h->length,
			     h->stream_id, TTRPC_MAX_PAYLOAD >> 20);
		return false;
	}
	switch (h->type) {
	case TTRPC_REQUEST:
		/* A client-only connection serves nothing: a peer sending
		 * requests anyway could make us queue answers without end. */
		if (c->srv == NULL) {
			tt_conn_fail(c, "request on a client-only connection");
			return false;
		}
		if ((h->stream_id & 1) == 0) {
			tt_conn_fail(c, "request on even stream id %u", h->stream_id);
			return false;
		}
		if (h->stream_id <= c->last_req_id) {
			tt_conn_fail(c, "request stream id %u not above %u", h->stream_id, c->last_req_id);
			return false;
		}
		return true;
	case TTRPC_RESPONSE:
		/* Our calls use odd ids below next_call_id: an answer to any
		 * other was never asked, and no late reply of a timed-out call
		 * (which is dropped quietly below). */
		if ((h->stream_id & 1) == 0 || h->stream_id >= c->next_call_id) {
			tt_conn_fail(c, "the peer answered on stream %u, which was never asked", h->stream_id);
			return false;
		}
		return true;
	case TTRPC_DATA:
		return true;
	default:
		tt_conn_fail(c, "unknown frame type %u on stream %u", h->type, h->stream_id);
		return false;
	}
}

static void conn_frame(struct ttrpc_conn *c, const struct ttrpc_header *h, const uint8_t *p)
{
	struct ttrpc_stream *s;

	switch (h->type) {
	case TTRPC_REQUEST:
		c->dropped_bytes = 0;
		tt_server_request(c, h->stream_id, p, h->length);
		break;
	case TTRPC_RESPONSE:
		s = tt_stream_find(c, h->stream_id);
		/* Unknown: the call timed out or was failed locally; drop it. */
		if (s && s->client) {
			c->dropped_bytes = 0;
			tt_client_response(s, p, h->length);
		} else {
			log_debug("ttrpc: response for unknown stream %u dropped", h->stream_id);
		}
		break;
	case TTRPC_DATA:
		s = tt_stream_find(c, h->stream_id);
		/* Unknown: data racing with the stream's end; drop it. */
		if (s && s->data_cb) {
			c->dropped_bytes = 0;
			s->data_cb(s, p, h->length, h->flags, s->data_ud);
			break;
		}
		c->dropped_bytes += h->length;
		if (c->dropped_bytes > DROPPED_MAX)
			tt_conn_fail(c, "the peer sent over %u MiB of data for streams not open for it (stream %u last)",
				     DROPPED_MAX >> 20, h->stream_id);
		break;
	}
}

static void conn_read(struct ttrpc_conn *c)
{
	size_t need = RBUF_MIN, off = 0;
	struct ttrpc_header h;
	ssize_t n;

	if (c->rlen >= TTRPC_HEADER_LEN) {
		/* A frame is pending: room for all of it (its header passed header_ok). */
		ttrpc_header_decode(c->rbuf, &h);
		if (TTRPC_HEADER_LEN + (size_t)h.length > need)
			need = TTRPC_HEADER_LEN + (size_t)h.length;
	}
	if (c->rcap < need) {
		c->rbuf = xrealloc(c->rbuf, need);
		c->rcap = need;
	}
	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		log_debug("ttrpc: read: %s", strerror(errno));
		ttrpc_conn_close(c);
		return;
	}
	if (n == 0) {
		if (c->rlen)
			log_debug("ttrpc: peer closed inside a frame (%zu bytes pending)", c->rlen);
		ttrpc_conn_close(c);
		return;
	}
	c->rlen += (size_t)n;

	/* Payload pointers stay valid while we dispatch: nothing moves the
	 * buffer until the loop is done, and a close only frees it later. */
	while (!c->closed && c->rlen - off >= TTRPC_HEADER_LEN) {
		ttrpc_header_decode(c->rbuf + off, &h);
		if (!header_ok(c, &h))
			return;
		if (c->rlen - off - TTRPC_HEADER_LEN < h.length)
			break;
		off += TTRPC_HEADER_LEN + h.length;
		conn_frame(c, &h, c->rbuf + off - h.length);
	}
	if (c->closed)
		return;
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	if (c->rlen == 0 && c->rcap > RBUF_KEEP) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
}

static void conn_io(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct ttrpc_conn *c = data;
	(void)loop;
	(void)fd;

	if (events & EPOLLOUT)
		conn_flush(c, true);
	if (!c->closed && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_read(c);
}

void ttrpc_conn_set_metadata(struct ttrpc_conn *c, const char *key, const char *value)
{
	for (size_t i = 0; i < c->n_md; i++) {
		if (strcmp(c->md[i].key, key) == 0) {
			free(c->md[i].value);
			c->md[i].value = xstrdup(value);
			return;
		}
	}
	c->md = xrealloc(c->md, (c->n_md + 1) * sizeof(*c->md));
	c->md[c->n_md].key = xstrdup(key);
	c->md[c->n_md].value = xstrdup(value);
	c->n_md++;
}

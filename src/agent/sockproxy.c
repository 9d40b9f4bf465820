/* sockproxy.c - see sockproxy.h. A listener is watched only while a call
 * waits for it: a client the host has no stream for yet stays in the
 * kernel's backlog rather than in our memory. Each connection keeps at most
 * SOCK_WINDOW bytes in flight towards the host (acknowledged once written
 * there) and buffers at most SOCK_WINDOW from it (the host's window). */
#include "sockproxy.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/sockproxy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct gsock;

struct gconn {
	struct gsock *g;
	struct ttrpc_stream *s; /* the call, answered once the connection is over */
	int fd;                 /* the client in the container */
	struct loop_watch *w;
	uint32_t unacked;       /* sent to the host, not yet written there */
	uint8_t *out;           /* from the host, not yet written to the client */
	size_t out_len;
	bool rd_eof;            /* the client's EOF was sent on */
	bool wr_eof;            /* the host's EOF arrived */
	bool shut;              /* ... and was passed on: shutdown(SHUT_WR) */
	struct gconn *prev, *next;
};

struct gsock {
	char *ctr_id;
	unsigned index;
	char *path;
	int fd;
	struct loop_watch *w;
	struct ttrpc_stream *waiting[SOCK_MAX_WAITING]; /* oldest first */
	size_t n_waiting;
	struct gconn *conns;
	struct gsock *next;
};

static struct loop *sp_loop;
static struct gsock *socks;
static size_t n_conns;

static void send_kind(struct ttrpc_stream *s, enum sock_kind kind, uint32_t ack)
{
	uint8_t f[5];
	ttrpc_stream_send(s, f, sock_encode(f, kind, ack), 0);
}

/* Accept only while a call waits. */
static void listen_update(struct gsock *g)
{
	if (g->w)
		loop_watch_mod(g->w, g->n_waiting > 0 ? EPOLLIN : 0);
}

static void conn_watch_update(struct gconn *c)
{
	uint32_t ev = 0;
	if (!c->rd_eof && c->unacked < SOCK_WINDOW)
		ev |= EPOLLIN;
	if (c->out_len > 0)
		ev |= EPOLLOUT;
	/* Its EOF read, a client that closes altogether still shows as a
	 * hang-up (both directions shut: we have not shut ours yet), so a
	 * host server that never closes does not keep it open. */
	if (c->rd_eof && !c->shut)
		ev |= EPOLLHUP;
	if (c->w)
		loop_watch_mod(c->w, ev);
}

/* End the connection: close the client, answer the call (error = msg, OK
 * when NULL); tell the host first when it does not know yet. */
static void conn_end(struct gconn *c, bool tell_host, const char *msg)
{
	struct ttrpc_stream *s = c->s;

	if (tell_host && s && ttrpc_stream_conn(s))
		send_kind(s, SOCK_CLOSE, 0);
	loop_unwatch(c->w);
	close_and_reset(&c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->g->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n_conns--;
	free(c->out);
	free(c);
	if (s == NULL)
		return;
	ttrpc_stream_on_data(s, NULL, NULL);
	ttrpc_stream_on_cancel(s, NULL, NULL);
	if (msg)
		ttrpc_reply_error(s, TTRPC_ABORTED, "%s", msg);
	else
		ttrpc_reply(s, NULL);
}

/* The client can take nothing more. After its EOF went to the host that is
 * an end, not a failure: the host still writes out all the client sent. */
static void client_gone(struct gconn *c)
{
	if (c->rd_eof)
		conn_end(c, false, NULL);
	else
		conn_end(c, true, "the client in the container went away");
}

static void maybe_done(struct gconn *c)
{
	if (c->rd_eof && c->shut)
		conn_end(c, false, NULL);
}

static void flush_out(struct gconn *c)
{
	size_t written = 0;

	while (written < c->out_len) {
		ssize_t n = send(c->fd, c->out + written, c->out_len - written, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			log_debug("sockproxy %s/%u: write to client: %s", c->g->ctr_id, c->g->index, strerror(errno));
			client_gone(c);
			return;
		}
		written += (size_t)n;
	}
	if (written > 0) {
		memmove(c->out, c->out + written, c->out_len - written);
		c->out_len -= written;
		send_kind(c->s, SOCK_ACK, (uint32_t)written);
	}
	if (c->out_len == 0 && c->wr_eof && !c->shut) {
		shutdown(c->fd, SHUT_WR);
		c->shut = true;
	}
	conn_watch_update(c);
	maybe_done(c);
}

static void read_client(struct gconn *c)
{
	uint8_t buf[1 + SOCK_CHUNK];

	/* At most one window per wake-up: the host channel gets its turn. */
	while (!c->rd_eof && c->unacked < SOCK_WINDOW) {
		size_t room = SOCK_WINDOW - c->unacked;
		ssize_t n = recv(c->fd, buf + 1, room < SOCK_CHUNK ? room : SOCK_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			log_debug("sockproxy %s/%u: read from client: %s", c->g->ctr_id, c->g->index, strerror(errno));
			conn_end(c, true, "the client in the container went away");
			return;
		}
		if (n == 0) {
			c->rd_eof = true;
			send_kind(c->s, SOCK_EOF, 0);
			break;
		}
		buf[0] = SOCK_DATA;
		ttrpc_stream_send(c->s, buf, (size_t)n + 1, 0);
		c->unacked += (uint32_t)n;
	}
	conn_watch_update(c);
	maybe_done(c);
}

static void on_client(struct loop *l, int fd, uint32_t events, void *data)
{
	struct gconn *c = data;
	(void)l;
	(void)fd;

	if (events & EPOLLOUT) {
		flush_out(c); /* may end c */
		return;
	}
	if (c->rd_eof && (events & (EPOLLHUP | EPOLLERR))) {
		client_gone(c);
		return;
	}
	read_client(c);
}

static void on_conn_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct gconn *c = ud;
	struct sock_frame f;
	(void)s;

	if (len == 0 && (flags & TTRPC_FLAG_REMOTE_CLOSED)) {
		conn_end(c, false, "closed by the host");
		return;
	}
	if (sock_frame_parse(d, len, &f) < 0) {
		log_warn("sockproxy %s/%u: bad frame of %zu bytes from the host: connection ended", c->g->ctr_id,
			 c->g->index, len);
		conn_end(c, true, "bad frame");
		return;
	}
	switch (f.kind) {
	case SOCK_DATA:
		/* The host keeps its window: more, or data after its EOF, is a broken peer. */
		if (c->wr_eof || c->out_len + f.len > SOCK_WINDOW) {
			const char *why = c->wr_eof ? "data after EOF" : "window overrun";
			log_warn("sockproxy %s/%u: %s from the host: connection ended", c->g->ctr_id, c->g->index, why);
			conn_end(c, true, why);
			return;
		}
		c->out = xrealloc(c->out, c->out_len + f.len);
		memcpy(c->out + c->out_len, f.data, f.len);
		c->out_len += f.len;
		flush_out(c);
		return;
	case SOCK_ACK:
		c->unacked = f.ack > c->unacked ? 0 : c->unacked - f.ack;
		read_client(c);
		return;
	case SOCK_EOF:
		c->wr_eof = true;
		flush_out(c);
		return;
	case SOCK_CLOSE:
		conn_end(c, false, "closed by the host");
		return;
	default: /* CONNECTED is ours to send */
		conn_end(c, true, "unexpected frame");
		return;
	}
}

static void on_conn_cancel(struct ttrpc_stream *s, void *data)
{
	struct gconn *c = data;
	(void)s;
	conn_end(c, false, "host gone"); /* the reply is only a free now */
}

static void drop_waiting(struct gsock *g, size_t i)
{
	memmove(&g->waiting[i], &g->waiting[i + 1], (g->n_waiting - i - 1) * sizeof(g->waiting[0]));
	g->n_waiting--;
	listen_update(g);
}

static ssize_t waiting_index(struct gsock *g, struct ttrpc_stream *s)
{
	for (size_t i = 0; i < g->n_waiting; i++)
		if (g->waiting[i] == s)
			return (ssize_t)i;
	return -1;
}

/* A waiting call expects nothing: whatever comes (CLOSE, garbage) ends it. */
static void on_waiting_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct gsock *g = ud;
	ssize_t i = waiting_index(g, s);
	(void)d;
	(void)flags;

	if (i < 0)
		return;
	drop_waiting(g, (size_t)i);
	ttrpc_stream_on_data(s, NULL, NULL);
	ttrpc_stream_on_cancel(s, NULL, NULL);
	if (len != 1 || d[0] != SOCK_CLOSE)
		log_debug("sockproxy %s/%u: unexpected frame on a waiting call", g->ctr_id, g->index);
	ttrpc_reply_error(s, TTRPC_CANCELLED, "closed by the host before a client connected");
}

static void on_waiting_cancel(struct ttrpc_stream *s, void *data)
{
	struct gsock *g = data;
	ssize_t i = waiting_index(g, s);
	if (i < 0)
		return;
	drop_waiting(g, (size_t)i);
	ttrpc_reply(s, NULL); /* only a free: the host is gone */
}

static void on_accept(struct loop *l, int fd, uint32_t events, void *data)
{
	struct gsock *g = data;
	(void)l;
	(void)events;

	while (g->n_waiting > 0) {
		cleanup_error runm_error_t err = NULL;
		struct gconn *c;
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				log_warn("sockproxy %s/%u: accept: %s", g->ctr_id, g->index, strerror(errno));
			return;
		}
		c = xzalloc(sizeof(*c));
		c->g = g;
		c->fd = cfd;
		c->s = g->waiting[0];
		drop_waiting(g, 0);
		c->w = loop_watch_fd(sp_loop, cfd, EPOLLIN, on_client, c, &err);
		c->next = g->conns;
		if (g->conns)
			g->conns->prev = c;
		g->conns = c;
		n_conns++;
		ttrpc_stream_on_data(c->s, on_conn_data, c);
		ttrpc_stream_on_cancel(c->s, on_conn_cancel, c);
		if (c->w == NULL) {
			log_warn("sockproxy %s/%u: %s", g->ctr_id, g->index, runm_error_msg(err));
			conn_end(c, false, "cannot watch the client");
			continue;
		}
		send_kind(c->s, SOCK_CONNECTED, 0);
	}
}

static void gsock_free(struct gsock *g)
{
	loop_unwatch(g->w);
	close_and_reset(&g->fd);
	if (g->path)
		unlink(g->path);
	while (g->n_waiting > 0) {
		struct ttrpc_stream *s = g->waiting[0];
		drop_waiting(g, 0);
		ttrpc_stream_on_data(s, NULL, NULL);
		ttrpc_stream_on_cancel(s, NULL, NULL);
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "container %s is being deleted", g->ctr_id);
	}
	while (g->conns)
		conn_end(g->conns, true, "the container is being deleted");
	free(g->ctr_id);
	free(g->path);
	free(g);
}

void sockproxy_remove(const char *ctr_id)
{
	cleanup_free char *dir = xasprintf(SOCK_GUEST_DIR "/%s", ctr_id);
	bool any = false;

	for (struct gsock **pg = &socks; *pg;) {
		struct gsock *g = *pg;
		if (strcmp(g->ctr_id, ctr_id) != 0) {
			pg = &g->next;
			continue;
		}
		*pg = g->next;
		gsock_free(g);
		any = true;
	}
	if (any && rmdir(dir) < 0 && errno != ENOENT)
		log_warn("sockproxy: remove %s: %s", dir, strerror(errno));
}

int sockproxy_listen(struct loop *loop, const char *ctr_id, Runm__Agent__V1__SocketMount *const *sm,
		     size_t n_socks, runm_error_t *err)
{
	cleanup_free char *dir = NULL;

	if (n_socks == 0)
		return 0;
	if (n_socks > SOCK_MAX_SOCKETS)
		return runm_error_make(err, EINVAL, "more than %d host sockets", SOCK_MAX_SOCKETS);
	sp_loop = loop;
	dir = xasprintf(SOCK_GUEST_DIR "/%s", ctr_id);
	if (mkdir_p(dir, 0700, err) < 0)
		return -1;
	for (size_t i = 0; i < n_socks; i++) {
		struct gsock *g = xzalloc(sizeof(*g));
		g->ctr_id = xstrdup(ctr_id);
		g->index = (unsigned)i;
		g->path = xasprintf("%s/%zu.sock", dir, i);
		g->next = socks;
		socks = g; /* from here on, sockproxy_remove undoes it */
		g->fd = unix_listen(g->path, err);
		if (g->fd < 0)
			goto fail;
		set_nonblock(g->fd, 1);
		/* As the host socket: connect(2) needs write permission on it. */
		if (chown(g->path, sm[i]->uid, sm[i]->gid) < 0 || chmod(g->path, sm[i]->mode & 0777) < 0) {
			runm_error_make(err, errno, "set owner and mode of `%s`", g->path);
			goto fail;
		}
		g->w = loop_watch_fd(loop, g->fd, 0, on_accept, g, err);
		if (g->w == NULL)
			goto fail;
	}
	log_info("sockproxy: %zu host socket(s) of %s listening in " SOCK_GUEST_DIR, n_socks, ctr_id);
	return 0;
fail:
	sockproxy_remove(ctr_id);
	return runm_error_wrap(err, "host socket of %s", ctr_id);
}

int sockproxy_attach(struct ttrpc_stream *s, const char *ctr_id, unsigned index, runm_error_t *err)
{
	struct gsock *g = socks;

	while (g && (strcmp(g->ctr_id, ctr_id) != 0 || g->index != index))
		g = g->next;
	if (g == NULL)
		return runm_error_make(err, ENOENT, "container %s has no host socket %u", ctr_id, index);
	if (g->n_waiting >= SOCK_MAX_WAITING)
		return runm_error_make(err, ENOSPC, "host socket %u of %s: %d calls wait already", index, ctr_id,
				       SOCK_MAX_WAITING);
	g->waiting[g->n_waiting++] = s;
	ttrpc_stream_on_data(s, on_waiting_data, g);
	ttrpc_stream_on_cancel(s, on_waiting_cancel, g);
	listen_update(g);
	return 0;
}

size_t sockproxy_conn_count(void)
{
	return n_conns;
}

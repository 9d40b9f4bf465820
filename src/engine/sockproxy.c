/* sockproxy.c - see sockproxy.h. Each connection is one SocketProxy call;
 * its state is freed when the agent answered and what the guest sent was
 * written to the host socket, or at once when either side gives up. */
#include "engine/sockproxy.h"

#include "common/log.h"
#include "common/util.h"
#include "proto/pb.h"
#include "proto/sockproxy.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A host server whose listen backlog is full is asked again this often, this
 * many times, before the client's connection is closed. */
#define CONNECT_RETRY_MS 20
#define CONNECT_TRIES 100

struct hsock;

struct hconn {
	struct hsock *h;
	struct ttrpc_stream *s; /* the call, NULL once answered */
	bool connected;         /* CONNECTED arrived: a client in the guest */
	int fd;                 /* the host socket's connection */
	struct loop_watch *w;
	uint8_t *out;           /* from the guest, not yet written to fd */
	size_t out_len;
	uint32_t unacked;       /* sent to the guest, not yet written there */
	bool guest_eof;         /* the guest's EOF arrived */
	bool shut;              /* ... and was passed on: shutdown(SHUT_WR) */
	bool host_eof;          /* fd's EOF was sent on */
	bool discard;           /* the server went after its EOF: guest data goes nowhere */
	unsigned tries;         /* connect attempts on a full backlog */
	struct loop_timer *retry;
	struct hconn *prev, *next;
};

struct hsock {
	struct sockproxy *p;
	unsigned index;
	char *host_path, *destination;
	size_t n_waiting, n_conns;
	bool dead; /* the agent refused a waiting call: do not open more */
	struct hconn *conns;
};

struct sockproxy {
	struct loop *loop;
	struct sandbox *sb;
	struct ttrpc_conn *conn;
	char *ctr_id;
	struct hsock *socks;
	size_t n_socks;
};

static void send_kind(struct hconn *c, enum sock_kind kind, uint32_t ack)
{
	uint8_t f[5];
	if (c->s)
		ttrpc_stream_send(c->s, f, sock_encode(f, kind, ack), 0);
}

static void open_call(struct hsock *h);

/* Keep SOCKPROXY_WAITING calls waiting, within SOCK_MAX_CONNS in all. */
static void replenish(struct hsock *h)
{
	while (!h->dead && h->n_waiting < SOCKPROXY_WAITING && h->n_waiting + h->n_conns < SOCK_MAX_CONNS)
		open_call(h);
}

static void unlink_conn(struct hconn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* Forget the connection; tell the agent when its call is still open. */
static void conn_free(struct hconn *c, bool tell_guest)
{
	struct hsock *h = c->h;

	if (c->s) {
		if (tell_guest)
			send_kind(c, SOCK_CLOSE, 0);
		ttrpc_call_abandon(c->s);
		c->s = NULL;
	}
	if (c->connected)
		h->n_conns--;
	else
		h->n_waiting--;
	loop_timer_cancel(c->retry);
	loop_unwatch(c->w);
	close_and_reset(&c->fd);
	unlink_conn(c);
	free(c->out);
	free(c);
}

static void conn_watch_update(struct hconn *c)
{
	uint32_t ev = 0;
	if (c->s && !c->host_eof && c->unacked < SOCK_WINDOW)
		ev |= EPOLLIN;
	if (c->out_len > 0)
		ev |= EPOLLOUT;
	if (c->w)
		loop_watch_mod(c->w, ev);
}

/* A connection that is over on both sides is freed, and its slot reused. */
static bool maybe_done(struct hconn *c)
{
	struct hsock *h = c->h;
	if (c->s != NULL || c->out_len > 0)
		return false;
	conn_free(c, false);
	replenish(h);
	return true;
}

static void fail_conn(struct hconn *c, const char *what, int e)
{
	struct hsock *h = c->h;
	log_warn("%s: host socket `%s`: %s: %s", h->p->ctr_id, h->host_path, what, strerror(e));
	conn_free(c, true);
	replenish(h);
}

static void flush_out(struct hconn *c)
{
	size_t written = 0;

	while (c->fd >= 0 && written < c->out_len) {
		ssize_t n = send(c->fd, c->out + written, c->out_len - written, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && c->host_eof) {
			/* The server said all it had and went: what the guest still
			 * sends goes nowhere, as into a closed socket, while what the
			 * server said still reaches the client. */
			c->discard = true;
			written = c->out_len;
			break;
		}
		if (n < 0) {
			fail_conn(c, "write", errno);
			return;
		}
		written += (size_t)n;
	}
	if (written > 0) {
		memmove(c->out, c->out + written, c->out_len - written);
		c->out_len -= written;
		send_kind(c, SOCK_ACK, (uint32_t)written);
	}
	if (c->out_len == 0 && c->guest_eof && !c->shut && c->fd >= 0) {
		if (!c->discard)
			shutdown(c->fd, SHUT_WR);
		c->shut = true;
	}
	if (!maybe_done(c))
		conn_watch_update(c);
}

static void read_host(struct hconn *c)
{
	uint8_t buf[1 + SOCK_CHUNK];

	while (c->fd >= 0 && c->s && !c->host_eof && c->unacked < SOCK_WINDOW) {
		size_t room = SOCK_WINDOW - c->unacked;
		ssize_t n = recv(c->fd, buf + 1, room < SOCK_CHUNK ? room : SOCK_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			fail_conn(c, "read", errno);
			return;
		}
		if (n == 0) {
			c->host_eof = true;
			send_kind(c, SOCK_EOF, 0);
			break;
		}
		buf[0] = SOCK_DATA;
		ttrpc_stream_send(c->s, buf, (size_t)n + 1, 0);
		c->unacked += (uint32_t)n;
	}
	conn_watch_update(c);
}

static void on_host_io(struct loop *l, int fd, uint32_t events, void *data)
{
	struct hconn *c = data;
	(void)l;
	(void)fd;

	if (events & EPOLLOUT) {
		flush_out(c); /* may free c */
		return;
	}
	read_host(c);
}

/* Non-blocking: a host server whose backlog is full must not stall the loop
 * (EAGAIN: the caller asks again later). */
static int connect_host(const char *path, runm_error_t *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		/* unix_connect reaches a long path through its directory (blocking). */
		fd = unix_connect(path, err);
		if (fd >= 0)
			set_nonblock(fd, 1);
		return fd < 0 ? -1 : steal_fd(&fd);
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return runm_error_make(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return runm_error_make(err, errno, "connect");
	return steal_fd(&fd);
}

static void try_connect(struct hconn *c);

static void on_retry(struct loop *l, void *data)
{
	struct hconn *c = data;
	(void)l;
	c->retry = NULL; /* the loop frees a fired timer */
	try_connect(c);
}

static void try_connect(struct hconn *c)
{
	cleanup_error runm_error_t err = NULL;
	struct hsock *h = c->h;

	c->fd = connect_host(h->host_path, &err);
	if (c->fd < 0 && err && err->status == EAGAIN && ++c->tries < CONNECT_TRIES) {
		if (c->tries == 1)
			log_info("%s: host socket `%s` is busy (its backlog is full): asking again", h->p->ctr_id,
				 h->host_path);
		c->retry = loop_timer_add(h->p->loop, CONNECT_RETRY_MS, on_retry, c);
		return;
	}
	if (c->fd < 0) {
		log_warn("%s: host socket `%s` (at %s in the container): %s: the client's connection is closed",
			 h->p->ctr_id, h->host_path, h->destination ? h->destination : "?", runm_error_msg(err));
		conn_free(c, true);
		replenish(h);
		return;
	}
	c->w = loop_watch_fd(h->p->loop, c->fd, EPOLLIN, on_host_io, c, &err);
	if (c->w == NULL) {
		log_warn("%s: host socket `%s`: %s", h->p->ctr_id, h->host_path, runm_error_msg(err));
		conn_free(c, true);
		replenish(h);
		return;
	}
	/* What the guest sent while we connected. */
	flush_out(c);
}

static void on_connected(struct hconn *c)
{
	struct hsock *h = c->h;

	c->connected = true;
	h->n_waiting--;
	h->n_conns++;
	replenish(h);
	try_connect(c);
}

static void protocol_error(struct hconn *c, const char *what)
{
	struct hsock *h = c->h;
	log_warn("%s: host socket `%s`: %s from the guest: connection ended", h->p->ctr_id, h->host_path, what);
	conn_free(c, true);
	replenish(h);
}

static void on_guest_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct hconn *c = ud;
	struct sock_frame f;
	(void)s;
	(void)flags;

	if (sock_frame_parse(d, len, &f) < 0) {
		protocol_error(c, "bad frame");
		return;
	}
	if (!c->connected && f.kind != SOCK_CONNECTED) {
		protocol_error(c, "frame before CONNECTED");
		return;
	}
	switch (f.kind) {
	case SOCK_CONNECTED:
		if (c->connected)
			protocol_error(c, "second CONNECTED");
		else
			on_connected(c);
		return;
	case SOCK_DATA:
		if (c->guest_eof || c->out_len + f.len > SOCK_WINDOW) {
			protocol_error(c, c->guest_eof ? "data after EOF" : "window overrun");
			return;
		}
		if (c->discard) {
			send_kind(c, SOCK_ACK, (uint32_t)f.len);
			return;
		}
		c->out = xrealloc(c->out, c->out_len + f.len);
		memcpy(c->out + c->out_len, f.data, f.len);
		c->out_len += f.len;
		flush_out(c);
		return;
	case SOCK_ACK:
		c->unacked = f.ack > c->unacked ? 0 : c->unacked - f.ack;
		read_host(c);
		return;
	case SOCK_EOF:
		c->guest_eof = true;
		flush_out(c);
		return;
	case SOCK_CLOSE: {
		struct hsock *h = c->h;
		conn_free(c, false);
		replenish(h);
		return;
	}
	}
}

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct hconn *c = data;
	struct hsock *h = c->h;
	(void)payload;
	(void)len;

	c->s = NULL;
	if (!c->connected) {
		/* Refused or ended before a client came: the container or the VM
		 * is going. Do not ask again. */
		if (code != TTRPC_UNAVAILABLE)
			log_debug("%s: host socket `%s`: waiting call ended: %s", h->p->ctr_id, h->host_path,
				  msg ? msg : "");
		h->dead = true;
		conn_free(c, false);
		return;
	}
	if (code != TTRPC_OK) {
		log_debug("%s: host socket `%s`: connection ended by the guest: %s", h->p->ctr_id, h->host_path,
			  msg ? msg : "");
		conn_free(c, false);
		replenish(h);
		return;
	}
	/* What the guest sent is all here: write it out, then go. */
	if (!maybe_done(c))
		conn_watch_update(c);
}

static void open_call(struct hsock *h)
{
	Runm__Agent__V1__SocketProxyRequest req = RUNM__AGENT__V1__SOCKET_PROXY_REQUEST__INIT;
	struct sockproxy *p = h->p;
	struct hconn *c = xzalloc(sizeof(*c));

	c->h = h;
	c->fd = -1;
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->n_waiting++;
	req.container_id = p->ctr_id;
	req.index = h->index;
	/* NULL when the connection is gone: on_reply still runs (UNAVAILABLE). */
	if (p->sb != NULL)
		c->s = sandbox_call(p->sb, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, c);
	else
		c->s = ttrpc_call(p->conn, AGENT_SERVICE, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN,
				  on_reply, c);
	if (c->s != NULL)
		ttrpc_stream_on_data(c->s, on_guest_data, c);
	else
		h->dead = true; /* no replenish loop while the reply is pending */
}

static int start(struct loop *loop, struct sandbox *sb, struct ttrpc_conn *conn, const char *ctr_id,
		 const struct spec *sp, struct sockproxy **out, runm_error_t *err)
{
	struct sockproxy *p;

	*out = NULL;
	if (sp->n_sockets == 0)
		return 0;
	if (sb != NULL ? sandbox_conn(sb) == NULL : conn == NULL)
		return runm_error_make(err, 0, "host sockets of %s: the VM is gone", ctr_id);
	p = xzalloc(sizeof(*p));
	p->loop = loop;
	p->sb = sb;
	p->conn = conn;
	p->ctr_id = xstrdup(ctr_id);
	p->n_socks = sp->n_sockets;
	p->socks = xzalloc(p->n_socks * sizeof(*p->socks));
	for (size_t i = 0; i < p->n_socks; i++) {
		struct hsock *h = &p->socks[i];
		h->p = p;
		h->index = (unsigned)i;
		h->host_path = xstrdup(sp->sockets[i].host_path);
		h->destination = sp->sockets[i].destination ? xstrdup(sp->sockets[i].destination) : NULL;
		replenish(h);
	}
	*out = p;
	return 0;
}

int sockproxy_start(struct loop *loop, struct sandbox *sb, const char *ctr_id, const struct spec *sp,
		    struct sockproxy **out, runm_error_t *err)
{
	return start(loop, sb, NULL, ctr_id, sp, out, err);
}

int sockproxy_start_conn(struct loop *loop, struct ttrpc_conn *conn, const char *ctr_id, const struct spec *sp,
			 struct sockproxy **out, runm_error_t *err)
{
	return start(loop, NULL, conn, ctr_id, sp, out, err);
}

size_t sockproxy_conns(const struct sockproxy *p)
{
	size_t n = 0;
	for (size_t i = 0; p && i < p->n_socks; i++)
		n += p->socks[i].n_conns;
	return n;
}

size_t sockproxy_waiting(const struct sockproxy *p)
{
	size_t n = 0;
	for (size_t i = 0; p && i < p->n_socks; i++)
		n += p->socks[i].n_waiting;
	return n;
}

void sockproxy_free(struct sockproxy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_socks; i++) {
		struct hsock *h = &p->socks[i];
		h->dead = true;
		while (h->conns)
			conn_free(h->conns, true);
		free(h->host_path);
		free(h->destination);
	}
	free(p->socks);
	free(p->ctr_id);
	free(p);
}

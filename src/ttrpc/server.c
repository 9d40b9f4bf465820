/* server.c - the service registry, the listener (with the SO_PEERCRED uid
 * check) and dispatch of requests to handlers, plus the server-side replies. */
#include "ttrpc-internal.h"

#include "common/log.h"
#include "common/util.h"
#include "ttrpc.pb-c.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct ttrpc_server *ttrpc_server_new(struct loop *loop)
{
	struct ttrpc_server *srv = xzalloc(sizeof(*srv));
	srv->loop = loop;
	srv->listen_fd = -1;
	return srv;
}

void ttrpc_server_register(struct ttrpc_server *srv, const struct ttrpc_service *svc)
{
	srv->svcs = xrealloc(srv->svcs, (srv->n_svcs + 1) * sizeof(*srv->svcs));
	srv->svcs[srv->n_svcs++] = svc;
}

void tt_server_add_conn(struct ttrpc_server *srv, struct ttrpc_conn *c)
{
	c->srv = srv;
	c->srv_prev = NULL;
	c->srv_next = srv->conns;
	if (srv->conns)
		srv->conns->srv_prev = c;
	srv->conns = c;
	srv->n_open++;
}

static void unlink_conn(struct ttrpc_server *srv, struct ttrpc_conn *c)
{
	if (c->srv_prev)
		c->srv_prev->srv_next = c->srv_next;
	else
		srv->conns = c->srv_next;
	if (c->srv_next)
		c->srv_next->srv_prev = c->srv_prev;
	c->srv_prev = c->srv_next = NULL;
	c->srv = NULL;
}

void tt_server_conn_gone(struct ttrpc_server *srv, struct ttrpc_conn *c)
{
	unlink_conn(srv, c);
	if (srv->on_conn_closed)
		srv->on_conn_closed(srv, srv->on_conn_closed_data);
}

static void on_accept(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct ttrpc_server *srv = data;
	(void)loop;
	(void)events;

	/* Level-triggered: take what is there now, epoll reports the rest. */
	for (int i = 0; i < 16; i++) {
		struct ucred cr;
		socklen_t crlen = sizeof(cr);
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("ttrpc: accept: %s", strerror(errno));
			return;
		}
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
			log_warn("ttrpc: refusing connection: SO_PEERCRED: %s", strerror(errno));
			close(cfd);
			continue;
		}
		if (cr.uid != geteuid()) {
			log_warn("ttrpc: refusing connection from uid %u (pid %d): not our uid %u",
				 (unsigned)cr.uid, (int)cr.pid, (unsigned)geteuid());
			close(cfd);
			continue;
		}
		ttrpc_conn_new(srv->loop, cfd, srv, NULL, NULL);
	}
}

int ttrpc_server_listen(struct ttrpc_server *srv, int listen_fd, runm_error_t *err)
{
	if (srv->listen_fd >= 0) {
		close(listen_fd);
		return runm_error_make(err, 0, "ttrpc server already listening");
	}
	set_nonblock(listen_fd, 1);
	set_cloexec(listen_fd, 1);
	srv->listen_watch = loop_watch_fd(srv->loop, listen_fd, EPOLLIN, on_accept, srv, err);
	if (srv->listen_watch == NULL) {
		close(listen_fd);
		return runm_error_wrap(err, "ttrpc listen");
	}
	srv->listen_fd = listen_fd;
	return 0;
}

struct ttrpc_conn *ttrpc_server_serve_fd(struct ttrpc_server *srv, int fd)
{
	return ttrpc_conn_new(srv->loop, fd, srv, NULL, NULL);
}

size_t ttrpc_server_conn_count(const struct ttrpc_server *srv)
{
	return srv->n_open;
}

void ttrpc_server_on_conn_closed(struct ttrpc_server *srv, void (*cb)(struct ttrpc_server *, void *), void *data)
{
	srv->on_conn_closed = cb;
	srv->on_conn_closed_data = data;
}

void ttrpc_server_free(struct ttrpc_server *srv)
{
	if (srv == NULL)
		return;
	loop_unwatch(srv->listen_watch);
	close_and_reset(&srv->listen_fd);
	/* Connections finish on the next loop iteration (cancel callbacks,
	 * on_close); detach them so that does not touch the freed server. */
	while (srv->conns) {
		struct ttrpc_conn *c = srv->conns;
		ttrpc_conn_close(c);
		unlink_conn(srv, c);
	}
	free(srv->svcs);
	free(srv);
}

static const struct ttrpc_service *find_service(struct ttrpc_server *srv, const char *name)
{
	for (size_t i = 0; srv && i < srv->n_svcs; i++)
		if (strcmp(srv->svcs[i]->name, name) == 0)
			return srv->svcs[i];
	return NULL;
}

void tt_server_request(struct ttrpc_conn *c, uint32_t id, const uint8_t *payload, size_t len)
{
	Ttrpc__Request *req = ttrpc__request__unpack(NULL, len, payload);
	const struct ttrpc_service *svc;
	struct ttrpc_stream *s;

	if (req == NULL) {
		tt_conn_fail(c, "undecodable request on stream %u", id);
		return;
	}
	c->last_req_id = id;
	s = tt_stream_new(c, id, false);
	if (req->n_metadata) {
		s->md = xzalloc(req->n_metadata * sizeof(*s->md));
		for (size_t i = 0; i < req->n_metadata; i++) {
			s->md[i].key = xstrdup(req->metadata[i]->key);
			s->md[i].value = xstrdup(req->metadata[i]->value);
		}
		s->n_md = req->n_metadata;
	}
	tt_stream_add(c, s);

	svc = find_service(c->srv, req->service);
	if (svc == NULL) {
		/* Names come from the peer: bound them in the message. */
		ttrpc_reply_error(s, TTRPC_UNIMPLEMENTED, "service %.200s not found", req->service);
	} else {
		const struct ttrpc_method *m = NULL;
		for (size_t i = 0; i < svc->n_methods && m == NULL; i++)
			if (strcmp(svc->methods[i].name, req->method) == 0)
				m = &svc->methods[i];
		if (m == NULL)
			ttrpc_reply_error(s, TTRPC_UNIMPLEMENTED, "service %.200s: method %.200s not found",
					  req->service, req->method);
		else
			m->handler(s, req->payload.data, req->payload.len, svc->ctx);
	}
	ttrpc__request__free_unpacked(req, NULL);
}

static void reply_frame(struct ttrpc_stream *s, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct ttrpc_conn *c = s->conn;

	if (c)
		tt_stream_remove(s);
	if (c && !c->closed) {
		Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
		Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
		size_t total;
		uint8_t *buf;

		/* Like Go ttrpc: always a status, {code:0} on success. */
		st.code = code;
		st.message = (char *)(msg ? msg : "");
		resp.status = &st;
		resp.payload.data = (uint8_t *)payload;
		resp.payload.len = len;
		buf = tt_frame_pack(&resp.base, s->id, TTRPC_RESPONSE, 0, &total);
		if (buf == NULL) {
			st.code = TTRPC_RESOURCE_EXHAUSTED;
			st.message = (char *)"ttrpc: response exceeds the maximum message size";
			resp.payload.data = NULL;
			resp.payload.len = 0;
			buf = tt_frame_pack(&resp.base, s->id, TTRPC_RESPONSE, 0, &total);
		}
		tt_conn_queue(c, buf, total);
	}
	tt_stream_free(s);
}

void ttrpc_reply_raw(struct ttrpc_stream *s, const uint8_t *payload, size_t len)
{
	reply_frame(s, TTRPC_OK, NULL, payload, len);
}

void ttrpc_reply(struct ttrpc_stream *s, const ProtobufCMessage *msg)
{
	cleanup_free uint8_t *buf = NULL;
	size_t len = 0;

	if (msg) {
		len = protobuf_c_message_get_packed_size(msg);
		buf = xmalloc(len ? len : 1);
		protobuf_c_message_pack(msg, buf);
	}
	reply_frame(s, TTRPC_OK, NULL, buf, len);
}

void ttrpc_reply_error(struct ttrpc_stream *s, int code, const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	reply_frame(s, code, msg, NULL, 0);
}

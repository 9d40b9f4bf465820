/* Unit tests of host unix sockets in containers: both ends of SocketProxy
 * on one loop, the agent's (src/agent/sockproxy.c, compiled in here: the
 * agent's sources are not in the host library) serving a ttrpc server over
 * a socketpair, the host's (src/engine/sockproxy.c) calling it. A listening
 * socket of the test plays the host socket, a client socket connected to
 * the agent's listener plays the client in the container. Also: garbage
 * each way, a slow reader, a host socket nobody listens on, and stopping
 * with connections open. */
#define SOCK_GUEST_DIR "/tmp/runm-unit-sockproxy"
#include "../../src/agent/sockproxy.c"

#include "engine/sockproxy.h"
#include "proto/pb.h"

#include "harness.h"

#include <sys/un.h>

#define CTR "c1"
#define GUEST_SOCK SOCK_GUEST_DIR "/" CTR "/0.sock"
#define MAX_PEERS 32
#define PUSH_BYTES (2u << 20)

struct world;

struct peer {
	struct world *world;
	int fd;
	struct loop_watch *w;
	size_t pushed; /* push mode: bytes written so far */
};

struct world {
	struct loop *loop;
	struct ttrpc_server *srv; /* the agent */
	struct ttrpc_service svc;
	struct ttrpc_conn *conn;  /* the host's client connection */
	struct sockproxy *hp;
	struct spec sp;
	struct spec_socket so;
	char dir[64], host_path[108];
	int lfd; /* the host socket's listener */
	struct loop_watch *lw;
	bool push; /* the host server pushes PUSH_BYTES instead of echoing */
	bool sink; /* ... or only counts what it reads (sunk) */
	size_t sunk;
	struct peer peers[MAX_PEERS];
	size_t n_peers;
	/* fake agent mode: calls parked here, frames seen on them */
	bool fake;
	struct ttrpc_stream *parked[16];
	size_t n_parked;
	int closes_seen;
};

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 11));
}

static void on_fake_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct world *w = ud;
	(void)s;
	(void)flags;
	if (len == 1 && d[0] == SOCK_CLOSE)
		w->closes_seen++;
}

static void h_socket_proxy(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	cleanup_pb Runm__Agent__V1__SocketProxyRequest *req = PB_UNPACK(
		Runm__Agent__V1__SocketProxyRequest, runm__agent__v1__socket_proxy_request__descriptor, payload, len);
	cleanup_error runm_error_t err = NULL;
	struct world *w = ctx;

	if (req == NULL) {
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "undecodable");
		return;
	}
	if (w->fake && w->n_parked < ARRAY_SIZE(w->parked)) {
		w->parked[w->n_parked++] = s;
		ttrpc_stream_on_data(s, on_fake_data, w);
		return;
	}
	if (sockproxy_attach(s, req->container_id, req->index, &err) < 0)
		ttrpc_reply_error(s, err->status == ENOSPC ? TTRPC_RESOURCE_EXHAUSTED : TTRPC_NOT_FOUND, "%s",
				  runm_error_msg(err));
}

static const struct ttrpc_method methods[] = { { "SocketProxy", h_socket_proxy } };

static void push_more(struct peer *p)
{
	uint8_t buf[16384];
	while (p->pushed < PUSH_BYTES) {
		size_t k = PUSH_BYTES - p->pushed < sizeof(buf) ? PUSH_BYTES - p->pushed : sizeof(buf);
		ssize_t n;
		for (size_t i = 0; i < k; i++)
			buf[i] = pattern(p->pushed + i);
		n = send(p->fd, buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p->pushed += (size_t)n;
	}
	shutdown(p->fd, SHUT_WR);
	loop_watch_mod(p->w, EPOLLIN);
}

/* The host socket's server: echo until EOF, then close (or push). */
static void on_peer(struct loop *l, int fd, uint32_t events, void *data)
{
	struct peer *p = data;
	uint8_t buf[65536];
	ssize_t n;
	(void)l;

	if (events & EPOLLOUT) {
		push_more(p);
		return;
	}
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		loop_unwatch(p->w);
		p->w = NULL;
		close_and_reset(&p->fd);
		return;
	}
	if (p->world->sink)
		p->world->sunk += (size_t)n;
	else if (p->pushed == 0 && write_all(fd, buf, (size_t)n) < 0)
		abort();
}

static void on_host_accept(struct loop *l, int fd, uint32_t events, void *data)
{
	struct world *w = data;
	struct peer *p;
	(void)events;

	if (w->n_peers >= MAX_PEERS)
		abort();
	p = &w->peers[w->n_peers++];
	p->world = w;
	p->fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (p->fd < 0)
		abort();
	p->w = loop_watch_fd(l, p->fd, w->push ? EPOLLOUT : EPOLLIN, on_peer, p, NULL);
}

static void spin(struct world *w, int n)
{
	for (int i = 0; i < n; i++)
		loop_run_once(w->loop, 2);
}

/* host_listens: false = a socket file nobody listens on. */
static struct world *world_new(bool host_listens, bool fake)
{
	Runm__Agent__V1__SocketMount sm = RUNM__AGENT__V1__SOCKET_MOUNT__INIT, *smp = &sm;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct world *w = xzalloc(sizeof(*w));
	int sv[2];

	if (loop_new(&w->loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	snprintf(w->dir, sizeof(w->dir), "/tmp/runm-unit-hostsock-XXXXXX");
	if (mkdtemp(w->dir) == NULL)
		abort();
	snprintf(w->host_path, sizeof(w->host_path), "%s/host.sock", w->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", w->host_path);
	w->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (w->lfd < 0 || bind(w->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	if (host_listens) {
		if (listen(w->lfd, 64) < 0)
			abort();
		w->lw = loop_watch_fd(w->loop, w->lfd, EPOLLIN, on_host_accept, w, NULL);
	}
	w->fake = fake;
	w->srv = ttrpc_server_new(w->loop);
	w->svc = (struct ttrpc_service){ AGENT_SERVICE, methods, ARRAY_SIZE(methods), w };
	ttrpc_server_register(w->srv, &w->svc);
	ttrpc_server_serve_fd(w->srv, sv[0]);
	w->conn = ttrpc_conn_new(w->loop, sv[1], NULL, NULL, NULL);
	sm.uid = getuid();
	sm.gid = getgid();
	sm.mode = 0600;
	if (!fake && sockproxy_listen(w->loop, CTR, &smp, 1, NULL) < 0)
		abort();
	w->so = (struct spec_socket){ .host_path = w->host_path, .destination = (char *)"/run/x.sock" };
	w->sp.sockets = &w->so;
	w->sp.n_sockets = 1;
	if (sockproxy_start_conn(w->loop, w->conn, CTR, &w->sp, &w->hp, NULL) < 0 || w->hp == NULL)
		abort();
	spin(w, 20);
	return w;
}

static void world_free(struct world *w)
{
	sockproxy_free(w->hp);
	spin(w, 10);
	sockproxy_remove(CTR);
	for (size_t i = 0; i < w->n_parked; i++)
		if (w->parked[i])
			ttrpc_reply(w->parked[i], NULL);
	for (size_t i = 0; i < w->n_peers; i++) {
		loop_unwatch(w->peers[i].w);
		close_and_reset(&w->peers[i].fd);
	}
	loop_unwatch(w->lw);
	close(w->lfd);
	ttrpc_conn_close(w->conn);
	ttrpc_server_free(w->srv);
	loop_settle(w->loop);
	loop_free(w->loop);
	unlink(w->host_path);
	rmdir(w->dir);
	rmdir(SOCK_GUEST_DIR);
	free(w);
}

static int client_connect(void)
{
	int fd = unix_connect(GUEST_SOCK, NULL);
	if (fd < 0)
		abort();
	set_nonblock(fd, 1);
	return fd;
}

/* Read from fd into buf while spinning the loop, until EOF (returns the
 * bytes read) or n turns (-1). */
static ssize_t read_to_eof(struct world *w, int fd, uint8_t *buf, size_t cap, int turns)
{
	size_t got = 0;
	for (int i = 0; i < turns; i++) {
		ssize_t n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n == 0)
			return (ssize_t)got;
		if (n > 0) {
			got += (size_t)n;
			if (got == cap)
				return (ssize_t)got;
			continue;
		}
		if (errno == ECONNRESET)
			return (ssize_t)got;
		loop_run_once(w->loop, 2);
	}
	return -1;
}

static bool settled(struct world *w)
{
	for (int i = 0; i < 200; i++) {
		if (sockproxy_conn_count() == 0 && sockproxy_conns(w->hp) == 0 &&
		    sockproxy_waiting(w->hp) == SOCKPROXY_WAITING)
			return true;
		loop_run_once(w->loop, 2);
	}
	return false;
}

TEST(echo_with_half_close)
{
	struct world *w = world_new(true, false);
	uint8_t buf[64];
	int fd;

	CHECK_EQ_INT(sockproxy_waiting(w->hp), SOCKPROXY_WAITING);
	{
		struct stat st;
		CHECK(stat(GUEST_SOCK, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
	}
	fd = client_connect();
	CHECK(write(fd, "hello", 5) == 5);
	CHECK(shutdown(fd, SHUT_WR) == 0);
	CHECK_EQ_INT(read_to_eof(w, fd, buf, sizeof(buf), 2000), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	close(fd);
	CHECK(settled(w));
	world_free(w);
}

TEST(many_connections_at_once)
{
	struct world *w = world_new(true, false);
	int fds[20];
	uint8_t buf[64];

	for (int i = 0; i < 20; i++) {
		char msg[16];
		int n = snprintf(msg, sizeof(msg), "conn-%d", i);
		fds[i] = client_connect();
		CHECK(write(fds[i], msg, (size_t)n) == n);
		CHECK(shutdown(fds[i], SHUT_WR) == 0);
	}
	for (int i = 0; i < 20; i++) {
		char msg[16];
		int n = snprintf(msg, sizeof(msg), "conn-%d", i);
		CHECK_EQ_INT(read_to_eof(w, fds[i], buf, sizeof(buf), 4000), n);
		CHECK(memcmp(buf, msg, (size_t)n) == 0);
		close(fds[i]);
	}
	CHECK(settled(w));
	world_free(w);
}

/* A client that does not read: the host server's data stops at the
 * window (the agent holds at most SOCK_WINDOW, the host socket's buffer
 * fills and the server stalls), and all of it arrives once it reads. */
TEST(slow_reader_stalls_the_writer)
{
	struct world *w = world_new(true, false);
	cleanup_free uint8_t *buf = xmalloc(PUSH_BYTES + 1);
	ssize_t got;
	int fd;

	w->push = true;
	fd = client_connect();
	spin(w, 300);
	CHECK_EQ_INT(w->n_peers, 1);
	CHECK(w->peers[0].pushed < PUSH_BYTES);
	CHECK(socks->conns != NULL && socks->conns->out_len <= SOCK_WINDOW);
	CHECK(ttrpc_conn_queued(w->conn) <= SOCK_WINDOW + 64);
	got = read_to_eof(w, fd, buf, PUSH_BYTES + 1, 20000);
	CHECK_EQ_INT(got, PUSH_BYTES);
	for (size_t i = 0; i < PUSH_BYTES; i++)
		CHECK(buf[i] == pattern(i));
	close(fd);
	CHECK(settled(w));
	world_free(w);
}

/* A client that writes and closes without reading (a log line, a fire and
 * forget request): all it wrote reaches the host server, which sees EOF;
 * the server's never closing does not keep the connection open. */
TEST(client_that_closes_at_once_is_delivered)
{
	struct world *w = world_new(true, false);
	static uint8_t data[300000];
	size_t sent = 0;
	int fd = client_connect();

	w->sink = true;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pattern(i);
	/* More than the socket buffers hold: the loop runs meanwhile. */
	while (sent < sizeof(data)) {
		ssize_t n = send(fd, data + sent, sizeof(data) - sent, MSG_DONTWAIT);
		if (n > 0)
			sent += (size_t)n;
		loop_run_once(w->loop, 1);
	}
	close(fd);
	for (int i = 0; i < 2000 && w->sunk < sizeof(data); i++)
		loop_run_once(w->loop, 2);
	CHECK_EQ_INT(w->sunk, sizeof(data));
	CHECK(settled(w));
	/* The host closed its end: the server read EOF. */
	for (int i = 0; i < 200 && w->peers[0].fd >= 0; i++)
		loop_run_once(w->loop, 2);
	CHECK(w->peers[0].fd < 0);
	world_free(w);
}

/* A host server whose backlog is full is asked again until it accepts. */
TEST(full_backlog_is_retried)
{
	struct world *w = world_new(true, false);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fillers[8], n_fill = 0, fd;
	uint8_t buf[16];

	/* Stop accepting, fill the backlog. */
	loop_watch_mod(w->lw, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", w->host_path);
	listen(w->lfd, 1);
	while (n_fill < 8) {
		int f = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (connect(f, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			CHECK(errno == EAGAIN);
			close(f);
			break;
		}
		fillers[n_fill++] = f;
	}
	CHECK(n_fill < 8);
	fd = client_connect();
	CHECK(write(fd, "late", 4) == 4);
	CHECK(shutdown(fd, SHUT_WR) == 0);
	spin(w, 30); /* a few retries */
	CHECK_EQ_INT(sockproxy_conns(w->hp), 1);
	CHECK(socks->conns && socks->conns->out_len == 0); /* not refused */
	for (int i = 0; i < n_fill; i++)
		close(fillers[i]);
	loop_watch_mod(w->lw, EPOLLIN);
	CHECK_EQ_INT(read_to_eof(w, fd, buf, sizeof(buf), 4000), 4);
	CHECK(memcmp(buf, "late", 4) == 0);
	close(fd);
	CHECK(settled(w));
	world_free(w);
}

TEST(host_socket_not_listening_closes_the_client)
{
	struct world *w = world_new(false, false);
	uint8_t buf[16];
	int fd = client_connect();

	CHECK(write(fd, "x", 1) == 1);
	CHECK_EQ_INT(read_to_eof(w, fd, buf, sizeof(buf), 2000), 0);
	close(fd);
	CHECK(settled(w));
	world_free(w);
}

TEST(stop_with_connections_open)
{
	struct world *w = world_new(true, false);
	uint8_t buf[16];
	int fd = client_connect();

	CHECK(write(fd, "abc", 3) == 3);
	CHECK_EQ_INT(read_to_eof(w, fd, buf, 3, 2000), 3);
	CHECK_EQ_INT(sockproxy_conns(w->hp), 1);
	sockproxy_free(w->hp);
	w->hp = NULL;
	CHECK_EQ_INT(read_to_eof(w, fd, buf, sizeof(buf), 2000), 0);
	for (int i = 0; i < 100 && socks->n_waiting > 0; i++)
		loop_run_once(w->loop, 2);
	CHECK_EQ_INT(sockproxy_conn_count(), 0);
	CHECK_EQ_INT(socks->n_waiting, 0);
	close(fd);
	world_free(w);
	CHECK(access(SOCK_GUEST_DIR "/" CTR, F_OK) < 0);
}

/* The agent, given garbage by the host: the connection ends with an error
 * reply and the client's EOF; other connections are unaffected. */
static int raw_code = -1;
static void on_raw_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	(void)data;
	(void)msg;
	(void)payload;
	(void)len;
	raw_code = code;
}

static int raw_connected;
static void on_raw_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	(void)s;
	(void)flags;
	(void)ud;
	if (len == 1 && d[0] == SOCK_CONNECTED)
		raw_connected++;
}

TEST(agent_ends_a_connection_on_garbage)
{
	static const uint8_t bad[][3] = { { 9, 0, 0 }, { SOCK_DATA, 0, 0 }, { SOCK_CONNECTED, 0, 0 } };
	static const size_t bad_len[] = { 1, 1, 1 };
	struct world *w = world_new(true, false);

	/* The proxy's own calls are taken first: stop it, keep the listener. */
	sockproxy_free(w->hp);
	w->hp = NULL;
	spin(w, 20);
	for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
		Runm__Agent__V1__SocketProxyRequest req = RUNM__AGENT__V1__SOCKET_PROXY_REQUEST__INIT;
		struct ttrpc_stream *s;
		uint8_t buf[8];
		int fd;

		req.container_id = (char *)CTR;
		raw_code = -1;
		raw_connected = 0;
		s = ttrpc_call(w->conn, AGENT_SERVICE, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN,
			       on_raw_reply, NULL);
		ttrpc_stream_on_data(s, on_raw_data, NULL);
		fd = client_connect();
		for (int i = 0; i < 200 && raw_connected == 0; i++)
			loop_run_once(w->loop, 2);
		CHECK_EQ_INT(raw_connected, 1);
		ttrpc_stream_send(s, bad[k], bad_len[k], 0);
		CHECK_EQ_INT(read_to_eof(w, fd, buf, sizeof(buf), 2000), 0);
		for (int i = 0; i < 200 && raw_code < 0; i++)
			loop_run_once(w->loop, 2);
		CHECK(raw_code != -1 && raw_code != TTRPC_OK);
		close(fd);
	}
	{
		/* Data after the host's EOF. */
		Runm__Agent__V1__SocketProxyRequest req = RUNM__AGENT__V1__SOCKET_PROXY_REQUEST__INIT;
		uint8_t eof = SOCK_EOF, data[2] = { SOCK_DATA, 'x' }, buf[8];
		struct ttrpc_stream *s;
		int fd;

		req.container_id = (char *)CTR;
		raw_code = -1;
		raw_connected = 0;
		s = ttrpc_call(w->conn, AGENT_SERVICE, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN,
			       on_raw_reply, NULL);
		ttrpc_stream_on_data(s, on_raw_data, NULL);
		fd = client_connect();
		for (int i = 0; i < 200 && raw_connected == 0; i++)
			loop_run_once(w->loop, 2);
		ttrpc_stream_send(s, &eof, 1, 0);
		ttrpc_stream_send(s, data, 2, 0);
		CHECK_EQ_INT(read_to_eof(w, fd, buf, sizeof(buf), 2000), 0);
		for (int i = 0; i < 200 && raw_code < 0; i++)
			loop_run_once(w->loop, 2);
		CHECK(raw_code != -1 && raw_code != TTRPC_OK);
		close(fd);
	}
	/* Unknown socket index, unknown container, too many waiting. */
	{
		Runm__Agent__V1__SocketProxyRequest req = RUNM__AGENT__V1__SOCKET_PROXY_REQUEST__INIT;
		req.container_id = (char *)CTR;
		req.index = 7;
		raw_code = -1;
		ttrpc_call(w->conn, AGENT_SERVICE, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_raw_reply, NULL);
		for (int i = 0; i < 200 && raw_code < 0; i++)
			loop_run_once(w->loop, 2);
		CHECK_EQ_INT(raw_code, TTRPC_NOT_FOUND);
		req.index = 0;
		for (int i = 0; i < SOCK_MAX_WAITING; i++)
			ttrpc_call(w->conn, AGENT_SERVICE, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, NULL, NULL);
		raw_code = -1;
		ttrpc_call(w->conn, AGENT_SERVICE, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_raw_reply, NULL);
		for (int i = 0; i < 200 && raw_code < 0; i++)
			loop_run_once(w->loop, 2);
		CHECK_EQ_INT(raw_code, TTRPC_RESOURCE_EXHAUSTED);
		CHECK_EQ_INT(socks->n_waiting, SOCK_MAX_WAITING);
	}
	world_free(w);
}

/* The host, given garbage by a fake agent: that call is given up (CLOSE
 * sent), a new one takes its place, nothing crashes. */
TEST(host_drops_a_connection_on_garbage)
{
	static const uint8_t frames[][2] = {
		{ 0xff, 0 },     /* unknown kind */
		{ SOCK_DATA, 'x' }, /* data before CONNECTED */
		{ SOCK_ACK, 0 }, /* short ACK */
		{ SOCK_EOF, 1 }, /* EOF with a body */
	};
	static const size_t lens[] = { 1, 2, 2, 2 };
	struct world *w = world_new(true, true);

	CHECK_EQ_INT(w->n_parked, SOCKPROXY_WAITING);
	for (size_t k = 0; k < ARRAY_SIZE(frames); k++) {
		ttrpc_stream_send(w->parked[k], frames[k], lens[k], 0);
		spin(w, 10);
		CHECK_EQ_INT(w->closes_seen, (int)k + 1);
		CHECK_EQ_INT(sockproxy_waiting(w->hp), SOCKPROXY_WAITING);
		CHECK_EQ_INT(w->n_parked, SOCKPROXY_WAITING + k + 1);
	}
	/* CONNECTED twice: the second ends it. */
	{
		uint8_t c = SOCK_CONNECTED;
		struct ttrpc_stream *s = w->parked[w->n_parked - 1];
		ttrpc_stream_send(s, &c, 1, 0);
		spin(w, 10);
		CHECK_EQ_INT(sockproxy_conns(w->hp), 1);
		CHECK_EQ_INT(w->n_peers, 1);
		ttrpc_stream_send(s, &c, 1, 0);
		spin(w, 10);
		CHECK_EQ_INT(sockproxy_conns(w->hp), 0);
		CHECK_EQ_INT(w->closes_seen, (int)ARRAY_SIZE(frames) + 1);
	}
	/* The agent gives a connection up: the host closes the host socket
	 * and opens a call in its place. */
	{
		uint8_t c = SOCK_CONNECTED, cl = SOCK_CLOSE;
		size_t before = w->n_parked;
		struct ttrpc_stream *s = w->parked[w->n_parked - 1];
		ttrpc_stream_send(s, &c, 1, 0);
		spin(w, 10);
		CHECK_EQ_INT(sockproxy_conns(w->hp), 1);
		CHECK_EQ_INT(w->n_peers, 2);
		ttrpc_stream_send(s, &cl, 1, 0);
		spin(w, 10);
		CHECK_EQ_INT(sockproxy_conns(w->hp), 0);
		CHECK_EQ_INT(sockproxy_waiting(w->hp), SOCKPROXY_WAITING);
		CHECK_EQ_INT(w->n_parked, before + 1);
		CHECK(w->peers[1].fd < 0); /* the host server saw EOF */
	}
	/* The agent refuses a waiting call: the host does not ask again.
	 * parked[0..3] were given up by the host; [4] still waits. */
	{
		size_t before = w->n_parked;
		ttrpc_reply_error(w->parked[4], TTRPC_NOT_FOUND, "gone");
		w->parked[4] = NULL;
		spin(w, 10);
		CHECK_EQ_INT(w->n_parked, before);
		CHECK_EQ_INT(sockproxy_waiting(w->hp), SOCKPROXY_WAITING - 1);
	}
	world_free(w);
}

/* spec.c: a bind mount of a socket is marked, not staged, and its source
 * becomes the agent's listener; a missing source is still an error. */
TEST(spec_marks_socket_sources)
{
	char dir[] = "/tmp/runm-unit-specsock-XXXXXX";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_free char *json = NULL, *missing = NULL;
	cleanup_error runm_error_t err = NULL;
	struct spec sp;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/agent.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(chmod(sa.sun_path, 0640) == 0);
	json = xasprintf("{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":\"rootfs\"},\"mounts\":["
			 "{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"rbind\"]},"
			 "{\"destination\":\"/run/ssh.sock\",\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"rbind\",\"ro\"]}]}",
			 dir, sa.sun_path);
	CHECK(spec_prepare("c9", "/nonexistent", json, strlen(json), &sp, &err) == 0);
	CHECK_EQ_INT(sp.n_shares, 1); /* the directory only */
	CHECK_EQ_INT(sp.n_sockets, 1);
	CHECK_STR(sp.sockets[0].host_path, sa.sun_path);
	/* The library's SOCK_GUEST_DIR, not this file's. */
	CHECK_STR(sp.sockets[0].guest_path, "/run/runm/sockets/c9/0.sock");
	CHECK_STR(sp.sockets[0].destination, "/run/ssh.sock");
	CHECK_EQ_INT(sp.sockets[0].mode, 0640);
	CHECK_EQ_INT(sp.sockets[0].uid, getuid());
	CHECK(strstr(sp.guest_json, "\"source\":\"\\/run\\/runm\\/sockets\\/c9\\/0.sock\"") != NULL ||
	      strstr(sp.guest_json, "\"source\":\"/run/runm/sockets/c9/0.sock\"") != NULL);
	spec_release(&sp);
	{
		/* Through a symlinked directory (/var/run -> /run): the real socket. */
		cleanup_free char *link = xasprintf("%s/link", dir);
		cleanup_free char *via = xasprintf("%s/agent.sock", link);
		cleanup_free char *j2 = xasprintf("{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":\"rootfs\"},"
						  "\"mounts\":[{\"destination\":\"/s\",\"type\":\"bind\",\"source\":\"%s\"}]}",
						  via);
		CHECK(symlink(dir, link) == 0);
		CHECK(spec_prepare("c9", "/nonexistent", j2, strlen(j2), &sp, &err) == 0);
		CHECK_EQ_INT(sp.n_sockets, 1);
		CHECK_STR(sp.sockets[0].host_path, sa.sun_path);
		spec_release(&sp);
		unlink(link);
	}
	close(fd);
	unlink(sa.sun_path);
	/* Gone: the error names the source, as for any bind. */
	CHECK(spec_prepare("c9", "/nonexistent", json, strlen(json), &sp, &err) < 0);
	CHECK(strstr(runm_error_msg(err), sa.sun_path) != NULL);
	CHECK(strstr(runm_error_msg(err), "No such file") != NULL);
	rmdir(dir);
}

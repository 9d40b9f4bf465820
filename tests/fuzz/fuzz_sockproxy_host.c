/* fuzz_sockproxy_host - the host end of SocketProxy (src/engine/sockproxy.c)
 * driven by a hostile agent: a fake agent parks the host's waiting calls
 * and sends on them whatever the input says, frame after frame; a host
 * socket accepts and echoes. Whatever comes (CONNECTED twice, data past the
 * window or after EOF, ACKs of nothing, garbage), the host must not crash,
 * leak, or keep more calls than it should; then it stops cleanly.
 *
 * Input: records of [call index][length][length bytes of frame]. */
#include "engine/sockproxy.h"
#include "common/util.h"
#include "proto/pb.h"
#include "proto/sockproxy.h"
#include "runm/agent.pb-c.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

#define MAX_PARKED 256
#define MAX_PEERS 64

static struct ttrpc_stream *parked[MAX_PARKED];
static size_t n_parked;
static int peers[MAX_PEERS];
static struct loop_watch *peer_w[MAX_PEERS];
static size_t n_peers;

static void h_socket_proxy(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	(void)payload;
	(void)len;
	(void)ctx;
	if (n_parked >= MAX_PARKED)
		abort(); /* the host must bound its calls: SOCK_MAX_CONNS + waiting */
	parked[n_parked++] = s;
}

static const struct ttrpc_method methods[] = { { "SocketProxy", h_socket_proxy } };
static struct ttrpc_service svc = { AGENT_SERVICE, methods, 1, NULL };

static void on_peer(struct loop *l, int fd, uint32_t events, void *d)
{
	uint8_t buf[65536];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	size_t i = (size_t)(uintptr_t)d;
	(void)l;
	(void)events;
	if (n > 0) {
		(void)!send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
		return;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		loop_unwatch(peer_w[i]);
		peer_w[i] = NULL;
	}
}

static void on_accept(struct loop *l, int fd, uint32_t events, void *d)
{
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	(void)events;
	(void)d;
	if (c < 0)
		return;
	if (n_peers >= MAX_PEERS) {
		close(c);
		return;
	}
	peers[n_peers] = c;
	peer_w[n_peers] = loop_watch_fd(l, c, EPOLLIN, on_peer, (void *)(uintptr_t)n_peers, NULL);
	n_peers++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct spec_socket so = { 0 };
	struct spec sp = { 0 };
	struct ttrpc_server *srv;
	struct ttrpc_conn *conn;
	struct sockproxy *p = NULL;
	struct loop_watch *lw;
	struct loop *loop;
	char dir[] = "/tmp/fuzz-sockproxy-XXXXXX";
	int sv[2], lfd;

	if (loop_new(&loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    mkdtemp(dir) == NULL)
		abort();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 64) < 0)
		abort();
	lw = loop_watch_fd(loop, lfd, EPOLLIN, on_accept, NULL, NULL);
	srv = ttrpc_server_new(loop);
	ttrpc_server_register(srv, &svc);
	ttrpc_server_serve_fd(srv, sv[0]);
	conn = ttrpc_conn_new(loop, sv[1], NULL, NULL, NULL);
	so.host_path = sa.sun_path;
	sp.sockets = &so;
	sp.n_sockets = 1;
	if (sockproxy_start_conn(loop, conn, "c", &sp, &p, NULL) < 0)
		abort();
	for (int i = 0; i < 4; i++)
		loop_run_once(loop, 0);

	for (size_t off = 0; off + 2 <= size;) {
		size_t which = data[off], len = data[off + 1];
		off += 2;
		if (len > size - off)
			len = size - off;
		if (n_parked > 0)
			ttrpc_stream_send(parked[which % n_parked], data + off, len, 0);
		off += len;
		for (int i = 0; i < 3; i++)
			loop_run_once(loop, 0);
		if (sockproxy_waiting(p) > SOCKPROXY_WAITING || sockproxy_conns(p) > SOCK_MAX_CONNS)
			abort();
	}

	sockproxy_free(p);
	for (int i = 0; i < 4; i++)
		loop_run_once(loop, 0);
	for (size_t i = 0; i < n_parked; i++)
		ttrpc_reply(parked[i], NULL);
	n_parked = 0;
	for (size_t i = 0; i < n_peers; i++) {
		loop_unwatch(peer_w[i]);
		close(peers[i]);
	}
	n_peers = 0;
	loop_unwatch(lw);
	close(lfd);
	ttrpc_conn_close(conn);
	ttrpc_server_free(srv);
	loop_settle(loop);
	loop_free(loop);
	unlink(sa.sun_path);
	rmdir(dir);
	return 0;
}

/* fuzz_sockproxy_agent - the guest end of SocketProxy (src/agent/sockproxy.c,
 * compiled in: the agent's sources are not in the host library) driven by a
 * hostile host: calls wait, clients in the "container" connect, and the
 * input's frames arrive on the calls in any order. The agent must not crash,
 * leak, or buffer past its window; then the container goes cleanly.
 *
 * Input: records of [call index][length][length bytes of frame]; a call
 * index of 0xff connects one more client instead. */
#define SOCK_GUEST_DIR "/tmp/fuzz-sockproxy-agent"
#include "../../src/agent/sockproxy.c"

#include "proto/pb.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

#define CALLS 6
#define MAX_CLIENTS 16

static void h_socket_proxy(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	cleanup_pb Runm__Agent__V1__SocketProxyRequest *req = PB_UNPACK(
		Runm__Agent__V1__SocketProxyRequest, runm__agent__v1__socket_proxy_request__descriptor, payload, len);
	cleanup_error runm_error_t err = NULL;
	(void)ctx;
	if (req == NULL || sockproxy_attach(s, req->container_id, req->index, &err) < 0)
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "no");
}

/* A call the agent answered is freed: forget it. */
static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct ttrpc_stream **slot = data;
	(void)code;
	(void)msg;
	(void)payload;
	(void)len;
	*slot = NULL;
}

static const struct ttrpc_method methods[] = { { "SocketProxy", h_socket_proxy } };
static struct ttrpc_service svc = { AGENT_SERVICE, methods, 1, NULL };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Runm__Agent__V1__SocketMount sm = RUNM__AGENT__V1__SOCKET_MOUNT__INIT, *smp = &sm;
	Runm__Agent__V1__SocketProxyRequest req = RUNM__AGENT__V1__SOCKET_PROXY_REQUEST__INIT;
	struct ttrpc_stream *calls[CALLS];
	int clients[MAX_CLIENTS];
	size_t n_clients = 0;
	struct ttrpc_server *srv;
	struct ttrpc_conn *conn;
	struct loop *loop;
	int sv[2];

	if (loop_new(&loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	srv = ttrpc_server_new(loop);
	ttrpc_server_register(srv, &svc);
	ttrpc_server_serve_fd(srv, sv[0]);
	conn = ttrpc_conn_new(loop, sv[1], NULL, NULL, NULL);
	sm.mode = 0600;
	sm.uid = getuid();
	sm.gid = getgid();
	if (sockproxy_listen(loop, "c", &smp, 1, NULL) < 0)
		abort();
	req.container_id = (char *)"c";
	for (int i = 0; i < CALLS; i++)
		calls[i] = ttrpc_call(conn, AGENT_SERVICE, "SocketProxy", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply,
				      &calls[i]);
	for (int i = 0; i < 4; i++)
		loop_run_once(loop, 0);

	for (size_t off = 0; off + 2 <= size;) {
		size_t which = data[off], len = data[off + 1];
		off += 2;
		if (len > size - off)
			len = size - off;
		if (which == 0xff) {
			if (n_clients < MAX_CLIENTS) {
				int fd = unix_connect(SOCK_GUEST_DIR "/c/0.sock", NULL);
				if (fd >= 0)
					clients[n_clients++] = fd;
			}
		} else {
			if (calls[which % CALLS])
				ttrpc_stream_send(calls[which % CALLS], data + off, len, 0);
			off += len;
		}
		for (int i = 0; i < 3; i++)
			loop_run_once(loop, 0);
		for (struct gconn *c = socks ? socks->conns : NULL; c; c = c->next)
			if (c->out_len > SOCK_WINDOW)
				abort();
	}

	sockproxy_remove("c");
	for (size_t i = 0; i < n_clients; i++)
		close(clients[i]);
	for (int i = 0; i < CALLS; i++)
		ttrpc_call_abandon(calls[i]); /* NULL-safe */
	ttrpc_conn_close(conn);
	ttrpc_server_free(srv);
	loop_settle(loop);
	loop_free(loop);
	rmdir(SOCK_GUEST_DIR);
	if (n_conns != 0 || socks != NULL)
		abort();
	return 0;
}

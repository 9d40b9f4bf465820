/* fuzz_ttrpc - the bytes are what a ttrpc peer sends on a server connection
 * (a socketpair): frames, request envelopes, metadata, DATA frames and
 * responses to a call of ours in flight (stream 1). A test service echoes,
 * fails, parks and streams. Each input gets a fresh loop, server and
 * connection, and everything is freed before the next one. */
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "ttrpc/ttrpc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

/* The Makefile builds fuzzers without -fno-sanitize-recover: make UBSan
 * findings crashes, or libFuzzer would report them and carry on. */
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

struct state {
	struct ttrpc_stream *parked[8];
	size_t n_parked;
	bool conn_closed;
};

static void h_echo(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	(void)ctx;
	ttrpc_reply_raw(s, p, len);
}

static void h_fail(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	(void)ctx;
	ttrpc_reply_error(s, TTRPC_NOT_FOUND, "no such thing: %.*s", (int)len, (const char *)p);
}

static void h_meta(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	const char *ns = ttrpc_stream_metadata(s, "containerd-namespace-ttrpc");
	(void)ctx;
	(void)p;
	(void)len;
	if (ns == NULL)
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "no namespace");
	else
		ttrpc_reply_raw(s, (const uint8_t *)ns, strlen(ns));
}

static void on_cancel(struct ttrpc_stream *s, void *data)
{
	struct state *st = data;
	for (size_t i = 0; i < st->n_parked; i++)
		if (st->parked[i] == s)
			st->parked[i] = NULL;
	ttrpc_reply_error(s, TTRPC_CANCELLED, "cancelled");
}

/* Answered later (by Release) or on cancel when the connection goes. */
static void h_park(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	struct state *st = ctx;
	(void)p;
	(void)len;
	if (st->n_parked == sizeof(st->parked) / sizeof(st->parked[0])) {
		ttrpc_reply_error(s, TTRPC_RESOURCE_EXHAUSTED, "too many parked");
		return;
	}
	ttrpc_stream_on_cancel(s, on_cancel, st);
	st->parked[st->n_parked++] = s;
}

static void h_release(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	struct state *st = ctx;
	(void)p;
	(void)len;
	for (size_t i = 0; i < st->n_parked; i++)
		if (st->parked[i])
			ttrpc_reply(st->parked[i], NULL);
	st->n_parked = 0;
	ttrpc_reply(s, NULL);
}

/* Echo DATA frames; answer when the peer says it is done. */
static void stream_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct state *st = ud;
	ttrpc_stream_send(s, d, len, flags);
	if (flags & TTRPC_FLAG_REMOTE_CLOSED) {
		for (size_t i = 0; i < st->n_parked; i++)
			if (st->parked[i] == s)
				st->parked[i] = NULL;
		ttrpc_reply_raw(s, (const uint8_t *)"done", 4);
	}
}

static void h_stream(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	struct state *st = ctx;
	(void)p;
	(void)len;
	/* Parked too, so a connection closing mid-stream cancels (and frees) it. */
	h_park(s, p, len, ctx);
	ttrpc_stream_on_data(s, stream_data, st);
}

static const struct ttrpc_method methods[] = {
	{ "Echo", h_echo }, { "Fail", h_fail }, { "Meta", h_meta },
	{ "Park", h_park }, { "Release", h_release }, { "Stream", h_stream },
};

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	(void)data;
	(void)code;
	(void)msg;
	(void)payload;
	(void)len;
}

static void on_conn_closed(struct ttrpc_server *srv, void *data)
{
	(void)srv;
	((struct state *)data)->conn_closed = true;
}

static void drain(int fd)
{
	uint8_t buf[65536];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct state st = { 0 };
	struct ttrpc_service svc = { "test.Echo", methods, sizeof(methods) / sizeof(methods[0]), &st };
	struct ttrpc_server *srv;
	struct ttrpc_conn *conn;
	struct loop *loop;
	size_t off = 0;
	int sv[2];

	if (!init) {
		log_init("fuzz_ttrpc", LOG_LVL_ERROR); /* every bad frame would log a warning */
		init = true;
	}
	if (loop_new(&loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	set_nonblock(sv[1], 1);
	srv = ttrpc_server_new(loop);
	ttrpc_server_register(srv, &svc);
	ttrpc_server_on_conn_closed(srv, on_conn_closed, &st);
	conn = ttrpc_server_serve_fd(srv, sv[0]);
	/* A call of ours in flight (stream 1), so RESPONSE frames reach the client path. */
	ttrpc_call_raw(conn, "peer.Svc", "Method", (const uint8_t *)"x", 1, 0, 0, on_reply, NULL);

	/* Feed the bytes as the socket takes them, draining the replies so the
	 * server never blocks on a full buffer; then end our direction only, so
	 * replies to the last frames can still be written. */
	while (off < size) {
		ssize_t n = write(sv[1], data + off, size - off);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break; /* the server closed the connection */
		if (n > 0)
			off += (size_t)n;
		loop_run_once(loop, 0);
		drain(sv[1]);
	}
	shutdown(sv[1], SHUT_WR);
	/* The close completes in a deferred call, which runs at the start of an
	 * iteration whose epoll_wait then has nothing to wake it: spin without
	 * waiting (the EOF is already readable), and only then block a little. */
	for (int i = 0; !st.conn_closed; i++) {
		loop_run_once(loop, i < 1000 ? 0 : 10);
		drain(sv[1]);
	}
	close(sv[1]);
	ttrpc_server_free(srv);
	loop_run_once(loop, 0);
	loop_free(loop);
	return 0;
}

/* Unit tests of src/engine/relay.c against a fake agent: a ttrpc server on
 * a socketpair that answers Stdio the way runm-agent does (output frames
 * within the window, EOFs, then the reply). */
#include "common/loop.h"
#include "common/util.h"
#include "engine/relay.h"
#include "harness.h"
#include "proto/pb.h"
#include "proto/stdio.h"
#include "ttrpc/ttrpc.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fake {
	struct loop *loop;
	struct ttrpc_server *srv;
	struct ttrpc_service svc;
	struct ttrpc_conn *client;
	struct ttrpc_stream *stdio; /* the agent side of the Stdio call */
	uint64_t acked;             /* output bytes the host acknowledged */
	size_t stdin_bytes;
	bool stdin_eof;
	bool done;
	bool done_err;
};

static struct fake *the_fake;

static void agent_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct fake *f = ud;
	struct stdio_frame fr;
	(void)s;
	(void)flags;
	if (stdio_frame_parse(d, len, &fr) < 0)
		return;
	if (fr.kind == STDIO_ACK)
		f->acked += fr.ack;
	else if (fr.kind == STDIO_STDIN)
		f->stdin_bytes += fr.len;
	else if (fr.kind == STDIO_EOF && fr.fd == 0)
		f->stdin_eof = true;
}

static void h_stdio(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	struct fake *f = ctx;
	(void)p;
	(void)len;
	f->stdio = s;
	ttrpc_stream_on_data(s, agent_data, f);
}

static const struct ttrpc_method methods[] = { { "Stdio", h_stdio } };

static struct fake *fake_new(void)
{
	struct fake *f = xzalloc(sizeof(*f));
	int sv[2];
	if (loop_new(&f->loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	f->srv = ttrpc_server_new(f->loop);
	f->svc = (struct ttrpc_service){ AGENT_SERVICE, methods, ARRAY_SIZE(methods), f };
	ttrpc_server_register(f->srv, &f->svc);
	ttrpc_server_serve_fd(f->srv, sv[0]);
	f->client = ttrpc_conn_new(f->loop, sv[1], NULL, NULL, NULL);
	the_fake = f;
	return f;
}

static void fake_free(struct fake *f)
{
	ttrpc_conn_close(f->client);
	ttrpc_server_free(f->srv);
	loop_settle(f->loop);
	loop_free(f->loop);
	free(f);
}

static void spin_until(struct fake *f, bool *cond, int max)
{
	for (int i = 0; i < max && !*cond; i++)
		loop_run_once(f->loop, 10);
}

static void spin_until_stdio(struct fake *f)
{
	for (int i = 0; i < 100 && f->stdio == NULL; i++)
		loop_run_once(f->loop, 10);
}

static void spin(struct fake *f, int n)
{
	for (int i = 0; i < n; i++)
		loop_run_once(f->loop, 5);
}

static void send_out(struct fake *f, int kind, const char *data, size_t len)
{
	uint8_t buf[1 + STDIO_CHUNK];
	buf[0] = (uint8_t)kind;
	memcpy(buf + 1, data, len);
	ttrpc_stream_send(f->stdio, buf, len + 1, 0);
}

static void send_eof(struct fake *f, int fd)
{
	uint8_t b[2];
	ttrpc_stream_send(f->stdio, b, stdio_encode_eof(b, fd), 0);
}

static void on_done(struct relay *r, runm_error_t *err, void *data)
{
	struct fake *f = data;
	(void)r;
	f->done = true;
	f->done_err = err != NULL;
}

static ssize_t drain(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;
	while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
		got += (size_t)n;
	return (ssize_t)got;
}

TEST(output_eof_then_done)
{
	struct fake *f = fake_new();
	struct relay *r = NULL;
	int out[2], errp[2];
	char buf[64];
	CHECK(pipe2(out, O_NONBLOCK) == 0 && pipe2(errp, O_NONBLOCK) == 0);
	CHECK(relay_start_conn(f->loop, f->client, "", "", -1, out[1], errp[1], on_done, f, &r, NULL) == 0);
	spin_until_stdio(f);
	CHECK(f->stdio != NULL);
	send_out(f, STDIO_STDOUT, "hello\n", 6);
	send_out(f, STDIO_STDERR, "oops\n", 5);
	send_eof(f, 1);
	send_eof(f, 2);
	ttrpc_reply(f->stdio, NULL);
	spin_until(f, &f->done, 200);
	CHECK(f->done && !f->done_err);
	CHECK_EQ_INT(f->acked, 0); /* the reply ended the stream before acks could flow */
	CHECK_EQ_INT(drain(out[0], buf, sizeof(buf)), 6);
	CHECK(memcmp(buf, "hello\n", 6) == 0);
	CHECK_EQ_INT(drain(errp[0], buf, sizeof(buf)), 5);
	/* Both write ends closed by the relay: the readers see EOF. */
	CHECK_EQ_INT(read(out[0], buf, 1), 0);
	CHECK_EQ_INT(read(errp[0], buf, 1), 0);
	relay_free(r);
	close(out[0]);
	close(errp[0]);
	fake_free(f);
}

/* A reader that does not read: the relay holds what the pipe cannot take
 * and acknowledges only what was written, so the guest's window closes. */
TEST(slow_reader_holds_back_acks)
{
	struct fake *f = fake_new();
	struct relay *r = NULL;
	int out[2];
	static char chunk[STDIO_CHUNK];
	size_t sent = 0;
	uint64_t pipe_cap;
	CHECK(pipe2(out, O_NONBLOCK) == 0);
	pipe_cap = (uint64_t)fcntl(out[1], F_GETPIPE_SZ);
	CHECK(relay_start_conn(f->loop, f->client, "", "", -1, out[1], -1, on_done, f, &r, NULL) == 0);
	spin_until_stdio(f);
	while (sent < STDIO_WINDOW) {
		send_out(f, STDIO_STDOUT, chunk, sizeof(chunk));
		sent += sizeof(chunk);
	}
	spin(f, 50);
	CHECK(f->acked <= pipe_cap);
	CHECK(f->acked > 0);
	/* The reader catches up: everything gets acknowledged. */
	{
		static char sink[1 << 20];
		for (int i = 0; i < 200 && f->acked < sent; i++) {
			drain(out[0], sink, sizeof(sink));
			spin(f, 2);
		}
	}
	CHECK_EQ_INT(f->acked, sent);
	ttrpc_reply(f->stdio, NULL);
	relay_free(r);
	close(out[0]);
	fake_free(f);
}

/* stdin goes out in frames within the window, then EOF. */
TEST(stdin_then_eof)
{
	struct fake *f = fake_new();
	struct relay *r = NULL;
	int in[2];
	CHECK(pipe2(in, O_NONBLOCK) == 0);
	CHECK(relay_start_conn(f->loop, f->client, "", "", in[0], -1, -1, on_done, f, &r, NULL) == 0);
	spin_until_stdio(f);
	CHECK(write(in[1], "abcdef", 6) == 6);
	close(in[1]);
	spin_until(f, &f->stdin_eof, 200);
	CHECK_EQ_INT(f->stdin_bytes, 6);
	CHECK(f->stdin_eof);
	ttrpc_reply(f->stdio, NULL);
	relay_free(r);
	fake_free(f);
}

/* The relay's owner frees it while the guest is still talking: frames that
 * arrive later must not reach it (a use-after-free under ASan before). */
TEST(free_while_guest_sends)
{
	struct fake *f = fake_new();
	struct relay *r = NULL;
	int out[2];
	CHECK(pipe2(out, O_NONBLOCK) == 0);
	CHECK(relay_start_conn(f->loop, f->client, "", "", -1, out[1], -1, on_done, f, &r, NULL) == 0);
	spin_until_stdio(f);
	relay_free(r);
	send_out(f, STDIO_STDOUT, "late\n", 5);
	send_eof(f, 1);
	ttrpc_reply(f->stdio, NULL);
	spin(f, 20);
	CHECK(!f->done);
	close(out[0]);
	fake_free(f);
}

/* Garbage from the guest is ignored, not fatal. */
TEST(garbage_frames_ignored)
{
	struct fake *f = fake_new();
	struct relay *r = NULL;
	int out[2];
	char buf[16];
	static const uint8_t junk[] = { 9, 1, 2, 3 };
	CHECK(pipe2(out, O_NONBLOCK) == 0);
	CHECK(relay_start_conn(f->loop, f->client, "", "", -1, out[1], -1, on_done, f, &r, NULL) == 0);
	spin_until_stdio(f);
	ttrpc_stream_send(f->stdio, junk, sizeof(junk), 0);
	ttrpc_stream_send(f->stdio, junk, 0, 0);
	send_out(f, STDIO_STDOUT, "ok", 2);
	send_eof(f, 1);
	ttrpc_reply(f->stdio, NULL);
	spin_until(f, &f->done, 200);
	CHECK(f->done);
	CHECK_EQ_INT(drain(out[0], buf, sizeof(buf)), 2);
	relay_free(r);
	close(out[0]);
	fake_free(f);
}

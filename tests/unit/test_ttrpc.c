/* Unit tests of src/ttrpc: framing bytes, server and client over socketpairs
 * in one process and one loop, data frames, garbage input, back-pressure. */
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "google/rpc/status.pb-c.h"
#include "harness.h"
#include "ttrpc.pb-c.h"
#include "ttrpc/ttrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SVC "test.Echo"
#define BIG (4u << 20)

/* ---- the test service ---- */

struct svc_state {
	struct ttrpc_stream *parked[64];
	size_t n_parked;
	int cancelled;
	bool cancel_replies; /* cancel callback answers (a free) right away */
	struct ttrpc_stream *cancelled_streams[64];
	size_t n_cancelled_streams;
	size_t data_bytes;
	int data_frames;
};

static void on_cancel(struct ttrpc_stream *s, void *data)
{
	struct svc_state *st = data;
	st->cancelled++;
	if (ttrpc_stream_conn(s) != NULL)
		abort(); /* a cancelled stream has no connection any more */
	free(ttrpc_stream_user(s)); /* h_park's copy */
	ttrpc_stream_set_user(s, NULL);
	for (size_t i = 0; i < st->n_parked; i++)
		if (st->parked[i] == s)
			st->parked[i] = NULL;
	if (st->cancel_replies)
		ttrpc_reply_error(s, TTRPC_CANCELLED, "cancelled");
	else
		st->cancelled_streams[st->n_cancelled_streams++] = s;
}

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

static void h_park(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	struct svc_state *st = ctx;
	/* Keep the payload for the later reply in the stream's user pointer. */
	char *copy = xstrndup((const char *)p, len);
	ttrpc_stream_set_user(s, copy);
	ttrpc_stream_on_cancel(s, on_cancel, st);
	st->parked[st->n_parked++] = s;
}

static void h_release(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	struct svc_state *st = ctx;
	(void)p;
	(void)len;
	for (size_t i = 0; i < st->n_parked; i++) {
		struct ttrpc_stream *ps = st->parked[i];
		if (ps == NULL)
			continue;
		char *copy = ttrpc_stream_user(ps);
		ttrpc_reply_raw(ps, (const uint8_t *)copy, strlen(copy));
		free(copy);
	}
	st->n_parked = 0;
	ttrpc_reply(s, NULL);
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

/* Echo every DATA frame back with the same flags; answer once the client
 * says it has no more data. */
static void stream_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct svc_state *st = ud;
	st->data_bytes += len;
	st->data_frames++;
	if (ttrpc_stream_send(s, d, len, flags) < 0)
		abort();
	if (flags & TTRPC_FLAG_REMOTE_CLOSED)
		ttrpc_reply_raw(s, (const uint8_t *)"done", 4);
}

static void h_stream(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx)
{
	(void)p;
	(void)len;
	ttrpc_stream_on_data(s, stream_data, ctx);
}

static const struct ttrpc_method methods[] = {
	{ "Echo", h_echo }, { "Fail", h_fail }, { "Park", h_park },
	{ "Release", h_release }, { "Meta", h_meta }, { "Stream", h_stream },
};

/* ---- fixture ---- */

struct env {
	struct loop *loop;
	struct ttrpc_server *srv;
	struct ttrpc_service svc;
	struct svc_state st;
	struct ttrpc_conn *sconn, *cconn;
	int client_closed;
	int srv_closed_events;
};

static void client_closed(struct ttrpc_conn *c, void *data)
{
	(void)c;
	((struct env *)data)->client_closed++;
}

static void srv_conn_closed(struct ttrpc_server *srv, void *data)
{
	(void)srv;
	((struct env *)data)->srv_closed_events++;
}

static struct env *env_new(void)
{
	struct env *e = xzalloc(sizeof(*e));
	int sv[2];
	if (loop_new(&e->loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	e->srv = ttrpc_server_new(e->loop);
	e->svc = (struct ttrpc_service){ SVC, methods, ARRAY_SIZE(methods), &e->st };
	ttrpc_server_register(e->srv, &e->svc);
	ttrpc_server_on_conn_closed(e->srv, srv_conn_closed, e);
	e->sconn = ttrpc_server_serve_fd(e->srv, sv[0]);
	e->cconn = ttrpc_conn_new(e->loop, sv[1], NULL, client_closed, e);
	return e;
}

static void spin(struct loop *l, int n)
{
	for (int i = 0; i < n; i++)
		loop_run_once(l, 0);
}

static void env_free(struct env *e)
{
	if (!e->client_closed)
		ttrpc_conn_close(e->cconn);
	ttrpc_server_free(e->srv);
	e->st.cancel_replies = true;
	spin(e->loop, 5);
	for (size_t i = 0; i < e->st.n_cancelled_streams; i++)
		ttrpc_reply(e->st.cancelled_streams[i], NULL);
	loop_free(e->loop);
	free(e);
}

/* Run the loop until *flag becomes non-zero or ms pass; returns the flag. */
static int run_until(struct loop *l, const int *flag, int ms)
{
	uint64_t deadline = now_mono_ns() + (uint64_t)ms * 1000000u;
	while (!*flag && now_mono_ns() < deadline)
		loop_run_once(l, 10);
	return *flag;
}

struct reply {
	int done;
	int code;
	char msg[256];
	uint8_t *payload;
	size_t len;
	int order; /* global arrival order */
};
static int arrival;

static void on_reply(void *data, int code, const char *msg, const uint8_t *p, size_t len)
{
	struct reply *r = data;
	r->done++;
	r->code = code;
	snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "(null)");
	free(r->payload);
	r->payload = len ? xmalloc(len) : NULL;
	if (len)
		memcpy(r->payload, p, len);
	r->len = len;
	r->order = ++arrival;
}

static bool payload_is(const struct reply *r, const char *s)
{
	return r->len == strlen(s) && memcmp(r->payload, s, r->len) == 0;
}

/* ---- framing ---- */

TEST(header_bytes)
{
	struct ttrpc_header h = { .length = 0x01020304, .stream_id = 0x0a0b0c0d, .type = 2, .flags = 5 }, d;
	const uint8_t want[TTRPC_HEADER_LEN] = { 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x02, 0x05 };
	const uint8_t max[TTRPC_HEADER_LEN] = { 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 1, 3, 0xff };
	uint8_t out[TTRPC_HEADER_LEN];

	ttrpc_header_encode(&h, out);
	CHECK(memcmp(out, want, sizeof(want)) == 0);
	ttrpc_header_decode(want, &d);
	CHECK_EQ_INT(d.length, 0x01020304);
	CHECK_EQ_INT(d.stream_id, 0x0a0b0c0d);
	CHECK_EQ_INT(d.type, 2);
	CHECK_EQ_INT(d.flags, 5);
	ttrpc_header_decode(max, &d);
	CHECK_EQ_INT(d.length, 0xffffffffu);
	CHECK_EQ_INT(d.stream_id, 0x80000001u);
	CHECK_EQ_INT(d.type, TTRPC_DATA);
	CHECK_EQ_INT(d.flags, 0xff);
	ttrpc_header_encode(&d, out);
	CHECK(memcmp(out, max, sizeof(max)) == 0);
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* Read one frame from a blocking fd, pumping the loop so the peer writes. */
static uint8_t *read_frame(struct loop *l, int fd, struct ttrpc_header *h)
{
	uint8_t hb[TTRPC_HEADER_LEN];
	uint8_t *p;
	spin(l, 3);
	if (read_full(fd, hb, sizeof(hb)) < 0)
		return NULL;
	ttrpc_header_decode(hb, h);
	p = xmalloc(h->length + 1);
	if (read_full(fd, p, h->length) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

/* A hand-written request, byte for byte, against the server. */
TEST(server_wire_bytes)
{
	struct loop *l;
	struct ttrpc_server *srv;
	struct svc_state st = { 0 };
	struct ttrpc_service svc = { SVC, methods, ARRAY_SIZE(methods), &st };
	struct ttrpc_header h;
	int sv[2];
	/* Request{service="test.Echo", method="Echo", payload="hi"} on stream 1. */
	const uint8_t req[] = { 0, 0, 0, 21, 0, 0, 0, 1, 1, 0, 0x0a, 9, 't', 'e', 's', 't', '.', 'E', 'c', 'h', 'o',
				0x12, 4, 'E', 'c', 'h', 'o', 0x1a, 2, 'h', 'i' };
	/* Response{status={} payload="hi"}: Go ttrpc always sends a status. */
	const uint8_t resp[] = { 0, 0, 0, 6, 0, 0, 0, 1, 2, 0, 0x0a, 0, 0x12, 2, 'h', 'i' };
	uint8_t got[sizeof(resp)];

	CHECK(loop_new(&l, NULL) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	srv = ttrpc_server_new(l);
	ttrpc_server_register(srv, &svc);
	ttrpc_server_serve_fd(srv, sv[0]);
	CHECK(write(sv[1], req, sizeof(req)) == (ssize_t)sizeof(req));
	spin(l, 3);
	CHECK(read_full(sv[1], got, sizeof(got)) == 0);
	CHECK(memcmp(got, resp, sizeof(resp)) == 0);

	/* Unknown method on stream 3: UNIMPLEMENTED status, no payload. */
	{
		const uint8_t req2[] = { 0, 0, 0, 15, 0, 0, 0, 3, 1, 0, 0x0a, 9, 't', 'e', 's', 't', '.', 'E', 'c', 'h', 'o',
					 0x12, 2, 'N', 'o' };
		cleanup_free uint8_t *p = NULL;
		Ttrpc__Response *r;
		CHECK(write(sv[1], req2, sizeof(req2)) == (ssize_t)sizeof(req2));
		p = read_frame(l, sv[1], &h);
		CHECK(p != NULL);
		CHECK_EQ_INT(h.stream_id, 3);
		CHECK_EQ_INT(h.type, TTRPC_RESPONSE);
		CHECK_EQ_INT(h.flags, 0);
		r = ttrpc__response__unpack(NULL, h.length, p);
		CHECK(r != NULL);
		CHECK(r->status != NULL);
		CHECK_EQ_INT(r->status->code, TTRPC_UNIMPLEMENTED);
		CHECK(strstr(r->status->message, "No") != NULL);
		CHECK_EQ_INT(r->payload.len, 0);
		ttrpc__response__free_unpacked(r, NULL);
	}
	close(sv[1]);
	ttrpc_server_free(srv);
	spin(l, 3);
	loop_free(l);
}

/* What the client puts on the wire: ids, timeout_nano, metadata, flags. */
TEST(client_wire)
{
	struct loop *l;
	struct ttrpc_conn *c;
	struct reply r1 = { 0 }, r2 = { 0 };
	struct ttrpc_header h;
	int sv[2];
	Ttrpc__Request *req;
	cleanup_free uint8_t *p1 = NULL, *p2 = NULL;

	CHECK(loop_new(&l, NULL) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	c = ttrpc_conn_new(l, sv[0], NULL, NULL, NULL);
	ttrpc_conn_set_metadata(c, "containerd-namespace-ttrpc", "default");
	ttrpc_conn_set_metadata(c, "containerd-namespace-ttrpc", "ns1"); /* replaces */
	CHECK(ttrpc_call_raw(c, "svc.S", "M", (const uint8_t *)"x", 1, 1500, 0, on_reply, &r1) != NULL);
	CHECK(ttrpc_call_raw(c, "svc.S", "N", NULL, 0, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, &r2) != NULL);
	CHECK_EQ_INT(r1.done + r2.done, 0);

	p1 = read_frame(l, sv[1], &h);
	CHECK(p1 != NULL);
	CHECK_EQ_INT(h.stream_id, 1);
	CHECK_EQ_INT(h.type, TTRPC_REQUEST);
	CHECK_EQ_INT(h.flags, 0);
	req = ttrpc__request__unpack(NULL, h.length, p1);
	CHECK(req != NULL);
	CHECK_STR(req->service, "svc.S");
	CHECK_STR(req->method, "M");
	CHECK_EQ_INT(req->timeout_nano, 1500000000LL);
	CHECK_EQ_INT(req->n_metadata, 1);
	CHECK_STR(req->metadata[0]->key, "containerd-namespace-ttrpc");
	CHECK_STR(req->metadata[0]->value, "ns1");
	CHECK_EQ_INT(req->payload.len, 1);
	ttrpc__request__free_unpacked(req, NULL);

	p2 = read_frame(l, sv[1], &h);
	CHECK(p2 != NULL);
	CHECK_EQ_INT(h.stream_id, 3);
	CHECK_EQ_INT(h.flags, TTRPC_FLAG_REMOTE_OPEN);
	req = ttrpc__request__unpack(NULL, h.length, p2);
	CHECK(req != NULL);
	CHECK_EQ_INT(req->timeout_nano, 0);
	ttrpc__request__free_unpacked(req, NULL);

	{
		/* DATA for an unknown stream is dropped; then answer 3 (no status), then 1 (error). */
		const uint8_t frames[] = { 0, 0, 0, 1, 0, 0, 0, 9, 3, 1, 'z',
					   0, 0, 0, 4, 0, 0, 0, 3, 2, 0, 0x12, 2, 'o', 'k',
					   0, 0, 0, 7, 0, 0, 0, 1, 2, 0, 0x0a, 5, 0x08, 5, 0x12, 1, 'e' };
		CHECK(write(sv[1], frames, sizeof(frames)) == (ssize_t)sizeof(frames));
	}
	CHECK(run_until(l, &r1.done, 1000));
	CHECK_EQ_INT(r2.done, 1);
	CHECK_EQ_INT(r2.code, 0);
	CHECK(payload_is(&r2, "ok"));
	CHECK_EQ_INT(r1.code, TTRPC_NOT_FOUND);
	CHECK_STR(r1.msg, "e");
	CHECK_EQ_INT(r1.len, 0);
	CHECK(r2.order < r1.order);
	free(r1.payload);
	free(r2.payload);
	ttrpc_conn_close(c);
	close(sv[1]);
	spin(l, 2);
	loop_free(l);
}

/* A hostile peer of a client connection: the call in flight fails with
 * the reason the connection was closed for, not a bare "closed". Kinds:
 * 0 an answer on a stream never asked, 1 a frame over the size limit, 2 a
 * flood of DATA for a stream not open for it (one whose call ended). */
static void hostile_peer(int *failed_, int kind, const char *want)
{
	struct loop *l;
	struct ttrpc_conn *c;
	struct reply r = { 0 }, first = { 0 };
	struct ttrpc_header h;
	cleanup_free uint8_t *p = NULL;
	int sv[2];

	CHECK(loop_new(&l, NULL) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	c = ttrpc_conn_new(l, sv[0], NULL, NULL, NULL);
	if (kind == 2) {
		/* Stream 1 answered (empty OK response), then flooded. */
		const uint8_t ok[] = { 0, 0, 0, 0, 0, 0, 0, 1, TTRPC_RESPONSE, 0 };
		CHECK(ttrpc_call_raw(c, "svc.S", "M", NULL, 0, 0, 0, on_reply, &first) != NULL);
		free(read_frame(l, sv[1], &h));
		CHECK(write(sv[1], ok, sizeof(ok)) == (ssize_t)sizeof(ok));
		CHECK(run_until(l, &first.done, 1000));
	}
	CHECK(ttrpc_call_raw(c, "svc.S", "M", NULL, 0, 0, 0, on_reply, &r) != NULL);
	p = read_frame(l, sv[1], &h);
	CHECK(p != NULL);
	if (kind == 0) {
		const uint8_t wrong[] = { 0, 0, 0, 0, 0, 0, 3, 0xe9, TTRPC_RESPONSE, 0 }; /* stream 1001 */
		CHECK(write(sv[1], wrong, sizeof(wrong)) == (ssize_t)sizeof(wrong));
	} else if (kind == 1) {
		const uint8_t big[] = { 0x04, 0, 0, 0, 0, 0, 0, 1, TTRPC_RESPONSE, 0 }; /* 64 MiB */
		CHECK(write(sv[1], big, sizeof(big)) == (ssize_t)sizeof(big));
	} else {
		static uint8_t frame[TTRPC_HEADER_LEN + (64 << 10)];
		struct ttrpc_header dh = { .length = 64 << 10, .stream_id = 1, .type = TTRPC_DATA };
		ttrpc_header_encode(&dh, frame);
		set_nonblock(sv[1], 1);
		/* 17 MiB, fed as the loop drains the socket. */
		for (int i = 0; i < 17 * 16 && !r.done; i++) {
			size_t off = 0;
			while (off < sizeof(frame) && !r.done) {
				/* MSG_NOSIGNAL: the peer hangs up on us mid-flood. */
				ssize_t n = send(sv[1], frame + off, sizeof(frame) - off, MSG_NOSIGNAL);
				if (n > 0)
					off += (size_t)n;
				loop_run_once(l, 0);
			}
		}
	}
	CHECK(run_until(l, &r.done, 2000));
	CHECK_EQ_INT(r.code, TTRPC_UNAVAILABLE);
	if (strstr(r.msg, want) == NULL)
		fprintf(stderr, "  got `%s`, want `%s`\n", r.msg, want);
	CHECK(strstr(r.msg, want) != NULL);
	free(first.payload);
	close(sv[1]);
	spin(l, 2);
	loop_free(l);
}

TEST(hostile_peer_reasons)
{
	hostile_peer(failed_, 0, "ttrpc: closed: the peer answered on stream 1001, which was never asked");
	hostile_peer(failed_, 1, "ttrpc: closed: the peer sent a frame of 67108864 bytes on stream 1, over the 4 MiB limit");
	hostile_peer(failed_, 2, "ttrpc: closed: the peer sent over 16 MiB of data for streams not open for it");
}

/* ---- calls ---- */

TEST(unary_roundtrip)
{
	struct env *e = env_new();
	struct reply r = { 0 }, r2 = { 0 };
	Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT, *back;

	CHECK(ttrpc_call_raw(e->cconn, SVC, "Echo", (const uint8_t *)"hello", 5, 0, 0, on_reply, &r) != NULL);
	CHECK_EQ_INT(r.done, 0); /* never from inside the call */
	CHECK(run_until(e->loop, &r.done, 1000));
	CHECK_EQ_INT(r.code, TTRPC_OK);
	CHECK(payload_is(&r, "hello"));

	kv.key = (char *)"k";
	kv.value = (char *)"v";
	CHECK(ttrpc_call(e->cconn, SVC, "Echo", &kv.base, 1000, 0, on_reply, &r2) != NULL);
	CHECK(run_until(e->loop, &r2.done, 1000));
	CHECK_EQ_INT(r2.code, 0);
	back = ttrpc__key_value__unpack(NULL, r2.len, r2.payload);
	CHECK(back != NULL);
	CHECK_STR(back->key, "k");
	CHECK_STR(back->value, "v");
	ttrpc__key_value__free_unpacked(back, NULL);
	/* Empty request, empty reply. */
	r2.done = 0;
	CHECK(ttrpc_call(e->cconn, SVC, "Echo", NULL, 0, 0, on_reply, &r2) != NULL);
	CHECK(run_until(e->loop, &r2.done, 1000));
	CHECK_EQ_INT(r2.code, 0);
	CHECK_EQ_INT(r2.len, 0);
	CHECK_EQ_INT(r.done, 1);
	free(r.payload);
	free(r2.payload);
	env_free(e);
}

TEST(error_status)
{
	struct env *e = env_new();
	struct reply r = { 0 };
	ttrpc_call_raw(e->cconn, SVC, "Fail", (const uint8_t *)"c1", 2, 0, 0, on_reply, &r);
	CHECK(run_until(e->loop, &r.done, 1000));
	CHECK_EQ_INT(r.code, TTRPC_NOT_FOUND);
	CHECK_STR(r.msg, "no such thing: c1");
	CHECK_EQ_INT(r.len, 0);
	env_free(e);
}

TEST(unimplemented)
{
	struct env *e = env_new();
	struct reply r1 = { 0 }, r2 = { 0 };
	ttrpc_call_raw(e->cconn, "nope.Svc", "Echo", NULL, 0, 0, 0, on_reply, &r1);
	ttrpc_call_raw(e->cconn, SVC, "Nope", NULL, 0, 0, 0, on_reply, &r2);
	CHECK(run_until(e->loop, &r2.done, 1000));
	CHECK(run_until(e->loop, &r1.done, 1000));
	CHECK_EQ_INT(r1.code, TTRPC_UNIMPLEMENTED);
	CHECK(strstr(r1.msg, "nope.Svc") != NULL);
	CHECK_EQ_INT(r2.code, TTRPC_UNIMPLEMENTED);
	CHECK(strstr(r2.msg, "Nope") != NULL);
	CHECK(strstr(r2.msg, SVC) != NULL);
	env_free(e);
}

TEST(metadata)
{
	struct env *e = env_new();
	struct reply r = { 0 }, r2 = { 0 };
	ttrpc_call_raw(e->cconn, SVC, "Meta", NULL, 0, 0, 0, on_reply, &r);
	CHECK(run_until(e->loop, &r.done, 1000));
	CHECK_EQ_INT(r.code, TTRPC_INVALID_ARGUMENT);
	ttrpc_conn_set_metadata(e->cconn, "containerd-namespace-ttrpc", "k8s.io");
	ttrpc_call_raw(e->cconn, SVC, "Meta", NULL, 0, 0, 0, on_reply, &r2);
	CHECK(run_until(e->loop, &r2.done, 1000));
	CHECK_EQ_INT(r2.code, 0);
	CHECK(payload_is(&r2, "k8s.io"));
	free(r2.payload);
	env_free(e);
}

/* A parked call (like Wait) must not hold up later ones; replies come back
 * in the order the server gives them. */
TEST(out_of_order)
{
	struct env *e = env_new();
	struct reply park[2] = { { 0 } }, echo[20] = { { 0 } }, rel = { 0 };
	ttrpc_call_raw(e->cconn, SVC, "Park", (const uint8_t *)"p0", 2, 0, 0, on_reply, &park[0]);
	ttrpc_call_raw(e->cconn, SVC, "Park", (const uint8_t *)"p1", 2, 0, 0, on_reply, &park[1]);
	for (int i = 0; i < 20; i++) {
		char b[16];
		int n = snprintf(b, sizeof(b), "m%d", i);
		ttrpc_call_raw(e->cconn, SVC, "Echo", (const uint8_t *)b, (size_t)n, 0, 0, on_reply, &echo[i]);
	}
	CHECK(run_until(e->loop, &echo[19].done, 1000));
	for (int i = 0; i < 20; i++) {
		char b[16];
		snprintf(b, sizeof(b), "m%d", i);
		CHECK_EQ_INT(echo[i].done, 1);
		CHECK(payload_is(&echo[i], b));
		free(echo[i].payload);
	}
	CHECK_EQ_INT(park[0].done + park[1].done, 0);
	CHECK_EQ_INT(e->st.n_parked, 2);
	ttrpc_call_raw(e->cconn, SVC, "Release", NULL, 0, 0, 0, on_reply, &rel);
	CHECK(run_until(e->loop, &rel.done, 1000));
	CHECK_EQ_INT(park[0].done, 1);
	CHECK_EQ_INT(park[1].done, 1);
	CHECK(payload_is(&park[0], "p0"));
	CHECK(payload_is(&park[1], "p1"));
	CHECK(park[0].order > echo[19].order);
	CHECK(park[1].order < rel.order);
	free(park[0].payload);
	free(park[1].payload);
	env_free(e);
}

TEST(timeout)
{
	struct env *e = env_new();
	struct reply r = { 0 }, r2 = { 0 }, rel = { 0 };
	uint64_t t0 = now_mono_ns();
	ttrpc_call_raw(e->cconn, SVC, "Park", (const uint8_t *)"late", 4, 50, 0, on_reply, &r);
	CHECK(run_until(e->loop, &r.done, 2000));
	CHECK_EQ_INT(r.code, TTRPC_DEADLINE_EXCEEDED);
	CHECK_STR(r.msg, "ttrpc: deadline exceeded: no answer within 50 ms");
	CHECK(now_mono_ns() - t0 >= 45u * 1000000u);
	/* The late answer is for a stream the client forgot: dropped, and the
	 * connection still works. */
	ttrpc_call_raw(e->cconn, SVC, "Release", NULL, 0, 0, 0, on_reply, &rel);
	CHECK(run_until(e->loop, &rel.done, 1000));
	ttrpc_call_raw(e->cconn, SVC, "Echo", (const uint8_t *)"x", 1, 1000, 0, on_reply, &r2);
	CHECK(run_until(e->loop, &r2.done, 1000));
	CHECK_EQ_INT(r2.code, 0);
	CHECK_EQ_INT(r.done, 1);
	CHECK_EQ_INT(e->client_closed, 0);
	free(r2.payload);
	env_free(e);
}

TEST(abandon)
{
	struct env *e = env_new();
	struct reply r = { 0 }, r2 = { 0 };
	struct ttrpc_stream *s = ttrpc_call_raw(e->cconn, SVC, "Echo", (const uint8_t *)"a", 1, 0, 0, on_reply, &r);
	ttrpc_call_abandon(s);
	ttrpc_call_raw(e->cconn, SVC, "Echo", (const uint8_t *)"b", 1, 0, 0, on_reply, &r2);
	CHECK(run_until(e->loop, &r2.done, 1000));
	spin(e->loop, 2);
	CHECK_EQ_INT(r.done, 0);
	/* An abandoned call in flight when the connection closes: just freed. */
	s = ttrpc_call_raw(e->cconn, SVC, "Park", (const uint8_t *)"a", 1, 0, 0, on_reply, &r);
	ttrpc_call_abandon(s);
	spin(e->loop, 2);
	free(r2.payload);
	env_free(e);
	CHECK_EQ_INT(r.done, 0);
}

/* The server side goes away: pending calls fail UNAVAILABLE, parked server
 * streams are cancelled, and answering them afterwards is only a free. */
TEST(peer_close)
{
	struct env *e = env_new();
	struct reply r[3] = { { 0 } }, late = { 0 };
	for (int i = 0; i < 3; i++)
		ttrpc_call_raw(e->cconn, SVC, "Park", (const uint8_t *)"p", 1, 0, 0, on_reply, &r[i]);
	spin(e->loop, 3);
	CHECK_EQ_INT(e->st.n_parked, 3);
	CHECK_EQ_INT(ttrpc_server_conn_count(e->srv), 1);
	ttrpc_conn_close(e->sconn);
	CHECK_EQ_INT(ttrpc_server_conn_count(e->srv), 0);
	CHECK(run_until(e->loop, &r[2].done, 1000));
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(r[i].done, 1);
		CHECK_EQ_INT(r[i].code, TTRPC_UNAVAILABLE);
	}
	CHECK_EQ_INT(e->st.cancelled, 3);
	CHECK_EQ_INT(e->srv_closed_events, 1);
	CHECK(run_until(e->loop, &e->client_closed, 1000));
	/* Reply after close: a free (ASan checks). */
	for (size_t i = 0; i < e->st.n_cancelled_streams; i++) {
		free(ttrpc_stream_user(e->st.cancelled_streams[i]));
		ttrpc_reply_raw(e->st.cancelled_streams[i], (const uint8_t *)"x", 1);
	}
	e->st.n_cancelled_streams = 0;
	CHECK_EQ_INT(e->client_closed, 1);
	env_free(e);
	(void)late;
}

static int reentered;
static int in_call;
static void on_reply_reentry(void *data, int code, const char *msg, const uint8_t *p, size_t len)
{
	(void)msg;
	(void)p;
	(void)len;
	if (in_call)
		reentered = 1;
	((struct reply *)data)->done++;
	((struct reply *)data)->code = code;
}

TEST(call_on_closed_conn)
{
	struct env *e = env_new();
	struct reply r = { 0 };
	struct ttrpc_stream *s;
	ttrpc_conn_close(e->cconn);
	CHECK(ttrpc_conn_queued(e->cconn) == 0);
	in_call = 1;
	s = ttrpc_call_raw(e->cconn, SVC, "Echo", NULL, 0, 0, 0, on_reply_reentry, &r);
	in_call = 0;
	CHECK(s == NULL);
	CHECK_EQ_INT(r.done, 0);
	CHECK(run_until(e->loop, &r.done, 1000));
	CHECK_EQ_INT(reentered, 0);
	CHECK_EQ_INT(r.code, TTRPC_UNAVAILABLE);
	CHECK(run_until(e->loop, &e->client_closed, 1000));
	/* The server sees the hang-up. */
	CHECK(run_until(e->loop, &e->srv_closed_events, 1000));
	env_free(e);
}

/* ---- data frames ---- */

struct data_sink {
	size_t bytes;
	int frames;
	uint8_t last_flags;
	int closed_flag_seen;
	uint32_t sum;
	size_t big_frames;
};

static void client_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct data_sink *k = ud;
	(void)s;
	k->bytes += len;
	k->frames++;
	k->last_flags = flags;
	if (flags & TTRPC_FLAG_REMOTE_CLOSED)
		k->closed_flag_seen++;
	if (len == BIG)
		k->big_frames++;
	for (size_t i = 0; i < len; i++)
		k->sum = k->sum * 31 + d[i];
}

TEST(data_frames)
{
	struct env *e = env_new();
	struct reply r = { 0 };
	struct data_sink k = { 0 };
	uint32_t want_sum = 0;
	cleanup_free uint8_t *big = xmalloc(BIG);
	struct ttrpc_stream *s;

	for (size_t i = 0; i < BIG; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 13));
	s = ttrpc_call_raw(e->cconn, SVC, "Stream", NULL, 0, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, &r);
	CHECK(s != NULL);
	ttrpc_stream_on_data(s, client_data, &k);
	CHECK(ttrpc_stream_send(s, "abc", 3, 0) == 0);
	CHECK(ttrpc_stream_send(s, big, BIG, 0) == 0);
	CHECK(ttrpc_stream_send(s, big, BIG + 1, 0) == -1); /* over the limit */
	CHECK(ttrpc_stream_send(s, NULL, 0, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA) == 0);
	for (size_t i = 0; i < 3; i++)
		want_sum = want_sum * 31 + (uint8_t)"abc"[i];
	for (size_t i = 0; i < BIG; i++)
		want_sum = want_sum * 31 + big[i];
	CHECK(run_until(e->loop, &r.done, 10000));
	CHECK_EQ_INT(r.code, 0);
	CHECK(payload_is(&r, "done"));
	CHECK_EQ_INT(e->st.data_frames, 3);
	CHECK_EQ_INT(e->st.data_bytes, BIG + 3);
	/* The echo of every frame arrived before the reply, flags intact. */
	CHECK_EQ_INT(k.frames, 3);
	CHECK_EQ_INT(k.bytes, BIG + 3);
	CHECK_EQ_INT(k.big_frames, 1);
	CHECK_EQ_INT(k.closed_flag_seen, 1);
	CHECK_EQ_INT(k.last_flags, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA);
	CHECK(k.sum == want_sum);
	free(r.payload);
	env_free(e);
}

/* ---- garbage ---- */

struct raw_env {
	struct loop *loop;
	struct ttrpc_server *srv;
	struct svc_state st;
	struct ttrpc_service svc;
	int peer;
	int closed;
};

static void raw_closed(struct ttrpc_server *srv, void *data)
{
	(void)srv;
	((struct raw_env *)data)->closed++;
}

/* Feed bytes to a fresh server connection; optionally hang up afterwards.
 * Returns 1 if the server closed the connection within a second. */
static int feed(const uint8_t *bytes, size_t len, bool hang_up)
{
	struct raw_env re = { 0 };
	int sv[2], closed;
	size_t off = 0;

	if (loop_new(&re.loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	re.st.cancel_replies = true;
	re.svc = (struct ttrpc_service){ SVC, methods, ARRAY_SIZE(methods), &re.st };
	re.srv = ttrpc_server_new(re.loop);
	ttrpc_server_register(re.srv, &re.svc);
	ttrpc_server_on_conn_closed(re.srv, raw_closed, &re);
	ttrpc_server_serve_fd(re.srv, sv[0]);
	set_nonblock(sv[1], 1);
	while (off < len) {
		ssize_t n = write(sv[1], bytes + off, len - off);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break;
		loop_run_once(re.loop, 0);
		if (re.closed)
			break;
	}
	if (hang_up)
		close_and_reset(&sv[1]);
	closed = run_until(re.loop, &re.closed, 1000);
	close_and_reset(&sv[1]);
	ttrpc_server_free(re.srv);
	spin(re.loop, 3);
	loop_free(re.loop);
	return closed;
}

static const uint8_t echo_req[] = { 0, 0, 0, 21, 0, 0, 0, 1, 1, 0, 0x0a, 9, 't', 'e', 's', 't', '.', 'E', 'c',
				    'h', 'o', 0x12, 4, 'E', 'c', 'h', 'o', 0x1a, 2, 'h', 'i' };

TEST(garbage_closes)
{
	uint8_t buf[4096];
	uint32_t x = 12345;
	const uint8_t oversized[] = { 0x00, 0x40, 0x00, 0x01, 0, 0, 0, 1, 1, 0 };
	const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0 };
	const uint8_t unknown_type[] = { 0, 0, 0, 0, 0, 0, 0, 1, 7, 0 };
	const uint8_t even_id[] = { 0, 0, 0, 0, 0, 0, 0, 2, 1, 0 };
	const uint8_t zero_id[] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	/* Field 1 (string) claiming 100 bytes with 2 present. */
	const uint8_t bad_request[] = { 0, 0, 0, 4, 0, 0, 0, 1, 1, 0, 0x0a, 100, 'a', 'b' };
	uint8_t twice[2 * sizeof(echo_req)];
	uint8_t trunc[sizeof(echo_req) - 5];

	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	CHECK(feed(buf, sizeof(buf), true));
	CHECK(feed(oversized, sizeof(oversized), false));
	CHECK(feed(huge, sizeof(huge), false));
	CHECK(feed(unknown_type, sizeof(unknown_type), false));
	CHECK(feed(even_id, sizeof(even_id), false));
	CHECK(feed(zero_id, sizeof(zero_id), false));
	CHECK(feed(bad_request, sizeof(bad_request), false));
	/* The same request id twice: not increasing. */
	memcpy(twice, echo_req, sizeof(echo_req));
	memcpy(twice + sizeof(echo_req), echo_req, sizeof(echo_req));
	CHECK(feed(twice, sizeof(twice), false));
	/* Valid traffic does not close by itself... */
	CHECK(!feed(echo_req, sizeof(echo_req), false));
	/* ...and a truncated frame then hang-up closes cleanly. */
	memcpy(trunc, echo_req, sizeof(trunc));
	CHECK(feed(trunc, sizeof(trunc), true));
	CHECK(feed(trunc, 4, true));
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < 512; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		/* Small lengths so the fuzz reaches the envelope decoders. */
		buf[0] = buf[1] = buf[2] = 0;
		buf[8] = (uint8_t)(1 + round % 3);
		CHECK(feed(buf, 512, true));
	}
}

/* An undecodable response fails the client's calls (UNAVAILABLE). */
TEST(garbage_response)
{
	struct loop *l;
	struct ttrpc_conn *c;
	struct reply r = { 0 };
	int sv[2], closed = 0;
	const uint8_t bad[] = { 0, 0, 0, 3, 0, 0, 0, 1, 2, 0, 0x0a, 50, 0 };

	CHECK(loop_new(&l, NULL) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	c = ttrpc_conn_new(l, sv[0], NULL, client_closed, &closed);
	(void)c;
	ttrpc_call_raw(c, "a", "b", NULL, 0, 0, 0, on_reply, &r);
	spin(l, 2);
	CHECK(write(sv[1], bad, sizeof(bad)) == (ssize_t)sizeof(bad));
	CHECK(run_until(l, &r.done, 1000));
	CHECK_EQ_INT(r.code, TTRPC_UNAVAILABLE);
	spin(l, 2);
	close(sv[1]);
	loop_free(l);
}

/* ---- back-pressure ---- */

static void on_drain(struct ttrpc_conn *c, void *data)
{
	(void)c;
	(*(int *)data)++;
}

TEST(slow_reader)
{
	struct loop *l;
	struct ttrpc_conn *c;
	struct reply r[4] = { { 0 } };
	int sv[2], drained = 0;
	size_t total = 0, got = 0, q0;
	cleanup_free uint8_t *payload = xzalloc(1u << 20);
	uint8_t buf[65536];

	CHECK(loop_new(&l, NULL) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	c = ttrpc_conn_new(l, sv[0], NULL, NULL, NULL);
	/* Drain callback on an empty queue: from the loop, not inline. */
	ttrpc_conn_on_drain(c, on_drain, &drained);
	CHECK_EQ_INT(drained, 0);
	CHECK(run_until(l, &drained, 1000));
	drained = 0;

	for (int i = 0; i < 4; i++) {
		ttrpc_call_raw(c, "s", "m", payload, 1u << 20, 0, 0, on_reply, &r[i]);
		q0 = ttrpc_conn_queued(c);
	}
	/* 4 MiB does not fit in a socket buffer: most of it is queued. */
	CHECK(q0 > (2u << 20));
	ttrpc_conn_on_drain(c, on_drain, &drained);
	spin(l, 5);
	CHECK_EQ_INT(drained, 0);
	CHECK_EQ_INT(ttrpc_conn_queued(c), q0);
	total = q0;
	set_nonblock(sv[1], 1);
	{
		uint64_t deadline = now_mono_ns() + 5000000000ull;
		while (!drained && now_mono_ns() < deadline) {
			ssize_t n = read(sv[1], buf, sizeof(buf));
			if (n > 0)
				got += (size_t)n;
			loop_run_once(l, 0);
		}
	}
	CHECK_EQ_INT(drained, 1);
	CHECK_EQ_INT(ttrpc_conn_queued(c), 0);
	for (;;) {
		ssize_t n = read(sv[1], buf, sizeof(buf));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	CHECK(got >= total);
	ttrpc_conn_close(c);
	CHECK(run_until(l, &r[3].done, 1000));
	CHECK_EQ_INT(r[0].code, TTRPC_UNAVAILABLE);
	close(sv[1]);
	loop_free(l);
}

/* ---- listener ---- */

TEST(listener_peercred)
{
	struct env *e = env_new();
	char dir[] = "/tmp/runm-ttrpc-XXXXXX", path[64];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct reply r = { 0 };
	int lfd, cfd, status = -1;
	pid_t pid;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(chmod(dir, 0755) == 0);
	snprintf(path, sizeof(path), "%s/s", dir);
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(chmod(path, 0777) == 0);
	CHECK(listen(lfd, 8) == 0);
	CHECK(ttrpc_server_listen(e->srv, lfd, NULL) == 0);

	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	{
		struct ttrpc_conn *c = ttrpc_conn_new(e->loop, cfd, NULL, NULL, NULL);
		ttrpc_call_raw(c, SVC, "Echo", (const uint8_t *)"L", 1, 1000, 0, on_reply, &r);
		CHECK(run_until(e->loop, &r.done, 1000));
		CHECK_EQ_INT(r.code, 0);
		CHECK(payload_is(&r, "L"));
		CHECK_EQ_INT(ttrpc_server_conn_count(e->srv), 2);
		ttrpc_conn_close(c);
	}
	free(r.payload);

	/* Another uid is refused: it sees EOF. Only testable as root. */
	if (geteuid() == 0) {
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			char b;
			int fd = socket(AF_UNIX, SOCK_STREAM, 0);
			if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
				_exit(2);
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
				_exit(3);
			_exit(read(fd, &b, 1) == 0 ? 0 : 1);
		}
		{
			uint64_t deadline = now_mono_ns() + 5000000000ull;
			while (now_mono_ns() < deadline) {
				loop_run_once(e->loop, 10);
				if (waitpid(pid, &status, WNOHANG) == pid)
					break;
			}
		}
		CHECK(WIFEXITED(status));
		CHECK_EQ_INT(WEXITSTATUS(status), 0);
	}
	spin(e->loop, 3);
	CHECK_EQ_INT(ttrpc_server_conn_count(e->srv), 1);
	unlink(path);
	rmdir(dir);
	env_free(e);
}

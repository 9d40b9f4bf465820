/* Unit tests of the guest end of the DNS relay, src/agent/dns.c, on the
 * host: a ttrpc client plays the host (calls DnsRelay, answers the query
 * frames) and a UDP socket plays the client in the VM. The agent's sources
 * are not in the host library, so the file is compiled in here. */
#include "../../src/agent/dns.c"

#include "harness.h"

#include <stdbool.h>

struct host {
	struct loop *loop;
	struct ttrpc_server *srv;
	struct ttrpc_service svc;
	struct ttrpc_conn *conn;
	struct ttrpc_stream *call;
	bool replied;
	int code;
	uint32_t query_id;
	uint8_t query[DNS_MAX_MSG];
	size_t query_len;
	int queries;
	int client;        /* the "client in the VM" */
	struct sockaddr_in listen;
};

static void h_dns(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx)
{
	cleanup_pb Runm__Agent__V1__DnsRelayRequest *req =
		PB_UNPACK(Runm__Agent__V1__DnsRelayRequest, runm__agent__v1__dns_relay_request__descriptor, payload, len);
	cleanup_error runm_error_t err = NULL;
	struct host *h = ctx;
	if (req == NULL || dns_relay_start(h->loop, s, req->listen, req->port, &err) < 0)
		ttrpc_reply_error(s, TTRPC_INVALID_ARGUMENT, "%s", runm_error_msg(err));
}

static const struct ttrpc_method methods[] = { { "DnsRelay", h_dns } };

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct host *h = data;
	(void)msg;
	(void)payload;
	(void)len;
	h->replied = true;
	h->code = code;
	h->call = NULL;
}

static void on_query(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct host *h = ud;
	cleanup_pb Runm__Agent__V1__DnsPacket *p =
		PB_UNPACK(Runm__Agent__V1__DnsPacket, runm__agent__v1__dns_packet__descriptor, d, len);
	(void)s;
	(void)flags;
	if (p && p->data.len <= sizeof(h->query)) {
		h->query_id = p->id;
		memcpy(h->query, p->data.data, p->data.len);
		h->query_len = p->data.len;
		h->queries++;
	}
}

/* A free UDP port on 127.0.0.1 (bound and released: nothing else runs here). */
static unsigned free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

static struct host *host_new(const char *listen, unsigned port)
{
	Runm__Agent__V1__DnsRelayRequest req = RUNM__AGENT__V1__DNS_RELAY_REQUEST__INIT;
	struct host *h = xzalloc(sizeof(*h));
	int sv[2];
	if (loop_new(&h->loop, NULL) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	h->srv = ttrpc_server_new(h->loop);
	h->svc = (struct ttrpc_service){ AGENT_SERVICE, methods, ARRAY_SIZE(methods), h };
	ttrpc_server_register(h->srv, &h->svc);
	ttrpc_server_serve_fd(h->srv, sv[0]);
	h->conn = ttrpc_conn_new(h->loop, sv[1], NULL, NULL, NULL);
	req.listen = (char *)listen;
	req.port = port;
	h->call = ttrpc_call(h->conn, AGENT_SERVICE, "DnsRelay", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, h);
	ttrpc_stream_on_data(h->call, on_query, h);
	h->client = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	h->listen = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, listen, &h->listen.sin_addr);
	for (int i = 0; i < 20; i++)
		loop_run_once(h->loop, 5);
	return h;
}

static void host_free(struct host *h)
{
	if (h->call)
		ttrpc_call_abandon(h->call);
	ttrpc_conn_close(h->conn);
	ttrpc_server_free(h->srv);
	loop_settle(h->loop);
	loop_free(h->loop);
	close(h->client);
	free(h);
}

static void spin(struct host *h, int n)
{
	for (int i = 0; i < n; i++)
		loop_run_once(h->loop, 5);
}

static void answer(struct host *h, uint32_t id, const uint8_t *msg, size_t len)
{
	Runm__Agent__V1__DnsPacket p = RUNM__AGENT__V1__DNS_PACKET__INIT;
	uint8_t buf[DNS_MAX_MSG + 64];
	p.id = id;
	p.data.data = (uint8_t *)msg;
	p.data.len = len;
	ttrpc_stream_send(h->call, buf, protobuf_c_message_pack(&p.base, buf), 0);
}

TEST(query_up_answer_down)
{
	unsigned port = free_port();
	struct host *h = host_new("127.0.0.1", port);
	uint8_t q[32] = { 0xab, 0xcd, 1, 0, 0, 1 }, got[64];
	ssize_t n = -1;

	CHECK(!h->replied);
	CHECK(sendto(h->client, q, sizeof(q), 0, (struct sockaddr *)&h->listen, sizeof(h->listen)) == sizeof(q));
	for (int i = 0; i < 100 && h->queries == 0; i++)
		loop_run_once(h->loop, 5);
	CHECK_EQ_INT(h->queries, 1);
	CHECK_EQ_INT(h->query_len, sizeof(q));
	CHECK(memcmp(h->query, q, sizeof(q)) == 0);
	/* An unknown id and garbage first: dropped, the query still stands. */
	answer(h, h->query_id + 1, q, sizeof(q));
	ttrpc_stream_send(h->call, "\xff\xff\xff", 3, 0);
	answer(h, h->query_id, q, 5); /* shorter than a DNS header */
	q[2] |= 0x80;
	answer(h, h->query_id, q, sizeof(q));
	for (int i = 0; i < 100 && n < 0; i++) {
		n = recv(h->client, got, sizeof(got), 0);
		loop_run_once(h->loop, 5);
	}
	CHECK_EQ_INT(n, sizeof(q));
	CHECK(memcmp(got, q, sizeof(q)) == 0);
	/* Answered once: a second answer has nobody to go to. */
	answer(h, h->query_id, q, sizeof(q));
	spin(h, 10);
	CHECK(recv(h->client, got, sizeof(got), 0) < 0);
	/* The host ends the relay: the call is answered OK, the port is free again. */
	ttrpc_stream_send(h->call, NULL, 0, TTRPC_FLAG_REMOTE_CLOSED);
	for (int i = 0; i < 100 && !h->replied; i++)
		loop_run_once(h->loop, 5);
	CHECK(h->replied && h->code == TTRPC_OK);
	CHECK(dns.s == NULL && dns.fd < 0);
	host_free(h);
}

TEST(small_and_big_datagrams_are_not_relayed)
{
	unsigned port = free_port();
	struct host *h = host_new("127.0.0.1", port);
	static uint8_t big[DNS_MAX_MSG + 1];

	sendto(h->client, big, 11, 0, (struct sockaddr *)&h->listen, sizeof(h->listen));
	sendto(h->client, big, sizeof(big), 0, (struct sockaddr *)&h->listen, sizeof(h->listen));
	sendto(h->client, big, DNS_MAX_MSG, 0, (struct sockaddr *)&h->listen, sizeof(h->listen));
	for (int i = 0; i < 100 && h->queries == 0; i++)
		loop_run_once(h->loop, 5);
	CHECK_EQ_INT(h->queries, 1);
	CHECK_EQ_INT(h->query_len, DNS_MAX_MSG);
	host_free(h);
	/* The connection went: the relay stopped with it. */
	CHECK(dns.s == NULL && dns.fd < 0);
}

TEST(in_flight_is_capped)
{
	unsigned port = free_port();
	struct host *h = host_new("127.0.0.1", port);
	uint8_t q[12] = { 0 };

	for (int i = 0; i < DNS_MAX_PENDING + 20; i++) {
		q[1] = (uint8_t)i;
		sendto(h->client, q, sizeof(q), 0, (struct sockaddr *)&h->listen, sizeof(h->listen));
		spin(h, 1);
	}
	spin(h, 20);
	CHECK_EQ_INT(h->queries, DNS_MAX_PENDING);
	host_free(h);
}

TEST(bad_requests_and_a_second_relay)
{
	unsigned port = free_port();
	struct host *h = host_new("not-an-address", port);
	CHECK(h->replied && h->code == TTRPC_INVALID_ARGUMENT);
	host_free(h);
	h = host_new("127.0.0.1", 70000);
	CHECK(h->replied && h->code == TTRPC_INVALID_ARGUMENT);
	host_free(h);
	h = host_new("127.0.0.1", port);
	CHECK(!h->replied);
	{
		runm_error_t err = NULL;
		CHECK(dns_relay_start(h->loop, NULL, "127.0.0.1", free_port(), &err) < 0);
		CHECK(err && err->status == EEXIST);
		runm_error_release(&err);
	}
	host_free(h);
}

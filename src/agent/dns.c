/* dns.c - see dns.h. Queries are numbered with their slot in the low bits
 * and a generation above, so an answer finds its client in O(1) and a late
 * answer to a reused slot is recognised and dropped. */
#include "dns.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOT_BITS 6 /* 1 << SLOT_BITS == DNS_MAX_PENDING */
/* Queries are dropped, not queued, while this much is waiting to reach the
 * host: a flood from inside the VM must not grow the agent's write queue. */
#define MAX_QUEUED (256u << 10)
/* Room for the DnsPacket envelope around a DNS_MAX_MSG message. */
#define MAX_FRAME (DNS_MAX_MSG + 32)

_Static_assert((1 << SLOT_BITS) == DNS_MAX_PENDING, "slot bits");

struct pending {
	uint32_t id; /* 0 = free */
	struct sockaddr_in client;
	struct loop_timer *timer;
};

static struct {
	struct loop *loop;
	struct ttrpc_stream *s; /* the DnsRelay call, NULL when no relay runs */
	int fd;
	struct loop_watch *w;
	uint32_t gen;
	struct pending p[DNS_MAX_PENDING];
} dns = { .fd = -1 };

static void forget(struct pending *q)
{
	loop_timer_cancel(q->timer);
	q->timer = NULL;
	q->id = 0;
}

static void on_timeout(struct loop *l, void *data)
{
	struct pending *q = data;
	(void)l;
	q->timer = NULL; /* the loop frees a fired timer */
	log_debug("dns: query %u unanswered, forgotten", q->id);
	q->id = 0;
}

/* Close the listener, forget every query; reply to the call (a plain free
 * once the connection is gone). */
static void stop(void)
{
	struct ttrpc_stream *s = dns.s;

	loop_unwatch(dns.w);
	dns.w = NULL;
	close_and_reset(&dns.fd);
	for (size_t i = 0; i < DNS_MAX_PENDING; i++)
		forget(&dns.p[i]);
	dns.s = NULL;
	if (s) {
		ttrpc_stream_on_cancel(s, NULL, NULL);
		ttrpc_stream_on_data(s, NULL, NULL);
		ttrpc_reply(s, NULL);
	}
}

static void on_cancel(struct ttrpc_stream *s, void *data)
{
	(void)s;
	(void)data;
	stop();
}

static struct pending *slot_alloc(void)
{
	for (size_t i = 0; i < DNS_MAX_PENDING; i++) {
		struct pending *q = &dns.p[i];
		if (q->id != 0)
			continue;
		/* Never 0, whatever the generation wraps to. */
		do
			dns.gen++;
		while (((dns.gen << SLOT_BITS) | i) == 0);
		q->id = (dns.gen << SLOT_BITS) | (uint32_t)i;
		return q;
	}
	return NULL;
}

static void relay_query(const uint8_t *msg, size_t len, const struct sockaddr_in *from)
{
	Runm__Agent__V1__DnsPacket pkt = RUNM__AGENT__V1__DNS_PACKET__INIT;
	struct ttrpc_conn *c = ttrpc_stream_conn(dns.s);
	uint8_t frame[MAX_FRAME];
	struct pending *q;
	size_t n;

	if (c == NULL || ttrpc_conn_queued(c) > MAX_QUEUED || (q = slot_alloc()) == NULL) {
		log_debug("dns: query of %zu bytes dropped (busy)", len);
		return;
	}
	q->client = *from;
	q->timer = loop_timer_add(dns.loop, DNS_TIMEOUT_MS, on_timeout, q);
	pkt.id = q->id;
	pkt.data.data = (uint8_t *)msg;
	pkt.data.len = len;
	n = protobuf_c_message_get_packed_size(&pkt.base);
	if (n > sizeof(frame)) { /* cannot happen with len <= DNS_MAX_MSG */
		forget(q);
		return;
	}
	protobuf_c_message_pack(&pkt.base, frame);
	if (ttrpc_stream_send(dns.s, frame, n, 0) < 0)
		forget(q);
}

static void on_readable(struct loop *l, int fd, uint32_t events, void *data)
{
	uint8_t buf[DNS_MAX_MSG + 1];
	(void)l;
	(void)events;
	(void)data;

	/* Bounded per wake-up, so the host channel gets its turn. */
	for (int i = 0; i < 32 && dns.fd >= 0; i++) {
		struct sockaddr_in from = { 0 };
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_debug("dns: recvfrom: %s", strerror(errno));
			return;
		}
		/* A DNS header is 12 bytes; MSG_TRUNC gives the real size of a big one. */
		if (n < 12 || n > DNS_MAX_MSG || fl != sizeof(from) || from.sin_family != AF_INET)
			continue;
		relay_query(buf, (size_t)n, &from);
	}
}

static void on_host_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	cleanup_pb Runm__Agent__V1__DnsPacket *pkt = NULL;
	struct pending *q;
	(void)s;
	(void)ud;

	if (len > 0 && len <= MAX_FRAME)
		pkt = PB_UNPACK(Runm__Agent__V1__DnsPacket, runm__agent__v1__dns_packet__descriptor, d, len);
	if (pkt && pkt->id != 0 && pkt->data.len >= 12 && pkt->data.len <= DNS_MAX_MSG) {
		q = &dns.p[pkt->id & (DNS_MAX_PENDING - 1)];
		if (q->id == pkt->id) {
			if (sendto(dns.fd, pkt->data.data, pkt->data.len, MSG_DONTWAIT, (struct sockaddr *)&q->client,
				   sizeof(q->client)) < 0)
				log_debug("dns: answer to query %u: %s", q->id, strerror(errno));
			forget(q);
		}
	} else if (len > 0) {
		log_debug("dns: bad packet of %zu bytes from the host, dropped", len);
	}
	if (flags & TTRPC_FLAG_REMOTE_CLOSED) {
		log_info("dns: relay ended by the host");
		stop();
	}
}

int dns_relay_start(struct loop *loop, struct ttrpc_stream *s, const char *listen, unsigned port,
		    runm_error_t *err)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	const char *addr = listen && listen[0] ? listen : "127.0.0.11";
	cleanup_close int fd = -1;

	if (dns.s != NULL)
		return runm_error_make(err, EEXIST, "dns relay already running");
	if (port > 65535 || inet_pton(AF_INET, addr, &a.sin_addr) != 1)
		return runm_error_make(err, EINVAL, "dns relay: bad listen address `%.64s` port %u", addr, port);
	a.sin_port = htons(port ? (uint16_t)port : 53);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return runm_error_make(err, errno, "dns relay: socket");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return runm_error_make(err, errno, "dns relay: bind %s:%u", addr, ntohs(a.sin_port));
	dns.w = loop_watch_fd(loop, fd, EPOLLIN, on_readable, NULL, err);
	if (dns.w == NULL)
		return runm_error_wrap(err, "dns relay");
	dns.loop = loop;
	dns.fd = steal_fd(&fd);
	dns.s = s;
	ttrpc_stream_on_cancel(s, on_cancel, NULL);
	ttrpc_stream_on_data(s, on_host_data, NULL);
	log_info("dns: relaying UDP %s:%u to the host", addr, ntohs(a.sin_port));
	return 0;
}

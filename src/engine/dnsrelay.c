/* dnsrelay.c - see dnsrelay.h. One connected UDP socket, made inside the
 * namespace, carries every query upstream. Queries from different guest
 * clients may carry the same DNS id, so each goes out under an id of ours
 * (random, unique among those in flight) and the answer gets the client's
 * back, as any forwarder does; the socket is connected, so the kernel
 * delivers only datagrams from the resolver's address. */
#include "dnsrelay.h"
#include "netns.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for the DnsPacket envelope around a DNSRELAY_MAX_MSG message. */
#define MAX_FRAME (DNSRELAY_MAX_MSG + 32)
/* Answers are dropped while this much waits to reach a guest that stopped reading. */
#define MAX_QUEUED (1u << 20)
/* resolv.conf is small; a bigger file is not Docker's. */
#define RESOLV_MAX (64u << 10)
#define DNS_HEADER 12

struct query {
	struct dnsrelay *r;
	bool used;
	uint32_t guest_id;   /* the agent's id of the query */
	uint16_t client_id;  /* the DNS id the guest's client chose */
	uint16_t our_id;     /* the DNS id it went upstream with */
	struct loop_timer *timer;
};

struct dnsrelay {
	struct loop *loop;
	struct ttrpc_stream *s; /* the DnsRelay call, NULL once it ended */
	int fd;
	struct loop_watch *w;
	size_t n_pending;
	struct query q[DNSRELAY_MAX_PENDING];
};

static void forget(struct query *q)
{
	loop_timer_cancel(q->timer);
	q->timer = NULL;
	if (q->used)
		q->r->n_pending--;
	q->used = false;
}

static void on_timeout(struct loop *l, void *data)
{
	struct query *q = data;
	(void)l;
	q->timer = NULL; /* the loop frees a fired timer */
	log_debug("dnsrelay: query %u unanswered after %d ms, forgotten", q->guest_id, DNSRELAY_TIMEOUT_MS);
	forget(q);
}

static struct query *find_our_id(struct dnsrelay *r, uint16_t id)
{
	for (size_t i = 0; i < DNSRELAY_MAX_PENDING; i++)
		if (r->q[i].used && r->q[i].our_id == id)
			return &r->q[i];
	return NULL;
}

static uint16_t fresh_id(struct dnsrelay *r)
{
	uint16_t id;
	/* At most 64 of 65536 are taken: this ends at once. */
	do {
		if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
			id = (uint16_t)(now_mono_ns() >> 7);
	} while (find_our_id(r, id) != NULL);
	return id;
}

/* A query from the guest: checked, renumbered, sent upstream. */
static void on_guest_data(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct dnsrelay *r = ud;
	cleanup_pb Runm__Agent__V1__DnsPacket *pkt = NULL;
	uint8_t msg[DNSRELAY_MAX_MSG];
	struct query *q = NULL;
	(void)s;
	(void)flags;

	if (len == 0 || len > MAX_FRAME || r->fd < 0)
		return;
	pkt = PB_UNPACK(Runm__Agent__V1__DnsPacket, runm__agent__v1__dns_packet__descriptor, d, len);
	if (pkt == NULL || pkt->data.len < DNS_HEADER || pkt->data.len > DNSRELAY_MAX_MSG) {
		log_debug("dnsrelay: bad packet of %zu bytes from the guest, dropped", len);
		return;
	}
	if (r->n_pending >= DNSRELAY_MAX_PENDING) {
		log_debug("dnsrelay: %d queries in flight, query %u dropped", DNSRELAY_MAX_PENDING, pkt->id);
		return;
	}
	for (size_t i = 0; i < DNSRELAY_MAX_PENDING && q == NULL; i++)
		if (!r->q[i].used)
			q = &r->q[i];
	if (q == NULL) /* cannot happen: n_pending counts the used slots */
		return;
	q->used = true;
	r->n_pending++;
	q->guest_id = pkt->id;
	q->client_id = (uint16_t)(pkt->data.data[0] << 8 | pkt->data.data[1]);
	q->our_id = fresh_id(r);
	memcpy(msg, pkt->data.data, pkt->data.len);
	msg[0] = (uint8_t)(q->our_id >> 8);
	msg[1] = (uint8_t)q->our_id;
	if (send(r->fd, msg, pkt->data.len, MSG_DONTWAIT) < 0) {
		/* ECONNREFUSED: an earlier query found nobody listening. */
		log_debug("dnsrelay: send query upstream: %s", strerror(errno));
		forget(q);
		return;
	}
	q->timer = loop_timer_add(r->loop, DNSRELAY_TIMEOUT_MS, on_timeout, q);
}

/* Answers from the resolver go back to the guest under the client's id. */
static void on_upstream(struct loop *l, int fd, uint32_t events, void *data)
{
	struct dnsrelay *r = data;
	uint8_t buf[DNSRELAY_MAX_MSG + 1];
	(void)l;
	(void)events;

	/* Bounded per wake-up, so other fds of the loop get their turn. */
	for (int i = 0; i < 32; i++) {
		Runm__Agent__V1__DnsPacket pkt = RUNM__AGENT__V1__DNS_PACKET__INIT;
		uint8_t frame[MAX_FRAME];
		struct query *q;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT);
		size_t flen;

		if (n < 0) {
			if (errno == EINTR || errno == ECONNREFUSED)
				continue;
			return;
		}
		if (n < DNS_HEADER || n > DNSRELAY_MAX_MSG)
			continue;
		q = find_our_id(r, (uint16_t)(buf[0] << 8 | buf[1]));
		if (q == NULL)
			continue; /* late (forgotten) or not ours */
		buf[0] = (uint8_t)(q->client_id >> 8);
		buf[1] = (uint8_t)q->client_id;
		pkt.id = q->guest_id;
		pkt.data.data = buf;
		pkt.data.len = (size_t)n;
		forget(q);
		flen = protobuf_c_message_get_packed_size(&pkt.base);
		if (r->s == NULL || flen > sizeof(frame) || ttrpc_stream_conn(r->s) == NULL ||
		    ttrpc_conn_queued(ttrpc_stream_conn(r->s)) > MAX_QUEUED)
			continue;
		protobuf_c_message_pack(&pkt.base, frame);
		ttrpc_stream_send(r->s, frame, flen, 0);
	}
}

static void stop_upstream(struct dnsrelay *r)
{
	loop_unwatch(r->w);
	r->w = NULL;
	close_and_reset(&r->fd);
	for (size_t i = 0; i < DNSRELAY_MAX_PENDING; i++)
		forget(&r->q[i]);
}

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct dnsrelay *r = data;
	(void)payload;
	(void)len;

	r->s = NULL;
	if (code != TTRPC_OK && code != TTRPC_UNAVAILABLE)
		log_warn("dns relay: the agent ended it: %s", msg ? msg : "failed");
	stop_upstream(r);
}

static int parse_addr(const char *addr, struct sockaddr_in *sa, char ip[INET_ADDRSTRLEN], runm_error_t *err)
{
	const char *colon = strchr(addr, ':');
	size_t iplen = colon ? (size_t)(colon - addr) : strlen(addr);
	unsigned long port = 53;

	if (iplen == 0 || iplen >= INET_ADDRSTRLEN)
		return runm_error_make(err, EINVAL, "dns relay: bad address `%.64s`", addr);
	memcpy(ip, addr, iplen);
	ip[iplen] = '\0';
	if (colon) {
		char *end;
		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
			return runm_error_make(err, EINVAL, "dns relay: bad port in `%.64s`", addr);
	}
	*sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
		return runm_error_make(err, EINVAL, "dns relay: bad address `%.64s`", addr);
	return 0;
}

static int start(struct loop *loop, struct sandbox *sb, struct ttrpc_conn *conn, int netns_fd, const char *addr,
		 struct dnsrelay **out, runm_error_t *err)
{
	Runm__Agent__V1__DnsRelayRequest req = RUNM__AGENT__V1__DNS_RELAY_REQUEST__INIT;
	char ip[INET_ADDRSTRLEN];
	struct sockaddr_in sa;
	cleanup_close int fd = -1;
	struct dnsrelay *r;

	if (parse_addr(addr, &sa, ip, err) < 0)
		return -1;
	if (sb != NULL ? sandbox_conn(sb) == NULL : conn == NULL)
		return runm_error_make(err, 0, "dns relay: the VM is gone");
	fd = netns_socket(netns_fd, AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, err);
	if (fd < 0)
		return runm_error_wrap(err, "dns relay");
	/* connect() needs no namespace: the socket routes in the one it was made in. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return runm_error_make(err, errno, "dns relay: connect to %s", addr);

	r = xzalloc(sizeof(*r));
	r->loop = loop;
	r->fd = -1;
	for (size_t i = 0; i < DNSRELAY_MAX_PENDING; i++)
		r->q[i].r = r;
	r->w = loop_watch_fd(loop, fd, EPOLLIN, on_upstream, r, err);
	if (r->w == NULL) {
		free(r);
		return runm_error_wrap(err, "dns relay");
	}
	r->fd = steal_fd(&fd);
	req.listen = ip;
	req.port = 53;
	if (sb != NULL)
		r->s = sandbox_call(sb, "DnsRelay", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, r);
	else
		r->s = ttrpc_call(conn, AGENT_SERVICE, "DnsRelay", &req.base, 0, TTRPC_FLAG_REMOTE_OPEN, on_reply, r);
	if (r->s != NULL)
		ttrpc_stream_on_data(r->s, on_guest_data, r);
	*out = r;
	return 0;
}

int dnsrelay_start(struct loop *loop, struct sandbox *sb, int netns_fd, const char *addr, struct dnsrelay **out,
		   runm_error_t *err)
{
	return start(loop, sb, NULL, netns_fd, addr, out, err);
}

int dnsrelay_start_conn(struct loop *loop, struct ttrpc_conn *conn, int netns_fd, const char *addr,
			struct dnsrelay **out, runm_error_t *err)
{
	return start(loop, NULL, conn, netns_fd, addr, out, err);
}

size_t dnsrelay_in_flight(const struct dnsrelay *r)
{
	return r->n_pending;
}

void dnsrelay_free(struct dnsrelay *r)
{
	if (r == NULL)
		return;
	if (r->s != NULL) {
		/* The agent closes its listener and answers; nobody waits for that. */
		ttrpc_stream_send(r->s, NULL, 0, TTRPC_FLAG_REMOTE_CLOSED);
		ttrpc_call_abandon(r->s);
		r->s = NULL;
	}
	stop_upstream(r);
	free(r);
}

/* ---- policy ---- */

bool dnsrelay_resolv_names(const char *text, size_t len, const char *addr)
{
	size_t alen = strlen(addr);
	const char *end = text + len;

	for (const char *p = text, *eol; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t)(eol - p) < 10 || memcmp(p, "nameserver", 10) != 0)
			continue;
		p += 10;
		if (p == eol || (*p != ' ' && *p != '\t'))
			continue;
		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		/* The address is the next word; what follows (spaces, a comment, a CR) does not matter. */
		if ((size_t)(eol - p) >= alen && memcmp(p, addr, alen) == 0 &&
		    (p + alen == eol || strchr(" \t\r#;", p[alen]) != NULL))
			return true;
	}
	return false;
}

const char *dnsrelay_resolv_file(const struct spec *sp)
{
	const char *last = NULL;
	/* The last mount on a path is the one the container sees. */
	for (size_t i = 0; i < sp->n_shares; i++) {
		const struct spec_share *sh = &sp->shares[i];
		/* A file bind: host_path is the file itself (spec.h). */
		if (sh->file != NULL && sh->destination != NULL && strcmp(sh->destination, "/etc/resolv.conf") == 0)
			last = sh->host_path;
	}
	return last;
}

const char *dnsrelay_wanted_file(const char *path)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *text = NULL;
	size_t len = 0;

	if (path == NULL)
		return NULL;
	if (read_file_at(AT_FDCWD, path, RESOLV_MAX, &text, &len, &err) < 0) {
		log_debug("dnsrelay: %s", runm_error_msg(err));
		return NULL;
	}
	return dnsrelay_resolv_names(text, len, DNSRELAY_DOCKER_ADDR) ? DNSRELAY_DOCKER_ADDR : NULL;
}

const char *dnsrelay_wanted(const struct spec *sp)
{
	return dnsrelay_wanted_file(dnsrelay_resolv_file(sp));
}

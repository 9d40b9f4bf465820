/* publisher.c - see publisher.h. One connection at a time, one Forward call
 * in flight at a time (the head of the queue), so containerd sees events in
 * the order they happened. A failed call or connect backs the head event off
 * on a loop timer; nothing here ever waits on the socket. */
#include "events/publisher.h"

#include "common/log.h"
#include "common/util.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "ttrpc/ttrpc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define EVENTS_FORWARD "Forward"
/* The namespace travels as ttrpc metadata, as containerd's namespaces package
 * sends it (namespaces/ttrpc.go). */
#define NS_METADATA_KEY "containerd-namespace-ttrpc"

/* Same per-call deadline as containerd's shim publisher (runtime/v2/shim/publisher.go). */
#define CALL_TIMEOUT_MS 5000
/* containerd evicts an event after 1 + maxRequeue(5) tries; so do we. The
 * delays (200 ms doubling, 6.2 s in all) ride out a containerd restart
 * without holding a dead shim's events for long. */
#define MAX_ATTEMPTS 6
#define RETRY_BASE_MS 200
/* A containerd that is gone for good must not grow the shim without bound. */
#define MAX_QUEUED 1024

struct pub_event {
	struct pub_event *next;
	char *topic; /* for log lines */
	uint8_t *req; /* the packed ForwardRequest */
	size_t len;
	unsigned attempts;
};

struct publisher {
	struct loop *loop;
	char *address;
	char *ns;

	struct ttrpc_conn *conn;   /* NULL when not connected */
	size_t n_conns;            /* conns whose on_close has not run yet */
	bool in_flight;            /* the head event's Forward awaits its reply */
	struct ttrpc_stream *call; /* that call, to abandon it; NULL if it failed at once */
	bool freeing;              /* in publisher_free: a late reply changes nothing */
	struct loop_timer *retry;  /* armed while the head event backs off */

	struct pub_event *head, *tail;
	size_t n_queued;
	size_t n_dropped;
	char *last_error;
};

static void kick(struct publisher *p);

static void event_free(struct pub_event *e)
{
	if (e == NULL)
		return;
	free(e->topic);
	free(e->req);
	free(e);
}

static struct pub_event *pop_head(struct publisher *p)
{
	struct pub_event *e = p->head;

	if (e == NULL)
		return NULL;
	p->head = e->next;
	if (p->head == NULL)
		p->tail = NULL;
	p->n_queued--;
	return e;
}

static void set_last_error(struct publisher *p, const char *msg)
{
	free(p->last_error);
	p->last_error = xstrdup(msg);
}

static void on_conn_close(struct ttrpc_conn *c, void *data)
{
	struct publisher *p = data;

	/* Peer hang-up or protocol error: the next send reconnects. */
	if (p->conn == c)
		p->conn = NULL;
	p->n_conns--;
}

static void drop_conn(struct publisher *p)
{
	if (p->conn == NULL)
		return;
	ttrpc_conn_close(p->conn); /* a no-op if ttrpc already closed it */
	p->conn = NULL;
}

static int connect_unix(const char *path, runm_error_t *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return runm_error_make(err, ENAMETOOLONG, "events socket %s", path);
	strcpy(sa.sun_path, path);
	/* Non-blocking: connect(2) on a unix stream socket completes at once or
	 * fails at once (EAGAIN when the listener's backlog is full), so the loop
	 * never waits here; every failure is retried later from a timer. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return runm_error_make(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return runm_error_make(err, errno, "connect %s", path);
	return steal_fd(&fd);
}

static void on_retry(struct loop *loop, void *data)
{
	struct publisher *p = data;
	(void)loop;

	p->retry = NULL; /* fired: the loop frees it */
	kick(p);
}

/* The head event failed once (msg says why): back off, or drop it after
 * MAX_ATTEMPTS so one undeliverable event cannot hold back the rest. */
static void head_failed(struct publisher *p, const char *msg)
{
	struct pub_event *e = p->head;

	set_last_error(p, msg);
	if (++e->attempts >= MAX_ATTEMPTS) {
		log_error("events: dropping %s after %u attempts: %s", e->topic, e->attempts, msg);
		event_free(pop_head(p));
		p->n_dropped++;
		/* Go on from a timer rather than now: we may be in a deferred call
		 * (a closed connection's replies), after which loop_run_once would
		 * sleep in epoll_wait although the queue changed; a timer wakes it,
		 * so a caller waiting for publisher_pending() to drop sees it. */
		p->retry = loop_timer_add(p->loop, 0, on_retry, p);
		return;
	}
	log_warn("events: forwarding %s (attempt %u): %s", e->topic, e->attempts, msg);
	p->retry = loop_timer_add(p->loop, (uint64_t)RETRY_BASE_MS << (e->attempts - 1), on_retry, p);
}

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct publisher *p = data;
	char buf[512];
	(void)payload;
	(void)len;

	p->in_flight = false;
	p->call = NULL;
	if (p->freeing)
		return;
	if (code == TTRPC_OK) {
		log_debug("events: forwarded %s", p->head->topic);
		event_free(pop_head(p));
		kick(p);
		return;
	}
	/* A dead or wedged connection is replaced; an error containerd answered
	 * on a healthy one (e.g. a bad namespace) keeps it. */
	if (code == TTRPC_UNAVAILABLE || code == TTRPC_DEADLINE_EXCEEDED)
		drop_conn(p);
	snprintf(buf, sizeof(buf), "Forward: %s (code %d)", msg && *msg ? msg : "failed", code);
	head_failed(p, buf);
}

/* Send the head event unless one is in flight or backing off. */
static void kick(struct publisher *p)
{
	cleanup_error runm_error_t err = NULL;

	if (p->head == NULL || p->in_flight || p->retry || p->freeing)
		return;
	if (p->conn == NULL) {
		int fd = connect_unix(p->address, &err);
		if (fd < 0) {
			head_failed(p, runm_error_msg(err));
			return;
		}
		p->conn = ttrpc_conn_new(p->loop, fd, NULL, on_conn_close, p);
		p->n_conns++;
		ttrpc_conn_set_metadata(p->conn, NS_METADATA_KEY, p->ns);
	}
	/* call is NULL when the conn is already closed; on_reply still runs
	 * (UNAVAILABLE, deferred) and reconnects. */
	p->in_flight = true;
	p->call = ttrpc_call_raw(p->conn, EVENTS_SERVICE, EVENTS_FORWARD, p->head->req, p->head->len,
				 CALL_TIMEOUT_MS, 0, on_reply, p);
}

int publisher_new(struct loop *loop, const char *address, const char *ns, struct publisher **out, runm_error_t *err)
{
	struct publisher *p;

	if (address == NULL || *address == '\0')
		return runm_error_make(err, EINVAL, "events: no ttrpc address");
	if (ns == NULL || *ns == '\0')
		return runm_error_make(err, EINVAL, "events: no namespace");
	p = xzalloc(sizeof(*p));
	p->loop = loop;
	p->address = xstrdup(address);
	p->ns = xstrdup(ns);
	*out = p;
	return 0;
}

void publisher_publish(struct publisher *p, const char *topic, const char *type_url, const ProtobufCMessage *msg)
{
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest req =
		CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
	Containerd__Services__Events__Ttrpc__V1__Envelope env = CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	cleanup_free uint8_t *value = NULL;
	uint64_t now = now_real_ns();
	struct pub_event *e;

	if (p->n_queued >= MAX_QUEUED) {
		log_error("events: queue full (%u events), dropping %s", MAX_QUEUED, topic);
		p->n_dropped++;
		return;
	}
	any.type_url = (char *)type_url;
	any.value.len = protobuf_c_message_get_packed_size(msg);
	value = xmalloc(any.value.len ? any.value.len : 1);
	protobuf_c_message_pack(msg, value);
	any.value.data = value;
	/* Stamped now, not when sent: a retried event keeps the time it happened. */
	ts.seconds = (int64_t)(now / 1000000000u);
	ts.nanos = (int32_t)(now % 1000000000u);
	env.timestamp = &ts;
	env.namespace_ = p->ns;
	env.topic = (char *)topic;
	env.event = &any;
	req.envelope = &env;

	e = xzalloc(sizeof(*e));
	e->topic = xstrdup(topic);
	e->len = protobuf_c_message_get_packed_size(&req.base);
	e->req = xmalloc(e->len ? e->len : 1);
	protobuf_c_message_pack(&req.base, e->req);
	if (p->tail)
		p->tail->next = e;
	else
		p->head = e;
	p->tail = e;
	p->n_queued++;
	kick(p);
}

size_t publisher_pending(const struct publisher *p)
{
	return p->n_queued;
}

size_t publisher_dropped(const struct publisher *p)
{
	return p->n_dropped;
}

const char *publisher_last_error(const struct publisher *p)
{
	return p->last_error;
}

void publisher_free(struct publisher *p, unsigned timeout_ms)
{
	uint64_t deadline;

	if (p == NULL)
		return;
	deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	while (p->head) {
		uint64_t now = now_mono_ns();
		if (now >= deadline)
			break;
		if (loop_run_once(p->loop, (int)((deadline - now + 999999u) / 1000000u)) < 0)
			break;
	}
	if (p->head)
		log_error("events: %zu event(s) not delivered (first: %s): %s", p->n_queued, p->head->topic,
			  p->last_error ? p->last_error : "not acknowledged in time");

	p->freeing = true;
	loop_timer_cancel(p->retry);
	p->retry = NULL;
	if (p->call) {
		ttrpc_call_abandon(p->call);
		p->call = NULL;
		p->in_flight = false;
	}
	drop_conn(p);
	/* The conns' on_close and the reply to a call that failed at once are
	 * deferred calls holding p: let them run before p goes. One iteration
	 * runs every deferred call queued so far; the bound is only a guard. */
	for (int i = 0; i < 16 && (p->n_conns || p->in_flight); i++)
		loop_run_once(p->loop, 0);
	if (p->n_conns || p->in_flight) {
		log_error("events: connection did not close; leaking the publisher");
		return;
	}
	while (p->head)
		event_free(pop_head(p));
	free(p->last_error);
	free(p->address);
	free(p->ns);
	free(p);
}

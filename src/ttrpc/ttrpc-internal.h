/* ttrpc-internal.h - what frame.c, conn.c, stream.c, server.c and client.c
 * share: the structures behind ttrpc.h's opaque types and the functions one
 * file calls in another. Not part of the public API. */
#ifndef RUNM_TTRPC_INTERNAL_H
#define RUNM_TTRPC_INTERNAL_H

#include "ttrpc.h"

#include <stdbool.h>

/* Streams of a connection, hashed by id; a power of two. */
#define TT_BUCKETS 256

struct tt_wbuf {
	struct tt_wbuf *next;
	uint8_t *data;
	size_t len, off;
};

struct tt_md {
	char *key;
	char *value;
};

struct ttrpc_stream {
	struct ttrpc_conn *conn; /* NULL once a server stream was cancelled */
	uint32_t id;
	bool client;
	bool in_table;
	struct ttrpc_stream *hnext, *hprev;

	/* client side */
	ttrpc_reply_fn reply_cb; /* NULL once abandoned */
	void *reply_data;
	struct loop_timer *timer;
	uint64_t timeout_ms; /* the call's deadline, said when it passes */
	int fail_code; /* set when the call failed locally; reported from the timer */
	const char *fail_msg;

	/* server side */
	void (*cancel_cb)(struct ttrpc_stream *, void *);
	void *cancel_data;
	struct tt_md *md;
	size_t n_md;

	ttrpc_data_fn data_cb;
	void *data_ud;
	void *user;
};

struct ttrpc_conn {
	struct loop *loop;
	int fd;
	struct loop_watch *watch;
	bool want_out; /* EPOLLOUT armed: queue non-empty, or a drain callback waits */
	bool closed;
	bool not_socket; /* write(2) instead of send(MSG_NOSIGNAL) */

	struct ttrpc_server *srv; /* NULL for client-only, or once the server is freed */
	struct ttrpc_conn *srv_prev, *srv_next;
	void (*on_close)(struct ttrpc_conn *, void *);
	void *on_close_data;

	uint8_t *rbuf;
	size_t rlen, rcap;

	struct tt_wbuf *wq_head, *wq_tail;
	size_t queued;
	void (*drain_cb)(struct ttrpc_conn *, void *);
	void *drain_data;

	struct ttrpc_stream *table[TT_BUCKETS];
	size_t n_streams;
	uint32_t last_req_id;  /* highest request id served (server side) */
	uint32_t next_call_id; /* next id for our calls (client side) */

	struct tt_md *md; /* metadata sent with every call */
	size_t n_md;

	char *fail_reason;    /* why tt_conn_fail closed it: told to the calls it fails */
	size_t dropped_bytes; /* DATA for no open stream since a frame was last delivered */
};

struct ttrpc_server {
	struct loop *loop;
	const struct ttrpc_service **svcs;
	size_t n_svcs;
	int listen_fd;
	struct loop_watch *listen_watch;
	struct ttrpc_conn *conns; /* open and closing ones, until their on_close ran */
	size_t n_open;
	void (*on_conn_closed)(struct ttrpc_server *, void *);
	void *on_conn_closed_data;
};

/* frame.c: a frame holding msg packed after its header, *total = header +
 * payload; NULL if the payload would exceed TTRPC_MAX_PAYLOAD. */
uint8_t *tt_frame_pack(const ProtobufCMessage *msg, uint32_t id, uint8_t type, uint8_t flags, size_t *total);
/* frame.c: a frame with room for len payload bytes after a filled header. */
uint8_t *tt_frame_alloc(size_t len, uint32_t id, uint8_t type, uint8_t flags);

/* conn.c */
void tt_conn_queue(struct ttrpc_conn *c, uint8_t *buf, size_t len); /* takes buf */
void tt_conn_fail(struct ttrpc_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* stream.c */
struct ttrpc_stream *tt_stream_new(struct ttrpc_conn *c, uint32_t id, bool client);
void tt_stream_add(struct ttrpc_conn *c, struct ttrpc_stream *s);
struct ttrpc_stream *tt_stream_find(struct ttrpc_conn *c, uint32_t id);
void tt_stream_remove(struct ttrpc_stream *s);
struct ttrpc_stream *tt_stream_pop_any(struct ttrpc_conn *c);
void tt_stream_free(struct ttrpc_stream *s);

/* server.c */
void tt_server_request(struct ttrpc_conn *c, uint32_t id, const uint8_t *payload, size_t len);
void tt_server_add_conn(struct ttrpc_server *srv, struct ttrpc_conn *c);
/* Called once the conn's on_close ran: unlink and tell the server's user. */
void tt_server_conn_gone(struct ttrpc_server *srv, struct ttrpc_conn *c);

/* client.c */
void tt_client_response(struct ttrpc_stream *s, const uint8_t *payload, size_t len);
/* Fail a call (code, msg) now: unlink, run reply_cb unless abandoned, free. */
void tt_client_finish(struct ttrpc_stream *s, int code, const char *msg);

#endif

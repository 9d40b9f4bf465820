/* ttrpc.h - containerd's ttrpc protocol in C: framing, server, client and
 * data streams over any connected byte stream (unix socket, virtio-serial,
 * vsock), driven by runm's event loop (src/common/loop.h).
 *
 * Wire: 10-byte header (u32 BE payload length, u32 BE stream id, u8 type,
 * u8 flags) then the payload, at most TTRPC_MAX_PAYLOAD bytes. Requests and
 * responses carry ttrpc.Request / ttrpc.Response (proto/ttrpc.proto); errors
 * are google.rpc.Status with gRPC codes.
 *
 * One model for both ends: every call in flight is a `struct ttrpc_stream`.
 *  - server side: a handler gets the stream of an incoming request and must
 *    answer it exactly once with ttrpc_reply*(), now or later (a parked Wait);
 *    the stream is freed by that reply. If the connection dies first, the
 *    stream's cancel callback runs and the later reply is only a free.
 *  - client side: ttrpc_call*() returns the stream; the reply callback runs
 *    exactly once (response, timeout => DEADLINE_EXCEEDED, connection closed
 *    => UNAVAILABLE), then the stream is freed.
 *  - either side may send DATA frames on an open stream (ttrpc >= 1.2 type 3)
 *    and receive them through ttrpc_stream_on_data(); runm's agent protocol
 *    carries process stdio this way. Back-pressure is the user's job, helped
 *    by ttrpc_conn_queued() and the drain callback.
 * Malformed input (bad type, oversized length, undecodable envelope, even
 * client stream id) closes the connection with a log line. */
#ifndef RUNM_TTRPC_H
#define RUNM_TTRPC_H

#include "common/error.h"
#include "common/loop.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#define TTRPC_HEADER_LEN 10
#define TTRPC_MAX_PAYLOAD (4u << 20)

enum ttrpc_type { TTRPC_REQUEST = 1, TTRPC_RESPONSE = 2, TTRPC_DATA = 3 };
enum ttrpc_flags { TTRPC_FLAG_REMOTE_CLOSED = 0x1, TTRPC_FLAG_REMOTE_OPEN = 0x2, TTRPC_FLAG_NO_DATA = 0x4 };

/* gRPC status codes (google.rpc.Code). */
enum ttrpc_code {
	TTRPC_OK = 0,
	TTRPC_CANCELLED = 1,
	TTRPC_UNKNOWN = 2,
	TTRPC_INVALID_ARGUMENT = 3,
	TTRPC_DEADLINE_EXCEEDED = 4,
	TTRPC_NOT_FOUND = 5,
	TTRPC_ALREADY_EXISTS = 6,
	TTRPC_PERMISSION_DENIED = 7,
	TTRPC_RESOURCE_EXHAUSTED = 8,
	TTRPC_FAILED_PRECONDITION = 9,
	TTRPC_ABORTED = 10,
	TTRPC_OUT_OF_RANGE = 11,
	TTRPC_UNIMPLEMENTED = 12,
	TTRPC_INTERNAL = 13,
	TTRPC_UNAVAILABLE = 14,
};

struct ttrpc_header {
	uint32_t length;
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
};

/* Pure framing (no I/O), for the connection code, tests and the fuzzer. */
void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_LEN]);
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN], struct ttrpc_header *h);

struct ttrpc_server;
struct ttrpc_conn;
struct ttrpc_stream;

/* A method handler: payload is the request's payload bytes (valid only during
 * the call); ctx is the service's ctx. */
typedef void (*ttrpc_handler_fn)(struct ttrpc_stream *s, const uint8_t *payload, size_t len, void *ctx);

struct ttrpc_method {
	const char *name; /* "Create" */
	ttrpc_handler_fn handler;
};

struct ttrpc_service {
	const char *name; /* "containerd.task.v2.Task" */
	const struct ttrpc_method *methods;
	size_t n_methods;
	void *ctx;
};

/* ---- server ---- */
struct ttrpc_server *ttrpc_server_new(struct loop *loop);
/* svc (and its methods) must outlive the server. Unknown service or method
 * is answered UNIMPLEMENTED. */
void ttrpc_server_register(struct ttrpc_server *srv, const struct ttrpc_service *svc);
/* Accept connections on a listening socket (the server takes ownership of
 * listen_fd). Peers with another uid than ours (SO_PEERCRED) are refused. */
int ttrpc_server_listen(struct ttrpc_server *srv, int listen_fd, runm_error_t *err);
/* Serve requests arriving on an already connected fd (e.g. the guest's
 * virtio-serial port). Takes ownership of fd. */
struct ttrpc_conn *ttrpc_server_serve_fd(struct ttrpc_server *srv, int fd);
/* Number of open server connections. */
size_t ttrpc_server_conn_count(const struct ttrpc_server *srv);
/* Called when any server connection closes (after its streams were cancelled). */
void ttrpc_server_on_conn_closed(struct ttrpc_server *srv, void (*cb)(struct ttrpc_server *, void *), void *data);
/* Close the listener and every connection. */
void ttrpc_server_free(struct ttrpc_server *srv);

/* ---- connections ---- */
/* A connection over fd (ownership taken). srv may be NULL for a client-only
 * connection; with srv it also serves incoming requests. on_close runs once,
 * from a deferred call, when the peer hangs up, on a protocol error, or after
 * ttrpc_conn_close(). */
struct ttrpc_conn *ttrpc_conn_new(struct loop *loop, int fd, struct ttrpc_server *srv,
				  void (*on_close)(struct ttrpc_conn *, void *), void *data);
/* Close now: client calls in flight get UNAVAILABLE, server streams are
 * cancelled, the fd is closed. The conn is freed after on_close returns. */
void ttrpc_conn_close(struct ttrpc_conn *c);
/* Bytes queued for writing and not yet written to the fd. */
size_t ttrpc_conn_queued(const struct ttrpc_conn *c);
/* Call cb once the write queue is empty again (replaces any earlier one). */
void ttrpc_conn_on_drain(struct ttrpc_conn *c, void (*cb)(struct ttrpc_conn *, void *), void *data);

/* ---- client calls ---- */
typedef void (*ttrpc_reply_fn)(void *data, int code, const char *msg, const uint8_t *payload, size_t len);

/* Send a request; reply_cb runs exactly once, later (never from inside this
 * call). timeout_ms 0 = no deadline. flags: 0 for unary, TTRPC_FLAG_REMOTE_OPEN
 * to keep the stream open for DATA frames from us. Returns NULL only if the
 * connection is already closed (reply_cb still runs, deferred, UNAVAILABLE). */
struct ttrpc_stream *ttrpc_call(struct ttrpc_conn *c, const char *service, const char *method,
				const ProtobufCMessage *req, uint64_t timeout_ms, uint8_t flags,
				ttrpc_reply_fn reply_cb, void *data);
struct ttrpc_stream *ttrpc_call_raw(struct ttrpc_conn *c, const char *service, const char *method,
				    const uint8_t *payload, size_t len, uint64_t timeout_ms, uint8_t flags,
				    ttrpc_reply_fn reply_cb, void *data);
/* Add a metadata pair to the next ttrpc_call on c (containerd-namespace-ttrpc). */
void ttrpc_conn_set_metadata(struct ttrpc_conn *c, const char *key, const char *value);
/* The caller no longer wants the reply: reply_cb will not run; the stream is
 * freed when the response arrives or the connection closes. */
void ttrpc_call_abandon(struct ttrpc_stream *s);

/* ---- server-side replies ---- */
/* msg NULL = empty payload (google.protobuf.Empty). */
void ttrpc_reply(struct ttrpc_stream *s, const ProtobufCMessage *msg);
void ttrpc_reply_raw(struct ttrpc_stream *s, const uint8_t *payload, size_t len);
void ttrpc_reply_error(struct ttrpc_stream *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Called if the connection closes before the stream is answered. */
void ttrpc_stream_on_cancel(struct ttrpc_stream *s, void (*cb)(struct ttrpc_stream *, void *), void *data);
/* A metadata value of the incoming request, or NULL. */
const char *ttrpc_stream_metadata(const struct ttrpc_stream *s, const char *key);

/* ---- data frames, both sides ---- */
typedef void (*ttrpc_data_fn)(struct ttrpc_stream *s, const uint8_t *data, size_t len, uint8_t flags, void *ud);
void ttrpc_stream_on_data(struct ttrpc_stream *s, ttrpc_data_fn cb, void *ud);
/* Queue a DATA frame (len <= TTRPC_MAX_PAYLOAD). Returns 0, or -1 if the
 * stream's connection is gone. */
int ttrpc_stream_send(struct ttrpc_stream *s, const void *data, size_t len, uint8_t flags);
/* The connection of a stream, NULL once it closed. */
struct ttrpc_conn *ttrpc_stream_conn(const struct ttrpc_stream *s);
/* User pointer attached to a stream (e.g. the process it belongs to). */
void ttrpc_stream_set_user(struct ttrpc_stream *s, void *user);
void *ttrpc_stream_user(const struct ttrpc_stream *s);

#endif

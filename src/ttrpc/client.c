/* client.c - calls: odd increasing stream ids, deadlines on loop timers,
 * responses matched by id, and failure of every call when the connection
 * goes. A reply callback never runs from inside ttrpc_call. */
#include "ttrpc-internal.h"

#include "common/log.h"
#include "common/util.h"
#include "ttrpc.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tt_client_finish(struct ttrpc_stream *s, int code, const char *msg)
{
	if (s->conn)
		tt_stream_remove(s);
	loop_timer_cancel(s->timer);
	s->timer = NULL;
	if (s->reply_cb)
		s->reply_cb(s->reply_data, code, msg, NULL, 0);
	tt_stream_free(s);
}

static void on_call_timer(struct loop *loop, void *data)
{
	struct ttrpc_stream *s = data;
	(void)loop;

	s->timer = NULL; /* fired: the loop frees it */
	if (s->fail_code)
		tt_client_finish(s, s->fail_code, s->fail_msg);
	else {
		/* How long was waited: "deadline exceeded" alone reads like a
		 * deadline of the caller's, not a peer that never answered. */
		char msg[80];
		if (s->timeout_ms % 1000 == 0)
			snprintf(msg, sizeof(msg), "ttrpc: deadline exceeded: no answer within %llu s",
				 (unsigned long long)(s->timeout_ms / 1000));
		else
			snprintf(msg, sizeof(msg), "ttrpc: deadline exceeded: no answer within %llu ms",
				 (unsigned long long)s->timeout_ms);
		tt_client_finish(s, TTRPC_DEADLINE_EXCEEDED, msg);
	}
}

void tt_client_response(struct ttrpc_stream *s, const uint8_t *payload, size_t len)
{
	struct ttrpc_conn *c = s->conn;
	Ttrpc__Response *resp = ttrpc__response__unpack(NULL, len, payload);
	int code = TTRPC_OK;
	const char *msg = "";

	if (resp == NULL) {
		/* Closing fails this call (and the others) with UNAVAILABLE. */
		tt_conn_fail(c, "undecodable response on stream %u", s->id);
		return;
	}
	tt_stream_remove(s);
	loop_timer_cancel(s->timer);
	s->timer = NULL;
	if (resp->status) {
		code = resp->status->code;
		msg = resp->status->message ? resp->status->message : "";
	}
	if (s->reply_cb) {
		if (code != TTRPC_OK)
			s->reply_cb(s->reply_data, code, msg, NULL, 0);
		else
			s->reply_cb(s->reply_data, code, msg, resp->payload.data, resp->payload.len);
	}
	tt_stream_free(s);
	ttrpc__response__free_unpacked(resp, NULL);
}

struct closed_call {
	ttrpc_reply_fn cb;
	void *data;
};

static void closed_call_reply(struct loop *loop, void *data)
{
	struct closed_call *cc = data;
	(void)loop;
	cc->cb(cc->data, TTRPC_UNAVAILABLE, "ttrpc: closed", NULL, 0);
	free(cc);
}

struct ttrpc_stream *ttrpc_call_raw(struct ttrpc_conn *c, const char *service, const char *method,
				    const uint8_t *payload, size_t len, uint64_t timeout_ms, uint8_t flags,
				    ttrpc_reply_fn reply_cb, void *data)
{
	Ttrpc__Request req = TTRPC__REQUEST__INIT;
	cleanup_free Ttrpc__KeyValue *kvs = NULL;
	cleanup_free Ttrpc__KeyValue **kvp = NULL;
	struct ttrpc_stream *s;
	size_t total = 0;
	uint8_t *buf;

	/* Ids are u32 and must keep increasing: the last odd one ends the conn. */
	if (!c->closed && c->next_call_id > UINT32_MAX - 2)
		tt_conn_fail(c, "stream ids exhausted");
	if (c->closed) {
		if (reply_cb) {
			struct closed_call *cc = xzalloc(sizeof(*cc));
			cc->cb = reply_cb;
			cc->data = data;
			loop_defer(c->loop, closed_call_reply, cc);
		}
		return NULL;
	}

	s = tt_stream_new(c, c->next_call_id, true);
	c->next_call_id += 2;
	s->reply_cb = reply_cb;
	s->reply_data = data;

	req.service = (char *)service;
	req.method = (char *)method;
	req.payload.data = (uint8_t *)payload;
	req.payload.len = len;
	if (timeout_ms)
		req.timeout_nano = (int64_t)(timeout_ms * 1000000u);
	if (c->n_md) {
		kvs = xzalloc(c->n_md * sizeof(*kvs));
		kvp = xzalloc(c->n_md * sizeof(*kvp));
		for (size_t i = 0; i < c->n_md; i++) {
			ttrpc__key_value__init(&kvs[i]);
			kvs[i].key = c->md[i].key;
			kvs[i].value = c->md[i].value;
			kvp[i] = &kvs[i];
		}
		req.n_metadata = c->n_md;
		req.metadata = kvp;
	}
	buf = tt_frame_pack(&req.base, s->id, TTRPC_REQUEST, flags, &total);
	tt_stream_add(c, s);
	if (buf == NULL) {
		/* Reported like a deadline, from a timer: never from inside this call. */
		s->fail_code = TTRPC_RESOURCE_EXHAUSTED;
		s->fail_msg = "ttrpc: request exceeds the maximum message size";
		s->timer = loop_timer_add(c->loop, 0, on_call_timer, s);
		return s;
	}
	s->timeout_ms = timeout_ms;
	if (timeout_ms)
		s->timer = loop_timer_add(c->loop, timeout_ms, on_call_timer, s);
	tt_conn_queue(c, buf, total);
	return s;
}

struct ttrpc_stream *ttrpc_call(struct ttrpc_conn *c, const char *service, const char *method,
				const ProtobufCMessage *req, uint64_t timeout_ms, uint8_t flags,
				ttrpc_reply_fn reply_cb, void *data)
{
	cleanup_free uint8_t *buf = NULL;
	size_t len = 0;

	if (req) {
		len = protobuf_c_message_get_packed_size(req);
		buf = xmalloc(len ? len : 1);
		protobuf_c_message_pack(req, buf);
	}
	return ttrpc_call_raw(c, service, method, buf, len, timeout_ms, flags, reply_cb, data);
}

void ttrpc_call_abandon(struct ttrpc_stream *s)
{
	/* Neither callback may run any more: the caller frees what they point at. */
	if (s) {
		s->reply_cb = NULL;
		s->data_cb = NULL;
		s->data_ud = NULL;
	}
}

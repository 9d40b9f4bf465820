/* session.c - see session.h. */
#include "cli/session.h"

#include "common/util.h"
#include "proto/pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void on_closed(struct ttrpc_conn *c, void *data)
{
	struct session *s = data;
	(void)c;
	s->closed = true;
	s->conn = NULL;
}

int session_open(const struct cli *cli, const char *id, struct session **out, runm_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/%s/" CLI_SOCKET, cli->root, id);
	struct session *s = xzalloc(sizeof(*s));
	int fd;

	if (loop_new(&s->loop, err) < 0) {
		free(s);
		return -1;
	}
	fd = unix_connect(path, err);
	if (fd < 0) {
		session_close(s);
		return runm_error_wrap(err, "container `%s` is not running", id);
	}
	s->conn = ttrpc_conn_new(s->loop, fd, NULL, on_closed, s);
	*out = s;
	return 0;
}

struct sync_reply {
	bool done;
	int code;
	char *msg;
	uint8_t *payload;
	size_t len;
};

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct sync_reply *r = data;
	r->done = true;
	r->code = code;
	r->msg = xstrdup(msg ? msg : "");
	r->payload = xmalloc(len + 1);
	if (len > 0)
		memcpy(r->payload, payload, len);
	r->len = len;
}

int session_call(struct session *s, const char *method, const ProtobufCMessage *req, uint64_t timeout_ms,
		 uint8_t **payload, size_t *len, runm_error_t *err)
{
	return session_call_service(s, AGENT_SERVICE, method, req, timeout_ms, payload, len, err);
}

int session_call_service(struct session *s, const char *service, const char *method, const ProtobufCMessage *req,
			 uint64_t timeout_ms, uint8_t **payload, size_t *len, runm_error_t *err)
{
	struct sync_reply r = { 0 };

	if (s->conn == NULL)
		return runm_error_make(err, 0, "%s: the container's monitor hung up", method);
	ttrpc_call(s->conn, service, method, req, timeout_ms, 0, on_reply, &r);
	while (!r.done)
		if (loop_run_once(s->loop, -1) < 0)
			return runm_error_make(err, errno, "%s: event loop failed", method);
	if (r.code != 0) {
		runm_error_make(err, 0, "%s", r.msg);
		free(r.msg);
		free(r.payload);
		return -1;
	}
	free(r.msg);
	if (payload) {
		*payload = r.payload;
		*len = r.len;
	} else {
		free(r.payload);
	}
	return 0;
}

void session_close(struct session *s)
{
	if (s == NULL)
		return;
	if (s->conn)
		ttrpc_conn_close(s->conn);
	loop_settle(s->loop);
	loop_free(s->loop);
	free(s);
}

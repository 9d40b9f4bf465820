/* proxy.c - the monitor's control socket: every agent call made on it is
 * forwarded to the guest's agent as is, DATA frames both ways included, so
 * `runm exec` gets the same stdio flow control end to end. Create, Ping and
 * Shutdown are the monitor's own business and are not forwarded. */
#include "cli/cli.h"

#include "common/log.h"
#include "common/util.h"
#include "engine/sandbox.h"
#include "proto/pb.h"
#include "ttrpc/ttrpc.h"

#include <stdlib.h>
#include <string.h>

struct pcall {
	struct ttrpc_stream *ss; /* from our client */
	struct ttrpc_stream *cs; /* to the agent */
};

/* The agent keeps to the stdio window, so this much queued for one client
 * means a guest that does not: its frames are dropped, not buffered. */
#define PROXY_MAX_QUEUED (8u << 20)

static void to_client(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct pcall *pc = ud;
	struct ttrpc_conn *c = ttrpc_stream_conn(pc->ss);
	(void)s;
	if (c == NULL)
		return;
	if (ttrpc_conn_queued(c) > PROXY_MAX_QUEUED) {
		log_warn("proxy: the guest overruns a slow client: %zu bytes dropped", len);
		return;
	}
	ttrpc_stream_send(pc->ss, d, len, flags);
}

static void to_guest(struct ttrpc_stream *s, const uint8_t *d, size_t len, uint8_t flags, void *ud)
{
	struct pcall *pc = ud;
	(void)s;
	if (pc->cs != NULL)
		ttrpc_stream_send(pc->cs, d, len, flags);
}

static void on_reply(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	struct pcall *pc = data;
	ttrpc_stream_on_cancel(pc->ss, NULL, NULL);
	if (code != 0)
		ttrpc_reply_error(pc->ss, code, "%s", msg ? msg : "");
	else
		ttrpc_reply_raw(pc->ss, payload, len);
	free(pc);
}

/* Our client went away: the agent's answer is no longer wanted. */
static void on_cancel(struct ttrpc_stream *s, void *data)
{
	struct pcall *pc = data;
	if (pc->cs != NULL)
		ttrpc_call_abandon(pc->cs);
	ttrpc_reply_error(s, TTRPC_CANCELLED, "cancelled");
	free(pc);
}

static void forward(struct ttrpc_stream *s, const char *method, const uint8_t *p, size_t len, void *ctx)
{
	struct sandbox *sb = ctx;
	struct ttrpc_conn *conn = sandbox_conn(sb);
	struct pcall *pc;
	/* Stdio carries DATA frames from the caller too. */
	uint8_t flags = strcmp(method, "Stdio") == 0 ? TTRPC_FLAG_REMOTE_OPEN : 0;

	if (conn == NULL) {
		ttrpc_reply_error(s, TTRPC_UNAVAILABLE, "the container's VM is gone");
		return;
	}
	pc = xzalloc(sizeof(*pc));
	pc->ss = s;
	pc->cs = ttrpc_call_raw(conn, AGENT_SERVICE, method, p, len, 0, flags, on_reply, pc);
	if (pc->cs == NULL) /* closed: on_reply comes, deferred, and answers */
		return;
	ttrpc_stream_on_data(pc->cs, to_client, pc);
	ttrpc_stream_on_data(s, to_guest, pc);
	ttrpc_stream_on_cancel(s, on_cancel, pc);
}

#define PROXY(name)                                                                                 \
	static void proxy_##name(struct ttrpc_stream *s, const uint8_t *p, size_t len, void *ctx) \
	{                                                                                           \
		forward(s, #name, p, len, ctx);                                                     \
	}
PROXY(Start)
PROXY(Exec)
PROXY(Signal)
PROXY(Wait)
PROXY(Resize)
PROXY(CloseStdin)
PROXY(Stdio)
PROXY(State)
PROXY(Pids)
PROXY(Stats)
PROXY(Delete)

static const struct ttrpc_method methods[] = {
	{ "Start", proxy_Start },   { "Exec", proxy_Exec },		{ "Signal", proxy_Signal },
	{ "Wait", proxy_Wait },	    { "Resize", proxy_Resize },	{ "CloseStdin", proxy_CloseStdin },
	{ "Stdio", proxy_Stdio },   { "State", proxy_State },		{ "Pids", proxy_Pids },
	{ "Stats", proxy_Stats },   { "Delete", proxy_Delete },
};

int cli_proxy_start(struct loop *loop, struct sandbox *sb, const char *dir, struct ttrpc_server **out,
		    runm_error_t *err)
{
	static struct ttrpc_service svc;
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	cleanup_free char *path = xasprintf("%s/" CLI_SOCKET, dir);

	svc = (struct ttrpc_service){ AGENT_SERVICE, methods, ARRAY_SIZE(methods), sb };
	ttrpc_server_register(srv, &svc);
	int lfd = unix_listen(path, err);

	if (lfd < 0 || ttrpc_server_listen(srv, lfd, err) < 0) {
		ttrpc_server_free(srv);
		return runm_error_wrap(err, "control socket");
	}
	*out = srv;
	return 0;
}

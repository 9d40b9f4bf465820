/* session.h - a connection to a container monitor's control socket with
 * its own event loop, for the short-lived commands (state, kill, exec). */
#ifndef RUNM_CLI_SESSION_H
#define RUNM_CLI_SESSION_H

#include "cli/cli.h"
#include "common/loop.h"
#include "ttrpc/ttrpc.h"

#include <protobuf-c/protobuf-c.h>

struct session {
	struct loop *loop;
	struct ttrpc_conn *conn;
	bool closed;
};

int session_open(const struct cli *cli, const char *id, struct session **out, runm_error_t *err);
/* Call an agent method and run the loop until it answers (timeout_ms 0 =
 * no deadline). The reply payload is malloc'd into *payload (may be NULL). */
int session_call(struct session *s, const char *method, const ProtobufCMessage *req, uint64_t timeout_ms,
		 uint8_t **payload, size_t *len, runm_error_t *err);
/* The same for another service of the control socket (CLI_MONITOR_SERVICE). */
int session_call_service(struct session *s, const char *service, const char *method, const ProtobufCMessage *req,
			 uint64_t timeout_ms, uint8_t **payload, size_t *len, runm_error_t *err);
void session_close(struct session *s);

#endif

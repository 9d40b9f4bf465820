/* service.h - the runm.agent.v1.Agent ttrpc service (proto/runm/agent.proto). */
#ifndef RUNM_AGENT_SERVICE_H
#define RUNM_AGENT_SERVICE_H

#include "common/loop.h"
#include "ttrpc/ttrpc.h"

void agent_service_register(struct ttrpc_server *srv, struct loop *loop);

#endif

/* pb.h - small protobuf-c helpers shared by host and guest: a cleanup
 * attribute for unpacked messages, and short names for runm's agent API. */
#ifndef RUNM_PROTO_PB_H
#define RUNM_PROTO_PB_H

#include <protobuf-c/protobuf-c.h>

static inline void pb_freep(void *p)
{
	ProtobufCMessage **m = p;
	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
	*m = NULL;
}
#define cleanup_pb __attribute__((cleanup(pb_freep)))

/* Unpack `payload` as `desc`'s message type; NULL if it does not decode. */
#define PB_UNPACK(type, desc, payload, len) ((type *)protobuf_c_message_unpack(&(desc), NULL, (len), (payload)))

#define AGENT_SERVICE "runm.agent.v1.Agent"

#endif

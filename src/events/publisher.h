/* publisher.h - task events to containerd: each event is wrapped in an Any
 * (type_url "containerd.events.TaskCreate" etc.) inside a ForwardRequest and
 * sent with containerd.services.events.ttrpc.v1.Events/Forward on containerd's
 * ttrpc socket (<address>.ttrpc, $TTRPC_ADDRESS). Events are queued in order
 * and sent one at a time; the connection is (re)made on demand, and a failed
 * send is retried a few times before the event is dropped with a log line, so
 * a restarting containerd does not wedge the shim. Nothing blocks: connects
 * are non-blocking and retries wait on loop timers. */
#ifndef RUNM_EVENTS_PUBLISHER_H
#define RUNM_EVENTS_PUBLISHER_H

#include "common/error.h"
#include "common/loop.h"

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

struct publisher;

/* address: path of containerd's ttrpc socket; ns: the containerd namespace
 * (sent as ttrpc metadata "containerd-namespace-ttrpc"). */
int publisher_new(struct loop *loop, const char *address, const char *ns, struct publisher **out, runm_error_t *err);

/* Queue one event, stamped with the current time. topic: "/tasks/exit" etc.;
 * msg: a containerd.events message (e.g. Containerd__Events__TaskExit),
 * packed now; type_url is the bare proto name ("containerd.events.TaskExit"):
 * containerd's typeurl registers no URL for its events and falls back to
 * gogo's proto registry, which knows only that form (checked with `ctr
 * events`; a "types.containerd.io/" prefix makes it fail to unmarshal). */
void publisher_publish(struct publisher *p, const char *topic, const char *type_url, const ProtobufCMessage *msg);

/* Events not yet acknowledged by containerd (queued or in flight). */
size_t publisher_pending(const struct publisher *p);

/* Events given up on so far (retries exhausted, or the queue was full). */
size_t publisher_dropped(const struct publisher *p);

/* Why the last send failed, or NULL if none has. Valid until the next call. */
const char *publisher_last_error(const struct publisher *p);

/* Try to flush for up to timeout_ms, then free; undelivered events are
 * dropped with a log line. NULL-safe. It runs the loop itself, so call it
 * from outside loop callbacks (e.g. after loop_run returned). */
void publisher_free(struct publisher *p, unsigned timeout_ms);

#endif

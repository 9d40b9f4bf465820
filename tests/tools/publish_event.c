/* publish_event ADDRESS NAMESPACE TOPIC - publish one TaskExit event through
 * src/events/publisher to containerd's ttrpc socket ADDRESS and wait (10 s at
 * most) until it is acknowledged. Exit 0 when it was, else print why and
 * exit 1. Used by tests/e2e/test_events.py. */
#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "events/publisher.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

#include <stdio.h>
#include <stdlib.h>

#define CONTAINER_ID "runm-evt-test"
#define DEADLINE_MS 10000u

static void loop_freep(struct loop **l)
{
	loop_free(*l);
}

int main(int argc, char **argv)
{
	Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	__attribute__((cleanup(loop_freep))) struct loop *loop = NULL;
	cleanup_error runm_error_t err = NULL;
	struct publisher *p = NULL;
	uint64_t now = now_real_ns(), deadline;
	int rc = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: %s ADDRESS NAMESPACE TOPIC\n", argv[0]);
		return 2;
	}
	log_init("publish_event", getenv("RUNM_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if (loop_new(&loop, &err) < 0 || publisher_new(loop, argv[1], argv[2], &p, &err) < 0) {
		fprintf(stderr, "publish_event: %s\n", runm_error_msg(err));
		return 1;
	}

	ts.seconds = (int64_t)(now / 1000000000u);
	ts.nanos = (int32_t)(now % 1000000000u);
	ev.container_id = CONTAINER_ID;
	ev.id = CONTAINER_ID; /* the init process has the container's id */
	ev.pid = 42;
	ev.exit_status = 7;
	ev.exited_at = &ts;
	publisher_publish(p, argv[3], "containerd.events.TaskExit", &ev.base);

	deadline = now_mono_ns() + DEADLINE_MS * 1000000ull;
	while (publisher_pending(p) > 0) {
		uint64_t t = now_mono_ns();
		if (t >= deadline)
			break;
		if (loop_run_once(loop, (int)((deadline - t + 999999u) / 1000000u)) < 0) {
			rc = -1;
			break;
		}
	}
	if (rc < 0 || publisher_pending(p) > 0 || publisher_dropped(p) > 0) {
		const char *why = publisher_last_error(p);
		fprintf(stderr, "publish_event: event %s not acknowledged: %s\n", argv[3],
			publisher_dropped(p) ? (why ? why : "dropped")
					     : (why ? why : "no answer within the deadline"));
		rc = 1;
	}
	publisher_free(p, 0);
	return rc;
}

/* call.c - agent calls in flight and request lookups of the Task service
 * (see task-internal.h). */
#include "task-internal.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>

struct call *call_new(struct container_table *t, struct container *c, struct process *p,
			     struct ttrpc_stream *s)
{
	struct call *k = xzalloc(sizeof(*k));
	k->table = t;
	k->cserial = c ? c->serial : 0;
	k->pserial = p ? p->serial : 0;
	k->s = s;
	return k;
}

bool call_resolve(struct call *k, struct container **c, struct process **p)
{
	*c = container_by_serial(k->table, k->cserial);
	*p = container_process_by_serial(*c, k->pserial);
	if (*c == NULL || *p == NULL) {
		if (k->s)
			ttrpc_reply_error(k->s, TTRPC_NOT_FOUND, "the container or process went away");
		k->s = NULL;
		return false;
	}
	return true;
}

int agent_code(int code)
{
	if (code == TTRPC_UNAVAILABLE || code == TTRPC_CANCELLED)
		return TTRPC_UNAVAILABLE;
	return code;
}

bool task_lookup(struct task_service *t, struct ttrpc_stream *s, const char *id, const char *exec_id,
		 struct container **c, struct process **p)
{
	*c = container_find(&t->table, id);
	if (*c == NULL) {
		ttrpc_reply_error(s, TTRPC_NOT_FOUND, "container %s: not found", id);
		return false;
	}
	if (p == NULL)
		return true;
	*p = (*c)->create_stream ? NULL : process_find((*c)->procs, exec_id);
	if (*p == NULL) {
		if (exec_id[0])
			ttrpc_reply_error(s, TTRPC_NOT_FOUND, "exec %s of container %s: not found", exec_id, id);
		else
			ttrpc_reply_error(s, TTRPC_NOT_FOUND, "container %s: not created yet", id);
		return false;
	}
	return true;
}

void on_agent_empty(void *data, int code, const char *msg, const uint8_t *payload, size_t len)
{
	cleanup_free struct call *k = data;
	(void)payload;
	(void)len;

	if (k->s == NULL) {
		if (code != TTRPC_OK)
			log_warn("agent call: %s", msg ? msg : "failed");
		return;
	}
	if (code != TTRPC_OK)
		ttrpc_reply_error(k->s, agent_code(code), "%s", msg ? msg : "agent call failed");
	else
		ttrpc_reply(k->s, NULL);
}

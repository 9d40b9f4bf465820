/* create.c - build the agent's CreateRequest from a spec (see create.h). */
#include "engine/create.h"

#include "common/util.h"
#include "engine/stage.h"
#include "proto/pb.h"
#include "runm/agent.pb-c.h"

#include <stdlib.h>
#include <string.h>

struct ttrpc_stream *engine_create(struct sandbox *sb, const char *id, const struct spec *sp, bool in, bool out,
				   bool err, ttrpc_reply_fn cb, void *data)
{
	Runm__Agent__V1__CreateRequest req = RUNM__AGENT__V1__CREATE_REQUEST__INIT;
	cleanup_free Runm__Agent__V1__Mount *mounts = xzalloc((sp->n_shares + 1) * sizeof(*mounts));
	cleanup_free Runm__Agent__V1__Mount **mptrs = xzalloc((sp->n_shares + 1) * sizeof(*mptrs));
	cleanup_strv char **paths = NULL; /* what the request points at */
	cleanup_free char *rootfs = xasprintf("%s/" STAGE_ROOTFS, id);
	cleanup_error runm_error_t e = NULL;

	/* Late binding: the VM is up; what this container needs joins its
	 * share now, and leaves it when the sandbox goes. */
	if (sandbox_bind_container(sb, id, sp, &e) < 0) {
		sandbox_reply_later(sb, cb, data, TTRPC_INTERNAL, runm_error_msg(e));
		return NULL;
	}
	req.id = (char *)id;
	req.config_json.data = (uint8_t *)sp->guest_json;
	req.config_json.len = strlen(sp->guest_json);
	req.rootfs_path = rootfs;
	for (size_t i = 0; i < sp->n_shares; i++) {
		runm__agent__v1__mount__init(&mounts[i]);
		cleanup_free char *path = xasprintf("%s/%s", id, sp->shares[i].tag); /* stage.h's layout */
		strv_push(&paths, path);
		mounts[i].path = paths[i]; /* the copy: stable while paths grows */
		mounts[i].destination = sp->shares[i].guest_path;
		mounts[i].readonly = sp->shares[i].readonly;
		mptrs[i] = &mounts[i];
	}
	req.n_mounts = sp->n_shares;
	req.mounts = mptrs;
	req.terminal = sp->terminal;
	req.stdin = in;
	req.stdout = out;
	req.stderr = err && !sp->terminal;
	/* The guest runs crun create, which may take a while under emulation. */
	return sandbox_call(sb, "Create", &req.base, 120000, 0, cb, data);
}

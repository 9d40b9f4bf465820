/* create.c - build the agent's CreateRequest from a spec (see create.h). */
#include "engine/create.h"

#include "common/util.h"
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

	req.id = (char *)id;
	req.config_json.data = (uint8_t *)sp->guest_json;
	req.config_json.len = strlen(sp->guest_json);
	req.rootfs_tag = (char *)SANDBOX_ROOTFS_TAG;
	for (size_t i = 0; i < sp->n_shares; i++) {
		runm__agent__v1__mount__init(&mounts[i]);
		mounts[i].tag = sp->shares[i].tag;
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

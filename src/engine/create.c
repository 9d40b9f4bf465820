/* create.c - build the agent's CreateRequest from a spec (see create.h). */
#include "engine/create.h"

#include "common/log.h"
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
	cleanup_free Runm__Agent__V1__SocketMount *socks = xzalloc((sp->n_sockets + 1) * sizeof(*socks));
	cleanup_free Runm__Agent__V1__SocketMount **sptrs = xzalloc((sp->n_sockets + 1) * sizeof(*sptrs));
	struct ttrpc_stream *s;
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
	for (size_t i = 0; i < sp->n_sockets; i++) {
		runm__agent__v1__socket_mount__init(&socks[i]);
		socks[i].uid = sp->sockets[i].uid;
		socks[i].gid = sp->sockets[i].gid;
		socks[i].mode = sp->sockets[i].mode;
		sptrs[i] = &socks[i];
	}
	req.n_sockets = sp->n_sockets;
	req.sockets = sptrs;
	req.terminal = sp->terminal;
	req.stdin = in;
	req.stdout = out;
	req.stderr = err && !sp->terminal;
	/* The guest runs crun create, which may take a while under emulation. */
	s = sandbox_call(sb, "Create", &req.base, 120000, 0, cb, data);
	/* Right behind it: the agent serves requests in order, so the calls
	 * find the container's listeners (or, if Create failed, end at once). */
	if (s != NULL && sandbox_proxy_sockets(sb, id, sp, &e) < 0)
		log_warn("%s", runm_error_msg(e));
	return s;
}

/* hooks.h - the OCI hooks of a bundle's config.json, run on the host at
 * runc's phases (prestart and createRuntime in create, poststart in start,
 * poststop in delete), in the caller's (host) namespaces, with runc's state
 * JSON on stdin and argv exactly as given: Docker's libnetwork-setkey
 * dispatches on argv[0] and reads the pid from that JSON. createContainer
 * and startContainer belong in the container's mount namespace, which is in
 * the guest: they are skipped with a warning, as gVisor does. */
#ifndef RUNM_ENGINE_HOOKS_H
#define RUNM_ENGINE_HOOKS_H

#include "common/error.h"

#include <stddef.h>
#include <sys/types.h>

enum hook_phase { HOOK_PRESTART, HOOK_CREATE_RUNTIME, HOOK_POSTSTART, HOOK_POSTSTOP };

/* Default per-hook deadline when the hook sets no timeout. */
#define HOOK_DEFAULT_TIMEOUT_S 60

/* runc's state JSON for hooks: {ociVersion,id,status,pid,bundle,annotations}
 * (annotations copied from config.json). malloc'd. */
char *hooks_state_json(const char *bundle, const char *id, const char *status, pid_t pid);

struct hook {
	char *path;
	char **args; /* argv exactly as given (the path alone when none) */
	char **env;  /* the whole environment (empty when none) */
	int timeout_s;
};

struct hook_list {
	struct hook *hooks;
	size_t n;
};

/* The hooks of `phase` in an OCI config's JSON text (untrusted input: every
 * field type-checked, errors name it). None is an empty list. */
int hooks_parse(const char *config_json, enum hook_phase phase, struct hook_list *out, runm_error_t *err);
void hooks_release(struct hook_list *l);

/* Run the hooks of `phase` from <bundle>/config.json in order, each with
 * state_json on stdin; the first that fails (non-zero exit, signal, over its
 * timeout, or not executable) fails the call with its output in the error.
 * A bundle without hooks is 0. A config.json that cannot be read is an error. */
int hooks_run(const char *bundle, enum hook_phase phase, const char *state_json, runm_error_t *err);

#endif

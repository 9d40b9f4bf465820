/* options.c - see options.h. */
#include "shim/options.h"

#include "common/log.h"
#include "proto/pb.h"
#include "runm/options.pb-c.h"

#include <string.h>

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

int shim_task_config(const Google__Protobuf__Any *options, struct runm_config *out, runm_error_t *err)
{
	cleanup_pb Runm__Options__V1__RuntimeOptions *ro = NULL;

	if (options == NULL || options->type_url == NULL || options->type_url[0] == '\0')
		return config_load(RUNM_CONFIG_DEFAULT, true, out, err);
	if (!ends_with(options->type_url, "runtimeoptions.v1.Options")) {
		/* Another runtime's options (runc's, from a shared CRI config): not ours. */
		log_debug("ignoring runtime options of type %s", options->type_url);
		return config_load(RUNM_CONFIG_DEFAULT, true, out, err);
	}
	ro = PB_UNPACK(Runm__Options__V1__RuntimeOptions, runm__options__v1__runtime_options__descriptor,
		       options->value.data, options->value.len);
	if (ro == NULL)
		return runm_error_make(err, 0, "runtime options (%s) do not decode", options->type_url);
	if (ro->config_path[0] == '\0')
		return config_load(RUNM_CONFIG_DEFAULT, true, out, err);
	/* Named explicitly: it must exist. */
	return config_load(ro->config_path, false, out, err);
}

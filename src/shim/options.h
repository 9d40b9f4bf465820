/* options.h - the runm config a task runs with: the file containerd names
 * in the task's runtime options (runtimeoptions.v1.Options.config_path:
 * `ctr run --runtime-config-path`, CRI's ConfigPath), else
 * RUNM_CONFIG_DEFAULT when it exists, else built-in defaults. */
#ifndef RUNM_SHIM_OPTIONS_H
#define RUNM_SHIM_OPTIONS_H

#include "common/error.h"
#include "engine/config.h"
#include "google/protobuf/any.pb-c.h"

int shim_task_config(const Google__Protobuf__Any *options, struct runm_config *out, runm_error_t *err);

#endif

/* fuzz_config.c - runm's config file parser (src/engine/config.c) on any
 * bytes: 0 or -1 with an error, never a crash or a leak. */
#include "engine/config.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct runm_config c;
	runm_error_t err = NULL;
	if (config_parse((const char *)data, size, "fuzz", &c, &err) == 0)
		config_release(&c);
	runm_error_release(&err);
	return 0;
}

/* fuzz_runc.c - what runm's runc-compatible create reads from a caller's
 * config.json beyond the spec: the OCI hooks of every phase (engine/hooks.c)
 * and the entrypoint check (engine/entry.c, against an empty rootfs). Any
 * bytes: 0 or -1 with an error, never a crash or a leak. */
#include "engine/entry.h"
#include "engine/hooks.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char rootfs[] = "/tmp/runm-fuzz-rootfs-XXXXXX";

static void remove_rootfs(void)
{
	rmdir(rootfs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int made;
	char *json = malloc(size + 1);
	runm_error_t err = NULL;

	if (!made && mkdtemp(rootfs) != NULL) {
		made = 1;
		atexit(remove_rootfs);
	}
	memcpy(json, data, size);
	json[size] = '\0';
	for (int p = HOOK_PRESTART; p <= HOOK_POSTSTOP; p++) {
		struct hook_list l;
		if (hooks_parse(json, (enum hook_phase)p, &l, &err) == 0)
			hooks_release(&l);
		runm_error_release(&err);
	}
	entry_check(rootfs, json, &err);
	runm_error_release(&err);
	free(json);
	return 0;
}

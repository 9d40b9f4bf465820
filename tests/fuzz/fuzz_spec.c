/* fuzz_spec - spec_prepare (src/engine/spec.h) on the bytes as a bundle's
 * config.json (bundle "/tmp"): it must return 0 with a guest config, or -1
 * with an error message, and leak nothing either way. */
#include "common/error.h"
#include "engine/spec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

/* The Makefile builds fuzzers without -fno-sanitize-recover: make UBSan
 * findings crashes, or libFuzzer would report them and carry on. */
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	runm_error_t err = NULL;
	struct spec s;
	int r = spec_prepare("fuzz", "/tmp", (const char *)data, size, &s, &err);

	if (r == 0) {
		if (err != NULL || s.guest_json == NULL || s.rootfs == NULL)
			abort();
		for (size_t i = 0; i < s.n_shares; i++)
			if (s.shares[i].host_path[0] != '/' || s.shares[i].tag == NULL)
				abort();
		/* A pod's container: the rewrite keeps the guest's config valid. */
		if (s.pod_sandbox && (s.pod_sandbox[0] == '\0' || strchr(s.pod_sandbox, '/')))
			abort();
		if (spec_join_pod(&s, 42, &err) < 0 || s.guest_json == NULL)
			abort();
		spec_release(&s);
	} else {
		if (r != -1 || err == NULL || runm_error_msg(err)[0] == '\0')
			abort();
		/* On failure nothing is left for the caller to free. */
		if (s.guest_json || s.rootfs || s.shares || s.n_shares)
			abort();
		runm_error_release(&err);
	}
	return 0;
}

/* paths.c - see paths.h. */
#include "paths.h"
#include "sha256.h"
#include "common/util.h"

#include <string.h>

char *paths_socket(const char *address, const char *ns, const char *id)
{
	/* containerd hashes filepath.Join(address, ns, id): drop a trailing slash. */
	size_t alen = strlen(address);
	char hex[SHA256_HEX_LEN + 1];
	cleanup_free char *joined = NULL;

	while (alen > 1 && address[alen - 1] == '/')
		alen--;
	joined = xasprintf("%.*s/%s/%s", (int)alen, address, ns, id);
	sha256_hex(joined, strlen(joined), hex);
	return xasprintf(PATHS_SOCKET_DIR "/%s", hex);
}

char *paths_state_dir(const char *bundle)
{
	char hex[SHA256_HEX_LEN + 1];

	sha256_hex(bundle, strlen(bundle), hex);
	return xasprintf(PATHS_STATE_ROOT "/%.20s", hex);
}

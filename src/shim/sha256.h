/* sha256.h - SHA-256 (FIPS 180-4), for the shim's socket name: containerd
 * derives it from sha256(address/namespace/id) and so must we. */
#ifndef RUNM_SHIM_SHA256_H
#define RUNM_SHIM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_HEX_LEN 64

/* hex: 64 lowercase hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1]);

#endif

/* fuzz_sockproxy - sock_frame_parse (src/proto/sockproxy.h) on a DATA
 * payload of a SocketProxy stream, as the host gets it from the guest (and
 * the agent from the host): it must accept exactly the well-formed frames,
 * never read past the buffer, and agree with the encoder on what it accepts. */
#include "proto/sockproxy.h"

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
	struct sock_frame f;
	uint8_t enc[5];

	if (sock_frame_parse(data, size, &f) < 0)
		return 0;
	switch (f.kind) {
	case SOCK_DATA:
		/* The bytes point inside the frame, after the kind byte. */
		if (f.data != data + 1 || f.len != size - 1 || f.len == 0 || f.len > SOCK_CHUNK)
			abort();
		break;
	case SOCK_ACK:
	case SOCK_CONNECTED:
	case SOCK_EOF:
	case SOCK_CLOSE:
		if (f.data != NULL || f.len != 0 || sock_encode(enc, f.kind, f.ack) != size ||
		    memcmp(enc, data, size) != 0)
			abort();
		break;
	default:
		abort(); /* accepted an unknown kind */
	}
	return 0;
}

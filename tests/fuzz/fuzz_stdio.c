/* fuzz_stdio - stdio_frame_parse (src/proto/stdio.h) on a DATA payload from
 * the peer: it must accept exactly the well-formed frames, never read past
 * the buffer, and agree with the encoders on what it accepts. */
#include "proto/stdio.h"

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
	struct stdio_frame f;
	uint8_t enc[5];

	if (stdio_frame_parse(data, size, &f) < 0)
		return 0;
	switch (f.kind) {
	case STDIO_STDIN:
	case STDIO_STDOUT:
	case STDIO_STDERR:
		/* The bytes point inside the frame, after the kind byte. */
		if (f.data != data + 1 || f.len != size - 1 || f.len == 0 || f.len > STDIO_CHUNK)
			abort();
		break;
	case STDIO_ACK:
		if (stdio_encode_ack(enc, f.ack) != size || memcmp(enc, data, size) != 0)
			abort();
		break;
	case STDIO_EOF:
		if (f.fd < 0 || f.fd > 2 || stdio_encode_eof(enc, f.fd) != size || memcmp(enc, data, size) != 0)
			abort();
		break;
	default:
		abort(); /* accepted an unknown kind */
	}
	return 0;
}

/* stdio.c - see stdio.h. */
#include "stdio.h"

int stdio_frame_parse(const uint8_t *buf, size_t len, struct stdio_frame *out)
{
	if (len < 1)
		return -1;
	out->kind = (enum stdio_kind)buf[0];
	out->data = NULL;
	out->len = 0;
	switch (buf[0]) {
	case STDIO_STDIN:
	case STDIO_STDOUT:
	case STDIO_STDERR:
		if (len < 2 || len - 1 > STDIO_CHUNK)
			return -1;
		out->data = buf + 1;
		out->len = len - 1;
		return 0;
	case STDIO_ACK:
		if (len != 5)
			return -1;
		out->ack = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
		return 0;
	case STDIO_EOF:
		if (len != 2 || buf[1] > 2)
			return -1;
		out->fd = buf[1];
		return 0;
	default:
		return -1;
	}
}

size_t stdio_encode_ack(uint8_t out[5], uint32_t n)
{
	out[0] = STDIO_ACK;
	out[1] = (uint8_t)(n >> 24);
	out[2] = (uint8_t)(n >> 16);
	out[3] = (uint8_t)(n >> 8);
	out[4] = (uint8_t)n;
	return 5;
}

size_t stdio_encode_eof(uint8_t out[2], int fd)
{
	out[0] = STDIO_EOF;
	out[1] = (uint8_t)fd;
	return 2;
}

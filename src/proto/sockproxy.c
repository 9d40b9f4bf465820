/* sockproxy.c - see sockproxy.h. */
#include "sockproxy.h"

int sock_frame_parse(const uint8_t *buf, size_t len, struct sock_frame *out)
{
	if (len < 1)
		return -1;
	out->kind = (enum sock_kind)buf[0];
	out->data = NULL;
	out->len = 0;
	out->ack = 0;
	switch (buf[0]) {
	case SOCK_DATA:
		if (len < 2 || len - 1 > SOCK_CHUNK)
			return -1;
		out->data = buf + 1;
		out->len = len - 1;
		return 0;
	case SOCK_ACK:
		if (len != 5)
			return -1;
		out->ack = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
		return 0;
	case SOCK_CONNECTED:
	case SOCK_EOF:
	case SOCK_CLOSE:
		return len == 1 ? 0 : -1;
	default:
		return -1;
	}
}

size_t sock_encode(uint8_t out[5], enum sock_kind kind, uint32_t ack)
{
	out[0] = (uint8_t)kind;
	if (kind != SOCK_ACK)
		return 1;
	out[1] = (uint8_t)(ack >> 24);
	out[2] = (uint8_t)(ack >> 16);
	out[3] = (uint8_t)(ack >> 8);
	out[4] = (uint8_t)ack;
	return 5;
}

/* frame.c - the 10-byte ttrpc frame header and building whole frames. */
#include "ttrpc-internal.h"

#include "common/util.h"

void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_LEN])
{
	out[0] = (uint8_t)(h->length >> 24);
	out[1] = (uint8_t)(h->length >> 16);
	out[2] = (uint8_t)(h->length >> 8);
	out[3] = (uint8_t)h->length;
	out[4] = (uint8_t)(h->stream_id >> 24);
	out[5] = (uint8_t)(h->stream_id >> 16);
	out[6] = (uint8_t)(h->stream_id >> 8);
	out[7] = (uint8_t)h->stream_id;
	out[8] = h->type;
	out[9] = h->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN], struct ttrpc_header *h)
{
	h->length = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
	h->stream_id = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];
	h->type = in[8];
	h->flags = in[9];
}

uint8_t *tt_frame_alloc(size_t len, uint32_t id, uint8_t type, uint8_t flags)
{
	uint8_t *buf = xmalloc(TTRPC_HEADER_LEN + len);
	struct ttrpc_header h = { .length = (uint32_t)len, .stream_id = id, .type = type, .flags = flags };
	ttrpc_header_encode(&h, buf);
	return buf;
}

uint8_t *tt_frame_pack(const ProtobufCMessage *msg, uint32_t id, uint8_t type, uint8_t flags, size_t *total)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;

	if (len > TTRPC_MAX_PAYLOAD)
		return NULL;
	buf = tt_frame_alloc(len, id, type, flags);
	protobuf_c_message_pack(msg, buf + TTRPC_HEADER_LEN);
	*total = TTRPC_HEADER_LEN + len;
	return buf;
}

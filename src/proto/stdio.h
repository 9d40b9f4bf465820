/* stdio.h - the payload of DATA frames on an agent Stdio stream, shared by
 * the guest agent and the host. Each frame is one kind byte then its body:
 *   STDIO_STDIN/STDOUT/STDERR  the bytes of that stream (1..STDIO_CHUNK)
 *   STDIO_ACK                  u32 BE: bytes of the opposite direction consumed
 *   STDIO_EOF                  one byte: the fd (0, 1 or 2) that reached end of file
 * Flow control: a sender keeps at most STDIO_WINDOW bytes unacknowledged per
 * direction, and the receiver acknowledges only after handing bytes to their
 * consumer (the pipe, the FIFO), so a slow reader stalls the writer instead
 * of growing a buffer on either side. */
#ifndef RUNM_PROTO_STDIO_H
#define RUNM_PROTO_STDIO_H

#include <stddef.h>
#include <stdint.h>

enum stdio_kind {
	STDIO_STDIN = 0,
	STDIO_STDOUT = 1,
	STDIO_STDERR = 2,
	STDIO_ACK = 3,
	STDIO_EOF = 4,
};

#define STDIO_CHUNK (64u * 1024)
#define STDIO_WINDOW (512u * 1024)

struct stdio_frame {
	enum stdio_kind kind;
	const uint8_t *data; /* STDIN/STDOUT/STDERR: points into the frame */
	size_t len;
	uint32_t ack;        /* STDIO_ACK */
	int fd;              /* STDIO_EOF */
};

/* Parse a DATA payload. Returns 0, or -1 if it is not a valid stdio frame. */
int stdio_frame_parse(const uint8_t *buf, size_t len, struct stdio_frame *out);

/* Encode an ACK or EOF frame into out (5 bytes at most); returns its length. */
size_t stdio_encode_ack(uint8_t out[5], uint32_t n);
size_t stdio_encode_eof(uint8_t out[2], int fd);

#endif

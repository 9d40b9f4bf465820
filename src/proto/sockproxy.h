/* sockproxy.h - the payload of DATA frames on an agent SocketProxy stream
 * (one connection to a host unix socket, proto/runm/agent.proto), shared by
 * the guest agent and the host. Each frame is one kind byte then its body:
 *   SOCK_CONNECTED  guest -> host, the first frame: a client connected
 *   SOCK_DATA       1..SOCK_CHUNK bytes of the connection
 *   SOCK_ACK        u32 BE: bytes of the opposite direction written out
 *   SOCK_EOF        the sender read end of file (half-close)
 *   SOCK_CLOSE      the sender gives the connection up
 * Flow control as for stdio (stdio.h): a sender keeps at most SOCK_WINDOW
 * bytes unacknowledged, and the receiver acknowledges only what it wrote to
 * its socket. */
#ifndef RUNM_PROTO_SOCKPROXY_H
#define RUNM_PROTO_SOCKPROXY_H

#include <stddef.h>
#include <stdint.h>

enum sock_kind {
	SOCK_CONNECTED = 0,
	SOCK_DATA = 1,
	SOCK_ACK = 2,
	SOCK_EOF = 3,
	SOCK_CLOSE = 4,
};

#define SOCK_CHUNK (64u * 1024)
#define SOCK_WINDOW (256u * 1024)
/* Calls a socket may have waiting in the agent, and connections per socket
 * the host keeps open at most (agent.proto). */
#define SOCK_MAX_WAITING 8
#define SOCK_MAX_CONNS 64
/* Host sockets per container. */
#define SOCK_MAX_SOCKETS 32
/* Where the agent listens: SOCK_GUEST_DIR/<container id>/<n>.sock. On the
 * guest's own tmpfs, never on the 9p share. (Unit tests, which run the
 * agent's code on the host, define their own.) */
#ifndef SOCK_GUEST_DIR
#define SOCK_GUEST_DIR "/run/runm/sockets"
#endif

struct sock_frame {
	enum sock_kind kind;
	const uint8_t *data; /* SOCK_DATA: points into the frame */
	size_t len;
	uint32_t ack;        /* SOCK_ACK */
};

/* Parse a DATA payload. Returns 0, or -1 if it is not a valid frame. */
int sock_frame_parse(const uint8_t *buf, size_t len, struct sock_frame *out);

/* Encode a frame without data (CONNECTED, EOF, CLOSE: 1 byte) or an ACK
 * (5 bytes) into out; returns its length. */
size_t sock_encode(uint8_t out[5], enum sock_kind kind, uint32_t ack);

#endif

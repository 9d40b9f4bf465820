/* hostile_agent.c - a hostile guest PID 1 for tests/e2e/test_hostile_agent.py:
 * it opens the agent's virtio-serial port exactly as runm-agent does
 * (src/agent/boot.c: the port named VM_CHANNEL_NAME under
 * /sys/class/virtio-ports) and then misbehaves on it, as told by the file
 * /hostile-mode in its initramfs:
 *   garbage    random bytes from the first byte on (no hello)
 *   oversized  the hello, then a response header announcing 64 MiB (over
 *              TTRPC_MAX_PAYLOAD) to the first request, then bytes
 *   wrong-id   the hello, then each request answered with a DATA frame on
 *              its own stream (the wrong type) and a response on a stream
 *              id the host never used
 *   silent     the hello, then reads everything and answers nothing
 *   mute       the hello, answers the first request (Ping), then reads
 *              everything and answers nothing more
 *   flood      the hello, answers the first request (Ping) correctly, then
 *              writes valid DATA frames on that finished stream as fast as
 *              the channel takes them, answering nothing more
 * It needs nothing of runm's code but the wire constants: the point is a
 * peer that does not play by runm's rules. Static, as runm-agent is. */
#include "ttrpc/ttrpc.h"
#include "vm/vm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OVERSIZED_LEN (64u << 20)
#define FLOOD_CHUNK (64u << 10)
#define WRONG_ID_OFFSET 1000 /* odd ids above the host's next ones: never asked */

static void say(const char *fmt, const char *arg)
{
	/* The kernel console (ttyS0): the host keeps it in console.log. */
	fprintf(stderr, "hostile-agent: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
}

static void die(const char *what)
{
	say("%s: giving up", what);
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void write_all_or_die(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			poll(&pf, 1, 1000);
			continue;
		}
		if (w <= 0)
			die("write to the channel");
		b += w;
		n -= (size_t)w;
	}
}

static void read_all_or_die(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd pf = { .fd = fd, .events = POLLIN };
			poll(&pf, 1, 1000);
			continue;
		}
		if (r <= 0)
			die("read from the channel");
		b += r;
		n -= (size_t)r;
	}
}

static void put_header(uint8_t out[TTRPC_HEADER_LEN], uint32_t len, uint32_t id, uint8_t type, uint8_t flags)
{
	for (int i = 0; i < 4; i++) {
		out[i] = (uint8_t)(len >> (24 - 8 * i));
		out[4 + i] = (uint8_t)(id >> (24 - 8 * i));
	}
	out[8] = type;
	out[9] = flags;
}

static void send_frame(int fd, uint32_t id, uint8_t type, const void *payload, uint32_t len)
{
	uint8_t h[TTRPC_HEADER_LEN];
	put_header(h, len, id, type, 0);
	write_all_or_die(fd, h, sizeof(h));
	if (len)
		write_all_or_die(fd, payload, len);
}

/* The next request's stream id; its payload is read and dropped. */
static uint32_t next_request(int fd)
{
	static uint8_t sink[64 << 10];
	uint8_t h[TTRPC_HEADER_LEN];
	uint32_t len, id;

	read_all_or_die(fd, h, sizeof(h));
	len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	id = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
	while (len > 0) {
		uint32_t n = len < sizeof(sink) ? len : (uint32_t)sizeof(sink);
		read_all_or_die(fd, sink, n);
		len -= n;
	}
	return id;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_random(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)xorshift();
}

static char *port_device(void)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *de;
	static char dev[300];

	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		char p[300], name[64] = "";
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", de->d_name);
		f = fopen(p, "re");
		if (f == NULL)
			continue;
		if (fgets(name, sizeof(name), f) == NULL)
			name[0] = '\0';
		fclose(f);
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, VM_CHANNEL_NAME) == 0) {
			snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
			closedir(d);
			return dev;
		}
	}
	closedir(d);
	return NULL;
}

static int open_channel(void)
{
	for (int tries = 0; tries < 200; tries++) {
		char *dev = port_device();
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		if (dev) {
			int fd = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
			if (fd >= 0)
				return fd;
		}
		nanosleep(&ts, NULL);
	}
	die("no virtio-serial port " VM_CHANNEL_NAME);
	return -1;
}

static void hello(int fd)
{
	send_frame(fd, 0, TTRPC_DATA, NULL, 0);
}

int main(void)
{
	static uint8_t buf[FLOOD_CHUNK];
	char mode[32] = "";
	FILE *f;
	int fd;

	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	f = fopen("/hostile-mode", "re");
	if (f == NULL || fgets(mode, sizeof(mode), f) == NULL)
		die("no /hostile-mode");
	fclose(f);
	mode[strcspn(mode, "\n")] = '\0';
	rng ^= (uint64_t)time(NULL);
	fd = open_channel();
	say("mode %s", mode);

	if (strcmp(mode, "garbage") == 0) {
		for (;;) {
			fill_random(buf, sizeof(buf));
			write_all_or_die(fd, buf, sizeof(buf));
		}
	} else if (strcmp(mode, "oversized") == 0) {
		uint8_t h[TTRPC_HEADER_LEN];
		hello(fd);
		put_header(h, OVERSIZED_LEN, next_request(fd), TTRPC_RESPONSE, 0);
		write_all_or_die(fd, h, sizeof(h));
		for (;;) {
			fill_random(buf, sizeof(buf));
			write_all_or_die(fd, buf, sizeof(buf));
		}
	} else if (strcmp(mode, "wrong-id") == 0) {
		hello(fd);
		for (;;) {
			uint32_t id = next_request(fd);
			/* An empty ttrpc.Response is a valid OK answer, on the wrong stream. */
			send_frame(fd, id, TTRPC_DATA, "x", 1);
			send_frame(fd, id + WRONG_ID_OFFSET, TTRPC_RESPONSE, NULL, 0);
		}
	} else if (strcmp(mode, "silent") == 0) {
		hello(fd);
		for (;;)
			next_request(fd);
	} else if (strcmp(mode, "mute") == 0) {
		hello(fd);
		send_frame(fd, next_request(fd), TTRPC_RESPONSE, NULL, 0);
		for (;;)
			next_request(fd);
	} else if (strcmp(mode, "flood") == 0) {
		uint32_t id;
		hello(fd);
		id = next_request(fd);
		send_frame(fd, id, TTRPC_RESPONSE, NULL, 0);
		say("answered the first request, flooding%s", "");
		for (;;) {
			struct pollfd pf = { .fd = fd, .events = POLLIN };
			/* Requests are read (the host's writes must not block) and ignored. */
			while (poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN)) {
				next_request(fd);
				pf.revents = 0;
			}
			fill_random(buf, sizeof(buf));
			send_frame(fd, id, TTRPC_DATA, buf, sizeof(buf));
		}
	}
	die("unknown mode");
	return 1;
}

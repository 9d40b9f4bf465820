"""sockets.py - what the host-socket tests share (test_sockets.py,
test_podman.py): a unix socket echo server on the host and a small static
client for inside containers (busybox's nc has no unix sockets).

    with echo_server() as srv:           # srv.path: the socket, in a temp dir
        build_client(rootfs + "/client")  # client PATH N BYTES
        build_sockcat(rootfs + "/sockcat")  # sockcat PATH: stdin in, then EOF; the answer out
"""
import contextlib
import os
import socket
import tempfile
import threading

from lib import run

# Opens N connections to PATH at once, sends BYTES of a pattern on each
# while reading (poll), half-closes each once sent, reads to EOF, and checks
# the echo. One line per connection, then "ALL OK" or "FAILED".
CLIENT_C = r"""
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#define MAXC 64
static unsigned char pat(int c, long i) { return (unsigned char)(i * 7 + c * 13 + (i >> 9)); }
int main(int argc, char **argv)
{
	int n = atoi(argv[2]), fds[MAXC], bad = 0;
	long total = atol(argv[3]), sent[MAXC] = {0}, got[MAXC] = {0};
	int done_w[MAXC] = {0}, done_r[MAXC] = {0}, wrong[MAXC] = {0}, left = n;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	signal(SIGPIPE, SIG_IGN);
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	for (int c = 0; c < n; c++) {
		fds[c] = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fds[c], (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("connect"); return 2; }
		if (total == 0) { shutdown(fds[c], SHUT_WR); done_w[c] = 1; }
	}
	if (total < 0) { /* hold: say hi, keep the connection open until killed */
		char b[64];
		if (write(fds[0], "hi", 2) != 2) return 4;
		while (read(fds[0], b, sizeof(b)) > 0) ;
		return 0;
	}
	while (left > 0) {
		struct pollfd p[MAXC];
		for (int c = 0; c < n; c++) {
			p[c].fd = done_r[c] ? -1 : fds[c];
			p[c].events = POLLIN | (done_w[c] ? 0 : POLLOUT);
		}
		if (poll(p, n, 60000) <= 0) { printf("poll timed out\n"); return 3; }
		for (int c = 0; c < n; c++) {
			unsigned char buf[16384];
			if (p[c].revents & POLLOUT) {
				long k = total - sent[c] < (long)sizeof(buf) ? total - sent[c] : (long)sizeof(buf);
				for (long i = 0; i < k; i++) buf[i] = pat(c, sent[c] + i);
				ssize_t w = write(fds[c], buf, k);
				if (w > 0) sent[c] += w;
				if (sent[c] == total) { shutdown(fds[c], SHUT_WR); done_w[c] = 1; }
			}
			if (p[c].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = read(fds[c], buf, sizeof(buf));
				if (r <= 0) { done_r[c] = 1; left--; if (!done_w[c]) { done_w[c] = 1; } continue; }
				for (ssize_t i = 0; i < r; i++) if (buf[i] != pat(c, got[c] + i)) wrong[c] = 1;
				got[c] += r;
			}
		}
	}
	for (int c = 0; c < n; c++) {
		printf("conn %d sent %ld got %ld%s\n", c, sent[c], got[c], wrong[c] ? " WRONG" : "");
		bad |= got[c] != total || wrong[c];
	}
	printf(bad ? "FAILED\n" : "ALL OK\n");
	return bad;
}
"""


class EchoServer:
    """A unix socket echo server on the host, one thread per connection:
    echoes until the client's EOF, then closes. Counts connections that
    ended that way (a clean half-close from the guest)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o660)
        self.sock.listen(64)
        self.lock = threading.Lock()
        self.clean = 0
        self.received = 0
        self.threads = []
        self.stop = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.received += len(d)
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        with self.lock:
            self.clean += 1

    def close(self):
        self.stop = True
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.t.join(5)
        for t in self.threads:
            t.join(5)


@contextlib.contextmanager
def echo_server():
    d = tempfile.mkdtemp(prefix="runm-sock-")
    srv = EchoServer(os.path.join(d, "echo.sock"))
    try:
        yield srv
    finally:
        srv.close()
        os.unlink(srv.path)
        os.rmdir(d)



# Sends stdin to the socket at PATH, half-closes, copies the answer to stdout
# until EOF (a request to an HTTP API over a unix socket, as `curl
# --unix-socket` would).
SOCKCAT_C = r"""
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[65536];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), in_open = 1;
	if (argc < 2) return 2;
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("connect"); return 2; }
	for (;;) {
		struct pollfd p[2] = { { .fd = in_open ? 0 : -1, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
		if (poll(p, 2, 60000) <= 0) return 3;
		if (p[0].revents) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0) { shutdown(fd, SHUT_WR); in_open = 0; }
			else if (write(fd, buf, n) != n) return 4;
		}
		if (p[1].revents) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0) return 0;
			if (write(1, buf, n) != n) return 4;
		}
	}
}
"""


def _build(code, out):
    src = out + ".c"
    with open(src, "w") as f:
        f.write(code)
    try:
        run(["cc", "-static", "-O2", "-o", out, src], timeout=60)
    finally:
        os.unlink(src)


def build_client(out):
    """Compile CLIENT_C, static, to `out`."""
    _build(CLIENT_C, out)


def build_sockcat(out):
    """Compile SOCKCAT_C, static, to `out`."""
    _build(SOCKCAT_C, out)

/* term.c - terminals and signals for the commands that attach to a
 * container: which signals are forwarded, raw mode, and runc's
 * --console-socket hand-off of a pty master. */
#include "cli/cli.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

void cli_forwarded_signals(sigset_t *set)
{
	/* Everything a user or a supervisor may send, but not what the kernel
	 * raises for our own faults, job control of our terminal, or SIGCHLD. */
	static const int own[] = { SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV, SIGBUS, SIGFPE,
				   SIGILL, SIGTTIN, SIGTTOU, SIGTSTP, SIGPIPE, SIGABRT };
	sigemptyset(set);
	for (int s = 1; s < 32; s++)
		sigaddset(set, s);
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		sigdelset(set, own[i]);
	/* A reader of our output that goes away is the relay's business. */
	signal(SIGPIPE, SIG_IGN);
}

bool cli_tty_raw(int fd, struct termios *saved)
{
	struct termios t;
	if (fd < 0 || tcgetattr(fd, saved) < 0)
		return false;
	t = *saved;
	cfmakeraw(&t);
	return tcsetattr(fd, TCSANOW, &t) == 0;
}

int cli_console_socket(const char *path, int *slave, runm_error_t *err)
{
	cleanup_close int master = -1, s = -1, sock = -1;
	struct termios t;
	char byte = 0;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c;

	if (openpty(&master, &s, NULL, NULL, NULL) < 0)
		return runm_error_make(err, errno, "openpty");
	set_cloexec(master, 1);
	set_cloexec(s, 1);
	/* The guest's pty does the line discipline: ours passes bytes through. */
	if (tcgetattr(s, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(s, TCSANOW, &t);
	}
	sock = unix_connect(path, err);
	if (sock < 0)
		return runm_error_wrap(err, "--console-socket");
	memset(&cm, 0, sizeof(cm));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &master, sizeof(int));
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		return runm_error_make(err, errno, "send the console to `%s`", path);
	*slave = steal_fd(&s);
	return 0;
}

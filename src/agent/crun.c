/* crun.c - see crun.h. Called only from the agent's loop thread: while crun
 * runs, the loop waits here, so the reaper cannot steal crun's exit status. */
#include "crun.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CRUN_BIN "/usr/bin/crun"
#define CRUN_LOG "/run/runm/crun.log"

static char *log_tail(void)
{
	cleanup_free char *text = NULL;
	size_t len = 0;
	char *end, *start;

	if (read_file_at(AT_FDCWD, CRUN_LOG, 1 << 20, &text, &len, NULL) < 0 || len == 0)
		return xstrdup("no message from crun");
	end = text + len;
	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(text, '\n');
	return xstrdup(start ? start + 1 : text);
}

static void child(const char *const *args, const int stdio[3])
{
	sigset_t none;
	const char *argv[64];
	size_t n = 0;
	int devnull = open("/dev/null", O_RDWR);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int i = 0; i < 3; i++) {
		int fd = stdio[i] >= 0 ? stdio[i] : devnull;
		/* dup2 onto itself keeps FD_CLOEXEC: clear it explicitly. */
		if (fd == i)
			set_cloexec(fd, 0);
		else if (dup2(fd, i) < 0)
			_exit(127);
	}
	syscall(SYS_close_range, 3, ~0u, 0);
	argv[n++] = "crun";
	argv[n++] = "--root=" CRUN_ROOT;
	argv[n++] = "--log=file:" CRUN_LOG;
	for (size_t i = 0; args[i] && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	execv(CRUN_BIN, (char *const *)argv);
	_exit(127);
}

static int wait_deadline(pid_t pid, unsigned timeout_ms, int *status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, (int)timeout_ms);
		while (r < 0 && errno == EINTR);
		close(pidfd);
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return -1;
		}
	}
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static int run(const char *const *args, const int stdio[3], unsigned timeout_ms, runm_error_t *err)
{
	int status = 0;
	pid_t pid;

	/* One log per call, so the last line is this call's. */
	if (truncate(CRUN_LOG, 0) < 0 && errno != ENOENT)
		log_warn("truncate " CRUN_LOG ": %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		return runm_error_make(err, errno, "fork crun");
	if (pid == 0)
		child(args, stdio);
	if (wait_deadline(pid, timeout_ms, &status) < 0)
		return runm_error_make(err, ETIMEDOUT, "crun %s: no answer in %u ms", args[0], timeout_ms);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	{
		cleanup_free char *msg = log_tail();
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			return runm_error_make(err, 0, "crun %s: cannot run " CRUN_BIN, args[0]);
		return runm_error_make(err, 0, "crun %s: %s", args[0], msg);
	}
}

int crun_run(const char *const *args, const int stdio[3], unsigned timeout_ms, runm_error_t *err)
{
	return run(args, stdio, timeout_ms, err);
}

int crun_output(const char *const *args, size_t max, char **out, unsigned timeout_ms, runm_error_t *err)
{
	char tmpl[] = "/run/runm/crun-out.XXXXXX";
	cleanup_close int fd = mkostemp(tmpl, O_CLOEXEC);
	int stdio[3] = { -1, -1, -1 };

	if (fd < 0)
		return runm_error_make(err, errno, "mkstemp `%s`", tmpl);
	unlink(tmpl);
	stdio[1] = fd;
	if (run(args, stdio, timeout_ms, err) < 0)
		return -1;
	lseek(fd, 0, SEEK_SET);
	{
		cleanup_free char *path = xasprintf("/proc/self/fd/%d", fd);
		return read_file_at(AT_FDCWD, path, max, out, NULL, err);
	}
}

int crun_start_fifo(const char *root, const char *id, runm_error_t *err)
{
	cleanup_free char *path = xasprintf("%s/%s/exec.fifo", root, id);
	/* Non-blocking: with no reader (the init died) open fails with ENXIO
	 * at once, where crun's blocking open would hang. */
	cleanup_close int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	char byte = 0;

	if (fd < 0 && errno == ENOENT)
		return runm_error_make(err, 0, "start %s: not created, or started already (no %s)", id, path);
	if (fd < 0 && errno == ENXIO)
		return runm_error_make(err, 0, "start %s: its init exited before start", id);
	if (fd < 0)
		return runm_error_make(err, errno, "start %s: open %s", id, path);
	if (unlink(path) < 0)
		return runm_error_make(err, errno, "start %s: unlink %s", id, path);
	if (write(fd, &byte, 1) != 1)
		return runm_error_make(err, errno, "start %s: write %s", id, path);
	return 0;
}

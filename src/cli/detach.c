/* detach.c - forking a monitor off a command that returns before the
 * container (or exec'd process) ends: `run --detach`, `create`, `exec
 * --detach`. The parent waits on a pipe until the child says "ok" or why it
 * failed, so the caller's exit status tells the truth; the child leads a
 * session of its own and lives on. Also the stdio a monitor must not keep. */
#include "cli/cli.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cli_detach(int *report_fd, pid_t *child, runm_error_t *err)
{
	int p[2];
	pid_t pid;
	char buf[4096];
	ssize_t n;
	size_t got = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe");
	pid = fork();
	if (pid < 0)
		return runm_error_make(err, errno, "fork");
	if (pid == 0) {
		close(p[0]);
		*report_fd = p[1];
		setsid();
		*child = 0;
		return 0;
	}
	close(p[1]);
	while (got < sizeof(buf) - 1 && (n = read(p[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(p[0]);
	if (strcmp(buf, "ok") == 0) {
		*child = pid;
		return 0;
	}
	/* The child cleaned up what it made; its exit is ours to collect. */
	waitpid(pid, NULL, 0);
	return runm_error_make(err, 0, "%s", got ? buf : "the monitor died before it was ready");
}

void cli_report(int *report_fd, const char *msg)
{
	if (*report_fd < 0)
		return;
	if (write_all(*report_fd, msg, strlen(msg)) < 0)
		log_debug("report to the parent: %s", strerror(errno));
	close(*report_fd);
	*report_fd = -1;
}

void cli_null_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

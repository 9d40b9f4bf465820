/* holder.c - see holder.h. */
#include "shim/holder.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t holder_spawn(runm_error_t *err)
{
	int p[2];
	char ok = 0;
	pid_t pid, parent = getpid();

	if (pipe2(p, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return runm_error_make(err, e, "fork");
	}
	if (pid == 0) {
		sigset_t none;
		/* Only async-signal-safe calls from here: the shim may have threads. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent || unshare(CLONE_NEWNET) < 0)
			_exit(1);
		ok = 1;
		if (write(p[1], &ok, 1) != 1)
			_exit(1);
		/* Hold nothing of the shim's: not its listening socket (a SIGKILLed
		 * shim's delete would find it still answering), not the FIFOs
		 * (containerd would wait for their EOF), not the VM's channel. */
		if (syscall(SYS_close_range, 0U, ~0U, 0U) < 0) /* Linux < 5.9 */
			for (int fd = 0; fd < 4096; fd++)
				close(fd);
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], &ok, 1) != 1 || ok != 1) {
		close(p[0]);
		holder_stop(pid);
		return runm_error_make(err, 0, "could not park a process in a new network namespace");
	}
	close(p[0]);
	return pid;
}

void holder_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

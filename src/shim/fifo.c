/* fifo.c - see fifo.h.
 *
 * Output: open our own read end first (O_RDONLY|O_NONBLOCK never blocks),
 * then the write end O_WRONLY|O_NONBLOCK, which succeeds because a reader
 * (us) exists even when ctr has not opened its end yet. Our read end is not
 * a writer, so the client still sees EOF once the relay closes the write end.
 * Input: O_RDONLY|O_NONBLOCK, as containerd's fifo package does. */
#include "fifo.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_output(const char *path, int *wfd, int *rfd, runm_error_t *err)
{
	struct stat st;
	cleanup_close int r = -1;
	int w;

	if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
		r = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (r < 0)
			return runm_error_make(err, errno, "open `%s` for reading", path);
		w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	} else {
		/* A file (containerd's file:// log URIs end up here) or a missing path: create it. */
		w = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
	if (w < 0)
		return runm_error_make(err, errno, "open `%s` for writing", path);
	*wfd = w;
	*rfd = steal_fd(&r);
	return 0;
}

int fifo_open_set(const char *stdin_path, const char *stdout_path, const char *stderr_path, struct fifo_set *out,
		  runm_error_t *err)
{
	struct fifo_set f = FIFO_SET_INIT;

	if (stdin_path && stdin_path[0]) {
		f.in = open(stdin_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (f.in < 0) {
			runm_error_make(err, errno, "open stdin `%s`", stdin_path);
			goto fail;
		}
	}
	if (stdout_path && stdout_path[0] && open_output(stdout_path, &f.out, &f.keep_out, err) < 0)
		goto fail;
	if (stderr_path && stderr_path[0] && open_output(stderr_path, &f.err, &f.keep_err, err) < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	fifo_close_set(&f);
	return -1;
}

void fifo_close_set(struct fifo_set *f)
{
	close_and_reset(&f->in);
	close_and_reset(&f->out);
	close_and_reset(&f->err);
	close_and_reset(&f->keep_out);
	close_and_reset(&f->keep_err);
}

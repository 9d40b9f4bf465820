/* fifo.h - open containerd's stdio FIFOs for one process without blocking
 * on a client that has not opened its end (or has gone away). */
#ifndef RUNM_SHIM_FIFO_H
#define RUNM_SHIM_FIFO_H

#include "common/error.h"

/* The fds of one process's stdio. in/out/err go to the relay (which owns
 * them from then on); keep_out/keep_err are our own read ends of the output
 * FIFOs, held so that writes never fail with EPIPE after a detached client
 * left (the runc shim does the same). -1 where the path was empty. */
struct fifo_set {
	int in, out, err;
	int keep_out, keep_err;
};

#define FIFO_SET_INIT { -1, -1, -1, -1, -1 }

/* Open the FIFOs (or plain files) named by stdin/stdout/stderr; "" or NULL
 * = unused. On failure nothing stays open. */
int fifo_open_set(const char *stdin_path, const char *stdout_path, const char *stderr_path, struct fifo_set *out,
		  runm_error_t *err);

/* Close every fd still held (and set them to -1). */
void fifo_close_set(struct fifo_set *f);

#endif

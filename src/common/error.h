/* error.h - runm's one error type, carried through every layer.
 *
 * Contract: a function that can fail takes `runm_error_t *err`
 * as its last argument, returns >= 0 on success and a negative value on
 * failure after filling *err. Each layer may add context with
 * runm_error_wrap(); only the entry point (main, an RPC handler) prints or
 * turns the error into a reply, then releases it. */
#ifndef RUNM_ERROR_H
#define RUNM_ERROR_H

#include <stdarg.h>

struct runm_error_s {
	int status; /* errno value, or 0 when not from a syscall */
	char *msg;
};
typedef struct runm_error_s *runm_error_t;

/* Fill *err with a message built from fmt (and strerror(errnum) appended when
 * errnum != 0). Always returns -1 so callers can `return runm_error_make(...)`.
 * If *err already holds an error it is released first. */
int runm_error_make(runm_error_t *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the message in *err with context ("context: old message"). Returns -1. */
int runm_error_wrap(runm_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Free *err and set it to NULL; safe on NULL. */
void runm_error_release(runm_error_t *err);

/* The message, or "unknown error" when err holds none. */
const char *runm_error_msg(runm_error_t err);

#define cleanup_error __attribute__((cleanup(runm_error_release)))

#endif
